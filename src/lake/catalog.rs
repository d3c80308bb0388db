//! The DataFusion catalog `lake`: one schema per folder of the lake root (`raw`, `processed`,
//! `system`, ...), one table per Delta table inside, discovered when a query names it. Every
//! lookup opens the table's latest snapshot, so new commits are visible without a restart.
//!
//! The schema `public` (DataFusion's default) resolves a bare table name when exactly one
//! schema has a table of that name, so `SELECT * FROM user_events` works.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::datasource::TableProvider;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::{SessionConfig, SessionContext};

use super::maintain::list_tables;
use super::Lake;

pub const CATALOG: &str = "lake";
/// The schema that resolves unqualified names.
pub const UNQUALIFIED: &str = "public";

/// A session whose default catalog is the lake.
pub fn session(lake: &Lake, config: SessionConfig) -> SessionContext {
    let config = config
        .with_default_catalog_and_schema(CATALOG, UNQUALIFIED)
        .with_create_default_catalog_and_schema(false)
        .with_information_schema(true);
    let ctx = SessionContext::new_with_config(config);
    ctx.register_catalog(CATALOG, Arc::new(LakeCatalog { lake: lake.clone() }));
    ctx
}

#[derive(Debug)]
pub struct LakeCatalog {
    lake: Lake,
}

impl LakeCatalog {
    /// (schema, table) of every Delta table in the lake.
    fn tables(&self) -> Vec<(String, String)> {
        list_tables(&self.lake)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|t| {
                t.split_once('.')
                    .map(|(s, n)| (s.to_string(), n.to_string()))
            })
            .collect()
    }
}

impl CatalogProvider for LakeCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tables().into_iter().map(|(s, _)| s).collect();
        names.dedup();
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let schema = (name != UNQUALIFIED).then(|| name.to_string());
        let known = schema.is_none() || self.schema_names().iter().any(|s| s == name);
        known.then(|| {
            Arc::new(LakeSchema {
                lake: self.lake.clone(),
                schema,
            }) as Arc<dyn SchemaProvider>
        })
    }
}

/// One folder of the lake, or (schema None) the resolver of unqualified names.
#[derive(Debug)]
pub struct LakeSchema {
    lake: Lake,
    schema: Option<String>,
}

impl LakeSchema {
    /// Where `name` lives: in this folder, or in the one folder that has it.
    fn locate(&self, name: &str) -> Option<String> {
        let catalog = LakeCatalog {
            lake: self.lake.clone(),
        };
        let mut hits = catalog
            .tables()
            .into_iter()
            .filter(|(s, t)| t == name && self.schema.as_ref().is_none_or(|mine| mine == s));
        let first = hits.next()?;
        hits.next().is_none().then_some(first.0)
    }
}

#[async_trait]
impl SchemaProvider for LakeSchema {
    fn table_names(&self) -> Vec<String> {
        // `public` lists nothing of its own: every table is listed under its real schema.
        let Some(mine) = &self.schema else {
            return Vec::new();
        };
        let catalog = LakeCatalog {
            lake: self.lake.clone(),
        };
        catalog
            .tables()
            .into_iter()
            .filter(|(s, _)| s == mine)
            .map(|(_, t)| t)
            .collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(schema) = self.locate(name) else {
            return Ok(None);
        };
        let path = self.lake.root().join(&schema).join(name);
        let url = super::dir_url(&path).map_err(|e| DataFusionError::External(Box::new(e)))?;
        let table = deltalake::open_table(url)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let provider = table
            .table_provider()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(Some(provider))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.locate(name).is_some()
    }
}
