//! The background task that keeps tables compact while they are written: every
//! `interval` it runs a round of [`maintain::compact`] on each table, [`maintain::clean_log`]
//! whenever a quarter of `max_log_versions` has been committed since the last time, and every
//! `vacuum_interval` a [`maintain::vacuum`]. `lake ingest` (and so `lake demo` and the compose
//! stack) runs it beside its writer unless `--no-maintain`.
//!
//! Only one worker of a consumer group maintains, the one that holds the topic's partition 0
//! (`is_leader`); during a rebalance two may briefly overlap, and then the later commit fails
//! with a conflict, is logged, and the next round starts from the table as it is. A failed
//! round never stops ingest: maintenance only rewrites data, it never adds or drops rows.

use std::collections::BTreeMap;
use std::time::Instant;

use deltalake::DeltaTable;

use super::maintain::{self, MaintainOptions, MaintainReport};
use super::{Lake, TableId};
use crate::error::{Error, Result};
use crate::metrics::metrics;
use crate::metrics::Table;
use crate::shutdown::{self, CancellationToken};

/// Runs rounds until `stop` is cancelled.
pub(crate) async fn run(
    lake: Lake,
    tables: Vec<TableId>,
    opts: MaintainOptions,
    is_leader: impl Fn() -> bool,
    stop: CancellationToken,
) {
    let mut open: BTreeMap<TableId, DeltaTable> = BTreeMap::new();
    // The version at which each table's log was last cleaned.
    let mut cleaned_at: BTreeMap<TableId, u64> = BTreeMap::new();
    let mut last_vacuum = Instant::now();
    let mut retention_applied = false;
    while shutdown::sleep(opts.interval, &stop).await {
        if !is_leader() {
            continue;
        }
        let vacuum_due = last_vacuum.elapsed() >= opts.vacuum_interval;
        for id in &tables {
            let table = open.remove(id);
            let cleaned = cleaned_at.entry(*id).or_default();
            match round(
                &lake,
                *id,
                table,
                &opts,
                !retention_applied,
                vacuum_due,
                cleaned,
            )
            .await
            {
                Ok((table, report)) => {
                    observe(*id, &table, &report);
                    if report.did_work() {
                        tracing::info!(
                            table = %id,
                            compacted = report.files_removed,
                            into = report.files_added,
                            vacuumed = report.files_vacuumed,
                            log_entries_deleted = report.log_entries_deleted,
                            version = report.version,
                            "maintenance"
                        );
                    }
                    open.insert(*id, table);
                    if report.files_removed > 0 {
                        // A merge's rows are freed now; without this RSS keeps their peak.
                        crate::malloc::release_freed();
                    }
                }
                // The handle is dropped: the next round reopens the table as it is.
                Err(e) => {
                    metrics().tables.maintained(&id.to_string(), false);
                    tracing::warn!(table = %id, error = %e, "maintenance round failed");
                }
            }
        }
        retention_applied = open.len() == tables.len();
        if vacuum_due {
            last_vacuum = Instant::now();
        }
    }
}

/// A round's outcome and the table it left, for the metrics.
fn observe(id: TableId, table: &DeltaTable, report: &MaintainReport) {
    let m = &metrics().tables;
    let name = id.to_string();
    m.maintained(&name, true);
    m.observe(table, &name);
    let labels = Table::new(&name);
    m.files_compacted
        .get_or_create(&labels)
        .inc_by(report.files_removed);
    m.files_written
        .get_or_create(&labels)
        .inc_by(report.files_added);
    m.files_vacuumed
        .get_or_create(&labels)
        .inc_by(report.files_vacuumed as u64);
}

async fn round(
    lake: &Lake,
    id: TableId,
    table: Option<DeltaTable>,
    opts: &MaintainOptions,
    apply_retention: bool,
    vacuum: bool,
    cleaned_at: &mut u64,
) -> Result<(DeltaTable, MaintainReport)> {
    let name = id.to_string();
    let mut table = match table {
        Some(t) => t,
        None => match lake.open(id).await? {
            Some(t) => t,
            None => return Err(Error::Other(format!("no table {id} yet"))),
        },
    };
    table
        .update_incremental(None)
        .await
        .map_err(|e| Error::delta(&name, e))?;
    if apply_retention {
        table = maintain::apply_retention(table, &name, opts.retention).await?;
    }
    let (table, mut report) = maintain::compact(table, &name, opts).await?;
    // The log is cleaned often enough that it never holds many more than `max_log_versions`.
    let log_due = report.version >= *cleaned_at + (opts.max_log_versions / 4).max(1);
    if vacuum || log_due {
        report.log_entries_deleted = maintain::clean_log(&table, &name, opts).await?;
        *cleaned_at = report.version;
    }
    if !vacuum {
        return Ok((table, report));
    }
    let (table, vacuumed) = maintain::vacuum(table, &name, opts.retention).await?;
    report.files_vacuumed = vacuumed;
    Ok((table, report))
}
