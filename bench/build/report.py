"""bench/build.sh's report: a cold build's wall and CPU time, the binary's size and sections, and
the slowest crates (cargo --timings), against issue 18's targets (cold build ≤ 25 min, binary
≤ 200 MB), as Markdown on stdout."""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import benchlib  # noqa: E402

TARGET_MIN = 25
TARGET_MB = 200


def slowest_units(timing_html: pathlib.Path, n: int = 12) -> list[tuple[str, float]]:
    """(crate and target, seconds) of the longest compile units in cargo's timing page, which
    carries them as a JSON array (`const UNIT_DATA = [...]`)."""
    m = re.search(r"const UNIT_DATA = (\[.*?\]);\n", timing_html.read_text(), re.S)
    if not m:
        return []
    units = json.loads(m.group(1))
    rows = [(f"{u['name']} {u.get('target', '').strip()}".strip(), float(u["duration"])) for u in units]
    return sorted(rows, key=lambda r: -r[1])[:n]


def sections(path: pathlib.Path, n: int = 8) -> list[tuple[str, int]]:
    """(section, bytes) of `size -A`, largest first."""
    rows = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            rows.append((parts[0], int(parts[1])))
    return sorted(rows, key=lambda r: -r[1])[:n]


def main() -> None:
    p = argparse.ArgumentParser()
    for a in ("out", "bin", "profile", "cmdline"):
        p.add_argument(f"--{a}", required=True)
    a = p.parse_args()
    out = pathlib.Path(a.out)
    root = pathlib.Path(__file__).resolve().parents[2]
    t = benchlib.parse_time(out / "time.build")
    cpu = t["user"] + t["sys"]
    size = pathlib.Path(a.bin).stat().st_size
    lines = benchlib.report_header("Cold build of the release binary", a.cmdline)
    lines += ["", *benchlib.machine_and_version_sections(
        out / "busy.tsv", a.bin, root,
        machine_notes=("- The compiler processes the sampler counts are the measured build itself.",)), ""]
    lines += ["## Build", "",
              f"A fresh clone, `cargo build --profile {a.profile} --locked --timings` into an empty "
              "target directory, the crates already downloaded (`cargo fetch`, not timed).", "",
              "| wall | CPU (user + sys) | peak RSS | binary |", "|---|---|---|---|",
              f"| {t['wall'] / 60:.1f} min | {cpu / 60:.1f} min | {benchlib.fmt_mib(t.get('rss_kb'))} | "
              f"{size / 1e6:,.0f} MB |", "",
              "Largest sections loaded at run time (`size -A`; the file's other bytes are symbol "
              "tables, if the profile keeps them):", "",
              "| section | MB |", "|---|---|"]
    lines += [f"| {name} | {n / 1e6:,.1f} |" for name, n in sections(out / "sections.txt")]
    lines += ["", "Longest compile units (cargo --timings; they overlap on several cores):", "",
              "| unit | seconds |", "|---|---|"]
    lines += [f"| {name} | {s:.0f} |" for name, s in slowest_units(out / "timing.html")]
    minutes = t["wall"] / 60
    targets = [
        (f"cold build ({a.profile} profile) ≤ {TARGET_MIN} min", f"{minutes:.1f} min", minutes <= TARGET_MIN),
        (f"binary ≤ {TARGET_MB} MB", f"{size / 1e6:,.0f} MB", size / 1e6 <= TARGET_MB),
    ]
    lines += ["", "## Targets", ""]
    lines += [f"- {t_}: {m}: {benchlib.verdict_bold(ok)}" for t_, m, ok in targets]
    lines += benchlib.target_block("build", False, targets)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
