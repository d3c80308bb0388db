//! Buffered batches → one Delta commit that also carries the partitions' progress markers.
//! A conflicting marker written by another worker in the meantime makes the commit fail with
//! [`CommitOutcome::Conflict`]; other concurrent commits (appends, compaction) are retried by
//! delta-rs's conflict checker.

use datafusion::arrow::array::RecordBatch;
use deltalake::kernel::transaction::{
    CommitBuilder, CommitConflictError, CommitProperties, TransactionError,
};
use deltalake::kernel::{Action, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableError};

use crate::error::{Error, Result};
use crate::lake::TableId;

/// How a commit ended when it did not fail outright.
#[derive(Debug, PartialEq, Eq)]
pub enum CommitOutcome {
    Committed(u64),
    /// Another writer advanced one of our markers: our view of progress is stale.
    Conflict,
}

/// Writes `batch` (if any) as new files and commits them with `markers`, atomically.
pub async fn append(
    table: &mut DeltaTable,
    id: TableId,
    batch: Option<RecordBatch>,
    markers: Vec<Transaction>,
) -> Result<CommitOutcome> {
    let mut actions = Vec::new();
    if let Some(batch) = batch.filter(|b| b.num_rows() > 0) {
        let mut writer = RecordBatchWriter::for_table(table).map_err(|e| Error::delta(id, e))?;
        writer.write(batch).await.map_err(|e| Error::delta(id, e))?;
        let adds = writer.flush().await.map_err(|e| Error::delta(id, e))?;
        actions.extend(adds.into_iter().map(Action::Add));
    }
    let snapshot = table.snapshot().map_err(|e| Error::delta(id, e))?;
    let partition_cols: Vec<String> = snapshot.metadata().partition_columns().to_vec();
    let operation = DeltaOperation::Write {
        mode: SaveMode::Append,
        partition_by: (!partition_cols.is_empty()).then_some(partition_cols),
        predicate: None,
    };
    let properties = CommitProperties::default().with_application_transactions(markers);
    let result = CommitBuilder::from(properties)
        .with_actions(actions)
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
