"""Markdown report and PNG plot for bench/soak.sh from bench/soak/sample.py's JSON lines, one
series per mode (maintenance on, off). Prints the Markdown; writes the PNG to --png."""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from benchlib import machine_and_version_sections, report_header, target_block, verdict_bold  # noqa: E402

COLUMNS = [  # (key, header, format)
    ("t", "t (s)", "{:.0f}"),
    ("rows", "rows", "{:,}"),
    ("point_p50_ms", "point p50 ms", "{:.1f}"),
    ("point_p99_ms", "point p99 ms", "{:.1f}"),
    ("count_s", "count(*) s", "{:.2f}"),
    ("daily_s", "daily s", "{:.2f}"),
    ("live_files", "live files", "{:,}"),
    ("live_mib", "live MiB", "{:.0f}"),
    ("log_files", "log files", "{:,}"),
    ("log_mib", "log MiB", "{:.1f}"),
    ("ingest_rss_mib", "ingest RSS MiB", "{:.0f}"),
    ("ingest_cpu_pct", "ingest CPU %", "{:.0f}"),
    ("commits_per_s", "commits/s", "{:.1f}"),
    ("commit_p99_ms", "commit p99 ms", "{:.0f}"),
    ("fresh_p99_s", "fresh p99 s", "{:.2f}"),
]
PLOTS = [("point_p50_ms", "point query p50 (ms)"), ("live_files", "live data files"),
         ("daily_s", "daily job (s)"), ("ingest_rss_mib", "ingest RSS (MiB)"),
         ("commits_per_s", "ingest commits/s"), ("fresh_p99_s", "freshness p99 (s)"),
         ("log_files", "_delta_log files"), ("ingest_cpu_pct", "ingest CPU (%)")]


def load(path: str) -> tuple[list[dict], dict]:
    samples, final = [], {}
    p = pathlib.Path(path)
    for line in (p.read_text().splitlines() if p.exists() else []):
        d = json.loads(line)
        if d.get("final"):
            final = d
        else:
            samples.append(d)
    return samples, final


def fmt(v, f: str) -> str:
    return "" if v is None else f.format(v)


def at(samples: list[dict], t: float, key: str):
    """`key` around t seconds: the median of the samples within 30 s of t (one sample is noisy:
    a compaction round or a checkpoint may fall into its few seconds)."""
    near = [s[key] for s in samples if s.get(key) is not None and abs(s["t"] - t) <= 30]
    return statistics.median(near) if near else None


def at_end(samples: list[dict], key: str):
    """`key` at the end: the median of the last three samples."""
    last = [s[key] for s in samples if s.get(key) is not None][-3:]
    return statistics.median(last) if last else None


def targets(samples: list[dict], final: dict) -> list[tuple[str, str, bool | None]]:
    if not samples:
        return [("the soak ran", "no samples", False)]
    end = samples[-1]["t"]
    out = []
    p1, pe = at(samples, 60, "point_p50_ms"), at_end(samples, "point_p50_ms")
    out.append(("point-query p50 at the end ≤ 1.5× minute 1",
                f"{fmt(pe, '{:.1f}')} ms vs {fmt(p1, '{:.1f}')} ms",
                None if not (p1 and pe) else pe <= 1.5 * p1))
    files = [s["live_files"] for s in samples if s.get("live_files") is not None]
    out.append(("live data files ≤ 200 at every sample", f"max {max(files) if files else 'n/a'}",
                bool(files) and max(files) <= 200))
    r2, re_ = at(samples, 120, "ingest_rss_mib"), at_end(samples, "ingest_rss_mib")
    out.append(("ingest RSS at the end ≤ 1.2× minute 2", f"{fmt(re_, '{:.0f}')} MiB vs {fmt(r2, '{:.0f}')} MiB",
                None if not (r2 and re_) else re_ <= 1.2 * r2))
    c1, ce = at(samples, 60, "commits_per_s"), at_end(samples, "commits_per_s")
    out.append(("commit rate at the end ≥ 90% of minute 1", f"{fmt(ce, '{:.1f}')}/s vs {fmt(c1, '{:.1f}')}/s",
                None if not (c1 and ce) else ce >= 0.9 * c1))
    # The first interval holds the start (connections, the first commits of a fresh lake).
    fresh = [s["fresh_p99_s"] for s in samples[1:] if s.get("fresh_p99_s") is not None]
    out.append(("freshness p99 ≤ 2 s throughout (after the first sample)",
                f"worst interval p99 {max(fresh):.2f} s" if fresh else "n/a", bool(fresh) and max(fresh) <= 2.0))
    out.append(("exactly once at the end (rows = produced, unique offsets)",
                f"{final['rows']:,} rows, {final['unique']:,} unique, "
                f"{final['produced'] + final['probes']:,} produced" if final else "no final check",
                bool(final.get("exactly_once"))))
    commits = samples[-1].get("version") or 0
    out.append(("duration ≥ 30 min with ≥ 10,000 commits", f"{end / 60:.1f} min, {commits:,} commits",
                end >= 1800 and commits >= 10_000))
    return out


def plot(series: dict[str, list[dict]], png: str, rate: str) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(4, 2, figsize=(12, 13), sharex=True)
    for ax, (key, title) in zip(axes.flat, PLOTS):
        for mode, samples in series.items():
            pts = [(s["t"] / 60, s[key]) for s in samples if s.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts), marker=".", label=f"maintenance {mode}")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("minutes")
    axes.flat[0].legend()
    fig.suptitle(f"lake soak: {int(rate):,} events/s, a commit every 100 ms")
    fig.tight_layout()
    fig.savefig(png, dpi=80)
    return True


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--series", action="append", default=[], help="MODE=samples.jsonl")
    for a in ("busy", "lake-bin", "cmdline", "rate", "png"):
        p.add_argument(f"--{a}", required=True)
    p.add_argument("--problems", default="")
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    series, finals = {}, {}
    for item in a.series:
        mode, path = item.split("=", 1)
        series[mode], finals[mode] = load(path)

    L = report_header(f"Soak benchmark — {int(a.rate):,} events/s, a commit every 100 ms, "
                      "maintenance on and off", a.cmdline)
    w = L.append
    if a.quick:
        w("- **Quick mode**: one short run with maintenance on; the targets need the full 30 minutes.")
    w(f"- Pipeline, all on this machine: Kafka (one broker, KRaft, 3 partitions) ← `lake produce --rate "
      f"{a.rate} --days 1` (one date) + one freshness probe per second (its own date); `lake ingest "
      "--max-latency-ms 100` (mode on: default background maintenance; off: `--no-maintain`) → a fresh "
      "lake ← `lake serve`; every sample also runs `lake daily` for the loaded date.")
    w("- Point query: p50/p99 of 50 ADBC queries `SELECT count(*) FROM raw.user_events WHERE event_date = "
      "$1 AND user_id = $2`. Freshness: produce() → the first 200 ms poll that sees the probe. Commit "
      "latency: ingest's own `flush handled` timing. CPU: ingest's user+system time over the interval.")
    w("- Targets compare medians: \"minute N\" is the median of the samples within 30 s of it, \"the end\" "
      "the median of the last three samples.")
    w("")
    L.extend(machine_and_version_sections(pathlib.Path(a.busy), a.lake_bin, ROOT))
    w("")
    if a.problems:
        w("## FAILURES")
        w("")
        L.extend(f"- **{prob}**" for prob in a.problems.split("|"))
        w("")
    png = pathlib.Path(a.png)
    if plot(series, a.png, a.rate):
        w(f"![soak series]({png.name})")
        w("")
    main_mode = "on" if "on" in series else next(iter(series), "on")
    tgts = targets(series.get(main_mode, []), finals.get(main_mode, {}))
    w(f"## Targets (maintenance {main_mode})")
    w("")
    L.extend(f"- {t}: {m} — {verdict_bold(ok)}" for t, m, ok in tgts)
    for mode, samples in series.items():
        w("")
        w(f"## Maintenance {mode}")
        w("")
        f = finals.get(mode, {})
        if f:
            w(f"End: {f['rows']:,} rows, {f['unique']:,} unique offsets, {f['produced']:,} produced + "
              f"{f['probes']} probes; exactly once: **{'yes' if f['exactly_once'] else 'NO'}**.")
            w("")
        w("| " + " | ".join(h for _, h, _ in COLUMNS) + " |")
        w("|" + "---|" * len(COLUMNS))
        for s in samples:
            if "error" in s:
                w(f"| {s['t']:.0f} | error: {s['error'][:120]} |")
                continue
            w("| " + " | ".join(fmt(s.get(k), f) for k, _, f in COLUMNS) + " |")
    L.extend(target_block("soak", a.quick, tgts))
    print("\n".join(L))


if __name__ == "__main__":
    main()
