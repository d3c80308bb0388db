//! `lake daily`: the daily job for one date or a range, printed as text or `--json`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDate;
use clap::Args;
use serde::Serialize;

use super::help::with_default;
use crate::config::{parse_duration, parse_memory};
use crate::daily::history::RunStatus;
use crate::daily::sensor::SensorOptions;
use crate::daily::{self, DailyOptions, DateRun};
use crate::error::Error;
use crate::lake::Lake;
use crate::metrics::metrics;
use crate::shutdown::CancellationToken;

/// Settings shared by `lake daily` and `lake schedule` (and, in part, `lake serve`).
#[derive(Args, Debug, Default)]
pub(crate) struct JobArgs {
    #[arg(long = "sql", env = "LAKE_SQL_DIR", help = with_default(
        "Folder with daily/ and checks/", DailyOptions::default().sql_dir.display()))]
    pub(crate) sql_dir: Option<PathBuf>,
    #[arg(long, env = "LAKE_TOPIC", help = with_default(
        "Topic whose ingest progress the sensor reads", SensorOptions::default().topic))]
    pub(crate) topic: Option<String>,
    #[arg(long, value_parser = parse_duration, help = with_default(
        "How late events may arrive after their day ends, e.g. 10m",
        humantime::format_duration(SensorOptions::default().lateness)))]
    pub(crate) lateness: Option<Duration>,
    #[arg(long, value_parser = parse_duration, help = with_default(
        "How long to wait for the day to be complete, e.g. 30m",
        format!("{} for daily, {} for schedule",
            humantime::format_duration(SensorOptions::default().wait),
            humantime::format_duration(crate::daily::schedule::DEFAULT_WAIT))))]
    pub(crate) wait: Option<Duration>,
    #[arg(long, value_parser = parse_duration, help = with_default(
        "Events timed further past their ingestion do not advance the sensor",
        humantime::format_duration(SensorOptions::default().max_future_skew)))]
    pub(crate) max_future_skew: Option<Duration>,
    /// Run without waiting for the day to be complete
    #[arg(long)]
    pub(crate) no_sensor: bool,
    /// Memory queries may hold before spilling to disk, e.g. 1G or 512M [default: no limit]
    #[arg(long, value_parser = parse_memory)]
    pub(crate) memory_limit: Option<usize>,
}

#[derive(Args, Debug)]
pub(crate) struct DailyArgs {
    /// The date to compute [default: yesterday, UTC]
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub(crate) date: Option<NaiveDate>,
    /// First date of a backfill (with --to)
    #[arg(long, requires = "to")]
    pub(crate) from: Option<NaiveDate>,
    /// Last date of a backfill, inclusive (with --from)
    #[arg(long, requires = "from")]
    pub(crate) to: Option<NaiveDate>,
    /// Run only sql/daily/NAME.sql (no checks)
    #[arg(long)]
    pub(crate) only: Option<String>,
    /// Plan and validate every file, run nothing, write nothing
    #[arg(long)]
    pub(crate) dry_run: bool,
    #[command(flatten)]
    pub(crate) job: JobArgs,
    /// Print a JSON summary
    #[arg(long)]
    pub(crate) json: bool,
}

/// What `lake daily` was asked to do, after the settings step.
#[derive(Debug)]
pub(crate) struct DailyRun {
    pub(crate) from: NaiveDate,
    pub(crate) to: NaiveDate,
    pub(crate) opts: DailyOptions,
    pub(crate) json: bool,
}

/// `--json`: the whole command's outcome.
#[derive(Serialize)]
struct Summary<'a> {
    dry_run: bool,
    dates: Vec<DateSummary<'a>>,
    /// Requests to the object store by operation (a lake on S3, GCS or Azure only).
    #[serde(skip_serializing_if = "Option::is_none")]
    object_store_requests: Option<BTreeMap<&'static str, u64>>,
}

#[derive(Serialize)]
struct DateSummary<'a> {
    date: String,
    run_id: &'a str,
    status: &'static str,
    /// Rows written per table (null in a dry run).
    rows: BTreeMap<&'a str, Option<usize>>,
    checks: Vec<CheckSummary<'a>>,
    error: Option<&'a str>,
}

#[derive(Serialize)]
struct CheckSummary<'a> {
    check: &'a str,
    severity: &'a str,
    status: &'a str,
    violations: i64,
}

impl<'a> From<&'a DateRun> for DateSummary<'a> {
    fn from(run: &'a DateRun) -> Self {
        DateSummary {
            date: run.date.to_string(),
            run_id: &run.run_id,
            status: run.status.as_str(),
            rows: run
                .tables
                .iter()
                .map(|t| (t.table.as_str(), t.rows))
                .collect(),
            checks: run
                .checks
                .iter()
                .map(|c| CheckSummary {
                    check: &c.check,
                    severity: c.severity,
                    status: c.status,
                    violations: c.violation_count,
                })
                .collect(),
            error: run.error.as_deref(),
        }
    }
}

/// Runs the dates. A signal stops it at once, as it did before `lake daily` had a handler:
/// a run cut short commits nothing and records nothing (Delta commits are atomic).
pub(crate) async fn run(lake: &Lake, r: DailyRun, stop: CancellationToken) -> anyhow::Result<()> {
    let dry_run = r.opts.dry_run;
    let range = daily::run_range(lake, &r.opts, r.from, r.to, &stop, |run| {
        if !r.json {
            print_run(run, dry_run);
        }
    });
    // A stop ends the run under way before it publishes, cleaning up after it (Error::Stopped).
    let runs = range.await?;
    if r.json {
        let summary = Summary {
            dry_run,
            dates: runs.iter().map(DateSummary::from).collect(),
            object_store_requests: lake
                .remote_store()
                .map(|_| metrics().store.counts().into_iter().collect()),
        };
        println!("{}", serde_json::to_string(&summary)?);
    } else if lake.remote_store().is_some() {
        println!("{}", metrics().store.summary());
    }
    match runs.last() {
        Some(run) if run.status != RunStatus::Succeeded => {
            let why = run.error.clone().unwrap_or_default();
            if run.status == RunStatus::SensorTimeout {
                Err(Error::NotComplete(why).into())
            } else {
                Err(anyhow::anyhow!("daily run of {} failed: {why}", run.date))
            }
        }
        _ => Ok(()),
    }
}

fn print_run(run: &DateRun, dry_run: bool) {
    for t in &run.tables {
        match t.rows {
            Some(n) => println!("{} {}: wrote {n} rows", run.date, t.table),
            None if dry_run => println!("{} {}: ok (dry run)", run.date, t.table),
            None => {}
        }
    }
    for c in &run.checks {
        println!(
            "{} check {} ({}): {} ({} violating rows)",
            run.date, c.check, c.severity, c.status, c.violation_count
        );
    }
}
