#!/usr/bin/env bash
# A real Azure Blob Storage server for tests: Azurite, Microsoft's emulator, installed from the
# npm registry (versions pinned by scripts/azurite/package-lock.json).
#
#   scripts/azurite.sh install       install it into $LAKE_CACHE/azurite-<version>
#   scripts/azurite.sh start DIR     start a blob server on a free loopback port, state in DIR,
#                                    with the container `lake`; prints the blob endpoint (also in
#                                    DIR/endpoint)
#   scripts/azurite.sh stop DIR      stop it
#   scripts/azurite.sh env DIR       print the AZURE*/AZURITE* variables that reach it (for `eval`)
#   scripts/azurite.sh version       print Azurite's version
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
lake_env

version=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["dependencies"]["azurite"])' \
    "$here/azurite/package.json")
lock_sum=$(cksum < "$here/azurite/package-lock.json" | cut -d' ' -f1)
dir_of_install="$LAKE_CACHE/azurite-$version-$lock_sum"
container=lake

install() {
    if [ -x "$dir_of_install/node_modules/.bin/azurite-blob" ]; then return 0; fi
    echo "installing Azurite $version from the npm registry (once)" >&2
    rm -rf "$dir_of_install.tmp"
    mkdir -p "$dir_of_install.tmp"
    cp "$here/azurite/package.json" "$here/azurite/package-lock.json" \
        "$here/azurite/create-container.js" "$dir_of_install.tmp/"
    (cd "$dir_of_install.tmp" && npm ci --no-audit --no-fund --loglevel=error) >&2
    rm -rf "$dir_of_install"
    mv "$dir_of_install.tmp" "$dir_of_install"
}

start() {
    local dir=$1 port attempt
    install
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    # A port taken between choosing it and Azurite binding it makes Azurite exit: then it starts
    # again on another port.
    for attempt in 1 2 3; do
        port=$(lake_free_port 1)
        rm -rf "$dir/data"
        mkdir -p "$dir/data"
        # No telemetry: the tests run without reaching the internet.
        nohup "$dir_of_install/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 \
            --blobPort "$port" --location "$dir/data" --disableTelemetry --skipApiVersionCheck --silent \
            > "$dir/azurite.log" 2>&1 &
        echo $! > "$dir/pid"
        local endpoint="http://127.0.0.1:$port/devstoreaccount1"
        for _ in $(seq 1 120); do
            if node "$dir_of_install/create-container.js" "$endpoint" "$container" 2>/dev/null; then
                echo "$endpoint" > "$dir/endpoint"
                echo "$endpoint"
                return 0
            fi
            kill -0 "$(cat "$dir/pid")" 2>/dev/null || break
            sleep 0.5
        done
        echo "Azurite did not serve the container (attempt $attempt of 3); see $dir/azurite.log" >&2
        tail -5 "$dir/azurite.log" >&2
        lake_stop_server "$dir"
    done
    return 1
}

env_of() {
    local dir=$1
    # object_store's Azure client talks to the emulator's well-known account at this address.
    echo "export AZURE_STORAGE_USE_EMULATOR=true AZURITE_BLOB_STORAGE_URL=$(dirname "$(cat "$dir/endpoint")")"
}

case "${1:-}" in
    install) install ;;
    start) start "${2:?usage: azurite.sh start DIR}" ;;
    stop) lake_stop_server "${2:?usage: azurite.sh stop DIR}" ;;
    env) env_of "${2:?usage: azurite.sh env DIR}" ;;
    version) echo "$version" ;;
    *) echo "usage: $0 install | start DIR | stop DIR | env DIR | version" >&2; exit 2 ;;
esac
