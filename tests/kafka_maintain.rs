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
            "--retention-hours",
            "0",
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
