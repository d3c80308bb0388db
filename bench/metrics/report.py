"""bench/metrics.sh's report: ingest and point queries with metrics off and on, and the target
(under 3% difference), as Markdown on stdout."""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import benchlib  # noqa: E402

TARGET = 3.0  # percent


def diff_pct(off: float, on: float) -> float:
    return (on - off) / off * 100


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True, type=pathlib.Path)
    p.add_argument("--events", required=True, type=int)
    p.add_argument("--off-note", required=True)
    p.add_argument("--lake-bin", required=True)
    p.add_argument("--cmdline", required=True)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    root = pathlib.Path(__file__).resolve().parents[2]
    runs = benchlib.timed_runs(a.out)
    lines = benchlib.report_header("Metrics overhead: off vs on", a.cmdline)
    lines += ["", *benchlib.machine_and_version_sections(a.out / "busy.tsv", a.lake_bin, root),
              f"- metrics off: {a.off_note}",
              "- metrics on: this build with `--metrics-addr`, /metrics read every second", ""]

    lines += ["## Ingest", "",
              f"{a.events:,} events from a real Kafka topic (3 partitions), `lake ingest "
              "--until-caught-up --no-maintain` into a new lake per run; CPU is user + sys of the "
              "whole process.", "",
              "| run | metrics | wall | events/s | CPU | CPU µs/event | max RSS |",
              "|---|---|---|---|---|---|---|"]
    median = {}
    for name in ("off", "on"):
        rs = runs.get(f"ingest-{name}", [])
        for i, r in enumerate(rs, 1):
            cpu = r["user"] + r["sys"]
            lines.append(f"| {i} | {name} | {r['wall']:.2f} s | {a.events / r['wall']:,.0f} | "
                         f"{cpu:.2f} s | {cpu / a.events * 1e6:.2f} | {benchlib.fmt_mib(r.get('rss_kb'))} |")
        median[name] = (statistics.median(r["wall"] for r in rs),
                        statistics.median(r["user"] + r["sys"] for r in rs))
    wall_diff = diff_pct(median["off"][0], median["on"][0])
    cpu_diff = diff_pct(median["off"][1], median["on"][1])
    lines += ["", f"Median wall: off {median['off'][0]:.2f} s, on {median['on'][0]:.2f} s "
              f"({wall_diff:+.1f}%); median CPU: off {median['off'][1]:.2f} s, on "
              f"{median['on'][1]:.2f} s ({cpu_diff:+.1f}%).", ""]

    lines += ["## Point query", "",
              "`SELECT * FROM processed.daily_metrics WHERE date = $1` through ADBC, prepared once, "
              "timed from execute to the fetched table (50 warm-up queries not counted).", "",
              "| run | metrics | queries | p50 | p99 |", "|---|---|---|---|---|"]
    pooled = {}
    for name in ("off", "on"):
        pooled[name] = []
        for path in sorted(a.out.glob(f"point-{name}-*.json")):
            xs = json.loads(path.read_text())["latencies_s"]
            pooled[name] += xs
            run = path.stem.rsplit("-", 1)[1]
            lines.append(f"| {run} | {name} | {len(xs)} | {benchlib.percentile(xs, 50) * 1e3:.3f} ms | "
                         f"{benchlib.percentile(xs, 99) * 1e3:.3f} ms |")
    p50 = {k: benchlib.percentile(v, 50) for k, v in pooled.items()}
    p99 = {k: benchlib.percentile(v, 99) for k, v in pooled.items()}
    p50_diff, p99_diff = diff_pct(p50["off"], p50["on"]), diff_pct(p99["off"], p99["on"])
    lines += ["", f"All runs pooled: p50 off {p50['off'] * 1e3:.3f} ms, on {p50['on'] * 1e3:.3f} ms "
              f"({p50_diff:+.1f}%); p99 off {p99['off'] * 1e3:.3f} ms, on {p99['on'] * 1e3:.3f} ms "
              f"({p99_diff:+.1f}%).", ""]

    # "Under 3%" is about what the metrics cost: a faster "on" meets it.
    targets = [
        (f"ingest CPU with metrics on within {TARGET:.0f}% of off", f"{cpu_diff:+.1f}%", cpu_diff < TARGET),
        (f"ingest wall with metrics on within {TARGET:.0f}% of off", f"{wall_diff:+.1f}%", wall_diff < TARGET),
        (f"point query p50 with metrics on within {TARGET:.0f}% of off", f"{p50_diff:+.1f}%", p50_diff < TARGET),
    ]
    if a.quick:
        targets = [(t, m, None) for t, m, _ in targets]
    lines += ["## Targets", ""]
    lines += [f"- {t}: {m}: {benchlib.verdict_bold(ok)}" for t, m, ok in targets]
    lines += benchlib.target_block("metrics", a.quick, targets)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
