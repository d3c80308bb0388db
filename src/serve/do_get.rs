//! DoGet answered below tonic's codec, so that a result's Arrow buffers go to the socket as
//! they lie in memory.
//!
//! tonic encodes every response message into a buffer of its own: for a scan, a copy of every
//! byte sent, after arrow-ipc's own (bench/NOTES.md, "Flight scans without copies").
//! [`FlightService`] takes DoGet calls itself: it decodes the ticket with tonic's decoder and
//! limits, asks [`LakeFlightSql::answer`] for the batches, and writes each message's gRPC frame
//! and FlightData fields by hand, followed by the body's buffers ([`super::encode`] keeps them
//! uncopied). Every other Flight method goes to arrow-flight's generated server unchanged; the
//! port's layers (metrics, auth) see DoGet like any other call.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use arrow_flight::flight_service_server::FlightServiceServer;
use arrow_flight::{FlightData, Ticket};
use bytes::{BufMut, Bytes, BytesMut};
use datafusion::arrow::buffer::Buffer;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use http::{HeaderMap, HeaderValue};
use http_body::Frame;
use tonic::body::Body;
use tonic::codec::{Codec, Streaming};
use tonic::server::NamedService;
use tonic::Status;
use tonic_prost::ProstCodec;
use tower::Service;

use super::encode::{self, IpcMessage};
use super::flight_sql::LakeFlightSql;

/// The path of the DoGet method.
const DO_GET: &str = "/arrow.flight.protocol.FlightService/DoGet";

/// Buffers smaller than this are copied into the bytes around them rather than sent as a
/// piece of their own: every piece becomes an HTTP/2 frame, and padding is a few bytes.
const COPY_BELOW: usize = 16 * 1024;

/// The Flight service of the port: DoGet here, the rest in arrow-flight's generated server.
#[derive(Clone)]
pub(crate) struct FlightService {
    generated: FlightServiceServer<LakeFlightSql>,
    sql: Arc<LakeFlightSql>,
    /// The largest message a call may send or receive (tonic's encoding and decoding limits).
    max_message_bytes: usize,
}

impl FlightService {
    pub(crate) fn new(sql: LakeFlightSql, max_message_bytes: usize) -> Self {
        let sql = Arc::new(sql);
        let generated = FlightServiceServer::from_arc(sql.clone())
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes);
        Self {
            generated,
            sql,
            max_message_bytes,
        }
    }
}

impl NamedService for FlightService {
    const NAME: &'static str = <FlightServiceServer<LakeFlightSql> as NamedService>::NAME;
}

impl Service<http::Request<Body>> for FlightService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    // The generated server is always ready too (it keeps no state between calls).
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path() != DO_GET {
            return self.generated.call(request);
        }
        let sql = self.sql.clone();
        let max = self.max_message_bytes;
        Box::pin(async move {
            Ok(do_get(&sql, request, max)
                .await
                .unwrap_or_else(|status| status.into_http()))
        })
    }
}

async fn do_get(
    sql: &LakeFlightSql,
    request: http::Request<Body>,
    max_message_bytes: usize,
) -> Result<http::Response<Body>, Status> {
    let ticket = ticket(request, max_message_bytes).await?;
    let answer = sql.answer(&ticket).await?;
    let pieces = encode::ipc_messages(answer.schema, answer.batches)
        .map(move |message| {
            let pieces = framed(message?, max_message_bytes)?;
            Ok::<_, Status>(stream::iter(pieces.into_iter().map(Ok)))
        })
        .try_flatten()
        .boxed();
    let mut response = http::Response::new(Body::new(Answered {
        pieces,
        ended: false,
    }));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    Ok(response)
}

/// The request's one message, decoded as tonic would (its framing, limit and errors).
async fn ticket(request: http::Request<Body>, max_message_bytes: usize) -> Result<Ticket, Status> {
    if let Some(encoding) = request.headers().get("grpc-encoding") {
        if encoding != "identity" {
            return Err(Status::unimplemented(format!(
                "Content is compressed with `{}` which isn't supported",
                String::from_utf8_lossy(encoding.as_bytes())
            )));
        }
    }
    let decoder = ProstCodec::<FlightData, Ticket>::default().decoder();
    let mut messages =
        Streaming::new_request(decoder, request.into_body(), None, Some(max_message_bytes));
    messages
        .message()
        .await?
        .ok_or_else(|| Status::invalid_argument("a DoGet call without a ticket"))
}

/// `message` as the pieces of a gRPC frame holding a FlightData: the frame's prefix, the
/// FlightData fields and the header in one piece, then the body's buffers (small ones copied
/// in with their neighbours).
fn framed(message: IpcMessage, max_message_bytes: usize) -> Result<Vec<Bytes>, Status> {
    // FlightData field 2 (data_header) and field 1000 (data_body), both length-delimited.
    const HEADER_KEY: &[u8] = &[0x12];
    const BODY_KEY: &[u8] = &[0xc2, 0x3e];
    let header_len = message.header.len();
    let body_len = message.body_len();
    let mut length = HEADER_KEY.len() + varint_len(header_len) + header_len;
    if body_len > 0 {
        length += BODY_KEY.len() + varint_len(body_len) + body_len;
    }
    if length > max_message_bytes {
        return Err(Status::out_of_range(format!(
            "Error, encoded message length too large: found {length} bytes, the limit is: \
             {max_message_bytes} bytes"
        )));
    }
    let length = u32::try_from(length)
        .map_err(|_| Status::out_of_range(format!("a message of {length} bytes")))?;
    let mut small = BytesMut::with_capacity(32 + header_len);
    small.put_u8(0); // not compressed
    small.put_u32(length);
    small.put_slice(HEADER_KEY);
    put_varint(&mut small, header_len);
    small.put_slice(&message.header);
    if body_len > 0 {
        small.put_slice(BODY_KEY);
        put_varint(&mut small, body_len);
    }
    let mut pieces = Vec::with_capacity(1 + message.body.len());
    for buffer in message.body {
        if buffer.len() < COPY_BELOW {
            small.put_slice(&buffer);
        } else {
            if !small.is_empty() {
                pieces.push(small.split().freeze());
            }
            pieces.push(Bytes::from_owner(Owned(buffer)));
        }
    }
    if !small.is_empty() {
        pieces.push(small.freeze());
    }
    Ok(pieces)
}

/// An Arrow buffer lent to [`Bytes`] without a copy.
struct Owned(Buffer);

impl AsRef<[u8]> for Owned {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

fn varint_len(value: usize) -> usize {
    prost::encoding::encoded_len_varint(value as u64)
}

fn put_varint(buf: &mut BytesMut, value: usize) {
    prost::encoding::encode_varint(value as u64, buf);
}

/// A DoGet's response body: the frames' pieces, then trailers with the call's status (an error
/// mid-stream ends it there, as tonic's own bodies do).
struct Answered {
    pieces: BoxStream<'static, Result<Bytes, Status>>,
    ended: bool,
}

impl http_body::Body for Answered {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let status = match ready!(self.pieces.poll_next_unpin(cx)) {
            Some(Ok(piece)) => return Poll::Ready(Some(Ok(Frame::data(piece)))),
            Some(Err(status)) => status,
            None => Status::ok(""),
        };
        self.ended = true;
        Poll::Ready(Some(Ok(Frame::trailers(trailers(&status)))))
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

fn trailers(status: &Status) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    if status.add_header(&mut trailers).is_err() {
        // Only a message that cannot be a header value gets here: the code alone then.
        trailers.insert("grpc-status", HeaderValue::from(status.code() as i32));
    }
    trailers
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_flight::decode::FlightRecordBatchStream;
    use arrow_flight::error::FlightError;
    use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use prost::Message;

    use super::*;
    use crate::serve::flight_sql::command;

    /// A body of `pieces`, as a client would send it.
    fn body(pieces: Vec<Bytes>) -> Body {
        Body::new(Answered {
            pieces: stream::iter(pieces.into_iter().map(Ok)).boxed(),
            ended: false,
        })
    }

    /// The FlightData messages of a gRPC stream's bytes.
    fn unframed(mut bytes: &[u8]) -> Vec<FlightData> {
        let mut messages = Vec::new();
        while !bytes.is_empty() {
            assert_eq!(bytes[0], 0, "not compressed");
            let length = u32::from_be_bytes(bytes[1..5].try_into().unwrap()) as usize;
            messages.push(FlightData::decode(&bytes[5..5 + length]).unwrap());
            bytes = &bytes[5 + length..];
        }
        messages
    }

    #[tokio::test]
    async fn frames_are_flight_data_and_large_buffers_are_sent_uncopied() {
        let rows = 100_000;
        let ids = Int64Array::from_iter_values(0..rows);
        let values = ids.values().inner().clone();
        let names: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..rows).map(|i| format!("user {i}")),
        ));
        let batch =
            RecordBatch::try_from_iter([("id", Arc::new(ids) as ArrayRef), ("name", names)])
                .unwrap();
        let schema = batch.schema();
        let messages: Vec<IpcMessage> = encode::ipc_messages(
            schema.clone(),
            stream::iter([Ok(batch.clone()), Ok(batch.slice(10, 5))]),
        )
        .try_collect()
        .await
        .unwrap();
        let pieces: Vec<Bytes> = messages
            .into_iter()
            .flat_map(|m| framed(m, 64 << 20).unwrap())
            .collect();
        assert!(
            pieces.iter().any(|p| p.as_ptr() == values.as_ptr()),
            "the id column's values are a piece of their own, not a copy"
        );
        let sent: Vec<u8> = pieces.concat();
        let data = unframed(&sent);
        assert_eq!(data.len(), 3, "schema and two batches");
        let decoded: Vec<RecordBatch> = FlightRecordBatchStream::new_from_flight_data(
            stream::iter(data).map(Ok::<_, FlightError>),
        )
        .try_collect()
        .await
        .unwrap();
        assert_eq!(decoded, vec![batch.clone(), batch.slice(10, 5)]);
    }

    #[test]
    fn a_message_over_the_limit_is_out_of_range() {
        let message = IpcMessage {
            header: Bytes::from_static(b"header"),
            body: vec![Buffer::from_vec(vec![0u8; 4096])],
        };
        let e = framed(message, 1024).unwrap_err();
        assert_eq!(e.code(), tonic::Code::OutOfRange);
    }

    #[tokio::test]
    async fn a_ticket_is_read_from_one_frame_however_the_bytes_arrive() {
        let ticket = Ticket::new("abc");
        let mut framed = vec![0u8];
        framed.extend((ticket.encoded_len() as u32).to_be_bytes());
        framed.extend(ticket.encode_to_vec());
        let (a, b) = framed.split_at(3);
        let pieces = vec![Bytes::copy_from_slice(a), Bytes::copy_from_slice(b)];
        let request = http::Request::new(body(pieces));
        assert_eq!(super::ticket(request, 1024).await.unwrap(), ticket);

        let empty = http::Request::new(body(Vec::new()));
        let e = super::ticket(empty, 1024).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);

        let mut compressed = http::Request::new(body(vec![Bytes::from(framed)]));
        compressed
            .headers_mut()
            .insert("grpc-encoding", HeaderValue::from_static("gzip"));
        let e = super::ticket(compressed, 1024).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unimplemented);
    }

    mod fuzz {
        use super::*;
        use crate::testing::fuzz_config;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(fuzz_config())]
            /// Whatever a DoGet request's bytes are, reading its ticket and command ends in an
            /// answer or an error status, and a message over the limit is refused.
            #[test]
            fn fuzz_do_get_request_bytes_are_a_ticket_or_an_error(
                bytes in proptest::collection::vec(any::<u8>(), 0..300),
                cut in 0usize..300,
            ) {
                let cut = cut.min(bytes.len());
                let pieces = vec![
                    Bytes::copy_from_slice(&bytes[..cut]),
                    Bytes::copy_from_slice(&bytes[cut..]),
                ];
                let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
                let read = runtime.block_on(super::super::ticket(
                    http::Request::new(body(pieces)),
                    128,
                ));
                match read {
                    Ok(ticket) => {
                        prop_assert!(ticket.ticket.len() <= 128);
                        if let Err(e) = command(&ticket) {
                            prop_assert_eq!(e.code(), tonic::Code::InvalidArgument);
                        }
                    }
                    Err(e) => prop_assert!(!e.message().is_empty()),
                }
            }
        }
    }
}
