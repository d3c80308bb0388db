//! `lake maintain`: compaction, vacuum and a checkpoint for one table or all of them.

use clap::Args;

use crate::lake::maintain::{self, MaintainOptions};
use crate::lake::Lake;

const MIB: u64 = 1024 * 1024;

#[derive(Args, Debug)]
pub(crate) struct MaintainArgs {
    /// Only this table (schema.table) [default: every table in the lake]
    #[arg(long)]
    pub(crate) table: Option<String>,
    /// Keep unreferenced files younger than this many hours
    #[arg(long, default_value_t = MaintainOptions::default().retention.num_hours())]
    pub(crate) retention_hours: i64,
    /// Compact files towards this size in MiB
    #[arg(long, default_value_t = MaintainOptions::default().target_file_bytes.get() / MIB)]
    pub(crate) target_file_mib: u64,
}

pub(crate) async fn run(
    lake: &Lake,
    table: Option<String>,
    opts: &MaintainOptions,
) -> anyhow::Result<()> {
    let tables = match table {
        Some(t) => vec![t],
        None => lake.tables()?,
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
