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

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::joins::{
    CrossJoinExec, HashJoinExec, NestedLoopJoinExec, SortMergeJoinExec, SymmetricHashJoinExec,
};
use datafusion::physical_plan::windows::{BoundedWindowAggExec, WindowAggExec};
use datafusion::physical_plan::{
    replace_children_if_necessary, DisplayAs, DisplayFormatType, ExecutionPlan, PhysicalExpr,
    PlanProperties,
};
use futures::{Stream, StreamExt};

use crate::event::DEFAULT_MAX_PAYLOAD_BYTES;
use crate::lake::bounded::human_bytes;

/// The largest value that may meet a join: the largest event payload ingest keeps (a dead
/// letter's bytes), so that every value of the lake's own tables can be joined. Copied into a
/// batch of 131,072 rows that is 8 GiB, which a server can allocate; 100 MB is 13 TB.
pub(crate) const LARGEST_JOINED: usize = DEFAULT_MAX_PAYLOAD_BYTES;

/// Puts a [`Guard`] over each input of every join and window operator in the plan.
#[derive(Debug)]
pub(crate) struct GuardJoins {
    pub(crate) largest: usize,
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
            let guarded = node
                .children()
                .into_iter()
                .map(|child| match child.is::<Guard>() {
                    true => child.clone(),
                    false => Arc::new(Guard::new(child.clone(), self.largest)) as _,
                })
                .collect();
            replace_children_if_necessary(node, guarded).map(Transformed::yes)
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
}

/// Its input's batches, unchanged, until one holds a value larger than `largest` bytes.
#[derive(Debug)]
pub(crate) struct Guard {
    input: Arc<dyn ExecutionPlan>,
    largest: usize,
    properties: Arc<PlanProperties>,
}

impl Guard {
    fn new(input: Arc<dyn ExecutionPlan>, largest: usize) -> Self {
        let properties = input.properties().clone();
        Self {
            input,
            largest,
            properties,
        }
    }
}

impl DisplayAs for Guard {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "Guard: values ≤ {}", human_bytes(self.largest as u128))
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
            (Some(input), true) => Ok(Arc::new(Guard::new(input, self.largest))),
            _ => Err(DataFusionError::Internal("Guard takes one input".into())),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        Ok(Box::pin(Guarded {
            input: self.input.execute(partition, context)?,
            largest: self.largest,
        }))
    }
}

struct Guarded {
    input: SendableRecordBatchStream,
    largest: usize,
}

impl Stream for Guarded {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let largest = self.largest;
        self.input.poll_next_unpin(cx).map(|next| match next {
            Some(Ok(batch)) => Some(check(batch, largest)),
            other => other,
        })
    }
}

impl RecordBatchStream for Guarded {
    fn schema(&self) -> SchemaRef {
        self.input.schema()
    }
}

fn check(batch: RecordBatch, largest: usize) -> Result<RecordBatch> {
    for (column, field) in batch.columns().iter().zip(batch.schema_ref().fields()) {
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

/// The bytes of the largest value of `array`, or 0 when no value can hold more than `limit`
/// (the whole column is no larger). Lists count their elements at the average element size.
fn largest_value(array: &ArrayRef, limit: usize) -> usize {
    if array.get_array_memory_size() <= limit {
        return 0;
    }
    let widest = |windows: &mut dyn Iterator<Item = usize>| windows.max().unwrap_or(0);
    match array.data_type() {
        DataType::Utf8 => widest(&mut array.as_string::<i32>().offsets().lengths()),
        DataType::LargeUtf8 => widest(&mut array.as_string::<i64>().offsets().lengths()),
        DataType::Binary => widest(&mut array.as_binary::<i32>().offsets().lengths()),
        DataType::LargeBinary => widest(&mut array.as_binary::<i64>().offsets().lengths()),
        DataType::Utf8View => widest(&mut array.as_string_view().lengths().map(|n| n as usize)),
        DataType::BinaryView => widest(&mut array.as_binary_view().lengths().map(|n| n as usize)),
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            elements(list.values(), &mut list.offsets().lengths(), limit)
        }
        DataType::LargeList(_) => {
            let list = array.as_list::<i64>();
            elements(list.values(), &mut list.offsets().lengths(), limit)
        }
        DataType::Map(..) => {
            let map = array.as_map();
            let entries: ArrayRef = Arc::new(map.entries().clone());
            elements(&entries, &mut map.offsets().lengths(), limit)
        }
        DataType::Struct(_) => array
            .as_struct()
            .columns()
            .iter()
            .map(|c| largest_value(c, limit))
            .sum(),
        DataType::Dictionary(..) => array
            .as_any_dictionary_opt()
            .map_or(0, |d| largest_value(d.values(), limit)),
        _ => 0,
    }
}

/// The largest list of `counts` elements of `values`, at their average size, or the largest
/// element, whichever is more.
fn elements(values: &ArrayRef, counts: &mut dyn Iterator<Item = usize>, limit: usize) -> usize {
    let each = values.get_array_memory_size() / values.len().max(1);
    let longest = counts.max().unwrap_or(0);
    (longest * each.max(1)).max(largest_value(values, limit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::{SessionConfig, SessionContext};

    const LIMIT: usize = 4096;

    fn session() -> SessionContext {
        let config = SessionConfig::new().with_target_partitions(2);
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(GuardJoins { largest: LIMIT }))
            .build();
        SessionContext::new_with_state(state)
    }

    /// The rows of `sql`, or its error.
    async fn run(sql: &str) -> std::result::Result<usize, String> {
        let ctx = session();
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
        let plan = session()
            .sql(&sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let shown = displayable(plan.as_ref()).indent(false).to_string();
        assert_eq!(shown.matches("Guard: values").count(), 2, "{shown}");
    }

    #[test]
    fn the_largest_value_of_each_kind_of_column() {
        use datafusion::arrow::array::{LargeStringArray, ListArray, StringArray, StringViewArray};
        use datafusion::arrow::datatypes::Int64Type;
        let long = "y".repeat(LIMIT * 2);
        let strings: ArrayRef = Arc::new(StringArray::from(vec!["a", &long, "b"]));
        assert_eq!(largest_value(&strings, LIMIT), LIMIT * 2);
        let large: ArrayRef = Arc::new(LargeStringArray::from(vec![long.as_str()]));
        assert_eq!(largest_value(&large, LIMIT), LIMIT * 2);
        let views: ArrayRef = Arc::new(StringViewArray::from(vec!["a", &long]));
        assert_eq!(largest_value(&views, LIMIT), LIMIT * 2);
        let lists: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
            Some((0..2000).map(Some).collect::<Vec<_>>()),
            Some(vec![Some(1)]),
        ]));
        assert!(largest_value(&lists, LIMIT) >= 2000 * 8);
        let small: ArrayRef = Arc::new(StringArray::from(vec!["a"; 10]));
        assert_eq!(largest_value(&small, LIMIT), 0);
    }
}
