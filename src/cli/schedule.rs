//! `lake schedule`: the daily job at a cron time, catching up missed dates.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::NaiveDate;

use clap::Args;

use super::daily::JobArgs;
use super::endpoint::{self, MetricsArgs};
use super::help::with_default;
use crate::config::parse_duration;
use crate::daily::schedule::{self, ScheduleOptions, DEFAULT_CRON};
use crate::daily::DailyOptions;
use crate::lake::Lake;
use crate::shutdown::CancellationToken;

#[derive(Args, Debug)]
pub(crate) struct ScheduleArgs {
    #[command(flatten)]
    pub(crate) job: JobArgs,
    #[arg(long, help = with_default(
        "Cron time of the daily run (minute hour day month weekday)",
        format!("{DEFAULT_CRON:?}")))]
    pub(crate) cron: Option<String>,
    #[arg(long, help = with_default(
        "IANA timezone of the cron time and of \"yesterday\"",
        ScheduleOptions::default().timezone))]
    pub(crate) timezone: Option<String>,
    #[arg(long, help = with_default(
        "Attempts after a failed run of a date", ScheduleOptions::default().retries))]
    pub(crate) retries: Option<u32>,
    #[arg(long, value_parser = parse_duration, help = with_default(
        "First retry delay, doubling after, e.g. 1m",
        humantime::format_duration(ScheduleOptions::default().backoff)))]
    pub(crate) retry_backoff: Option<Duration>,
    /// Catch up the missed dates, then exit
    #[arg(long)]
    pub(crate) once: bool,
    /// With no succeeded run on record, catch up from this date [default: yesterday]
    #[arg(long)]
    pub(crate) since: Option<NaiveDate>,
    /// Pretend today is this date (replays and tests)
    #[arg(long, hide = true)]
    pub(crate) today: Option<NaiveDate>,
    #[command(flatten)]
    pub(crate) metrics: MetricsArgs,
}

pub(crate) async fn run(
    lake: &Lake,
    daily: &DailyOptions,
    opts: &ScheduleOptions,
    metrics: Option<SocketAddr>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let ready = || crate::metrics::metrics().daily.readiness();
    endpoint::start(metrics, ready, &stop).await?;
    eprintln!(
        "lake schedule: daily job at {:?} ({}); Ctrl-C stops",
        opts.cron.as_str(),
        opts.timezone
    );
    schedule::run(lake, daily, opts, stop).await?;
    Ok(())
}
