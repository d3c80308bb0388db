//! The daily job: for one date, run every `sql/daily/<name>.sql` in dependency order and
//! replace that date's rows of `processed.<name>` with the result. This is where `--date` is
//! bound: as the DATE parameter `$date`, never pasted into the SQL text.
//!
//! Not yet here: `sql/checks`, the sensor, run history (`system.*`) and the scheduler.

pub mod plan;
pub mod sql_file;

use std::path::PathBuf;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, Date32Array, RecordBatch};
use datafusion::common::ScalarValue;
use datafusion::execution::context::SessionConfig;
use datafusion::prelude::{col, lit};
use deltalake::protocol::SaveMode;
use deltalake::DeltaTableBuilder;

use crate::error::{Error, Result};
use crate::lake::catalog;
use crate::lake::maintain::list_tables;
use crate::lake::{dir_url, Lake};
use sql_file::SqlFile;

#[derive(Debug, Clone)]
pub struct DailyOptions {
    /// The folder holding `daily/` (and later `checks/`).
    pub sql_dir: PathBuf,
    /// Run only this file (its dependencies must have run already).
    pub only: Option<String>,
    /// Plan and run every query, write nothing.
    pub dry_run: bool,
}

/// What one file produced for one date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableResult {
    pub table: String,
    pub rows: usize,
}

/// DataFusion's DATE: days since 1970-01-01.
fn date32(date: NaiveDate) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    (date - epoch).num_days() as i32
}

/// The daily files in the order they run.
pub fn plan(lake: &Lake, opts: &DailyOptions) -> Result<Vec<SqlFile>> {
    let files = SqlFile::load_dir(&opts.sql_dir.join("daily"))?;
    if files.is_empty() {
        return Err(Error::Config(format!(
            "no daily SQL files in {}",
            opts.sql_dir.join("daily").display()
        )));
    }
    let tables = list_tables(lake)?;
    let ordered = plan::order(files, |r| catalog::resolves(&tables, r))?;
    match &opts.only {
        None => Ok(ordered),
        Some(name) => {
            let picked: Vec<SqlFile> = ordered.into_iter().filter(|f| &f.name == name).collect();
            if picked.is_empty() {
                return Err(Error::Config(format!(
                    "--only {name}: no sql/daily/{name}.sql"
                )));
            }
            Ok(picked)
        }
    }
}

/// Runs the daily files for `date`; returns the rows written per table.
pub async fn run_date(
    lake: &Lake,
    opts: &DailyOptions,
    date: NaiveDate,
) -> Result<Vec<TableResult>> {
    let files = plan(lake, opts)?;
    let mut results = Vec::new();
    for file in &files {
        let batches = query(lake, file, date).await?;
        let rows = batches.iter().map(|b| b.num_rows()).sum();
        if !opts.dry_run {
            write_date(lake, &file.name, date, batches).await?;
        }
        results.push(TableResult {
            table: format!("processed.{}", file.name),
            rows,
        });
    }
    Ok(results)
}

/// Runs one file with `$date` bound and checks that every row is of that date.
async fn query(lake: &Lake, file: &SqlFile, date: NaiveDate) -> Result<Vec<RecordBatch>> {
    let at = |e: &dyn std::fmt::Display| Error::Config(format!("{}: {e}", file.path.display()));
    let ctx = catalog::session(lake, SessionConfig::new());
    let df = ctx.sql(&file.text).await.map_err(|e| at(&e))?;
    let df = df
        .with_param_values(vec![("date", ScalarValue::Date32(Some(date32(date))))])
        .map_err(|e| at(&e))?;
    let batches = df.collect().await.map_err(|e| at(&e))?;
    for batch in &batches {
        let Some(column) = batch.column_by_name("date") else {
            return Err(at(&"the result needs a `date` column"));
        };
        let Some(dates) = column.as_any().downcast_ref::<Date32Array>() else {
            return Err(at(&format!(
                "`date` must be a DATE, not {}",
                column.data_type()
            )));
        };
        let want = date32(date);
        if dates.null_count() > 0 || dates.values().iter().any(|d| *d != want) {
            return Err(at(&format!("every row's `date` must be {date}")));
        }
    }
    Ok(batches)
}

/// Replaces the rows of `date` in `processed.<name>` with `batches`, in one commit.
async fn write_date(
    lake: &Lake,
    name: &str,
    date: NaiveDate,
    batches: Vec<RecordBatch>,
) -> Result<()> {
    let table_name = format!("processed.{name}");
    let path = lake.root().join("processed").join(name);
    std::fs::create_dir_all(&path).map_err(|e| Error::io(path.display(), e))?;
    let url = dir_url(&path)?;
    let exists = path.join("_delta_log").is_dir();
    if !exists && batches.iter().all(|b| b.num_rows() == 0) {
        return Ok(());
    }
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
        .await
        .map_err(|e| Error::delta(&table_name, e))?;
    Ok(())
}
