//! `lake demo`: the whole pipeline on this machine with an embedded broker.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use super::endpoint::{self, MetricsArgs};
use crate::config::parse_duration;
use crate::demo::{self, DemoOptions};
use crate::ingest::observe;
use crate::lake::Lake;
use crate::shutdown::CancellationToken;

#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// Events of history to produce first
    #[arg(long, default_value_t = DemoOptions::default().history_events)]
    pub(crate) events: u64,
    /// Days of history, ending today
    #[arg(long, default_value_t = DemoOptions::default().days)]
    pub(crate) days: u32,
    /// Live events per second after the history
    #[arg(long, default_value_t = DemoOptions::default().live_rate)]
    pub(crate) rate: u64,
    /// Stop after this long in the live phase, e.g. 30s or 5m [default: until Ctrl-C]
    #[arg(long, value_parser = parse_duration)]
    pub(crate) duration: Option<Duration>,
    /// Delete the lake's raw, processed and system tables first
    #[arg(long)]
    pub(crate) fresh: bool,
    #[command(flatten)]
    pub(crate) metrics: MetricsArgs,
    /// Random seed of the generated events
    #[arg(long, default_value_t = DemoOptions::default().seed)]
    pub(crate) seed: u64,
    /// Folder with daily/ and checks/ [default: sql, else the built-in files]
    #[arg(long = "sql", env = "LAKE_SQL_DIR")]
    pub(crate) sql_dir: Option<PathBuf>,
    /// Flight SQL port on 127.0.0.1 (a free one if taken; 0 picks one)
    #[arg(long, default_value_t = DemoOptions::default().flight_addr.port())]
    pub(crate) port: u16,
    /// Status page port on 127.0.0.1 (a free one if taken; 0 picks one)
    #[arg(long, default_value_t = DemoOptions::default().status_addr.port())]
    pub(crate) http_port: u16,
}

pub(crate) async fn run(
    lake: &Lake,
    opts: DemoOptions,
    fresh: bool,
    metrics: Option<SocketAddr>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    // The demo's ingest is what must be up; its serve and daily runs count in the same registry.
    let started = Instant::now();
    endpoint::start(metrics, move || observe::readiness(started), &stop).await?;
    if fresh {
        for schema in ["raw", "processed", "system"] {
            lake.remove_schema(schema)
                .await
                .with_context(|| format!("cannot remove the tables of {schema} in {lake}"))?;
        }
    }
    demo::run(lake, opts, stop).await?;
    Ok(())
}
