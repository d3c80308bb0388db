#!/usr/bin/env bash
# Ingest benchmark: N seed events (default 10,000,000) pre-produced into a real Kafka topic with
# 3 partitions on this machine, then `lake ingest --until-caught-up` into a fresh lake, timed,
# with peak RSS and CPU time from /usr/bin/time. Prints one Markdown table row.
#
#   bench/ingest.sh [N] [extra lake ingest flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000000}
shift || true
export LAKE_CACHE=${LAKE_CACHE:-$HOME/.cache/lake}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$LAKE_CACHE/target}
cargo build --release --quiet --bin lake
lake="$CARGO_TARGET_DIR/release/lake"

work=$(mktemp -d "${TMPDIR:-/tmp}/lake-bench.XXXXXX")
trap 'scripts/kafka.sh stop "$work/kafka"; rm -rf "$work"' EXIT
brokers=$(scripts/kafka.sh start "$work/kafka")
topic=bench_events

"$lake" produce --brokers "$brokers" --topic "$topic" --events "$n" --days 1 --json \
    > "$work/produce.json"
echo "produced: $(cat "$work/produce.json")" >&2

/usr/bin/time -v "$lake" ingest --brokers "$brokers" --topic "$topic" --group bench \
    --lake "$work/lake" --until-caught-up "$@" > "$work/ingest.out" 2> "$work/ingest.err" \
    || { tail -20 "$work/ingest.err" >&2; exit 1; }
cat "$work/ingest.out" >&2

wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$work/ingest.err")
user=$(sed -n 's/.*User time (seconds): //p' "$work/ingest.err")
sys=$(sed -n 's/.*System time (seconds): //p' "$work/ingest.err")
rss_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/ingest.err")
python3 - "$n" "$wall" "$user" "$sys" "$rss_kb" <<'PY'
import sys
n, wall, user, sys_, rss = sys.argv[1:]
parts = [float(p) for p in wall.split(":")]
secs = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
print(f"| {int(n):,} events | {secs:.1f} s | {int(n)/secs:,.0f} events/s | "
      f"{float(user)+float(sys_):.1f} s CPU | {int(rss)/1024:.0f} MiB peak RSS |")
PY
