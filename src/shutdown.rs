//! One shutdown signal for the whole process: a [`CancellationToken`] cancelled by the first
//! Ctrl-C (SIGINT) or SIGTERM. Every long-running task gets the token (or a child of it) and
//! every wait selects on it, so a stop request is seen within one poll, never after a sleep.

use std::time::Duration;

pub use tokio_util::sync::CancellationToken;

/// A token cancelled when the process receives SIGINT or SIGTERM. Spawns the listener on the
/// current runtime.
pub fn on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
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
        tracing::info!("shutting down");
        cancel.cancel();
    });
    token
}

/// Sleeps `wait` unless `token` is cancelled first; false if it was.
pub async fn sleep(wait: Duration, token: &CancellationToken) -> bool {
    tokio::select! {
        _ = token.cancelled() => false,
        _ = tokio::time::sleep(wait) => !token.is_cancelled(),
    }
}
