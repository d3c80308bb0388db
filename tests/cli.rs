//! The command line: configuration precedence (flag > LAKE_* env > lake.toml > default) and
//! clear errors with exit codes for bad input.

mod common;

use common::*;
use lake::testing::{dead_letters_spec, user_events_spec, Lake};

fn maintain_in(cwd: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut cmd = lake();
    cmd.current_dir(cwd).arg("maintain").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run lake")
}

#[tokio::test]
async fn lake_dir_comes_from_flag_then_env_then_file() {
    let root = tempdir();
    let (a, b, c) = (
        root.path().join("a"),
        root.path().join("b"),
        root.path().join("c"),
    );
    // a holds only the events table, b only dead letters, c both: the output tells them apart.
    Lake::new(&a)
        .unwrap()
        .open_or_create(&user_events_spec())
        .await
        .unwrap();
    Lake::new(&b)
        .unwrap()
        .open_or_create(&dead_letters_spec())
        .await
        .unwrap();
    let lc = Lake::new(&c).unwrap();
    lc.open_or_create(&user_events_spec()).await.unwrap();
    lc.open_or_create(&dead_letters_spec()).await.unwrap();
    std::fs::write(
        root.path().join("lake.toml"),
        format!("lake_dir = {:?}\n", a.display().to_string()),
    )
    .unwrap();

    let tables = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mut names: Vec<String> = text
            .lines()
            .filter_map(|l| l.split(':').next())
            .map(String::from)
            .collect();
        names.sort();
        names
    };
    let b_dir = b.display().to_string();
    let c_dir = c.display().to_string();
    assert_eq!(
        tables(maintain_in(root.path(), &[], &[])),
        vec!["raw.user_events"]
    );
    assert_eq!(
        tables(maintain_in(root.path(), &[("LAKE_DIR", &b_dir)], &[])),
        vec!["raw.user_events_dead_letters"]
    );
    assert_eq!(
        tables(maintain_in(
            root.path(),
            &[("LAKE_DIR", &b_dir)],
            &["--lake", &c_dir]
        )),
        vec!["raw.user_events", "raw.user_events_dead_letters"]
    );
}

#[test]
fn bad_configuration_is_a_clear_error_with_exit_code_1() {
    let root = tempdir();
    std::fs::write(root.path().join("lake.toml"), "lake_dirr = \"x\"\n").unwrap();
    let out = maintain_in(root.path(), &[], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("lake.toml") && err.contains("lake_dirr"),
        "{err}"
    );

    let out = maintain_in(root.path(), &[], &["--config", "missing.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[test]
fn lake_urls_lake_cannot_serve_are_refused_and_create_nothing() {
    let root = tempdir();
    // The issue: `--lake s3:/...` (and any URL) silently became a local folder named `s3:`.
    for location in [
        "ftp://host/lake",
        "hdfs://nn/lake",
        "s3:/bucket/lake",
        "s3://",
    ] {
        for command in [&["maintain"][..], &["sql", "-c", "SELECT 1"], &["runs"]] {
            let out = lake()
                .current_dir(root.path())
                .args(command)
                .args(["--lake", location])
                .output()
                .expect("run lake");
            assert_eq!(out.status.code(), Some(1), "{location} {command:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("lake location"), "{location}: {err}");
        }
        let out = maintain_in(root.path(), &[("LAKE_DIR", location)], &[]);
        assert_eq!(out.status.code(), Some(1), "LAKE_DIR={location}");
    }
    let left: Vec<_> = std::fs::read_dir(root.path()).unwrap().collect();
    assert!(left.is_empty(), "nothing created: {left:?}");
}

#[test]
fn usage_errors_exit_2_and_unknown_tables_exit_1() {
    let root = tempdir();
    let out = lake()
        .args(["ingest", "--max-rows", "many"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let dir = root.path().to_str().expect("utf-8");
    let out = lake()
        .args(["maintain", "--lake", dir, "--table", "raw.none"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Delta table raw.none"));
    let out = lake()
        .args(["produce", "--brokers", "127.0.0.1:1", "--partitions", "0"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--partitions must be at least 1"));
}
