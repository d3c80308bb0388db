#!/usr/bin/env bash
# A lake on a local folder vs the same lake on an S3 server on loopback (SeaweedFS, built by
# scripts/s3.sh; issue 19), side by side in one run:
#   - ingest: EVENTS seed events in a real Kafka topic (3 partitions), then per round and place
#     `lake ingest --until-caught-up --no-maintain` into a new lake: wall, events/s, CPU µs/event
#     (user + sys of the whole process, /usr/bin/time);
#   - daily: `lake daily` for the date over each round-1 lake: wall and CPU;
#   - commit cost on S3: COMMIT_EVENTS events over 7 dates ingested 500 per commit, with the
#     object-store requests per commit `lake ingest` reports; then the daily job for one date of
#     that lake, its requests against the data files of that date and of the whole table
#     (partition pruning);
#   - point query: `lake serve` over each lake, QUERIES prepared ADBC queries for one date of
#     processed.daily_metrics per round (bench/metrics/point.py): p50 / p99, and the object-store
#     requests per query on S3 (lake_object_store_requests_total before and after).
# Targets: ingest on S3 at least 70% of the local throughput; point-query p50 on S3 at most
# twice the local one.
#
#   bench/s3.sh [--quick] [--events N] [--rounds R] [--queries Q] [--no-build] [--lake-bin PATH]
#
#   --quick   20,000 events, 1 round, 100 queries (the CI smoke test; figures meaningless)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh "$@"

events="" rounds="" queries=""
bench_opt() {
    case "$1" in
        --events) events=$2; took=2 ;;
        --rounds) rounds=$2; took=2 ;;
        --queries) queries=$2; took=2 ;;
        *) return 1 ;;
    esac
}
bench_args "$@"
cmdline="bench/s3.sh $*"
bench_default events 1000000 20000
bench_default rounds 3 1
bench_default queries 1000 100
commit_events=$(( events < 100000 ? events : 100000 ))
bench_counts --positive "$events" "$rounds" "$queries"
bench_lake_bin "$build" "$lake_bin"
bench_venv
bench_run_dir s3

s3_dir="$out/s3" serve_pid="" point_pid=""
cleanup() {
    bench_stop "$point_pid"; bench_stop "$serve_pid"; bench_sampler_stop; bench_kafka_stop
    scripts/s3.sh stop "$s3_dir" || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

bench_kafka_start "$out/kafka"
say "starting SeaweedFS $(scripts/s3.sh version) (state in $s3_dir)"
scripts/s3.sh start "$s3_dir" > /dev/null
eval "$(scripts/s3.sh env "$s3_dir")"
bench_sampler_start "$out/busy.tsv"
topic="s3_bench_$ts"
say "producing $events events into $topic"
"$lake_bin" produce --brokers "$brokers" --topic "$topic" --events "$events" --days 1 \
    --start-date "$bench_date" --seed "$bench_seed" --json > "$out/produce.json"

# where ROUND PLACE: the lake of that round and place.
where() { if [ "$2" = local ]; then echo "$out/lake-local-$1"; else echo "s3://lake/bench-$ts/lake-$1"; fi; }

for round in $(seq 1 "$rounds"); do
    for place in local s3; do
        say "round $round: ingest into the $place lake"
        bench_timed "ingest-$place" "$round" "$lake_bin" ingest --lake "$(where "$round" "$place")" \
            --brokers "$brokers" --topic "$topic" --group "g-$place-$round" --until-caught-up \
            --no-maintain
    done
done

bench_sql_dir "$out/sql"
for place in local s3; do
    say "daily job over the $place lake"
    bench_timed "daily-$place" 1 "$lake_bin" daily --lake "$(where 1 "$place")" --sql "$out/sql" \
        --date "$bench_date" --no-sensor --json
done

say "commit cost: $commit_events events over 7 dates, 500 per commit, into an S3 lake"
commits_lake="s3://lake/bench-$ts/commits"
"$lake_bin" produce --brokers "$brokers" --topic "${topic}_commits" --events "$commit_events" \
    --days 7 --start-date "$bench_date" --seed "$bench_seed" --json > "$out/produce-commits.json"
bench_timed commits-s3 1 "$lake_bin" ingest --lake "$commits_lake" --brokers "$brokers" \
    --topic "${topic}_commits" --group g-commits --until-caught-up --no-maintain --max-rows 500
bench_timed daily7-s3 1 "$lake_bin" daily --lake "$commits_lake" --sql "$out/sql" \
    --date "$bench_date" --no-sensor --json
"$py" - "$commits_lake/raw/user_events" "$bench_date" > "$out/files-commits.json" <<'PY'
import collections, json, os, sys
import deltalake
keys = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ALLOW_HTTP")
table = deltalake.DeltaTable(sys.argv[1], storage_options={k: os.environ[k] for k in keys if k in os.environ})
import pyarrow as pa
adds = pa.table(table.get_add_actions(flatten=True))
files = collections.Counter(str(d) for d in adds.column("partition.event_date").to_pylist())
print(json.dumps({"files": sum(files.values()), "files_on_date": files.get(sys.argv[2], 0),
                  "dates": len(files)}))
PY

for round in $(seq 1 "$rounds"); do
    for place in local s3; do
        port=$(free_port)
        bench_serve "$lake_bin" "$(where 1 "$place")" "$out/serve-$place-$round" \
            --metrics-addr "127.0.0.1:$port"
        say "round $round: $queries point queries on the $place lake"
        "$py" bench/metrics/point.py --url "$serve_url" --date "$bench_date" --queries 1 \
            --out "$out/warm-$place-$round.json" || die_log "$out/serve-$place-$round.err" "warm-up failed"
        curl -fsS "http://127.0.0.1:$port/metrics" > "$out/metrics-before-$place-$round.txt"
        "$py" bench/metrics/point.py --url "$serve_url" --date "$bench_date" --queries "$queries" \
            --out "$out/point-$place-$round.json" &
        point_pid=$!
        wait "$point_pid" || die_log "$out/serve-$place-$round.err" "point queries failed"
        point_pid=""
        curl -fsS "http://127.0.0.1:$port/metrics" > "$out/metrics-after-$place-$round.txt"
        bench_stop "$serve_pid"; serve_pid=""
    done
done
bench_sampler_stop

bench_report s3
"$py" bench/s3/report.py --out "$out" --events "$events" --queries "$queries" \
    --lake-bin "$lake_bin" --seaweedfs "$(scripts/s3.sh version)" --cmdline "$cmdline" \
    "${quick_flag[@]}" > "$report"
bench_show_report "outputs and logs: $out"
