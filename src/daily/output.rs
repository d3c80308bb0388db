//! Where a daily result lands: `processed.<name>`, partitioned by `date`. Writing replaces only
//! the rows of that date, in one Delta commit: a re-run is idempotent and a crash mid-run leaves
//! the previous rows in place. A column the SQL file gained is added to the table (older dates
//! read it as NULL). The result streams from the query into Parquet files, so a big result
//! needs no more memory than a small one.
//!
//! A run first writes each result to a staging table of its own (`<lake>/_staging/<run id>/`,
//! not part of the catalog); only when the checks pass is it copied into `processed.<name>`
//! (write, audit, publish), so a failed check never leaves wrong rows visible.

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, Utc};

use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{col, lit, DataFrame};
use deltalake::delta_datafusion::planner::DeltaPlanner;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use futures::{StreamExt, TryStreamExt};
use url::Url;

use super::dates::date_value;
use crate::error::{Error, Result};
use crate::lake::{child_url, store_path, Lake};

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
    let url = published_url(lake, name)?;
    let rows = write_date(lake, &url, &table_name, date, result).await?;
    Ok((table_name, rows))
}

/// The URL of `processed.<name>`.
pub(crate) fn published_url(lake: &Lake, name: &str) -> Result<Url> {
    lake.url_of("processed", name)
}

/// The folder where run `run_id` stages its results.
pub(crate) fn staging_url(lake: &Lake, run_id: &str) -> Result<Url> {
    child_url(&child_url(lake.root_url(), STAGING)?, run_id)
}

/// What runs that crashed staged is deleted after this long.
const STAGING_KEPT: Duration = Duration::from_secs(24 * 3600);

/// Deletes what a run staged (and what runs that crashed staged more than a day ago).
pub(crate) async fn clean_staging(lake: &Lake, run_id: &str) {
    let Ok(staging) = child_url(lake.root_url(), STAGING) else {
        return;
    };
    let Some(store) = lake.remote_store() else {
        return clean_local_staging(&staging, run_id);
    };
    let mine = store_path(&staging).join(run_id);
    let mut objects = store.list(Some(&store_path(&staging)));
    let mut doomed = Vec::new();
    while let Some(Ok(object)) = objects.next().await {
        let old = (Utc::now() - object.last_modified)
            .to_std()
            .is_ok_and(|age| age > STAGING_KEPT);
        if old || object.location.prefix_matches(&mine) {
            doomed.push(Ok(object.location));
        }
    }
    drop(objects);
    let mut deleted = store.delete_stream(futures::stream::iter(doomed).boxed());
    while deleted.next().await.is_some() {}
}

fn clean_local_staging(staging: &Url, run_id: &str) {
    let Ok(staging) = staging.to_file_path() else {
        return;
    };
    let _ = std::fs::remove_dir_all(staging.join(run_id));
    let Ok(entries) = std::fs::read_dir(&staging) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STAGING_KEPT);
        if old {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    // Only when empty: another run may be staging meanwhile.
    let _ = std::fs::remove_dir(&staging);
}

/// Staging folder of the lake root (the catalog lists only `<schema>/<table>` tables, so it
/// never shows up there).
const STAGING: &str = "_staging";

/// Replaces the rows of `date` in the table at `url` of `lake` (created when missing) with
/// `result`; returns the rows written.
pub(crate) async fn write_date(
    lake: &Lake,
    url: &Url,
    table_name: &str,
    date: NaiveDate,
    result: DataFrame,
) -> Result<usize> {
    let table = if lake.has_log(url).await? {
        lake.open_url(url).await?
    } else {
        lake.make_folder(url)?;
        lake.builder(url)?
            .build()
            .map_err(|e| Error::delta(table_name, e))?
    };
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
        .map_err(|e| Error::delta(table_name, e))?;
    rows_added(&written)
        .await
        .map_err(|e| Error::delta(table_name, e))
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
