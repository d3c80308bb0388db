//! `lake.toml`: the settings file. Precedence, highest first: command-line flags, `LAKE_*`
//! environment variables (both handled by clap in `main.rs`), this file, built-in defaults.
//! `lake.toml.example` at the repository root documents every key with its default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Lake root directory.
    pub lake_dir: Option<PathBuf>,
    /// Kafka bootstrap servers.
    pub brokers: Option<String>,
    /// Topic of the events.
    pub topic: Option<String>,
    #[serde(default)]
    pub ingest: IngestSection,
    #[serde(default)]
    pub daily: DailySection,
    #[serde(default)]
    pub schedule: ScheduleSection,
    #[serde(default)]
    pub serve: ServeSection,
    /// librdkafka properties passed through to every Kafka client.
    #[serde(default)]
    pub kafka: BTreeMap<String, String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSection {
    pub group: Option<String>,
    pub instance_id: Option<String>,
    pub max_rows: Option<usize>,
    pub max_bytes: Option<usize>,
    pub max_latency_ms: Option<u64>,
    pub max_payload_bytes: Option<usize>,
    pub event_types: Option<Vec<String>>,
    pub stats_interval_s: Option<u64>,
}

/// `[daily]`: the daily job (`lake daily`, `lake schedule`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DailySection {
    /// Folder with `daily/` and `checks/`.
    pub sql_dir: Option<PathBuf>,
    /// How late events may arrive after their day ends, e.g. "10m".
    pub lateness: Option<String>,
    /// How long the sensor waits for a day to complete, e.g. "2h".
    pub wait: Option<String>,
    /// Memory queries may hold before spilling to disk, e.g. "1G".
    pub memory_limit: Option<String>,
}

/// `[schedule]`: when `lake schedule` runs the daily job.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSection {
    /// Cron expression, e.g. "0 2 * * *".
    pub cron: Option<String>,
    /// IANA timezone of the cron time and of "yesterday", e.g. "Europe/Berlin".
    pub timezone: Option<String>,
    pub retries: Option<u32>,
    /// First retry delay, doubling after, e.g. "1m".
    pub retry_backoff: Option<String>,
}

/// `[serve]`: `lake serve` (Flight SQL).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSection {
    /// Address to listen on, e.g. "127.0.0.1:50051".
    pub addr: Option<String>,
    /// Login required when both are set (prefer LAKE_SERVE_PASSWORD for the password).
    pub user: Option<String>,
    pub password: Option<String>,
    /// PEM files; TLS is on when both are set.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Longest a query may run, e.g. "60s".
    pub query_timeout: Option<String>,
    /// Memory all queries together may hold, e.g. "2G".
    pub memory_limit: Option<String>,
    pub max_concurrent_queries: Option<usize>,
}

impl FileConfig {
    /// Reads `path`; a missing file is only an error when it was asked for explicitly.
    pub fn load(path: &Path, explicit: bool) -> Result<Self> {
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

/// Parses `-X key=value` librdkafka overrides.
pub fn parse_kafka_override(s: &str) -> std::result::Result<(String, String), String> {
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
        assert_eq!(c.daily.lateness.as_deref(), Some("10m"));
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
    fn kafka_override_needs_key_and_value() {
        assert_eq!(
            parse_kafka_override("a.b=c=d").unwrap(),
            ("a.b".into(), "c=d".into())
        );
        assert!(parse_kafka_override("novalue").is_err());
    }
}
