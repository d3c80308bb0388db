//! Where `--date` is bound: a job's SQL files run in one DataFusion session over pinned lake
//! snapshots, with the date passed as the DATE parameter `$date` (never pasted into the text).
//! Errors are reported as `file:line:column: message` when DataFusion knows the place.

use chrono::NaiveDate;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::Column;
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::execution::context::{SessionConfig, SessionContext};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{col, lit, DataFrame, Expr};

use super::date_guard::guarded_date;
use super::dates::date_value;
use super::output;
use super::sql_file::SqlFile;
use crate::error::{Error, Result};
use crate::lake::catalog::{self, Lookup, Pins};
use crate::lake::snapshots::bring_up_to_date;
use crate::lake::{Lake, TableId};
use deltalake::DeltaTable;
use url::Url;

/// The session one run of the job uses for all its queries.
pub(crate) struct JobSession {
    lake: Lake,
    ctx: SessionContext,
    pins: Pins,
}

impl JobSession {
    /// `memory_limit` (bytes) caps what queries hold in memory; past it, sorts and aggregations
    /// spill to temporary files instead of failing.
    pub(crate) fn new(lake: &Lake, memory_limit: Option<usize>) -> Result<Self> {
        let mut runtime = RuntimeEnvBuilder::new();
        if let Some(limit) = memory_limit {
            runtime = runtime.with_memory_limit(limit, 1.0);
        }
        let runtime = runtime.build_arc()?;
        let mut config = SessionConfig::new();
        // Spans let planning errors say where in the file they are.
        config.options_mut().sql_parser.collect_spans = true;
        let pins = Pins::default();
        let ctx = catalog::session_with(lake, config, runtime, Lookup::Pinned(pins.clone()));
        Ok(Self {
            lake: lake.clone(),
            ctx,
            pins,
        })
    }

    /// The job's queries read `table` (opened already) at its latest version: brought up to
    /// date (one request when nothing changed), then pinned under its name.
    pub(crate) async fn pin_open(&self, id: TableId, table: &mut DeltaTable) -> Result<()> {
        bring_up_to_date(table)
            .await
            .map_err(|e| Error::delta(id, e))?;
        self.pins.pin_open(&id.to_string(), table, &self.ctx).await
    }

    /// From now on the job's queries see `processed.<name>` as published except for the rows of
    /// `date`, which are what is staged at `staged` (write, audit, publish: the files after this
    /// one and the checks read the result before anyone else can).
    pub(crate) async fn show_staged(
        &self,
        name: &str,
        date: NaiveDate,
        staged: &Url,
        published: &Url,
    ) -> Result<()> {
        let staged = self.read_delta(staged).await?;
        let view = if self.lake.has_log(published).await? {
            let others = self
                .read_delta(published)
                .await?
                .filter(col("date").not_eq(lit(date_value(date))))?;
            // By name: the staged result may have a column the published table lacks so far.
            others.union_by_name(staged)?
        } else {
            staged
        };
        self.pins.set(&output::table_name(name), view.into_view());
        Ok(())
    }

    /// The latest snapshot of the Delta table at `url`.
    pub(crate) async fn read_delta(&self, url: &Url) -> Result<DataFrame> {
        let table = self.lake.open_url(url).await?;
        let provider = table.table_provider().await?;
        Ok(self.ctx.read_table(provider)?)
    }

    /// Plans `file` with `$date` bound; nothing runs yet.
    pub(crate) async fn plan(&self, file: &SqlFile, date: NaiveDate) -> Result<DataFrame> {
        let df = self.ctx.sql(&file.text).await.map_err(|e| at(file, &e))?;
        df.with_param_values(vec![("date", date_value(date))])
            .map_err(|e| at(file, &e))
    }

    /// `file`'s result for `date`, to be streamed into its table: it must have a DATE column
    /// `date`, and every row must be of `date` (checked as the rows go by).
    pub(crate) async fn daily_result(&self, file: &SqlFile, date: NaiveDate) -> Result<DataFrame> {
        let df = self.plan(file, date).await?;
        require_date_column(file, df.schema().inner())?;
        let columns: Vec<Expr> = df
            .schema()
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                "date" => guarded_date(&file.path.display().to_string(), date).alias("date"),
                name => col(Column::from_name(name)),
            })
            .collect();
        df.select(columns).map_err(|e| at(file, &e))
    }

    /// Runs `file` for `date` and returns all its rows (at least one batch, maybe empty, so
    /// that the result's schema is known even without rows).
    pub(crate) async fn collect(
        &self,
        file: &SqlFile,
        date: NaiveDate,
    ) -> Result<Vec<RecordBatch>> {
        let df = self.plan(file, date).await?;
        let schema: SchemaRef = df.schema().inner().clone();
        let mut batches = df.collect().await.map_err(|e| at(file, &e))?;
        if batches.is_empty() {
            batches.push(RecordBatch::new_empty(schema));
        }
        Ok(batches)
    }

    /// Runs one of lake's own queries (not a user's file), with `$date` bound if given.
    pub(crate) async fn internal(
        &self,
        sql: &str,
        date: Option<NaiveDate>,
    ) -> Result<Vec<RecordBatch>> {
        let params = date
            .map(|d| vec![("date", date_value(d))])
            .unwrap_or_default();
        self.internal_with(sql, params).await
    }

    /// Runs one of lake's own queries with named parameters (`$name`).
    pub(crate) async fn internal_with(
        &self,
        sql: &str,
        params: Vec<(&str, ScalarValue)>,
    ) -> Result<Vec<RecordBatch>> {
        let mut df = self.ctx.sql(sql).await?;
        if !params.is_empty() {
            df = df.with_param_values(params)?;
        }
        Ok(df.collect().await?)
    }
}

/// Checks that a daily file's result has a DATE column `date` and at least one other column.
pub(crate) fn require_date_column(file: &SqlFile, schema: &SchemaRef) -> Result<()> {
    match schema.field_with_name("date") {
        Err(_) => Err(Error::Config(format!(
            "{}: the result needs a `date` column",
            file.path.display()
        ))),
        Ok(f) if f.data_type() != &DataType::Date32 => Err(Error::Config(format!(
            "{}: `date` must be a DATE, not {}",
            file.path.display(),
            f.data_type()
        ))),
        // `date` is the partition column, kept in folder names, not in the Parquet files.
        Ok(_) if schema.fields().len() < 2 => Err(Error::Config(format!(
            "{}: the result needs a column besides `date`",
            file.path.display()
        ))),
        Ok(_) => Ok(()),
    }
}

/// `file[:line:column]: message`, the place taken from DataFusion's diagnostic when it has one.
pub(crate) fn at(file: &SqlFile, e: &DataFusionError) -> Error {
    let place = e
        .diagnostic()
        .and_then(|d| d.span)
        .map(|s| format!(":{}:{}", s.start.line, s.start.column))
        .unwrap_or_default();
    Error::Config(format!("{}{place}: {e}", file.path.display()))
}
