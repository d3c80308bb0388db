#!/usr/bin/env bash
# Builds lake (the `demo` profile: Cargo.toml says why) and runs `lake demo`: an embedded
# broker, a few days of history, ingest, then live events until Ctrl-C. Extra arguments go to
# `lake demo` (e.g. --fresh, --duration 30s, --lake DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
lake_env
cargo build --profile demo --quiet --bin lake
exec "$CARGO_TARGET_DIR/demo/lake" demo "$@"
