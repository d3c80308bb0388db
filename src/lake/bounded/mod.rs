//! SQL functions and operators whose result can be far larger than their arguments
//! (`repeat('x', 10^12)`, `range(0, 10^12)`, `s || s` nested in 40 subqueries), wrapped so
//! that a call that would produce more than a cap is refused with ResourcesExhausted before it
//! allocates anything.
//!
//! DataFusion's memory pool counts what operators buffer, not what a function allocates, and a
//! failed allocation aborts the whole process. The optimizer also calls functions on constants
//! while it plans, before any operator runs. So the size of the result is worked out from the
//! arguments first ([`growth`]): the cap is the session's memory limit, and at most
//! [`MAX_CALL_BYTES`] without one.
//!
//! Two ways in, because a call can reach a plan without the session's registry: the bounded
//! functions replace the registered ones (what SQL names resolve to, also while planning table
//! functions' arguments), and an analyzer rule ([`rule`]) bounds the calls the planner builds
//! itself (`||` on lists becomes `array_concat`) and turns `||` on strings into a bounded
//! function ([`concat`]).

mod concat;
mod growth;
mod largest;
mod rule;

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::memory_pool::{MemoryLimit, MemoryPool};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ExpressionPlacement, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature,
};
use datafusion::prelude::SessionContext;

use growth::{result_bytes, Growth};
pub(crate) use largest::largest_value;

/// The most one call of a bounded function may produce when the session has no memory limit.
pub(crate) const MAX_CALL_BYTES: usize = 256 << 20;

/// Every function whose result can outgrow its arguments many times over, or double them (which
/// nested queries turn into exponential growth); and those that copy a whole value, whose
/// argument can be one value an aggregate made as large as the pool allows (`array_agg` of 200
/// million rows, 1.6 GB, through `array_reverse`, `array_distinct` and `array_sort` reached 8.5
/// GB outside a 2 GiB pool). Their `times` are what a call was seen to take over its largest
/// argument (bench/NOTES.md), rounded up.
const BOUNDED: &[(&str, Growth)] = &[
    ("repeat", Growth::Repeat),
    ("lpad", Growth::Pad),
    ("rpad", Growth::Pad),
    ("replace", Growth::Replace),
    ("regexp_replace", Growth::RegexpReplace),
    ("array_repeat", Growth::ArrayRepeat),
    ("array_resize", Growth::ArrayResize),
    ("array_replace_all", Growth::ArrayReplace),
    ("array_replace_n", Growth::ArrayReplace),
    ("array_to_string", Growth::ArrayToString),
    ("range", Growth::Range),
    ("generate_series", Growth::Range),
    ("concat", Growth::Sum),
    (concat::NAME, Growth::Sum),
    ("concat_ws", Growth::SumSeparated),
    ("overlay", Growth::Sum),
    ("make_array", Growth::Sum),
    ("array_concat", Growth::Sum),
    ("array_append", Growth::Sum),
    ("array_prepend", Growth::Sum),
    ("array_replace", Growth::Sum),
    ("array_union", Growth::Sum),
    ("arrays_zip", Growth::Sum),
    ("struct", Growth::Sum),
    ("named_struct", Growth::Sum),
    ("map", Growth::Sum),
    ("encode", Growth::Encode),
    ("levenshtein", Growth::Pairs),
    ("upper", COPY),
    ("lower", COPY),
    ("initcap", COPY),
    ("reverse", COPY),
    ("btrim", COPY),
    ("ltrim", COPY),
    ("rtrim", COPY),
    ("substr", COPY),
    ("left", COPY),
    ("right", COPY),
    ("translate", COPY),
    ("split_part", COPY),
    ("decode", COPY),
    ("array_reverse", COPY),
    ("array_sort", COPY),
    ("array_slice", COPY),
    ("array_remove", COPY),
    ("array_remove_n", COPY),
    ("array_remove_all", COPY),
    ("array_pop_back", COPY),
    ("array_pop_front", COPY),
    ("flatten", COPY),
    ("string_to_array", SPLIT),
    ("array_distinct", HASHED),
    ("array_except", HASHED),
    ("array_intersect", HASHED),
    ("array_has_all", HASHED),
    ("array_has_any", HASHED),
];

/// A function that copies its argument, with some working memory.
const COPY: Growth = Growth::Copies { times: 3 };
/// `string_to_array`: an element per byte at most, about 9 bytes each.
const SPLIT: Growth = Growth::Copies { times: 10 };
/// Functions that hash every element (arrow's row format): about 10 times the value.
const HASHED: Growth = Growth::Copies { times: 12 };

/// Bounds every call in `ctx` that can grow its result without bound or copy a whole value
/// ([`BOUNDED`]), capped at the memory limit of `ctx`'s runtime (or [`MAX_CALL_BYTES`]).
pub(crate) fn bound(ctx: &SessionContext) {
    let cap = call_cap(ctx.runtime_env().memory_pool.as_ref());
    for &(name, _) in BOUNDED {
        if let Ok(inner) = ctx.udf(name) {
            if let Some(bounded) = bounded(&inner, cap) {
                ctx.register_udf(bounded);
            }
        }
    }
    ctx.add_analyzer_rule(Arc::new(rule::BoundCalls::new(cap)));
}

/// The most one call may produce in a session over `pool`: its memory limit, at most
/// [`MAX_CALL_BYTES`].
pub(crate) fn call_cap(pool: &dyn MemoryPool) -> usize {
    match pool.memory_limit() {
        MemoryLimit::Finite(limit) => limit.min(MAX_CALL_BYTES),
        MemoryLimit::Infinite | MemoryLimit::Unknown => MAX_CALL_BYTES,
    }
}

/// `udf` bounded at `cap`, or `None` when it cannot grow its result or already is bounded.
fn bounded(udf: &ScalarUDF, cap: usize) -> Option<ScalarUDF> {
    if udf.inner().is::<Bounded>() {
        return None;
    }
    let (_, growth) = BOUNDED.iter().find(|(name, _)| *name == udf.name())?;
    Some(ScalarUDF::new_from_impl(Bounded {
        inner: udf.clone(),
        growth: *growth,
        cap,
    }))
}

/// `inner`, refusing a call whose result would be larger than `cap` bytes.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: ScalarUDF,
    growth: Growth,
    cap: usize,
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.inner().schema_name(args)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn with_updated_config(&self, config: &ConfigOptions) -> Option<ScalarUDF> {
        let updated = self.inner.inner().with_updated_config(config)?;
        bounded(&updated, self.cap)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn is_strict(&self) -> bool {
        self.inner.inner().is_strict()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    /// What `inner` simplifies to, with any call it builds anew (`concat` merging its constant
    /// arguments) bounded again.
    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        Ok(match self.inner.simplify(args, info)? {
            ExprSimplifyResult::Simplified(expr) => {
                ExprSimplifyResult::Simplified(rule::bound_expr(expr, self.cap)?)
            }
            original => original,
        })
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn conditional_arguments<'a>(
        &self,
        args: &'a [Expr],
    ) -> Option<(Vec<&'a Expr>, Vec<&'a Expr>)> {
        self.inner.inner().conditional_arguments(args)
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.output_ordering(inputs)
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.preserves_lex_ordering(inputs)
    }

    fn placement(&self, args: &[ExpressionPlacement]) -> ExpressionPlacement {
        self.inner.inner().placement(args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let amount = result_bytes(self.growth, &args.args, args.number_rows, self.cap)?;
        if amount > self.cap as u128 {
            return Err(DataFusionError::ResourcesExhausted(self.refusal(amount)));
        }
        self.inner.invoke_with_args(args)
    }
}

impl Bounded {
    /// Why a call that would come to `amount` (bytes, or steps for [`Growth::Pairs`]) is refused.
    fn refusal(&self, amount: u128) -> String {
        let name = concat::call_name(self.name());
        match self.growth {
            Growth::Pairs => format!(
                "{name} would compare about {amount} pairs of characters in one call, more than \
                 the {} one call may (one per byte a call may produce): compare shorter strings",
                self.cap,
            ),
            Growth::Copies { times } => format!(
                "{name} would copy a value of about {} in one call, taking about {} with its \
                 working memory, more than the {} one call may (the memory limit, or {} \
                 without one)",
                human_bytes(amount / u128::from(times.max(1))),
                human_bytes(amount),
                human_bytes(self.cap as u128),
                human_bytes(MAX_CALL_BYTES as u128),
            ),
            _ => format!(
                "{name} would produce about {} in one call, more than the {} one call may \
                 (the memory limit, or {} without one)",
                human_bytes(amount),
                human_bytes(self.cap as u128),
                human_bytes(MAX_CALL_BYTES as u128),
            ),
        }
    }
}

pub(crate) fn human_bytes(n: u128) -> String {
    const UNITS: [&str; 6] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::AsArray;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::prelude::SessionConfig;

    fn session(limit: Option<usize>) -> SessionContext {
        let mut runtime = RuntimeEnvBuilder::new();
        if let Some(limit) = limit {
            runtime = runtime.with_memory_limit(limit, 1.0);
        }
        let ctx =
            SessionContext::new_with_config_rt(SessionConfig::new(), runtime.build_arc().unwrap());
        bound(&ctx);
        ctx
    }

    /// The error of running `sql`.
    async fn run(ctx: &SessionContext, sql: &str) -> std::result::Result<(), String> {
        let frame = ctx.sql(sql).await.map_err(|e| e.to_string())?;
        frame.collect().await.map_err(|e| e.to_string())?;
        Ok(())
    }

    #[tokio::test]
    async fn calls_that_would_outgrow_the_cap_are_refused_before_they_allocate() {
        let ctx = session(Some(64 << 20));
        for sql in [
            // The optimizer folds these constants while planning.
            "SELECT repeat(arrow_cast('x', 'LargeUtf8'), 1000000000000)",
            "SELECT repeat('x', 300000000)",
            "SELECT lpad('x', 100000000)",
            "SELECT rpad('x', 100000000, 'yz')",
            "SELECT replace(repeat('x', 10000), 'x', repeat('y', 10000))",
            "SELECT replace(repeat('x', 10000), '', repeat('y', 10000))",
            "SELECT array_repeat(1, 100000000000)",
            "SELECT range(1000000000000)",
            "SELECT generate_series(-5, 1000000000000, 3)",
            "SELECT range(TIMESTAMP '1970-01-01', TIMESTAMP '2200-01-01', INTERVAL '1 second')",
            // Over a column: the whole call counts.
            "SELECT length(repeat('x', v)) FROM (VALUES (40000000), (40000000)) t(v)",
        ] {
            let e = run(&ctx, sql).await.expect_err(sql);
            assert!(e.contains("would produce about"), "{sql}: {e}");
            assert!(e.contains("64.0 MiB"), "{sql}: {e}");
        }
    }

    #[tokio::test]
    async fn a_whole_value_too_large_to_copy_is_refused_and_smaller_ones_are_not() {
        let ctx = session(Some(64 << 20));
        for sql in [
            // One list of 3 million numbers (24 MB) made by an aggregate, copied three times.
            "SELECT cardinality(array_reverse(array_agg(value))) FROM generate_series(1, 3000000)",
            "SELECT cardinality(array_sort(array_agg(value))) FROM generate_series(1, 3000000)",
            // A million numbers hashed: about ten times the list.
            "SELECT cardinality(array_distinct(array_agg(value))) FROM generate_series(1, 1000000)",
            // A 30 MB string, folded while planning, and one an aggregate made.
            "SELECT length(upper(repeat('x', 30000000)))",
            "SELECT cardinality(string_to_array(string_agg(CAST(value % 10 AS VARCHAR), ','), ',')) \
             FROM generate_series(1, 5000000)",
        ] {
            let e = run(&ctx, sql).await.expect_err(sql);
            assert!(e.contains("would copy a value of about"), "{sql}: {e}");
        }
        for sql in [
            "SELECT cardinality(array_sort(array_distinct(array_agg(value)))) \
             FROM generate_series(1, 100000)",
            "SELECT length(upper(repeat('x', 3000000)))",
            // Many values in one call: each is small.
            "SELECT max(length(upper(s))) FROM (SELECT repeat('x', 100) AS s \
             FROM generate_series(1, 1000000))",
        ] {
            run(&ctx, sql).await.expect(sql);
        }
    }

    #[tokio::test]
    async fn a_comparison_of_long_strings_is_refused_before_it_runs() {
        // levenshtein of two 1.5 MB strings took hours of one core, and no deadline stops a call.
        let ctx = session(None);
        for sql in [
            "SELECT levenshtein(repeat('a', 1500000), repeat('b', 1500000))",
            "SELECT levenshtein(s, s) FROM (SELECT repeat(v, 20000) AS s \
             FROM (VALUES ('ab'), ('cd')) t(v))",
        ] {
            let e = run(&ctx, sql).await.expect_err(sql);
            assert!(e.contains("pairs of characters"), "{sql}: {e}");
        }
    }

    #[tokio::test]
    async fn calls_within_the_cap_give_their_usual_answers() {
        let ctx = session(None);
        for sql in [
            "SELECT repeat('ab', 3) = 'ababab'",
            "SELECT lpad('7', 3, '0') = '007' AND rpad('7', 3) = '7  '",
            "SELECT replace('a.b.c', '.', '--') = 'a--b--c'",
            "SELECT range(4) = make_array(0, 1, 2, 3)",
            "SELECT generate_series(1, 10, 4) = make_array(1, 5, 9)",
            "SELECT cardinality(range(1000000000, 0, -1000)) = 1000000",
            "SELECT cardinality(range(DATE '2025-01-01', DATE '2025-02-01', INTERVAL '1 day')) = 31",
            "SELECT array_repeat('x', 3) = make_array('x', 'x', 'x')",
            "SELECT cardinality(range(DATE '1970-01-01', DATE '9999-01-01', INTERVAL '1 day')) > 2900000",
            "SELECT string_agg(coalesce(repeat(s, 2), '-'), ',' ORDER BY s) = 'aa,bb,-' \
             FROM (VALUES ('a'), (NULL), ('b')) t(s)",
            "SELECT levenshtein('kitten', 'sitting') = 3",
            "SELECT levenshtein(repeat('ab', 2000), repeat('ba', 2000)) > 0",
        ] {
            let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
            let answer = batches[0].column(0).as_boolean().value(0);
            assert!(answer, "{sql}");
        }
        // Without a memory limit the cap is MAX_CALL_BYTES.
        let e = run(&ctx, "SELECT repeat('x', 300000000)")
            .await
            .unwrap_err();
        assert!(e.contains("256.0 MiB"), "{e}");
    }

    /// `WITH t0 AS (<base>), t1 AS (SELECT <grow> AS s FROM t0), ... SELECT s FROM t<levels>`:
    /// each step doubles `s`.
    fn doubling(base: &str, grow: &str, levels: usize) -> String {
        let steps: Vec<String> = (1..=levels)
            .map(|i| format!("t{i} AS (SELECT {grow} AS s FROM t{})", i - 1))
            .collect();
        format!(
            "WITH t0 AS ({base}), {} SELECT s FROM t{levels}",
            steps.join(", ")
        )
    }

    #[tokio::test]
    async fn values_doubled_in_nested_queries_are_refused_at_the_cap() {
        let ctx = session(Some(64 << 20));
        let column = "SELECT s FROM (VALUES (repeat('x', 1024))) v(s)";
        let list = "SELECT make_array(1, 2) AS s FROM (VALUES (1)) v(x)";
        for sql in [
            // 1 KiB doubled 40 times is 1 PiB: without the bound the process aborts.
            doubling("SELECT repeat('x', 1024) AS s", "s || s", 40),
            doubling(column, "s || s", 40),
            doubling(column, "concat(s, s)", 40),
            doubling(column, "concat_ws(s, s, s)", 40),
            doubling(column, "encode(s, 'hex')", 40),
            doubling(column, "overlay(s placing s from 2 for 0)", 40),
            doubling(list, "s || s", 60),
            doubling(list, "array_concat(s, s)", 60),
            doubling(list, "flatten(make_array(s, s))", 60),
            doubling(list, "flatten([s, s])", 60),
            // A call the simplifier builds anew (the constants merged) is bounded too.
            doubling(column, "concat('a', 'b', s, s)", 40),
        ] {
            let e = run(&ctx, &sql).await.expect_err(&sql);
            // `flatten` copies a whole value too, and may be the first to refuse.
            let refused = e.contains("would produce about") || e.contains("would copy a value");
            assert!(refused, "{sql}: {e}");
        }
        // A smaller cap keeps the arguments quick to build.
        let ctx = session(Some(4 << 20));
        for sql in [
            "SELECT regexp_replace(repeat('x', 2000), 'x', repeat('y', 2000), 'g')",
            "SELECT array_to_string(range(100000), repeat(',', 100))",
            "SELECT array_resize(make_array(1), 100000000000)",
            "SELECT array_replace_all(array_repeat('a', 10000), 'a', repeat('y', 1000))",
            "SELECT concat(repeat('x', 3000000), repeat('x', 3000000))",
            "SELECT arrays_zip(range(300000), range(300000))",
        ] {
            let e = run(&ctx, sql).await.expect_err(sql);
            assert!(e.contains("would produce about"), "{sql}: {e}");
        }
    }

    #[tokio::test]
    async fn the_bounded_operator_answers_and_names_columns_as_before() {
        let plain = SessionContext::new();
        let ctx = session(None);
        for sql in [
            "SELECT 'a' || 'b' = 'ab'",
            "SELECT ('a' || NULL) IS NULL AND concat('a', NULL, 'b') = 'ab'",
            "SELECT s || '-' || s = 'q-q' FROM (VALUES ('q')) t(s)",
            "SELECT bool_and((s || x) IS NULL = (x IS NULL)) \
             FROM (VALUES ('q', 'r'), ('q', NULL)) t(s, x)",
            "SELECT make_array(1, 2) || make_array(3) = make_array(1, 2, 3)",
            "SELECT [1, 2] || 3 = [1, 2, 3] AND 0 || [1] = [0, 1]",
            "SELECT array_to_string(make_array(1, NULL, 3), ',', '?') = '1,?,3'",
            "SELECT encode('ab', 'hex') = '6162' AND concat_ws('-', 'a', 'b', 'c') = 'a-b-c'",
            "SELECT regexp_replace('aXbX', 'X', '-', 'g') = 'a-b-'",
            "SELECT array_resize(make_array(1), 3, 7) = make_array(1, 7, 7)",
            "SELECT overlay('abcd' placing 'XY' from 2) = 'aXYd'",
            "SELECT named_struct('a', 1)['a'] = 1",
            "SELECT arrow_cast('a', 'LargeUtf8') || arrow_cast('b', 'Utf8View') = 'ab'",
            "SELECT 1 || 'a' = '1a'",
        ] {
            let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
            assert!(batches[0].column(0).as_boolean().value(0), "{sql}");
        }
        for sql in [
            "SELECT 'a' || s, s || s AS doubled, 'x' || 'y' FROM (VALUES ('b')) t(s)",
            "SELECT [1] || [2], concat(s, s) FROM (VALUES ('b')) t(s)",
        ] {
            let names = |ctx: SessionContext| async move {
                let frame = ctx.sql(sql).await.unwrap();
                let schema = frame.collect().await.unwrap()[0].schema();
                schema
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                names(plain.clone()).await,
                names(session(None)).await,
                "{sql}"
            );
        }
    }

    #[test]
    fn bounded_functions_keep_their_names_and_aliases() {
        let ctx = session(None);
        for name in [
            "repeat",
            "lpad",
            "rpad",
            "replace",
            "list_repeat",
            "array_repeat",
        ] {
            let udf = ctx.udf(name).unwrap();
            assert!(udf.inner().is::<Bounded>(), "{name}");
        }
    }
}
