"""The shipped sql/daily/*.sql give the same rows on Spark SQL, on DuckDB and in `lake daily`.

One lake is built per module: 20,000 seed events over 2 dates produced into the test broker and
ingested with `lake ingest --until-caught-up`; `lake daily` then runs both dates. Spark (PySpark,
local[2], delta-spark; one JVM per pytest session) and DuckDB (delta extension) each read the same
raw Delta table as raw.user_events and run the SQL files' text; their rows must equal what
`lake daily` wrote to processed.<name>: integers, strings and dates exactly, doubles within a
relative 1e-12.

Spark gets the file text with `$date` rewritten to `:date` (Spark's named-parameter syntax) and the
date bound through spark.sql(args=...); see spark_delta.to_spark_sql. DuckDB takes `$date` as is.

Delta jars: $LAKE_SPARK_JARS, else `scripts/spark.sh install` (Maven Central, cached).
"""
import datetime
import uuid

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
    run(lake_bin, "ingest", "--lake", str(root), "--brokers", brokers, "--topic", topic,
        "--group", topic, "--until-caught-up")
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
