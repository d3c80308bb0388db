//! [`MetricsLayer`] runs outside every other layer of the port (auth included): each call is
//! counted by method and final gRPC status, timed from its arrival to the end of its response
//! stream (a DoGet's last batch), and the response bytes are added up. The status of a
//! streamed response is in its trailers, so the response body is wrapped to read them.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body::{Body, Frame, SizeHint};
use tonic::Code;

use crate::metrics::metrics;

/// The services of the port, whose method names are label values; any other path is `other`.
const SERVICES: [&str; 2] = ["/arrow.flight.protocol.FlightService/", "/lake.v1.Control/"];

#[derive(Clone, Copy)]
pub(crate) struct MetricsLayer;

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService { inner }
    }
}

#[derive(Clone)]
pub(crate) struct MetricsService<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for MetricsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Body<Data = Bytes> + Send + 'static,
{
    type Response = http::Response<Observed<R>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = method_of(req.uri().path());
        let started = Instant::now();
        // The clone is the ready one's twin; keep the ready service for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let response = inner.call(req).await?;
            // A call that fails at once answers with the status in the headers only.
            let code = response.headers().get("grpc-status").map(code_of);
            let (parts, body) = response.into_parts();
            let body = Observed {
                body,
                method,
                started,
                code,
                recorded: false,
            };
            Ok(http::Response::from_parts(parts, body))
        })
    }
}

/// The name of the called method, from a fixed set.
fn method_of(path: &str) -> &'static str {
    for service in SERVICES {
        if let Some(method) = path.strip_prefix(service) {
            return known_method(method);
        }
    }
    "other"
}

fn known_method(method: &str) -> &'static str {
    const METHODS: [&str; 15] = [
        "Handshake",
        "ListFlights",
        "GetFlightInfo",
        "PollFlightInfo",
        "GetSchema",
        "DoGet",
        "DoPut",
        "DoExchange",
        "DoAction",
        "ListActions",
        "ListTables",
        "IngestStatus",
        "TriggerDailyRun",
        "GetRun",
        "ListRuns",
    ];
    METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

fn code_of(value: &http::HeaderValue) -> Code {
    Code::from_bytes(value.as_bytes())
}

pin_project_lite::pin_project! {
    /// A response body that records its call once it ends (or is dropped unfinished: the
    /// client went away, recorded as `Cancelled`).
    pub(crate) struct Observed<B> {
        #[pin]
        body: B,
        method: &'static str,
        started: Instant,
        code: Option<Code>,
        recorded: bool,
    }

    impl<B> PinnedDrop for Observed<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if !*this.recorded {
                let code = this.code.unwrap_or(Code::Cancelled);
                record(this.method, code, this.started);
            }
        }
    }
}

fn record(method: &str, code: Code, started: &Instant) {
    metrics()
        .flight
        .answered(method, code, started.elapsed().as_secs_f64());
}

impl<B: Body<Data = Bytes>> Body for Observed<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.body.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    metrics().flight.bytes_sent.inc_by(data.len() as u64);
                }
                if let Some(status) = frame.trailers_ref().and_then(|t| t.get("grpc-status")) {
                    *this.code = Some(code_of(status));
                }
            }
            Poll::Ready(Some(Err(_))) => *this.code = Some(Code::Internal),
            Poll::Ready(None) => {
                if !*this.recorded {
                    *this.recorded = true;
                    record(this.method, this.code.unwrap_or(Code::Ok), this.started);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_a_fixed_set_whatever_the_path() {
        assert_eq!(
            method_of("/arrow.flight.protocol.FlightService/DoGet"),
            "DoGet"
        );
        assert_eq!(method_of("/lake.v1.Control/IngestStatus"), "IngestStatus");
        assert_eq!(
            method_of("/arrow.flight.protocol.FlightService/Evil"),
            "other"
        );
        assert_eq!(method_of("/x/DoGet"), "other");
        assert_eq!(method_of(""), "other");
    }
}
