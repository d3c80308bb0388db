//! Delta tables kept open between the queries of a long-lived process (`lake serve`), so a query
//! does not replay a table's log each time it names the table. A lookup still returns the latest
//! committed snapshot: a cached table is reused only while the file of its next commit,
//! `_delta_log/<version + 1>.json`, does not exist (Delta commits by creating exactly that file),
//! and is otherwise brought up to date by reading only the new commits. On an object store the
//! table is brought up to date on every lookup (one listing of the new commits).
//!
//! Work done inside [`Snapshots::recording`] learns which snapshots it read ([`Read`]), so that
//! a plan built from them can later be checked with [`Read::is_latest`] and reused while no
//! table it reads has a newer commit.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

use deltalake::logstore::{commit_uri_from_version, LogStoreRef};
use deltalake::{DeltaResult, DeltaTable};
use object_store::ObjectStoreExt;
use url::Url;

use super::Lake;
use crate::error::{Error, Result};

/// One table snapshot that a piece of work read.
#[derive(Clone)]
pub(crate) struct Read {
    pub(crate) url: Url,
    /// None for a table without a version: it never counts as still the latest.
    pub(crate) version: Option<u64>,
    /// Where the table's log is, to look for the commit after `version`.
    pub(crate) log: LogStoreRef,
}

impl PartialEq for Read {
    fn eq(&self, other: &Self) -> bool {
        (&self.url, self.version) == (&other.url, other.version)
    }
}

impl fmt::Debug for Read {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Read({} at {:?})", self.url, self.version)
    }
}

impl Read {
    /// Whether this is still the table's latest snapshot: one `stat` on a local lake, one
    /// HEAD request on an object store.
    pub(crate) async fn is_latest(&self) -> bool {
        is_latest(&self.log, self.version).await
    }

    /// Whether every one of `reads` is still the latest (the requests go out together).
    pub(crate) async fn all_latest(reads: &[Read]) -> bool {
        futures::future::join_all(reads.iter().map(Read::is_latest))
            .await
            .into_iter()
            .all(|latest| latest)
    }
}

tokio::task_local! {
    /// The snapshots looked up by the work running inside [`Snapshots::recording`].
    static READS: RefCell<Vec<Read>>;
}

/// Open tables by URL, shared by every session of the process that holds it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshots {
    open: Arc<Mutex<HashMap<Url, DeltaTable>>>,
}

impl Snapshots {
    /// Runs `work` and returns, with its output, every snapshot it looked up here.
    pub(crate) async fn recording<F: Future>(work: F) -> (F::Output, Vec<Read>) {
        READS
            .scope(RefCell::new(Vec::new()), async move {
                let output = work.await;
                let reads = READS.with(|r| r.take());
                (output, reads)
            })
            .await
    }

    /// The table at `url` of `lake` at its latest committed version.
    pub(crate) async fn latest(&self, lake: &Lake, url: &Url) -> Result<DeltaTable> {
        let table = self.lookup(lake, url).await?;
        let read = Read {
            url: url.clone(),
            version: table.version(),
            log: table.log_store(),
        };
        // Outside `recording` there is nobody to tell.
        let _ = READS.try_with(|r| r.borrow_mut().push(read));
        Ok(table)
    }

    async fn lookup(&self, lake: &Lake, url: &Url) -> Result<DeltaTable> {
        let cached = self.open.lock().ok().and_then(|o| o.get(url).cloned());
        let table = match cached {
            Some(table) if table_is_latest(&table).await => return Ok(table),
            Some(mut table) => {
                table
                    .update_incremental(None)
                    .await
                    .map_err(|e| Error::delta(url, e))?;
                table
            }
            None => lake.open_url(url).await?,
        };
        if let Ok(mut open) = self.open.lock() {
            // Keep the newest of what concurrent lookups loaded.
            let newer = open.get(url).is_none_or(|t| t.version() < table.version());
            if newer {
                open.insert(url.clone(), table.clone());
            }
        }
        Ok(table)
    }
}

/// Whether `table` is at the table's latest version, without listing its log: one `stat`
/// on a local lake, one HEAD request on an object store.
pub(crate) async fn table_is_latest(table: &DeltaTable) -> bool {
    is_latest(&table.log_store(), table.version()).await
}

/// Brings `table` to its latest version; when it already is (the common case), with one HEAD
/// or stat instead of a listing of its log, whose length grows with the retention.
pub(crate) async fn bring_up_to_date(table: &mut DeltaTable) -> DeltaResult<()> {
    if table_is_latest(table).await {
        return Ok(());
    }
    table.update_incremental(None).await
}

/// Whether `version` of the table whose log is `log` is its latest: no file for the commit
/// after it, which is the file Delta's next commit creates. A table without a version never
/// is, nor one whose store cannot say.
async fn is_latest(log: &LogStoreRef, version: Option<u64>) -> bool {
    let Some(version) = version else {
        return false;
    };
    let next = commit_uri_from_version(Some(version + 1));
    // A local table: a stat, without a trip through the store's thread pool.
    let location = log.config().location();
    if location.scheme() == "file" {
        if let Ok(root) = location.to_file_path() {
            return !root.join(next.as_ref()).exists();
        }
    }
    matches!(
        log.object_store(None).head(&next).await,
        Err(object_store::Error::NotFound { .. })
    )
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
        let log = new.log_store();
        new.write(vec![rows.clone()]).await.unwrap();
        let append = || async {
            let table = deltalake::open_table(url.clone()).await.unwrap();
            table.write(vec![rows.clone()]).await.unwrap();
        };

        let snapshots = Snapshots::default();
        let lake = Lake::new(dir.path()).unwrap();
        let (table, reads) = Snapshots::recording(snapshots.latest(&lake, &url)).await;
        assert_eq!(table.unwrap().version(), Some(0));
        let read = Read {
            url: url.clone(),
            version: Some(0),
            log,
        };
        assert_eq!(reads, vec![read.clone()]);
        assert!(read.is_latest().await);
        assert_eq!(
            snapshots.latest(&lake, &url).await.unwrap().version(),
            Some(0)
        );
        append().await;
        assert!(
            !read.is_latest().await,
            "a commit makes what was read stale"
        );
        append().await;
        let latest = snapshots.latest(&lake, &url).await.unwrap();
        assert_eq!(latest.version(), Some(2), "the new commits are seen");
        assert_eq!(latest.snapshot().unwrap().log_data().num_files(), 3);
    }
}
