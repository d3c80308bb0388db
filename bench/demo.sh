#!/usr/bin/env bash
# Demo benchmark: the newcomer's target "from `lake demo` to a first answered query in under 10 s".
# bench/demo_first_query.py starts `lake demo` (embedded broker, a fresh lake in a temporary
# directory, its default history of events) and times its first Flight SQL answer (ADBC,
# `SELECT count(*) FROM raw.user_events`); N runs, each a fresh demo. Writes
# bench/results/demo-<timestamp>.md (demo-quick-<timestamp>.md with --quick) and prints it. Exits
# non-zero when a run fails.
#
#   bench/demo.sh [--quick] [--runs N] [--timeout S] [--no-build] [--lake-bin PATH]
#
#   --quick            1 run (default: 3)
#   --runs N           number of runs
#   --timeout S        a run still going after S seconds is stopped and fails (default 300)
#   --no-build         do not run `cargo build --profile demo` (what scripts/demo.sh builds); use
#                      $CARGO_TARGET_DIR/demo/lake
#   --lake-bin PATH    the lake binary to time (implies --no-build)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh "$@"

runs="" run_timeout=300
bench_opt() {
    case "$1" in
        --runs) runs=$2; took=2 ;;
        --timeout) run_timeout=$2; took=2 ;;
        *) return 1 ;;
    esac
}
bench_args "$@"
bench_default runs 3 1
bench_counts --positive "$runs" "$run_timeout"

bench_lake_bin "$build" "$lake_bin" demo
bench_lake_has demo
bench_venv

bench_run_dir demo
: > "$out/runs.tsv"
bench_sampler_start "$out/busy.tsv"
trap bench_sampler_stop EXIT

failed=0
for i in $(seq 1 "$runs"); do
    say "demo run $i/$runs"
    rc=0
    # timeout signals its whole process group: the script and the `lake demo` it started.
    /usr/bin/time -v -o "$out/time.$i" timeout -k 10 "$run_timeout" "$py" bench/demo_first_query.py "$lake_bin" \
        > "$out/run.$i.out" 2> "$out/run.$i.err" || rc=$?
    if [ "$rc" != 0 ]; then
        failed=1
        echo "demo run $i failed (exit $rc; log: $out/run.$i.err):" >&2
        tail -20 "$out/run.$i.err" >&2
    fi
    printf '%s\t%s\t%s\n' "$i" "$rc" "$out/run.$i" >> "$out/runs.tsv"
done
bench_sampler_stop
trap - EXIT

bench_report demo
"$py" bench/demo/report.py --out "$out" --lake-bin "$lake_bin" --cmdline "$cmdline" \
    --mode "$mode" > "$report" || failed=1
bench_show_report "logs: $out"
[ "$failed" = 0 ] || { echo "FAILED: a demo run failed or its answer is wrong: see the report" >&2; exit 1; }
