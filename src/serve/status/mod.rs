//! The status page of `lake serve` (`--http-addr`): `GET /` is an HTML page of the tables,
//! ingest progress and lag, recent daily runs with their checks and a chart of
//! `processed.daily_metrics`; `GET /status.json` is the same as JSON.
//!
//! - [`gather`]: reads it all from the lake (and end offsets from Kafka, [`lag`]);
//! - [`page`]: the HTML.
//!
//! The login is Flight SQL's ([`super::auth`]): HTTP Basic with the same user and password, and
//! the same throttling of wrong passwords. Reading the lake runs under a query slot and the query
//! timeout ([`Engine::limited`]), and one reading serves every request for [`FRESH_FOR`], so
//! a flood of page loads costs no more than one load every few seconds.

pub(crate) mod gather;
pub(crate) mod lag;
pub(crate) mod page;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tonic::Code;

use super::auth::Auth;
use super::statement::Engine;
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::shutdown::CancellationToken;
use gather::Status;
use lag::{EndOffsets, KafkaTopic};

/// How long one reading of the lake is shown before the next request reads it again.
pub(crate) const FRESH_FOR: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub(crate) struct StatusOptions {
    pub(crate) addr: SocketAddr,
    /// Whose ingest progress is shown: the topic, or the source name ingest was given.
    pub(crate) source: String,
    pub(crate) max_future_skew: Duration,
    /// The topic in Kafka, to show lag; None: no lag column.
    pub(crate) kafka: Option<KafkaTopic>,
}

/// One reading of the lake, or why it failed.
type Reading = Arc<std::result::Result<Status, String>>;

struct Shared {
    lake: Lake,
    engine: Arc<Engine>,
    auth: Arc<Auth>,
    opts: StatusOptions,
    end_offsets: Option<EndOffsets>,
    /// The last reading and when it was made.
    last: Mutex<Option<(Instant, Reading)>>,
}

/// Binds `opts.addr` and serves until `stop` is cancelled; returns the bound address.
pub(crate) async fn start(
    lake: Lake,
    engine: Arc<Engine>,
    auth: Arc<Auth>,
    opts: StatusOptions,
    stop: CancellationToken,
) -> Result<SocketAddr> {
    let listener = TcpListener::bind(opts.addr)
        .await
        .map_err(|e| Error::io(format!("status page address {}", opts.addr), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io(format!("status page address {}", opts.addr), e))?;
    let end_offsets = opts.kafka.clone().map(EndOffsets::new);
    let shared = Arc::new(Shared {
        lake,
        engine,
        auth,
        opts,
        end_offsets,
        last: Mutex::new(None),
    });
    let app = Router::new()
        .route("/", get(html))
        .route("/status.json", get(json))
        .layer(middleware::from_fn_with_state(shared.clone(), login))
        .with_state(shared);
    tokio::spawn(async move {
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "status page stopped");
        }
    });
    Ok(addr)
}

/// Where the status page checks the login: Flight SQL's [`Auth`], answered the HTTP way.
async fn login(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    match shared.auth.check(request.headers(), Some(peer.ip())) {
        Ok(()) => next.run(request).await,
        Err(refused) => {
            let code = match refused.code() {
                Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
                Code::Unauthenticated => StatusCode::UNAUTHORIZED,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let mut answer = (code, format!("{}\n", refused.message())).into_response();
            answer.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"lake\", charset=\"UTF-8\""),
            );
            answer
        }
    }
}

/// The newest reading, made again when older than [`FRESH_FOR`]; concurrent requests wait for
/// one reading instead of each making their own.
async fn reading(shared: &Shared) -> Reading {
    let mut last = shared.last.lock().await;
    if let Some((at, status)) = last.as_ref() {
        if at.elapsed() < FRESH_FOR {
            return status.clone();
        }
    }
    let read = async {
        gather::status(&shared.lake, &shared.opts, shared.end_offsets.as_ref())
            .await
            .map_err(|e| tonic::Status::internal(e.to_string()))
    };
    let status = Arc::new(
        shared
            .engine
            .limited(read)
            .await
            .map_err(|e| e.message().to_string()),
    );
    *last = Some((Instant::now(), status.clone()));
    status
}

async fn html(State(shared): State<Arc<Shared>>) -> Response {
    let status = reading(&shared).await;
    let code = match status.as_ref() {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    let page = page::render(status.as_ref().as_ref().map_err(String::as_str));
    (code, page).into_response()
}

async fn json(State(shared): State<Arc<Shared>>) -> Response {
    match reading(&shared).await.as_ref() {
        Ok(status) => Json(status).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}
