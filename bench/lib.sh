# Shell helpers shared by bench/*.sh; sourced from the repository root after `set -euo pipefail`.
# shellcheck shell=bash
# The functions set variables for their caller ($lake_bin, $py, $sampler, $report):
# shellcheck disable=SC2034

say() { printf '== %s\n' "$*" >&2; }

# bench_usage: prints the calling script's header comment (its usage) and exits 0.
bench_usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0; }

# bench_unknown ARG [HINT]: rejects an argument the calling script does not take (exit 2).
bench_unknown() { echo "unknown argument: $1 (see --help${2:+; $2})" >&2; exit 2; }

# bench_lake_bin BUILD PATH: sets $lake_bin to PATH, or (PATH empty) to the release build, running
# `cargo build --release` first when BUILD is 1. Not a $(...) function: a failed build must stop
# the caller under `set -e`, which command substitution would not do.
bench_lake_bin() {
    local build=$1 path=$2
    if [ -z "$path" ]; then
        if [ "$build" = 1 ]; then
            say "cargo build --release"
            cargo build --release --quiet --bin lake
        fi
        path="$CARGO_TARGET_DIR/release/lake"
    fi
    [ -x "$path" ] || { echo "no lake binary at $path" >&2; exit 1; }
    lake_bin=$(readlink -f "$path")
}

# bench_venv: sets $py to the Python of the test venv (tests/python/requirements.txt, keyed by its
# checksum under $LAKE_CACHE, like scripts/test.sh), creating it when missing.
bench_venv() {
    say "python venv"
    local req_sum venv
    req_sum=$(cksum < tests/python/requirements.txt | cut -d' ' -f1)
    venv="$LAKE_CACHE/venv-$req_sum"
    if [ ! -x "$venv/bin/pytest" ]; then
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q -r tests/python/requirements.txt
    fi
    py="$venv/bin/python"
}

# bench_sampler_start FILE: is the machine shared? Every 5 s, appends the time, the 1-min load
# and how many compiler processes run to FILE (read by benchlib.machine_lines). Sets $sampler.
bench_sampler_start() {
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

# bench_report SECTION QUICK TS: sets $report to the report's path, bench/results/SECTION-TS.md,
# or bench/results/SECTION-quick-TS.md when QUICK is 1 (git ignores those: CI writes them on every
# run; bench/assemble.py prefers full reports).
bench_report() {
    mkdir -p bench/results
    if [ "$2" = 1 ]; then report="bench/results/$1-quick-$3.md"; else report="bench/results/$1-$3.md"; fi
}
