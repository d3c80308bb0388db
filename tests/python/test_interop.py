"""Tables written by `lake ingest`, and the files `lake maintain` merges them into, are read by
other engines (deltalake, DuckDB, Polars) and agree with what was produced."""
import json

import deltalake
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
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

    # Small flushes and no background merge: several files per date, merged below.
    out = run(lake_bin, "ingest", "--lake", str(tmp_path), "--brokers", brokers, "--topic", topic,
              "--group", topic, "--until-caught-up", "--max-rows", "4000", "--no-maintain")
    assert "ingested 20000 events, 2 dead letters" in out.stdout

    events_path = str(tmp_path / "raw" / "user_events")
    dead_path = str(tmp_path / "raw" / "user_events_dead_letters")
    assert_readable(events_path, dead_path, summary)
    written = deltalake.DeltaTable(events_path).file_uris()

    # Merged files encode their numbers differently (delta encoding past a small dictionary,
    # uncompressed): every reader must still read them.
    run(lake_bin, "maintain", "--lake", str(tmp_path))
    merged = deltalake.DeltaTable(events_path).file_uris()
    assert len(merged) < len(written), (written, merged)
    encodings = set()
    for uri in set(merged) - set(written):
        meta = pq.ParquetFile(uri).metadata
        for rg in range(meta.num_row_groups):
            encodings.update(column_chunk(meta.row_group(rg), "kafka_offset").encodings)
    assert "DELTA_BINARY_PACKED" in encodings, encodings
    assert_readable(events_path, dead_path, summary)


def column_chunk(row_group, name):
    return next(row_group.column(i) for i in range(row_group.num_columns)
                if row_group.column(i).path_in_schema == name)


def assert_readable(events_path, dead_path, summary):
    """deltalake, DuckDB and Polars each read the produced events and dead letters as produced."""
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
    offsets = t.group_by("kafka_partition").aggregate([("kafka_offset", "sum")])

    # DuckDB through its delta extension
    con = connect()
    assert con.execute(f"SELECT count(*) FROM delta_scan('{events_path}')").fetchone()[0] == 20000
    duck_types = dict(con.execute(
        f"SELECT event_type, count(*) FROM delta_scan('{events_path}') GROUP BY 1").fetchall())
    assert duck_types == summary["by_type"]
    assert con.execute(
        f"SELECT count(DISTINCT (kafka_partition, kafka_offset)) FROM delta_scan('{events_path}')"
    ).fetchone()[0] == 20000
    duck_offsets = con.execute(
        f"SELECT kafka_partition, sum(kafka_offset) "
        f"FROM delta_scan('{events_path}') GROUP BY 1 ORDER BY 1").fetchall()
    assert duck_offsets == sorted(
        zip(offsets.column("kafka_partition").to_pylist(), offsets.column("kafka_offset_sum").to_pylist()))
    assert con.execute(f"SELECT count(*) FROM delta_scan('{dead_path}')").fetchone()[0] == 2

    # Polars
    df = pl.read_delta(events_path)
    assert df.height == 20000
    assert df.select(pl.col("event_date").n_unique()).item() == 2
    assert df.select(pl.col("kafka_offset").sum()).item() == sum(offsets.column("kafka_offset_sum").to_pylist())
    times = pc.min_max(t.column("event_time"))
    assert df.select(pl.col("event_time").min()).item() == times["min"].as_py()
    assert df.select(pl.col("event_time").max()).item() == times["max"].as_py()
