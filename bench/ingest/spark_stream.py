"""Spark's side of bench/ingest.sh: Kafka -> Delta with Structured Streaming, one run per process.

    spark_stream.py --brokers B --topic T --out DELTA_DIR --checkpoint DIR --timings T.json
                    [--expect N] [--cores 2] [--driver-memory 2g]

What a Spark user would write for `lake ingest --until-caught-up`: a Kafka source from the earliest
offsets, the JSON value parsed with from_json into the event contract (README), event_date derived
from the event time, and a Delta sink partitioned by event_date, run with trigger(availableNow) so
the query stops once everything present at its start is written. The table gets the same columns
as lake's raw.user_events (minus the dead-letter routing, which Spark has no equivalent for: bad
rows would come out as NULLs), so both engines write the same data.

Timings go to T.json: startup_s (SparkSession creation incl. JVM launch; interpreter imports
excluded), stream_s (query start to termination, i.e. the ingest itself), the rows read back from
the Delta table, the streaming progress, and the JVM's peak RSS and CPU time (which /usr/bin/time
on this Python process misses). Exits 1 when the rows read back differ from --expect.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "python"))
sys.path.insert(0, str(ROOT / "bench"))

import spark_delta  # noqa: E402
from benchlib import jvm_usage, vm_hwm_kb  # noqa: E402


def progress_dicts(query) -> list[dict]:
    # PySpark 4 returns StreamingQueryProgress objects, older versions plain dicts.
    return [p if isinstance(p, dict) else json.loads(p.json) for p in query.recentProgress]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--brokers", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--timings", required=True)
    p.add_argument("--expect", type=int)
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--driver-memory", default="2g")
    args = p.parse_args()

    import pyspark
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    t0 = time.perf_counter()
    spark, warehouse = spark_delta.session("lake-bench-ingest", cores=args.cores, conf={
        "spark.driver.memory": args.driver_memory,
        # The plan has no shuffle; this only keeps Delta's own small jobs (log replay, stats)
        # from spreading over Spark's cluster-sized defaults (200 and 50 partitions).
        "spark.sql.shuffle.partitions": str(2 * args.cores),
        "spark.databricks.delta.snapshotPartitions": str(2 * args.cores),
    })
    startup = time.perf_counter() - t0

    # The event contract; a naive timestamp is read in the session time zone, which
    # spark_delta.session sets to UTC, as lake does.
    schema = T.StructType([
        T.StructField("user_id", T.LongType()),
        T.StructField("event_type", T.StringType()),
        T.StructField("timestamp", T.TimestampType()),
        T.StructField("page_id", T.LongType()),
        T.StructField("session_id", T.StringType()),
    ])
    t1 = time.perf_counter()
    source = (spark.readStream.format("kafka")
              .option("kafka.bootstrap.servers", args.brokers)
              .option("subscribe", args.topic)
              .option("startingOffsets", "earliest")
              .option("failOnDataLoss", "true")
              .load())
    e = F.from_json(F.col("value").cast("string"), schema).alias("e")
    events = source.select(e, "partition", "offset", "timestamp").select(
        F.col("e.user_id").alias("user_id"),
        F.col("e.event_type").alias("event_type"),
        F.col("e.timestamp").alias("event_time"),
        F.col("e.page_id").alias("page_id"),
        F.col("e.session_id").alias("session_id"),
        F.to_date(F.col("e.timestamp")).alias("event_date"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.current_timestamp().alias("ingested_at"),
    )
    query = (events.writeStream.format("delta")
             .partitionBy("event_date")
             .option("checkpointLocation", args.checkpoint)
             .trigger(availableNow=True)
             .start(args.out))
    query.awaitTermination()
    stream = time.perf_counter() - t1
    progress = progress_dicts(query)

    jvm = jvm_usage(spark)  # before the read-back, so the peak is the ingest's own
    t2 = time.perf_counter()
    rows = spark.read.format("delta").load(args.out).count()
    readback = time.perf_counter() - t2
    conf = {k: v for k, v in spark.sparkContext.getConf().getAll()
            if k.startswith(("spark.sql.shuffle", "spark.databricks", "spark.driver.memory", "spark.master"))}
    spark.stop()
    warehouse.cleanup()

    from importlib.metadata import version
    jars = sorted(pathlib.Path(j).name for j in spark_delta.delta_jars())
    result = {
        "engine": "spark", "startup_s": startup, "stream_s": stream, "readback_s": readback,
        "rows": rows, "expected": args.expect,
        "batches": len(progress), "input_rows": sum(p.get("numInputRows", 0) for p in progress),
        "python_peak_rss_kb": vm_hwm_kb(), **jvm,
        "version": pyspark.__version__, "delta_spark": version("delta-spark"),
        "kafka_jars": [j for j in jars if "kafka" in j], "conf": conf,
        "last_progress": progress[-1] if progress else None,
    }
    pathlib.Path(args.timings).write_text(json.dumps(result, indent=1, default=str))
    if args.expect is not None and rows != args.expect:
        print(f"spark wrote {rows} rows to {args.out}, expected {args.expect} "
              f"(streaming progress counted {result['input_rows']} input rows in {len(progress)} batches)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
