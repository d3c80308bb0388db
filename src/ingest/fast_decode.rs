//! The common case of [`super::decode`], read in one pass straight into the output columns.
//!
//! A buffer qualifies when every message is one flat JSON object with exactly the five contract
//! fields, once each, in any order: integers without fraction or exponent, strings without
//! escapes or control characters, a `YYYY-MM-DDTHH:MM:SS` timestamp (naive, so UTC) and an
//! allowed event type. Producers of `user_events` send nothing else. Any message outside that
//! shape makes [`try_decode`] answer `None` and the whole buffer takes the general path
//! (arrow-json, per-row validation, dead letters), so every rule about bad or unusual messages
//! stays in one place. For the messages this module accepts, both paths give the same rows (a
//! property test below checks that).

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    ArrayRef, Date32Array, Int32Array, Int64Array, RecordBatch, StringBuilder,
    TimestampMicrosecondArray,
};
use datafusion::arrow::error::ArrowError;

use super::buffer::MessageBuffer;
use crate::event::{Contract, EVENTS_SCHEMA};

/// One message's fields, borrowed from its payload.
#[derive(Debug, PartialEq)]
struct Fields<'a> {
    user_id: i64,
    event_type: &'a str,
    /// Event time, microseconds since the epoch (UTC).
    event_micros: i64,
    /// The UTC date of the event time, days since the epoch.
    event_days: i32,
    page_id: i64,
    session_id: &'a str,
}

/// The `raw.user_events` batch of `buf`, or `None` when a message needs the general path (or
/// the buffer is empty).
pub(crate) fn try_decode(
    buf: &MessageBuffer,
    contract: &Contract,
    now_micros: i64,
) -> Option<Result<RecordBatch, ArrowError>> {
    let n = buf.len();
    if n == 0 {
        return None;
    }
    let mut user_ids = Vec::with_capacity(n);
    let mut event_micros = Vec::with_capacity(n);
    let mut event_days = Vec::with_capacity(n);
    let mut page_ids = Vec::with_capacity(n);
    let mut event_types = StringBuilder::with_capacity(n, n * 8);
    let mut session_ids = StringBuilder::with_capacity(n, n * 16);
    for i in 0..n {
        let f = parse(contract.precheck(buf.payload(i)).ok()?)?;
        if !contract.allows(f.event_type) {
            return None;
        }
        user_ids.push(f.user_id);
        event_types.append_value(f.event_type);
        event_micros.push(f.event_micros);
        page_ids.push(f.page_id);
        session_ids.append_value(f.session_id);
        event_days.push(f.event_days);
    }
    let kafka_ts = (0..n)
        .map(|i| buf.timestamp_micros(i))
        .collect::<TimestampMicrosecondArray>()
        .with_timezone("UTC");
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(user_ids)),
        Arc::new(event_types.finish()),
        Arc::new(TimestampMicrosecondArray::from(event_micros).with_timezone("UTC")),
        Arc::new(Int64Array::from(page_ids)),
        Arc::new(session_ids.finish()),
        Arc::new(Date32Array::from(event_days)),
        Arc::new(Int32Array::from(buf.partitions.clone())),
        Arc::new(Int64Array::from(buf.offsets.clone())),
        Arc::new(kafka_ts),
        Arc::new(TimestampMicrosecondArray::from_value(now_micros, n).with_timezone("UTC")),
    ];
    Some(RecordBatch::try_new(EVENTS_SCHEMA.clone(), columns))
}

/// The five fields, one bit each.
#[derive(Clone, Copy)]
enum Field {
    UserId = 1,
    EventType = 2,
    Timestamp = 4,
    PageId = 8,
    SessionId = 16,
}

/// The fields of one payload, or `None` when it is not in the plain shape.
fn parse(payload: &str) -> Option<Fields<'_>> {
    let mut c = Cursor {
        text: payload,
        b: payload.as_bytes(),
        i: 0,
    };
    let mut seen = 0u8;
    let (mut user_id, mut page_id) = (0, 0);
    let (mut event_type, mut session_id) = ("", "");
    let (mut event_micros, mut event_days) = (0, 0);
    c.eat(b'{')?;
    for field in 0..5 {
        if field > 0 {
            c.eat(b',')?;
        }
        let key = c.key()?;
        c.eat(b':')?;
        match key {
            Field::UserId => user_id = c.integer()?,
            Field::EventType => event_type = c.string()?,
            Field::Timestamp => (event_micros, event_days) = c.timestamp()?,
            Field::PageId => page_id = c.integer()?,
            Field::SessionId => session_id = c.string()?,
        }
        let bit = key as u8;
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
    }
    c.eat(b'}')?;
    c.whitespace();
    (c.i == payload.len()).then_some(Fields {
        user_id,
        event_type,
        event_micros,
        event_days,
        page_id,
        session_id,
    })
}

/// `YYYY-MM-DDTHH:MM:SS` → (microseconds, days) since the epoch, read as UTC.
fn naive_utc(b: &[u8]) -> Option<(i64, i32)> {
    if b.len() != 19 || [b[4], b[7], b[10], b[13], b[16]] != *b"--T::" {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    let date = NaiveDate::from_ymd_opt(year, num(5..7)?, num(8..10)?)?;
    let time = date.and_hms_opt(num(11..13)?, num(14..16)?, num(17..19)?)?;
    let micros = time.and_utc().timestamp_micros();
    let days = micros.div_euclid(86_400_000_000);
    Some((micros, i32::try_from(days).ok()?))
}

/// A position in one payload.
struct Cursor<'a> {
    text: &'a str,
    /// `text`'s bytes.
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn whitespace(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.whitespace();
        (self.b.get(self.i) == Some(&byte)).then(|| self.i += 1)
    }

    /// One of the five keys, compared whole with its closing quote: no scan for the quote.
    fn key(&mut self) -> Option<Field> {
        self.eat(b'"')?;
        let rest = self.b.get(self.i..)?;
        let (field, len) = match rest.first()? {
            b'u' if rest.starts_with(b"user_id\"") => (Field::UserId, 8),
            b'e' if rest.starts_with(b"event_type\"") => (Field::EventType, 11),
            b't' if rest.starts_with(b"timestamp\"") => (Field::Timestamp, 10),
            b'p' if rest.starts_with(b"page_id\"") => (Field::PageId, 8),
            b's' if rest.starts_with(b"session_id\"") => (Field::SessionId, 11),
            _ => return None,
        };
        self.i += len;
        Some(field)
    }

    /// A quoted `YYYY-MM-DDTHH:MM:SS` (see [`naive_utc`], which checks every byte of it).
    fn timestamp(&mut self) -> Option<(i64, i32)> {
        self.eat(b'"')?;
        let quoted = self.b.get(self.i..self.i + 20)?;
        if quoted[19] != b'"' {
            return None;
        }
        let value = naive_utc(&quoted[..19])?;
        self.i += 20;
        Some(value)
    }

    /// A string without escapes or control characters.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let rest = self.b.get(self.i..)?;
        let len = rest
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        if rest[len] != b'"' {
            return None;
        }
        // Quotes are ASCII, so both ends are character boundaries: no second UTF-8 check.
        let s = self.text.get(self.i..self.i + len)?;
        self.i += len + 1;
        Some(s)
    }

    /// An integer of at most 18 digits (no fraction, exponent or leading zero), so it fits i64.
    fn integer(&mut self) -> Option<i64> {
        self.whitespace();
        let negative = self.b.get(self.i) == Some(&b'-');
        if negative {
            self.i += 1;
        }
        let digits = self.b[self.i..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 || digits > 18 || (digits > 1 && self.b[self.i] == b'0') {
            return None;
        }
        let value = self.b[self.i..self.i + digits]
            .iter()
            .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'));
        self.i += digits;
        Some(if negative { -value } else { value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::buffer::Message;
    use crate::ingest::decode::decode_general;
    use crate::testing::fuzz_config;
    use proptest::prelude::*;

    const GOOD: &str = r#"{"user_id": 42, "event_type": "click", "timestamp": "2025-01-10T10:00:00", "page_id": 15, "session_id": "sess_12345"}"#;

    fn buffer(payloads: &[&[u8]]) -> MessageBuffer {
        let mut b = MessageBuffer::default();
        for (i, p) in payloads.iter().enumerate() {
            b.push(Message {
                partition: (i % 3) as i32,
                offset: i as i64,
                timestamp_ms: (i % 4 != 0).then_some(1_736_503_200_000 + i as i64),
                key: None,
                payload: Some(p),
            });
        }
        b
    }

    #[test]
    fn the_seed_event_reads_as_its_fields() {
        let f = parse(GOOD).unwrap();
        assert_eq!(
            f,
            Fields {
                user_id: 42,
                event_type: "click",
                event_micros: 1_736_503_200_000_000,
                event_days: 20_098,
                page_id: 15,
                session_id: "sess_12345",
            }
        );
    }

    #[test]
    fn anything_unusual_is_left_to_the_general_path() {
        let cases = [
            GOOD.replace("42", "42.0"),
            GOOD.replace("42", "4e2"),
            GOOD.replace("42", "042"),
            GOOD.replace("42", "1234567890123456789"),
            GOOD.replace("42", "null"),
            GOOD.replace("42", "\"42\""),
            GOOD.replace("sess_12345", "sess\\u0041"),
            GOOD.replace("sess_12345", "sess\n"),
            GOOD.replace("T10", " 10"),
            GOOD.replace("10:00:00", "10:00:00Z"),
            GOOD.replace("01-10", "02-30"),
            GOOD.replace("10:00:00", "24:00:00"),
            GOOD.replace("click", "hover"),
            GOOD.replace("\"page_id\"", "\"user_id\""),
            GOOD.replace(", \"page_id\": 15", ""),
            GOOD.replace("}", ", \"extra\": 1}"),
            format!("{GOOD} {{}}"),
            format!("[{GOOD}]"),
            GOOD[..GOOD.len() - 1].to_string(),
        ];
        let contract = Contract::default();
        for case in &cases {
            let one = buffer(&[case.as_bytes()]);
            assert!(try_decode(&one, &contract, 0).is_none(), "{case}");
        }
        let mixed = buffer(&[GOOD.as_bytes(), cases[0].as_bytes()]);
        assert!(try_decode(&mixed, &contract, 0).is_none());
        assert!(try_decode(&buffer(&[GOOD.as_bytes()]), &contract, 0).is_some());
    }

    /// A valid event in the plain shape, with its fields in any order and any JSON whitespace.
    fn plain_event() -> impl Strategy<Value = String> {
        let ws = proptest::string::string_regex("[ \t\r\n]{0,2}").unwrap();
        (
            any::<i64>(),
            0..5usize,
            (
                1000i32..=9999,
                1u32..=12,
                1u32..=28,
                0u32..24,
                0u32..60,
                0u32..60,
            ),
            any::<i64>(),
            proptest::string::string_regex("[a-zA-Z0-9_ é€-]{0,20}").unwrap(),
            Just((0..5).collect::<Vec<usize>>()).prop_shuffle(),
            proptest::collection::vec(ws, 12),
        )
            .prop_map(
                |(user, ty, (y, mo, d, h, mi, s), page, session, order, ws)| {
                    let user = user % 1_000_000_000_000_000_000;
                    let page = page % 1_000_000_000_000_000_000;
                    let fields = [
                        format!(r#""user_id"{}:{}{user}"#, ws[0], ws[1]),
                        format!(
                            r#""event_type":{}"{}""#,
                            ws[2],
                            crate::event::DEFAULT_EVENT_TYPES[ty].0
                        ),
                        format!(r#""timestamp": "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}""#),
                        format!(r#""page_id":{}{page}{}"#, ws[3], ws[4]),
                        format!(r#""session_id":{}"{session}""#, ws[5]),
                    ];
                    let body: Vec<&str> = order.iter().map(|&i| fields[i].as_str()).collect();
                    format!(
                        "{}{{{}{}}}{}",
                        ws[6],
                        ws[7],
                        body.join(&format!("{},", ws[8])),
                        ws[9]
                    )
                },
            )
    }

    proptest! {
        #![proptest_config(fuzz_config())]
        #[test]
        fn fuzz_fast_path_gives_the_general_paths_rows(events in proptest::collection::vec(plain_event(), 1..30)) {
            let payloads: Vec<&[u8]> = events.iter().map(|e| e.as_bytes()).collect();
            let buf = buffer(&payloads);
            let contract = Contract::default();
            let fast = try_decode(&buf, &contract, 7).expect("plain events take the fast path").unwrap();
            let general = decode_general(&buf, "t", &contract, 7).unwrap();
            prop_assert_eq!(general.dead_letter_count(), 0);
            prop_assert_eq!(Some(fast), general.events);
        }

        #[test]
        fn fuzz_fast_path_accepts_only_what_the_general_path_accepts_alike(
            event in plain_event(), at in any::<usize>(), byte in any::<u8>(), cut in any::<usize>(),
        ) {
            let mut p = event.into_bytes();
            let i = at % p.len();
            p[i] = byte;
            p.truncate(i + 1 + cut % p.len());
            let buf = buffer(&[&p]);
            let contract = Contract::default();
            if let Some(fast) = try_decode(&buf, &contract, 7) {
                let general = decode_general(&buf, "t", &contract, 7).unwrap();
                prop_assert_eq!(general.dead_letter_count(), 0);
                prop_assert_eq!(Some(fast.unwrap()), general.events);
            }
        }
    }
}
