//! Memory the queries freed goes back to the system once the server has been idle a while.
//!
//! While queries run, freed memory stays with the allocator for the next one
//! ([`crate::malloc::keep_freed_for_reuse`]): a full scan would otherwise fault in and zero its
//! pages anew. Without a release, one large sort would leave the server's resident memory at
//! its peak for as long as it runs (6 GB after one query in the attack of 2026-12-04).

use std::sync::Arc;
use std::time::Duration;

use super::statement::Engine;
use crate::shutdown::CancellationToken;

/// How often the server looks whether it is idle.
const TICK: Duration = Duration::from_secs(15);

/// Decides when to release: once no query has run or started for two looks in a row, and
/// once per spell of work (a query started since the last release).
#[derive(Debug, Default)]
struct Releases {
    started_seen: u64,
    released_at: u64,
    quiet_looks: u32,
}

impl Releases {
    /// Whether to release now, given whether queries run and how many have started so far.
    fn look(&mut self, running: bool, started: u64) -> bool {
        let quiet = !running && started == self.started_seen;
        self.started_seen = started;
        if !quiet {
            self.quiet_looks = 0;
            return false;
        }
        self.quiet_looks += 1;
        if self.quiet_looks >= 2 && started != self.released_at {
            self.released_at = started;
            return true;
        }
        false
    }
}

/// Releases freed memory whenever [`Releases`] says so, until `stop`.
pub(crate) async fn release_when_idle(engine: Arc<Engine>, stop: CancellationToken) {
    let mut releases = Releases::default();
    let mut ticks = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if releases.look(engine.running_queries() > 0, engine.queries_started()) {
            // malloc_trim walks every arena: not on a runtime thread.
            let _ = tokio::task::spawn_blocking(crate::malloc::release_freed).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_once_per_spell_of_work_after_two_quiet_looks() {
        let mut r = Releases::default();
        assert!(!r.look(false, 0));
        assert!(!r.look(false, 0), "nothing ran yet");
        assert!(!r.look(true, 3), "a query runs");
        assert!(!r.look(false, 3), "quiet once");
        assert!(r.look(false, 3), "quiet twice: release");
        assert!(!r.look(false, 3), "released already");
        assert!(!r.look(false, 4), "a query came and went between looks");
        assert!(!r.look(false, 4), "quiet once");
        assert!(r.look(false, 4), "quiet twice: release");
    }
}
