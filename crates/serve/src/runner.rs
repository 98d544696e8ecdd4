//! Runs pipelines with the engine, for the scheduler.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::FutureExt;
use futures::future::BoxFuture;
use pipectl_engine::executor::{self, RunOptions, StepProgress};
use pipectl_spec::LoadedSpec;
use pipectl_spec::types::RunSettings;
use pipectl_state::{RunRecord, RunStatus, StateStore, new_run_id};

use crate::metrics::Metrics;
use crate::policy::worth_retrying;
use crate::scheduler::{CancelReason, Job, Outcome, RunOutcome, Runner, human};

/// How often the step watchdog looks at step durations.
const WATCHDOG_INTERVAL: Duration = Duration::from_millis(200);

/// A valid spec and the folder its relative paths are read from.
#[derive(Debug)]
pub struct LoadedPipeline {
    /// The spec.
    pub spec: LoadedSpec,
    /// The spec file's folder.
    pub base_dir: PathBuf,
}

/// Looks up `${env:NAME}` values.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Runs pipelines with [`executor`], recording every attempt in the state store.
pub struct EngineRunner {
    state: Arc<dyn StateStore>,
    metrics: Arc<Metrics>,
    env: EnvLookup,
}

impl EngineRunner {
    /// A runner writing history to `state`.
    pub fn new(state: Arc<dyn StateStore>, metrics: Arc<Metrics>, env: EnvLookup) -> Self {
        EngineRunner {
            state,
            metrics,
            env,
        }
    }
}

impl Runner for EngineRunner {
    type Spec = LoadedPipeline;

    fn run(&self, pipeline: Arc<LoadedPipeline>, job: Job) -> BoxFuture<'static, RunOutcome> {
        let (state, metrics, env) = (self.state.clone(), self.metrics.clone(), self.env.clone());
        async move {
            let options = RunOptions {
                trigger: job.trigger.clone(),
                cancel: job.cancel.clone(),
                strict: false,
            };
            let prepared = match executor::prepare(&pipeline.spec, &pipeline.base_dir, state.clone(), options, |n| env(n)) {
                Ok(p) => p,
                Err(e) => return record_prepare_failure(state.as_ref(), &pipeline.spec, &job, e),
            };
            let run_id = prepared.run_id.clone();
            let watchdog = job.step_timeout.map(|limit| {
                tokio::spawn(step_watchdog(prepared.steps.clone(), limit, job.cancel_reason.clone(), job.cancel.clone()))
            });
            // Never while a compaction of this pipeline's plain tables swaps their files.
            let turn = crate::maintenance::turn(&pipeline.spec.pipeline.name);
            let result = {
                let _turn = turn.lock().await;
                prepared.execute_classified().await
            };
            if let Some(w) = watchdog {
                w.abort();
            }
            let (mut record, class) = match result {
                Ok(r) => r,
                Err(e) => {
                    // The state store failed; the run's outcome is unknown, trying again may help.
                    return RunOutcome { run_id: Some(run_id), outcome: Outcome::Failed { retryable: true }, error: Some(e.to_string()) };
                }
            };
            if record.status == RunStatus::Cancelled
                && let Some((reason, failure)) = job.cancel_reason.get()
            {
                if failure {
                    record.status = RunStatus::Failed;
                }
                record.error = Some(reason);
                if let Err(e) = state.save_run(&record) {
                    tracing::warn!(run = %record.id, "cannot record why the run was cancelled: {e}");
                }
            }
            let outcome = match record.status {
                RunStatus::Succeeded => {
                    metrics.add_run_output(&record);
                    Outcome::Succeeded
                }
                RunStatus::Cancelled => Outcome::Cancelled,
                // Timeouts (set above) and publish failures the next run finishes are worth
                // retrying; otherwise the engine's error class decides.
                _ => Outcome::Failed {
                    retryable: matches!(job.cancel_reason.get(), Some((_, true)))
                        || worth_retrying(record.status, class),
                },
            };
            if let (Outcome::Failed { .. }, Some(error)) = (&outcome, &record.error) {
                // The engine logs a failed run's error only at info level: `pipectl run` prints
                // it in its summary, and here the daemon's log is where it is reported.
                tracing::warn!(run = %record.id, pipeline = %record.pipeline, "run failed: {error}");
            }
            if let Some(settings) = &pipeline.spec.pipeline.run {
                prune(state.as_ref(), &record.pipeline, settings);
            }
            RunOutcome { run_id: Some(record.id), outcome, error: record.error }
        }
        .boxed()
    }
}

/// A run that could not even start (a connection cannot be resolved, an unset `${env:...}`)
/// still gets a failed record, so the history shows why nothing ran.
fn record_prepare_failure(
    state: &dyn StateStore,
    spec: &LoadedSpec,
    job: &Job,
    e: pipectl_engine::Error,
) -> RunOutcome {
    let now = Utc::now();
    let mut record = RunRecord::new(
        new_run_id(now),
        spec.pipeline.name.clone(),
        spec.hash.clone(),
        now,
        job.trigger.clone(),
    );
    record.status = RunStatus::Failed;
    record.error = Some(e.to_string());
    record.ended_at = Some(now);
    let stored = state
        .begin_run(&record)
        .and_then(|()| state.save_run(&record));
    if let Err(err) = stored {
        tracing::warn!(pipeline = %spec.pipeline.name, "cannot record the failed run: {err}");
    }
    RunOutcome {
        run_id: Some(record.id),
        outcome: Outcome::Failed {
            retryable: worth_retrying(RunStatus::Failed, Some(e.class)),
        },
        error: record.error,
    }
}

/// Fails the run when a step has been going longer than `limit`.
async fn step_watchdog(
    steps: Vec<StepProgress>,
    limit: Duration,
    reason: CancelReason,
    cancel: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(WATCHDOG_INTERVAL) => {}
        }
        if let Some(step) = steps
            .iter()
            .find(|s| !s.metrics.is_finished() && s.metrics.elapsed() > limit)
        {
            reason.set(
                format!(
                    "step `{}` timed out after {} (run.step_timeout_secs)",
                    step.name,
                    human(limit)
                ),
                true,
            );
            cancel.cancel();
            return;
        }
    }
}

/// Applies `run.keep_runs` / `run.keep_days` to one pipeline's history.
pub(crate) fn prune(state: &dyn StateStore, pipeline: &str, settings: &RunSettings) {
    let mut keep = settings.keep_runs;
    if let Some(days) = settings.keep_days {
        let cutoff = Utc::now() - chrono::Duration::days(i64::from(days));
        let newer = match state.runs(Some(pipeline), usize::MAX) {
            Ok(runs) => runs.iter().filter(|r| r.started_at >= cutoff).count(),
            Err(e) => {
                tracing::warn!(%pipeline, "cannot read run history to prune it: {e}");
                return;
            }
        };
        keep = Some(keep.map_or(newer, |k| k.min(newer)));
    }
    if let Some(keep) = keep {
        match state.prune_runs(pipeline, keep) {
            Ok(0) => {}
            Ok(n) => tracing::info!(%pipeline, deleted = n, "pruned run history"),
            Err(e) => tracing::warn!(%pipeline, "cannot prune run history: {e}"),
        }
    }
}
