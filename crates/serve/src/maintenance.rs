//! Scheduled table maintenance: each pipeline with a `maintenance:` section gets a task that
//! compacts and vacuums the Delta tables under its `object_store` sinks on the section's own
//! cron schedule, independent of the pipeline's runs. Every pass is recorded in the run
//! history (trigger `maintenance`, one step per table and operation) and logged.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use pipectl_engine::connect::Connections;
use pipectl_engine::maintenance::{self, Selection};
use pipectl_spec::types::Maintenance as Settings;
use pipectl_state::{RunRecord, RunStatus, StateStore, StepRecord, new_run_id};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::cron::CronSchedule;
use crate::runner::{EnvLookup, LoadedPipeline};

/// The trigger recorded for maintenance passes.
pub(crate) const TRIGGER: &str = "maintenance";

/// Default target size of compacted files (128 MiB).
const DEFAULT_TARGET_SIZE: u64 = 128 * 1024 * 1024;

struct Task {
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// The maintenance schedules the daemon runs, by pipeline.
#[derive(Clone)]
pub(crate) struct Maintenance {
    running: Arc<Mutex<BTreeMap<String, Task>>>,
    state: Arc<dyn StateStore>,
    env: EnvLookup,
}

impl Maintenance {
    pub(crate) fn new(state: Arc<dyn StateStore>, env: EnvLookup) -> Self {
        Maintenance {
            running: Arc::default(),
            state,
            env,
        }
    }

    /// Runs `pipeline`'s maintenance on its schedule (replacing the schedule of an earlier
    /// version); stops it when the pipeline has no `maintenance:` section.
    pub(crate) fn start(&self, file: &str, pipeline: Arc<LoadedPipeline>) -> Result<(), String> {
        let name = pipeline.spec.pipeline.name.clone();
        self.stop(&name);
        let Some(settings) = pipeline.spec.pipeline.maintenance.clone() else {
            return Ok(());
        };
        let schedule = CronSchedule::parse(&settings.schedule, &settings.timezone)
            .map_err(|e| format!("{file}: maintenance: {e}"))?;
        let cancel = CancellationToken::new();
        let task = tokio::spawn(on_schedule(
            file.to_owned(),
            pipeline,
            settings,
            schedule,
            self.state.clone(),
            self.env.clone(),
            cancel.clone(),
        ));
        if let Ok(mut running) = self.running.lock() {
            running.insert(name, Task { cancel, task });
        }
        Ok(())
    }

    /// Stops `name`'s schedule; a pass under way ends at its next table.
    pub(crate) fn stop(&self, name: &str) {
        if let Some(t) = self.running.lock().ok().and_then(|mut r| r.remove(name)) {
            t.cancel.cancel();
        }
    }

    /// Stops every schedule and waits for passes under way to finish their current table.
    pub(crate) async fn stop_all(&self) {
        let all: Vec<Task> = match self.running.lock() {
            Ok(mut r) => std::mem::take(&mut *r).into_values().collect(),
            Err(_) => return,
        };
        for t in &all {
            t.cancel.cancel();
        }
        futures::future::join_all(all.into_iter().map(|t| t.task)).await;
    }
}

async fn on_schedule(
    file: String,
    pipeline: Arc<LoadedPipeline>,
    settings: Settings,
    schedule: CronSchedule,
    state: Arc<dyn StateStore>,
    env: EnvLookup,
    cancel: CancellationToken,
) {
    let clock = SystemClock;
    let name = pipeline.spec.pipeline.name.clone();
    loop {
        let Some(next) = schedule.next_after(clock.now()) else {
            tracing::warn!(pipeline = %name, "maintenance schedule `{}` never fires again", schedule.expr());
            return;
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = clock.sleep_until(next) => {}
        }
        run_once(&file, &pipeline, &settings, state.as_ref(), &env, &cancel).await;
    }
}

/// One maintenance pass over every Delta table of `pipeline`'s sinks: compact, then vacuum
/// (as configured), each table in turn. A table that fails does not stop the others; the pass
/// is `failed` if any did.
pub(crate) async fn run_once(
    file: &str,
    pipeline: &LoadedPipeline,
    settings: &Settings,
    state: &dyn StateStore,
    env: &EnvLookup,
    cancel: &CancellationToken,
) -> RunRecord {
    let name = pipeline.spec.pipeline.name.clone();
    let started = Utc::now();
    let mut run = RunRecord::new(
        new_run_id(started),
        name.clone(),
        pipeline.spec.hash.clone(),
        started,
        TRIGGER,
    );
    if let Err(e) = state.begin_run(&run) {
        tracing::error!(pipeline = %name, "maintenance: cannot record the pass: {e}");
    }
    let env = env.clone();
    let found = match Connections::resolve(&pipeline.spec.pipeline, &pipeline.base_dir, |n| env(n))
    {
        Ok(connections) => {
            maintenance::delta_tables(
                &pipeline.spec.pipeline,
                file,
                &connections,
                &Selection::default(),
            )
            .await
        }
        Err(e) => Err(e),
    };
    let mut errors = Vec::new();
    match found {
        Err(e) => errors.push(e.to_string()),
        Ok(tables) => {
            for table in &tables {
                if cancel.is_cancelled() {
                    errors.push("stopped before every table was maintained".to_owned());
                    break;
                }
                let label = format!("{}/{}", table.sink, table.table);
                if let Some(c) = &settings.compact {
                    let step_start = std::time::Instant::now();
                    let target = c.target_file_size.unwrap_or(DEFAULT_TARGET_SIZE);
                    let outcome = maintenance::compact(table, target).await;
                    let mut step = step(format!("compact {label}"), step_start);
                    match outcome {
                        Ok(o) => {
                            tracing::info!(
                                pipeline = %name,
                                "maintenance: compacted {label}: {} files -> {}, version {} -> {}",
                                o.files_before, o.files_after, o.version_before, o.version_after
                            );
                            step.objects = o.files_after;
                            step.bytes = o.bytes_after;
                        }
                        Err(e) => {
                            tracing::warn!(pipeline = %name, "maintenance: {e}");
                            step.status = RunStatus::Failed;
                            step.error = Some(e.to_string());
                            errors.push(e.to_string());
                        }
                    }
                    run.steps.push(step);
                }
                if let Some(v) = &settings.vacuum {
                    let step_start = std::time::Instant::now();
                    let outcome = match pipectl_spec::duration::parse(&v.retention) {
                        Ok(retention) => maintenance::vacuum(table, retention, false)
                            .await
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e),
                    };
                    let mut step = step(format!("vacuum {label}"), step_start);
                    match outcome {
                        Ok(o) => {
                            tracing::info!(
                                pipeline = %name,
                                "maintenance: vacuumed {label}: {} files deleted, version {} keeps {}",
                                o.deleted.len(), o.version, o.files_kept
                            );
                            step.objects = o.deleted.len() as u64;
                        }
                        Err(e) => {
                            tracing::warn!(pipeline = %name, "maintenance: {e}");
                            step.status = RunStatus::Failed;
                            step.error = Some(e.clone());
                            errors.push(e);
                        }
                    }
                    run.steps.push(step);
                }
            }
        }
    }
    run.ended_at = Some(Utc::now());
    if errors.is_empty() {
        run.status = RunStatus::Succeeded;
    } else {
        run.status = RunStatus::Failed;
        run.error = Some(errors.join("; "));
    }
    if let Err(e) = state.save_run(&run) {
        tracing::error!(pipeline = %name, "maintenance: cannot record the pass: {e}");
    }
    run
}

fn step(name: String, started: std::time::Instant) -> StepRecord {
    StepRecord {
        name,
        kind: TRIGGER.to_owned(),
        rows: 0,
        bytes: 0,
        objects: 0,
        duration_ms: started.elapsed().as_millis() as u64,
        error: None,
        status: RunStatus::Succeeded,
        replication_lag: None,
    }
}
