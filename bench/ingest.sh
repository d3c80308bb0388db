#!/usr/bin/env bash
# Ingest benchmark (issue 7): N seed events (one date, 3 partitions) pre-produced into a real Kafka
# topic on a local broker, then consumed into Delta, side by side on the same broker and topic, by
#   - `lake ingest --until-caught-up` (release binary; fresh lake and fresh consumer group each run)
#   - the consumer floor: examples/consume_floor.rs reads the topic with librdkafka and lake's
#     fetch settings and does nothing else (no decode, no write): what any librdkafka consumer
#     pays here before doing any work;
#   - PySpark local[2] Structured Streaming: Kafka source, from_json, Delta sink partitioned by
#     event_date, trigger(availableNow) (bench/ingest/spark_stream.py; fresh checkpoint and table
#     each run; each run a fresh process, so its wall includes JVM + session startup; the stream
#     time without it is reported too).
# Reports wall time, events/s, peak RSS and CPU time per engine, and the ratios against the targets
# (lake >= 300k events/s, peak RSS < 256 MiB, >= 10x Spark's throughput). Both outputs are checked
# to hold the N events, identical row for row (bench/ingest/compare.py, via DuckDB). Writes
# bench/results/ingest-<timestamp>.md (ingest-quick-<timestamp>.md with --quick) and prints it.
# Exits non-zero when a run fails or the outputs are wrong or differ.
#
#   bench/ingest.sh [--quick] [--events N] [--runs N] [--spark-runs N] [--no-spark]
#                   [--no-build] [--lake-bin PATH] [N] [-- LAKE_INGEST_FLAGS...]
#
#   --quick            200,000 events, 1 lake run, 1 Spark run (the CI smoke test; its figures
#                      mean little)
#   --events N, N      number of events (default 10,000,000)
#   --runs N           `lake ingest` runs (default 3)
#   --spark-runs N     Spark runs (default 2)
#   --no-spark         lake only (what `bench/ingest.sh N` did before Spark was added)
#   --no-build         do not run `cargo build --release`; use $CARGO_TARGET_DIR/release/lake
#   --lake-bin PATH    the lake binary to time (implies --no-build)
#   -- FLAGS...        passed to every `lake ingest` run (e.g. -- --max-rows 50000)
#
# Env: BENCH_SPARK_DRIVER_MEMORY (default 2g). Run outputs and logs: $LAKE_CACHE/bench/ingest-runs/
# (only the latest run is kept: the tables are as large as the input).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh "$@"

events="" runs="" spark_runs="" spark=1 lake_extra=()
bench_hint="flags for lake ingest go after --"
bench_opt() {
    case "$1" in
        --events) events=$2; took=2 ;;
        --runs) runs=$2; took=2 ;;
        --spark-runs) spark_runs=$2; took=2 ;;
        --no-spark) spark=0 ;;
        --) lake_extra=("${@:2}"); took=$# ;;
        [0-9]*) events=$1 ;;   # the old `bench/ingest.sh N`
        *) return 1 ;;
    esac
}
bench_args "$@"
bench_default events 10000000 200000
bench_default runs 3 1
bench_default spark_runs 2 1
bench_counts "$events" "$runs" "$spark_runs"
if [ "$events" -eq 0 ] || [ "$runs" -eq 0 ]; then echo "--events and --runs must be > 0" >&2; exit 2; fi
[ "$spark_runs" -gt 0 ] || spark=0


# --- binaries, venv, jars, broker -------------------------------------------------------------
lake_bin_given=$lake_bin
bench_lake_bin "$build" "$lake_bin"
# The consumer floor (examples/consume_floor.rs): librdkafka reading the topic and nothing else,
# built with the same profile as the lake binary it stands beside.
bin_dir=$(dirname "$lake_bin")
floor_bin="$bin_dir/examples/consume_floor"
profile=()
case "$bin_dir" in
    "$(readlink -f "$CARGO_TARGET_DIR")/release") profile=(--release) ;;
    "$(readlink -f "$CARGO_TARGET_DIR")/debug") ;;
    *) [ -x "$floor_bin" ] || { say "no $floor_bin: the consumer floor is not measured"; floor_bin=""; } ;;
esac
if [ -n "$floor_bin" ] && { [ ! -x "$floor_bin" ] || { [ "$build" = 1 ] && [ -z "$lake_bin_given" ]; }; }; then
    say "cargo build${profile[*]:+ ${profile[*]}} --example consume_floor"
    cargo build "${profile[@]}" --quiet --example consume_floor
fi
bench_lake_has ingest --until-caught-up
bench_venv   # DuckDB checks the outputs even without Spark
if [ "$spark" = 1 ]; then
    bench_spark_jars
    ls "$LAKE_SPARK_JARS"/spark-sql-kafka-*.jar > /dev/null 2>&1 \
        || { echo "no spark-sql-kafka jar in $LAKE_SPARK_JARS (scripts/spark/pom.xml)" >&2; exit 1; }
fi
scripts/kafka.sh install

bench_run_dir ingest   # the tables are as large as the input: only the latest run is kept
mkdir -p "$out/time" "$out/logs"
: > "$out/times.tsv"

cleanup() {
    bench_sampler_stop
    bench_kafka_stop
    rm -rf "$out/kafka/logs"   # the topic's data; the broker's own log (server.log) stays
}
trap cleanup EXIT
bench_kafka_start "$out/kafka"
topic=bench_events

# --- input ------------------------------------------------------------------------------------
say "producing $events events into $topic ($brokers)"
"$lake_bin" produce --brokers "$brokers" --topic "$topic" --events "$events" --days 1 \
    --start-date "$bench_date" --seed "$bench_seed" --json > "$out/produce.json" 2> "$out/logs/produce.err" \
    || { echo "lake produce failed:" >&2; tail -20 "$out/logs/produce.err" >&2; exit 1; }
"$py" - "$out/produce.json" "$events" <<'PY' || exit 1
import json, sys
p = json.load(open(sys.argv[1]))
if p.get("delivered") != int(sys.argv[2]) or p.get("failed"):
    sys.exit(f"lake produce delivered {p.get('delivered')} of {sys.argv[2]} events ({p.get('failed')} failed)")
PY

# --- runs -------------------------------------------------------------------------------------
bench_sampler_start "$out/busy.tsv"
bench_top "$out/ps-start.txt"

for i in $(seq 1 "$runs"); do
    [ -n "$floor_bin" ] || break
    say "consumer floor run $i/$runs"
    bench_timed floor "$i" "$floor_bin" "$brokers" "$topic"
done
for i in $(seq 1 "$runs"); do
    say "lake ingest run $i/$runs"
    rm -rf "$out/lake"   # fresh lake; the group is fresh too, so both start from offset 0
    bench_timed lake "$i" "$lake_bin" ingest --brokers "$brokers" --topic "$topic" --group "bench-$ts-$i" \
        --lake "$out/lake" --until-caught-up "${lake_extra[@]}"
    # Fail at once on a short run instead of timing the rest.
    summary=$(tail -1 "$out/logs/lake.$i.out")
    case "$summary" in
        "ingested $events events, 0 dead letters"*) ;;
        *) echo "lake run $i: expected 'ingested $events events, 0 dead letters ...', got: $summary" >&2; exit 1 ;;
    esac
done
for i in $(seq 1 "$spark_runs"); do
    [ "$spark" = 1 ] || break
    say "spark run $i/$spark_runs"
    rm -rf "$out/spark"
    bench_timed spark "$i" "$py" bench/ingest/spark_stream.py --brokers "$brokers" --topic "$topic" \
        --out "$out/spark/table" --checkpoint "$out/spark/checkpoint" --timings "$out/spark.$i.json" \
        --expect "$events" --cores 2 --driver-memory "${BENCH_SPARK_DRIVER_MEMORY:-2g}"
done
bench_top "$out/ps-end.txt"
cleanup
trap - EXIT

# --- checks and report ------------------------------------------------------------------------
say "checking the outputs"
spark_arg=()
if [ "$spark" = 1 ]; then spark_arg=(--spark "$out/spark/table"); fi
set +e
"$py" bench/ingest/compare.py --expect "$events" --lake "$out/lake" "${spark_arg[@]}" > "$out/compare.json" \
    2> "$out/logs/compare.err"
ok=$?
set -e
[ -s "$out/compare.json" ] || { echo "compare.py failed:" >&2; tail -20 "$out/logs/compare.err" >&2; exit 1; }

bench_report ingest
"$py" bench/ingest/report.py --out "$out" --events "$events" --topic "$topic" --lake-bin "$lake_bin" \
    --cmdline "$cmdline" --runs "$runs" --spark-runs "$([ "$spark" = 1 ] && echo "$spark_runs" || echo 0)" \
    --kafka-version "$kafka_version" --lake-args "${lake_extra[*]:-}" \
    --mode "$mode" > "$report"
bench_show_report "outputs and logs: $out"
if [ "$ok" != 0 ]; then
    echo "OUTPUTS WRONG OR DIFFERENT: see $out/compare.json" >&2
    "$py" -c 'import json,sys; [print("  " + p, file=sys.stderr) for p in json.load(open(sys.argv[1]))["problems"]]' \
        "$out/compare.json"
    exit 1
fi
