# Process helpers for the benchmarks, mostly for those that run a live pipeline (bench/flight.sh,
# bench/freshness.sh); bench/lib.sh sources this file (from the repository root, under
# `set -euo pipefail`).
# shellcheck shell=bash
# The functions set variables for their caller ($serve_pid, $serve_url):
# shellcheck disable=SC2034

die() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

# die_log LOG MESSAGE...: the last lines of LOG, then die MESSAGE.
die_log() { local log=$1; shift; tail -20 "$log" >&2; die "$@"; }

# bench_warn_stale BIN: warn when a source file is newer than BIN (the figures would describe an
# older build than the working tree).
bench_warn_stale() {
    if [ -n "$(find src Cargo.toml Cargo.lock -newer "$1" -print -quit 2>/dev/null)" ]; then
        say "warning: sources are newer than $1; the figures describe that (older) build"
    fi
}

# bench_serve LAKE_BIN LAKE LOGPREFIX [ARG...]: start `lake serve` (with ARGs) on a free loopback
# port (loopback needs no auth) and wait up to 60 s for its banner. Sets $serve_pid and
# $serve_url; logs go to LOGPREFIX.out/.err. Stop it with bench_stop "$serve_pid".
bench_serve() {
    local bin=$1 lake=$2 log=$3
    shift 3
    "$bin" serve --lake "$lake" --addr 127.0.0.1:0 "$@" > "$log.out" 2> "$log.err" &
    serve_pid=$!
    serve_url=""
    for _ in $(seq 1 240); do
        serve_url=$(grep -o 'grpc://[0-9.:]*' "$log.out" 2>/dev/null | head -1 || true)
        [ -z "$serve_url" ] || return 0
        kill -0 "$serve_pid" 2>/dev/null || die_log "$log.err" "lake serve exited before its banner"
        sleep 0.25
    done
    die_log "$log.err" "lake serve printed no banner within 60 s"
}

# bench_stop PID [SIGNAL]: stop one process this script started (SIGTERM by default, SIGKILL
# after 10 s); nothing when PID is empty or already gone.
bench_stop() {
    local pid=$1 sig=${2:-TERM}
    { [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; } || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# bench_vmhwm PID: the process's peak resident set (VmHWM) in KiB, or nothing when it is gone.
bench_vmhwm() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || true; }
