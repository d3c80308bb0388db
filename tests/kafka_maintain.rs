//! Compaction and vacuum running while ingest appends: exactly once still holds.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintain_while_ingesting_keeps_exactly_once() {
    let topic = topic("maintain");
    let dir = tempdir();
    let lake_dir = dir.path().to_str().expect("utf-8").to_string();
    let producer = std::thread::spawn({
        let topic = topic.clone();
        move || produce_events(&topic, 60_000, &["--rate", "10000", "--seed", "8"])
    });
    let mut ingest = spawn_ingest(dir.path(), &topic, &[], &dir.path().join("ingest.log"));
    let mut compactions = 0;
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(900));
        if !dir.path().join("raw/user_events/_delta_log").exists() {
            continue;
        }
        let out = run_ok(&[
            "maintain",
            "--lake",
            &lake_dir,
            "--table",
            "raw.user_events",
            "--retention",
            "0s",
        ]);
        assert!(String::from_utf8_lossy(&out.stdout).contains("raw.user_events: compacted"));
        compactions += 1;
    }
    assert!(compactions >= 3, "maintain ran while ingest was running");
    let summary = producer.join().expect("producer");
    ingest.kill().expect("stop ingest");
    ingest.wait().expect("reap");
    ingest_until_caught_up(dir.path(), &topic, &[]);
    assert_exactly_once(
        dir.path(),
        summary["delivered"].as_i64().expect("delivered"),
    )
    .await;
}

/// Background maintenance with thresholds small enough to run all the time, a retention of 2 s
/// so that vacuum deletes what compaction removed, ingest SIGKILLed twice while it runs, and
/// Flight SQL readers counting throughout: every count succeeds and never goes down, and at the
/// end every offset is in the table exactly once, in few files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_maintenance_survives_sigkill_and_readers_never_see_loss_or_failure() {
    use common::flight::{client, first_i64, query, serve};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let topic = topic("automaintain");
    let dir = tempdir();
    let lake_dir = dir.path().join("lake");
    let config = dir.path().join("lake.toml");
    std::fs::write(
        &config,
        "[maintain]\ninterval = \"500ms\"\nsmall_file_size = \"1M\"\nmin_files = 3\n\
         retention = \"2s\"\nvacuum_interval = \"2s\"\n",
    )
    .expect("write lake.toml");
    let config = config.to_str().expect("utf-8").to_string();
    let producer = std::thread::spawn({
        let topic = topic.clone();
        move || produce_events(&topic, 120_000, &["--rate", "8000", "--seed", "9"])
    });
    let log = |n: usize| dir.path().join(format!("ingest-{n}.log"));
    let mut ingest = spawn_ingest(&lake_dir, &topic, &["--config", &config], &log(0));
    while !lake_dir.join("raw/user_events/_delta_log").exists() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let server = serve(&lake_dir, &[]);

    let done = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn({
        let (url, done) = (server.url.clone(), done.clone());
        async move {
            let mut c = client(&url).await;
            let (mut last, mut reads) = (0, 0);
            while !done.load(Ordering::Relaxed) {
                let batches = query(&mut c, "SELECT count(*) FROM raw.user_events")
                    .await
                    .unwrap_or_else(|e| panic!("a read failed after {reads} reads: {e}"));
                let n = first_i64(&batches);
                assert!(n >= last, "the count went down from {last} to {n}");
                (last, reads) = (n, reads + 1);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            reads
        }
    });

    for kill in 1..=2 {
        std::thread::sleep(Duration::from_millis(4500));
        ingest.kill().expect("SIGKILL ingest");
        ingest.wait().expect("reap");
        ingest = spawn_ingest(&lake_dir, &topic, &["--config", &config], &log(kill));
    }
    let summary = producer.join().expect("producer");
    std::thread::sleep(Duration::from_secs(3));
    ingest.kill().expect("stop ingest");
    ingest.wait().expect("reap");
    ingest_until_caught_up(&lake_dir, &topic, &["--config", &config]);
    done.store(true, Ordering::Relaxed);
    let reads = reader.await.expect("reader");
    assert!(reads > 50, "the reader ran throughout: {reads} reads");

    let logs: String = (0..3)
        .map(|n| std::fs::read_to_string(log(n)).unwrap_or_default())
        .collect();
    assert!(
        logs.contains("maintenance") && logs.contains("compacted"),
        "ingest compacted in the background:\n{logs}"
    );
    let vacuumed = logs
        .lines()
        .filter(|l| l.contains("maintenance") && !l.contains("vacuumed=0"))
        .count();
    assert!(vacuumed > 0, "and vacuumed:\n{logs}");
    let produced = summary["delivered"].as_i64().expect("delivered");
    assert_exactly_once(&lake_dir, produced).await;
    let parquet = parquet_files(&lake_dir.join("raw/user_events")).len();
    eprintln!("{reads} reads, {vacuumed} rounds that vacuumed, {parquet} Parquet files left");
    assert!(
        parquet < 60,
        "compaction and vacuum keep the folder small: {parquet} Parquet files"
    );
}
