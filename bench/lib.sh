# Shell helpers shared by bench/*.sh. Each script, after `set -euo pipefail` and `cd` to the
# repository root, sources this file with its own arguments (`. bench/lib.sh "$@"`), which
#   - loads scripts/lib.sh (lake_env, lake_venv) and bench/procs.sh (die, lake serve, processes),
#   - exports LAKE_CACHE and CARGO_TARGET_DIR (lake_env),
#   - sets $root (the repository) and $cmdline (the command as run, for the report).
# shellcheck shell=bash
# The functions set variables for their caller ($lake_bin, $py, $sampler, $report, $out, ...):
# shellcheck disable=SC2034

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
# shellcheck source=bench/procs.sh
. bench/procs.sh
lake_env
root=$(pwd)
cmdline="bench/${0##*/}${*:+ $*}"

# The raw tables bench/daily.sh builds and caches (bench/flight.sh and bench/scale.sh read them;
# bench/ingest.sh produces the same events): N seed events on this one date, from this seed.
bench_date=2025-01-10 bench_seed=42

say() { printf '== %s\n' "$*" >&2; }

# bench_usage: prints the calling script's header comment (its usage) and exits 0.
bench_usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0; }

# bench_unknown ARG [HINT]: rejects an argument the calling script does not take (exit 2).
bench_unknown() { echo "unknown argument: $1 (see --help${2:+; $2})" >&2; exit 2; }

# bench_args ARG...: parses the calling script's arguments. The ones every section takes are
# handled here: --quick (sets quick=1), --no-build (build=0), --lake-bin PATH (lake_bin=PATH),
# -h/--help (bench_usage). Any other one goes to the script's own `bench_opt ARG...` (called with
# the arguments left, that one first): it sets the script's variables, and $took to 2 (or more)
# when it used the arguments after ARG too; it returns non-zero for an argument it does not take,
# which bench_unknown then rejects (with $bench_hint, when set). Then $mode is quick or full, and
# $quick_flag is (--quick) or () to pass the mode on.
bench_args() {
    quick=0 build=1 lake_bin=""
    while [ $# -gt 0 ]; do
        took=1
        case "$1" in
            --quick) quick=1 ;;
            --no-build) build=0 ;;
            --lake-bin) lake_bin=$2; took=2 ;;
            -h|--help) bench_usage ;;
            *) bench_opt "$@" || bench_unknown "$1" "${bench_hint:-}" ;;
        esac
        shift "$took"
    done
    if [ "$quick" = 1 ]; then mode=quick quick_flag=(--quick); else mode=full quick_flag=(); fi
}

# bench_default VAR FULL QUICK: when the arguments left VAR empty, sets it to QUICK under --quick
# and to FULL otherwise.
bench_default() {
    [ -z "${!1}" ] || return 0
    if [ "$quick" = 1 ]; then printf -v "$1" '%s' "$3"; else printf -v "$1" '%s' "$2"; fi
}

# bench_counts [--positive] N...: exits 2 unless every N is a whole number (with --positive, > 0).
bench_counts() {
    local what="a number" n
    if [ "$1" = --positive ]; then what="a positive number"; shift; fi
    for n in "$@"; do
        case "$n" in
            ''|*[!0-9]*) ;;
            0) [ "$what" = "a number" ] && continue ;;
            *) continue ;;
        esac
        echo "not $what: $n" >&2
        exit 2
    done
}

# bench_lake_bin BUILD PATH [PROFILE]: sets $lake_bin to PATH, or (PATH empty) to the build of
# cargo profile PROFILE (default release), running `cargo build --profile PROFILE` first when BUILD
# is 1. Not a $(...) function: a failed build must stop the caller under `set -e`, which command
# substitution would not do.
bench_lake_bin() {
    local build=$1 path=$2 profile=${3:-release}
    if [ -z "$path" ]; then
        if [ "$build" = 1 ]; then
            say "cargo build --profile $profile"
            cargo build --profile "$profile" --quiet --bin lake
        fi
        path="$CARGO_TARGET_DIR/$profile/lake"
    fi
    [ -x "$path" ] || { echo "no lake binary at $path" >&2; exit 1; }
    lake_bin=$(readlink -f "$path")
}

# bench_lake_flag COMMAND FLAG: whether `$lake_bin COMMAND` takes FLAG.
bench_lake_flag() { "$lake_bin" "$1" --help 2>/dev/null | grep -q -- "$2"; }

# bench_lake_has COMMAND [FLAG]: exits 1 unless $lake_bin has COMMAND (and its FLAG): a stale build.
bench_lake_has() {
    if [ -z "${2:-}" ]; then
        "$lake_bin" "$1" --help > /dev/null 2>&1 \
            || { echo "$lake_bin has no '$1' command (stale build?)" >&2; exit 1; }
    else
        bench_lake_flag "$1" "$2" || { echo "$lake_bin has no '$1 $2' (stale build?)" >&2; exit 1; }
    fi
}

# bench_venv: sets $py to the Python of the test venv (scripts/lib.sh's lake_venv, shared with
# scripts/test.sh), creating it when missing.
bench_venv() {
    say "python venv"
    lake_venv
    py="$venv/bin/python"
}

# bench_spark_jars: installs the jars PySpark needs beside its own (Delta and the Kafka source:
# scripts/spark.sh) and exports $LAKE_SPARK_JARS, their directory (tests/python/spark_delta.py).
bench_spark_jars() {
    say "Delta and Kafka-source jars for Spark"
    LAKE_SPARK_JARS=$(scripts/spark.sh install)
    export LAKE_SPARK_JARS
}

# bench_kafka_start DIR: starts a Kafka broker (scripts/kafka.sh; installed first when missing)
# with its state in DIR. Sets $brokers, $kafka_version, and $kafka_dir for bench_kafka_stop.
bench_kafka_start() {
    kafka_version=$(scripts/kafka.sh version)
    kafka_dir=$1
    say "starting Kafka $kafka_version (state in $1)"
    brokers=$(scripts/kafka.sh start "$1") || { echo "Kafka did not start (see $1)" >&2; exit 1; }
}

# bench_kafka_stop: stops the broker bench_kafka_start started, if it still runs.
bench_kafka_stop() {
    if [ -n "${kafka_dir:-}" ]; then scripts/kafka.sh stop "$kafka_dir" || true; kafka_dir=""; fi
}

# bench_cached_table EVENTS [build]: sets $cached_table to the directory of bench/daily.sh's cached
# raw table of EVENTS events (its lake in lake/, .complete once built). With `build`, builds it
# first when missing, with `bench/daily.sh --table-only` and $lake_bin.
bench_cached_table() {
    cached_table="$LAKE_CACHE/bench/daily-table-$1-seed$bench_seed-$bench_date"
    if [ "${2:-}" = build ] && [ ! -f "$cached_table/.complete" ]; then
        say "no cached table $cached_table: bench/daily.sh --table-only builds it"
        bench/daily.sh --table-only --events "$1" --lake-bin "$lake_bin" > /dev/null
    fi
}

# bench_linked_lake TABLE LAKE: makes LAKE a lake directory whose raw/ links TABLE's (the cached
# table is only read: `lake daily` writes processed/ and system/ beside the link).
bench_linked_lake() {
    mkdir -p "$2"
    ln -s "$1/lake/raw" "$2/raw"
}

# bench_sql_dir DIR [DAILY]: makes DIR a --sql folder for `lake daily` holding only daily/, a link
# to DAILY (default: the shipped sql/daily): no checks, as the other engines run.
bench_sql_dir() {
    mkdir -p "$1"
    ln -s "${2:-$root/sql/daily}" "$1/daily"
}

# bench_run_dir SECTION: sets $ts (the run's UTC time) and $out, a new directory
# $LAKE_CACHE/bench/SECTION-runs/$ts for the run's outputs and logs. The earlier runs' directories
# are removed: only the latest run's files are kept (some are as large as the input).
bench_run_dir() {
    ts=$(date -u +%Y%m%dT%H%M%SZ)
    out="$LAKE_CACHE/bench/$1-runs/$ts"
    rm -rf "$LAKE_CACHE/bench/$1-runs"
    mkdir -p "$out"
}

# bench_timed ENGINE RUN CMD...: runs CMD under /usr/bin/time -v (its figures in
# $out/time/ENGINE.RUN, CMD's output in $out/logs/ENGINE.RUN.out and .err) and lists the run in
# $out/times.tsv (read by benchlib.timed_runs); when CMD fails, shows its log's tail and exits 1.
bench_timed() {
    local engine=$1 run=$2; shift 2
    mkdir -p "$out/time" "$out/logs"
    /usr/bin/time -v -o "$out/time/$engine.$run" "$@" > "$out/logs/$engine.$run.out" 2> "$out/logs/$engine.$run.err" \
        || { echo "$engine run $run failed (log: $out/logs/$engine.$run.err):" >&2
             tail -30 "$out/logs/$engine.$run.err" >&2; exit 1; }
    printf '%s\t%s\t%s\n' "$engine" "$run" "$out/time/$engine.$run" >> "$out/times.tsv"
}

# bench_top FILE: the busiest processes right now into FILE, for the run's record.
bench_top() { ps -eo pid,pcpu,etime,args --sort=-pcpu | head -8 | cut -c1-160 > "$1"; }

# bench_sampler_start FILE: is the machine shared? Every 5 s, appends the time, the 1-min load
# and how many compiler processes run to FILE (read by benchlib.machine_lines). First times
# benchlib's fixed CPU work into FILE.probe (how fast the host is now; the report compares it
# with a run at its end). Sets $sampler.
bench_sampler_start() {
    "${py:-python3}" bench/benchlib.py probe > "$1.probe" 2>/dev/null || rm -f "$1.probe"
    # shellcheck disable=SC2009  # ps counts by name prefix (cc1plus, ld.lld...), pgrep -x would not
    ( while true; do
          printf '%s\t%s\t%s\n' "$(date -u +%T)" "$(cut -d' ' -f1 /proc/loadavg)" \
              "$(ps -eo comm= | grep -cE '^(cargo|rustc|cc1|ld|clang)' || true)"
          sleep 5
      done ) > "$1" 2>/dev/null &
    sampler=$!
}

bench_sampler_stop() {
    if [ -n "${sampler:-}" ]; then kill "$sampler" 2>/dev/null || true; sampler=""; fi
}

# bench_report SECTION: sets $report to the report's path, bench/results/SECTION-$ts.md, or
# bench/results/SECTION-quick-$ts.md under --quick (git ignores those: CI writes them on every
# run; bench/assemble.py prefers full reports).
bench_report() {
    mkdir -p bench/results
    if [ "$quick" = 1 ]; then report="bench/results/$1-quick-$ts.md"; else report="bench/results/$1-$ts.md"; fi
}

# bench_show_report WHERE: prints the report written to $report, then on stderr where it is and
# WHERE (the run's outputs and logs).
bench_show_report() {
    cat "$report"
    echo >&2
    say "report: $report; $1"
}
