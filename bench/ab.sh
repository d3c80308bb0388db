#!/usr/bin/env bash
# A/B catch-ups run side by side (bench/NOTES.md, "What a commit costs"): two lake binaries each
# ingest the same topic from its start into a fresh lake with a fresh consumer group, both at
# once, ROUNDS times; prints each run's CPU (user+sys), wall and peak RSS from /usr/bin/time.
# This VM's speed drifts by up to 2x within minutes, so runs of one binary after the other are
# not comparable; two runs at the same moment are (the same binary against itself: 1-5 %). The
# first to finish leaves the other the machine for its last seconds; swap A and B to check.
#
#   bench/ab.sh --brokers HOST:PORT --topic TOPIC A_BIN B_BIN [ROUNDS] [-- LAKE_INGEST_FLAGS...]
#
# The topic is any topic of seed events, e.g. after `scripts/kafka.sh start DIR`:
#   lake produce --brokers "$(cat DIR/bootstrap)" --topic ab10m --events 10000000 --days 1 \
#     --start-date 2025-01-10 --seed 42
set -euo pipefail
brokers="" topic=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --brokers) brokers=$2; shift 2 ;;
    --topic) topic=$2; shift 2 ;;
    *) break ;;
  esac
done
[[ -n "$brokers" && -n "$topic" && $# -ge 2 ]] || { sed -n '2,13p' "$0"; exit 2; }
a=$1 b=$2 rounds=3
shift 2
if [[ $# -gt 0 && "$1" =~ ^[0-9]+$ ]]; then rounds=$1; shift; fi
if [[ "${1:-}" == "--" ]]; then shift; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

one() { # label bin
  local dir="$work/$1"
  rm -rf "$dir" && mkdir -p "$dir"
  /usr/bin/time -f "%U %S %e %M" -o "$dir/time" "$2" ingest --brokers "$brokers" --topic "$topic" \
    --group "ab-$1-$(date +%s%N)" --lake "$dir/lake" --until-caught-up "${@:3}" \
    > "$dir/out" 2> "$dir/err" || { echo "$1 failed:"; tail -5 "$dir/err"; return 1; }
  local u s e m
  read -r u s e m < "$dir/time"
  printf '%s cpu %.2f s wall %.2f s rss %d MiB (%s)' "$1" "$(echo "$u + $s" | bc)" "$e" \
    $((m / 1024)) "$(tail -1 "$dir/out")" > "$work/$1.line"
}

for i in $(seq "$rounds"); do
  one A "$a" "$@" & pa=$!
  one B "$b" "$@" & pb=$!
  wait "$pa" && wait "$pb"
  echo "round $i: $(cat "$work/A.line") | $(cat "$work/B.line")"
done
