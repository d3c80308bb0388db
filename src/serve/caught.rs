//! Panics inside one request are that request's error.
//!
//! - Decoding a request's bytes may panic on forged input (arrow-ipc panics on some malformed
//!   buffers): caught with `catch_unwind` in [`quietly`]. The default panic hook would still
//!   print each one to stderr as if the server had crashed; inside [`quietly`] they are logged
//!   at debug level instead, and every other panic is printed as before.
//! - Planning or running a query may panic inside DataFusion or arrow on some input (a result
//!   value past arrow's 2 GiB offsets): [`or_internal`] and [`internal`] make that query's
//!   answer INTERNAL with the panic's message, where the client would otherwise see its stream
//!   reset with no reason. Such a panic is a bug, so the hook still prints it.

use std::any::Any;
use std::cell::Cell;
use std::future::Future;
use std::panic::{AssertUnwindSafe, UnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

use futures::FutureExt;
use tonic::Status;

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
}
static HOOK: Once = Once::new();
/// Panics caught inside [`quietly`] since the process started.
static CAUGHT: AtomicU64 = AtomicU64::new(0);

/// `f`'s result, or Err if it panicked; the panic is not printed.
pub(crate) fn quietly<T>(f: impl FnOnce() -> T + UnwindSafe) -> std::thread::Result<T> {
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) {
                CAUGHT.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("caught while decoding a request: {info}");
            } else {
                default(info);
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let out = std::panic::catch_unwind(f);
    QUIET.with(|q| q.set(was));
    out
}

/// `work`'s answer, or INTERNAL if it panicked. Unwind safety is asserted because what a
/// panicking query leaves half-changed is its own (its plan, its stream), dropped right after;
/// the shared session is only read while planning.
pub(crate) async fn or_internal<T>(
    work: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| Err(internal(panic.as_ref())))
}

/// The INTERNAL answer to a query that panicked with `panic`.
pub(crate) fn internal(panic: &(dyn Any + Send)) -> Status {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message");
    tracing::error!(message, "a query panicked; it is answered INTERNAL");
    Status::internal(format!(
        "the query stopped on an internal error, a bug (please report it with the query): \
         {message}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_is_an_error_and_goes_to_the_quiet_hook() {
        let before = CAUGHT.load(Ordering::Relaxed);
        assert_eq!(quietly(|| 7).ok(), Some(7));
        let out = quietly(|| -> u8 { panic!("forged") });
        assert!(out.is_err());
        assert!(CAUGHT.load(Ordering::Relaxed) > before);
        assert!(!QUIET.with(Cell::get), "outside, panics print again");
    }

    #[tokio::test]
    async fn a_panicking_future_is_internal_with_its_message() {
        let ok = or_internal(async { Ok::<_, Status>(7) }).await;
        assert_eq!(ok.ok(), Some(7));
        let e = or_internal(async { Err::<u8, _>(Status::not_found("x")) }).await;
        assert_eq!(e.unwrap_err().code(), tonic::Code::NotFound);
        // A panic's payload is a &str for a literal message, a String for a formatted one.
        async fn boom(formatted: bool) -> Result<u8, Status> {
            if formatted {
                panic!("{} overflow", "offset")
            }
            panic!("offset overflow")
        }
        for e in [
            or_internal(boom(false)).await,
            or_internal(boom(true)).await,
        ] {
            let e = e.unwrap_err();
            assert_eq!(e.code(), tonic::Code::Internal);
            assert!(
                e.message().ends_with(": offset overflow"),
                "{}",
                e.message()
            );
        }
    }
}
