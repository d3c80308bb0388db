#!/usr/bin/env bash
# Soak benchmark (issue 15): does the lake stay fast under continuous ingest? All on this machine:
#   Kafka (scripts/kafka.sh, 3 partitions) ← `lake produce --rate R` (one date, background)
#   `lake ingest --max-latency-ms 100` (a commit every 100 ms) → a fresh lake ← `lake serve`
#   bench/soak/sample.py: every --interval s, Flight SQL point-query p50/p99, a full count, the
#   daily job's time, live data files, log size, ingest RSS/CPU/commit rate/commit latency, and
#   freshness (a probe per second); at the end, exactly once.
# Once with the default background maintenance ("on") and once with `--no-maintain` ("off", the
# baseline), one after the other, each on its own topic and lake. Targets (mode on): point p50 at
# the end ≤ 1.5× minute 1; live files ≤ 200 at every sample; ingest RSS at the end ≤ 1.2× minute
# 2; commit rate at the end ≥ 90% of minute 1; freshness p99 ≤ 2 s throughout; exactly once.
# Writes bench/results/soak-<timestamp>.md (soak-quick-… with --quick) and a PNG beside it.
#
#   bench/soak.sh [--quick] [--duration S] [--interval S] [--rate R] [--modes on,off]
#                 [--lake-bin PATH] [--no-build]
#
#   --quick          mode on only, 60 s, a sample every 15 s (the CI smoke test)
#   --duration S     seconds of load per mode (default 1800)
#   --interval S     seconds between samples (default 30)
#   --rate R         events/s (default 5000)
#   --modes LIST     on, off or on,off (default on,off)
#   --lake-bin PATH  the lake binary to measure (default: $CARGO_TARGET_DIR/release/lake)
#   --no-build       accepted for symmetry: this script never builds
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh "$@"

duration="" interval="" modes="" rate=5000
bench_opt() {
    case "$1" in
        --duration) duration=$2; took=2 ;;
        --interval) interval=$2; took=2 ;;
        --rate) rate=$2; took=2 ;;
        --modes) modes=$2; took=2 ;;
        *) return 1 ;;
    esac
}
bench_args "$@"
bench_default duration 1800 60
bench_default interval 30 15
bench_default modes on,off on
bench_counts --positive "$duration" "$interval" "$rate"

bench_lake_bin 0 "$lake_bin"
bench_warn_stale "$lake_bin"
bench_lake_has ingest --no-maintain
bench_venv
scripts/kafka.sh install

bench_run_dir soak
date=$bench_date
produce_pid="" ingest_pid="" serve_pid="" sample_pid=""
cleanup() {
    bench_stop "$sample_pid"
    bench_stop "$produce_pid" INT
    bench_stop "$serve_pid"
    bench_stop "$ingest_pid"
    bench_kafka_stop
    bench_sampler_stop
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_sampler_start "$out/busy.tsv"
bench_kafka_start "$out/kafka"
problems=() series=()
IFS=, read -r -a mode_list <<< "$modes"
for mode in "${mode_list[@]}"; do
    case "$mode" in on) flags=() ;; off) flags=(--no-maintain) ;; *) die "unknown mode $mode (on, off)" ;; esac
    dir="$out/$mode" topic="bench_soak_$mode"
    mkdir -p "$dir"
    lake="$dir/lake"
    "$lake_bin" produce --brokers "$brokers" --topic "$topic" --events 1 --start-date "$date" --json \
        > "$dir/create-topic.json" 2> "$dir/create-topic.err" || die_log "$dir/create-topic.err" "no topic"

    say "mode $mode: lake ingest --max-latency-ms 100 ${flags[*]}"
    LAKE_LOG="warn,lake=info,lake::ingest::committer=debug" "$lake_bin" ingest --brokers "$brokers" \
        --topic "$topic" --group "$topic" --lake "$lake" --max-latency-ms 100 "${flags[@]}" \
        > "$dir/ingest.out" 2> "$dir/ingest.err" &
    ingest_pid=$!
    for _ in $(seq 1 240); do
        [ -d "$lake/raw/user_events/_delta_log" ] && break
        kill -0 "$ingest_pid" 2>/dev/null || die_log "$dir/ingest.err" "lake ingest exited"
        sleep 0.25
    done
    bench_serve "$lake_bin" "$lake" "$dir/serve"
    bench_sql_dir "$dir/sql"

    say "mode $mode: lake produce --rate $rate for ${duration}s, a sample every ${interval}s"
    "$lake_bin" produce --brokers "$brokers" --topic "$topic" --rate "$rate" --start-date "$date" \
        --days 1 --seed 7 --json > "$dir/produce.json" 2> "$dir/produce.err" &
    produce_pid=$!
    "$py" bench/soak/sample.py --url "$serve_url" --brokers "$brokers" --topic "$topic" \
        --lake "$lake" --lake-bin "$lake_bin" --sql "$dir/sql" --date "$date" \
        --ingest-pid "$ingest_pid" --ingest-log "$dir/ingest.err" --duration "$duration" \
        --interval "$interval" --out "$dir/samples.jsonl" --stop-file "$dir/stop" \
        --final "$dir/produce.json" --created "$dir/create-topic.json" &
    sample_pid=$!
    while [ ! -f "$dir/stop" ]; do
        kill -0 "$sample_pid" 2>/dev/null || break
        sleep 1
    done
    for p in produce:$produce_pid ingest:$ingest_pid serve:$serve_pid; do
        kill -0 "${p#*:}" 2>/dev/null || problems+=("$mode: ${p%%:*} died during the run")
    done
    bench_stop "$produce_pid" INT; produce_pid=""   # SIGINT: it prints its JSON summary
    wait "$sample_pid" || problems+=("$mode: the sampler failed (queries, probes or exactly once): see $dir/samples.jsonl")
    sample_pid=""
    bench_stop "$serve_pid"; serve_pid=""
    bench_stop "$ingest_pid"; ingest_pid=""
    series+=(--series "$mode=$dir/samples.jsonl")
done
cleanup

bench_report soak
problems_arg=$(IFS='|'; echo "${problems[*]:-}")
"$py" bench/soak/report.py "${series[@]}" --busy "$out/busy.tsv" --lake-bin "$lake_bin" \
    --cmdline "$cmdline" --rate "$rate" --png "${report%.md}.png" --problems "$problems_arg" \
    "${quick_flag[@]}" > "$report"
bench_show_report "logs: $out"
if [ "${#problems[@]}" -gt 0 ]; then
    printf 'FAILED: %s\n' "${problems[@]}" >&2
    exit 1
fi
