//! The lake root: `<root>/<schema>/<table>` folders (or prefixes of an object store), each a
//! Delta table, and how to open one or create it with its schema on first use.

pub(crate) mod bounded;
pub(crate) mod catalog;
pub(crate) mod counted;
pub(crate) mod file_format;
pub(crate) mod location;
pub(crate) mod log_store;
pub(crate) mod maintain;
pub(crate) mod maintainer;
pub(crate) mod probe;
pub(crate) mod progress;
pub(crate) mod rewrite;
pub(crate) mod snapshots;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::SchemaRef;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::StructType;
use deltalake::{DeltaTable, DeltaTableBuilder};
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use url::Url;

use crate::error::{Error, Result};
use crate::event::{DEAD_LETTERS_SCHEMA, EVENTS_SCHEMA, EVENT_DATE};
use location::Location;
pub use location::StorageOptions;

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

/// The lake root: a local folder or a prefix of an object store.
#[derive(Debug, Clone)]
pub struct Lake {
    /// `file:///abs/root/` or `s3://bucket/prefix/`, ending with `/`.
    root: Url,
    /// The folder of a local lake.
    local: Option<PathBuf>,
    /// The object store of a remote lake, shared by all its tables (one connection pool, one
    /// credential cache). A local lake lets delta-rs open its folders as it always has.
    remote: Option<Arc<dyn ObjectStore>>,
    /// The tables of a remote lake as last listed, for DataFusion's catalog, which asks for
    /// them without waiting.
    listed: Arc<Mutex<Vec<String>>>,
}

impl fmt::Display for Lake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.local {
            Some(path) => write!(f, "{}", path.display()),
            None => write!(f, "{}", self.root),
        }
    }
}

impl Lake {
    /// Uses the local folder `root`, creating it if missing.
    pub fn new(root: impl AsRef<Path>) -> Result<Self> {
        log_store::register();
        let root = Location::local(root.as_ref())?;
        Ok(Self {
            root: dir_url(&root)?,
            local: Some(root),
            remote: None,
            listed: Arc::default(),
        })
    }

    /// The lake at `location`: a folder (created if missing), `file://`, `s3://bucket/prefix`,
    /// `gs://` or `az://`, reached with the environment's credentials and `storage`.
    pub fn at(location: &str, storage: &StorageOptions) -> Result<Self> {
        match Location::parse(location)? {
            Location::Local(path) => Self::new(path),
            Location::Remote(root) => Ok(Self {
                remote: Some(Arc::new(counted::Counted::new(location::remote_store(
                    &root, storage,
                )?))),
                root,
                local: None,
                listed: Arc::default(),
            }),
        }
    }

    /// The folder of a local lake; None on an object store.
    pub fn local_root(&self) -> Option<&Path> {
        self.local.as_deref()
    }

    /// The folder of a table of a local lake (tests and hints for local tools).
    pub fn table_path(&self, id: TableId) -> PathBuf {
        match &self.local {
            Some(root) => root.join(id.schema).join(id.name),
            None => PathBuf::from(self.table_url(id).as_str()),
        }
    }

    /// Where a table is, for people and other tools: its folder on a local lake, else its URL.
    pub fn table_location(&self, id: TableId) -> String {
        self.shown(&self.table_url(id))
    }

    /// Deletes every table of `schema` (`lake demo --fresh`).
    pub(crate) async fn remove_schema(&self, schema: &str) -> Result<()> {
        let url = child_url(&self.root, schema)?;
        let Some(store) = &self.remote else {
            let Ok(dir) = url.to_file_path() else {
                return Ok(());
            };
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
            }
            return Ok(());
        };
        let objects = store
            .list(Some(&store_path(&url)))
            .map_ok(|o| o.location)
            .boxed();
        store
            .delete_stream(objects)
            .try_collect::<Vec<_>>()
            .await
            .map_err(|e| Error::Other(format!("deleting {url}: {e}")))?;
        Ok(())
    }

    /// The URL of `schema.name`.
    pub(crate) fn url_of(&self, schema: &str, name: &str) -> Result<Url> {
        child_url(&child_url(&self.root, schema)?, name)
    }

    /// The lake's root URL, ending with `/`.
    pub(crate) fn root_url(&self) -> &Url {
        &self.root
    }

    /// Creates the folder of `url` on a local lake (delta-rs wants it to exist); nothing to do
    /// on an object store.
    pub(crate) fn make_folder(&self, url: &Url) -> Result<()> {
        if self.local.is_some() {
            if let Ok(path) = url.to_file_path() {
                std::fs::create_dir_all(&path).map_err(|e| Error::io(path.display(), e))?;
            }
        }
        Ok(())
    }

    /// The object store of a remote lake.
    pub(crate) fn remote_store(&self) -> Option<&Arc<dyn ObjectStore>> {
        self.remote.as_ref()
    }

    pub(crate) fn table_url(&self, id: TableId) -> Url {
        // A TableId's names are fixed identifiers: joining them cannot fail.
        self.url_of(id.schema, id.name)
            .unwrap_or_else(|_| self.root.clone())
    }

    /// A builder for the table at `url`, on the lake's store.
    pub(crate) fn builder(&self, url: &Url) -> Result<DeltaTableBuilder> {
        let builder = DeltaTableBuilder::from_url(url.clone()).map_err(|e| Error::delta(url, e))?;
        Ok(match &self.remote {
            Some(store) => builder.with_storage_backend(store.clone(), url.clone()),
            None => builder,
        })
    }

    /// The latest snapshot of the table at `url`.
    pub(crate) async fn open_url(&self, url: &Url) -> Result<DeltaTable> {
        self.builder(url)?
            .load()
            .await
            .map_err(|e| Error::delta(self.shown(url), e))
    }

    /// The latest snapshot of `schema.name`, which must exist.
    pub(crate) async fn open_named(&self, schema: &str, name: &str) -> Result<DeltaTable> {
        self.open_url(&self.url_of(schema, name)?).await
    }

    /// How messages name the table at `url`: its folder on a local lake.
    fn shown(&self, url: &Url) -> String {
        match url.to_file_path() {
            Ok(path) if self.local.is_some() => path.display().to_string(),
            _ => url.to_string(),
        }
    }

    /// Whether the table at `url` has a Delta log.
    pub(crate) async fn has_log(&self, url: &Url) -> Result<bool> {
        if let Some(local) = self.has_log_now(url) {
            return Ok(local);
        }
        match &self.remote {
            None => Ok(false),
            Some(store) => {
                let log = store_path(url).join("_delta_log");
                match store.list(Some(&log)).next().await {
                    None => Ok(false),
                    Some(Ok(_)) => Ok(true),
                    Some(Err(e)) => Err(Error::Other(format!("listing {url}_delta_log: {e}"))),
                }
            }
        }
    }

    /// [`Self::has_log`] without waiting: one stat on a local lake; None on an object store,
    /// where it takes a request.
    pub(crate) fn has_log_now(&self, url: &Url) -> Option<bool> {
        self.local.as_ref()?;
        Some(
            url.to_file_path()
                .is_ok_and(|path| path.join("_delta_log").is_dir()),
        )
    }

    /// Opens the table, or creates it empty if it does not exist yet. Safe when several
    /// processes race to create it: the loser opens the winner's table.
    pub async fn open_or_create(&self, spec: &TableSpec) -> Result<DeltaTable> {
        let url = self.table_url(spec.id);
        if self.has_log(&url).await? {
            // Another process may be between creating the folder and committing version 0.
            let mut attempts = 0;
            loop {
                match self.open_url(&url).await {
                    Ok(table) => return Ok(table),
                    Err(_) if attempts < 20 => {
                        attempts += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        self.make_folder(&url)?;
        let columns: StructType = spec
            .schema
            .as_ref()
            .try_into_kernel()
            .map_err(Error::Arrow)?;
        // `build` (not `load`): there is no log to read yet.
        let created = self
            .builder(&url)?
            .build()
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
            Err(e) => match self.open_url(&url).await {
                Ok(table) => Ok(table),
                Err(_) => Err(Error::delta(spec.id, e)),
            },
        }
    }

    /// Every Delta table of the lake, as `schema.table`, sorted.
    pub(crate) async fn tables(&self) -> Result<Vec<String>> {
        let Some(store) = &self.remote else {
            return self.tables_now();
        };
        let root = store_path(&self.root);
        let mut out = Vec::new();
        for schema in sub_prefixes(store.as_ref(), &root).await? {
            let folder = root.clone().join(schema.as_str());
            for table in sub_prefixes(store.as_ref(), &folder).await? {
                let children =
                    sub_prefixes(store.as_ref(), &folder.clone().join(table.as_str())).await?;
                if children.iter().any(|c| c == "_delta_log") {
                    out.push(format!("{schema}.{table}"));
                }
            }
        }
        out.sort();
        if let Ok(mut listed) = self.listed.lock() {
            listed.clone_from(&out);
        }
        Ok(out)
    }

    /// The tables without waiting: a local lake's folders, or a remote lake's last listing.
    pub(crate) fn tables_now(&self) -> Result<Vec<String>> {
        let Some(root) = &self.local else {
            return Ok(self.listed.lock().map(|l| l.clone()).unwrap_or_default());
        };
        let mut out = Vec::new();
        for schema in sub_dirs(root)? {
            for table in sub_dirs(&root.join(&schema))? {
                if root.join(&schema).join(&table).join("_delta_log").is_dir() {
                    out.push(format!("{schema}.{table}"));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Whether `schema` may hold tables, without waiting: a folder of a local lake; any name
    /// on an object store, where a prefix exists only while something is in it.
    pub(crate) fn may_have_schema(&self, schema: &str) -> bool {
        match &self.local {
            Some(root) => root.join(schema).is_dir(),
            None => true,
        }
    }

    /// Opens an existing table; None if it was never created.
    pub async fn open(&self, id: TableId) -> Result<Option<DeltaTable>> {
        let url = self.table_url(id);
        if !self.has_log(&url).await? {
            return Ok(None);
        }
        self.open_url(&url).await.map(Some)
    }
}

/// The folder `name` inside the folder `url` (which ends with `/`), as a folder URL. `name` is
/// one path component: a `/` in it is escaped, not followed.
pub(crate) fn child_url(url: &Url, name: &str) -> Result<Url> {
    let mut child = url.clone();
    child
        .path_segments_mut()
        .map_err(|()| Error::Other(format!("{url} has no path")))?
        .pop_if_empty()
        .push(name)
        .push("");
    Ok(child)
}

/// The path of `url` inside its store (its bucket, or the file system).
pub(crate) fn store_path(url: &Url) -> object_store::path::Path {
    object_store::path::Path::from_url_path(url.path()).unwrap_or_default()
}

/// The names one level under `prefix` in `store`.
async fn sub_prefixes(
    store: &dyn ObjectStore,
    prefix: &object_store::path::Path,
) -> Result<Vec<String>> {
    let listed = store
        .list_with_delimiter(Some(prefix))
        .await
        .map_err(|e| Error::Other(format!("listing {prefix}: {e}")))?;
    Ok(listed
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename().map(str::to_string))
        .collect())
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
