//! `lake demo` runs end to end on its embedded broker, stops by itself, and a second run
//! continues on the same lake.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_the_pipeline_and_a_second_run_continues_on_the_same_lake() {
    let dir = tempdir();
    let lake_dir = dir.path().to_str().expect("utf-8");
    let run = || {
        run_ok(&[
            "demo",
            "--lake",
            lake_dir,
            "--events",
            "20000",
            "--days",
            "3",
            "--rate",
            "500",
            "--duration",
            "3s",
            "--port",
            "0",
        ])
    };
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ingested 20000 events (0 dead letters)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("delta_scan("),
        "next steps are printed: {stdout}"
    );
    let rows = ints(dir.path(), "SELECT count(*) FROM user_events").await[0];
    assert!(rows > 20_000, "live events were ingested too: {rows}");
    let dates = ints(
        dir.path(),
        "SELECT count(DISTINCT event_date) FROM user_events",
    )
    .await[0];
    assert_eq!(dates, 3);
    // The two complete days of history went through the daily job and its checks.
    assert!(
        stdout.contains("daily job") && stdout.contains("3 tables written, 6/6 checks passed"),
        "{stdout}"
    );
    let out = run_ok(&[
        "sql",
        "--lake",
        lake_dir,
        "-q",
        "--format",
        "csv",
        "-c",
        "SELECT count(*) AS days FROM daily_metrics",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "days\n2",
        "{stdout}"
    );

    // Same lake, new embedded broker whose offsets start at 0 again: nothing may be skipped.
    run();
    let again = ints(dir.path(), "SELECT count(*) FROM user_events").await[0];
    assert!(
        again > rows + 20_000,
        "second run appended its history: {rows} -> {again}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_answers_flight_sql_queries_while_it_runs() {
    use std::io::{BufRead, BufReader};
    let dir = tempdir();
    let mut demo = lake()
        .args([
            "demo",
            "--lake",
            dir.path().to_str().unwrap(),
            "--events",
            "5000",
        ])
        .args(["--rate", "100", "--duration", "8s", "--port", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start lake demo");
    let stdout = BufReader::new(demo.stdout.take().expect("stdout"));
    let mut lines = stdout.lines();
    let url = loop {
        let line = lines
            .next()
            .expect("demo ended before serving")
            .expect("read");
        if let Some(rest) = line.strip_prefix("Flight SQL: grpc://") {
            let addr = rest.split_whitespace().next().unwrap_or_default();
            break format!("http://{addr}");
        }
    };
    let mut c = common::flight::client(&url).await;
    let events = common::flight::query(&mut c, "SELECT count(*) FROM raw.user_events").await;
    assert!(common::flight::first_i64(&events.unwrap()) >= 5000);
    let days = common::flight::query(&mut c, "SELECT count(*) FROM daily_metrics").await;
    assert_eq!(common::flight::first_i64(&days.unwrap()), 2);
    for line in lines.map_while(Result::ok) {
        let _ = line; // drain so the demo never blocks on a full pipe
    }
    assert!(demo.wait().expect("wait").success());
}

#[test]
fn bad_duration_is_a_usage_error() {
    let out = lake()
        .args(["demo", "--duration", "soon"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("use e.g. 30s"));
}
