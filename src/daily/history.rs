//! Run history as Delta tables, queryable like any other: `system.daily_runs` (one row per run of
//! one date) and `system.check_results` (one row per check of a run). A run's check results are
//! committed before its run row, so a run row always has its checks beside it. A run that dies
//! before it is recorded has no row at all and counts as not done.

use std::sync::{Arc, LazyLock};

use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::array::{
    ArrayRef, Date32Array, Int64Array, Int64Builder, MapBuilder, MapFieldNames, RecordBatch,
    StringArray, StringBuilder, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::util::pretty::pretty_format_batches;
use deltalake::protocol::SaveMode;

use super::dates::{date32, date_value, from_date32};
use super::query::JobSession;
use crate::error::{Error, Result};
use crate::lake::{Lake, TableId, TableSpec};

pub(crate) const DAILY_RUNS: TableId = TableId {
    schema: "system",
    name: "daily_runs",
};
pub(crate) const CHECK_RESULTS: TableId = TableId {
    schema: "system",
    name: "check_results",
};

/// How many runs `lake runs` and the control API's ListRuns show unless told otherwise.
pub(crate) const DEFAULT_RUNS_SHOWN: usize = 20;

/// How a run of one date ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunStatus {
    Succeeded,
    /// A SQL error, a write error or a failed `error` check.
    Failed,
    /// The sensor's wait ran out before the date was complete.
    SensorTimeout,
}

impl RunStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::SensorTimeout => "sensor_timeout",
        }
    }
}

/// One row of `system.daily_runs`.
#[derive(Debug, Clone)]
pub(crate) struct RunRecord {
    pub(crate) run_id: String,
    pub(crate) date: NaiveDate,
    pub(crate) status: RunStatus,
    /// Who started it: `cli`, `schedule`, `api`, `demo`.
    pub(crate) trigger: String,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) finished_at: DateTime<Utc>,
    /// Rows written per table (`processed.<name>`).
    pub(crate) rows: Vec<(String, i64)>,
    pub(crate) error: Option<String>,
}

/// One row of `system.check_results`.
#[derive(Debug, Clone)]
pub(crate) struct CheckRecord {
    pub(crate) check: String,
    pub(crate) severity: &'static str,
    /// `pass`, `fail` (an `error` check found rows), `warn` (a `warn` check found rows).
    pub(crate) status: &'static str,
    pub(crate) violation_count: i64,
    /// Up to a few violating rows as a JSON array.
    pub(crate) sample: String,
    pub(crate) description: Option<String>,
}

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Field names Delta uses for a map, so the written schema equals the table's.
fn map_names() -> MapFieldNames {
    MapFieldNames {
        entry: "key_value".into(),
        key: "key".into(),
        value: "value".into(),
    }
}

static RUNS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let entries = Field::new(
        "key_value",
        DataType::Struct(Fields::from(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("value", DataType::Int64, true),
        ])),
        false,
    );
    Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("date", DataType::Date32, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("trigger", DataType::Utf8, false),
        Field::new("started_at", ts(), false),
        Field::new("finished_at", ts(), false),
        Field::new("rows", DataType::Map(Arc::new(entries), false), true),
        Field::new("error", DataType::Utf8, true),
    ]))
});

static CHECKS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("date", DataType::Date32, false),
        Field::new("check", DataType::Utf8, false),
        Field::new("severity", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("violation_count", DataType::Int64, false),
        Field::new("sample", DataType::Utf8, false),
        Field::new("description", DataType::Utf8, true),
        Field::new("checked_at", ts(), false),
    ]))
});

pub(crate) fn runs_spec() -> TableSpec {
    TableSpec {
        id: DAILY_RUNS,
        schema: RUNS_SCHEMA.clone(),
        partition_columns: &[],
    }
}

pub(crate) fn checks_spec() -> TableSpec {
    TableSpec {
        id: CHECK_RESULTS,
        schema: CHECKS_SCHEMA.clone(),
        partition_columns: &[],
    }
}

/// Stores a finished run: its check results first, then its run row.
pub(crate) async fn record(lake: &Lake, run: &RunRecord, checks: &[CheckRecord]) -> Result<()> {
    if !checks.is_empty() {
        append(lake, &checks_spec(), checks_batch(run, checks)?).await?;
    }
    append(lake, &runs_spec(), run_batch(run)?).await
}

async fn append(lake: &Lake, spec: &TableSpec, batch: RecordBatch) -> Result<()> {
    let table = lake.open_or_create(spec).await?;
    table
        .write(vec![batch])
        .with_save_mode(SaveMode::Append)
        .await
        .map_err(|e| Error::delta(spec.id, e))?;
    Ok(())
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn run_batch(run: &RunRecord) -> Result<RecordBatch> {
    let mut rows = MapBuilder::new(Some(map_names()), StringBuilder::new(), Int64Builder::new());
    for (table, n) in &run.rows {
        rows.keys().append_value(table);
        rows.values().append_value(*n);
    }
    rows.append(true)?;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![run.run_id.as_str()])),
        Arc::new(Date32Array::from(vec![date32(run.date)])),
        Arc::new(StringArray::from(vec![run.status.as_str()])),
        Arc::new(StringArray::from(vec![run.trigger.as_str()])),
        Arc::new(
            TimestampMicrosecondArray::from(vec![micros(run.started_at)]).with_timezone("UTC"),
        ),
        Arc::new(
            TimestampMicrosecondArray::from(vec![micros(run.finished_at)]).with_timezone("UTC"),
        ),
        Arc::new(rows.finish()),
        Arc::new(StringArray::from(vec![run.error.as_deref()])),
    ];
    Ok(RecordBatch::try_new(RUNS_SCHEMA.clone(), columns)?)
}

fn checks_batch(run: &RunRecord, checks: &[CheckRecord]) -> Result<RecordBatch> {
    let n = checks.len();
    let checked_at = micros(run.finished_at);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![run.run_id.as_str(); n])),
        Arc::new(Date32Array::from(vec![date32(run.date); n])),
        Arc::new(StringArray::from_iter_values(
            checks.iter().map(|c| &c.check),
        )),
        Arc::new(StringArray::from_iter_values(
            checks.iter().map(|c| c.severity),
        )),
        Arc::new(StringArray::from_iter_values(
            checks.iter().map(|c| c.status),
        )),
        Arc::new(Int64Array::from_iter_values(
            checks.iter().map(|c| c.violation_count),
        )),
        Arc::new(StringArray::from_iter_values(
            checks.iter().map(|c| &c.sample),
        )),
        Arc::new(StringArray::from_iter(
            checks.iter().map(|c| c.description.as_deref()),
        )),
        Arc::new(TimestampMicrosecondArray::from(vec![checked_at; n]).with_timezone("UTC")),
    ];
    Ok(RecordBatch::try_new(CHECKS_SCHEMA.clone(), columns)?)
}

/// Every date that has a succeeded run, ascending.
pub(crate) async fn succeeded_dates(lake: &Lake) -> Result<Vec<NaiveDate>> {
    if lake.open(DAILY_RUNS).await?.is_none() {
        return Ok(Vec::new());
    }
    let session = JobSession::new(lake, None)?;
    let batches = session
        .internal(
            "SELECT DISTINCT date FROM system.daily_runs WHERE status = 'succeeded' ORDER BY date",
            None,
        )
        .await?;
    let mut out = Vec::new();
    for b in &batches {
        let Some(dates) = column(b, "date")?.as_any().downcast_ref::<Date32Array>() else {
            return Err(Error::Other(format!("{DAILY_RUNS}: `date` is not a DATE")));
        };
        out.extend(dates.iter().flatten().map(from_date32));
    }
    Ok(out)
}

/// The latest `limit` runs (of `date` if given), newest first, with their check results, as
/// printable tables.
pub(crate) async fn recent(lake: &Lake, limit: usize, date: Option<NaiveDate>) -> Result<String> {
    if lake.open(DAILY_RUNS).await?.is_none() {
        return Ok("no daily runs recorded yet\n".into());
    }
    let session = JobSession::new(lake, None)?;
    let only_date = if date.is_some() {
        "WHERE date = $date"
    } else {
        ""
    };
    // LIMIT takes no placeholder; `limit` is a number, not user text.
    let runs = session
        .internal(
            &format!(
                "SELECT run_id, date, status, trigger, started_at, \
                 finished_at - started_at AS took, rows, error \
                 FROM system.daily_runs {only_date} ORDER BY started_at DESC LIMIT {limit}"
            ),
            date,
        )
        .await?;
    let mut out = pretty_format_batches(&runs)?.to_string();
    out.push('\n');
    if lake.open(CHECK_RESULTS).await?.is_some() {
        let checks = session
            .internal(
                &format!(
                    "SELECT c.run_id, c.date, c.check, c.severity, c.status, c.violation_count \
                     FROM system.check_results c JOIN (SELECT run_id, started_at \
                     FROM system.daily_runs {only_date} ORDER BY started_at DESC LIMIT {limit}) r \
                     USING (run_id) ORDER BY r.started_at DESC, c.check"
                ),
                date,
            )
            .await?;
        if checks.iter().any(|b| b.num_rows() > 0) {
            out.push_str(&pretty_format_batches(&checks)?.to_string());
            out.push('\n');
        }
    }
    Ok(out)
}

/// A run as stored, its values as text (dates `YYYY-MM-DD`, times RFC 3339).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub(crate) struct StoredRun {
    pub(crate) run_id: String,
    pub(crate) date: String,
    pub(crate) status: String,
    pub(crate) trigger: String,
    pub(crate) started_at: String,
    pub(crate) finished_at: String,
    pub(crate) rows: Vec<(String, i64)>,
    pub(crate) error: Option<String>,
    pub(crate) checks: Vec<StoredCheck>,
}

/// A check result as stored.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub(crate) struct StoredCheck {
    pub(crate) check: String,
    pub(crate) severity: String,
    pub(crate) status: String,
    pub(crate) violation_count: i64,
    pub(crate) sample: String,
    pub(crate) description: Option<String>,
}

/// Which runs to load.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunFilter {
    pub(crate) run_id: Option<String>,
    pub(crate) date: Option<NaiveDate>,
    pub(crate) limit: usize,
}

/// The column `name` of a history query's result.
fn column<'b>(b: &'b RecordBatch, name: &str) -> Result<&'b dyn datafusion::arrow::array::Array> {
    b.column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| Error::Other(format!("run history: no column {name:?} in the result")))
}

/// Text of row `i` of `column` (None when NULL).
fn text(column: &dyn datafusion::arrow::array::Array, i: usize) -> Result<Option<String>> {
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    if column.is_null(i) {
        return Ok(None);
    }
    let f = ArrayFormatter::try_new(column, &FormatOptions::default())?;
    Ok(Some(f.value(i).to_string()))
}

fn int(column: &dyn datafusion::arrow::array::Array, i: usize) -> Result<i64> {
    Ok(text(column, i)?.and_then(|t| t.parse().ok()).unwrap_or(0))
}

/// Loads runs (newest first) with their check results.
pub(crate) async fn load_runs(lake: &Lake, filter: &RunFilter) -> Result<Vec<StoredRun>> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::common::ScalarValue;
    if lake.open(DAILY_RUNS).await?.is_none() {
        return Ok(Vec::new());
    }
    let session = JobSession::new(lake, None)?;
    let mut conditions = Vec::new();
    let mut params = Vec::new();
    if let Some(id) = &filter.run_id {
        conditions.push("run_id = $run_id");
        params.push(("run_id", ScalarValue::Utf8(Some(id.clone()))));
    }
    if let Some(d) = filter.date {
        conditions.push("date = $date");
        params.push(("date", date_value(d)));
    }
    let filter_sql = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    // LIMIT takes no placeholder; `limit` is a number, not user text.
    let sql = format!(
        "SELECT run_id, date, status, trigger, started_at, finished_at, rows, error \
         FROM system.daily_runs {filter_sql} ORDER BY started_at DESC LIMIT {}",
        filter.limit.max(1)
    );
    let params_again = params.clone();
    let batches = session.internal_with(&sql, params).await?;
    let mut runs = Vec::new();
    for b in &batches {
        for i in 0..b.num_rows() {
            let t = |name: &str| -> Result<String> {
                Ok(text(column(b, name)?, i)?.unwrap_or_default())
            };
            let mut rows = Vec::new();
            let map = column(b, "rows")?.as_map_opt();
            if let Some(map) = map.filter(|m| !m.is_null(i)) {
                let entries = map.value(i);
                for j in 0..entries.len() {
                    let key = text(entries.column(0).as_ref(), j)?.unwrap_or_default();
                    rows.push((key, int(entries.column(1).as_ref(), j)?));
                }
            }
            runs.push(StoredRun {
                run_id: t("run_id")?,
                date: t("date")?,
                status: t("status")?,
                trigger: t("trigger")?,
                started_at: t("started_at")?,
                finished_at: t("finished_at")?,
                rows,
                error: text(column(b, "error")?, i)?,
                checks: Vec::new(),
            });
        }
    }
    if runs.is_empty() || lake.open(CHECK_RESULTS).await?.is_none() {
        return Ok(runs);
    }
    let checks = session
        .internal_with(
            &format!(
                "SELECT run_id, \"check\", severity, status, violation_count, sample, description \
                 FROM system.check_results WHERE run_id IN (SELECT run_id FROM ({sql})) \
                 ORDER BY \"check\""
            ),
            params_again,
        )
        .await?;
    for b in &checks {
        for i in 0..b.num_rows() {
            let t = |name: &str| -> Result<String> {
                Ok(text(column(b, name)?, i)?.unwrap_or_default())
            };
            let run_id = t("run_id")?;
            let check = StoredCheck {
                check: t("check")?,
                severity: t("severity")?,
                status: t("status")?,
                violation_count: int(column(b, "violation_count")?, i)?,
                sample: t("sample")?,
                description: text(column(b, "description")?, i)?,
            };
            if let Some(run) = runs.iter_mut().find(|r| r.run_id == run_id) {
                run.checks.push(check);
            }
        }
    }
    Ok(runs)
}
