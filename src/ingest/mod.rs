//! Kafka `user_events` → Delta `raw.user_events` (+ dead letters), exactly once.
//!
//! Data flows one way: [`consumer`] polls (messages through [`fetch_queue`]) and buffers →
//! [`stage`] hands each buffer to [`decode`] (plain events through [`fast_decode`]), which turns
//! it into rows and dead letters → [`committer`] commits them with the progress markers of
//! [`offsets`] through [`writer`]. The consumer and the decode stage each run on a thread of
//! their own (librdkafka is blocking, decoding is CPU work); the committer is an async task.
//! Bounded channels link them, so a slow commit slows polling down. [`stats`] is what the
//! consumer and the committer share.

pub(crate) mod buffer;
pub(crate) mod committer;
pub(crate) mod consumer;
pub(crate) mod decode;
pub(crate) mod fast_decode;
pub(crate) mod fetch_queue;
pub(crate) mod observe;
pub(crate) mod offsets;
pub(crate) mod stage;
pub(crate) mod stats;
pub(crate) mod writer;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::event::{Contract, EVENTS_SCHEMA};
use crate::lake::maintain::MaintainOptions;
use crate::lake::{
    dead_letters_spec, file_format, maintainer, user_events_spec, Lake, DEAD_LETTERS, USER_EVENTS,
};
use crate::shutdown::{self, CancellationToken};
use committer::Committer;
use consumer::{LakeConsumer, LakeContext, PollLoop, Stop};
use stats::Shared;

/// When the buffer is flushed into a commit: whichever limit is reached first.
#[derive(Debug, Clone)]
pub(crate) struct BatchLimits {
    pub(crate) max_rows: usize,
    pub(crate) max_bytes: usize,
    pub(crate) max_latency: Duration,
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
pub(crate) struct IngestOptions {
    pub(crate) brokers: String,
    pub(crate) topic: String,
    /// Name of the event source in the progress markers; normally the topic. Offsets are only
    /// meaningful for one topic on one cluster, so a different cluster needs a different name.
    pub(crate) source: String,
    pub(crate) group: String,
    /// Static group membership: a restarted worker with the same id gets its partitions back
    /// at once instead of after the session timeout.
    pub(crate) instance_id: Option<String>,
    /// librdkafka properties, applied last.
    pub(crate) kafka: BTreeMap<String, String>,
    pub(crate) batch: BatchLimits,
    pub(crate) contract: Contract,
    pub(crate) until_caught_up: bool,
    /// On shutdown, first ingest everything up to the end offsets of that moment.
    pub(crate) drain_on_shutdown: bool,
    pub(crate) stats_interval: Duration,
    /// Background maintenance of the tables ingest writes; None with `--no-maintain`.
    pub(crate) maintain: Option<MaintainOptions>,
    /// The columns each commit's events are sorted by: maintenance's `cluster_by`, so that its
    /// merges read fresh files as sorted streams.
    pub(crate) cluster_by: Vec<String>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        let topic = crate::config::DEFAULT_TOPIC.to_string();
        Self {
            brokers: crate::config::DEFAULT_BROKERS.to_string(),
            source: topic.clone(),
            topic,
            group: "lake-ingest".into(),
            instance_id: None,
            kafka: BTreeMap::new(),
            batch: BatchLimits::default(),
            contract: Contract::default(),
            until_caught_up: false,
            drain_on_shutdown: false,
            stats_interval: Duration::from_secs(10),
            maintain: Some(MaintainOptions::default()),
            cluster_by: MaintainOptions::default().cluster_by,
        }
    }
}

/// What one ingest run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IngestSummary {
    pub(crate) events: u64,
    pub(crate) dead_letters: u64,
    pub(crate) commits: u64,
    pub(crate) caught_up: bool,
}

/// The librdkafka settings that decide how ingest fetches (also used by the benchmark's bare
/// consumer, examples/consume_floor.rs, so that it reads the way ingest does).
pub const FETCH_SETTINGS: &[(&str, &str)] = &[
    ("enable.partition.eof", "false"),
    // librdkafka pauses a partition's fetches for this long once its local queue is full;
    // the 1 s default leaves ingest idle between buffers during a catch-up.
    ("fetch.queue.backoff.ms", "10"),
    // Prefetch little (default 64 MiB): the limit counts payload bytes only, and librdkafka
    // keeps about as much again per queued message besides. Ingest's own buffer holds the
    // next commit's messages, and the queue refills within the 10 ms backoff.
    ("queued.max.messages.kbytes", "8192"),
    // A fetch may overshoot that limit by a whole response per partition, and the limit is on
    // compressed bytes: 1 MiB (the default) of compressed small events is tens of thousands of
    // messages. A quarter of it keeps the overshoot small; the extra fetches cost little.
    ("max.partition.fetch.bytes", "262144"),
    // Most messages queued per partition (default 100,000): each costs librdkafka an op and its
    // decompressed bytes, several hundred bytes in all. While ingest writes, the queue fills up
    // to this; a fetch of 256 KiB brings several thousand, so it still refills in time.
    ("queued.min.messages", "10000"),
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

/// Runs ingest until `shutdown` is cancelled (or until caught up, with `until_caught_up`).
pub(crate) async fn run(
    lake: &Lake,
    opts: IngestOptions,
    shutdown: CancellationToken,
) -> Result<IngestSummary> {
    let events = lake.open_or_create(&user_events_spec()).await?;
    let dead_letters = lake.open_or_create(&dead_letters_spec()).await?;

    // consumer thread → decode thread → committer task; one item in flight per hop.
    let (handoff_tx, handoff_rx) = mpsc::channel(1);
    let (tx, rx) = mpsc::channel(1);
    let consumer: LakeConsumer =
        client_config(&opts).create_with_context(LakeContext::new(&opts.topic, handoff_tx))?;
    let (topic, contract) = (opts.topic.clone(), opts.contract.clone());
    let sorted_by = file_format::sort_keys(&EVENTS_SCHEMA, &opts.cluster_by);
    let sort_by = sorted_by.clone();
    let decoding = tokio::task::spawn_blocking(move || {
        stage::run(handoff_rx, tx, &topic, &contract, &sort_by)
    });
    let shared = Arc::new(Shared::default());
    let committer = Committer {
        source: opts.source.clone(),
        topic: opts.topic.clone(),
        events,
        sorted_by,
        dead_letters,
        known: BTreeMap::new(),
        shared: shared.clone(),
        events_marks: Default::default(),
        dead_letter_marks: Default::default(),
    };
    let committer = tokio::spawn(committer.run(rx));

    let maintaining = opts.maintain.clone().map(|m| {
        let (leader, stop) = (shared.clone(), shutdown.child_token());
        let tables = vec![USER_EVENTS, DEAD_LETTERS];
        let task = maintainer::run(
            lake.clone(),
            tables,
            m,
            move || leader.is_maintainer(),
            stop.clone(),
        );
        (tokio::spawn(task), stop)
    });

    let consumer_shared = shared.clone();
    let polling = tokio::task::spawn_blocking(move || -> Result<Stop> {
        let ends = if opts.until_caught_up {
            let ends = consumer::end_offsets(&consumer, &opts.topic)?;
            tracing::info!(?ends, "catching up to these end offsets");
            Some(ends)
        } else {
            None
        };
        consumer.subscribe(&[&opts.topic])?;
        PollLoop::new(&consumer, &opts, &consumer_shared, &shutdown, ends).run()
        // The consumer is dropped here, on this thread: it leaves the group, which blocks.
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
    if let Some((mut task, stop)) = maintaining {
        // A round under way may finish within the grace period, or is abandoned: a compaction
        // is one atomic commit either way, and the files of one that never landed are vacuumed.
        stop.cancel();
        match shutdown::unless_stopped_for_long(&mut task, &stop).await {
            Some(joined) => {
                joined.map_err(|e| Error::Other(format!("maintenance task: {e}")))?;
            }
            None => {
                tracing::warn!("maintenance round abandoned at shutdown");
                task.abort();
            }
        }
    }
    // A committer or decoder failure is the root cause of a consumer-side "committer stopped".
    committed?;
    decoded?;
    let stop = polled?;
    let (events, dead_letters, commits) = shared.stats.totals();
    Ok(IngestSummary {
        events,
        dead_letters,
        commits,
        caught_up: stop == Stop::CaughtUp,
    })
}
