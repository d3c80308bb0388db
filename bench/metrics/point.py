"""Point queries against a running `lake serve` for bench/metrics.sh: one date of
processed.daily_metrics through ADBC, prepared once with a bound date, timed from execute to the
fetched Arrow table. Writes the latencies (seconds) as JSON."""

from __future__ import annotations

import argparse
import datetime
import json
import time

import adbc_driver_flightsql.dbapi as flight_sql

WARMUP = 50


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--date", required=True)
    p.add_argument("--queries", type=int, required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    date = datetime.date.fromisoformat(a.date)
    sql = "SELECT * FROM processed.daily_metrics WHERE date = $1"
    latencies = []
    with flight_sql.connect(a.url) as conn, conn.cursor() as cur:
        for i in range(WARMUP + a.queries):
            start = time.perf_counter()
            cur.execute(sql, parameters=(date,))
            table = cur.fetch_arrow_table()
            took = time.perf_counter() - start
            if table.num_rows != 1:
                raise SystemExit(f"expected one row for {date}, got {table.num_rows}")
            if i >= WARMUP:
                latencies.append(took)
    with open(a.out, "w") as f:
        json.dump({"latencies_s": latencies}, f)


if __name__ == "__main__":
    main()
