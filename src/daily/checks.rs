//! Data checks: each `sql/checks/<name>.sql` returns the rows that violate it for `$date`
//! (zero rows: pass). Its header says `-- severity: error|warn`; a failing `error` check fails
//! the run, a `warn` check is only recorded. A check whose SQL itself fails is an error of the
//! job definition and fails the run whatever its severity.

use chrono::NaiveDate;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::json::ArrayWriter;

use super::history::CheckRecord;
use super::query::JobSession;
use super::sql_file::{Severity, SqlFile};
use crate::error::{Error, Result};

/// Violating rows kept in `system.check_results.sample`.
pub(crate) const SAMPLE_ROWS: usize = 5;

/// Runs one check for `date`.
pub(crate) async fn run(
    session: &JobSession,
    file: &SqlFile,
    date: NaiveDate,
) -> Result<CheckRecord> {
    let batches = session.collect(file, date).await?;
    let violations: usize = batches.iter().map(|b| b.num_rows()).sum();
    let status = match (violations, file.severity) {
        (0, _) => "pass",
        (_, Severity::Error) => "fail",
        (_, Severity::Warn) => "warn",
    };
    Ok(CheckRecord {
        check: file.name.clone(),
        severity: match file.severity {
            Severity::Error => "error",
            Severity::Warn => "warn",
        },
        status,
        violation_count: violations as i64,
        sample: sample_json(&batches, SAMPLE_ROWS).map_err(|e| {
            Error::Other(format!("{}: cannot render rows: {e}", file.path.display()))
        })?,
        description: file.description.clone(),
    })
}

/// The first `n` rows of `batches` as a JSON array of objects.
fn sample_json(batches: &[RecordBatch], n: usize) -> Result<String> {
    let mut writer = ArrayWriter::new(Vec::new());
    let mut left = n;
    for b in batches {
        if left == 0 {
            break;
        }
        let take = left.min(b.num_rows());
        writer.write(&b.slice(0, take))?;
        left -= take;
    }
    writer.finish()?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok("[]".into());
    }
    String::from_utf8(bytes).map_err(|e| Error::Other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn sample_keeps_the_first_rows_as_json() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batch = |v: Vec<i64>| {
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(v))]).unwrap()
        };
        let batches = [batch(vec![1, 2]), batch(vec![3, 4])];
        assert_eq!(
            sample_json(&batches, 3).unwrap(),
            r#"[{"n":1},{"n":2},{"n":3}]"#
        );
        assert_eq!(sample_json(&[], 3).unwrap(), "[]");
    }
}
