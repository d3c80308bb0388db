#!/usr/bin/env bash
# Runs every test of the project, installing what the tests need first:
#   - a single-node Apache Kafka (KRaft) from Maven Central, started once for the whole run;
#   - a SeaweedFS S3 server on loopback, built from the Go module proxy (scripts/s3.sh), whose
#     AWS_* variables the tests of a lake on s3:// use;
#   - Azurite, an Azure Blob Storage server on loopback, from the npm registry
#     (scripts/azurite.sh), whose AZURE*/AZURITE* variables the tests of a lake on az:// use;
#   - a Python venv with the interop tools (deltalake, DuckDB + delta extension, Polars, ...);
#   - Debian's docker-compose (validates docker-compose.yml) and chromium + chromium-driver (the
#     status page's browser test).
# Kafka and the venv are cached under $LAKE_CACHE (default ~/.cache/lake), as is the cargo target
# dir. Test artifacts (the status page's screenshot) go to $LAKE_TEST_ARTIFACTS
# (default target/test-artifacts).
# Before pytest, a smoke test of the benchmark harness (bench/run.sh --quick, with its own Kafka).
# Ends with pytest's summary line; exits non-zero when any step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
lake_env
mkdir -p "$LAKE_CACHE"

step() { printf '\n== %s\n' "$*"; }

step "python venv"
lake_venv   # sets $venv

step "Debian packages: docker-compose (validates docker-compose.yml; no engine needed), chromium"
# chromium and chromium-driver: test_status_page.py loads the status page in a headless browser.
missing=()
command -v docker-compose > /dev/null || missing+=(docker-compose)
command -v chromium > /dev/null || missing+=(chromium)
command -v chromedriver > /dev/null || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" > /dev/null
fi

step "kafka"
scripts/kafka.sh install
kafka_state=$(mktemp -d "${TMPDIR:-/tmp}/lake-kafka.XXXXXX")
s3_state=$(mktemp -d "${TMPDIR:-/tmp}/lake-s3.XXXXXX")
azure_state=$(mktemp -d "${TMPDIR:-/tmp}/lake-azure.XXXXXX")
cleanup() {
    "$root/scripts/kafka.sh" stop "$kafka_state"; rm -rf "$kafka_state"
    "$root/scripts/s3.sh" stop "$s3_state"; rm -rf "$s3_state"
    "$root/scripts/azurite.sh" stop "$azure_state"; rm -rf "$azure_state"
}
trap cleanup EXIT
LAKE_TEST_BROKERS=$(scripts/kafka.sh start "$kafka_state")
export LAKE_TEST_BROKERS
echo "broker at $LAKE_TEST_BROKERS"

step "S3 server (SeaweedFS)"
scripts/s3.sh install
s3_endpoint=$(scripts/s3.sh start "$s3_state")
echo "S3 at $s3_endpoint"
eval "$(scripts/s3.sh env "$s3_state")"

step "Azure Blob Storage server (Azurite)"
scripts/azurite.sh install
azure_endpoint=$(scripts/azurite.sh start "$azure_state")
echo "Azure Blob Storage at $azure_endpoint"
eval "$(scripts/azurite.sh env "$azure_state")"

step "format and lints"
# Every dependency change leaves the old test binaries (large with debug info: bench/NOTES.md says
# how large) in the cached target dir; drop the ones not rebuilt for two days so the cache does not
# fill the disk.
if [ -d "$CARGO_TARGET_DIR/debug/deps" ]; then
    find "$CARGO_TARGET_DIR/debug/deps" -maxdepth 1 -type f -perm -u+x ! -name '*.so' -mtime +2 -delete
fi
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings

step "rust tests"
cargo test --all-targets

export LAKE_BIN="$CARGO_TARGET_DIR/debug/lake"

step "benchmark harness smoke test (bench/run.sh --quick: tiny inputs, debug build; figures meaningless)"
# Keeps every benchmark section runnable. Its reports go to bench/results/*-quick-*.md (ignored by
# git), never to BENCHMARKS.md. On failure stop here, so that pytest's summary stays the last line
# of a passing run.
if ! bench/run.sh --quick --quiet --lake-bin "$LAKE_BIN"; then
    echo "FAILED: bench/run.sh --quick (the failing section's log tail is above)" >&2
    exit 1
fi

step "python interop tests"
export LAKE_TEST_ARTIFACTS=${LAKE_TEST_ARTIFACTS:-$root/target/test-artifacts}
"$venv/bin/python" -m pytest tests/python -q -p no:cacheprovider
