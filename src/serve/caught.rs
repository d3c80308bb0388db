//! Panics that decoding a request's bytes may raise on forged input (arrow-ipc panics on some
//! malformed buffers) are that request's error, caught with `catch_unwind`. The default panic
//! hook would still print each one to stderr as if the server had crashed; inside [`quietly`]
//! they are logged at debug level instead, and every other panic is printed as before.

use std::cell::Cell;
use std::panic::UnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

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
}
