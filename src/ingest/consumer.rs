//! The Kafka side of ingest: a consumer-group member on its own thread ([`PollLoop`]) that polls
//! messages, buffers them, and hands a buffer on (to [`stage`](super::stage), which decodes it
//! for the [`Committer`](super::committer::Committer)) when it is full or old enough.
//!
//! On every partition assignment the rebalance callback asks the committer for the partitions'
//! markers in Delta and starts each partition right after its marker; Kafka's own committed
//! offsets are never trusted for that.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::bindings::rd_kafka_queue_t;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Message as _, Offset, TopicPartitionList};
use tokio::sync::{mpsc, oneshot};

use super::buffer::{Message, MessageBuffer};
use super::committer::{Request, Watermark};
use super::fetch_queue::{self, FetchQueue};
use super::observe;
use super::stage::Handoff;
use super::stats::{Reporter, Shared, Stats};
use super::IngestOptions;
use crate::error::{Error, Result};
use crate::shutdown::CancellationToken;

/// Client context: rebalance handling that positions partitions from the Delta markers.
pub(crate) struct LakeContext {
    topic: String,
    requests: mpsc::Sender<Handoff>,
    /// Partitions revoked since the loop last looked; their buffered messages are dropped.
    revoked: Mutex<Vec<i32>>,
    assigned: Mutex<BTreeSet<i32>>,
    /// A failure inside a callback, surfaced by the loop.
    failure: Mutex<Option<String>>,
    /// Set when a callback left something for the loop (revoked partitions, a failure): one
    /// atomic load per message instead of two locks.
    attention: AtomicBool,
    /// The poll loop's [`FetchQueue`] while it runs (null otherwise): assigned partitions'
    /// messages are forwarded there.
    fetch_queue: AtomicPtr<rd_kafka_queue_t>,
}

impl LakeContext {
    pub(crate) fn new(topic: &str, requests: mpsc::Sender<Handoff>) -> Self {
        Self {
            topic: topic.to_string(),
            requests,
            revoked: Mutex::default(),
            assigned: Mutex::default(),
            failure: Mutex::default(),
            attention: AtomicBool::new(false),
            fetch_queue: AtomicPtr::new(std::ptr::null_mut()),
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
        self.attention.store(true, Ordering::Release);
    }

    /// Whether a callback left something for the loop since it last asked.
    fn needs_attention(&self) -> bool {
        self.attention.load(Ordering::Relaxed) && self.attention.swap(false, Ordering::AcqRel)
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

    pub(crate) fn assigned(&self) -> Vec<i32> {
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
                let resume_points = marks.iter().filter_map(|(p, w)| Some((*p, w.resume_at()?)));
                for (p, resume) in resume_points {
                    if let Err(why) = self.check_resume_point(consumer, p, resume) {
                        // Nothing is assigned: not one message of the partition is read.
                        self.fail(why);
                        return;
                    }
                }
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
        self.forward_to_fetch_queue(consumer, &partitions);
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

    /// Sends `partitions`' messages to the poll loop's [`FetchQueue`], if it has one, before
    /// they are assigned. A partition that cannot be forwarded is read through the consumer's
    /// own queue instead.
    fn forward_to_fetch_queue(&self, consumer: &BaseConsumer<Self>, partitions: &[i32]) {
        let queue = self.fetch_queue.load(Ordering::Acquire);
        if queue.is_null() {
            return;
        }
        let Ok(topic) = CString::new(self.topic.as_str()) else {
            return;
        };
        let (batched, single): (Vec<i32>, Vec<i32>) = partitions
            .iter()
            // SAFETY: the pointer is non-null only while the poll loop's queue lives (`OwnQueue`),
            // and this callback runs inside the loop's own polls.
            .partition(|p| unsafe { fetch_queue::forward(consumer, &topic, **p, queue) });
        if !batched.is_empty() {
            tracing::info!(partitions = ?batched, "messages read in batches");
        }
        if !single.is_empty() {
            tracing::warn!(partitions = ?single, "no partition queue: messages read one at a time");
        }
    }

    /// Whether `partition` can be resumed at `resume` (one past its marker). Offsets only grow in
    /// a topic, so a marker at or past the partition's end means these are not the messages the
    /// lake ingested: the topic was deleted and recreated, or its log truncated, and resuming
    /// would silently skip the new messages up to the marker. (A recreated topic that already
    /// holds more messages than the marker cannot be told apart by offsets.)
    fn check_resume_point(
        &self,
        consumer: &BaseConsumer<Self>,
        partition: i32,
        resume: i64,
    ) -> std::result::Result<(), String> {
        let topic = &self.topic;
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .map_err(|e| format!("cannot read the offsets of partition {partition}: {e}"))?;
        if resume > high {
            return Err(format!(
                "partition {partition} of {topic} ends at offset {high}, but the lake already \
                 holds its messages up to offset {}: the topic was deleted and recreated, or its \
                 log truncated, and resuming would skip the new messages. To ingest it from its \
                 start as a new source, run ingest with --source NAME, a name not used before \
                 (e.g. --source {topic}-2); the old source's rows and markers stay",
                resume - 1
            ));
        }
        if low > resume {
            tracing::error!(
                partition,
                next_to_ingest = resume,
                first_in_kafka = low,
                "Kafka's retention deleted messages before ingest read them; they are lost"
            );
        }
        Ok(())
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
        self.attention.store(true, Ordering::Release);
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

pub(crate) type LakeConsumer = BaseConsumer<LakeContext>;

/// Why the poll loop ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    Shutdown,
    CaughtUp,
}

/// End offsets of every partition of the topic, captured for `--until-caught-up`.
pub(crate) fn end_offsets(consumer: &LakeConsumer, topic: &str) -> Result<BTreeMap<i32, i64>> {
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

/// Whether every partition of `ends` is ingested up to its end: its marker is there, or (the
/// buffer being empty and every flush committed) the consumer's position is, which also counts
/// the offsets of records that are not messages (a transaction's commit marker).
fn caught_up(
    ends: &BTreeMap<i32, i64>,
    marks: &BTreeMap<i32, Watermark>,
    positions: &BTreeMap<i32, i64>,
) -> bool {
    ends.iter().all(|(p, high)| {
        let marked = marks.get(p).and_then(|w| w.resume_at());
        let read = positions.get(p).copied();
        marked.max(read).is_some_and(|next| next >= *high)
    })
}

/// The consumer's next offset to read, per assigned partition that has one.
fn positions(consumer: &LakeConsumer, topic: &str) -> BTreeMap<i32, i64> {
    let Ok(list) = consumer.position() else {
        return BTreeMap::new();
    };
    list.elements_for_topic(topic)
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(next) => Some((e.partition(), next)),
            _ => None,
        })
        .collect()
}

/// The poll → buffer → hand-off loop, on the consumer's own thread. Each turn of [`run`] is a
/// sequence of named steps; the loop ends on shutdown, or once caught up with `ends` when given.
///
/// [`run`]: PollLoop::run
pub(crate) struct PollLoop<'a> {
    consumer: &'a LakeConsumer,
    opts: &'a IngestOptions,
    shared: &'a Shared,
    shutdown: &'a CancellationToken,
    /// End offsets to catch up to (`--until-caught-up`, or draining on shutdown).
    ends: Option<BTreeMap<i32, i64>>,
    buffer: MessageBuffer,
    /// When the oldest buffered message arrived.
    oldest: Option<Instant>,
    /// The epoch the buffer's messages were read in.
    epoch: u64,
    reporter: Reporter,
    last_report: Instant,
    last_caught_up_check: Instant,
    last_mirror: Instant,
    /// Where assigned partitions' messages arrive, read in batches; `None` if librdkafka gave
    /// no queue, and every message comes through the consumer's queue.
    fetch: Option<OwnQueue<'a>>,
}

/// The poll loop's [`FetchQueue`], known to the rebalance callback while the loop runs. It goes
/// before the consumer does (the loop borrows the consumer).
struct OwnQueue<'a> {
    ctx: &'a LakeContext,
    queue: FetchQueue<'a, LakeContext>,
}

impl<'a> OwnQueue<'a> {
    fn register(consumer: &'a LakeConsumer) -> Option<Self> {
        let queue = FetchQueue::new(consumer, BURST)?;
        let ctx: &'a LakeContext = consumer.context();
        ctx.fetch_queue.store(queue.raw(), Ordering::Release);
        Some(Self { ctx, queue })
    }
}

impl Drop for OwnQueue<'_> {
    fn drop(&mut self) {
        // Before the queue itself is destroyed (the field is dropped after this).
        self.ctx
            .fetch_queue
            .store(std::ptr::null_mut(), Ordering::Release);
    }
}

const POLL_TIMEOUT: Duration = Duration::from_millis(50);
/// Most messages taken per turn of the loop (see [`PollLoop::poll`]).
const BURST: usize = 1024;
const MIRROR_EVERY: Duration = Duration::from_secs(1);
const CAUGHT_UP_CHECK_EVERY: Duration = Duration::from_millis(200);

impl<'a> PollLoop<'a> {
    pub(crate) fn new(
        consumer: &'a LakeConsumer,
        opts: &'a IngestOptions,
        shared: &'a Shared,
        shutdown: &'a CancellationToken,
        ends: Option<BTreeMap<i32, i64>>,
    ) -> Self {
        let now = Instant::now();
        Self {
            consumer,
            opts,
            shared,
            shutdown,
            ends,
            buffer: MessageBuffer::default(),
            oldest: None,
            epoch: shared.epoch(),
            reporter: Reporter::default(),
            last_report: now,
            last_caught_up_check: now,
            last_mirror: now,
            fetch: OwnQueue::register(consumer),
        }
    }

    pub(crate) fn run(mut self) -> Result<Stop> {
        let stop = loop {
            self.surface_failure()?;
            if self.shutdown.is_cancelled() && !self.drain_before_stopping()? {
                break Stop::Shutdown;
            }
            if !self.follow_epoch()? {
                continue;
            }
            self.poll()?;
            if self.flush_due() {
                self.flush()?;
            }
            self.housekeeping();
            if self.caught_up()? {
                break Stop::CaughtUp;
            }
        };
        self.finish()?;
        Ok(stop)
    }

    fn ctx(&self) -> &'a LakeContext {
        self.consumer.context()
    }

    /// A failure inside a rebalance callback ends the loop.
    fn surface_failure(&self) -> Result<()> {
        match self.ctx().take_failure() {
            Some(why) => Err(Error::Other(why)),
            None => Ok(()),
        }
    }

    /// On shutdown: true to go on until the end offsets of this moment are ingested
    /// (`drain_on_shutdown`), false to stop now.
    fn drain_before_stopping(&mut self) -> Result<bool> {
        if !self.opts.drain_on_shutdown {
            return Ok(false);
        }
        if self.ends.is_none() {
            let now = end_offsets(self.consumer, &self.opts.topic)?;
            tracing::info!(ends = ?now, "draining up to these end offsets before stopping");
            self.ends = Some(now);
        }
        Ok(true)
    }

    /// After a conflict the committer bumps the epoch: our view of progress was stale, so the
    /// buffer is forgotten and every partition restarts after its marker. False while a seek
    /// still has to be retried.
    fn follow_epoch(&mut self) -> Result<bool> {
        let current = self.shared.epoch();
        if current == self.epoch {
            return Ok(true);
        }
        self.buffer = MessageBuffer::default();
        self.oldest = None;
        let ctx = self.ctx();
        let marks = ctx.watermarks(ctx.assigned(), true)?;
        let mut all_seeked = true;
        for (p, w) in marks {
            let start = w.resume_at().map_or(Offset::Beginning, Offset::Offset);
            let seek = self
                .consumer
                .seek(&self.opts.topic, p, start, Duration::from_secs(10));
            if let Err(e) = seek {
                // E.g. fetching has not started yet: try again on the next turn.
                tracing::warn!("seek of partition {p} failed, retrying: {e}");
                all_seeked = false;
            }
        }
        if all_seeked {
            self.epoch = current;
        } else {
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(all_seeked)
    }

    /// Messages into the buffer (revoked partitions' messages out of it). With a fetch queue:
    /// the consumer's queue served without waiting (rebalances, errors), then one batch from
    /// the fetch queue, waiting for its first message. Without: the consumer's queue alone.
    fn poll(&mut self) -> Result<()> {
        if self.fetch.is_none() {
            return self.poll_consumer(POLL_TIMEOUT);
        }
        self.poll_consumer(Duration::ZERO)?;
        if self.buffer_full() {
            return Ok(());
        }
        let room = self.opts.batch.max_rows - self.buffer.len();
        let Some(fetch) = self.fetch.as_mut() else {
            return Ok(());
        };
        let buffer = &mut self.buffer;
        let (read, error) = fetch.queue.read(POLL_TIMEOUT, room, |m| buffer.push(m));
        if read > 0 {
            self.oldest.get_or_insert_with(Instant::now);
        }
        if let Some(e) = error {
            tracing::warn!("kafka: {e}");
        }
        Ok(())
    }

    /// Messages from the consumer's own queue: one poll that may wait `timeout`, then more that
    /// do not while messages are ready and the buffer has room, up to [`BURST`]. The loop's
    /// other steps (clocks, locks, housekeeping) then cost once per burst, not once per
    /// message.
    fn poll_consumer(&mut self, timeout: Duration) -> Result<()> {
        let mut timeout = timeout;
        for _ in 0..BURST {
            let polled = self.consumer.poll(timeout);
            timeout = Duration::ZERO;
            if self.ctx().needs_attention() {
                for p in self.ctx().take_revoked() {
                    self.buffer.drop_partition(p);
                }
                self.surface_failure()?;
            }
            match polled {
                Some(Ok(m)) => {
                    self.buffer.push(Message {
                        partition: m.partition(),
                        offset: m.offset(),
                        timestamp_ms: m.timestamp().to_millis(),
                        key: m.key(),
                        payload: m.payload(),
                    });
                    self.oldest.get_or_insert_with(Instant::now);
                }
                Some(Err(e @ KafkaError::MessageConsumptionFatal(_))) => return Err(e.into()),
                Some(Err(e)) => {
                    tracing::warn!("kafka: {e}");
                    break;
                }
                None => break,
            }
            if self.buffer_full() {
                break;
            }
        }
        Ok(())
    }

    fn buffer_full(&self) -> bool {
        let limits = &self.opts.batch;
        self.buffer.len() >= limits.max_rows || self.buffer.byte_size() >= limits.max_bytes
    }

    fn flush_due(&self) -> bool {
        self.buffer_full()
            || self
                .oldest
                .is_some_and(|t| t.elapsed() >= self.opts.batch.max_latency)
    }

    /// Hands the buffer on to be decoded and committed.
    fn flush(&mut self) -> Result<()> {
        self.oldest = None;
        if self.buffer.is_empty() {
            return Ok(());
        }
        observe::consumed(&self.opts.topic, &self.buffer);
        let full = self.buffer_full();
        self.ctx()
            .requests
            .blocking_send(Handoff::Messages {
                epoch: self.epoch,
                buffer: std::mem::take(&mut self.buffer),
                full,
            })
            .map_err(|_| Error::Other("committer stopped".into()))
    }

    /// Every second: mirrors committed markers to Kafka and notes whether this worker maintains the
    /// tables; the stats line every interval.
    fn housekeeping(&mut self) {
        if self.last_mirror.elapsed() >= MIRROR_EVERY {
            let first = self.ctx().assigned().first() == Some(&0);
            self.shared.maintainer.store(first, Ordering::Relaxed);
            mirror_offsets(self.consumer, &self.opts.topic, self.shared);
            update_lag(self.consumer, &self.opts.topic, &self.shared.stats);
            self.last_mirror = Instant::now();
        }
        if self.last_report.elapsed() >= self.opts.stats_interval {
            self.reporter.report(&self.shared.stats);
            self.last_report = Instant::now();
        }
    }

    /// With end offsets to reach: whether every partition's marker has reached them.
    fn caught_up(&mut self) -> Result<bool> {
        let Some(ends) = &self.ends else {
            return Ok(false);
        };
        if !self.buffer.is_empty() || self.last_caught_up_check.elapsed() < CAUGHT_UP_CHECK_EVERY {
            return Ok(false);
        }
        self.last_caught_up_check = Instant::now();
        // Positions first: with the buffer empty, everything below them has been handed off,
        // and the watermarks answer comes only once all of that is committed.
        let positions = positions(self.consumer, &self.opts.topic);
        // A partition not read to its end yet cannot be committed to it (a marker is at most the
        // last offset read): no need to wait for the commits in flight to know that.
        if ends
            .iter()
            .any(|(p, high)| positions.get(p).is_some_and(|next| next < high))
        {
            return Ok(false);
        }
        let marks = self
            .ctx()
            .watermarks(ends.keys().copied().collect(), false)?;
        // A conflict meanwhile dropped flushes below those positions: the loop re-seeks first.
        let stale = self.shared.epoch() != self.epoch;
        Ok(!stale && caught_up(ends, &marks, &positions))
    }

    /// The last flush, committed before the consumer leaves the group; the last stats line.
    fn finish(&mut self) -> Result<()> {
        self.flush()?;
        self.ctx().watermarks(Vec::new(), false)?;
        mirror_offsets(self.consumer, &self.opts.topic, self.shared);
        update_lag(self.consumer, &self.opts.topic, &self.shared.stats);
        self.reporter.report(&self.shared.stats);
        Ok(())
    }
}

/// Lag per assigned partition from the high watermarks librdkafka caches from its fetches (no
/// request to the broker, so this runs every second).
fn update_lag(consumer: &LakeConsumer, topic: &str, stats: &Stats) {
    let Ok(position) = consumer.position() else {
        return;
    };
    let Ok(topic_c) = std::ffi::CString::new(topic) else {
        return;
    };
    let mut lag = BTreeMap::new();
    let elements = position.elements_for_topic(topic);
    for e in &elements {
        let p = e.partition();
        if let (Offset::Offset(next), Some(high)) =
            (e.offset(), cached_high_watermark(consumer, &topic_c, p))
        {
            lag.insert(p, (high - next).max(0));
        }
    }
    observe::lag(topic, &lag, elements.len());
    if let Ok(mut l) = stats.lag.lock() {
        *l = lag;
    }
}

/// The high watermark librdkafka last saw for `partition` (its fetch responses carry it), with
/// no request to the broker. rdkafka's safe API only has the blocking, remote variant.
fn cached_high_watermark(
    consumer: &LakeConsumer,
    topic: &std::ffi::CStr,
    partition: i32,
) -> Option<i64> {
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer lives as long as `consumer`, `topic` is NUL-terminated, and the
    // out-pointers are locals; librdkafka only reads its own cached state under its lock.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some(high)
}

/// Mirrors the markers committed since the last call to Kafka's group offsets, so that
/// standard tools show the lag. Runs on the consumer's thread.
fn mirror_offsets(consumer: &LakeConsumer, topic: &str, shared: &Shared) {
    let last = shared.take_to_mirror();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caught_up_by_the_marker_or_by_the_position_past_records_that_are_not_messages() {
        let ends = BTreeMap::from([(0, 10), (1, 5)]);
        let w = |events: Option<i64>| Watermark {
            events,
            dead_letters: None,
        };
        let marks = BTreeMap::from([(0, w(Some(9))), (1, w(Some(3)))]);
        assert!(!caught_up(&ends, &marks, &BTreeMap::new()));
        // Partition 1 ends with a transaction's commit marker at offset 4: read past, not ingested.
        assert!(caught_up(&ends, &marks, &BTreeMap::from([(1, 5)])));
        assert!(!caught_up(&ends, &marks, &BTreeMap::from([(1, 4)])));
        let unmarked = BTreeMap::from([(0, w(None)), (1, w(Some(4)))]);
        assert!(!caught_up(&ends, &unmarked, &BTreeMap::new()));
        assert!(caught_up(&ends, &unmarked, &BTreeMap::from([(0, 10)])));
    }
}
