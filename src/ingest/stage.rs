//! The decode stage: a thread of its own between the consumer and the committer, so that
//! polling, decoding and writing overlap. It turns each buffer the consumer hands on into a
//! [`Flush`] ([`decode`](super::decode) does the work), its events sorted by the table's
//! clustering columns ([`file_format`]), and passes the consumer's requests through in order, so
//! a request still waits for every buffer sent before it.

use tokio::sync::mpsc;

use super::buffer::MessageBuffer;
use super::committer::{Flush, Request};
use super::decode::decode;
use crate::error::Error;
use crate::event::Contract;
use crate::lake::file_format;

/// What the consumer hands on: a buffer to decode, or a request for the committer, passed
/// through in order (so a request still waits for every buffer sent before it).
pub(crate) enum Handoff {
    Messages {
        epoch: u64,
        buffer: MessageBuffer,
        /// The buffer was flushed because it was full: more messages were waiting.
        full: bool,
    },
    Pass(Request),
}

/// Runs the stage until the consumer hangs up or the committer is gone.
pub(crate) fn run(
    mut input: mpsc::Receiver<Handoff>,
    output: mpsc::Sender<Request>,
    topic: &str,
    contract: &Contract,
    sort_by: &[String],
) -> Result<(), Error> {
    while let Some(item) = input.blocking_recv() {
        let request = match item {
            Handoff::Pass(request) => request,
            Handoff::Messages {
                epoch,
                buffer,
                full,
            } => {
                let started = std::time::Instant::now();
                let now = chrono::Utc::now().timestamp_micros();
                let mut decoded = decode(&buffer, topic, contract, now)?;
                let (messages, last_offsets) = (buffer.len(), buffer.last_offsets());
                // The messages are rows now: their bytes go before the sort makes a second copy
                // of the rows, or the stage would hold all three at once.
                drop(buffer);
                if let Some(events) = decoded.events.take() {
                    decoded.events = Some(file_format::sort_rows(&events, sort_by)?);
                }
                tracing::debug!(messages, elapsed = ?started.elapsed(), "decoded");
                Request::Flush(Flush {
                    epoch,
                    decoded,
                    last_offsets,
                    full,
                })
            }
        };
        if output.blocking_send(request).is_err() {
            break;
        }
    }
    Ok(())
}
