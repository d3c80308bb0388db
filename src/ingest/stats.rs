//! What the consumer thread and the committer task share ([`Shared`]): the counters, the
//! epoch that tells the consumer its view of progress went stale, and the markers to mirror to
//! Kafka; and the periodic stats line.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// State the consumer and the committer share.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) stats: Stats,
    /// Bumped by the committer when a conflict shows this worker's view of progress is stale;
    /// the consumer then forgets its buffer and re-seeks after the markers.
    pub(crate) epoch: AtomicU64,
    /// Markers committed since the consumer last mirrored them to Kafka's group offsets (the
    /// consumer's thread does the mirroring: the committer must not hold the consumer).
    pub(crate) to_mirror: Mutex<BTreeMap<i32, i64>>,
    /// This worker holds the topic's partition 0, which makes it the one that maintains the
    /// tables (see `lake::maintainer`).
    pub(crate) maintainer: AtomicBool,
}

impl Shared {
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Marks every flush read before now as stale; returns the new epoch.
    pub(crate) fn next_epoch(&self) -> u64 {
        self.epoch.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub(crate) fn is_maintainer(&self) -> bool {
        self.maintainer.load(Ordering::Relaxed)
    }

    /// Markers to mirror, taken.
    pub(crate) fn take_to_mirror(&self) -> BTreeMap<i32, i64> {
        self.to_mirror
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default()
    }
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) events: AtomicU64,
    pub(crate) dead_letters: AtomicU64,
    pub(crate) commits: AtomicU64,
    /// Latest lag per partition (high watermark − next offset to read).
    pub(crate) lag: Mutex<BTreeMap<i32, i64>>,
}

impl Stats {
    /// An events commit landed with `events` rows.
    pub(crate) fn committed(&self, events: u64) {
        self.events.fetch_add(events, Ordering::Relaxed);
        self.commits.fetch_add(1, Ordering::Relaxed);
    }

    /// A dead-letter commit landed with `rows` rows.
    pub(crate) fn dead_lettered(&self, rows: u64) {
        self.dead_letters.fetch_add(rows, Ordering::Relaxed);
    }

    pub(crate) fn totals(&self) -> (u64, u64, u64) {
        (
            self.events.load(Ordering::Relaxed),
            self.dead_letters.load(Ordering::Relaxed),
            self.commits.load(Ordering::Relaxed),
        )
    }
}

/// Logs one stats line per call, with the rate since the previous call.
pub(crate) struct Reporter {
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
    pub(crate) fn report(&mut self, stats: &Stats) {
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
