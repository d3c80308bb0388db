//! `lake serve`: the lake over Arrow Flight SQL (JDBC, ADBC, pyarrow), read-only.
//!
//! - [`auth`]: login and the check in front of every call;
//! - [`statement`]: planning and running queries under the limits;
//! - [`constants`]: how large a constant a query may copy into rows;
//! - [`joined`]: how large a value may meet a join or a window function;
//! - [`windows`]: which aggregates may be window functions, over which frames;
//! - [`planned`]: plans kept between requests while their tables have no newer commit;
//! - [`metadata`]: catalogs, schemas, tables, SqlInfo, type info;
//! - [`flight_sql`]: the protocol mapping;
//! - [`encode`]: result batches into Arrow IPC messages, their buffers uncopied;
//! - [`do_get`]: DoGet answered below tonic's codec, those buffers sent as they are;
//! - [`control`]: the control API (`proto/lake/v1/control.proto`) on the same port;
//! - [`observe`]: every call counted and timed for the metrics;
//! - [`idle`]: freed memory handed back once no query has run for a while;
//! - [`overview`]: tables and ingest progress as the control API and the status page show them;
//! - [`status`]: the status web page (`--http-addr`).

pub(crate) mod auth;
pub(crate) mod caught;
pub(crate) mod constants;
pub(crate) mod control;
pub(crate) mod do_get;
pub(crate) mod encode;
pub(crate) mod flight_sql;
pub(crate) mod idle;
pub(crate) mod joined;
pub(crate) mod metadata;
pub(crate) mod observe;
pub(crate) mod overview;
pub(crate) mod paced;
pub(crate) mod planned;
pub(crate) mod statement;
pub(crate) mod status;
pub(crate) mod windows;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::shutdown::{self, CancellationToken};
use auth::{Auth, AuthLayer, Credentials};
use control::proto::control_server::ControlServer;
use control::{ControlOptions, ControlService};
use do_get::FlightService;
use flight_sql::LakeFlightSql;
use observe::MetricsLayer;
use statement::{Engine, Limits};
use status::StatusOptions;

/// gRPC messages up to this size are accepted (ADBC's Go driver sends up to 16 MiB).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// How often an idle connection is probed, and how long a probe may go unanswered.
const KEEPALIVE: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Calls one connection may have open at once.
const MAX_STREAMS_PER_CONNECTION: u32 = 100;

#[derive(Debug, Clone)]
pub(crate) struct ServeOptions {
    pub(crate) addr: SocketAddr,
    /// None: no auth (refused off loopback unless `allow_public_without_auth`).
    pub(crate) credentials: Option<Credentials>,
    pub(crate) allow_public_without_auth: bool,
    /// Take passwords without TLS on a non-loopback address (a private network's choice).
    pub(crate) allow_plaintext_password: bool,
    /// PEM certificate chain and private key.
    pub(crate) tls: Option<(PathBuf, PathBuf)>,
    pub(crate) query_timeout: Duration,
    /// Bytes all running queries may hold together; past it they spill or fail.
    pub(crate) memory_limit: Option<usize>,
    pub(crate) max_concurrent_queries: usize,
    /// How the control API runs the daily job.
    pub(crate) control: ControlOptions,
    /// Where the status page listens (None: no page).
    pub(crate) http_addr: Option<SocketAddr>,
    /// The ingested topic in Kafka: the status page shows lag with it.
    pub(crate) kafka: Option<status::lag::KafkaTopic>,
}

/// Half the memory this process may use (the machine's, or its cgroup's limit when lower):
/// the default of what all running queries may hold together. Without a limit, one sort of a
/// few billion generated rows took the server's memory until the timeout. None where it cannot
/// be read (not Linux).
pub(crate) fn half_the_memory() -> Option<usize> {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let kib = info.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
            kib.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<usize>()
                .ok()
        })?
        * 1024;
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok());
    Some(cgroup.map_or(total, |c| c.min(total)) / 2)
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            credentials: None,
            allow_public_without_auth: false,
            allow_plaintext_password: false,
            tls: None,
            query_timeout: Duration::from_secs(60),
            memory_limit: half_the_memory(),
            max_concurrent_queries: 8,
            control: ControlOptions::default(),
            http_addr: None,
            kafka: None,
        }
    }
}

/// Refuses to listen on `addr` (off loopback) without auth, or taking passwords in clear text,
/// unless the options say so.
fn exposure_allowed(opts: &ServeOptions, addr: SocketAddr, tls: bool) -> Result<()> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    if opts.credentials.is_none() && !opts.allow_public_without_auth {
        return Err(Error::Config(format!(
            "refusing to serve {addr} without auth: set [serve] user and password (or \
             LAKE_SERVE_USER / LAKE_SERVE_PASSWORD), or pass --insecure-no-auth"
        )));
    }
    if opts.credentials.is_some() && !tls && !opts.allow_plaintext_password {
        let fix = match Some(addr) == opts.http_addr {
            // The status page speaks plain HTTP: TLS belongs to a proxy in front of it.
            true => "keep --http-addr on loopback behind a TLS proxy",
            false => "configure TLS ([serve] tls_cert and tls_key, or --tls-cert / --tls-key)",
        };
        return Err(Error::Config(format!(
            "refusing to take passwords in clear text on {addr}: {fix}, or pass --insecure-no-tls"
        )));
    }
    Ok(())
}

/// Where the server listens once bound (port 0 picks one).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bound {
    pub(crate) flight: SocketAddr,
    pub(crate) status_page: Option<SocketAddr>,
}

/// Serves until `stop` is cancelled; `ready` gets the bound addresses.
/// How often the tables of a lake on an object store are listed again for the catalog's
/// metadata (`information_schema`; queries naming a table look it up themselves).
const LISTING_EVERY: Duration = Duration::from_secs(10);

/// Lists the tables of `lake` every [`LISTING_EVERY`] until `stop`.
async fn keep_listing(lake: Lake, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(LISTING_EVERY) => {}
            _ = stop.cancelled() => return,
        }
        if let Err(e) = lake.tables().await {
            tracing::warn!("listing the tables of {lake}: {e}");
        }
    }
}

pub(crate) async fn run(
    lake: &Lake,
    opts: ServeOptions,
    ready: impl FnOnce(Bound),
    stop: CancellationToken,
) -> Result<()> {
    exposure_allowed(&opts, opts.addr, opts.tls.is_some())?;
    if let Some(addr) = opts.http_addr {
        exposure_allowed(&opts, addr, false)?;
    }
    // An unreachable lake is an error now, not at the first query.
    lake.tables().await?;
    if lake.local_root().is_none() {
        tokio::spawn(keep_listing(lake.clone(), stop.clone()));
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
    let engine = Arc::new(engine);
    tokio::spawn(idle::release_when_idle(engine.clone(), stop.clone()));
    let auth = Arc::new(Auth::new(opts.credentials.clone()));
    let control = ControlServer::new(ControlService {
        lake: lake.clone(),
        engine: engine.clone(),
        opts: opts.control.clone(),
        shutdown: stop.clone(),
    });
    let status_page = match opts.http_addr {
        Some(addr) => {
            let page = StatusOptions {
                addr,
                source: opts.control.topic.clone(),
                max_future_skew: opts.control.max_future_skew,
                kafka: opts.kafka.clone(),
            };
            let bound = status::start(
                lake.clone(),
                engine.clone(),
                auth.clone(),
                page,
                stop.clone(),
            )
            .await?;
            Some(bound)
        }
        None => None,
    };
    let service = LakeFlightSql {
        engine,
        auth: auth.clone(),
    };
    let flight = FlightService::new(service, MAX_MESSAGE_BYTES);

    // A peer that vanished without closing (a laptop closed mid-query) is found by HTTP/2 and
    // TCP keepalive probes and its streams are dropped, instead of holding a query forever.
    let mut server = Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION));
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
    ready(Bound {
        flight: bound,
        status_page,
    });
    let serving = server
        .layer(MetricsLayer)
        .layer(AuthLayer { auth })
        .add_service(flight)
        .add_service(control)
        // Without TCP_NODELAY each small answer waits for the client's delayed ACK.
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener)
                .with_nodelay(Some(true))
                .with_keepalive(Some(KEEPALIVE)),
            stop.clone().cancelled_owned(),
        );
    // On the signal the server stops taking calls and waits for the ones under way; a query
    // that streams on (or a client that stopped reading) is cut off after the grace period.
    match shutdown::unless_stopped_for_long(serving, &stop).await {
        Some(served) => served.map_err(|e| Error::Other(format!("serve: {e}"))),
        None => {
            tracing::warn!("calls still open after the stop signal and its grace: closed");
            Ok(())
        }
    }
}
