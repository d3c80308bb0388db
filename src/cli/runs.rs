//! `lake runs`: recent daily runs and their check results.

use chrono::NaiveDate;
use clap::Args;

use crate::daily::history;
use crate::lake::Lake;

#[derive(Args, Debug)]
pub(crate) struct RunsArgs {
    /// Runs to show, newest first
    #[arg(long, default_value_t = history::DEFAULT_RUNS_SHOWN)]
    pub(crate) limit: usize,
    /// Only runs of this date
    #[arg(long)]
    pub(crate) date: Option<NaiveDate>,
}

pub(crate) async fn run(lake: &Lake, a: &RunsArgs) -> anyhow::Result<()> {
    let text = history::recent(lake, a.limit, a.date).await?;
    print!("{text}");
    Ok(())
}
