//! `--metrics-addr`, shared by the long-running commands (ingest, serve, schedule, demo): where
//! the process serves its Prometheus metrics and health probes ([`crate::metrics::http`]).

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;

use crate::metrics::http;
use crate::shutdown::CancellationToken;

#[derive(Args, Debug, Clone, Default)]
pub(crate) struct MetricsArgs {
    /// Serve /metrics, /healthz and /readyz over HTTP on this address, e.g. 127.0.0.1:9464
    /// [default: off]
    #[arg(long, env = "LAKE_METRICS_ADDR")]
    pub(crate) metrics_addr: Option<SocketAddr>,
}

/// Starts the endpoint when an address is set; `ready` answers `/readyz`.
pub(crate) async fn start(
    addr: Option<SocketAddr>,
    ready: impl Fn() -> Result<(), String> + Send + Sync + 'static,
    stop: &CancellationToken,
) -> anyhow::Result<Option<SocketAddr>> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let bound = http::start(addr, Arc::new(ready), stop.child_token()).await?;
    Ok(Some(bound))
}
