//! `lake maintain`: the retention, compaction, vacuum and a checkpoint, once, for one table or
//! all of them. `lake ingest` does the same in the background for its own tables.

use std::time::Duration;

use clap::Args;

use super::help::with_default;
use crate::config::{parse_duration, parse_memory};
use crate::lake::maintain::{self, MaintainOptions};
use crate::lake::Lake;

#[derive(Args, Debug)]
pub(crate) struct MaintainArgs {
    /// Only this table (schema.table) [default: every table in the lake]
    #[arg(long)]
    pub(crate) table: Option<String>,
    #[arg(long, value_parser = parse_duration, help = with_default(
        "Keep removed files and log entries this long (the time-travel window), e.g. 1h",
        humantime::format_duration(MaintainOptions::default().retention)))]
    pub(crate) retention: Option<Duration>,
    #[arg(long, value_parser = parse_memory, help = with_default(
        "Compact files towards this size, e.g. 128M",
        format!("{}M", MaintainOptions::default().target_file_bytes.get() >> 20)))]
    pub(crate) target_file_size: Option<usize>,
}

pub(crate) async fn run(
    lake: &Lake,
    table: Option<String>,
    opts: &MaintainOptions,
) -> anyhow::Result<()> {
    let tables = match table {
        Some(t) => vec![t],
        None => lake.tables().await?,
    };
    for t in tables {
        let r = maintain::maintain_table(lake, &t, opts).await?;
        println!(
            "{}: compacted {} files into {}, vacuumed {} files, version {}",
            r.table, r.files_removed, r.files_added, r.files_vacuumed, r.version
        );
    }
    Ok(())
}
