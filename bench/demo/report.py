"""Markdown report for bench/demo.sh (reads the run directory it wrote; prints to stdout). Exits 1
when a run failed: no answer, no events counted, or `lake demo` exiting non-zero."""

from __future__ import annotations

import argparse
import pathlib
import platform
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from benchlib import fmt_mib, fmt_s, machine_and_version_sections, parse_time, report_header, stats, target_block  # noqa: E402

TARGET_S = 10.0
# The line bench/demo_first_query.py prints.
LINE = re.compile(r"banner after ([\d.]+) s; first query answered after ([\d.]+) s \((\d+) events\); "
                  r"demo exit code (-?\d+)")


def main() -> None:
    p = argparse.ArgumentParser()
    for a in ("out", "lake-bin", "cmdline"):
        p.add_argument(f"--{a}", required=True)
    p.add_argument("--mode", choices=("full", "quick"), default="full")
    a = p.parse_args()
    out = pathlib.Path(a.out)
    quick = a.mode == "quick"

    runs = []
    for line in (out / "runs.tsv").read_text().splitlines():
        i, rc, prefix = line.split("\t")
        r = {"run": int(i), "rc": int(rc)}
        text = pathlib.Path(prefix + ".out").read_text() if pathlib.Path(prefix + ".out").exists() else ""
        m = LINE.search(text)
        if m:
            r.update(banner=float(m[1]), answered=float(m[2]), events=int(m[3]), demo_rc=int(m[4]))
        r["ok"] = r["rc"] == 0 and bool(m) and r.get("events", 0) > 0 and r.get("demo_rc") == 0
        t = out / f"time.{i}"
        r.update(parse_time(t) if t.exists() else {})
        runs.append(r)

    answered = [r["answered"] for r in runs if r["ok"]]
    amin, amed = stats(answered)
    L = report_header("Demo benchmark — from `lake demo` to the first answered Flight SQL query", a.cmdline)
    w = L.append
    if quick:
        w("- **Quick mode** (CI smoke test of the harness): one run.")
    w("- Each run: `bench/demo_first_query.py LAKE_BIN` starts `lake demo --lake <fresh temp dir> --port 0 "
      "--duration 5s` (embedded broker, its default history of events) and, as soon as the demo prints its "
      "Flight SQL address, runs `SELECT count(*) FROM raw.user_events` over ADBC. Times are from starting the "
      "demo process (monotonic clock).")
    w("")
    L.extend(machine_and_version_sections(out / "busy.tsv", a.lake_bin, ROOT))
    w(f"- Python {platform.python_version()} with adbc-driver-flightsql (tests/python/requirements.txt)")
    w("")
    w("## Results")
    w("")
    w("| run | Flight SQL banner after | first query answered after | events counted | demo exit code | "
      "whole script (incl. the 5 s live phase) | peak RSS (largest process) |")
    w("|---|---|---|---|---|---|---|")
    for r in runs:
        if "answered" in r:
            w(f"| {r['run']} | {fmt_s(r['banner'])} | {fmt_s(r['answered'])} | {r['events']:,} | {r['demo_rc']} | "
              f"{fmt_s(r.get('wall'))} | {fmt_mib(r.get('rss_kb'))} |")
        else:
            w(f"| {r['run']} | FAILED (exit {r['rc']}: see the logs) | | | | {fmt_s(r.get('wall'))} | |")
    w("")
    if answered:
        w(f"First query answered after: min {fmt_s(amin)}, median {fmt_s(amed)}, max {fmt_s(max(answered))} "
          f"({len(answered)} of {len(runs)} runs answered).")
        w("")
    w("## Targets")
    w("")
    ok = bool(answered) and len(answered) == len(runs) and amed < TARGET_S
    measured = (f"median {fmt_s(amed)} (min {fmt_s(amin)}, max {fmt_s(max(answered))}, {len(answered)} run{'s' if len(answered) != 1 else ''})"
                if answered else "no run answered")
    if len(answered) < len(runs):
        measured += f"; {len(runs) - len(answered)} run(s) failed"
    w(f"- First query answered < {TARGET_S:g} s after starting `lake demo`: {measured} "
      f"**{'met' if ok else 'NOT met'}**")
    w("")
    w(f"Logs of this run: `{out}`.")
    L.extend(target_block("demo", quick, [
        (f"demo: first query answered < {TARGET_S:g} s after starting `lake demo`", measured, ok)]))
    print("\n".join(L))
    sys.exit(0 if all(r["ok"] for r in runs) else 1)


if __name__ == "__main__":
    main()
