//! Record batches into Arrow IPC messages, for every DoGet answer.
//!
//! A message's body is kept as the Arrow buffers that hold it (sliced, with padding between
//! them), not copied into one buffer: [`super::do_get`] sends those buffers to the socket as
//! they are. arrow-ipc's [`StreamEncoder`] writes the IPC stream format that way; this module
//! cuts its output into messages. A schema with dictionary columns is left to arrow-flight's
//! encoder, which turns them into plain arrays (one copy); lake's own tables have none.

use std::collections::VecDeque;

use crate::metrics::metrics;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::SchemaAsIpc;
use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::buffer::Buffer;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ipc::writer::{IpcWriteOptions, StreamEncoder};
use datafusion::arrow::ipc::{root_as_message, MessageHeader};
use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt, TryStreamExt};
use tonic::Status;

/// Messages are cut to about this size (a soft limit: a batch is split by its buffers' sizes):
/// half of the smallest default receive limit among the clients we test, ADBC's 16 MiB.
pub(crate) const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// One IPC message: its flatbuffer header, and its body as a list of buffers (in order,
/// padding included) that together make the bytes the header describes.
#[derive(Debug)]
pub(crate) struct IpcMessage {
    pub(crate) header: Bytes,
    pub(crate) body: Vec<Buffer>,
}

impl IpcMessage {
    pub(crate) fn body_len(&self) -> usize {
        self.body.iter().map(|b| b.len()).sum()
    }
}

/// The IPC messages of `batches` of `schema`: the schema message first, then each batch in one
/// or more messages of about [`MAX_MESSAGE_BYTES`] at most.
pub(crate) fn ipc_messages(
    schema: SchemaRef,
    batches: impl Stream<Item = Result<RecordBatch, Status>> + Send + 'static,
) -> BoxStream<'static, Result<IpcMessage, Status>> {
    let rows_sent = &metrics().flight.rows_sent;
    let batches = batches.inspect_ok(|b| {
        rows_sent.inc_by(b.num_rows() as u64);
    });
    let encoder = match has_dictionaries(&schema) {
        false => StreamEncoder::try_new(&schema).ok(),
        true => None,
    };
    let Some(mut encoder) = encoder else {
        return FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .with_max_flight_data_size(MAX_MESSAGE_BYTES)
            .build(batches.map_err(FlightError::from))
            .map_ok(|data| IpcMessage {
                header: data.data_header,
                body: vec![Buffer::from(data.data_body)],
            })
            .map_err(Status::from)
            .boxed();
    };
    let options = IpcWriteOptions::default();
    let head = SchemaAsIpc::new(&schema, &options);
    let head = IpcMessage {
        header: arrow_flight::FlightData::from(head).data_header,
        body: Vec::new(),
    };
    let body = batches
        .map(move |batch| {
            let mut messages = Vec::new();
            for slice in slices(&batch?, MAX_MESSAGE_BYTES) {
                let buffers = encoder
                    .encode(&slice)
                    .and_then(split)
                    .map_err(|e| Status::internal(format!("encoding a result batch: {e}")))?;
                messages.extend(buffers);
            }
            Ok::<_, Status>(stream::iter(messages.into_iter().map(Ok)))
        })
        .try_flatten();
    stream::once(async { Ok(head) }).chain(body).boxed()
}

fn has_dictionaries(schema: &SchemaRef) -> bool {
    schema
        .flattened_fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Dictionary(..)))
}

/// The IPC stream marker before each message's header length.
const CONTINUATION: [u8; 4] = [0xff; 4];

/// The messages of an IPC stream written as `buffers`, bodies sliced out of them, not copied.
/// The stream's schema message is left out: [`ipc_messages`] sends its own first.
fn split(buffers: Vec<Buffer>) -> Result<Vec<IpcMessage>, ArrowError> {
    let mut rest = VecDeque::from(buffers);
    let mut messages = Vec::new();
    while rest.iter().any(|b| !b.is_empty()) {
        let prefix = contiguous(take(&mut rest, 8)?);
        let (marker, length) = prefix.split_at(4);
        if marker != CONTINUATION {
            return Err(ArrowError::IpcError("no continuation marker".into()));
        }
        let length = i32::from_le_bytes([length[0], length[1], length[2], length[3]]);
        let length = usize::try_from(length)
            .map_err(|_| ArrowError::IpcError(format!("header length {length}")))?;
        if length == 0 {
            break;
        }
        let header = contiguous(take(&mut rest, length)?);
        let message = root_as_message(&header).map_err(|e| ArrowError::IpcError(e.to_string()))?;
        let body_len = usize::try_from(message.bodyLength())
            .map_err(|_| ArrowError::IpcError("negative body length".into()))?;
        let schema = message.header_type() == MessageHeader::Schema;
        let body = take(&mut rest, body_len)?;
        if !schema {
            messages.push(IpcMessage {
                header: header.into(),
                body,
            });
        }
    }
    Ok(messages)
}

/// The first `n` bytes of `rest`, as slices of its buffers.
fn take(rest: &mut VecDeque<Buffer>, mut n: usize) -> Result<Vec<Buffer>, ArrowError> {
    let mut taken = Vec::new();
    while n > 0 {
        let Some(front) = rest.pop_front() else {
            return Err(ArrowError::IpcError(
                "the stream ends inside a message".into(),
            ));
        };
        if front.len() <= n {
            n -= front.len();
            taken.push(front);
        } else {
            taken.push(front.slice_with_length(0, n));
            rest.push_front(front.slice(n));
            n = 0;
        }
    }
    Ok(taken)
}

/// Small pieces (a prefix, a header) in one vector.
fn contiguous(parts: Vec<Buffer>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(parts.iter().map(|b| b.len()).sum());
    for part in parts {
        bytes.extend_from_slice(&part);
    }
    bytes
}

/// `batch` cut into row ranges of about `max_bytes` of buffers each (one slice when it is
/// small enough, and always at least one, so that an empty batch is still sent).
fn slices(batch: &RecordBatch, max_bytes: usize) -> Vec<RecordBatch> {
    let bytes: usize = batch
        .columns()
        .iter()
        .map(|c| c.get_buffer_memory_size())
        .sum();
    let pieces = bytes.div_ceil(max_bytes.max(1)).max(1);
    let rows = batch.num_rows();
    if pieces == 1 || rows <= 1 {
        return vec![batch.clone()];
    }
    let per_piece = rows.div_ceil(pieces);
    (0..rows)
        .step_by(per_piece)
        .map(|start| batch.slice(start, per_piece.min(rows - start)))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_flight::decode::FlightRecordBatchStream;
    use arrow_flight::FlightData;
    use datafusion::arrow::array::{Array, ArrayRef, DictionaryArray, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Int32Type, Schema};

    use super::*;

    /// The messages of `batches` as Flight data, each body in one piece.
    async fn flight_data(schema: SchemaRef, batches: Vec<RecordBatch>) -> Vec<FlightData> {
        let messages: Vec<IpcMessage> =
            ipc_messages(schema, stream::iter(batches.into_iter().map(Ok)))
                .try_collect()
                .await
                .unwrap();
        messages
            .into_iter()
            .map(|m| {
                let body = contiguous(m.body);
                FlightData::new()
                    .with_data_header(m.header)
                    .with_data_body(body)
            })
            .collect()
    }

    /// The body size of each message sent, and the batches a Flight client decodes from them.
    async fn round_trip(
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> (Vec<usize>, Vec<RecordBatch>) {
        let data = flight_data(schema, batches).await;
        let sizes = data.iter().map(|d| d.data_body.len()).collect();
        let decoded = FlightRecordBatchStream::new_from_flight_data(
            stream::iter(data).map(Ok::<_, FlightError>),
        )
        .try_collect()
        .await
        .unwrap();
        (sizes, decoded)
    }

    fn wide(rows: i64, width: usize) -> RecordBatch {
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows));
        let text: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..rows).map(|i| format!("{i:0width$}")),
        ));
        RecordBatch::try_from_iter([("id", ids), ("text", text)]).unwrap()
    }

    #[tokio::test]
    async fn batches_come_back_whole_and_big_ones_in_several_messages() {
        let small = wide(10, 8);
        // About 20 MB of strings: more than one message's worth.
        let big = wide(20_000, 1_000);
        let schema = small.schema();
        let (sizes, decoded) = round_trip(schema.clone(), vec![small.clone(), big.clone()]).await;
        assert!(sizes.len() >= 1 + 1 + 2, "the big batch is cut: {sizes:?}");
        assert!(sizes.iter().all(|&s| s <= MAX_MESSAGE_BYTES), "{sizes:?}");
        let decoded = datafusion::arrow::compute::concat_batches(&schema, &decoded).unwrap();
        let sent = datafusion::arrow::compute::concat_batches(&schema, &[small, big]).unwrap();
        assert_eq!(decoded, sent);
    }

    #[tokio::test]
    async fn an_empty_answer_still_carries_its_schema() {
        let schema = wide(0, 1).schema();
        let data = flight_data(schema.clone(), Vec::new()).await;
        assert_eq!(data.len(), 1);
        let mut decoded = FlightRecordBatchStream::new_from_flight_data(
            stream::iter(data).map(Ok::<_, FlightError>),
        );
        let batches: Vec<RecordBatch> = (&mut decoded).try_collect().await.unwrap();
        assert!(batches.is_empty());
        assert_eq!(decoded.schema(), Some(&schema));
    }

    #[tokio::test]
    async fn dictionary_columns_arrive_as_plain_values() {
        let keys: DictionaryArray<Int32Type> = vec!["a", "b", "a"].into_iter().collect();
        let schema = Arc::new(Schema::new(vec![Field::new(
            "k",
            keys.data_type().clone(),
            true,
        )]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(keys)]).unwrap();
        let (_, decoded) = round_trip(schema, vec![batch]).await;
        let column = decoded[0].column(0);
        assert_eq!(column.data_type(), &DataType::Utf8);
        let values = column.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(values.iter().flatten().collect::<Vec<_>>(), ["a", "b", "a"]);
    }
}
