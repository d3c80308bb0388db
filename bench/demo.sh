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
#   --no-build         do not run `cargo build --release`; use $CARGO_TARGET_DIR/release/lake
#   --lake-bin PATH    the lake binary to time (implies --no-build)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
cmdline="bench/demo.sh${*:+ $*}"
export LAKE_CACHE=${LAKE_CACHE:-$HOME/.cache/lake}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$LAKE_CACHE/target}

runs="" quick=0 build=1 lake_bin="" run_timeout=300
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --runs) runs=$2; shift ;;
        --timeout) run_timeout=$2; shift ;;
        --no-build) build=0 ;;
        --lake-bin) lake_bin=$2; shift ;;
        -h|--help) bench_usage ;;
        *) bench_unknown "$1" ;;
    esac
    shift
done
[ "$quick" = 0 ] || runs=${runs:-1}
runs=${runs:-3}
for n in "$runs" "$run_timeout"; do
    case "$n" in ''|*[!0-9]*|0) echo "not a positive number: $n" >&2; exit 2 ;; esac
done


bench_lake_bin "$build" "$lake_bin"
"$lake_bin" demo --help > /dev/null 2>&1 || { echo "$lake_bin has no 'demo' command (stale build?)" >&2; exit 1; }
bench_venv

ts=$(date -u +%Y%m%dT%H%M%SZ)
out="$LAKE_CACHE/bench/demo-runs/$ts"
rm -rf "$LAKE_CACHE/bench/demo-runs"   # only the latest run's files are kept
mkdir -p "$out"
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

bench_report demo "$quick" "$ts"
"$py" bench/demo/report.py --out "$out" --lake-bin "$lake_bin" --cmdline "$cmdline" \
    --mode "$([ "$quick" = 1 ] && echo quick || echo full)" > "$report" || failed=1
cat "$report"
echo >&2
say "report: $report; logs: $out"
[ "$failed" = 0 ] || { echo "FAILED: a demo run failed or its answer is wrong: see the report" >&2; exit 1; }
