//! `lake maintain`: keeps tables healthy while ingest keeps appending.
//! Compaction rewrites small files into large ones per date partition (a commit that removes
//! and adds files without changing data, so it does not conflict with blind appends); vacuum
//! deletes files unreferenced for longer than the retention; a checkpoint bounds log replay.

use std::num::NonZeroU64;

use deltalake::DeltaTable;

use super::Lake;
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub(crate) struct MaintainOptions {
    /// Files are compacted towards this size.
    pub(crate) target_file_bytes: NonZeroU64,
    /// Unreferenced files younger than this are kept (readers may still use them).
    pub(crate) retention: chrono::Duration,
}

impl Default for MaintainOptions {
    fn default() -> Self {
        Self {
            target_file_bytes: NonZeroU64::new(128 * 1024 * 1024).unwrap_or(NonZeroU64::MIN),
            retention: chrono::Duration::hours(168),
        }
    }
}

/// What maintenance did to one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MaintainReport {
    pub(crate) table: String,
    pub(crate) files_removed: u64,
    pub(crate) files_added: u64,
    pub(crate) files_vacuumed: usize,
    pub(crate) version: u64,
}

/// Compacts, vacuums and checkpoints the table `name` (`schema.table`).
pub(crate) async fn maintain_table(
    lake: &Lake,
    name: &str,
    opts: &MaintainOptions,
) -> Result<MaintainReport> {
    let Some((schema, table)) = name.split_once('.') else {
        return Err(Error::Config(format!(
            "table {name:?} must be schema.table"
        )));
    };
    let path = lake.root().join(schema).join(table);
    if !path.join("_delta_log").is_dir() {
        return Err(Error::Config(format!(
            "no Delta table {name} under {}",
            lake.root().display()
        )));
    }
    let table: DeltaTable = deltalake::open_table(super::dir_url(&path)?)
        .await
        .map_err(|e| Error::delta(name, e))?;
    let (table, compacted) = table
        .optimize()
        .with_target_size(opts.target_file_bytes)
        .await
        .map_err(|e| Error::delta(name, e))?;
    let (table, vacuumed) = table
        .vacuum()
        .with_retention_period(opts.retention)
        // Retentions under the table's default (7 days) are the operator's explicit choice.
        .with_enforce_retention_duration(false)
        .await
        .map_err(|e| Error::delta(name, e))?;
    deltalake::checkpoints::create_checkpoint(&table, None)
        .await
        .map_err(|e| Error::delta(name, e))?;
    Ok(MaintainReport {
        table: name.to_string(),
        files_removed: compacted.num_files_removed,
        files_added: compacted.num_files_added,
        files_vacuumed: vacuumed.files_deleted.len(),
        version: table.version().unwrap_or_default(),
    })
}
