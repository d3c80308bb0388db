#!/usr/bin/env bash
# Flight SQL benchmark: `lake serve` on loopback, measured from Python (bench/flight/run.py):
#   - point query: one date of processed.daily_metrics through ADBC (prepared with a bound date,
#     literal, new statement per query) and pyarrow.flight; p50/p90/p99/max over N calls;
#   - full scan: SELECT * FROM raw.user_events fetched as Arrow through ADBC and pyarrow.flight;
#     rows, Arrow bytes, seconds, GB/s (min/median of 3 runs); the server's peak RSS;
#   - two references for the scan, in the client's process: the same Arrow data served from
#     memory by pyarrow's C++ Flight server (the machine's ceiling), and Arrow C++ reading the
#     same Parquet files and serving them the same way (the same job done by Arrow's own stack).
# Targets (the issue): point p50 < 2 ms and p99 < 10 ms; full scan of 10M rows ≥ 1 GB/s.
# The lake: the cached raw table bench/daily.sh builds ($LAKE_CACHE/bench/daily-table-N-...;
# built first with `bench/daily.sh --table-only` when missing), linked read-only into a fresh run
# directory where `lake daily` builds processed.* first.
# Writes bench/results/flight-<timestamp>.md (flight-quick-<timestamp>.md with --quick) and
# prints it; exits non-zero on any failure.
#
#   bench/flight.sh [--quick] [--events N] [--lake DIR] [--lake-bin PATH] [--no-build]
#                   [--iterations N] [--warmup N] [--scan-runs N]
#
#   --quick          the 200,000-event table, 20 warm-up + 200 timed point queries
#                    (default: 10,000,000 events, 50 + 1000)
#   --events N       use the cached table of N events (bench/daily.sh --events N builds it)
#   --lake DIR       serve DIR as it is instead (it needs raw.user_events and a non-empty
#                    processed.daily_metrics; its latest date is queried)
#   --lake-bin PATH  the lake binary to measure (default: $CARGO_TARGET_DIR/release/lake)
#   --no-build       accepted for symmetry with bench/daily.sh: this script never builds
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh "$@"

events="" lake="" iterations="" warmup="" scan_runs=3
bench_opt() {
    case "$1" in
        --events) events=$2; took=2 ;;
        --lake) lake=$2; took=2 ;;
        --iterations) iterations=$2; took=2 ;;
        --warmup) warmup=$2; took=2 ;;
        --scan-runs) scan_runs=$2; took=2 ;;
        *) return 1 ;;
    esac
}
bench_args "$@"   # --no-build is accepted and changes nothing: this script never builds
bench_default events 10000000 200000
bench_default iterations 1000 200
bench_default warmup 50 20

bench_lake_bin 0 "$lake_bin"   # never builds
bench_warn_stale "$lake_bin"
bench_venv

if [ -n "$lake" ]; then
    lake=$(readlink -f "$lake")
    [ -d "$lake/raw/user_events/_delta_log" ] || die "$lake has no raw.user_events"
    [ -d "$lake/processed/daily_metrics/_delta_log" ] \
        || die "$lake has no processed.daily_metrics (run \`lake daily --lake $lake --date D\` first)"
else
    bench_cached_table "$events" build
    table=$cached_table
fi

bench_run_dir flight

serve_pid="" run_pid=""
cleanup() { bench_stop "$run_pid"; bench_stop "$serve_pid"; bench_sampler_stop; }
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "$lake" ]; then
    lake_note="served as given"
else
    # raw/ is a link to the cache (only read); lake daily writes processed/ and system/ here.
    lake="$out/lake"
    bench_linked_lake "$table" "$lake"
    bench_sql_dir "$out/sql"   # the daily files only, no checks
    say "lake daily --date $bench_date (processed.* for the point query)"
    "$lake_bin" daily --lake "$lake" --sql "$out/sql" --date "$bench_date" --no-sensor --json \
        > "$out/daily.json" 2> "$out/daily.err" || die_log "$out/daily.err" "lake daily failed"
    lake_note="raw.user_events linked from \`$table\` ($events events on $bench_date, seed $bench_seed); processed.* built by \`lake daily\` for this run"
fi

bench_sampler_start "$out/busy.tsv"
say "lake serve"
bench_serve "$lake_bin" "$lake" "$out/serve"
say "measuring at $serve_url: $warmup + $iterations point queries per statement form, $scan_runs scans per client"
# In the background and waited for, so that a SIGTERM to this script acts at once.
"$py" bench/flight/run.py --url "$serve_url" --server-pid "$serve_pid" --warmup "$warmup" \
    --iterations "$iterations" --scan-runs "$scan_runs" --raw-table "$lake/raw/user_events" \
    --out "$out/results.json" &
run_pid=$!
wait "$run_pid" || die_log "$out/serve.err" "the measurement failed (server log: $out/serve.err)"
run_pid=""
kill -0 "$serve_pid" 2>/dev/null || die "lake serve died during the benchmark (log: $out/serve.err)"
bench_stop "$serve_pid"; serve_pid=""
bench_sampler_stop

bench_report flight
"$py" bench/flight/report.py --results "$out/results.json" --busy "$out/busy.tsv" --lake "$lake" \
    --lake-bin "$lake_bin" --cmdline "$cmdline" --lake-note "$lake_note" "${quick_flag[@]}" > "$report"
bench_show_report "outputs and server log: $out"
