//! What the long-running commands expose for Prometheus, and the HTTP endpoint that serves it
//! with the health probes ([`http`]).
//!
//! One registry per process ([`metrics`]), built once with every family; a process that only
//! ingests shows the Flight SQL families without series. Names follow Prometheus conventions
//! (`lake_` prefix, base units, counters end in `_total`), and label values are bounded: topic
//! partitions, table names, request methods and status codes, check files; never SQL text or
//! user data. The text is the OpenMetrics exposition of the Prometheus project's own client.

pub(crate) mod daily;
pub(crate) mod flight;
pub(crate) mod http;
pub(crate) mod ingest;
pub(crate) mod store;
pub(crate) mod tables;

use std::sync::LazyLock;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

pub(crate) use daily::DailyMetrics;
pub(crate) use flight::FlightMetrics;
pub(crate) use ingest::IngestMetrics;
pub(crate) use store::StoreMetrics;
pub(crate) use tables::TableMetrics;

/// The label of a per-table series: `schema.table`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Table {
    pub(crate) table: String,
}

impl Table {
    pub(crate) fn new(table: impl std::fmt::Display) -> Self {
        Self {
            table: table.to_string(),
        }
    }
}

/// Every metric of the process.
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) ingest: IngestMetrics,
    pub(crate) flight: FlightMetrics,
    pub(crate) daily: DailyMetrics,
    pub(crate) tables: TableMetrics,
    pub(crate) store: StoreMetrics,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub(crate) fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("lake");
        let ingest = IngestMetrics::register(&mut registry);
        let flight = FlightMetrics::register(&mut registry);
        let daily = DailyMetrics::register(&mut registry);
        let tables = TableMetrics::register(&mut registry);
        let store = StoreMetrics::register(&mut registry);
        Self {
            registry,
            ingest,
            flight,
            daily,
            tables,
            store,
        }
    }

    /// The exposition text, with the gauges that are ages brought up to date first.
    pub(crate) fn encode(&self) -> String {
        self.ingest.refresh_ages();
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

/// Now as Unix seconds.
pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Buckets for durations from 1 ms to about 65 s.
pub(crate) fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Buckets for counts from 1 to about a million.
pub(crate) fn count_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 4.0, 11))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prometheus_conventions() {
        let m = metrics();
        ingest::add(&m.ingest.rows, "t", 2, 5);
        m.flight.answered("DoGet", tonic::Code::Ok, 0.25);
        m.ingest
            .set_lag("t", &std::collections::BTreeMap::from([(2, 3)]));
        let text = m.encode();
        assert!(text.contains("lake_ingest_rows_committed_total{topic=\"t\",partition=\"2\"} 5"));
        assert!(text.contains("# UNIT lake_flight_request_duration_seconds seconds"));
        assert!(text.contains("lake_flight_requests_total{method=\"DoGet\",code=\"Ok\"} 1"));
        assert!(text.contains("lake_ingest_consumer_lag_messages{topic=\"t\",partition=\"2\"} 3"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("lake_"), "{line}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn a_partition_no_longer_held_loses_its_lag_series() {
        let mut registry = Registry::default();
        let m = ingest::IngestMetrics::register(&mut registry);
        let text = |registry: &Registry| {
            let mut out = String::new();
            let _ = encode(&mut out, registry);
            out
        };
        m.set_lag("t", &std::collections::BTreeMap::from([(0, 4), (1, 2)]));
        assert!(text(&registry).contains("lag_messages{topic=\"t\",partition=\"0\"} 4"));
        m.set_lag("t", &std::collections::BTreeMap::from([(1, 5)]));
        let after = text(&registry);
        assert!(!after.contains("partition=\"0\""), "{after}");
        assert!(
            after.contains("lag_messages{topic=\"t\",partition=\"1\"} 5"),
            "{after}"
        );
        assert_eq!(m.lag_total(), 5);
    }
}
