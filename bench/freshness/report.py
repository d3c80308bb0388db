"""Markdown report for bench/freshness.sh from bench/freshness/probe.py's JSON, the background
producer's summary and the ingest log (prints to stdout)."""

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
from benchlib import (fmt_mib, machine_and_version_sections, percentile, report_header,  # noqa: E402
                      target_block, verdict_bold)

P99_TARGET_S = 2.0
ANSI = re.compile(r"\x1b\[[0-9;]*m")
STATS = re.compile(r"^(\S+).*ingest events_per_s=(\d+) events=(\d+) dead_letters=(\d+) commits=(\d+) lag=\{([^}]*)\}")


def dist_row(name: str, xs: list[float]) -> str:
    if not xs:
        return f"| {name} | 0 | | | | | |"
    ms = [x * 1000 for x in xs]
    return (f"| {name} | {len(ms)} | {percentile(ms, 50):,.0f} ms | {percentile(ms, 90):,.0f} ms | "
            f"{percentile(ms, 99):,.0f} ms | {max(ms):,.0f} ms | {statistics.mean(ms):,.0f} ms |")


def read_json_line(path: pathlib.Path) -> dict:
    text = path.read_text().strip() if path.exists() else ""
    return json.loads(text.splitlines()[-1]) if text else {}


def main() -> None:
    p = argparse.ArgumentParser()
    for a in ("results", "busy", "produce", "ingest-log", "lake-bin", "cmdline", "rate", "ingest-args"):
        p.add_argument(f"--{a}", required=True)
    p.add_argument("--ingest-rss", default="")
    p.add_argument("--serve-rss", default="")
    p.add_argument("--problems", default="", help="'|'-separated failures the script found")
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    results = pathlib.Path(a.results)
    r = json.loads(results.read_text()) if results.exists() else None
    produce = read_json_line(pathlib.Path(a.produce))
    log = pathlib.Path(a.ingest_log)
    stats = [m.groups() for l in (log.read_text(errors="replace").splitlines() if log.exists() else [])
             if (m := STATS.match(ANSI.sub("", l)))]

    L = report_header(f"Freshness benchmark — produce at {int(a.rate):,} events/s, time until visible over Flight SQL", a.cmdline)
    w = L.append
    if a.quick:
        w("- **Quick mode**: a short probe window (few probes), so the p99 below rests on little data.")
    w(f"- Pipeline, all on this machine: Kafka 4.1.1 (one broker, KRaft, topic of 3 partitions) ← "
      f"`lake produce --rate {a.rate}` (background load, today's timestamps) + probe events; "
      f"`lake ingest {a.ingest_args}` (continuous) → a fresh lake; `lake serve` on it (loopback, no auth)")
    if r:
        w(f"- Probes: one every {r['interval_s'] * 1000:.0f} ms for {r['window_s']:.0f} s after "
          f"{r['warmup_s']:.0f} s of background load, each with a unique session_id, to a random partition "
          "(confluent-kafka, linger.ms=0, acks=all)")
        w(f"- Poller: one ADBC connection, a prepared `SELECT session_id FROM raw.user_events WHERE "
          f"event_date >= $1 AND session_id LIKE $2` every {r['poll_s'] * 1000:.0f} ms (back to back when slower)")
        w("- Latency = end of the first poll that returned the probe − just before its produce() call (one "
          "process, monotonic clock). Pessimistic by up to one poll period (the larger of "
          f"{r['poll_s'] * 1000:.0f} ms and the poll query's time, below) plus one poll query; the \"start of that "
          "poll\" row is the optimistic end of the range. \"from ack\" starts at the delivery ack instead.")
    w("")
    L.extend(machine_and_version_sections(pathlib.Path(a.busy), a.lake_bin, ROOT))
    w(f"- Python {platform.python_version()} with confluent-kafka and adbc-driver-flightsql "
      "(versions: tests/python/requirements.txt)")
    w("")
    if a.problems:
        w("## FAILURES")
        w("")
        L.extend(f"- **{prob}**" for prob in a.problems.split("|"))
        w("")
    if not r:
        w("No probe results: the probe did not finish.")
        L.extend(target_block("freshness", a.quick, [
            (f"freshness p99 ≤ {P99_TARGET_S:g} s at {int(a.rate):,} events/s", "no probe results", False)]))
        print("\n".join(L))
        return

    probes = r["probes"]
    from_send = [x["from_send_s"] for x in probes if x["from_send_s"] is not None]
    from_ack = [x["from_ack_s"] for x in probes if x["from_ack_s"] is not None]
    acks = [x["ack_s"] for x in probes if x["ack_s"] is not None]
    w("## Results")
    w("")
    w(f"Probes sent: {len(probes)}; visible: {len(from_send)}; **lost: {len(r['lost'])}**; "
      f"not delivered: {len(r['delivery_failed'])}; failed polls: {len(r['poll_errors'])}.")
    w("")
    w("| latency | probes | p50 | p90 | p99 | max | mean |")
    w("|---|---|---|---|---|---|---|")
    w(dist_row("produce() → visible in a Flight SQL query", from_send))
    w(dist_row("produce() → start of that poll (optimistic)",
               [x["from_send_to_poll_start_s"] for x in probes if x["from_send_s"] is not None]))
    w(dist_row("delivery ack → visible", from_ack))
    w(dist_row("produce() → delivery ack (Kafka alone)", acks))
    for part in range(r["partitions"]):
        w(dist_row(f"produce() → visible, partition {part}",
                   [x["from_send_s"] for x in probes if x["partition"] == part and x["from_send_s"] is not None]))
    w("")
    polls = [d for _, d in r["polls"]]
    if polls:
        tenth = max(1, len(polls) // 10)
        w(f"Poll query (the probe lookup over all of today's rows): {len(polls)} polls, p50 "
          f"{percentile(polls, 50) * 1000:.0f} ms, p99 {percentile(polls, 99) * 1000:.0f} ms, max "
          f"{max(polls) * 1000:.0f} ms; median of the first tenth {statistics.median(polls[:tenth]) * 1000:.0f} ms, "
          f"of the last tenth {statistics.median(polls[-tenth:]) * 1000:.0f} ms (the table grows during the run).")
        w("")
    w("### Background load")
    w("")
    vr = r["visible_rows"]
    visible_rate = (vr["end"] - vr["start"]) / vr["seconds"] if vr["seconds"] else 0
    if produce:
        w(f"- `lake produce --rate {a.rate}`: {produce.get('delivered', 0):,} delivered, {produce.get('failed', 0)} "
          f"failed in {produce.get('seconds', 0):.1f} s = **{produce.get('events_per_second', 0):,.0f} events/s** "
          "(its whole life: warm-up, probing and the wait for the last probes)")
    else:
        w("- `lake produce`: no summary (it did not exit cleanly)")
    w(f"- Rows that became visible over Flight SQL during the probe window: {vr['end'] - vr['start']:,} in "
      f"{vr['seconds']:.1f} s = {visible_rate:,.0f} rows/s (count(*) at its start and end, each a commit apart "
      "at most: coarse for a short window)")
    w(f"- Peak RSS: `lake ingest` {fmt_mib(float(a.ingest_rss) if a.ingest_rss else None)}, "
      f"`lake serve` {fmt_mib(float(a.serve_rss) if a.serve_rss else None)}")
    if stats:
        w("")
        w("`lake ingest` stats lines (every 10 s):")
        w("")
        w("| time (UTC) | events/s | events | dead letters | commits | lag per partition |")
        w("|---|---|---|---|---|---|")
        for t, eps, ev, dl, commits, lag in stats:
            w(f"| {t[11:19]} | {int(eps):,} | {int(ev):,} | {dl} | {commits} | {lag} |")
    if r["poll_errors"] or r["delivery_failed"] or r["lost"]:
        w("")
        w("### Errors")
        w("")
        w("```")
        L.extend(r["poll_errors"][:10] + r["delivery_failed"][:10] + [f"lost: {i}" for i in r["lost"][:20]])
        w("```")
    w("")
    w("## Targets")
    w("")
    p99 = percentile(from_send, 99)
    w(f"- Freshness p99 ≤ {P99_TARGET_S:g} s (produce() → visible): "
      + (f"{p99:.2f} s {verdict_bold(p99 <= P99_TARGET_S)}" if p99 is not None else "no probe seen **NOT met**"))
    w(f"- No probe lost: {len(r['lost'])} lost, {len(r['delivery_failed'])} not delivered "
      f"{verdict_bold(not r['lost'] and not r['delivery_failed'])}")
    # Judged on what the producer achieved: the visible rate above is too coarse for a short window.
    rate = produce.get("events_per_second", 0)
    w(f"- Background load at the requested {int(a.rate):,} events/s (≥ 95% achieved by `lake produce`): "
      f"{rate:,.0f} events/s {verdict_bold(rate >= 0.95 * int(a.rate))}")
    L.extend(target_block("freshness", a.quick, [
        (f"freshness p99 ≤ {P99_TARGET_S:g} s, produce() → visible over Flight SQL",
         f"{p99:.2f} s ({len(from_send)} probes)" if p99 is not None else "no probe seen",
         p99 is not None and p99 <= P99_TARGET_S),
        ("freshness: no probe lost", f"{len(r['lost'])} lost, {len(r['delivery_failed'])} not delivered",
         not r["lost"] and not r["delivery_failed"]),
        (f"freshness: background load at {int(a.rate):,} events/s (≥ 95% achieved)", f"{rate:,.0f} events/s",
         rate >= 0.95 * int(a.rate)),
    ] + [("freshness run without failures", prob, False) for prob in a.problems.split("|") if prob]))
    print("\n".join(L))


if __name__ == "__main__":
    main()
