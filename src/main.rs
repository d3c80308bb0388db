//! The `lake` command line: parse flags, resolve configuration, call the library, map errors
//! to exit codes: 0 ok, 1 error (or a failed `error` check), 2 usage, 3 the daily sensor's
//! wait ran out.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};

use datafusion_cli::print_format::PrintFormat;
use datafusion_cli::print_options::MaxRows;
use lake::config::{parse_kafka_override, FileConfig};
use lake::daily::schedule::{self, ScheduleOptions};
use lake::daily::sensor::SensorOptions;
use lake::daily::{self, history::RunStatus, DailyOptions};
use lake::demo::{self, DemoOptions};
use lake::event::Contract;
use lake::ingest::{self, BatchLimits, IngestOptions};
use lake::lake::maintain::{self, MaintainOptions};
use lake::lake::Lake;
use lake::produce::{self, ProduceOptions};
use lake::serve::{self, auth::Credentials, control::ControlOptions, ServeOptions};
use lake::sql::{self, SqlOptions};

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
    /// The pipeline on this machine with an embedded broker: history, ingest, live events.
    Demo(DemoArgs),
    /// SQL over the lake (datafusion-cli): `-c SQL`, `-f FILE`, or an interactive prompt.
    Sql(SqlArgs),
    /// Run sql/daily/*.sql for a date (or a range), replacing that date in processed.<name>.
    Daily(DailyArgs),
    /// Recent daily runs and their check results (system.daily_runs, system.check_results).
    Runs(RunsArgs),
    /// Run the daily job every day at a cron time, catching up missed dates.
    Schedule(ScheduleArgs),
    /// Serve the lake over Arrow Flight SQL (JDBC, ADBC, pyarrow), read-only.
    Serve(ServeArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:50051]
    #[arg(long, env = "LAKE_SERVE_ADDR")]
    addr: Option<std::net::SocketAddr>,
    /// User name clients log in with (with --password)
    #[arg(long, env = "LAKE_SERVE_USER")]
    user: Option<String>,
    /// Password clients log in with (prefer the environment variable)
    #[arg(long, env = "LAKE_SERVE_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Serve a non-loopback address without auth
    #[arg(long)]
    insecure_no_auth: bool,
    /// TLS certificate chain (PEM), with --tls-key
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM), with --tls-cert
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Longest a query may run [default: 60s]
    #[arg(long, value_parser = parse_duration)]
    query_timeout: Option<Duration>,
    /// Memory all running queries may hold together, e.g. 2G [default: no limit]
    #[arg(long, value_parser = parse_memory)]
    memory_limit: Option<usize>,
    /// Queries running at once; more are refused with RESOURCE_EXHAUSTED [default: 8]
    #[arg(long)]
    max_concurrent_queries: Option<usize>,
    /// Folder with daily/ and checks/ for the control API's daily runs [default: sql]
    #[arg(long = "sql", env = "LAKE_SQL_DIR")]
    sql_dir: Option<PathBuf>,
    /// Topic whose ingest progress the control API reports [default: user_events]
    #[arg(long, env = "LAKE_TOPIC")]
    topic: Option<String>,
}

/// Settings shared by `lake daily` and `lake schedule`.
#[derive(Args)]
struct JobArgs {
    /// Folder with daily/ and checks/ [default: sql]
    #[arg(long = "sql", env = "LAKE_SQL_DIR")]
    sql_dir: Option<PathBuf>,
    /// Topic whose ingest progress the sensor reads [default: user_events]
    #[arg(long, env = "LAKE_TOPIC")]
    topic: Option<String>,
    /// How late events may arrive after their day ends, e.g. 10m [default: 10m]
    #[arg(long, value_parser = parse_duration)]
    lateness: Option<Duration>,
    /// How long to wait for the day to be complete, e.g. 30m [default: 0s for daily, 2h for schedule]
    #[arg(long, value_parser = parse_duration)]
    wait: Option<Duration>,
    /// Run without waiting for the day to be complete
    #[arg(long)]
    no_sensor: bool,
    /// Memory queries may hold before spilling to disk, e.g. 1G or 512M [default: no limit]
    #[arg(long, value_parser = parse_memory)]
    memory_limit: Option<usize>,
}

fn parse_memory(s: &str) -> Result<usize, String> {
    datafusion::execution::context::SessionContext::parse_capacity_limit("--memory-limit", s)
        .map_err(|e| format!("{e} (use e.g. 512M or 1G)"))
}

#[derive(Args)]
struct RunsArgs {
    /// Runs to show, newest first
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Only runs of this date
    #[arg(long)]
    date: Option<NaiveDate>,
}

#[derive(Args)]
struct ScheduleArgs {
    #[command(flatten)]
    job: JobArgs,
    /// Cron time of the daily run (minute hour day month weekday) [default: "0 2 * * *"]
    #[arg(long)]
    cron: Option<String>,
    /// IANA timezone of the cron time and of "yesterday" [default: UTC]
    #[arg(long)]
    timezone: Option<String>,
    /// Attempts after a failed run of a date [default: 3]
    #[arg(long)]
    retries: Option<u32>,
    /// First retry delay, doubling after, e.g. 1m [default: 1m]
    #[arg(long, value_parser = parse_duration)]
    retry_backoff: Option<Duration>,
    /// Catch up the missed dates, then exit
    #[arg(long)]
    once: bool,
    /// With no succeeded run on record, catch up from this date [default: yesterday]
    #[arg(long)]
    since: Option<NaiveDate>,
    /// Pretend today is this date (replays and tests)
    #[arg(long, hide = true)]
    today: Option<NaiveDate>,
}

#[derive(Args)]
struct DailyArgs {
    /// The date to compute [default: yesterday, UTC]
    #[arg(long, conflicts_with_all = ["from", "to"])]
    date: Option<NaiveDate>,
    /// First date of a backfill (with --to)
    #[arg(long, requires = "to")]
    from: Option<NaiveDate>,
    /// Last date of a backfill, inclusive (with --from)
    #[arg(long, requires = "from")]
    to: Option<NaiveDate>,
    /// Run only sql/daily/NAME.sql (no checks)
    #[arg(long)]
    only: Option<String>,
    /// Plan and validate every file, run nothing, write nothing
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    job: JobArgs,
    /// Print a JSON summary
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SqlArgs {
    /// Statement(s) to run, repeatable; without -c or -f an interactive prompt starts
    #[arg(short = 'c', long = "command")]
    commands: Vec<String>,
    /// SQL file(s) to run, repeatable
    #[arg(short = 'f', long = "file")]
    files: Vec<PathBuf>,
    /// Output format: table, csv, tsv, json, ndjson, automatic
    #[arg(long, default_value = "table", value_parser = parse_format)]
    format: PrintFormat,
    /// Rows to print at most, 0 = all
    #[arg(long, default_value_t = 40)]
    maxrows: usize,
    /// Print only results, no timing lines
    #[arg(short, long)]
    quiet: bool,
    /// Allow DDL, DML and SET statements (read-only without it)
    #[arg(long)]
    writable: bool,
}

fn parse_format(s: &str) -> Result<PrintFormat, String> {
    s.parse::<PrintFormat>().map_err(|_| {
        format!("unknown format {s:?}: use table, csv, tsv, json, ndjson or automatic")
    })
}

#[derive(Args)]
struct DemoArgs {
    /// Events of history to produce first
    #[arg(long, default_value_t = 300_000)]
    events: u64,
    /// Days of history, ending today
    #[arg(long, default_value_t = 3)]
    days: u32,
    /// Live events per second after the history
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Stop after this long in the live phase, e.g. 30s or 5m [default: until Ctrl-C]
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Delete the lake's raw, processed and system tables first
    #[arg(long)]
    fresh: bool,
    /// Random seed of the generated events
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Folder with daily/ and checks/ [default: sql, else the built-in files]
    #[arg(long = "sql", env = "LAKE_SQL_DIR")]
    sql_dir: Option<PathBuf>,
    /// Flight SQL port on 127.0.0.1 (a free one if taken; 0 picks one)
    #[arg(long, default_value_t = 50051)]
    port: u16,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} in {s:?} (use e.g. 30s, 5m or 1h)"))
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
    /// Source name in the Delta progress markers [default: the topic]. Change it only when the
    /// topic moves to another Kafka cluster, whose offsets start anew.
    #[arg(long)]
    source: Option<String>,
    /// Exit 0 once everything up to the end offsets seen at start is committed
    #[arg(long)]
    until_caught_up: bool,
    /// Flush after this many buffered messages [default: 100000]
    #[arg(long, env = "LAKE_MAX_ROWS")]
    max_rows: Option<usize>,
    /// Flush after this many buffered bytes [default: 67108864]
    #[arg(long, env = "LAKE_MAX_BYTES")]
    max_bytes: Option<usize>,
    /// Flush when the oldest buffered message is this old, in ms [default: 1000]
    #[arg(long, env = "LAKE_MAX_LATENCY_MS")]
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
    let start_date = a
        .start_date
        .unwrap_or_else(|| produce::first_of_last_days(days));
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
        source: a.source.unwrap_or_else(|| cfg.topic(&a.kafka)),
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
        drain_on_shutdown: false,
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

async fn demo_cmd(cfg: &Resolved, a: DemoArgs) -> anyhow::Result<()> {
    if a.fresh {
        for schema in ["raw", "processed", "system"] {
            let dir = cfg.lake_dir.join(schema);
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("cannot remove {}", dir.display()))?;
            }
        }
    }
    let lake = Lake::new(&cfg.lake_dir)?;
    let opts = DemoOptions {
        history_events: a.events,
        days: a.days,
        live_rate: a.rate,
        duration: a.duration,
        seed: a.seed,
        sql_dir: a.sql_dir.unwrap_or_else(|| PathBuf::from("sql")),
        flight_addr: std::net::SocketAddr::from(([127, 0, 0, 1], a.port)),
    };
    demo::run(&lake, opts, shutdown_flag()).await?;
    Ok(())
}

/// glibc gives every thread that allocates its own arena (up to 8 per core) and keeps freed
/// memory in them; with ingest's poll, decode and commit threads each churning through batches
/// that doubles peak RSS (see BENCHMARKS.md). Two arenas are plenty for this process.
fn limit_malloc_arenas() {
    const M_ARENA_MAX: i32 = -8;
    // SAFETY: mallopt only tunes the allocator; it is called before any other thread starts.
    unsafe {
        libc::mallopt(M_ARENA_MAX, 2);
    }
}

async fn sql_cmd(cfg: &Resolved, a: SqlArgs) -> anyhow::Result<()> {
    let lake = Lake::new(&cfg.lake_dir)?;
    let opts = SqlOptions {
        commands: a.commands,
        files: a.files,
        format: a.format,
        maxrows: if a.maxrows == 0 {
            MaxRows::Unlimited
        } else {
            MaxRows::Limited(a.maxrows)
        },
        quiet: a.quiet,
        writable: a.writable,
    };
    sql::run(&lake, opts).await?;
    Ok(())
}

impl Resolved {
    /// `[daily] lateness`, default 10 minutes.
    fn lateness(&self) -> anyhow::Result<Duration> {
        match &self.file.daily.lateness {
            Some(l) => parse_duration(l).map_err(|e| anyhow::anyhow!("[daily] lateness: {e}")),
            None => Ok(Duration::from_secs(600)),
        }
    }

    fn job(
        &self,
        a: JobArgs,
        trigger: &str,
        default_wait: Duration,
    ) -> anyhow::Result<DailyOptions> {
        let d = &self.file.daily;
        let from_file = |v: &Option<String>, key: &str| -> anyhow::Result<Option<Duration>> {
            v.as_deref()
                .map(|s| parse_duration(s).map_err(|e| anyhow::anyhow!("[daily] {key}: {e}")))
                .transpose()
        };
        let memory_limit = match a.memory_limit {
            Some(m) => Some(m),
            None => d
                .memory_limit
                .as_deref()
                .map(|s| parse_memory(s).map_err(|e| anyhow::anyhow!("[daily] memory_limit: {e}")))
                .transpose()?,
        };
        let sensor = SensorOptions {
            topic: a
                .topic
                .or_else(|| self.file.topic.clone())
                .unwrap_or_else(|| "user_events".into()),
            lateness: match a.lateness {
                Some(l) => l,
                None => self.lateness()?,
            },
            wait: match a.wait {
                Some(w) => w,
                None => from_file(&d.wait, "wait")?.unwrap_or(default_wait),
            },
        };
        Ok(DailyOptions {
            sql_dir: a
                .sql_dir
                .or_else(|| d.sql_dir.clone())
                .unwrap_or_else(|| PathBuf::from("sql")),
            only: None,
            dry_run: false,
            sensor: (!a.no_sensor).then_some(sensor),
            memory_limit,
            trigger: trigger.into(),
        })
    }
}

async fn daily_cmd(cfg: &Resolved, a: DailyArgs) -> anyhow::Result<()> {
    let yesterday = chrono::Utc::now().date_naive() - chrono::Duration::days(1);
    let (from, to) = match (a.date, a.from, a.to) {
        (Some(d), _, _) => (d, d),
        (None, Some(f), Some(t)) => (f, t),
        _ => (yesterday, yesterday),
    };
    if from > to {
        anyhow::bail!("--from {from} is after --to {to}");
    }
    let lake = Lake::new(&cfg.lake_dir)?;
    let mut opts = cfg.job(a.job, "cli", Duration::ZERO)?;
    opts.only = a.only;
    opts.dry_run = a.dry_run;
    let mut summary = Vec::new();
    let mut failure = None;
    for date in from.iter_days().take_while(|d| *d <= to) {
        let run = daily::run_date(&lake, &opts, date).await?;
        if !a.json {
            print_run(&run, opts.dry_run);
        }
        let rows: BTreeMap<&str, Option<usize>> = run
            .tables
            .iter()
            .map(|t| (t.table.as_str(), t.rows))
            .collect();
        let checks: Vec<_> = run
            .checks
            .iter()
            .map(|c| serde_json::json!({"check": c.check, "severity": c.severity, "status": c.status, "violations": c.violation_count}))
            .collect();
        summary.push(serde_json::json!({
            "date": date.to_string(), "run_id": run.run_id, "status": run.status.as_str(),
            "rows": rows, "checks": checks, "error": run.error,
        }));
        if run.status != RunStatus::Succeeded {
            failure = Some(run);
            break;
        }
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({"dry_run": opts.dry_run, "dates": summary})
        );
    }
    match failure {
        None => Ok(()),
        Some(run) => {
            let why = run.error.unwrap_or_default();
            if run.status == RunStatus::SensorTimeout {
                Err(lake::error::Error::NotComplete(why).into())
            } else {
                Err(anyhow::anyhow!("daily run of {} failed: {why}", run.date))
            }
        }
    }
}

fn print_run(run: &daily::DateRun, dry_run: bool) {
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

async fn runs_cmd(cfg: &Resolved, a: RunsArgs) -> anyhow::Result<()> {
    let lake = Lake::new(&cfg.lake_dir)?;
    let text = daily::history::recent(&lake, a.limit, a.date).await?;
    print!("{text}");
    Ok(())
}

async fn schedule_cmd(cfg: &Resolved, a: ScheduleArgs) -> anyhow::Result<()> {
    let s = &cfg.file.schedule;
    let cron = a
        .cron
        .or_else(|| s.cron.clone())
        .unwrap_or_else(|| "0 2 * * *".into());
    let timezone = a
        .timezone
        .or_else(|| s.timezone.clone())
        .unwrap_or_else(|| "UTC".into());
    let backoff = match (a.retry_backoff, &s.retry_backoff) {
        (Some(b), _) => b,
        (None, Some(b)) => {
            parse_duration(b).map_err(|e| anyhow::anyhow!("[schedule] retry_backoff: {e}"))?
        }
        (None, None) => Duration::from_secs(60),
    };
    let opts = ScheduleOptions {
        cron: schedule::parse_cron(&cron)?,
        timezone: schedule::parse_timezone(&timezone)?,
        retries: a.retries.or(s.retries).unwrap_or(3),
        backoff,
        once: a.once,
        today: a.today,
        first_date: a.since,
    };
    let lake = Lake::new(&cfg.lake_dir)?;
    let daily = cfg.job(a.job, "schedule", Duration::from_secs(2 * 3600))?;
    eprintln!("lake schedule: daily job at {cron:?} ({timezone}); Ctrl-C stops");
    schedule::run(&lake, &daily, &opts, shutdown_flag()).await?;
    Ok(())
}

async fn serve_cmd(cfg: &Resolved, a: ServeArgs) -> anyhow::Result<()> {
    let s = &cfg.file.serve;
    let addr = match (a.addr, &s.addr) {
        (Some(a), _) => a,
        (None, Some(text)) => text
            .parse()
            .with_context(|| format!("[serve] addr {text:?}"))?,
        (None, None) => std::net::SocketAddr::from(([127, 0, 0, 1], 50051)),
    };
    let credentials = match (a.user.or(s.user.clone()), a.password.or(s.password.clone())) {
        (Some(user), Some(password)) => Some(Credentials { user, password }),
        (None, None) => None,
        _ => anyhow::bail!("set both a user and a password for lake serve, or neither"),
    };
    let tls = match (
        a.tls_cert.or(s.tls_cert.clone()),
        a.tls_key.or(s.tls_key.clone()),
    ) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => anyhow::bail!("TLS needs both a certificate and a key"),
    };
    let query_timeout = match (a.query_timeout, &s.query_timeout) {
        (Some(t), _) => t,
        (None, Some(t)) => {
            parse_duration(t).map_err(|e| anyhow::anyhow!("[serve] query_timeout: {e}"))?
        }
        (None, None) => Duration::from_secs(60),
    };
    let memory_limit = match (a.memory_limit, &s.memory_limit) {
        (Some(m), _) => Some(m),
        (None, Some(m)) => {
            Some(parse_memory(m).map_err(|e| anyhow::anyhow!("[serve] memory_limit: {e}"))?)
        }
        (None, None) => None,
    };
    let daily = cfg.job(
        JobArgs {
            sql_dir: a.sql_dir,
            topic: a.topic,
            lateness: None,
            wait: None,
            no_sensor: false,
            memory_limit,
        },
        "api",
        Duration::ZERO,
    )?;
    let control = ControlOptions {
        sql_dir: daily.sql_dir,
        topic: daily
            .sensor
            .map(|s| s.topic)
            .unwrap_or_else(|| "user_events".into()),
        lateness: cfg.lateness()?,
        memory_limit,
    };
    let scheme = if tls.is_some() { "grpc+tls" } else { "grpc" };
    let auth_note = if credentials.is_some() {
        "login required"
    } else {
        "no auth"
    };
    let opts = ServeOptions {
        addr,
        credentials,
        allow_public_without_auth: a.insecure_no_auth,
        tls,
        query_timeout,
        memory_limit,
        max_concurrent_queries: a
            .max_concurrent_queries
            .or(s.max_concurrent_queries)
            .unwrap_or(8),
        control,
    };
    let lake = Lake::new(&cfg.lake_dir)?;
    serve::run(
        &lake,
        opts,
        |bound| {
            // Tests and scripts read this line for the port.
            println!("Flight SQL on {scheme}://{bound} ({auth_note}); Ctrl-C stops");
        },
        shutdown_flag(),
    )
    .await?;
    Ok(())
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(run()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run() -> ExitCode {
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
            Command::Demo(a) => demo_cmd(&cfg, a).await,
            Command::Sql(a) => sql_cmd(&cfg, a).await,
            Command::Daily(a) => daily_cmd(&cfg, a).await,
            Command::Runs(a) => runs_cmd(&cfg, a).await,
            Command::Schedule(a) => schedule_cmd(&cfg, a).await,
            Command::Serve(a) => serve_cmd(&cfg, a).await,
        }
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            match e.downcast_ref::<lake::error::Error>() {
                Some(lake::error::Error::NotComplete(_)) => ExitCode::from(3),
                _ => ExitCode::from(1),
            }
        }
    }
}
