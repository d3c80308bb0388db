//! `lake maintain`: keeps tables healthy while ingest keeps appending.
//! Compaction rewrites small files into large ones per date partition (a commit that removes
//! and adds files without changing data, so it does not conflict with blind appends); vacuum
//! deletes files unreferenced for longer than the retention; a checkpoint bounds log replay.

use std::num::NonZeroU64;
use std::path::Path;

use deltalake::DeltaTable;

use super::Lake;
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct MaintainOptions {
    /// Files are compacted towards this size.
    pub target_file_bytes: NonZeroU64,
    /// Unreferenced files younger than this are kept (readers may still use them).
    pub retention: chrono::Duration,
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
pub struct MaintainReport {
    pub table: String,
    pub files_removed: u64,
    pub files_added: u64,
    pub files_vacuumed: usize,
    pub version: u64,
}

/// Every Delta table under the lake root, as `schema.table`.
pub fn list_tables(lake: &Lake) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for schema in read_dirs(lake.root())? {
        for table in read_dirs(&lake.root().join(&schema))? {
            if lake
                .root()
                .join(&schema)
                .join(&table)
                .join("_delta_log")
                .is_dir()
            {
                out.push(format!("{schema}.{table}"));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn read_dirs(dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir.display(), e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir.display(), e))?;
        if entry.path().is_dir() {
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
    }
    Ok(names)
}

/// Compacts, vacuums and checkpoints the table `name` (`schema.table`).
pub async fn maintain_table(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::offsets::marker;
    use crate::ingest::writer::{append, CommitOutcome};
    use crate::lake::{dead_letters_spec, DEAD_LETTERS};
    use datafusion::arrow::array::{
        ArrayRef, BinaryArray, Int32Array, Int64Array, RecordBatch, StringArray,
        TimestampMicrosecondArray,
    };
    use std::sync::Arc;

    fn dead_letters(offset: i64) -> RecordBatch {
        let ts =
            || Arc::new(TimestampMicrosecondArray::from(vec![0]).with_timezone("UTC")) as ArrayRef;
        RecordBatch::try_new(
            crate::event::DEAD_LETTERS_SCHEMA.clone(),
            vec![
                Arc::new(StringArray::from(vec!["t"])),
                Arc::new(Int32Array::from(vec![0])),
                Arc::new(Int64Array::from(vec![offset])),
                ts(),
                Arc::new(BinaryArray::from(vec![Some(b"k".as_ref())])),
                Arc::new(BinaryArray::from(vec![Some(b"x".as_ref())])),
                Arc::new(StringArray::from(vec!["r"])),
                ts(),
            ],
        )
        .unwrap()
    }

    /// A dead-letter table with `commits` one-row appends, each marking its offset.
    async fn table_with_commits(commits: i64) -> (tempfile::TempDir, Lake, DeltaTable) {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(dir.path()).unwrap();
        let mut table = lake.open_or_create(&dead_letters_spec()).await.unwrap();
        for offset in 0..commits {
            let rows = Some(dead_letters(offset));
            let outcome = append(&mut table, DEAD_LETTERS, rows, vec![marker("t", 0, offset)])
                .await
                .unwrap();
            assert!(matches!(outcome, CommitOutcome::Committed(_)));
        }
        (dir, lake, table)
    }

    #[tokio::test]
    async fn appends_write_a_checkpoint_every_hundred_commits() {
        let (_dir, lake, _) = table_with_commits(100).await;
        let log = lake.table_path(DEAD_LETTERS).join("_delta_log");
        let checkpoints = std::fs::read_dir(&log)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().ends_with(".checkpoint.parquet")
            })
            .count();
        assert_eq!(
            checkpoints, 1,
            "delta-rs checkpoints every 100 versions by default"
        );
        assert!(log.join("_last_checkpoint").exists());
        let reopened = lake.open(DEAD_LETTERS).await.unwrap().unwrap();
        let marks = crate::ingest::offsets::committed(&reopened, "t", [0])
            .await
            .unwrap();
        assert_eq!(
            marks[&0],
            Some(99),
            "markers are read back through the checkpoint"
        );
    }

    #[tokio::test]
    async fn compaction_merges_small_files_and_keeps_rows_and_markers() {
        let (_dir, lake, table) = table_with_commits(5).await;
        assert_eq!(table.snapshot().unwrap().log_data().num_files(), 5);
        let r = maintain_table(
            &lake,
            "raw.user_events_dead_letters",
            &MaintainOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!((r.files_removed, r.files_added), (5, 1));
        let table = lake.open(DEAD_LETTERS).await.unwrap().unwrap();
        assert_eq!(table.snapshot().unwrap().log_data().num_files(), 1);
        let marks = crate::ingest::offsets::committed(&table, "t", [0])
            .await
            .unwrap();
        assert_eq!(marks[&0], Some(4), "markers survive compaction");
        assert!(lake
            .table_path(DEAD_LETTERS)
            .join("_delta_log/_last_checkpoint")
            .exists());
        assert_eq!(
            list_tables(&lake).unwrap(),
            vec!["raw.user_events_dead_letters"]
        );
        let missing = maintain_table(&lake, "raw.nope", &MaintainOptions::default()).await;
        assert!(missing
            .unwrap_err()
            .to_string()
            .contains("no Delta table raw.nope"));
    }
}
