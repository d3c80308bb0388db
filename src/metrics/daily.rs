//! The daily job (`lake daily`, `lake schedule`, the demo): runs by status, their duration,
//! check violations by check and severity, and the sensor's wait.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::seconds_histogram;

/// How late a due run may start before `lake schedule` is not ready.
const LATE: std::time::Duration = std::time::Duration::from_secs(600);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Status {
    pub(crate) status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Check {
    /// The check file's name (the set of files in `sql/checks`).
    pub(crate) check: String,
    pub(crate) severity: String,
}

pub(crate) struct DailyMetrics {
    pub(crate) runs: Family<Status, Counter>,
    pub(crate) duration: Histogram,
    pub(crate) violations: Family<Check, Counter>,
    pub(crate) sensor_wait: Histogram,
    pub(crate) last_tick: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub(crate) next_run: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl DailyMetrics {
    pub(super) fn register(r: &mut Registry) -> Self {
        let m = Self {
            runs: Family::default(),
            duration: seconds_histogram(),
            violations: Family::default(),
            sensor_wait: seconds_histogram(),
            last_tick: Gauge::default(),
            next_run: Gauge::default(),
        };
        r.register(
            "daily_runs",
            "Daily runs (one date) by final status",
            m.runs.clone(),
        );
        r.register_with_unit(
            "daily_run_duration",
            "Time of one date's run, sensor wait excluded",
            Unit::Seconds,
            m.duration.clone(),
        );
        r.register(
            "daily_check_violations",
            "Rows a check reported, by check and severity",
            m.violations.clone(),
        );
        r.register_with_unit(
            "daily_sensor_wait",
            "Time the sensor waited for a date to be complete",
            Unit::Seconds,
            m.sensor_wait.clone(),
        );
        r.register_with_unit(
            "schedule_last_tick_timestamp",
            "When `lake schedule` last looked for due dates, Unix time",
            Unit::Seconds,
            m.last_tick.clone(),
        );
        r.register_with_unit(
            "schedule_next_run_timestamp",
            "When `lake schedule` next runs the daily job, Unix time",
            Unit::Seconds,
            m.next_run.clone(),
        );
        m
    }

    /// `/readyz` of `lake schedule`: the run due last has started (a stuck loop would not).
    pub(crate) fn readiness(&self) -> Result<(), String> {
        let (next, tick) = (self.next_run.get(), self.last_tick.get());
        let now = super::unix_now();
        if next > 0.0 && tick < next && now > next + LATE.as_secs_f64() {
            return Err(format!(
                "the run due {:.0} s ago has not started",
                now - next
            ));
        }
        Ok(())
    }

    pub(crate) fn run_ended(&self, status: &str, seconds: f64) {
        let labels = Status {
            status: status.to_string(),
        };
        self.runs.get_or_create(&labels).inc();
        self.duration.observe(seconds);
    }

    pub(crate) fn violations(&self, check: &str, severity: &str, rows: u64) {
        let labels = Check {
            check: check.to_string(),
            severity: severity.to_string(),
        };
        self.violations.get_or_create(&labels).inc_by(rows);
    }
}
