#!/usr/bin/env bash
# A real S3-compatible server for tests: SeaweedFS (master, volume, filer and S3 gateway in one
# `weed server` process), built from the Go module proxy with `go install`.
#
#   scripts/s3.sh install        build weed into $LAKE_CACHE/seaweedfs-<version>/weed
#   scripts/s3.sh start DIR      start a server on free loopback ports, state in DIR, with the
#                                bucket `lake`; prints the S3 endpoint (also in DIR/endpoint)
#   scripts/s3.sh stop DIR       stop it
#   scripts/s3.sh env DIR        print the AWS_* variables that reach it (for `eval`)
#   scripts/s3.sh version        print the module version
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
lake_env

# A pseudo-version the Go module proxy serves (SeaweedFS tags are not Go module versions).
version=v0.0.0-20261109003541-7506e5f91cd6
bin_dir="$LAKE_CACHE/seaweedfs-$version"
weed="$bin_dir/weed"
# Test credentials of the server's only identity; it listens on loopback only.
key=lake-test-key
secret=lake-test-secret
bucket=lake

install() {
    if [ -x "$weed" ]; then return 0; fi
    mkdir -p "$bin_dir"
    echo "building SeaweedFS $version from the Go module proxy (once; a few minutes)" >&2
    # `go install weed@version` refuses a module whose go.mod has replace directives, so the
    # module is downloaded and built as the main module instead.
    local src
    src=$(go mod download -json "github.com/seaweedfs/seaweedfs@$version" \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
    (cd "$src" && go build -o "$weed.tmp" ./weed) >&2
    mv "$weed.tmp" "$weed"
}

start() {
    local dir=$1
    install
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    cat > "$dir/s3.json" <<JSON
{"identities": [{"name": "lake", "credentials": [{"accessKey": "$key", "secretKey": "$secret"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
JSON
    # A port taken by another process between choosing it and weed binding it makes weed exit:
    # then it starts again on other ports.
    local attempt
    for attempt in 1 2 3; do
        if serve "$dir"; then return 0; fi
        [ -f "$dir/exited" ] || return 1
        echo "weed exited at start (attempt $attempt of 3); see $dir/weed.log" >&2
        tail -5 "$dir/weed.log" >&2
    done
    return 1
}

# serve DIR: one start of weed on fresh ports; fails (and leaves DIR/exited) if weed exits.
serve() {
    local dir=$1 master volume filer s3 mgrpc vgrpc fgrpc s3grpc
    rm -rf "$dir/exited" "$dir/data"
    mkdir -p "$dir/data"
    { read -r master; read -r volume; read -r filer; read -r s3
      read -r mgrpc; read -r vgrpc; read -r fgrpc; read -r s3grpc; } < <(lake_free_port 8)
    nohup "$weed" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$dir/data" \
        -master.port="$master" -master.port.grpc="$mgrpc" \
        -master.volumeSizeLimitMB=256 \
        -volume.port="$volume" -volume.port.grpc="$vgrpc" -volume.max=0 \
        -filer -filer.port="$filer" -filer.port.grpc="$fgrpc" \
        -s3 -s3.port="$s3" -s3.port.grpc="$s3grpc" -s3.port.iceberg=0 -s3.port.lance=0 \
        -s3.config="$dir/s3.json" \
        > "$dir/weed.log" 2>&1 &
    echo $! > "$dir/pid"
    local endpoint="http://127.0.0.1:$s3"
    for _ in $(seq 1 240); do
        if curl -fsS -o /dev/null --aws-sigv4 "aws:amz:us-east-1:s3" --user "$key:$secret" \
            -X PUT "$endpoint/$bucket" 2>/dev/null \
            || curl -fsS -o /dev/null --aws-sigv4 "aws:amz:us-east-1:s3" \
                --user "$key:$secret" "$endpoint/$bucket" 2>/dev/null; then
            echo "$endpoint" > "$dir/endpoint"
            echo "$endpoint"
            return 0
        fi
        if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
            touch "$dir/exited"
            return 1
        fi
        sleep 0.5
    done
    echo "SeaweedFS did not serve the bucket within 120 s; see $dir/weed.log" >&2
    tail -20 "$dir/weed.log" >&2
    return 1
}

env_of() {
    local dir=$1
    echo "export AWS_ACCESS_KEY_ID=$key AWS_SECRET_ACCESS_KEY=$secret AWS_REGION=us-east-1"
    echo "export AWS_ENDPOINT_URL=$(cat "$dir/endpoint") AWS_ALLOW_HTTP=true"
}

case "${1:-}" in
    install) install ;;
    start) start "${2:?usage: s3.sh start DIR}" ;;
    stop) lake_stop_server "${2:?usage: s3.sh stop DIR}" ;;
    env) env_of "${2:?usage: s3.sh env DIR}" ;;
    version) echo "$version" ;;
    *) echo "usage: $0 install | start DIR | stop DIR | env DIR | version" >&2; exit 2 ;;
esac
