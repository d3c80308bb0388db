//! How fast the probe side of a join is fed, so that the join answers its task's deadline.
//!
//! A hash join probes each batch against its build side in one call and passes on only what
//! matches; a nested loop join compares each probe batch with every build row. When nothing
//! matches, neither makes a batch, so the yield point above the join ([`super::joined`]) never
//! comes: `count(*)` over 3 million rows joined to 3 million by `b.value > a.value + 5000000`
//! took both of the runtime's threads for good, past every deadline. The only place such a join
//! gives control back is where it asks its probe input for the next batch.
//!
//! So the guard over that input ([`super::joined::Guard`]) cuts probe batches small enough that
//! one takes the join a short while, and yields to the runtime once the join has worked for
//! [`SLICE`] since the last time. A probe row costs at most one comparison per build row, so the
//! first batch has at most [`FIRST_STEP`] / build rows rows; after that the size follows how long
//! the join took over the last batch, doubling while it is quick and halving while it is slow,
//! never below that first size and never above the guard's own. A join with matches is paced
//! the same way; its batches are soon as large as before.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Comparisons (build rows times probe rows) the first probe batch may cost at most.
pub(crate) const FIRST_STEP: usize = 1 << 21;

/// How long a join may work on probe batches before its task yields to the runtime.
pub(crate) const SLICE: Duration = Duration::from_millis(50);

/// The rows a join's build side has taken so far, counted by the guard over that side and read
/// by the guard over the probe side. Shared by one run of a plan: plans with joins are run once
/// (`super::planned`).
pub(crate) type Built = Arc<AtomicUsize>;

/// The pace of one probe stream.
#[derive(Debug)]
pub(crate) struct Pace {
    built: Built,
    /// Rows of the next probe batch; 0 before the first.
    rows: usize,
    /// When the last batch was passed on to the join.
    passed: Option<Instant>,
    /// What the join spent on probe batches since the task last yielded.
    busy: Duration,
}

impl Pace {
    pub(crate) fn new(built: Built) -> Self {
        Self {
            built,
            rows: 0,
            passed: None,
            busy: Duration::ZERO,
        }
    }

    /// The most rows the next probe batch may have, `most` being the guard's own limit.
    pub(crate) fn rows(&self, most: usize) -> usize {
        match self.rows {
            0 => self.first(most),
            rows => rows.min(most),
        }
    }

    fn first(&self, most: usize) -> usize {
        let built = self.built.load(Ordering::Relaxed).max(1);
        (FIRST_STEP / built).clamp(1, most)
    }

    /// A batch was passed on to the join.
    pub(crate) fn passed(&mut self) {
        self.passed = Some(Instant::now());
    }

    /// The join asks for the next batch: sizes it by how long the last one took, and says
    /// whether the task should yield before it is fetched.
    pub(crate) fn asked(&mut self, most: usize) -> bool {
        let Some(passed) = self.passed.take() else {
            return false;
        };
        self.settle(passed.elapsed(), most)
    }

    fn settle(&mut self, spent: Duration, most: usize) -> bool {
        let first = self.first(most);
        let rows = self.rows(most);
        self.rows = match spent {
            s if s < SLICE / 4 => rows.saturating_mul(2),
            s if s > SLICE => rows / 2,
            _ => rows,
        }
        .clamp(first, most.max(first));
        self.busy += spent;
        if self.busy < SLICE {
            return false;
        }
        self.busy = Duration::ZERO;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_batch_is_bounded_by_the_build_rows_and_then_follows_the_time_taken() {
        let built: Built = Arc::new(AtomicUsize::new(1 << 20));
        let mut pace = Pace::new(built.clone());
        // 2^21 comparisons against 2^20 build rows: 2 probe rows.
        assert_eq!(pace.rows(4096), 2);
        let quick = Duration::from_millis(1);
        let slow = SLICE * 3;
        assert!(!pace.settle(quick, 4096));
        assert_eq!(pace.rows(4096), 4);
        assert!(!pace.settle(quick, 4096));
        assert_eq!(pace.rows(4096), 8);
        // A slow batch halves the next and makes the task yield; never below the first size.
        assert!(pace.settle(slow, 4096));
        assert_eq!(pace.rows(4096), 4);
        for _ in 0..5 {
            assert!(pace.settle(slow, 4096));
        }
        assert_eq!(pace.rows(4096), 2);
        // Quick batches grow to the guard's limit and no further.
        for _ in 0..20 {
            pace.settle(quick, 4096);
        }
        assert_eq!(pace.rows(4096), 4096);
        // Small build sides start at the guard's limit.
        built.store(10, Ordering::Relaxed);
        assert_eq!(Pace::new(built).rows(4096), 4096);
    }

    #[test]
    fn the_task_yields_once_the_join_has_worked_a_slice() {
        let mut pace = Pace::new(Arc::new(AtomicUsize::new(1)));
        let tenth = SLICE / 10;
        let yields: Vec<bool> = (0..25).map(|_| pace.settle(tenth, 4096)).collect();
        assert_eq!(yields.iter().filter(|y| **y).count(), 2);
        assert!(yields[9] && yields[19], "{yields:?}");
        // Nothing passed on, nothing to settle.
        assert!(!pace.asked(4096));
    }
}
