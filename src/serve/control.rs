//! The control API (`proto/lake/v1/control.proto`): trigger the daily job, read run history,
//! list tables, see ingest progress. Served beside Flight SQL, behind the same [`super::auth`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use tonic::{Request, Response, Status};

use super::overview;
use super::statement::Engine;
use crate::daily::history::{self, RunFilter, StoredRun};
use crate::daily::sensor::SensorOptions;
use crate::daily::{self, DailyOptions};
use crate::lake::Lake;
use crate::shutdown::CancellationToken;

/// Code generated from `proto/lake/v1/control.proto` at build time.
pub mod proto {
    tonic::include_proto!("lake.v1");
}

use proto::control_server::Control;

/// Settings the API's daily runs use.
#[derive(Debug, Clone)]
pub(crate) struct ControlOptions {
    pub(crate) sql_dir: PathBuf,
    pub(crate) topic: String,
    pub(crate) lateness: Duration,
    pub(crate) max_future_skew: Duration,
    pub(crate) memory_limit: Option<usize>,
}

impl Default for ControlOptions {
    fn default() -> Self {
        let daily = DailyOptions::default();
        let sensor = SensorOptions::default();
        Self {
            sql_dir: daily.sql_dir,
            topic: sensor.topic,
            lateness: sensor.lateness,
            max_future_skew: sensor.max_future_skew,
            memory_limit: daily.memory_limit,
        }
    }
}

/// Dates one TriggerDailyRun may run: a call holds its connection until they are all done.
const MAX_TRIGGERED_DAYS: i64 = 31;
/// Longest sensor wait a TriggerDailyRun may ask for.
const MAX_TRIGGER_WAIT: Duration = Duration::from_secs(3600);

pub(crate) struct ControlService {
    pub(crate) lake: Lake,
    /// Listing tables and reading ingest progress scan tables: they run under the same slots
    /// and timeout as queries.
    pub(crate) engine: Arc<Engine>,
    pub(crate) opts: ControlOptions,
    /// The server's shutdown: a daily run waiting for its sensor stops with it.
    pub(crate) shutdown: CancellationToken,
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

fn parse_date(field: &str, text: &str) -> Result<NaiveDate, Status> {
    text.parse().map_err(|_| {
        Status::invalid_argument(format!("{field}: expected YYYY-MM-DD, got {text:?}"))
    })
}

fn to_proto(run: StoredRun) -> proto::Run {
    proto::Run {
        run_id: run.run_id,
        date: run.date,
        status: run.status,
        trigger: run.trigger,
        started_at: run.started_at,
        finished_at: run.finished_at,
        rows: run.rows.into_iter().collect(),
        error: run.error.unwrap_or_default(),
        checks: run
            .checks
            .into_iter()
            .map(|c| proto::CheckResult {
                check: c.check,
                severity: c.severity,
                status: c.status,
                violation_count: c.violation_count,
                sample: c.sample,
                description: c.description.unwrap_or_default(),
            })
            .collect(),
    }
}

impl ControlService {
    async fn run_by_id(&self, run_id: &str) -> Result<Option<proto::Run>, Status> {
        let filter = RunFilter {
            run_id: Some(run_id.to_string()),
            date: None,
            limit: 1,
        };
        let runs = history::load_runs(&self.lake, &filter)
            .await
            .map_err(internal)?;
        Ok(runs.into_iter().next().map(to_proto))
    }
}

#[tonic::async_trait]
impl Control for ControlService {
    async fn trigger_daily_run(
        &self,
        request: Request<proto::TriggerDailyRunRequest>,
    ) -> Result<Response<proto::TriggerDailyRunResponse>, Status> {
        let r = request.into_inner();
        let (from, to) = match (r.date.as_str(), r.from_date.as_str(), r.to_date.as_str()) {
            (d, "", "") if !d.is_empty() => (parse_date("date", d)?, parse_date("date", d)?),
            ("", f, t) if !f.is_empty() && !t.is_empty() => {
                (parse_date("from_date", f)?, parse_date("to_date", t)?)
            }
            _ => {
                return Err(Status::invalid_argument(
                    "give either date, or from_date and to_date",
                ))
            }
        };
        if from > to {
            return Err(Status::invalid_argument(format!(
                "from_date {from} is after to_date {to}"
            )));
        }
        let days = (to - from).num_days() + 1;
        if days > MAX_TRIGGERED_DAYS {
            return Err(Status::invalid_argument(format!(
                "{days} dates asked for, at most {MAX_TRIGGERED_DAYS} per call: backfill longer \
                 ranges with `lake daily --from --to`"
            )));
        }
        if u64::from(r.wait_seconds) > MAX_TRIGGER_WAIT.as_secs() {
            return Err(Status::invalid_argument(format!(
                "wait_seconds {} is more than the {} allowed",
                r.wait_seconds,
                MAX_TRIGGER_WAIT.as_secs()
            )));
        }
        let opts = DailyOptions {
            sql_dir: self.opts.sql_dir.clone(),
            only: (!r.only.is_empty()).then_some(r.only),
            dry_run: false,
            sensor: (!r.no_sensor).then(|| SensorOptions {
                topic: self.opts.topic.clone(),
                lateness: self.opts.lateness,
                wait: Duration::from_secs(r.wait_seconds.into()),
                max_future_skew: self.opts.max_future_skew,
            }),
            memory_limit: self.opts.memory_limit,
            trigger: "api".into(),
        };
        let done = daily::run_range(&self.lake, &opts, from, to, &self.shutdown, |_| {})
            .await
            .map_err(internal)?;
        let mut runs = Vec::new();
        for run in done {
            match self.run_by_id(&run.run_id).await? {
                Some(stored) => runs.push(stored),
                None => {
                    return Err(Status::internal(format!(
                        "run {} was not recorded",
                        run.run_id
                    )))
                }
            }
        }
        Ok(Response::new(proto::TriggerDailyRunResponse { runs }))
    }

    async fn get_run(
        &self,
        request: Request<proto::GetRunRequest>,
    ) -> Result<Response<proto::Run>, Status> {
        let id = request.into_inner().run_id;
        match self.run_by_id(&id).await? {
            Some(run) => Ok(Response::new(run)),
            None => Err(Status::not_found(format!("no run {id:?}"))),
        }
    }

    async fn list_runs(
        &self,
        request: Request<proto::ListRunsRequest>,
    ) -> Result<Response<proto::ListRunsResponse>, Status> {
        let r = request.into_inner();
        let filter = RunFilter {
            run_id: None,
            date: match r.date.as_str() {
                "" => None,
                d => Some(parse_date("date", d)?),
            },
            limit: if r.limit == 0 {
                history::DEFAULT_RUNS_SHOWN
            } else {
                r.limit as usize
            },
        };
        let runs = history::load_runs(&self.lake, &filter)
            .await
            .map_err(internal)?;
        Ok(Response::new(proto::ListRunsResponse {
            runs: runs.into_iter().map(to_proto).collect(),
        }))
    }

    async fn list_tables(
        &self,
        _request: Request<proto::ListTablesRequest>,
    ) -> Result<Response<proto::ListTablesResponse>, Status> {
        let tables = self
            .engine
            .limited(async { overview::tables(&self.lake).await.map_err(internal) })
            .await?;
        let tables = tables
            .into_iter()
            .map(|t| proto::Table {
                name: t.name,
                version: t.version,
                files: t.files,
                rows: t.rows,
                last_commit_time: t.last_commit.map(|t| t.to_rfc3339()).unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(proto::ListTablesResponse { tables }))
    }

    async fn ingest_status(
        &self,
        request: Request<proto::IngestStatusRequest>,
    ) -> Result<Response<proto::IngestStatusResponse>, Status> {
        let topic = match request.into_inner().topic {
            t if t.is_empty() => self.opts.topic.clone(),
            t => t,
        };
        let skew = self.opts.max_future_skew;
        let partitions = self
            .engine
            .limited(async {
                overview::ingest(&self.lake, &topic, skew)
                    .await
                    .map_err(internal)
            })
            .await?
            .into_iter()
            .map(|p| proto::PartitionStatus {
                partition: p.partition,
                last_offset: p.last_offset,
                watermark: p.watermark.map(|t| t.to_rfc3339()).unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(proto::IngestStatusResponse {
            topic,
            partitions,
        }))
    }
}
