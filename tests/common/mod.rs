//! Shared helpers of the integration tests: the test broker, the `lake` binary, and SQL over a
//! test lake.
#![allow(dead_code)]

pub mod flight;
pub mod remote;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use datafusion::arrow::array::{Array, Int64Array, RecordBatch};
use datafusion::prelude::SessionContext;
use lake::testing::append;
use lake::testing::decode;
use lake::testing::marker;
use lake::testing::Contract;
use lake::testing::{user_events_spec, Lake, DEAD_LETTERS, USER_EVENTS};
use lake::testing::{Message, MessageBuffer};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// A command's standard output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The real Kafka broker started by scripts/test.sh.
pub fn brokers() -> String {
    std::env::var("LAKE_TEST_BROKERS").expect(
        "LAKE_TEST_BROKERS is not set: run the suite with scripts/test.sh, which starts Kafka",
    )
}

/// A topic name no other test uses.
pub fn topic(name: &str) -> String {
    format!("{name}_{}", uuid::Uuid::new_v4().simple())
}

pub fn lake() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lake"));
    c.env("LAKE_LOG", "warn,lake=info");
    c.env_remove("LAKE_DIR");
    c
}

/// Runs `lake` to completion, failing the test with its output if it fails.
pub fn run_ok(args: &[&str]) -> Output {
    let out = lake().args(args).output().expect("run lake");
    assert!(
        out.status.success(),
        "lake {args:?} failed: {}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Sends `signal` (libc::SIGTERM, libc::SIGINT) to `child`.
pub fn signal(child: &Child, signal: i32) {
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

/// How `child` exited, waiting at most `limit`; after that it is killed and the test fails
/// with `explain()`.
pub fn exit_within(
    child: &mut Child,
    limit: Duration,
    explain: impl Fn() -> String,
) -> std::process::ExitStatus {
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {limit:?}:\n{}", explain());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn spawn(args: &[&str], log: &Path) -> Child {
    let file = std::fs::File::create(log).expect("log file");
    lake()
        .args(args)
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("spawn lake")
}

/// `lake ingest` of `topic` (group = topic) into `lake_dir`, then `extra`.
pub fn ingest_args(lake_dir: &Path, topic: &str, extra: &[&str]) -> Vec<String> {
    ingest_args_at(lake_dir.to_str().expect("utf-8 path"), topic, extra)
}

/// [`ingest_args`] into the lake at `location`, a folder or a URL.
pub fn ingest_args_at(dir: &str, topic: &str, extra: &[&str]) -> Vec<String> {
    let b = brokers();
    let base = [
        "ingest",
        "--lake",
        dir,
        "--brokers",
        &b,
        "--topic",
        topic,
        "--group",
        topic,
    ];
    base.iter().chain(extra).map(|s| s.to_string()).collect()
}

pub fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Starts `lake ingest` in the background, committing every 200 ms, logging to `log`.
pub fn spawn_ingest(lake_dir: &Path, topic: &str, extra: &[&str], log: &Path) -> Child {
    let mut more = vec!["--max-latency-ms", "200"];
    more.extend_from_slice(extra);
    spawn(&strs(&ingest_args(lake_dir, topic, &more)), log)
}

/// Runs `lake ingest --until-caught-up` to completion.
pub fn ingest_until_caught_up(lake_dir: &Path, topic: &str, extra: &[&str]) -> Output {
    let mut more = vec!["--until-caught-up"];
    more.extend_from_slice(extra);
    run_ok(&strs(&ingest_args(lake_dir, topic, &more)))
}

/// Runs `lake produce --json` for `n` events and returns its summary.
pub fn produce_events(topic: &str, n: u64, extra: &[&str]) -> serde_json::Value {
    let (b, events) = (brokers(), n.to_string());
    let base = [
        "produce",
        "--brokers",
        &b,
        "--topic",
        topic,
        "--events",
        &events,
        "--json",
    ];
    let args: Vec<String> = base.iter().chain(extra).map(|s| s.to_string()).collect();
    let out = run_ok(&strs(&args));
    serde_json::from_slice(&out.stdout).expect("produce --json prints JSON")
}

/// A raw Kafka record: (key, payload), either possibly absent.
pub type Raw<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Sends raw messages to partition `partition` of `topic`.
pub fn send_raw(topic: &str, partition: i32, messages: &[Raw<'_>]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("message.max.bytes", "2000000")
        .create()
        .expect("producer");
    for (key, payload) in messages {
        let mut r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).partition(partition);
        if let Some(k) = key {
            r = r.key(*k);
        }
        if let Some(p) = payload {
            r = r.payload(*p);
        }
        producer.send(r).map_err(|(e, _)| e).expect("send");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// Runs SQL over the lake's raw tables, registered as `user_events` and `dead_letters`.
pub async fn sql(lake_dir: &Path, query: &str) -> Vec<RecordBatch> {
    sql_in(&Lake::new(lake_dir).expect("lake"), query).await
}

/// [`sql`] over `lake`.
pub async fn sql_in(lake: &Lake, query: &str) -> Vec<RecordBatch> {
    let ctx = SessionContext::new();
    for (name, id) in [("user_events", USER_EVENTS), ("dead_letters", DEAD_LETTERS)] {
        if let Some(t) = lake.open(id).await.expect("open table") {
            let provider = t.table_provider().await.expect("provider");
            ctx.register_table(name, provider).expect("register");
        }
    }
    ctx.sql(query)
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .collect()
        .await
        .expect("collect")
}

/// A query returning one row of BIGINT columns.
pub async fn ints(lake_dir: &Path, query: &str) -> Vec<i64> {
    ints_in(&Lake::new(lake_dir).expect("lake"), query).await
}

/// [`ints`] over `lake`.
pub async fn ints_in(lake: &Lake, query: &str) -> Vec<i64> {
    let batches = sql_in(lake, query).await;
    let b = batches.iter().find(|b| b.num_rows() > 0).expect("one row");
    (0..b.num_columns())
        .map(|c| {
            let col = datafusion::arrow::compute::cast(
                b.column(c),
                &datafusion::arrow::datatypes::DataType::Int64,
            )
            .expect("cast");
            let a = col.as_any().downcast_ref::<Int64Array>().expect("int64");
            if a.is_null(0) {
                -1
            } else {
                a.value(0)
            }
        })
        .collect()
}

/// Asserts `user_events` holds every offset of each partition exactly once, `produced` in all.
pub async fn assert_exactly_once(lake_dir: &Path, produced: i64) {
    assert_exactly_once_in(&Lake::new(lake_dir).expect("lake"), produced).await
}

/// [`assert_exactly_once`] over `lake`.
pub async fn assert_exactly_once_in(lake: &Lake, produced: i64) {
    let rows = ints_in(lake, "SELECT count(*) FROM user_events").await[0];
    let distinct = ints_in(
        lake,
        "SELECT count(*) FROM (SELECT DISTINCT kafka_partition, kafka_offset FROM user_events)",
    )
    .await[0];
    let span = ints_in(
        lake,
        "SELECT sum(hi - lo + 1), min(lo) FROM (SELECT kafka_partition, min(kafka_offset) AS lo, \
         max(kafka_offset) AS hi FROM user_events GROUP BY kafka_partition)",
    )
    .await;
    assert_eq!(rows, produced, "rows in raw.user_events");
    assert_eq!(
        distinct, produced,
        "(kafka_partition, kafka_offset) must be unique"
    );
    assert_eq!(span[0], produced, "offsets must be gap-free");
    assert_eq!(span[1], 0, "every partition starts at offset 0");
}

/// Appends (user_id, event_type, timestamp, session_id) events to raw.user_events of `lake`
/// exactly as ingest would (decode, then one commit with the partition-0 marker).
/// 2025-01-10 by hand: users 1 and 2, sessions s1..s3, one event of each type and two views
/// (user, type, timestamp, session); the last one has an explicit UTC offset.
pub const HAND_CHECKABLE_DAY: [(i64, &str, &str, &str); 6] = [
    (1, "click", "2025-01-10T08:00:00", "s1"),
    (1, "view", "2025-01-10T08:01:00", "s1"),
    (1, "purchase", "2025-01-10T08:02:00", "s1"),
    (2, "view", "2025-01-10T09:00:00", "s2"),
    (2, "login", "2025-01-10T09:01:00", "s2"),
    (2, "logout", "2025-01-10T23:59:59+00:00", "s3"),
];

pub async fn append_raw_events(lake: &Lake, first_offset: i64, events: &[(i64, &str, &str, &str)]) {
    let payloads: Vec<String> = events
        .iter()
        .map(|(user, t, ts, session)| {
            format!(r#"{{"user_id": {user}, "event_type": "{t}", "timestamp": "{ts}", "page_id": 3, "session_id": "{session}"}}"#)
        })
        .collect();
    let mut buf = MessageBuffer::default();
    for (i, p) in payloads.iter().enumerate() {
        buf.push(Message {
            partition: 0,
            offset: first_offset + i as i64,
            timestamp_ms: None,
            key: None,
            payload: Some(p.as_bytes()),
        });
    }
    let now = chrono::Utc::now().timestamp_micros();
    let decoded = decode(&buf, "t", &Contract::default(), now).expect("decode");
    assert_eq!(decoded.dead_letter_count(), 0);
    let mut table = lake
        .open_or_create(&user_events_spec())
        .await
        .expect("table");
    let last = first_offset + events.len() as i64 - 1;
    append(
        &mut table,
        USER_EVENTS,
        decoded.events.into_iter().collect(),
        &[],
        vec![marker("t", 0, last)],
    )
    .await
    .expect("append");
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// Parquet data files under `dir`, at any depth (the Delta log's checkpoints left out).
pub fn parquet_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for path in entries.flatten().map(|e| e.path()) {
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "_delta_log") {
                files.extend(parquet_files(&path));
            }
        } else if path.extension().is_some_and(|x| x == "parquet") {
            files.push(path);
        }
    }
    files
}
