//! Ingest progress as the lake records it: the last ingested Kafka offset of each
//! topic-partition is a Delta application transaction (`txn` action) named
//! `lake-ingest:<source>:<partition>`, written by ingest in the same commit as the rows
//! (`ingest/offsets.rs`). Ingest, the daily sensor and the control API read it from here.

use std::collections::BTreeMap;

use deltalake::DeltaTable;

use crate::error::{Error, Result};

/// Application id of a topic-partition's progress marker.
pub(crate) fn app_id(source: &str, partition: i32) -> String {
    format!("lake-ingest:{source}:{partition}")
}

/// Last committed offset per partition as recorded in `table`'s current snapshot
/// (None: nothing of that partition ingested yet).
pub(crate) async fn committed(
    table: &DeltaTable,
    source: &str,
    partitions: impl IntoIterator<Item = i32>,
) -> Result<BTreeMap<i32, Option<i64>>> {
    let name = table.table_url().to_string();
    let snapshot = table.snapshot().map_err(|e| Error::delta(&name, e))?;
    let log_store = table.log_store();
    let mut out = BTreeMap::new();
    for p in partitions {
        let v = snapshot
            .transaction_version(log_store.as_ref(), &app_id(source, p))
            .await
            .map_err(|e| Error::delta(&name, e))?;
        out.insert(p, v);
    }
    Ok(out)
}

/// Partitions are probed 0, 1, ... up to here; topics are far smaller than this.
const MAX_PARTITIONS: i32 = 10_000;
/// Probing ends after this many partitions in a row without a marker. A partition that never
/// received a message has none, so a gap does not end the topic: one empty partition must not
/// hide the partitions after it from the sensor.
const GAP: i32 = 16;

/// Every partition of `source` with a marker in `table`, and its last committed offset.
pub(crate) async fn all_committed(table: &DeltaTable, source: &str) -> Result<Vec<(i32, i64)>> {
    let mut out = Vec::new();
    let mut missing = 0;
    for p in 0..MAX_PARTITIONS {
        let marker = committed(table, source, [p])
            .await?
            .get(&p)
            .copied()
            .flatten();
        match marker {
            Some(offset) => {
                out.push((p, offset));
                missing = 0;
            }
            None if missing + 1 >= GAP => break,
            None => missing += 1,
        }
    }
    Ok(out)
}
