//! The daily job for one date: wait for the day to be complete ([`sensor`]), run every
//! `sql/daily/<name>.sql` in dependency order into a staging table ([`output`]), run
//! `sql/checks/*.sql` over the staged results ([`checks`]), replace that date of each
//! `processed.<name>` only if no `error` check failed, and record the run ([`history`]).
//! All queries of a run read one pinned snapshot of each input table ([`query`]), so files and
//! checks agree with each other while ingest keeps appending. [`schedule`] runs it daily.

pub(crate) mod checks;
pub(crate) mod date_guard;
pub(crate) mod dates;
pub(crate) mod history;
pub(crate) mod output;
pub(crate) mod plan;
pub(crate) mod query;
pub(crate) mod schedule;
pub(crate) mod sensor;
pub(crate) mod shipped;
pub(crate) mod sql_file;

use std::path::PathBuf;

use chrono::{NaiveDate, Utc};
use deltalake::DeltaTable;

use crate::error::{Error, Result};
use crate::lake::catalog;
use crate::lake::{child_url, dead_letters_spec, user_events_spec, Lake, TableId};
use crate::metrics::metrics;
use crate::shutdown::CancellationToken;
use history::{CheckRecord, RunRecord, RunStatus};
use query::{require_date_column, JobSession};
use sensor::SensorOptions;
use sql_file::SqlFile;

#[derive(Debug, Clone)]
pub(crate) struct DailyOptions {
    /// The folder holding `daily/` and `checks/`.
    pub(crate) sql_dir: PathBuf,
    /// Run only this daily file (its inputs must exist already) and no checks.
    pub(crate) only: Option<String>,
    /// Plan and validate every file, run nothing, write nothing.
    pub(crate) dry_run: bool,
    /// Wait for the date to be complete first; None runs at once.
    pub(crate) sensor: Option<SensorOptions>,
    /// Bytes queries may hold before they spill to disk.
    pub(crate) memory_limit: Option<usize>,
    /// Recorded with the run: `cli`, `schedule`, `api`, `demo`.
    pub(crate) trigger: String,
}

impl Default for DailyOptions {
    fn default() -> Self {
        Self {
            sql_dir: PathBuf::from("sql"),
            only: None,
            dry_run: false,
            sensor: Some(SensorOptions::default()),
            memory_limit: None,
            trigger: "cli".into(),
        }
    }
}

/// The files of the job, in the order they run.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) daily: Vec<SqlFile>,
    pub(crate) checks: Vec<SqlFile>,
}

/// What one daily file produced for one date (None: dry run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableResult {
    pub(crate) table: String,
    pub(crate) rows: Option<usize>,
}

/// How the job went for one date.
#[derive(Debug, Clone)]
pub(crate) struct DateRun {
    pub(crate) run_id: String,
    pub(crate) date: NaiveDate,
    pub(crate) status: RunStatus,
    pub(crate) tables: Vec<TableResult>,
    pub(crate) checks: Vec<CheckRecord>,
    pub(crate) error: Option<String>,
}

/// Loads and orders the job's files and checks that every table they read can exist.
pub(crate) async fn plan(lake: &Lake, opts: &DailyOptions) -> Result<Job> {
    let daily_dir = opts.sql_dir.join("daily");
    let files = SqlFile::load_dir(&daily_dir)?;
    if files.is_empty() {
        return Err(Error::Config(format!(
            "no daily SQL files in {}",
            daily_dir.display()
        )));
    }
    let tables = lake.tables().await?;
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

/// Runs the job for every date from `from` through `to`, oldest first, stopping after the first
/// run that did not succeed (later dates may compare themselves with it). `each` sees every run
/// as it ends. The CLI and the control API both run ranges through here.
pub(crate) async fn run_range(
    lake: &Lake,
    opts: &DailyOptions,
    from: NaiveDate,
    to: NaiveDate,
    shutdown: &CancellationToken,
    mut each: impl FnMut(&DateRun),
) -> Result<Vec<DateRun>> {
    let mut runs = Vec::new();
    for date in from.iter_days().take_while(|d| *d <= to) {
        let run = run_date(lake, opts, date, shutdown).await?;
        each(&run);
        let succeeded = run.status == RunStatus::Succeeded;
        runs.push(run);
        if !succeeded {
            break;
        }
    }
    Ok(runs)
}

/// Runs the job for `date` and records the run (except a dry run). Failures of the run itself
/// (sensor timeout, SQL or write errors, failed `error` checks) are in the returned
/// [`DateRun`]; an `Err` means the run could not even be recorded, or [`Error::Stopped`] that
/// `shutdown` came before anything was published (nothing is recorded then).
pub(crate) async fn run_date(
    lake: &Lake,
    opts: &DailyOptions,
    date: NaiveDate,
    shutdown: &CancellationToken,
) -> Result<DateRun> {
    // Checks may read the raw tables before ingest ever wrote to them. Opened once: the run
    // reads them as they are when it starts (after the sensor), without loading their logs again.
    let mut inputs = Vec::new();
    for spec in [user_events_spec(), dead_letters_spec()] {
        inputs.push((spec.id, lake.open_or_create(&spec).await?));
    }
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
    let waiting = std::time::Instant::now();
    let outcome = match &opts.sensor {
        Some(sensor) => sensor::wait_for(lake, sensor, date, shutdown).await,
        None => Ok(()),
    };
    let m = &metrics().daily;
    m.sensor_wait.observe(waiting.elapsed().as_secs_f64());
    let running = std::time::Instant::now();
    let outcome = match outcome {
        Ok(()) => execute(lake, opts, date, inputs, &mut run, shutdown).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => {
            if let Some(failed) = run.checks.iter().find(|c| c.status == "fail") {
                run.status = RunStatus::Failed;
                run.error = Some(format!(
                    "check {} found {} violating rows; nothing was published",
                    failed.check, failed.violation_count
                ));
            }
        }
        Err(Error::Stopped) => return Err(Error::Stopped),
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
    observe_tables(lake, &run).await;
    m.run_ended(run.status.as_str(), running.elapsed().as_secs_f64());
    for c in &run.checks {
        m.violations(
            &c.check,
            c.severity,
            u64::try_from(c.violation_count).unwrap_or(0),
        );
    }
    Ok(run)
}

/// The table gauges (version, live files, bytes) of the tables a run wrote, and of the run
/// history. A table that cannot be opened now keeps its last values: the run is what counts.
async fn observe_tables(lake: &Lake, run: &DateRun) {
    let mut urls: Vec<(String, url::Url)> = run
        .tables
        .iter()
        .filter_map(|t| {
            let short = t.table.strip_prefix("processed.")?;
            Some((t.table.clone(), output::published_url(lake, short).ok()?))
        })
        .collect();
    for id in [history::DAILY_RUNS, history::CHECK_RESULTS] {
        urls.push((id.to_string(), lake.table_url(id)));
    }
    for (name, url) in urls {
        if let Ok(table) = lake.open_url(&url).await {
            metrics().tables.observe(&table, &name);
        }
    }
}

/// The files of the job run for `date`, then its checks, all over one pinned snapshot; the
/// results are published only when no `error` check failed. `shutdown` stops the run before
/// it publishes ([`Error::Stopped`], nothing published); publishing, a few commits, finishes.
async fn execute(
    lake: &Lake,
    opts: &DailyOptions,
    date: NaiveDate,
    inputs: Vec<(TableId, DeltaTable)>,
    run: &mut DateRun,
    shutdown: &CancellationToken,
) -> Result<()> {
    let job = plan(lake, opts).await?;
    let session = JobSession::new(lake, opts.memory_limit)?;
    for (id, mut table) in inputs {
        session.pin_open(id, &mut table).await?;
    }
    let staging = output::staging_url(lake, &run.run_id)?;
    let audited = tokio::select! {
        audited = audit(lake, &job, &session, &staging, date, run) => audited,
        _ = shutdown.cancelled() => Err(Error::Stopped),
    };
    let outcome = match audited {
        Ok(()) if run.checks.iter().all(|c| c.status != "fail") => {
            publish(lake, &job, &session, &staging, date).await
        }
        other => other,
    };
    output::clean_staging(lake, &run.run_id).await;
    outcome
}

/// Write and audit: each file's result is staged and shown, in place of the published rows of
/// `date`, to the files after it and to the checks, which then run.
async fn audit(
    lake: &Lake,
    job: &Job,
    session: &JobSession,
    staging: &url::Url,
    date: NaiveDate,
    run: &mut DateRun,
) -> Result<()> {
    for file in &job.daily {
        let result = session.daily_result(file, date).await?;
        let table = output::table_name(&file.name);
        let staged = child_url(staging, &file.name)?;
        let rows = output::write_date(lake, &staged, &table, date, result)
            .await
            .map_err(|e| from_file(file, e))?;
        let published = output::published_url(lake, &file.name)?;
        session
            .show_staged(&file.name, date, &staged, &published)
            .await?;
        run.tables.push(TableResult {
            table,
            rows: Some(rows),
        });
    }
    for file in &job.checks {
        run.checks.push(checks::run(session, file, date).await?);
    }
    Ok(())
}

/// Publish: each staged result replaces the rows of `date` in its `processed` table.
async fn publish(
    lake: &Lake,
    job: &Job,
    session: &JobSession,
    staging: &url::Url,
    date: NaiveDate,
) -> Result<()> {
    for file in &job.daily {
        let staged = session.read_delta(&child_url(staging, &file.name)?).await?;
        output::replace_date(lake, &file.name, date, staged).await?;
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
    let job = plan(lake, opts).await?;
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
    let tables = lake.tables().await?;
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
