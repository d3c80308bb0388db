//! Where progress is made durable: the last ingested Kafka offset of each topic-partition is a
//! Delta application transaction (`txn` action) in the table itself, written in the same commit
//! as the rows. Kafka's committed offsets are informational only.

use std::collections::BTreeMap;

use deltalake::kernel::Transaction;
use deltalake::DeltaTable;

use crate::error::{Error, Result};

/// Application id of a topic-partition's progress marker.
pub fn app_id(topic: &str, partition: i32) -> String {
    format!("lake-ingest:{topic}:{partition}")
}

/// The marker saying "everything up to `last_offset` of this partition is in the table".
pub fn marker(topic: &str, partition: i32, last_offset: i64) -> Transaction {
    Transaction::new(app_id(topic, partition), last_offset)
}

/// Last committed offset per partition as recorded in `table`'s current snapshot
/// (None: nothing of that partition ingested yet).
pub async fn committed(
    table: &DeltaTable,
    topic: &str,
    partitions: impl IntoIterator<Item = i32>,
) -> Result<BTreeMap<i32, Option<i64>>> {
    let name = table_name(table);
    let snapshot = table.snapshot().map_err(|e| Error::delta(&name, e))?;
    let log_store = table.log_store();
    let mut out = BTreeMap::new();
    for p in partitions {
        let v = snapshot
            .transaction_version(log_store.as_ref(), &app_id(topic, p))
            .await
            .map_err(|e| Error::delta(&name, e))?;
        out.insert(p, v);
    }
    Ok(out)
}

/// Partitions are probed 0, 1, ... until one has no marker; topics are far smaller than this.
const MAX_PARTITIONS: i32 = 10_000;

/// Every partition of `topic` with a marker in `table`, and its last committed offset. Kafka
/// numbers partitions from 0 without gaps, so probing stops at the first without a marker.
pub async fn all_committed(table: &DeltaTable, topic: &str) -> Result<Vec<(i32, i64)>> {
    let mut out = Vec::new();
    for p in 0..MAX_PARTITIONS {
        match committed(table, topic, [p])
            .await?
            .get(&p)
            .copied()
            .flatten()
        {
            Some(offset) => out.push((p, offset)),
            None => break,
        }
    }
    Ok(out)
}

pub(crate) fn table_name(table: &DeltaTable) -> String {
    table.table_url().to_string()
}
