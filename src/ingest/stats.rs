//! Counters shared by the consumer and the committer, and the periodic stats line.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug, Default)]
pub struct Stats {
    pub events: AtomicU64,
    pub dead_letters: AtomicU64,
    pub commits: AtomicU64,
    /// Latest lag per partition (high watermark − next offset to read).
    pub lag: Mutex<BTreeMap<i32, i64>>,
}

impl Stats {
    /// An events commit landed with `events` rows.
    pub fn committed(&self, events: u64) {
        self.events.fetch_add(events, Ordering::Relaxed);
        self.commits.fetch_add(1, Ordering::Relaxed);
    }

    /// A dead-letter commit landed with `rows` rows.
    pub fn dead_lettered(&self, rows: u64) {
        self.dead_letters.fetch_add(rows, Ordering::Relaxed);
    }

    pub fn totals(&self) -> (u64, u64, u64) {
        (
            self.events.load(Ordering::Relaxed),
            self.dead_letters.load(Ordering::Relaxed),
            self.commits.load(Ordering::Relaxed),
        )
    }
}

/// Logs one stats line per call, with the rate since the previous call.
pub struct Reporter {
    last: Instant,
    last_events: u64,
}

impl Default for Reporter {
    fn default() -> Self {
        Self {
            last: Instant::now(),
            last_events: 0,
        }
    }
}

impl Reporter {
    pub fn report(&mut self, stats: &Stats) {
        let (events, dead, commits) = stats.totals();
        let secs = self.last.elapsed().as_secs_f64().max(1e-3);
        let rate = (events - self.last_events) as f64 / secs;
        let lag = stats
            .lag
            .lock()
            .map(|l| format!("{l:?}"))
            .unwrap_or_default();
        tracing::info!(
            events_per_s = rate.round() as u64,
            events,
            dead_letters = dead,
            commits,
            lag = %lag,
            "ingest"
        );
        self.last = Instant::now();
        self.last_events = events;
    }
}
