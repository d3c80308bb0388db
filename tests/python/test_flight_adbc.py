"""`lake serve` through ADBC's Flight SQL driver (adbc-driver-flightsql, the Go driver behind
Python's DB-API) and through pyarrow.flight: login, queries over raw, processed and system tables
whose values equal what deltalake and DuckDB read from the Delta tables directly, metadata
(adbc_get_objects, adbc_get_table_schema), prepared statements with a bound DATE, wrong
passwords, read-only refusals, TLS and the memory limit.

The lake and the server are session fixtures (conftest.py, flight_serve.py).
"""

import subprocess

import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager.dbapi
import deltalake
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight
import pytest

import flight_serve
from duckdb_delta import connect as duckdb_connect
from flight_serve import DATE, EVENTS, OTHER_DATE, WIDE_SQL, wide_chars


def adbc_connect(server, password=None):
    return flight_sql.connect(
        server.uri,
        db_kwargs={"username": server.user, "password": password or server.password},
        # Every statement stands alone (the server has no transactions); without this the
        # driver manager warns that it cannot turn autocommit off.
        autocommit=True,
    )


@pytest.fixture(scope="module")
def conn(flight_server):
    with adbc_connect(flight_server) as c:
        yield c


def query(conn, sql, parameters=None) -> pa.Table:
    with conn.cursor() as cur:
        cur.execute(sql, parameters=parameters)
        return cur.fetch_arrow_table()


def table_dirs(lake):
    """{schema: [table, ...]} from the Delta tables on disk."""
    return {
        schema.name: sorted(t.name for t in schema.iterdir() if (t / "_delta_log").is_dir())
        for schema in sorted(lake.iterdir()) if schema.is_dir()
    }


def test_adbc_queries_raw_processed_and_system_tables_like_the_delta_tables(conn, flight_lake):
    raw = flight_lake / "raw" / "user_events"
    duck = duckdb_connect()

    by_type = query(conn, "SELECT event_type, count(*) AS n FROM lake.raw.user_events "
                          "GROUP BY event_type ORDER BY event_type")
    assert by_type.schema == pa.schema([pa.field("event_type", pa.string(), nullable=False),
                                        pa.field("n", pa.int64(), nullable=False)])
    expected = duck.execute(f"SELECT event_type, count(*) FROM delta_scan('{raw}') "
                            "GROUP BY 1 ORDER BY 1").fetchall()
    assert list(zip(*by_type.to_pydict().values())) == expected
    assert sum(n for _, n in expected) == EVENTS

    # The default catalog is `lake`; processed.daily_metrics has one row, for DATE only.
    metrics = query(conn, "SELECT * FROM processed.daily_metrics")
    assert metrics.num_rows == 1
    row = metrics.to_pylist()[0]
    assert row == deltalake.DeltaTable(str(flight_lake / "processed" / "daily_metrics")) \
        .to_pyarrow_table().to_pylist()[0]
    assert row["date"] == DATE
    raw_count, users = duck.execute(
        f"SELECT count(*), count(DISTINCT user_id) FROM delta_scan('{raw}') WHERE event_date = ?",
        [DATE]).fetchone()
    assert (row["total_events"], row["unique_users"]) == (raw_count, users)
    assert row["click_events"] + row["view_events"] + row["purchase_events"] + \
        row["login_events"] + row["logout_events"] == raw_count

    runs = query(conn, "SELECT date, status FROM system.daily_runs")
    assert runs.to_pylist() == [{"date": DATE, "status": "succeeded"}]

    # Types arrive as the lake stores them (strings as Utf8, not Utf8View).
    sample = query(conn, "SELECT event_time, event_date, event_type, kafka_offset "
                         "FROM raw.user_events LIMIT 1")
    assert sample.schema.types == [pa.timestamp("us", tz="UTC"), pa.date32(), pa.string(), pa.int64()]


def test_adbc_get_objects_lists_the_catalog_its_schemas_and_tables(conn, flight_lake):
    objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
    assert [c["catalog_name"] for c in objects] == ["lake"]
    schemas = {s["db_schema_name"]: sorted(t["table_name"] for t in s["db_schema_tables"])
               for s in objects[0]["catalog_db_schemas"]}
    assert set(schemas) == {"raw", "processed", "system"}
    assert schemas == table_dirs(flight_lake)
    assert {"user_events", "user_events_dead_letters"} <= set(schemas["raw"])
    assert {"daily_metrics", "daily_page_metrics", "daily_event_type_metrics"} <= set(schemas["processed"])
    assert {"daily_runs", "check_results"} <= set(schemas["system"])
    types = {t["table_type"] for s in objects[0]["catalog_db_schemas"] for t in s["db_schema_tables"]}
    assert types == {"TABLE"}
    assert conn.adbc_get_table_types() == ["TABLE"]

    # Column depth: daily_metrics' columns in order.
    full = conn.adbc_get_objects(db_schema_filter="processed", table_name_filter="daily_metrics") \
        .read_all().to_pylist()
    [table] = [t for s in full[0]["catalog_db_schemas"] for t in s["db_schema_tables"]]
    columns = [c["column_name"] for c in sorted(table["table_columns"], key=lambda c: c["ordinal_position"])]
    assert columns == query(conn, "SELECT * FROM processed.daily_metrics LIMIT 0").schema.names


def test_adbc_get_table_schema_is_the_schema_queries_return(conn):
    # GetTables(include_schema=true) must describe columns with the types a query returns;
    # JDBC's getColumns cannot read Utf8View at all (see test_flight_jdbc.py).
    for schema, table in [("raw", "user_events"), ("processed", "daily_metrics"), ("system", "daily_runs")]:
        got = conn.adbc_get_table_schema(table, catalog_filter="lake", db_schema_filter=schema)
        want = query(conn, f"SELECT * FROM lake.{schema}.{table} LIMIT 0").schema
        assert got.names == want.names
        differ = [f"{f.name}: {f.type} (query: {w.type})" for f, w in zip(got, want) if f.type != w.type]
        assert not differ, f"GetTables' table_schema of {schema}.{table} differs from a query's: {differ}"


def test_adbc_prepared_statement_binds_a_date(conn, flight_lake):
    duck = duckdb_connect()
    raw = flight_lake / "raw" / "user_events"
    with conn.cursor() as cur:
        # DB-API parameters go to the server as an Arrow batch (DoPut); a Python date is date32.
        cur.adbc_prepare("SELECT total_events FROM processed.daily_metrics WHERE date = $1")
        cur.execute("SELECT total_events FROM processed.daily_metrics WHERE date = $1",
                    parameters=(DATE,))
        got = cur.fetchall()
        # The same statement again with another value.
        cur.execute("SELECT total_events FROM processed.daily_metrics WHERE date = $1",
                    parameters=(OTHER_DATE,))
        assert cur.fetchall() == []
    assert got == [duck.execute(f"SELECT count(*) FROM delta_scan('{raw}') WHERE event_date = ?",
                                [DATE]).fetchone()]

    for day in (DATE, OTHER_DATE):
        t = query(conn, "SELECT count(*) AS n FROM raw.user_events WHERE event_date = $1 AND event_type = $2",
                  parameters=(day, "click"))
        assert t.column("n").to_pylist() == [duck.execute(
            f"SELECT count(*) FROM delta_scan('{raw}') WHERE event_date = ? AND event_type = 'click'",
            [day]).fetchone()[0]]


def test_adbc_qmark_placeholders_are_accepted(conn):
    # adbc_driver_flightsql.dbapi.paramstyle is "qmark": DB-API users write `?`.
    assert flight_sql.paramstyle == "qmark"
    t = query(conn, "SELECT total_events FROM processed.daily_metrics WHERE date = ?", parameters=(DATE,))
    assert t.num_rows == 1


def test_adbc_wrong_password_is_refused(flight_server):
    # "ann:wrong-pw" is 12 bytes: no base64 padding, so this is about the password alone.
    with pytest.raises(adbc_driver_manager.dbapi.Error) as e:
        with adbc_connect(flight_server, password="wrong-pw") as c:
            query(c, "SELECT 1")
    assert "UNAUTHENTICATED" in str(e.value) and "wrong user name or password" in str(e.value), str(e.value)


def test_adbc_login_when_credentials_need_base64_padding(flight_lake, lake_bin):
    # The Go driver (arrow-go's AuthenticateBasicToken) encodes "user:password" with
    # base64.RawStdEncoding, i.e. without '=' padding; Java and C++ clients pad. "ann:s3cret" is
    # 10 bytes, whose padded base64 ends in "==".
    server = flight_serve.start_server(lake_bin, flight_lake, "ann", "s3cret")
    try:
        with adbc_connect(server) as c:
            assert query(c, "SELECT 1 AS one").column("one").to_pylist() == [1]
    finally:
        server.stop()


@pytest.mark.parametrize("statement", [
    "DROP TABLE raw.user_events",
    "INSERT INTO raw.user_events SELECT * FROM raw.user_events",
    "CREATE TABLE t AS SELECT 1",
])
def test_adbc_forbidden_statements_are_refused_as_read_only(conn, flight_lake, statement):
    with pytest.raises(adbc_driver_manager.dbapi.Error) as e:
        query(conn, statement)
    assert "INVALID_ARGUMENT" in str(e.value) and "read-only" in str(e.value), str(e.value)
    assert query(conn, "SELECT count(*) AS n FROM raw.user_events").column("n").to_pylist() == [EVENTS]


def _any_command(type_name: str, sql: str) -> bytes:
    """A google.protobuf.Any holding arrow.flight.protocol.sql.<type_name>{query: sql}."""
    def field(number, payload: bytes):
        out, n = bytearray([number << 3 | 2]), len(payload)
        while n >= 0x80:
            out.append(n & 0x7F | 0x80)
            n >>= 7
        out.append(n)
        return bytes(out) + payload
    url = f"type.googleapis.com/arrow.flight.protocol.sql.{type_name}".encode()
    return field(1, url) + field(2, field(1, sql.encode()))


def test_pyarrow_flight_and_adbc_read_a_full_table(flight_server, conn, flight_lake):
    expected = deltalake.DeltaTable(str(flight_lake / "raw" / "user_events")).to_pyarrow_table()
    keys = ["kafka_partition", "kafka_offset"]

    # pyarrow.flight (Arrow C++): Basic login, then the bearer token on every call.
    client = flight.connect(flight_server.uri)
    token = client.authenticate_basic_token(flight_server.user.encode(), flight_server.password.encode())
    options = flight.FlightCallOptions(headers=[token])
    descriptor = flight.FlightDescriptor.for_command(
        _any_command("CommandStatementQuery", "SELECT * FROM raw.user_events"))
    info = client.get_flight_info(descriptor, options)
    parts = [client.do_get(e.ticket, options).read_all() for e in info.endpoints]
    table = pa.concat_tables(parts)
    client.close()
    assert table.num_rows == expected.num_rows == EVENTS
    assert table.schema.names == expected.schema.names
    assert table.sort_by([(k, "ascending") for k in keys]).column("user_id") == \
        expected.sort_by([(k, "ascending") for k in keys]).column("user_id")

    # ADBC's fetch_arrow_table of the whole table.
    t = query(conn, "SELECT * FROM raw.user_events")
    assert t.num_rows == EVENTS
    assert t.schema == table.schema
    for column in ["user_id", "event_type", "event_time", "session_id", "event_date"]:
        got = t.sort_by([(k, "ascending") for k in keys]).column(column)
        want = expected.sort_by([(k, "ascending") for k in keys]).column(column)
        assert pc.all(pc.equal(got.cast(want.type), want)).as_py(), column


def test_messages_of_several_mib_reach_pyarrow_and_adbc(flight_server, conn, flight_lake):
    client = flight.connect(flight_server.uri)
    token = client.authenticate_basic_token(flight_server.user.encode(), flight_server.password.encode())
    options = flight.FlightCallOptions(headers=[token])
    info = client.get_flight_info(flight.FlightDescriptor.for_command(
        _any_command("CommandStatementQuery", WIDE_SQL)), options)
    batches = [b for e in info.endpoints for b in client.do_get(e.ticket, options).read_all().to_batches()]
    client.close()
    # One Flight message is one batch here: some must be over 4 MiB for this test to mean anything.
    assert max(b.nbytes for b in batches) > 4 * 1024 * 1024
    assert sum(b.num_rows for b in batches) == EVENTS
    assert sum(pc.sum(pc.utf8_length(b.column("wide"))).as_py() for b in batches) == wide_chars(flight_lake)

    t = query(conn, WIDE_SQL)
    assert t.num_rows == EVENTS
    assert pc.sum(pc.utf8_length(t.column("wide"))).as_py() == wide_chars(flight_lake)


def self_signed_cert(directory) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and localhost and its key (PEM), made with the openssl CLI."""
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert),
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True)
    return str(cert), str(key)


def test_tls_with_adbc_and_pyarrow(flight_lake, lake_bin, tmp_path):
    cert, key = self_signed_cert(tmp_path)
    server = flight_serve.start_server(lake_bin, flight_lake, flight_serve.USER,
                                       flight_serve.PASSWORD, "--tls-cert", cert, "--tls-key", key)
    try:
        assert server.uri.startswith("grpc+tls://127.0.0.1:"), server.banner
        pem = open(cert).read()
        # ADBC trusting our certificate: login and a query over TLS.
        with flight_sql.connect(server.uri, db_kwargs={
                "username": server.user, "password": server.password,
                "adbc.flight.sql.client_option.tls_root_certs": pem}, autocommit=True) as c:
            assert query(c, "SELECT count(*) AS n FROM raw.user_events").column("n").to_pylist() == [EVENTS]
        # pyarrow.flight (Arrow C++'s gRPC client) the same way.
        client = flight.connect(server.uri, tls_root_certs=pem.encode())
        token = client.authenticate_basic_token(server.user.encode(), server.password.encode())
        descriptor = flight.FlightDescriptor.for_command(
            _any_command("CommandStatementQuery", "SELECT count(*) AS n FROM raw.user_events"))
        options = flight.FlightCallOptions(headers=[token])
        info = client.get_flight_info(descriptor, options)
        assert client.do_get(info.endpoints[0].ticket, options).read_all().column("n").to_pylist() == [EVENTS]
        client.close()
        # A client that does not trust the certificate is refused before any credential is sent.
        with pytest.raises(adbc_driver_manager.dbapi.Error) as e:
            with flight_sql.connect(server.uri, db_kwargs={
                    "username": server.user, "password": server.password}, autocommit=True) as c:
                query(c, "SELECT 1")
        assert "certificate" in str(e.value).lower(), str(e.value)
        # Plaintext gRPC to the TLS port gets no answer.
        with pytest.raises(adbc_driver_manager.dbapi.Error):
            with flight_sql.connect(f"grpc://127.0.0.1:{server.port}", db_kwargs={
                    "username": server.user, "password": server.password}, autocommit=True) as c:
                query(c, "SELECT 1")
    finally:
        server.stop()


def test_tls_with_an_unreadable_key_is_a_clear_startup_error(flight_lake, lake_bin, tmp_path):
    cert, _ = self_signed_cert(tmp_path)
    bad_key = tmp_path / "bad.key"
    bad_key.write_text("not a key\n")
    for key, expected in [(str(bad_key), "TLS"), (str(tmp_path / "missing.key"), "missing.key")]:
        r = subprocess.run([lake_bin, "serve", "--lake", str(flight_lake), "--addr", "127.0.0.1:0",
                            "--tls-cert", cert, "--tls-key", key], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert expected in r.stderr and "Flight SQL on" not in r.stdout, r.stderr


def test_memory_limit_refuses_a_query_and_the_server_goes_on(flight_lake, lake_bin):
    # 8 MiB for all queries: a hash join of 2M keys cannot fit and cannot spill.
    server = flight_serve.start_server(lake_bin, flight_lake, flight_serve.USER,
                                       flight_serve.PASSWORD, "--memory-limit", "8M")
    try:
        with adbc_connect(server) as c:
            with pytest.raises(adbc_driver_manager.dbapi.Error) as e:
                query(c, "SELECT count(*) FROM range(2000000) a JOIN range(2000000) b "
                         "ON a.value = b.value")
            # ADBC files gRPC's RESOURCE_EXHAUSTED under its INTERNAL status and names the gRPC
            # code in the message.
            assert "(ResourceExhausted;" in str(e.value) and "query memory limit reached" in str(e.value), str(e.value)
            # The failed query gave its memory back: the next one runs.
            assert query(c, "SELECT count(*) AS n FROM raw.user_events").column("n").to_pylist() == [EVENTS]
    finally:
        server.stop()
