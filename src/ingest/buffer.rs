//! Messages polled from Kafka and not yet decoded, kept in a few flat vectors so that buffering
//! a message is a couple of `memcpy`s rather than an allocation per message.

use std::collections::BTreeMap;
use std::ops::Range;

/// One message as this crate sees it, whatever client produced it.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub partition: i32,
    pub offset: i64,
    /// Broker or producer timestamp, milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
}

/// A run of consecutive messages of one topic, in poll order.
#[derive(Debug, Default)]
pub struct MessageBuffer {
    pub(crate) partitions: Vec<i32>,
    pub(crate) offsets: Vec<i64>,
    timestamps_ms: Vec<Option<i64>>,
    keys: Vec<u8>,
    key_ranges: Vec<Option<Range<usize>>>,
    payloads: Vec<u8>,
    payload_ranges: Vec<Option<Range<usize>>>,
    /// Per partition: (first offset, last offset) buffered.
    spans: BTreeMap<i32, (i64, i64)>,
}

fn append(store: &mut Vec<u8>, bytes: Option<&[u8]>) -> Option<Range<usize>> {
    bytes.map(|b| {
        let start = store.len();
        store.extend_from_slice(b);
        start..store.len()
    })
}

impl MessageBuffer {
    pub fn push(&mut self, m: Message<'_>) {
        self.partitions.push(m.partition);
        self.offsets.push(m.offset);
        self.timestamps_ms.push(m.timestamp_ms);
        let k = append(&mut self.keys, m.key);
        self.key_ranges.push(k);
        let p = append(&mut self.payloads, m.payload);
        self.payload_ranges.push(p);
        self.spans
            .entry(m.partition)
            .and_modify(|s| s.1 = m.offset)
            .or_insert((m.offset, m.offset));
    }

    pub(crate) fn len(&self) -> usize {
        self.offsets.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Bytes held (payloads and keys), for the max-bytes flush trigger.
    pub(crate) fn byte_size(&self) -> usize {
        self.payloads.len() + self.keys.len()
    }

    pub(crate) fn payload(&self, i: usize) -> Option<&[u8]> {
        self.payload_ranges[i].clone().map(|r| &self.payloads[r])
    }

    /// The Kafka timestamp of message `i` in microseconds. Producers set it: an absurd one
    /// becomes null rather than overflowing.
    pub(crate) fn timestamp_micros(&self, i: usize) -> Option<i64> {
        self.timestamps_ms[i].and_then(|ms| ms.checked_mul(1000))
    }

    pub(crate) fn key(&self, i: usize) -> Option<&[u8]> {
        self.key_ranges[i].clone().map(|r| &self.keys[r])
    }

    /// Last offset buffered per partition.
    pub(crate) fn last_offsets(&self) -> BTreeMap<i32, i64> {
        self.spans
            .iter()
            .map(|(p, (_, last))| (*p, *last))
            .collect()
    }

    /// Forgets everything buffered for `partition` (after a revoke or a re-seek).
    pub(crate) fn drop_partition(&mut self, partition: i32) {
        if !self.spans.contains_key(&partition) {
            return;
        }
        let old = std::mem::take(self);
        for i in 0..old.len() {
            if old.partitions[i] != partition {
                self.push(old.message(i));
            }
        }
    }

    pub(crate) fn message(&self, i: usize) -> Message<'_> {
        Message {
            partition: self.partitions[i],
            offset: self.offsets[i],
            timestamp_ms: self.timestamps_ms[i],
            key: self.key(i),
            payload: self.payload(i),
        }
    }
}
