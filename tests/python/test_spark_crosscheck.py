"""The shipped sql/daily/*.sql give the same rows on Spark SQL, on DuckDB and in `lake daily`.

One lake is built per module: 20,000 seed events over 2 dates produced into the test broker and
ingested with `lake ingest --until-caught-up` in small flushes that `lake maintain` then merges;
`lake daily` then runs both dates. Spark (PySpark,
local[2], delta-spark; one JVM per pytest session) and DuckDB (delta extension) each read the same
raw Delta table as raw.user_events and run the SQL files' text; their rows must equal what
`lake daily` wrote to processed.<name>: integers, strings and dates exactly, doubles within a
relative 1e-12.

Spark gets the file text with `$date` rewritten to `:date` (Spark's named-parameter syntax) and the
date bound through spark.sql(args=...); see spark_delta.to_spark_sql. DuckDB takes `$date` as is.

Delta jars: $LAKE_SPARK_JARS, else `scripts/spark.sh install` (Maven Central, cached).
"""
import datetime
import json
import pathlib
import shutil
import subprocess
import uuid

import deltalake
import pytest

from conftest import run
from duckdb_delta import connect
import spark_delta

DATES = [datetime.date(2025, 1, 10), datetime.date(2025, 1, 11)]
QUERIES = spark_delta.daily_queries()


@pytest.fixture(scope="session")
def spark():
    session, warehouse = spark_delta.session("lake-spark-crosscheck", cores=2, conf={
        # Tiny inputs, short-lived JVM on a small machine: few partitions (Spark's 200 shuffle
        # partitions and Delta's 50 for replaying the log are tuned for clusters), no adaptive
        # re-planning, and only the C1 JIT (C2 compiler threads would compete with the 2 cores
        # for code that runs a handful of times).
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.sql.adaptive.enabled": "false",
        "spark.databricks.delta.snapshotPartitions": "2",
        "spark.driver.memory": "1g",
        "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    })
    yield session
    session.stop()
    warehouse.cleanup()


@pytest.fixture(scope="module")
def lake(tmp_path_factory, lake_bin, brokers):
    root = tmp_path_factory.mktemp("spark_lake")
    topic = f"py_spark_{uuid.uuid4().hex}"
    run(lake_bin, "produce", "--brokers", brokers, "--topic", topic, "--events", "20000",
        "--days", "2", "--start-date", "2025-01-10", "--seed", "7", "--users", "5000", "--json")
    # Small flushes merged by `lake maintain`: Spark and DuckDB read merged files (their numbers
    # delta-encoded past a small dictionary) as well as files ingest wrote.
    run(lake_bin, "ingest", "--lake", str(root), "--brokers", brokers, "--topic", topic,
        "--group", topic, "--until-caught-up", "--max-rows", "4000", "--no-maintain")
    run(lake_bin, "maintain", "--lake", str(root))
    run(lake_bin, "daily", "--lake", str(root), "--sql", str(spark_delta.SQL_DIR),
        "--from", DATES[0].isoformat(), "--to", DATES[-1].isoformat(), "--json",
        *no_sensor(lake_bin))
    return root


def no_sensor(lake_bin):
    # The last produced date never becomes "complete" for the sensor (no later events arrive);
    # this test compares results, not completeness.
    return ["--no-sensor"]


@pytest.fixture(scope="module")
def duck(lake):
    con = connect()
    spark_delta.register_raw_duckdb(con, lake)
    yield con
    con.close()


@pytest.fixture(scope="module")
def spark_raw(spark, lake):
    spark_delta.register_raw(spark, lake)
    return spark


def test_shipped_queries_present():
    assert set(QUERIES) >= {"daily_metrics", "daily_event_type_metrics", "daily_page_metrics"}
    for name, text in QUERIES.items():
        assert "$date" in text, f"{name}.sql no longer uses the $date parameter"


@pytest.mark.parametrize("date", DATES, ids=str)
@pytest.mark.parametrize("name", sorted(QUERIES))
def test_daily_sql_same_on_spark_duckdb_and_lake(name, date, spark_raw, duck, lake):
    text = QUERIES[name]
    spark_cols, spark_rows = spark_delta.run_spark(spark_raw, text, date)
    duck_cols, duck_rows = spark_delta.run_duckdb(duck, text, date)
    assert spark_cols == duck_cols
    lake_rows = spark_delta.read_lake_output(duck, lake, name, spark_cols, date)

    assert spark_rows, f"{name} on {date}: no rows on Spark"
    if name == "daily_metrics":
        assert spark_rows[0][1] > 5000  # total_events: the date really has data
    problems = (spark_delta.diff("spark", spark_rows, "duckdb", duck_rows)
                + spark_delta.diff("lake", lake_rows, "spark", spark_rows))
    assert not problems, f"{name} on {date}:\n" + "\n".join(problems[:20])


def test_date_without_events_same_on_spark_and_lake(spark_raw, duck, lake, lake_bin):
    date = datetime.date(2025, 1, 12)
    run(lake_bin, "daily", "--lake", str(lake), "--sql", str(spark_delta.SQL_DIR),
        "--date", date.isoformat(), "--json", *no_sensor(lake_bin))
    for name, text in QUERIES.items():
        cols, spark_rows = spark_delta.run_spark(spark_raw, text, date)
        lake_rows = spark_delta.read_lake_output(duck, lake, name, cols, date)
        problems = spark_delta.diff("lake", lake_rows, "spark", spark_rows)
        assert not problems, f"{name} on {date}:\n" + "\n".join(problems[:20])


# The Spark runner of the daily job (scripts/spark-daily.sh): same processed.* tables as
# `lake daily`, same per-date replace, each engine replacing dates the other wrote.

RUNNER = spark_delta.ROOT / "scripts" / "spark-daily.sh"
ALL_DATES = [*DATES, datetime.date(2025, 1, 12)]  # the last one has no events
SMALL_SPARK = [  # as the `spark` fixture above: tiny inputs, a short-lived JVM on 2 cores
    "--conf", "spark.sql.shuffle.partitions=2", "--conf", "spark.sql.adaptive.enabled=false",
    "--conf", "spark.databricks.delta.snapshotPartitions=2",
    "--conf", "spark.driver.extraJavaOptions=-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
]


def spark_daily(lake, *args, sql=spark_delta.SQL_DIR, expect=0):
    """Runs the runner; returns its JSON reports, one per date."""
    out = subprocess.run([str(RUNNER), "--lake", str(lake), "--sql", str(sql), "--json", *SMALL_SPARK,
                          *args], capture_output=True, text=True, timeout=900)
    assert out.returncode == expect, f"spark-daily exit {out.returncode}:\n{out.stdout}\n{out.stderr[-4000:]}"
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def table_rows(con, table: pathlib.Path):
    """(columns, rows) of a whole Delta table, columns by name."""
    cur = con.execute(f"SELECT * FROM delta_scan('{table.as_posix()}')")
    cols = [d[0] for d in cur.description]
    return cols, [tuple(r) for r in cur.fetchall()]


def assert_same_processed(con, a: pathlib.Path, b: pathlib.Path):
    for name in QUERIES:
        ta, tb = a / "processed" / name, b / "processed" / name
        sa = deltalake.DeltaTable(str(ta))
        sb = deltalake.DeltaTable(str(tb))
        assert sa.metadata().partition_columns == sb.metadata().partition_columns == ["date"]
        types_a = [(f.name, str(f.type)) for f in sa.schema().fields]
        types_b = [(f.name, str(f.type)) for f in sb.schema().fields]
        assert types_a == types_b, f"{name}: schemas differ"
        cols, rows_a = table_rows(con, ta)
        cols_b, rows_b = table_rows(con, tb)
        rows_b = [tuple(r[cols_b.index(c)] for c in cols) for r in rows_b]
        dates = {r[cols.index("date")] for r in rows_a}
        assert set(DATES) <= dates, f"{name}: {dates}"
        problems = spark_delta.diff(a.name, rows_a, b.name, rows_b)
        assert not problems, f"{name}:\n" + "\n".join(problems[:20])


@pytest.fixture(scope="module")
def spark_lake(lake, tmp_path_factory, lake_bin):
    """The module's raw table copied to a second lake, whose processed.* the Spark runner
    writes for ALL_DATES; the module's lake gets `lake daily` for the same dates."""
    run(lake_bin, "daily", "--lake", str(lake), "--sql", str(spark_delta.SQL_DIR),
        "--from", ALL_DATES[0].isoformat(), "--to", ALL_DATES[-1].isoformat(), "--json", "--no-sensor")
    other = tmp_path_factory.mktemp("spark_runner") / "lake"
    shutil.copytree(lake / "raw", other / "raw")
    reports = spark_daily(other, "--from", ALL_DATES[0].isoformat(), "--to", ALL_DATES[-1].isoformat())
    return other, reports


def test_spark_runner_writes_what_lake_daily_writes(spark_lake, lake, duck):
    other, reports = spark_lake
    assert [r["date"] for r in reports] == [d.isoformat() for d in ALL_DATES]
    for r in reports:
        assert r["status"] == "success", r
        assert {c["check"] for c in r["checks"]} == {p.stem for p in (spark_delta.SQL_DIR / "checks").glob("*.sql")}
        assert all(c["status"] in ("pass", "warn") for c in r["checks"]), r["checks"]
    assert {t["table"] for t in reports[0]["tables"]} == {f"processed.{n}" for n in QUERIES}
    assert not list((other / "_staging").glob("*")), "the runner left staged tables"
    assert_same_processed(duck, lake, other)


def test_spark_and_lake_replace_dates_the_other_wrote(spark_lake, lake, duck, lake_bin):
    other, _ = spark_lake
    before = {n: deltalake.DeltaTable(str(lake / "processed" / n)).version() for n in QUERIES}
    # Spark replaces a date of tables lake wrote; lake replaces a date of tables Spark wrote.
    reports = spark_daily(lake, "--date", DATES[0].isoformat())
    assert reports[0]["status"] == "success", reports
    run(lake_bin, "daily", "--lake", str(other), "--sql", str(spark_delta.SQL_DIR),
        "--date", DATES[1].isoformat(), "--json", "--no-sensor")
    for n in QUERIES:
        assert deltalake.DeltaTable(str(lake / "processed" / n)).version() == before[n] + 1, n
    assert_same_processed(duck, lake, other)  # a re-run replaced, never appended


def test_spark_runner_publishes_nothing_when_a_check_fails(spark_lake, tmp_path):
    other, _ = spark_lake
    sql = tmp_path / "sql"
    shutil.copytree(spark_delta.SQL_DIR, sql)
    (sql / "checks" / "always_fails.sql").write_text(
        "-- severity: error\nSELECT date, total_events FROM processed.daily_metrics WHERE date = $date\n")
    before = {n: deltalake.DeltaTable(str(other / "processed" / n)).version() for n in QUERIES}
    reports = spark_daily(other, "--date", DATES[0].isoformat(), sql=sql, expect=1)
    assert reports[0]["status"] == "failed" and "always_fails" in reports[0]["error"], reports
    failing = [c for c in reports[0]["checks"] if c["check"] == "always_fails"]
    assert failing[0]["status"] == "fail" and failing[0]["sample"][0]["date"] == DATES[0].isoformat()
    for n in QUERIES:
        assert deltalake.DeltaTable(str(other / "processed" / n)).version() == before[n], n
    assert not list((other / "_staging").glob("*")), "the runner left staged tables"
