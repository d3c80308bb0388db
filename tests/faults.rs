//! Faults with real parts: a Kafka broker killed and restarted while events stream, and the
//! lake's disk full during commits, then space freed. Either way nothing is lost or ingested
//! twice, and the table never shows a half-written commit.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

const KAFKA_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka.sh");

/// A broker of this test's own (the suite's shared one must stay up), run by scripts/kafka.sh.
struct Broker {
    state: tempfile::TempDir,
    bootstrap: String,
}

impl Broker {
    fn start() -> Self {
        let state = tempdir();
        let out = kafka_sh("start", state.path());
        let bootstrap = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Self { state, bootstrap }
    }

    /// SIGKILL, as a crash or a power cut of the broker's host would end it.
    fn kill(&self) {
        kafka_sh("kill", self.state.path());
    }

    /// Starts it again from its state on disk, on the same address.
    fn restart(&self) {
        let out = kafka_sh("restart", self.state.path());
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), self.bootstrap);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Command::new(KAFKA_SH)
            .args(["stop", self.state.path().to_str().unwrap_or_default()])
            .output();
    }
}

fn kafka_sh(verb: &str, state: &Path) -> Output {
    let out = Command::new(KAFKA_SH)
        .args([verb, state.to_str().expect("utf-8")])
        .stderr(Stdio::piped())
        .output()
        .expect("run scripts/kafka.sh");
    assert!(
        out.status.success(),
        "kafka.sh {verb}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The contents of `log`, to explain a failure.
fn explain(log: &Path) -> impl Fn() -> String + '_ {
    move || std::fs::read_to_string(log).unwrap_or_default()
}

#[tokio::test]
async fn a_broker_killed_and_restarted_mid_stream_loses_and_duplicates_nothing() {
    let broker = Broker::start();
    let dir = tempdir();
    let topic = topic("faults_broker");
    let b = broker.bootstrap.as_str();
    // 10 s of events at 4,000/s, with the broker gone for part of it.
    let produce_log = dir.path().join("produce.log");
    let mut producer = lake()
        .args(["produce", "--brokers", b, "--topic", &topic])
        .args(["--events", "40000", "--rate", "4000", "--json"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&produce_log).expect("log"))
        .spawn()
        .expect("spawn produce");
    let lake_dir = dir.path().join("lake");
    let ingest_log = dir.path().join("ingest.log");
    let l = lake_dir.to_str().expect("utf-8");
    let mut ingest = spawn(
        &[
            "ingest",
            "--lake",
            l,
            "--brokers",
            b,
            "--topic",
            &topic,
            "--group",
            &topic,
            "--max-latency-ms",
            "200",
        ],
        &ingest_log,
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        producer.try_wait().expect("try_wait").is_none(),
        "the broker goes away mid-stream"
    );
    broker.kill();
    std::thread::sleep(Duration::from_secs(3));
    broker.restart();

    let status = exit_within(
        &mut producer,
        Duration::from_secs(180),
        explain(&produce_log),
    );
    assert!(
        status.success(),
        "the producer rides out the outage: {status}\n{}",
        std::fs::read_to_string(&produce_log).unwrap_or_default()
    );
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut producer.stdout.take().expect("stdout"), &mut stdout)
        .expect("read stdout");
    let summary: serde_json::Value = serde_json::from_str(&stdout).expect("JSON summary");
    let delivered = summary["delivered"].as_i64().expect("delivered");
    assert_eq!(delivered, 40_000, "{summary}");

    // The ingest that saw the broker vanish catches up by itself.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        assert!(
            ingest.try_wait().expect("try_wait").is_none(),
            "ingest exited:\n{}",
            std::fs::read_to_string(&ingest_log).unwrap_or_default()
        );
        let rows = if lake_dir.join("raw/user_events/_delta_log").exists() {
            ints(&lake_dir, "SELECT count(*) FROM user_events").await[0]
        } else {
            0
        };
        if rows >= delivered {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{rows} of {delivered} rows after 3 min:\n{}",
            std::fs::read_to_string(&ingest_log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    signal(&ingest, libc::SIGTERM);
    let status = exit_within(&mut ingest, Duration::from_secs(10), explain(&ingest_log));
    assert!(status.success(), "{status}");
    assert_exactly_once(&lake_dir, delivered).await;
}

/// A tmpfs of `size` mounted at `at` for the test's lifetime.
struct SmallDisk {
    at: PathBuf,
}

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).expect("mkdir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs, which needs root (scripts/test.sh runs as root \
             in CI): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            at: at.to_path_buf(),
        }
    }

    /// Fills every free byte with a ballast file; returns its path.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let ballast = self.at.join("ballast");
        let mut f = std::fs::File::create(&ballast).expect("ballast");
        for chunk in [1 << 20, 4096, 1] {
            let zeros = vec![0u8; chunk];
            while f.write_all(&zeros).is_ok() {}
        }
        ballast
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).output();
    }
}

#[tokio::test]
async fn a_full_disk_during_commits_loses_nothing_and_ingest_resumes_once_space_is_freed() {
    let dir = tempdir();
    let lake_dir = dir.path().join("lake");
    let disk = SmallDisk::mount(&lake_dir, "48m");
    let topic = topic("faults_disk");
    produce_events(&topic, 30_000, &[]);
    ingest_until_caught_up(&lake_dir, &topic, &[]);
    assert_eq!(
        ints(&lake_dir, "SELECT count(*) FROM user_events").await[0],
        30_000
    );

    let ballast = disk.fill();
    produce_events(&topic, 20_000, &[]);
    let log = dir.path().join("full.log");
    let args = ingest_args(&lake_dir, &topic, &["--until-caught-up"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut full = spawn(&args, &log);
    let status = exit_within(&mut full, Duration::from_secs(120), explain(&log));
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        status.code(),
        Some(1),
        "fails with a clear error:\n{stderr}"
    );
    assert!(stderr.contains("No space left on device"), "{stderr}");
    // What was committed before is still all there, and nothing of the failed commits shows.
    assert_eq!(
        ints(&lake_dir, "SELECT count(*) FROM user_events").await[0],
        30_000
    );

    std::fs::remove_file(&ballast).expect("free the space");
    ingest_until_caught_up(&lake_dir, &topic, &[]);
    assert_exactly_once(&lake_dir, 50_000).await;
}
