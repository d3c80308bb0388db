//! `lake ingest`: Kafka → raw.user_events, exactly once, until stopped or caught up.

use std::net::SocketAddr;
use std::time::Instant;

use clap::Args;

use super::endpoint::{self, MetricsArgs};
use super::help::with_default;
use super::produce::KafkaArgs;
use crate::ingest::{self, observe, IngestOptions};
use crate::lake::Lake;
use crate::metrics;
use crate::shutdown::CancellationToken;

#[derive(Args, Debug)]
pub(crate) struct IngestArgs {
    #[command(flatten)]
    pub(crate) kafka: KafkaArgs,
    #[arg(long, env = "LAKE_GROUP", help = with_default(
        "Consumer group; workers with the same group share partitions",
        IngestOptions::default().group))]
    pub(crate) group: Option<String>,
    /// Static group member id: a restarted worker gets its partitions back at once
    #[arg(long, env = "LAKE_INSTANCE_ID")]
    pub(crate) instance_id: Option<String>,
    /// Source name in the Delta progress markers [default: the topic]. Change it only when the
    /// topic moves to another Kafka cluster, whose offsets start anew.
    #[arg(long)]
    pub(crate) source: Option<String>,
    /// Exit 0 once everything up to the end offsets seen at start is committed
    #[arg(long)]
    pub(crate) until_caught_up: bool,
    #[arg(long, env = "LAKE_MAX_ROWS", help = with_default(
        "Flush after this many buffered messages", IngestOptions::default().batch.max_rows))]
    pub(crate) max_rows: Option<usize>,
    #[arg(long, env = "LAKE_MAX_BYTES", help = with_default(
        "Flush after this many buffered bytes", IngestOptions::default().batch.max_bytes))]
    pub(crate) max_bytes: Option<usize>,
    #[arg(long, env = "LAKE_MAX_LATENCY_MS", help = with_default(
        "Flush when the oldest buffered message is this old, in ms",
        IngestOptions::default().batch.max_latency.as_millis()))]
    pub(crate) max_latency_ms: Option<u64>,
    /// Do not compact and vacuum the tables in the background (`[maintain] enabled = false`);
    /// then run `lake maintain` some other way
    #[arg(long, env = "LAKE_NO_MAINTAIN")]
    pub(crate) no_maintain: bool,
    #[command(flatten)]
    pub(crate) metrics: MetricsArgs,
}

pub(crate) async fn run(
    lake: &Lake,
    opts: IngestOptions,
    metrics: Option<SocketAddr>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let started = Instant::now();
    endpoint::start(metrics, move || observe::readiness(started), &stop).await?;
    let summary = ingest::run(lake, opts, stop)
        .await
        .map_err(|e| anyhow::Error::new(e).context("ingest failed"))?;
    println!(
        "ingested {} events, {} dead letters in {} commits{}",
        summary.events,
        summary.dead_letters,
        summary.commits,
        if summary.caught_up {
            " (caught up)"
        } else {
            ""
        }
    );
    if lake.remote_store().is_some() {
        let store = &metrics::metrics().store;
        let total: u64 = store.counts().iter().map(|(_, n)| n).sum();
        println!(
            "{}, {:.1} per commit",
            store.summary(),
            total as f64 / summary.commits.max(1) as f64
        );
    }
    Ok(())
}
