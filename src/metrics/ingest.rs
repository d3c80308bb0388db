//! `lake ingest`: messages, rows and dead letters per topic partition, consumer lag, freshness,
//! commits. Counted per flush and per commit, never per message.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::{count_histogram, seconds_histogram, unix_now, Table};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Partition {
    pub(crate) topic: String,
    pub(crate) partition: i32,
}

type Histograms = Family<Table, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, AtomicU64>;

pub(crate) struct IngestMetrics {
    pub(crate) messages: Family<Partition, Counter>,
    pub(crate) rows: Family<Partition, Counter>,
    pub(crate) dead_letters: Family<Partition, Counter>,
    lag: Family<Partition, Gauge>,
    /// The partitions `lag` has a series for: one this worker no longer holds loses its series
    /// instead of showing its last lag forever.
    lag_series: Mutex<HashSet<Partition>>,
    pub(crate) assigned: Gauge,
    pub(crate) commit_duration: Histograms,
    pub(crate) commit_rows: Histograms,
    pub(crate) conflicts: Family<Table, Counter>,
    pub(crate) retries: Counter,
    /// Event time of the newest event committed (Unix seconds).
    pub(crate) newest_event: FloatGauge,
    /// Seconds since that event time, brought up to date when the metrics are read.
    freshness: FloatGauge,
    /// When the last events commit landed (Unix seconds).
    pub(crate) last_commit: FloatGauge,
    /// Messages waiting in all assigned partitions (for readiness; the series are per partition).
    lag_total: AtomicI64,
}

impl IngestMetrics {
    pub(super) fn register(r: &mut Registry) -> Self {
        let m = Self {
            messages: Family::default(),
            rows: Family::default(),
            dead_letters: Family::default(),
            lag: Family::default(),
            lag_series: Mutex::new(HashSet::new()),
            assigned: Gauge::default(),
            commit_duration: Family::new_with_constructor(seconds_histogram),
            commit_rows: Family::new_with_constructor(count_histogram),
            conflicts: Family::default(),
            retries: Counter::default(),
            newest_event: FloatGauge::default(),
            freshness: FloatGauge::default(),
            last_commit: FloatGauge::default(),
            lag_total: AtomicI64::new(0),
        };
        let messages = Unit::Other("messages".into());
        r.register(
            "ingest_messages_consumed",
            "Messages read from Kafka and handed to a commit",
            m.messages.clone(),
        );
        r.register(
            "ingest_rows_committed",
            "Events committed to raw.user_events",
            m.rows.clone(),
        );
        r.register(
            "ingest_dead_letters",
            "Messages committed to the dead-letter table",
            m.dead_letters.clone(),
        );
        r.register_with_unit(
            "ingest_consumer_lag",
            "Messages in the partition not yet read (high watermark minus position)",
            messages,
            m.lag.clone(),
        );
        r.register(
            "ingest_assigned_partitions",
            "Partitions of the topic this worker holds",
            m.assigned.clone(),
        );
        r.register_with_unit(
            "ingest_commit_duration",
            "Time to write and commit one flush to a table",
            Unit::Seconds,
            m.commit_duration.clone(),
        );
        r.register(
            "ingest_commit_rows",
            "Rows per commit",
            m.commit_rows.clone(),
        );
        r.register(
            "ingest_commit_conflicts",
            "Commits refused because another writer advanced this worker's partitions",
            m.conflicts.clone(),
        );
        r.register(
            "ingest_commit_retries",
            "Commits that failed and were tried again",
            m.retries.clone(),
        );
        r.register_with_unit(
            "ingest_newest_event_timestamp",
            "Event time of the newest committed event, Unix time",
            Unit::Seconds,
            m.newest_event.clone(),
        );
        r.register_with_unit(
            "ingest_freshness",
            "Seconds since the event time of the newest committed event",
            Unit::Seconds,
            m.freshness.clone(),
        );
        r.register_with_unit(
            "ingest_last_commit_timestamp",
            "When the last events commit landed, Unix time",
            Unit::Seconds,
            m.last_commit.clone(),
        );
        m
    }

    /// An events commit landed with rows whose newest event time is `newest` (Unix seconds).
    pub(crate) fn committed_events(&self, newest: Option<f64>) {
        if let Some(t) = newest.filter(|t| *t > self.newest_event.get()) {
            self.newest_event.set(t);
        }
        self.last_commit.set(unix_now());
    }

    /// The lag of each partition held now (`topic`'s); series of other partitions go.
    pub(crate) fn set_lag(&self, topic: &str, lag: &BTreeMap<i32, i64>) {
        let now: HashSet<Partition> = lag
            .keys()
            .map(|p| Partition {
                topic: topic.to_string(),
                partition: *p,
            })
            .collect();
        if let Ok(mut series) = self.lag_series.lock() {
            for gone in series.difference(&now) {
                self.lag.remove(gone);
            }
            *series = now;
        }
        for (partition, messages) in lag {
            let labels = Partition {
                topic: topic.to_string(),
                partition: *partition,
            };
            self.lag.get_or_create(&labels).set(*messages);
        }
        self.lag_total.store(lag.values().sum(), Ordering::Relaxed);
    }

    pub(crate) fn lag_total(&self) -> i64 {
        self.lag_total.load(Ordering::Relaxed)
    }

    /// Seconds since the last events commit, if there was one.
    pub(crate) fn seconds_since_last_commit(&self) -> Option<f64> {
        let last = self.last_commit.get();
        (last > 0.0).then(|| (unix_now() - last).max(0.0))
    }

    pub(super) fn refresh_ages(&self) {
        let newest = self.newest_event.get();
        if newest > 0.0 {
            self.freshness.set((unix_now() - newest).max(0.0));
        }
    }
}

/// Adds `n` to the series of `partition` of `topic`.
pub(crate) fn add(family: &Family<Partition, Counter>, topic: &str, partition: i32, n: u64) {
    if n > 0 {
        let labels = Partition {
            topic: topic.to_string(),
            partition,
        };
        family.get_or_create(&labels).inc_by(n);
    }
}
