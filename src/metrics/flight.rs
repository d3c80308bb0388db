//! `lake serve`: Flight SQL requests by method and status code, their duration, rows and bytes
//! sent, queries running and queries refused by a limit.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::seconds_histogram;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Request {
    /// The gRPC method, e.g. `GetFlightInfo` (a fixed set).
    pub(crate) method: String,
    /// The gRPC status code name, e.g. `Ok`, `InvalidArgument`.
    pub(crate) code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Method {
    pub(crate) method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Refusal {
    /// Which limit: `concurrency`, `timeout`, `memory`, `size`, `read_only`, `auth`.
    pub(crate) reason: String,
}

pub(crate) struct FlightMetrics {
    pub(crate) requests: Family<Request, Counter>,
    pub(crate) duration: Family<Method, Histogram, fn() -> Histogram>,
    pub(crate) rows_sent: Counter,
    pub(crate) bytes_sent: Counter,
    pub(crate) active_queries: Gauge,
    pub(crate) refused: Family<Refusal, Counter>,
}

impl FlightMetrics {
    pub(super) fn register(r: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(seconds_histogram),
            rows_sent: Counter::default(),
            bytes_sent: Counter::default(),
            active_queries: Gauge::default(),
            refused: Family::default(),
        };
        r.register(
            "flight_requests",
            "Flight SQL and control API calls by method and gRPC status code",
            m.requests.clone(),
        );
        r.register_with_unit(
            "flight_request_duration",
            "Time from a call's arrival to its answer (for DoGet: to the last batch sent)",
            Unit::Seconds,
            m.duration.clone(),
        );
        r.register(
            "flight_rows_sent",
            "Rows streamed to clients",
            m.rows_sent.clone(),
        );
        r.register_with_unit(
            "flight_sent",
            "Arrow IPC bytes streamed to clients",
            Unit::Bytes,
            m.bytes_sent.clone(),
        );
        r.register(
            "flight_active_queries",
            "Queries holding a concurrency slot",
            m.active_queries.clone(),
        );
        r.register(
            "flight_queries_refused",
            "Requests refused by a limit, by limit",
            m.refused.clone(),
        );
        m
    }

    /// A call of `method` ended with `code` after `seconds`.
    pub(crate) fn answered(&self, method: &str, code: tonic::Code, seconds: f64) {
        let labels = Request {
            method: method.to_string(),
            code: format!("{code:?}"),
        };
        self.requests.get_or_create(&labels).inc();
        let method = Method {
            method: method.to_string(),
        };
        self.duration.get_or_create(&method).observe(seconds);
    }

    pub(crate) fn refused(&self, reason: &str) {
        let labels = Refusal {
            reason: reason.to_string(),
        };
        self.refused.get_or_create(&labels).inc();
    }
}
