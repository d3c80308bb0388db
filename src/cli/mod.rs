//! The `lake` command line: the flags ([`Cli`]), the settings step that turns flags, `LAKE_*`
//! variables, `lake.toml` and the defaults into typed options ([`settings`]), one file per
//! subcommand with its flags and its `run`, and the exit codes: 0 ok, 1 error (or a failed
//! `error` check), 2 usage, 3 the daily sensor's wait ran out, 130 stopped by a signal.

mod daily;
mod demo;
mod endpoint;
mod help;
mod ingest;
mod maintain;
mod produce;
mod runs;
mod schedule;
mod serve;
mod settings;
mod sql;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::Error;
use crate::shutdown;
use settings::{Global, Settings};

#[derive(Parser)]
#[command(
    name = "lake",
    version,
    about = "SQL-first lakehouse: Kafka → Delta, SQL jobs, Flight SQL"
)]
pub(crate) struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate seed-contract events into Kafka.
    Produce(produce::ProduceArgs),
    /// Consume events from Kafka into raw.user_events, exactly once.
    Ingest(ingest::IngestArgs),
    /// Compact small files, vacuum old ones and checkpoint (safe while ingest runs).
    Maintain(maintain::MaintainArgs),
    /// The pipeline on this machine with an embedded broker: history, ingest, live events.
    Demo(demo::DemoArgs),
    /// SQL over the lake (datafusion-cli): `-c SQL`, `-f FILE`, or an interactive prompt.
    Sql(sql::SqlArgs),
    /// Run sql/daily/*.sql for a date (or a range), replacing that date in processed.<name>.
    Daily(daily::DailyArgs),
    /// Recent daily runs and their check results (system.daily_runs, system.check_results).
    Runs(runs::RunsArgs),
    /// Run the daily job every day at a cron time, catching up missed dates.
    Schedule(schedule::ScheduleArgs),
    /// Serve the lake over Arrow Flight SQL (JDBC, ADBC, pyarrow), read-only.
    Serve(serve::ServeArgs),
}

/// Stack of every runtime thread. DataFusion and delta-rs walk expression trees recursively;
/// tokio's 2 MiB default overflowed (aborting the process) on statements a BI tool sends, such
/// as a long IN list. Only the pages a thread touches are memory; the rest is address space.
pub(crate) const STACK_BYTES: usize = 64 * 1024 * 1024;

/// The whole program: `src/main.rs` calls this.
pub fn main() -> ExitCode {
    crate::malloc::limit_arenas();
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve(_)) {
        crate::malloc::keep_freed_for_reuse();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(STACK_BYTES)
        .build();
    match runtime {
        Ok(rt) => {
            let code = rt.block_on(run(cli));
            // Work still on the runtime once the command returned (a query the stop abandoned,
            // a blocking read) must not hold the exit: it ends with the process.
            rt.shutdown_timeout(crate::shutdown::ABANDON_AFTER);
            code
        }
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> ExitCode {
    init_logs();
    match dispatch(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            match e.downcast_ref::<Error>() {
                Some(Error::NotComplete(_)) => ExitCode::from(3),
                Some(Error::Stopped) => ExitCode::from(130),
                _ => ExitCode::from(1),
            }
        }
    }
}

/// Logs go to stderr, filtered by `LAKE_LOG`; `LAKE_LOG_FORMAT=json` writes one JSON object per
/// line (for log collectors) instead of text.
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LAKE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,lake=info"));
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    if std::env::var("LAKE_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        logs.json().init();
    } else {
        logs.init();
    }
}

/// Runs the command. The long-running ones get the shutdown signal (`shutdown::on_signals`)
/// and stop cleanly on SIGINT or SIGTERM; the short ones (`sql`, `runs`, `maintain`) keep the
/// default, so Ctrl-C ends them at once, as it ends any query tool.
async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let s = Settings::load(&cli.global)?;
    let stop = shutdown::on_signals;
    match cli.command {
        Command::Produce(a) => produce::run(s.produce(&a)?, a.json, stop()).await,
        Command::Ingest(a) => {
            let metrics = s.metrics_addr(&a.metrics, |f| f.ingest.metrics_addr);
            ingest::run(&s.writable_lake().await?, s.ingest(a)?, metrics, stop()).await
        }
        Command::Maintain(a) => {
            let (table, opts) = s.maintain(&a)?;
            maintain::run(&s.writable_lake().await?, table, &opts).await
        }
        Command::Demo(a) => {
            let metrics = s.metrics_addr(&a.metrics, |_| None);
            demo::run(
                &s.writable_lake().await?,
                s.demo(&a),
                a.fresh,
                metrics,
                stop(),
            )
            .await
        }
        Command::Sql(a) => sql::run(&s.lake()?, settings::sql(a)).await,
        Command::Daily(a) => daily::run(&s.writable_lake().await?, s.daily(a)?, stop()).await,
        Command::Runs(a) => runs::run(&s.lake()?, &a).await,
        Command::Schedule(a) => {
            let metrics = s.metrics_addr(&a.metrics, |f| f.schedule.metrics_addr);
            let (schedule, daily) = s.schedule(a)?;
            schedule::run(
                &s.writable_lake().await?,
                &daily,
                &schedule,
                metrics,
                stop(),
            )
            .await
        }
        Command::Serve(a) => {
            let metrics = s.metrics_addr(&a.metrics, |f| f.serve.metrics_addr);
            serve::run(&s.lake()?, s.serve(a)?, metrics, stop()).await
        }
    }
}
