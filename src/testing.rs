//! The deliberate seam for the integration tests (`tests/`) and benchmarks (`examples/`): the
//! few internals they drive directly to build a lake by hand, append with progress markers, or
//! call the control API. Not a stable API; the binary is the product.

pub use crate::error::{Error, Result};
pub use crate::event::Contract;
pub use crate::ingest::buffer::{Message, MessageBuffer};
pub use crate::ingest::decode::decode;
pub use crate::ingest::fetch_queue::FetchQueue;
pub use crate::ingest::offsets::marker;
pub use crate::ingest::writer::append;
pub use crate::ingest::FETCH_SETTINGS;
pub use crate::lake::{
    dead_letters_spec, user_events_spec, Lake, StorageOptions, TableId, DEAD_LETTERS, USER_EVENTS,
};
pub use crate::produce::ensure_topic;
pub use crate::serve::control::proto as control_proto;

/// How the property-based fuzz targets (the `fuzz_*` tests) run: `LAKE_FUZZ_CASES` cases each
/// (default 256: the short run of every test suite) from the fixed seed, or from
/// `LAKE_FUZZ_SEED`. SECURITY.md shows a longer run.
#[cfg(test)]
pub(crate) fn fuzz_config() -> proptest::test_runner::Config {
    use proptest::test_runner::{Config, RngSeed};
    let var = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    Config {
        cases: u32::try_from(var("LAKE_FUZZ_CASES", 256)).unwrap_or(u32::MAX),
        rng_seed: RngSeed::Fixed(var("LAKE_FUZZ_SEED", 0x1a4e)),
        // A failure prints its minimal input; nothing is written into the source tree.
        failure_persistence: None,
        ..Config::default()
    }
}
