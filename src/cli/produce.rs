//! `lake produce`: seed-contract events into Kafka.

use chrono::NaiveDate;
use clap::Args;

use super::help::with_default;
use crate::ingest::IngestOptions;
use crate::produce::{self, ProduceOptions};
use crate::shutdown::CancellationToken;

/// Where the events go; shared by `lake produce` and `lake ingest`.
#[derive(Args, Debug, Default)]
pub(crate) struct KafkaArgs {
    #[arg(long, env = "LAKE_BROKERS",
          help = with_default("Kafka bootstrap servers", IngestOptions::default().brokers))]
    pub(crate) brokers: Option<String>,
    #[arg(long, env = "LAKE_TOPIC", help = with_default("Topic", IngestOptions::default().topic))]
    pub(crate) topic: Option<String>,
}

#[derive(Args, Debug)]
pub(crate) struct ProduceArgs {
    #[command(flatten)]
    pub(crate) kafka: KafkaArgs,
    /// Number of events; omit to run until Ctrl-C
    #[arg(long)]
    pub(crate) events: Option<u64>,
    /// Events per second, 0 = as fast as possible
    #[arg(long, default_value_t = ProduceOptions::default().rate)]
    pub(crate) rate: u64,
    /// Spread event timestamps over this many days
    #[arg(long, default_value_t = ProduceOptions::default().days)]
    pub(crate) days: u32,
    /// First day of event timestamps (YYYY-MM-DD) [default: today minus days-1]
    #[arg(long)]
    pub(crate) start_date: Option<NaiveDate>,
    /// Random seed (same seed, same events)
    #[arg(long, default_value_t = ProduceOptions::default().seed)]
    pub(crate) seed: u64,
    /// Distinct user ids
    #[arg(long, default_value_t = ProduceOptions::default().users)]
    pub(crate) users: u64,
    /// Distinct page ids
    #[arg(long, default_value_t = ProduceOptions::default().pages)]
    pub(crate) pages: u64,
    /// Partitions when the topic has to be created
    #[arg(long, default_value_t = ProduceOptions::default().partitions)]
    pub(crate) partitions: i32,
    /// Print the summary as JSON
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) async fn run(
    opts: ProduceOptions,
    json: bool,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let summary = produce::run(opts, stop).await?;
    if json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "produced {} events in {:.1} s ({:.0} events/s)",
            summary.delivered, summary.seconds, summary.events_per_second
        );
        for (t, n) in &summary.by_type {
            println!("  {t:<10} {n}");
        }
    }
    Ok(())
}
