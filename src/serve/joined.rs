//! How large a value may meet a join or a window function in a served query.
//!
//! A join copies a row's values into every output row it matches: one left row of a cross join
//! into each row of a right batch, a build row into each probe row with its key. A window
//! function such as `first_value(s) OVER ()` copies one row's value into every row of its
//! partition. Each copy of a column is one allocation outside DataFusion's memory pool, so a
//! 100 MB value made while the query runs (`repeat(v, 100000000)` over a one-row table, within
//! what one call may produce) joined with a table asks for 100 MB times a batch's rows at once,
//! and a failed allocation aborts the process. [`GuardJoins`], a physical optimizer rule, puts a
//! [`Guard`] over every input of every join and window operator; it ends the query with
//! ResourcesExhausted at the first value larger than [`LARGEST_JOINED`]. Constants are limited
//! earlier and tighter ([`super::constants`]).
//!
//! A value under that limit still fills a batch: 64 KiB broadcast by `first_value(s) OVER (ORDER
//! BY v)` into a batch of 131,072 rows is 8 GiB, built in one call that no deadline interrupts.
//! So the guard also cuts its input into batches of at most [`copying_batch_rows`] rows, and
//! such a plan runs with that batch size for what its operators make, which bounds what one copy
//! of a column may take to what one call may produce. `WindowAggExec` (a window
//! over a whole partition, `OVER ()`) is the exception: it buffers its entire input outside the
//! pool and answers it as one batch, so its guard charges the pool with what that will take.
//!
//! `unnest` copies a row's other values into the row of each element of its list, in one batch
//! however long the list: its guard refuses a list whose length times the row's width would take
//! more than that too.
//!
//! Every join and window operator also gets a yield point above it ([`CooperativeExec`]): a
//! join on a key with few values makes batch after batch from one input batch without its task
//! ever waiting, so neither a deadline nor other queries got a turn.
//! A hash or nested loop join that finds no match makes no batch either; the guard over its probe
//! side paces it instead ([`super::paced`]).

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::joins::{
    CrossJoinExec, HashJoinExec, NestedLoopJoinExec, SortMergeJoinExec, SymmetricHashJoinExec,
};
use datafusion::physical_plan::unnest::UnnestExec;
use datafusion::physical_plan::windows::{BoundedWindowAggExec, WindowAggExec};
use datafusion::physical_plan::{
    replace_children_if_necessary, DisplayAs, DisplayFormatType, ExecutionPlan, PhysicalExpr,
    PlanProperties,
};
use futures::future::BoxFuture;
use futures::{ready, FutureExt, Stream, StreamExt};

use super::paced::{Built, Pace};
use crate::event::DEFAULT_MAX_PAYLOAD_BYTES;
use crate::lake::bounded::{human_bytes, largest_value};

/// The largest value that may meet a join: the largest event payload ingest keeps (a dead
/// letter's bytes), so that every value of the lake's own tables can be joined. Copied into a
/// batch of 131,072 rows that is 8 GiB, which a server can allocate; 100 MB is 13 TB.
pub(crate) const LARGEST_JOINED: usize = DEFAULT_MAX_PAYLOAD_BYTES;

/// The rows of one batch without columns that a guard passes on.
const COUNTED_ROWS: usize = 1 << 30;

/// Rows per batch for a plan that copies rows: one copy of a column of values of at most
/// `largest` bytes then takes at most `cap`, what one call may produce (4,096 rows at the
/// defaults), but never fewer than 1,024 rows nor more than `rows`, the server's batch size.
pub(crate) fn copying_batch_rows(cap: usize, largest: usize, rows: usize) -> usize {
    (cap / largest.max(1)).max(1024).min(rows)
}

/// Whether `plan` has an operator that copies values into rows (see [`copies_rows`]).
pub(crate) fn copies_rows_in(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.exists(|node| Ok(copies_rows(node.as_ref())))
        .unwrap_or(true)
}

/// Puts a [`Guard`] over each input of every join, window and unnest operator in the plan.
#[derive(Debug)]
pub(crate) struct GuardJoins {
    pub(crate) largest: usize,
    /// The most rows of a batch an operator that copies rows is given.
    pub(crate) rows: usize,
}

impl PhysicalOptimizerRule for GuardJoins {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if !copies_rows(node.as_ref()) {
                return Ok(Transformed::no(node));
            }
            let held = node.downcast_ref::<WindowAggExec>().map(Widths::of);
            let unnested: Arc<[usize]> = match node.downcast_ref::<UnnestExec>() {
                Some(unnest) => unnest
                    .list_column_indices()
                    .iter()
                    .map(|list| list.index_in_input_schema)
                    .collect(),
                None => Arc::new([]),
            };
            let built: Built = Arc::new(AtomicUsize::new(0));
            // Both build their left input and probe it with their right one.
            let probed = node.is::<NestedLoopJoinExec>() || node.is::<HashJoinExec>();
            let guarded = node
                .children()
                .into_iter()
                .enumerate()
                .map(|(i, child)| match child.is::<Guard>() {
                    true => child.clone(),
                    false => Arc::new(Guard {
                        input: child.clone(),
                        largest: self.largest,
                        rows: self.rows,
                        held,
                        unnested: unnested.clone(),
                        side: match (probed, i) {
                            (false, _) => Side::Other,
                            (true, 0) => Side::Build(built.clone()),
                            (true, _) => Side::Probe(built.clone()),
                        },
                        properties: child.properties().clone(),
                    }) as _,
                })
                .collect();
            // A join can make many batches from one input batch without its task ever waiting
            // (a join on a key with one value); a yield point after it lets a query past its
            // deadline be stopped, and other queries run meanwhile.
            let node = replace_children_if_necessary(node, guarded)?;
            Ok(Transformed::yes(Arc::new(CooperativeExec::new(node)) as _))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "guard_joins"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

fn copies_rows(plan: &dyn ExecutionPlan) -> bool {
    plan.is::<HashJoinExec>()
        || plan.is::<CrossJoinExec>()
        || plan.is::<NestedLoopJoinExec>()
        || plan.is::<SortMergeJoinExec>()
        || plan.is::<SymmetricHashJoinExec>()
        || plan.is::<BoundedWindowAggExec>()
        || plan.is::<WindowAggExec>()
        || plan.is::<UnnestExec>()
}

/// The bytes per row of a `WindowAggExec`'s results: `fixed` for those of a fixed width, and
/// `variable` results (strings, lists) each as wide as the widest value of its input.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Widths {
    fixed: usize,
    variable: usize,
}

impl Widths {
    fn of(window: &WindowAggExec) -> Self {
        let mut widths = Widths {
            fixed: 0,
            variable: 0,
        };
        for expr in window.window_expr() {
            match expr
                .field()
                .ok()
                .and_then(|f| f.data_type().primitive_width())
            {
                Some(width) => widths.fixed += width,
                None => widths.variable += 1,
            }
        }
        widths
    }
}

/// Which input of a hash or nested loop join a guard is over.
#[derive(Debug, Clone)]
enum Side {
    Other,
    /// The build side, whose rows are counted.
    Build(Built),
    /// The probe side, paced ([`Pace`]).
    Probe(Built),
}

/// What a running guard does for the join above it (see [`Side`]).
enum Role {
    Other,
    /// Counts the build rows.
    Build(Built),
    /// Paces the probe batches.
    Probe(Pace),
}

/// Its input's batches, cut to at most `rows` rows each, until one holds a value larger than
/// `largest` bytes; over the input of a `WindowAggExec`, also until the pool cannot hold what
/// that will take; over the input of an `UnnestExec`, also until a row's list and the values
/// copied into each of its elements' rows would take more than `rows` times `largest`.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    input: Arc<dyn ExecutionPlan>,
    largest: usize,
    rows: usize,
    held: Option<Widths>,
    /// The list columns an `UnnestExec` above unnests (their values are not copied).
    unnested: Arc<[usize]>,
    side: Side,
    properties: Arc<PlanProperties>,
}

impl DisplayAs for Guard {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let largest = human_bytes(self.largest as u128);
        write!(f, "Guard: values ≤ {largest}, batches ≤ {} rows", self.rows)?;
        if self.held.is_some() {
            write!(f, ", held in the pool")?;
        }
        match self.side {
            Side::Other => Ok(()),
            Side::Build(_) => write!(f, ", build rows counted"),
            Side::Probe(_) => write!(f, ", probe paced"),
        }
    }
}

impl ExecutionPlan for Guard {
    fn name(&self) -> &str {
        "Guard"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    #[allow(deprecated)]
    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(Guard {
                properties: input.properties().clone(),
                input,
                ..self.as_ref().clone()
            })),
            _ => Err(DataFusionError::Internal("Guard takes one input".into())),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let held = self.held.map(|widths| Held {
            reservation: MemoryConsumer::new("window input (WindowAggExec)")
                .register(context.memory_pool()),
            widths,
            bytes: 0,
            rows: 0,
            widest: 0,
        });
        Ok(Box::pin(Guarded {
            input: self.input.execute(partition, context)?,
            largest: self.largest,
            rows: self.rows.max(1),
            held,
            unnested: self.unnested.clone(),
            role: match &self.side {
                Side::Other => Role::Other,
                Side::Build(built) => Role::Build(built.clone()),
                Side::Probe(built) => Role::Probe(Pace::new(built.clone())),
            },
            pause: None,
            cutting: None,
            counted: 0,
            ended: false,
        }))
    }
}

struct Guarded {
    input: SendableRecordBatchStream,
    largest: usize,
    rows: usize,
    held: Option<Held>,
    unnested: Arc<[usize]>,
    role: Role,
    /// A yield to the runtime under way (tokio's, which lets its timers and I/O run first).
    pause: Option<BoxFuture<'static, ()>>,
    /// A checked batch larger than `rows`, and how many of its rows were passed on.
    cutting: Option<(RecordBatch, usize)>,
    /// Rows of batches without columns not passed on yet (see [`Guarded::tally`]).
    counted: usize,
    /// Whether the input has ended.
    ended: bool,
}

impl Guarded {
    /// The most rows a batch passed on may have.
    fn limit(&self) -> usize {
        match &self.role {
            Role::Probe(pace) => pace.rows(self.rows),
            _ => self.rows,
        }
    }

    /// The next at most `limit` rows of the batch being cut.
    fn cut(&mut self) -> Option<RecordBatch> {
        let limit = self.limit();
        let (batch, from) = self.cutting.as_mut()?;
        let len = (batch.num_rows() - *from).min(limit);
        let piece = batch.slice(*from, len);
        *from += len;
        if *from >= batch.num_rows() {
            self.cutting = None;
        }
        Some(piece)
    }

    /// Batches without columns (`count(*)` over a join) are passed on as one per
    /// [`COUNTED_ROWS`] rows: the memory pool counts such a batch as nothing, and a join that
    /// keeps its input kept millions of them (5.8 GB for `count(*)` over six cross joins).
    fn tally(&mut self, batch: &RecordBatch) -> Option<Result<RecordBatch>> {
        self.counted += batch.num_rows();
        (self.counted >= COUNTED_ROWS).then(|| self.counted_batch())
    }

    fn counted_batch(&mut self) -> Result<RecordBatch> {
        let rows = std::mem::take(&mut self.counted);
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            self.input.schema(),
            Vec::new(),
            &options,
        )?)
    }

    fn admit(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let batch = check(batch, self.largest, &self.unnested)?;
        if !self.unnested.is_empty() {
            check_unnest(
                &batch,
                &self.unnested,
                self.rows.saturating_mul(self.largest),
            )?;
        }
        if let Some(held) = &mut self.held {
            held.add(&batch)?;
        }
        if batch.num_rows() <= self.limit() {
            return Ok(batch);
        }
        self.cutting = Some((batch, 0));
        self.cut()
            .ok_or_else(|| DataFusionError::Internal("a batch to cut is empty".into()))
    }
}

impl Stream for Guarded {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let most = self.rows;
        if let Role::Probe(pace) = &mut self.role {
            if pace.asked(most) {
                self.pause = Some(tokio::task::yield_now().boxed());
            }
        }
        if let Some(pause) = self.pause.as_mut() {
            ready!(pause.poll_unpin(cx));
            self.pause = None;
        }
        let next = ready!(self.next_batch(cx));
        if let Some(Ok(batch)) = &next {
            match &mut self.role {
                Role::Other => {}
                Role::Build(built) => {
                    built.fetch_add(batch.num_rows(), Ordering::Relaxed);
                }
                Role::Probe(pace) => pace.passed(),
            }
        }
        Poll::Ready(next)
    }
}

impl Guarded {
    fn next_batch(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<RecordBatch>>> {
        if let Some(piece) = self.cut() {
            return Poll::Ready(Some(Ok(piece)));
        }
        // The input is not polled again once it has ended (rows held back may still follow it).
        while !self.ended {
            match ready!(self.input.poll_next_unpin(cx)) {
                Some(Ok(batch)) if batch.num_columns() == 0 => {
                    if let Some(counted) = self.tally(&batch) {
                        return Poll::Ready(Some(counted));
                    }
                }
                Some(Ok(batch)) => return Poll::Ready(Some(self.admit(batch))),
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    self.ended = true;
                    if self.counted > 0 {
                        return Poll::Ready(Some(self.counted_batch()));
                    }
                }
            }
        }
        Poll::Ready(None)
    }
}

/// What a `WindowAggExec` will take for the input seen so far, reserved in the pool while it
/// runs: the batches it keeps, their concatenation, and its results, computed per partition and
/// concatenated again.
struct Held {
    reservation: MemoryReservation,
    widths: Widths,
    bytes: usize,
    rows: usize,
    widest: usize,
}

impl Held {
    fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        self.bytes += batch.get_array_memory_size();
        self.rows += batch.num_rows();
        let widest = batch.columns().iter().map(|c| largest_value(c, 0));
        self.widest = self.widest.max(widest.max().unwrap_or(0));
        let row = self.widths.fixed + self.widths.variable * self.widest;
        let results = self.rows.saturating_mul(row);
        self.reservation
            .try_resize(self.bytes.saturating_add(results).saturating_mul(2))
    }
}

impl RecordBatchStream for Guarded {
    fn schema(&self) -> SchemaRef {
        self.input.schema()
    }
}

/// `batch`, unless a value of a column other than `unnested` is larger than `largest`.
fn check(batch: RecordBatch, largest: usize, unnested: &[usize]) -> Result<RecordBatch> {
    let columns = batch.columns().iter().zip(batch.schema_ref().fields());
    for (_, (column, field)) in columns.enumerate().filter(|(i, _)| !unnested.contains(i)) {
        let bytes = largest_value(column, largest);
        if bytes > largest {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "a value of {} in column {} meets a join or a window function, which may copy it \
                 into each row of a batch; such a value may hold at most {}",
                human_bytes(bytes as u128),
                field.name(),
                human_bytes(largest as u128),
            )));
        }
    }
    Ok(batch)
}

/// Refuses an unnest whose longest list, times the widest row of the other columns (each copied
/// into every element's row, in one batch however long the list), exceeds `cap`: one row with a
/// list of 3 million numbers and a 60 KB string asked for 180 GB and aborted the process.
fn check_unnest(batch: &RecordBatch, unnested: &[usize], cap: usize) -> Result<()> {
    let mut longest = 0;
    let mut row = 0;
    for (i, column) in batch.columns().iter().enumerate() {
        match unnested.contains(&i) {
            true => longest = longest.max(longest_list(column)),
            false => {
                let width = column.data_type().primitive_width().unwrap_or(0);
                row += largest_value(column, 0).max(width);
            }
        }
    }
    let copies = longest.saturating_mul(row);
    if copies <= cap {
        return Ok(());
    }
    Err(DataFusionError::ResourcesExhausted(format!(
        "unnest would copy a row of {} into each of {longest} rows ({}), more than the {} one \
         call may produce",
        human_bytes(row as u128),
        human_bytes(copies as u128),
        human_bytes(cap as u128),
    )))
}

/// The most elements one list of `array` holds (0 when it is not a list).
fn longest_list(array: &ArrayRef) -> usize {
    match array.data_type() {
        DataType::List(_) => array.as_list::<i32>().offsets().lengths().max(),
        DataType::LargeList(_) => array.as_list::<i64>().offsets().lengths().max(),
        DataType::FixedSizeList(_, n) => Some(*n as usize),
        _ => None,
    }
    .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::{SessionConfig, SessionContext};
    use futures::TryStreamExt;

    const LIMIT: usize = 4096;

    fn session() -> SessionContext {
        let config = SessionConfig::new().with_target_partitions(2);
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(GuardJoins {
                largest: LIMIT,
                rows: 1024,
            }))
            .build();
        SessionContext::new_with_state(state)
    }

    /// The physical plan of `sql` in `ctx`, as EXPLAIN shows it.
    async fn shown(ctx: &SessionContext, sql: &str) -> String {
        let df = ctx.sql(sql).await.unwrap();
        let plan = df.create_physical_plan().await.unwrap();
        let shown = displayable(plan.as_ref()).indent(false).to_string();
        shown
    }

    /// The rows of `sql`, or its error.
    async fn run(sql: &str) -> std::result::Result<usize, String> {
        run_in(&session(), sql).await
    }

    async fn run_in(ctx: &SessionContext, sql: &str) -> std::result::Result<usize, String> {
        let df = ctx.sql(sql).await.map_err(|e| e.to_string())?;
        let batches = df.collect().await.map_err(|e| e.to_string())?;
        Ok(batches.iter().map(|b| b.num_rows()).sum())
    }

    #[tokio::test]
    async fn a_large_value_made_at_run_time_is_refused_where_it_meets_a_join() {
        let n = LIMIT + 1;
        // The value is made by a call on a one-row table, so no constant holds it.
        let big = format!("SELECT repeat(v, {n}) AS big, 1 AS k FROM (VALUES ('x')) t(v)");
        for sql in [
            format!("SELECT length(b.big) FROM generate_series(1, 10) g, ({big}) b"),
            format!("SELECT length(b.big) FROM generate_series(1, 10) g JOIN ({big}) b ON g.value % 1 + 1 = b.k"),
            format!("SELECT length(b.big) FROM generate_series(1, 10) g JOIN ({big}) b ON g.value > b.k"),
            format!("SELECT length(b.big) FROM generate_series(1, 10) g, (SELECT make_array(big, big) AS big FROM ({big})) b"),
        ] {
            let e = run(&sql).await.unwrap_err();
            assert!(e.contains("meets a join or a window function"), "{e}");
        }
    }

    #[tokio::test]
    async fn a_large_value_is_refused_where_it_meets_a_window_function() {
        let n = LIMIT + 1;
        let sql = format!(
            "SELECT length(first_value(s) OVER ()) FROM \
             (SELECT CASE WHEN g.value = 1 THEN repeat(v, {n}) ELSE v END AS s \
              FROM (VALUES ('x')) t(v), generate_series(1, 10) g)"
        );
        let e = run(&sql).await.unwrap_err();
        assert!(e.contains("meets a join or a window function"), "{e}");
    }

    #[tokio::test]
    async fn small_values_join_as_before() {
        let small = "SELECT repeat(v, 100) AS s, 1 AS k FROM (VALUES ('x')) t(v)";
        let sql = format!("SELECT length(b.s) FROM generate_series(1, 10) g JOIN ({small}) b ON g.value % 1 + 1 = b.k");
        assert_eq!(run(&sql).await, Ok(10));
        let shown = shown(&session(), &sql).await;
        assert_eq!(shown.matches("Guard: values").count(), 2, "{shown}");
    }

    #[test]
    fn plans_that_copy_rows_run_in_batches_a_call_could_fill() {
        let rows = 128 * 1024;
        assert_eq!(copying_batch_rows(256 << 20, LARGEST_JOINED, rows), 4096);
        assert_eq!(copying_batch_rows(64 << 20, LARGEST_JOINED, rows), 1024);
        assert_eq!(copying_batch_rows(16 << 20, LARGEST_JOINED, rows), 1024);
        assert_eq!(copying_batch_rows(usize::MAX, 1, rows), rows);
    }

    /// `session()` with a memory pool of `limit` bytes.
    fn limited(limit: usize) -> SessionContext {
        use datafusion::execution::runtime_env::RuntimeEnvBuilder;
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(limit, 1.0)
            .build_arc()
            .unwrap();
        SessionContext::new_with_state(
            SessionStateBuilder::new_from_existing(session().state())
                .with_runtime_env(runtime)
                .build(),
        )
    }

    #[tokio::test]
    async fn a_window_over_a_whole_partition_is_charged_to_the_pool() {
        let ctx = limited(32 << 20);
        let count =
            |n: usize| format!("SELECT value, count(*) OVER () FROM generate_series(1, {n})");
        assert_eq!(run_in(&ctx, &count(100_000)).await, Ok(100_000));
        // Two million rows kept and concatenated, counted and the counts concatenated: 64 MB.
        let e = run_in(&ctx, &count(2_000_000)).await.unwrap_err();
        assert!(e.contains("window input (WindowAggExec)"), "{e}");
        // Values under the join limit, but one of them copied into each of 20,000 rows.
        let wide = format!(
            "SELECT length(first_value(s) OVER ()) FROM \
             (SELECT CASE WHEN g.value = 7 THEN repeat(v, {}) ELSE v END AS s \
              FROM (VALUES ('x')) t(v), generate_series(1, 20000) g)",
            LIMIT - 10
        );
        let e = run_in(&ctx, &wide).await.unwrap_err();
        assert!(e.contains("window input (WindowAggExec)"), "{e}");
        let shown = shown(&ctx, &count(10)).await;
        assert!(shown.contains("held in the pool"), "{shown}");
    }

    /// A guard of `rows` on `side` over `batches`, executed.
    fn guard(batches: Vec<RecordBatch>, rows: usize, side: Side) -> SendableRecordBatchStream {
        use datafusion::datasource::memory::MemorySourceConfig;
        let schema = batches[0].schema();
        let input = MemorySourceConfig::try_new_exec(&[batches], schema, None).unwrap();
        let guard = Guard {
            properties: input.properties().clone(),
            input,
            largest: LIMIT,
            rows,
            held: None,
            unnested: Arc::new([]),
            side,
        };
        guard.execute(0, Arc::new(TaskContext::default())).unwrap()
    }

    /// The row counts of the batches a guard of `rows` passes on from `batches`.
    async fn guarded(batches: Vec<RecordBatch>, rows: usize) -> Vec<usize> {
        let stream = guard(batches, rows, Side::Other);
        let out: Vec<RecordBatch> = stream.try_collect().await.unwrap();
        out.iter().map(|b| b.num_rows()).collect()
    }

    fn numbers(n: i64) -> RecordBatch {
        use datafusion::arrow::array::Int64Array;
        use datafusion::arrow::datatypes::{Field, Schema};
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let values: ArrayRef = Arc::new(Int64Array::from_iter_values(0..n));
        RecordBatch::try_new(schema, vec![values]).unwrap()
    }

    #[tokio::test]
    async fn a_probe_side_is_cut_by_the_rows_its_build_side_counted() {
        let built: Built = Arc::new(AtomicUsize::new(0));
        let build = guard(vec![numbers(1 << 20)], 1024, Side::Build(built.clone()));
        let _: Vec<RecordBatch> = build.try_collect().await.unwrap();
        assert_eq!(built.load(Ordering::Relaxed), 1 << 20);
        // 2^21 comparisons against 2^20 build rows: 2 probe rows at first, then more while the
        // join (here nothing) takes no time over them.
        let probe = guard(vec![numbers(100)], 1024, Side::Probe(built));
        let out: Vec<RecordBatch> = probe.try_collect().await.unwrap();
        let rows: Vec<usize> = out.iter().map(|b| b.num_rows()).collect();
        assert_eq!(rows, [2, 4, 8, 16, 32, 38]);
    }

    #[tokio::test]
    async fn paced_joins_answer_as_before() {
        use datafusion::arrow::datatypes::Int64Type;
        let count = |sql: &'static str| async move {
            let shown = shown(&session(), sql).await;
            assert!(shown.contains("build rows counted"), "{shown}");
            assert!(shown.contains("probe paced"), "{shown}");
            let batches = session().sql(sql).await.unwrap().collect().await.unwrap();
            batches[0].column(0).as_primitive::<Int64Type>().value(0)
        };
        // 9,000 build rows start the probe side at 233 rows, fewer than the guard's 1,024. For
        // each a, the b above a + 1000: 19000 - a of them.
        let nested = "SELECT count(*) FROM generate_series(1, 9000) a \
                      JOIN generate_series(1, 20000) b ON b.value > a.value + 1000";
        assert_eq!(
            count(nested).await,
            (1..=9000).map(|a| 19000 - a).sum::<i64>()
        );
        // A hash join on a key of one value with a filter: the same pairs.
        let hashed = "SELECT count(*) FROM (SELECT value, 1 AS k FROM generate_series(1, 9000)) a \
                      JOIN (SELECT value, 1 AS k FROM generate_series(1, 20000)) b \
                      ON a.k = b.k AND b.value > a.value + 1000";
        assert_eq!(
            count(hashed).await,
            (1..=9000).map(|a| 19000 - a).sum::<i64>()
        );
    }

    #[tokio::test]
    async fn a_guard_cuts_batches_and_passes_batches_without_columns_as_one() {
        assert_eq!(guarded(vec![numbers(2500)], 1000).await, [1000, 1000, 500]);
        // A thousand batches of no columns (what a join under `count(*)` passes on) come out as
        // one, which the pool cannot miscount a million times over.
        let options = RecordBatchOptions::new().with_row_count(Some(10));
        let empty = Arc::new(datafusion::arrow::datatypes::Schema::empty());
        let none = RecordBatch::try_new_with_options(empty, vec![], &options).unwrap();
        assert_eq!(guarded(vec![none; 1000], 1000).await, [10_000]);
    }

    #[tokio::test]
    async fn an_unnest_that_would_copy_a_wide_row_into_a_long_list_is_refused() {
        // Made from a one-row table, so neither is a constant: 2,000 elements each given a
        // copy of a 4,000-byte value, 8 MB, more than 1,024 rows of 4 KiB values.
        let row = |n: usize| {
            format!(
                "SELECT max(length(s)) FROM (SELECT s, unnest(range(n)) AS u FROM \
                 (SELECT repeat(v, 4000) AS s, n FROM (VALUES ('x', {n})) t(v, n)))"
            )
        };
        let e = run(&row(2000)).await.unwrap_err();
        assert!(e.contains("unnest would copy a row of"), "{e}");
        assert_eq!(run(&row(500)).await, Ok(1));
        // The list itself may be long: it is not copied.
        let sql = "SELECT count(*) FROM (SELECT unnest(range(n)) FROM (VALUES (200000)) t(n))";
        assert_eq!(run(sql).await, Ok(1));
    }

    #[tokio::test]
    async fn joins_and_windows_get_a_yield_point_above_them() {
        let sql = "SELECT a.value FROM generate_series(1, 3) a JOIN generate_series(1, 3) b \
                   ON a.value = b.value";
        let shown = shown(&session(), sql).await;
        let join = shown.find("HashJoinExec").expect("a hash join");
        let above = &shown[..join];
        assert!(above.trim_end().ends_with("CooperativeExec"), "{shown}");
    }
}
