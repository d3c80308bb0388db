//! SIGTERM in each long-running command's busiest phase: the process exits within five seconds,
//! and what it leaves behind is whole (nothing half published, nothing ingested twice).
//! `lake sql` and `lake maintain` keep the default action of the signal (they end at once; a
//! compaction is one atomic commit, see tests/kafka_maintain.rs).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::flight::{client, serve};
use common::*;
use futures::StreamExt;

const WITHIN: Duration = Duration::from_secs(5);

/// Sends SIGTERM to `child` and returns how it exited, failing the test (with `explain()`) if
/// it is still running five seconds later.
fn terminate(child: &mut Child, explain: impl Fn() -> String) -> ExitStatus {
    signal(child, libc::SIGTERM);
    exit_within(child, WITHIN, explain)
}

fn read_log(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// Waits up to two minutes for `ready`, failing early if `child` exits.
async fn wait_for(child: &mut Child, log: &Path, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready() {
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "exited before {what}:\n{}",
            read_log(log)
        );
        assert!(
            Instant::now() < deadline,
            "no {what} in 2 min:\n{}",
            read_log(log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn produce_at_full_speed_stops_within_five_seconds_and_counts_what_landed() {
    let dir = tempdir();
    let topic = topic("sigterm_produce");
    let log = dir.path().join("produce.log");
    let mut child = lake()
        .args(["produce", "--brokers", &brokers(), "--topic", &topic])
        .args(["--events", "1000000000", "--json"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "{}",
        read_log(&log)
    );
    let status = terminate(&mut child, || read_log(&log));
    assert!(status.success(), "{status}\n{}", read_log(&log));
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    let summary: serde_json::Value = serde_json::from_str(&stdout).expect("a JSON summary");
    let delivered = summary["delivered"].as_i64().expect("delivered");
    assert!(delivered > 0, "{summary}");
    // What the summary calls delivered is exactly what is in the topic.
    ingest_until_caught_up(dir.path(), &topic, &[]);
    assert_exactly_once(dir.path(), delivered).await;
}

#[tokio::test]
async fn ingest_mid_stream_with_maintenance_stops_within_five_seconds_and_resumes_exactly_once() {
    let dir = tempdir();
    let topic = topic("sigterm_ingest");
    let produced = produce_events(&topic, 300_000, &[])["delivered"]
        .as_i64()
        .expect("delivered");
    let config = dir.path().join("lake.toml");
    std::fs::write(
        &config,
        "[maintain]\ninterval = \"100ms\"\nsmall_file_size = \"1M\"\nmin_files = 2\n",
    )
    .expect("write lake.toml");
    let config = config.to_str().expect("utf-8");
    let log = dir.path().join("ingest.log");
    let mut child = spawn_ingest(dir.path(), &topic, &["--config", config], &log);
    // Signalled at its second commit: consuming, committing and compacting at once.
    wait_for(&mut child, &log, "second commit", || {
        dir.path()
            .join("raw/user_events/_delta_log")
            .join(format!("{:020}.json", 2))
            .exists()
    })
    .await;
    let status = terminate(&mut child, || read_log(&log));
    assert!(status.success(), "{status}\n{}", read_log(&log));
    ingest_until_caught_up(dir.path(), &topic, &["--config", config]);
    assert_exactly_once(dir.path(), produced).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_queries_streaming_stops_within_five_seconds() {
    let dir = tempdir();
    let mut server = serve(dir.path(), &[]);
    let endless = "SELECT * FROM range(1000000000000)";
    // One client reads on and on; another read one batch and stopped reading.
    let mut reader = client(&server.url).await;
    let info = reader.execute(endless.into(), None).await.expect("plan");
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let mut stream = reader.do_get(ticket).await.expect("do_get");
    let reading = tokio::spawn(async move {
        let mut rows = 0;
        while let Some(Ok(batch)) = stream.next().await {
            rows += batch.num_rows();
        }
        rows
    });
    let mut stalled = client(&server.url).await;
    let info = stalled.execute(endless.into(), None).await.expect("plan");
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let mut stalled_stream = stalled.do_get(ticket).await.expect("do_get");
    let first = stalled_stream.next().await.expect("a batch").expect("ok");
    assert!(first.num_rows() > 0);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let status = terminate(&mut server.child, String::new);
    assert!(status.success(), "{status}");
    let rows = tokio::time::timeout(Duration::from_secs(10), reading)
        .await
        .expect("the reading client's stream ends with the server")
        .expect("join");
    assert!(rows > 0, "it was reading");
    drop(stalled_stream);
}

#[tokio::test]
async fn daily_mid_query_stops_within_five_seconds_and_publishes_nothing() {
    let dir = tempdir();
    let sql = dir.path().join("sql");
    std::fs::create_dir_all(sql.join("daily")).expect("mkdir");
    std::fs::create_dir_all(sql.join("checks")).expect("mkdir");
    // Hours of counting: the run is busy querying when the signal comes.
    std::fs::write(
        sql.join("daily/slow.sql"),
        "SELECT CAST($date AS DATE) AS date, count(*) AS n \
         FROM (SELECT unnest(generate_series(1, 100000)) AS a) x \
         CROSS JOIN (SELECT unnest(generate_series(1, 100000)) AS b) y",
    )
    .expect("write slow.sql");
    let lake_dir = dir.path().join("lake");
    let log = dir.path().join("daily.log");
    let (l, s) = (
        lake_dir.to_str().expect("utf-8"),
        sql.to_str().expect("utf-8"),
    );
    let mut child = spawn(
        &[
            "daily",
            "--lake",
            l,
            "--sql",
            s,
            "--date",
            "2025-01-10",
            "--no-sensor",
        ],
        &log,
    );
    // The run has started once the raw tables exist; give the query a moment on top.
    wait_for(&mut child, &log, "the raw tables", || {
        lake_dir
            .join("raw/user_events_dead_letters/_delta_log")
            .exists()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = terminate(&mut child, || read_log(&log));
    assert_eq!(status.code(), Some(130), "{}", read_log(&log));
    assert!(
        !lake_dir.join("processed/slow").exists(),
        "nothing published"
    );
    assert!(!lake_dir.join("_staging").exists(), "staging cleaned up");
    assert!(
        !lake_dir.join("system/daily_runs").exists(),
        "no run recorded"
    );
}

#[tokio::test]
async fn demo_in_its_live_phase_stops_within_five_seconds() {
    let dir = tempdir();
    let log = dir.path().join("demo.log");
    let mut child = lake()
        .args(["demo", "--lake", dir.path().to_str().expect("utf-8")])
        .args(["--events", "5000", "--days", "2", "--rate", "2000"])
        .args(["--port", "0", "--http-port", "0"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn demo");
    let stdout = child.stdout.take().expect("stdout");
    // Lines of the demo's output, read on a thread while it runs.
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    wait_for(&mut child, &log, "the live phase", || {
        seen.extend(lines.try_iter().map(|l| l + "\n"));
        seen.contains("grpc://")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = terminate(&mut child, || read_log(&log));
    assert!(status.success(), "{status}\n{}", read_log(&log));
    // The rest of its output, up to the end of the pipe.
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) {
        seen.push_str(&line);
        seen.push('\n');
    }
    assert!(
        seen.contains("live events produced and committed"),
        "{seen}"
    );
}
