"""A lake on the S3 server scripts/test.sh starts (SeaweedFS, AWS_* variables exported): other
engines read its tables straight from the bucket, ADBC queries it through `lake serve`, and a
repeated point query costs the store one or two requests, not a listing of the log."""
import json
import os
import socket
import time
import uuid

import adbc_driver_flightsql.dbapi as flight_sql
import deltalake
import polars as pl
import pytest

from conftest import run
from flight_serve import DATE, EVENTS, SQL
from test_metrics import scrape, start, total


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
