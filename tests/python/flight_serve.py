"""A small lake and a running `lake serve` for the Flight SQL client tests
(test_flight_adbc.py, test_flight_jdbc.py); conftest.py wraps them in session fixtures.

The lake: 3,000 seed events over 2025-01-10 and 2025-01-11 produced into the test broker and
ingested with `lake ingest --until-caught-up`; `lake daily` then runs 2025-01-10 only, so
processed.daily_metrics has one row (for DATE) and none for OTHER_DATE.
"""
from __future__ import annotations

import dataclasses
import datetime
import pathlib
import select
import subprocess
import threading
import uuid

from conftest import run

SQL = pathlib.Path(__file__).resolve().parents[2] / "sql"
DATE = datetime.date(2025, 1, 10)
OTHER_DATE = datetime.date(2025, 1, 11)
EVENTS = 3000

# About 30 MB of strings, several MB per result batch: the server sends them as Flight messages
# of up to about 8 MiB (MAX_MESSAGE_BYTES in src/serve/encode.rs), over gRPC's usual
# 4 MiB and under ADBC's 16 MiB limit. LakeJdbcCheck.java runs the same query.
WIDE_SQL = "SELECT kafka_offset, repeat(session_id, 1000) AS wide FROM raw.user_events"


def wide_chars(lake: pathlib.Path) -> int:
    """The characters of WIDE_SQL's `wide` column, counted from the Delta table itself."""
    import deltalake
    import pyarrow.compute as pc
    sessions = deltalake.DeltaTable(str(lake / "raw" / "user_events")).to_pyarrow_table(columns=["session_id"])
    return 1000 * pc.sum(pc.utf8_length(sessions.column("session_id"))).as_py()

# The fixture server's login. ADBC's Go driver sends Basic credentials as *unpadded* base64
# (Go's base64.RawStdEncoding): "ann:s3cret12" is 12 bytes, so its base64 has no padding either
# way. test_flight_adbc.py::test_adbc_login_when_credentials_need_base64_padding covers the
# other case with its own server.
USER = "ann"
PASSWORD = "s3cret12"


def make_lake(lake_bin: str, brokers: str, root: pathlib.Path) -> pathlib.Path:
    topic = f"py_flight_{uuid.uuid4().hex}"
    run(lake_bin, "produce", "--brokers", brokers, "--topic", topic, "--events", str(EVENTS),
        "--days", "2", "--start-date", DATE.isoformat(), "--seed", "11", "--json")
    run(lake_bin, "ingest", "--lake", str(root), "--brokers", brokers, "--topic", topic,
        "--group", topic, "--until-caught-up")
    run(lake_bin, "daily", "--lake", str(root), "--sql", str(SQL), "--date", DATE.isoformat(),
        "--no-sensor", "--json")
    return root


@dataclasses.dataclass
class Server:
    process: subprocess.Popen
    host: str
    port: int
    user: str | None
    password: str | None
    banner: str
    log: pathlib.Path
    scheme: str = "grpc"

    @property
    def uri(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)


def start_server(lake_bin: str, lake_dir: pathlib.Path | str, user: str | None = USER,
                 password: str | None = PASSWORD, *extra: str, timeout: float = 60,
                 log: pathlib.Path | None = None) -> Server:
    """Starts `lake serve` on a free loopback port and waits for its banner line. The server's
    log goes to `log`, by default next to a local lake, for reading when a test fails."""
    args = [lake_bin, "serve", "--lake", str(lake_dir), "--addr", "127.0.0.1:0", *extra]
    if user is not None:
        args += ["--user", user, "--password", password]
    if log is None:
        log = lake_dir.parent / f"{lake_dir.name}-serve-{uuid.uuid4().hex[:8]}.log"
    with open(log, "wb") as err:
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True)
    ready, _, _ = select.select([p.stdout], [], [], timeout)
    line = p.stdout.readline() if ready else ""
    if not line:
        p.kill()
        p.wait()
        raise AssertionError(f"`lake serve` printed no banner within {timeout}s (exit code "
                             f"{p.returncode}): {log.read_text(errors='replace')[-2000:]}")
    addr = next((w for w in line.split() if w.startswith(("grpc://", "grpc+tls://"))), None)
    assert addr, f"no grpc:// or grpc+tls:// address in the banner {line!r}"
    scheme, hostport = addr.split("://", 1)
    host, port = hostport.rsplit(":", 1)
    # Keep draining stdout so the server never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
    return Server(p, host, int(port), user, password, line.strip(), log, scheme)
