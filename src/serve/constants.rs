//! How large a constant a served query may hold.
//!
//! A constant that becomes a row value (a selected literal, a `CASE` branch, a bound parameter
//! that is selected, a folded `repeat('x', n)`) is copied into every row of a batch when it is
//! evaluated or meets a join, and that copy is one allocation outside DataFusion's memory pool.
//! A 1 MiB string selected beside a table asks the allocator for 1 MiB times the batch's rows
//! at once (128 GiB), and a failed allocation aborts the process. So such a constant may hold
//! at most what one call may produce ([`crate::lake::bounded::call_cap`]) divided by the rows of a batch.
//! Constants a query only compares with (`=`, `<`, `LIKE`, `IN`, `BETWEEN`) are never copied
//! per row and may be as large as the statement.
//!
//! Checked on the plan as written (with its parameters bound) and again once the optimizer has
//! folded constant calls into literals.

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::expr::{Between, InList, Like};
use datafusion::logical_expr::{BinaryExpr, LogicalPlan, Operator};
use datafusion::prelude::Expr;

use crate::lake::bounded::human_bytes;

/// The largest constant a plan may copy into rows: `cap` bytes over `batch_rows` rows.
pub(crate) fn largest(cap: usize, batch_rows: usize) -> usize {
    cap / batch_rows.max(1)
}

/// ResourcesExhausted when a constant in `plan` that can become a row value holds more than
/// `largest` bytes. Walks without recursion, as the expression depth check does.
pub(crate) fn check(
    plan: &LogicalPlan,
    largest: usize,
    batch_rows: usize,
) -> Result<(), DataFusionError> {
    let mut found: Option<usize> = None;
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|root| {
            let mut pending = vec![root];
            while let Some(e) = pending.pop() {
                if let Expr::Literal(value, _) = e {
                    let bytes = value.size();
                    if bytes > largest {
                        found = Some(bytes);
                        return Ok(TreeNodeRecursion::Stop);
                    }
                    continue;
                }
                let compared = compared_with(e);
                e.apply_children(|child| {
                    let only_compared = matches!(child, Expr::Literal(..))
                        && compared.iter().any(|c| std::ptr::eq(*c, child));
                    if !only_compared {
                        pending.push(child);
                    }
                    Ok(TreeNodeRecursion::Continue)
                })?;
            }
            Ok(TreeNodeRecursion::Continue)
        })
    })?;
    match found {
        None => Ok(()),
        Some(bytes) => Err(DataFusionError::ResourcesExhausted(format!(
            "a constant of {} would be copied into each of up to {batch_rows} rows of a batch; \
             a constant that is selected or joined may hold at most {} (compare with larger \
             ones instead, or select them from a table)",
            human_bytes(bytes as u128),
            human_bytes(largest as u128),
        ))),
    }
}

/// The operands of `e` that it only compares with, never copies into its result.
fn compared_with(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) if compares(op) => {
            vec![left.as_ref(), right.as_ref()]
        }
        Expr::Like(Like { expr, pattern, .. }) | Expr::SimilarTo(Like { expr, pattern, .. }) => {
            vec![expr.as_ref(), pattern.as_ref()]
        }
        Expr::InList(InList { expr, list, .. }) => {
            std::iter::once(expr.as_ref()).chain(list.iter()).collect()
        }
        Expr::Between(Between {
            expr, low, high, ..
        }) => vec![expr.as_ref(), low.as_ref(), high.as_ref()],
        _ => Vec::new(),
    }
}

/// Whether `op` yields a boolean from its operands without copying them.
fn compares(op: &Operator) -> bool {
    use Operator::*;
    matches!(
        op,
        Eq | NotEq
            | Lt
            | LtEq
            | Gt
            | GtEq
            | IsDistinctFrom
            | IsNotDistinctFrom
            | RegexMatch
            | RegexIMatch
            | RegexNotMatch
            | RegexNotIMatch
            | LikeMatch
            | ILikeMatch
            | NotLikeMatch
            | NotILikeMatch
            | AtArrow
            | ArrowAt
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    const ROWS: usize = 1024;
    const LARGEST: usize = 4096;

    /// The check's verdict on `sql` as planned, and once optimized.
    async fn verdicts(sql: &str) -> (Result<(), String>, Result<(), String>) {
        let ctx = SessionContext::new();
        let plan = ctx.state().create_logical_plan(sql).await.unwrap();
        let written = check(&plan, LARGEST, ROWS).map_err(|e| e.to_string());
        let optimized = ctx.state().optimize(&plan).unwrap();
        let folded = check(&optimized, LARGEST, ROWS).map_err(|e| e.to_string());
        (written, folded)
    }

    fn big() -> String {
        "x".repeat(LARGEST + 1)
    }

    #[tokio::test]
    async fn a_large_selected_or_joined_constant_is_refused() {
        let b = big();
        for sql in [
            format!("SELECT '{b}' FROM (VALUES (1)) t(x)"),
            format!("SELECT CASE WHEN x = 1 THEN '{b}' END FROM (VALUES (1)) t(x)"),
            format!("SELECT y FROM (VALUES (1)) t(x), (SELECT '{b}' AS y) u"),
            format!("SELECT x FROM (VALUES (1)) t(x) WHERE concat(x, '{b}') = 'a'"),
        ] {
            let (written, _) = verdicts(&sql).await;
            let e = written.unwrap_err();
            assert!(e.contains("may hold at most 4.0 KiB"), "{e}");
        }
    }

    #[tokio::test]
    async fn a_constant_folded_large_is_refused_once_optimized() {
        let n = LARGEST + 1;
        let (written, folded) = verdicts(&format!("SELECT repeat('x', {n})")).await;
        assert!(written.is_ok(), "small as written");
        assert!(folded.unwrap_err().contains("copied into each"));
    }

    #[tokio::test]
    async fn large_constants_only_compared_with_are_allowed() {
        let b = big();
        for sql in [
            format!("SELECT x FROM (VALUES ('a')) t(x) WHERE x = '{b}' OR x < '{b}'"),
            format!("SELECT x FROM (VALUES ('a')) t(x) WHERE x LIKE '{b}%'"),
            format!("SELECT x FROM (VALUES ('a')) t(x) WHERE x IN ('{b}', 'b')"),
            format!("SELECT x FROM (VALUES ('a')) t(x) WHERE x BETWEEN 'a' AND '{b}'"),
            format!("SELECT x = '{b}' FROM (VALUES ('a')) t(x)"),
        ] {
            let (written, folded) = verdicts(&sql).await;
            assert_eq!(written, Ok(()), "{}", &sql[..40]);
            assert_eq!(folded, Ok(()), "{}", &sql[..40]);
        }
    }

    #[tokio::test]
    async fn a_constant_inside_a_subquery_is_checked() {
        let b = big();
        let sql = format!("SELECT x FROM (VALUES (1)) t(x) WHERE x IN (SELECT length('{b}'))");
        let (written, _) = verdicts(&sql).await;
        assert!(written.unwrap_err().contains("copied into each"));
    }
}
