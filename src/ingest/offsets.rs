//! Where progress is made durable: the last ingested Kafka offset of each topic-partition is a
//! Delta application transaction (`txn` action) in the table itself, written in the same commit
//! as the rows ([`super::writer`]). Kafka's committed offsets are informational only. Reading
//! the markers back is [`crate::lake::progress`], shared with the daily sensor and the server.

use deltalake::kernel::Transaction;

use crate::lake::progress::app_id;

/// The marker saying "everything up to `last_offset` of this partition is in the table".
pub fn marker(source: &str, partition: i32, last_offset: i64) -> Transaction {
    Transaction::new(app_id(source, partition), last_offset)
}
