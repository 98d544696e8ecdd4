//! Scheduled table maintenance: each pipeline with a `maintenance:` section gets a task that
//! compacts and vacuums the Delta tables under its `object_store` sinks (and compacts its plain
//! Parquet and JSON lines tables) on the section's own
//! cron schedule, independent of the pipeline's runs. Every pass is recorded in the run
//! history (trigger `maintenance`, one step per table and operation) and logged.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use pipectl_engine::connect::Connections;
use pipectl_engine::maintenance::{self, Selection, files};
use pipectl_spec::types::Maintenance as Settings;
use pipectl_state::{RunRecord, RunStatus, StateStore, StepRecord, new_run_id};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::cron::CronSchedule;
use crate::runner::{EnvLookup, LoadedPipeline};

/// A pipeline's turn: a run the daemon executes and a compaction of the pipeline's plain tables
/// take it, so they never overlap (a compaction swapping a partition while a run publishes
/// into it, or replaces it by a full refresh, or recovers the compaction as an interrupted
/// one). Delta tables need no turn: their commits are checked against the log.
pub(crate) fn turn(pipeline: &str) -> Arc<tokio::sync::Mutex<()>> {
    static TURNS: Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>> =
        Mutex::new(BTreeMap::new());
    let mut turns = TURNS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    turns.entry(pipeline.to_owned()).or_default().clone()
}

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
    let mut errors = Vec::new();
    let found = match Connections::resolve(&pipeline.spec.pipeline, &pipeline.base_dir, |n| env(n))
    {
        Ok(connections) => maintenance::all_tables(
            &pipeline.spec.pipeline,
            file,
            &connections,
            &Selection::default(),
        )
        .await
        .map(|tables| (connections, tables)),
        Err(e) => Err(e),
    };
    match found {
        Err(e) => errors.push(e.to_string()),
        Ok((connections, (tables, plain))) => {
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
                        Err(e) => step_failed(&name, &mut step, &mut errors, e.to_string()),
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
                        Err(e) => step_failed(&name, &mut step, &mut errors, e),
                    }
                    run.steps.push(step);
                }
            }
            // Plain tables: each compaction is a run of its own (trigger `compact`), so a
            // daemon killed in one leaves it for the pipeline's next run to finish or undo.
            if let Some(c) = &settings.compact {
                let target = c.target_file_size.unwrap_or(DEFAULT_TARGET_SIZE);
                let mut compacted = Vec::new();
                for table in &plain {
                    if cancel.is_cancelled() {
                        errors.push("stopped before every table was maintained".to_owned());
                        break;
                    }
                    let label = format!("{}/{}", table.sink, table.table);
                    let step_start = std::time::Instant::now();
                    let turn = turn(&name);
                    let _turn = turn.lock().await;
                    let outcome =
                        files::compact(&pipeline.spec, state, &connections, table, target, &|_| {})
                            .await;
                    let mut step = step(format!("compact {label}"), step_start);
                    match outcome {
                        Ok(o) => {
                            tracing::info!(
                                pipeline = %name,
                                "maintenance: compacted {label}: {} files -> {} ({} rows rewritten)",
                                o.files_before, o.files_after, o.rows
                            );
                            step.rows = o.rows;
                            step.objects = o.files_after;
                            step.bytes = o.bytes_after;
                            if let Some(id) = o.run_id {
                                compacted.push((table.sink.clone(), id));
                            }
                        }
                        Err(e) => {
                            let e = connections.redactor().redact(&e.to_string());
                            step_failed(&name, &mut step, &mut errors, e);
                        }
                    }
                    run.steps.push(step);
                }
                if let Err(e) =
                    files::recrawl(&pipeline.spec.pipeline, &connections, state, &compacted).await
                {
                    pass_error(
                        &name,
                        &mut errors,
                        connections.redactor().redact(&e.to_string()),
                    );
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

/// Logs `error` of a maintenance pass of `pipeline` and keeps it for the pass's record.
fn pass_error(pipeline: &str, errors: &mut Vec<String>, error: String) {
    tracing::warn!(pipeline = %pipeline, "maintenance: {error}");
    errors.push(error);
}

/// Marks `step` failed with `error`, which [`pass_error`] logs and keeps.
fn step_failed(pipeline: &str, step: &mut StepRecord, errors: &mut Vec<String>, error: String) {
    step.status = RunStatus::Failed;
    step.error = Some(error.clone());
    pass_error(pipeline, errors, error);
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
