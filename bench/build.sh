#!/usr/bin/env bash
# Build benchmark (issue 18): what a newcomer pays before the first `lake demo`. Clones the
# repository's HEAD, then times `cargo build --profile demo --locked --timings` of it into an empty
# target directory (the crates already downloaded, as after one `cargo fetch`): wall, CPU (user +
# sys) and peak RSS of the whole build, the binary's size and its largest sections, and the
# crates that took longest (cargo's --timings). Writes bench/results/build-<timestamp>.md.
# Not part of bench/run.sh's default sections nor of --quick: about an hour on two cores
# (`bench/run.sh --only build` runs it).
#
#   bench/build.sh [--profile NAME] [--jobs N] [--keep-target]
#
#   --profile NAME   the cargo profile to build (default demo, what scripts/demo.sh builds;
#                    release is what the Docker image and the benchmarks run)
#   --jobs N         cargo's -j (default: every core)
#   --keep-target    move the built target dir to $CARGO_TARGET_DIR when that does not exist yet,
#                    instead of deleting it: on a new machine the measured build becomes the cache
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh "$@"

profile=demo jobs="" keep_target=0
bench_opt() {
    case "$1" in
        --keep-target) keep_target=1; took=1 ;;
        --profile) profile=$2; took=2 ;;
        --jobs) jobs=$2; took=2 ;;
        *) return 1 ;;
    esac
}
bench_args "$@"
cmdline="bench/build.sh $*"
if [ "$quick" = 1 ]; then
    echo "bench/build.sh has no quick mode (a cold build is the measurement)" >&2
    exit 2
fi
bench_venv
bench_run_dir build

say "cloning $(git rev-parse --short HEAD) into $out/src"
git clone -q "$lake_root" "$out/src"
say "fetching crates (not timed)"
(cd "$out/src" && cargo fetch --locked) > "$out/fetch.log" 2>&1
bench_sampler_start "$out/busy.tsv"
trap bench_sampler_stop EXIT
say "cargo build --profile $profile into an empty target dir (timed)"
(
    cd "$out/src"
    CARGO_TARGET_DIR="$out/target" /usr/bin/time -v -o "$out/time.build" \
        cargo build --profile "$profile" --locked --timings ${jobs:+-j "$jobs"} > "$out/build.log" 2>&1
) || { tail -30 "$out/build.log" >&2; exit 1; }
bench_sampler_stop
trap - EXIT

dir=$profile
[ "$profile" = dev ] && dir=debug
bin="$out/target/$dir/lake"
size -A "$bin" > "$out/sections.txt"   # the sections loaded at run time; symbols are not among them
cp "$out/target/cargo-timings/cargo-timing.html" "$out/timing.html"

bench_report build
"$py" bench/build/report.py --out "$out" --bin "$bin" --profile "$profile" --cmdline "$cmdline" \
    > "$report"
cp "$bin" "$out/lake"   # kept with the report's inputs; the target dir is ~10 GB
if [ "$keep_target" = 1 ] && [ ! -e "$CARGO_TARGET_DIR" ]; then
    mkdir -p "$(dirname "$CARGO_TARGET_DIR")"
    mv "$out/target" "$CARGO_TARGET_DIR"
    # lake's own units were built from the clone: cargo would take them as fresh for a checkout
    # whose files are older than that build, even if they differ. Only the dependencies are kept.
    rm -rf "$CARGO_TARGET_DIR/$dir/.fingerprint/lake-"*
    say "target dir kept as $CARGO_TARGET_DIR"
else
    rm -rf "$out/target"
fi
bench_show_report "outputs and logs: $out"
