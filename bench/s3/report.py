"""bench/s3.sh's report: ingest, the daily job and point queries on a local folder and on an S3
server on loopback, with the targets (ingest on S3 >= 70% of local; point p50 on S3 <= 2x), as
Markdown on stdout."""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import statistics
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import benchlib  # noqa: E402

# bench/metrics/point.py's warm-up queries, run (and counted by the store) before the timed ones.
POINT_WARMUP = 50
PLACES = ("local", "s3")


def store_requests(path: pathlib.Path) -> float:
    """The sum of lake_object_store_requests_total in a /metrics text."""
    total = 0.0
    for line in path.read_text().splitlines():
        if line.startswith("lake_object_store_requests_total"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def ingest_requests(path: pathlib.Path) -> tuple[int, dict[str, int]] | None:
    """(commits, requests by operation) from `lake ingest`'s last lines on a lake on a store."""
    text = path.read_text() if path.exists() else ""
    commits = re.search(r"in (\d+) commits", text)
    ops = re.search(r"\d+ object-store requests \(([^)]*)\)", text)
    if not (commits and ops):
        return None
    by_op = {op: int(n) for op, n in (part.split() for part in ops.group(1).split(", "))}
    return int(commits.group(1)), by_op


def fmt_ops(by_op: dict[str, float], per: float = 1) -> str:
    return ", ".join(f"{op} {n / per:.1f}" for op, n in by_op.items())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True, type=pathlib.Path)
    p.add_argument("--events", required=True, type=int)
    p.add_argument("--queries", required=True, type=int)
    p.add_argument("--lake-bin", required=True)
    p.add_argument("--seaweedfs", required=True)
    p.add_argument("--cmdline", required=True)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    root = pathlib.Path(__file__).resolve().parents[2]
    runs = benchlib.timed_runs(a.out)
    lines = benchlib.report_header("Local folder vs S3 server on loopback", a.cmdline)
    lines += ["", *benchlib.machine_and_version_sections(a.out / "busy.tsv", a.lake_bin, root),
              f"- S3 server: SeaweedFS `{a.seaweedfs}` (`weed server` with its S3 gateway, "
              "scripts/s3.sh), on loopback, data on the same disk", ""]

    lines += ["## Ingest", "",
              f"{a.events:,} events from a real Kafka topic (3 partitions), `lake ingest "
              "--until-caught-up --no-maintain` into a new lake per run; CPU is user + sys of the "
              "lake process only (the S3 server's own CPU is not in it).", "",
              "| run | lake | wall | events/s | CPU | CPU µs/event | max RSS |",
              "|---|---|---|---|---|---|---|"]
    median = {}
    for place in PLACES:
        rs = runs.get(f"ingest-{place}", [])
        for i, r in enumerate(rs, 1):
            cpu = r["user"] + r["sys"]
            lines.append(f"| {i} | {place} | {r['wall']:.2f} s | {a.events / r['wall']:,.0f} | "
                         f"{cpu:.2f} s | {cpu / a.events * 1e6:.2f} | {benchlib.fmt_mib(r.get('rss_kb'))} |")
        median[place] = (statistics.median(r["wall"] for r in rs),
                         statistics.median(r["user"] + r["sys"] for r in rs))
    share = median["local"][0] / median["s3"][0] * 100
    lines += ["", f"Median wall: local {median['local'][0]:.2f} s, S3 {median['s3'][0]:.2f} s: S3 "
              f"ingests at {share:.0f}% of the local throughput; median CPU: local "
              f"{median['local'][1]:.2f} s, S3 {median['s3'][1]:.2f} s.", ""]

    for i in range(1, len(runs.get("ingest-s3", [])) + 1):
        made = ingest_requests(a.out / "logs" / f"ingest-s3.{i}.out")
        if made:
            lines.append(f"- S3 run {i}: {made[0]} commits, {sum(made[1].values())} store requests "
                         f"({fmt_ops(made[1])}).")
    lines.append("")

    lines += ["## Daily job", "", "`lake daily` (the shipped SQL files, no checks) for the date over "
              "each round-1 lake.", "", "| lake | wall | CPU |", "|---|---|---|"]
    for place in PLACES:
        for r in runs.get(f"daily-{place}", []):
            lines.append(f"| {place} | {r['wall']:.2f} s | {r['user'] + r['sys']:.2f} s |")
    lines.append("")

    commits = ingest_requests(a.out / "logs" / "commits-s3.1.out")
    daily7 = a.out / "logs" / "daily7-s3.1.out"
    files = a.out / "files-commits.json"
    if commits and daily7.exists() and files.exists():
        n, by_op = commits
        total = sum(by_op.values())
        produced = json.loads((a.out / "produce-commits.json").read_text())["delivered"]
        daily = json.loads(daily7.read_text()).get("object_store_requests", {})
        f = json.loads(files.read_text())
        lines += ["## Store requests per commit, and the daily job's pruning", "",
                  f"{produced:,} events over {f['dates']} dates ingested into a new S3 lake 500 per "
                  f"commit (`--max-rows 500`): {n} commits, {total} requests, **{total / n:.1f} per "
                  f"commit** ({fmt_ops(by_op, n)} per commit; start-up and checkpoints included).", "",
                  f"`lake daily` (no checks) for one date "
                  f"over that lake: {sum(daily.values())} requests ({fmt_ops(daily)}); the date has "
                  f"{f['files_on_date']} of the table's {f['files']} data files.", ""]

    lines += ["## Point query", "",
              "`SELECT * FROM processed.daily_metrics WHERE date = $1` through ADBC, prepared once, "
              f"timed from execute to the fetched table ({POINT_WARMUP} warm-up queries not timed). "
              "Store requests: the server's `lake_object_store_requests_total` before and after, "
              "over the warm-up and timed queries of the round (only a lake on S3 has them).", "",
              "| run | lake | queries | p50 | p99 | store requests per query |",
              "|---|---|---|---|---|---|"]
    pooled: dict[str, list[float]] = {}
    per_query: dict[str, list[float]] = {}
    for place in PLACES:
        pooled[place], per_query[place] = [], []
        for path in sorted(a.out.glob(f"point-{place}-*.json")):
            xs = json.loads(path.read_text())["latencies_s"]
            pooled[place] += xs
            run = path.stem.rsplit("-", 1)[1]
            made = (store_requests(a.out / f"metrics-after-{place}-{run}.txt")
                    - store_requests(a.out / f"metrics-before-{place}-{run}.txt"))
            per_query[place].append(made / (len(xs) + POINT_WARMUP))
            lines.append(f"| {run} | {place} | {len(xs)} | {benchlib.percentile(xs, 50) * 1e3:.3f} ms | "
                         f"{benchlib.percentile(xs, 99) * 1e3:.3f} ms | {per_query[place][-1]:.2f} |")
    p50 = {k: benchlib.percentile(v, 50) for k, v in pooled.items()}
    p99 = {k: benchlib.percentile(v, 99) for k, v in pooled.items()}
    ratio = p50["s3"] / p50["local"]
    lines += ["", f"All runs pooled: p50 local {p50['local'] * 1e3:.3f} ms, S3 {p50['s3'] * 1e3:.3f} ms "
              f"({ratio:.2f}×); p99 local {p99['local'] * 1e3:.3f} ms, S3 {p99['s3'] * 1e3:.3f} ms.", ""]

    targets = [
        ("ingest on S3 ≥ 70% of the local throughput", f"{share:.0f}%", share >= 70),
        ("point-query p50 on S3 ≤ 2× local", f"{ratio:.2f}×", ratio <= 2),
    ]
    if a.quick:
        targets = [(t, m, None) for t, m, _ in targets]
    lines += ["## Targets", ""]
    lines += [f"- {t}: {m}: {benchlib.verdict_bold(ok)}" for t, m, ok in targets]
    lines += benchlib.target_block("s3", a.quick, targets)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
