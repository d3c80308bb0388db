//! Keeping a table healthy while ingest keeps appending: the steps, and the policy that says
//! when each is due. [`super::maintainer`] runs them in the background; `lake maintain` runs
//! them once by hand.
//!
//! - **Compaction** rewrites small files into larger ones per partition, size-tiered so that a
//!   byte is rewritten a bounded number of times however long ingest runs: fresh files are
//!   merged into files of up to `small_file_bytes` (cheap, every round), and files of one size
//!   class are merged `min_files` at a time, up to `target_file_bytes` (see [`compact`]). Every
//!   merge's output is sorted by the `cluster_by` columns ([`super::rewrite`]). A compaction
//!   commit removes and adds files without changing data, so it does not conflict with ingest's
//!   blind appends (delta-rs rebases either over the other).
//! - **Retention** is one duration, written into the table as `delta.logRetentionDuration` and
//!   `delta.deletedFileRetentionDuration`: it is the time-travel window and what protects running
//!   queries. delta-rs writes a checkpoint every 100 commits and keeps expired tombstones out of
//!   checkpoints; other Delta engines honour the same properties.
//! - **Vacuum** deletes files that no version inside the retention references, including files
//!   of commits that never landed (a writer killed between writing and committing).
//! - **Log cleanup** deletes log entries older than the retention or beyond the newest
//!   `max_log_versions` (ingest's own commits skip delta-rs's cleanup, see `ingest::writer`).

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::ops::Range;
use std::time::Duration;

use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::vacuum::VacuumMode;
use deltalake::{DeltaTable, TableProperty};

use super::rewrite::{self, Bin, Input};
use super::Lake;
use crate::error::{Error, Result};

const KIB: u64 = 1024;

/// What maintenance does and how often (`[maintain]` in `lake.toml`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MaintainOptions {
    /// Files are compacted towards this size; larger files are left alone.
    pub(crate) target_file_bytes: NonZeroU64,
    /// Fresh files are merged into files of up to this size every round.
    pub(crate) small_file_bytes: NonZeroU64,
    /// Files of one size class in a partition that are merged into one (the fan-in).
    pub(crate) min_files: usize,
    /// Removed files and log entries are kept this long (time travel, running queries).
    pub(crate) retention: Duration,
    /// At most this many versions of log entries are kept (time travel reaches no further).
    pub(crate) max_log_versions: u64,
    /// How often the background task looks at the tables.
    pub(crate) interval: Duration,
    /// How often the background task vacuums.
    pub(crate) vacuum_interval: Duration,
    /// Compacted files, and the files ingest commits, are sorted by these columns (those a table
    /// has), so that a query for one value reads a small part of each file.
    pub(crate) cluster_by: Vec<String>,
}

impl Default for MaintainOptions {
    fn default() -> Self {
        let size = |kib: u64| NonZeroU64::new(kib * KIB).unwrap_or(NonZeroU64::MIN);
        Self {
            target_file_bytes: size(128 * 1024),
            // Small enough that the round's merge, which rewrites the partition's newest megabyte,
            // stays cheap at any ingest rate.
            small_file_bytes: size(1024),
            // A query opens every file of the partition, so fewer files per class; merges of
            // files an earlier merge sorted stream without sorting, so merging often is cheap.
            min_files: 4,
            // Longer than any query runs (serve's timeout is a minute), and short enough that the
            // tombstones every checkpoint carries stay few at a commit every 100 ms.
            retention: Duration::from_secs(3600),
            // About a quarter hour of commits at ingest's default pace of one a second; on a local
            // disk each listing of the log costs about a microsecond per entry, and every commit
            // lists it a few times.
            max_log_versions: 1000,
            interval: Duration::from_secs(5),
            vacuum_interval: Duration::from_secs(3600),
            // Point queries on events ask for one user.
            cluster_by: vec!["user_id".to_string()],
        }
    }
}

/// What one maintenance step did to one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MaintainReport {
    pub(crate) table: String,
    pub(crate) files_removed: u64,
    pub(crate) files_added: u64,
    pub(crate) files_vacuumed: usize,
    pub(crate) log_entries_deleted: usize,
    pub(crate) version: u64,
}

impl MaintainReport {
    fn new(name: &str) -> Self {
        Self {
            table: name.to_string(),
            ..Self::default()
        }
    }

    /// Whether anything changed.
    pub(crate) fn did_work(&self) -> bool {
        self.files_removed > 0 || self.files_vacuumed > 0 || self.log_entries_deleted > 0
    }
}

/// Opens the table `name` (`schema.table`) of the lake.
pub(crate) async fn open_named(lake: &Lake, name: &str) -> Result<DeltaTable> {
    let Some((schema, table)) = name.split_once('.') else {
        return Err(Error::Config(format!(
            "table {name:?} must be schema.table"
        )));
    };
    let url = lake.url_of(schema, table)?;
    if !lake.has_log(&url).await? {
        return Err(Error::Config(format!("no Delta table {name} under {lake}")));
    }
    lake.open_url(&url).await
}

/// Times `lake maintain` starts over from the latest version when another writer's commit
/// conflicts with one of its own (a background maintainer setting the retention, say).
const CONFLICT_ATTEMPTS: u32 = 3;

/// `lake maintain`: everything at once: the retention, both compaction tiers (every small file
/// of every partition), a vacuum and a checkpoint.
pub(crate) async fn maintain_table(
    lake: &Lake,
    name: &str,
    opts: &MaintainOptions,
) -> Result<MaintainReport> {
    let mut attempt = 1;
    loop {
        match maintain_table_once(lake, name, opts).await {
            Err(e) if e.is_commit_conflict() && attempt < CONFLICT_ATTEMPTS => {
                tracing::warn!(
                    table = name,
                    attempt,
                    "{e}; starting over from the latest version"
                );
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

async fn maintain_table_once(
    lake: &Lake,
    name: &str,
    opts: &MaintainOptions,
) -> Result<MaintainReport> {
    let table = open_named(lake, name).await?;
    let table = apply_retention(table, name, opts.retention).await?;
    let mut table = table;
    let mut report = MaintainReport::new(name);
    let target = opts.target_file_bytes.get();
    let bins = plan(&table, name, 0..target, target, 2)?;
    merge(&mut table, name, bins, opts, target, &mut report).await?;
    let (table, vacuumed) = vacuum(table, name, opts.retention).await?;
    report.files_vacuumed = vacuumed;
    deltalake::checkpoints::create_checkpoint(&table, None)
        .await
        .map_err(|e| Error::delta(name, e))?;
    report.log_entries_deleted = clean_log(&table, name, opts).await?;
    report.version = table.version().unwrap_or_default();
    Ok(report)
}

/// One round of compaction as the policy asks for it: files below half of `small_file_bytes`
/// are merged every round into files of up to `small_file_bytes`; from that half on, files are
/// merged `min_files` at a time once a partition has that many of one size class, each class
/// `min_files` times the size of the one below, up to the target. (A merge's output lands in a
/// class above its inputs, or a file just under a boundary would be rewritten every round.)
/// Every byte is thus rewritten about once per class, a handful of times in all, and a round's
/// work stays small however large the partition.
pub(crate) async fn compact(
    mut table: DeltaTable,
    name: &str,
    opts: &MaintainOptions,
) -> Result<(DeltaTable, MaintainReport)> {
    let mut report = MaintainReport::new(name);
    let (small, target) = (opts.small_file_bytes.get(), opts.target_file_bytes.get());
    let floor = (small / 2).max(1);
    let fresh = plan(&table, name, 0..floor, small, 2)?;
    merge(&mut table, name, fresh, opts, small, &mut report).await?;
    let fan_in = opts.min_files.max(2);
    let mut lower = floor;
    while lower < target {
        let upper = lower.saturating_mul(fan_in as u64).min(target);
        let class = plan(&table, name, lower..upper, target, fan_in)?;
        merge(&mut table, name, class, opts, target, &mut report).await?;
        lower = upper;
    }
    report.version = table.version().unwrap_or_default();
    Ok((table, report))
}

/// Most files merged into one. Sorted files are merged as one open stream each, and each stream
/// holds a decoded batch (the more streams, the smaller: [`rewrite`]'s `MERGE_ROWS_IN_FLIGHT`)
/// and its current row group's column chunks in memory. Fewer would cost
/// more CPU than it saves memory: a catch-up's merges of fresh files would land a size class
/// lower and be merged once more (bench/NOTES.md, "A catch-up's memory").
pub(crate) const MAX_BIN_FILES: usize = 32;

/// The bins to merge: per partition that has at least `min_files` files with sizes in `sizes`,
/// those files packed largest first into bins of at most `bin_bytes` and [`MAX_BIN_FILES`].
/// Files with deletion vectors are left alone (reading their Parquet back would revive deleted
/// rows).
fn plan(
    table: &DeltaTable,
    name: &str,
    sizes: Range<u64>,
    bin_bytes: u64,
    min_files: usize,
) -> Result<Vec<Bin>> {
    let snapshot = table.snapshot().map_err(|e| Error::delta(name, e))?;
    let mut partitions: BTreeMap<Vec<(String, Option<String>)>, Vec<Input>> = BTreeMap::new();
    for file in snapshot.log_data().iter() {
        let size = u64::try_from(file.size()).unwrap_or(0);
        if !sizes.contains(&size) || file.deletion_vector_descriptor().is_some() {
            continue;
        }
        let input = Input::of(&file);
        let mut key: Vec<_> = input.partition.clone().into_iter().collect();
        key.sort();
        partitions.entry(key).or_default().push(input);
    }
    let mut bins = Vec::new();
    for (_, mut files) in partitions {
        if files.len() < min_files {
            continue;
        }
        files.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
        let mut bin: Bin = Vec::new();
        let mut bytes = 0;
        for file in files {
            if !bin.is_empty() && (bytes + file.size > bin_bytes || bin.len() == MAX_BIN_FILES) {
                bins.push(std::mem::take(&mut bin));
                bytes = 0;
            }
            bytes += file.size;
            bin.push(file);
        }
        bins.push(bin);
    }
    bins.retain(|b| b.len() > 1);
    Ok(bins)
}

async fn merge(
    table: &mut DeltaTable,
    name: &str,
    bins: Vec<Bin>,
    opts: &MaintainOptions,
    target_bytes: u64,
    report: &mut MaintainReport,
) -> Result<()> {
    let done = rewrite::rewrite(table, name, bins, &opts.cluster_by, target_bytes).await?;
    report.files_removed += done.files_removed;
    report.files_added += done.files_added;
    Ok(())
}

/// Deletes the files removed from the table longer than `retention` ago, and files that no commit
/// ever added once they are a day old (a writer killed between writing them and committing).
/// Returns the files deleted.
pub(crate) async fn vacuum(
    table: DeltaTable,
    name: &str,
    retention: Duration,
) -> Result<(DeltaTable, usize)> {
    let (table, removed) = vacuum_mode(table, name, VacuumMode::Lite, retention).await?;
    // Orphans are judged against this process's snapshot: a file written for a commit that lands
    // after it looks unreferenced. Only age tells them apart, so the wait is never short.
    let orphan_age = retention.max(ORPHAN_AGE);
    let (table, orphans) = vacuum_mode(table, name, VacuumMode::Full, orphan_age).await?;
    Ok((table, removed + orphans))
}

/// Deletes the log entries older than `retention`, and those beyond the newest
/// `max_log_versions`, that precede a checkpoint. Every reader and writer lists the log from its
/// version on, and on a local disk that costs time per entry in the folder, so the log's length
/// is bounded, not only its age. Returns the entries deleted.
pub(crate) async fn clean_log(
    table: &DeltaTable,
    name: &str,
    opts: &MaintainOptions,
) -> Result<usize> {
    let version = table.version().unwrap_or_default();
    let now = chrono::Utc::now();
    let retention = chrono::Duration::from_std(opts.retention)
        .map_err(|e| Error::Config(format!("retention: {e}")))?;
    let by_age = (version, (now - retention).timestamp_millis());
    let by_count = (
        version.saturating_sub(opts.max_log_versions),
        now.timestamp_millis(),
    );
    let mut deleted = 0;
    for (keep_version, cutoff) in [by_age, by_count] {
        deleted += deltalake::checkpoints::cleanup_expired_logs_for(
            keep_version,
            table.log_store().as_ref(),
            cutoff,
            None,
        )
        .await
        .map_err(|e| Error::delta(name, e))?;
    }
    Ok(deleted)
}

/// How old a file no commit references must be before vacuum deletes it.
const ORPHAN_AGE: Duration = Duration::from_secs(24 * 3600);

async fn vacuum_mode(
    table: DeltaTable,
    name: &str,
    mode: VacuumMode,
    retention: Duration,
) -> Result<(DeltaTable, usize)> {
    let retention = chrono::Duration::from_std(retention)
        .map_err(|e| Error::Config(format!("retention: {e}")))?;
    let (table, metrics) = table
        .vacuum()
        .with_commit_properties(no_log_cleanup())
        .with_mode(mode)
        .with_retention_period(retention)
        // Retentions under Delta's default (7 days) are the operator's explicit choice.
        .with_enforce_retention_duration(false)
        .await
        .map_err(|e| Error::delta(name, e))?;
    Ok((table, metrics.files_deleted.len()))
}

/// Commit properties without delta-rs's log cleanup after the commit, which lists and stats the
/// whole log each time; [`clean_log`] runs now and then instead.
fn no_log_cleanup() -> CommitProperties {
    CommitProperties::default().with_cleanup_expired_logs(Some(false))
}

/// The table properties that make `retention` the table's own (a metadata commit, only when they
/// differ).
pub(crate) async fn apply_retention(
    table: DeltaTable,
    name: &str,
    retention: Duration,
) -> Result<DeltaTable> {
    let wanted = format!("interval {} seconds", retention.as_secs());
    let keys = [
        TableProperty::LogRetentionDuration,
        TableProperty::DeletedFileRetentionDuration,
    ];
    let snapshot = table.snapshot().map_err(|e| Error::delta(name, e))?;
    let current = snapshot.metadata().configuration();
    let changes: BTreeMap<String, String> = keys
        .iter()
        .map(|k| k.as_ref().to_string())
        .filter(|k| current.get(k) != Some(&wanted))
        .map(|k| (k, wanted.clone()))
        .collect();
    if changes.is_empty() {
        return Ok(table);
    }
    table
        .set_tbl_properties()
        .with_properties(changes.into_iter().collect())
        .await
        .map_err(|e| Error::delta(name, e))
}
