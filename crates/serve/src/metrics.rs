//! Counters for the Prometheus endpoint (`GET /metrics`), in the text exposition format.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use pipectl_state::{ReplicationLag, RunRecord};

/// How many recent trigger latenesses the quantiles are computed from.
const LATENESS_SAMPLES: usize = 10_000;

/// A counter series: name, help, and how to read it.
type Series = (&'static str, &'static str, fn(&Counters) -> f64);

/// Per-pipeline counters.
#[derive(Debug, Default, Clone)]
struct Counters {
    started: u64,
    succeeded: u64,
    failed: u64,
    cancelled: u64,
    skipped: u64,
    retries: u64,
    timeouts: u64,
    rows: u64,
    bytes: u64,
    duration_secs: f64,
}

/// The daemon's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    pipelines: Mutex<BTreeMap<String, Counters>>,
    lateness: Mutex<Lateness>,
    reload_errors: Mutex<u64>,
    /// Per (pipeline, source step), the replication lag of its last succeeded run.
    lag: Mutex<BTreeMap<(String, String), ReplicationLag>>,
}

#[derive(Debug, Default)]
struct Lateness {
    recent: VecDeque<f64>,
    sum: f64,
    count: u64,
}

/// How a run ended, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Succeeded.
    Succeeded,
    /// Failed (timeouts included).
    Failed,
    /// Cancelled.
    Cancelled,
}

impl Metrics {
    fn with(&self, pipeline: &str, f: impl FnOnce(&mut Counters)) {
        if let Ok(mut map) = self.pipelines.lock() {
            f(map.entry(pipeline.to_owned()).or_default());
        }
    }

    /// A run started.
    pub fn run_started(&self, pipeline: &str) {
        self.with(pipeline, |c| c.started += 1);
    }

    /// A run ended after `duration`.
    pub fn run_ended(&self, pipeline: &str, ended: Ended, duration: Duration) {
        self.with(pipeline, |c| {
            match ended {
                Ended::Succeeded => c.succeeded += 1,
                Ended::Failed => c.failed += 1,
                Ended::Cancelled => c.cancelled += 1,
            }
            c.duration_secs += duration.as_secs_f64();
        });
    }

    /// A run was skipped (overlap policy).
    pub fn run_skipped(&self, pipeline: &str) {
        self.with(pipeline, |c| c.skipped += 1);
    }

    /// A retry was scheduled.
    pub fn run_retried(&self, pipeline: &str) {
        self.with(pipeline, |c| c.retries += 1);
    }

    /// A run or step timed out.
    pub fn run_timed_out(&self, pipeline: &str) {
        self.with(pipeline, |c| c.timeouts += 1);
    }

    /// Rows and bytes a run wrote.
    pub fn add_output(&self, pipeline: &str, rows: u64, bytes: u64) {
        self.with(pipeline, |c| {
            c.rows += rows;
            c.bytes += bytes;
        });
    }

    /// Rows and bytes a run's sinks wrote, from its record.
    pub fn add_run_output(&self, record: &RunRecord) {
        let (rows, bytes) = record
            .steps
            .iter()
            .filter(|s| s.kind == "sink")
            .fold((0, 0), |(r, b), s| (r + s.rows, b + s.bytes));
        self.add_output(&record.pipeline, rows, bytes);
        if let Ok(mut lag) = self.lag.lock() {
            for s in &record.steps {
                if let Some(l) = s.replication_lag {
                    lag.insert((record.pipeline.clone(), s.name.clone()), l);
                }
            }
        }
    }

    /// The replication lag of `pipeline`'s change data capture sources, by step, as their
    /// last succeeded runs measured it.
    pub fn replication_lag(&self, pipeline: &str) -> BTreeMap<String, ReplicationLag> {
        self.lag
            .lock()
            .map(|l| {
                l.iter()
                    .filter(|((p, _), _)| p == pipeline)
                    .map(|((_, s), v)| (s.clone(), *v))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A pipeline file failed to load or reload.
    pub fn reload_failed(&self) {
        if let Ok(mut n) = self.reload_errors.lock() {
            *n += 1;
        }
    }

    /// How late a scheduled trigger fired.
    pub fn record_lateness(&self, late: Duration) {
        if let Ok(mut l) = self.lateness.lock() {
            let secs = late.as_secs_f64();
            if l.recent.len() == LATENESS_SAMPLES {
                l.recent.pop_front();
            }
            l.recent.push_back(secs);
            l.sum += secs;
            l.count += 1;
        }
    }

    /// Quantile `q` (0..=1) of the recent trigger latenesses, in seconds.
    pub fn lateness_quantile(&self, q: f64) -> Option<f64> {
        let l = self.lateness.lock().ok()?;
        quantile(l.recent.iter().copied().collect(), q)
    }

    /// The metrics in Prometheus text format. `running` is the number of runs in progress.
    pub fn render(&self, running: usize, pipelines: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP pipectl_pipelines Pipelines loaded by the daemon.\n# TYPE pipectl_pipelines gauge\npipectl_pipelines {pipelines}"
        );
        let _ = writeln!(
            out,
            "# HELP pipectl_runs_running Runs in progress.\n# TYPE pipectl_runs_running gauge\npipectl_runs_running {running}"
        );
        let map = self.pipelines.lock().map(|m| m.clone()).unwrap_or_default();
        let series: [Series; 8] = [
            ("pipectl_runs_started_total", "Runs started.", |c| {
                c.started as f64
            }),
            (
                "pipectl_runs_skipped_total",
                "Scheduled runs skipped because the previous run was still going (overlap: skip).",
                |c| c.skipped as f64,
            ),
            (
                "pipectl_run_retries_total",
                "Retries scheduled after retryable failures.",
                |c| c.retries as f64,
            ),
            (
                "pipectl_run_timeouts_total",
                "Runs failed by a run or step timeout.",
                |c| c.timeouts as f64,
            ),
            (
                "pipectl_rows_written_total",
                "Rows written by sinks of succeeded runs.",
                |c| c.rows as f64,
            ),
            (
                "pipectl_bytes_written_total",
                "Bytes written by sinks of succeeded runs.",
                |c| c.bytes as f64,
            ),
            (
                "pipectl_run_duration_seconds_sum",
                "Total duration of ended runs.",
                |c| c.duration_secs,
            ),
            ("pipectl_run_duration_seconds_count", "Ended runs.", |c| {
                (c.succeeded + c.failed + c.cancelled) as f64
            }),
        ];
        for (name, help, get) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (p, c) in &map {
                let _ = writeln!(out, "{name}{{pipeline=\"{}\"}} {}", escape(p), get(c));
            }
        }
        let _ = writeln!(
            out,
            "# HELP pipectl_runs_ended_total Runs ended, by final status.\n# TYPE pipectl_runs_ended_total counter"
        );
        for (p, c) in &map {
            for (status, n) in [
                ("succeeded", c.succeeded),
                ("failed", c.failed),
                ("cancelled", c.cancelled),
            ] {
                let _ = writeln!(
                    out,
                    "pipectl_runs_ended_total{{pipeline=\"{}\",status=\"{status}\"}} {n}",
                    escape(p)
                );
            }
        }
        let lag = self.lag.lock().map(|l| l.clone()).unwrap_or_default();
        for (name, help, get) in [
            (
                "pipectl_cdc_replication_lag_bytes",
                "WAL bytes a change data capture source was behind its database when its last succeeded run started.",
                (|l: &ReplicationLag| l.bytes as f64) as fn(&ReplicationLag) -> f64,
            ),
            (
                "pipectl_cdc_replication_lag_seconds",
                "Age of the oldest change not yet in the sinks when a change data capture source's last succeeded run started.",
                |l: &ReplicationLag| l.seconds,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for ((p, s), l) in &lag {
                let _ = writeln!(
                    out,
                    "{name}{{pipeline=\"{}\",source=\"{}\"}} {}",
                    escape(p),
                    escape(s),
                    get(l)
                );
            }
        }
        let reload_errors = self.reload_errors.lock().map(|n| *n).unwrap_or(0);
        let _ = writeln!(
            out,
            "# HELP pipectl_reload_errors_total Pipeline files that failed to load; the last good version keeps running.\n# TYPE pipectl_reload_errors_total counter\npipectl_reload_errors_total {reload_errors}"
        );
        if let Ok(l) = self.lateness.lock() {
            let samples: Vec<f64> = l.recent.iter().copied().collect();
            let _ = writeln!(
                out,
                "# HELP pipectl_trigger_lateness_seconds How late scheduled triggers fired (quantiles over the last {LATENESS_SAMPLES}).\n# TYPE pipectl_trigger_lateness_seconds summary"
            );
            for q in [0.5, 0.9, 0.99, 1.0] {
                if let Some(v) = quantile(samples.clone(), q) {
                    let _ = writeln!(
                        out,
                        "pipectl_trigger_lateness_seconds{{quantile=\"{q}\"}} {v}"
                    );
                }
            }
            let _ = writeln!(
                out,
                "pipectl_trigger_lateness_seconds_sum {}\npipectl_trigger_lateness_seconds_count {}",
                l.sum, l.count
            );
        }
        out
    }
}

fn quantile(mut samples: Vec<f64>, q: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    let rank = ((samples.len() as f64) * q).ceil() as usize;
    Some(samples[rank.clamp(1, samples.len()) - 1])
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_lateness_quantiles() {
        let m = Metrics::default();
        m.run_started("a");
        m.run_ended("a", Ended::Succeeded, Duration::from_secs(2));
        m.add_output("a", 10, 100);
        for ms in 1..=100 {
            m.record_lateness(Duration::from_millis(ms));
        }
        let text = m.render(0, 1);
        assert!(
            text.contains("pipectl_runs_ended_total{pipeline=\"a\",status=\"succeeded\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("pipectl_rows_written_total{pipeline=\"a\"} 10"),
            "{text}"
        );
        assert!(
            text.contains("pipectl_trigger_lateness_seconds{quantile=\"0.99\"} 0.099"),
            "{text}"
        );
        assert_eq!(m.lateness_quantile(0.5), Some(0.05));
    }

    #[test]
    fn renders_the_replication_lag_of_cdc_sources_last_runs() {
        let m = Metrics::default();
        let mut run = RunRecord::new("r1", "cdc", "h", chrono::Utc::now(), "manual");
        run.steps.push(pipectl_state::StepRecord {
            name: "shop".into(),
            kind: "source".into(),
            rows: 0,
            bytes: 0,
            objects: 0,
            duration_ms: 0,
            error: None,
            status: pipectl_state::RunStatus::Succeeded,
            replication_lag: Some(ReplicationLag {
                bytes: 4096,
                seconds: 2.5,
            }),
        });
        m.add_run_output(&run);
        let text = m.render(0, 1);
        assert!(
            text.contains(
                "pipectl_cdc_replication_lag_bytes{pipeline=\"cdc\",source=\"shop\"} 4096"
            ) && text.contains(
                "pipectl_cdc_replication_lag_seconds{pipeline=\"cdc\",source=\"shop\"} 2.5"
            ),
            "{text}"
        );
        assert_eq!(m.replication_lag("cdc")["shop"].bytes, 4096);
        assert!(m.replication_lag("other").is_empty());
    }
}
