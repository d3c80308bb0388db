//! What ingest reports to the process's metrics ([`crate::metrics`]): per flush and per commit,
//! never per message, so that counting costs nothing next to decoding.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, Int32Array, RecordBatch, TimestampMicrosecondArray};
use datafusion::arrow::compute::max;

use super::buffer::MessageBuffer;
use crate::lake::{TableId, DEAD_LETTERS, USER_EVENTS};
use crate::metrics::ingest::add;
use crate::metrics::metrics;
use crate::metrics::Table;

/// How long ingest may hold unread messages without landing a commit before it is not ready.
pub(crate) const STALL: Duration = Duration::from_secs(120);

/// The messages of a buffer handed on to be decoded and committed.
pub(crate) fn consumed(topic: &str, buffer: &MessageBuffer) {
    for (partition, n) in per_partition(buffer.partitions.iter().copied()) {
        add(&metrics().ingest.messages, topic, partition, n);
    }
}

/// A commit of `batches` to `table` landed, `started` when its flushes were picked up.
pub(crate) fn committed(topic: &str, table: TableId, batches: &[RecordBatch], started: Instant) {
    let m = &metrics().ingest;
    let labels = Table::new(table);
    m.commit_duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    m.commit_rows.get_or_create(&labels).observe(rows as f64);
    let family = match table {
        DEAD_LETTERS => &m.dead_letters,
        _ => &m.rows,
    };
    let partitions = batches
        .iter()
        .filter_map(|b| column::<Int32Array>(b, "kafka_partition"))
        .flat_map(|parts| parts.iter().flatten());
    for (partition, n) in per_partition(partitions) {
        add(family, topic, partition, n);
    }
    if table == USER_EVENTS {
        let newest = batches
            .iter()
            .filter_map(|b| column::<TimestampMicrosecondArray>(b, "event_time").and_then(max))
            .max()
            .map(|micros| micros as f64 / 1e6);
        m.committed_events(newest);
    }
}

/// The columns of a batch to commit that [`committed`] reads, without the rest of its rows: what
/// a commit keeps of rows it has already written.
pub(crate) fn projected(batch: &RecordBatch) -> Option<RecordBatch> {
    let schema = batch.schema();
    let columns: Vec<usize> = ["kafka_partition", "event_time"]
        .iter()
        .filter_map(|c| schema.index_of(c).ok())
        .collect();
    batch.project(&columns).ok()
}

pub(crate) fn conflict(table: TableId) {
    metrics()
        .ingest
        .conflicts
        .get_or_create(&Table::new(table))
        .inc();
}

pub(crate) fn retried() {
    metrics().ingest.retries.inc();
}

/// The consumer's lag per partition and how many partitions it holds.
pub(crate) fn lag(topic: &str, lag: &BTreeMap<i32, i64>, assigned: usize) {
    let m = &metrics().ingest;
    m.assigned.set(i64::try_from(assigned).unwrap_or(i64::MAX));
    m.set_lag(topic, lag);
}

/// `/readyz` of `lake ingest`: partitions assigned, and commits landing while messages wait.
pub(crate) fn readiness(started: Instant) -> Result<(), String> {
    let m = &metrics().ingest;
    if m.assigned.get() == 0 {
        return Err("no partition of the topic is assigned to this worker".into());
    }
    let since_commit = m
        .seconds_since_last_commit()
        .unwrap_or(started.elapsed().as_secs_f64());
    if m.lag_total() > 0 && since_commit > STALL.as_secs_f64() {
        return Err(format!(
            "messages are waiting but nothing was committed for {since_commit:.0} s"
        ));
    }
    Ok(())
}

fn per_partition(partitions: impl Iterator<Item = i32>) -> BTreeMap<i32, u64> {
    let mut counts = BTreeMap::new();
    for p in partitions {
        *counts.entry(p).or_default() += 1;
    }
    counts
}

fn column<'a, A: Array + 'static>(batch: &'a RecordBatch, name: &str) -> Option<&'a A> {
    batch.column_by_name(name)?.as_any().downcast_ref::<A>()
}
