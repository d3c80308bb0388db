//! Ingest against a real Kafka broker: counts, exactly once across crashes and rebalances,
//! dead letters.

mod common;

use std::time::{Duration, Instant};

use common::*;
use datafusion::arrow::array::{BinaryArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use rand::{Rng, SeedableRng};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_events_land_exactly_once_with_matching_type_counts() {
    let topic = topic("ingest100k");
    let dir = tempdir();
    let summary = produce_events(&topic, 100_000, &["--days", "3", "--seed", "7"]);
    assert_eq!(summary["delivered"], 100_000);

    let out = ingest_until_caught_up(dir.path(), &topic, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ingested 100000 events, 0 dead letters"),
        "{stdout}"
    );
    // Through the fetch queue, librdkafka's batch call (src/ingest/fetch_queue.rs).
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("messages read in batches"), "{stderr}");

    assert_exactly_once(dir.path(), 100_000).await;
    for (t, n) in summary["by_type"].as_object().expect("by_type") {
        let got = ints(
            dir.path(),
            &format!("SELECT count(*) FROM user_events WHERE event_type = '{t}'"),
        )
        .await[0];
        assert_eq!(Some(got), n.as_i64(), "count of {t}");
    }
    let dates = ints(
        dir.path(),
        "SELECT count(DISTINCT event_date) FROM user_events",
    )
    .await[0];
    assert_eq!(dates, 3, "events spread over 3 days");
    let partitions = ints(
        dir.path(),
        "SELECT count(DISTINCT kafka_partition) FROM user_events",
    )
    .await[0];
    assert_eq!(partitions, 3);
    assert_files_sorted_by_user(&dir.path().join("raw/user_events"));

    // A second run has nothing to do and must not duplicate anything.
    let again = ingest_until_caught_up(dir.path(), &topic, &[]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("ingested 0 events"));
    assert_exactly_once(dir.path(), 100_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    let topic = topic("crash");
    let dir = tempdir();
    // A producer streams in the background while ingest is killed again and again.
    let producer = std::thread::spawn({
        let topic = topic.clone();
        move || produce_events(&topic, 150_000, &["--rate", "15000", "--seed", "3"])
    });
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut kills = 0;
    let started = Instant::now();
    while kills < 12 {
        let log = dir.path().join(format!("ingest-{kills}.log"));
        let mut child = spawn_ingest(dir.path(), &topic, &["--instance-id", "crash-worker"], &log);
        std::thread::sleep(Duration::from_millis(rng.random_range(700..2500)));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        kills += 1;
    }
    let summary = producer.join().expect("producer thread");
    let produced = summary["delivered"].as_i64().expect("delivered");
    assert_eq!(produced, 150_000);
    ingest_until_caught_up(dir.path(), &topic, &["--instance-id", "crash-worker"]);
    assert_exactly_once(dir.path(), produced).await;
    eprintln!("{kills} kills in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_become_dead_letters_and_good_ones_around_them_land() {
    let topic = topic("dead");
    let dir = tempdir();
    lake::testing::ensure_topic(&brokers(), &topic, 1, &Default::default())
        .await
        .expect("topic");
    let good: &[u8] = br#"{"user_id": 1, "event_type": "click", "timestamp": "2025-01-10T10:00:00", "page_id": 2, "session_id": "s1"}"#;
    let oversized = format!(r#"{{"user_id": 1, "pad": "{}"}}"#, "x".repeat(100_000));
    let bad: Vec<(&[u8], &str)> = vec![
        (b"\xc3\x28 not utf8", "invalid UTF-8"),
        (b"{\"user_id\": ", "invalid JSON"),
        (br#"{"event_type": "click", "timestamp": "2025-01-10T10:00:00", "page_id": 2, "session_id": "s"}"#, "missing or null field `user_id`"),
        (br#"{"user_id": "x1", "event_type": "click", "timestamp": "2025-01-10T10:00:00", "page_id": 2, "session_id": "s"}"#, "invalid field"),
        (br#"{"user_id": 1, "event_type": "scroll", "timestamp": "2025-01-10T10:00:00", "page_id": 2, "session_id": "s"}"#, "unknown event_type"),
        (br#"{"user_id": 1, "event_type": "click", "timestamp": "10/01/2025", "page_id": 2, "session_id": "s"}"#, "invalid timestamp"),
        (br#"{"user_id": 1, "event_type": "click", "timestamp": "2025-01-10T10:00:00", "page_id": 2, "session_id": null}"#, "missing or null field `session_id`"),
        (oversized.as_bytes(), "exceeds the limit"),
    ];
    let mut messages: Vec<Raw<'_>> = vec![(Some(b"k"), Some(good))];
    for (payload, _) in &bad {
        messages.push((Some(b"k"), Some(payload)));
        messages.push((Some(b"k"), Some(good)));
    }
    messages.push((Some(b"tombstone"), None));
    messages.push((None, Some(good)));
    send_raw(&topic, 0, &messages);

    let out = ingest_until_caught_up(dir.path(), &topic, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let goods = bad.len() as i64 + 2;
    let deads = bad.len() as i64 + 1;
    assert!(
        stdout.contains(&format!("ingested {goods} events, {deads} dead letters")),
        "{stdout}"
    );
    assert_exactly_once_mixed(dir.path(), goods, deads).await;

    for (k, (payload, reason)) in bad.iter().enumerate() {
        let offset = 2 * k as i64 + 1;
        let batches = sql(
            dir.path(),
            &format!("SELECT reason, payload, key, topic FROM dead_letters WHERE kafka_offset = {offset}"),
        )
        .await;
        let b = &batches[0];
        assert_eq!(b.num_rows(), 1, "offset {offset}");
        let r = cast(b.column(0), &DataType::Utf8).expect("cast");
        let r = r.as_any().downcast_ref::<StringArray>().expect("reason");
        assert!(
            r.value(0).contains(reason),
            "offset {offset}: {:?} lacks {reason:?}",
            r.value(0)
        );
        let p = cast(b.column(1), &DataType::Binary).expect("cast");
        let p = p.as_any().downcast_ref::<BinaryArray>().expect("payload");
        assert_eq!(p.value(0), *payload, "raw bytes kept");
    }
    let tomb = ints(dir.path(), "SELECT count(*) FROM dead_letters WHERE payload IS NULL AND reason LIKE 'null payload%' AND key = X'746F6D6273746F6E65'").await[0];
    assert_eq!(tomb, 1, "tombstone kept with its key");
}

/// Good and dead messages of one partition together cover offsets 0.. without gaps or overlap.
async fn assert_exactly_once_mixed(dir: &std::path::Path, goods: i64, deads: i64) {
    let v = ints(
        dir,
        "SELECT count(*), count(DISTINCT kafka_offset), min(kafka_offset), max(kafka_offset) FROM \
         (SELECT kafka_offset FROM user_events UNION ALL SELECT kafka_offset FROM dead_letters)",
    )
    .await;
    assert_eq!(v, vec![goods + deads, goods + deads, 0, goods + deads - 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_one_killed_mid_stream_exactly_once() {
    let topic = topic("group");
    let dir = tempdir();
    let b = brokers();
    lake::testing::ensure_topic(&b, &topic, 3, &Default::default())
        .await
        .expect("topic");
    let worker = |name: &str| {
        spawn_ingest(
            dir.path(),
            &topic,
            &[],
            &dir.path().join(format!("{name}.log")),
        )
    };
    let mut a = worker("a");
    let mut bw = worker("b");
    let producer = std::thread::spawn({
        let topic = topic.clone();
        move || produce_events(&topic, 60_000, &["--rate", "10000", "--seed", "5"])
    });
    std::thread::sleep(Duration::from_secs(3));
    bw.kill().expect("kill b");
    bw.wait().expect("reap b");
    let summary = producer.join().expect("producer");
    let produced = summary["delivered"].as_i64().expect("delivered");

    // Worker a alone must take over b's partitions and finish the stream.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let rows = if dir.path().join("raw/user_events/_delta_log").exists() {
            ints(dir.path(), "SELECT count(*) FROM user_events").await[0]
        } else {
            0
        };
        if rows >= produced || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let pid = a.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill -TERM");
    let status = a.wait().expect("reap a");
    let log = std::fs::read_to_string(dir.path().join("a.log")).unwrap_or_default();
    assert!(
        status.success(),
        "worker a exits cleanly on SIGTERM: {status}\n{log}"
    );
    assert!(log.contains("partitions assigned"), "{log}");
    assert_exactly_once(dir.path(), produced).await;
}

/// Runs `lake` with `args`, killed (and the test failed) if it has not exited within `secs`.
fn run_within(args: &[&str], secs: u64) -> std::process::Output {
    let child = lake()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn lake");
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(secs));
        // The process is long gone (and reaped) when the test passed; then this finds nothing.
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    });
    let started = Instant::now();
    let out = child.wait_with_output().expect("wait for lake");
    assert!(
        started.elapsed() < Duration::from_secs(secs),
        "lake {args:?} did not exit within {secs} s; stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(watchdog);
    out
}

fn until_caught_up_args(dir: &std::path::Path, topic: &str, extra: &[&str]) -> Vec<String> {
    let mut more = vec!["--until-caught-up"];
    more.extend_from_slice(extra);
    ingest_args(dir, topic, &more)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_topic_is_refused_not_skipped_and_ingests_as_a_new_source() {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;

    let topic = topic("recreated");
    let dir = tempdir();
    produce_events(&topic, 60, &["--seed", "3"]);
    ingest_until_caught_up(dir.path(), &topic, &[]);

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("admin client");
    let deleted = admin
        .delete_topics(&[&topic], &AdminOptions::new())
        .await
        .expect("delete topics");
    assert!(deleted.iter().all(|r| r.is_ok()), "{deleted:?}");
    // Deletion completes in the background; producing re-creates the topic once it is gone.
    let mut produced = None;
    for _ in 0..60 {
        let args = [
            "produce",
            "--brokers",
            &brokers(),
            "--topic",
            &topic,
            "--events",
            "9",
        ];
        let out = lake()
            .args(args)
            .arg("--json")
            .output()
            .expect("run produce");
        if out.status.success() {
            produced = Some(out);
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(produced.is_some(), "the topic could be created again");

    let args = until_caught_up_args(dir.path(), &topic, &[]);
    let out = run_within(&args.iter().map(String::as_str).collect::<Vec<_>>(), 60);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("deleted and recreated") && stderr.contains("--source"),
        "{stderr}"
    );
    assert_eq!(
        ints(dir.path(), "SELECT count(*) FROM user_events").await[0],
        60,
        "nothing of the new topic landed under the old markers"
    );

    let source = format!("{topic}-2");
    let args = until_caught_up_args(dir.path(), &topic, &["--source", &source]);
    let out = run_within(&args.iter().map(String::as_str).collect::<Vec<_>>(), 60);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        ints(dir.path(), "SELECT count(*) FROM user_events").await[0],
        69,
        "the new topic's 9 events, from its first offset"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_caught_up_ends_after_transactions_committed_and_still_open() {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    let topic = topic("transactional");
    let dir = tempdir();
    produce_events(&topic, 1, &["--partitions", "1"]);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("transactional.id", &topic)
        .create()
        .expect("transactional producer");
    let timeout = Duration::from_secs(30);
    producer.init_transactions(timeout).expect("init");
    let event = |i: usize| {
        format!(
            r#"{{"user_id": {i}, "event_type": "click", "timestamp": "2025-01-10T10:00:00", "page_id": 1, "session_id": "t{i}"}}"#
        )
    };
    let send = |range: std::ops::Range<usize>| {
        producer.begin_transaction().expect("begin");
        for i in range {
            let payload = event(i);
            let record: BaseRecord<'_, str, str> =
                BaseRecord::to(&topic).key("k").payload(&payload);
            producer.send(record).map_err(|(e, _)| e).expect("send");
        }
        producer.flush(timeout).expect("flush");
    };
    // The partition now ends with a transaction's commit marker, which no consumer ever sees.
    send(0..5);
    producer.commit_transaction(timeout).expect("commit");
    let args = until_caught_up_args(dir.path(), &topic, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // `lake ingest --until-caught-up` ends by itself; the rows it left.
    let catch_up = || async {
        let out = run_within(&args, 60);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        ints(dir.path(), "SELECT count(*) FROM user_events").await[0]
    };
    assert_eq!(catch_up().await, 6);

    // An open transaction: caught up means up to where it starts.
    send(5..8);
    assert_eq!(catch_up().await, 6);
    producer.commit_transaction(timeout).expect("commit");
    assert_eq!(catch_up().await, 9);
}

/// Every Parquet file under `dir` (fresh from ingest or merged) has its rows in user order and
/// says so in its footer, so that compaction merges them without sorting.
fn assert_files_sorted_by_user(dir: &std::path::Path) {
    use datafusion::arrow::array::Int64Array;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let files = parquet_files(dir);
    for path in &files {
        let file = std::fs::File::open(path).expect("open");
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet");
        let footer = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .cloned();
        let says = footer
            .unwrap_or_default()
            .iter()
            .any(|kv| kv.key == "lake.sorted_by" && kv.value.as_deref() == Some("user_id"));
        assert!(says, "{}: the footer names the sort order", path.display());
        let mut users = Vec::new();
        for batch in builder.build().expect("reader") {
            let batch = batch.expect("batch");
            let col = batch.column_by_name("user_id").expect("user_id");
            let col = col.as_any().downcast_ref::<Int64Array>().expect("i64");
            users.extend(col.values().iter().copied());
        }
        assert!(users.is_sorted(), "{}: rows in user order", path.display());
    }
    assert!(
        files.len() >= 3,
        "{} files: one per date at least",
        files.len()
    );
}
