//! Streaming delivery into the lake, as Kinesis Data Firehose does it, without its duplicates.
//!
//! A streaming pipeline pairs each streaming source (NATS JetStream, a generator at a fixed
//! rate) with one `firehose` sink. It runs until stopped (Ctrl-C, SIGTERM) or until its source
//! ends; stopping flushes every buffer, publishes and acknowledges. The run is recorded in the
//! run history like batch runs, with its step counters saved as it goes.
#![warn(missing_docs, unreachable_pub)]

pub mod firehose;
pub mod generate;
pub mod record;
pub mod source;
pub mod wal;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use pipectl_engine::connect::Connections;
use pipectl_engine::context::StepMetrics;
use pipectl_engine::executor::{self, StepProgress};
use pipectl_engine::{Error, Result};
use pipectl_spec::LoadedSpec;
use pipectl_spec::dag::StepKind;
use pipectl_spec::types::Sink;

use firehose::pending::{Pending, PendingStore};
use pipectl_state::{RunRecord, RunStatus, StateStore, StepRecord, new_run_id};

pub use pipectl_spec::validate::is_streaming;

/// Batches in flight from a source to its sink: a full channel makes the source wait.
const CHANNEL_BATCHES: usize = 16;
/// How often the run's counters are saved to the run history.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// A streaming run ready to start.
pub struct StreamRun {
    /// The run's id.
    pub run_id: String,
    /// Every step's counters, for progress displays.
    pub steps: Vec<StepProgress>,
    spec: LoadedSpec,
    connections: Arc<Connections>,
    state: Arc<dyn StateStore>,
    cancel: CancellationToken,
    trigger: String,
    env: Arc<EnvLookup>,
    state_dir: PathBuf,
    /// Notified by the sinks after each publish: the run saves its progress then.
    published: Arc<Notify>,
}

/// Looks up `${env:NAME}` values.
type EnvLookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Resolves connections and prepares a streaming run of `spec` (see [`is_streaming`]).
/// `state_dir` is the state store's folder, which also holds Direct PUT write-ahead logs.
pub fn prepare(
    spec: &LoadedSpec,
    base_dir: &Path,
    state: Arc<dyn StateStore>,
    state_dir: &Path,
    cancel: CancellationToken,
    trigger: &str,
    env: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
) -> Result<StreamRun> {
    let connections = Arc::new(Connections::resolve(&spec.pipeline, base_dir, &env)?);
    let steps = spec
        .dag
        .ordered()
        .filter(|s| matches!(s.kind, StepKind::Source | StepKind::Sink))
        .map(StepProgress::new)
        .collect();
    Ok(StreamRun {
        run_id: new_run_id(Utc::now()),
        steps,
        spec: spec.clone(),
        connections,
        state,
        cancel,
        trigger: trigger.to_owned(),
        env: Arc::new(env),
        state_dir: state_dir.to_owned(),
        published: Arc::new(Notify::new()),
    })
}

impl StreamRun {
    /// Runs until stopped or until every source ended; returns the final run record (also
    /// stored). A failed run is `Ok` with status `Failed`; errors are state-store failures.
    pub async fn execute(self) -> Result<RunRecord> {
        let state = self.state.clone();
        executor::recover(state.as_ref(), &self.spec, &self.connections).await?;
        let redactor = self.connections.redactor().clone();
        let mut record = RunRecord::new(
            self.run_id.clone(),
            self.spec.pipeline.name.clone(),
            self.spec.hash.clone(),
            Utc::now(),
            self.trigger.clone(),
        );
        record.streaming = true;
        record.steps = self.step_records(RunStatus::Running, &[]);
        executor::state_call(state.begin_run(&record))?;
        tracing::info!(run = %self.run_id, pipeline = %record.pipeline, "streaming run started");

        let mut tasks = JoinSet::new();
        // Each failed step with its error, redacted once here: progress saves and the final
        // record both show them, and no secret may reach the run history.
        let mut errors: Vec<(String, String)> = Vec::new();
        let redacted = |e: Error| redactor.redact(&e.to_string());
        if let Err((step, e)) = self.spawn(&mut tasks).await {
            errors.push((step, redacted(e)));
            self.cancel.cancel();
        }
        let mut progress = tokio::time::interval(PROGRESS_EVERY);
        progress.tick().await;
        loop {
            tokio::select! {
                joined = tasks.join_next() => match joined {
                    None => break,
                    Some(Ok((_, Ok(())))) => {}
                    Some(Ok((step, Err(e)))) => {
                        if !e.is_cancelled() {
                            errors.push((step, redacted(e)));
                        }
                        self.cancel.cancel();
                    }
                    Some(Err(e)) => {
                        errors.push(("?".to_owned(), format!("a step task panicked: {e}")));
                        self.cancel.cancel();
                    }
                },
                // Saved at once after a publish, so that history counts what a run killed
                // right after it had published.
                _ = self.published.notified() => {
                    record.steps = self.step_records(RunStatus::Running, &errors);
                    let _ = state.save_run(&record);
                }
                _ = progress.tick() => {
                    record.steps = self.step_records(RunStatus::Running, &errors);
                    // Progress only: a lost save is harmless.
                    let _ = state.save_run(&record);
                }
            }
        }
        for s in &self.steps {
            s.metrics.finish();
        }
        record.ended_at = Some(Utc::now());
        match errors.first() {
            Some((step, message)) => {
                record.status = RunStatus::Failed;
                record.steps = self.step_records(RunStatus::Succeeded, &errors);
                // A streaming run's objects stay published when it fails: say how many.
                let (objects, rows) = record
                    .steps
                    .iter()
                    .filter(|s| s.kind == StepKind::Sink.noun())
                    .fold((0, 0), |(o, r), s| (o + s.objects, r + s.rows));
                record.error = Some(if objects == 0 {
                    format!("step `{step}`: {message}")
                } else {
                    format!(
                        "step `{step}`: {message} ({objects} objects with {rows} rows were published before it stopped; they stay published)"
                    )
                });
                executor::state_call(state.save_run(&record))?;
            }
            None => {
                record.status = RunStatus::Succeeded;
                record.steps = self.step_records(RunStatus::Succeeded, &[]);
                executor::state_call(state.commit_run(&record, &[]))?;
            }
        }
        Ok(record)
    }

    /// Connects every source and starts a task per source and per sink.
    async fn spawn(
        &self,
        tasks: &mut JoinSet<(String, Result<()>)>,
    ) -> std::result::Result<(), (String, Error)> {
        let pipeline = &self.spec.pipeline;
        for (sink_name, sink) in &pipeline.sinks {
            let Sink::Firehose(spec) = sink else { continue };
            let Some(source_name) = spec.inputs.first() else {
                continue;
            };
            let Some(source_spec) = pipeline.sources.get(source_name) else {
                continue;
            };
            let handle = self
                .connections
                .object_store(&spec.connection)
                .map_err(|e| (sink_name.clone(), e))?;
            let sink_metrics = self.metrics(sink_name);
            let source_metrics = self.metrics(source_name);
            let step = firehose::FirehoseStep::new(
                &pipeline.name,
                sink_name,
                &self.run_id,
                spec,
                handle.clone(),
                sink_metrics.clone(),
            )
            .map_err(|e| (sink_name.clone(), e))?
            .counting_for(source_metrics.clone())
            .notifying(self.published.clone());
            let step = match &spec.catalog_table {
                Some(table) => step.with_parquet_schema(
                    firehose::parquet::catalog_schema(self.state.as_ref(), sink_name, table)
                        .map_err(|e| (sink_name.clone(), e))?,
                ),
                None => step,
            };
            let connector = source::connector(source_name, source_spec)
                .map_err(|e| (source_name.clone(), e))?;
            // Sources that replay with the same sequence numbers (JetStream, a Direct PUT
            // write-ahead log) resume from the sink's record.
            let resume = if connector.resumes_from_sink() {
                let store = PendingStore::new(handle.clone(), &pipeline.name, sink_name);
                let previous = store.load().await.map_err(|e| (sink_name.clone(), e))?;
                Some((store, previous))
            } else {
                None
            };
            if let Some(warning) = connector.warning(source_name, sink_name, spec) {
                tracing::warn!("{warning}");
            }
            let empty = Pending::default();
            let previous = resume.as_ref().map_or(&empty, |(_, p)| p);
            let source = connector
                .connect(source::ConnectInput {
                    pipeline: &pipeline.name,
                    name: source_name,
                    connections: &self.connections,
                    previous,
                    state_dir: &self.state_dir,
                    env: self.env.as_ref(),
                })
                .await
                .map_err(|e| (source_name.clone(), e))?;
            let started = source.started();
            let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
            let cancel = self.cancel.clone();
            let name = source_name.clone();
            source_metrics.start();
            tasks.spawn(async move {
                let result = source.run(tx, cancel).await;
                (name, result)
            });
            let cancel = self.cancel.clone();
            let name = sink_name.clone();
            sink_metrics.start();
            tasks.spawn(async move { (name, step.run(started, resume, rx, cancel).await) });
        }
        Ok(())
    }

    fn metrics(&self, name: &str) -> Arc<StepMetrics> {
        self.steps
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.metrics.clone())
            .unwrap_or_default()
    }

    /// Each step's record: `status`, or failed with its error when `errors` names it.
    fn step_records(&self, status: RunStatus, errors: &[(String, String)]) -> Vec<StepRecord> {
        self.steps
            .iter()
            .map(|s| {
                let error = errors
                    .iter()
                    .find(|(n, _)| *n == s.name)
                    .map(|(_, e)| e.clone());
                let status = if error.is_some() {
                    RunStatus::Failed
                } else {
                    status
                };
                executor::step_record(s, status, error)
            })
            .collect()
    }
}
