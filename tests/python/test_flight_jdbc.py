"""`lake serve` through the Arrow Flight SQL JDBC driver (org.apache.arrow:flight-sql-jdbc-driver,
what DBeaver and Tableau use): tests/java/src/main/java/LakeJdbcCheck.java runs once, in one JVM,
through scripts/jdbc-check.sh (driver jar from Maven Central, cached under $LAKE_CACHE), and prints
what DatabaseMetaData.getTables/getSchemas/getColumns, Statement.executeQuery and
PreparedStatement with a bound date return. The values must equal what deltalake and DuckDB read
from the Delta tables directly.

Every JDBC step is run even when an earlier one fails; a failed step prints
`error STEP MESSAGE`, which the test for that step shows.
"""
import pathlib
import subprocess

import deltalake
import pytest

from duckdb_delta import connect as duckdb_connect
from flight_serve import DATE, EVENTS, OTHER_DATE, wide_chars

ROOT = pathlib.Path(__file__).resolve().parents[2]


class Output:
    def __init__(self, proc):
        self.returncode = proc.returncode
        self.stderr = proc.stderr
        self.lines = [line.split(" ") for line in proc.stdout.splitlines()]
        self.errors = {l[1]: " ".join(l[2:]) for l in self.lines if l[0] == "error"}

    def rows(self, kind):
        return [l[1:] for l in self.lines if l[0] == kind]

    def no_error(self, *steps):
        failed = {s: self.errors[s] for s in steps if s in self.errors}
        assert not failed, f"JDBC steps failed: {failed}"


@pytest.fixture(scope="module")
def jdbc(flight_server):
    proc = subprocess.run(
        [str(ROOT / "scripts" / "jdbc-check.sh"), flight_server.host, str(flight_server.port),
         flight_server.user, flight_server.password, DATE.isoformat(), OTHER_DATE.isoformat()],
        capture_output=True, text=True, timeout=600)
    out = Output(proc)
    assert ["done"] in out.lines, f"LakeJdbcCheck did not finish (exit {proc.returncode}):\n" \
                                  f"{proc.stdout}\n{proc.stderr[-4000:]}"
    return out


def test_jdbc_get_tables_and_schemas_list_the_lake(jdbc, flight_lake):
    jdbc.no_error("getDatabaseProduct", "getCatalogs", "getTableTypes", "getTables", "getSchemas")
    # Answered from GetSqlInfo (DBeaver and Tableau fail without it).
    [product] = jdbc.rows("product")
    assert product[0] == "lake" and product[2] == '"'
    assert jdbc.rows("catalog") == [["lake"]]
    assert jdbc.rows("table_type") == [["TABLE"]]
    tables = {tuple(r) for r in jdbc.rows("table")}
    assert ("lake", "raw", "user_events", "TABLE") in tables
    assert ("lake", "processed", "daily_metrics", "TABLE") in tables
    on_disk = {("lake", s.name, t.name, "TABLE") for s in flight_lake.iterdir() if s.is_dir()
               for t in s.iterdir() if (t / "_delta_log").is_dir()}
    assert tables == on_disk
    assert sorted(jdbc.rows("schema")) == [["lake", "processed"], ["lake", "raw"], ["lake", "system"]]


def test_jdbc_get_columns_describes_user_events(jdbc, flight_lake):
    jdbc.no_error("getColumns")
    columns = [(r[1], r[2]) for r in jdbc.rows("colmeta") if r[0] == "raw.user_events"]
    schema = deltalake.DeltaTable(str(flight_lake / "raw" / "user_events")).schema()
    assert [name for name, _ in columns] == [f.name for f in schema.fields]
    types = dict(columns)
    assert (types["event_type"], types["user_id"], types["event_date"]) == ("VARCHAR", "BIGINT", "DATE")
    assert types["event_time"].startswith("TIMESTAMP")


def test_jdbc_execute_query_counts_equal_the_delta_table(jdbc, flight_lake):
    jdbc.no_error("executeQuery")
    assert jdbc.rows("column") == [["event_type", "VARCHAR"], ["n", "BIGINT"]]
    got = [(t, int(n)) for t, n in jdbc.rows("count")]
    expected = duckdb_connect().execute(
        f"SELECT event_type, count(*) FROM delta_scan('{flight_lake / 'raw' / 'user_events'}') "
        "GROUP BY 1 ORDER BY 1").fetchall()
    assert got == expected
    assert sum(n for _, n in got) == EVENTS


def expected_total_events(flight_lake):
    return duckdb_connect().execute(
        f"SELECT count(*) FROM delta_scan('{flight_lake / 'raw' / 'user_events'}') WHERE event_date = ?",
        [DATE]).fetchone()[0]


@pytest.mark.parametrize("form", ["dollar", "qmark"])
def test_jdbc_prepared_statement_binds_a_date(jdbc, flight_lake, form):
    # dollar: `WHERE date = $1` (DataFusion's placeholders); qmark: `WHERE date = ?` (what JDBC
    # users and tools write).
    jdbc.no_error(f"prepareStatement_{form}", f"setDate_{form}", f"setObject_{form}",
                  f"setDate_empty_{form}")
    metrics = deltalake.DeltaTable(str(flight_lake / "processed" / "daily_metrics")).to_pyarrow_table()
    assert metrics.column("total_events").to_pylist() == [expected_total_events(flight_lake)]
    total = str(metrics.column("total_events")[0].as_py())
    prepared = [r[1:] for r in jdbc.rows("prepared") if r[0] == form]
    assert prepared == [["setDate", DATE.isoformat(), total], ["setObject", DATE.isoformat(), total]]
    counts = [r[1:] for r in jdbc.rows("prepared_rows") if r[0] == form]
    assert counts == [["setDate", DATE.isoformat(), "1"], ["setObject", DATE.isoformat(), "1"],
                      ["setDate", OTHER_DATE.isoformat(), "0"]]


def test_jdbc_wrong_password_is_refused(jdbc):
    jdbc.no_error("connect_wrong_password")
    [error] = jdbc.rows("auth_error")
    message = " ".join(error)
    assert "UNAUTHENTICATED" in message and "wrong user name or password" in message, message


def test_jdbc_connection_closes_cleanly(jdbc):
    # The driver checks for leaked Arrow buffers when the connection closes. (A getColumns that
    # fails while reading the server's answer leaves such buffers behind in driver 18.3.0.)
    jdbc.no_error("connection")
    assert jdbc.returncode == 0 and not jdbc.errors, jdbc.errors


def test_jdbc_reads_a_result_sent_as_messages_of_several_mib(jdbc, flight_lake):
    jdbc.no_error("wide")
    assert jdbc.rows("wide") == [[str(EVENTS), str(wide_chars(flight_lake))]]
