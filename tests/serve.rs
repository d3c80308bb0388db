//! `lake serve` with the arrow-flight Flight SQL client: login, queries over raw, processed and
//! system tables, prepared statements with bound parameters, metadata, fresh snapshots, and the
//! security limits (auth failures, read-only, timeout, concurrency).

mod common;

use std::path::Path;
use std::sync::Arc;

use arrow_flight::sql::{CommandGetDbSchemas, CommandGetTables};
use common::flight::*;
use common::*;
use datafusion::arrow::array::{Date32Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use futures::TryStreamExt;
use lake::testing::Lake;
use tonic::transport::Channel;

// tonic prints a status code as its description.
const UNAUTHENTICATED: &str = "valid authentication credentials";
const INVALID_ARGUMENT: &str = "invalid argument";
const RESOURCE_EXHAUSTED: &str = "resource has been exhausted";
const DEADLINE_EXCEEDED: &str = "Deadline expired";

/// A lake with 6 events on 2025-01-10 (one of them a purchase) and the daily tables for it.
async fn lake_with_daily(dir: &Path) {
    let lake = Lake::new(dir).unwrap();
    append_raw_events(&lake, 0, &HAND_CHECKABLE_DAY).await;
    let sql = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
    run_ok(&[
        "daily",
        "--lake",
        dir.to_str().unwrap(),
        "--sql",
        sql.to_str().unwrap(),
        "--date",
        "2025-01-10",
        "--no-sensor",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_log_in_query_every_schema_and_see_new_commits() {
    let dir = tempdir();
    lake_with_daily(dir.path()).await;
    let server = serve(dir.path(), &["--user", "ann", "--password", "s3cret"]);
    let mut c = client(&server.url).await;
    c.handshake("ann", "s3cret").await.expect("login");

    assert_eq!(
        first_i64(
            &query(&mut c, "SELECT count(*) FROM raw.user_events")
                .await
                .unwrap()
        ),
        6
    );
    assert_eq!(
        first_i64(
            &query(
                &mut c,
                "SELECT total_events FROM lake.processed.daily_metrics"
            )
            .await
            .unwrap()
        ),
        6
    );
    let runs = query(&mut c, "SELECT status FROM system.daily_runs")
        .await
        .unwrap();
    assert_eq!(strings(&runs, "status"), vec!["succeeded"]);

    // A prepared statement with a bound DATE, executed twice with different values.
    let mut stmt = c
        .prepare(
            "SELECT total_events FROM daily_metrics WHERE date = $1".into(),
            None,
        )
        .await
        .expect("prepare");
    assert_eq!(
        stmt.parameter_schema().unwrap().field(0).data_type(),
        &DataType::Date32
    );
    assert_eq!(
        stmt.dataset_schema().unwrap().field(0).name(),
        "total_events"
    );
    let date = |days: i32| {
        let schema = Arc::new(Schema::new(vec![Field::new("$1", DataType::Date32, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Date32Array::from(vec![days]))]).unwrap()
    };
    stmt.set_parameters(date(20098)).unwrap(); // 2025-01-10
    let info = stmt.execute().await.expect("execute");
    assert_eq!(first_i64(&fetch(&mut c, info).await.unwrap()), 6);
    stmt.set_parameters(date(20099)).unwrap();
    let info = stmt.execute().await.expect("execute");
    let rows: usize = fetch(&mut c, info)
        .await
        .unwrap()
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows, 0);
    stmt.close().await.expect("close");

    // Metadata: schemas without a catalog (as ADBC asks), tables with their schemas.
    let info = c.get_catalogs().await.unwrap();
    assert_eq!(
        strings(&fetch(&mut c, info).await.unwrap(), "catalog_name"),
        vec!["lake"]
    );
    let info = c
        .get_db_schemas(CommandGetDbSchemas {
            catalog: None,
            db_schema_filter_pattern: None,
        })
        .await
        .unwrap();
    assert_eq!(
        strings(&fetch(&mut c, info).await.unwrap(), "db_schema_name"),
        vec!["processed", "raw", "system"]
    );
    let info = c
        .get_tables(CommandGetTables {
            catalog: Some("lake".into()),
            db_schema_filter_pattern: Some("raw".into()),
            table_name_filter_pattern: None,
            table_types: vec![],
            include_schema: true,
        })
        .await
        .unwrap();
    let tables = fetch(&mut c, info).await.unwrap();
    assert_eq!(
        strings(&tables, "table_name"),
        vec!["user_events", "user_events_dead_letters"]
    );
    assert_eq!(strings(&tables, "table_type"), vec!["TABLE", "TABLE"]);

    // A new commit is visible to the next query without a restart, also to a query the
    // server has answered before (and may keep a plan of).
    let rows = |batches: Vec<RecordBatch>| batches.iter().map(|b| b.num_rows()).sum::<usize>();
    let again = "SELECT user_id, event_type FROM raw.user_events WHERE user_id > 0";
    for _ in 0..2 {
        assert_eq!(rows(query(&mut c, again).await.unwrap()), 6);
    }
    // A ticket can be fetched more than once; a plan the server does not reuse (here: an
    // aggregation, its repartitioning state spent by a run) is planned anew each time.
    let grouped = "SELECT event_type, count(*) AS n FROM raw.user_events GROUP BY event_type";
    let info = c.execute(grouped.to_string(), None).await.unwrap();
    let first = rows(fetch(&mut c, info.clone()).await.unwrap());
    assert!(first > 0);
    for _ in 0..3 {
        assert_eq!(rows(fetch(&mut c, info.clone()).await.unwrap()), first);
    }
    let lake = Lake::new(dir.path()).unwrap();
    append_raw_events(&lake, 6, &[(3, "click", "2025-01-11T00:00:00", "s4")]).await;
    assert_eq!(rows(query(&mut c, again).await.unwrap()), 7);
    assert_eq!(
        first_i64(
            &query(&mut c, "SELECT count(*) FROM user_events")
                .await
                .unwrap()
        ),
        7
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_forbidden_statements_and_limits_get_grpc_errors() {
    let dir = tempdir();
    lake_with_daily(dir.path()).await;
    let server = serve(
        dir.path(),
        &[
            "--user",
            "ann",
            "--password",
            "s3cret",
            "--query-timeout",
            "2s",
            "--max-concurrent-queries",
            "1",
        ],
    );
    let mut anonymous = client(&server.url).await;
    let e = query(&mut anonymous, "SELECT 1").await.unwrap_err();
    assert!(e.contains(UNAUTHENTICATED), "{e}");
    let e = anonymous
        .handshake("ann", "wrong")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("wrong user name or password"), "{e}");
    anonymous.set_token("forged".into());
    let e = query(&mut anonymous, "SELECT 1").await.unwrap_err();
    assert!(e.contains(UNAUTHENTICATED), "{e}");

    let mut c = client(&server.url).await;
    c.handshake("ann", "s3cret").await.expect("login");
    for forbidden in [
        "CREATE TABLE t AS SELECT 1",
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
        "INSERT INTO raw.user_events SELECT * FROM raw.user_events",
        "COPY (SELECT 1) TO '/tmp/lake-copy.csv'",
        "DROP TABLE raw.user_events",
        "SET datafusion.execution.batch_size = 1",
    ] {
        let e = query(&mut c, forbidden).await.unwrap_err();
        assert!(
            e.contains(INVALID_ARGUMENT) && e.contains("read-only"),
            "{forbidden}: {e}"
        );
    }
    let e = query(&mut c, "SELECT * FROM '/etc/passwd'")
        .await
        .unwrap_err();
    assert!(e.contains(INVALID_ARGUMENT), "{e}");
    // Quoted names are table names, never paths out of the lake.
    for outside in [
        r#"SELECT * FROM raw."../raw/user_events""#,
        r#"SELECT * FROM "..".raw.user_events"#,
        r#"SELECT * FROM lake."..".tmp"#,
    ] {
        let e = query(&mut c, outside).await.unwrap_err();
        assert!(
            e.contains(INVALID_ARGUMENT) && e.contains("not found"),
            "{outside}: {e}"
        );
    }
    let e = query(&mut c, "SELECT nope FROM raw.user_events")
        .await
        .unwrap_err();
    assert!(e.contains(INVALID_ARGUMENT) && e.contains("nope"), "{e}");

    // A runaway query holds the only slot: a second one is refused, then the first times out.
    let info = c
        .execute("SELECT count(*) FROM range(1, 1000000000000)".into(), None)
        .await
        .expect("plan");
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let mut runaway_client = client(&server.url).await;
    runaway_client.handshake("ann", "s3cret").await.unwrap();
    let runaway = tokio::spawn(async move {
        let stream = runaway_client
            .do_get(ticket)
            .await
            .map_err(|e| e.to_string())?;
        stream
            .try_collect::<Vec<_>>()
            .await
            .map_err(|e| e.to_string())
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let e = query(&mut c, "SELECT 1").await.unwrap_err();
    assert!(
        e.contains(RESOURCE_EXHAUSTED) && e.contains("too many concurrent"),
        "{e}"
    );
    let e = runaway.await.unwrap().unwrap_err();
    assert!(e.contains(DEADLINE_EXCEEDED), "{e}");
    // The slot is free again.
    assert_eq!(
        first_i64(
            &query(&mut c, "SELECT count(*) FROM raw.user_events")
                .await
                .unwrap()
        ),
        6
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_holds_while_streaming_and_a_stalled_reader_gives_its_slot_back() {
    let dir = tempdir();
    lake_with_daily(dir.path()).await;
    let server = serve(
        dir.path(),
        &["--query-timeout", "2s", "--max-concurrent-queries", "1"],
    );
    let mut c = client(&server.url).await;

    // Batches that are always ready: the deadline still ends the stream.
    let started = std::time::Instant::now();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        query(&mut c, "SELECT value FROM range(1, 100000000000)"),
    )
    .await
    .expect("the server ended the stream");
    let e = read.unwrap_err();
    assert!(e.contains(DEADLINE_EXCEEDED), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));

    // A client reads one batch and stops reading without hanging up: its slot comes back at
    // the deadline.
    let info = c
        .execute("SELECT value FROM range(1, 100000000000)".into(), None)
        .await
        .expect("plan");
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let mut stalled = c.do_get(ticket).await.expect("stream");
    assert!(stalled.try_next().await.expect("a batch").is_some());
    let e = query(&mut c, "SELECT 1").await.unwrap_err();
    assert!(e.contains(RESOURCE_EXHAUSTED), "{e}");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(first_i64(&query(&mut c, "SELECT 1").await.unwrap()), 1);
    drop(stalled);
}

/// A prepared-statement handle as this server makes them, with `params` as its parameter bytes.
fn forged_handle(params: &[u8]) -> arrow_flight::FlightDescriptor {
    use arrow_flight::sql::{Any, CommandPreparedStatementQuery, ProstMessageExt};
    use prost::Message;
    let handle = serde_json::json!({"sql": "SELECT $1", "params": params});
    let cmd = CommandPreparedStatementQuery {
        prepared_statement_handle: serde_json::to_vec(&handle).unwrap().into(),
    };
    let any: Any = cmd.as_any();
    arrow_flight::FlightDescriptor::new_cmd(any.encode_to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_long_and_forged_statements_get_an_answer_or_a_clear_error_never_a_crash() {
    let dir = tempdir();
    lake_with_daily(dir.path()).await;
    let server = serve(dir.path(), &[]);
    let mut c = client(&server.url).await;

    // A long chain of additions within the limit is answered.
    let terms = vec!["1"; 1_000].join("+");
    let sum = query(&mut c, &format!("SELECT {terms} AS n"))
        .await
        .unwrap();
    assert_eq!(first_i64(&sum), 1_000);
    // Longer ones are refused, naming the limit (20,000 terms overflowed even a 64 MiB stack).
    for n in [1_002, 20_000] {
        let terms = vec!["1"; n].join("+");
        let e = query(&mut c, &format!("SELECT {terms}")).await.unwrap_err();
        assert!(
            e.contains(INVALID_ARGUMENT) && e.contains("operators"),
            "{e}"
        );
    }
    // A BI tool's long IN list on the partitioned table is answered.
    let users: Vec<String> = (0..20_000).map(|i| i.to_string()).collect();
    let sql = format!(
        "SELECT count(*) FROM raw.user_events WHERE user_id IN ({})",
        users.join(",")
    );
    assert_eq!(first_i64(&query(&mut c, &sql).await.unwrap()), 6);
    // 80,000 constant columns took 4 minutes to plan, and no other query was answered then.
    let columns: Vec<String> = (0..80_000).map(|i| format!("{i} c{i}")).collect();
    let e = query(&mut c, &format!("SELECT {}", columns.join(",")))
        .await
        .unwrap_err();
    assert!(
        e.contains(INVALID_ARGUMENT) && e.contains("items"),
        "{}",
        &e[..e.len().min(300)]
    );
    // Over a MiB of SQL is refused before it is parsed.
    let e = query(&mut c, &format!("SELECT 1 -- {}", "x".repeat(1 << 20)))
        .await
        .unwrap_err();
    assert!(
        e.contains(INVALID_ARGUMENT) && e.contains("bytes long"),
        "{e}"
    );

    // A forged handle whose parameter bytes announce a petabyte body: refused, not allocated.
    let batch = RecordBatch::try_from_iter([(
        "p",
        Arc::new(datafusion::arrow::array::Int64Array::from(vec![7]))
            as datafusion::arrow::array::ArrayRef,
    )])
    .unwrap();
    let mut ipc = Vec::new();
    let mut w =
        datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut ipc, &batch.schema()).unwrap();
    w.write(&batch).unwrap();
    w.finish().unwrap();
    drop(w);
    let honest = c
        .inner_mut()
        .get_flight_info(forged_handle(&ipc))
        .await
        .expect("honest")
        .into_inner();
    assert_eq!(first_i64(&fetch(&mut c, honest).await.unwrap()), 7);
    // Every 8-byte field of the parameters set to a petabyte (one of them is the batch's body
    // length): each call gets an answer or INVALID_ARGUMENT, and the body length is refused.
    let mut refused_bodies = 0;
    for at in 0..ipc.len() - 8 {
        let mut forged = ipc.clone();
        forged[at..at + 8].copy_from_slice(&(1i64 << 50).to_le_bytes());
        if let Err(e) = c.inner_mut().get_flight_info(forged_handle(&forged)).await {
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
            refused_bodies += usize::from(e.message().contains("body"));
        }
    }
    assert!(refused_bodies >= 1);
    let e = c
        .inner_mut()
        .get_flight_info(forged_handle(&[0xff; 64]))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(INVALID_ARGUMENT), "{e}");

    // DoGet is answered by lake's own code (below tonic's codec): forged tickets get
    // INVALID_ARGUMENT, a ticket over the message limit is refused before it is decoded.
    let statement = arrow_flight::sql::CommandStatementQuery {
        query: "SELECT 1".into(),
        transaction_id: None,
    };
    let forged_tickets = [vec![0xff; 64], Vec::new(), {
        use arrow_flight::sql::ProstMessageExt;
        use prost::Message;
        statement.as_any().encode_to_vec()
    }];
    for bytes in forged_tickets {
        let Err(e) = c.inner_mut().do_get(arrow_flight::Ticket::new(bytes)).await else {
            panic!("a forged ticket is answered");
        };
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
    }
    let oversized = arrow_flight::Ticket::new(vec![0u8; 65 << 20]);
    let Err(e) = c.inner_mut().do_get(oversized).await else {
        panic!("an oversized ticket is answered");
    };
    assert_eq!(e.code(), tonic::Code::OutOfRange, "{e}");

    // And the server is still there.
    assert_eq!(
        first_i64(&query(&mut c, "SELECT 41 + 1").await.unwrap()),
        42
    );
}

/// The server's resident memory, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    status_bytes(pid, "VmRSS:")
}

/// A size in /proc/PID/status, e.g. "VmHWM:" (the peak resident memory).
fn status_bytes(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect(key);
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_constants_are_refused_and_plans_never_fetched_do_not_pile_up() {
    let dir = tempdir();
    let server = serve(dir.path(), &["--memory-limit", "64M"]);
    let mut c = client(&server.url).await;
    // A terabyte string, folded by the optimizer while planning: it aborted the process.
    let e = query(
        &mut c,
        "SELECT repeat(arrow_cast('x', 'LargeUtf8'), 1000000000000)",
    )
    .await
    .unwrap_err();
    assert!(
        e.contains(RESOURCE_EXHAUSTED) && e.contains("would produce about"),
        "{e}"
    );
    // A value doubled in 40 steps (1 KiB to 1 PiB): the process aborted at the first
    // allocation it could not get.
    for grow in ["s || s", "concat(s, s)", "flatten([s, s])"] {
        // The first value is made from a one-row table, not folded into a constant (a constant
        // of 1 KiB is refused by itself here, see below).
        let base = match grow {
            "flatten([s, s])" => "SELECT range(n) AS s FROM (VALUES (128)) t(n)",
            _ => "SELECT repeat(v, 1024) AS s FROM (VALUES ('x')) t(v)",
        };
        let steps: Vec<String> = (1..=40)
            .map(|i| format!("t{i} AS (SELECT {grow} AS s FROM t{})", i - 1))
            .collect();
        let sql = format!(
            "WITH t0 AS ({base}), {} SELECT s FROM t40",
            steps.join(", ")
        );
        let e = query(&mut c, &sql).await.unwrap_err();
        // `flatten` copies its whole value, and may refuse before `[s, s]` does.
        let refused = e.contains("would produce about") || e.contains("would copy a value");
        assert!(e.contains(RESOURCE_EXHAUSTED) && refused, "{grow}: {e}");
    }
    // A 900 KB literal copied into every row of a batch of 131,072 (118 GB at once): it
    // aborted the process. Only compared with, it is never copied and the query runs.
    let big = "x".repeat(900_000);
    let sql = format!(
        "SELECT length(s) FROM (SELECT arrow_cast('{big}', 'LargeUtf8') AS s) a, \
         generate_series(1, 1000000)"
    );
    let e = query(&mut c, &sql).await.unwrap_err();
    assert!(
        e.contains(RESOURCE_EXHAUSTED) && e.contains("copied into each"),
        "{}",
        &e[..e.len().min(300)]
    );
    // A 48 MB value made while the query runs (a call on a one-row table, under the 64 MiB a
    // call may make here) meeting a join: 6 TB at once, which aborted the process too.
    let sql = "SELECT sum(length(b.big)) FROM generate_series(1, 1000000) g CROSS JOIN \
               (SELECT repeat(arrow_cast(v, 'LargeUtf8'), 50000000) AS big FROM (VALUES ('x')) t(v)) b";
    let e = query(&mut c, sql).await.unwrap_err();
    assert!(
        e.contains(RESOURCE_EXHAUSTED) && e.contains("meets a join"),
        "{e}"
    );
    let sql = format!(
        "SELECT count(*) FROM generate_series(1, 5) t(x) WHERE CAST(x AS VARCHAR) <> '{big}'"
    );
    assert_eq!(first_i64(&query(&mut c, &sql).await.unwrap()), 5);
    // 300 MB strings planned (GetFlightInfo) and never fetched: they held 2.35 GB.
    let before = rss_bytes(server.child.id());
    for i in 0..4 {
        let sql = format!("SELECT repeat('x', {}) AS s", 300_000_000 + i);
        match c.execute(sql, None).await {
            Ok(_) => {}
            Err(e) => assert!(e.to_string().contains(RESOURCE_EXHAUSTED), "{e}"),
        }
    }
    let after = rss_bytes(server.child.id());
    assert!(
        after < before + (256 << 20),
        "RSS grew from {before} to {after} bytes"
    );
    assert_eq!(
        first_i64(&query(&mut c, "SELECT 41 + 1").await.unwrap()),
        42
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_copied_into_rows_fill_small_batches_or_are_refused() {
    let dir = tempdir();
    let server = serve(dir.path(), &["--memory-limit", "64M"]);
    let mut c = client(&server.url).await;
    // One value of 60 KB (under the 64 KiB a join or window may meet) that `first_value`
    // copies into every later row. In batches of 131,072 rows that was 7.8 GB per batch, made
    // in one call that ran on past the deadline; here the 50,000 rows were 3 GB at once.
    let values = "SELECT v, CASE WHEN v = 1 THEN repeat(v::text, 60000) ELSE 'a' END AS s \
                  FROM generate_series(1, 50000) t(v)";
    let sql = format!(
        "SELECT CAST(min(length(f)) AS BIGINT) FROM \
         (SELECT first_value(s) OVER (ORDER BY v) AS f FROM ({values}))"
    );
    assert_eq!(first_i64(&query(&mut c, &sql).await.unwrap()), 60000);
    let peak = status_bytes(server.child.id(), "VmHWM:");
    assert!(peak < 1 << 30, "peak RSS {peak} bytes");
    // Over the whole partition the operator keeps every row and answers in one batch, outside
    // the pool: its guard charges the pool with that first.
    let sql =
        format!("SELECT max(length(f)) FROM (SELECT first_value(s) OVER () AS f FROM ({values}))");
    let e = query(&mut c, &sql).await.unwrap_err();
    assert!(
        e.contains(RESOURCE_EXHAUSTED) && e.contains("window input"),
        "{e}"
    );
    // `unnest` copies a row's other values into each element's row: 3 million elements beside
    // a 60 KB string asked for 180 GB at once and aborted the process.
    let sql = "SELECT max(length(s)) FROM (SELECT s, unnest(range(n)) AS u FROM \
               (SELECT repeat(arrow_cast(v, 'LargeUtf8'), 60000) AS s, n \
                FROM (VALUES ('x', 3000000)) t(v, n)))";
    let e = query(&mut c, sql).await.unwrap_err();
    assert!(
        e.contains(RESOURCE_EXHAUSTED) && e.contains("unnest would copy"),
        "{e}"
    );
    assert_eq!(
        first_i64(&query(&mut c, "SELECT 41 + 1").await.unwrap()),
        42
    );
}

/// The server's CPU time so far (user and system), from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat")
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_past_its_deadline_stops_working() {
    let dir = tempdir();
    let server = serve(dir.path(), &["--query-timeout", "2s"]);
    let mut c = client(&server.url).await;
    let joins = [
        // A join on a key with two values: 45 billion rows, each input batch making millions
        // without the task ever waiting. Past the deadline it went on at full speed for
        // minutes, and eight at once left no thread to answer anything else.
        "SELECT count(*) FROM generate_series(1, 300000) a \
         JOIN generate_series(1, 300000) b ON a.value % 2 = b.value % 2",
        // Joins that find nothing make no batch to yield after: one without an equality, and
        // one on a key of one value whose filter refuses every pair. Past the deadline they
        // kept both of the runtime's threads for good.
        "SELECT count(*) FROM generate_series(1, 300000) a \
         JOIN generate_series(1, 3000000) b ON b.value > a.value + 5000000",
        "SELECT count(*) FROM (SELECT value, 1 AS k FROM generate_series(1, 300000)) a \
         JOIN (SELECT value, 1 AS k FROM generate_series(1, 3000000)) b \
         ON a.k = b.k AND b.value > a.value + 5000000",
    ];
    for sql in joins {
        let e = query(&mut c, sql).await.unwrap_err();
        assert!(e.contains("ran longer than"), "{sql}: {e}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let before = cpu_seconds(server.child.id());
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        let spent = cpu_seconds(server.child.id()) - before;
        assert!(
            spent < 0.5,
            "{sql}: {spent} s of CPU in the 3 s after the deadline"
        );
        assert_eq!(
            first_i64(&query(&mut c, "SELECT 41 + 1").await.unwrap()),
            42
        );
    }
}

#[test]
fn a_public_address_without_auth_is_refused() {
    // `lake serve` with `args`: its exit code and stderr.
    let serve = |args: &[&str]| {
        let dir = tempdir();
        let out = lake()
            .args(["serve", "--lake", dir.path().to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = serve(&["--addr", "0.0.0.0:0"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("refusing to serve"), "{stderr}");
    // With a password but without TLS: refused too, unless asked for explicitly.
    let login = ["--user", "ann", "--password", "s3cret"];
    let (code, stderr) = serve(&[&["--addr", "0.0.0.0:0"][..], &login].concat());
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("refusing to take passwords in clear text"),
        "{stderr}"
    );
    // The status page follows the same rules on its own address, and has no TLS of its own.
    let page = ["--addr", "127.0.0.1:0", "--http-addr", "0.0.0.0:0"];
    let (code, stderr) = serve(&page);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("refusing to serve 0.0.0.0:0"), "{stderr}");
    let (code, stderr) = serve(&[&page[..], &login].concat());
    assert_eq!(code, Some(1));
    assert!(stderr.contains("TLS proxy"), "{stderr}");
}

/// A control API client sending `token` as a bearer token.
async fn control(
    server: &Server,
    token: Option<String>,
) -> lake::testing::control_proto::control_client::ControlClient<
    tonic::service::interceptor::InterceptedService<Channel, impl tonic::service::Interceptor>,
> {
    let channel = Channel::from_shared(server.url.clone())
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let header: Option<tonic::metadata::MetadataValue<_>> =
        token.map(|t| format!("Bearer {t}").parse().unwrap());
    lake::testing::control_proto::control_client::ControlClient::with_interceptor(
        channel,
        move |mut req: tonic::Request<()>| {
            if let Some(h) = &header {
                req.metadata_mut().insert("authorization", h.clone());
            }
            Ok(req)
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_api_triggers_runs_and_reports_tables_runs_and_ingest() {
    use lake::testing::control_proto as proto;
    let dir = tempdir();
    lake_with_daily(dir.path()).await;
    let sql = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
    let server = serve(
        dir.path(),
        &[
            "--user",
            "ann",
            "--password",
            "s3cret",
            "--sql",
            sql.to_str().unwrap(),
            "--topic",
            "t",
        ],
    );
    let mut flight = client(&server.url).await;
    flight.handshake("ann", "s3cret").await.expect("login");
    let token = flight.token().cloned();

    let mut anonymous = control(&server, None).await;
    let e = anonymous
        .list_tables(proto::ListTablesRequest {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);

    let mut c = control(&server, token).await;
    let tables = c
        .list_tables(proto::ListTablesRequest {})
        .await
        .unwrap()
        .into_inner()
        .tables;
    let events = tables
        .iter()
        .find(|t| t.name == "raw.user_events")
        .expect("raw table");
    assert_eq!(events.rows, 6);
    assert!(events.version >= 1 && events.files >= 1 && !events.last_commit_time.is_empty());
    let metrics = tables
        .iter()
        .find(|t| t.name == "processed.daily_metrics")
        .expect("metrics");
    assert_eq!(metrics.rows, 1);

    let runs = c
        .trigger_daily_run(proto::TriggerDailyRunRequest {
            date: "2025-01-10".into(),
            no_sensor: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .runs;
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(
        (run.status.as_str(), run.trigger.as_str()),
        ("succeeded", "api")
    );
    assert_eq!(run.rows["processed.daily_metrics"], 1);
    assert_eq!(run.checks.len(), 6);
    assert!(
        run.checks.iter().all(|c| c.status == "pass"),
        "{:?}",
        run.checks
    );

    let again = c
        .get_run(proto::GetRunRequest {
            run_id: run.run_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(&again, run);
    let e = c
        .get_run(proto::GetRunRequest {
            run_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);

    let listed = c
        .list_runs(proto::ListRunsRequest {
            limit: 10,
            date: "2025-01-10".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .runs;
    assert_eq!(listed.len(), 2, "the CLI run and the API run");
    assert_eq!(listed[0].run_id, run.run_id, "newest first");

    // The sensor is on unless asked otherwise: 2025-01-10 needs events past 00:10 next day.
    let runs = c
        .trigger_daily_run(proto::TriggerDailyRunRequest {
            date: "2025-01-10".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .runs;
    assert_eq!(runs[0].status, "sensor_timeout");

    let e = c
        .trigger_daily_run(proto::TriggerDailyRunRequest {
            date: "10/01/2025".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    // A decade of dates, or a day's wait, is refused before anything runs.
    for (request, why) in [
        (
            proto::TriggerDailyRunRequest {
                from_date: "2015-01-01".into(),
                to_date: "2025-01-10".into(),
                no_sensor: true,
                ..Default::default()
            },
            "at most 31",
        ),
        (
            proto::TriggerDailyRunRequest {
                date: "2025-01-10".into(),
                wait_seconds: 86_400,
                ..Default::default()
            },
            "wait_seconds",
        ),
    ] {
        let e = c.trigger_daily_run(request).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains(why), "{e}");
    }

    let status = c
        .ingest_status(proto::IngestStatusRequest {
            topic: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.topic, "t");
    assert_eq!(status.partitions.len(), 1);
    assert_eq!(status.partitions[0].last_offset, 5);
    assert_eq!(status.partitions[0].watermark, "2025-01-10T23:59:59+00:00");

    // Listing tables scans them: it runs under the query timeout like any query.
    let hasty = serve(dir.path(), &["--query-timeout", "1ms"]);
    let e = control(&hasty, None)
        .await
        .list_tables(proto::ListTablesRequest {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::DeadlineExceeded, "{e}");
}
