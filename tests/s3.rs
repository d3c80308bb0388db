//! The lake on a real S3-compatible server: SeaweedFS on loopback, built from the Go module
//! proxy and started by scripts/test.sh, which exports the AWS_* variables that reach it
//! (`scripts/s3.sh env`). Every command works on `s3://lake/<prefix>` as on a folder, and two
//! writers can never both win one Delta version (the server honours `If-None-Match: *`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::flight::{client, fetch, first_i64, query, serve_at};
use common::*;
use datafusion::arrow::array::{ArrayRef, RecordBatch};
use lake::testing::{Lake, StorageOptions};
use object_store::aws::AmazonS3Builder;
use object_store::ObjectStore;
use rand::{Rng, SeedableRng};

/// Fails the test when no S3 server is configured.
fn require_s3() {
    std::env::var("AWS_ACCESS_KEY_ID").expect(
        "AWS_ACCESS_KEY_ID is not set: run the suite with scripts/test.sh, which starts SeaweedFS",
    );
}

/// The test bucket: `lake` (scripts/s3.sh creates it), or `LAKE_TEST_S3_BUCKET` to check
/// another store.
fn bucket_name() -> String {
    std::env::var("LAKE_TEST_S3_BUCKET").unwrap_or_else(|_| "lake".to_string())
}

/// A lake of its own in the test bucket.
fn s3_lake(name: &str) -> String {
    require_s3();
    format!("s3://{}/{}", bucket_name(), topic(name))
}

/// The bucket itself, for the conformance checks.
fn bucket() -> Arc<dyn ObjectStore> {
    require_s3();
    Arc::new(
        AmazonS3Builder::from_env()
            .with_url(format!("s3://{}", bucket_name()))
            .build()
            .expect("S3 store from AWS_* variables"),
    )
}

#[tokio::test]
async fn ingest_daily_runs_sql_and_maintain_work_on_s3() {
    let location = s3_lake("s3_lake");
    let (topic, events, lake) =
        common::remote::ingest_with_a_dead_letter(&location, "s3_events", 3000, &[]).await;
    common::remote::daily_of_the_date(&location, &topic, events);
    let csv = |query: &str| common::remote::csv(&location, query);
    let sql = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
    let sql = sql.to_str().expect("utf-8");
    let runs = run_ok(&["runs", "--lake", &location]);
    assert!(stdout(&runs).contains("succeeded"), "{}", stdout(&runs));
    // The schedule catches up the date after it (and only that one) on the same store.
    run_ok(&[
        "schedule",
        "--lake",
        &location,
        "--sql",
        sql,
        "--no-sensor",
        "--once",
        "--since",
        "2025-01-10",
        "--today",
        "2025-01-12",
    ]);
    assert_eq!(
        csv("SELECT date, trigger FROM system.daily_runs WHERE status = 'succeeded' ORDER BY date")
            .trim(),
        "date,trigger\n2025-01-10,cli\n2025-01-11,schedule"
    );

    let maintained = run_ok(&["maintain", "--lake", &location]);
    assert!(
        stdout(&maintained).contains("raw.user_events:"),
        "{}",
        stdout(&maintained)
    );
    assert_exactly_once_in(&lake, events).await;
    // Nothing of it landed on the local disk.
    assert!(!std::path::Path::new("s3:").exists());
}

#[tokio::test]
async fn flight_sql_serves_an_s3_lake() {
    let location = s3_lake("s3_serve");
    let topic = topic("s3_serve");
    let produced = produce_events(&topic, 500, &[]);
    let events = produced["delivered"].as_i64().expect("delivered");
    run_ok(&strs(&ingest_args_at(
        &location,
        &topic,
        &["--until-caught-up"],
    )));
    let server = serve_at(&location, &[]);
    let mut c = client(&server.url).await;
    for _ in 0..2 {
        let n = first_i64(
            &query(&mut c, "SELECT count(*) FROM raw.user_events")
                .await
                .unwrap(),
        );
        assert_eq!(n, events);
    }
    // The catalog's metadata lists the lake's tables (listed when the server started).
    let tables = query(
        &mut c,
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'raw'",
    )
    .await
    .unwrap();
    assert!(first_i64(&tables) >= 2, "user_events and its dead letters");
}

#[tokio::test]
async fn the_server_lets_only_one_of_two_writers_create_an_object() {
    common::remote::only_the_first_create_of_a_key_wins(bucket()).await;
}

#[tokio::test]
async fn two_writers_of_one_delta_version_cannot_both_win() {
    common::remote::one_delta_version_has_one_writer(&s3_lake("s3_race"), bucket()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_s3_one_killed_again_and_again_exactly_once() {
    let location = s3_lake("s3_group");
    let topic = topic("s3_group");
    let logs = tempdir();
    lake::testing::ensure_topic(&brokers(), &topic, 3, &Default::default())
        .await
        .expect("topic");
    let worker = |name: String| {
        let args = ingest_args_at(&location, &topic, &["--max-latency-ms", "200"]);
        spawn(&strs(&args), &logs.path().join(format!("{name}.log")))
    };
    let steady = worker("steady".into());
    let producer = std::thread::spawn({
        let topic = topic.clone();
        move || produce_events(&topic, 40_000, &["--rate", "8000", "--seed", "7"])
    });
    // The other worker joins (a rebalance), is SIGKILLed mid-commit at some point, and again.
    let mut rng = rand::rngs::StdRng::seed_from_u64(19);
    for round in 0..4 {
        let mut killed = worker(format!("killed-{round}"));
        std::thread::sleep(Duration::from_millis(rng.random_range(800..2000)));
        killed.kill().expect("SIGKILL");
        killed.wait().expect("reap");
    }
    let produced = producer.join().expect("producer")["delivered"]
        .as_i64()
        .expect("delivered");
    stop_and_check_exactly_once(
        steady,
        &logs.path().join("steady.log"),
        &location,
        &topic,
        produced,
    )
    .await;
}

/// Stops a running ingest worker (SIGTERM: it must exit cleanly), ingests what is left, and
/// checks that the lake holds every produced event exactly once.
async fn stop_and_check_exactly_once(
    mut worker: std::process::Child,
    log: &std::path::Path,
    location: &str,
    topic: &str,
    produced: i64,
) {
    signal(&worker, libc::SIGTERM);
    let status = exit_within(&mut worker, Duration::from_secs(30), || {
        std::fs::read_to_string(log).unwrap_or_default()
    });
    assert!(status.success(), "the worker stops cleanly");
    run_ok(&strs(&ingest_args_at(
        location,
        topic,
        &["--until-caught-up"],
    )));
    let lake = Lake::at(location, &StorageOptions::default()).expect("s3 lake");
    assert_exactly_once_in(&lake, produced).await;
}

#[tokio::test]
async fn two_serve_replicas_answer_each_others_tickets_and_prepared_statements() {
    let location = s3_lake("s3_replicas");
    let topic = topic("s3_replicas");
    let produced = produce_events(&topic, 600, &[]);
    let events = produced["delivered"].as_i64().expect("delivered");
    run_ok(&strs(&ingest_args_at(
        &location,
        &topic,
        &["--until-caught-up"],
    )));
    let (a, b) = (serve_at(&location, &[]), serve_at(&location, &[]));
    let (mut ca, mut cb) = (client(&a.url).await, client(&b.url).await);

    // A ticket of replica a, fetched from replica b: handles carry the query, not a session.
    let info = ca
        .execute("SELECT count(*) FROM raw.user_events".to_string(), None)
        .await
        .expect("GetFlightInfo on a");
    assert_eq!(
        first_i64(&fetch(&mut cb, info).await.expect("DoGet on b")),
        events
    );

    // A statement prepared on a with a bound parameter, run on b.
    let sql = "SELECT count(*) FROM raw.user_events WHERE kafka_partition = $1";
    let mut prepared = ca
        .prepare(sql.to_string(), None)
        .await
        .expect("prepare on a");
    let partition = Arc::new(datafusion::arrow::array::Int32Array::from(vec![1])) as ArrayRef;
    prepared
        .set_parameters(RecordBatch::try_from_iter([("$1", partition)]).unwrap())
        .expect("bind");
    let info = prepared.execute().await.expect("execute on a");
    let on_b = first_i64(&fetch(&mut cb, info).await.expect("DoGet on b"));
    let direct = first_i64(
        &query(
            &mut cb,
            "SELECT count(*) FROM raw.user_events WHERE kafka_partition = 1",
        )
        .await
        .unwrap(),
    );
    assert_eq!(on_b, direct);
    assert!(on_b > 0 && on_b < events);
}

/// `lake daily` of a closed date and of the date being appended to, run from a third process
/// while a worker ingests into the same S3 lake and `lake serve` answers queries over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_runs_beside_ingest_and_serve_on_one_s3_lake() {
    let location = s3_lake("s3_three");
    let topic = topic("s3_three");
    let logs = tempdir();
    let closed = produce_events(&topic, 3000, &["--days", "1", "--start-date", "2025-01-10"])
        ["delivered"]
        .as_i64()
        .expect("delivered");
    let args = ingest_args_at(&location, &topic, &["--max-latency-ms", "200"]);
    let worker = spawn(&strs(&args), &logs.path().join("ingest.log"));
    let server = serve_at(&location, &[]);
    let mut client = client(&server.url).await;
    let count_on = |date: &'static str| {
        format!("SELECT count(*) FROM raw.user_events WHERE event_date = DATE '{date}'")
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    // Until the worker has created the table, the query fails: counted as 0.
    while query(&mut client, &count_on("2025-01-10"))
        .await
        .map_or(0, |b| first_i64(&b))
        < closed
    {
        assert!(
            std::time::Instant::now() < deadline,
            "2025-01-10 not ingested in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The next day streams in while the daily job runs, twice.
    let producer = std::thread::spawn({
        let topic = topic.clone();
        move || {
            produce_events(
                &topic,
                40_000,
                &[
                    "--rate",
                    "5000",
                    "--days",
                    "1",
                    "--start-date",
                    "2025-01-11",
                ],
            )
        }
    });
    let sql = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
    let daily = |date: &str| {
        let out = run_ok(&[
            "daily",
            "--lake",
            &location,
            "--sql",
            sql.to_str().expect("utf-8"),
            "--no-sensor",
            "--json",
            "--date",
            date,
        ]);
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("daily --json");
        eprintln!("daily {date}: {summary}");
        assert_eq!(summary["dates"][0]["status"], "succeeded", "{summary}");
        let gets = summary["object_store_requests"]["get"].as_u64();
        assert!(gets.is_some_and(|n| n > 0), "requests reported: {summary}");
        summary
    };
    let seen_before = first_i64(&query(&mut client, &count_on("2025-01-11")).await.unwrap());
    daily("2025-01-10");
    daily("2025-01-11");
    let published_11 = first_i64(
        &query(
            &mut client,
            "SELECT total_events FROM processed.daily_metrics WHERE date = DATE '2025-01-11'",
        )
        .await
        .expect("processed.daily_metrics"),
    );
    let produced_11 = producer.join().expect("producer")["delivered"]
        .as_i64()
        .expect("delivered");
    // The job read one snapshot of a table still growing: at least what was there before it
    // started, at most everything; its checks (reconciles_with_raw) agreed with that snapshot.
    assert!(
        seen_before <= published_11 && published_11 <= produced_11,
        "{seen_before} <= {published_11} <= {produced_11}"
    );
    assert_eq!(
        first_i64(
            &query(
                &mut client,
                "SELECT total_events FROM processed.daily_metrics WHERE date = DATE '2025-01-10'"
            )
            .await
            .unwrap()
        ),
        closed,
        "the closed date's figure is exact"
    );
    stop_and_check_exactly_once(
        worker,
        &logs.path().join("ingest.log"),
        &location,
        &topic,
        closed + produced_11,
    )
    .await;
}
