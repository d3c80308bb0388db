//! `lake sql`: the lake catalog (qualified and bare names, fresh snapshots), output formats,
//! and the read-only policy.

mod common;

use common::*;
use lake::testing::Lake;

/// Appends events (type, timestamp) of user 7, session "s" to raw.user_events.
async fn append_events(lake: &Lake, first_offset: i64, events: &[(&str, &str)]) {
    let full: Vec<(i64, &str, &str, &str)> =
        events.iter().map(|(t, ts)| (7, *t, *ts, "s")).collect();
    append_raw_events(lake, first_offset, &full).await;
}

fn sql(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let d = dir.to_str().expect("utf-8");
    let mut all = vec!["sql", "--lake", d];
    all.extend_from_slice(args);
    lake().args(&all).output().expect("run lake sql")
}

fn stdout_ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[tokio::test]
async fn queries_see_bare_and_qualified_names_and_new_commits() {
    let dir = tempdir();
    let lake = Lake::new(dir.path()).unwrap();
    append_events(
        &lake,
        0,
        &[
            ("click", "2025-01-10T10:00:00"),
            ("view", "2025-01-11T23:30:00-02:00"),
        ],
    )
    .await;

    let q =
        "SELECT event_date, event_type, count(*) AS n FROM user_events GROUP BY 1, 2 ORDER BY 1, 2";
    let out = stdout_ok(sql(dir.path(), &["-q", "--format", "csv", "-c", q]));
    assert_eq!(
        out.trim(),
        "event_date,event_type,n\n2025-01-10,click,1\n2025-01-12,view,1"
    );

    // A new commit is visible to the next query (no cache of old snapshots).
    append_events(&lake, 2, &[("purchase", "2025-01-10T11:00:00")]).await;
    let q = "SELECT count(*) AS n FROM lake.raw.user_events";
    let out = stdout_ok(sql(dir.path(), &["-q", "--format", "json", "-c", q]));
    assert_eq!(out.trim(), r#"[{"n":3}]"#);

    // Move the table to `processed` and start a new raw one: the bare name is now ambiguous
    // and must be qualified.
    std::fs::create_dir_all(dir.path().join("processed")).unwrap();
    std::fs::rename(
        dir.path().join("raw/user_events"),
        dir.path().join("processed/user_events"),
    )
    .unwrap();
    append_events(&lake, 0, &[("login", "2025-01-10T10:00:00")]).await;
    let out = sql(
        dir.path(),
        &["-q", "-c", "SELECT count(*) FROM user_events"],
    );
    assert_eq!(out.status.code(), Some(1));
    let out = stdout_ok(sql(
        dir.path(),
        &[
            "-q",
            "--format",
            "csv",
            "-c",
            "SELECT count(*) AS n FROM processed.user_events",
        ],
    ));
    assert_eq!(out.trim(), "n\n3");
}

#[tokio::test]
async fn read_only_refuses_ddl_dml_and_settings_with_exit_1() {
    let dir = tempdir();
    let lake = Lake::new(dir.path()).unwrap();
    append_events(&lake, 0, &[("click", "2025-01-10T10:00:00")]).await;
    for statement in [
        "CREATE EXTERNAL TABLE leak STORED AS CSV LOCATION '/etc/passwd'",
        "INSERT INTO user_events SELECT * FROM user_events",
        "COPY (SELECT 1) TO '/tmp/lake-sql-test-out.csv'",
        "SET datafusion.execution.batch_size = 1",
        "CREATE VIEW v AS SELECT 1",
    ] {
        let out = sql(dir.path(), &["-c", statement]);
        assert_eq!(out.status.code(), Some(1), "{statement}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("read-only"), "{statement}: {err}");
    }
    assert!(!std::path::Path::new("/tmp/lake-sql-test-out.csv").exists());
    let out = sql(dir.path(), &["-c", "SELEC 1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SELEC"));
    let out = sql(dir.path(), &["-f", "/nonexistent/q.sql"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/q.sql"));
}

#[tokio::test]
async fn files_run_every_statement_and_fail_on_the_first_error() {
    let dir = tempdir();
    let lake = Lake::new(dir.path()).unwrap();
    append_events(&lake, 0, &[("click", "2025-01-10T10:00:00")]).await;
    let file = dir.path().join("q.sql");
    std::fs::write(
        &file,
        "-- two queries\nSELECT 1 AS a;\nSELECT count(*) AS n FROM user_events;\n",
    )
    .unwrap();
    let out = stdout_ok(sql(
        dir.path(),
        &["-q", "--format", "csv", "-f", file.to_str().unwrap()],
    ));
    assert_eq!(out.trim(), "a\n1\nn\n1");
    std::fs::write(&file, "SELECT * FROM missing_table;\nSELECT 2;\n").unwrap();
    let out = sql(dir.path(), &["-q", "-f", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing_table"));
}
