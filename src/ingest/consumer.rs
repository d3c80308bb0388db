//! The Kafka side of ingest: a consumer-group member on its own thread that polls messages,
//! buffers them, and hands a buffer on (to [`decode`](super::decode) and then the
//! [`Committer`](super::committer::Committer)) when it is full or old enough.
//!
//! On every partition assignment the rebalance callback asks the committer for the partitions'
//! markers in Delta and starts each partition right after its marker; Kafka's own committed
//! offsets are never trusted for that.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Message as _, Offset, TopicPartitionList};
use tokio::sync::{mpsc, oneshot};

use super::buffer::{Message, MessageBuffer};
use super::committer::{Request, Watermark};
use super::decode::Handoff;
use super::stats::{Reporter, Stats};
use super::IngestOptions;
use crate::error::{Error, Result};

/// Client context: rebalance handling that positions partitions from the Delta markers.
pub struct LakeContext {
    topic: String,
    requests: mpsc::Sender<Handoff>,
    /// Partitions revoked since the loop last looked; their buffered messages are dropped.
    revoked: Mutex<Vec<i32>>,
    assigned: Mutex<BTreeSet<i32>>,
    /// A failure inside a callback, surfaced by the loop.
    failure: Mutex<Option<String>>,
}

impl LakeContext {
    pub fn new(topic: &str, requests: mpsc::Sender<Handoff>) -> Self {
        Self {
            topic: topic.to_string(),
            requests,
            revoked: Mutex::default(),
            assigned: Mutex::default(),
            failure: Mutex::default(),
        }
    }

    /// Asks the committer, from this (non-async) thread, for fresh markers. Because requests are
    /// served in order, this also waits until every flush sent before is committed.
    fn watermarks(
        &self,
        partitions: Vec<i32>,
        reposition: bool,
    ) -> Result<BTreeMap<i32, Watermark>> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .blocking_send(Handoff::Pass(Request::Watermarks {
                partitions,
                reposition,
                reply,
            }))
            .map_err(|_| Error::Other("committer stopped".into()))?;
        answer
            .blocking_recv()
            .map_err(|_| Error::Other("committer stopped".into()))?
    }

    fn fail(&self, why: String) {
        tracing::error!("{why}");
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(why);
        }
    }

    fn take_failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|mut f| f.take())
    }

    fn take_revoked(&self) -> Vec<i32> {
        self.revoked
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default()
    }

    pub fn assigned(&self) -> Vec<i32> {
        self.assigned
            .lock()
            .map(|a| a.iter().copied().collect())
            .unwrap_or_default()
    }

    fn on_assign(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let partitions: Vec<i32> = tpl
            .elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        match self.watermarks(partitions.clone(), true) {
            Ok(marks) => {
                for (p, w) in &marks {
                    let start = w.resume_at().map_or(Offset::Beginning, Offset::Offset);
                    if let Err(e) = tpl.set_partition_offset(&self.topic, *p, start) {
                        self.fail(format!("cannot position partition {p}: {e}"));
                    }
                }
                tracing::info!(
                    ?marks,
                    "partitions assigned; resuming after the Delta markers"
                );
            }
            Err(e) => self.fail(format!("cannot read Delta markers on assignment: {e}")),
        }
        let assigned = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_assign(tpl),
            _ => consumer.assign(tpl),
        };
        if let Err(e) = assigned {
            self.fail(format!("assignment failed: {e}"));
        }
        if let Ok(mut a) = self.assigned.lock() {
            a.extend(partitions);
        }
    }

    fn on_revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        // Let in-flight flushes land before the partitions go to another worker.
        if let Err(e) = self.watermarks(Vec::new(), false) {
            tracing::warn!("committer unavailable during revoke: {e}");
        }
        let partitions: Vec<i32> = tpl
            .elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        tracing::info!(?partitions, "partitions revoked");
        let result = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_unassign(tpl),
            _ => consumer.unassign(),
        };
        if let Err(e) = result {
            tracing::warn!("unassign failed: {e}");
        }
        if let Ok(mut a) = self.assigned.lock() {
            for p in &partitions {
                a.remove(p);
            }
        }
        if let Ok(mut r) = self.revoked.lock() {
            r.extend(partitions);
        }
    }
}

impl ClientContext for LakeContext {}

impl ConsumerContext for LakeContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.on_assign(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.on_revoke(consumer, tpl),
            other => {
                tracing::warn!(?other, "rebalance error; dropping the assignment");
                if let Err(e) = consumer.unassign() {
                    tracing::warn!("unassign failed: {e}");
                }
                let lost: Vec<i32> = self
                    .assigned
                    .lock()
                    .map(|mut a| std::mem::take(&mut *a).into_iter().collect())
                    .unwrap_or_default();
                if let Ok(mut r) = self.revoked.lock() {
                    r.extend(lost);
                }
            }
        }
    }
}

pub type LakeConsumer = BaseConsumer<LakeContext>;

/// Why the poll loop ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    Shutdown,
    CaughtUp,
}

/// End offsets of every partition of the topic, captured for `--until-caught-up`.
pub fn end_offsets(consumer: &LakeConsumer, topic: &str) -> Result<BTreeMap<i32, i64>> {
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err(Error::Other(format!("topic {topic} not found")));
    };
    if t.partitions().is_empty() {
        return Err(Error::Other(format!("topic {topic} does not exist")));
    }
    let mut out = BTreeMap::new();
    for p in t.partitions() {
        let (low, high) = consumer.fetch_watermarks(topic, p.id(), timeout)?;
        // Empty partitions need nothing; otherwise everything below `high`.
        if high > low {
            out.insert(p.id(), high);
        }
    }
    Ok(out)
}

fn caught_up(ends: &BTreeMap<i32, i64>, marks: &BTreeMap<i32, Watermark>) -> bool {
    ends.iter().all(|(p, high)| {
        marks
            .get(p)
            .and_then(|w| w.events)
            .is_some_and(|m| m + 1 >= *high)
    })
}

/// The poll → buffer → decode → hand-off loop. Runs on a dedicated thread until `shutdown` is
/// set, or until caught up with `ends` when given.
pub fn poll_loop(
    consumer: &LakeConsumer,
    opts: &IngestOptions,
    epoch: &AtomicU64,
    shutdown: &AtomicBool,
    stats: &Stats,
    mirror: &Mutex<BTreeMap<i32, i64>>,
    mut ends: Option<BTreeMap<i32, i64>>,
) -> Result<Stop> {
    let ctx = consumer.context();
    let requests = &ctx.requests;
    let mut buffer = MessageBuffer::default();
    let mut oldest: Option<Instant> = None;
    let mut my_epoch = epoch.load(Ordering::SeqCst);
    let mut reporter = Reporter::default();
    let mut last_report = Instant::now();
    let mut last_caught_up_check = Instant::now();
    let mut last_mirror = Instant::now();
    let poll_timeout = Duration::from_millis(50);

    let flush = |buffer: &mut MessageBuffer, my_epoch: u64| -> Result<()> {
        if buffer.is_empty() {
            return Ok(());
        }
        requests
            .blocking_send(Handoff::Messages {
                epoch: my_epoch,
                buffer: std::mem::take(buffer),
            })
            .map_err(|_| Error::Other("committer stopped".into()))
    };

    let stop = loop {
        if let Some(why) = ctx.take_failure() {
            return Err(Error::Other(why));
        }
        if shutdown.load(Ordering::SeqCst) {
            if !opts.drain_on_shutdown {
                break Stop::Shutdown;
            }
            if ends.is_none() {
                let now = end_offsets(consumer, &opts.topic)?;
                tracing::info!(ends = ?now, "draining up to these end offsets before stopping");
                ends = Some(now);
            }
        }
        let current = epoch.load(Ordering::SeqCst);
        if current != my_epoch {
            // Our view of progress was stale: forget the buffer and restart after the markers.
            buffer = MessageBuffer::default();
            oldest = None;
            let marks = ctx.watermarks(ctx.assigned(), true)?;
            let mut all_seeked = true;
            for (p, w) in marks {
                let start = w.resume_at().map_or(Offset::Beginning, Offset::Offset);
                if let Err(e) = consumer.seek(&opts.topic, p, start, Duration::from_secs(10)) {
                    // E.g. fetching has not started yet: try again on the next turn.
                    tracing::warn!("seek of partition {p} failed, retrying: {e}");
                    all_seeked = false;
                }
            }
            if all_seeked {
                my_epoch = current;
            } else {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        }

        let polled = consumer.poll(poll_timeout);
        for p in ctx.take_revoked() {
            buffer.drop_partition(p);
        }
        if let Some(ctx_failure) = ctx.take_failure() {
            return Err(Error::Other(ctx_failure));
        }
        match polled {
            Some(Ok(m)) => {
                buffer.push(Message {
                    partition: m.partition(),
                    offset: m.offset(),
                    timestamp_ms: m.timestamp().to_millis(),
                    key: m.key(),
                    payload: m.payload(),
                });
                oldest.get_or_insert_with(Instant::now);
            }
            Some(Err(e @ KafkaError::MessageConsumptionFatal(_))) => return Err(e.into()),
            Some(Err(e)) => tracing::warn!("kafka: {e}"),
            None => {}
        }

        let due = oldest.is_some_and(|t| t.elapsed() >= opts.batch.max_latency);
        if buffer.len() >= opts.batch.max_rows || buffer.byte_size() >= opts.batch.max_bytes || due
        {
            flush(&mut buffer, my_epoch)?;
            oldest = None;
        }

        if last_mirror.elapsed() >= Duration::from_secs(1) {
            mirror_offsets(consumer, &opts.topic, mirror);
            last_mirror = Instant::now();
        }
        if last_report.elapsed() >= opts.stats_interval {
            update_lag(consumer, &opts.topic, stats);
            reporter.report(stats);
            last_report = Instant::now();
        }
        if let Some(ends) = &ends {
            if buffer.is_empty() && last_caught_up_check.elapsed() >= Duration::from_millis(200) {
                last_caught_up_check = Instant::now();
                let marks = ctx.watermarks(ends.keys().copied().collect(), false)?;
                if caught_up(ends, &marks) {
                    break Stop::CaughtUp;
                }
            }
        }
    };
    flush(&mut buffer, my_epoch)?;
    // Wait for every flush to be committed before the consumer leaves the group.
    ctx.watermarks(Vec::new(), false)?;
    mirror_offsets(consumer, &opts.topic, mirror);
    update_lag(consumer, &opts.topic, stats);
    reporter.report(stats);
    Ok(stop)
}

fn update_lag(consumer: &LakeConsumer, topic: &str, stats: &Stats) {
    let Ok(position) = consumer.position() else {
        return;
    };
    let mut lag = BTreeMap::new();
    for e in position.elements_for_topic(topic) {
        let p = e.partition();
        if let (Offset::Offset(next), Ok((_, high))) = (
            e.offset(),
            consumer.fetch_watermarks(topic, p, Duration::from_secs(1)),
        ) {
            lag.insert(p, (high - next).max(0));
        }
    }
    if let Ok(mut l) = stats.lag.lock() {
        *l = lag;
    }
}

/// Mirrors the markers committed since the last call (left in `pending` by the committer) to
/// Kafka's group offsets, so that standard tools show the lag. Runs on the consumer's thread.
fn mirror_offsets(consumer: &LakeConsumer, topic: &str, pending: &Mutex<BTreeMap<i32, i64>>) {
    let last = match pending.lock() {
        Ok(mut p) => std::mem::take(&mut *p),
        Err(_) => return,
    };
    if last.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for (p, o) in &last {
        if tpl
            .add_partition_offset(topic, *p, Offset::Offset(o + 1))
            .is_err()
        {
            return;
        }
    }
    let result: KafkaResult<()> = consumer.commit(&tpl, rdkafka::consumer::CommitMode::Async);
    if let Err(e) = result {
        tracing::debug!("offset mirror to kafka failed (harmless): {e}");
    }
}
