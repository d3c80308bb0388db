//! `a || b` on strings as a function, so that it can be bounded like the others.
//!
//! DataFusion evaluates `||` on strings as a binary expression that no function registry sees.
//! This function keeps its exact semantics (NULL when either side is NULL, unlike `concat`) by
//! evaluating that same binary expression over its arguments.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatchOptions;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::type_coercion::binary::BinaryTypeCoercer;
use datafusion::logical_expr::{
    ColumnarValue, Expr, Operator, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
use datafusion::physical_expr::PhysicalExpr;

/// The function's name: no SQL text can call it, only the rewrite of `||`.
pub(super) const NAME: &str = "||";

/// How an error names a call of `name`.
pub(super) fn call_name(name: &str) -> String {
    if name == NAME {
        "the || operator".to_string()
    } else {
        format!("{name}(...)")
    }
}

/// `left || right` on strings or binaries.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct StringConcat {
    signature: Signature,
}

impl StringConcat {
    pub(super) fn new() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for StringConcat {
    fn name(&self) -> &str {
        NAME
    }

    /// The name the binary expression had (`a || b`), so that no column is renamed.
    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        match args {
            [left, right] => Ok(format!("{} || {}", left.schema_name(), right.schema_name())),
            _ => exec_err!("|| takes two arguments, not {}", args.len()),
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [left, right] => {
                BinaryTypeCoercer::new(left, &Operator::StringConcat, right).get_result_type()
            }
            _ => exec_err!("|| takes two arguments, not {}", arg_types.len()),
        }
    }

    /// NULL only where a side can be NULL, as for the binary expression.
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let nullable = args.arg_fields.iter().any(|f| f.is_nullable());
        Ok(Arc::new(Field::new(
            NAME,
            self.return_type(&types)?,
            nullable,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [left, right] = <[ColumnarValue; 2]>::try_from(args.args).map_err(|args| {
            datafusion::common::DataFusionError::Execution(format!(
                "|| takes two arguments, not {}",
                args.len()
            ))
        })?;
        // Columns become the batch, constants stay literals (the binary expression has fast
        // paths for them).
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        let mut side = |value: ColumnarValue| -> Arc<dyn PhysicalExpr> {
            match value {
                ColumnarValue::Scalar(scalar) => Arc::new(Literal::new(scalar)),
                ColumnarValue::Array(array) => {
                    let name = format!("side{}", columns.len());
                    let at = columns.len();
                    fields.push(Field::new(&name, array.data_type().clone(), true));
                    columns.push(array);
                    Arc::new(Column::new(&name, at))
                }
            }
        };
        let (left, right) = (side(left), side(right));
        let batch = RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(args.number_rows)),
        )?;
        BinaryExpr::new(left, Operator::StringConcat, right).evaluate(&batch)
    }
}
