//! Every assigned partition's messages on one librdkafka queue of ingest's own, taken from it
//! in batches.
//!
//! rdkafka's `BaseConsumer::poll` hands out one message per call, and each call reads the clock
//! (rdkafka once, librdkafka twice), takes the queue's lock and wraps the message in an event
//! it allocates: about half of a bare consumer's CPU (bench/NOTES.md, "Ingest: messages taken
//! in batches; one host at two speeds").
//! librdkafka's batch call, `rd_kafka_consume_batch_queue`, pays those once per batch, but it
//! must not read the consumer's own queue, where rebalances arrive as events that rdkafka
//! handles (and ingest's rebalance callback with them). So each partition's fetch queue is
//! forwarded to a [`FetchQueue`] when the partition is assigned, before its fetching starts:
//! none of its messages then reach the consumer's queue, which the poll loop still polls for
//! events. librdkafka keeps a forward the application set across later assignments and seeks,
//! and drops the messages of a revoked or re-seeked partition from this queue as it does from
//! its own (their fetch version is outdated).

use std::ffi::CStr;
use std::ptr::NonNull;
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;

use super::buffer::Message;

/// A queue of ingest's in librdkafka that assigned partitions' messages are forwarded to. It
/// borrows the consumer it was made on, so it is destroyed before that consumer is.
pub struct FetchQueue<'c, C: ConsumerContext> {
    consumer: &'c BaseConsumer<C>,
    queue: NonNull<rd::rd_kafka_queue_t>,
    /// Room for one batch of message pointers, reused.
    batch: Vec<*mut rd::rd_kafka_message_t>,
}

impl<'c, C: ConsumerContext> FetchQueue<'c, C> {
    /// A new, empty queue on `consumer`'s client, taking up to `batch` messages per read.
    pub fn new(consumer: &'c BaseConsumer<C>, batch: usize) -> Option<Self> {
        // SAFETY: the client pointer is valid while `consumer` lives, which outlives this queue.
        let queue =
            NonNull::new(unsafe { rd::rd_kafka_queue_new(consumer.client().native_ptr()) })?;
        Some(Self {
            consumer,
            queue,
            batch: vec![std::ptr::null_mut(); batch.max(1)],
        })
    }

    /// The raw queue, for [`forward`].
    pub(crate) fn raw(&self) -> *mut rd::rd_kafka_queue_t {
        self.queue.as_ptr()
    }

    /// Sends `partition`'s fetched messages here from now on (see [`forward`]).
    pub fn take_partition(&self, topic: &CStr, partition: i32) -> bool {
        // SAFETY: this queue, made on this consumer, lives while `self` does.
        unsafe { forward(self.consumer, topic, partition, self.raw()) }
    }

    /// Takes the messages ready, up to `max` and a batch, waiting up to `timeout` for the
    /// first, and gives each to `each` (its bytes are freed once `each` returns). Returns how
    /// many it gave, and the first of any messages that carried an error instead of data.
    pub fn read(
        &mut self,
        timeout: Duration,
        max: usize,
        mut each: impl FnMut(Message<'_>),
    ) -> (usize, Option<KafkaError>) {
        let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: `batch` has room for the pointers asked for; librdkafka fills the first `n`.
        let n = unsafe {
            rd::rd_kafka_consume_batch_queue(
                self.queue.as_ptr(),
                timeout_ms,
                self.batch.as_mut_ptr(),
                self.batch.len().min(max),
            )
        };
        let Ok(n) = usize::try_from(n) else {
            let failed = rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__FAIL;
            return (0, Some(KafkaError::MessageConsumption(failed.into())));
        };
        let mut first_error = None;
        let mut messages = 0;
        for &m in &self.batch[..n] {
            // SAFETY: librdkafka returned `m` as a live message that this now owns; it is
            // destroyed right after its fields are read, and nothing borrowed from it outlives
            // `each`.
            unsafe {
                let msg = &*m;
                if msg.err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                    each(message(m, msg));
                    messages += 1;
                } else if first_error.is_none() {
                    first_error = Some(KafkaError::MessageConsumption(msg.err.into()));
                }
                rd::rd_kafka_message_destroy(m);
            }
        }
        (messages, first_error)
    }
}

impl<C: ConsumerContext> Drop for FetchQueue<'_, C> {
    fn drop(&mut self) {
        // SAFETY: the handle is ours and used no more. Partitions still forwarding here hold
        // their own reference; librdkafka drops what they send to a destroyed queue.
        unsafe { rd::rd_kafka_queue_destroy(self.queue.as_ptr()) }
    }
}

/// `m`'s fields as ingest reads them, borrowed from it.
///
/// # Safety
/// `m` must be a live message without error, and the result must not outlive it.
unsafe fn message<'a>(
    m: *mut rd::rd_kafka_message_t,
    msg: &'a rd::rd_kafka_message_t,
) -> Message<'a> {
    let mut kind = rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
    let ts = rd::rd_kafka_message_timestamp(m, &mut kind);
    let timestamp_ms = (kind != rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        && ts != -1)
        .then_some(ts);
    Message {
        partition: msg.partition,
        offset: msg.offset,
        timestamp_ms,
        key: bytes(msg.key as *const u8, msg.key_len),
        payload: bytes(msg.payload as *const u8, msg.len),
    }
}

/// # Safety
/// A non-null `ptr` must point at `len` readable bytes that outlive `'a`.
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Option<&'a [u8]> {
    (!ptr.is_null()).then(|| std::slice::from_raw_parts(ptr, len))
}

/// Sends `partition`'s fetched messages to `queue` from now on. Called before the partition is
/// assigned, so that none go to the consumer's queue. False when librdkafka has no such
/// partition queue: its messages then arrive through the consumer's queue, as before.
///
/// # Safety
/// `queue` must be a live queue of `consumer`'s client, such as [`FetchQueue::raw`] while that
/// [`FetchQueue`] lives.
pub(crate) unsafe fn forward<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &CStr,
    partition: i32,
    queue: *mut rd::rd_kafka_queue_t,
) -> bool {
    // SAFETY: the client pointer is valid while `consumer` lives, `topic` is NUL-terminated and
    // `queue` is live (the caller's promise). The partition's queue handle is only needed to
    // set the forward, which stays on the partition's queue once the handle is destroyed.
    unsafe {
        let partition_queue = rd::rd_kafka_queue_get_partition(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
        );
        if partition_queue.is_null() {
            return false;
        }
        rd::rd_kafka_queue_forward(partition_queue, queue);
        rd::rd_kafka_queue_destroy(partition_queue);
    }
    true
}
