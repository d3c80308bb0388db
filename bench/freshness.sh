#!/usr/bin/env bash
# Freshness benchmark: how long until an event produced into Kafka is visible in a Flight SQL
# query, under a steady background load. All on this machine:
#   Kafka (scripts/kafka.sh, topic of 3 partitions) ← `lake produce --rate R` (background)
#   `lake ingest` (continuous, default flush every 1 s) → a fresh lake ← `lake serve`
#   bench/freshness/probe.py: one probe event every 100 ms (unique session_id, random partition)
#   and an ADBC poller every 50 ms recording when each probe first shows up.
# Target (the issue): at 10k events/s, produce → visible p99 ≤ 2 s; no probe lost.
# Writes bench/results/freshness-<timestamp>.md (freshness-quick-<timestamp>.md with --quick) and
# prints it. Exits non-zero when a probe was lost or not delivered, a poll failed, or
# produce/ingest/serve/Kafka died during the run.
#
#   bench/freshness.sh [--quick] [--duration S] [--rate R] [--warmup S] [--lake-bin PATH]
#                      [--no-build] [-- extra lake ingest flags...]
#
#   --quick          15 s of probes after 3 s of load (default: 60 s after 5 s)
#   --duration S     seconds of probing
#   --rate R         background events/s (default 10000)
#   --lake-bin PATH  the lake binary to measure (default: $CARGO_TARGET_DIR/release/lake)
#   --no-build       accepted for symmetry with bench/daily.sh: this script never builds
#   -- FLAGS         passed to `lake ingest`, e.g. -- --max-latency-ms 500
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh "$@"

duration="" warmup="" rate=10000 ingest_extra=()
bench_opt() {
    case "$1" in
        --duration) duration=$2; took=2 ;;
        --warmup) warmup=$2; took=2 ;;
        --rate) rate=$2; took=2 ;;
        --) ingest_extra=("${@:2}"); took=$# ;;
        *) return 1 ;;
    esac
}
bench_args "$@"   # --no-build is accepted and changes nothing: this script never builds
bench_default duration 60 15
bench_default warmup 5 3

bench_lake_bin 0 "$lake_bin"   # never builds
bench_warn_stale "$lake_bin"
bench_venv
scripts/kafka.sh install

bench_run_dir freshness
lake="$out/lake" topic=bench_freshness

produce_pid="" ingest_pid="" serve_pid="" probe_pid=""
cleanup() {
    bench_stop "$probe_pid"
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
# One event creates the topic (3 partitions) before ingest subscribes to it.
"$lake_bin" produce --brokers "$brokers" --topic "$topic" --events 1 --json > "$out/create-topic.json" \
    2> "$out/create-topic.err" || die_log "$out/create-topic.err" "could not create the topic"

say "lake ingest (continuous) into $lake"
ingest_args=(--group bench_freshness "${ingest_extra[@]}")
"$lake_bin" ingest --brokers "$brokers" --topic "$topic" --lake "$lake" "${ingest_args[@]}" \
    > "$out/ingest.out" 2> "$out/ingest.err" &
ingest_pid=$!
# Serve once the table exists (the first event's commit), so the catalog has it from the start.
for _ in $(seq 1 240); do
    [ -d "$lake/raw/user_events/_delta_log" ] && break
    kill -0 "$ingest_pid" 2>/dev/null || die_log "$out/ingest.err" "lake ingest exited"
    sleep 0.25
done
[ -d "$lake/raw/user_events/_delta_log" ] || die "lake ingest committed nothing within 60 s (log: $out/ingest.err)"

say "lake serve"
bench_serve "$lake_bin" "$lake" "$out/serve"

say "lake produce --rate $rate (background)"
"$lake_bin" produce --brokers "$brokers" --topic "$topic" --rate "$rate" --json \
    > "$out/produce.json" 2> "$out/produce.err" &
produce_pid=$!

say "probing for ${duration}s after ${warmup}s of load (poll every 50 ms, probe every 100 ms)"
problems=()
# In the background and waited for, so that a SIGTERM to this script acts at once (bash runs
# traps only between foreground commands).
"$py" bench/freshness/probe.py --brokers "$brokers" --topic "$topic" --url "$serve_url" \
    --duration "$duration" --warmup "$warmup" --interval 0.1 --poll 0.05 --out "$out/probe.json" >&2 &
probe_pid=$!
wait "$probe_pid" || problems+=("the probe failed (lost or undelivered probes, or failed polls): see the report")
probe_pid=""

for p in produce:$produce_pid ingest:$ingest_pid serve:$serve_pid kafka:$(cat "$kafka_dir/pid"); do
    kill -0 "${p#*:}" 2>/dev/null || problems+=("${p%%:*} (pid ${p#*:}) died during the run")
done
ingest_rss=$(bench_vmhwm "$ingest_pid")
serve_rss=$(bench_vmhwm "$serve_pid")
bench_stop "$produce_pid" INT; produce_pid=""   # SIGINT: it prints its JSON summary
bench_stop "$serve_pid"; serve_pid=""
bench_stop "$ingest_pid"; ingest_pid=""
cleanup

bench_report freshness
problems_arg=$(IFS='|'; echo "${problems[*]:-}")
"$py" bench/freshness/report.py --results "$out/probe.json" --busy "$out/busy.tsv" \
    --produce "$out/produce.json" --ingest-log "$out/ingest.err" --lake-bin "$lake_bin" \
    --cmdline "$cmdline" --rate "$rate" --ingest-args "${ingest_args[*]}" \
    --ingest-rss "$ingest_rss" --serve-rss "$serve_rss" --problems "$problems_arg" "${quick_flag[@]}" > "$report"
bench_show_report "logs: $out"
if [ "${#problems[@]}" -gt 0 ]; then
    printf 'FAILED: %s\n' "${problems[@]}" >&2
    exit 1
fi
