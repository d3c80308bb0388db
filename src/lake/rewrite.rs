//! Compaction's rewrite: chosen files of a table read back, sorted by the clustering columns the
//! table has, and written as new files of up to a target size, in one commit that removes the
//! old ones without changing data (`dataChange: false`), so readers and ingest's blind appends
//! are not disturbed.
//!
//! Why not delta-rs's optimize: its bin-packing keeps rows in arrival order, and its Z-order
//! rewrites every file of a partition, however large, on every run. Sorting only the files being
//! merged anyway costs one sort per merge, and a point query then reads one page of each file
//! instead of every row: the Parquet page index and the files' min/max statistics skip the rest.
//!
//! Every file lake writes, fresh from ingest or merged, says in its Parquet footer which columns
//! it is sorted by ([`SORTED_BY_KEY`], see [`super::file_format`]). Files that say so are merged
//! as sorted streams, a batch of each at a time, with no sort at all; only other files (written
//! by older versions, other writers, or sorted by other columns) are sorted, in a memory pool
//! that spills to disk. Merging large files thus costs disk and little CPU, not the memory of
//! the ingest process the merge runs in. Row groups are small because a reader holds a whole
//! row group of each file it merges, and a point query skips row groups by their statistics.
//! (A foreign file that claims an order it lacks makes a merged file out of order, a slower
//! file for point queries; no row is lost or doubled either way.)

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Field, FieldRef, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfigBuilder, ParquetFileReaderFactory, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::object_store::ObjectMeta;
use datafusion::parquet::file::metadata::PageIndexPolicy;
use datafusion::physical_expr::expressions::col;
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{execute_stream, ExecutionPlan, ExecutionPlanProperties};
use datafusion::prelude::{SessionConfig, SessionContext};
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, LogicalFileView, Remove};
use deltalake::protocol::DeltaOperation;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, Path};
use futures::StreamExt;

use super::file_format::{
    sort_keys, write_rows, writer_properties, MERGED_GROUP_ROWS, SORTED_BY_KEY,
};
use crate::error::{Error, Result};

/// Memory the sort of one merge may hold before it spills to disk.
const SORT_MEMORY: usize = 64 * 1024 * 1024;

/// Rows a merge holds decoded at once, spread over its inputs: each open input holds one batch,
/// so a merge of many small files reads smaller batches. It bounds the decoded share of a
/// merge's memory whatever its fan-in, which otherwise is the largest thing ingest holds.
const MERGE_ROWS_IN_FLIGHT: usize = 64 * 1024;

/// The batch size of a merge of `inputs` files: [`MERGE_ROWS_IN_FLIGHT`] shared among them,
/// between a floor below which per-batch work dominates and DataFusion's default.
fn merge_batch_rows(inputs: usize) -> usize {
    (MERGE_ROWS_IN_FLIGHT / inputs.max(1)).clamp(2048, 8192)
}

/// A file of the table to be merged.
#[derive(Debug, Clone)]
pub(crate) struct Input {
    pub(crate) path: Path,
    pub(crate) size: u64,
    /// When the file was written, as its add action says.
    pub(crate) modified: chrono::DateTime<chrono::Utc>,
    /// The file's partition values as the log writes them (column → serialized value).
    pub(crate) partition: HashMap<String, Option<String>>,
    pub(crate) remove: Remove,
}

impl Input {
    /// `file` of the table's snapshot as a merge input.
    pub(crate) fn of(file: &LogicalFileView) -> Self {
        Self {
            path: file.object_store_path(),
            size: u64::try_from(file.size()).unwrap_or(0),
            modified: file.modification_datetime().unwrap_or_default(),
            partition: file.partition_values_map(),
            remove: file.remove_action(false),
        }
    }
}

/// Files of one partition that become one or more files of up to the target size.
pub(crate) type Bin = Vec<Input>;

/// What a rewrite did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rewritten {
    pub(crate) files_removed: u64,
    pub(crate) files_added: u64,
}

/// Merges each bin into files of up to `target_bytes`, sorted by those of `cluster_by` the table
/// has, and commits all of it as one `OPTIMIZE` commit. A concurrent commit that removed one of
/// the inputs (another maintainer) makes the commit fail; appends do not.
pub(crate) async fn rewrite(
    table: &mut DeltaTable,
    name: &str,
    bins: Vec<Bin>,
    cluster_by: &[String],
    target_bytes: u64,
) -> Result<Rewritten> {
    let bins: Vec<Bin> = bins.into_iter().filter(|b| b.len() > 1).collect();
    if bins.is_empty() {
        return Ok(Rewritten::default());
    }
    let delta = |e| Error::delta(name, e);
    let writer = RecordBatchWriter::for_table(table).map_err(delta)?;
    let table_schema = writer.arrow_schema();
    let keys = sort_keys(&table_schema, cluster_by);
    let mut writer = writer
        .with_target_file_size(target_bytes)
        .with_writer_properties(writer_properties(&table_schema, &keys, MERGED_GROUP_ROWS));
    let partition_columns = table
        .snapshot()
        .map_err(delta)?
        .metadata()
        .partition_columns()
        .to_vec();
    let widest = bins.iter().map(Vec::len).max().unwrap_or(1);
    let ctx = session(table, merge_batch_rows(widest))?;
    let mut actions = Vec::new();
    for bin in &bins {
        let mut batches =
            merged(&ctx, table, &table_schema, &partition_columns, bin, &keys).await?;
        while let Some(batch) = batches.next().await {
            let batch = in_order_of(&batch?, &table_schema)?;
            write_rows(&mut writer, batch, &partition_columns)
                .await
                .map_err(delta)?;
        }
        // One flush per bin: a file never mixes rows of two bins, which may be two partitions.
        for mut add in writer.flush().await.map_err(delta)? {
            add.data_change = false;
            actions.push(Action::Add(add));
        }
    }
    let files_added = actions.len() as u64;
    let removes: Vec<Action> = bins
        .iter()
        .flatten()
        .map(|f| Action::Remove(f.remove.clone()))
        .collect();
    let files_removed = removes.len() as u64;
    actions.extend(removes);
    let operation = DeltaOperation::Optimize {
        predicate: None,
        target_size: i64::try_from(target_bytes).unwrap_or(i64::MAX),
    };
    let properties = CommitProperties::default().with_cleanup_expired_logs(Some(false));
    let snapshot = table.snapshot().map_err(delta)?;
    let finalized = CommitBuilder::from(properties)
        .with_actions(actions)
        .build(Some(snapshot), table.log_store(), operation)
        .await
        .map_err(delta)?;
    table.state = Some(finalized.snapshot());
    Ok(Rewritten {
        files_removed,
        files_added,
    })
}

/// The rows of `bin`'s files in the order of `keys` (see [`merge_plan`]), as `ctx` runs them.
async fn merged(
    ctx: &SessionContext,
    table: &DeltaTable,
    table_schema: &SchemaRef,
    partition_columns: &[String],
    bin: &[Input],
    keys: &[String],
) -> Result<SendableRecordBatchStream> {
    let cache = ctx.runtime_env().cache_manager.get_file_metadata_cache();
    let sorted = sorted_inputs(table, &cache, bin, keys).await?;
    let reader = Arc::new(CachedParquetFileReaderFactory::new(
        table.object_store(),
        cache,
    ));
    let plan = merge_plan(table_schema, partition_columns, bin, &sorted, keys, reader)?;
    Ok(execute_stream(plan, ctx.task_ctx())?)
}

/// A session whose object store is the table's root, using one core (maintenance runs beside
/// ingest) and a memory pool that makes the sort spill.
fn session(table: &DeltaTable, batch_rows: usize) -> Result<SessionContext> {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(SORT_MEMORY, 1.0)
        .build_arc()?;
    let config = SessionConfig::new()
        .with_target_partitions(1)
        .with_batch_size(batch_rows);
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    ctx.register_object_store(store_url()?.as_ref(), table.object_store());
    Ok(ctx)
}

fn store_url() -> Result<ObjectStoreUrl> {
    Ok(ObjectStoreUrl::parse("lake-table://root")?)
}

/// For each file of the bin, whether its footer says it is sorted by `keys` (a file an earlier
/// merge wrote). Reads the footers only, into `cache`, where the merge's scan finds them
/// instead of reading them again.
async fn sorted_inputs(
    table: &DeltaTable,
    cache: &Arc<FileMetadataCache>,
    bin: &[Input],
    keys: &[String],
) -> Result<Vec<bool>> {
    if keys.is_empty() {
        return Ok(vec![false; bin.len()]);
    }
    let wanted = keys.join(",");
    let store = table.object_store();
    let mut sorted = Vec::with_capacity(bin.len());
    for input in bin {
        let footer = DFParquetMetadata::new(store.as_ref(), &object_meta(input))
            .with_file_metadata_cache(Some(cache.clone()))
            // The footer alone: the scan reads the page index if its reader asks for it.
            .with_page_index_policy(Some(PageIndexPolicy::Skip))
            .fetch_metadata()
            .await?;
        let says = footer
            .file_metadata()
            .key_value_metadata()
            .into_iter()
            .flatten()
            .any(|kv| kv.key == SORTED_BY_KEY && kv.value.as_deref() == Some(wanted.as_str()));
        sorted.push(says);
    }
    Ok(sorted)
}

/// Reads the bin's files (their partition values as constant columns) in the order of `keys`,
/// or in file order when there are none, through `reader`. Files that are `sorted` already are
/// read one stream each and merged; the others are read together and sorted.
fn merge_plan(
    table_schema: &SchemaRef,
    partition_columns: &[String],
    bin: &[Input],
    sorted: &[bool],
    keys: &[String],
    reader: Arc<dyn ParquetFileReaderFactory>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let is_partition = |f: &Field| partition_columns.iter().any(|p| p == f.name());
    let file_fields: Vec<FieldRef> = table_schema
        .fields()
        .iter()
        .filter(|f| !is_partition(f))
        .cloned()
        .collect();
    let partition_fields: Vec<FieldRef> = partition_columns
        .iter()
        .map(|p| {
            table_schema
                .field_with_name(p)
                .map(|f| Arc::new(f.clone()))
                .map_err(Into::into)
        })
        .collect::<Result<_>>()?;
    let schema = TableSchema::builder(Arc::new(Schema::new(file_fields)))
        .with_table_partition_cols(partition_fields.clone())
        .build();
    let (mut in_order, mut unordered) = (Vec::new(), Vec::new());
    for (input, &is_sorted) in bin.iter().zip(sorted) {
        let file = partitioned_file(input, &partition_fields)?;
        if is_sorted {
            in_order.push(file);
        } else {
            unordered.push(file);
        }
    }
    let scan = |groups: Vec<FileGroup>, ordering: Option<LexOrdering>| -> Result<_> {
        let source = Arc::new(
            ParquetSource::new(schema.clone()).with_parquet_file_reader_factory(reader.clone()),
        );
        let config = FileScanConfigBuilder::new(store_url()?, source)
            .with_file_groups(groups)
            .with_output_ordering(ordering.into_iter().collect())
            .build();
        let plan: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
        Ok(plan)
    };
    let Some(ordering) = ordering(keys, schema.table_schema())? else {
        return scan(
            vec![FileGroup::new(
                unordered.into_iter().chain(in_order).collect(),
            )],
            None,
        );
    };
    let mut streams: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
    if !in_order.is_empty() {
        // One group per file: each is a stream in key order.
        let groups = in_order
            .into_iter()
            .map(|f| FileGroup::new(vec![f]))
            .collect();
        streams.push(scan(groups, Some(ordering.clone()))?);
    }
    if !unordered.is_empty() {
        let all = scan(vec![FileGroup::new(unordered)], None)?;
        streams.push(Arc::new(SortExec::new(ordering.clone(), all)));
    }
    let inputs = UnionExec::try_new(streams)?;
    Ok(if inputs.output_partitioning().partition_count() > 1 {
        Arc::new(SortPreservingMergeExec::new(ordering, inputs))
    } else {
        inputs
    })
}

/// The ascending order of `keys` over a scan's columns, if there are any keys.
fn ordering(keys: &[String], scan_schema: &SchemaRef) -> Result<Option<LexOrdering>> {
    let exprs: Vec<PhysicalSortExpr> = keys
        .iter()
        .map(|c| col(c, scan_schema).map(PhysicalSortExpr::new_default))
        .collect::<std::result::Result<_, _>>()?;
    Ok(LexOrdering::new(exprs))
}

/// The same for every read of `input`, so that a footer cached by one read is valid for the next.
fn object_meta(input: &Input) -> ObjectMeta {
    ObjectMeta {
        location: input.path.clone(),
        last_modified: input.modified,
        size: input.size,
        e_tag: None,
        version: None,
    }
}

/// The scan's view of one input: its size and its partition values as typed constants.
fn partitioned_file(input: &Input, partition_fields: &[FieldRef]) -> Result<PartitionedFile> {
    let mut file = PartitionedFile::new_from_meta(object_meta(input));
    file.partition_values = partition_fields
        .iter()
        .map(|f| match input.partition.get(f.name()).cloned().flatten() {
            Some(v) => ScalarValue::try_from_string(v, f.data_type()),
            None => ScalarValue::try_from(f.data_type()),
        })
        .collect::<std::result::Result<_, _>>()?;
    Ok(file)
}

/// `batch` with its columns in the table's order (the scan puts partition columns last).
fn in_order_of(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let batch_schema = batch.schema();
    let indices = schema
        .fields()
        .iter()
        .map(|f| batch_schema.index_of(f.name()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(batch.project(&indices)?)
}

#[cfg(test)]
mod tests {
    //! Merges as compaction runs them: rows kept, each in its partition, files sorted.
    use super::*;
    use crate::ingest::writer::append;
    use crate::lake::maintain::{compact, MaintainOptions, MAX_BIN_FILES};
    use crate::lake::{user_events_spec, Lake, USER_EVENTS};
    use datafusion::arrow::array::{
        Array, ArrayRef, Date32Array, Int32Array, Int64Array, StringArray,
        TimestampMicrosecondArray,
    };
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    /// `rows` events of users in a scrambled order, alternating between two dates.
    fn events(first_offset: i64, rows: i64) -> RecordBatch {
        let offsets: Vec<i64> = (first_offset..first_offset + rows).collect();
        let users: Vec<i64> = offsets.iter().map(|o| (o * 7919) % 101).collect();
        let days: Vec<i32> = offsets.iter().map(|o| 20_000 + (o % 2) as i32).collect();
        let micros: Vec<i64> = days
            .iter()
            .map(|d| i64::from(*d) * 86_400_000_000)
            .collect();
        let ts = |v: Vec<i64>| {
            Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC")) as ArrayRef
        };
        let n = offsets.len();
        RecordBatch::try_new(
            crate::event::EVENTS_SCHEMA.clone(),
            vec![
                Arc::new(Int64Array::from(users)),
                Arc::new(StringArray::from(vec!["click"; n])),
                ts(micros.clone()),
                Arc::new(Int64Array::from(vec![1; n])),
                Arc::new(StringArray::from(vec!["s"; n])),
                Arc::new(Date32Array::from(days)),
                Arc::new(Int32Array::from(vec![0; n])),
                Arc::new(Int64Array::from(offsets)),
                ts(micros.clone()),
                ts(micros),
            ],
        )
        .unwrap()
    }

    /// (rows, distinct offsets, rows of user 42 on the first date) as a reader sees them.
    async fn counts(table: &DeltaTable) -> Vec<i64> {
        let ctx = SessionContext::new();
        ctx.register_table("t", table.table_provider().await.unwrap())
            .unwrap();
        let sql = "SELECT count(*), count(DISTINCT kafka_offset), \
                   count(*) FILTER (WHERE user_id = 42 AND event_date = DATE '2024-10-04'), \
                   count(*) FILTER (WHERE kafka_offset % 2 = 0 AND event_date <> DATE '2024-10-04') \
                   FROM t";
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        (0..4)
            .map(|i| {
                let col = batches[0].column(i);
                col.as_any().downcast_ref::<Int64Array>().unwrap().value(0)
            })
            .collect()
    }

    /// raw.user_events in a new lake after `commits` appends of `rows` events each.
    async fn appended(commits: i64, rows: i64) -> (tempfile::TempDir, DeltaTable) {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(dir.path()).unwrap();
        let mut table = lake.open_or_create(&user_events_spec()).await.unwrap();
        for i in 0..commits {
            let batch = vec![events(i * rows, rows)];
            append(&mut table, USER_EVENTS, batch, &[], vec![])
                .await
                .unwrap();
        }
        (dir, table)
    }

    /// raw.user_events after `commits` appends of `rows` events each, sorted by user as ingest
    /// commits them (their footers say so), and the table's folder.
    async fn appended_sorted(
        commits: i64,
        rows: i64,
    ) -> (tempfile::TempDir, std::path::PathBuf, DeltaTable) {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(dir.path()).unwrap();
        let mut table = lake.open_or_create(&user_events_spec()).await.unwrap();
        let keys = ["user_id".to_string()];
        for i in 0..commits {
            let batch =
                crate::lake::file_format::sort_rows(&events(i * rows, rows), &keys).unwrap();
            append(&mut table, USER_EVENTS, vec![batch], &keys, vec![])
                .await
                .unwrap();
        }
        (dir, lake.table_path(USER_EVENTS), table)
    }

    /// A commit of one date is handed to delta-rs whole ([`write_rows`]), one of two dates is
    /// split by delta-rs: either way each file holds the rows of its own partition, under that
    /// partition's folder, and a reader sees every row once.
    #[tokio::test]
    async fn commits_of_one_date_and_of_two_land_in_their_partitions() {
        use datafusion::arrow::array::{BooleanArray, Date32Array};
        use datafusion::arrow::compute::filter_record_batch;
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(dir.path()).unwrap();
        let mut table = lake.open_or_create(&user_events_spec()).await.unwrap();
        let both = events(0, 400);
        let dates = both.column_by_name("event_date").unwrap();
        let dates = dates.as_any().downcast_ref::<Date32Array>().unwrap();
        let first: BooleanArray = dates.iter().map(|d| d.map(|d| d == 20_000)).collect();
        let one_date = filter_record_batch(&both, &first).unwrap();
        assert_eq!(one_date.num_rows(), 200);
        for batch in [one_date, events(400, 400)] {
            append(&mut table, USER_EVENTS, vec![batch], &[], vec![])
                .await
                .unwrap();
        }
        assert_eq!(counts(&table).await, [600, 600, 4, 0]);

        let root = lake.table_path(USER_EVENTS);
        let mut files = Vec::new();
        for file in table.snapshot().unwrap().log_data().iter() {
            let date = file.partition_values_map()["event_date"].clone().unwrap();
            let path = file.path().to_string();
            assert!(path.starts_with(&format!("event_date={date}/")), "{path}");
            let parquet = std::fs::File::open(root.join(&path)).unwrap();
            let reader = ParquetRecordBatchReaderBuilder::try_new(parquet).unwrap();
            let rows = reader.metadata().file_metadata().num_rows();
            assert!(
                reader.schema().field_with_name("event_date").is_err(),
                "the partition column is in the path, not the file"
            );
            files.push((date, rows));
        }
        files.sort();
        assert_eq!(
            files,
            [
                ("2024-10-04".to_string(), 200),
                ("2024-10-04".to_string(), 200),
                ("2024-10-05".to_string(), 200)
            ]
        );
    }

    #[tokio::test]
    async fn fresh_files_are_merged_per_partition_and_sorted_by_user() {
        let (dir, table) = appended(6, 500).await;
        let lake = Lake::new(dir.path()).unwrap();
        let before = counts(&table).await;
        assert_eq!(before[..2], [3000, 3000]);
        assert!(before[2] > 0);
        assert_eq!(before[3], 0, "even offsets are all on the first date");
        assert_eq!(table.snapshot().unwrap().log_data().num_files(), 12);

        let (table, report) = compact(table, "raw.user_events", &MaintainOptions::default())
            .await
            .unwrap();
        assert_eq!((report.files_removed, report.files_added), (12, 2));
        assert_eq!(counts(&table).await, before);

        let snapshot = table.snapshot().unwrap();
        let root = lake.table_path(USER_EVENTS);
        let mut dates = Vec::new();
        for file in snapshot.log_data().iter() {
            dates.push(file.partition_values_map()["event_date"].clone());
            let parquet = std::fs::File::open(root.join(file.path().as_ref())).unwrap();
            let reader = ParquetRecordBatchReaderBuilder::try_new(parquet)
                .unwrap()
                .build()
                .unwrap();
            let mut users = Vec::new();
            for batch in reader {
                let batch = batch.unwrap();
                let col = batch.column_by_name("user_id").unwrap();
                let col = col.as_any().downcast_ref::<Int64Array>().unwrap();
                assert_eq!(col.null_count(), 0);
                users.extend(col.values().iter().copied());
            }
            assert_eq!(users.len(), 1500);
            assert!(users.is_sorted(), "{}: rows sorted by user_id", file.path());
            assert!(users.first() < users.last());
        }
        dates.sort();
        assert_eq!(
            dates,
            [
                Some("2024-10-04".to_string()),
                Some("2024-10-05".to_string())
            ]
        );
    }

    /// The user ids of every file of the table, file by file, and whether each file's footer
    /// says it is sorted by user_id.
    fn files_by_user(table: &DeltaTable, root: &std::path::Path) -> Vec<(Vec<i64>, bool)> {
        let snapshot = table.snapshot().unwrap();
        let mut files = Vec::new();
        for file in snapshot.log_data().iter() {
            let parquet = std::fs::File::open(root.join(file.path().as_ref())).unwrap();
            let builder = ParquetRecordBatchReaderBuilder::try_new(parquet).unwrap();
            let says_sorted = builder
                .metadata()
                .file_metadata()
                .key_value_metadata()
                .into_iter()
                .flatten()
                .any(|kv| kv.key == SORTED_BY_KEY && kv.value.as_deref() == Some("user_id"));
            let mut users = Vec::new();
            for batch in builder.build().unwrap() {
                let batch = batch.unwrap();
                let col = batch.column_by_name("user_id").unwrap();
                let col = col.as_any().downcast_ref::<Int64Array>().unwrap();
                users.extend(col.values().iter().copied());
            }
            files.push((users, says_sorted));
        }
        files
    }

    /// Ingest's commits: each batch sorted by user, its files' footers saying so.
    #[tokio::test]
    async fn sorted_fresh_files_merge_as_streams_at_most_32_into_one() {
        let (_dir, root, table) = appended_sorted(40, 50).await;
        let fresh = files_by_user(&table, &root);
        assert_eq!(fresh.len(), 80, "40 commits, two dates each");
        assert!(fresh.iter().all(|(users, says)| *says && users.is_sorted()));
        let before = counts(&table).await;

        let opts = MaintainOptions::default();
        let (table, report) = compact(table, "raw.user_events", &opts).await.unwrap();
        // Per date: 40 files, merged 32 and 8 at a time.
        assert_eq!((report.files_removed, report.files_added), (80, 4));
        assert_eq!(counts(&table).await, before);
        let merged = files_by_user(&table, &root);
        let mut sizes: Vec<usize> = merged.iter().map(|(users, _)| users.len()).collect();
        sizes.sort();
        assert_eq!(sizes, [200, 200, 800, 800]);
        assert!(merged
            .iter()
            .all(|(users, says)| *says && users.is_sorted()));
    }

    /// A merge of 32 files reads batches smaller than its inputs' row groups, so each input
    /// stream yields several: every row still arrives once and in order.
    #[tokio::test]
    async fn a_wide_merge_reads_smaller_batches_and_keeps_every_row_in_order() {
        assert_eq!(merge_batch_rows(2), 8192);
        assert!(merge_batch_rows(MAX_BIN_FILES) * MAX_BIN_FILES <= MERGE_ROWS_IN_FLIGHT);
        let rows = 2 * (merge_batch_rows(MAX_BIN_FILES) as i64) + 100;
        let (_dir, root, table) = appended_sorted(MAX_BIN_FILES as i64, rows).await;
        let before = counts(&table).await;
        assert_eq!(before[0], rows * MAX_BIN_FILES as i64);

        let (table, report) = compact(table, "raw.user_events", &MaintainOptions::default())
            .await
            .unwrap();
        // Per date: 32 files into one bin, written as files of up to `small_file_bytes`.
        assert_eq!(report.files_removed, 64);
        assert!((2..=8).contains(&report.files_added), "{report:?}");
        assert_eq!(counts(&table).await, before);
        let merged = files_by_user(&table, &root);
        assert!(merged
            .iter()
            .all(|(users, says)| *says && users.is_sorted()));
        assert_eq!(
            merged.iter().map(|(u, _)| u.len() as i64).sum::<i64>(),
            before[0]
        );
    }

    #[tokio::test]
    async fn merged_files_merge_again_with_fresh_ones_into_sorted_files() {
        let (dir, table) = appended(6, 500).await;
        let lake = Lake::new(dir.path()).unwrap();
        let root = lake.table_path(USER_EVENTS);
        let opts = MaintainOptions::default();
        let (mut table, _) = compact(table, "raw.user_events", &opts).await.unwrap();
        let merged = files_by_user(&table, &root);
        assert_eq!(merged.len(), 2);
        assert!(
            merged.iter().all(|(_, says)| *says),
            "merges mark their output"
        );
        for i in 6..12 {
            let batch = vec![events(i * 500, 500)];
            append(&mut table, USER_EVENTS, batch, &[], vec![])
                .await
                .unwrap();
        }
        let fresh = files_by_user(&table, &root);
        assert_eq!(fresh.iter().filter(|(_, says)| !*says).count(), 12);
        let before = counts(&table).await;
        assert_eq!(before[..2], [6000, 6000]);

        // `lake maintain` merges every file of a partition: one sorted and six fresh.
        let report = crate::lake::maintain::maintain_table(&lake, "raw.user_events", &opts)
            .await
            .unwrap();
        assert_eq!((report.files_removed, report.files_added), (14, 2));
        let table = crate::lake::maintain::open_named(&lake, "raw.user_events")
            .await
            .unwrap();
        assert_eq!(counts(&table).await, before);
        for (users, says_sorted) in files_by_user(&table, &root) {
            assert_eq!(users.len(), 3000);
            assert!(says_sorted);
            assert!(users.is_sorted(), "rows sorted by user_id");
        }
    }

    /// A merge reads each input's footer once: the scan finds the footer the check of its sort
    /// order read (on an object store, each read is a request or two per file).
    #[tokio::test]
    async fn a_merge_reads_each_footer_once() {
        let (_dir, _root, table) = appended_sorted(4, 50).await;
        let snapshot = table.snapshot().unwrap();
        let bin: Bin = snapshot.log_data().iter().map(|f| Input::of(&f)).collect();
        assert_eq!(bin.len(), 8, "4 commits, two dates each");
        let schema = RecordBatchWriter::for_table(&table).unwrap().arrow_schema();
        let ctx = session(&table, 8192).unwrap();
        let keys = ["user_id".to_string()];
        let partitions = ["event_date".to_string()];
        let mut batches = merged(&ctx, &table, &schema, &partitions, &bin, &keys)
            .await
            .unwrap();
        let mut rows = 0;
        while let Some(batch) = batches.next().await {
            rows += batch.unwrap().num_rows();
        }
        assert_eq!(rows, 200);
        let cached = ctx
            .runtime_env()
            .cache_manager
            .get_file_metadata_cache()
            .list_entries();
        for input in &bin {
            let hits = cached.get(&input.path).map(|entry| entry.hits);
            assert!(
                hits.is_some_and(|h| h > 0),
                "the scan of {} took its footer from the cache: {hits:?}",
                input.path
            );
        }
    }

    fn input(path: &str, date: &str) -> Input {
        Input {
            path: Path::from(path),
            size: 1000,
            modified: chrono::DateTime::UNIX_EPOCH,
            partition: HashMap::from([("event_date".to_string(), Some(date.to_string()))]),
            remove: Remove::default(),
        }
    }

    /// The plan's operators, one line each.
    fn shape(sorted: &[bool]) -> String {
        let bin: Vec<Input> = (0..sorted.len())
            .map(|i| input(&format!("f{i}.parquet"), "2024-10-04"))
            .collect();
        let schema = Arc::new(crate::event::EVENTS_SCHEMA.as_ref().clone());
        let reader = Arc::new(CachedParquetFileReaderFactory::new(
            Arc::new(object_store::memory::InMemory::new()),
            SessionContext::new()
                .runtime_env()
                .cache_manager
                .get_file_metadata_cache(),
        ));
        let plan = merge_plan(
            &schema,
            &["event_date".into()],
            &bin,
            sorted,
            &["user_id".into()],
            reader,
        )
        .unwrap();
        let text = datafusion::physical_plan::displayable(plan.as_ref())
            .indent(false)
            .to_string();
        text
    }

    #[test]
    fn sorted_files_are_merged_as_streams_and_only_the_others_are_sorted() {
        let all_sorted = shape(&[true, true, true]);
        assert!(
            all_sorted.starts_with("SortPreservingMergeExec"),
            "{all_sorted}"
        );
        assert!(!all_sorted.contains("SortExec"), "{all_sorted}");
        assert!(all_sorted.contains("file_groups={3 groups"), "{all_sorted}");

        let mixed = shape(&[true, false, true, false]);
        assert!(mixed.starts_with("SortPreservingMergeExec"), "{mixed}");
        assert_eq!(mixed.matches("SortExec").count(), 1, "{mixed}");

        let none_sorted = shape(&[false, false]);
        assert!(none_sorted.starts_with("SortExec"), "{none_sorted}");
        assert!(
            !none_sorted.contains("SortPreservingMergeExec"),
            "{none_sorted}"
        );
    }

    #[tokio::test]
    async fn a_table_without_the_clustering_columns_is_still_compacted() {
        let (_dir, table) = appended(3, 10).await;
        let opts = MaintainOptions {
            cluster_by: vec!["no_such_column".into()],
            ..MaintainOptions::default()
        };
        let before = counts(&table).await;
        let (table, report) = compact(table, "raw.user_events", &opts).await.unwrap();
        assert_eq!((report.files_removed, report.files_added), (6, 2));
        assert_eq!(counts(&table).await, before);
    }
}
