"""Freshness probe for bench/freshness.sh: while `lake produce --rate N` loads the topic, sends
one probe event every --interval seconds (a unique session_id, to a random partition) and polls
`lake serve` over Flight SQL (ADBC) every --poll seconds until each probe is visible.

Latency of a probe = the end of the first poll whose result contains it, minus the moment just
before its produce() call (also reported: minus its delivery ack, and to the start of that poll).
Both clocks are this process's monotonic clock. The probe became visible after the previous
poll's snapshot and before this poll's, so the true time lies between the previous poll's start
and this poll's end: the figure is pessimistic by up to one poll period plus one query.

Writes JSON (bench/freshness/report.py turns it into Markdown); exits 1 when a probe was not
delivered or never became visible, or a poll failed."""

from __future__ import annotations

import argparse
import datetime
import json
import random
import threading
import time
import uuid

import adbc_driver_flightsql.dbapi as flight_sql
from confluent_kafka import Producer


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def connect(url: str):
    # autocommit: the server has no transactions; without it the driver manager warns.
    return flight_sql.connect(url, autocommit=True)


def count_rows(url: str, since: datetime.date) -> int:
    with connect(url) as c, c.cursor() as cur:
        cur.execute("SELECT count(*) FROM raw.user_events WHERE event_date >= $1", parameters=(since,))
        return cur.fetchone()[0]


class Poller(threading.Thread):
    """Queries the probes visible so far every `interval` seconds (back to back when a query
    takes longer) and records when each one was first seen."""

    def __init__(self, url: str, prefix: str, since: datetime.date, interval: float):
        super().__init__(daemon=True)
        self.url, self.prefix, self.since, self.interval = url, prefix, since, interval
        self.seen: dict[str, tuple[float, float]] = {}  # id: (start, end) of the first poll seeing it
        self.polls: list[tuple[float, float]] = []  # (start, seconds)
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        # The probes' event_date is today (UTC) or, across midnight, later: >= the start date.
        sql = "SELECT session_id FROM raw.user_events WHERE event_date >= $1 AND session_id LIKE $2"
        with connect(self.url) as conn, conn.cursor() as cur:
            while not self.stop.is_set():
                start = time.monotonic()
                try:
                    ids = cur.execute(sql, parameters=(self.since, self.prefix + "%")) \
                        .fetch_arrow_table().column("session_id").to_pylist()
                except Exception as e:  # noqa: BLE001 -- recorded and reported, the run fails
                    self.errors.append(f"{time.monotonic():.3f}: {e}"[:500])
                    ids = []
                end = time.monotonic()
                with self.lock:
                    self.polls.append((start, end - start))
                    for i in ids:
                        self.seen.setdefault(i, (start, end))
                self.stop.wait(max(0.0, start + self.interval - time.monotonic()))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--brokers", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--duration", type=float, default=60, help="seconds of probing")
    p.add_argument("--warmup", type=float, default=5, help="seconds of background load before probing")
    p.add_argument("--interval", type=float, default=0.1, help="seconds between probes")
    p.add_argument("--poll", type=float, default=0.05, help="seconds between polls")
    p.add_argument("--settle", type=float, default=15, help="seconds to wait for the last probes")
    p.add_argument("--out", required=True)
    a = p.parse_args()

    since = utc_now().date()
    prefix = f"probe_{uuid.uuid4().hex[:8]}_"
    # linger.ms=0: a probe leaves at once instead of waiting to fill a batch; acks=all as
    # `lake produce` does, so an ack means the broker has it.
    producer = Producer({"bootstrap.servers": a.brokers, "linger.ms": 0, "acks": "all"})
    partitions = len(producer.list_topics(a.topic, timeout=10).topics[a.topic].partitions)

    time.sleep(a.warmup)  # let the background load, ingest and its commits reach a steady state
    poller = Poller(a.url, prefix, since, a.poll)
    poller.start()
    rows_start, rows_start_t = count_rows(a.url, since), time.monotonic()

    probes: dict[str, dict] = {}
    failed: list[str] = []

    def delivered(err, msg) -> None:
        sid = json.loads(msg.value())["session_id"]
        if err is not None:
            failed.append(f"{sid}: {err}")
        else:
            probes[sid]["ack"] = time.monotonic()
            probes[sid]["offset"] = msg.offset()

    begin = time.monotonic()
    n = 0
    while time.monotonic() - begin < a.duration:
        sid = f"{prefix}{n}"
        event = {"user_id": 900000 + n % 1000, "event_type": "click",
                 # naive ISO-8601 is read as UTC
                 "timestamp": utc_now().replace(tzinfo=None).isoformat(timespec="milliseconds"),
                 "page_id": 1, "session_id": sid}
        part = random.randrange(partitions)
        probes[sid] = {"partition": part, "sent": time.monotonic()}
        producer.produce(a.topic, json.dumps(event).encode(), key=str(event["user_id"]).encode(),
                         partition=part, on_delivery=delivered)
        n += 1
        # Serve delivery callbacks until the next probe is due.
        while (wait := begin + n * a.interval - time.monotonic()) > 0:
            producer.poll(min(wait, 0.01))
    window = time.monotonic() - begin
    rows_end, rows_end_t = count_rows(a.url, since), time.monotonic()
    producer.flush(30)

    # Wait for the stragglers (--settle is far longer than they normally take: bench/NOTES.md).
    deadline = time.monotonic() + a.settle
    while time.monotonic() < deadline:
        with poller.lock:
            if all(s in poller.seen for s in probes):
                break
        time.sleep(0.1)
    poller.stop.set()
    poller.join(30)

    rows = []
    for sid, pr in probes.items():
        vis_start, vis = poller.seen.get(sid, (None, None))
        rows.append({"id": sid, "partition": pr["partition"], "offset": pr.get("offset"),
                     "sent": pr["sent"] - begin,
                     "from_send_s": None if vis is None else vis - pr["sent"],
                     "from_send_to_poll_start_s": None if vis is None else vis_start - pr["sent"],
                     "from_ack_s": None if vis is None or "ack" not in pr else vis - pr["ack"],
                     "ack_s": pr["ack"] - pr["sent"] if "ack" in pr else None})
    lost = [r["id"] for r in rows if r["from_send_s"] is None]
    result = {"probes": rows, "lost": lost, "delivery_failed": failed, "poll_errors": poller.errors,
              "polls": [(s - begin, d) for s, d in poller.polls], "window_s": window,
              "interval_s": a.interval, "poll_s": a.poll, "warmup_s": a.warmup, "partitions": partitions,
              "visible_rows": {"start": rows_start, "end": rows_end, "seconds": rows_end_t - rows_start_t},
              "since": since.isoformat()}
    with open(a.out, "w") as f:
        json.dump(result, f)
    print(f"probes: {len(rows)} sent, {len(rows) - len(lost)} seen, {len(lost)} lost, "
          f"{len(failed)} not delivered, {len(poller.errors)} poll errors", flush=True)
    if lost or failed or poller.errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
