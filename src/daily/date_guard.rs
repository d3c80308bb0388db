//! The check that every row a daily file produces belongs to the date being computed, made while
//! the rows stream into the Delta writer (the result is never held in memory as a whole): a
//! projection `date_guard(date)` passes the column through and fails the query, naming the
//! file, at the first row of another date or without one. The writer then commits nothing.

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, Date32Array};
use datafusion::arrow::datatypes::{DataType, Date32Type};
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::col;

use super::dates::date32;

/// How the guard's error starts after the file name.
pub(crate) const MESSAGE: &str = "every row's `date` must be";

/// The column `date`, checked to equal `date` on every row; `file` names the culprit.
pub(crate) fn guarded_date(file: &str, date: NaiveDate) -> Expr {
    let udf = ScalarUDF::from(DateGuard {
        file: file.to_string(),
        want: date32(date),
        signature: Signature::exact(vec![DataType::Date32], Volatility::Volatile),
    });
    Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(udf), vec![col("date")]))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct DateGuard {
    file: String,
    want: i32,
    signature: Signature,
}

impl ScalarUDFImpl for DateGuard {
    fn name(&self) -> &str {
        "date_guard"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Date32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let Some(dates) = arrays
            .first()
            .and_then(|a| a.as_any().downcast_ref::<Date32Array>())
        else {
            return exec_err!("{}: the result needs a DATE column `date`", self.file);
        };
        if let Some(bad) = dates.iter().find(|d| *d != Some(self.want)) {
            let day = |d: i32| Date32Type::to_naive_date_opt(d).map(|d| d.to_string());
            let shown = bad.and_then(day).unwrap_or_else(|| "NULL".into());
            let want = day(self.want).unwrap_or_default();
            return exec_err!("{}: {MESSAGE} {want}, found a row with {shown}", self.file);
        }
        Ok(ColumnarValue::Array(arrays[0].clone()))
    }
}
