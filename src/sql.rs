//! `lake sql`: datafusion-cli's REPL and output formats over the `lake` catalog. Read-only by
//! default: DDL, DML (INSERT, COPY) and statements such as SET are refused before they run.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext, SessionState};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::LogicalPlan;
use datafusion::object_store::ObjectStore;
use datafusion_cli::cli_context::CliSessionContext;
use datafusion_cli::exec;
use datafusion_cli::object_storage::instrumented::InstrumentedObjectStoreRegistry;
use datafusion_cli::print_format::PrintFormat;
use datafusion_cli::print_options::{MaxRows, PrintOptions};

use crate::error::{Error, Result};
use crate::lake::{catalog, Lake};

#[derive(Debug, Clone)]
pub(crate) struct SqlOptions {
    /// Statements to run (`-c`); with no commands and no files, the REPL starts.
    pub(crate) commands: Vec<String>,
    pub(crate) files: Vec<PathBuf>,
    pub(crate) format: PrintFormat,
    pub(crate) maxrows: MaxRows,
    pub(crate) quiet: bool,
    /// Allow DDL, DML and SET (session-local: nothing in the lake changes through DDL).
    pub(crate) writable: bool,
}

/// A session that checks every plan against the statement policy before running it.
struct Session {
    ctx: SessionContext,
    policy: SQLOptions,
}

#[async_trait]
impl CliSessionContext for Session {
    fn task_ctx(&self) -> Arc<TaskContext> {
        self.ctx.task_ctx()
    }

    fn session_state(&self) -> SessionState {
        self.ctx.state()
    }

    fn register_object_store(
        &self,
        url: &url::Url,
        object_store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore + 'static>> {
        self.ctx.register_object_store(url, object_store)
    }

    fn register_table_options_extension_from_scheme(&self, _scheme: &str) {}

    async fn execute_logical_plan(
        &self,
        plan: LogicalPlan,
    ) -> std::result::Result<DataFrame, DataFusionError> {
        self.policy.verify_plan(&plan).map_err(|e| {
            DataFusionError::Plan(format!(
                "lake sql is read-only (pass --writable to allow this): {e}"
            ))
        })?;
        self.ctx.execute_logical_plan(plan).await
    }
}

/// Runs the statements of `opts`, or the REPL when there are none.
pub(crate) async fn run(lake: &Lake, opts: SqlOptions) -> Result<()> {
    let policy = if opts.writable {
        SQLOptions::new()
    } else {
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
    };
    // Lists the tables once: on an object store, what `SHOW TABLES` reads.
    lake.tables().await?;
    let session = Session {
        ctx: catalog::session(lake, SessionConfig::new()),
        policy,
    };
    let mut print = PrintOptions {
        format: opts.format,
        quiet: opts.quiet,
        maxrows: opts.maxrows,
        color: false,
        instrumented_registry: Arc::new(InstrumentedObjectStoreRegistry::new()),
    };
    if opts.commands.is_empty() && opts.files.is_empty() {
        return exec::exec_from_repl(&session, &mut print)
            .await
            .map_err(|e| Error::Other(format!("repl: {e}")));
    }
    // Files are read here, whole, so that a missing file is an error and a failing statement
    // fails the command (datafusion-cli's file runner only prints it and goes on).
    let mut scripts = opts.commands.clone();
    for path in &opts.files {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
        scripts.push(text);
    }
    exec::exec_from_commands(&session, scripts, &print).await?;
    Ok(())
}
