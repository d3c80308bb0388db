"""/metrics, /healthz and /readyz of the long-running commands, read as Prometheus would: the
exposition is parsed with the Prometheus project's own OpenMetrics parser, and the values are
compared with the lake (real Kafka, real Flight SQL client)."""
from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

import flight_serve
from conftest import run

SQL = pathlib.Path(__file__).resolve().parents[2] / "sql"
DATE = "2025-01-10"


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def scrape(base: str) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics as {(name, sorted labels): value}, parsed strictly."""
    status, content_type, text = get(base + "/metrics")
    assert status == 200, text
    assert content_type.startswith("application/openmetrics-text"), content_type
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def total(samples, name: str, **labels) -> float:
    return sum(v for (n, ls), v in samples.items()
               if n == name and all(dict(ls).get(k) == str(w) for k, w in labels.items()))


def series(samples, name: str) -> dict[tuple, float]:
    return {ls: v for (n, ls), v in samples.items() if n == name}


def start(args: list[str], log: pathlib.Path, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """Starts a command with --metrics-addr 127.0.0.1:0; returns it and its endpoint's base URL,
    read from its log."""
    with open(log, "wb") as err:
        p = subprocess.Popen([*args, "--metrics-addr", "127.0.0.1:0"], stdout=subprocess.DEVNULL,
                             stderr=err, env={**os.environ, **(env or {})})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = re.search(r"http://(127\.0\.0\.1:\d+)/metrics", log.read_text(errors="replace"))
        if m:
            return p, f"http://{m.group(1)}"
        assert p.poll() is None, f"{args[1]} exited: {log.read_text(errors='replace')[-2000:]}"
        time.sleep(0.2)
    p.kill()
    raise AssertionError(f"no metrics address in the log: {log.read_text(errors='replace')[-2000:]}")


def wait_for(check, what: str, timeout: float = 90):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def stop(p: subprocess.Popen):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def table_rows(path: pathlib.Path) -> int:
    import deltalake
    return deltalake.DeltaTable(str(path)).to_pyarrow_table().num_rows


def test_ingest_metrics_equal_the_lake(tmp_path, lake_bin, brokers, topic):
    from confluent_kafka import Producer
    run(lake_bin, "produce", "--brokers", brokers, "--topic", topic, "--events", "2000",
        "--days", "1", "--start-date", DATE, "--seed", "5", "--json")
    producer = Producer({"bootstrap.servers": brokers})
    producer.produce(topic, value=b"\xff not json", partition=1)
    assert producer.flush(30) == 0
    lake = tmp_path / "lake"
    ingest, base = start([lake_bin, "ingest", "--lake", str(lake), "--brokers", brokers,
                          "--topic", topic, "--group", topic, "--max-latency-ms", "200"],
                         tmp_path / "ingest.log")
    try:
        assert get(base + "/healthz")[0] == 200

        def settled():
            s = scrape(base)
            done = (total(s, "lake_ingest_rows_committed_total") == 2000
                    and total(s, "lake_ingest_dead_letters_total") == 1
                    and series(s, "lake_ingest_consumer_lag_messages")
                    and all(v == 0 for v in series(s, "lake_ingest_consumer_lag_messages").values()))
            return s if done else None

        s = wait_for(settled, "2,000 rows, 1 dead letter and no lag in /metrics")
        assert table_rows(lake / "raw" / "user_events") == 2000
        assert table_rows(lake / "raw" / "user_events_dead_letters") == 1
        assert total(s, "lake_ingest_messages_consumed_total", topic=topic) == 2001
        assert total(s, "lake_ingest_dead_letters_total", topic=topic, partition=1) == 1
        lag = series(s, "lake_ingest_consumer_lag_messages")
        assert {dict(ls)["partition"] for ls in lag} == {"0", "1", "2"}
        assert total(s, "lake_ingest_assigned_partitions") == 3
        assert total(s, "lake_ingest_commit_duration_seconds_count",
                     table="raw.user_events") >= 1
        assert total(s, "lake_ingest_freshness_seconds") > 0, "seed events are from 2025"
        status, _, body = get(base + "/readyz")
        assert (status, body) == (200, "ready\n")
        assert get(base + "/nope")[0] == 404
    finally:
        stop(ingest)
    assert ingest.returncode == 0, (tmp_path / "ingest.log").read_text()[-2000:]


def test_serve_metrics_count_calls_by_method_and_status(flight_lake, lake_bin, tmp_path):
    import adbc_driver_flightsql.dbapi as flight_sql
    import adbc_driver_manager
    server = flight_serve.start_server(lake_bin, flight_lake, flight_serve.USER,
                                       flight_serve.PASSWORD, "--metrics-addr", "127.0.0.1:0")
    try:
        m = re.search(r"http://(127\.0\.0\.1:\d+)/metrics", server.log.read_text())
        assert m, server.log.read_text()
        base = f"http://{m.group(1)}"
        before = scrape(base)
        with flight_sql.connect(server.uri, db_kwargs={"username": server.user,
                                                       "password": server.password}) as conn:
            cur = conn.cursor()
            cur.execute("SELECT count(*) FROM raw.user_events")
            assert cur.fetchone()[0] == flight_serve.EVENTS
            with pytest.raises(adbc_driver_manager.Error):
                cur.execute("CREATE TABLE t AS SELECT 1")
            cur.close()
        s = scrape(base)
        assert total(s, "lake_flight_requests_total", method="GetFlightInfo", code="Ok") >= 1
        assert total(s, "lake_flight_requests_total", method="DoGet", code="Ok") >= 1
        refused = total(s, "lake_flight_requests_total", code="InvalidArgument")
        assert refused >= 1 + total(before, "lake_flight_requests_total", code="InvalidArgument")
        assert total(s, "lake_flight_queries_refused_total", reason="read_only") >= 1
        assert total(s, "lake_flight_rows_sent_total") >= 1
        assert total(s, "lake_flight_sent_bytes_total") > 0
        assert total(s, "lake_flight_request_duration_seconds_count", method="DoGet") >= 1
        assert total(s, "lake_flight_active_queries") == 0
        assert get(base + "/readyz")[0] == 200
    finally:
        server.stop()


def test_schedule_metrics_count_runs_and_check_violations(tmp_path, lake_bin, brokers, topic):
    run(lake_bin, "produce", "--brokers", brokers, "--topic", topic, "--events", "500",
        "--days", "1", "--start-date", DATE, "--seed", "6", "--json")
    lake = tmp_path / "lake"
    run(lake_bin, "ingest", "--lake", str(lake), "--brokers", brokers, "--topic", topic,
        "--group", topic, "--until-caught-up")
    sql = tmp_path / "sql"
    shutil.copytree(SQL, sql)
    (sql / "checks" / "always_fails.sql").write_text(
        "-- severity: error\n-- description: fails on purpose\nSELECT 1 AS x UNION ALL SELECT 2\n")
    log = tmp_path / "schedule.log"
    schedule, base = start([lake_bin, "schedule", "--lake", str(lake), "--sql", str(sql),
                            "--no-sensor", "--since", DATE, "--today", "2025-01-11",
                            "--topic", topic], log, env={"LAKE_LOG_FORMAT": "json"})
    try:
        s = wait_for(lambda: (lambda s: s if total(s, "lake_daily_runs_total", status="failed") >= 1
                              else None)(scrape(base)), "a failed run in /metrics")
        assert total(s, "lake_daily_check_violations_total", check="always_fails",
                     severity="error") >= 2
        assert total(s, "lake_daily_run_duration_seconds_count") >= 1
        assert total(s, "lake_daily_runs_total", status="succeeded") == 0
        assert total(s, "lake_schedule_last_tick_timestamp_seconds") > 0
        # The run history's table gauges come from the run that wrote it.
        assert total(s, "lake_table_live_files", table="system.daily_runs") >= 1
        assert ("table", "system.check_results") in {
            label for labels in series(s, "lake_table_version") for label in labels}
        assert get(base + "/readyz")[0] == 200
    finally:
        stop(schedule)
    # LAKE_LOG_FORMAT=json: every log record is one JSON object with a level and fields (the
    # one other stderr line is the command's banner).
    text = log.read_text().splitlines()
    others = [line for line in text if not line.startswith("{")]
    assert len(others) == 1 and others[0].startswith("lake schedule:"), others
    lines = [json.loads(line) for line in text if line.startswith("{")]
    assert lines and all("level" in e and "fields" in e for e in lines), lines[:3]
    assert any(e["level"] == "WARN" and "always_fails" in json.dumps(e) for e in lines), lines
