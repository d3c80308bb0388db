#!/usr/bin/env bash
# Daily-job benchmark: the shipped sql/daily/*.sql for ONE date of N seed events, run three ways on
# the same raw Delta table, with the three results checked to be identical:
#   - `lake daily` (release binary; 3 runs),
#   - DuckDB + its delta extension running the same files (`$date` bound natively; 3 runs),
#   - PySpark local[2] + delta-spark running the same files (`$date` -> `:date`; 2 runs; each run
#     is a fresh process, so its wall time includes JVM + SparkSession startup; the time without
#     startup is reported too).
# Each engine writes its results as Delta tables partitioned by date (DuckDB through deltalake).
# The raw table (N events produced into a real Kafka topic, then `lake ingest --until-caught-up`)
# is cached under $LAKE_CACHE/bench and reused. Writes bench/results/daily-<timestamp>.md
# (daily-quick-<timestamp>.md with --quick) and prints it. Exits non-zero when the engines' results
# differ.
#
#   bench/daily.sh [--quick] [--events N] [--memory-limit SIZE] [--runs N] [--spark-runs N]
#                  [--no-build] [--lake-bin PATH] [--ingest-bin PATH] [--rebuild-table]
#                  [--with-checks] [--table-only]
#
#   --quick            200,000 events, 1 run of each engine (default: 10,000,000 events, 3 runs of
#                      lake and DuckDB, 2 of Spark)
#   --events N         number of events (on one date, 2025-01-10)
#   --memory-limit S   passed to `lake daily --memory-limit S` when that flag exists (else noted
#                      in the report and skipped)
#   --no-build         do not run `cargo build --release`; use $CARGO_TARGET_DIR/release/lake
#   --lake-bin PATH    the lake binary to time (implies --no-build)
#   --ingest-bin PATH  binary that produces + ingests when the table is not cached yet (default:
#                      the timed binary)
#   --rebuild-table    re-create the cached raw table
#   --with-checks      let `lake daily` also run sql/checks/*.sql (the other engines never do;
#                      by default lake gets a --sql folder holding only daily/)
#   --table-only       build (or find) the cached raw table, print its directory and exit: no
#                      runs, no report (bench/flight.sh and bench/scale.sh read that table)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh "$@"

events="" memory_limit="" ingest_bin="" runs="" spark_runs="" rebuild=0 with_checks=0 table_only=0
date=$bench_date seed=$bench_seed
bench_opt() {
    case "$1" in
        --events) events=$2; took=2 ;;
        --memory-limit) memory_limit=$2; took=2 ;;
        --runs) runs=$2; took=2 ;;
        --spark-runs) spark_runs=$2; took=2 ;;
        --ingest-bin) ingest_bin=$2; took=2 ;;
        --rebuild-table) rebuild=1 ;;
        --with-checks) with_checks=1 ;;
        --table-only) table_only=1 ;;
        *) return 1 ;;
    esac
}
bench_args "$@"
bench_default events 10000000 200000
bench_default runs 3 1
bench_default spark_runs 2 1

# --- binaries ---------------------------------------------------------------------------------
bench_lake_bin "$build" "$lake_bin"
ingest_bin=$(readlink -f "${ingest_bin:-$lake_bin}")

# --- the raw table (cached) -------------------------------------------------------------------
bench_cached_table "$events"
table=$cached_table
if [ "$rebuild" = 1 ] || [ ! -f "$table/.complete" ]; then
    say "building the raw table: $events events on $date (kafka -> lake ingest) in $table"
    rm -rf "$table"
    mkdir -p "$table"
    scripts/kafka.sh install
    kdir=$(mktemp -d "${TMPDIR:-/tmp}/lake-bench-kafka.XXXXXX")
    trap 'bench_kafka_stop; rm -rf "$kdir"' EXIT
    bench_kafka_start "$kdir"
    topic=bench_daily
    "$ingest_bin" produce --brokers "$brokers" --topic "$topic" --events "$events" --days 1 \
        --start-date "$date" --seed "$seed" --json > "$table/produce.json"
    /usr/bin/time -v -o "$table/ingest.time" "$ingest_bin" ingest --brokers "$brokers" --topic "$topic" \
        --group bench --lake "$table/lake" --until-caught-up > "$table/ingest.out" 2> "$table/ingest.err" \
        || { tail -20 "$table/ingest.err" >&2; exit 1; }
    bench_kafka_stop; rm -rf "$kdir"; trap - EXIT
    { echo "binary=$ingest_bin"; echo "version=$("$ingest_bin" --version)";
      echo "mtime=$(date -u -r "$ingest_bin" +%FT%TZ)"; echo "built=$(date -u +%FT%TZ)"; } > "$table/built-with"
    touch "$table/.complete"
fi
raw="$table/lake/raw/user_events"
if [ "$table_only" = 1 ]; then
    echo "$table"
    exit 0
fi

# --- lake daily's flags, venv, jars -----------------------------------------------------------
bench_lake_has daily
daily_extra=()
# The sensor waits for events after the day; the benchmark's single date never gets any.
if bench_lake_flag daily --no-sensor; then daily_extra+=(--no-sensor); fi
memory_note="not requested"
if [ -n "$memory_limit" ]; then
    if bench_lake_flag daily --memory-limit; then
        daily_extra+=(--memory-limit "$memory_limit")
        memory_note="\`lake daily --memory-limit $memory_limit\` (lake only)"
    else
        memory_note="requested ($memory_limit) but \`lake daily\` has no --memory-limit flag: skipped"
        say "$memory_note"
    fi
fi

bench_venv
bench_spark_jars

# --- runs -------------------------------------------------------------------------------------
bench_run_dir daily
mkdir -p "$out/time" "$out/logs"
: > "$out/times.tsv"

bench_sampler_start "$out/busy.tsv"
trap bench_sampler_stop EXIT
bench_top "$out/ps-start.txt"

bench_linked_lake "$table" "$out/lake"
# The other engines run sql/daily only; so does lake unless --with-checks (sql/checks too).
lake_sql="$root/sql"
if [ "$with_checks" = 0 ]; then
    lake_sql="$out/sql-daily-only"
    bench_sql_dir "$lake_sql"
fi
for i in $(seq 1 "$runs"); do
    say "lake daily run $i/$runs"
    rm -rf "$out/lake/processed" "$out/lake/system"   # fresh outputs (and run history) each run
    bench_timed lake "$i" "$lake_bin" daily --lake "$out/lake" --sql "$lake_sql" --date "$date" --json "${daily_extra[@]}"
done
for i in $(seq 1 "$runs"); do
    say "duckdb run $i/$runs"
    rm -rf "$out/duckdb"
    bench_timed duckdb "$i" "$py" bench/daily/engine.py duckdb --lake "$table/lake" --sql "$root/sql" --date "$date" \
        --out "$out/duckdb" --timings "$out/duckdb.$i.json"
done
for i in $(seq 1 "$spark_runs"); do
    say "spark run $i/$spark_runs"
    rm -rf "$out/spark"
    bench_timed spark "$i" "$py" bench/daily/engine.py spark --lake "$table/lake" --sql "$root/sql" --date "$date" \
        --out "$out/spark" --timings "$out/spark.$i.json" --cores 2 --driver-memory "${BENCH_SPARK_DRIVER_MEMORY:-4g}"
done
bench_top "$out/ps-end.txt"
bench_sampler_stop
trap - EXIT

say "comparing results"
set +e
"$py" bench/daily/engine.py compare --date "$date" --sql "$root/sql" --dump "$out/csv" \
    lake="$out/lake/processed" duckdb="$out/duckdb" spark="$out/spark" > "$out/compare.json"
same=$?
set -e

bench_report daily
"$py" bench/daily/report.py --out "$out" --table "$table" --raw "$raw" --events "$events" --date "$date" \
    --seed "$seed" --lake-bin "$lake_bin" --cmdline "$cmdline" --memory-note "$memory_note" \
    --runs "$runs" --spark-runs "$spark_runs" --mode "$mode" --lake-args "${daily_extra[*]:-} (--sql: $([ "$with_checks" = 1 ] && echo 'daily + checks' || echo 'daily only'))" > "$report"
bench_show_report "outputs: $out"
if [ "$same" != 0 ]; then
    echo "RESULTS DIFFER between engines: see $out/compare.json and $out/csv" >&2
    exit 1
fi
