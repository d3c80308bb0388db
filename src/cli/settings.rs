//! The settings step: every command's flags merged with the `LAKE_*` environment variables,
//! `lake.toml` and the defaults into the typed options the library takes. Precedence, highest
//! first: a flag, its environment variable (both read by clap), the file, the default. The
//! defaults themselves are the library's `Default` impls; help texts show them from there.
//!
//! Nothing after this step parses a duration or a size, or decides a default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::path::PathBuf;

use anyhow::Context;
use chrono::NaiveDate;
use clap::Args;
use datafusion_cli::print_options::MaxRows;

use super::daily::{DailyArgs, DailyRun, JobArgs};
use super::demo::DemoArgs;
use super::endpoint::MetricsArgs;
use super::help::with_default;
use super::ingest::IngestArgs;
use super::maintain::MaintainArgs;
use super::produce::{KafkaArgs, ProduceArgs};
use super::schedule::ScheduleArgs;
use super::serve::ServeArgs;
use super::sql::SqlArgs;
use crate::config::{parse_kafka_override, FileConfig, DEFAULT_LAKE_DIR};
use crate::daily::schedule::{self as cron_schedule, ScheduleOptions};
use crate::daily::sensor::SensorOptions;
use crate::daily::DailyOptions;
use crate::demo::DemoOptions;
use crate::event::Contract;
use crate::ingest::{BatchLimits, IngestOptions};
use crate::lake::maintain::MaintainOptions;
use crate::lake::{Lake, StorageOptions};
use crate::produce::{self, ProduceOptions};
use crate::serve::auth::Credentials;
use crate::serve::status::lag::KafkaTopic;
use crate::serve::ServeOptions;
use crate::sql::SqlOptions;

const DEFAULT_CONFIG: &str = "lake.toml";

/// Flags every command takes.
#[derive(Args)]
pub(crate) struct Global {
    /// Lake root directory
    #[arg(long = "lake", env = "LAKE_DIR", global = true,
          help = with_default("Lake root: a folder, or s3://bucket/prefix (gs://, az://)",
                              DEFAULT_LAKE_DIR))]
    pub(crate) lake: Option<String>,
    /// Settings file [default: ./lake.toml when present]
    #[arg(long, env = "LAKE_CONFIG", global = true)]
    pub(crate) config: Option<PathBuf>,
    /// librdkafka property for every Kafka client, repeatable: -X key=value
    #[arg(short = 'X', value_parser = parse_kafka_override, global = true)]
    pub(crate) kafka: Vec<(String, String)>,
}

/// The global flags and the file, read once per process.
#[derive(Debug)]
pub(crate) struct Settings {
    file: FileConfig,
    lake_dir: String,
    /// `[kafka]` of the file, then every `-X key=value`.
    kafka: BTreeMap<String, String>,
}

impl Settings {
    pub(crate) fn load(g: &Global) -> anyhow::Result<Self> {
        let path = g
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
        let file = FileConfig::load(&path, g.config.is_some())?;
        Ok(Self::new(g, file))
    }

    fn new(g: &Global, file: FileConfig) -> Self {
        let lake_dir = g
            .lake
            .clone()
            .or_else(|| file.lake_dir.clone())
            .unwrap_or_else(|| DEFAULT_LAKE_DIR.to_string());
        let mut kafka = file.kafka.clone();
        kafka.extend(g.kafka.iter().cloned());
        Self {
            file,
            lake_dir,
            kafka,
        }
    }

    /// The lake's location as given: a folder or a URL.
    #[cfg(test)]
    pub(crate) fn lake_dir(&self) -> &str {
        &self.lake_dir
    }

    /// The lake (a local root is created if missing).
    pub(crate) fn lake(&self) -> anyhow::Result<Lake> {
        let storage = &self.file.storage;
        let storage = StorageOptions {
            endpoint: storage.endpoint.clone(),
            region: storage.region.clone(),
            allow_http: storage.allow_http,
        };
        Ok(Lake::at(&self.lake_dir, &storage)?)
    }

    /// The lake, for a command that writes to it: on an object store, first proven to refuse a
    /// second create of one key, unless `[storage] check_conditional_put = false`.
    pub(crate) async fn writable_lake(&self) -> anyhow::Result<Lake> {
        let lake = self.lake()?;
        if self.file.storage.check_conditional_put.unwrap_or(true) {
            lake.check_conditional_put().await?;
        }
        Ok(lake)
    }

    fn brokers(&self, k: &KafkaArgs) -> String {
        k.brokers
            .clone()
            .or_else(|| self.file.brokers.clone())
            .unwrap_or_else(|| IngestOptions::default().brokers)
    }

    fn topic(&self, k: &KafkaArgs) -> String {
        k.topic
            .clone()
            .or_else(|| self.file.topic.clone())
            .unwrap_or_else(|| IngestOptions::default().topic)
    }

    pub(crate) fn produce(&self, a: &ProduceArgs) -> anyhow::Result<ProduceOptions> {
        if a.partitions < 1 {
            anyhow::bail!("--partitions must be at least 1");
        }
        let days = a.days.max(1);
        Ok(ProduceOptions {
            brokers: self.brokers(&a.kafka),
            topic: self.topic(&a.kafka),
            partitions: a.partitions,
            events: a.events,
            rate: a.rate,
            start_date: a
                .start_date
                .unwrap_or_else(|| produce::first_of_last_days(days)),
            days,
            seed: a.seed,
            users: a.users,
            pages: a.pages,
            kafka: self.kafka.clone(),
            progress: !a.json,
        })
    }

    pub(crate) fn ingest(&self, a: IngestArgs) -> anyhow::Result<IngestOptions> {
        let maintain_opts = self.maintain_options(None, None)?;
        let cluster_by = maintain_opts.cluster_by.clone();
        let maintain = match a.no_maintain || self.file.maintain.enabled == Some(false) {
            true => None,
            false => Some(maintain_opts),
        };
        let s = &self.file.ingest;
        let d = IngestOptions::default();
        let mut contract = Contract::default();
        if let Some(types) = &s.event_types {
            contract.event_types = types.clone();
        }
        if let Some(m) = s.max_payload_bytes {
            contract.max_payload_bytes = m;
        }
        let topic = self.topic(&a.kafka);
        Ok(IngestOptions {
            brokers: self.brokers(&a.kafka),
            source: a.source.unwrap_or_else(|| topic.clone()),
            topic,
            group: a.group.or_else(|| s.group.clone()).unwrap_or(d.group),
            instance_id: a.instance_id.or_else(|| s.instance_id.clone()),
            kafka: self.kafka.clone(),
            batch: BatchLimits {
                max_rows: a.max_rows.or(s.max_rows).unwrap_or(d.batch.max_rows).max(1),
                max_bytes: a.max_bytes.or(s.max_bytes).unwrap_or(d.batch.max_bytes),
                max_latency: a
                    .max_latency_ms
                    .or(s.max_latency_ms)
                    .map(std::time::Duration::from_millis)
                    .unwrap_or(d.batch.max_latency),
            },
            contract,
            until_caught_up: a.until_caught_up,
            drain_on_shutdown: d.drain_on_shutdown,
            stats_interval: s
                .stats_interval_s
                .map(|secs| std::time::Duration::from_secs(secs.max(1)))
                .unwrap_or(d.stats_interval),
            maintain,
            cluster_by,
        })
    }

    /// Where a long-running command serves its metrics: the flag or `LAKE_METRICS_ADDR`, else
    /// the command's `metrics_addr` in the file; none by default.
    pub(crate) fn metrics_addr(
        &self,
        a: &MetricsArgs,
        in_file: impl Fn(&FileConfig) -> Option<SocketAddr>,
    ) -> Option<SocketAddr> {
        a.metrics_addr.or_else(|| in_file(&self.file))
    }

    /// The table to maintain (None: all) and how.
    pub(crate) fn maintain(
        &self,
        a: &MaintainArgs,
    ) -> anyhow::Result<(Option<String>, MaintainOptions)> {
        let opts = self.maintain_options(a.target_file_size, a.retention)?;
        Ok((a.table.clone(), opts))
    }

    /// `[maintain]` over the defaults, with `lake maintain`'s two flags on top.
    fn maintain_options(
        &self,
        target_flag: Option<usize>,
        retention_flag: Option<std::time::Duration>,
    ) -> anyhow::Result<MaintainOptions> {
        let f = &self.file.maintain;
        let d = MaintainOptions::default();
        let size = |bytes: Option<usize>, default: NonZeroU64, what: &str| match bytes {
            None => Ok(default),
            Some(b) => NonZeroU64::new(b as u64).with_context(|| format!("{what} must not be 0")),
        };
        let opts = MaintainOptions {
            target_file_bytes: size(
                target_flag.or(f.target_file_size),
                d.target_file_bytes,
                "the target file size",
            )?,
            small_file_bytes: size(f.small_file_size, d.small_file_bytes, "small_file_size")?,
            min_files: f.min_files.unwrap_or(d.min_files),
            retention: retention_flag.or(f.retention).unwrap_or(d.retention),
            max_log_versions: f.max_log_versions.unwrap_or(d.max_log_versions).max(1),
            interval: f.interval.unwrap_or(d.interval),
            vacuum_interval: f.vacuum_interval.unwrap_or(d.vacuum_interval),
            cluster_by: f.cluster_by.clone().unwrap_or(d.cluster_by),
        };
        if opts.cluster_by.iter().any(|c| c.trim().is_empty()) {
            anyhow::bail!("[maintain] cluster_by must name columns");
        }
        if opts.small_file_bytes > opts.target_file_bytes {
            anyhow::bail!("[maintain] small_file_size must not exceed target_file_size");
        }
        if opts.min_files < 2 {
            anyhow::bail!("[maintain] min_files must be at least 2");
        }
        if opts.interval.is_zero() {
            anyhow::bail!("[maintain] interval must be more than 0s");
        }
        Ok(opts)
    }

    pub(crate) fn demo(&self, a: &DemoArgs) -> DemoOptions {
        let d = DemoOptions::default();
        DemoOptions {
            history_events: a.events,
            days: a.days,
            live_rate: a.rate,
            duration: a.duration,
            seed: a.seed,
            sql_dir: a.sql_dir.clone().unwrap_or(d.sql_dir),
            flight_addr: std::net::SocketAddr::from(([127, 0, 0, 1], a.port)),
            status_addr: std::net::SocketAddr::from(([127, 0, 0, 1], a.http_port)),
        }
    }

    /// The daily job's options shared by `lake daily`, `lake schedule` and the control API.
    fn job(&self, a: JobArgs, trigger: &str, default_wait: std::time::Duration) -> DailyOptions {
        let f = &self.file.daily;
        let d = DailyOptions::default();
        let sensor = SensorOptions {
            topic: a
                .topic
                .or_else(|| self.file.topic.clone())
                .unwrap_or_else(|| SensorOptions::default().topic),
            lateness: self.lateness(a.lateness),
            wait: a.wait.or(f.wait).unwrap_or(default_wait),
            max_future_skew: self.max_future_skew(a.max_future_skew),
        };
        DailyOptions {
            sql_dir: a.sql_dir.or_else(|| f.sql_dir.clone()).unwrap_or(d.sql_dir),
            only: None,
            dry_run: false,
            sensor: (!a.no_sensor).then_some(sensor),
            memory_limit: a.memory_limit.or(f.memory_limit),
            trigger: trigger.into(),
        }
    }

    fn lateness(&self, flag: Option<std::time::Duration>) -> std::time::Duration {
        flag.or(self.file.daily.lateness)
            .unwrap_or_else(|| SensorOptions::default().lateness)
    }

    fn max_future_skew(&self, flag: Option<std::time::Duration>) -> std::time::Duration {
        flag.or(self.file.daily.max_future_skew)
            .unwrap_or_else(|| SensorOptions::default().max_future_skew)
    }

    pub(crate) fn daily(&self, a: DailyArgs) -> anyhow::Result<DailyRun> {
        let yesterday = chrono::Utc::now().date_naive() - chrono::Duration::days(1);
        let (from, to): (NaiveDate, NaiveDate) = match (a.date, a.from, a.to) {
            (Some(d), _, _) => (d, d),
            (None, Some(f), Some(t)) => (f, t),
            _ => (yesterday, yesterday),
        };
        if from > to {
            anyhow::bail!("--from {from} is after --to {to}");
        }
        let mut opts = self.job(a.job, "cli", SensorOptions::default().wait);
        opts.only = a.only;
        opts.dry_run = a.dry_run;
        Ok(DailyRun {
            from,
            to,
            opts,
            json: a.json,
        })
    }

    pub(crate) fn schedule(
        &self,
        a: ScheduleArgs,
    ) -> anyhow::Result<(ScheduleOptions, DailyOptions)> {
        let s = &self.file.schedule;
        let d = ScheduleOptions::default();
        let cron = a.cron.or_else(|| s.cron.clone());
        let timezone = a.timezone.or_else(|| s.timezone.clone());
        let opts = ScheduleOptions {
            cron: match cron {
                Some(c) => cron_schedule::parse_cron(&c)?,
                None => d.cron,
            },
            timezone: match timezone {
                Some(t) => cron_schedule::parse_timezone(&t)?,
                None => d.timezone,
            },
            retries: a.retries.or(s.retries).unwrap_or(d.retries),
            backoff: a.retry_backoff.or(s.retry_backoff).unwrap_or(d.backoff),
            once: a.once,
            today: a.today,
            first_date: a.since,
        };
        let daily = self.job(a.job, "schedule", cron_schedule::DEFAULT_WAIT);
        Ok((opts, daily))
    }

    pub(crate) fn serve(&self, a: ServeArgs) -> anyhow::Result<ServeOptions> {
        let s = &self.file.serve;
        let d = ServeOptions::default();
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
        let memory_limit = a.memory_limit.or(s.memory_limit).or(d.memory_limit);
        let daily = self.job(
            JobArgs {
                sql_dir: a.sql_dir,
                topic: a.topic,
                ..JobArgs::default()
            },
            "api",
            SensorOptions::default().wait,
        );
        let topic = match daily.sensor {
            Some(sensor) => sensor.topic,
            None => d.control.topic,
        };
        // Lag only where the brokers are named: serving the lake does not need Kafka.
        let kafka = a
            .brokers
            .or_else(|| self.file.brokers.clone())
            .map(|brokers| KafkaTopic {
                brokers,
                topic: topic.clone(),
                properties: self.kafka.clone(),
            });
        Ok(ServeOptions {
            addr: a.addr.or(s.addr).unwrap_or(d.addr),
            credentials,
            allow_public_without_auth: a.insecure_no_auth,
            allow_plaintext_password: a.insecure_no_tls,
            tls,
            query_timeout: a
                .query_timeout
                .or(s.query_timeout)
                .unwrap_or(d.query_timeout),
            memory_limit,
            max_concurrent_queries: a
                .max_concurrent_queries
                .or(s.max_concurrent_queries)
                .unwrap_or(d.max_concurrent_queries),
            control: crate::serve::control::ControlOptions {
                sql_dir: daily.sql_dir,
                topic,
                lateness: self.lateness(None),
                max_future_skew: self.max_future_skew(None),
                memory_limit,
            },
            http_addr: a.http_addr.or(s.http_addr),
            kafka,
        })
    }
}

pub(crate) fn sql(a: SqlArgs) -> SqlOptions {
    SqlOptions {
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
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::super::{Cli, Command};
    use super::*;

    /// Parses `args` (without the program name) with `file` as lake.toml.
    fn parse(args: &[&str], file: &str) -> (Settings, Command) {
        let cli = Cli::try_parse_from(std::iter::once("lake").chain(args.iter().copied()))
            .expect("flags parse");
        let file: FileConfig = toml::from_str(file).expect("file parses");
        (Settings::new(&cli.global, file), cli.command)
    }

    fn serve(args: &[&str], file: &str) -> ServeOptions {
        match parse(args, file) {
            (s, Command::Serve(a)) => s.serve(a).expect("serve settings"),
            _ => unreachable!("not serve"),
        }
    }

    fn ingest(args: &[&str], file: &str) -> IngestOptions {
        match parse(args, file) {
            (s, Command::Ingest(a)) => s.ingest(a).expect("ingest settings"),
            _ => unreachable!("not ingest"),
        }
    }

    fn schedule(args: &[&str], file: &str) -> (ScheduleOptions, DailyOptions) {
        match parse(args, file) {
            (s, Command::Schedule(a)) => s.schedule(a).expect("schedule settings"),
            _ => unreachable!("not schedule"),
        }
    }

    #[test]
    fn a_flag_beats_the_file_and_the_file_beats_the_default() {
        let file = "[serve]\nquery_timeout = \"90s\"\nmax_concurrent_queries = 3\n";
        let o = serve(&["serve", "--query-timeout", "5s"], file);
        assert_eq!(o.query_timeout, Duration::from_secs(5), "flag wins");
        assert_eq!(o.max_concurrent_queries, 3, "file beats the default");
        let o = serve(&["serve"], "");
        let d = ServeOptions::default();
        assert_eq!(o.query_timeout, d.query_timeout);
        assert_eq!(o.max_concurrent_queries, d.max_concurrent_queries);
        assert_eq!(o.addr, d.addr);
    }

    #[test]
    fn the_status_page_and_its_brokers_come_from_flags_then_the_file() {
        let file = "brokers = \"b:1\"\ntopic = \"t\"\n[serve]\nhttp_addr = \"127.0.0.1:8081\"\n";
        let o = serve(&["serve"], file);
        assert_eq!(o.http_addr, Some(SocketAddr::from(([127, 0, 0, 1], 8081))));
        let kafka = o.kafka.expect("the file's brokers");
        assert_eq!((kafka.brokers.as_str(), kafka.topic.as_str()), ("b:1", "t"));
        let o = serve(
            &["serve", "--http-addr", "127.0.0.1:0", "--brokers", "b:2"],
            file,
        );
        assert_eq!(o.http_addr.map(|a| a.port()), Some(0));
        assert_eq!(o.kafka.map(|k| k.brokers), Some("b:2".to_string()));
        // Neither named: no page, and no Kafka client (serving does not need Kafka).
        let o = serve(&["serve"], "");
        assert_eq!((o.http_addr, o.kafka.is_none()), (None, true));
    }

    #[test]
    fn top_level_file_keys_reach_every_command_below_their_flags() {
        let file = "lake_dir = \"elsewhere\"\nbrokers = \"b:1\"\ntopic = \"t\"\n\
                    [ingest]\ngroup = \"g\"\nmax_rows = 7\n[kafka]\n\"a.b\" = \"file\"\n";
        let (s, _) = parse(&["ingest"], file);
        assert_eq!(s.lake_dir(), "elsewhere");
        let o = ingest(&["ingest", "-X", "a.b=flag", "-X", "c=d"], file);
        assert_eq!((o.brokers.as_str(), o.topic.as_str()), ("b:1", "t"));
        assert_eq!(o.source, "t", "the source defaults to the topic");
        assert_eq!((o.group.as_str(), o.batch.max_rows), ("g", 7));
        assert_eq!(o.kafka["a.b"], "flag", "-X overrides [kafka]");
        assert_eq!(o.kafka["c"], "d");
        let o = ingest(
            &["ingest", "--topic", "u", "--group", "h", "--lake", "x"],
            file,
        );
        assert_eq!((o.topic.as_str(), o.group.as_str()), ("u", "h"));
        let (s, _) = parse(&["--lake", "x", "ingest"], file);
        assert_eq!(s.lake_dir(), "x");
    }

    #[test]
    fn maintenance_is_on_by_default_and_configured_by_the_file_and_flags() {
        let d = MaintainOptions::default();
        assert_eq!(ingest(&["ingest"], "").maintain, Some(d.clone()));
        assert_eq!(ingest(&["ingest", "--no-maintain"], "").maintain, None);
        assert_eq!(
            ingest(&["ingest"], "[maintain]\nenabled = false\n").maintain,
            None
        );
        let file = "[maintain]\nretention = \"2h\"\ntarget_file_size = \"64M\"\nmin_files = 4\n";
        let o = ingest(&["ingest"], file).maintain.expect("on");
        assert_eq!(o.retention, Duration::from_secs(7200));
        assert_eq!((o.target_file_bytes.get(), o.min_files), (64 << 20, 4));
        assert_eq!(o.interval, d.interval);
        let maintain = |args: &[&str], file: &str| match parse(args, file) {
            (s, Command::Maintain(a)) => s.maintain(&a),
            _ => unreachable!("not maintain"),
        };
        let (_, o) = maintain(&["maintain", "--retention", "5m"], file).expect("valid");
        assert_eq!(o.retention, Duration::from_secs(300), "the flag wins");
        assert_eq!(o.target_file_bytes.get(), 64 << 20, "the file applies");
        let e = maintain(&["maintain"], "[maintain]\nsmall_file_size = \"1G\"\n").unwrap_err();
        assert!(e.to_string().contains("small_file_size"), "{e}");
        let e = maintain(&["maintain", "--target-file-size", "0"], "").unwrap_err();
        assert!(e.to_string().contains("must not be 0"), "{e}");
    }

    #[test]
    fn the_documented_example_file_states_the_defaults() {
        let example = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lake.toml.example"),
        )
        .expect("lake.toml.example");
        let (with_file, bare) = (ingest(&["ingest"], &example), ingest(&["ingest"], ""));
        assert_eq!(format!("{with_file:?}"), format!("{bare:?}"));
        let (mut with_file, bare) = (serve(&["serve"], &example), serve(&["serve"], ""));
        // Except that naming the brokers (as the file does) gives the status page its lag.
        let brokers = with_file.kafka.take().map(|k| k.brokers);
        assert_eq!(brokers, Some(IngestOptions::default().brokers));
        assert_eq!(format!("{with_file:?}"), format!("{bare:?}"));
        let with_file = schedule(&["schedule"], &example);
        let bare = schedule(&["schedule"], "");
        assert_eq!(format!("{:?}", with_file.0), format!("{:?}", bare.0));
        let (s, _) = parse(&["daily"], &example);
        assert_eq!(s.lake_dir(), DEFAULT_LAKE_DIR);
    }

    #[test]
    fn schedule_waits_two_hours_by_default_and_daily_does_not_wait() {
        let (_, daily) = schedule(&["schedule"], "");
        let sensor = daily.sensor.expect("sensor on");
        assert_eq!(sensor.wait, cron_schedule::DEFAULT_WAIT);
        assert_eq!(sensor.lateness, Duration::from_secs(600));
        let (_, daily) = schedule(&["schedule", "--wait", "1m", "--lateness", "1s"], "");
        let sensor = daily.sensor.expect("sensor on");
        assert_eq!(
            (sensor.wait, sensor.lateness),
            (Duration::from_secs(60), Duration::from_secs(1))
        );
        let (_, daily) = schedule(&["schedule", "--no-sensor"], "[daily]\nwait = \"5m\"\n");
        assert!(daily.sensor.is_none());
        match parse(
            &["daily", "--date", "2025-01-10"],
            "[daily]\nwait = \"5m\"\n",
        ) {
            (s, Command::Daily(a)) => {
                let run = s.daily(a).expect("daily settings");
                assert_eq!(run.from, run.to);
                assert_eq!(
                    run.opts.sensor.expect("sensor").wait,
                    Duration::from_secs(300)
                );
            }
            _ => unreachable!(),
        }
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_or_key_named() {
        assert!(Cli::try_parse_from(["lake", "serve", "--query-timeout", "soon"]).is_err());
        let e = toml::from_str::<FileConfig>("[serve]\nmemory_limit = \"lots\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("memory_limit"), "{e}");
        match parse(&["serve", "--user", "u"], "") {
            (s, Command::Serve(a)) => assert!(s.serve(a).is_err(), "a user needs a password"),
            _ => unreachable!(),
        }
        match parse(&["daily", "--from", "2025-01-10", "--to", "2025-01-09"], "") {
            (s, Command::Daily(a)) => assert!(s.daily(a).is_err()),
            _ => unreachable!(),
        }
    }
}
