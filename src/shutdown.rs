//! One shutdown signal for the whole process: a [`CancellationToken`] cancelled by the first
//! Ctrl-C (SIGINT) or SIGTERM. Every long-running task gets the token (or a child of it) and
//! every wait selects on it, so a stop request is seen within one poll, never after a sleep.

use std::time::Duration;

pub use tokio_util::sync::CancellationToken;

/// How long work under way may take to finish after the signal before it is abandoned (a query
/// still streaming, a compaction, deliveries not yet acknowledged). Every command exits
/// within a few of these.
pub const GRACE: Duration = Duration::from_secs(2);

/// How long the runtime waits, once the command has returned, for tasks still running (a
/// query's operators the stop abandoned) before the process exits anyway.
pub const ABANDON_AFTER: Duration = Duration::from_millis(500);

/// `work`, or None if it is still running [`GRACE`] after `token` is cancelled.
pub async fn unless_stopped_for_long<T>(
    work: impl std::future::Future<Output = T>,
    token: &CancellationToken,
) -> Option<T> {
    let given_up = async {
        token.cancelled().await;
        tokio::time::sleep(GRACE).await;
    };
    tokio::select! {
        out = work => Some(out),
        _ = given_up => None,
    }
}

/// A token cancelled when the process receives SIGINT or SIGTERM. The signals are awaited on a
/// thread of their own: a worker pool kept busy by a query's operators must not delay the stop.
pub fn on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    let listener = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(rt) => rt.block_on(signalled()),
                Err(e) => {
                    tracing::warn!("no signal handler: {e}");
                    return;
                }
            }
            tracing::info!("shutting down");
            cancel.cancel();
        });
    if let Err(e) = listener {
        tracing::warn!("no signal handler: {e}");
    }
    token
}

/// Waits for the first SIGINT or SIGTERM.
async fn signalled() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("no SIGTERM handler: {e}");
            None
        }
    };
    let terminated = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminated => {}
    }
}

/// Sleeps `wait` unless `token` is cancelled first; false if it was.
pub async fn sleep(wait: Duration, token: &CancellationToken) -> bool {
    tokio::select! {
        _ = token.cancelled() => false,
        _ = tokio::time::sleep(wait) => !token.is_cancelled(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_gets_the_grace_period_after_the_signal_and_no_more() {
        let token = CancellationToken::new();
        assert_eq!(unless_stopped_for_long(async { 7 }, &token).await, Some(7));
        token.cancel();
        let started = tokio::time::Instant::now();
        let endless = std::future::pending::<()>();
        assert_eq!(unless_stopped_for_long(endless, &token).await, None);
        assert!(started.elapsed() >= GRACE);
        let quick = tokio::time::sleep(GRACE / 4);
        assert_eq!(unless_stopped_for_long(quick, &token).await, Some(()));
    }
}
