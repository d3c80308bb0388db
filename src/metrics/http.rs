//! The HTTP endpoint of a long-running command (`--metrics-addr`): `GET /metrics` (the
//! OpenMetrics text), `GET /healthz` (200 while the process answers) and `GET /readyz` (200
//! "ready", or 503 with the reason from the command's own check).
//!
//! It serves only these fixed paths with no request body, so hostile input is limited to what
//! hyper's HTTP/1 parser bounds (header count and size); it listens on loopback unless told
//! otherwise.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use super::metrics;
use crate::error::{Error, Result};
use crate::shutdown::CancellationToken;

/// A command's readiness: `Err(why)` while it should not get traffic.
pub(crate) type Readiness = Arc<dyn Fn() -> std::result::Result<(), String> + Send + Sync>;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `addr` (an error names it) and serves in the background until `stop` is cancelled;
/// returns the bound address (port 0 picks one).
pub(crate) async fn start(
    addr: SocketAddr,
    ready: Readiness,
    stop: CancellationToken,
) -> Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Error::io(format!("metrics address {addr}"), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io(format!("metrics address {addr}"), e))?;
    let app = Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(ready);
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "metrics endpoint stopped");
        }
    });
    tracing::info!(%addr, "metrics on http://{addr}/metrics");
    Ok(addr)
}

async fn scrape() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, OPENMETRICS)], metrics().encode())
}

async fn readyz(State(ready): State<Readiness>) -> impl IntoResponse {
    match ready() {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn probes_answer_with_status_codes_and_the_reason() {
        let stop = CancellationToken::new();
        let ready: Readiness = Arc::new(|| Err("no partition assigned".into()));
        let addr = start("127.0.0.1:0".parse().unwrap(), ready, stop.clone())
            .await
            .unwrap();
        let healthz = get(addr, "/healthz").await;
        assert!(healthz.starts_with("HTTP/1.1 200"), "{healthz}");
        let readyz = get(addr, "/readyz").await;
        assert!(readyz.starts_with("HTTP/1.1 503"), "{readyz}");
        assert!(
            readyz.ends_with("not ready: no partition assigned\n"),
            "{readyz}"
        );
        let metrics = get(addr, "/metrics").await;
        assert!(metrics.contains(OPENMETRICS), "{metrics}");
        assert!(
            metrics.contains("# TYPE lake_ingest_assigned_partitions gauge"),
            "{metrics}"
        );
        assert!(metrics.ends_with("# EOF\n"), "{metrics}");
        assert!(get(addr, "/other").await.starts_with("HTTP/1.1 404"));
        let taken = start(addr, Arc::new(|| Ok(())), stop.clone()).await;
        let taken = taken.unwrap_err().to_string();
        assert!(taken.contains(&addr.to_string()), "{taken}");
        stop.cancel();
    }
}
