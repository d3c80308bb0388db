"""Assembles BENCHMARKS.md (bench/run.sh calls it): a header, a summary table of every target, the
report of each section in full, then bench/NOTES.md. Prints nothing but the output's path.

    python bench/assemble.py --out BENCHMARKS.md [--mode full|quick]
                             [--report SECTION=PATH ...] [--failed SECTION ...] [--note TEXT]

--report names the report a section just wrote; --failed marks a section whose run failed in this
harness run. In full mode the sections without a --report get the newest report in bench/results/
(full runs preferred over --quick ones); in quick mode only the given reports are included.

The targets come from the block every report ends with (benchlib.target_block):
    <!-- bench-report: section=NAME mode=full|quick -->
    <!-- target: TARGET | MEASURED | met|NOT met|n/a -->
Reports written before that block existed are read from their "Targets" section instead (its
bullets `- TARGET: MEASURED **met**` or its `| target | measured | verdict |` table).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from benchlib import machine_summary  # noqa: E402

SECTIONS = ("ingest", "daily", "freshness", "flight", "scale", "demo", "soak", "metrics", "s3", "build")
TITLES = {
    "ingest": "Ingest: Kafka → `raw.user_events`, lake vs Spark Structured Streaming",
    "daily": "Daily job: `lake daily` vs DuckDB vs PySpark",
    "freshness": "Freshness: produce → visible over Flight SQL",
    "flight": "Flight SQL: point queries and full scans",
    "scale": "Scale: the daily job over 100M events under a memory limit",
    "demo": "Demo: first answered query",
    "soak": "Soak: 30 minutes of commits every 100 ms, maintenance on and off",
    "metrics": "Metrics overhead: ingest and point queries with metrics off and on",
    "s3": "Local folder vs S3 server on loopback: ingest, daily job, point queries",
    "build": "Cold build of the release binary: build time and binary size",
}
# A report's image links are relative to the report; this document lives at the root.
IMAGE = re.compile(r"!\[([^\]]*)\]\((?!https?:|/)([^)]+)\)")
RESULTS = ROOT / "bench" / "results"
NAME = re.compile(r"^(?P<section>[a-z][a-z0-9]*)-(?P<quick>quick-)?(?P<ts>\d{8}T\d{6}Z)\.md$")
MARK = re.compile(r"^<!-- bench-report: section=(\S+) mode=(full|quick) -->$")
TARGET = re.compile(r"^<!-- target: (.*) -->$")
VERDICT = re.compile(r"\*\*(met|NOT met|missed)\*\*")
DEBUG = "timed lake binary is a DEBUG build"  # benchlib.lake_version_lines' warning


@dataclasses.dataclass
class Report:
    section: str
    path: pathlib.Path
    ts: str
    quick: bool
    text: str
    targets: list[tuple[str, str, str]]  # (target, measured, met|NOT met|n/a)


def read_report(path: pathlib.Path) -> Report:
    text = path.read_text()
    m = NAME.match(path.name)
    section, ts = (m["section"], m["ts"]) if m else (path.stem.split("-")[0], "")
    quick = bool(m and m["quick"])
    targets = []
    for line in text.splitlines():
        if mk := MARK.match(line.strip()):
            quick = mk[2] == "quick"
        elif tg := TARGET.match(line.strip()):
            parts = [p.strip() for p in tg[1].split(" | ")]
            if len(parts) == 3:
                targets.append((parts[0], parts[1], parts[2]))
    if not any(MARK.match(line.strip()) for line in text.splitlines()):
        # An older report: no block; its command line tells the mode, its Targets section the rest.
        quick = quick or bool(re.search(r"^- Command: `[^`]*--quick", text, re.M))
        targets = legacy_targets(text)
    return Report(section, path, ts, quick, text, targets)


def legacy_targets(text: str) -> list[tuple[str, str, str]]:
    m = re.search(r"^## Targets[^\n]*\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    if not m:
        return []
    out = []
    for line in m[1].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) == 3 and cells[0] not in ("target", "") and not cells[0].startswith("---"):
            verdict = cells[2].replace("*", "")
            if verdict in ("met", "NOT met", "n/a"):
                out.append((cells[0], cells[1], verdict))
        elif line.startswith("- ") and VERDICT.search(line):
            verdicts = VERDICT.findall(line)
            target, _, measured = line[2:].partition(": ")
            measured = re.sub(r"\s*\*\*(met|NOT met|missed)\*\*\s*$", "", measured)  # the verdict column
            measured = VERDICT.sub(lambda v: v[1], measured).strip()
            out.append((target.strip(), measured, "met" if all(v == "met" for v in verdicts) else "NOT met"))
    return out


def newest(section: str) -> Report | None:
    """The newest report of a section in bench/results: full runs first, then quick ones; within
    each, release builds before debug builds."""
    reports = [read_report(p) for p in RESULTS.glob(f"{section}-*.md") if NAME.match(p.name)]
    reports = [r for r in reports if r.section == section]
    reports.sort(key=lambda r: (not r.quick, DEBUG not in r.text, r.ts))
    return reports[-1] if reports else None


def demote(text: str) -> str:
    """Headings one level down (a report's title becomes a section of this document), outside
    fenced code blocks."""
    out, fence = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and re.match(r"^#{1,5} ", line):
            line = "#" + line
        out.append(line)
    return "\n".join(out)


def flags(r: Report) -> list[str]:
    notes = []
    if r.quick:
        notes.append("quick run (CI size, not the target's)")
    if DEBUG in r.text:
        notes.append("debug build")
    if "Machine shared with other work during the runs: **YES" in r.text:
        notes.append("machine shared with other work")
    return notes


def git(*args: str) -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--mode", choices=("full", "quick"), default="full")
    p.add_argument("--report", action="append", default=[], metavar="SECTION=PATH")
    p.add_argument("--failed", action="append", default=[], metavar="SECTION")
    p.add_argument("--note", default="", help="a line for the header (e.g. how long the run took)")
    a = p.parse_args()
    given = {}
    for item in a.report:
        section, _, path = item.partition("=")
        given[section] = read_report(pathlib.Path(path))
    quick_doc = a.mode == "quick"

    reports: dict[str, Report | None] = {}
    for s in SECTIONS:
        if s in given:
            reports[s] = given[s]
        elif quick_doc or s in a.failed:
            reports[s] = None
        else:
            reports[s] = newest(s)
    included = [s for s in SECTIONS if reports[s] or s in a.failed or not quick_doc]

    now = datetime.datetime.now(datetime.timezone.utc)
    L: list[str] = []
    w = L.append
    w("# Benchmarks" + (" — quick run (CI smoke test of the harness)" if quick_doc else ""))
    w("")
    w(f"Generated by `bench/run.sh` on {now:%Y-%m-%d %H:%M} UTC from the reports in `bench/results/`; do not "
      "edit it by hand (the history and the notes worth keeping are in `bench/NOTES.md`, copied at the end).")
    if quick_doc:
        w("")
        w("**Quick mode**: every input is tiny and the binary may be a debug build; no figure below says anything "
          "about the targets. It only shows that the harness runs end to end.")
    w("")
    w("Reproduce on one machine, both sides in the same run:")
    w("")
    w("- `bench/run.sh`: builds the release binary once, then runs every section in order (ingest, daily, "
      "freshness, flight, scale, demo, soak, metrics, s3), each writing `bench/results/<section>-<UTC time>.md`, then rewrites "
      "this file. `--only daily,scale` runs some (`--only build` the cold build, about an hour, never run by default); `--quick` is the CI smoke test (it writes "
      "`bench/results/BENCHMARKS-quick-<time>.md` instead of this file); `--assemble-only` only rebuilds this "
      "file from the newest reports.")
    w("- `bench/<section>.sh [--quick]` runs one section (its `--help` says what it measures and how).")
    w(f"- This file was assembled on: {machine_summary()}; git {git('rev-parse', '--short', 'HEAD') or '?'}. "
      "Each report below names its own machine, load, binary and versions.")
    if a.note:
        w(f"- {a.note}")
    w("")
    w("## Summary")
    w("")
    w("| section | target | measured | verdict | run |")
    w("|---|---|---|---|---|")
    for s in included:
        r = reports[s]
        failed = " — **this section FAILED in this run**" if s in a.failed else ""
        if r is None:
            why = ("**FAILED** in this run, no report" if s in a.failed
                   else f"no report yet: run `bench/{s}.sh`")
            w(f"| {s} | | | {why} | |")
            continue
        # The run's link and caveats on the section's first row only.
        run = f"[{r.ts or r.path.name}](#{s})" + (f" ({', '.join(flags(r))})" if flags(r) else "") + failed
        if not r.targets:
            w(f"| {s} | (no targets found in the report) | | | {run} |")
        for i, (target, measured, verdict) in enumerate(r.targets):
            shown = {"met": "met", "NOT met": "**NOT met**"}.get(verdict, verdict)
            w(f"| {s if i == 0 else ''} | {target} | {measured} | {shown} | {run if i == 0 else ''} |")
    w("")
    for s in included:
        r = reports[s]
        w(f'<a id="{s}"></a>')
        w("")
        if r is None:
            w(f"## {TITLES[s]}")
            w("")
            w("**FAILED in this run** before writing a report." if s in a.failed else
              f"No report yet: run `bench/{s}.sh` (or `bench/run.sh --only {s}`).")
            w("")
            continue
        # The report's own title is the section's heading; where it comes from goes right below.
        title, _, body = demote(r.text.strip()).partition("\n")
        if not title.startswith("## "):
            title, body = f"## {TITLES[s]}", demote(r.text.strip())
        rel = r.path.resolve().relative_to(ROOT) if r.path.resolve().is_relative_to(ROOT) else r.path
        w(title)
        w("")
        w(f"From `{rel}`" + (f" ({', '.join(flags(r))})" if flags(r) else "") + "."
          + (" **This section FAILED in this run.**" if s in a.failed else ""))
        base = rel.parent.as_posix() if isinstance(rel, pathlib.Path) else ""
        w(IMAGE.sub(lambda m: f"![{m.group(1)}]({base}/{m.group(2)})", body.rstrip()))
        w("")
    notes = ROOT / "bench" / "NOTES.md"
    if notes.exists() and not quick_doc:
        w("## Notes and history (`bench/NOTES.md`)")
        w("")
        body = notes.read_text().strip()
        if body.startswith("# "):
            body = body.partition("\n")[2].strip()  # its own title: replaced by the heading above
        w(demote(body))
        w("")
    pathlib.Path(a.out).write_text("\n".join(L).rstrip() + "\n")
    print(a.out)


if __name__ == "__main__":
    main()
