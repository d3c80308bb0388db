"""Runs the shipped daily SQL on DuckDB or PySpark for bench/daily.sh, and compares results.

    engine.py duckdb  --lake LAKE --sql SQL --date D --out OUT --timings T.json [--threads N]
    engine.py spark   --lake LAKE --sql SQL --date D --out OUT --timings T.json [--cores N]
                      [--driver-memory 4g]
    engine.py compare --date D --sql SQL NAME=PROCESSED_DIR ...   (exit 1 when they differ)

Both engines do what `lake daily` does for one date: read raw.user_events (the lake's Delta table),
run every sql/daily/*.sql SELECT with the date bound as a parameter, and write each result as a
Delta table OUT/<name> partitioned by `date`. DuckDB binds `$date` natively and its results are
written with deltalake (DuckDB cannot write Delta); Spark gets `$date` rewritten to `:date`
(tests/python/spark_delta.py) and writes with delta-spark. Timings go to T.json:
startup_s (interpreter imports excluded; DuckDB connection + extension load, or SparkSession
creation incl. JVM start), job_s (all queries + writes, after startup) and per-query seconds;
for Spark also the JVM's peak RSS (VmHWM), which /usr/bin/time on the Python process misses.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "python"))
sys.path.insert(0, str(ROOT / "bench"))

import spark_delta  # noqa: E402
from benchlib import jvm_usage, vm_hwm_kb  # noqa: E402


def run_duckdb(args) -> dict:
    from deltalake import write_deltalake
    from duckdb_delta import connect

    t0 = time.perf_counter()
    con = connect(config={"threads": args.threads} if args.threads else {})
    spark_delta.register_raw_duckdb(con, args.lake)
    startup = time.perf_counter() - t0
    queries = {}
    t1 = time.perf_counter()
    for name, text in spark_delta.daily_queries(args.sql).items():
        q0 = time.perf_counter()
        table = con.execute(text, {"date": args.date}).to_arrow_table()
        q1 = time.perf_counter()
        write_deltalake(str(pathlib.Path(args.out) / name), table, partition_by=["date"], mode="overwrite")
        queries[name] = {"compute_s": q1 - q0, "write_s": time.perf_counter() - q1, "rows": table.num_rows}
    job = time.perf_counter() - t1
    import duckdb
    return {"engine": "duckdb", "startup_s": startup, "job_s": job, "queries": queries,
            "threads": con.execute("SELECT current_setting('threads')").fetchone()[0],
            "version": duckdb.__version__}


def run_spark(args) -> dict:
    import pyspark

    t0 = time.perf_counter()
    spark, warehouse = spark_delta.session("lake-bench-daily", cores=args.cores, conf={
        "spark.driver.memory": args.driver_memory,
        # 2x the cores instead of Spark's cluster-sized 200 (AQE stays on and coalesces anyway);
        # Delta's log replay likewise gets a handful of partitions instead of 50.
        "spark.sql.shuffle.partitions": str(2 * args.cores),
        "spark.databricks.delta.snapshotPartitions": str(2 * args.cores),
    })
    spark_delta.register_raw(spark, args.lake)
    startup = time.perf_counter() - t0
    queries = {}
    t1 = time.perf_counter()
    for name, text in spark_delta.daily_queries(args.sql).items():
        q0 = time.perf_counter()
        df = spark.sql(spark_delta.to_spark_sql(text), args={"date": args.date})
        df.write.format("delta").mode("overwrite").partitionBy("date").save(str(pathlib.Path(args.out) / name))
        queries[name] = {"compute_and_write_s": time.perf_counter() - q0}
    job = time.perf_counter() - t1
    jvm = jvm_usage(spark)
    conf = {k: v for k, v in spark.sparkContext.getConf().getAll()
            if k.startswith(("spark.sql.shuffle", "spark.databricks", "spark.driver.memory", "spark.master",
                             "spark.sql.adaptive"))}
    spark.stop()
    warehouse.cleanup()
    from importlib.metadata import version
    return {"engine": "spark", "startup_s": startup, "job_s": job, "queries": queries,
            "jvm_peak_rss_kb": jvm["jvm_peak_rss_kb"], "jvm_cpu_s": jvm["jvm_cpu_s"], "python_peak_rss_kb": vm_hwm_kb(),
            "version": pyspark.__version__, "delta_spark": version("delta-spark"), "conf": conf}


def compare(args) -> int:
    from duckdb_delta import connect

    con = connect()
    tables = dict(t.split("=", 1) for t in args.tables)
    names = list(tables)
    problems, summary = [], {}
    for query in spark_delta.daily_queries(args.sql):
        results = {}
        for engine, root in tables.items():
            path = pathlib.Path(root) / query
            cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM delta_scan('{path.as_posix()}')").fetchall()]
            rows = con.execute(f"SELECT * FROM delta_scan('{path.as_posix()}') WHERE date = $date",
                               {"date": args.date}).fetchall()
            results[engine] = (cols, [tuple(r) for r in rows])
        base = names[0]
        base_cols = results[base][0]
        for other in names[1:]:
            cols = results[other][0]
            if sorted(cols) != sorted(base_cols):
                problems.append(f"{query}: columns {base}={base_cols} {other}={cols}")
                continue
            idx = [cols.index(c) for c in base_cols]
            reordered = [tuple(r[i] for i in idx) for r in results[other][1]]
            for p in spark_delta.diff(base, results[base][1], other, reordered):
                problems.append(f"{query}: {p}")
            exact = spark_delta.normalize(results[base][1]) == spark_delta.normalize(reordered)
            summary.setdefault(query, {})[f"{base}=={other} bit-exact"] = exact
        summary.setdefault(query, {})["rows"] = {e: len(r[1]) for e, r in results.items()}
        if args.dump:
            out = pathlib.Path(args.dump)
            out.mkdir(parents=True, exist_ok=True)
            for engine, (cols, rows) in results.items():
                with open(out / f"{query}.{engine}.csv", "w") as f:
                    f.write(",".join(base_cols) + "\n")
                    idx = [cols.index(c) for c in base_cols]
                    for r in spark_delta.normalize([tuple(r[i] for i in idx) for r in rows]):
                        f.write(",".join("" if v is None else repr(v) if isinstance(v, float) else str(v)
                                         for v in r) + "\n")
    print(json.dumps({"identical": not problems, "summary": summary, "problems": problems[:50]}, indent=1))
    return 1 if problems else 0


def main() -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("duckdb", "spark"):
        s = sub.add_parser(name)
        s.add_argument("--lake", required=True)
        s.add_argument("--sql", required=True)
        s.add_argument("--date", required=True, type=datetime.date.fromisoformat)
        s.add_argument("--out", required=True)
        s.add_argument("--timings", required=True)
        s.add_argument("--threads", type=int, default=0)
        s.add_argument("--cores", type=int, default=2)
        s.add_argument("--driver-memory", default="4g")
    c = sub.add_parser("compare")
    c.add_argument("--date", required=True, type=datetime.date.fromisoformat)
    c.add_argument("--sql", required=True)
    c.add_argument("--dump", help="write each engine's rows as sorted CSV files here")
    c.add_argument("tables", nargs="+", metavar="ENGINE=PROCESSED_DIR")
    args = p.parse_args()
    if args.cmd == "compare":
        return compare(args)
    result = run_duckdb(args) if args.cmd == "duckdb" else run_spark(args)
    pathlib.Path(args.timings).write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
