//! `lake serve`: the lake over Arrow Flight SQL (JDBC, ADBC, pyarrow), read-only.
//!
//! - [`auth`]: login and the check in front of every call;
//! - [`statement`]: planning and running queries under the limits;
//! - [`planned`]: plans kept between requests while their tables have no newer commit;
//! - [`metadata`]: catalogs, schemas, tables, SqlInfo, type info;
//! - [`flight_sql`]: the protocol mapping;
//! - [`encode`]: result batches into Flight data messages;
//! - [`control`]: the control API (`proto/lake/v1/control.proto`) on the same port.

pub mod auth;
pub mod control;
pub mod encode;
pub mod flight_sql;
pub mod metadata;
pub mod planned;
pub mod statement;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::error::{Error, Result};
use crate::lake::Lake;
use auth::{Auth, AuthLayer, Credentials};
use control::proto::control_server::ControlServer;
use control::{ControlOptions, ControlService};
use flight_sql::LakeFlightSql;
use statement::{Engine, Limits};

/// gRPC messages up to this size are accepted (ADBC's Go driver sends up to 16 MiB).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    /// None: no auth (refused off loopback unless `allow_public_without_auth`).
    pub credentials: Option<Credentials>,
    pub allow_public_without_auth: bool,
    /// PEM certificate chain and private key.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub query_timeout: Duration,
    /// Bytes all running queries may hold together; past it they spill or fail.
    pub memory_limit: Option<usize>,
    pub max_concurrent_queries: usize,
    /// How the control API runs the daily job.
    pub control: ControlOptions,
}

/// Serves until `stop` is set; `ready` gets the bound address (port 0 picks one).
pub async fn run(
    lake: &Lake,
    opts: ServeOptions,
    ready: impl FnOnce(SocketAddr),
    stop: Arc<AtomicBool>,
) -> Result<()> {
    if opts.credentials.is_none()
        && !opts.addr.ip().is_loopback()
        && !opts.allow_public_without_auth
    {
        return Err(Error::Config(format!(
            "refusing to serve {} without auth: set [serve] user and password (or \
             LAKE_SERVE_USER / LAKE_SERVE_PASSWORD), or pass --insecure-no-auth",
            opts.addr
        )));
    }
    let mut runtime = RuntimeEnvBuilder::new();
    if let Some(limit) = opts.memory_limit {
        runtime = runtime.with_memory_limit(limit, 1.0);
    }
    let engine = Engine::new(
        lake.clone(),
        runtime.build_arc()?,
        Limits {
            timeout: opts.query_timeout,
            max_concurrent: opts.max_concurrent_queries,
        },
    );
    let auth = Arc::new(Auth::new(opts.credentials.clone()));
    let control = ControlServer::new(ControlService {
        lake: lake.clone(),
        opts: opts.control.clone(),
    });
    let service = LakeFlightSql {
        engine: Arc::new(engine),
        auth: auth.clone(),
    };
    let flight = FlightServiceServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);

    let mut server = Server::builder();
    if let Some((cert, key)) = &opts.tls {
        // Err only means a provider is installed already, which is what we want.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let read = |p: &PathBuf| std::fs::read(p).map_err(|e| Error::io(p.display(), e));
        let identity = Identity::from_pem(read(cert)?, read(key)?);
        server = server
            .tls_config(ServerTlsConfig::new().identity(identity))
            .map_err(|e| Error::Config(format!("TLS: {e}")))?;
    }
    let listener = tokio::net::TcpListener::bind(opts.addr)
        .await
        .map_err(|e| Error::io(opts.addr, e))?;
    let bound = listener.local_addr().map_err(|e| Error::io(opts.addr, e))?;
    ready(bound);
    let shutdown = async move {
        while !stop.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    server
        .layer(AuthLayer { auth })
        .add_service(flight)
        .add_service(control)
        // Without TCP_NODELAY each small answer waits for the client's delayed ACK (~40 ms).
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
        .map_err(|e| Error::Other(format!("serve: {e}")))
}
