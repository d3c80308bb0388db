# Shell helpers shared by scripts/*.sh and bench/*.sh (bench/lib.sh sources this file); sourced
# after `set -euo pipefail`, from any directory.
# shellcheck shell=bash
# The functions set variables for their caller ($venv, $maven_dir, $maven_version):
# shellcheck disable=SC2034

# The repository this file belongs to.
lake_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# lake_env: exports LAKE_CACHE (default ~/.cache/lake), where the scripts keep what they install
# (Kafka, jars, the Python venv) and build, and CARGO_TARGET_DIR (default $LAKE_CACHE/target).
lake_env() {
    export LAKE_CACHE=${LAKE_CACHE:-$HOME/.cache/lake}
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$LAKE_CACHE/target}
}

# lake_venv: sets $venv to the Python venv with the interop tools (tests/python/requirements.txt:
# deltalake, DuckDB, Polars, PySpark, ADBC, pytest...), $LAKE_CACHE/venv-<cksum of that file>,
# creating it when missing. Call lake_env first. Not a $(...) function: a failed pip install must
# stop the caller under `set -e`, which command substitution would not do.
lake_venv() {
    local req="$lake_root/tests/python/requirements.txt" req_sum
    req_sum=$(cksum < "$req" | cut -d' ' -f1)
    venv="$LAKE_CACHE/venv-$req_sum"
    if [ ! -x "$venv/bin/pytest" ]; then
        # Venvs of older requirements are 1-2 GB each: keep only the one in use.
        rm -rf "$LAKE_CACHE"/venv-*
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q -r "$req"
    fi
}

# lake_maven_dir POM PROPERTY NAME SUBDIR: sets $maven_version to POM's <PROPERTY> and $maven_dir
# to $LAKE_CACHE/NAME-<that version>-<cksum of POM>/SUBDIR, where lake_maven_install puts POM's
# jars (a new directory whenever the POM changes). Call lake_env first.
lake_maven_dir() {
    local pom=$1 property=$2 pomsum
    maven_version=$(sed -n "s:.*<$property>\(.*\)</$property>.*:\1:p" "$pom")
    pomsum=$(cksum < "$pom" | cut -d" " -f1)
    maven_dir="$LAKE_CACHE/$3-$maven_version-$pomsum/$4"
}

# lake_maven_install POM DIR: copies POM's dependencies from Maven Central into DIR with mvn, once
# (DIR/.complete marks a finished copy; an unfinished one is removed first). mvn's output goes to
# stderr.
lake_maven_install() {
    local pom=$1 dir=$2
    if [ -f "$dir/.complete" ]; then return 0; fi
    rm -rf "$dir"
    mkdir -p "$dir"
    mvn -q -B -f "$pom" dependency:copy-dependencies -DoutputDirectory="$dir" >&2
    touch "$dir/.complete"
}

# lake_free_port [N]: N (default 1) distinct loopback ports nobody listens on now, one per line.
# The sockets are held until all are bound, so one call never names a port twice (separate
# calls can: the kernel may hand a port it just released to the next caller).
lake_free_port() {
    python3 -c 'import socket, sys
held = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in held:
    s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in held))' "${1:-1}"
}

# lake_stop_server DIR: stops the server whose pid is in DIR/pid (SIGTERM, SIGKILL after 10 s),
# if it runs, and forgets the pid.
lake_stop_server() {
    local dir=$1 pid
    [ -f "$dir/pid" ] || return 0
    pid=$(cat "$dir/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/pid"
}
