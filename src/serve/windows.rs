//! Which aggregates a served query may use as window functions.
//!
//! `array_agg` and `string_agg` make one value of everything in their frame, and a window
//! function gives each row its frame's value: over a whole partition (`OVER ()`) every row gets
//! a copy of the partition's aggregate, and over a running frame (`ORDER BY` with no bound) row
//! n gets n values, which is quadratic. Either asks the allocator for more than any machine has
//! (outside DataFusion's memory pool, so the process aborts) from a table of a few hundred
//! thousand rows. So a served query may use them as window functions only over a frame of at
//! most [`MAX_FRAME_ROWS`] rows (`ROWS BETWEEN n PRECEDING AND m FOLLOWING`); with `GROUP BY`
//! they are ordinary aggregates and the memory pool counts them.

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::expr::{WindowFunction, WindowFunctionDefinition};
use datafusion::logical_expr::{LogicalPlan, WindowFrame, WindowFrameBound, WindowFrameUnits};
use datafusion::prelude::Expr;

/// The widest frame, in rows, that `array_agg` and `string_agg` may gather as window functions.
pub(crate) const MAX_FRAME_ROWS: u64 = 1_000;

/// Aggregates whose value grows with every row they gather.
const GROWING: &[&str] = &["array_agg", "string_agg"];

/// Plan error when `plan` uses a growing aggregate as a window function over a frame wider
/// than [`MAX_FRAME_ROWS`].
pub(crate) fn check(plan: &LogicalPlan) -> Result<(), DataFusionError> {
    let mut refused: Option<String> = None;
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|root| {
            root.apply(|e| {
                if let Expr::WindowFunction(w) = e {
                    let WindowFunction { fun, params } = w.as_ref();
                    if let WindowFunctionDefinition::AggregateUDF(udf) = fun {
                        if GROWING.contains(&udf.name()) && !narrow(&params.window_frame) {
                            refused = Some(udf.name().to_string());
                            return Ok(TreeNodeRecursion::Stop);
                        }
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    match refused {
        None => Ok(()),
        Some(name) => Err(DataFusionError::Plan(format!(
            "{name} as a window function is served only over a frame of at most \
             {MAX_FRAME_ROWS} rows (ROWS BETWEEN n PRECEDING AND m FOLLOWING): over a whole \
             partition or a running frame it copies what it gathered into every row; use it \
             with GROUP BY and join the result back instead"
        ))),
    }
}

/// Whether `frame` counts rows and spans at most [`MAX_FRAME_ROWS`] of them.
fn narrow(frame: &WindowFrame) -> bool {
    let rows = |v: &ScalarValue| match v {
        ScalarValue::UInt64(Some(n)) => Some(*n),
        other => other
            .cast_to(&datafusion::arrow::datatypes::DataType::UInt64)
            .ok()
            .and_then(|v| match v {
                ScalarValue::UInt64(n) => n,
                _ => None,
            }),
    };
    let offset = |bound: &WindowFrameBound| -> Option<i128> {
        match bound {
            WindowFrameBound::CurrentRow => Some(0),
            WindowFrameBound::Preceding(v) => rows(v).map(|n| -(n as i128)),
            WindowFrameBound::Following(v) => rows(v).map(i128::from),
        }
    };
    if frame.units != WindowFrameUnits::Rows {
        return false;
    }
    match (offset(&frame.start_bound), offset(&frame.end_bound)) {
        (Some(start), Some(end)) => end - start < i128::from(MAX_FRAME_ROWS),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn verdict(sql: &str) -> Result<(), String> {
        let ctx = SessionContext::new();
        let plan = ctx.state().create_logical_plan(sql).await.unwrap();
        check(&plan).map_err(|e| e.to_string())
    }

    const T: &str = "(VALUES (1, 'a'), (2, 'b')) t(k, s)";

    #[tokio::test]
    async fn growing_aggregates_over_wide_frames_are_refused() {
        for over in [
            "OVER ()",
            "OVER (PARTITION BY k)",
            "OVER (ORDER BY k)",
            "OVER (ORDER BY k ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)",
            "OVER (ORDER BY k ROWS BETWEEN 5000 PRECEDING AND CURRENT ROW)",
            "OVER (ORDER BY k RANGE BETWEEN 1 PRECEDING AND CURRENT ROW)",
        ] {
            for f in ["array_agg(k)", "string_agg(s, ',')"] {
                let sql = format!("SELECT {f} {over} FROM {T}");
                let e = verdict(&sql).await.unwrap_err();
                assert!(
                    e.contains("as a window function is served only"),
                    "{sql}: {e}"
                );
            }
        }
        // Inside a subquery too.
        let sql = format!(
            "SELECT 1 WHERE 3 > (SELECT count(a) FROM (SELECT array_agg(k) OVER () a FROM {T}))"
        );
        assert!(verdict(&sql).await.is_err());
    }

    #[tokio::test]
    async fn narrow_frames_other_window_functions_and_group_by_are_served() {
        for sql in [
            format!("SELECT array_agg(k) OVER (ORDER BY k ROWS BETWEEN 2 PRECEDING AND 3 FOLLOWING) FROM {T}"),
            format!("SELECT string_agg(s, ',') OVER (ORDER BY k ROWS BETWEEN 999 PRECEDING AND CURRENT ROW) FROM {T}"),
            format!("SELECT count(*) OVER (), sum(k) OVER (ORDER BY k), first_value(s) OVER () FROM {T}"),
            format!("SELECT k, array_agg(s), string_agg(s, ',') FROM {T} GROUP BY k"),
        ] {
            assert_eq!(verdict(&sql).await, Ok(()), "{sql}");
        }
    }
}
