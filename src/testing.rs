//! The deliberate seam for the integration tests (`tests/`) and benchmarks (`examples/`): the
//! few internals they drive directly to build a lake by hand, append with progress markers, or
//! call the control API. Not a stable API; the binary is the product.

pub use crate::error::{Error, Result};
pub use crate::event::Contract;
pub use crate::ingest::buffer::{Message, MessageBuffer};
pub use crate::ingest::decode::decode;
pub use crate::ingest::offsets::marker;
pub use crate::ingest::writer::append;
pub use crate::ingest::FETCH_SETTINGS;
pub use crate::lake::{
    dead_letters_spec, user_events_spec, Lake, TableId, DEAD_LETTERS, USER_EVENTS,
};
pub use crate::produce::ensure_topic;
pub use crate::serve::control::proto as control_proto;
