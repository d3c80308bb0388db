//! The lake root on disk: `<root>/<schema>/<table>` folders, each a Delta table, and how to
//! open one or create it with its schema on first use.

pub(crate) mod bounded;
pub(crate) mod catalog;
pub(crate) mod maintain;
pub(crate) mod maintainer;
pub(crate) mod progress;
pub(crate) mod rewrite;
pub(crate) mod snapshots;

use std::fmt;
use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::SchemaRef;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::StructType;
use deltalake::{DeltaTable, DeltaTableBuilder};
use url::Url;

use crate::error::{Error, Result};
use crate::event::{DEAD_LETTERS_SCHEMA, EVENTS_SCHEMA, EVENT_DATE};

/// A table's place in the lake: `schema.table`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId {
    pub schema: &'static str,
    pub name: &'static str,
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

pub const USER_EVENTS: TableId = TableId {
    schema: "raw",
    name: "user_events",
};
pub const DEAD_LETTERS: TableId = TableId {
    schema: "raw",
    name: "user_events_dead_letters",
};

/// How a table is laid out when it is created.
pub struct TableSpec {
    pub(crate) id: TableId,
    pub(crate) schema: SchemaRef,
    pub(crate) partition_columns: &'static [&'static str],
}

pub fn user_events_spec() -> TableSpec {
    TableSpec {
        id: USER_EVENTS,
        schema: EVENTS_SCHEMA.clone(),
        partition_columns: &[EVENT_DATE],
    }
}

pub fn dead_letters_spec() -> TableSpec {
    TableSpec {
        id: DEAD_LETTERS,
        schema: DEAD_LETTERS_SCHEMA.clone(),
        partition_columns: &[],
    }
}

/// The URL of a table's folder: delta-rs opens tables by URL.
pub(crate) fn dir_url(path: &Path) -> Result<Url> {
    Url::from_directory_path(path)
        .map_err(|()| Error::Other(format!("not an absolute path: {}", path.display())))
}

/// The lake root directory.
#[derive(Debug, Clone)]
pub struct Lake {
    root: PathBuf,
}

/// The latest snapshot of the Delta table in the folder `path`.
pub(crate) async fn open_dir(path: &Path) -> Result<DeltaTable> {
    deltalake::open_table(dir_url(path)?)
        .await
        .map_err(|e| Error::delta(path.display(), e))
}

impl Lake {
    /// Uses `root`, creating it if missing.
    pub fn new(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        std::fs::create_dir_all(root).map_err(|e| Error::io(root.display(), e))?;
        let root = root
            .canonicalize()
            .map_err(|e| Error::io(root.display(), e))?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn table_path(&self, id: TableId) -> PathBuf {
        self.root.join(id.schema).join(id.name)
    }

    pub(crate) fn table_url(&self, id: TableId) -> Result<Url> {
        dir_url(&self.table_path(id))
    }

    /// Opens the table, or creates it empty if it does not exist yet. Safe when several
    /// processes race to create it: the loser opens the winner's table.
    pub async fn open_or_create(&self, spec: &TableSpec) -> Result<DeltaTable> {
        let url = self.table_url(spec.id)?;
        let path = self.table_path(spec.id);
        if path.join("_delta_log").exists() {
            // Another process may be between creating the folder and committing version 0.
            let mut attempts = 0;
            loop {
                match deltalake::open_table(url.clone()).await {
                    Ok(table) => return Ok(table),
                    Err(_) if attempts < 20 => {
                        attempts += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    Err(e) => return Err(Error::delta(spec.id, e)),
                }
            }
        }
        std::fs::create_dir_all(&path).map_err(|e| Error::io(path.display(), e))?;
        let columns: StructType = spec
            .schema
            .as_ref()
            .try_into_kernel()
            .map_err(Error::Arrow)?;
        // `build` (not `load`): there is no log to read yet.
        let created = DeltaTableBuilder::from_url(url.clone())
            .and_then(|b| b.build())
            .map_err(|e| Error::delta(spec.id, e))?
            .create()
            .with_table_name(spec.id.name)
            .with_columns(columns.fields().cloned())
            .with_partition_columns(spec.partition_columns.iter().copied())
            // Version 0 or nothing: a retried create would land as version 1 and replace the
            // winner's metadata (a new table id) under its writers' feet.
            .with_commit_properties(CommitProperties::default().with_max_retries(0))
            .await;
        match created {
            Ok(table) => Ok(table),
            // Another process created it between our check and our commit: use theirs.
            Err(e) => match deltalake::open_table(url).await {
                Ok(table) => Ok(table),
                Err(_) => Err(Error::delta(spec.id, e)),
            },
        }
    }

    /// Every Delta table under the lake root, as `schema.table`, sorted.
    pub(crate) fn tables(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for schema in sub_dirs(&self.root)? {
            for table in sub_dirs(&self.root.join(&schema))? {
                if self
                    .root
                    .join(&schema)
                    .join(&table)
                    .join("_delta_log")
                    .is_dir()
                {
                    out.push(format!("{schema}.{table}"));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Opens an existing table; None if it was never created.
    pub async fn open(&self, id: TableId) -> Result<Option<DeltaTable>> {
        if !self.table_path(id).join("_delta_log").exists() {
            return Ok(None);
        }
        let url = self.table_url(id)?;
        deltalake::open_table(url)
            .await
            .map(Some)
            .map_err(|e| Error::delta(id, e))
    }
}

/// The names of the folders in `dir`.
fn sub_dirs(dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir.display(), e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir.display(), e))?;
        if entry.path().is_dir() {
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_first_use_creates_one_table_and_everyone_opens_it() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(dir.path()).unwrap();
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let lake = lake.clone();
                tokio::spawn(async move { lake.open_or_create(&dead_letters_spec()).await })
            })
            .collect();
        for t in tasks {
            let table = t.await.unwrap().unwrap();
            assert_eq!(table.version(), Some(0));
        }
        let log = lake.table_path(DEAD_LETTERS).join("_delta_log");
        assert_eq!(
            std::fs::read_dir(log).unwrap().count(),
            1,
            "one commit only"
        );
    }
}
