//! The `lake` command line: parse flags, resolve configuration, call the library, map errors
//! to exit codes (0 ok, 1 error, 2 usage).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};

use lake::config::{parse_kafka_override, FileConfig};
use lake::event::Contract;
use lake::ingest::{self, BatchLimits, IngestOptions};
use lake::lake::maintain::{self, MaintainOptions};
use lake::lake::Lake;
use lake::produce::{self, ProduceOptions};

#[derive(Parser)]
#[command(
    name = "lake",
    version,
    about = "SQL-first lakehouse: Kafka → Delta, SQL jobs, Flight SQL"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Global {
    /// Lake root directory [default: data]
    #[arg(long = "lake", env = "LAKE_DIR", global = true)]
    lake: Option<PathBuf>,
    /// Settings file [default: ./lake.toml when present]
    #[arg(long, env = "LAKE_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// librdkafka property for every Kafka client, repeatable: -X key=value
    #[arg(short = 'X', value_parser = parse_kafka_override, global = true)]
    kafka: Vec<(String, String)>,
}

#[derive(Subcommand)]
enum Command {
    /// Generate seed-contract events into Kafka.
    Produce(ProduceArgs),
    /// Consume events from Kafka into raw.user_events, exactly once.
    Ingest(IngestArgs),
    /// Compact small files, vacuum old ones and checkpoint (safe while ingest runs).
    Maintain(MaintainArgs),
}

#[derive(Args)]
struct MaintainArgs {
    /// Only this table (schema.table) [default: every table in the lake]
    #[arg(long)]
    table: Option<String>,
    /// Keep unreferenced files younger than this many hours
    #[arg(long, default_value_t = 168)]
    retention_hours: i64,
    /// Compact files towards this size in MiB
    #[arg(long, default_value_t = 128)]
    target_file_mib: u64,
}

#[derive(Args)]
struct KafkaArgs {
    /// Kafka bootstrap servers [default: 127.0.0.1:9092]
    #[arg(long, env = "LAKE_BROKERS")]
    brokers: Option<String>,
    /// Topic [default: user_events]
    #[arg(long, env = "LAKE_TOPIC")]
    topic: Option<String>,
}

#[derive(Args)]
struct ProduceArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Number of events; omit to run until Ctrl-C
    #[arg(long)]
    events: Option<u64>,
    /// Events per second, 0 = as fast as possible
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Spread event timestamps over this many days
    #[arg(long, default_value_t = 1)]
    days: u32,
    /// First day of event timestamps (YYYY-MM-DD) [default: today minus days-1]
    #[arg(long)]
    start_date: Option<NaiveDate>,
    /// Random seed (same seed, same events)
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Distinct user ids
    #[arg(long, default_value_t = 1000)]
    users: u64,
    /// Distinct page ids
    #[arg(long, default_value_t = 100)]
    pages: u64,
    /// Partitions when the topic has to be created
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct IngestArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Consumer group; workers with the same group share partitions [default: lake-ingest]
    #[arg(long, env = "LAKE_GROUP")]
    group: Option<String>,
    /// Static group member id: a restarted worker gets its partitions back at once
    #[arg(long, env = "LAKE_INSTANCE_ID")]
    instance_id: Option<String>,
    /// Exit 0 once everything up to the end offsets seen at start is committed
    #[arg(long)]
    until_caught_up: bool,
    /// Flush after this many buffered messages [default: 500000]
    #[arg(long)]
    max_rows: Option<usize>,
    /// Flush after this many buffered bytes [default: 67108864]
    #[arg(long)]
    max_bytes: Option<usize>,
    /// Flush when the oldest buffered message is this old, in ms [default: 1000]
    #[arg(long)]
    max_latency_ms: Option<u64>,
}

fn shutdown_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("no SIGTERM handler: {e}");
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down: flushing and committing");
        f.store(true, Ordering::SeqCst);
    });
    flag
}

struct Resolved {
    file: FileConfig,
    lake_dir: PathBuf,
    kafka: BTreeMap<String, String>,
}

impl Resolved {
    fn new(g: &Global) -> anyhow::Result<Self> {
        let explicit = g.config.is_some();
        let path = g
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from("lake.toml"));
        let file = FileConfig::load(&path, explicit)?;
        let lake_dir = g
            .lake
            .clone()
            .or_else(|| file.lake_dir.clone())
            .unwrap_or_else(|| PathBuf::from("data"));
        let mut kafka = file.kafka.clone();
        kafka.extend(g.kafka.iter().cloned());
        Ok(Self {
            file,
            lake_dir,
            kafka,
        })
    }

    fn brokers(&self, k: &KafkaArgs) -> String {
        k.brokers
            .clone()
            .or_else(|| self.file.brokers.clone())
            .unwrap_or_else(|| "127.0.0.1:9092".into())
    }

    fn topic(&self, k: &KafkaArgs) -> String {
        k.topic
            .clone()
            .or_else(|| self.file.topic.clone())
            .unwrap_or_else(|| "user_events".into())
    }
}

async fn produce_cmd(cfg: &Resolved, a: ProduceArgs) -> anyhow::Result<()> {
    if a.partitions < 1 {
        anyhow::bail!("--partitions must be at least 1");
    }
    let days = a.days.max(1);
    let start_date = a.start_date.unwrap_or_else(|| {
        chrono::Utc::now().date_naive() - chrono::Duration::days(i64::from(days) - 1)
    });
    let opts = ProduceOptions {
        brokers: cfg.brokers(&a.kafka),
        topic: cfg.topic(&a.kafka),
        partitions: a.partitions,
        events: a.events,
        rate: a.rate,
        start_date,
        days,
        seed: a.seed,
        users: a.users,
        pages: a.pages,
        kafka: cfg.kafka.clone(),
        progress: !a.json,
    };
    let summary = produce::run(opts, shutdown_flag()).await?;
    if a.json {
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

async fn ingest_cmd(cfg: &Resolved, a: IngestArgs) -> anyhow::Result<()> {
    let lake = Lake::new(&cfg.lake_dir)?;
    let s = &cfg.file.ingest;
    let defaults = BatchLimits::default();
    let mut contract = Contract::default();
    if let Some(types) = &s.event_types {
        contract.event_types = types.clone();
    }
    if let Some(m) = s.max_payload_bytes {
        contract.max_payload_bytes = m;
    }
    let opts = IngestOptions {
        brokers: cfg.brokers(&a.kafka),
        topic: cfg.topic(&a.kafka),
        group: a
            .group
            .or_else(|| s.group.clone())
            .unwrap_or_else(|| "lake-ingest".into()),
        instance_id: a.instance_id.or_else(|| s.instance_id.clone()),
        kafka: cfg.kafka.clone(),
        batch: BatchLimits {
            max_rows: a
                .max_rows
                .or(s.max_rows)
                .unwrap_or(defaults.max_rows)
                .max(1),
            max_bytes: a.max_bytes.or(s.max_bytes).unwrap_or(defaults.max_bytes),
            max_latency: a
                .max_latency_ms
                .or(s.max_latency_ms)
                .map(Duration::from_millis)
                .unwrap_or(defaults.max_latency),
        },
        contract,
        until_caught_up: a.until_caught_up,
        stats_interval: Duration::from_secs(s.stats_interval_s.unwrap_or(10).max(1)),
    };
    let summary = ingest::run(&lake, opts, shutdown_flag())
        .await
        .context("ingest failed")?;
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
    Ok(())
}

async fn maintain_cmd(cfg: &Resolved, a: MaintainArgs) -> anyhow::Result<()> {
    if a.retention_hours < 0 {
        anyhow::bail!("--retention-hours must not be negative");
    }
    let target = std::num::NonZeroU64::new(a.target_file_mib.saturating_mul(1024 * 1024))
        .context("--target-file-mib must be at least 1")?;
    let lake = Lake::new(&cfg.lake_dir)?;
    let opts = MaintainOptions {
        target_file_bytes: target,
        retention: chrono::Duration::hours(a.retention_hours),
    };
    let tables = match a.table {
        Some(t) => vec![t],
        None => maintain::list_tables(&lake)?,
    };
    for t in tables {
        let r = maintain::maintain_table(&lake, &t, &opts).await?;
        println!(
            "{}: compacted {} files into {}, vacuumed {} files, version {}",
            r.table, r.files_removed, r.files_added, r.files_vacuumed, r.version
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LAKE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,lake=info")),
        )
        .init();
    let result = async {
        let cfg = Resolved::new(&cli.global)?;
        match cli.command {
            Command::Produce(a) => produce_cmd(&cfg, a).await,
            Command::Ingest(a) => ingest_cmd(&cfg, a).await,
            Command::Maintain(a) => maintain_cmd(&cfg, a).await,
        }
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
