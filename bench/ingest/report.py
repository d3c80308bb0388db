"""Markdown report for bench/ingest.sh (reads the run directory it wrote; prints to stdout)."""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import re
import statistics
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from benchlib import (fmt_mib, fmt_s, java_version, machine_and_version_sections,  # noqa: E402
                      report_header, stats, target_block, timed_runs)

# Issue 7's targets for this section.
TARGET_EVENTS_PER_S = 300_000
TARGET_RSS_MIB = 256
TARGET_VS_SPARK = 10
# Issue 18's: CPU per event, whole process, which the machine's core count does not decide.
TARGET_CPU_US_PER_EVENT = 2.0


def rate(events: int, secs: float | None) -> str:
    return "n/a" if not secs else f"{events / secs:,.0f}"


def per_event(cpu: float | None, events: int) -> str:
    return "n/a" if cpu is None or not events else f"{cpu / events * 1e6:.2f} µs"


def main() -> None:
    p = argparse.ArgumentParser()
    for a in ("out", "events", "topic", "lake-bin", "cmdline", "runs", "spark-runs", "kafka-version",
              "lake-args", "mode"):
        p.add_argument(f"--{a}", required=True)
    a = p.parse_args()
    out = pathlib.Path(a.out)
    events = int(a.events)
    quick = a.mode == "quick"

    runs = timed_runs(out)
    lake, spark, floor = runs.get("lake", []), runs.get("spark", []), runs.get("floor", [])
    compare = json.loads((out / "compare.json").read_text())
    produce = json.loads((out / "produce.json").read_text())

    lake_wall = [r["wall"] for r in lake]
    # The Spark process also reads its table back to count the rows (a check, not ingest): that
    # time is taken out. What remains is interpreter + JVM + session startup, the stream, and stop.
    spark_wall = [r["wall"] - r["json"]["readback_s"] for r in spark]
    spark_stream = [r["json"]["stream_s"] for r in spark]
    spark_start = [r["json"]["startup_s"] for r in spark]
    lm, lmed = stats(lake_wall)
    sm, smed = stats(spark_wall)
    ssm, ssmed = stats(spark_stream)
    lake_rss = max((r["rss_kb"] for r in lake), default=None)
    spark_rss = max((r["json"]["jvm_peak_rss_kb"] + r["json"]["python_peak_rss_kb"] for r in spark), default=None)

    def cpu_med(rs):
        # user+sys of the process; for Spark plus the JVM's own, read from /proc before it stopped
        return statistics.median([r["user"] + r["sys"] + r.get("json", {}).get("jvm_cpu_s", 0)
                                  for r in rs]) if rs else None

    sj = spark[0]["json"] if spark else {}
    L = report_header(f"Ingest benchmark — {events:,} events, Kafka → Delta: `lake ingest` vs Spark Structured Streaming", a.cmdline)
    w = L.append
    if quick:
        w("- **Quick mode** (CI smoke test of the harness): the input is tiny, so process startup dominates "
          "every figure; the targets below are for 10M events and are NOT measured by this run.")
    elif events < 10_000_000:
        w(f"- {events:,} events: the targets are stated for 10M events; startup weighs more at this size.")
    engines = "lake and Spark" if spark else "lake"
    w(f"- Outputs verified ({engines}: {events:,} events each, 0 dead letters, no NULL fields, no duplicate "
      "offsets" + ("; lake and Spark tables identical row for row on every column but `ingested_at`" if spark else "")
      + f", read with DuckDB's delta extension): **{'yes' if compare['ok'] else 'NO'}**")
    w("")
    shared = "- Kafka broker, producer and consumers all share these cores; each engine runs alone (one at a time)."
    L.extend(machine_and_version_sections(out / "busy.tsv", a.lake_bin, ROOT, machine_notes=(shared,)))
    w(f"- Kafka {a.kafka_version} (KRaft, single node, JVM `-Xmx512m`, `scripts/kafka.sh`), topic `{a.topic}`, "
      f"{len(compare['tables'].get('lake', {}).get('by_partition', {})) or '?'} partitions")
    if spark:
        w(f"- PySpark {sj.get('version', '?')} + delta-spark {sj.get('delta_spark', '?')}; Kafka source jars: "
          + ", ".join(f"`{j}`" for j in sj.get("kafka_jars", [])) + f"; {java_version()}; conf: "
          + ", ".join(f"`{k}={v}`" for k, v in sorted(sj.get("conf", {}).items())))
    else:
        w(f"- Spark: not run (`--no-spark`); {java_version()}")
    w(f"- Python {platform.python_version()}")
    w("")
    w("## Input and commands")
    w("")
    w(f"- produce (`lake produce --events {events} --days 1 --start-date 2025-01-10 --seed 42`, before the runs): "
      f"{produce.get('delivered', 0):,} delivered, {produce.get('failed', '?')} failed, "
      f"{produce.get('events_per_second', 0):,.0f} events/s")
    w(f"- lake: `lake ingest --brokers B --topic {a.topic} --group <fresh per run> --lake <fresh dir> "
      f"--until-caught-up{(' ' + a.lake_args) if a.lake_args.strip() else ''}`; {len(lake)} runs")
    if spark:
        last = sj.get("last_progress") or {}
        w(f"- Spark: `bench/ingest/spark_stream.py` — `readStream.format(\"kafka\")` (subscribe `{a.topic}`, "
          "startingOffsets earliest) → `from_json` into the event schema (timestamp → TIMESTAMP in UTC) → "
          "event_date → `writeStream.format(\"delta\").partitionBy(\"event_date\")`, `trigger(availableNow=True)`, "
          f"fresh checkpoint and table each run; {len(spark)} run(s), each a fresh process; "
          f"micro-batches per run: {', '.join(str(r['json']['batches']) for r in spark)}"
          + (f"; last batch's durations (ms): {last.get('durationMs')}" if last else ""))
    w("")
    w("## Results")
    w("")
    w("Wall = whole process (`/usr/bin/time -v`); events/s = events / median wall.")
    w("")
    w("| engine | runs | wall min | wall median | events/s | peak RSS | CPU (user+sys, median) | CPU per event |")
    w("|---|---|---|---|---|---|---|---|")
    w(f"| `lake ingest --until-caught-up` | {len(lake)} | {fmt_s(lm)} | {fmt_s(lmed)} | {rate(events, lmed)} | "
      f"{fmt_mib(lake_rss)} | {fmt_s(cpu_med(lake))} | {per_event(cpu_med(lake), events)} |")
    if floor:
        fm, fmed = stats([r["wall"] for r in floor])
        w(f"| consumer floor (`examples/consume_floor.rs`: librdkafka only, no decode, no write) ⁵ | {len(floor)} | "
          f"{fmt_s(fm)} | {fmt_s(fmed)} | {rate(events, fmed)} | {fmt_mib(max(r['rss_kb'] for r in floor))} | "
          f"{fmt_s(cpu_med(floor))} | {per_event(cpu_med(floor), events)} |")
    if spark:
        w(f"| Spark Structured Streaming local[2], whole process ¹ | {len(spark)} | {fmt_s(sm)} | {fmt_s(smed)} | "
          f"{rate(events, smed)} | {fmt_mib(spark_rss)} ² | {fmt_s(cpu_med(spark))} ³ | "
          f"{per_event(cpu_med(spark), events)} |")
        w(f"| Spark, stream only (excl. startup) ⁴ | {len(spark)} | {fmt_s(ssm)} | {fmt_s(ssmed)} | "
          f"{rate(events, ssmed)} | (same) | (same) | (same) |")
        w("")
        w("¹ Python interpreter + JVM launch + SparkSession + the streaming query + stop; the read-back count "
          "that checks the table afterwards is excluded.  ")
        w("² JVM peak (VmHWM, read before the read-back) + Python driver peak.  ")
        w("³ Python driver + JVM (the JVM is not a waited-for child of Python, so /usr/bin/time misses it; its "
          "utime+stime is read from /proc when the query has finished).  ")
        w(f"⁴ From `writeStream.start()` to `awaitTermination()` returning, in a started session (session startup "
          f"took {', '.join(fmt_s(s) for s in spark_start)}).")
    if floor:
        w("")
        w("⁵ The same topic read with lake's fetch settings by a bare librdkafka consumer that counts the "
          "messages' bytes and does nothing else; the broker serves it on the same cores. Its own timing per run "
          "(first to last message): " + "; ".join(f"`{r['stdout']}`" for r in floor) + ".")
    w("")
    w("lake's own summary per run: "
      + "; ".join(f"`{r['stdout'].splitlines()[-1]}`" if r["stdout"] else "?" for r in lake))
    w("")
    w("## Targets (issues 7 and 18)")
    w("")
    if quick:
        w("Quick mode: the verdicts below apply to this tiny input only and say nothing about the targets.")
        w("")

    def verdict(ok: bool) -> str:
        return "met" if ok else "**NOT met**"

    w("| target | measured | verdict |")
    w("|---|---|---|")
    targets: list[tuple[str, str, bool | None]] = []  # also the machine-readable block at the end

    def target(text: str, measured: str, ok: bool | None) -> None:
        targets.append((text, measured, ok))
        w(f"| {text} | {measured} | {'n/a' if ok is None else verdict(ok)} |")

    if lmed:
        eps = events / lmed
        target(f"lake ≥ {TARGET_EVENTS_PER_S:,} events/s", f"{eps:,.0f} events/s (median wall)",
               eps >= TARGET_EVENTS_PER_S)
    if lake_rss:
        target(f"lake peak RSS < {TARGET_RSS_MIB} MiB", f"{fmt_mib(lake_rss)} (max of runs)",
               lake_rss / 1024 < TARGET_RSS_MIB)
    lake_cpu = cpu_med(lake)
    if lake_cpu is not None and events:
        us = lake_cpu / events * 1e6
        target(f"lake CPU ≤ {TARGET_CPU_US_PER_EVENT} µs per event (whole process, user+sys, median run)",
               f"{us:.2f} µs", us <= TARGET_CPU_US_PER_EVENT)
        spark_cpu = cpu_med(spark)
        if spark_cpu:
            target("lake ≥ 10× less CPU per event than Spark", f"{spark_cpu / lake_cpu:.1f}×",
                   spark_cpu / lake_cpu >= 10)
    if lmed and smed:
        target(f"lake ≥ {TARGET_VS_SPARK}× Spark's throughput, Spark whole process", f"{smed / lmed:.1f}×",
               smed / lmed >= TARGET_VS_SPARK)
        target(f"lake ≥ {TARGET_VS_SPARK}× Spark's throughput, Spark stream only (the stricter bar)",
               f"{ssmed / lmed:.1f}×", ssmed / lmed >= TARGET_VS_SPARK)
        if floor:
            fmed = stats([r["wall"] for r in floor])[1]
            w(f"| (for reference) consumer floor vs Spark stream only: the most any librdkafka consumer could "
              f"reach here | {ssmed / fmed:.1f}× | — |")
        if lake_rss and spark_rss:
            w(f"| (for reference) peak RSS, Spark / lake | {spark_rss / lake_rss:.1f}× | — |")
    elif not spark:
        target(f"lake ≥ {TARGET_VS_SPARK}× Spark's throughput", "Spark not run (`--no-spark`)", None)
    w("")
    w("## Outputs")
    w("")
    tables = compare.get("tables", {})
    names = list(tables)
    if names:
        w("| event_type | " + " | ".join(names) + " |")
        w("|---|" + "---|" * len(names))
        for t in sorted({k for s in tables.values() for k in s["by_event_type"]}):
            w(f"| {t} | " + " | ".join(f"{tables[n]['by_event_type'].get(t, 0):,}" for n in names) + " |")
        w("| **total** | " + " | ".join(f"{tables[n]['rows']:,}" for n in names) + " |")
        w("")
    if "rows_only_in" in compare:
        w(f"Rows only in one table (all columns but ingested_at): lake {compare['rows_only_in']['lake']:,}, "
          f"spark {compare['rows_only_in']['spark']:,}. lake dead letters: {compare.get('lake_dead_letters', 0):,}.")
        w("")
    if compare["problems"]:
        w("Problems:")
        w("")
        w("```")
        L.extend(re.sub(r"\s+", " ", p) for p in compare["problems"][:30])
        w("```")
        w("")
    w(f"Outputs and logs of this run: `{out}`.")
    if not compare["ok"]:
        targets.append(("outputs verified (lake" + (" and Spark" if spark else "") + f": {events:,} events each)",
                        "wrong or different: see Problems", False))
    L.extend(target_block("ingest", quick, targets))
    print("\n".join(L))


if __name__ == "__main__":
    main()
