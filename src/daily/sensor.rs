//! The sensor: is date D complete? Yes when every topic partition that ingest has written (its
//! progress marker in `raw.user_events`) has rows with an event time at or past the end of D plus
//! the allowed lateness — what ingest recorded, not "some file exists". Events of D that arrive
//! later still are picked up by re-running D.
//!
//! A partition that receives no events at all after D holds the sensor until `wait` runs out;
//! that is the price of judging by event time (see README, troubleshooting).
//!
//! An event whose time is more than `max_future_skew` past the moment it was ingested is not
//! evidence of progress (a producer's clock, or a hostile payload): it stays in the table but
//! does not count towards a partition's watermark, so one event dated 2099 cannot make every
//! day look complete.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::array::{Array, Int32Array, TimestampMicrosecondArray};

use super::query::JobSession;
use crate::error::{Error, Result};
use crate::lake::{progress, Lake, USER_EVENTS};
use crate::shutdown::{self, CancellationToken};

#[derive(Debug, Clone)]
pub(crate) struct SensorOptions {
    /// The topic whose ingest progress counts (markers `lake-ingest:<topic>:<partition>`).
    pub(crate) topic: String,
    /// How late an event may arrive after its day ended.
    pub(crate) lateness: Duration,
    /// How long to wait for the day to complete; zero checks once.
    pub(crate) wait: Duration,
    /// How far past its ingestion an event's time may be and still count for the watermark.
    pub(crate) max_future_skew: Duration,
}

impl Default for SensorOptions {
    fn default() -> Self {
        Self {
            topic: crate::config::DEFAULT_TOPIC.to_string(),
            lateness: Duration::from_secs(600),
            wait: Duration::ZERO,
            max_future_skew: Duration::from_secs(3600),
        }
    }
}

/// Waits until `date` is complete, or fails with [`Error::NotComplete`] when `wait` runs out
/// (or with [`Error::Stopped`] when `shutdown` comes first).
pub(crate) async fn wait_for(
    lake: &Lake,
    opts: &SensorOptions,
    date: NaiveDate,
    shutdown: &CancellationToken,
) -> Result<()> {
    let started = Instant::now();
    let poll = (opts.wait / 20).clamp(Duration::from_millis(250), Duration::from_secs(10));
    loop {
        let behind = behind(lake, opts, date).await?;
        if behind.is_empty() {
            return Ok(());
        }
        let waited = started.elapsed();
        if waited >= opts.wait {
            return Err(Error::NotComplete(format!(
                "sensor: {date} is not complete after waiting {}: {}",
                humantime::format_duration(Duration::from_secs(waited.as_secs())),
                behind.join("; ")
            )));
        }
        tracing::info!(%date, "waiting for ingest: {}", behind.join("; "));
        if !shutdown::sleep(poll.min(opts.wait - waited), shutdown).await {
            return Err(Error::Stopped);
        }
    }
}

/// Why `date` is not complete yet, one line per lagging partition (empty: complete).
pub(crate) async fn behind(
    lake: &Lake,
    opts: &SensorOptions,
    date: NaiveDate,
) -> Result<Vec<String>> {
    let Some(table) = lake.open(USER_EVENTS).await? else {
        return Ok(vec![format!("{USER_EVENTS} does not exist yet")]);
    };
    let partitions: Vec<i32> = progress::all_committed(&table, &opts.topic)
        .await?
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    if partitions.is_empty() {
        return Ok(vec![format!(
            "no ingest progress recorded for topic {:?} in {USER_EVENTS}",
            opts.topic
        )]);
    }
    let needed = end_of(date) + opts.lateness;
    let watermarks = watermarks(lake, Some(date), opts.max_future_skew).await?;
    Ok(partitions
        .into_iter()
        .filter_map(|p| match watermarks.get(&p) {
            Some(seen) if *seen >= needed => None,
            Some(seen) => Some(format!(
                "partition {p} has events up to {}, needs {}",
                seen.to_rfc3339(),
                needed.to_rfc3339()
            )),
            None => Some(format!(
                "partition {p} has no events after {date}, needs {}",
                needed.to_rfc3339()
            )),
        })
        .collect())
}

/// The first instant after `date` (UTC).
fn end_of(date: NaiveDate) -> DateTime<Utc> {
    let next = date.succ_opt().unwrap_or(date);
    next.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

/// The latest event time per Kafka partition, among rows of days after `after` if given,
/// counting only events at most `max_future_skew` past their ingestion.
pub(crate) async fn watermarks(
    lake: &Lake,
    after: Option<NaiveDate>,
    max_future_skew: Duration,
) -> Result<BTreeMap<i32, DateTime<Utc>>> {
    use datafusion::arrow::datatypes::IntervalMonthDayNano;
    use datafusion::common::ScalarValue;
    let session = JobSession::new(lake, None)?;
    let nanos = i64::try_from(max_future_skew.as_nanos()).unwrap_or(i64::MAX);
    let mut params = vec![(
        "skew",
        ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(0, 0, nanos))),
    )];
    let only_after = match after {
        Some(date) => {
            params.push(("date", super::dates::date_value(date)));
            "AND event_date > $date"
        }
        None => "",
    };
    let batches = session
        .internal_with(
            &format!(
                "SELECT kafka_partition, max(event_time) AS watermark FROM raw.user_events \
                 WHERE event_time <= ingested_at + $skew {only_after} GROUP BY kafka_partition"
            ),
            params,
        )
        .await?;
    let mut out = BTreeMap::new();
    for b in &batches {
        let (Some(parts), Some(times)) = (
            b.column_by_name("kafka_partition")
                .and_then(|c| c.as_any().downcast_ref::<Int32Array>()),
            b.column_by_name("watermark")
                .and_then(|c| c.as_any().downcast_ref::<TimestampMicrosecondArray>()),
        ) else {
            return Err(Error::Other(
                "sensor: unexpected column types in raw.user_events".into(),
            ));
        };
        for i in 0..b.num_rows() {
            if times.is_null(i) {
                continue;
            }
            if let Some(t) = DateTime::from_timestamp_micros(times.value(i)) {
                out.insert(parts.value(i), t);
            }
        }
    }
    Ok(out)
}
