//! The single owner of the two Delta tables during ingest. It receives decoded flushes from the
//! consumer in order, commits dead letters then events, each with the partitions' markers, and
//! answers "what is committed for these partitions" (which, the channel being FIFO, also waits
//! for every flush sent before).
//!
//! Exactly once, per table: a flush is committed only if the table's marker for each of its
//! partitions is still the one this worker last saw; rows at or below a table's marker are
//! dropped. Dead letters are committed first, so a crash between the two commits leaves the dead
//! letter table ahead, never behind: on replay its marker filters what it already has.
//!
//! While ingest is behind, one commit takes several flushes: each flush's events are written as
//! files of their own when it arrives, and the files of up to [`MAX_FLUSHES_PER_COMMIT`] are
//! committed together. A file that cannot be written stops the committer with the error (a
//! restart resumes after the markers); a commit that fails is retried with the same files.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, BooleanArray, Int32Array, Int64Array, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use deltalake::kernel::{Add, Transaction};
use deltalake::DeltaTable;
use tokio::sync::{mpsc, oneshot};

use super::decode::Decoded;
use super::observe;
use super::offsets::{self, MarkerCache};
use super::stats::Shared;
use super::writer::{append, commit_files, write_files, CommitOutcome};
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
    /// The consumer's buffer was full: ingest is behind, and the next flush is on its way.
    pub(crate) full: bool,
}

/// Flushes taken into one commit: their events already written as files, their dead letters
/// still rows (committed first, in a commit of their own).
#[derive(Default)]
struct Gathered {
    epoch: u64,
    flushes: usize,
    /// Per partition: the last offset read by any of the flushes.
    last_offsets: BTreeMap<i32, i64>,
    /// The tables' markers of those partitions as read while the flushes were written.
    watermarks: BTreeMap<i32, Watermark>,
    /// The event files written, not committed yet.
    adds: Vec<Add>,
    /// The columns of the written events that the metrics read ([`observe::projected`]).
    observed: Vec<RecordBatch>,
    dead_letters: Vec<RecordBatch>,
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

/// Most flushes one commit takes. While ingest is behind (its buffers fill up), the committer
/// writes each flush's files as it arrives and commits several flushes' files together: every
/// Delta commit costs delta-rs a replay of the table's active files (bench/NOTES.md, "What a
/// commit costs"), so a catch-up spends less on fewer commits, and holds no more rows than one
/// flush's. A flush of a buffer that was not full is committed at once, so a caught-up
/// ingest's latency does not change.
const MAX_FLUSHES_PER_COMMIT: usize = 4;

/// How long a commit of full buffers waits for the next flush; one arrives in a fraction of this
/// while ingest is behind.
const GATHER_WAIT: Duration = Duration::from_secs(1);

impl Committer {
    /// Serves requests until the channel closes or a commit fails for good.
    pub(crate) async fn run(mut self, mut requests: mpsc::Receiver<Request>) -> Result<()> {
        let mut next = None;
        loop {
            let request = match next.take() {
                Some(request) => request,
                None => match requests.recv().await {
                    Some(request) => request,
                    None => break,
                },
            };
            match request {
                Request::Flush(flush) => {
                    let started = Instant::now();
                    if let Some(gathered) = self.gather(flush, &mut requests, &mut next).await? {
                        let flushes = gathered.flushes;
                        self.commit_with_retries(&gathered).await?;
                        tracing::debug!(flushes, elapsed = ?started.elapsed(), "flushes handled");
                    }
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

    /// Writes the events of `first`, and while the buffers come full, of the flushes that follow
    /// it (up to [`MAX_FLUSHES_PER_COMMIT`]), as files to commit together. A request other than
    /// a flush of the same epoch ends the gathering and is left in `next`. None when `first` is
    /// stale or another writer advanced a marker meanwhile (the files written are then never
    /// committed, and vacuumed).
    async fn gather(
        &mut self,
        first: Flush,
        requests: &mut mpsc::Receiver<Request>,
        next: &mut Option<Request>,
    ) -> Result<Option<Gathered>> {
        if self.stale(&first) {
            return Ok(None);
        }
        let mut gathered = Gathered {
            epoch: first.epoch,
            ..Gathered::default()
        };
        let mut flush = first;
        loop {
            let partitions: Vec<i32> = flush.last_offsets.keys().copied().collect();
            let now = self.read_watermarks(&partitions).await?;
            if self.advanced_by_another(&now) {
                self.conflict(USER_EVENTS);
                return Ok(None);
            }
            let events = take_after(flush.decoded.events.iter(), |p| now[&p].events)?;
            gathered
                .observed
                .extend(events.iter().filter_map(observe::projected));
            let adds = write_files(&self.events, USER_EVENTS, events, &self.sorted_by).await?;
            gathered.adds.extend(adds);
            gathered.dead_letters.extend(flush.decoded.dead_letters);
            gathered.watermarks.extend(now);
            for (p, o) in flush.last_offsets {
                let last = gathered.last_offsets.entry(p).or_insert(o);
                *last = (*last).max(o);
            }
            gathered.flushes += 1;
            if !flush.full || gathered.flushes >= MAX_FLUSHES_PER_COMMIT {
                return Ok(Some(gathered));
            }
            flush = match tokio::time::timeout(GATHER_WAIT, requests.recv()).await {
                Ok(Some(Request::Flush(f))) if f.epoch == gathered.epoch => f,
                Ok(Some(other)) => {
                    *next = Some(other);
                    return Ok(Some(gathered));
                }
                Ok(None) | Err(_) => return Ok(Some(gathered)),
            };
        }
    }

    /// Whether a table's events marker moved since this worker last saw it: another writer.
    fn advanced_by_another(&self, now: &BTreeMap<i32, Watermark>) -> bool {
        now.iter()
            .any(|(p, w)| self.known.get(p).copied().unwrap_or_default().events != w.events)
    }

    async fn commit_with_retries(&mut self, gathered: &Gathered) -> Result<()> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            // The first attempt uses the markers read while gathering; a retry reads them anew.
            let known = (attempt == 1).then_some(&gathered.watermarks);
            match self.commit(gathered, known).await {
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

    /// Commits what `gathered` holds: its dead letters, then its event files, each table in one
    /// commit with the markers of the last offsets read.
    async fn commit(
        &mut self,
        gathered: &Gathered,
        watermarks: Option<&BTreeMap<i32, Watermark>>,
    ) -> Result<()> {
        if gathered.epoch < self.shared.epoch() {
            return Ok(());
        }
        let last_offsets = &gathered.last_offsets;
        let partitions: Vec<i32> = last_offsets.keys().copied().collect();
        let now = match watermarks {
            Some(read) => read.clone(),
            None => self.read_watermarks(&partitions).await?,
        };
        if self.advanced_by_another(&now) {
            self.conflict(USER_EVENTS);
            return Ok(());
        }

        // Dead letters first: their marker may run ahead of the events' marker, never behind.
        let dl_floor = |p: i32| {
            let w = now[&p];
            w.dead_letters.max(w.events)
        };
        let dead = take_after(gathered.dead_letters.iter(), dl_floor)?;
        let dead_rows = rows(&dead);
        if dead_rows > 0 {
            let marks = new_marks(last_offsets, dl_floor);
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
                    observe::committed(&self.topic, DEAD_LETTERS, &dead, started);
                }
                CommitOutcome::Conflict => {
                    self.conflict(DEAD_LETTERS);
                    return Ok(());
                }
            }
        }

        let ev_floor = |p: i32| now[&p].events;
        let marks = new_marks(last_offsets, ev_floor);
        let txns = self.txns(&marks);
        let started = Instant::now();
        // The same files on a retry: they are written once, and only a commit makes them seen.
        match commit_files(&mut self.events, USER_EVENTS, gathered.adds.clone(), txns).await? {
            CommitOutcome::Committed(version) => {
                observe::committed(&self.topic, USER_EVENTS, &gathered.observed, started);
                self.events_marks.committed(version, &marks);
                for (p, o) in &marks {
                    self.known.entry(*p).or_default().events = Some(*o);
                }
                let event_rows = rows(&gathered.observed);
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

/// The markers a commit sets: the last offsets read, but never below what a table already has
/// (after a crash the dead-letter table can be ahead of a replay; markers must not move back).
fn new_marks(
    last_offsets: &BTreeMap<i32, i64>,
    floor: impl Fn(i32) -> Option<i64>,
) -> BTreeMap<i32, i64> {
    last_offsets
        .iter()
        .map(|(p, o)| (*p, floor(*p).map_or(*o, |f| f.max(*o))))
        .collect()
}

fn rows(batches: &[RecordBatch]) -> u64 {
    batches.iter().map(|b| b.num_rows() as u64).sum()
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

/// The rows of `batches` whose `kafka_offset` is above their `kafka_partition`'s floor, a batch
/// for each batch that keeps any.
fn take_after<'a>(
    batches: impl Iterator<Item = &'a RecordBatch>,
    floor: impl Fn(i32) -> Option<i64>,
) -> Result<Vec<RecordBatch>> {
    let mut kept = Vec::new();
    for batch in batches {
        let batch = rows_after(batch, &floor)?;
        if batch.num_rows() > 0 {
            kept.push(batch);
        }
    }
    Ok(kept)
}

/// The rows of `batch` whose `kafka_offset` is above their `kafka_partition`'s floor.
fn rows_after(batch: &RecordBatch, floor: impl Fn(i32) -> Option<i64>) -> Result<RecordBatch> {
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
        return Ok(batch.clone());
    }
    Ok(filter_record_batch(batch, &keep)?)
}

#[cfg(test)]
mod tests {
    //! Flushes of full buffers committed together, a flush of a buffer that was not full at once.
    use super::*;
    use crate::event::Contract;
    use crate::ingest::buffer::{Message, MessageBuffer};
    use crate::ingest::decode::decode;
    use crate::lake::{dead_letters_spec, file_format, user_events_spec, Lake};
    use datafusion::prelude::SessionContext;

    /// A decoded flush of `n` events at offsets `first..first + n` of partition 0, users sorted.
    fn flush(first: i64, n: i64, full: bool) -> Flush {
        let payloads: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    r#"{{"user_id": {}, "event_type": "click", "timestamp": "2025-01-10T10:00:00", "page_id": 1, "session_id": "s"}}"#,
                    (n - i) % 7
                )
            })
            .collect();
        let mut buffer = MessageBuffer::default();
        for (i, p) in payloads.iter().enumerate() {
            buffer.push(Message {
                partition: 0,
                offset: first + i as i64,
                timestamp_ms: None,
                key: None,
                payload: Some(p.as_bytes()),
            });
        }
        let mut decoded = decode(&buffer, "t", &Contract::default(), 0).unwrap();
        let keys = vec!["user_id".to_string()];
        decoded.events = decoded
            .events
            .map(|b| file_format::sort_rows(&b, &keys).unwrap());
        Flush {
            epoch: 0,
            decoded,
            last_offsets: buffer.last_offsets(),
            full,
        }
    }

    #[tokio::test]
    async fn flushes_of_full_buffers_share_a_commit_and_keep_a_file_each() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(dir.path()).unwrap();
        let shared = Arc::new(Shared::default());
        let committer = Committer {
            source: "t".into(),
            topic: "t".into(),
            events: lake.open_or_create(&user_events_spec()).await.unwrap(),
            sorted_by: vec!["user_id".into()],
            dead_letters: lake.open_or_create(&dead_letters_spec()).await.unwrap(),
            known: BTreeMap::new(),
            shared: shared.clone(),
            events_marks: Default::default(),
            dead_letter_marks: Default::default(),
        };
        let (tx, rx) = mpsc::channel(8);
        // Two full buffers and one that was not: one commit; then a full one with nothing after
        // it (the channel closes): a commit of its own, without waiting.
        for f in [
            flush(0, 10, true),
            flush(10, 10, true),
            flush(20, 10, false),
            flush(30, 10, true),
        ] {
            assert!(tx.send(Request::Flush(f)).await.is_ok());
        }
        drop(tx);
        committer.run(rx).await.unwrap();

        let (events, _, commits) = shared.stats.totals();
        assert_eq!((events, commits), (40, 2));
        let table = lake.open(USER_EVENTS).await.unwrap().unwrap();
        assert_eq!(table.version(), Some(2), "created, then two commits");
        assert_eq!(table.snapshot().unwrap().log_data().num_files(), 4);
        let marks = progress::committed(&table, "t", [0]).await.unwrap();
        assert_eq!(marks[&0], Some(39));
        let ctx = SessionContext::new();
        ctx.register_table("e", table.table_provider().await.unwrap())
            .unwrap();
        let counted = ctx
            .sql("SELECT count(*), count(DISTINCT kafka_offset), max(kafka_offset) FROM e")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let row: Vec<i64> = (0..3)
            .map(|i| {
                let c = counted[0].column(i);
                c.as_any().downcast_ref::<Int64Array>().unwrap().value(0)
            })
            .collect();
        assert_eq!(row, vec![40, 40, 39]);
    }
}
