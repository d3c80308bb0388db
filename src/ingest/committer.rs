//! The single owner of the two Delta tables during ingest. It receives decoded flushes from the
//! consumer in order, commits dead letters then events, each with the partitions' markers, and
//! answers "what is committed for these partitions" (which, the channel being FIFO, also waits
//! for every flush sent before).
//!
//! Exactly once, per table: a flush is committed only if the table's marker for each of its
//! partitions is still the one this worker last saw; rows at or below a table's marker are
//! dropped. Dead letters are committed first, so a crash between the two commits leaves the dead
//! letter table ahead, never behind: on replay its marker filters what it already has.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, BooleanArray, Int32Array, Int64Array, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use deltalake::kernel::Transaction;
use deltalake::DeltaTable;
use tokio::sync::{mpsc, oneshot};

use super::decode::Decoded;
use super::observe;
use super::offsets::{self, MarkerCache};
use super::stats::Shared;
use super::writer::{append, CommitOutcome};
use crate::error::{Error, Result};
use crate::lake::progress;
use crate::lake::snapshots::bring_up_to_date;
use crate::lake::{TableId, DEAD_LETTERS, USER_EVENTS};

/// Committed offsets of one partition in both tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Watermark {
    pub(crate) events: Option<i64>,
    pub(crate) dead_letters: Option<i64>,
}

impl Watermark {
    /// The first offset not yet ingested.
    pub(crate) fn resume_at(&self) -> Option<i64> {
        self.events.map(|o| o + 1)
    }
}

/// One decoded flush of the consumer's buffer.
#[derive(Debug)]
pub(crate) struct Flush {
    /// The consumer's epoch when it read these messages; stale epochs are discarded.
    pub(crate) epoch: u64,
    pub(crate) decoded: Decoded,
    /// Per partition: last offset read (the new marker).
    pub(crate) last_offsets: BTreeMap<i32, i64>,
}

pub(crate) enum Request {
    Flush(Flush),
    /// Committed watermarks of these partitions, read fresh from the tables.
    Watermarks {
        partitions: Vec<i32>,
        /// The consumer is about to (re)position these partitions at the answer: from now on
        /// it is the baseline a flush must find unchanged. Otherwise only a look.
        reposition: bool,
        reply: oneshot::Sender<Result<BTreeMap<i32, Watermark>>>,
    },
}

pub(crate) struct Committer {
    /// Source name in the progress markers (see [`super::IngestOptions::source`]).
    pub(crate) source: String,
    /// The topic, for the metrics.
    pub(crate) topic: String,
    pub(crate) events: DeltaTable,
    /// The columns the decode stage sorts each flush's events by.
    pub(crate) sorted_by: Vec<String>,
    pub(crate) dead_letters: DeltaTable,
    /// What this worker believes is committed, per partition it has seen.
    pub(crate) known: BTreeMap<i32, Watermark>,
    pub(crate) shared: Arc<Shared>,
    /// The markers of each table as of its version this worker last saw.
    pub(crate) events_marks: MarkerCache,
    pub(crate) dead_letter_marks: MarkerCache,
}

const COMMIT_ATTEMPTS: u32 = 5;

impl Committer {
    /// Serves requests until the channel closes or a commit fails for good.
    pub(crate) async fn run(mut self, mut requests: mpsc::Receiver<Request>) -> Result<()> {
        while let Some(request) = requests.recv().await {
            match request {
                Request::Flush(flush) => {
                    let started = std::time::Instant::now();
                    self.commit_with_retries(flush).await?;
                    tracing::debug!(elapsed = ?started.elapsed(), "flush handled");
                }
                Request::Watermarks {
                    partitions,
                    reposition,
                    reply,
                } => {
                    let answer = self.read_watermarks(&partitions).await;
                    if let (true, Ok(marks)) = (reposition, &answer) {
                        self.known.extend(marks.iter().map(|(p, w)| (*p, *w)));
                    }
                    // The consumer may have gone away (shutdown); nothing to do then.
                    let _ = reply.send(answer);
                }
            }
        }
        Ok(())
    }

    /// The tables' current markers for `partitions`.
    async fn read_watermarks(&mut self, partitions: &[i32]) -> Result<BTreeMap<i32, Watermark>> {
        let ev = markers(
            &mut self.events,
            USER_EVENTS,
            &mut self.events_marks,
            &self.source,
            partitions,
        )
        .await?;
        let dl = markers(
            &mut self.dead_letters,
            DEAD_LETTERS,
            &mut self.dead_letter_marks,
            &self.source,
            partitions,
        )
        .await?;
        let mut out = BTreeMap::new();
        for p in partitions {
            let w = Watermark {
                events: ev.get(p).copied().flatten(),
                dead_letters: dl.get(p).copied().flatten(),
            };
            out.insert(*p, w);
        }
        Ok(out)
    }

    async fn commit_with_retries(&mut self, flush: Flush) -> Result<()> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.commit(&flush).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt < COMMIT_ATTEMPTS => {
                    observe::retried();
                    tracing::warn!(attempt, error = %e, "commit failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn stale(&self, flush: &Flush) -> bool {
        flush.epoch < self.shared.epoch()
    }

    fn conflict(&self, table: TableId) {
        observe::conflict(table);
        let epoch = self.shared.next_epoch();
        tracing::warn!(%table, epoch, "another writer advanced our partitions; re-seeking");
    }

    async fn commit(&mut self, flush: &Flush) -> Result<()> {
        if self.stale(flush) {
            return Ok(());
        }
        let partitions: Vec<i32> = flush.last_offsets.keys().copied().collect();
        let before: BTreeMap<i32, Watermark> = partitions
            .iter()
            .map(|p| (*p, self.known.get(p).copied().unwrap_or_default()))
            .collect();
        let now = self.read_watermarks(&partitions).await?;
        if now.iter().any(|(p, w)| before[p].events != w.events) {
            self.conflict(USER_EVENTS);
            return Ok(());
        }

        // Dead letters first: their marker may run ahead of the events' marker, never behind.
        let dl_floor = |p: i32| {
            let w = now[&p];
            w.dead_letters.max(w.events)
        };
        // Clones (cheap: shared buffers) so that a retry of this flush still has its rows.
        let dead = take_after(flush.decoded.dead_letters.clone(), dl_floor)?;
        let dead_rows = dead.as_ref().map_or(0, |b| b.num_rows()) as u64;
        if dead_rows > 0 {
            let marks = new_marks(flush, dl_floor);
            let txns = self.txns(&marks);
            let started = Instant::now();
            match append(
                &mut self.dead_letters,
                DEAD_LETTERS,
                dead.clone(),
                &[],
                txns,
            )
            .await?
            {
                CommitOutcome::Committed(version) => {
                    self.dead_letter_marks.committed(version, &marks);
                    self.shared.stats.dead_lettered(dead_rows);
                    observe::committed(&self.topic, DEAD_LETTERS, dead.as_ref(), started);
                }
                CommitOutcome::Conflict => {
                    self.conflict(DEAD_LETTERS);
                    return Ok(());
                }
            }
        }

        let ev_floor = |p: i32| now[&p].events;
        let events = take_after(flush.decoded.events.clone(), ev_floor)?;
        let event_rows = events.as_ref().map_or(0, |b| b.num_rows()) as u64;
        let marks = new_marks(flush, ev_floor);
        let txns = self.txns(&marks);
        let started = Instant::now();
        match append(
            &mut self.events,
            USER_EVENTS,
            events.clone(),
            &self.sorted_by,
            txns,
        )
        .await?
        {
            CommitOutcome::Committed(version) => {
                observe::committed(&self.topic, USER_EVENTS, events.as_ref(), started);
                self.events_marks.committed(version, &marks);
                for (p, o) in &marks {
                    self.known.entry(*p).or_default().events = Some(*o);
                }
                self.shared.stats.committed(event_rows);
                tracing::debug!(version, event_rows, dead_rows, "committed");
                if let Ok(mut m) = self.shared.to_mirror.lock() {
                    m.extend(marks.iter().map(|(p, o)| (*p, *o)));
                }
            }
            CommitOutcome::Conflict => self.conflict(USER_EVENTS),
        }
        Ok(())
    }

    fn txns(&self, marks: &BTreeMap<i32, i64>) -> Vec<Transaction> {
        marks
            .iter()
            .map(|(p, o)| offsets::marker(&self.source, *p, *o))
            .collect()
    }
}

/// The markers a flush sets: its last offsets, but never below what a table already has (after
/// a crash the dead-letter table can be ahead of a replay; markers must not move back).
fn new_marks(flush: &Flush, floor: impl Fn(i32) -> Option<i64>) -> BTreeMap<i32, i64> {
    flush
        .last_offsets
        .iter()
        .map(|(p, o)| (*p, floor(*p).map_or(*o, |f| f.max(*o))))
        .collect()
}

/// The markers of `partitions` in `table`, brought to its latest version first.
async fn markers(
    table: &mut DeltaTable,
    id: TableId,
    cache: &mut MarkerCache,
    source: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, Option<i64>>> {
    // Usually one request: this worker is mostly the table's only writer.
    bring_up_to_date(table)
        .await
        .map_err(|e| Error::delta(id, e))?;
    if let Some(marks) = cache.get(table.version(), partitions) {
        return Ok(marks);
    }
    let marks = progress::committed(table, source, partitions.iter().copied()).await?;
    cache.read(table.version(), &marks);
    Ok(marks)
}

/// Keeps the rows whose `kafka_offset` is above their `kafka_partition`'s floor.
fn take_after(
    batch: Option<RecordBatch>,
    floor: impl Fn(i32) -> Option<i64>,
) -> Result<Option<RecordBatch>> {
    let Some(batch) = batch else { return Ok(None) };
    let parts = batch
        .column_by_name("kafka_partition")
        .and_then(|c| c.as_any().downcast_ref::<Int32Array>())
        .ok_or_else(|| Error::Other("no Int32 column kafka_partition".into()))?;
    let offs = batch
        .column_by_name("kafka_offset")
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
        .ok_or_else(|| Error::Other("no Int64 column kafka_offset".into()))?;
    let keep: BooleanArray = (0..batch.num_rows())
        .map(|i| Some(floor(parts.value(i)).is_none_or(|f| offs.value(i) > f)))
        .collect();
    if keep.true_count() == batch.num_rows() {
        return Ok(Some(batch));
    }
    Ok(Some(filter_record_batch(&batch, &keep)?))
}
