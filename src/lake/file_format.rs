//! The layout of the Parquet files lake writes into a table, by ingest and by compaction alike:
//! rows sorted by the table's clustering columns, which the footer names ([`SORTED_BY_KEY`]), and
//! each column encoded for cheap reading.
//!
//! Ingest sorts each commit's rows (a small sort of rows it holds anyway), so compaction merges
//! fresh files as sorted streams instead of sorting them again in a memory pool, and a point
//! query skips most pages of a fresh file as it does of a merged one.
//!
//! Rows reach the files through [`write_rows`], which hands delta-rs a batch of one partition
//! whole instead of letting it copy every row into per-partition batches.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::kernels::partition::partition;
use datafusion::arrow::compute::{lexsort_to_indices, take_record_batch, SortColumn};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::parquet::basic::{Compression, Encoding};
use datafusion::parquet::file::metadata::KeyValue;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::parquet::schema::types::ColumnPath;
use delta_kernel::expressions::Scalar;
use deltalake::kernel::scalars::ScalarExt;
use deltalake::writer::{DeltaWriter, RecordBatchWriter, WriteMode};
use deltalake::DeltaTableError;
use indexmap::IndexMap;

/// Rows per row group of a merged file.
pub(crate) const MERGED_GROUP_ROWS: usize = 128 * 1024;

/// Rows per row group of a file ingest commits: smaller, because a merge reads one row group of
/// every file it merges at once (the group's column chunks whole), and fresh files are merged
/// many at a time while ingest runs in the same process.
pub(crate) const FRESH_GROUP_ROWS: usize = 16 * 1024;

/// The footer key (Parquet key-value metadata) under which a file names the columns its rows
/// are sorted by, comma-separated.
pub(crate) const SORTED_BY_KEY: &str = "lake.sorted_by";

/// Those of `cluster_by` the table has, in order.
pub(crate) fn sort_keys(table_schema: &SchemaRef, cluster_by: &[String]) -> Vec<String> {
    cluster_by
        .iter()
        .filter(|c| table_schema.field_with_name(c).is_ok())
        .cloned()
        .collect()
}

/// How lake writes a table's files, fresh or merged: row groups of `group_rows`, the sort order
/// in the footer, and each column encoded for cheap reading and writing. Integer and time
/// columns are delta-encoded, uncompressed, with no dictionary: the raw table takes less space
/// that way than with snappy-compressed dictionary pages, its timestamps and offsets decode with
/// no decompression and no dictionary lookups (bench/NOTES.md, "Merged files encoded for
/// reading"), and no value is hashed into a dictionary when written: ids sorted by the
/// clustering columns delta-encode smaller than a dictionary would hold them, and a dictionary
/// tried on every row group of a unique column cost more than the rest of its encoding
/// (bench/NOTES.md, "Cheaper Parquet writes"). Other columns are dictionary-encoded and
/// snappy-compressed, as delta-rs writes them.
pub(crate) fn writer_properties(
    table_schema: &SchemaRef,
    keys: &[String],
    group_rows: usize,
) -> WriterProperties {
    let sorted_by = (!keys.is_empty()).then(|| {
        vec![KeyValue::new(
            SORTED_BY_KEY.to_string(),
            Some(keys.join(",")),
        )]
    });
    let mut builder = WriterProperties::builder()
        .set_created_by(format!("lake {}", env!("CARGO_PKG_VERSION")))
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(group_rows))
        .set_key_value_metadata(sorted_by);
    for field in table_schema.fields() {
        if delta_encodable(field.data_type()) {
            let column = ColumnPath::from(field.name().as_str());
            builder = builder
                .set_column_dictionary_enabled(column.clone(), false)
                .set_column_encoding(column.clone(), Encoding::DELTA_BINARY_PACKED)
                .set_column_compression(column, Compression::UNCOMPRESSED);
        }
    }
    builder.build()
}

/// Whether Parquet stores columns of type `t` as INT32 or INT64, the physical types delta
/// encoding applies to (decimals are left out: wide ones are fixed-length byte arrays).
fn delta_encodable(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Date32
            | DataType::Date64
            | DataType::Time32(_)
            | DataType::Time64(_)
            | DataType::Timestamp(..)
            | DataType::Duration(_)
    )
}

/// `batch` with its rows in ascending order of `keys` (columns it has; see [`sort_keys`]).
pub(crate) fn sort_rows(batch: &RecordBatch, keys: &[String]) -> Result<RecordBatch, ArrowError> {
    if keys.is_empty() || batch.num_rows() < 2 {
        return Ok(batch.clone());
    }
    let columns = keys
        .iter()
        .map(|k| {
            let values = batch
                .column_by_name(k)
                .ok_or_else(|| ArrowError::SchemaError(format!("no column {k} to sort by")))?;
            Ok(SortColumn {
                values: values.clone(),
                options: None,
            })
        })
        .collect::<Result<Vec<_>, ArrowError>>()?;
    let order = lexsort_to_indices(&columns, None)?;
    take_record_batch(batch, &order)
}

/// Writes `batch` (rows in the table's schema, partition columns included) into `writer`.
///
/// delta-rs splits every batch it is given by partition value, copying each column of every
/// row into per-partition batches, even when all rows share one partition. Ingest's commits
/// nearly always hold one date and a merge's batches always hold one partition, so a batch of
/// a single partition goes to delta-rs already split, as it is; a batch of several (a commit
/// across midnight) takes delta-rs's own split.
pub(crate) async fn write_rows(
    writer: &mut RecordBatchWriter,
    batch: RecordBatch,
    partition_columns: &[String],
) -> Result<(), DeltaTableError> {
    match single_partition(&batch, partition_columns)? {
        Some(values) => {
            writer
                .write_partition(batch, &values, WriteMode::Default)
                .await?;
            Ok(())
        }
        None => writer.write(batch).await,
    }
}

/// The partition values of `batch` when its table is partitioned and all of its rows share one
/// partition; None otherwise (delta-rs's own path, which does not split an unpartitioned table).
fn single_partition(
    batch: &RecordBatch,
    partition_columns: &[String],
) -> Result<Option<IndexMap<String, Scalar>>, DeltaTableError> {
    if batch.num_rows() == 0 || partition_columns.is_empty() {
        return Ok(None);
    }
    let columns = partition_columns
        .iter()
        .map(|name| {
            batch.column_by_name(name).cloned().ok_or_else(|| {
                DeltaTableError::Generic(format!("partition column {name} missing from batch"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if partition(&columns)?.len() != 1 {
        return Ok(None);
    }
    let mut values = IndexMap::with_capacity(columns.len());
    for (name, column) in partition_columns.iter().zip(&columns) {
        let Some(value) = Scalar::from_array(column.as_ref(), 0) else {
            return Ok(None);
        };
        values.insert(name.clone(), value);
    }
    Ok(Some(values))
}

#[cfg(test)]
mod tests {
    //! What the files look like: encodings by column, rows in key order.
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::*;
    use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    /// The encodings and codec of each column of a file written with `writer_properties`.
    fn column_chunks(batch: &RecordBatch) -> HashMap<String, (Vec<Encoding>, Compression)> {
        let mut bytes = Vec::new();
        let props = writer_properties(&batch.schema(), &["user_id".to_string()], FRESH_GROUP_ROWS);
        let mut writer = datafusion::parquet::arrow::ArrowWriter::try_new(
            &mut bytes,
            batch.schema(),
            Some(props),
        )
        .unwrap();
        writer.write(batch).unwrap();
        writer.close().unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).unwrap();
        let mut chunks = HashMap::new();
        for column in reader.metadata().row_group(0).columns() {
            let encodings = column.encodings().collect();
            chunks.insert(
                column.column_path().string(),
                (encodings, column.compression()),
            );
        }
        let read: Vec<RecordBatch> = reader.build().unwrap().map(|b| b.unwrap()).collect();
        let read = datafusion::arrow::compute::concat_batches(&batch.schema(), &read).unwrap();
        assert_eq!(&read, batch, "the values read back are the ones written");
        chunks
    }

    #[test]
    fn numbers_are_delta_encoded_uncompressed_and_strings_use_a_dictionary() {
        let rows = 20_000i64;
        let offsets: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows));
        let pages: ArrayRef = Arc::new(Int64Array::from_iter_values((0..rows).map(|i| i % 50)));
        let kinds: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..rows).map(|i| ["click", "view"][(i % 2) as usize]),
        ));
        let batch = RecordBatch::try_from_iter([
            ("kafka_offset", offsets),
            ("page_id", pages),
            ("event_type", kinds),
        ])
        .unwrap();
        let chunks = column_chunks(&batch);

        for number in ["kafka_offset", "page_id"] {
            let (encodings, codec) = &chunks[number];
            assert!(
                encodings.contains(&Encoding::DELTA_BINARY_PACKED)
                    && !encodings.contains(&Encoding::RLE_DICTIONARY),
                "{number}, unique or of 50 values, has no dictionary: {encodings:?}"
            );
            assert_eq!(*codec, Compression::UNCOMPRESSED);
        }

        let (encodings, codec) = &chunks["event_type"];
        assert!(
            encodings.contains(&Encoding::RLE_DICTIONARY),
            "{encodings:?}"
        );
        assert!(matches!(codec, Compression::SNAPPY), "{codec:?}");
    }

    #[test]
    fn rows_are_sorted_by_the_keys_and_stay_whole() {
        let users: ArrayRef = Arc::new(Int64Array::from(vec![3, 1, 2, 1]));
        let offsets: ArrayRef = Arc::new(Int64Array::from(vec![10, 11, 12, 13]));
        let batch =
            RecordBatch::try_from_iter([("user_id", users), ("kafka_offset", offsets)]).unwrap();
        let column = |b: &RecordBatch, name: &str| -> Vec<i64> {
            let c = b.column_by_name(name).unwrap();
            c.as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .values()
                .to_vec()
        };

        let sorted = sort_rows(&batch, &["user_id".to_string()]).unwrap();
        assert_eq!(column(&sorted, "user_id"), [1, 1, 2, 3]);
        let mut rows: Vec<(i64, i64)> = column(&sorted, "user_id")
            .into_iter()
            .zip(column(&sorted, "kafka_offset"))
            .collect();
        assert_eq!(rows[2..], [(2, 12), (3, 10)]);
        rows.sort();
        assert_eq!(rows[..2], [(1, 11), (1, 13)]);

        assert_eq!(sort_rows(&batch, &[]).unwrap(), batch, "no keys, no change");
        assert!(sort_rows(&batch, &["no_such_column".to_string()]).is_err());
    }

    /// Ingest's files get row groups of 16k rows, merged ones of 128k.
    #[test]
    fn fresh_files_have_smaller_row_groups_than_merged_ones() {
        let n = 70_000;
        let batch = RecordBatch::try_from_iter([(
            "user_id",
            Arc::new(Int64Array::from_iter_values(0..n)) as ArrayRef,
        )])
        .unwrap();
        let groups = |rows: usize| {
            let mut bytes = Vec::new();
            let props = writer_properties(&batch.schema(), &[], rows);
            let mut writer = datafusion::parquet::arrow::ArrowWriter::try_new(
                &mut bytes,
                batch.schema(),
                Some(props),
            )
            .unwrap();
            writer.write(&batch).unwrap();
            let footer = writer.close().unwrap();
            footer.num_row_groups()
        };
        assert_eq!(
            (groups(FRESH_GROUP_ROWS), groups(MERGED_GROUP_ROWS)),
            (5, 1)
        );
    }

    #[test]
    fn the_footer_names_the_sort_keys() {
        let footer = |keys: &[String]| {
            let schema = Arc::new(datafusion::arrow::datatypes::Schema::empty());
            writer_properties(&schema, keys, MERGED_GROUP_ROWS)
                .key_value_metadata()
                .cloned()
                .unwrap_or_default()
        };
        let keys = ["user_id".to_string(), "event_time".to_string()];
        let kv = footer(&keys);
        assert_eq!(kv.len(), 1);
        assert_eq!(kv[0].key, SORTED_BY_KEY);
        assert_eq!(kv[0].value.as_deref(), Some("user_id,event_time"));
        assert!(footer(&[]).is_empty(), "unsorted files claim no order");
    }
}
