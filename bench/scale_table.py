"""Builds a raw.user_events Delta table of N x 10M events on one date for the daily job's scale
benchmark, by appending the cached 10M-event table (built by bench/daily.sh through Kafka and
`lake ingest`) N times with deltalake. Kafka offsets repeat between copies; the daily job does
not read them. Usage: python bench/scale_table.py SOURCE_TABLE TARGET_LAKE COPIES"""
import sys

import deltalake

source, target, copies = sys.argv[1], sys.argv[2], int(sys.argv[3])
table = deltalake.DeltaTable(source)
data = table.to_pyarrow_dataset()
dest = f"{target}/raw/user_events"
for i in range(copies):
    # One commit per copy, streamed batch by batch.
    reader = data.scanner(batch_size=1_000_000).to_reader()
    deltalake.write_deltalake(dest, reader, mode="append", partition_by=["event_date"])
    print(f"copy {i + 1}/{copies} appended", flush=True)
print(deltalake.DeltaTable(dest).version())
