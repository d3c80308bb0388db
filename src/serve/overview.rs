//! What the lake holds right now, read from Delta metadata: every table's version, rows, files,
//! bytes and last commit, and ingest's progress per partition. The control API
//! (ListTables, IngestStatus) and the status page ([`super::status`]) both show these.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::daily::sensor;
use crate::error::{Error, Result};
use crate::lake::{progress, Lake, USER_EVENTS};

/// One table's latest version.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(crate) struct TableSummary {
    /// `schema.table`, e.g. `raw.user_events`.
    pub(crate) name: String,
    pub(crate) version: i64,
    pub(crate) rows: i64,
    pub(crate) files: i64,
    pub(crate) bytes: i64,
    pub(crate) last_commit: Option<DateTime<Utc>>,
}

/// One partition of the ingested topic.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(crate) struct PartitionSummary {
    pub(crate) partition: i32,
    /// Last Kafka offset committed to the lake.
    pub(crate) last_offset: i64,
    /// The newest event time among the partition's rows.
    pub(crate) watermark: Option<DateTime<Utc>>,
}

/// Every table of the lake that has a commit, in catalog order.
pub(crate) async fn tables(lake: &Lake) -> Result<Vec<TableSummary>> {
    let mut out = Vec::new();
    for name in lake.tables().await? {
        let Some((schema, table)) = name.split_once('.') else {
            continue;
        };
        let delta = lake.open_named(schema, table).await?;
        let Some(version) = delta.version() else {
            continue; // created but no commit yet
        };
        let snapshot = delta.snapshot().map_err(|e| Error::delta(&name, e))?;
        let (mut files, mut bytes, mut rows) = (0i64, 0i64, Some(0i64));
        for file in snapshot.log_data().iter() {
            files += 1;
            bytes += file.size();
            rows = rows.zip(file.num_records()).map(|(r, n)| r + n as i64);
        }
        let rows = match rows {
            Some(rows) => rows,
            // A file written without statistics: count its rows the slow way.
            None => count_rows(&delta, &name).await?,
        };
        let last_commit = snapshot
            .version_timestamp(version)
            .and_then(DateTime::from_timestamp_millis);
        out.push(TableSummary {
            name,
            version: i64::try_from(version).unwrap_or(i64::MAX),
            rows,
            files,
            bytes,
            last_commit,
        });
    }
    Ok(out)
}

async fn count_rows(delta: &deltalake::DeltaTable, name: &str) -> Result<i64> {
    let provider = delta
        .table_provider()
        .await
        .map_err(|e| Error::Other(format!("{name}: {e}")))?;
    let ctx = datafusion::prelude::SessionContext::new();
    let rows = ctx.read_table(provider)?.count().await?;
    Ok(i64::try_from(rows).unwrap_or(i64::MAX))
}

/// Per partition of `topic`: the last offset ingested into `raw.user_events` and the newest
/// event time (events more than `max_future_skew` ahead of the clock do not count).
pub(crate) async fn ingest(
    lake: &Lake,
    topic: &str,
    max_future_skew: Duration,
) -> Result<Vec<PartitionSummary>> {
    let Some(table) = lake.open(USER_EVENTS).await? else {
        return Ok(Vec::new());
    };
    let committed = progress::all_committed(&table, topic).await?;
    let watermarks = sensor::watermarks(lake, None, max_future_skew).await?;
    Ok(committed
        .into_iter()
        .map(|(partition, last_offset)| PartitionSummary {
            partition,
            last_offset,
            watermark: watermarks.get(&partition).copied(),
        })
        .collect())
}
