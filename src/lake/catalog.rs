//! The DataFusion catalog `lake`: one schema per folder of the lake root (`raw`, `processed`,
//! `system`, ...), one table per Delta table inside, discovered when a query names it. Every
//! lookup opens the table's latest snapshot, so new commits are visible without a restart.
//!
//! The schema `public` (DataFusion's default) resolves a bare table name when exactly one
//! schema has a table of that name, so `SELECT * FROM user_events` works.
//!
//! How a lookup finds the snapshot is the session's [`Lookup`]: the latest one, read afresh
//! (`lake sql`) or from tables kept open ([`Snapshots`], `lake serve`); or, for a job that must
//! see one consistent state across several queries (the daily job: its files, its checks),
//! [`Pins`]: each table is then opened once and that snapshot is reused, unless the job puts
//! its own result in the table's place ([`Pins::set`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::datasource::TableProvider;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::{SessionConfig, SessionContext};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::{SessionState, SessionStateBuilder};
use deltalake::DeltaTable;

use super::bounded;
use super::snapshots::Snapshots;
use super::Lake;

pub(crate) const CATALOG: &str = "lake";
/// The schema that resolves unqualified names.
pub(crate) const UNQUALIFIED: &str = "public";

/// Which snapshot of a table a lookup returns.
#[derive(Debug, Clone)]
pub(crate) enum Lookup {
    /// The latest, opened afresh.
    Latest,
    /// The latest, from tables the process keeps open.
    Cached(Snapshots),
    /// The one the first lookup opened, for every query of the session.
    Pinned(Pins),
}

/// A session whose default catalog is the lake; every lookup sees the latest snapshot.
pub(crate) fn session(lake: &Lake, config: SessionConfig) -> SessionContext {
    session_with(
        lake,
        config,
        Arc::new(RuntimeEnv::default()),
        Lookup::Latest,
    )
}

/// A session over the lake with its own runtime (memory limit, spill files) whose lookups
/// follow `lookup`.
pub(crate) fn session_with(
    lake: &Lake,
    config: SessionConfig,
    runtime: Arc<RuntimeEnv>,
    lookup: Lookup,
) -> SessionContext {
    let config = config
        .with_default_catalog_and_schema(CATALOG, UNQUALIFIED)
        .with_create_default_catalog_and_schema(false)
        .with_information_schema(true);
    let scan = scan_defaults(&config);
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .build();
    let ctx = SessionContext::new_with_state(state);
    bounded::bound(&ctx);
    let catalog = LakeCatalog {
        lake: lake.clone(),
        lookup,
        scan,
    };
    ctx.register_catalog(CATALOG, Arc::new(catalog));
    ctx
}

/// Table snapshots opened once and shared by every query of one job, keyed `schema.table`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pins {
    opened: Arc<Mutex<HashMap<String, Arc<dyn TableProvider>>>>,
}

impl Pins {
    /// Every later lookup of `table` (`schema.table`) returns `provider`, also when no such
    /// table exists in the lake yet: how the daily job shows its checks a result that is not
    /// published.
    pub(crate) fn set(&self, table: &str, provider: Arc<dyn TableProvider>) {
        if let Ok(mut opened) = self.opened.lock() {
            opened.insert(table.to_string(), provider);
        }
    }

    /// The schema of the pinned table `name` (in `schema`, or in the only schema pinning it).
    fn schema_of(&self, schema: Option<&str>, name: &str) -> Option<String> {
        let opened = self.opened.lock().ok()?;
        let tables: Vec<String> = opened.keys().cloned().collect();
        locate(&tables, schema, name)
    }

    /// Whether a table of `schema` is pinned (it may not exist in the lake yet).
    fn has_schema(&self, schema: &str) -> bool {
        self.opened.lock().is_ok_and(|opened| {
            opened
                .keys()
                .any(|t| t.split_once('.').is_some_and(|(s, _)| s == schema))
        })
    }

    fn get(&self, table: &str) -> Option<Arc<dyn TableProvider>> {
        self.opened.lock().ok()?.get(table).cloned()
    }

    /// Pins `table`, opened already, as `key` (`schema.table`): the catalog does not load it
    /// again, and every query of the job reads that snapshot.
    pub(crate) async fn pin_open(
        &self,
        key: &str,
        table: &DeltaTable,
        ctx: &SessionContext,
    ) -> crate::error::Result<()> {
        let provider = provider(table, scan_defaults(&ctx.copied_config()))
            .await
            .map_err(|e| crate::error::Error::Other(format!("{key}: {e}")))?;
        self.keep(key.to_string(), provider);
        Ok(())
    }

    fn keep(&self, table: String, provider: Arc<dyn TableProvider>) {
        if let Ok(mut opened) = self.opened.lock() {
            opened.entry(table).or_insert(provider);
        }
    }
}

/// What the Delta scans of a session are configured from: its view-type setting (a server
/// turns view types off, since its clients need plain strings anyway), with Parquet predicate
/// pushdown on, as delta-rs has it by default.
fn scan_defaults(config: &SessionConfig) -> Arc<SessionState> {
    let mut config = config.clone();
    config.options_mut().execution.parquet.pushdown_filters = true;
    Arc::new(SessionStateBuilder::new().with_config(config).build())
}

/// A provider reading `table`'s snapshot (its files in memory: no log replay per scan).
async fn provider(table: &DeltaTable, scan: Arc<SessionState>) -> Result<Arc<dyn TableProvider>> {
    table
        .table_provider()
        .with_session(scan)
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))
}

#[derive(Debug)]
pub(crate) struct LakeCatalog {
    lake: Lake,
    lookup: Lookup,
    scan: Arc<SessionState>,
}

/// Every table of the lake as `schema.table`, without waiting (see `Lake::tables_now`); a lake
/// that cannot be listed has none.
fn lake_tables(lake: &Lake) -> Vec<String> {
    lake.tables_now().unwrap_or_default()
}

/// Whether `name` can be a folder of the lake: one path component, so that a quoted name
/// such as `"../x"` cannot reach outside it.
fn is_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\'])
}

/// The schema holding table `name` among `tables` (`schema.table` names): `schema` itself if
/// it has the table, or, with no schema given, the only schema that has it.
pub(crate) fn locate(tables: &[String], schema: Option<&str>, name: &str) -> Option<String> {
    let mut hits = tables.iter().filter_map(|t| {
        let (s, n) = t.split_once('.')?;
        (n == name && schema.is_none_or(|mine| mine == s)).then_some(s)
    });
    let first = hits.next()?;
    hits.next().is_none().then(|| first.to_string())
}

/// Whether a table reference as written in SQL (`t`, `s.t` or `lake.s.t`) names one table.
pub(crate) fn resolves(tables: &[String], reference: &str) -> bool {
    let reference = reference
        .strip_prefix(&format!("{CATALOG}."))
        .unwrap_or(reference);
    match reference.split_once('.') {
        Some((schema, name)) => locate(tables, Some(schema), name).is_some(),
        None => locate(tables, None, reference).is_some(),
    }
}

impl CatalogProvider for LakeCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names: Vec<String> = lake_tables(&self.lake)
            .into_iter()
            .filter_map(|t| t.split_once('.').map(|(s, _)| s.to_string()))
            .collect();
        names.dedup();
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let schema = (name != UNQUALIFIED).then(|| name.to_string());
        // One stat, not a listing of the lake: this runs for every table a query names.
        let pinned = match &self.lookup {
            Lookup::Pinned(pins) => pins.has_schema(name),
            _ => false,
        };
        let known =
            schema.is_none() || (is_name(name) && self.lake.may_have_schema(name)) || pinned;
        known.then(|| {
            Arc::new(LakeSchema {
                lake: self.lake.clone(),
                schema,
                lookup: self.lookup.clone(),
                scan: self.scan.clone(),
            }) as Arc<dyn SchemaProvider>
        })
    }
}

/// One folder of the lake, or (schema None) the resolver of unqualified names.
#[derive(Debug)]
pub(crate) struct LakeSchema {
    lake: Lake,
    schema: Option<String>,
    lookup: Lookup,
    scan: Arc<SessionState>,
}

impl LakeSchema {
    /// The DataFusion table of `table`'s snapshot.
    async fn provider(&self, table: &DeltaTable) -> Result<Arc<dyn TableProvider>> {
        provider(table, self.scan.clone()).await
    }

    /// Where `name` lives: in this folder (one stat, or one listing on an object store), or in
    /// the one folder that has it.
    async fn locate(&self, name: &str) -> Result<Option<String>> {
        let found = match &self.schema {
            Some(schema) => {
                let url = self.lake.url_of(schema, name).map_err(external)?;
                (is_name(name) && self.lake.has_log(&url).await.map_err(external)?)
                    .then(|| schema.clone())
            }
            // The last listing first: on an object store a new one is a request per schema
            // and table, and only a table it does not know needs one.
            None => match locate(&lake_tables(&self.lake), None, name) {
                Some(schema) => Some(schema),
                None => locate(&self.lake.tables().await.map_err(external)?, None, name),
            },
        };
        Ok(found.or_else(|| self.pinned(name)))
    }

    /// [`Self::locate`] without waiting, from the lake's last listing on an object store.
    fn locate_now(&self, name: &str) -> Option<String> {
        let found = match &self.schema {
            Some(schema) if self.lake.local_root().is_some() => {
                let url = self.lake.url_of(schema, name).ok()?;
                (is_name(name) && self.lake.has_log_now(&url)?).then(|| schema.clone())
            }
            schema => locate(&lake_tables(&self.lake), schema.as_deref(), name),
        };
        found.or_else(|| self.pinned(name))
    }

    fn pinned(&self, name: &str) -> Option<String> {
        match &self.lookup {
            Lookup::Pinned(pins) => pins.schema_of(self.schema.as_deref(), name),
            _ => None,
        }
    }
}

/// A lake error as DataFusion carries it.
fn external(e: crate::error::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[async_trait]
impl SchemaProvider for LakeSchema {
    fn table_names(&self) -> Vec<String> {
        // `public` lists nothing of its own: every table is listed under its real schema.
        let Some(mine) = &self.schema else {
            return Vec::new();
        };
        lake_tables(&self.lake)
            .into_iter()
            .filter_map(|t| {
                let (s, n) = t.split_once('.')?;
                (s == mine).then(|| n.to_string())
            })
            .collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(schema) = self.locate(name).await? else {
            return Ok(None);
        };
        let key = format!("{schema}.{name}");
        let url = self.lake.url_of(&schema, name).map_err(external)?;
        let table = match &self.lookup {
            Lookup::Pinned(pins) => {
                if let Some(pinned) = pins.get(&key) {
                    return Ok(Some(pinned));
                }
                let provider = self
                    .provider(&self.lake.open_url(&url).await.map_err(external)?)
                    .await?;
                pins.keep(key.clone(), provider.clone());
                // A concurrent lookup may have pinned first: everyone uses the same snapshot.
                return Ok(pins.get(&key).or(Some(provider)));
            }
            Lookup::Cached(snapshots) => {
                snapshots.latest(&self.lake, &url).await.map_err(external)?
            }
            Lookup::Latest => self.lake.open_url(&url).await.map_err(external)?,
        };
        Ok(Some(self.provider(&table).await?))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.locate_now(name).is_some()
    }
}
