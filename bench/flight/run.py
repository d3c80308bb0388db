"""Measures a running `lake serve` over Flight SQL (bench/flight.sh starts the server):

- point query: one date of processed.daily_metrics, timed from execute to the fetched Arrow
  table, through ADBC (prepared with a bound `$1`; a literal statement; a literal statement on a
  new cursor each time) and through pyarrow.flight (an ad-hoc CommandStatementQuery:
  GetFlightInfo + DoGet, nothing prepared);
- full scan: `SELECT * FROM raw.user_events` fetched as Arrow through ADBC (fetch_arrow_table)
  and pyarrow.flight (DoGet of every endpoint), with the server's CPU time per scan.

Writes the measurements as JSON (bench/flight/report.py turns them into Markdown)."""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import statistics
import sys
import threading
import time

import adbc_driver_flightsql.dbapi as flight_sql
import pyarrow as pa
import pyarrow.flight as flight

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_status(pid: int) -> dict:
    """The server's peak/current RSS (KiB) and CPU seconds so far; {} once it has exited."""
    try:
        status = {l.split(":")[0]: l.split()[1] for l in open(f"/proc/{pid}/status") if l.startswith("Vm")}
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return {}
    return {"vmhwm_kb": int(status["VmHWM"]), "vmrss_kb": int(status["VmRSS"]),
            "cpu_s": (int(fields[11]) + int(fields[12])) / CLK_TCK}


def any_command(type_name: str, sql: str) -> bytes:
    """A google.protobuf.Any holding arrow.flight.protocol.sql.<type_name>{query: sql}: what a
    Flight SQL client sends as the descriptor of an ad-hoc query (pyarrow has no Flight SQL
    client; same encoding as tests/python/test_flight_adbc.py)."""
    def field(number: int, payload: bytes) -> bytes:
        out, n = bytearray([number << 3 | 2]), len(payload)
        while n >= 0x80:
            out.append(n & 0x7F | 0x80)
            n >>= 7
        out.append(n)
        return bytes(out) + payload
    url = f"type.googleapis.com/arrow.flight.protocol.sql.{type_name}".encode()
    return field(1, url) + field(2, field(1, sql.encode()))


def flight_query(client: flight.FlightClient, sql: str) -> pa.Table:
    info = client.get_flight_info(flight.FlightDescriptor.for_command(any_command("CommandStatementQuery", sql)))
    return pa.concat_tables([client.do_get(e.ticket).read_all() for e in info.endpoints])


def latencies(key: str, name: str, run, pid: int, warmup: int, iterations: int) -> dict:
    """Times `run()` (which returns an Arrow table) `iterations` times after `warmup` untimed
    calls; every call must return at least one row. Also the server's CPU time per call."""
    rows = None
    for _ in range(warmup):
        rows = run().num_rows
    cpu = proc_status(pid).get("cpu_s", 0)
    client_cpu = time.process_time()
    ms = []
    for _ in range(iterations):
        t = time.perf_counter()
        rows = run().num_rows
        ms.append((time.perf_counter() - t) * 1000)
        if rows == 0:
            raise SystemExit(f"point query '{name}' returned no rows")
    client_cpu_ms = (time.process_time() - client_cpu) * 1000 / iterations
    server_cpu_ms = (proc_status(pid).get("cpu_s", 0) - cpu) * 1000 / iterations
    return {"key": key, "name": name, "rows": rows, "warmup": warmup, "ms": ms, "server_cpu_ms": server_cpu_ms,
            "client_cpu_ms": client_cpu_ms}


def scan(name: str, run, pid: int, runs: int) -> dict:
    out = []
    for _ in range(runs):
        before = proc_status(pid)
        client_cpu = time.process_time()
        t = time.perf_counter()
        table = run()
        seconds = time.perf_counter() - t
        client_cpu = time.process_time() - client_cpu
        after = proc_status(pid)
        out.append({"seconds": seconds, "rows": table.num_rows, "bytes": table.nbytes,
                    "batches": sum(c.num_chunks for c in table.columns[:1]),
                    "server_cpu_s": after.get("cpu_s", 0) - before.get("cpu_s", 0),
                    "client_cpu_s": client_cpu})
        schema = table.schema
        del table  # free the previous result before the next run
    return {"name": name, "runs": out, "schema": str(schema)}


def ceiling(table: pa.Table, runs: int) -> dict:
    """The same Arrow data, in the batches lake sent, served from memory by pyarrow's own (C++)
    Flight server in this process and read by the same pyarrow client: what this machine and
    client reach when the server does no work but sending. CPU is this process's (server and
    client together)."""
    class FromMemory(flight.FlightServerBase):
        def do_get(self, context, ticket):
            return flight.RecordBatchStream(table)

    return serve_in_process(FromMemory, runs)


def arrow_cpp_parquet(table_dir: str, runs: int) -> dict:
    """A reference for lake's scan: Arrow C++ doing the same job in this process, that is
    pyarrow's dataset scanner reading the same Parquet files (the table's current ones, from the
    Delta log) and pyarrow's C++ Flight server streaming its batches, read by the same pyarrow
    client. CPU is this process's (server and client together)."""
    from deltalake import DeltaTable
    import pyarrow.dataset as ds

    files = DeltaTable(table_dir).file_uris()
    dataset = ds.dataset(files, format="parquet")

    class FromParquet(flight.FlightServerBase):
        def do_get(self, context, ticket):
            scanner = dataset.scanner()  # its defaults: threads on, 131,072-row batches
            return flight.GeneratorStream(scanner.projected_schema, scanner.to_batches())

    return {"files": len(files), **serve_in_process(FromParquet, runs)}


def serve_in_process(server_class, runs: int) -> dict:
    """Starts `server_class` on a free loopback port in this process and times `runs` DoGets
    of its one stream, read whole by a pyarrow client."""
    server = server_class("grpc://127.0.0.1:0")
    threading.Thread(target=server.serve, daemon=True).start()
    reader = flight.connect(f"grpc://127.0.0.1:{server.port}")
    out = []
    try:
        for _ in range(runs):
            cpu = time.process_time()
            t = time.perf_counter()
            got = reader.do_get(flight.Ticket(b"all")).read_all()
            out.append({"seconds": time.perf_counter() - t, "rows": got.num_rows, "bytes": got.nbytes,
                        "batches": sum(c.num_chunks for c in got.columns[:1]),
                        "cpu_s": time.process_time() - cpu})
            del got
    finally:
        server.shutdown()
    return {"runs": out}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--server-pid", type=int, required=True)
    p.add_argument("--date", help="date of processed.daily_metrics to query (default: its latest)")
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--iterations", type=int, default=1000)
    p.add_argument("--scan-runs", type=int, default=3)
    p.add_argument("--out", required=True)
    p.add_argument("--raw-table", help="directory of raw.user_events, for the Arrow C++ reference scan")
    a = p.parse_args()

    # autocommit: every statement stands alone (the server has no transactions); without it the
    # driver manager warns that it cannot turn autocommit off.
    conn = flight_sql.connect(a.url, autocommit=True)
    client = flight.connect(a.url)
    with conn.cursor() as cur:
        if a.date:
            date = datetime.date.fromisoformat(a.date)
        else:
            cur.execute("SELECT max(date) FROM processed.daily_metrics")
            date = cur.fetchone()[0]
        if date is None:
            raise SystemExit("processed.daily_metrics is empty: run `lake daily` on the lake first")
        cur.execute("SELECT count(*) FROM raw.user_events")
        raw_rows = cur.fetchone()[0]
    result = {"date": date.isoformat(), "raw_rows": raw_rows, "url": a.url,
              "adbc_driver_flightsql": importlib.metadata.version("adbc-driver-flightsql"),
              "pyarrow": pa.__version__, "server_start": proc_status(a.server_pid)}

    point_sql = "SELECT * FROM processed.daily_metrics WHERE date = $1"
    literal_sql = f"SELECT * FROM processed.daily_metrics WHERE date = DATE '{date.isoformat()}'"
    floor, prepared, literal = conn.cursor(), conn.cursor(), conn.cursor()

    def fresh_cursor():
        # What a client pays that sends each query on a new statement: the DB-API prepares it
        # (CreatePreparedStatement), executes, and closes it again.
        with conn.cursor() as c:
            return c.execute(literal_sql).fetch_arrow_table()

    point = [
        # The floor: a query that reads no table (transport, planning, the client's own cost).
        latencies("floor", "ADBC, `SELECT 1`, same cursor (floor: no table)",
                  lambda: floor.execute("SELECT 1").fetch_arrow_table(), a.server_pid, a.warmup, a.iterations),
        # The same statement prepared once (the DB-API cursor keeps it); each call binds the date
        # (DoPut) and executes (GetFlightInfo + DoGet).
        latencies("prepared", "ADBC, prepared, `date = $1` bound each call",
                  lambda: prepared.execute(point_sql, parameters=(date,)).fetch_arrow_table(),
                  a.server_pid, a.warmup, a.iterations),
        # The DB-API prepares any statement the first time it sees it, so a repeated literal
        # also runs as a prepared statement, without the bind.
        latencies("literal", "ADBC, literal date, same cursor",
                  lambda: literal.execute(literal_sql).fetch_arrow_table(), a.server_pid, a.warmup, a.iterations),
        latencies("new_cursor", "ADBC, literal date, new cursor each query", fresh_cursor, a.server_pid, a.warmup, a.iterations),
        latencies("flight_floor", "pyarrow.flight, `SELECT 1`, ad-hoc (floor: no table)",
                  lambda: flight_query(client, "SELECT 1"), a.server_pid, a.warmup, a.iterations),
        latencies("flight_adhoc", "pyarrow.flight, literal date, ad-hoc CommandStatementQuery",
                  lambda: flight_query(client, literal_sql), a.server_pid, a.warmup, a.iterations),
    ]
    for c in (floor, prepared, literal):
        c.close()
    result["point"] = point
    result["after_point"] = proc_status(a.server_pid)

    scan_sql = "SELECT * FROM raw.user_events"

    def adbc_scan():
        with conn.cursor() as c:
            return c.execute(scan_sql).fetch_arrow_table()

    flight_query(client, scan_sql)  # one untimed scan: the Parquet files into the page cache
    result["scan"] = [
        scan("ADBC fetch_arrow_table", adbc_scan, a.server_pid, a.scan_runs),
        scan("pyarrow.flight DoGet", lambda: flight_query(client, scan_sql), a.server_pid, a.scan_runs),
    ]
    for s in result["scan"]:
        bad = [r["rows"] for r in s["runs"] if r["rows"] != raw_rows]
        if bad:
            raise SystemExit(f"{s['name']} returned {bad} rows, count(*) says {raw_rows}")
    result["end"] = proc_status(a.server_pid)
    result["ceiling"] = ceiling(flight_query(client, scan_sql), a.scan_runs)
    if a.raw_table:
        result["arrow_cpp_parquet"] = arrow_cpp_parquet(a.raw_table, a.scan_runs)
        bad = [r["rows"] for r in result["arrow_cpp_parquet"]["runs"] if r["rows"] != raw_rows]
        if bad:
            raise SystemExit(f"the Arrow C++ reference read {bad} rows, count(*) says {raw_rows}")
    if not result["end"]:
        raise SystemExit("lake serve exited during the benchmark")
    client.close()
    conn.close()
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)
    for x in point:
        print(f"point p50 {statistics.median(x['ms']):8.2f} ms  {x['name']}", file=sys.stderr)
    for x in result["scan"]:
        print(f"scan median {statistics.median(r['seconds'] for r in x['runs']):6.3f} s  {x['name']}", file=sys.stderr)


if __name__ == "__main__":
    main()
