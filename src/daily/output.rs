//! Where a daily result lands: `processed.<name>`, partitioned by `date`. Writing replaces only
//! the rows of that date, in one Delta commit: a re-run is idempotent and a crash mid-run leaves
//! the previous rows in place. A column the SQL file gained is added to the table (older dates
//! read it as NULL). The result streams from the query into Parquet files, so a big result
//! needs no more memory than a small one.

use chrono::NaiveDate;
use std::sync::Arc;

use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{col, lit, DataFrame};
use deltalake::delta_datafusion::planner::DeltaPlanner;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use deltalake::DeltaTableBuilder;
use futures::TryStreamExt;

use super::dates::date_value;
use crate::error::{Error, Result};
use crate::lake::{dir_url, Lake};

/// The table a daily file writes.
pub(crate) fn table_name(file_name: &str) -> String {
    format!("processed.{file_name}")
}

/// Replaces the rows of `date` in `processed.<name>` with what `result` yields (run in its own
/// session, memory limit included); returns the table's name and the rows written.
pub(crate) async fn replace_date(
    lake: &Lake,
    name: &str,
    date: NaiveDate,
    result: DataFrame,
) -> Result<(String, usize)> {
    let table_name = table_name(name);
    let path = lake.root().join("processed").join(name);
    let exists = path.join("_delta_log").is_dir();
    std::fs::create_dir_all(&path).map_err(|e| Error::io(path.display(), e))?;
    let url = dir_url(&path)?;
    let table = if exists {
        deltalake::open_table(url).await
    } else {
        DeltaTableBuilder::from_url(url).and_then(|b| b.build())
    }
    .map_err(|e| Error::delta(&table_name, e))?;
    let predicate = col("date").eq(lit(date_value(date)));
    let (session, plan) = result.into_parts();
    // The writer plans its own nodes (row metrics) around ours; they need delta-rs's planner.
    let session = SessionStateBuilder::new_from_existing(session)
        .with_query_planner(DeltaPlanner::new())
        .build();
    let written = table
        .write(Vec::new())
        .with_input_plan(plan)
        .with_session_state(Arc::new(session))
        .with_save_mode(SaveMode::Overwrite)
        .with_replace_where(predicate)
        .with_partition_columns(["date"])
        .with_schema_mode(SchemaMode::Merge)
        .await
        .map_err(|e| Error::delta(&table_name, e))?;
    Ok((
        table_name.clone(),
        rows_added(&written)
            .await
            .map_err(|e| Error::delta(&table_name, e))?,
    ))
}

/// The rows the table's last commit added, from the metrics the writer records in it.
async fn rows_added(table: &deltalake::DeltaTable) -> deltalake::DeltaResult<usize> {
    let last: Vec<_> = table.history(Some(1)).try_collect().await?;
    Ok(last
        .first()
        .and_then(|c| c.info.get("operationMetrics"))
        .and_then(|m| m.get("num_added_rows"))
        .and_then(|n| n.as_u64())
        .unwrap_or(0) as usize)
}
