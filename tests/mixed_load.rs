//! Everything at once against one lake: events produced into a real Kafka topic, ingest with
//! maintenance compacting, checkpointing and vacuuming, the daily job re-run again and again,
//! and 16 Flight SQL clients querying raw and processed tables. No query fails, no count a
//! client sees ever goes down, and at the end every event is in the lake exactly once and in
//! the daily metrics.
//!
//! It runs `LAKE_MIXED_LOAD_SECS` seconds (120 in the suite; the 10 minutes is
//! `LAKE_MIXED_LOAD_SECS=600 cargo test --test mixed_load`).

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::flight::{client, first_i64, query, serve};
use common::*;

const CLIENTS: usize = 16;
const DATE: &str = "2025-01-10";
const RATE: u64 = 1_000;

fn seconds() -> u64 {
    std::env::var("LAKE_MIXED_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120)
}

/// `lake daily` for DATE over the shipped SQL, without the sensor; fails the test unless it
/// succeeds.
fn daily(lake_dir: &str, config: &str) {
    let sql = concat!(env!("CARGO_MANIFEST_DIR"), "/sql");
    let out = Command::new(env!("CARGO_BIN_EXE_lake"))
        .args([
            "daily", "--lake", lake_dir, "--config", config, "--sql", sql,
        ])
        .args(["--date", DATE, "--no-sensor"])
        .output()
        .expect("run lake daily");
    assert!(
        out.status.success(),
        "lake daily: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ingest_maintenance_daily_runs_and_sixteen_clients_together() {
    let secs = seconds();
    let dir = tempdir();
    let lake_dir = dir.path().join("lake");
    let l = lake_dir.to_str().expect("utf-8").to_string();
    let config = dir.path().join("lake.toml");
    std::fs::write(
        &config,
        "[maintain]\ninterval = \"1s\"\nsmall_file_size = \"1M\"\nmin_files = 4\n\
         retention = \"20s\"\nvacuum_interval = \"10s\"\nmax_log_versions = 100\n",
    )
    .expect("write lake.toml");
    let config = config.to_str().expect("utf-8").to_string();
    let topic = topic("mixed_load");
    let events = (RATE * secs).to_string();
    let rate = RATE.to_string();
    let produce_log = dir.path().join("produce.log");
    let producer = spawn(
        &[
            "produce",
            "--brokers",
            &brokers(),
            "--topic",
            &topic,
            "--events",
            &events,
            "--rate",
            &rate,
            "--days",
            "1",
            "--start-date",
            DATE,
        ],
        &produce_log,
    );
    let ingest_log = dir.path().join("ingest.log");
    let mut ingest = spawn_ingest(&lake_dir, &topic, &["--config", &config], &ingest_log);
    let first_commit = lake_dir.join("raw/user_events/_delta_log/00000000000000000001.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !first_commit.exists() {
        assert!(Instant::now() < deadline, "{}", read(&ingest_log));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    daily(&l, &config);
    let server = serve(&lake_dir, &["--max-concurrent-queries", "16"]);

    let end = Instant::now() + Duration::from_secs(secs);
    let queries = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let url = server.url.clone();
        let queries = queries.clone();
        // Most count raw events; every fourth reads what the daily job published.
        let sql = match i % 4 {
            3 => {
                "SELECT CAST(coalesce(sum(total_events), 0) AS BIGINT) FROM processed.daily_metrics"
            }
            _ => "SELECT count(*) FROM raw.user_events",
        };
        clients.push(tokio::spawn(async move {
            let mut c = client(&url).await;
            let mut last = 0;
            while Instant::now() < end {
                let batches = query(&mut c, sql)
                    .await
                    .unwrap_or_else(|e| panic!("client {i}: {sql}: {e}"));
                let n = first_i64(&batches);
                assert!(n >= last, "client {i}: {sql} went from {last} to {n}");
                last = n;
                queries.fetch_add(1, Ordering::Relaxed);
            }
            last
        }));
    }
    let daily_runs = {
        let (l, config) = (l.clone(), config.clone());
        tokio::task::spawn_blocking(move || {
            let mut runs = 0;
            while Instant::now() < end {
                daily(&l, &config);
                runs += 1;
                std::thread::sleep(Duration::from_secs(5));
            }
            runs
        })
    };
    for (i, c) in clients.into_iter().enumerate() {
        let last = c.await.unwrap_or_else(|e| panic!("client {i}: {e}"));
        assert!(last > 0, "client {i} saw rows");
    }
    let runs = daily_runs.await.expect("daily runs");
    let queries = queries.load(Ordering::Relaxed);
    assert!(runs >= 2, "{runs} daily runs");
    assert!(queries >= CLIENTS as u64 * 2, "{queries} queries");
    eprintln!("{queries} queries and {runs} daily runs in {secs} s, none failed");

    // The producer finishes; ingest catches up with it, then stops on SIGTERM.
    let produced = RATE * secs;
    let mut producer = producer;
    let status = producer.wait().expect("producer");
    assert!(status.success(), "{}", read(&produce_log));
    let deadline = Instant::now() + Duration::from_secs(300);
    while ints(&lake_dir, "SELECT count(*) FROM user_events").await[0] < produced as i64 {
        assert!(Instant::now() < deadline, "{}", read(&ingest_log));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    signal(&ingest, libc::SIGTERM);
    let status = exit_within(&mut ingest, Duration::from_secs(10), || read(&ingest_log));
    assert!(status.success(), "{}", read(&ingest_log));
    assert_exactly_once(&lake_dir, produced as i64).await;
    daily(&l, &config);
    let mut c = client(&server.url).await;
    let total = first_i64(
        &query(
            &mut c,
            "SELECT CAST(sum(total_events) AS BIGINT) FROM processed.daily_metrics",
        )
        .await
        .expect("daily_metrics"),
    );
    assert_eq!(total, produced as i64, "the daily job counted every event");
}

fn read(log: &std::path::Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}
