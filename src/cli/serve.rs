//! `lake serve`: Flight SQL and the control API on one port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::endpoint::{self, MetricsArgs};
use super::help::with_default;
use crate::config::{parse_duration, parse_memory};
use crate::daily::DailyOptions;
use crate::lake::Lake;
use crate::serve::{self, ServeOptions};
use crate::shutdown::CancellationToken;

#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) metrics: MetricsArgs,
    #[arg(long, env = "LAKE_SERVE_ADDR",
          help = with_default("Address to listen on", ServeOptions::default().addr))]
    pub(crate) addr: Option<SocketAddr>,
    /// User name clients log in with (with --password)
    #[arg(long, env = "LAKE_SERVE_USER")]
    pub(crate) user: Option<String>,
    /// Password clients log in with (prefer the environment variable)
    #[arg(long, env = "LAKE_SERVE_PASSWORD", hide_env_values = true)]
    pub(crate) password: Option<String>,
    /// Serve a non-loopback address without auth
    #[arg(long)]
    pub(crate) insecure_no_auth: bool,
    /// Take passwords without TLS on a non-loopback address (a trusted private network only)
    #[arg(long)]
    pub(crate) insecure_no_tls: bool,
    /// TLS certificate chain (PEM), with --tls-key
    #[arg(long, requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// TLS private key (PEM), with --tls-cert
    #[arg(long, requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    #[arg(long, value_parser = parse_duration, help = with_default(
        "Longest a query may run",
        humantime::format_duration(ServeOptions::default().query_timeout)))]
    pub(crate) query_timeout: Option<Duration>,
    /// Memory all running queries may hold together, e.g. 2G [default: half the machine's]
    #[arg(long, value_parser = parse_memory)]
    pub(crate) memory_limit: Option<usize>,
    #[arg(long, help = with_default(
        "Queries running at once; more are refused with RESOURCE_EXHAUSTED",
        ServeOptions::default().max_concurrent_queries))]
    pub(crate) max_concurrent_queries: Option<usize>,
    #[arg(long = "sql", env = "LAKE_SQL_DIR", help = with_default(
        "Folder with daily/ and checks/ for the control API's daily runs",
        DailyOptions::default().sql_dir.display()))]
    pub(crate) sql_dir: Option<PathBuf>,
    /// Serve the status page over HTTP on this address, e.g. 127.0.0.1:8080 [default: off]
    #[arg(long, env = "LAKE_HTTP_ADDR")]
    pub(crate) http_addr: Option<SocketAddr>,
    /// Kafka bootstrap servers: the status page shows each partition's lag [default: the
    /// file's brokers, else no lag]
    #[arg(long, env = "LAKE_BROKERS")]
    pub(crate) brokers: Option<String>,
    #[arg(long, env = "LAKE_TOPIC", help = with_default(
        "Topic whose ingest progress the control API and status page report",
        ServeOptions::default().control.topic))]
    pub(crate) topic: Option<String>,
}

pub(crate) async fn run(
    lake: &Lake,
    opts: ServeOptions,
    metrics: Option<SocketAddr>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let readable = lake.clone();
    let ready = move || readable.tables_now().map(drop).map_err(|e| e.to_string());
    endpoint::start(metrics, ready, &stop).await?;
    let scheme = if opts.tls.is_some() {
        "grpc+tls"
    } else {
        "grpc"
    };
    let auth_note = if opts.credentials.is_some() {
        "login required"
    } else {
        "no auth"
    };
    serve::run(
        lake,
        opts,
        |bound| {
            // Tests and scripts read this line for the ports.
            let page = match bound.status_page {
                Some(page) => format!("; status page on http://{page}/"),
                None => String::new(),
            };
            println!(
                "Flight SQL on {scheme}://{} ({auth_note}){page}; Ctrl-C stops",
                bound.flight
            );
        },
        stop,
    )
    .await?;
    Ok(())
}
