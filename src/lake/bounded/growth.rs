//! How big a function's result can be, worked out from its arguments before it runs.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use datafusion::arrow::compute::{cast, kernels::length::length};
use datafusion::arrow::datatypes::{DataType, IntervalMonthDayNanoType, IntervalUnit, TimeUnit};
use datafusion::common::Result;
use datafusion::logical_expr::ColumnarValue;

use super::largest::largest_value;

/// How a function's result grows with its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Growth {
    /// `repeat(s, n)`: `n` copies of `s`.
    Repeat,
    /// `lpad(s, n [, fill])`, `rpad`: `n` characters, at most 4 bytes each.
    Pad,
    /// `replace(s, from, to)`: every `from` in `s` (an empty one between every character)
    /// becomes `to`.
    Replace,
    /// `regexp_replace(s, pattern, to [, flags])`: every match (an empty one between every
    /// character) becomes `to`, whose group references copy at most the match each.
    RegexpReplace,
    /// `array_repeat(x, n)`: a list of `n` copies of `x`.
    ArrayRepeat,
    /// `array_resize(list, n [, x])`: `n` elements, the new ones copies of `x`.
    ArrayResize,
    /// `array_replace_all(list, from, to)`, `array_replace_n`: any element can become `to`.
    ArrayReplace,
    /// `array_to_string(list, sep [, null])`: every element printed, each with a separator.
    ArrayToString,
    /// `range(stop)`, `range(start, stop [, step])`, `generate_series`: a list of the values.
    Range,
    /// `concat`, `||`, `make_array`, `array_concat`, `struct`, ...: all the arguments together.
    /// Doubling a value this way in nested queries grows it exponentially.
    Sum,
    /// `concat_ws(sep, ...)`: the arguments with a separator between each two.
    SumSeparated,
    /// `encode(s, 'hex' | 'base64')`: at most twice the bytes.
    Encode,
    /// `levenshtein(a, b)`: not a large result but a long computation, one step per pair of
    /// characters, which no deadline interrupts; counted as one byte per step.
    Pairs,
    /// `upper`, `array_sort`, `array_distinct`, `string_to_array`, ...: a result no larger than
    /// its arguments or a few times them, but a copy of a whole value (with working memory
    /// `times` the largest value of any argument), however large the value an aggregate made.
    /// Counted per value rather than per call: a batch of many small values is as before.
    Copies { times: u32 },
}

/// An upper bound of what one call with `args` over `rows` rows produces, in bytes; for
/// [`Growth::Copies`], of what it takes for its largest value, which is worked out only when
/// an argument is larger than `cap` divided by its `times` altogether.
pub(super) fn result_bytes(
    growth: Growth,
    args: &[ColumnarValue],
    rows: usize,
    cap: usize,
) -> Result<u128> {
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
        Growth::RegexpReplace => {
            let (s, to) = (bytes_of(arg(0))?, bytes_of(arg(2))?);
            sum(rows, |r| s.at(r) + (s.at(r) + 1) * to.at(r) * 2)
        }
        Growth::ArrayRepeat => {
            let (x, n) = (bytes_of(arg(0))?, ints(arg(1))?);
            sum(rows, |r| x.at(r).max(8) * n.at(r))
        }
        Growth::ArrayResize => {
            let (list, n, x) = (bytes_of(arg(0))?, ints(arg(1))?, bytes_of(arg(2))?);
            sum(rows, |r| list.at(r) + x.at(r).max(8) * n.at(r))
        }
        Growth::ArrayReplace => {
            let (list, elements, to) = (bytes_of(arg(0))?, leaves(arg(0))?, bytes_of(arg(2))?);
            sum(rows, |r| list.at(r) + elements.at(r) * to.at(r))
        }
        Growth::ArrayToString => {
            // The widest printed scalar (a decimal, a timestamp with its zone) is under 64
            // characters; strings are counted in the list's bytes.
            const PRINTED: u128 = 64;
            let (list, elements) = (bytes_of(arg(0))?, leaves(arg(0))?);
            let (sep, null) = (bytes_of(arg(1))?, bytes_of(arg(2))?);
            sum(rows, |r| {
                list.at(r) + elements.at(r) * (PRINTED + sep.at(r) + null.at(r))
            })
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
        Growth::Sum | Growth::SumSeparated => {
            let each = args
                .iter()
                .map(|a| bytes_of(Some(a)))
                .collect::<Result<Vec<_>>>()?;
            // concat_ws repeats its separator (the first argument) between the others.
            let separators = match growth {
                Growth::SumSeparated => args.len().saturating_sub(2) as u128,
                _ => 0,
            };
            sum(rows, |r| {
                let all = each.iter().map(|m| m.at(r)).sum::<u128>();
                all + separators * each.first().map_or(0, |m| m.at(r))
            })
        }
        Growth::Encode => {
            let s = bytes_of(arg(0))?;
            sum(rows, |r| 2 * s.at(r) + 4)
        }
        Growth::Pairs => {
            let (a, b) = (bytes_of(arg(0))?, bytes_of(arg(1))?);
            sum(rows, |r| a.at(r) * b.at(r))
        }
        Growth::Copies { times } => {
            let within = cap / times.max(1) as usize;
            // A constant is measured as it is, not copied into an array first.
            let largest = args.iter().map(|arg| match arg {
                ColumnarValue::Scalar(value) => value.size(),
                ColumnarValue::Array(array) => largest_value(array, within),
            });
            largest.max().unwrap_or(0) as u128 * u128::from(times)
        }
    };
    Ok(total)
}

fn sum(rows: usize, each_row: impl Fn(usize) -> u128) -> u128 {
    (0..rows).fold(0u128, |total, r| total.saturating_add(each_row(r)))
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

/// Bytes of each value: the length of a string or binary, what the row holds of a list, a
/// struct or a map, the width of anything else (at least 1).
fn bytes_of(arg: Option<&ColumnarValue>) -> Result<Measure> {
    let Some((array, constant)) = array_of(arg)? else {
        return Ok(Measure::zero());
    };
    if let DataType::Dictionary(_, values) = array.data_type() {
        let values = values.as_ref().clone();
        return bytes_of(Some(&ColumnarValue::Array(cast(&array, &values)?)));
    }
    if let Ok(lengths) = length(&array) {
        if !array.data_type().is_nested() {
            return measure(lengths, constant);
        }
    }
    if !array.data_type().is_nested() {
        let width = array.data_type().primitive_width().unwrap_or(8).max(1);
        return Ok(Measure::constant(width as i64));
    }
    per_row(&array, constant, |row| {
        row.to_data().get_slice_memory_size().unwrap_or(usize::MAX)
    })
}

/// How many values each row holds, counting the elements of nested lists and the fields of
/// structs one by one.
fn leaves(arg: Option<&ColumnarValue>) -> Result<Measure> {
    let Some((array, constant)) = array_of(arg)? else {
        return Ok(Measure::zero());
    };
    per_row(&array, constant, |row| leaf_count(row.as_ref()))
}

fn per_row(array: &ArrayRef, constant: bool, f: impl Fn(ArrayRef) -> usize) -> Result<Measure> {
    let values = (0..array.len())
        .map(|r| Some(i64::try_from(f(array.slice(r, 1))).unwrap_or(i64::MAX)))
        .collect();
    Ok(Measure { values, constant })
}

fn leaf_count(array: &dyn Array) -> usize {
    fn child(values: &ArrayRef, start: usize, end: usize) -> usize {
        let end = end.min(values.len());
        leaf_count(values.slice(start.min(end), end - start.min(end)).as_ref())
    }
    match array.data_type() {
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            let offsets = list.value_offsets();
            let (start, end) = (offsets[0] as usize, offsets[offsets.len() - 1] as usize);
            child(list.values(), start, end)
        }
        DataType::LargeList(_) => {
            let list = array.as_list::<i64>();
            let offsets = list.value_offsets();
            let (start, end) = (offsets[0] as usize, offsets[offsets.len() - 1] as usize);
            child(list.values(), start, end)
        }
        DataType::FixedSizeList(_, size) => {
            let list = array.as_fixed_size_list();
            let size = (*size).max(0) as usize;
            let start = list.offset() * size;
            child(list.values(), start, start + list.len() * size)
        }
        DataType::Map(..) => {
            let map = array.as_map();
            let offsets = map.value_offsets();
            let (start, end) = (offsets[0] as usize, offsets[offsets.len() - 1] as usize);
            let entries: ArrayRef = std::sync::Arc::new(map.entries().clone());
            child(&entries, start, end)
        }
        DataType::Struct(_) => array
            .as_struct()
            .columns()
            .iter()
            .map(|c| leaf_count(c.as_ref()))
            .sum::<usize>()
            .max(array.len()),
        _ => array.len(),
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
