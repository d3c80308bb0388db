//! `lake.toml`: the settings file's schema. Durations ("10m") and sizes ("1G") are parsed here,
//! once, by the same parsers as the command-line flags, so a bad value is reported with its key
//! when the file is read. How the file is merged with flags, `LAKE_*` environment variables and
//! the defaults is `cli/settings.rs`. `lake.toml.example` documents every key with its default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::error::{Error, Result};

/// The lake root when nothing else says.
pub(crate) const DEFAULT_LAKE_DIR: &str = "data";
/// Kafka bootstrap servers when nothing else says.
pub(crate) const DEFAULT_BROKERS: &str = "127.0.0.1:9092";
/// The events' topic when nothing else says.
pub(crate) const DEFAULT_TOPIC: &str = "user_events";

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    /// Lake root: a folder, or an object store URL (`s3://bucket/prefix`).
    pub(crate) lake_dir: Option<String>,
    /// Kafka bootstrap servers.
    pub(crate) brokers: Option<String>,
    /// Topic of the events.
    pub(crate) topic: Option<String>,
    #[serde(default)]
    pub(crate) ingest: IngestSection,
    #[serde(default)]
    pub(crate) daily: DailySection,
    #[serde(default)]
    pub(crate) schedule: ScheduleSection,
    #[serde(default)]
    pub(crate) serve: ServeSection,
    #[serde(default)]
    pub(crate) maintain: MaintainSection,
    #[serde(default)]
    pub(crate) storage: StorageSection,
    /// librdkafka properties passed through to every Kafka client.
    #[serde(default)]
    pub(crate) kafka: BTreeMap<String, String>,
}

/// `[storage]`: how to reach a lake on an object store, on top of the cloud's own environment
/// variables (`AWS_ACCESS_KEY_ID`, `AWS_REGION`, ...).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StorageSection {
    /// The endpoint of an S3-compatible server (or Azure), e.g. "http://127.0.0.1:8333".
    pub(crate) endpoint: Option<String>,
    /// The S3 region.
    pub(crate) region: Option<String>,
    /// Plain HTTP to the endpoint (a server on loopback); off by default.
    pub(crate) allow_http: Option<bool>,
    /// Before writing, prove that the store refuses a second create of one key
    /// (`lake::probe`); on by default.
    pub(crate) check_conditional_put: Option<bool>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IngestSection {
    pub(crate) group: Option<String>,
    pub(crate) instance_id: Option<String>,
    pub(crate) max_rows: Option<usize>,
    pub(crate) max_bytes: Option<usize>,
    pub(crate) max_latency_ms: Option<u64>,
    pub(crate) max_payload_bytes: Option<usize>,
    pub(crate) event_types: Option<Vec<String>>,
    pub(crate) stats_interval_s: Option<u64>,
    /// Where `lake ingest` serves /metrics, /healthz and /readyz, e.g. "127.0.0.1:9464".
    pub(crate) metrics_addr: Option<SocketAddr>,
}

/// `[daily]`: the daily job (`lake daily`, `lake schedule`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DailySection {
    /// Folder with `daily/` and `checks/`.
    pub(crate) sql_dir: Option<PathBuf>,
    /// How late events may arrive after their day ends, e.g. "10m".
    #[serde(default, deserialize_with = "duration")]
    pub(crate) lateness: Option<Duration>,
    /// How long the sensor waits for a day to complete, e.g. "2h".
    #[serde(default, deserialize_with = "duration")]
    pub(crate) wait: Option<Duration>,
    /// How far past its ingestion an event's time may be and still advance the sensor.
    #[serde(default, deserialize_with = "duration")]
    pub(crate) max_future_skew: Option<Duration>,
    /// Memory queries may hold before spilling to disk, e.g. "1G".
    #[serde(default, deserialize_with = "memory")]
    pub(crate) memory_limit: Option<usize>,
}

/// `[schedule]`: when `lake schedule` runs the daily job.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleSection {
    /// Cron expression, e.g. "0 2 * * *".
    pub(crate) cron: Option<String>,
    /// IANA timezone of the cron time and of "yesterday", e.g. "Europe/Berlin".
    pub(crate) timezone: Option<String>,
    pub(crate) retries: Option<u32>,
    /// First retry delay, doubling after, e.g. "1m".
    #[serde(default, deserialize_with = "duration")]
    pub(crate) retry_backoff: Option<Duration>,
    /// Where `lake schedule` serves /metrics, /healthz and /readyz, e.g. "127.0.0.1:9464".
    pub(crate) metrics_addr: Option<SocketAddr>,
}

/// `[serve]`: `lake serve` (Flight SQL).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServeSection {
    /// Address to listen on, e.g. "127.0.0.1:50051".
    pub(crate) addr: Option<SocketAddr>,
    /// Login required when both are set (prefer LAKE_SERVE_PASSWORD for the password).
    pub(crate) user: Option<String>,
    pub(crate) password: Option<String>,
    /// PEM files; TLS is on when both are set.
    pub(crate) tls_cert: Option<PathBuf>,
    pub(crate) tls_key: Option<PathBuf>,
    /// Longest a query may run, e.g. "60s".
    #[serde(default, deserialize_with = "duration")]
    pub(crate) query_timeout: Option<Duration>,
    /// Memory all queries together may hold, e.g. "2G".
    #[serde(default, deserialize_with = "memory")]
    pub(crate) memory_limit: Option<usize>,
    pub(crate) max_concurrent_queries: Option<usize>,
    /// Where `lake serve` serves /metrics, /healthz and /readyz, e.g. "127.0.0.1:9464".
    pub(crate) metrics_addr: Option<SocketAddr>,
    /// Where `lake serve` serves its status page, e.g. "127.0.0.1:8080".
    pub(crate) http_addr: Option<SocketAddr>,
}

/// `[maintain]`: table maintenance, in the background of `lake ingest` and by `lake maintain`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MaintainSection {
    /// Whether `lake ingest` maintains its tables in the background.
    pub(crate) enabled: Option<bool>,
    /// How often the background task looks at the tables, e.g. "10s".
    #[serde(default, deserialize_with = "duration")]
    pub(crate) interval: Option<Duration>,
    /// Files are compacted towards this size, e.g. "128M".
    #[serde(default, deserialize_with = "memory")]
    pub(crate) target_file_size: Option<usize>,
    /// Fresh files are merged into files of up to this size every round, e.g. "1M".
    #[serde(default, deserialize_with = "memory")]
    pub(crate) small_file_size: Option<usize>,
    /// Files of one size class in a partition that are merged into one.
    pub(crate) min_files: Option<usize>,
    /// How long removed files and log entries are kept, e.g. "24h".
    #[serde(default, deserialize_with = "duration")]
    pub(crate) retention: Option<Duration>,
    /// At most this many versions of log entries are kept.
    pub(crate) max_log_versions: Option<u64>,
    /// How often the background task vacuums, e.g. "1h".
    #[serde(default, deserialize_with = "duration")]
    pub(crate) vacuum_interval: Option<Duration>,
    /// Columns compacted files are sorted by, e.g. ["user_id"]; [] keeps arrival order.
    pub(crate) cluster_by: Option<Vec<String>>,
}

impl FileConfig {
    /// Reads `path`; a missing file is only an error when it was asked for explicitly.
    pub(crate) fn load(path: &Path, explicit: bool) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                return Ok(Self::default())
            }
            Err(e) => return Err(Error::io(path.display(), e)),
        };
        toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }
}

/// Parses a duration such as `30s`, `5m` or `1h` (flags and the file alike).
pub(crate) fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} in {s:?} (use e.g. 30s, 5m or 1h)"))
}

/// Parses a memory size such as `512M` or `2G` (flags and the file alike).
pub(crate) fn parse_memory(s: &str) -> std::result::Result<usize, String> {
    datafusion::execution::context::SessionContext::parse_capacity_limit("memory limit", s)
        .map_err(|e| format!("{e} (use e.g. 512M or 1G)"))
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn memory<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<usize>, D::Error> {
    let text = String::deserialize(d)?;
    parse_memory(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// Parses `-X key=value` librdkafka overrides.
pub(crate) fn parse_kafka_override(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected key=value, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_file_is_valid() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("lake.toml.example");
        let c = FileConfig::load(&p, true).unwrap();
        assert_eq!(c.daily.lateness, Some(Duration::from_secs(600)));
        assert_eq!(c.schedule.cron.as_deref(), Some("0 2 * * *"));
    }

    #[test]
    fn unknown_keys_are_rejected_with_the_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lake.toml");
        std::fs::write(&p, "brokers = \"b:1\"\n[ingest]\nmax_rowz = 3\n").unwrap();
        let e = FileConfig::load(&p, true).unwrap_err().to_string();
        assert!(e.contains("lake.toml") && e.contains("max_rowz"), "{e}");
    }

    #[test]
    fn file_values_and_kafka_passthrough_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lake.toml");
        std::fs::write(
            &p,
            "brokers = \"b:1\"\n[ingest]\nmax_rows = 3\n[kafka]\n\"fetch.max.bytes\" = \"1000\"\n",
        )
        .unwrap();
        let c = FileConfig::load(&p, true).unwrap();
        assert_eq!(c.brokers.as_deref(), Some("b:1"));
        assert_eq!(c.ingest.max_rows, Some(3));
        assert_eq!(c.kafka["fetch.max.bytes"], "1000");
        assert!(FileConfig::load(&dir.path().join("none.toml"), false).is_ok());
        assert!(FileConfig::load(&dir.path().join("none.toml"), true).is_err());
    }

    #[test]
    fn durations_and_sizes_are_parsed_when_the_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lake.toml");
        std::fs::write(
            &p,
            "[serve]\nquery_timeout = \"90s\"\nmemory_limit = \"2M\"\n",
        )
        .unwrap();
        let c = FileConfig::load(&p, true).unwrap();
        assert_eq!(c.serve.query_timeout, Some(Duration::from_secs(90)));
        assert_eq!(c.serve.memory_limit, Some(2 * 1024 * 1024));
        std::fs::write(&p, "[daily]\nlateness = \"ten minutes\"\n").unwrap();
        let e = FileConfig::load(&p, true).unwrap_err().to_string();
        assert!(e.contains("lateness") && e.contains("ten minutes"), "{e}");
    }

    #[test]
    fn kafka_override_needs_key_and_value() {
        assert_eq!(
            parse_kafka_override("a.b=c=d").unwrap(),
            ("a.b".into(), "c=d".into())
        );
        assert!(parse_kafka_override("novalue").is_err());
    }

    mod fuzz {
        //! Any settings file: a configuration or an error naming the file, never a panic.
        use super::*;
        use crate::testing::fuzz_config;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(fuzz_config())]
            #[test]
            fn fuzz_lake_toml_is_read_or_refused(
                text in prop_oneof![
                    ".{0,400}",
                    "(\\[(ingest|daily|serve|maintain|schedule|kafka)\\]\n)?(lake_dir|brokers|topic|group|max_rows|max_latency_ms|lateness|wait|memory_limit|query_timeout|addr|interval|retention|min_files|target_file_size|max_log_versions|cron|[a-z_]{1,12}) = (\"[0-9a-zA-Z ]{0,12}\"|[0-9-]{1,25}|true|\\[\\])\n",
                ]
            ) {
                let dir = tempfile::tempdir().expect("tempdir");
                let p = dir.path().join("lake.toml");
                std::fs::write(&p, &text).expect("write");
                if let Err(e) = FileConfig::load(&p, true) {
                    prop_assert!(e.to_string().contains("lake.toml"), "{}", e);
                }
            }
        }
    }
}
