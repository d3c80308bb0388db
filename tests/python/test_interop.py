"""Tables written by `lake ingest` are read by other engines (deltalake, DuckDB, Polars) and
agree with what was produced."""
import json

import deltalake
import polars as pl
import pyarrow as pa
from confluent_kafka import Producer

from conftest import run
from duckdb_delta import connect

BAD = [b"{not json", b'{"user_id": 1, "event_type": "hover", "timestamp": "2025-01-10T10:00:00", "page_id": 1, "session_id": "s"}']


def test_raw_tables_are_readable_by_deltalake_duckdb_and_polars(tmp_path, lake_bin, brokers, topic):
    summary = json.loads(
        run(lake_bin, "produce", "--brokers", brokers, "--topic", topic, "--events", "20000",
            "--days", "2", "--seed", "9", "--json").stdout
    )
    p = Producer({"bootstrap.servers": brokers})
    for payload in BAD:
        p.produce(topic, payload, partition=0)
    assert p.flush(30) == 0

    out = run(lake_bin, "ingest", "--lake", str(tmp_path), "--brokers", brokers, "--topic", topic,
              "--group", topic, "--until-caught-up")
    assert "ingested 20000 events, 2 dead letters" in out.stdout

    events_path = str(tmp_path / "raw" / "user_events")
    dead_path = str(tmp_path / "raw" / "user_events_dead_letters")

    # deltalake (delta-rs Python)
    dt = deltalake.DeltaTable(events_path)
    proto = dt.protocol()
    assert (proto.min_reader_version, proto.min_writer_version) == (1, 2)
    assert dt.metadata().partition_columns == ["event_date"]
    t = dt.to_pyarrow_table()
    assert t.num_rows == 20000
    assert t.schema.field("event_time").type == pa.timestamp("us", tz="UTC")
    by_type = {k: v for k, v in zip(*t.group_by("event_type").aggregate([("event_type", "count")]).to_pydict().values())}
    assert by_type == summary["by_type"]
    dead = deltalake.DeltaTable(dead_path).to_pyarrow_table()
    assert sorted(dead.column("payload").to_pylist()) == sorted(BAD)

    # DuckDB through its delta extension
    con = connect()
    assert con.execute(f"SELECT count(*) FROM delta_scan('{events_path}')").fetchone()[0] == 20000
    duck_types = dict(con.execute(
        f"SELECT event_type, count(*) FROM delta_scan('{events_path}') GROUP BY 1").fetchall())
    assert duck_types == summary["by_type"]
    assert con.execute(
        f"SELECT count(DISTINCT (kafka_partition, kafka_offset)) FROM delta_scan('{events_path}')"
    ).fetchone()[0] == 20000
    assert con.execute(f"SELECT count(*) FROM delta_scan('{dead_path}')").fetchone()[0] == 2

    # Polars
    df = pl.read_delta(events_path)
    assert df.height == 20000
    assert df.select(pl.col("event_date").n_unique()).item() == 2
