//! Record batches into Flight data messages, for every DoGet answer.
//!
//! arrow-flight's `FlightDataEncoder` does the same, but its IPC body buffer starts empty for
//! every batch it does not split, and grows by `realloc` copies to the message's size, a
//! visible share of a full scan's server CPU. This encoder keeps the size of the last message's
//! buffer for the next one, so each message is copied into its buffer once (bench/NOTES.md,
//! "Own Flight data encoder", has the measured CPU and memory trade).
//! A schema with dictionary columns is left to arrow-flight's encoder, which turns them into
//! plain arrays; lake's own tables have none.

use crate::metrics::metrics;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::{FlightData, SchemaAsIpc};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ipc::writer::{
    DictionaryTracker, IpcDataGenerator, IpcWriteContext, IpcWriteOptions,
};
use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt, TryStreamExt};
use tonic::Status;

/// Flight data messages are cut to about this size (a soft limit: a batch is split by its
/// buffers' sizes): half of the smallest default receive limit among the clients we test,
/// ADBC's 16 MiB.
pub(crate) const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// The Flight data of `batches` of `schema`: the schema message first, then each batch in one
/// or more messages of about [`MAX_MESSAGE_BYTES`] at most.
pub(crate) fn flight_data(
    schema: SchemaRef,
    batches: impl Stream<Item = Result<RecordBatch, Status>> + Send + 'static,
) -> BoxStream<'static, Result<FlightData, Status>> {
    let rows_sent = &metrics().flight.rows_sent;
    let batches = batches.inspect_ok(|b| {
        rows_sent.inc_by(b.num_rows() as u64);
    });
    if has_dictionaries(&schema) {
        return FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .with_max_flight_data_size(MAX_MESSAGE_BYTES)
            .build(batches.map_err(FlightError::from))
            .map_err(Status::from)
            .boxed();
    }
    let options = IpcWriteOptions::default();
    let head = FlightData::from(SchemaAsIpc::new(&schema, &options));
    let mut encoder = Encoder::new(options);
    let body = batches
        .map(move |batch| {
            let messages = encoder
                .encode(&batch?)
                .map_err(|e| Status::internal(format!("encoding a result batch: {e}")))?;
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

/// The IPC state of one stream of batches.
struct Encoder {
    options: IpcWriteOptions,
    generator: IpcDataGenerator,
    dictionaries: DictionaryTracker,
    context: IpcWriteContext,
}

impl Encoder {
    fn new(options: IpcWriteOptions) -> Self {
        let mut context = IpcWriteContext::default();
        // After each message, a buffer of its size waits for the next one.
        context.set_reserve_scratch(true);
        Self {
            options,
            generator: IpcDataGenerator::default(),
            dictionaries: DictionaryTracker::new(false),
            context,
        }
    }

    /// The messages of one batch: slices of it (no copy) of about MAX_MESSAGE_BYTES each.
    fn encode(&mut self, batch: &RecordBatch) -> Result<Vec<FlightData>, ArrowError> {
        let mut messages = Vec::new();
        for slice in slices(batch, MAX_MESSAGE_BYTES) {
            let (dictionaries, data) = self.generator.encode(
                &slice,
                &mut self.dictionaries,
                &self.options,
                &mut self.context,
            )?;
            messages.extend(dictionaries.into_iter().map(FlightData::from));
            messages.push(FlightData::from(data));
        }
        Ok(messages)
    }
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
    use datafusion::arrow::array::{Array, ArrayRef, DictionaryArray, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Int32Type, Schema};

    use super::*;

    /// The body size of each message sent, and the batches a Flight client decodes from them.
    async fn round_trip(
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> (Vec<usize>, Vec<RecordBatch>) {
        let data: Vec<FlightData> = flight_data(schema, stream::iter(batches.into_iter().map(Ok)))
            .try_collect()
            .await
            .unwrap();
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
        let data: Vec<FlightData> = flight_data(schema.clone(), stream::empty())
            .try_collect()
            .await
            .unwrap();
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
