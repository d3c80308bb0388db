//! SQL functions whose result can be far larger than their arguments (`repeat('x', 10^12)`,
//! `range(0, 10^12)`), wrapped so that a call that would produce more than a cap is refused
//! with ResourcesExhausted before it allocates anything.
//!
//! DataFusion's memory pool counts what operators buffer, not what a function allocates, and a
//! failed allocation aborts the whole process. The optimizer also calls functions on constants
//! while it plans, before any operator runs. So the size of the result is worked out from the
//! arguments first: the cap is the session's memory limit, and at most [`MAX_CALL_BYTES`]
//! without one.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use datafusion::arrow::compute::{cast, kernels::length::length};
use datafusion::arrow::datatypes::{
    DataType, FieldRef, IntervalMonthDayNanoType, IntervalUnit, TimeUnit,
};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::memory_pool::MemoryLimit;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature,
};
use datafusion::prelude::SessionContext;

/// The most one call of a bounded function may produce when the session has no memory limit.
pub(crate) const MAX_CALL_BYTES: usize = 256 << 20;

/// How a function's result grows with its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(s, n)`: `n` copies of `s`.
    Repeat,
    /// `lpad(s, n [, fill])`, `rpad`: `n` characters, at most 4 bytes each.
    Pad,
    /// `replace(s, from, to)`: every `from` in `s` (an empty one between every character)
    /// becomes `to`.
    Replace,
    /// `array_repeat(x, n)`: a list of `n` copies of `x`.
    ArrayRepeat,
    /// `range(stop)`, `range(start, stop [, step])`, `generate_series`: a list of the values.
    Range,
}

const BOUNDED: &[(&str, Growth)] = &[
    ("repeat", Growth::Repeat),
    ("lpad", Growth::Pad),
    ("rpad", Growth::Pad),
    ("replace", Growth::Replace),
    ("array_repeat", Growth::ArrayRepeat),
    ("range", Growth::Range),
    ("generate_series", Growth::Range),
];

/// Replaces `ctx`'s functions that can grow their result without bound by bounded ones, capped
/// at the memory limit of `ctx`'s runtime (or [`MAX_CALL_BYTES`]).
pub(crate) fn bound_functions(ctx: &SessionContext) {
    let cap = match ctx.runtime_env().memory_pool.memory_limit() {
        MemoryLimit::Finite(limit) => limit.min(MAX_CALL_BYTES),
        MemoryLimit::Infinite | MemoryLimit::Unknown => MAX_CALL_BYTES,
    };
    for &(name, growth) in BOUNDED {
        if let Ok(inner) = ctx.udf(name) {
            ctx.register_udf(ScalarUDF::new_from_impl(Bounded {
                inner: inner.as_ref().clone(),
                growth,
                cap,
            }));
        }
    }
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

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        self.inner.simplify(args, info)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.output_ordering(inputs)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let bytes = result_bytes(self.growth, &args.args, args.number_rows)?;
        if bytes > self.cap as u128 {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{}(...) would produce about {} in one call, more than the {} one call may \
                 (the memory limit, or {} without one)",
                self.name(),
                human_bytes(bytes),
                human_bytes(self.cap as u128),
                human_bytes(MAX_CALL_BYTES as u128),
            )));
        }
        self.inner.invoke_with_args(args)
    }
}

/// An upper bound of what one call with `args` over `rows` rows produces, in bytes.
fn result_bytes(growth: Growth, args: &[ColumnarValue], rows: usize) -> Result<u128> {
    // Constant arguments only: one value, whatever the row count.
    let rows = if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
        1
    } else {
        rows
    };
    let arg = |i: usize| args.get(i);
    let total = match growth {
        Growth::Repeat => {
            let (s, n) = (bytes_of(arg(0))?, ints(arg(1))?);
            sum(rows, |r| s.at(r) * n.at(r))
        }
        Growth::Pad => {
            let n = ints(arg(1))?;
            sum(rows, |r| 4 * n.at(r))
        }
        Growth::Replace => {
            let (s, from, to) = (bytes_of(arg(0))?, bytes_of(arg(1))?, bytes_of(arg(2))?);
            sum(rows, |r| {
                s.at(r) + (s.at(r) / from.at(r).max(1) + 1) * to.at(r)
            })
        }
        Growth::ArrayRepeat => {
            let (x, n) = (bytes_of(arg(0))?, ints(arg(1))?);
            sum(rows, |r| x.at(r).max(8) * n.at(r))
        }
        Growth::Range => {
            let ((start, _), (stop, per_point)) = match args.len() {
                1 => ((Measure::zero(), 1), points(arg(0))?),
                _ => (points(arg(0))?, points(arg(1))?),
            };
            let step = match args.len() {
                3.. => steps(arg(2))?,
                _ => Measure::one(),
            };
            sum(rows, |r| {
                let span = start.signed(r).abs_diff(stop.signed(r)) as u128 * per_point;
                (span / u128::from(step.signed(r).unsigned_abs().max(1)) + 1) * 8
            })
        }
    };
    Ok(total)
}

fn sum(rows: usize, per_row: impl Fn(usize) -> u128) -> u128 {
    (0..rows).fold(0u128, |total, r| total.saturating_add(per_row(r)))
}

/// One number per row of an argument: a column, or a constant for every row.
struct Measure {
    values: Int64Array,
    constant: bool,
}

impl Measure {
    fn zero() -> Self {
        Self::constant(0)
    }

    fn one() -> Self {
        Self::constant(1)
    }

    fn constant(v: i64) -> Self {
        Self {
            values: Int64Array::from(vec![v]),
            constant: true,
        }
    }

    fn signed(&self, row: usize) -> i64 {
        let i = if self.constant { 0 } else { row };
        if i < self.values.len() && self.values.is_valid(i) {
            self.values.value(i)
        } else {
            0
        }
    }

    /// The value at `row`, a negative or missing one as 0.
    fn at(&self, row: usize) -> u128 {
        self.signed(row).max(0) as u128
    }
}

/// The argument as an array, and whether it is one value for every row.
fn array_of(arg: Option<&ColumnarValue>) -> Result<Option<(ArrayRef, bool)>> {
    Ok(match arg {
        None => None,
        Some(ColumnarValue::Array(a)) => Some((a.clone(), false)),
        Some(ColumnarValue::Scalar(s)) => Some((s.to_array()?, true)),
    })
}

fn measure(array: ArrayRef, constant: bool) -> Result<Measure> {
    let values = cast(&array, &DataType::Int64)?;
    Ok(Measure {
        values: values.as_primitive().clone(),
        constant,
    })
}

/// Byte length of strings and binaries, element count of lists, 8 for anything else.
fn bytes_of(arg: Option<&ColumnarValue>) -> Result<Measure> {
    let Some((array, constant)) = array_of(arg)? else {
        return Ok(Measure::zero());
    };
    match length(&array) {
        Ok(lengths) => measure(lengths, constant),
        Err(_) => Ok(Measure::constant(8)),
    }
}

/// Integers as they are.
fn ints(arg: Option<&ColumnarValue>) -> Result<Measure> {
    match array_of(arg)? {
        Some((array, constant)) => measure(array, constant),
        None => Ok(Measure::zero()),
    }
}

/// Points of a range: integers as they are, dates and times as microseconds (which reach the
/// year 9999), with how many of a step's units (nanoseconds) one of them is.
fn points(arg: Option<&ColumnarValue>) -> Result<(Measure, u128)> {
    let Some((array, constant)) = array_of(arg)? else {
        return Ok((Measure::zero(), 1));
    };
    match array.data_type() {
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) => {
            let us = cast(&array, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
            Ok((measure(cast(&us, &DataType::Int64)?, constant)?, 1_000))
        }
        _ => Ok((measure(array, constant)?, 1)),
    }
}

/// Steps of a range: integers as they are, intervals as their fewest nanoseconds (a month as
/// 28 days, a day as 23 hours), so that the count is never underestimated.
fn steps(arg: Option<&ColumnarValue>) -> Result<Measure> {
    let Some((array, constant)) = array_of(arg)? else {
        return Ok(Measure::one());
    };
    if !matches!(array.data_type(), DataType::Interval(_)) {
        return measure(array, constant);
    }
    const HOUR: i128 = 3_600_000_000_000;
    let intervals = cast(&array, &DataType::Interval(IntervalUnit::MonthDayNano))?;
    let values: Int64Array = intervals
        .as_primitive::<IntervalMonthDayNanoType>()
        .iter()
        .map(|v| {
            v.map(|v| {
                let ns = i128::from(v.months) * 28 * 24 * HOUR
                    + i128::from(v.days) * 23 * HOUR
                    + i128::from(v.nanoseconds);
                i64::try_from(ns.unsigned_abs()).unwrap_or(i64::MAX)
            })
        })
        .collect();
    Ok(Measure { values, constant })
}

fn human_bytes(n: u128) -> String {
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
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::prelude::SessionConfig;

    fn session(limit: Option<usize>) -> SessionContext {
        let mut runtime = RuntimeEnvBuilder::new();
        if let Some(limit) = limit {
            runtime = runtime.with_memory_limit(limit, 1.0);
        }
        let ctx =
            SessionContext::new_with_config_rt(SessionConfig::new(), runtime.build_arc().unwrap());
        bound_functions(&ctx);
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
