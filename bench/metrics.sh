#!/usr/bin/env bash
# The cost of the metrics (issue 17): ingest throughput and CPU per event, and Flight SQL
# point-query latency, with metrics off and on. "off" is a release build of the last commit
# before the metrics existed (OFF_COMMIT below, built once into $LAKE_CACHE/bench/); "on" is this
# build with --metrics-addr, its /metrics read every second (Prometheus' default is every 15 s).
# The two alternate round by round on the same machine, so drift hits both.
#   - ingest: EVENTS seed events in a real Kafka topic (3 partitions), then per round and build
#     `lake ingest --until-caught-up --no-maintain` into a new lake: wall, events/s, CPU µs/event
#     (user + sys of the whole process, /usr/bin/time);
#   - point query: `lake serve` over one of those lakes after `lake daily`; QUERIES prepared ADBC
#     queries for one date of processed.daily_metrics per round and build: p50 / p99.
# Target: the two differ by under 3%.
#
#   bench/metrics.sh [--quick] [--events N] [--rounds R] [--queries Q] [--off-bin PATH]
#                    [--no-build] [--lake-bin PATH]
#
#   --quick          20,000 events, 1 round, 100 queries, and "off" is the same build without
#                    --metrics-addr (the CI smoke test: no second build; figures meaningless)
#   --off-bin PATH   the metrics-free build to compare with, instead of building OFF_COMMIT
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh "$@"

# The commit before b575668/861fc46 added the metrics: same ingest and serve paths otherwise
# (maintenance is off in the ingest runs, so the later compaction changes do not count).
OFF_COMMIT=9ada093

events="" rounds="" queries="" off_bin=""
bench_opt() {
    case "$1" in
        --events) events=$2; took=2 ;;
        --rounds) rounds=$2; took=2 ;;
        --queries) queries=$2; took=2 ;;
        --off-bin) off_bin=$2; took=2 ;;
        *) return 1 ;;
    esac
}
bench_args "$@"
cmdline="bench/metrics.sh $*"
bench_default events 2000000 20000
bench_default rounds 3 1
bench_default queries 2000 100
bench_counts --positive "$events" "$rounds" "$queries"
bench_lake_bin "$build" "$lake_bin"
bench_lake_has ingest --metrics-addr
bench_venv
bench_run_dir metrics
# Copies: building the other commit below replaces $CARGO_TARGET_DIR/release/lake.
cp "$lake_bin" "$out/lake-on"
on_bin="$out/lake-on"

if [ -z "$off_bin" ] && [ "$quick" = 1 ]; then
    off_bin=$on_bin
    off_note="the same build without --metrics-addr (quick mode)"
elif [ -z "$off_bin" ]; then
    off_bin="$LAKE_CACHE/bench/lake-$OFF_COMMIT"
    if [ ! -x "$off_bin" ]; then
        say "building $OFF_COMMIT (the last commit without metrics) into $off_bin"
        wt=$(mktemp -d "${TMPDIR:-/tmp}/lake-off.XXXXXX")
        git worktree add --detach --force "$wt" "$OFF_COMMIT" > /dev/null
        (cd "$wt" && cargo build --release --quiet --bin lake)
        cp "$CARGO_TARGET_DIR/release/lake" "$off_bin"
        git worktree remove --force "$wt"
        # Put this tree's build back where it was.
        cargo build --release --quiet --bin lake
    fi
    off_note="a release build of $OFF_COMMIT, the last commit without metrics"
else
    off_note="given as --off-bin"
fi
cp "$off_bin" "$out/lake-off"
off_bin="$out/lake-off"

scraper="" serve_pid="" point_pid=""
scrape_stop() { if [ -n "$scraper" ]; then kill "$scraper" 2>/dev/null || true; scraper=""; fi; }
cleanup() { scrape_stop; bench_stop "$point_pid"; bench_stop "$serve_pid"; bench_sampler_stop; bench_kafka_stop; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port: a loopback port nobody listens on now.
free_port() { "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# scrape_start PORT: reads http://127.0.0.1:PORT/metrics every second in the background.
scrape_start() {
    ( while true; do curl -fsS -o /dev/null "http://127.0.0.1:$1/metrics" || true; sleep 1; done ) &
    scraper=$!
}

bench_kafka_start "$out/kafka"
bench_sampler_start "$out/busy.tsv"
topic="metrics_bench_$ts"
say "producing $events events into $topic"
"$on_bin" produce --brokers "$brokers" --topic "$topic" --events "$events" --days 1 \
    --start-date "$bench_date" --seed "$bench_seed" --json > "$out/produce.json"

for round in $(seq 1 "$rounds"); do
    for build_name in off on; do
        bin="$out/lake-$build_name"
        args=(ingest --lake "$out/lake-$build_name-$round" --brokers "$brokers" --topic "$topic"
              --group "g-$build_name-$round" --until-caught-up --no-maintain)
        if [ "$build_name" = on ]; then
            port=$(free_port)
            args+=(--metrics-addr "127.0.0.1:$port")
            scrape_start "$port"
        fi
        say "round $round: ingest, metrics $build_name"
        bench_timed "ingest-$build_name" "$round" "$bin" "${args[@]}"
        scrape_stop
    done
done

lake="$out/lake-on-1"
bench_sql_dir "$out/sql"
"$on_bin" daily --lake "$lake" --sql "$out/sql" --date "$bench_date" --no-sensor --json \
    > "$out/daily.json" 2> "$out/daily.err" || die_log "$out/daily.err" "lake daily failed"
for round in $(seq 1 "$rounds"); do
    for build_name in off on; do
        extra=()
        if [ "$build_name" = on ]; then
            port=$(free_port)
            extra=(--metrics-addr "127.0.0.1:$port")
        fi
        bench_serve "$out/lake-$build_name" "$lake" "$out/serve-$build_name-$round" "${extra[@]}"
        [ "$build_name" = off ] || scrape_start "$port"
        say "round $round: $queries point queries, metrics $build_name"
        "$py" bench/metrics/point.py --url "$serve_url" --date "$bench_date" --queries "$queries" \
            --out "$out/point-$build_name-$round.json" &
        point_pid=$!
        wait "$point_pid" || die_log "$out/serve-$build_name-$round.err" "point queries failed"
        point_pid=""
        scrape_stop
        bench_stop "$serve_pid"; serve_pid=""
    done
done
bench_sampler_stop

bench_report metrics
"$py" bench/metrics/report.py --out "$out" --events "$events" --off-note "$off_note" \
    --lake-bin "$on_bin" --cmdline "$cmdline" "${quick_flag[@]}" > "$report"
bench_show_report "outputs and logs: $out"
