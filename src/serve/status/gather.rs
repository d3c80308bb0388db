//! Everything the status page shows, read in one go: tables, ingest progress (and lag when the
//! brokers are known), recent daily runs with their checks, and the daily metrics to chart.

use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Date32Type, Float64Type};
use serde::Serialize;

use super::lag::EndOffsets;
use super::StatusOptions;
use crate::daily::history::{self, RunFilter, StoredRun};
use crate::daily::query::JobSession;
use crate::error::Result;
use crate::lake::Lake;
use crate::serve::overview::{self, TableSummary};

/// Daily runs shown, newest first.
pub(crate) const RUNS_SHOWN: usize = 10;
/// The table charted and the dates it shows at most (the newest ones).
pub(crate) const CHART_TABLE: &str = "processed.daily_metrics";
const CHART_DATES: usize = 90;
/// Columns of [`CHART_TABLE`] charted, with their titles; a column the table lacks (its SQL is
/// the user's) is left out.
pub(crate) const CHART_COLUMNS: [(&str, &str); 3] = [
    ("total_events", "Events"),
    ("unique_users", "Users"),
    ("conversion_rate", "Conversion"),
];

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Status {
    pub(crate) generated_at: DateTime<Utc>,
    pub(crate) tables: Vec<TableSummary>,
    /// Whose progress markers the partitions are (the topic, unless ingest named a source).
    pub(crate) source: String,
    pub(crate) partitions: Vec<Partition>,
    /// Why the lag is unknown (no brokers configured, Kafka did not answer).
    pub(crate) lag_unknown: Option<String>,
    pub(crate) runs: Vec<StoredRun>,
    pub(crate) chart: Chart,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Partition {
    pub(crate) partition: i32,
    pub(crate) last_offset: i64,
    /// The offset the next message will get, from the brokers.
    pub(crate) end_offset: Option<i64>,
    /// Messages in Kafka not yet in the lake.
    pub(crate) lag: Option<i64>,
    pub(crate) newest_event: Option<DateTime<Utc>>,
}

/// Series over dates, oldest first; `why_empty` says why there is nothing to draw.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Chart {
    pub(crate) dates: Vec<NaiveDate>,
    pub(crate) series: Vec<Series>,
    pub(crate) why_empty: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Series {
    pub(crate) column: String,
    pub(crate) title: String,
    pub(crate) values: Vec<Option<f64>>,
}

pub(crate) async fn status(
    lake: &Lake,
    opts: &StatusOptions,
    end_offsets: Option<&EndOffsets>,
) -> Result<Status> {
    let tables = overview::tables(lake).await?;
    let progress = overview::ingest(lake, &opts.source, opts.max_future_skew).await?;
    let (ends, lag_unknown) = match end_offsets {
        None => (None, Some("brokers not configured (--brokers)".to_string())),
        Some(_) if progress.is_empty() => (None, None),
        Some(e) => {
            let partitions = progress.iter().map(|p| p.partition).collect();
            match e.high_watermarks(partitions).await {
                Ok(ends) => (Some(ends), None),
                Err(e) => (None, Some(format!("Kafka: {e}"))),
            }
        }
    };
    let partitions = progress
        .into_iter()
        .map(|p| {
            let end_offset = ends.as_ref().and_then(|e| e.get(&p.partition).copied());
            Partition {
                partition: p.partition,
                last_offset: p.last_offset,
                end_offset,
                lag: end_offset.map(|end| (end - p.last_offset - 1).max(0)),
                newest_event: p.watermark,
            }
        })
        .collect();
    let filter = RunFilter {
        limit: RUNS_SHOWN,
        ..RunFilter::default()
    };
    let runs = history::load_runs(lake, &filter).await?;
    let chart = match tables.iter().any(|t| t.name == CHART_TABLE) {
        true => chart(lake).await?,
        false => Chart {
            why_empty: Some(format!("{CHART_TABLE} has no data yet")),
            ..Chart::default()
        },
    };
    Ok(Status {
        generated_at: Utc::now(),
        tables,
        source: opts.source.clone(),
        partitions,
        lag_unknown,
        runs,
        chart,
    })
}

/// The newest [`CHART_DATES`] dates of [`CHART_TABLE`] with the [`CHART_COLUMNS`] it has.
async fn chart(lake: &Lake) -> Result<Chart> {
    let session = JobSession::new(lake, None)?;
    // LIMIT takes no placeholder; it is a constant, not user text.
    let sql = format!("SELECT * FROM {CHART_TABLE} ORDER BY date DESC LIMIT {CHART_DATES}");
    let batches = match session.internal_with(&sql, Vec::new()).await {
        Ok(b) => b,
        Err(e) => {
            return Ok(Chart {
                why_empty: Some(format!("{CHART_TABLE}: {e}")),
                ..Chart::default()
            })
        }
    };
    let mut rows: Vec<(NaiveDate, Vec<Option<f64>>)> = Vec::new();
    let mut present: Vec<(&str, &str)> = Vec::new();
    for b in &batches {
        let Some(dates) = b.column_by_name("date") else {
            continue;
        };
        let dates = cast(dates, &DataType::Date32)?;
        let dates = dates.as_primitive::<Date32Type>();
        let mut columns = Vec::new();
        present.clear();
        for (column, title) in CHART_COLUMNS {
            let Some(values) = b.column_by_name(column) else {
                continue;
            };
            let Ok(values) = cast(values, &DataType::Float64) else {
                continue;
            };
            columns.push(values);
            present.push((column, title));
        }
        for i in 0..b.num_rows() {
            let Some(date) = (!dates.is_null(i))
                .then(|| dates.value_as_date(i))
                .flatten()
            else {
                continue;
            };
            let values = columns
                .iter()
                .map(|c| {
                    let c = c.as_primitive::<Float64Type>();
                    (!c.is_null(i))
                        .then(|| c.value(i))
                        .filter(|v| v.is_finite())
                })
                .collect();
            rows.push((date, values));
        }
    }
    if rows.is_empty() || present.is_empty() {
        return Ok(Chart {
            why_empty: Some(format!(
                "{CHART_TABLE} has no rows with a date and one of {}",
                CHART_COLUMNS.map(|(c, _)| c).join(", ")
            )),
            ..Chart::default()
        });
    }
    rows.sort_by_key(|(date, _)| *date);
    let series = present
        .iter()
        .enumerate()
        .map(|(k, (column, title))| Series {
            column: column.to_string(),
            title: title.to_string(),
            values: rows
                .iter()
                .map(|(_, v)| v.get(k).copied().flatten())
                .collect(),
        })
        .collect();
    Ok(Chart {
        dates: rows.into_iter().map(|(d, _)| d).collect(),
        series,
        why_empty: None,
    })
}
