//! Streaming pipelines under the daemon. Each runs continuously instead of on a schedule; a run
//! that fails is restarted with exponential backoff and jitter; a changed file restarts it with
//! the new version; stopping the daemon stops it the way Ctrl-C stops `pipectl run`: buffers
//! flushed, objects published, messages acknowledged.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use pipectl_state::{RunStatus, StateStore};
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::metrics::{Ended, Metrics};
use crate::policy::Backoff;
use crate::runner::{EnvLookup, LoadedPipeline};

/// The first restart waits about this long; each failure in a row doubles it.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Restarts never wait longer than this.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A run that stayed up this long was healthy: the next failure starts the backoff over.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// What the API shows of one streaming pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct StreamStatus {
    /// Pipeline name.
    pub pipeline: String,
    /// Whether a run is going now (false while waiting to restart, or after the source ended).
    pub running: bool,
    /// The current (or last) run's id.
    pub run_id: Option<String>,
    /// Restarts after failures since the daemon loaded this version.
    pub restarts: u32,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// When the next restart is due, while waiting for one.
    pub next_restart: Option<DateTime<Utc>>,
}

struct Supervised {
    cancel: CancellationToken,
    task: JoinHandle<()>,
    status: Arc<Mutex<StreamStatus>>,
}

/// The streaming pipelines the daemon keeps running.
#[derive(Clone)]
pub(crate) struct Streams {
    running: Arc<Mutex<BTreeMap<String, Supervised>>>,
    state: Arc<dyn StateStore>,
    /// The state store's folder, which also holds Direct PUT write-ahead logs.
    state_dir: PathBuf,
    metrics: Arc<Metrics>,
    env: EnvLookup,
}

impl Streams {
    pub(crate) fn new(
        state: Arc<dyn StateStore>,
        state_dir: PathBuf,
        metrics: Arc<Metrics>,
        env: EnvLookup,
    ) -> Self {
        Streams {
            running: Arc::default(),
            state,
            state_dir,
            metrics,
            env,
        }
    }

    /// Starts `pipeline`, first stopping (and flushing) a running version of it.
    pub(crate) async fn start(&self, pipeline: Arc<LoadedPipeline>) {
        let name = pipeline.spec.pipeline.name.clone();
        self.stop(&name).await;
        let cancel = CancellationToken::new();
        let status = Arc::new(Mutex::new(StreamStatus {
            pipeline: name.clone(),
            running: false,
            run_id: None,
            restarts: 0,
            last_error: None,
            next_restart: None,
        }));
        let task = tokio::spawn(supervise(
            pipeline,
            self.state.clone(),
            self.state_dir.clone(),
            self.metrics.clone(),
            self.env.clone(),
            cancel.clone(),
            status.clone(),
        ));
        if let Ok(mut running) = self.running.lock() {
            running.insert(
                name,
                Supervised {
                    cancel,
                    task,
                    status,
                },
            );
        }
    }

    /// Whether `name` is a streaming pipeline this daemon runs.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.running.lock().is_ok_and(|r| r.contains_key(name))
    }

    /// Stops `name` and waits until its buffers are published.
    pub(crate) async fn stop(&self, name: &str) {
        let supervised = self.running.lock().ok().and_then(|mut r| r.remove(name));
        if let Some(s) = supervised {
            s.cancel.cancel();
            let _ = s.task.await;
        }
    }

    /// Stops every streaming pipeline, giving them `grace` to publish what they buffered.
    pub(crate) async fn stop_all(&self, grace: Duration) {
        let all: Vec<Supervised> = match self.running.lock() {
            Ok(mut r) => std::mem::take(&mut *r).into_values().collect(),
            Err(_) => return,
        };
        for s in &all {
            s.cancel.cancel();
        }
        let tasks = futures::future::join_all(all.into_iter().map(|s| s.task));
        if tokio::time::timeout(grace, tasks).await.is_err() {
            tracing::warn!("streaming pipelines did not stop within the grace period");
        }
    }

    /// Every streaming pipeline's status, by name.
    pub(crate) fn status(&self) -> Vec<StreamStatus> {
        self.running
            .lock()
            .map(|r| {
                r.values()
                    .filter_map(|s| s.status.lock().ok().map(|s| s.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// How long to wait before restart number `failures` (1-based): doubling from
/// [`FIRST_BACKOFF`] up to [`MAX_BACKOFF`], with jitter so pipelines that failed together do
/// not restart together. Restarts never run out, so `max_attempts` plays no part.
const RESTART_BACKOFF: Backoff = Backoff {
    max_attempts: u32::MAX,
    initial: FIRST_BACKOFF,
    max: MAX_BACKOFF,
};

/// Runs one streaming pipeline until `cancel`, restarting it after failures.
async fn supervise(
    pipeline: Arc<LoadedPipeline>,
    state: Arc<dyn StateStore>,
    state_dir: PathBuf,
    metrics: Arc<Metrics>,
    env: EnvLookup,
    cancel: CancellationToken,
    status: Arc<Mutex<StreamStatus>>,
) {
    let name = pipeline.spec.pipeline.name.clone();
    let set = |f: &dyn Fn(&mut StreamStatus)| {
        if let Ok(mut s) = status.lock() {
            f(&mut s);
        }
    };
    let mut failures = 0u32;
    while !cancel.is_cancelled() {
        let started = Instant::now();
        let env = env.clone();
        let outcome = match pipectl_stream::prepare(
            &pipeline.spec,
            &pipeline.base_dir,
            state.clone(),
            &state_dir,
            cancel.child_token(),
            "stream",
            move |n| env(n),
        ) {
            Ok(run) => {
                let run_id = run.run_id.clone();
                set(&|s| {
                    s.running = true;
                    s.run_id = Some(run_id.clone());
                    s.next_restart = None;
                });
                metrics.run_started(&name);
                let result = run.execute().await;
                set(&|s| s.running = false);
                result
            }
            Err(e) => Err(e),
        };
        let error = match outcome {
            Ok(record) => {
                metrics.add_run_output(&record);
                let ended = match record.status {
                    RunStatus::Succeeded => Ended::Succeeded,
                    _ => Ended::Failed,
                };
                metrics.run_ended(&name, ended, started.elapsed());
                match record.status {
                    RunStatus::Succeeded => None,
                    _ => Some(record.error.unwrap_or_else(|| "the run failed".to_owned())),
                }
            }
            Err(e) => {
                metrics.run_ended(&name, Ended::Failed, started.elapsed());
                Some(e.to_string())
            }
        };
        if cancel.is_cancelled() {
            break;
        }
        let Some(error) = error else {
            // Every source ended (a generator with a count): nothing to restart.
            tracing::info!(pipeline = %name, "streaming pipeline ended: its sources are done");
            break;
        };
        if started.elapsed() >= HEALTHY_AFTER {
            failures = 0;
        }
        failures += 1;
        let wait = RESTART_BACKOFF.delay(failures);
        tracing::warn!(pipeline = %name, %error, "streaming pipeline failed; restarting in {:.1} s", wait.as_secs_f64());
        eprintln!(
            "pipectl serve: streaming pipeline `{name}` failed: {error}; restarting in {:.1} s",
            wait.as_secs_f64()
        );
        let next = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
        set(&|s| {
            s.restarts += 1;
            s.last_error = Some(error.clone());
            s.next_restart = Some(next);
        });
        metrics.run_retried(&name);
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
