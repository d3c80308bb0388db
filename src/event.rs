//! The event contract: what a `user_events` message must look like, and the Arrow schemas of
//! the tables it lands in (`raw.user_events` and `raw.user_events_dead_letters`).
//!
//! Everything that decides "is this a valid event" lives here, so the producer, the decoder and
//! the tests agree on one definition.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The event types the seed contract allows, with their share of generated traffic (percent).
pub(crate) const DEFAULT_EVENT_TYPES: [(&str, u32); 5] = [
    ("click", 40),
    ("view", 35),
    ("purchase", 5),
    ("login", 10),
    ("logout", 10),
];

/// Default largest payload accepted; bigger messages become dead letters.
pub(crate) const DEFAULT_MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// Partition column of `raw.user_events`.
pub(crate) const EVENT_DATE: &str = "event_date";

fn utc_timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The fields a message must carry, as arrow-json reads them. All nullable so that a missing or
/// null field is reported per row (as a dead letter) instead of failing the whole batch.
/// `timestamp` is read as text and parsed by [`crate::ingest::decode`] so that a bad timestamp
/// is a per-row error too.
pub(crate) static MESSAGE_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, true),
        Field::new("event_type", DataType::Utf8, true),
        Field::new("timestamp", DataType::Utf8, true),
        Field::new("page_id", DataType::Int64, true),
        Field::new("session_id", DataType::Utf8, true),
    ]))
});

/// Schema of `raw.user_events`.
pub(crate) static EVENTS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("event_type", DataType::Utf8, false),
        Field::new("event_time", utc_timestamp(), false),
        Field::new("page_id", DataType::Int64, false),
        Field::new("session_id", DataType::Utf8, false),
        Field::new(EVENT_DATE, DataType::Date32, false),
        Field::new("kafka_partition", DataType::Int32, false),
        Field::new("kafka_offset", DataType::Int64, false),
        Field::new("kafka_timestamp", utc_timestamp(), true),
        Field::new("ingested_at", utc_timestamp(), false),
    ]))
});

/// Schema of `raw.user_events_dead_letters`: the message exactly as received plus why it failed.
pub(crate) static DEAD_LETTERS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("topic", DataType::Utf8, false),
        Field::new("kafka_partition", DataType::Int32, false),
        Field::new("kafka_offset", DataType::Int64, false),
        Field::new("kafka_timestamp", utc_timestamp(), true),
        Field::new("key", DataType::Binary, true),
        Field::new("payload", DataType::Binary, true),
        Field::new("reason", DataType::Utf8, false),
        Field::new("received_at", utc_timestamp(), false),
    ]))
});

/// What ingest accepts: the allowed event types and the payload size limit.
#[derive(Debug, Clone)]
pub struct Contract {
    pub event_types: Vec<String>,
    pub max_payload_bytes: usize,
}

impl Default for Contract {
    fn default() -> Self {
        Self {
            event_types: DEFAULT_EVENT_TYPES
                .iter()
                .map(|(t, _)| t.to_string())
                .collect(),
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
        }
    }
}

impl Contract {
    pub(crate) fn allows(&self, event_type: &str) -> bool {
        self.event_types.iter().any(|t| t == event_type)
    }

    /// Checks a payload's bytes before any JSON parsing: present, within the size limit, UTF-8.
    /// Returns the payload as text.
    pub(crate) fn precheck<'a>(&self, payload: Option<&'a [u8]>) -> Result<&'a str, String> {
        let Some(bytes) = payload else {
            return Err("null payload (message has no value)".to_string());
        };
        if bytes.len() > self.max_payload_bytes {
            return Err(format!(
                "payload of {} bytes exceeds the limit of {} bytes",
                bytes.len(),
                self.max_payload_bytes
            ));
        }
        std::str::from_utf8(bytes).map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))
    }
}
