"""Time from starting `lake demo` (a built binary, a fresh lake) to its first answered Flight SQL
query: the newcomer's "under 10 s" target. Run with the test venv's Python (it has ADBC):

    python bench/demo_first_query.py [LAKE_BIN]

Prints the seconds until the Flight SQL banner and until the first query's answer."""
import re
import subprocess
import sys
import tempfile
import time

import adbc_driver_flightsql.dbapi as flightsql

lake_bin = sys.argv[1] if len(sys.argv) > 1 else "target/release/lake"
with tempfile.TemporaryDirectory() as lake:
    started = time.monotonic()
    demo = subprocess.Popen([lake_bin, "demo", "--lake", lake, "--port", "0", "--duration", "5s"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = None
    for line in demo.stdout:
        m = re.match(r"Flight SQL: (grpc://\S+)", line)
        if m:
            url = m.group(1)
            break
    banner = time.monotonic() - started
    assert url, "the demo printed no Flight SQL address"
    with flightsql.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM raw.user_events")
        events = cur.fetchone()[0]
    answered = time.monotonic() - started
    for _ in demo.stdout:
        pass
    demo.wait()
    print(f"banner after {banner:.1f} s; first query answered after {answered:.1f} s "
          f"({events} events); demo exit code {demo.returncode}")
