//! `lake daily` on a small hand-checkable dataset: exact values, idempotent re-runs, backfill,
//! editing a SQL file, and errors that name the file.

mod common;

use std::path::Path;

use common::*;
use lake::testing::Lake;

/// [`HAND_CHECKABLE_DAY`] on 2025-01-10, then one click on 2025-01-11 (offsets 0..=6).
async fn hand_checkable(dir: &Path) {
    let lake = Lake::new(dir).unwrap();
    let mut events = HAND_CHECKABLE_DAY.to_vec();
    events.push((3, "click", "2025-01-11T00:00:00", "s4"));
    append_raw_events(&lake, 0, &events).await;
}

/// `lake daily` without the sensor (the data here is complete by construction).
fn daily(dir: &Path, sql_dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--no-sensor"];
    all.extend_from_slice(args);
    daily_sensing(dir, sql_dir, &all)
}

/// `lake daily` with the sensor reading the progress markers of topic `t` (as
/// `append_raw_events` writes them).
fn daily_sensing(dir: &Path, sql_dir: &Path, args: &[&str]) -> std::process::Output {
    let (d, s) = (dir.to_str().unwrap(), sql_dir.to_str().unwrap());
    let mut all = vec!["daily", "--lake", d, "--sql", s, "--topic", "t"];
    all.extend_from_slice(args);
    lake().args(&all).output().expect("run lake daily")
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A SQL folder with the given daily and check files.
fn sql_folder(
    root: &Path,
    name: &str,
    daily: &[(&str, &str)],
    checks: &[(&str, &str)],
) -> std::path::PathBuf {
    let sql = root.join(name);
    for (sub, files) in [("daily", daily), ("checks", checks)] {
        std::fs::create_dir_all(sql.join(sub)).unwrap();
        for (file, text) in files {
            std::fs::write(sql.join(sub).join(file), text).unwrap();
        }
    }
    sql
}

const PURCHASES: &str = "SELECT event_date AS date, count(*) AS n FROM raw.user_events \
                         WHERE event_date = $date AND event_type = 'purchase' GROUP BY 1";

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

    // Every shipped check passed and was recorded with its run.
    assert_eq!(
        csv(
            dir.path(),
            "SELECT \"check\", severity, status, violation_count FROM system.check_results \
             WHERE date = DATE '2025-01-10' GROUP BY ALL ORDER BY 1"
        ),
        "check,severity,status,violation_count\n\
         dead_letter_rate,warn,pass,0\nmetrics_exist,error,pass,0\nno_null_keys,error,pass,0\n\
         reconciles_with_raw,error,pass,0\ntype_counts_add_up,error,pass,0\n\
         volume_anomaly,warn,pass,0"
    );
    assert_eq!(
        csv(
            dir.path(),
            "SELECT date, status, trigger, count(*) AS runs, \
             max(rows['processed.daily_metrics']) AS metric_rows FROM system.daily_runs \
             GROUP BY 1, 2, 3 ORDER BY 1"
        ),
        "date,status,trigger,runs,metric_rows\n2025-01-10,succeeded,cli,3,1\n\
         2025-01-11,succeeded,cli,1,1"
    );
    let runs = run_ok(&[
        "runs",
        "--lake",
        dir.path().to_str().unwrap(),
        "--date",
        "2025-01-11",
    ]);
    let runs = String::from_utf8_lossy(&runs.stdout);
    assert!(
        runs.contains("succeeded") && runs.contains("reconciles_with_raw"),
        "{runs}"
    );
    assert!(!runs.contains("2025-01-10"), "{runs}");
}

#[tokio::test]
async fn editing_a_sql_file_changes_the_output_without_a_rebuild() {
    let dir = tempdir();
    hand_checkable(dir.path()).await;
    let sql = sql_folder(dir.path(), "my_sql", &[("purchases.sql", PURCHASES)], &[]);
    assert!(daily(dir.path(), &sql, &["--date", "2025-01-10"])
        .status
        .success());
    assert_eq!(csv(dir.path(), "SELECT n FROM purchases"), "n\n1");
    // The user story: count views instead; re-running the date replaces it.
    let file = sql.join("daily/purchases.sql");
    std::fs::write(&file, PURCHASES.replace("'purchase'", "'view'")).unwrap();
    assert!(daily(dir.path(), &sql, &["--date", "2025-01-10"])
        .status
        .success());
    assert_eq!(csv(dir.path(), "SELECT n FROM purchases"), "n\n2");
    // The file gains a column: the table gains it too, the other date reads NULL.
    std::fs::write(
        &file,
        "SELECT event_date AS date, count(*) AS n, count(DISTINCT user_id) AS users \
        FROM raw.user_events WHERE event_date = $date GROUP BY 1",
    )
    .unwrap();
    let out = daily(dir.path(), &sql, &["--date", "2025-01-11"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        csv(
            dir.path(),
            "SELECT date, n, users FROM purchases ORDER BY date"
        ),
        "date,n,users\n2025-01-10,2,\n2025-01-11,1,1"
    );
}

#[tokio::test]
async fn a_failing_error_check_fails_the_run_and_is_stored_a_warn_check_does_not() {
    let dir = tempdir();
    hand_checkable(dir.path()).await;
    let warn = "-- severity: warn\n-- description: more than one purchase\n\
                SELECT * FROM processed.purchases WHERE date = $date AND n > 0";
    let sql = sql_folder(
        dir.path(),
        "warn_sql",
        &[("purchases.sql", PURCHASES)],
        &[("many.sql", warn)],
    );
    let out = daily(dir.path(), &sql, &["--date", "2025-01-10"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("check many (warn): warn (1 violating rows)")
    );

    // A bad edit (views counted as purchases) that an error check catches: the check reads the
    // new result, and the published table keeps the previous one.
    let error = "-- severity: error\n-- description: at most one purchase\n\
                 SELECT date, n FROM processed.purchases WHERE date = $date AND n > 1";
    let bad = PURCHASES.replace("'purchase'", "'view'");
    let sql = sql_folder(
        dir.path(),
        "error_sql",
        &[("purchases.sql", &bad)],
        &[("none.sql", error)],
    );
    let out = daily(dir.path(), &sql, &["--date", "2025-01-10"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("check none found 1 violating rows; nothing was published"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        csv(dir.path(), "SELECT n FROM purchases"),
        "n\n1",
        "the failed run published nothing"
    );
    assert!(
        !dir.path().join("_staging").exists(),
        "the staged result is gone, and the staging folder with it"
    );
    assert_eq!(
        csv(dir.path(), "SELECT \"check\", severity, status, violation_count, sample, description \
             FROM system.check_results ORDER BY checked_at"),
        "check,severity,status,violation_count,sample,description\n\
         many,warn,warn,1,\"[{\"\"date\"\":\"\"2025-01-10\"\",\"\"n\"\":1}]\",more than one purchase\n\
         none,error,fail,1,\"[{\"\"date\"\":\"\"2025-01-10\"\",\"\"n\"\":2}]\",at most one purchase"
    );
    assert_eq!(
        csv(
            dir.path(),
            "SELECT status, error FROM system.daily_runs ORDER BY started_at"
        ),
        "status,error\nsucceeded,\nfailed,check none found 1 violating rows; nothing was published"
    );
}

#[tokio::test]
async fn the_sensor_waits_for_ingest_then_runs_or_times_out_with_exit_3() {
    let dir = tempdir();
    hand_checkable(dir.path()).await;
    let store = Lake::new(dir.path()).unwrap();
    let sql = sql_folder(dir.path(), "s_sql", &[("purchases.sql", PURCHASES)], &[]);
    // Partition 0 has events up to 2025-01-11T00:00:00: enough with no lateness allowed.
    let out = daily_sensing(
        dir.path(),
        &sql,
        &["--date", "2025-01-10", "--lateness", "0s"],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // Ten minutes of lateness: not complete, and no waiting asked for.
    let out = daily_sensing(
        dir.path(),
        &sql,
        &["--date", "2025-01-10", "--lateness", "10m", "--wait", "1s"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("partition 0 has events up to 2025-01-11T00:00:00+00:00, needs 2025-01-11T00:10:00+00:00"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        csv(
            dir.path(),
            "SELECT status FROM system.daily_runs ORDER BY started_at"
        ),
        "status\nsucceeded\nsensor_timeout"
    );

    // Waiting: ingest advances past 00:10 two seconds later and the run proceeds.
    let (d, s) = (dir.path().to_str().unwrap(), sql.to_str().unwrap());
    let mut waiting = lake();
    waiting
        .args([
            "daily",
            "--lake",
            d,
            "--sql",
            s,
            "--topic",
            "t",
            "--date",
            "2025-01-10",
        ])
        .args(["--lateness", "10m", "--wait", "60s"]);
    let waiting = tokio::task::spawn_blocking(move || waiting.output().expect("run lake daily"));
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    append_raw_events(&store, 7, &[(4, "view", "2025-01-11T00:11:00", "s5")]).await;
    let out = waiting.await.unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("waiting for ingest"),
        "{}",
        stderr(&out)
    );

    // An event dated 2099 (a producer's clock, a hostile payload) is kept but does not make
    // later days complete: 2025-01-12 has no data, and the sensor says so.
    append_raw_events(&store, 8, &[(5, "view", "2099-01-01T00:00:00", "s6")]).await;
    let out = daily_sensing(
        dir.path(),
        &sql,
        &["--date", "2025-01-12", "--lateness", "0s"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("partition 0 has no events after 2025-01-12"),
        "{}",
        stderr(&out)
    );
    let out = daily_sensing(
        dir.path(),
        &sql,
        &[
            "--date",
            "2025-01-12",
            "--lateness",
            "0s",
            "--max-future-skew",
            "100000d",
        ],
    );
    assert!(
        out.status.success(),
        "trusting every clock: {}",
        stderr(&out)
    );

    // A topic ingest never wrote is never complete.
    let (d, s) = (dir.path().to_str().unwrap(), sql.to_str().unwrap());
    let out = lake()
        .args([
            "daily",
            "--lake",
            d,
            "--sql",
            s,
            "--topic",
            "other",
            "--date",
            "2025-01-10",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("no ingest progress recorded for topic \"other\""),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn schedule_catches_up_missed_dates_once_and_retries_failures() {
    let dir = tempdir();
    hand_checkable(dir.path()).await;
    let d = dir.path().to_str().unwrap();
    let sql = sql_folder(dir.path(), "sch_sql", &[("purchases.sql", PURCHASES)], &[]);
    let s = sql.to_str().unwrap();
    let schedule = |extra: &[&str]| {
        let mut args = vec![
            "schedule",
            "--lake",
            d,
            "--sql",
            s,
            "--no-sensor",
            "--once",
            "--today",
            "2025-01-12",
        ];
        args.extend_from_slice(extra);
        lake().args(&args).output().unwrap()
    };
    let out = schedule(&["--since", "2025-01-10"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let runs = "SELECT date, status, trigger, count(*) AS n FROM system.daily_runs GROUP BY 1, 2, 3 ORDER BY 1";
    assert_eq!(
        csv(dir.path(), runs),
        "date,status,trigger,n\n2025-01-10,succeeded,schedule,1\n2025-01-11,succeeded,schedule,1"
    );
    // Restarted: nothing is due, nothing runs again.
    assert!(schedule(&[]).status.success());
    assert_eq!(
        csv(dir.path(), "SELECT count(*) AS n FROM system.daily_runs"),
        "n\n2"
    );
    // A day later with a broken file: the new date fails, is retried once, and is reported.
    std::fs::write(
        sql.join("daily/purchases.sql"),
        "SELECT $date AS date, nope FROM raw.user_events",
    )
    .unwrap();
    let out = lake()
        .args([
            "schedule",
            "--lake",
            d,
            "--sql",
            s,
            "--no-sensor",
            "--once",
            "--today",
            "2025-01-13",
        ])
        .args(["--retries", "1", "--retry-backoff", "100ms"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not done (see `lake runs`): 2025-01-12"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        csv(dir.path(), "SELECT count(*) AS n FROM system.daily_runs WHERE date = DATE '2025-01-12' AND status = 'failed'"),
        "n\n2"
    );
    let out = schedule(&["--cron", "0 25 * * *"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cron"), "{}", stderr(&out));
}

/// Starts `lake args`, waits until its sensor is waiting, sends SIGINT and returns how it
/// exited, failing if it takes more than 5 s; `log` gets its stderr.
async fn interrupted_in_sensor_wait(args: &[&str], log: &Path) -> std::process::ExitStatus {
    let mut child = spawn(args, log);
    let read_log = || std::fs::read_to_string(log).unwrap_or_default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !read_log().contains("waiting for ingest") {
        assert!(
            std::time::Instant::now() < deadline,
            "the sensor never waited:\n{}",
            read_log()
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "exited early:\n{}",
            read_log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    signal(&child, libc::SIGINT);
    exit_within(&mut child, std::time::Duration::from_secs(5), read_log)
}

#[tokio::test]
async fn schedule_and_daily_waiting_on_the_sensor_stop_within_five_seconds_of_sigint() {
    let dir = tempdir();
    hand_checkable(dir.path()).await;
    let sql = sql_folder(dir.path(), "int_sql", &[("purchases.sql", PURCHASES)], &[]);
    let (d, s) = (dir.path().to_str().unwrap(), sql.to_str().unwrap());
    // Ingest of topic `t` only reached 2025-01-11T00:00: 2025-01-11 is not complete, and the
    // sensor would wait for it for two hours (the schedule's default).
    let log = dir.path().join("schedule.log");
    let status = interrupted_in_sensor_wait(
        &[
            "schedule",
            "--lake",
            d,
            "--sql",
            s,
            "--topic",
            "t",
            "--once",
            "--since",
            "2025-01-11",
            "--today",
            "2025-01-12",
        ],
        &log,
    )
    .await;
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "{status}:\n{}", read_log());
    // A run cut short in its sensor's wait is not recorded: it is simply run again.
    assert!(
        !dir.path().join("system/daily_runs").exists(),
        "{}",
        read_log()
    );

    // `lake daily` told to wait an hour: stopped, exit 130, nothing recorded either.
    let log = dir.path().join("daily.log");
    let status = interrupted_in_sensor_wait(
        &[
            "daily",
            "--lake",
            d,
            "--sql",
            s,
            "--topic",
            "t",
            "--date",
            "2025-01-11",
            "--wait",
            "1h",
        ],
        &log,
    )
    .await;
    assert_eq!(status.code(), Some(130));
    assert!(!dir.path().join("system/daily_runs").exists());
}

#[tokio::test]
async fn dry_run_validates_every_file_and_writes_nothing() {
    let dir = tempdir();
    hand_checkable(dir.path()).await;
    let out = daily(
        dir.path(),
        &shipped_sql(),
        &["--date", "2025-01-10", "--dry-run"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("processed.daily_metrics: ok (dry run)"));
    assert!(!dir.path().join("processed").exists());
    assert!(!dir.path().join("system").exists());
    let sql = sql_folder(
        dir.path(),
        "bad_check",
        &[("purchases.sql", PURCHASES)],
        &[("c.sql", "SELECT nope FROM raw.user_events")],
    );
    let out = daily(dir.path(), &sql, &["--date", "2025-01-10", "--dry-run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("c.sql:1:8"), "{}", stderr(&out));
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
            "unknown_column.sql",
            "SELECT $date AS date,\n  nope FROM raw.user_events",
            "unknown_column.sql:2:3",
        ),
        (
            "wrong_date.sql",
            "SELECT event_date AS date, user_id FROM raw.user_events",
            "every row's `date` must be 2025-01-10",
        ),
        (
            "only_date.sql",
            "SELECT $date AS date",
            "needs a column besides `date`",
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
    let out = daily(dir.path(), &shipped_sql(), &["--memory-limit", "lots"]);
    assert_eq!(out.status.code(), Some(2));
}
