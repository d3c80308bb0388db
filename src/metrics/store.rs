//! Requests to the object store of a lake on S3, GCS or Azure, by operation: what a lake there
//! costs (stores bill per request) and what to watch when queries slow down.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Operation {
    /// `get`, `head`, `put`, `multipart`, `list`, `delete`, `copy` or `rename`.
    pub(crate) op: &'static str,
}

pub(crate) struct StoreMetrics {
    requests: Family<Operation, Counter>,
}

impl StoreMetrics {
    pub(super) fn register(r: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
        };
        r.register(
            "object_store_requests",
            "Requests to the lake's object store by operation (a listing counts once, whatever \
             its pages; a delete counts once per object)",
            m.requests.clone(),
        );
        m
    }

    pub(crate) fn request(&self, op: &'static str) {
        self.requests.get_or_create(&Operation { op }).inc();
    }

    /// Requests made so far by operation, those made at least once.
    pub(crate) fn counts(&self) -> Vec<(&'static str, u64)> {
        OPERATIONS
            .iter()
            .map(|&op| (op, self.requests.get_or_create(&Operation { op }).get()))
            .filter(|&(_, n)| n > 0)
            .collect()
    }

    /// "N requests (get a, put b, ...)": what a command cost the store, for its last line.
    pub(crate) fn summary(&self) -> String {
        let counts = self.counts();
        let total: u64 = counts.iter().map(|(_, n)| n).sum();
        let each: Vec<String> = counts.iter().map(|(op, n)| format!("{op} {n}")).collect();
        format!("{total} object-store requests ({})", each.join(", "))
    }
}

/// The operations counted, in the order summaries list them.
const OPERATIONS: [&str; 8] = [
    "get",
    "head",
    "put",
    "multipart",
    "list",
    "delete",
    "copy",
    "rename",
];
