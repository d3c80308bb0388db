//! The daily job for one date: wait for the day to be complete ([`sensor`]), run every
//! `sql/daily/<name>.sql` in dependency order replacing that date of `processed.<name>`
//! ([`output`]), run `sql/checks/*.sql` ([`checks`]), and record the run ([`history`]).
//! All queries of a run read one pinned snapshot of each input table ([`query`]), so files and
//! checks agree with each other while ingest keeps appending. [`schedule`] runs it daily.

pub mod checks;
pub mod date_guard;
pub mod history;
pub mod output;
pub mod plan;
pub mod query;
pub mod schedule;
pub mod sensor;
pub mod shipped;
pub mod sql_file;

use std::path::PathBuf;

use chrono::{NaiveDate, Utc};

use crate::error::{Error, Result};
use crate::lake::catalog;
use crate::lake::maintain::list_tables;
use crate::lake::{dead_letters_spec, user_events_spec, Lake};
use history::{CheckRecord, RunRecord, RunStatus};
use query::{require_date_column, JobSession};
use sensor::SensorOptions;
use sql_file::SqlFile;

#[derive(Debug, Clone)]
pub struct DailyOptions {
    /// The folder holding `daily/` and `checks/`.
    pub sql_dir: PathBuf,
    /// Run only this daily file (its inputs must exist already) and no checks.
    pub only: Option<String>,
    /// Plan and validate every file, run nothing, write nothing.
    pub dry_run: bool,
    /// Wait for the date to be complete first; None runs at once.
    pub sensor: Option<SensorOptions>,
    /// Bytes queries may hold before they spill to disk.
    pub memory_limit: Option<usize>,
    /// Recorded with the run: `cli`, `schedule`, `api`, `demo`.
    pub trigger: String,
}

/// The files of the job, in the order they run.
#[derive(Debug, Clone)]
pub struct Job {
    pub daily: Vec<SqlFile>,
    pub checks: Vec<SqlFile>,
}

/// What one daily file produced for one date (None: dry run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableResult {
    pub table: String,
    pub rows: Option<usize>,
}

/// How the job went for one date.
#[derive(Debug, Clone)]
pub struct DateRun {
    pub run_id: String,
    pub date: NaiveDate,
    pub status: RunStatus,
    pub tables: Vec<TableResult>,
    pub checks: Vec<CheckRecord>,
    pub error: Option<String>,
}

/// Loads and orders the job's files and checks that every table they read can exist.
pub fn plan(lake: &Lake, opts: &DailyOptions) -> Result<Job> {
    let daily_dir = opts.sql_dir.join("daily");
    let files = SqlFile::load_dir(&daily_dir)?;
    if files.is_empty() {
        return Err(Error::Config(format!(
            "no daily SQL files in {}",
            daily_dir.display()
        )));
    }
    let tables = list_tables(lake)?;
    let exists = |r: &str| catalog::resolves(&tables, r);
    let ordered = plan::order(files, exists)?;
    let checks = SqlFile::load_dir(&opts.sql_dir.join("checks"))?;
    plan::check_reads(&checks, &ordered, exists)?;
    match &opts.only {
        None => Ok(Job {
            daily: ordered,
            checks,
        }),
        Some(name) => {
            let picked: Vec<SqlFile> = ordered.into_iter().filter(|f| &f.name == name).collect();
            if picked.is_empty() {
                return Err(Error::Config(format!(
                    "--only {name}: no sql/daily/{name}.sql"
                )));
            }
            Ok(Job {
                daily: picked,
                checks: Vec::new(),
            })
        }
    }
}

/// Runs the job for `date` and records the run (except a dry run). Failures of the run itself
/// (sensor timeout, SQL or write errors, failed `error` checks) are in the returned
/// [`DateRun`]; an `Err` means the run could not even be recorded.
pub async fn run_date(lake: &Lake, opts: &DailyOptions, date: NaiveDate) -> Result<DateRun> {
    // Checks may read the raw tables before ingest ever wrote to them.
    lake.open_or_create(&user_events_spec()).await?;
    lake.open_or_create(&dead_letters_spec()).await?;
    let mut run = DateRun {
        run_id: uuid::Uuid::new_v4().to_string(),
        date,
        status: RunStatus::Succeeded,
        tables: Vec::new(),
        checks: Vec::new(),
        error: None,
    };
    if opts.dry_run {
        validate(lake, opts, date, &mut run).await?;
        return Ok(run);
    }
    let started_at = Utc::now();
    let outcome = match &opts.sensor {
        Some(sensor) => sensor::wait_for(lake, sensor, date).await,
        None => Ok(()),
    };
    let outcome = match outcome {
        Ok(()) => execute(lake, opts, date, &mut run).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => {
            if let Some(failed) = run.checks.iter().find(|c| c.status == "fail") {
                run.status = RunStatus::Failed;
                run.error = Some(format!(
                    "check {} found {} violating rows",
                    failed.check, failed.violation_count
                ));
            }
        }
        Err(Error::NotComplete(why)) => {
            run.status = RunStatus::SensorTimeout;
            run.error = Some(why);
        }
        Err(e) => {
            run.status = RunStatus::Failed;
            run.error = Some(e.to_string());
        }
    }
    let record = RunRecord {
        run_id: run.run_id.clone(),
        date,
        status: run.status,
        trigger: opts.trigger.clone(),
        started_at,
        finished_at: Utc::now(),
        rows: run
            .tables
            .iter()
            .map(|t| (t.table.clone(), t.rows.unwrap_or(0) as i64))
            .collect(),
        error: run.error.clone(),
    };
    history::record(lake, &record, &run.checks).await?;
    Ok(run)
}

/// The files of the job run for `date`, then its checks, all over one pinned snapshot.
async fn execute(
    lake: &Lake,
    opts: &DailyOptions,
    date: NaiveDate,
    run: &mut DateRun,
) -> Result<()> {
    let job = plan(lake, opts)?;
    let session = JobSession::new(lake, opts.memory_limit)?;
    for file in &job.daily {
        let result = session.daily_result(file, date).await?;
        let (table, rows) = output::replace_date(lake, &file.name, date, result)
            .await
            .map_err(|e| from_file(file, e))?;
        session.refresh(&table);
        run.tables.push(TableResult {
            table,
            rows: Some(rows),
        });
    }
    for file in &job.checks {
        run.checks.push(checks::run(&session, file, date).await?);
    }
    Ok(())
}

/// Plans every file for `date` without running anything.
async fn validate(
    lake: &Lake,
    opts: &DailyOptions,
    date: NaiveDate,
    run: &mut DateRun,
) -> Result<()> {
    let job = plan(lake, opts)?;
    let session = JobSession::new(lake, opts.memory_limit)?;
    for file in &job.daily {
        let df = session.plan(file, date).await?;
        require_date_column(file, df.schema().inner())?;
        run.tables.push(TableResult {
            table: output::table_name(&file.name),
            rows: None,
        });
    }
    // A check reading a table no daily run has written yet cannot be planned before one.
    let tables = list_tables(lake)?;
    for file in &job.checks {
        if file.reads.iter().all(|r| catalog::resolves(&tables, r)) {
            session.plan(file, date).await?;
        }
    }
    Ok(())
}

/// The date guard's error about `file`, met by the writer, is reported from the file's name on,
/// without the layers of wrapping it came through.
fn from_file(file: &SqlFile, e: Error) -> Error {
    let text = e.to_string();
    match text.find(&format!("{}: {}", file.path.display(), date_guard::MESSAGE)) {
        Some(at) => Error::Config(text[at..].to_string()),
        None => e,
    }
}
