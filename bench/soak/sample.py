"""Sampler of bench/soak.sh: while `lake produce --rate R` loads the topic, `lake ingest` commits
every 100 ms and `lake serve` answers, records every --interval seconds one JSON line of:

- point queries over Flight SQL (ADBC): p50/p99 of --points queries
  `SELECT count(*) FROM raw.user_events WHERE event_date = $1 AND user_id = $2`, random users;
- a full-table count (its value and its time);
- the daily job on the loaded date (`lake daily --no-sensor`), its wall time;
- the table's live data files and bytes (read with the deltalake package) and its log
  (`_delta_log` files and bytes);
- ingest's RSS and CPU (from /proc), its commits so far (its stats line) and the commit
  latencies it logged since the last sample (`flush handled`, debug level);
- freshness: a probe thread sends one event per second (its own date, so a poll reads a tiny
  partition) and polls every 200 ms until it is visible; the sample holds the latencies of the
  probes that became visible in the interval.

After --duration the caller stops the producer; with --final PRODUCE_JSON this script then waits
until every produced event and every probe is in the table and checks exactly once (rows =
produced, every partition's offsets from 0 up once), with `lake sql` (a Flight SQL query would
meet the server's timeout over millions of rows). Exits 1 when a query or a probe failed or exactly once does not hold."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import random
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid

import adbc_driver_flightsql.dbapi as flight_sql
from confluent_kafka import Producer
from deltalake import DeltaTable

PROBE_DATE = datetime.date(2030, 1, 1)
FLUSH = re.compile(r"flush handled elapsed=([0-9.]+)(ns|µs|us|ms|s)\b")
UNIT = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def connect(url: str):
    return flight_sql.connect(url, autocommit=True)


def pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class Probe(threading.Thread):
    """One probe event per second into PROBE_DATE; each is polled for until visible."""

    def __init__(self, brokers: str, topic: str, url: str):
        super().__init__(daemon=True)
        self.producer = Producer({"bootstrap.servers": brokers, "linger.ms": 0, "acks": "all"})
        self.topic, self.url = topic, url
        self.prefix = f"probe_{uuid.uuid4().hex[:8]}_"
        self.lock = threading.Lock()
        self.seen: list[tuple[float, float]] = []  # (visible at, latency)
        self.sent = 0
        self.acked = 0
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        sql = "SELECT session_id FROM raw.user_events WHERE event_date = $1 AND session_id LIKE $2"
        pending: dict[str, float] = {}
        next_probe = time.monotonic()
        with connect(self.url) as conn, conn.cursor() as cur:
            while not self.stop.is_set():
                now = time.monotonic()
                if now >= next_probe:
                    sid = f"{self.prefix}{self.sent}"
                    event = {"user_id": 1, "event_type": "view", "page_id": 1, "session_id": sid,
                             "timestamp": f"{PROBE_DATE}T12:00:00"}
                    pending[sid] = time.monotonic()
                    self.producer.produce(self.topic, json.dumps(event).encode(), key=b"1",
                                          on_delivery=self.delivered)
                    self.producer.poll(0)
                    self.sent += 1
                    next_probe += 1.0
                try:
                    ids = cur.execute(sql, parameters=(PROBE_DATE, self.prefix + "%")) \
                        .fetch_arrow_table().column("session_id").to_pylist()
                except Exception as e:  # noqa: BLE001 -- reported; the run fails
                    self.errors.append(str(e)[:300])
                    ids = []
                end = time.monotonic()
                with self.lock:
                    for sid in ids:
                        if sid in pending:
                            self.seen.append((end, end - pending.pop(sid)))
                self.stop.wait(0.2)
        self.producer.flush(30)

    def delivered(self, err, _msg) -> None:
        if err is None:
            self.acked += 1

    def take(self, since: float) -> list[float]:
        with self.lock:
            return [lat for (at, lat) in self.seen if at >= since]


def proc_figures(pid: int) -> tuple[float | None, float | None]:
    """(RSS in MiB, user+system CPU seconds) of pid."""
    try:
        status = pathlib.Path(f"/proc/{pid}/status").read_text()
        rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return rss, cpu
    except (OSError, AttributeError):
        return None, None


class LogTail:
    """Reads what ingest logged since the last call."""

    def __init__(self, path: pathlib.Path):
        self.path, self.pos = path, 0
        self.commits = 0

    def read(self) -> list[float]:
        """The commit latencies logged since the last call (one line per commit)."""
        latencies = []
        with open(self.path, "rb") as f:
            f.seek(self.pos)
            chunk = f.read()
            self.pos += len(chunk)
        for line in chunk.decode(errors="replace").splitlines():
            line = re.sub(r"\x1b\[[0-9;]*m", "", line)
            m = FLUSH.search(line)
            if m:
                latencies.append(float(m.group(1)) * UNIT[m.group(2)])
        self.commits += len(latencies)
        return latencies


def log_size(table: pathlib.Path) -> tuple[int, int]:
    files = list((table / "_delta_log").iterdir())
    return len(files), sum(f.stat().st_size for f in files if f.is_file())


def sample(a, cur, probe: Probe, tail: LogTail, t0: float, last: dict) -> dict:
    now = time.monotonic()
    s: dict = {"t": round(now - t0, 1)}
    times = []
    for _ in range(a.points):
        q0 = time.monotonic()
        cur.execute("SELECT count(*) FROM raw.user_events WHERE event_date = $1 AND user_id = $2",
                    parameters=(a.date, random.randint(1, 10000)))
        cur.fetchone()
        times.append(time.monotonic() - q0)
    s["point_p50_ms"] = pct(times, 50) * 1000
    s["point_p99_ms"] = pct(times, 99) * 1000
    q0 = time.monotonic()
    cur.execute("SELECT count(*) FROM raw.user_events")
    s["rows"] = cur.fetchone()[0]
    s["count_s"] = time.monotonic() - q0
    d0 = time.monotonic()
    daily = subprocess.run([a.lake_bin, "daily", "--lake", a.lake, "--sql", a.sql, "--date", str(a.date),
                            "--no-sensor"], capture_output=True, text=True)
    s["daily_s"] = time.monotonic() - d0 if daily.returncode == 0 else None
    if daily.returncode != 0:
        s["daily_error"] = daily.stderr[-300:]
    table = pathlib.Path(a.lake) / "raw" / "user_events"
    dt = DeltaTable(str(table))
    adds = dt.get_add_actions(flatten=True)
    s["version"] = dt.version()
    s["live_files"] = adds.num_rows
    s["live_mib"] = sum(adds.column("size_bytes").to_pylist()) / 2**20
    s["log_files"], log_bytes = log_size(table)
    s["log_mib"] = log_bytes / 2**20
    rss, cpu = proc_figures(a.ingest_pid)
    s["ingest_rss_mib"] = rss
    if cpu is not None and last.get("cpu") is not None:
        s["ingest_cpu_pct"] = 100 * (cpu - last["cpu"]) / (now - last["at"])
    latencies = tail.read()
    s["commit_p50_ms"] = (pct(latencies, 50) or 0) * 1000 if latencies else None
    s["commit_p99_ms"] = (pct(latencies, 99) or 0) * 1000 if latencies else None
    if "commits" in last:
        s["commits_per_s"] = (tail.commits - last["commits"]) / (now - last["at"])
    fresh = probe.take(last.get("at", t0))
    s["fresh_n"] = len(fresh)
    s["fresh_p50_s"] = pct(fresh, 50)
    s["fresh_p99_s"] = pct(fresh, 99)
    last.update(at=now, cpu=cpu, commits=tail.commits)
    return s


EXACTLY_ONCE_SQL = """
SELECT sum(n) AS rows, sum(distinct_offsets) AS unique_offsets, sum(span) AS span, min(lo) AS lo
FROM (SELECT kafka_partition, count(*) AS n, count(DISTINCT kafka_offset) AS distinct_offsets,
             max(kafka_offset) - min(kafka_offset) + 1 AS span, min(kafka_offset) AS lo
      FROM raw.user_events GROUP BY kafka_partition) AS p
"""


def exactly_once_figures(lake_bin: str, lake: str) -> dict:
    """Rows, unique (partition, offset) pairs and the offsets' span, with `lake sql` (no server
    timeout: over millions of rows this takes longer than a Flight SQL query may)."""
    out = subprocess.run([lake_bin, "sql", "--lake", lake, "-q", "--format", "json", "-c", EXACTLY_ONCE_SQL],
                         capture_output=True, text=True, check=True).stdout
    row = json.loads(out)[0]
    return {k: int(row[k] or 0) for k in ("rows", "unique_offsets", "span", "lo")}


def final_check(a, probes_delivered: int) -> dict:
    def delivered(path: str) -> int:
        return json.loads(pathlib.Path(path).read_text().strip().splitlines()[-1])["delivered"]

    # The load, the one event that created the topic, and the probes.
    produced = delivered(a.final) + delivered(a.created)
    expected = produced + probes_delivered
    deadline = time.monotonic() + 300
    while True:
        f = exactly_once_figures(a.lake_bin, a.lake)
        if f["rows"] >= expected or time.monotonic() > deadline:
            break
        time.sleep(2)
    # Every offset of every partition from 0 up once: nothing lost, nothing twice.
    gap_free = f["rows"] == f["unique_offsets"] == f["span"] and f["lo"] == 0
    return {"final": True, "produced": produced, "probes": probes_delivered, "rows": f["rows"],
            "unique": f["unique_offsets"], "exactly_once": gap_free and f["rows"] == expected}


def main() -> None:
    p = argparse.ArgumentParser()
    for name in ("url", "brokers", "topic", "lake", "lake-bin", "sql", "out", "ingest-log", "stop-file"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--ingest-pid", type=int, required=True)
    p.add_argument("--date", type=datetime.date.fromisoformat, required=True)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--interval", type=float, default=30)
    p.add_argument("--points", type=int, default=50)
    p.add_argument("--final", required=True, help="the producer's JSON summary, once it is stopped")
    p.add_argument("--created", required=True, help="the JSON summary of the topic's first event")
    p.add_argument("--final-only", type=int, metavar="PROBES",
                   help="only the exactly-once check, of a finished run whose probe thread delivered PROBES")
    a = p.parse_args()
    if a.final_only is not None:
        result = final_check(a, a.final_only)
        with open(a.out, "a") as out:
            out.write(json.dumps(result) + "\n")
        print(json.dumps(result), file=sys.stderr)
        sys.exit(0 if result["exactly_once"] else 1)

    probe = Probe(a.brokers, a.topic, a.url)
    probe.start()
    tail = LogTail(pathlib.Path(a.ingest_log))
    failures = []
    t0 = time.monotonic()
    last: dict = {}
    with open(a.out, "w") as out, connect(a.url) as conn, conn.cursor() as cur:
        next_at = t0
        while True:
            next_at += a.interval
            time.sleep(max(0.0, next_at - time.monotonic()))
            try:
                s = sample(a, cur, probe, tail, t0, last)
            except Exception as e:  # noqa: BLE001 -- recorded; the run fails
                s = {"t": round(time.monotonic() - t0, 1), "error": str(e)[:300]}
                failures.append(s["error"])
            out.write(json.dumps(s) + "\n")
            out.flush()
            print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in s.items()}),
                  file=sys.stderr)
            if time.monotonic() - t0 >= a.duration:
                break
        # The caller stops the producer and writes its summary; probes go on until then.
        pathlib.Path(a.stop_file).write_text("stop\n")
        while not pathlib.Path(a.final).exists() or not pathlib.Path(a.final).read_text().strip():
            time.sleep(0.5)
        time.sleep(2)  # the last probes
        probe.stop.set()
        probe.join()
        result = final_check(a, probe.acked)
        result["probe_errors"] = probe.errors[:5]
        result["failures"] = failures[:5]
        result["probes_lost"] = probe.sent - len(probe.seen)
        out.write(json.dumps(result) + "\n")
        print(json.dumps(result), file=sys.stderr)
    if failures or probe.errors or not result["exactly_once"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
