//! Tables as maintenance sees them: version, live files and bytes, and what maintenance did.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::Table;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Outcome {
    pub(crate) table: String,
    /// `ok` or `failed`.
    pub(crate) status: String,
}

pub(crate) struct TableMetrics {
    pub(crate) version: Family<Table, Gauge>,
    pub(crate) live_files: Family<Table, Gauge>,
    pub(crate) live_bytes: Family<Table, Gauge>,
    pub(crate) maintain_runs: Family<Outcome, Counter>,
    pub(crate) files_compacted: Family<Table, Counter>,
    pub(crate) files_written: Family<Table, Counter>,
    pub(crate) files_vacuumed: Family<Table, Counter>,
}

impl TableMetrics {
    pub(super) fn register(r: &mut Registry) -> Self {
        let m = Self {
            version: Family::default(),
            live_files: Family::default(),
            live_bytes: Family::default(),
            maintain_runs: Family::default(),
            files_compacted: Family::default(),
            files_written: Family::default(),
            files_vacuumed: Family::default(),
        };
        r.register(
            "table_version",
            "Latest Delta version seen",
            m.version.clone(),
        );
        r.register(
            "table_live_files",
            "Data files in the latest version",
            m.live_files.clone(),
        );
        r.register_with_unit(
            "table_live",
            "Bytes of the data files in the latest version",
            Unit::Bytes,
            m.live_bytes.clone(),
        );
        r.register(
            "maintain_runs",
            "Background maintenance rounds by table and outcome",
            m.maintain_runs.clone(),
        );
        r.register(
            "maintain_files_compacted",
            "Data files merged away by compaction",
            m.files_compacted.clone(),
        );
        r.register(
            "maintain_files_written",
            "Data files compaction wrote",
            m.files_written.clone(),
        );
        r.register(
            "maintain_files_vacuumed",
            "Files deleted by vacuum",
            m.files_vacuumed.clone(),
        );
        m
    }

    /// The table's latest snapshot: its version, live files and bytes.
    pub(crate) fn observe(&self, table: &deltalake::DeltaTable, name: &str) {
        let Ok(snapshot) = table.snapshot() else {
            return;
        };
        let labels = Table::new(name);
        let (mut files, mut bytes) = (0i64, 0i64);
        for file in snapshot.log_data().iter() {
            files += 1;
            bytes += file.size();
        }
        let version = i64::try_from(table.version().unwrap_or_default()).unwrap_or(i64::MAX);
        self.version.get_or_create(&labels).set(version);
        self.live_files.get_or_create(&labels).set(files);
        self.live_bytes.get_or_create(&labels).set(bytes);
    }

    pub(crate) fn maintained(&self, name: &str, ok: bool) {
        let labels = Outcome {
            table: name.to_string(),
            status: if ok { "ok" } else { "failed" }.to_string(),
        };
        self.maintain_runs.get_or_create(&labels).inc();
    }
}
