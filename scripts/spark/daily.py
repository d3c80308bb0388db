"""The daily job on Apache Spark: the same sql/daily and sql/checks files as `lake daily`, the same
processed.<name> tables, the same per-date replace. Run it through scripts/spark-daily.sh.

    daily.py --lake LAKE (--date D | --from D --to D) [--sql DIR] [--master URL] [--cores N]
             [--conf KEY=VALUE ...]

For each date, as `lake daily` does (write, audit, publish):
  1. every input table of the lake (raw.*, processed.*) is pinned at its current version, so all
     queries of the date read one snapshot while ingest keeps appending;
  2. each sql/daily/<name>.sql runs in dependency order (a file reading processed.<other> runs
     after <other>) with the date bound as a parameter, and its result is staged under
     <lake>/_staging/<run id>/<name>; every row's `date` must be the date;
  3. later files and sql/checks/*.sql see processed.<name> with the staged rows in place of the
     published rows of that date; a failing `-- severity: error` check stops the date and
     publishes nothing (`warn` is reported only);
  4. each staged result replaces the rows of that date in processed.<name> (Delta replaceWhere,
     one commit per table, partitioned by date; a new column is added to the table).
Exit status 1 when any date failed; the published tables keep their previous rows for it.

Not done here: the sensor (name dates that are complete) and the run history (`lake runs` lists
lake's own runs). On S3, Spark's Delta log store (S3SingleDriverLogStore) makes one driver's
commits safe, not two: do not run this runner and `lake daily` for the same tables at once.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import re
import sys
import time
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from lake_spark import hadoop_uri, session, to_spark_sql  # noqa: E402

SCHEMAS = ("raw", "processed")
STAGING = "_staging"
# A table name as `lake` writes them (the catalog refuses others); also what may be quoted below.
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class JobError(Exception):
    """A date that cannot be published; the message says why."""


class SqlFile:
    """One file of sql/daily or sql/checks: its name, text, severity and the processed tables it reads."""

    def __init__(self, path: pathlib.Path):
        self.name = path.stem
        self.text = path.read_text()
        self.severity = "error"
        for line in self.text.splitlines():
            line = line.strip()
            if not line.startswith("--"):
                break
            body = line.lstrip("-").strip()
            if body.startswith("severity:"):
                self.severity = body.split(":", 1)[1].strip()
                if self.severity not in ("error", "warn"):
                    raise JobError(f"{path}: severity must be error or warn, not {self.severity!r}")
        self.reads = set(m.lower() for m in re.findall(r"\bprocessed\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)",
                                                        self.text, re.I))


def load(folder: pathlib.Path) -> list[SqlFile]:
    return [SqlFile(p) for p in sorted(folder.glob("*.sql"))]


def in_dependency_order(files: list[SqlFile]) -> list[SqlFile]:
    """Files reading processed.<other> after <other>; a cycle is an error."""
    by_name = {f.name: f for f in files}
    done: list[SqlFile] = []
    visiting: set[str] = set()

    def visit(f: SqlFile):
        if f in done:
            return
        if f.name in visiting:
            raise JobError(f"sql/daily: {f.name} depends on itself through processed.* reads")
        visiting.add(f.name)
        for dep in sorted(f.reads - {f.name}):
            if dep in by_name:
                visit(by_name[dep])
        visiting.discard(f.name)
        done.append(f)

    for f in files:
        visit(f)
    return done


def quoted(name: str) -> str:
    """A path (Delta's delta.`path`) or column name as a backquoted identifier: backquotes
    doubled. Identifiers cannot be bound as parameters; these come from the lake's URL, table
    names checked against NAME and the tables' own schemas, never from SQL text."""
    return "`" + name.replace("`", "``") + "`"


class Lake:
    """The lake's tables through Hadoop's FileSystem (a local folder or s3a://)."""

    def __init__(self, spark, uri: str):
        self.spark = spark
        self.uri = uri
        jvm = spark.sparkContext._jvm
        self._Path = jvm.org.apache.hadoop.fs.Path
        self._fs = self._Path(uri).getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())

    def child(self, *parts: str) -> str:
        return "/".join([self.uri, *parts])

    def is_table(self, location: str) -> bool:
        return bool(self._fs.exists(self._Path(location + "/_delta_log")))

    def tables(self, schema: str) -> list[str]:
        folder = self._Path(self.child(schema))
        if not self._fs.exists(folder):
            return []
        names = [s.getPath().getName() for s in self._fs.listStatus(folder) if s.isDirectory()]
        return sorted(n for n in names if NAME.match(n) and self.is_table(self.child(schema, n)))

    def version(self, location: str) -> int:
        from delta.tables import DeltaTable
        return DeltaTable.forPath(self.spark, location).history(1).collect()[0]["version"]

    def delete(self, location: str) -> None:
        self._fs.delete(self._Path(location), True)


def pin_inputs(spark, lake: Lake) -> dict[str, str]:
    """Views raw.<t> and processed.<t> over each table at its current version; returns
    {qualified name: location} of the processed tables."""
    published = {}
    for schema in SCHEMAS:
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {schema}")
        for name in lake.tables(schema):
            location = lake.child(schema, name)
            version = int(lake.version(location))
            spark.sql(f"CREATE OR REPLACE VIEW {schema}.{name} AS "
                      f"SELECT * FROM delta.{quoted(location)} VERSION AS OF {version}")
            if schema == "processed":
                published[name] = (location, version)
    return published


def show_staged(spark, name: str, staged: str, published: tuple[str, int] | None, date_table: str):
    """processed.<name> as later files and the checks see it: the staged rows, and the published
    rows of every other date, matched by column name (the staged result may have a column the
    table lacks so far, which reads as NULL on older dates, as after publishing)."""
    staged_source = f"delta.{quoted(staged)}"
    if published is None:
        spark.sql(f"CREATE OR REPLACE VIEW processed.{name} AS SELECT * FROM {staged_source}")
        return
    location, version = published
    published_source = f"delta.{quoted(location)} VERSION AS OF {int(version)}"
    types = {}
    for source in (published_source, staged_source):
        for field in spark.sql(f"SELECT * FROM {source}").schema.fields:
            types.setdefault(field.name, field.dataType.simpleString())

    def select(source: str, where: str = "") -> str:
        have = set(spark.sql(f"SELECT * FROM {source}").columns)
        cols = ", ".join(quoted(c) if c in have else f"CAST(NULL AS {t}) AS {quoted(c)}"
                         for c, t in types.items())
        return f"SELECT {cols} FROM {source}{where}"

    others = select(published_source, f" WHERE date NOT IN (SELECT date FROM delta.{quoted(date_table)})")
    spark.sql(f"CREATE OR REPLACE VIEW processed.{name} AS {others} UNION ALL {select(staged_source)}")


def run_date(spark, lake: Lake, daily: list[SqlFile], checks: list[SqlFile], date: datetime.date) -> dict:
    from pyspark.sql.functions import col, lit

    run_id = f"spark-{date.isoformat()}-{uuid.uuid4().hex[:12]}"
    staging = lake.child(STAGING, run_id)
    report = {"date": date.isoformat(), "run_id": run_id, "tables": [], "checks": []}
    t0 = time.perf_counter()
    try:
        published = pin_inputs(spark, lake)
        # The date as a one-row table: show_staged's views compare with it instead of a literal.
        date_table = f"{staging}/_date"
        spark.createDataFrame([(date,)], "date DATE").write.format("delta").save(date_table)
        for f in daily:
            df = spark.sql(to_spark_sql(f.text), args={"date": date})
            if "date" not in df.columns:
                raise JobError(f"sql/daily/{f.name}.sql: the result needs a `date` column")
            staged = f"{staging}/{f.name}"
            df.write.format("delta").partitionBy("date").save(staged)
            rows = spark.read.format("delta").load(staged)
            if rows.filter(col("date").isNull() | (col("date") != lit(date))).limit(1).count():
                raise JobError(f"sql/daily/{f.name}.sql: every row's `date` must be {date.isoformat()}")
            report["tables"].append({"table": f"processed.{f.name}", "rows": rows.count()})
            show_staged(spark, f.name, staged, published.get(f.name), date_table)
        failed = []
        for c in checks:
            violations = spark.sql(to_spark_sql(c.text), args={"date": date})
            sample = [r.asDict() for r in violations.limit(5).collect()]
            status = "pass" if not sample else ("fail" if c.severity == "error" else "warn")
            report["checks"].append({"check": c.name, "status": status,
                                     "sample": [{k: str(v) for k, v in r.items()} for r in sample]})
            if status == "fail":
                failed.append(c.name)
        if failed:
            raise JobError(f"checks failed: {', '.join(failed)}; nothing published for {date.isoformat()}")
        for f in daily:
            publish(spark, lake, f.name, f"{staging}/{f.name}", date)
        report["status"] = "success"
    except JobError as e:
        report["status"], report["error"] = "failed", str(e)
    except Exception as e:  # noqa: BLE001  a query Spark refuses or a store error fails the date
        report["status"], report["error"] = "failed", f"{type(e).__name__}: {str(e).strip().splitlines()[0]}"
    finally:
        lake.delete(staging)
        for schema in SCHEMAS:
            spark.sql(f"DROP DATABASE IF EXISTS {schema} CASCADE")
    report["seconds"] = round(time.perf_counter() - t0, 3)
    return report


def publish(spark, lake: Lake, name: str, staged: str, date: datetime.date) -> None:
    """Replaces the rows of `date` in processed.<name> with the staged rows, in one commit."""
    target = lake.child("processed", name)
    rows = spark.read.format("delta").load(staged)
    writer = rows.write.format("delta").option("mergeSchema", "true")
    if lake.is_table(target):
        # replaceWhere takes a predicate as text only; the date is a datetime.date formatted by
        # isoformat (YYYY-MM-DD), never text from a user.
        writer.mode("overwrite").option("replaceWhere", f"date = DATE'{date.isoformat()}'").save(target)
    else:
        writer.mode("append").partitionBy("date").save(target)


def dates(args, parser) -> list[datetime.date]:
    if args.date:
        return [args.date]
    if not (args.from_ and args.to):
        parser.error("give --date D, or --from D and --to D")
    if args.to < args.from_:
        parser.error(f"--to {args.to} is before --from {args.from_}")
    return [args.from_ + datetime.timedelta(days=i) for i in range((args.to - args.from_).days + 1)]


def main() -> int:
    p = argparse.ArgumentParser(prog="scripts/spark-daily.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("--lake", required=True, help="the lake: a folder or s3://bucket/prefix")
    p.add_argument("--sql", default="sql", type=pathlib.Path, help="the folder with daily/ and checks/")
    p.add_argument("--date", type=datetime.date.fromisoformat, help="one date, YYYY-MM-DD")
    p.add_argument("--from", dest="from_", metavar="FROM", type=datetime.date.fromisoformat,
                   help="the first date of a range")
    p.add_argument("--to", type=datetime.date.fromisoformat, help="the last date of a range")
    p.add_argument("--master", help="a Spark master URL (spark://host:7077); default local[--cores]")
    p.add_argument("--cores", type=int, default=2, help="local mode's worker threads")
    p.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="a Spark setting")
    p.add_argument("--json", action="store_true", help="one JSON report per date on stdout")
    args = p.parse_args()
    wanted = dates(args, p)
    try:
        uri = hadoop_uri(args.lake)
        daily = in_dependency_order(load(args.sql / "daily"))
        checks = load(args.sql / "checks")
    except (ValueError, JobError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not daily:
        print(f"error: no .sql files in {args.sql / 'daily'}", file=sys.stderr)
        return 2
    conf = {}
    for kv in args.conf:
        key, sep, value = kv.partition("=")
        if not sep:
            print(f"error: --conf {kv!r} is not KEY=VALUE", file=sys.stderr)
            return 2
        conf[key] = value
    spark, warehouse = session("lake-daily-spark", cores=args.cores, conf=conf, master=args.master)
    ok = True
    try:
        lake = Lake(spark, uri)
        for date in wanted:
            report = run_date(spark, lake, daily, checks, date)
            ok &= report["status"] == "success"
            if args.json:
                print(json.dumps(report), flush=True)
            else:
                tables = ", ".join(f"{t['table']} {t['rows']} rows" for t in report["tables"])
                print(f"{report['date']}: {report['status']} in {report['seconds']} s ({tables})"
                      + (f": {report['error']}" if "error" in report else ""), flush=True)
    finally:
        spark.stop()
        warehouse.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
