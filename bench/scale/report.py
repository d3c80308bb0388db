"""Markdown report for bench/scale.sh (reads the run directory it wrote; prints to stdout)."""

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
from benchlib import (fmt_mib, fmt_s, machine_and_version_sections, parse_time, report_header, stats,  # noqa: E402
                      target_block)

ANSI = re.compile(r"\x1b\[[0-9;]*m")
GIB_KB = 1024 * 1024


def millions(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n:,}"


def cell(text: str) -> str:
    return ANSI.sub("", text).replace("|", "\\|")


def read_run(case: str, run: str, limit: str, rc: str, path: str, check: str) -> dict:
    d = pathlib.Path(path)
    r = {"case": case, "run": int(run), "limit": limit, "rc": int(rc), "dir": d, "check": check,
         "ok": check.startswith("ok:")}
    r.update(parse_time(d / "time") if (d / "time").exists() else {})
    spill = (d / "spill").read_text().split() if (d / "spill").exists() else []
    r["spill_bytes"], r["spill_files"] = (int(spill[0]), int(spill[1])) if len(spill) == 2 else (0, 0)
    mtime = (d / "tmp.mtime").read_text().strip() if (d / "tmp.mtime").exists() else ""
    # TMPDIR's mtime was set to 0 before the run: anything created in it since moved it.
    r["spilled"] = None if not mtime else mtime != "0"
    try:
        rows = json.loads((d / "out.json").read_text())["dates"][0]["rows"]
        r["rows"] = sum(v or 0 for v in rows.values())
        r["tables"] = rows
    except (OSError, ValueError, LookupError):
        r["rows"], r["tables"] = None, {}
    return r


def main() -> None:
    p = argparse.ArgumentParser()
    for a in ("out", "table", "base", "events", "copies", "date", "lake-bin", "cmdline", "memory-limit"):
        p.add_argument(f"--{a}", required=True)
    p.add_argument("--mode", choices=("full", "quick"), default="full")
    a = p.parse_args()
    out, table = pathlib.Path(a.out), pathlib.Path(a.table)
    events, copies = int(a.events), int(a.copies)
    total = events * copies
    quick = a.mode == "quick"

    runs = [read_run(*line.split("\t")) for line in (out / "cases.tsv").read_text().splitlines() if line]
    daily = [r for r in runs if r["case"] == "daily"]
    spill = next((r for r in runs if r["case"] == "spill"), None)
    unlimited = next((r for r in runs if r["case"] == "unlimited"), None)

    raw = table / "lake" / "raw" / "user_events"
    parquet = list(raw.rglob("*.parquet"))
    size = sum(f.stat().st_size for f in parquet)
    build = parse_time(table / "build.time") if (table / "build.time").exists() else {}
    built = (table / "built-with").read_text().strip().replace("\n", "; ") if (table / "built-with").exists() else "?"

    L = report_header(f"Scale benchmark — the daily job over {millions(total)} events with a memory limit", a.cmdline)
    w = L.append
    if quick:
        w(f"- **Quick mode** (CI smoke test of the harness): {millions(total)} events instead of 100M and a "
          "debug-friendly spill limit; the target is about 100M events and is NOT measured by this run.")
    w("- Each run: a fresh lake directory (fresh processed/ and system/) whose raw/ links the cached table, "
      "read only; `/usr/bin/time -v` around `lake daily --no-sensor --json`; `TMPDIR` set to an empty "
      "directory of its own, where DataFusion creates its spill files and deletes them when the query "
      "ends: \"spilled\" says whether anything was created there (its mtime moved), and the most bytes "
      "a watcher saw in it at once (sampled every 0.1 s, so a lower bound).")
    w("")
    L.extend(machine_and_version_sections(out / "busy.tsv", a.lake_bin, ROOT))
    w(f"- Python {platform.python_version()} (bench/scale_table.py: deltalake)")
    w("")
    w("## Input")
    w("")
    w(f"- `raw.user_events`: {total:,} events on {a.date}, {len(parquet)} Parquet files, "
      f"{size / 2**30:,.2f} GiB, at `{raw}`")
    w(f"- Built by `bench/scale_table.py`: the {events:,}-event table of bench/daily.sh (`{a.base}`) "
      f"appended {copies} times (one commit per copy; Kafka offsets repeat between copies, which the "
      "daily job does not read)"
      + (f"; build took {fmt_s(build.get('wall'))}, {fmt_mib(build.get('rss_kb'))} peak RSS" if build else "")
      + f". {built}")
    w("")
    w("## Results")
    w("")
    w(f"CPU per event and per GB: the run's CPU over the {total:,} input events and the "
      f"{size / 1e9:.2f} GB of input Parquet.")
    w("")
    w("| case | `--memory-limit` | run | wall | peak RSS | CPU (user+sys) | CPU per event | CPU per GB "
      "| spilled (most at once) | rows written | check |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    names = {"daily": "daily job (sql/daily, 3 files)", "spill": "spill: `event_dedup.sql`",
             "unlimited": "spill query, no limit"}
    for r in runs:
        spilled = spill_text(r)
        cpu = r["user"] + r["sys"] if "user" in r else None
        w(f"| {names.get(r['case'], r['case'])} | {'none' if r['limit'] == 'none' else r['limit']} | {r['run']} | "
          f"{fmt_s(r.get('wall'))} | {fmt_mib(r.get('rss_kb'))} | {fmt_s(cpu)} | "
          f"{'n/a' if cpu is None or not total else f'{cpu / total * 1e6:.3f} µs'} | "
          f"{'n/a' if cpu is None or not size else f'{cpu / (size / 1e9):.2f} s'} | {spilled} | "
          f"{'n/a' if r['rows'] is None else format(r['rows'], ',')} | "
          f"{cell(r['check'])} |")
    w("")
    w("The daily job's rows: " + "; ".join(f"`{t}` {n}" for t, n in (daily[0]["tables"] if daily else {}).items())
      + ". The spill query writes `processed.event_dedup`: one row per distinct (user_id, event_time, page_id).")
    w("")

    ok_daily = bool(daily) and all(r["ok"] for r in daily)
    walls = [r["wall"] for r in daily if r["ok"] and "wall" in r]
    wmin, wmed = stats(walls)
    rss = max((r.get("rss_kb", 0) for r in daily), default=0)
    w("## Targets")
    w("")
    w(f"- {millions(total)} under {a.memory_limit.replace('G', ' GiB').replace('M', ' MiB')} completes "
      f"(`lake daily --memory-limit {a.memory_limit}`, {len(daily)} run{'s' if len(daily) != 1 else ''}, totals checked): "
      f"**{'met' if ok_daily else 'NOT met'}**"
      + (f" — wall min {fmt_s(wmin)} / median {fmt_s(wmed)}, peak RSS {fmt_mib(rss)}" if walls else ""))
    under_rss = ok_daily and rss < GIB_KB * limit_gib(a.memory_limit)
    w(f"- (stricter reading) the process's peak RSS stayed under the limit: {fmt_mib(rss)} "
      f"**{'met' if under_rss else 'NOT met'}** (the limit bounds what queries hold, not the process: "
      "Parquet readers, the Delta writer and the allocator's slack come on top)")
    targets = [
        (f"scale: daily job over {millions(total)} events with --memory-limit {a.memory_limit} completes, "
         "totals correct", f"{fmt_s(wmed)} median wall, {fmt_mib(rss)} peak RSS" if walls else
         "; ".join(r["check"] for r in daily if not r["ok"])[:200], ok_daily),
        (f"scale: that job's peak RSS < {a.memory_limit} (stricter reading)", fmt_mib(rss), under_rss),
    ]
    if spill:
        spilled = bool(spill["spilled"])
        free = unlimited.get("rss_kb") if unlimited else None
        state_note = (f"without a limit the same query peaks at {fmt_mib(free)}" if free else
                      "the run without a limit has no figure")
        w(f"- Spill: the high-cardinality GROUP BY under `--memory-limit {spill['limit']}` completes with correct "
          f"totals: **{'met' if spill['ok'] else 'NOT met'}** — {fmt_s(spill.get('wall'))}, peak RSS "
          f"{fmt_mib(spill.get('rss_kb'))}; spilled: {spill_text(spill)}; {state_note}.")
        targets.append((f"scale: high-cardinality GROUP BY over {millions(total)} events under --memory-limit "
                        f"{spill['limit']} completes, totals correct",
                        f"{fmt_s(spill.get('wall'))}, peak RSS {fmt_mib(spill.get('rss_kb'))} "
                        f"({fmt_mib(free)} without a limit), "
                        + ("spilled" if spilled else "did not spill"),
                        spill["ok"] and unlimited is not None and unlimited["ok"]))
        if spill["ok"] and not spilled:
            w("  It did not spill: the state fit under the limit.")
    if walls and len(walls) > 1:
        w("")
        w(f"Daily-job walls: {', '.join(fmt_s(x) for x in walls)} (median {fmt_s(statistics.median(walls))}).")
    w("")
    w(f"Outputs and logs of this run: `{out}`.")
    L.extend(target_block("scale", quick, targets))
    print("\n".join(L))


def spill_text(r: dict) -> str:
    if r["spilled"] is None:
        return "n/a"
    if not r["spilled"]:
        return "no"
    seen = r["spill_bytes"]
    return ("**yes**, " + (f"≥ {seen / 2**20:,.0f} MiB at once ({r['spill_files']} files)" if seen
                          else "files too short-lived for the 0.1 s sampler to size"))


def limit_gib(limit: str) -> float:
    """A --memory-limit (DataFusion's K/M/G suffixes, powers of 1024) in GiB."""
    units = {"K": 1 / 1024 ** 2, "M": 1 / 1024, "G": 1.0}
    return float(limit[:-1]) * units[limit[-1].upper()] if limit[-1:].upper() in units else float(limit) / 2 ** 30


if __name__ == "__main__":
    main()
