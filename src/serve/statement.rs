//! How a served query is planned and run: read-only policy, bound parameters, and the limits
//! (timeout, memory, concurrent queries). Results stream batch by batch; nothing is collected.
//!
//! Prepared statements are stateless: the handle carries the SQL text and the bound
//! parameters (Arrow IPC), so handles stay valid across executes and server restarts.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::common::Column;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionState};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::{SendableRecordBatchStream, SessionStateBuilder, TaskContext};
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::execute_stream;
use datafusion::prelude::{cast, Expr};
use futures::{FutureExt, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

use super::caught;
use super::constants;
use super::joined;
use super::planned::{PlanCache, Planned};
use super::windows;
use crate::lake::bounded;
use crate::lake::catalog::{self, Lookup};
use crate::lake::snapshots::Snapshots;
use crate::lake::Lake;
use crate::metrics::metrics;

/// A query and its bound parameters, as carried in tickets and prepared-statement handles.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Handle {
    pub(crate) sql: String,
    /// One row of parameter values as an Arrow IPC stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) params: Option<Vec<u8>>,
}

impl Handle {
    pub(crate) fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: numbered_placeholders(&sql.into()),
            params: None,
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, Status> {
        serde_json::from_slice(bytes).map_err(|e| {
            Status::invalid_argument(format!("not a statement handle of this server: {e}"))
        })
    }

    /// Binds the first row of `batch` as the parameters `$1, $2, ...`.
    pub(crate) fn with_params(mut self, batch: &RecordBatch) -> Result<Self, Status> {
        let mut bytes = Vec::new();
        let mut writer = StreamWriter::try_new(&mut bytes, &batch.schema())
            .map_err(|e| Status::invalid_argument(format!("parameters: {e}")))?;
        writer
            .write(&batch.slice(0, batch.num_rows().min(1)))
            .and_then(|()| writer.finish())
            .map_err(|e| Status::invalid_argument(format!("parameters: {e}")))?;
        drop(writer);
        self.params = Some(bytes);
        Ok(self)
    }

    /// The bound parameters. A handle comes from the client, which may have forged it: its
    /// parameter bytes are size-limited, their framing is checked against their length before
    /// arrow-ipc allocates anything they announce, and a panic while decoding them is an error
    /// of this request.
    fn param_values(&self) -> Result<Option<ParamValues>, Status> {
        let Some(bytes) = &self.params else {
            return Ok(None);
        };
        let bad = |e: &dyn std::fmt::Display| Status::invalid_argument(format!("parameters: {e}"));
        if bytes.len() > MAX_PARAM_BYTES {
            return Err(bad(&format!(
                "{} bytes of Arrow IPC, more than the {MAX_PARAM_BYTES} allowed",
                bytes.len()
            )));
        }
        ipc_framing_fits(bytes).map_err(|e| bad(&e))?;
        let decoded =
            caught::quietly(|| first_row(bytes)).map_err(|_| bad(&"malformed Arrow IPC"))?;
        decoded.map(Some).map_err(|e| bad(&e))
    }
}

/// Longest statement the server plans. Query text, not data: a statement this long is a
/// generated IN list, which a join against a table does better.
const MAX_SQL_BYTES: usize = 1024 * 1024;

/// Most operators (`+`, `=`, `AND`, ...) one statement may hold. A chain of them is an
/// expression as deep as it is long, and planning one costs time quadratic in its depth (each
/// level's name spells out the whole chain below it); sqlparser's recursion limit already
/// bounds how deeply parentheses, function calls and subqueries nest.
const MAX_OPERATORS: usize = 1_000;

/// Most items a statement may list outside `IN (...)` lists: select columns, function arguments,
/// VALUES. Planning a select list costs time quadratic in its width (80,000 constant columns,
/// just under [`MAX_SQL_BYTES`], took 4 minutes, during which no other query was answered) and
/// no deadline interrupts it. PostgreSQL allows 1,664 result columns.
const MAX_LIST_ITEMS: usize = 4_096;

/// Most set operations (`UNION`, `INTERSECT`, `EXCEPT`) one statement may hold. A chain of them
/// is flat to the parser but a plan as deep as it is long, which planning walks recursively:
/// 8,000 `UNION ALL`s overflowed a runtime thread's stack and aborted the process, and 5,000
/// took 27 s of planning that no deadline interrupts.
const MAX_SET_OPERATIONS: usize = 500;

/// Refuses a statement longer than [`MAX_SQL_BYTES`], with more than [`MAX_OPERATORS`]
/// operators, [`MAX_LIST_ITEMS`] listed items or [`MAX_SET_OPERATIONS`] set operations, before
/// it is parsed: the tokenizer is linear and needs no deep stack.
fn check_size(sql: &str) -> Result<(), Status> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    if sql.len() > MAX_SQL_BYTES {
        return Err(Status::invalid_argument(format!(
            "the statement is {} bytes long, more than the {MAX_SQL_BYTES} allowed",
            sql.len()
        )));
    }
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return Ok(()); // the planner reports the syntax error
    };
    let operators = tokens
        .iter()
        .filter(|t| match t {
            Token::Word(w) => matches!(w.keyword, Keyword::AND | Keyword::OR | Keyword::NOT),
            Token::Plus
            | Token::Minus
            | Token::Mul
            | Token::Div
            | Token::DuckIntDiv
            | Token::Mod
            | Token::StringConcat
            | Token::Eq
            | Token::DoubleEq
            | Token::Neq
            | Token::Lt
            | Token::Gt
            | Token::LtEq
            | Token::GtEq
            | Token::Spaceship
            | Token::Ampersand
            | Token::Pipe
            | Token::Caret
            | Token::ShiftLeft
            | Token::ShiftRight
            | Token::DoubleColon
            | Token::Arrow
            | Token::LongArrow => true,
            _ => false,
        })
        .count();
    // Commas, except those of an IN list (a BI tool's list of ids, planned in linear time).
    let mut in_list: Vec<bool> = Vec::new();
    let mut previous: Option<&Token> = None;
    let mut items = 0;
    for token in tokens.iter().filter(|t| !matches!(t, Token::Whitespace(_))) {
        match token {
            Token::LParen => in_list.push(matches!(
                previous,
                Some(Token::Word(w)) if w.keyword == Keyword::IN
            )),
            Token::RParen => {
                in_list.pop();
            }
            Token::Comma if in_list.last() != Some(&true) => items += 1,
            _ => {}
        }
        previous = Some(token);
    }
    if items >= MAX_LIST_ITEMS {
        return Err(Status::invalid_argument(format!(
            "the statement lists {} items (columns, arguments, values), more than the \
             {MAX_LIST_ITEMS} allowed (select fewer columns, or join a table of the values)",
            items + 1
        )));
    }
    let set_operations = tokens
        .iter()
        .filter(|t| {
            matches!(t, Token::Word(w)
                if matches!(w.keyword, Keyword::UNION | Keyword::INTERSECT | Keyword::EXCEPT))
        })
        .count();
    if set_operations > MAX_SET_OPERATIONS {
        return Err(Status::invalid_argument(format!(
            "the statement has {set_operations} set operations (UNION, INTERSECT, EXCEPT), more \
             than the {MAX_SET_OPERATIONS} allowed (put the rows in a table, or use IN or VALUES)"
        )));
    }
    if operators > MAX_OPERATORS {
        return Err(Status::invalid_argument(format!(
            "the statement has {operators} operators, more than the {MAX_OPERATORS} allowed \
             (write a long chain of ORs as an IN list, or a long IN list as a join)"
        )));
    }
    Ok(())
}

/// Deepest expression tree the server runs. [`MAX_OPERATORS`] bounds what a statement says;
/// this also bounds what planning made of it (a rewrite can deepen a tree). Walking a tree is
/// recursive in DataFusion and delta-rs; the runtime's threads get a stack that holds this
/// depth with room to spare (`cli::STACK_BYTES`).
const MAX_EXPRESSION_DEPTH: usize = 2_000;

/// The depth of the deepest expression tree in `plan`, found without recursion (the walk itself
/// must not overflow on the trees it is there to refuse).
fn expression_depth(plan: &LogicalPlan) -> usize {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut deepest = 0;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|root| {
            let mut pending: Vec<(&Expr, usize)> = vec![(root, 1)];
            while let Some((e, depth)) = pending.pop() {
                deepest = deepest.max(depth);
                let _ = e.apply_children(|child| {
                    pending.push((child, depth + 1));
                    Ok(TreeNodeRecursion::Continue)
                });
            }
            Ok(TreeNodeRecursion::Continue)
        })
    });
    deepest
}

/// Most bytes of Arrow IPC a handle's parameters may take (one row of values).
const MAX_PARAM_BYTES: usize = 1024 * 1024;

/// The first row of an Arrow IPC stream as parameter values.
fn first_row(bytes: &[u8]) -> datafusion::error::Result<ParamValues> {
    let reader = StreamReader::try_new(bytes, None)?;
    let mut values = Vec::new();
    for batch in reader {
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        for column in batch.columns() {
            values.push(ScalarValue::try_from_array(column, 0)?);
        }
        break;
    }
    Ok(ParamValues::from(values))
}

/// Checks that every message of an Arrow IPC stream lies within `bytes`: its metadata is a
/// valid flatbuffer and the body it announces is no longer than what follows. arrow-ipc
/// allocates a body's announced length before reading it, so a forged length could otherwise
/// ask for petabytes and abort the process.
fn ipc_framing_fits(mut bytes: &[u8]) -> Result<(), String> {
    use datafusion::arrow::ipc::root_as_message;
    fn take_i32(bytes: &mut &[u8]) -> Option<i32> {
        let (head, rest) = bytes.split_first_chunk::<4>()?;
        *bytes = rest;
        Some(i32::from_le_bytes(*head))
    }
    loop {
        let Some(mut len) = take_i32(&mut bytes) else {
            return Ok(());
        };
        // 0xFFFFFFFF is the continuation marker of the current format; the length follows.
        if len == -1 {
            let Some(next) = take_i32(&mut bytes) else {
                return Ok(());
            };
            len = next;
        }
        if len == 0 {
            return Ok(()); // end of stream
        }
        let len = usize::try_from(len).map_err(|_| format!("negative message length {len}"))?;
        let Some((metadata, rest)) = bytes.split_at_checked(len) else {
            return Err(format!(
                "a message's metadata claims {len} bytes, {} are left",
                bytes.len()
            ));
        };
        let message = root_as_message(metadata).map_err(|e| format!("message metadata: {e}"))?;
        let body = usize::try_from(message.bodyLength())
            .map_err(|_| format!("negative body length {}", message.bodyLength()))?;
        if body > rest.len() {
            return Err(format!(
                "a message claims a {body}-byte body, {} bytes are left",
                rest.len()
            ));
        }
        bytes = &rest[body..];
    }
}

/// `?` placeholders (JDBC, ADBC's qmark style) become DataFusion's `$1, $2, ...`; string
/// literals, quoted names and comments are left alone because the SQL tokenizer finds them.
pub(crate) fn numbered_placeholders(sql: &str) -> String {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return sql.to_string(); // the planner reports the syntax error
    };
    if !tokens
        .iter()
        .any(|t| matches!(t, Token::Placeholder(p) if p == "?"))
    {
        return sql.to_string();
    }
    let mut n = 0;
    tokens
        .into_iter()
        .map(|t| match t {
            Token::Placeholder(p) if p == "?" => {
                n += 1;
                format!("${n}")
            }
            other => other.to_string(),
        })
        .collect()
}

/// The schema with Utf8View / BinaryView fields as Utf8 / Binary: what [`Engine`] returns.
pub(crate) fn plain_schema(schema: &Schema) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match plain_type(f.data_type()) {
            Some(t) => f.as_ref().clone().with_data_type(t),
            None => f.as_ref().clone(),
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

fn plain_type(t: &DataType) -> Option<DataType> {
    match t {
        DataType::Utf8View => Some(DataType::Utf8),
        DataType::BinaryView => Some(DataType::Binary),
        _ => None,
    }
}

/// Limits every served query obeys.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) timeout: Duration,
    pub(crate) max_concurrent: usize,
}

/// Plans and runs queries over the lake for the server.
pub(crate) struct Engine {
    lake: Lake,
    /// One session for every query, planned from by reference: building a session (its
    /// hundreds of functions) or even cloning one costs more than planning a point query.
    /// Queries cannot change it (no SET, no DDL), and its catalog keeps tables open between
    /// queries while each query still sees the latest commit.
    state: SessionState,
    /// What every query runs with, built once for the same reason.
    task: Arc<TaskContext>,
    /// The same with smaller batches, for a plan that copies values into rows (see
    /// [`joined::copying_batch_rows`]).
    task_copying: Arc<TaskContext>,
    /// Plans kept between requests (see [`super::planned`]).
    planned: PlanCache,
    limits: Limits,
    /// The most bytes a constant that a query copies into rows may hold (see [`constants`]).
    largest_constant: usize,
    running: Arc<Semaphore>,
    /// Queries asked for so far (see [`super::idle`]).
    started: AtomicU64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("lake", &self.lake)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Read-only: no DDL (CREATE [EXTERNAL] TABLE, DROP, ...), no DML (INSERT, COPY), no SET.
fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Rows per batch the server's queries produce: a whole Parquet file of ingest (100k rows) in
/// one batch, so a full scan is streamed as fewer, larger Flight messages than at DataFusion's
/// default of 8,192 rows, which costs both ends less CPU per byte (bench/NOTES.md, "Flight SQL
/// full scan: larger batches").
const BATCH_ROWS: usize = 128 * 1024;

/// The gRPC status for a DataFusion error.
pub(crate) fn status(e: &DataFusionError) -> Status {
    match e.find_root() {
        DataFusionError::ResourcesExhausted(m) => {
            metrics().flight.refused("memory");
            Status::resource_exhausted(format!("query memory limit reached: {m}"))
        }
        DataFusionError::SQL(..)
        | DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_)
        | DataFusionError::Configuration(_) => Status::invalid_argument(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

impl Engine {
    pub(crate) fn new(lake: Lake, runtime: Arc<RuntimeEnv>, limits: Limits) -> Self {
        // Plain strings from the scan: clients get Utf8 anyway (see `without_views`), and
        // casting views to it cost about a tenth of a full scan's server CPU.
        let config = SessionConfig::new()
            .set_bool(
                "datafusion.execution.parquet.schema_force_view_types",
                false,
            )
            .with_batch_size(BATCH_ROWS);
        let call_cap = bounded::call_cap(runtime.memory_pool.as_ref());
        let copying = joined::copying_batch_rows(call_cap, joined::LARGEST_JOINED, BATCH_ROWS);
        let ctx =
            catalog::session_with(&lake, config, runtime, Lookup::Cached(Snapshots::default()));
        let guard = joined::GuardJoins {
            largest: joined::LARGEST_JOINED,
            rows: copying,
        };
        let state = SessionStateBuilder::new_from_existing(ctx.state())
            .with_physical_optimizer_rule(Arc::new(guard))
            .build();
        let largest_constant = constants::largest(call_cap, BATCH_ROWS);
        let task = TaskContext::from(&state);
        let config = task.session_config().clone().with_batch_size(copying);
        let task_copying = Arc::new(TaskContext::from(&state).with_session_config(config));
        let task = Arc::new(task);
        let running = Arc::new(Semaphore::new(limits.max_concurrent.max(1)));
        let planned = PlanCache::new(&state.runtime_env().memory_pool);
        Self {
            lake,
            state,
            task,
            task_copying,
            planned,
            limits,
            largest_constant,
            running,
            started: AtomicU64::new(0),
        }
    }

    pub(crate) fn lake(&self) -> &Lake {
        &self.lake
    }

    /// The logical plan of `handle`'s query: read-only checked, parameters bound if any,
    /// view types cast away.
    async fn logical_plan(&self, handle: &Handle) -> Result<LogicalPlan, Status> {
        let refused = |e: DataFusionError| match e.find_root() {
            DataFusionError::Plan(m) if m.contains("not supported") => {
                metrics().flight.refused("read_only");
                Status::invalid_argument(format!("this server is read-only: {e}"))
            }
            _ => status(&e),
        };
        check_size(&handle.sql).inspect_err(|_| metrics().flight.refused("size"))?;
        let plan = self
            .state
            .create_logical_plan(&handle.sql)
            .await
            .map_err(refused)?;
        read_only().verify_plan(&plan).map_err(refused)?;
        let depth = expression_depth(&plan);
        if depth > MAX_EXPRESSION_DEPTH {
            metrics().flight.refused("size");
            return Err(Status::invalid_argument(format!(
                "an expression is nested {depth} deep, more than the {MAX_EXPRESSION_DEPTH} \
                 allowed (write a long IN list or a chain of ORs as a join or a subquery)"
            )));
        }
        // After the depth check: its walk recurses, which only a tree of bounded depth allows.
        windows::check(&plan).map_err(|e| {
            metrics().flight.refused("size");
            status(&e)
        })?;
        let plan = match handle.param_values()? {
            Some(values) => plan.with_param_values(values).map_err(|e| status(&e))?,
            None => plan,
        };
        constants::check(&plan, self.largest_constant, BATCH_ROWS).map_err(|e| status(&e))?;
        without_views(plan).map_err(|e| status(&e))
    }

    /// Plans `handle`'s query to run, noting the table snapshots it reads (see [`Planned`]).
    async fn physical_plan(&self, handle: &Handle) -> Result<Planned, Status> {
        let (logical, reads) = Snapshots::recording(self.logical_plan(handle)).await;
        let logical = logical?;
        let schema = logical.schema().inner().clone();
        // What `create_physical_plan` does, with the folded constants checked in between.
        let optimized = self.state.optimize(&logical).map_err(|e| status(&e))?;
        constants::check(&optimized, self.largest_constant, BATCH_ROWS).map_err(|e| status(&e))?;
        let plan = self
            .state
            .query_planner()
            .create_physical_plan(&optimized, &self.state)
            .await
            .map_err(|e| status(&e))?;
        Ok(Planned::new(schema, plan, &logical, reads))
    }

    /// A plan of `handle`'s query about to run: a kept one that still gives the latest answer,
    /// or a new one, kept for the next request when it is reusable. A new one-time plan is not
    /// kept: once run, its state is spent and a second run could fail.
    async fn planned(&self, handle: &Handle) -> Result<Planned, Status> {
        let key = handle.encode();
        if let Some(planned) = self.planned.get(&key).await {
            return Ok(planned);
        }
        let planned = self.physical_plan(handle).await?;
        if planned.is_reusable() {
            self.planned.keep(key, planned.clone());
        }
        Ok(planned)
    }

    /// A concurrency slot, or RESOURCE_EXHAUSTED when every slot is taken. Planning takes
    /// one as running does: planning is work a client can make the server do.
    fn permit(&self) -> Result<Slot, Status> {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.running
            .clone()
            .try_acquire_owned()
            .map(Slot::new)
            .map_err(|_| {
                metrics().flight.refused("concurrency");
                Status::resource_exhausted(format!(
                    "too many concurrent queries (limit {}): retry later",
                    self.limits.max_concurrent
                ))
            })
    }

    /// Queries planning or running now.
    pub(crate) fn running_queries(&self) -> usize {
        self.limits.max_concurrent.max(1) - self.running.available_permits()
    }

    /// Queries asked for since the server started (refused ones too).
    pub(crate) fn queries_started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// `work` under a slot and the query timeout.
    pub(crate) async fn limited<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        let _permit = self.permit()?;
        tokio::time::timeout(self.limits.timeout, caught::or_internal(work))
            .await
            .map_err(|_| timed_out(self.limits.timeout))?
    }

    /// Plans `handle`'s query for a later [`Engine::execute`] (GetFlightInfo before its DoGet);
    /// returns the result schema.
    pub(crate) async fn plan(&self, handle: &Handle) -> Result<SchemaRef, Status> {
        let key = handle.encode();
        if let Some(schema) = self.planned.schema(&key).await {
            return Ok(schema);
        }
        let planned = self.limited(self.physical_plan(handle)).await?;
        let schema = planned.schema.clone();
        self.planned.keep(key, planned);
        Ok(schema)
    }

    /// What a prepared statement returns and the parameters it takes (`$1, $2, ...` in order,
    /// unknown types as Utf8), from one plan.
    pub(crate) async fn describe(&self, handle: &Handle) -> Result<(SchemaRef, Schema), Status> {
        let plan = self.limited(self.logical_plan(handle)).await?;
        let dataset = plan.schema().inner().clone();
        let types = plan.get_parameter_types().map_err(|e| status(&e))?;
        let mut names: Vec<(String, Option<DataType>)> = types.into_iter().collect();
        // `$10` after `$9`: order by the number, then by name for named parameters.
        names.sort_by_key(|(n, _)| {
            (
                n.trim_start_matches('$').parse::<u64>().unwrap_or(u64::MAX),
                n.clone(),
            )
        });
        let parameters = Schema::new(
            names
                .into_iter()
                .map(|(n, t)| Field::new(n, t.unwrap_or(DataType::Utf8), true))
                .collect::<Vec<_>>(),
        );
        Ok((dataset, parameters))
    }

    /// Runs a query (with a kept plan when one still gives the latest answer): a stream of its
    /// batches that ends with DeadlineExceeded when the query runs past the timeout.
    /// ResourceExhausted when too many queries run already.
    pub(crate) async fn execute(
        &self,
        handle: &Handle,
    ) -> Result<
        (
            SchemaRef,
            impl Stream<Item = Result<RecordBatch, Status>> + Send + 'static,
        ),
        Status,
    > {
        let permit = self.permit()?;
        let deadline = tokio::time::Instant::now() + self.limits.timeout;
        let planned = tokio::time::timeout_at(deadline, caught::or_internal(self.planned(handle)))
            .await
            .map_err(|_| timed_out(self.limits.timeout))??;
        let task = match joined::copies_rows_in(&planned.plan) {
            true => self.task_copying.clone(),
            false => self.task.clone(),
        };
        let stream =
            std::panic::catch_unwind(AssertUnwindSafe(|| execute_stream(planned.plan, task)))
                .map_err(|panic| caught::internal(panic.as_ref()))?
                .map_err(|e| status(&e))?;
        Ok((
            planned.schema,
            streamed(stream, deadline, self.limits.timeout, permit),
        ))
    }
}

/// A concurrency slot, counted in `lake_flight_active_queries` while held.
struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

impl Slot {
    fn new(permit: OwnedSemaphorePermit) -> Self {
        metrics().flight.active_queries.inc();
        Self(permit)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        metrics().flight.active_queries.dec();
    }
}

fn timed_out(timeout: Duration) -> Status {
    metrics().flight.refused("timeout");
    Status::deadline_exceeded(format!(
        "query ran longer than the {} limit",
        humantime::format_duration(timeout)
    ))
}

/// The result with Utf8View / BinaryView columns cast to Utf8 / Binary: the JDBC driver and
/// older Arrow clients cannot read view types. The server's scans read plain strings, but a
/// query can still make views (`arrow_cast(x, 'Utf8View')`, functions over them).
fn without_views(plan: LogicalPlan) -> datafusion::error::Result<LogicalPlan> {
    if !plan
        .schema()
        .fields()
        .iter()
        .any(|f| plain_type(f.data_type()).is_some())
    {
        return Ok(plan);
    }
    let exprs: Vec<Expr> = plan
        .schema()
        .iter()
        .map(|(qualifier, field)| {
            let column = Expr::Column(Column::new(qualifier.cloned(), field.name()));
            match plain_type(field.data_type()) {
                Some(t) => cast(column, t).alias(field.name()),
                None => column,
            }
        })
        .collect();
    LogicalPlanBuilder::from(plan).project(exprs)?.build()
}

/// The batches of `stream` until `deadline`, holding the concurrency permit until the stream
/// ends or the deadline passes, whichever comes first. The deadline is checked before every
/// batch (a stream whose batches are always ready would never let a timer fire), and the permit
/// is given back at the deadline even if the client stopped reading and nothing polls the
/// stream any more.
fn streamed(
    stream: SendableRecordBatchStream,
    deadline: tokio::time::Instant,
    timeout: Duration,
    permit: Slot,
) -> impl Stream<Item = Result<RecordBatch, Status>> + Send + 'static {
    let slot = Arc::new(std::sync::Mutex::new(Some(permit)));
    let release = {
        let slot = slot.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(deadline).await;
            give_back(&slot);
        })
    };
    let done = move || {
        give_back(&slot);
        release.abort();
    };
    futures::stream::unfold(Some((stream, done)), move |state| async move {
        let (mut stream, done) = state?;
        // A panic while computing a batch (see `caught`) ends the stream with INTERNAL.
        let next = if tokio::time::Instant::now() >= deadline {
            Err(timed_out(timeout))
        } else {
            match tokio::time::timeout_at(deadline, AssertUnwindSafe(stream.next()).catch_unwind())
                .await
            {
                Err(_) => Err(timed_out(timeout)),
                Ok(Err(panic)) => Err(caught::internal(panic.as_ref())),
                Ok(Ok(next)) => Ok(next),
            }
        };
        match next {
            Ok(Some(Ok(batch))) => Some((Ok(batch), Some((stream, done)))),
            Ok(None) => {
                done();
                None
            }
            Ok(Some(Err(e))) => {
                done();
                Some((Err(status(&e)), None))
            }
            Err(stop) => {
                done();
                Some((Err(stop), None))
            }
        }
    })
}

fn give_back(slot: &std::sync::Mutex<Option<Slot>>) {
    if let Ok(mut permit) = slot.lock() {
        permit.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    fn params_handle(bytes: Vec<u8>) -> Handle {
        Handle {
            sql: "SELECT $1".into(),
            params: Some(bytes),
        }
    }

    fn one_row() -> Vec<u8> {
        let batch = RecordBatch::try_from_iter([(
            "a",
            Arc::new(datafusion::arrow::array::Int64Array::from(vec![7]))
                as datafusion::arrow::array::ArrayRef,
        )])
        .unwrap();
        Handle::new("SELECT $1")
            .with_params(&batch)
            .unwrap()
            .params
            .unwrap()
    }

    #[test]
    fn parameters_round_trip_through_a_handle() {
        let values = params_handle(one_row()).param_values().unwrap().unwrap();
        match values {
            ParamValues::List(v) => assert_eq!(v[0].value, ScalarValue::Int64(Some(7))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn forged_parameter_bytes_are_refused_not_allocated_or_panicked_on() {
        let good = one_row();
        assert!(ipc_framing_fits(&good).is_ok());
        // Every 8-byte field set to a petabyte (among them the batch's body length and its
        // buffers' lengths): an answer or INVALID_ARGUMENT, never a panic; the body length is
        // caught by the framing check before arrow-ipc would allocate it.
        let mut framing_refusals = 0;
        for at in 0..good.len() - 8 {
            let mut huge = good.clone();
            huge[at..at + 8].copy_from_slice(&(1i64 << 50).to_le_bytes());
            if ipc_framing_fits(&huge).is_err_and(|e| e.contains("body")) {
                framing_refusals += 1;
            }
            if let Err(e) = params_handle(huge).param_values() {
                assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
            }
        }
        assert!(framing_refusals >= 1, "the body length was among them");
        // Every single-byte corruption and every truncation: an answer, never a panic.
        for i in 0..good.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] ^= flip;
                let _ = params_handle(bad).param_values();
            }
            let _ = params_handle(good[..i].to_vec()).param_values();
        }
        let e = params_handle(vec![0; MAX_PARAM_BYTES + 1])
            .param_values()
            .unwrap_err();
        assert!(e.message().contains("allowed"), "{e}");
    }

    #[test]
    fn a_select_list_is_limited_and_an_in_list_is_not() {
        let columns = |n: usize| (0..n).map(|i| format!("{i} AS c{i}")).collect::<Vec<_>>();
        assert!(check_size(&format!("SELECT {}", columns(MAX_LIST_ITEMS).join(","))).is_ok());
        let e =
            check_size(&format!("SELECT {}", columns(MAX_LIST_ITEMS + 1).join(","))).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("lists 4097 items"), "{e}");
        // Twenty thousand ids in IN lists, one of them inside a function call's parentheses.
        let ids = (0..20_000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!("SELECT a, b FROM t WHERE a IN ({ids}) AND abs(b) IN ({ids})");
        assert!(check_size(&sql).is_ok());
    }

    #[test]
    fn a_chain_of_set_operations_is_limited() {
        let chain = |n: usize| {
            (0..=n)
                .map(|i| format!("SELECT {i} AS x"))
                .collect::<Vec<_>>()
                .join(" UNION ALL ")
        };
        assert!(check_size(&chain(MAX_SET_OPERATIONS)).is_ok());
        let e = check_size(&chain(8000)).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("8000 set operations"), "{e}");
    }

    #[test]
    fn question_marks_become_numbered_placeholders_outside_strings() {
        assert_eq!(
            numbered_placeholders("SELECT '?' AS q, a FROM t WHERE a = ? AND b > ?"),
            "SELECT '?' AS q, a FROM t WHERE a = $1 AND b > $2"
        );
        let plain = "SELECT 1 -- what?\n";
        assert_eq!(numbered_placeholders(plain), plain);
    }

    /// An engine over an empty lake, with `boom(x)`, which panics when called: at run time on a
    /// column (it is volatile, never folded), and while planning as `boom_now(1)`, which the
    /// optimizer folds.
    fn engine() -> (tempfile::TempDir, Engine) {
        use datafusion::execution::FunctionRegistry;
        use datafusion::logical_expr::{create_udf, ColumnarValue, Volatility};
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(dir.path()).unwrap();
        let limits = Limits {
            timeout: Duration::from_secs(60),
            max_concurrent: 4,
        };
        let mut engine = Engine::new(lake, Arc::new(RuntimeEnv::default()), limits);
        for (name, volatility) in [
            ("boom", Volatility::Volatile),
            ("boom_now", Volatility::Immutable),
        ] {
            let panics = Arc::new(|_: &[ColumnarValue]| -> datafusion::error::Result<_> {
                panic!("offset overflow")
            });
            let udf = create_udf(
                name,
                vec![DataType::Int64],
                DataType::Int64,
                volatility,
                panics,
            );
            engine.state.register_udf(Arc::new(udf)).unwrap();
        }
        (dir, engine)
    }

    /// What running `sql` on `engine` answers: its rows, or the first error.
    async fn first(engine: &Engine, sql: &str) -> Result<usize, Status> {
        let (_, stream) = engine.execute(&Handle::new(sql)).await?;
        let mut stream = Box::pin(stream);
        let mut rows = 0;
        while let Some(batch) = stream.next().await {
            rows += batch?.num_rows();
        }
        Ok(rows)
    }

    #[tokio::test]
    async fn a_query_that_panics_is_answered_internal_and_the_engine_goes_on() {
        let (_dir, engine) = engine();
        for e in [
            first(&engine, "SELECT boom(x) FROM generate_series(1, 3) t(x)").await,
            first(&engine, "SELECT boom_now(1)").await,
            engine
                .plan(&Handle::new("SELECT boom_now(2)"))
                .await
                .map(|_| 0),
        ] {
            let e = e.unwrap_err();
            assert_eq!(e.code(), tonic::Code::Internal, "{e}");
            assert!(e.message().ends_with("offset overflow"), "{e}");
        }
        let rows = first(&engine, "SELECT x FROM generate_series(1, 3) t(x)").await;
        assert_eq!(rows.unwrap(), 3);
        assert_eq!(
            engine.running.available_permits(),
            4,
            "every slot given back"
        );
    }

    #[tokio::test]
    async fn a_plan_that_copies_rows_runs_in_smaller_batches() {
        let (_dir, engine) = engine();
        let largest_batch = |sql: &'static str| {
            let engine = &engine;
            async move {
                let (_, stream) = engine.execute(&Handle::new(sql)).await.unwrap();
                let batches: Vec<_> = Box::pin(stream).try_collect().await.unwrap();
                batches.iter().map(|b| b.num_rows()).max().unwrap()
            }
        };
        let plain = "SELECT v FROM generate_series(1, 300000) t(v)";
        assert_eq!(largest_batch(plain).await, BATCH_ROWS);
        // `first_value(s)` copies one value into each row of a batch: 64 KiB times 131,072
        // rows was 8 GiB in one call, which ran on past the deadline.
        let copying =
            joined::copying_batch_rows(bounded::MAX_CALL_BYTES, joined::LARGEST_JOINED, BATCH_ROWS);
        assert_eq!(copying, 4096);
        for sql in [
            "SELECT v, first_value(v) OVER (ORDER BY v) FROM generate_series(1, 300000) t(v)",
            "SELECT a.v FROM (VALUES (1)) b(w) CROSS JOIN generate_series(1, 300000) a(v)",
        ] {
            assert_eq!(largest_batch(sql).await, copying, "{sql}");
        }
    }

    #[tokio::test]
    async fn a_constant_copied_into_every_row_is_refused_before_it_is_allocated() {
        let (_dir, engine) = engine();
        let largest = engine.largest_constant;
        assert_eq!(largest, bounded::MAX_CALL_BYTES / BATCH_ROWS);
        let big = "x".repeat(largest + 1);
        // Each asked the allocator for the constant times 131,072 rows and aborted the
        // process: a literal as written (LargeUtf8 has no 2 GiB offset check to stop it first),
        // and one the optimizer folds from a call.
        let n = largest + 1;
        for sql in [
            format!(
                "SELECT length(s) FROM (SELECT arrow_cast('{big}', 'LargeUtf8') AS s) a, \
                 generate_series(1, 1000000)"
            ),
            format!("SELECT repeat(arrow_cast('x', 'LargeUtf8'), {n}) FROM generate_series(1, 9)"),
        ] {
            let e = first(&engine, &sql).await.unwrap_err();
            assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e}");
            assert!(e.message().contains("copied into each"), "{e}");
        }
        // Compared with, it is never copied: the query runs.
        let sql =
            format!("SELECT x FROM generate_series(1, 3) t(x) WHERE CAST(x AS VARCHAR) <> '{big}'");
        assert_eq!(first(&engine, &sql).await.unwrap(), 3);
    }

    mod fuzz {
        //! Any ticket or handle bytes, any parameter bytes: an answer or INVALID_ARGUMENT.
        use super::*;
        use crate::testing::fuzz_config;
        use proptest::prelude::*;

        /// Parameter bytes: a real one-row IPC stream with bytes changed, cut or spliced, or
        /// arbitrary bytes.
        fn params() -> impl Strategy<Value = Vec<u8>> {
            let good = one_row();
            let n = good.len();
            let mutated = (proptest::collection::vec((0..n, any::<u8>()), 1..6), 0..=n).prop_map(
                move |(edits, cut)| {
                    let mut p = good.clone();
                    for (at, b) in edits {
                        p[at] = b;
                    }
                    p.truncate(cut);
                    p
                },
            );
            prop_oneof![mutated, proptest::collection::vec(any::<u8>(), 0..512)]
        }

        proptest! {
            #![proptest_config(fuzz_config())]
            #[test]
            fn fuzz_parameter_ipc_is_an_answer_or_invalid_argument(bytes in params()) {
                if let Err(e) = params_handle(bytes).param_values() {
                    prop_assert_eq!(e.code(), tonic::Code::InvalidArgument);
                }
            }

            #[test]
            fn fuzz_handle_bytes_are_an_answer_or_invalid_argument(
                bytes in prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..256),
                    ".{0,200}".prop_map(|s| format!("{{\"sql\":\"{s}\",\"params\":[1,2,3]}}").into_bytes()),
                ]
            ) {
                match Handle::decode(&bytes) {
                    Ok(handle) => {
                        let _ = handle.param_values();
                    }
                    Err(e) => prop_assert_eq!(e.code(), tonic::Code::InvalidArgument),
                }
            }
        }
    }
}
