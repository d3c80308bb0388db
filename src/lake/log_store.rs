//! The Delta log store every table of the lake is opened with: delta-rs's own, except for the
//! engine it hands the kernel to read the log with.
//!
//! Why: the kernel's default engine reads up to 1,000 log files at once, and gives each JSON
//! file a decoder sized for 1,000 rows of the whole action schema (megabytes), however few lines
//! the file has. Loading or updating a snapshot reads the commits since the last checkpoint
//! (up to 100) that way, so ingest's process briefly held a decoder per commit beside its
//! buffers and merges (bench/NOTES.md). [`READS_AT_ONCE`] files at a time hold a few of them; on
//! an object store that many requests still overlap.
//!
//! The remote schemes are registered here too: delta-rs's factories know only `file://` and
//! `memory://` unless the crates for the clouds (and their SDKs) are built in. Its plain log
//! store commits a version with a conditional put (`If-None-Match: *` on S3), so two writers can
//! never both write the same version; the stores themselves are built by
//! [`super::location::remote_store`].

use std::num::NonZeroUsize;
use std::sync::{Arc, Once};

use bytes::Bytes;
use datafusion::execution::object_store::ObjectStoreUrl;
use delta_kernel::Engine;
use delta_kernel_default_engine::executor::tokio::{
    TokioBackgroundExecutor, TokioMultiThreadExecutor,
};
use delta_kernel_default_engine::DefaultEngineBuilder;
use deltalake::kernel::transaction::TransactionError;
use deltalake::kernel::Version;
use deltalake::logstore::{
    default_logstore, logstore_factories, CommitOrBytes, LogStore, LogStoreConfig, LogStoreFactory,
    StorageConfig,
};
use deltalake::{DeltaResult, ObjectStore, Path};
use tokio::runtime::{Handle, RuntimeFlavor};
use url::Url;
use uuid::Uuid;

use super::location::REMOTE;

/// Log files (commits, checkpoint parts) the engine reads at once.
const READS_AT_ONCE: NonZeroUsize = NonZeroUsize::new(8).unwrap();

/// Makes every table opened afterwards, local or remote, use [`BoundedLogReads`]. Idempotent.
pub(crate) fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for scheme in std::iter::once("file").chain(REMOTE.iter().copied()) {
            if let Ok(url) = Url::parse(&format!("{scheme}://")) {
                logstore_factories().insert(url, Arc::new(Factory));
            }
        }
    });
}

struct Factory;

impl LogStoreFactory for Factory {
    fn with_options(
        &self,
        prefixed_store: Arc<dyn ObjectStore>,
        root_store: Arc<dyn ObjectStore>,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(Arc::new(BoundedLogReads(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))))
    }
}

/// delta-rs's default log store, handing out an engine that reads [`READS_AT_ONCE`] log files
/// at a time.
struct BoundedLogReads(Arc<dyn LogStore>);

#[async_trait::async_trait]
impl LogStore for BoundedLogReads {
    fn name(&self) -> String {
        self.0.name()
    }

    async fn refresh(&self) -> DeltaResult<()> {
        self.0.refresh().await
    }

    async fn read_commit_entry(&self, version: Version) -> DeltaResult<Option<Bytes>> {
        self.0.read_commit_entry(version).await
    }

    async fn write_commit_entry(
        &self,
        version: Version,
        commit_or_bytes: CommitOrBytes,
        operation_id: Uuid,
    ) -> Result<(), TransactionError> {
        self.0
            .write_commit_entry(version, commit_or_bytes, operation_id)
            .await
    }

    async fn abort_commit_entry(
        &self,
        version: Version,
        commit_or_bytes: CommitOrBytes,
        operation_id: Uuid,
    ) -> Result<(), TransactionError> {
        self.0
            .abort_commit_entry(version, commit_or_bytes, operation_id)
            .await
    }

    async fn get_latest_version(&self, start_version: Version) -> DeltaResult<Version> {
        self.0.get_latest_version(start_version).await
    }

    fn object_store(&self, operation_id: Option<Uuid>) -> Arc<dyn ObjectStore> {
        self.0.object_store(operation_id)
    }

    fn root_object_store(&self, operation_id: Option<Uuid>) -> Arc<dyn ObjectStore> {
        self.0.root_object_store(operation_id)
    }

    fn engine(&self, operation_id: Option<Uuid>) -> Arc<dyn Engine> {
        let store = self.root_object_store(operation_id);
        let builder = DefaultEngineBuilder::new(store).with_buffer_size(READS_AT_ONCE);
        // As delta-rs's own engine does: the kernel's work on the caller's runtime when that
        // has worker threads, else on a runtime of its own.
        match Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => Arc::new(
                builder
                    .with_task_executor(Arc::new(TokioMultiThreadExecutor::new(handle)))
                    .build(),
            ),
            _ => Arc::new(
                builder
                    .with_task_executor(Arc::new(TokioBackgroundExecutor::new()))
                    .build(),
            ),
        }
    }

    fn to_uri(&self, location: &Path) -> String {
        self.0.to_uri(location)
    }

    fn root_url(&self) -> &Url {
        self.0.root_url()
    }

    fn log_path(&self) -> &Path {
        self.0.log_path()
    }

    fn transaction_url(&self, operation_id: Option<Uuid>) -> DeltaResult<Url> {
        self.0.transaction_url(operation_id)
    }

    async fn is_delta_table_location(&self) -> DeltaResult<bool> {
        self.0.is_delta_table_location().await
    }

    fn config(&self) -> &LogStoreConfig {
        self.0.config()
    }

    fn object_store_url(&self) -> ObjectStoreUrl {
        self.0.object_store_url()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::writer::tests::table_with_commits;
    use crate::lake::DEAD_LETTERS;

    /// The tables a lake opens carry this log store, and a table opened anew through its engine
    /// sees every commit.
    #[tokio::test]
    async fn tables_read_their_log_a_few_files_at_a_time() {
        let (_dir, lake, table) = table_with_commits(30).await;
        let reopened = lake.open_url(&lake.table_url(DEAD_LETTERS)).await.unwrap();
        for t in [&table, &reopened] {
            let store = t.log_store();
            assert!(store.as_any().downcast_ref::<BoundedLogReads>().is_some());
        }
        assert_eq!(reopened.version(), Some(30));
        let files = |t: &deltalake::DeltaTable| t.snapshot().unwrap().log_data().num_files();
        assert_eq!((files(&reopened), files(&table)), (30, 30));
    }
}
