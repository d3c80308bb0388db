//! Buffered batches → one Delta commit that also carries the partitions' progress markers.
//! A conflicting marker written by another worker in the meantime makes the commit fail with
//! [`CommitOutcome::Conflict`]; other concurrent commits (appends, compaction) are retried by
//! delta-rs's conflict checker.

use datafusion::arrow::array::RecordBatch;
use deltalake::kernel::transaction::{
    CommitBuilder, CommitConflictError, CommitProperties, TransactionError,
};
use deltalake::kernel::{Action, Add, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableError};

use crate::error::{Error, Result};
use crate::lake::{file_format, TableId};

/// How a commit ended when it did not fail outright.
#[derive(Debug, PartialEq, Eq)]
pub enum CommitOutcome {
    Committed(u64),
    /// Another writer advanced one of our markers: our view of progress is stale.
    Conflict,
}

/// Writes `batches` as new files and commits them with `markers`, atomically (no batch: the
/// markers alone); see [`write_files`] and [`commit_files`].
pub async fn append(
    table: &mut DeltaTable,
    id: TableId,
    batches: Vec<RecordBatch>,
    sorted_by: &[String],
    markers: Vec<Transaction>,
) -> Result<CommitOutcome> {
    let adds = write_files(table, id, batches, sorted_by).await?;
    commit_files(table, id, adds, markers).await
}

/// Writes `batches` as new files of the table, each batch files of its own, and returns them as
/// add actions; nothing is visible until [`commit_files`] commits them (files of a commit that
/// never lands are vacuumed). Each batch's rows are in the order of the `sorted_by` columns
/// (none: any order), which the files' footers then name (see [`file_format`]); batches are not
/// in order of each other, so none shares a file.
pub(crate) async fn write_files(
    table: &DeltaTable,
    id: TableId,
    batches: Vec<RecordBatch>,
    sorted_by: &[String],
) -> Result<Vec<Add>> {
    let batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
    if batches.is_empty() {
        return Ok(Vec::new());
    }
    let snapshot = table.snapshot().map_err(|e| Error::delta(id, e))?;
    let partition_cols: Vec<String> = snapshot.metadata().partition_columns().to_vec();
    let writer = RecordBatchWriter::for_table(table).map_err(|e| Error::delta(id, e))?;
    let properties = file_format::writer_properties(
        &writer.arrow_schema(),
        sorted_by,
        file_format::FRESH_GROUP_ROWS,
    );
    let mut writer = writer.with_writer_properties(properties);
    let mut adds = Vec::new();
    for batch in batches {
        file_format::write_rows(&mut writer, batch, &partition_cols)
            .await
            .map_err(|e| Error::delta(id, e))?;
        adds.extend(writer.flush().await.map_err(|e| Error::delta(id, e))?);
    }
    Ok(adds)
}

/// Commits files [`write_files`] wrote, with `markers`, as one commit. A conflicting marker
/// written by another worker in the meantime makes it [`CommitOutcome::Conflict`].
pub(crate) async fn commit_files(
    table: &mut DeltaTable,
    id: TableId,
    adds: Vec<Add>,
    markers: Vec<Transaction>,
) -> Result<CommitOutcome> {
    let snapshot = table.snapshot().map_err(|e| Error::delta(id, e))?;
    let partition_cols: Vec<String> = snapshot.metadata().partition_columns().to_vec();
    let operation = DeltaOperation::Write {
        mode: SaveMode::Append,
        partition_by: (!partition_cols.is_empty()).then_some(partition_cols),
        predicate: None,
    };
    let properties = CommitProperties::default()
        .with_application_transactions(markers)
        // By default delta-rs lists and stats the whole log after every commit to delete expired
        // entries: a cost that grows with the log. Maintenance does it once per vacuum round.
        .with_cleanup_expired_logs(Some(false));
    let result = CommitBuilder::from(properties)
        .with_actions(adds.into_iter().map(Action::Add).collect())
        .build(Some(snapshot), table.log_store(), operation)
        .await;
    match result {
        Ok(finalized) => {
            let version = finalized.version();
            table.state = Some(finalized.snapshot());
            Ok(CommitOutcome::Committed(version))
        }
        Err(e) if is_marker_conflict(&e) => Ok(CommitOutcome::Conflict),
        Err(e) => Err(Error::delta(id, e)),
    }
}

fn is_marker_conflict(e: &DeltaTableError) -> bool {
    matches!(
        e,
        DeltaTableError::Transaction {
            source: TransactionError::CommitConflict(CommitConflictError::ConcurrentTransaction)
        }
    )
}

#[cfg(test)]
pub(crate) mod tests {
    //! Appends with markers, then maintenance: what ingest's commits must survive.
    use super::*;
    use crate::ingest::offsets::marker;
    use crate::lake::maintain::{maintain_table, MaintainOptions};
    use crate::lake::{dead_letters_spec, Lake, DEAD_LETTERS};
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

    /// Commits the one-row dead-letter batch of `offset` with its marker.
    async fn append_marked(table: &mut DeltaTable, offset: i64) {
        let rows = vec![dead_letters(offset)];
        let marks = vec![marker("t", 0, offset)];
        let outcome = append(table, DEAD_LETTERS, rows, &[], marks).await.unwrap();
        assert!(matches!(outcome, CommitOutcome::Committed(_)));
    }

    /// A dead-letter table with `commits` one-row appends, each marking its offset.
    pub(crate) async fn table_with_commits(commits: i64) -> (tempfile::TempDir, Lake, DeltaTable) {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(dir.path()).unwrap();
        let mut table = lake.open_or_create(&dead_letters_spec()).await.unwrap();
        for offset in 0..commits {
            append_marked(&mut table, offset).await;
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
        let marks = crate::lake::progress::committed(&reopened, "t", [0])
            .await
            .unwrap();
        assert_eq!(
            marks[&0],
            Some(99),
            "markers are read back through the checkpoint"
        );
    }

    /// Rows and distinct offsets of the dead-letter table as a reader sees it.
    async fn rows_and_offsets(table: &DeltaTable) -> (i64, i64) {
        let ctx = datafusion::prelude::SessionContext::new();
        ctx.register_table("t", table.table_provider().await.unwrap())
            .unwrap();
        let batches = ctx
            .sql("SELECT count(*), count(DISTINCT kafka_offset) FROM t")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let col = |i: usize| {
            batches[0]
                .column(i)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .value(0)
        };
        (col(0), col(1))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn background_compaction_beside_appends_loses_and_repeats_nothing() {
        use crate::lake::maintainer;
        use crate::shutdown::CancellationToken;
        use std::time::Duration;

        let (_dir, lake, table) = table_with_commits(1).await;
        let opts = MaintainOptions {
            interval: Duration::from_millis(20),
            // Every file is "medium" and 2 of them trigger the second tier too.
            small_file_bytes: std::num::NonZeroU64::MIN,
            min_files: 2,
            ..MaintainOptions::default()
        };
        // Done once per table (a metadata commit, which a concurrent append would have to retry:
        // ingest's committer does, this loop does not).
        let mut table = crate::lake::maintain::apply_retention(table, "dl", opts.retention)
            .await
            .unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(maintainer::run(
            lake.clone(),
            vec![DEAD_LETTERS],
            opts,
            || true,
            stop.clone(),
        ));
        for offset in 1..80 {
            append_marked(&mut table, offset).await;
            if offset % 10 == 0 {
                let reader = lake.open(DEAD_LETTERS).await.unwrap().unwrap();
                let (rows, offsets) = rows_and_offsets(&reader).await;
                assert_eq!(
                    (rows, offsets),
                    (offset + 1, offset + 1),
                    "a reader mid-way"
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.cancel();
        task.await.unwrap();

        let table = lake.open(DEAD_LETTERS).await.unwrap().unwrap();
        assert_eq!(rows_and_offsets(&table).await, (80, 80));
        let files = table.snapshot().unwrap().log_data().num_files();
        assert!(
            files < 40,
            "compaction kept up with 80 appends: {files} files"
        );
        let marks = crate::lake::progress::committed(&table, "t", [0])
            .await
            .unwrap();
        assert_eq!(marks[&0], Some(79));
        let config = table.snapshot().unwrap().metadata().configuration().clone();
        assert_eq!(
            config.get("delta.logRetentionDuration").map(String::as_str),
            Some("interval 3600 seconds"),
            "the retention is the table's own"
        );
    }

    #[tokio::test]
    async fn partitions_after_one_without_a_marker_are_still_found() {
        use crate::lake::progress::all_committed;
        let (_dir, _lake, mut table) = table_with_commits(0).await;
        // Partition 1 never received a message; 0, 2 and 5 did.
        let marks = vec![marker("t", 0, 7), marker("t", 2, 3), marker("t", 5, 9)];
        let outcome = append(&mut table, DEAD_LETTERS, vec![], &[], marks)
            .await
            .unwrap();
        assert!(matches!(outcome, CommitOutcome::Committed(_)));
        assert_eq!(
            all_committed(&table, "t").await.unwrap(),
            vec![(0, 7), (2, 3), (5, 9)]
        );
        assert_eq!(all_committed(&table, "other").await.unwrap(), vec![]);
    }

    #[tokio::test]
    async fn the_log_keeps_at_most_max_log_versions_behind_a_checkpoint() {
        let (_dir, lake, table) = table_with_commits(250).await;
        let log = lake.table_path(DEAD_LETTERS).join("_delta_log");
        let commits = || {
            std::fs::read_dir(&log)
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|x| x == "json")
                })
                .count()
        };
        assert_eq!(commits(), 251);
        let opts = MaintainOptions {
            max_log_versions: 60,
            ..MaintainOptions::default()
        };
        let deleted = crate::lake::maintain::clean_log(&table, "dl", &opts)
            .await
            .unwrap();
        // Version 250 - 60 = 190: the entries before the newest checkpoint at or below it go
        // (about a hundred); what remains is at most 60 + one checkpoint interval.
        assert!(deleted >= 99, "{deleted} deleted");
        assert_eq!(commits(), 251 - deleted);
        assert!(commits() <= 60 + 100 + 1, "{} entries left", commits());
        let reopened = lake.open(DEAD_LETTERS).await.unwrap().unwrap();
        assert_eq!(rows_and_offsets(&reopened).await, (250, 250));
        let marks = crate::lake::progress::committed(&reopened, "t", [0])
            .await
            .unwrap();
        assert_eq!(marks[&0], Some(249));
    }

    #[tokio::test]
    async fn files_no_commit_added_are_vacuumed_once_a_day_old() {
        use std::time::{Duration, SystemTime};
        let (_dir, lake, _) = table_with_commits(3).await;
        let folder = lake.table_path(DEAD_LETTERS);
        // What a writer killed between writing its file and committing leaves behind.
        let orphan = |name: &str, hours: u64| {
            let path = folder.join(name);
            std::fs::write(&path, b"PAR1").unwrap();
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            let then = SystemTime::now() - Duration::from_secs(hours * 3600);
            file.set_modified(then).unwrap();
            path
        };
        let old = orphan("part-00000-old-orphan.snappy.parquet", 25);
        let fresh = orphan("part-00000-fresh-orphan.snappy.parquet", 0);
        let r = maintain_dead_letters(&lake).await;
        assert!(!old.exists(), "a day-old orphan is deleted");
        assert!(
            fresh.exists(),
            "a fresh one may belong to a commit under way"
        );
        assert_eq!(r.files_vacuumed, 1);
        let table = lake.open(DEAD_LETTERS).await.unwrap().unwrap();
        assert_eq!(rows_and_offsets(&table).await, (3, 3));
    }

    #[tokio::test]
    async fn a_concurrent_metadata_commit_is_a_commit_conflict() {
        let (_dir, lake, stale) = table_with_commits(2).await;
        let fresh = lake.open(DEAD_LETTERS).await.unwrap().unwrap();
        let hour = std::time::Duration::from_secs(3600);
        crate::lake::maintain::apply_retention(fresh, "t", hour)
            .await
            .unwrap();
        // The stale handle's own metadata commit now meets the one above.
        let e = crate::lake::maintain::apply_retention(stale, "t", 2 * hour)
            .await
            .unwrap_err();
        assert!(e.is_commit_conflict(), "{e}");
        assert!(!Error::Other("x".into()).is_commit_conflict());
    }

    /// `lake maintain` with the defaults on the dead-letter table.
    async fn maintain_dead_letters(lake: &Lake) -> crate::lake::maintain::MaintainReport {
        maintain_table(lake, &DEAD_LETTERS.to_string(), &MaintainOptions::default())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn compaction_merges_small_files_and_keeps_rows_and_markers() {
        let (_dir, lake, table) = table_with_commits(5).await;
        assert_eq!(table.snapshot().unwrap().log_data().num_files(), 5);
        let r = maintain_dead_letters(&lake).await;
        assert_eq!((r.files_removed, r.files_added), (5, 1));
        let table = lake.open(DEAD_LETTERS).await.unwrap().unwrap();
        assert_eq!(table.snapshot().unwrap().log_data().num_files(), 1);
        let marks = crate::lake::progress::committed(&table, "t", [0])
            .await
            .unwrap();
        assert_eq!(marks[&0], Some(4), "markers survive compaction");
        assert!(lake
            .table_path(DEAD_LETTERS)
            .join("_delta_log/_last_checkpoint")
            .exists());
        assert_eq!(
            lake.tables_now().unwrap(),
            vec!["raw.user_events_dead_letters"]
        );
        let missing = maintain_table(&lake, "raw.nope", &MaintainOptions::default()).await;
        assert!(missing
            .unwrap_err()
            .to_string()
            .contains("no Delta table raw.nope"));
    }
}
