"""A lake on the S3 server scripts/test.sh starts (SeaweedFS, AWS_* variables exported): other
engines read its tables straight from the bucket, ADBC queries it through `lake serve`, and a
repeated point query costs the store one or two requests, not a listing of the log."""
import datetime
import json
import os
import socket
import subprocess
import time
import uuid

import adbc_driver_flightsql.dbapi as flight_sql
import deltalake
import polars as pl
import pytest

import flight_serve
import spark_delta
from conftest import run
from duckdb_delta import connect as duckdb_connect
from flight_serve import DATE, EVENTS, OTHER_DATE, SQL
from test_flight_jdbc import Output
from test_metrics import scrape, start, total
from test_spark_crosscheck import spark_daily


@pytest.fixture(scope="module")
def s3():
    assert os.environ.get("AWS_ENDPOINT_URL"), "scripts/test.sh starts the S3 server and exports AWS_*"
    return {
        "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
        "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
        "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
        "AWS_ALLOW_HTTP": "true",
    }


@pytest.fixture(scope="module")
def s3_lake(lake_bin, brokers, s3):
    """3,000 events over two days ingested into s3://lake/<prefix>, and the daily job for DATE."""
    lake = f"s3://lake/py_{uuid.uuid4().hex}"
    topic = f"py_s3_{uuid.uuid4().hex}"
    run(lake_bin, "produce", "--brokers", brokers, "--topic", topic, "--events", str(EVENTS),
        "--days", "2", "--start-date", DATE.isoformat(), "--seed", "11", "--json")
    run(lake_bin, "ingest", "--lake", lake, "--brokers", brokers, "--topic", topic,
        "--group", topic, "--until-caught-up")
    run(lake_bin, "daily", "--lake", lake, "--sql", str(SQL), "--date", DATE.isoformat(),
        "--no-sensor", "--json")
    return lake


def test_deltalake_and_polars_read_the_tables_from_the_bucket(s3_lake, s3):
    events = deltalake.DeltaTable(f"{s3_lake}/raw/user_events", storage_options=s3)
    assert events.to_pyarrow_table().num_rows == EVENTS
    assert events.metadata().partition_columns == ["event_date"]
    daily = pl.read_delta(f"{s3_lake}/processed/daily_metrics", storage_options=s3)
    assert daily.height == 1
    assert daily.select("date").item() == DATE
    on_date = pl.read_delta(f"{s3_lake}/raw/user_events", storage_options=s3).filter(
        pl.col("event_date") == DATE).height
    assert daily.select("total_events").item() == on_date


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_adbc_point_queries_on_s3_cost_a_few_requests_each(s3_lake, lake_bin, tmp_path):
    port = free_port()
    server, metrics = start([lake_bin, "serve", "--lake", s3_lake, "--addr", f"127.0.0.1:{port}"],
                            tmp_path / "serve.log")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = flight_sql.connect(f"grpc://127.0.0.1:{port}")
                break
            except Exception:
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-2000:]
                time.sleep(0.2)
        cur = conn.cursor()
        cur.execute("SELECT count(*) FROM raw.user_events")
        assert cur.fetchone()[0] == EVENTS
        point = "SELECT total_events FROM processed.daily_metrics WHERE date = ?"
        cur.execute(point, parameters=(DATE,))
        first = cur.fetchone()[0]
        assert first > 0
        # Warm: the plan is kept; then count what 20 more cost the store.
        before = total(scrape(metrics), "lake_object_store_requests_total")
        queries = 20
        for _ in range(queries):
            cur.execute(point, parameters=(DATE,))
            assert cur.fetchone()[0] == first
        after = total(scrape(metrics), "lake_object_store_requests_total")
        per_query = (after - before) / queries
        by_op = {op: total(scrape(metrics), "lake_object_store_requests_total", op=op)
                 for op in ("head", "get", "list")}
        print(json.dumps({"requests_per_point_query": per_query, "totals": by_op}))
        # The data read, and at most one HEAD ("is the snapshot still the latest", asked at most
        # every 0.2 s); no listing per query.
        assert 1 <= per_query <= 3, (per_query, by_op)
        conn.close()
    finally:
        server.kill()
        server.wait()


def test_duckdb_reads_the_tables_from_the_bucket(s3_lake, s3):
    con = duckdb_connect(s3=s3)
    by_date = con.execute(
        f"SELECT event_date, count(*) FROM delta_scan('{s3_lake}/raw/user_events') GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert sum(n for _, n in by_date) == EVENTS and by_date[0][0] == DATE
    [(total_events,)] = con.execute(
        f"SELECT total_events FROM delta_scan('{s3_lake}/processed/daily_metrics') WHERE date = $date",
        {"date": DATE}).fetchall()
    assert total_events == by_date[0][1]


def test_jdbc_queries_an_s3_lake_through_lake_serve(s3_lake, s3, lake_bin, tmp_path):
    server = flight_serve.start_server(lake_bin, s3_lake, log=tmp_path / "serve.log")
    try:
        proc = subprocess.run(
            [str(spark_delta.ROOT / "scripts" / "jdbc-check.sh"), server.host, str(server.port),
             server.user, server.password, DATE.isoformat(), OTHER_DATE.isoformat()],
            capture_output=True, text=True, timeout=600)
    finally:
        server.stop()
    jdbc = Output(proc)
    assert ["done"] in jdbc.lines, f"exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    jdbc.no_error("getTables", "executeQuery", "prepareStatement_qmark", "setDate_qmark", "connection")
    tables = {tuple(r) for r in jdbc.rows("table")}
    assert {("lake", "raw", "user_events", "TABLE"), ("lake", "processed", "daily_metrics", "TABLE")} <= tables
    events = deltalake.DeltaTable(f"{s3_lake}/raw/user_events", storage_options=s3).to_pyarrow_table()
    expected = sorted((t, events.column("event_type").to_pylist().count(t))
                      for t in set(events.column("event_type").to_pylist()))
    assert [(t, int(n)) for t, n in jdbc.rows("count")] == expected
    total_events = deltalake.DeltaTable(f"{s3_lake}/processed/daily_metrics", storage_options=s3) \
        .to_pyarrow_table().column("total_events")[0].as_py()
    prepared = [r[1:] for r in jdbc.rows("prepared") if r[0] == "qmark"]
    assert prepared == [["setDate", DATE.isoformat(), str(total_events)],
                        ["setObject", DATE.isoformat(), str(total_events)]]


def test_spark_runner_replaces_and_adds_dates_in_the_bucket(s3_lake, s3):
    """scripts/spark-daily.sh on the s3:// lake (hadoop-aws): it replaces the date `lake daily`
    wrote, with equal rows, and adds the next date."""
    table = f"{s3_lake}/processed/daily_metrics"
    before = deltalake.DeltaTable(table, storage_options=s3)
    lake_rows = [tuple(r.values()) for r in before.to_pyarrow_table().to_pylist()]
    nxt = DATE + datetime.timedelta(days=1)
    reports = spark_daily(s3_lake, "--from", DATE.isoformat(), "--to", nxt.isoformat())
    assert [r["status"] for r in reports] == ["success", "success"], reports
    after = deltalake.DeltaTable(table, storage_options=s3)
    assert after.version() == before.version() + 2  # one replace, one append
    rows = after.to_pyarrow_table().to_pylist()
    spark_rows = [tuple(r.values()) for r in rows if r["date"] == DATE]
    problems = spark_delta.diff("lake", lake_rows, "spark", spark_rows)
    assert not problems, problems
    on_next = pl.read_delta(f"{s3_lake}/raw/user_events", storage_options=s3).filter(
        pl.col("event_date") == nxt).height
    assert [r["total_events"] for r in rows if r["date"] == nxt] == [on_next]
