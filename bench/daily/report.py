"""Markdown report for bench/daily.sh (reads the run directory it wrote; prints to stdout)."""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import statistics
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from benchlib import (fmt_mib, fmt_s, java_version, machine_and_version_sections,  # noqa: E402
                      parse_time, report_header, stats, target_block, timed_runs)


def main() -> None:
    p = argparse.ArgumentParser()
    for a in ("out", "table", "raw", "events", "date", "seed", "lake-bin", "cmdline", "memory-note",
              "runs", "spark-runs", "lake-args"):
        p.add_argument(f"--{a}", required=True)
    p.add_argument("--mode", choices=("full", "quick"), default="full")
    a = p.parse_args()
    out, table = pathlib.Path(a.out), pathlib.Path(a.table)
    root = pathlib.Path(__file__).resolve().parents[2]

    runs = timed_runs(out)

    compare = json.loads((out / "compare.json").read_text())

    # table
    parquet = list(pathlib.Path(a.raw).rglob("*.parquet"))
    size = sum(f.stat().st_size for f in parquet)
    built = (table / "built-with").read_text().strip().replace("\n", "; ") if (table / "built-with").exists() else "?"
    produce = (table / "produce.json").read_text().strip() if (table / "produce.json").exists() else "?"
    ingest = parse_time(table / "ingest.time") if (table / "ingest.time").exists() else {}

    lake_wall = [r["wall"] for r in runs.get("lake", [])]
    duck_wall = [r["wall"] for r in runs.get("duckdb", [])]
    duck_engine = [r["json"]["startup_s"] + r["json"]["job_s"] for r in runs.get("duckdb", [])]
    spark_wall = [r["wall"] for r in runs.get("spark", [])]
    spark_job = [r["json"]["job_s"] for r in runs.get("spark", [])]
    spark_start = [r["json"]["startup_s"] for r in runs.get("spark", [])]

    def cpu_med(rs):
        # user+sys of the process; for Spark plus the JVM's own (read from /proc before it stops)
        return statistics.median([r["user"] + r["sys"] + r.get("json", {}).get("jvm_cpu_s", 0)
                                  for r in rs]) if rs else None

    sj = runs["spark"][0]["json"] if runs.get("spark") else {}
    dj = runs["duckdb"][0]["json"] if runs.get("duckdb") else {}
    spark_rss = max((r["json"].get("jvm_peak_rss_kb", 0) + r["json"].get("python_peak_rss_kb", 0)
                     for r in runs.get("spark", [])), default=None)

    L = report_header(f"Daily job benchmark — {int(a.events):,} events on {a.date}", a.cmdline)
    w = L.append
    if a.mode == "quick":
        w("- **Quick mode** (CI smoke test of the harness): a small input, so process and session startup "
          "dominate; the verdicts below say little about the 10M-event targets.")
    w(f"- Results identical across lake / DuckDB / Spark: **{'yes' if compare['identical'] else 'NO'}**"
      " (integers, strings, dates exact; doubles within rel 1e-12 — bit-exact flags below)")
    w(f"- Memory limit: {a.memory_note}")
    w(f"- Extra `lake daily` flags: {a.lake_args}")
    w("")
    L.extend(machine_and_version_sections(out / "busy.tsv", a.lake_bin, root))
    w(f"- DuckDB {dj.get('version', '?')} + delta extension (duckdb-extension-delta), {dj.get('threads', '?')} threads; "
      "results written with deltalake")
    w(f"- PySpark {sj.get('version', '?')} + delta-spark {sj.get('delta_spark', '?')}, "
      f"{java_version()}; conf: "
      + ", ".join(f"`{k}={v}`" for k, v in sorted(sj.get("conf", {}).items())))
    w(f"- Python {platform.python_version()}")
    w("")
    w("## Input")
    w("")
    w(f"- `raw.user_events`: {len(parquet)} Parquet files, {size / 2**20:,.0f} MiB, at `{a.raw}`")
    w(f"- Built with {built}")
    w(f"- produce: `{produce}`")
    if ingest:
        w(f"- ingest (`lake ingest --until-caught-up`, at build time): {fmt_s(ingest.get('wall'))} wall, "
          f"{fmt_mib(ingest.get('rss_kb'))} peak RSS")
    w("")
    w("## Results")
    w("")
    w("Wall = whole process (`/usr/bin/time -v`), fresh output tables each run, warm page cache.")
    w("")
    events = int(a.events)

    def unit(cpu):
        # CPU per input event and per GB of the input's Parquet: figures that compare across machines
        if cpu is None or not events or not size:
            return "n/a | n/a"
        return f"{cpu / events * 1e6:.3f} µs | {cpu / (size / 1e9):.2f} s"

    w(f"CPU per event and per GB are the run's CPU over the {events:,} input events and the "
      f"{size / 1e9:.3f} GB of input Parquet.")
    w("")
    w("| engine | runs | wall min | wall median | engine-only min / median | peak RSS | CPU (user+sys, median) "
      "| CPU per event | CPU per GB |")
    w("|---|---|---|---|---|---|---|---|---|")
    lm, lmed = stats(lake_wall)
    w(f"| `lake daily` | {len(lake_wall)} | {fmt_s(lm)} | {fmt_s(lmed)} | (same) | "
      f"{fmt_mib(max((r['rss_kb'] for r in runs.get('lake', [])), default=None))} | {fmt_s(cpu_med(runs.get('lake', [])))} | "
      f"{unit(cpu_med(runs.get('lake', [])))} |")
    dm, dmed = stats(duck_wall)
    dem, demed = stats(duck_engine)
    w(f"| DuckDB (Python) | {len(duck_wall)} | {fmt_s(dm)} | {fmt_s(dmed)} | {fmt_s(dem)} / {fmt_s(demed)} ¹ | "
      f"{fmt_mib(max((r['rss_kb'] for r in runs.get('duckdb', [])), default=None))} | {fmt_s(cpu_med(runs.get('duckdb', [])))} | "
      f"{unit(cpu_med(runs.get('duckdb', [])))} |")
    sm, smed = stats(spark_wall)
    sjm, sjmed = stats(spark_job)
    w(f"| PySpark local[2] | {len(spark_wall)} | {fmt_s(sm)} | {fmt_s(smed)} | {fmt_s(sjm)} / {fmt_s(sjmed)} ² | "
      f"{fmt_mib(spark_rss)} ³ | {fmt_s(cpu_med(runs.get('spark', [])))} ⁴ | "
      f"{unit(cpu_med(runs.get('spark', [])))} |")
    w("")
    w("¹ DuckDB connection + delta extension load + the three queries + Delta writes; excludes the Python "
      "interpreter and module imports.  ")
    w(f"² Spark without session startup: the three queries + Delta writes in an already started session. "
      f"Session startup (JVM launch, SparkSession, table registration) took {', '.join(fmt_s(s) for s in spark_start)}; "
      "the wall columns include it.  ")
    w("³ JVM peak (VmHWM) + Python driver peak.  ")
    w("⁴ Python driver + JVM (the JVM is not a waited-for child of Python, so /usr/bin/time misses it; "
      "its utime+stime is read from /proc before the session stops).")
    w("")
    w("Per query (median of runs):")
    w("")
    w("| query | DuckDB compute | DuckDB write | Spark compute+write |")
    w("|---|---|---|---|")
    for q in sorted(dj.get("queries", {})):
        dc = statistics.median(r["json"]["queries"][q]["compute_s"] for r in runs["duckdb"])
        dw = statistics.median(r["json"]["queries"][q]["write_s"] for r in runs["duckdb"])
        sc = (statistics.median(r["json"]["queries"][q]["compute_and_write_s"] for r in runs["spark"])
              if runs.get("spark") else None)
        w(f"| {q} | {fmt_s(dc)} | {fmt_s(dw)} | {fmt_s(sc)} |")
    w("")
    w("## Targets")
    w("")

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**missed**"

    targets: list[tuple[str, str, bool | None]] = []  # the machine-readable block at the end
    if lmed is not None and demed is not None:
        w(f"- lake ≤ DuckDB: lake median {fmt_s(lmed)} vs DuckDB median {fmt_s(dmed)} (process) / "
          f"{fmt_s(demed)} (engine-only, the stricter bar): {verdict(lmed <= demed)} "
          f"(process bar: {verdict(lmed <= dmed)})")
        targets.append(("lake daily ≤ DuckDB, engine-only (the stricter bar)",
                        f"{fmt_s(lmed)} vs {fmt_s(demed)} (medians)", lmed <= demed))
        targets.append(("lake daily ≤ DuckDB, whole process", f"{fmt_s(lmed)} vs {fmt_s(dmed)} (medians)",
                        lmed <= dmed))
    if lmed is not None and smed is not None:
        w(f"- lake ≥ 5× faster than PySpark: incl. session startup {smed / lmed:.1f}× {verdict(smed >= 5 * lmed)}; "
          f"excl. startup {sjmed / lmed:.1f}× {verdict(sjmed >= 5 * lmed)}")
        targets.append(("lake daily ≥ 5× faster than PySpark, incl. session startup", f"{smed / lmed:.1f}×",
                        smed >= 5 * lmed))
        targets.append(("lake daily ≥ 5× faster than PySpark, excl. startup", f"{sjmed / lmed:.1f}×",
                        sjmed >= 5 * lmed))
    targets.append(("results identical across lake / DuckDB / Spark",
                    "yes" if compare["identical"] else "NO", bool(compare["identical"])))
    w("")
    w("## Result equality")
    w("")
    w("| query | rows (lake / DuckDB / Spark) | lake = DuckDB bit-exact | lake = Spark bit-exact |")
    w("|---|---|---|---|")
    for q, s in sorted(compare["summary"].items()):
        rows = s.get("rows", {})
        w(f"| {q} | {rows.get('lake')} / {rows.get('duckdb')} / {rows.get('spark')} | "
          f"{s.get('lake==duckdb bit-exact')} | {s.get('lake==spark bit-exact')} |")
    if compare["problems"]:
        w("")
        w("Differences:")
        w("")
        w("```")
        L.extend(compare["problems"][:30])
        w("```")
    w("")
    w(f"Outputs and logs of this run: `{out}` (CSV dumps of each engine's rows in `csv/`).")
    L.extend(target_block("daily", a.mode == "quick", targets))
    print("\n".join(L))


if __name__ == "__main__":
    main()
