//! `lake demo`: the pipeline on one machine with no Docker and no external broker. An embedded
//! Kafka-compatible broker (librdkafka's mock cluster) gets a few days of history, ingest
//! catches up, the daily job runs for every complete day, then Flight SQL serves the lake on
//! loopback (no auth) while live events keep flowing until Ctrl-C or `--duration`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rdkafka::bindings as rdsys;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};

use crate::config::DEFAULT_TOPIC as TOPIC;
use crate::daily::history::RunStatus;
use crate::daily::sensor::SensorOptions;
use crate::daily::{self, shipped, DailyOptions};
use crate::error::{Error, Result};
use crate::ingest::{self, BatchLimits, IngestOptions};
use crate::lake::{Lake, USER_EVENTS};
use crate::produce::{self, ProduceOptions};
use crate::serve::control::ControlOptions;
use crate::serve::status::lag::KafkaTopic;
use crate::serve::{self, ServeOptions};
use crate::shutdown::CancellationToken;

#[derive(Debug, Clone)]
pub(crate) struct DemoOptions {
    pub(crate) history_events: u64,
    pub(crate) days: u32,
    pub(crate) live_rate: u64,
    /// Stop by itself after this long in the live phase (for tests and scripted runs).
    pub(crate) duration: Option<Duration>,
    pub(crate) seed: u64,
    /// Folder with daily/ and checks/; the built-in copies when it has no daily/.
    pub(crate) sql_dir: PathBuf,
    /// Where Flight SQL listens (loopback, no auth); port 0 or a taken port picks a free one.
    pub(crate) flight_addr: SocketAddr,
    /// Where the status page listens (loopback, no auth), the same way.
    pub(crate) status_addr: SocketAddr,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            history_events: 300_000,
            days: 3,
            live_rate: 200,
            duration: None,
            seed: 42,
            sql_dir: DailyOptions::default().sql_dir,
            flight_addr: ServeOptions::default().addr,
            status_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        }
    }
}

/// What the demo did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DemoSummary {
    pub(crate) brokers: String,
    pub(crate) history_events: u64,
    pub(crate) ingested_events: u64,
}

fn produce_options(
    brokers: &str,
    opts: &DemoOptions,
    events: Option<u64>,
    rate: u64,
) -> ProduceOptions {
    let days = opts.days.max(1);
    ProduceOptions {
        brokers: brokers.to_string(),
        events,
        rate,
        start_date: produce::first_of_last_days(days),
        days,
        seed: opts.seed,
        progress: events.is_some(),
        ..ProduceOptions::default()
    }
}

fn ingest_options(brokers: &str, source: &str, until_caught_up: bool) -> IngestOptions {
    // The live phase stops after the producer and catches up with it first: nothing produced
    // is left behind.
    let drain_on_shutdown = !until_caught_up;
    IngestOptions {
        brokers: brokers.to_string(),
        source: source.to_string(),
        group: "lake-demo".to_string(),
        batch: BatchLimits {
            max_latency: Duration::from_millis(500),
            ..BatchLimits::default()
        },
        until_caught_up,
        drain_on_shutdown,
        stats_interval: Duration::from_secs(30),
        ..IngestOptions::default()
    }
}

/// A client handle that owns the embedded broker (librdkafka's mock cluster), which lives as long
/// as the handle. The mock, like a real broker, waits `group.initial.rebalance.delay.ms` (3 s)
/// before a new consumer group's first assignment; each of the demo's ingest runs starts one, so
/// the delay is set to none.
fn embedded_broker() -> Result<BaseProducer> {
    let holder: BaseProducer = ClientConfig::new()
        .set("test.mock.num.brokers", "1")
        .create()?;
    // SAFETY: `holder` is a live client; the mock cluster it returns, checked for null, lives as
    // long as `holder`, and the setter only stores the value.
    unsafe {
        let cluster = rdsys::rd_kafka_handle_mock_cluster(holder.client().native_ptr());
        if !cluster.is_null() {
            rdsys::rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, 0);
        }
    }
    Ok(holder)
}

/// Runs the demo until `shutdown` is cancelled (or `opts.duration` passes in the live phase).
pub(crate) async fn run(
    lake: &Lake,
    opts: DemoOptions,
    shutdown: CancellationToken,
) -> Result<DemoSummary> {
    let broker = embedded_broker()?;
    let mock = broker
        .client()
        .mock_cluster()
        .ok_or_else(|| Error::Other("librdkafka made no mock cluster".into()))?;
    mock.create_topic(TOPIC, 3, 1)?;
    let brokers = mock.bootstrap_servers();
    // Offsets of this broker start at 0: its progress markers must not be confused with those
    // of an earlier demo's broker on the same lake.
    let source = format!(
        "{TOPIC}@demo-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f")
    );
    println!(
        "embedded broker (librdkafka mock cluster) at {brokers}, topic {TOPIC} with 3 partitions"
    );

    println!(
        "producing {} events over the last {} days ...",
        opts.history_events,
        opts.days.max(1)
    );
    let history = produce::run(
        produce_options(&brokers, &opts, Some(opts.history_events), 0),
        shutdown.clone(),
    )
    .await?;
    println!("ingesting into {} ...", lake.table_location(USER_EVENTS));
    let caught_up = ingest::run(
        lake,
        ingest_options(&brokers, &source, true),
        shutdown.clone(),
    )
    .await?;
    println!(
        "ingested {} events ({} dead letters) in {} commits",
        caught_up.events, caught_up.dead_letters, caught_up.commits
    );
    if shutdown.is_cancelled() {
        return Ok(DemoSummary {
            brokers,
            history_events: history.delivered,
            ingested_events: caught_up.events,
        });
    }
    let sql_dir = run_daily(lake, &opts, &source, &shutdown).await?;
    let (bound, flight) =
        start_flight_sql(lake, &opts, &brokers, &source, sql_dir, shutdown.clone()).await?;
    print_next_steps(lake, &brokers, bound, opts.live_rate);

    if let Some(d) = opts.duration {
        let stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            stop.cancel();
        });
    }
    // Ingest stops only after the producer, draining what it produced (not on the signal).
    let ingest_stop = CancellationToken::new();
    let live_produce = async {
        let produced = produce::run(
            produce_options(&brokers, &opts, None, opts.live_rate.max(1)),
            shutdown.clone(),
        )
        .await;
        // Only now may ingest stop: it drains what was produced up to this moment.
        ingest_stop.cancel();
        produced
    };
    let live_ingest = ingest::run(
        lake,
        ingest_options(&brokers, &source, false),
        ingest_stop.clone(),
    );
    let (produced, ingested) = tokio::join!(live_produce, live_ingest);
    let produced = produced?;
    let ingested = ingested?;
    if ingested.events + ingested.dead_letters < produced.delivered {
        return Err(Error::Other(format!(
            "live phase: {} events produced but only {} committed",
            produced.delivered, ingested.events
        )));
    }
    println!(
        "stopped: {} live events produced and committed; all data is in {}",
        produced.delivered, lake
    );
    if let Ok(Err(e)) = flight.await {
        tracing::warn!("Flight SQL server: {e}");
    }
    drop(mock);
    drop(broker);
    Ok(DemoSummary {
        brokers,
        history_events: history.delivered,
        ingested_events: caught_up.events + ingested.events,
    })
}

/// `addr`, or port 0 (a free one) if `addr` is taken.
fn free(mut addr: SocketAddr, what: &str) -> SocketAddr {
    if std::net::TcpListener::bind(addr).is_err() {
        println!("{addr} is taken: serving {what} on a free port instead");
        addr.set_port(0);
    }
    addr
}

/// Starts Flight SQL on `opts.flight_addr` and the status page on `opts.status_addr` (each on a
/// free port if taken); returns where they listen and the server task, which ends when
/// `shutdown` is set.
async fn start_flight_sql(
    lake: &Lake,
    opts: &DemoOptions,
    brokers: &str,
    source: &str,
    sql_dir: PathBuf,
    shutdown: CancellationToken,
) -> Result<(serve::Bound, tokio::task::JoinHandle<Result<()>>)> {
    let serve_opts = ServeOptions {
        addr: free(opts.flight_addr, "Flight SQL"),
        http_addr: Some(free(opts.status_addr, "the status page")),
        kafka: Some(KafkaTopic {
            brokers: brokers.to_string(),
            topic: TOPIC.to_string(),
            properties: Default::default(),
        }),
        query_timeout: Duration::from_secs(300),
        control: ControlOptions {
            sql_dir,
            topic: source.to_string(),
            ..ControlOptions::default()
        },
        ..ServeOptions::default()
    };
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let lake = lake.clone();
    let task = tokio::spawn(async move {
        serve::run(
            &lake,
            serve_opts,
            |bound| {
                // Nobody listens any more only if the demo already gave up.
                let _ = bound_tx.send(bound);
            },
            shutdown,
        )
        .await
    });
    match bound_rx.await {
        Ok(bound) => Ok((bound, task)),
        Err(_) => match task.await {
            Ok(Err(e)) => Err(e),
            _ => Err(Error::Other("the Flight SQL server did not start".into())),
        },
    }
}

/// Runs the daily job for every day of the history that the sensor finds complete; returns the
/// SQL folder it used.
async fn run_daily(
    lake: &Lake,
    opts: &DemoOptions,
    source: &str,
    shutdown: &CancellationToken,
) -> Result<PathBuf> {
    let sql_dir = if opts.sql_dir.join("daily").is_dir() {
        opts.sql_dir.clone()
    } else {
        let dir = std::env::temp_dir().join(format!("lake-demo-sql-{}", std::process::id()));
        shipped::write_to(&dir)?;
        println!(
            "no {}/daily here: using the built-in SQL files",
            opts.sql_dir.display()
        );
        dir
    };
    let daily_opts = DailyOptions {
        sql_dir: sql_dir.clone(),
        sensor: Some(SensorOptions {
            topic: source.to_string(),
            ..SensorOptions::default()
        }),
        trigger: "demo".into(),
        ..DailyOptions::default()
    };
    // Today is still filling up: only the days before it can be complete.
    let days = opts.days.max(1);
    let first = produce::first_of_last_days(days);
    for date in first.iter_days().take(days as usize - 1) {
        let run = daily::run_date(lake, &daily_opts, date, shutdown).await?;
        let checks_passed = run.checks.iter().filter(|c| c.status == "pass").count();
        match run.status {
            RunStatus::Succeeded => println!(
                "daily job {date}: {} tables written, {checks_passed}/{} checks passed",
                run.tables.len(),
                run.checks.len()
            ),
            RunStatus::SensorTimeout => {
                println!("daily job {date}: skipped, the day is not complete yet")
            }
            RunStatus::Failed => println!(
                "daily job {date}: failed: {}",
                run.error.unwrap_or_default()
            ),
        }
    }
    Ok(sql_dir)
}

fn print_next_steps(lake: &Lake, brokers: &str, bound: serve::Bound, rate: u64) {
    let events = lake.table_location(USER_EVENTS);
    let flight_url = format!("grpc://{}", bound.flight);
    let port = bound.flight.port();
    let page = match bound.status_page {
        Some(page) => format!("Status page: http://{page}/\n"),
        None => String::new(),
    };
    println!(
        "\nFlight SQL: {flight_url} (loopback, no auth). Live: about {rate} events/s, committed \
         every 0.5 s. Ctrl-C stops.\n\
         {page}\
         \n\
         lake sql (the daily tables and the run history):\n  \
         lake sql --lake {lake} -c \"SELECT * FROM daily_metrics ORDER BY date\"\n  \
         lake runs --lake {lake}\n\
         Python ADBC (pip install adbc-driver-flightsql pyarrow):\n  \
         import adbc_driver_flightsql.dbapi as f; c = f.connect('{flight_url}').cursor()\n  \
         c.execute('SELECT event_type, count(*) FROM raw.user_events GROUP BY 1'); print(c.fetchall())\n\
         pyarrow Flight SQL is the same protocol; DBeaver (Flight SQL JDBC driver) URL:\n  \
         jdbc:arrow-flight-sql://127.0.0.1:{port}/?useEncryption=false\n\
         Kafka clients (librdkafka-based, e.g. kcat, confluent-kafka) can use the broker:\n  \
         kcat -b {brokers} -t {TOPIC} -C -c 5\n\
         DuckDB (delta extension) reads the tables directly:\n  \
         SELECT event_date, event_type, count(*) FROM delta_scan('{events}') GROUP BY ALL ORDER BY ALL;\n\
         Python deltalake / Polars:\n  \
         import deltalake; print(deltalake.DeltaTable('{events}').to_pyarrow_table().num_rows)\n  \
         import polars as pl; pl.read_delta('{events}').group_by('event_type').len()\n"
    );
}
