//! The analyzer rule that bounds calls the session's registry never saw: those the planner
//! builds itself (`make_array` for `[a, b]`, `array_concat` for `||` on lists) and `||` on
//! strings. It runs after type coercion, so `||`'s sides already have their common type.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::Result;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator, ScalarUDF};
use datafusion::optimizer::AnalyzerRule;

use super::concat::StringConcat;

/// Bounds every growing call of a plan, its subqueries included, at `cap` bytes.
#[derive(Debug)]
pub(super) struct BoundCalls {
    cap: usize,
}

impl BoundCalls {
    pub(super) fn new(cap: usize) -> Self {
        Self { cap }
    }
}

impl AnalyzerRule for BoundCalls {
    fn name(&self) -> &str {
        "bound_calls"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let plan = plan.transform_up_with_subqueries(|plan| {
            let names = NamePreserver::new(&plan);
            plan.map_expressions(|expr| {
                let name = names.save(&expr);
                Ok(expr
                    .transform_up(|e| bound_call(e, self.cap))?
                    .update_data(|e| name.restore(e)))
            })?
            .map_data(|plan| plan.recompute_schema())
        })?;
        Ok(plan.data)
    }
}

/// `expr` with every growing call in it bounded at `cap` bytes.
pub(super) fn bound_expr(expr: Expr, cap: usize) -> Result<Expr> {
    Ok(expr.transform_up(|e| bound_call(e, cap))?.data)
}

fn bound_call(expr: Expr, cap: usize) -> Result<Transformed<Expr>> {
    Ok(match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::StringConcat,
            right,
        }) => {
            let concat = ScalarUDF::new_from_impl(StringConcat::new());
            let bounded = super::bounded(&concat, cap).unwrap_or(concat);
            Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::new(bounded),
                vec![*left, *right],
            )))
        }
        Expr::ScalarFunction(call) => match super::bounded(&call.func, cap) {
            Some(bounded) => Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::new(bounded),
                call.args,
            ))),
            None => Transformed::no(Expr::ScalarFunction(call)),
        },
        other => Transformed::no(other),
    })
}
