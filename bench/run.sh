#!/usr/bin/env bash
# The benchmark harness (issue 7): one command that measures lake and the engines it is compared
# with, in the same run on the same machine, then writes BENCHMARKS.md. It runs the sections in
# order, each a script of its own that writes bench/results/<section>-<UTC time>.md:
#   ingest     bench/ingest.sh     Kafka → Delta: lake ingest vs Spark Structured Streaming
#   daily      bench/daily.sh      the daily job: lake daily vs DuckDB vs PySpark
#   freshness  bench/freshness.sh  produce → visible over Flight SQL under load
#   flight     bench/flight.sh     Flight SQL point queries and full scans
#   scale      bench/scale.sh      the daily job over 100M events under --memory-limit 1G
#   demo       bench/demo.sh       `lake demo` → first answered query (the binary scripts/demo.sh
#                                  builds, its demo profile, unless --lake-bin names one)
#   soak       bench/soak.sh       30 min of commits every 100 ms, maintenance on and off
#   metrics    bench/metrics.sh    ingest and point queries with metrics off and on
#   s3         bench/s3.sh         ingest, daily job and point queries: local folder vs S3 server
# then bench/assemble.py writes BENCHMARKS.md: a summary of every target, each section's report,
# bench/NOTES.md. A failed section does not stop the others: the failures are listed at the end
# and the exit status is non-zero.
#
#   bench/run.sh [--quick] [--only SECTION,...] [--no-build] [--lake-bin PATH] [--quiet]
#   bench/run.sh --assemble-only
#
#   --quick          every section's --quick (the CI smoke test); the assembled document goes to
#                    bench/results/BENCHMARKS-quick-<time>.md, never to BENCHMARKS.md
#   --only A,B       only these sections (BENCHMARKS.md takes the others' newest reports);
#                    `--only build` is the only way to run the cold build (about an hour)
#   --no-build       do not run `cargo build --release` first; use $CARGO_TARGET_DIR/release/lake
#   --lake-bin PATH  the lake binary every section measures (implies --no-build)
#   --quiet          each section's output only in its log ($LAKE_CACHE/bench/run-logs/), one line
#                    per section here (and the log's tail when it fails)
#   --assemble-only  run nothing: rebuild BENCHMARKS.md from the newest reports in bench/results/
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh "$@"

all_sections=(ingest daily freshness flight scale demo soak metrics s3 build)
# Run only when named with --only (a cold build takes about an hour here; it has no quick mode).
on_request=(build)
only="" quiet=0 assemble_only=0
bench_opt() {
    case "$1" in
        --only) only=$2; took=2 ;;
        --quiet) quiet=1 ;;
        --assemble-only) assemble_only=1 ;;
        *) return 1 ;;
    esac
}
bench_args "$@"
sections=()
for s in "${all_sections[@]}"; do
    case " ${on_request[*]} " in *" $s "*) ;; *) sections+=("$s") ;; esac
done
if [ -n "$only" ]; then
    IFS=, read -r -a sections <<< "$only"
    for s in "${sections[@]}"; do
        case " ${all_sections[*]} " in *" $s "*) ;; *) echo "unknown section: $s (${all_sections[*]})" >&2; exit 2 ;; esac
    done
fi


if [ "$assemble_only" = 1 ]; then
    bench_venv
    "$py" bench/assemble.py --out BENCHMARKS.md
    exit 0
fi

started=$(date +%s)
ts=$(date -u +%Y%m%dT%H%M%SZ)
named_bin=$lake_bin
bench_lake_bin "$build" "$lake_bin"   # built once here; every section gets --lake-bin
bench_venv
common=(--lake-bin "$lake_bin" "${quick_flag[@]}")
logs="$LAKE_CACHE/bench/run-logs/$ts"
rm -rf "$LAKE_CACHE/bench/run-logs"   # only the latest run's logs are kept
mkdir -p "$logs" bench/results

reports=() failed=() summary=()
for s in "${sections[@]}"; do
    log="$logs/$s.log"
    touch "$logs/$s.start"
    t0=$(date +%s)
    args=("${common[@]}")
    if [ "$s" = demo ] && [ -z "$named_bin" ]; then
        args=("${quick_flag[@]}")
        [ "$build" = 1 ] || args+=(--no-build)
    fi
    say "section $s: bench/$s.sh ${args[*]} (log: $log)"
    set +e
    if [ "$quiet" = 1 ]; then
        "bench/$s.sh" "${args[@]}" > "$log" 2>&1
        rc=$?
    else
        "bench/$s.sh" "${args[@]}" 2>&1 | tee "$log"
        rc=${PIPESTATUS[0]}
    fi
    set -e
    secs=$(( $(date +%s) - t0 ))
    # The report this section wrote: the newest of its names created since it started.
    report=$(find bench/results -maxdepth 1 -newer "$logs/$s.start" \
        \( -name "$s-[0-9]*.md" -o -name "$s-quick-[0-9]*.md" \) | sort | tail -1)
    [ -z "$report" ] || reports+=(--report "$s=$report")
    if [ "$rc" = 0 ] && [ -n "$report" ]; then
        summary+=("$(printf '%-10s ok      %5d s  %s' "$s" "$secs" "$report")")
    else
        failed+=("$s")
        summary+=("$(printf '%-10s FAILED  %5d s  exit %s, %s; log %s' "$s" "$secs" "$rc" \
            "${report:-no report}" "$log")")
        if [ "$quiet" = 1 ]; then
            echo "---- last lines of $log" >&2
            tail -40 "$log" >&2
            echo "----" >&2
        fi
    fi
    say "${summary[-1]}"
done

total=$(( $(date +%s) - started ))
failed_args=()
for s in "${failed[@]}"; do failed_args+=(--failed "$s"); done
if [ "$quick" = 1 ]; then doc="bench/results/BENCHMARKS-quick-$ts.md"; else doc=BENCHMARKS.md; fi
"$py" bench/assemble.py --out "$doc" --mode "$mode" \
    --note "Harness run $ts: sections ${sections[*]}, $total s in all$([ "$quick" = 1 ] && echo ', --quick')." \
    "${reports[@]}" "${failed_args[@]}" > /dev/null

echo
echo "== bench/run.sh: ${#sections[@]} sections in $total s; $doc written"
printf '   %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "FAILED sections: ${failed[*]} (logs in $logs)" >&2
    exit 1
fi
