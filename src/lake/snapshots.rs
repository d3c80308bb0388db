//! Delta tables kept open between the queries of a long-lived process (`lake serve`), so a query
//! does not replay a table's log each time it names the table. A lookup still returns the latest
//! committed snapshot: a cached table is reused only while the file of its next commit,
//! `_delta_log/<version + 1>.json`, does not exist (Delta commits by creating exactly that file),
//! and is otherwise brought up to date by reading only the new commits.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use deltalake::DeltaTable;

use super::open_dir;
use crate::error::{Error, Result};

/// Open tables by folder, shared by every session of the process that holds it.
#[derive(Debug, Clone, Default)]
pub struct Snapshots {
    open: Arc<Mutex<HashMap<PathBuf, DeltaTable>>>,
}

impl Snapshots {
    /// The table at `path` at its latest committed version.
    pub async fn latest(&self, path: &Path) -> Result<DeltaTable> {
        let cached = self.open.lock().ok().and_then(|o| o.get(path).cloned());
        let table = match cached {
            Some(table) if !has_newer_commit(path, &table) => return Ok(table),
            Some(mut table) => {
                table
                    .update_incremental(None)
                    .await
                    .map_err(|e| Error::delta(path.display(), e))?;
                table
            }
            None => open_dir(path).await?,
        };
        if let Ok(mut open) = self.open.lock() {
            // Keep the newest of what concurrent lookups loaded.
            let newer = open.get(path).is_none_or(|t| t.version() < table.version());
            if newer {
                open.insert(path.to_path_buf(), table.clone());
            }
        }
        Ok(table)
    }
}

/// Whether a commit after `table`'s version exists on disk.
fn has_newer_commit(path: &Path, table: &DeltaTable) -> bool {
    let Some(version) = table.version() else {
        return true;
    };
    path.join("_delta_log")
        .join(format!("{:020}.json", version + 1))
        .exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::dir_url;
    use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch};
    use deltalake::DeltaTableBuilder;

    #[tokio::test]
    async fn a_cached_table_is_reused_until_a_new_commit_then_caught_up() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir_url(dir.path()).unwrap();
        let n = Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef;
        let rows = RecordBatch::try_from_iter([("n", n)]).unwrap();
        let new = DeltaTableBuilder::from_url(url.clone())
            .unwrap()
            .build()
            .unwrap();
        new.write(vec![rows.clone()]).await.unwrap();
        let append = || async {
            let table = deltalake::open_table(url.clone()).await.unwrap();
            table.write(vec![rows.clone()]).await.unwrap();
        };

        let snapshots = Snapshots::default();
        assert_eq!(
            snapshots.latest(dir.path()).await.unwrap().version(),
            Some(0)
        );
        assert_eq!(
            snapshots.latest(dir.path()).await.unwrap().version(),
            Some(0)
        );
        append().await;
        append().await;
        let latest = snapshots.latest(dir.path()).await.unwrap();
        assert_eq!(latest.version(), Some(2), "the new commits are seen");
        assert_eq!(latest.snapshot().unwrap().log_data().num_files(), 3);
    }
}
