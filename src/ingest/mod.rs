//! Kafka `user_events` → Delta `raw.user_events` (+ dead letters), exactly once.
//!
//! Data flows one way: [`consumer`] polls and buffers → [`decode`] turns a buffer into rows and
//! dead letters → [`committer`] commits them with the progress markers of [`offsets`] through
//! [`writer`]. The consumer and the decoder each run on a thread of their own (librdkafka is
//! blocking, decoding is CPU work); the committer is an async task. Bounded channels link them,
//! so a slow commit slows polling down.

pub mod buffer;
pub mod committer;
pub mod consumer;
pub mod decode;
pub mod offsets;
pub mod stats;
pub mod writer;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::event::Contract;
use crate::lake::{dead_letters_spec, user_events_spec, Lake};
use committer::Committer;
use consumer::{LakeConsumer, LakeContext, Stop};
use stats::Stats;

/// When the buffer is flushed into a commit: whichever limit is reached first.
#[derive(Debug, Clone)]
pub struct BatchLimits {
    pub max_rows: usize,
    pub max_bytes: usize,
    pub max_latency: Duration,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_rows: 100_000,
            max_bytes: 64 * 1024 * 1024,
            max_latency: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub brokers: String,
    pub topic: String,
    /// Name of the event source in the progress markers; normally the topic. Offsets are only
    /// meaningful for one topic on one cluster, so a different cluster needs a different name.
    pub source: String,
    pub group: String,
    /// Static group membership: a restarted worker with the same id gets its partitions back
    /// at once instead of after the session timeout.
    pub instance_id: Option<String>,
    /// librdkafka properties, applied last.
    pub kafka: BTreeMap<String, String>,
    pub batch: BatchLimits,
    pub contract: Contract,
    pub until_caught_up: bool,
    /// On shutdown, first ingest everything up to the end offsets of that moment.
    pub drain_on_shutdown: bool,
    pub stats_interval: Duration,
}

/// What one ingest run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestSummary {
    pub events: u64,
    pub dead_letters: u64,
    pub commits: u64,
    pub caught_up: bool,
}

/// The librdkafka settings that decide how ingest fetches (also used by the benchmark's bare
/// consumer, examples/consume_floor.rs, so that it reads the way ingest does).
pub const FETCH_SETTINGS: &[(&str, &str)] = &[
    ("enable.partition.eof", "false"),
    // librdkafka pauses a partition's fetches for this long once its local queue is full;
    // the 1 s default leaves ingest idle between buffers during a catch-up.
    ("fetch.queue.backoff.ms", "10"),
    // Prefetch less (default 64 MiB): the buffers downstream hold the rest.
    ("queued.max.messages.kbytes", "32768"),
];

fn client_config(opts: &IngestOptions) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &opts.brokers)
        .set("group.id", &opts.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // A crashed worker's partitions move on within seconds, not the 45 s default.
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1500");
    for (k, v) in FETCH_SETTINGS {
        cfg.set(*k, *v);
    }
    if let Some(id) = &opts.instance_id {
        cfg.set("group.instance.id", id);
    }
    for (k, v) in &opts.kafka {
        cfg.set(k, v);
    }
    cfg
}

/// Runs ingest until `shutdown` is set (or until caught up, with `until_caught_up`).
pub async fn run(
    lake: &Lake,
    opts: IngestOptions,
    shutdown: Arc<AtomicBool>,
) -> Result<IngestSummary> {
    let events = lake.open_or_create(&user_events_spec()).await?;
    let dead_letters = lake.open_or_create(&dead_letters_spec()).await?;

    // consumer thread → decode thread → committer task; one item in flight per hop.
    let (handoff_tx, handoff_rx) = mpsc::channel(1);
    let (tx, rx) = mpsc::channel(1);
    let consumer: Arc<LakeConsumer> = Arc::new(
        client_config(&opts).create_with_context(LakeContext::new(&opts.topic, handoff_tx))?,
    );
    let (topic, contract) = (opts.topic.clone(), opts.contract.clone());
    let decoding =
        tokio::task::spawn_blocking(move || decode::run_stage(handoff_rx, tx, &topic, &contract));
    let epoch = Arc::new(AtomicU64::new(0));
    let stats = Arc::new(Stats::default());

    // Markers to mirror to Kafka's group offsets; the consumer thread does the mirroring (the
    // committer must not hold the consumer: dropping it there would block an async thread).
    let mirror: Arc<Mutex<BTreeMap<i32, i64>>> = Arc::default();
    let committed_marks = mirror.clone();
    let committer = Committer {
        source: opts.source.clone(),
        events,
        dead_letters,
        known: BTreeMap::new(),
        epoch: epoch.clone(),
        stats: stats.clone(),
        on_committed: Box::new(move |marks| {
            if let Ok(mut m) = committed_marks.lock() {
                m.extend(marks.iter().map(|(p, o)| (*p, *o)));
            }
        }),
    };
    let committer = tokio::spawn(committer.run(rx));

    let thread_stats = stats.clone();
    let polling = tokio::task::spawn_blocking(move || -> Result<Stop> {
        let ends = if opts.until_caught_up {
            let ends = consumer::end_offsets(&consumer, &opts.topic)?;
            tracing::info!(?ends, "catching up to these end offsets");
            Some(ends)
        } else {
            None
        };
        consumer.subscribe(&[&opts.topic])?;
        let stop = consumer::poll_loop(
            &consumer,
            &opts,
            &epoch,
            &shutdown,
            &thread_stats,
            &mirror,
            ends,
        );
        drop(consumer);
        stop
    });

    let polled = polling
        .await
        .map_err(|e| Error::Other(format!("consumer thread: {e}")))?;
    let decoded = decoding
        .await
        .map_err(|e| Error::Other(format!("decode thread: {e}")))?;
    let committed = committer
        .await
        .map_err(|e| Error::Other(format!("committer task: {e}")))?;
    // A committer or decoder failure is the root cause of a consumer-side "committer stopped".
    committed?;
    decoded?;
    let stop = polled?;
    let (events, dead_letters, commits) = stats.totals();
    Ok(IngestSummary {
        events,
        dead_letters,
        commits,
        caught_up: stop == Stop::CaughtUp,
    })
}
