//! Where a Kafka message becomes a row: a [`MessageBuffer`] is decoded in one pass with
//! arrow-json, validated against the [`Contract`], and split into a `raw.user_events` batch and a
//! dead-letter batch. Every input message ends up in exactly one of the two.
//!
//! A buffer of plain events (the producers' usual output) is read in one pass by
//! [`fast_decode`]; anything else takes the general path here. It feeds all payloads to one
//! arrow-json decoder. Only when that fails (a rare malformed message) are the messages decoded
//! one by one to find which ones are at fault.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BinaryBuilder, Int32Array, Int64Array, RecordBatch, StringArray,
    StringBuilder, TimestampMicrosecondArray, UInt32Array,
};
use datafusion::arrow::compute::{cast, concat_batches, take};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::reader::{Decoder, ReaderBuilder};

use super::buffer::MessageBuffer;
use super::fast_decode;
use crate::event::{Contract, DEAD_LETTERS_SCHEMA, EVENTS_SCHEMA, MESSAGE_SCHEMA};

/// The outcome of decoding one buffer.
#[derive(Debug)]
pub struct Decoded {
    /// Valid events, in `raw.user_events` schema (None when there are none).
    pub events: Option<RecordBatch>,
    /// Failed messages, in dead-letter schema (None when there are none).
    pub dead_letters: Option<RecordBatch>,
}

impl Decoded {
    pub fn event_count(&self) -> usize {
        self.events.as_ref().map_or(0, |b| b.num_rows())
    }
    pub fn dead_letter_count(&self) -> usize {
        self.dead_letters.as_ref().map_or(0, |b| b.num_rows())
    }
}

fn new_decoder(rows: usize) -> Result<Decoder, ArrowError> {
    ReaderBuilder::new(MESSAGE_SCHEMA.clone())
        .with_batch_size(rows.max(1) + 1)
        .build_decoder()
}

/// Feeds one payload; returns why it is not exactly one JSON value, if so.
fn feed(decoder: &mut Decoder, text: &[u8]) -> Result<(), String> {
    let before = decoder.len();
    decoder
        .decode(text)
        .map_err(|e| format!("invalid JSON: {}", strip_prefix(&e)))?;
    if decoder.has_partial_record() {
        return Err("invalid JSON: truncated value".to_string());
    }
    match decoder.len() - before {
        1 => Ok(()),
        0 => Err("empty payload".to_string()),
        n => Err(format!("invalid JSON: {n} values in one message")),
    }
}

fn strip_prefix(e: &ArrowError) -> String {
    match e {
        ArrowError::JsonError(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Decodes `candidates` (indexes into `buf`) into one batch of [`MESSAGE_SCHEMA`]; messages
/// that arrow-json rejects are moved to `rejected` with the reason. Returns the indexes of the
/// decoded rows, in row order.
///
/// A decoder's state after a syntax error is unspecified, so a bad message closes the current
/// run of good ones, which is decoded afresh: every message is fed at most twice.
fn decode_json(
    buf: &MessageBuffer,
    candidates: Vec<usize>,
    rejected: &mut Vec<(usize, String)>,
) -> Result<(Vec<usize>, Option<RecordBatch>), ArrowError> {
    let total = candidates.len();
    let mut decoder = new_decoder(total)?;
    let mut run: Vec<usize> = Vec::new();
    let mut runs: Vec<Vec<usize>> = Vec::new();
    let mut clean = true;
    for i in candidates {
        match feed(&mut decoder, buf.payload(i).unwrap_or_default()) {
            Ok(()) => run.push(i),
            Err(reason) => {
                rejected.push((i, reason));
                runs.push(std::mem::take(&mut run));
                decoder = new_decoder(total)?;
                clean = false;
            }
        }
    }
    if clean {
        // The common case: one decoder saw every message and is in a good state.
        return flush_run(buf, run, Some(decoder), rejected);
    }
    runs.push(run);
    let mut rows = Vec::new();
    let mut batches = Vec::new();
    for run in runs.into_iter().filter(|r| !r.is_empty()) {
        let (idx, batch) = flush_run(buf, run, None, rejected)?;
        rows.extend(idx);
        batches.extend(batch);
    }
    if batches.is_empty() {
        return Ok((rows, None));
    }
    let batch = concat_batches(&MESSAGE_SCHEMA, &batches)?;
    Ok((rows, Some(batch)))
}

/// Turns a run of syntactically valid messages into a batch, using `fed` if it already holds
/// exactly this run. A value of the wrong type fails the whole flush: then each message is
/// decoded alone to find the culprits, and the rest once more together.
fn flush_run(
    buf: &MessageBuffer,
    mut run: Vec<usize>,
    fed: Option<Decoder>,
    rejected: &mut Vec<(usize, String)>,
) -> Result<(Vec<usize>, Option<RecordBatch>), ArrowError> {
    let mut decoder = match fed {
        Some(d) => d,
        None => refeed(buf, &run)?,
    };
    if let Ok(batch) = decoder.flush() {
        return Ok((run, batch));
    }
    run.retain(|&i| match decode_one(buf.payload(i).unwrap_or_default()) {
        Ok(()) => true,
        Err(reason) => {
            rejected.push((i, reason));
            false
        }
    });
    let batch = refeed(buf, &run)?.flush()?;
    Ok((run, batch))
}

fn refeed(buf: &MessageBuffer, run: &[usize]) -> Result<Decoder, ArrowError> {
    let mut decoder = new_decoder(run.len())?;
    for &i in run {
        feed(&mut decoder, buf.payload(i).unwrap_or_default()).map_err(ArrowError::JsonError)?;
    }
    Ok(decoder)
}

fn decode_one(text: &[u8]) -> Result<(), String> {
    let mut decoder = new_decoder(1).map_err(|e| e.to_string())?;
    feed(&mut decoder, text)?;
    decoder
        .flush()
        .map(|_| ())
        .map_err(|e| format!("invalid field: {}", strip_prefix(&e)))
}

/// Decodes and validates every message in `buf`: in one pass when every message is a plain
/// event ([`fast_decode`]), otherwise through arrow-json and per-row validation.
pub fn decode(
    buf: &MessageBuffer,
    topic: &str,
    contract: &Contract,
    now_micros: i64,
) -> Result<Decoded, ArrowError> {
    if let Some(events) = fast_decode::try_decode(buf, contract, now_micros) {
        return Ok(Decoded {
            events: Some(events?),
            dead_letters: None,
        });
    }
    decode_general(buf, topic, contract, now_micros)
}

/// The general path: any bytes, each message a row or a dead letter with its reasons.
pub(crate) fn decode_general(
    buf: &MessageBuffer,
    topic: &str,
    contract: &Contract,
    now_micros: i64,
) -> Result<Decoded, ArrowError> {
    let mut rejected: Vec<(usize, String)> = Vec::new();
    let mut candidates = Vec::with_capacity(buf.len());
    for i in 0..buf.len() {
        match contract.precheck(buf.payload(i)) {
            Ok(_) => candidates.push(i),
            Err(reason) => rejected.push((i, reason)),
        }
    }
    let (decoded_idx, batch) = decode_json(buf, candidates, &mut rejected)?;

    let mut good_rows: Vec<u32> = Vec::with_capacity(decoded_idx.len());
    let mut event_time: Option<ArrayRef> = None;
    if let Some(batch) = &batch {
        let ts_type = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let ts = cast(batch.column(2), &ts_type)?;
        let reasons = validate(batch, &ts, contract);
        for (row, reason) in reasons.into_iter().enumerate() {
            match reason {
                None => good_rows.push(row as u32),
                Some(r) => rejected.push((decoded_idx[row], r)),
            }
        }
        event_time = Some(ts);
    }

    let events = match (batch, event_time) {
        (Some(batch), Some(ts)) if !good_rows.is_empty() => Some(build_events(
            buf,
            &batch,
            &ts,
            &decoded_idx,
            &good_rows,
            now_micros,
        )?),
        _ => None,
    };
    rejected.sort_by_key(|(i, _)| *i);
    let dead_letters = if rejected.is_empty() {
        None
    } else {
        Some(build_dead_letters(buf, topic, &rejected, now_micros)?)
    };
    Ok(Decoded {
        events,
        dead_letters,
    })
}

/// Per row: None when valid, or every reason it is not.
fn validate(
    batch: &RecordBatch,
    event_time: &ArrayRef,
    contract: &Contract,
) -> Vec<Option<String>> {
    let schema = batch.schema();
    let event_type = batch.column(1).as_any().downcast_ref::<StringArray>();
    let raw_ts = batch.column(2).as_any().downcast_ref::<StringArray>();
    (0..batch.num_rows())
        .map(|row| {
            let mut reasons = Vec::new();
            for (c, field) in schema.fields().iter().enumerate() {
                if batch.column(c).is_null(row) {
                    reasons.push(format!("missing or null field `{}`", field.name()));
                }
            }
            if let Some(t) = event_type.filter(|a| a.is_valid(row)) {
                let t = t.value(row);
                if !contract.allows(t) {
                    reasons.push(format!("unknown event_type {t:?}"));
                }
            }
            if let Some(raw) = raw_ts.filter(|a| a.is_valid(row)) {
                if event_time.is_null(row) {
                    reasons.push(format!("invalid timestamp {:?}", raw.value(row)));
                }
            }
            (!reasons.is_empty()).then(|| reasons.join("; "))
        })
        .collect()
}

fn build_events(
    buf: &MessageBuffer,
    batch: &RecordBatch,
    event_time: &ArrayRef,
    decoded_idx: &[usize],
    good_rows: &[u32],
    now_micros: i64,
) -> Result<RecordBatch, ArrowError> {
    // Usually every row is good: then the columns are used as they are, not copied.
    let some = (good_rows.len() < batch.num_rows()).then(|| UInt32Array::from(good_rows.to_vec()));
    let pick = |a: &ArrayRef| match &some {
        None => Ok(a.clone()),
        Some(rows) => take(a.as_ref(), rows, None),
    };
    let event_time = pick(event_time)?;
    let event_date = cast(&event_time, &DataType::Date32)?;
    let msg = |i: u32| decoded_idx[i as usize];
    let partitions: Int32Array = good_rows.iter().map(|&r| buf.partitions[msg(r)]).collect();
    let offsets: Int64Array = good_rows.iter().map(|&r| buf.offsets[msg(r)]).collect();
    let kafka_ts: TimestampMicrosecondArray = good_rows
        .iter()
        .map(|&r| buf.timestamp_micros(msg(r)))
        .collect::<TimestampMicrosecondArray>()
        .with_timezone("UTC");
    let ingested =
        TimestampMicrosecondArray::from_value(now_micros, good_rows.len()).with_timezone("UTC");
    let columns: Vec<ArrayRef> = vec![
        pick(batch.column(0))?,
        pick(batch.column(1))?,
        event_time,
        pick(batch.column(3))?,
        pick(batch.column(4))?,
        event_date,
        Arc::new(partitions),
        Arc::new(offsets),
        Arc::new(kafka_ts),
        Arc::new(ingested),
    ];
    RecordBatch::try_new(EVENTS_SCHEMA.clone(), columns)
}

fn build_dead_letters(
    buf: &MessageBuffer,
    topic: &str,
    rejected: &[(usize, String)],
    now_micros: i64,
) -> Result<RecordBatch, ArrowError> {
    let n = rejected.len();
    let topics = StringArray::from_iter_values(std::iter::repeat_n(topic, n));
    let partitions: Int32Array = rejected.iter().map(|(i, _)| buf.partitions[*i]).collect();
    let offsets: Int64Array = rejected.iter().map(|(i, _)| buf.offsets[*i]).collect();
    let kafka_ts = rejected
        .iter()
        .map(|(i, _)| buf.timestamp_micros(*i))
        .collect::<TimestampMicrosecondArray>()
        .with_timezone("UTC");
    let mut keys = BinaryBuilder::new();
    let mut payloads = BinaryBuilder::new();
    let mut reasons = StringBuilder::new();
    for (i, reason) in rejected {
        keys.append_option(buf.key(*i));
        payloads.append_option(buf.payload(*i));
        reasons.append_value(reason);
    }
    let received = TimestampMicrosecondArray::from_value(now_micros, n).with_timezone("UTC");
    let columns: Vec<ArrayRef> = vec![
        Arc::new(topics),
        Arc::new(partitions),
        Arc::new(offsets),
        Arc::new(kafka_ts),
        Arc::new(keys.finish()),
        Arc::new(payloads.finish()),
        Arc::new(reasons.finish()),
        Arc::new(received),
    ];
    RecordBatch::try_new(DEAD_LETTERS_SCHEMA.clone(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::buffer::Message;

    fn buffer(payloads: &[Option<&[u8]>]) -> MessageBuffer {
        let mut b = MessageBuffer::default();
        for (i, p) in payloads.iter().enumerate() {
            b.push(Message {
                partition: 0,
                offset: i as i64,
                timestamp_ms: Some(1_736_503_200_000),
                key: Some(b"42"),
                payload: *p,
            });
        }
        b
    }

    const GOOD: &[u8] = br#"{"user_id": 42, "event_type": "click", "timestamp": "2025-01-10T10:00:00", "page_id": 15, "session_id": "sess_12345"}"#;

    fn reasons(d: &Decoded) -> Vec<(i64, String)> {
        let Some(b) = &d.dead_letters else {
            return vec![];
        };
        let off = b.column(2).as_any().downcast_ref::<Int64Array>().unwrap();
        let r = b.column(6).as_any().downcast_ref::<StringArray>().unwrap();
        (0..b.num_rows())
            .map(|i| (off.value(i), r.value(i).to_string()))
            .collect()
    }

    #[test]
    fn good_events_become_rows_with_utc_time_and_date() {
        let buf = buffer(&[Some(GOOD), Some(br#"{"user_id": 1, "event_type": "view", "timestamp": "2025-01-10T23:30:00-02:00", "page_id": 2, "session_id": "s", "extra": true}"#)]);
        let d = decode(&buf, "t", &Contract::default(), 0).unwrap();
        assert_eq!(d.dead_letter_count(), 0, "{:?}", reasons(&d));
        let ev = d.events.unwrap();
        assert_eq!(ev.num_rows(), 2);
        let ts = ev
            .column(2)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(ts.value(0), 1_736_503_200_000_000);
        // 23:30 at -02:00 is 01:30 UTC the next day, so the date is 2025-01-11.
        let date = cast(ev.column(5), &DataType::Utf8).unwrap();
        let date = date.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(date.value(0), "2025-01-10");
        assert_eq!(date.value(1), "2025-01-11");
    }

    #[test]
    fn every_kind_of_bad_message_is_a_dead_letter_with_a_reason() {
        let big = format!(r#"{{"user_id": 1, "pad": "{}"}}"#, "x".repeat(70_000));
        let cases: Vec<(Option<&[u8]>, &str)> = vec![
            (Some(b"\xff\xfe{}"), "invalid UTF-8"),
            (Some(b"{\"user_id\": 4"), "invalid JSON"),
            (Some(b"not json"), "invalid JSON"),
            (Some(br#"{"event_type": "click", "timestamp": "2025-01-10T10:00:00", "page_id": 1, "session_id": "s"}"#), "missing or null field `user_id`"),
            (Some(br#"{"user_id": "abc", "event_type": "click", "timestamp": "2025-01-10T10:00:00", "page_id": 1, "session_id": "s"}"#), "invalid field"),
            (Some(br#"{"user_id": 1, "event_type": "hover", "timestamp": "2025-01-10T10:00:00", "page_id": 1, "session_id": "s"}"#), "unknown event_type"),
            (Some(br#"{"user_id": 1, "event_type": "click", "timestamp": "yesterday", "page_id": 1, "session_id": "s"}"#), "invalid timestamp"),
            (Some(br#"{"user_id": 1, "event_type": "click", "timestamp": "2025-01-10T10:00:00", "page_id": null, "session_id": "s"}"#), "missing or null field `page_id`"),
            (Some(big.as_bytes()), "exceeds the limit"),
            (None, "null payload"),
            (Some(b""), "empty payload"),
            (Some(b"{} {}"), "2 values"),
        ];
        let mut payloads: Vec<Option<&[u8]>> = vec![Some(GOOD)];
        for (p, _) in &cases {
            payloads.push(*p);
            payloads.push(Some(GOOD));
        }
        let buf = buffer(&payloads);
        let d = decode(&buf, "t", &Contract::default(), 0).unwrap();
        assert_eq!(d.event_count(), cases.len() + 1);
        let got = reasons(&d);
        assert_eq!(got.len(), cases.len(), "{got:?}");
        for (k, (_, want)) in cases.iter().enumerate() {
            let (offset, reason) = &got[k];
            assert_eq!(*offset, 2 * k as i64 + 1);
            assert!(
                reason.contains(want),
                "case {k}: {reason:?} should contain {want:?}"
            );
        }
        let payload = d
            .dead_letters
            .as_ref()
            .unwrap()
            .column(5)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::BinaryArray>()
            .unwrap()
            .value(0)
            .to_vec();
        assert_eq!(payload, b"\xff\xfe{}", "raw bytes are kept as received");
    }

    #[test]
    fn many_syntax_errors_among_good_messages_keep_every_good_row_in_order() {
        let mut payloads: Vec<Option<&[u8]>> = Vec::new();
        for i in 0..3000 {
            payloads.push(Some(if i % 3 == 1 {
                b"{oops".as_slice()
            } else {
                GOOD
            }));
        }
        let buf = buffer(&payloads);
        let d = decode(&buf, "t", &Contract::default(), 0).unwrap();
        assert_eq!((d.event_count(), d.dead_letter_count()), (2000, 1000));
        let ev = d.events.unwrap();
        let offsets = ev.column(7).as_any().downcast_ref::<Int64Array>().unwrap();
        let want: Vec<i64> = (0..3000).filter(|i| i % 3 != 1).collect();
        assert_eq!(offsets.values().to_vec(), want);
    }

    mod fuzz {
        //! Any payload bytes: decoding answers, and every message is a row or a dead letter.
        use super::*;
        use crate::testing::fuzz_config;
        use proptest::prelude::*;

        /// Payloads near the contract (a good event with bytes changed, cut or repeated) and
        /// arbitrary ones.
        fn payload() -> impl Strategy<Value = Option<Vec<u8>>> {
            let mutated = (any::<usize>(), any::<u8>(), 0..GOOD.len()).prop_map(|(at, b, cut)| {
                let mut p = GOOD.to_vec();
                let i = at % p.len();
                p[i] = b;
                p.truncate(cut.max(i + 1));
                p
            });
            prop_oneof![
                mutated.prop_map(Some),
                proptest::collection::vec(any::<u8>(), 0..300).prop_map(Some),
                Just(None),
                Just(Some(GOOD.repeat(2))),
            ]
        }

        proptest! {
            #![proptest_config(fuzz_config())]
            #[test]
            fn fuzz_decode_keeps_every_message(payloads in proptest::collection::vec(payload(), 1..40)) {
                let refs: Vec<Option<&[u8]>> = payloads.iter().map(|p| p.as_deref()).collect();
                let buf = buffer(&refs);
                let d = decode(&buf, "t", &Contract::default(), 0).expect("decode answers");
                prop_assert_eq!(d.event_count() + d.dead_letter_count(), payloads.len());
            }
        }
    }
}
