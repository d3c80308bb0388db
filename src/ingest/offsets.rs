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

pub(crate) fn table_name(table: &DeltaTable) -> String {
    table.table_url().to_string()
}
