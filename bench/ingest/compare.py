"""Checks what bench/ingest.sh's engines wrote: N events each, and the same events.

    compare.py --expect N --lake LAKE_DIR [--spark DELTA_DIR] > compare.json   (exit 1 on a problem)

Read with DuckDB's delta extension (a third reader, neither engine's own). For each table: row
count, NULL contract fields, duplicate (partition, offset) pairs, and counts per event_type,
event_date and Kafka partition. lake's dead-letter table must be empty (the seed events are all
valid). With --spark, the two tables must also hold the same rows: a multiset difference in both
directions over every column but ingested_at (the only one that legitimately differs), so a
timestamp parsed in another time zone or a mangled field shows up, not only a wrong count.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "python"))

from duckdb_delta import connect  # noqa: E402

COLUMNS = ("user_id, event_type, event_time, page_id, session_id, event_date, "
           "kafka_partition, kafka_offset, kafka_timestamp")


def scan(path: pathlib.Path) -> str:
    return f"delta_scan('{path.resolve().as_posix()}')"


def summary(con, path: pathlib.Path) -> dict:
    t = scan(path)
    rows, nulls, dup = con.execute(f"""
        SELECT count(*),
               count(*) FILTER (WHERE user_id IS NULL OR event_type IS NULL OR event_time IS NULL
                                 OR page_id IS NULL OR session_id IS NULL OR event_date IS NULL),
               count(*) - count(DISTINCT (kafka_partition, kafka_offset))
        FROM {t}""").fetchone()

    def by(col: str) -> dict:
        return {str(k): v for k, v in con.execute(
            f"SELECT {col}, count(*) FROM {t} GROUP BY 1 ORDER BY 1").fetchall()}

    partitions = {str(p): {"rows": n, "min_offset": lo, "max_offset": hi} for p, n, lo, hi in con.execute(
        f"SELECT kafka_partition, count(*), min(kafka_offset), max(kafka_offset) FROM {t} GROUP BY 1 ORDER BY 1"
    ).fetchall()}
    return {"rows": rows, "null_fields": nulls, "duplicate_offsets": dup, "by_event_type": by("event_type"),
            "by_event_date": by("event_date"), "by_partition": partitions}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--lake", required=True, help="lake root (raw/user_events inside)")
    p.add_argument("--spark", help="Delta table written by spark_stream.py")
    a = p.parse_args()

    con = connect()
    problems: list[str] = []
    tables = {"lake": pathlib.Path(a.lake) / "raw" / "user_events"}
    if a.spark:
        tables["spark"] = pathlib.Path(a.spark)
    result: dict = {"expected": a.expect, "tables": {}}
    for name, path in tables.items():
        if not (path / "_delta_log").is_dir():
            problems.append(f"{name}: no Delta table at {path}")
            continue
        s = result["tables"][name] = summary(con, path)
        if s["rows"] != a.expect:
            problems.append(f"{name}: {s['rows']:,} rows, expected {a.expect:,}")
        if s["null_fields"]:
            problems.append(f"{name}: {s['null_fields']:,} rows with a NULL contract field")
        if s["duplicate_offsets"]:
            problems.append(f"{name}: {s['duplicate_offsets']:,} duplicate (kafka_partition, kafka_offset) rows")

    dead = pathlib.Path(a.lake) / "raw" / "user_events_dead_letters"
    if (dead / "_delta_log").is_dir():
        result["lake_dead_letters"] = con.execute(f"SELECT count(*) FROM {scan(dead)}").fetchone()[0]
        if result["lake_dead_letters"]:
            problems.append(f"lake: {result['lake_dead_letters']:,} dead letters (seed events are all valid)")

    if len(result["tables"]) == 2:
        lake, spark = result["tables"]["lake"], result["tables"]["spark"]
        for key in ("by_event_type", "by_event_date", "by_partition"):
            if lake[key] != spark[key]:
                problems.append(f"{key} differs: lake {lake[key]} vs spark {spark[key]}")
        only = {}
        for x, y in (("lake", "spark"), ("spark", "lake")):
            only[x] = con.execute(
                f"SELECT count(*) FROM (SELECT {COLUMNS} FROM {scan(tables[x])} "
                f"EXCEPT ALL SELECT {COLUMNS} FROM {scan(tables[y])})").fetchone()[0]
            if only[x]:
                sample = con.execute(
                    f"SELECT {COLUMNS} FROM {scan(tables[x])} EXCEPT ALL "
                    f"SELECT {COLUMNS} FROM {scan(tables[y])} LIMIT 3").fetchall()
                problems.append(f"{only[x]:,} rows only in {x}, e.g. {[tuple(map(str, r)) for r in sample]}")
        result["rows_only_in"] = only
        result["identical_rows"] = not any(only.values())

    result["ok"] = not problems
    result["problems"] = problems
    print(json.dumps(result, indent=1, default=str))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
