#!/usr/bin/env bash
# Scale benchmark (issue 7): "the daily job over 100M events with a 1 GiB memory limit completes;
# report time and peak RSS". The input: bench/daily.sh's cached raw table of N events on one date
# (10M; built first with `bench/daily.sh --table-only` when missing), appended COPIES times (10)
# into one table of N x COPIES events by bench/scale_table.py, cached under
# $LAKE_CACHE/bench/scale-<N>x<COPIES>. Every run: a fresh lake directory whose raw/ links the
# cached table (only read), /usr/bin/time -v, and TMPDIR set to an empty directory of its own:
# DataFusion creates its spill files there (and deletes them), so a changed mtime of that
# directory says the run spilled; a watcher samples how many bytes it held.
#   daily  `lake daily --memory-limit 1G` with the shipped sql/daily (3 runs); checked:
#          processed.daily_metrics.total_events = N x COPIES
#   spill  bench/scale/sql/daily/event_dedup.sql, a GROUP BY with one group per distinct event (far
#          more state than the limit) with `--memory-limit 256M`, and once without a limit to show
#          the state's real size; checked: sum(n) = N x COPIES and every n a multiple of COPIES
# Writes bench/results/scale-<timestamp>.md (scale-quick-<timestamp>.md with --quick) and prints
# it. Exits non-zero when a run fails or a total is wrong (the report is written first).
#
#   bench/scale.sh [--quick] [--events N] [--copies N] [--memory-limit S] [--spill-limit S]
#                  [--runs N] [--timeout S] [--no-spill] [--rebuild-table] [--no-build]
#                  [--lake-bin PATH]
#
#   --quick            base table of 200,000 events (2M in all), 1 run, spill limit 32M, timeout
#                      300 s (that small state fits in 32M: nothing spills; limits near its size
#                      behaved unevenly, see bench/NOTES.md)
#   --events N         base table of N events (bench/daily.sh --events N builds it; 10,000,000)
#   --copies N         copies of the base table (default 10)
#   --memory-limit S   the daily case's `lake daily --memory-limit` (default 1G)
#   --spill-limit S    the spill case's limit (default 256M)
#   --runs N           runs of the daily case (default 3; the spill cases run once each)
#   --timeout S        a run still going after S seconds is stopped and fails (default 1800)
#   --no-spill         the daily case only
#   --rebuild-table    re-create the cached scale table (not the base table)
#   --no-build         do not run `cargo build --release`; use $CARGO_TARGET_DIR/release/lake
#   --lake-bin PATH    the lake binary to time (implies --no-build)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh "$@"

events="" copies=10 memory_limit=1G spill_limit="" runs="" spill=1 run_timeout="" rebuild=0
bench_opt() {
    case "$1" in
        --events) events=$2; took=2 ;;
        --copies) copies=$2; took=2 ;;
        --memory-limit) memory_limit=$2; took=2 ;;
        --spill-limit) spill_limit=$2; took=2 ;;
        --runs) runs=$2; took=2 ;;
        --timeout) run_timeout=$2; took=2 ;;
        --no-spill) spill=0 ;;
        --rebuild-table) rebuild=1 ;;
        *) return 1 ;;
    esac
}
bench_args "$@"
bench_default events 10000000 200000
bench_default runs 3 1
bench_default spill_limit 256M 32M
bench_default run_timeout 1800 300
bench_counts --positive "$events" "$copies" "$runs" "$run_timeout"
total=$((events * copies))

bench_lake_bin "$build" "$lake_bin"
bench_warn_stale "$lake_bin"
bench_lake_has daily --memory-limit
bench_venv

# --- input: the base table (bench/daily.sh's), then the scale table (cached) -------------------
bench_cached_table "$events" build
base=$cached_table
table="$LAKE_CACHE/bench/scale-${events}x$copies"
if [ "$rebuild" = 1 ] || [ ! -f "$table/.complete" ]; then
    say "building the scale table: $copies copies of $base ($total events) in $table"
    rm -rf "$table"
    mkdir -p "$table"
    /usr/bin/time -v -o "$table/build.time" "$py" bench/scale_table.py "$base/lake/raw/user_events" \
        "$table/lake" "$copies" > "$table/build.out" 2> "$table/build.err" \
        || die_log "$table/build.err" "bench/scale_table.py failed"
    rows=$("$lake_bin" sql --lake "$table/lake" -q --format csv -c "SELECT count(*) FROM raw.user_events" | tail -1)
    [ "$rows" = "$total" ] || die "the scale table holds $rows rows, not $total"
    { echo "source=$base"; echo "copies=$copies"; echo "rows=$rows"; echo "built=$(date -u +%FT%TZ)"; } \
        > "$table/built-with"
    touch "$table/.complete"
fi

# --- runs -------------------------------------------------------------------------------------
bench_run_dir scale
: > "$out/cases.tsv"
# lake daily gets sql folders holding only daily/ (no checks), as in bench/daily.sh.
bench_sql_dir "$out/sql-daily"
bench_sql_dir "$out/sql-spill" "$root/bench/scale/sql/daily"

watcher=""
cleanup() { bench_stop "$watcher"; bench_sampler_stop; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# watch_dir DIR OUT: until stopped, keeps in OUT the most bytes (and files) that DIR held at one
# time, sampled every 0.1 s: DataFusion's spill files live there only while a query runs (short
# lived ones escape it; the directory's mtime does not miss them).
watch_dir() {
    local max=0 bytes files
    while :; do
        read -r bytes files < <(find "$1" -type f -printf '%s\n' 2>/dev/null \
            | awk '{s += $1; n++} END {print s + 0, n + 0}') || true
        if [ "${bytes:-0}" -gt "$max" ]; then max=$bytes; echo "$max $files" > "$2"; fi
        sleep 0.1
    done
}

# query LAKE SQL: the single CSV row of SQL's answer over LAKE.
query() { "$lake_bin" sql --lake "$1" -q --format csv -c "$2" | tail -1; }

failed=0
# run_case CASE RUN LIMIT SQL_DIR: one timed `lake daily` (LIMIT "none": no --memory-limit) in a
# fresh lake directory, then its totals checked; one line in cases.tsv for the report.
run_case() {
    local case=$1 run=$2 limit=$3 sql=$4 rc=0 check got
    local dir="$out/$case.$run"
    mkdir -p "$dir/tmp"
    touch -d @0 "$dir/tmp"   # any file created in it (a spill file) moves its mtime
    bench_linked_lake "$table" "$dir/lake"
    local args=(daily --lake "$dir/lake" --sql "$sql" --date "$bench_date" --no-sensor --json)
    [ "$limit" = none ] || args+=(--memory-limit "$limit")
    say "$case run $run: lake ${args[*]}"
    echo "0 0" > "$dir/spill"
    watch_dir "$dir/tmp" "$dir/spill" &
    watcher=$!
    TMPDIR="$dir/tmp" /usr/bin/time -v -o "$dir/time" timeout -k 10 "$run_timeout" "$lake_bin" "${args[@]}" \
        > "$dir/out.json" 2> "$dir/err" || rc=$?
    bench_stop "$watcher"; watcher=""
    stat -c %Y "$dir/tmp" > "$dir/tmp.mtime"
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        check="FAILED: still running after ${run_timeout}s (--timeout), stopped"
    elif [ "$rc" != 0 ]; then
        got=$(grep -v '^[[:space:]]*$' "$dir/err" | tail -1 | cut -c1-300 || true)
        check="FAILED (exit $rc): $got"
    elif [ "$case" = daily ]; then
        got=$(query "$dir/lake" "SELECT total_events FROM processed.daily_metrics") || got="?"
        if [ "$got" = "$total" ]; then check="ok: total_events $got"
        else check="WRONG: total_events $got, expected $total"; fi
    else
        # groups, events, the largest n mod copies (0: every n a multiple of copies)
        got=$(query "$dir/lake" "SELECT count(*), sum(n), max(n % $copies) FROM processed.event_dedup") || got="?"
        if [ "${got#*,}" = "$total,0" ]; then check="ok: ${got%%,*} groups, sum(n) $total, every n a multiple of $copies"
        else check="WRONG: groups,sum(n),max(n % $copies) = $got, expected sum(n) $total and 0"; fi
    fi
    case "$check" in ok:*) ;; *) failed=1; say "$case run $run: $check" ;; esac
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$case" "$run" "$limit" "$rc" "$dir" "$check" >> "$out/cases.tsv"
}

bench_sampler_start "$out/busy.tsv"
for i in $(seq 1 "$runs"); do
    run_case daily "$i" "$memory_limit" "$out/sql-daily"
done
if [ "$spill" = 1 ]; then
    run_case spill 1 "$spill_limit" "$out/sql-spill"
    run_case unlimited 1 none "$out/sql-spill"
fi
bench_sampler_stop

bench_report scale
"$py" bench/scale/report.py --out "$out" --table "$table" --base "$base" --events "$events" \
    --copies "$copies" --date "$bench_date" --lake-bin "$lake_bin" --cmdline "$cmdline" \
    --memory-limit "$memory_limit" --mode "$mode" > "$report"
bench_show_report "outputs and logs: $out"
[ "$failed" = 0 ] || die "a run failed or its totals are wrong: see the report"
