//! `lake sql`: datafusion-cli over the `lake` catalog.

use std::path::PathBuf;

use clap::Args;
use datafusion_cli::print_format::PrintFormat;

use crate::lake::Lake;
use crate::sql::{self, SqlOptions};

#[derive(Args, Debug)]
pub(crate) struct SqlArgs {
    /// Statement(s) to run, repeatable; without -c or -f an interactive prompt starts
    #[arg(short = 'c', long = "command")]
    pub(crate) commands: Vec<String>,
    /// SQL file(s) to run, repeatable
    #[arg(short = 'f', long = "file")]
    pub(crate) files: Vec<PathBuf>,
    /// Output format: table, csv, tsv, json, ndjson, automatic
    #[arg(long, default_value = "table", value_parser = parse_format)]
    pub(crate) format: PrintFormat,
    /// Rows to print at most, 0 = all
    #[arg(long, default_value_t = 40)]
    pub(crate) maxrows: usize,
    /// Print only results, no timing lines
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// Allow DDL, DML and SET statements (read-only without it)
    #[arg(long)]
    pub(crate) writable: bool,
}

fn parse_format(s: &str) -> Result<PrintFormat, String> {
    s.parse::<PrintFormat>().map_err(|_| {
        format!("unknown format {s:?}: use table, csv, tsv, json, ndjson or automatic")
    })
}

pub(crate) async fn run(lake: &Lake, opts: SqlOptions) -> anyhow::Result<()> {
    sql::run(lake, opts).await?;
    Ok(())
}
