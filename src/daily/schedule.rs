//! `lake schedule`: runs the daily job at a cron time (default `0 2 * * *`, in a configurable
//! timezone) for the previous day, retrying a failed date with exponential backoff, and first
//! catching up every date since the earliest succeeded run that has no succeeded run (read from
//! `system.daily_runs`). All its state is that table, so it is safe to stop and restart at any
//! time: a run cut short leaves no record and is simply run again.

use std::str::FromStr;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use chrono_tz::Tz;
use croner::Cron;

use super::history::{self, RunStatus};
use super::{run_date, DailyOptions, DateRun};
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::metrics::{metrics, unix_now};
use crate::shutdown::{self, CancellationToken};

/// When the daily job runs unless told otherwise: 02:00 every day.
pub(crate) const DEFAULT_CRON: &str = "0 2 * * *";
/// How long a scheduled run waits for its day to be complete unless told otherwise.
pub(crate) const DEFAULT_WAIT: Duration = Duration::from_secs(2 * 3600);

#[derive(Debug, Clone)]
pub(crate) struct ScheduleOptions {
    pub(crate) cron: Cron,
    pub(crate) timezone: Tz,
    /// Attempts after the first failed one, per date and tick.
    pub(crate) retries: u32,
    /// Wait before the first retry; doubles for each further one.
    pub(crate) backoff: Duration,
    /// Catch up, then exit instead of waiting for the next tick.
    pub(crate) once: bool,
    /// Pretend today is this date (replays and tests); None: the clock.
    pub(crate) today: Option<NaiveDate>,
    /// With no succeeded run on record, start catching up at this date (default: yesterday).
    pub(crate) first_date: Option<NaiveDate>,
}

impl Default for ScheduleOptions {
    fn default() -> Self {
        Self {
            // A constant, not input; `cron_and_timezone_errors_are_config_errors` parses it.
            cron: parse_cron(DEFAULT_CRON).expect("DEFAULT_CRON parses"),
            timezone: Tz::UTC,
            retries: 3,
            backoff: Duration::from_secs(60),
            once: false,
            today: None,
            first_date: None,
        }
    }
}

/// Parses a 5-field cron expression (`minute hour day month weekday`).
pub(crate) fn parse_cron(expr: &str) -> Result<Cron> {
    Cron::from_str(expr).map_err(|e| Error::Config(format!("schedule cron {expr:?}: {e}")))
}

/// Parses an IANA timezone name such as `Europe/Berlin` or `UTC`.
pub(crate) fn parse_timezone(name: &str) -> Result<Tz> {
    name.parse::<Tz>()
        .map_err(|e| Error::Config(format!("schedule timezone {name:?}: {e}")))
}

/// The dates to run, oldest first: from the earliest succeeded date (or `first`, or `yesterday`
/// when nothing ever succeeded) through `yesterday`, minus those that succeeded.
pub(crate) fn due_dates(
    succeeded: &[NaiveDate],
    first: Option<NaiveDate>,
    yesterday: NaiveDate,
) -> Vec<NaiveDate> {
    let start = [succeeded.iter().min().copied(), first]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(yesterday);
    start
        .iter_days()
        .take_while(|d| *d <= yesterday)
        .filter(|d| !succeeded.contains(d))
        .collect()
}

/// Delay before retry `attempt` (1-based): `backoff`, then doubling, at most an hour.
pub(crate) fn retry_delay(backoff: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
    backoff
        .saturating_mul(factor)
        .min(Duration::from_secs(3600))
}

/// Runs until `stop` is cancelled, or with `once` after catching up; then an error names the
/// dates that did not succeed.
pub(crate) async fn run(
    lake: &Lake,
    daily: &DailyOptions,
    opts: &ScheduleOptions,
    stop: CancellationToken,
) -> Result<()> {
    loop {
        metrics().daily.last_tick.set(unix_now());
        let today = opts
            .today
            .unwrap_or_else(|| Utc::now().with_timezone(&opts.timezone).date_naive());
        let yesterday = today.pred_opt().unwrap_or(today);
        let succeeded = history::succeeded_dates(lake).await?;
        let due = due_dates(&succeeded, opts.first_date, yesterday);
        let mut not_done = Vec::new();
        for (i, date) in due.iter().enumerate() {
            if !run_with_retries(lake, daily, opts, *date, &stop).await? {
                // Later dates wait for this one: checks compare a day with the days before it.
                not_done = due[i..].to_vec();
                break;
            }
        }
        if stop.is_cancelled() {
            return Ok(());
        }
        if opts.once {
            if not_done.is_empty() {
                return Ok(());
            }
            let dates: Vec<String> = not_done.iter().map(|d| d.to_string()).collect();
            return Err(Error::Other(format!(
                "schedule: not done (see `lake runs`): {}",
                dates.join(", ")
            )));
        }
        let now = Utc::now().with_timezone(&opts.timezone);
        let next = opts
            .cron
            .find_next_occurrence(&now, false)
            .map_err(|e| Error::Config(format!("schedule: no next run time: {e}")))?;
        tracing::info!(next = %next, "next daily run");
        metrics().daily.next_run.set(next.timestamp() as f64);
        let wait = (next.with_timezone(&Utc) - Utc::now())
            .to_std()
            .unwrap_or_default();
        if !shutdown::sleep(wait, &stop).await {
            return Ok(());
        }
    }
}

/// Runs `date` until it succeeds or the retries are spent; false if it did not succeed.
async fn run_with_retries(
    lake: &Lake,
    daily: &DailyOptions,
    opts: &ScheduleOptions,
    date: NaiveDate,
    stop: &CancellationToken,
) -> Result<bool> {
    for attempt in 0..=opts.retries {
        if attempt > 0 {
            let delay = retry_delay(opts.backoff, attempt);
            tracing::warn!(%date, attempt, "retrying in {}", humantime::format_duration(delay));
            if !shutdown::sleep(delay, stop).await {
                return Ok(false);
            }
        }
        let outcome: Result<DateRun> = run_date(lake, daily, date, stop).await;
        match outcome {
            Ok(run) if run.status == RunStatus::Succeeded => {
                tracing::info!(%date, run_id = %run.run_id, "daily run succeeded");
                return Ok(true);
            }
            Err(Error::Stopped) => return Ok(false),
            Ok(run) => tracing::warn!(
                %date,
                status = run.status.as_str(),
                "daily run did not succeed: {}",
                run.error.unwrap_or_default()
            ),
            // The run could not even be recorded (the lake is unwritable): retrying may help.
            Err(e) => tracing::error!(%date, "daily run could not be recorded: {e}"),
        }
        if stop.is_cancelled() {
            return Ok(false);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn catches_up_gaps_and_missed_days_since_the_first_success() {
        let succeeded = [d("2025-01-10"), d("2025-01-12")];
        assert_eq!(
            due_dates(&succeeded, None, d("2025-01-14")),
            vec![d("2025-01-11"), d("2025-01-13"), d("2025-01-14")]
        );
        assert_eq!(due_dates(&[], None, d("2025-01-14")), vec![d("2025-01-14")]);
        assert_eq!(
            due_dates(&[], Some(d("2025-01-13")), d("2025-01-14")),
            vec![d("2025-01-13"), d("2025-01-14")]
        );
        assert!(due_dates(&succeeded, None, d("2025-01-10")).is_empty());
    }

    #[test]
    fn retries_back_off_exponentially_up_to_an_hour() {
        let b = Duration::from_secs(60);
        assert_eq!(retry_delay(b, 1), Duration::from_secs(60));
        assert_eq!(retry_delay(b, 3), Duration::from_secs(240));
        assert_eq!(retry_delay(b, 30), Duration::from_secs(3600));
    }

    #[test]
    fn cron_and_timezone_errors_are_config_errors() {
        assert!(parse_cron(DEFAULT_CRON).is_ok());
        assert!(parse_cron("0 25 * * *")
            .unwrap_err()
            .to_string()
            .contains("cron"));
        assert!(parse_timezone("Europe/Berlin").is_ok());
        assert!(parse_timezone("Mars/Base").is_err());
    }
}
