//! Where a daily result lands: `processed.<name>`, partitioned by `date`. Writing replaces only
//! the rows of that date, in one Delta commit: a re-run is idempotent and a crash mid-run leaves
//! the previous rows in place. A column the SQL file gained is added to the table (older dates
//! read it as NULL).

use chrono::NaiveDate;
use datafusion::arrow::array::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::prelude::{col, lit};
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use deltalake::DeltaTableBuilder;

use super::query::date32;
use crate::error::{Error, Result};
use crate::lake::{dir_url, Lake};

/// The table a daily file writes.
pub fn table_name(file_name: &str) -> String {
    format!("processed.{file_name}")
}

/// Replaces the rows of `date` in `processed.<name>` with `batches`; returns the table's name.
pub async fn replace_date(
    lake: &Lake,
    name: &str,
    date: NaiveDate,
    batches: Vec<RecordBatch>,
) -> Result<String> {
    let table_name = table_name(name);
    let path = lake.root().join("processed").join(name);
    let exists = path.join("_delta_log").is_dir();
    if !exists && batches.iter().all(|b| b.num_rows() == 0) {
        return Ok(table_name);
    }
    std::fs::create_dir_all(&path).map_err(|e| Error::io(path.display(), e))?;
    let url = dir_url(&path)?;
    let table = if exists {
        deltalake::open_table(url).await
    } else {
        DeltaTableBuilder::from_url(url).and_then(|b| b.build())
    }
    .map_err(|e| Error::delta(&table_name, e))?;
    let predicate = col("date").eq(lit(ScalarValue::Date32(Some(date32(date)))));
    table
        .write(batches)
        .with_save_mode(SaveMode::Overwrite)
        .with_replace_where(predicate)
        .with_partition_columns(["date"])
        .with_schema_mode(SchemaMode::Merge)
        .await
        .map_err(|e| Error::delta(&table_name, e))?;
    Ok(table_name)
}
