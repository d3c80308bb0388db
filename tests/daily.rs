//! `lake daily` on a small hand-checkable dataset: exact values, idempotent re-runs, backfill,
//! editing a SQL file, and errors that name the file.

mod common;

use std::path::Path;

use common::*;
use lake::lake::Lake;

/// 2025-01-10: users 1 and 2, sessions s1..s3, six events; 2025-01-11: one click.
async fn hand_checkable(dir: &Path) {
    let lake = Lake::new(dir).unwrap();
    append_raw_events(
        &lake,
        0,
        &[
            (1, "click", "2025-01-10T08:00:00", "s1"),
            (1, "view", "2025-01-10T08:01:00", "s1"),
            (1, "purchase", "2025-01-10T08:02:00", "s1"),
            (2, "view", "2025-01-10T09:00:00", "s2"),
            (2, "login", "2025-01-10T09:01:00", "s2"),
            (2, "logout", "2025-01-10T23:59:59+00:00", "s3"),
            (3, "click", "2025-01-11T00:00:00", "s4"),
        ],
    )
    .await;
}

fn daily(dir: &Path, sql_dir: &Path, args: &[&str]) -> std::process::Output {
    let (d, s) = (dir.to_str().unwrap(), sql_dir.to_str().unwrap());
    let mut all = vec!["daily", "--lake", d, "--sql", s];
    all.extend_from_slice(args);
    lake().args(&all).output().expect("run lake daily")
}

fn shipped_sql() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sql")
}

fn csv(dir: &Path, query: &str) -> String {
    let d = dir.to_str().unwrap();
    let out = run_ok(&["sql", "--lake", d, "-q", "--format", "csv", "-c", query]);
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn shipped_daily_files_give_exact_values_and_rerun_idempotently() {
    let dir = tempdir();
    hand_checkable(dir.path()).await;
    for _ in 0..2 {
        let out = daily(dir.path(), &shipped_sql(), &["--date", "2025-01-10"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("processed.daily_metrics: wrote 1 rows")
        );
    }
    assert_eq!(
        csv(dir.path(), "SELECT * FROM daily_metrics"),
        "date,total_events,unique_users,unique_sessions,click_events,view_events,purchase_events,\
         login_events,logout_events,conversion_rate,avg_events_per_session\n\
         2025-01-10,6,2,3,1,2,1,1,1,0.5,2.0"
    );
    assert_eq!(
        csv(
            dir.path(),
            "SELECT * FROM daily_event_type_metrics ORDER BY event_type"
        ),
        "date,event_type,events,unique_users\n2025-01-10,click,1,1\n2025-01-10,login,1,1\n\
         2025-01-10,logout,1,1\n2025-01-10,purchase,1,1\n2025-01-10,view,2,2"
    );
    assert_eq!(
        csv(dir.path(), "SELECT * FROM daily_page_metrics"),
        "date,page_id,views,clicks,purchases,unique_users\n2025-01-10,3,2,1,1,2"
    );

    // Backfill a range: the other date appears, 2025-01-10 is unchanged.
    let out = daily(
        dir.path(),
        &shipped_sql(),
        &["--from", "2025-01-10", "--to", "2025-01-11", "--json"],
    );
    assert!(out.status.success());
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["dates"][1]["rows"]["processed.daily_metrics"], 1);
    assert_eq!(
        csv(
            dir.path(),
            "SELECT date, total_events FROM daily_metrics ORDER BY date"
        ),
        "date,total_events\n2025-01-10,6\n2025-01-11,1"
    );
}

#[tokio::test]
async fn editing_a_sql_file_changes_the_output_without_a_rebuild() {
    let dir = tempdir();
    hand_checkable(dir.path()).await;
    let sql = dir.path().join("my_sql");
    std::fs::create_dir_all(sql.join("daily")).unwrap();
    let file = sql.join("daily/purchases.sql");
    std::fs::write(&file, "SELECT event_date AS date, count(*) AS n FROM raw.user_events WHERE event_date = $date AND event_type = 'purchase' GROUP BY 1").unwrap();
    assert!(daily(dir.path(), &sql, &["--date", "2025-01-10"])
        .status
        .success());
    assert_eq!(csv(dir.path(), "SELECT n FROM purchases"), "n\n1");
    // The user story: count views instead; re-running the date replaces it.
    std::fs::write(&file, "SELECT event_date AS date, count(*) AS n FROM raw.user_events WHERE event_date = $date AND event_type = 'view' GROUP BY 1").unwrap();
    assert!(daily(dir.path(), &sql, &["--date", "2025-01-10"])
        .status
        .success());
    assert_eq!(csv(dir.path(), "SELECT n FROM purchases"), "n\n2");
}

#[tokio::test]
async fn bad_files_fail_with_exit_1_naming_the_file() {
    let dir = tempdir();
    hand_checkable(dir.path()).await;
    let cases = [
        (
            "no_date.sql",
            "SELECT count(*) AS n FROM raw.user_events WHERE event_date = $date",
            "needs a `date` column",
        ),
        (
            "unknown.sql",
            "SELECT $date AS date FROM raw.nothing",
            "unknown table raw.nothing",
        ),
        ("syntax.sql", "SELECT 1 AS date\nFROMM x", "Line: 2"),
        (
            "wrong_date.sql",
            "SELECT event_date AS date FROM raw.user_events",
            "every row's `date` must be 2025-01-10",
        ),
    ];
    for (name, text, want) in cases {
        let sql = dir.path().join(format!("sql_{name}"));
        std::fs::create_dir_all(sql.join("daily")).unwrap();
        std::fs::write(sql.join("daily").join(name), text).unwrap();
        let out = daily(dir.path(), &sql, &["--date", "2025-01-10"]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(name) && err.contains(want), "{name}: {err}");
    }
    let out = daily(
        dir.path(),
        &shipped_sql(),
        &["--from", "2025-01-11", "--to", "2025-01-10"],
    );
    assert_eq!(out.status.code(), Some(1));
    let out = daily(dir.path(), &shipped_sql(), &["--date", "2025-13-01"]);
    assert_eq!(out.status.code(), Some(2));
}
