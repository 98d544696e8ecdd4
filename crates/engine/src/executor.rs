//! Runs a pipeline's DAG: one tokio task per step, bounded channels between them, then the
//! commit protocol that makes a run's output appear all at once or not at all.
//!
//! Commit protocol (two phases, [`crate::sink::commit`]):
//! 1. Sinks write what readers do not see yet: files under `_pipectl/staging/<run id>/`
//!    (readers skip `_` folders), Delta data files without a log entry. Each sink hands back
//!    its commit intents.
//! 2. When every step succeeded, the run is saved as `Committing` with every intent (staged ->
//!    final key for every file, the Delta commits with their `txn`); the save is durable before
//!    any intent is applied.
//! 3. The intents are applied: files moved to their final keys (an atomic rename on local
//!    disks), then one commit per Delta table.
//! 4. The run is committed as `Succeeded` together with any bookmark updates, in one state
//!    transaction.
//!
//! A process killed in step 1 leaves a `Running` run: the next run of the pipeline marks it
//! `Interrupted` and deletes its staging folder. Killed in step 3, it leaves a `Committing` run
//! whose intents the next run applies again (idempotent: a file already moved is skipped, a
//! Delta table whose log holds the commit's `txn` version is not committed again). A failed or
//! cancelled run discards its intents.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::Utc;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use pipectl_spec::LoadedSpec;
use pipectl_spec::dag::StepKind;
use pipectl_state::{Bookmark, RunRecord, RunStatus, StateStore, StepRecord, new_run_id};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::connect::{Connections, StoreHandle};
pub use crate::context::Backfill;
use crate::context::{CHANNEL_CAPACITY, Output, RunContext, StepContext, StepMetrics};
use crate::error::{Error, ErrorClass, Result};
use crate::sink::commit::{self, CommitIntent, DeltaCommit, Manifest};
use crate::sink::{self, staging_prefix};
use crate::table::{Message, TableId};
use crate::{source, transform};

/// A step with its live counters, for progress displays.
#[derive(Clone)]
pub struct StepProgress {
    /// Step name.
    pub name: String,
    /// Step kind.
    pub kind: StepKind,
    /// The counters.
    pub metrics: Arc<StepMetrics>,
}

impl StepProgress {
    /// Fresh counters for `step`.
    pub fn new(step: &pipectl_spec::dag::StepRef) -> Self {
        StepProgress {
            name: step.name.clone(),
            kind: step.kind,
            metrics: Arc::new(StepMetrics::default()),
        }
    }
}

/// A run ready to start: its id and the counters of each step (in execution order).
pub struct PreparedRun {
    /// The run's id.
    pub run_id: String,
    /// Every step's counters.
    pub steps: Vec<StepProgress>,
    spec: LoadedSpec,
    context: Arc<RunContext>,
    trigger: String,
    state: Arc<dyn StateStore>,
}

/// How a run is started.
pub struct RunOptions {
    /// What started it: `manual`, `schedule`, ...
    pub trigger: String,
    /// Cancel it (Ctrl-C, SIGTERM).
    pub cancel: CancellationToken,
    /// Fail the run when an include rule matches no table (`pipectl run --strict`).
    pub strict: bool,
}

/// Resolves connections and prepares a run of `spec`. `base_dir` is the spec file's folder;
/// `env` looks up `${env:NAME}` values.
pub fn prepare(
    spec: &LoadedSpec,
    base_dir: &Path,
    state: Arc<dyn StateStore>,
    options: RunOptions,
    env: impl Fn(&str) -> Option<String>,
) -> Result<PreparedRun> {
    // Every way into a batch run (the CLI, the daemon's API, the scheduler) passes here.
    if pipectl_spec::validate::is_streaming(&spec.pipeline) {
        return Err(Error::user(format!(
            "pipeline `{}` is a streaming pipeline (it has a `firehose` sink): it runs until stopped, not as a batch run; run it with `pipectl run` while no daemon holds the state, or let `pipectl serve` keep it running",
            spec.pipeline.name
        )));
    }
    let connections = Arc::new(Connections::resolve(&spec.pipeline, base_dir, env)?);
    let started_at = Utc::now();
    let run_id = new_run_id(started_at);
    let context = Arc::new(RunContext {
        run_id: run_id.clone(),
        pipeline: spec.pipeline.name.clone(),
        started_at,
        cancel: options.cancel,
        connections,
        state: state.clone(),
        backfill: None,
        strict: options.strict,
    });
    let steps = spec.dag.ordered().map(StepProgress::new).collect();
    Ok(PreparedRun {
        run_id,
        steps,
        spec: spec.clone(),
        context,
        trigger: options.trigger,
        state,
    })
}

/// What one step task returns.
enum StepOutcome {
    Done,
    /// A source's finish: the bookmarks it reached, committed with the run.
    Read(Vec<Bookmark>),
    /// A sink's finish: what it prepared, committed with the run.
    Staged(Vec<CommitIntent>),
}

impl PreparedRun {
    /// Makes this a backfill run: bookmarked tables read the rows whose first key is in the
    /// range, and no bookmark is read or moved.
    ///
    /// Checked before anything connects, against the bookmarks earlier runs stored: every
    /// `--table` pattern names a bookmarked table, and the bounds are values of each named
    /// table's key type, with `from` below `to`. (Tables without a stored bookmark are checked
    /// against the database's types when the source lists them, still before any row is read.)
    pub fn with_backfill(mut self, backfill: Backfill) -> Result<Self> {
        let bookmarks = state_call(self.state.bookmarks(Some(&self.spec.pipeline.name)))?;
        let bookmarked: Vec<(TableId, &pipectl_state::Bookmark)> = bookmarks
            .iter()
            .filter_map(|b| Some((database_table(&self.spec, &b.stream)?, b)))
            .collect();
        for pattern in &backfill.tables {
            if !bookmarked.iter().any(|(t, _)| t.matches(pattern)) {
                let known: Vec<String> = bookmarked.iter().map(|(t, _)| t.to_string()).collect();
                return Err(Error::user(format!(
                    "--table `{pattern}` names no bookmarked table of pipeline `{}`{}",
                    self.spec.pipeline.name,
                    if known.is_empty() {
                        " (it has no bookmarks yet: run it once first)".to_owned()
                    } else {
                        format!("; bookmarked: {}", known.join(", "))
                    }
                )));
            }
        }
        for (table, b) in &bookmarked {
            if let (Some(key), Some(declared), true) =
                (b.keys.first(), b.key_types.first(), backfill.reads(table))
            {
                let what = format!("table {table}, key `{key}`");
                crate::source::key_type::check_range(declared, &backfill.from, &backfill.to, &what)
                    .map_err(|e| {
                        Error::user(match backfill.tables.is_empty() {
                            true => format!(
                                "{e}; name the tables whose keys the bounds fit with --table"
                            ),
                            false => e,
                        })
                    })?;
            }
        }
        let mut context = self.context.attempt();
        context.backfill = Some(backfill);
        context.cancel = self.context.cancel.clone();
        self.context = Arc::new(context);
        Ok(self)
    }

    /// Runs the pipeline to the end and returns the final run record (also stored in state).
    /// Errors here are failures of the state store itself; a failed run is `Ok` with status `Failed`.
    pub async fn execute(self) -> Result<RunRecord> {
        self.execute_classified().await.map(|(record, _)| record)
    }

    /// Like [`execute`](Self::execute), also returning the class of the error that failed the
    /// run (`None` unless it failed), so a scheduler can tell retryable failures from others.
    pub async fn execute_classified(self) -> Result<(RunRecord, Option<ErrorClass>)> {
        let redactor = self.context.connections.redactor().clone();
        let state = self.state.clone();
        recover(state.as_ref(), &self.spec, &self.context.connections).await?;

        let mut record = RunRecord::new(
            self.run_id.clone(),
            self.spec.pipeline.name.clone(),
            self.spec.hash.clone(),
            self.context.started_at,
            self.trigger.clone(),
        );
        record.steps = self
            .steps
            .iter()
            .map(|s| step_record(s, RunStatus::Running, None))
            .collect();
        state_call(state.begin_run(&record))?;
        tracing::info!(run = %self.run_id, pipeline = %record.pipeline, steps = self.steps.len(), "run started");

        // One attempt: whether a failed run is tried again is the caller's retry policy
        // (`pipectl_serve::policy`, for `pipectl run` and the daemon alike), by the class
        // returned. The attempt's token is a child of the run's, so a failing step cancels its
        // siblings without cancelling the caller's token.
        let context = Arc::new(self.context.attempt());
        let mut tasks = self.spawn_steps(&context)?;
        let mut errors: BTreeMap<String, Error> = BTreeMap::new();
        let mut staged: Vec<CommitIntent> = Vec::new();
        let mut reached: Vec<Bookmark> = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let (name, result) = match joined {
                Ok(r) => r,
                Err(e) => (
                    "?".to_owned(),
                    Err(Error::internal(format!("a step task panicked: {e}"))),
                ),
            };
            match result {
                Ok(StepOutcome::Done) => tracing::debug!(step = %name, "step finished"),
                Ok(StepOutcome::Read(bookmarks)) => reached.extend(bookmarks),
                Ok(StepOutcome::Staged(files)) => staged.extend(files),
                Err(e) => {
                    // The first real failure cancels the rest; their cancellations are not news.
                    context.cancel.cancel();
                    errors.insert(name, e);
                }
            }
        }
        let root_cause = errors.iter().find(|(_, e)| !e.is_cancelled());
        let failure_class = root_cause.map(|(_, e)| e.class);
        let failure = match root_cause {
            Some((step, e)) => Some((
                RunStatus::Failed,
                format!("step `{step}`: {}", redactor.redact(&e.to_string())),
            )),
            None if !errors.is_empty() || context.cancel.is_cancelled() => {
                Some((RunStatus::Cancelled, "the run was cancelled".to_owned()))
            }
            None => None,
        };
        record.steps = self
            .steps
            .iter()
            .map(|s| {
                let (status, error) = match errors.get(&s.name) {
                    Some(e) if e.is_cancelled() => (RunStatus::Cancelled, None),
                    Some(e) => (RunStatus::Failed, Some(redactor.redact(&e.to_string()))),
                    None if failure.is_some() && !s.metrics.is_finished() => {
                        (RunStatus::Cancelled, None)
                    }
                    None => (RunStatus::Succeeded, None),
                };
                step_record(s, status, error)
            })
            .collect();

        if let Some((status, message)) = failure {
            // Info, not a warning: the error is the run's result, which whoever started the
            // run reports (the summary, the daemon's log); a warning here printed it twice.
            tracing::info!(run = %self.run_id, %status, error = %message, "run did not succeed; discarding staged files");
            let tables: Vec<DeltaCommit> = staged
                .into_iter()
                .filter_map(|i| match i {
                    CommitIntent::Delta(d) => Some(d),
                    CommitIntent::File(_) => None,
                })
                .collect();
            commit::discard(&self.context.connections, &tables).await;
            discard_staging(&self.context.connections, &self.spec, &self.run_id).await;
            record.status = status;
            record.error = Some(message);
            record.ended_at = Some(Utc::now());
            state_call(state.save_run(&record))?;
            return Ok((record, failure_class));
        }

        record.status = RunStatus::Committing;
        // Saved with the manifest, so a recovery that finishes this publish also moves them.
        record.bookmarks = reached;
        let manifest = Manifest::of(&self.context.connections, staged).await?;
        record.table_commits = manifest.tables_json()?;
        record.publish = manifest.publish;
        record.retire = manifest.retire;
        state_call(state.save_run(&record))?;
        tracing::info!(run = %self.run_id, files = record.publish.len(), replaced = record.retire.len(), tables = manifest.tables.len(), "publishing");
        if let Err(e) = commit::apply(
            &self.context.connections,
            &record.publish,
            &record.retire,
            &manifest.tables,
            &record.swaps,
        )
        .await
        {
            // The manifest is durable: the next run of this pipeline finishes the publish.
            record.error = Some(format!(
                "publishing failed; the next run of this pipeline will finish it: {}",
                redactor.redact(&e.to_string())
            ));
            return Ok((record, Some(e.class)));
        }
        record.status = RunStatus::Succeeded;
        record.ended_at = Some(Utc::now());
        state_call(state.commit_run(&record, &record.bookmarks))?;
        discard_staging(&self.context.connections, &self.spec, &self.run_id).await;
        let class = self.crawl(&mut record).await;
        if class.is_some() {
            state_call(state.save_run(&record))?;
        }
        Ok((record, class))
    }

    /// Runs the crawler steps over what the run published. A failing crawler fails the run,
    /// but what was published and committed stays: `pipectl crawl FILE` can catalogue it later.
    async fn crawl(&self, record: &mut RunRecord) -> Option<ErrorClass> {
        let mut failure = None;
        for step in self.steps.iter().filter(|s| s.kind == StepKind::Crawler) {
            let Some(spec) = self.spec.pipeline.crawlers.get(&step.name) else {
                continue;
            };
            let pipectl_spec::types::Crawler::Catalog(spec) = spec;
            step.metrics.start();
            let result = crate::crawl::run_step(
                &self.spec.pipeline,
                &step.name,
                spec,
                &self.context.connections,
                self.state.as_ref(),
                Some(&self.run_id),
            )
            .await;
            step.metrics.finish();
            let (status, error) = match result {
                Ok(report) => {
                    step.metrics.add(
                        report.tables.len() as u64,
                        report.tables.iter().map(|t| t.bytes).sum(),
                    );
                    (RunStatus::Succeeded, None)
                }
                Err(e) => {
                    let message = self.context.connections.redactor().redact(&e.to_string());
                    if failure.is_none() {
                        record.status = RunStatus::Failed;
                        record.error = Some(format!(
                            "step `{}`: {message} (the run's files were published and its bookmarks committed; catalogue them with `pipectl crawl`)",
                            step.name
                        ));
                        failure = Some(e.class);
                    }
                    (RunStatus::Failed, Some(message))
                }
            };
            if let Some(r) = record.steps.iter_mut().find(|r| r.name == step.name) {
                *r = step_record(step, status, error);
            }
        }
        failure
    }

    fn spawn_steps(
        &self,
        context: &Arc<RunContext>,
    ) -> Result<JoinSet<(String, Result<StepOutcome>)>> {
        let pipeline = &self.spec.pipeline;
        let mut senders: BTreeMap<String, mpsc::Sender<Message>> = BTreeMap::new();
        let mut receivers: BTreeMap<String, mpsc::Receiver<Message>> = BTreeMap::new();
        for step in &self.steps {
            if matches!(step.kind, StepKind::Transform | StepKind::Sink) {
                let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
                senders.insert(step.name.clone(), tx);
                receivers.insert(step.name.clone(), rx);
            }
        }
        let output_for = |name: &str, metrics: &Arc<StepMetrics>| {
            let targets = self
                .spec
                .dag
                .consumers(name)
                .iter()
                .filter_map(|c| senders.get(&c.name).cloned())
                .collect();
            Output::new(targets, metrics.clone(), context.cancel.clone())
        };
        let mut tasks = JoinSet::new();
        for step in &self.steps {
            let ctx = StepContext {
                run: context.clone(),
                name: step.name.clone(),
                metrics: step.metrics.clone(),
            };
            let name = step.name.clone();
            let metrics = step.metrics.clone();
            match step.kind {
                StepKind::Source => {
                    let spec = step_spec(&pipeline.sources, &name, "source")?;
                    let built = source::build(&name, spec)?;
                    let out = output_for(&name, &metrics);
                    spawn_step(&mut tasks, name, metrics, async move {
                        built.run(ctx, out).await.map(StepOutcome::Read)
                    });
                }
                StepKind::Transform => {
                    let spec = step_spec(&pipeline.transforms, &name, "transform")?;
                    let built = transform::build(spec, context)
                        .map_err(|e| e.context(format!("transform `{name}`")))?;
                    let tables = spec.tables().to_vec();
                    let input = receivers
                        .remove(&name)
                        .ok_or_else(|| Error::internal("transform input"))?;
                    let out = output_for(&name, &metrics);
                    spawn_step(&mut tasks, name, metrics, async move {
                        transform::run(ctx, built, tables, input, out)
                            .await
                            .map(|_| StepOutcome::Done)
                    });
                }
                StepKind::Sink => {
                    let spec = step_spec(&pipeline.sinks, &name, "sink")?;
                    let built = sink::build(&name, spec)?;
                    let input = receivers
                        .remove(&name)
                        .ok_or_else(|| Error::internal("sink input"))?;
                    spawn_step(&mut tasks, name, metrics, async move {
                        built.run(ctx, input).await.map(StepOutcome::Staged)
                    });
                }
                StepKind::Crawler => {}
            }
        }
        // Each channel closes when the last upstream output holding its sender is dropped.
        drop(senders);
        Ok(tasks)
    }
}

/// The spec of step `name` among `steps` (the pipeline's sources, transforms or sinks); an
/// internal error names the `kind` when the plan and the pipeline disagree.
fn step_spec<'p, V>(steps: &'p BTreeMap<String, V>, name: &str, kind: &str) -> Result<&'p V> {
    steps
        .get(name)
        .ok_or_else(|| Error::internal(format!("unknown {kind}")))
}

/// Runs step `name` on `tasks`, timing it in `metrics`; the task yields the step's name and
/// outcome.
fn spawn_step(
    tasks: &mut JoinSet<(String, Result<StepOutcome>)>,
    name: String,
    metrics: Arc<StepMetrics>,
    step: impl Future<Output = Result<StepOutcome>> + Send + 'static,
) {
    tasks.spawn(async move {
        metrics.start();
        let result = step.await;
        metrics.finish();
        (name, result)
    });
}

/// The database table a bookmark stream (`<source step>.<schema>.<table>`) of one of `spec`'s
/// PostgreSQL or MySQL sources reads; `None` for other streams.
fn database_table(spec: &LoadedSpec, stream: &str) -> Option<TableId> {
    let (source, rest) = stream.split_once('.')?;
    let (schema, name) = rest.split_once('.')?;
    crate::source::connector::connector(spec.pipeline.sources.get(source)?)
        .bookmarks_tables()
        .then(|| TableId {
            source: source.to_owned(),
            schema: schema.to_owned(),
            name: name.to_owned(),
        })
}

/// The run-history record of a step: its counters now, `status` and `error`.
pub fn step_record(step: &StepProgress, status: RunStatus, error: Option<String>) -> StepRecord {
    let m = &step.metrics;
    StepRecord {
        name: step.name.clone(),
        kind: step.kind.noun().to_owned(),
        rows: m.rows.load(std::sync::atomic::Ordering::Relaxed),
        bytes: m.bytes.load(std::sync::atomic::Ordering::Relaxed),
        objects: match step.kind {
            StepKind::Sink => m.extra.load(std::sync::atomic::Ordering::Relaxed),
            _ => 0,
        },
        duration_ms: m.elapsed().as_millis() as u64,
        error,
        status,
        replication_lag: m.replication_lag(),
    }
}

/// Why a run a stopped process left `Running` ended: a batch run publishes nothing before it
/// commits; a streaming run keeps the objects it published, as its last saved progress says.
fn interrupted_message(run: &RunRecord) -> String {
    let stopped = "the process running it stopped before it finished";
    if !run.streaming {
        return format!("{stopped}; nothing was published");
    }
    let sinks = run.steps.iter().filter(|s| s.kind == StepKind::Sink.noun());
    let (objects, rows) = sinks.fold((0, 0), |(o, r), s| (o + s.objects, r + s.rows));
    if objects == 0 {
        format!("{stopped}; it had published nothing (as of its last saved progress)")
    } else {
        format!(
            "{stopped}; the {objects} objects ({rows} rows) it had published stay published \
             (as of its last saved progress); records not yet published are delivered again"
        )
    }
}

/// A state-store result as an external error (a refusal such as permission denied or a full
/// disk is [`ErrorClass::Refused`]). The store's error stays the source, so its cause (the
/// operating system's or the backend's error) is printed after its message.
pub fn state_call<T>(result: std::result::Result<T, pipectl_state::StateError>) -> Result<T> {
    result.map_err(|e| Error::external(e.to_string(), e))
}

/// Applies a `Committing` run's saved intents again.
async fn recommit(connections: &Connections, run: &RunRecord) -> Result<()> {
    let tables = commit::tables_of(run)?;
    commit::apply(connections, &run.publish, &run.retire, &tables, &run.swaps).await
}

/// Deletes a run's staging folder in every sink's store. Best effort: leftovers are harmless
/// (readers skip `_pipectl/`) and are retried by the next recovery.
async fn discard_staging(connections: &Connections, spec: &LoadedSpec, run_id: &str) {
    let mut seen: Vec<String> = Vec::new();
    for sink in spec.pipeline.sinks.values() {
        let connector = sink::connector(sink);
        let output = connector.output();
        if !output.stages || seen.iter().any(|c| c == output.connection) {
            continue;
        }
        seen.push(output.connection.to_owned());
        if let Ok(handle) = connections.object_store(output.connection) {
            delete_prefix(&handle, &staging_prefix(run_id)).await;
        }
    }
}

pub(crate) async fn delete_prefix(handle: &StoreHandle, prefix: &str) {
    let path = handle.path(prefix);
    let mut listing = handle.store.list(Some(&path));
    while let Some(Ok(meta)) = listing.next().await {
        let _ = handle.store.delete(&meta.location).await;
    }
    if let Some(root) = &handle.local_root {
        // Local stores leave empty folders behind; remove the run's staging tree and, when
        // empty, the staging and reserved folders above it.
        let dir = root.join(prefix);
        let _ = std::fs::remove_dir_all(&dir);
        let mut parent = dir.parent();
        while let Some(p) = parent.filter(|p| p.starts_with(root) && *p != root.as_path()) {
            if std::fs::remove_dir(p).is_err() {
                break;
            }
            parent = p.parent();
        }
    }
}

/// Finishes what crashed runs of this pipeline left behind: publishes `Committing` runs'
/// manifests and deletes `Running` runs' staging folders; both end as `Interrupted` (a
/// published `Committing` run as `Succeeded`).
pub async fn recover(
    state: &dyn StateStore,
    spec: &LoadedSpec,
    connections: &Connections,
) -> Result<Vec<RunRecord>> {
    let mut recovered = Vec::new();
    for mut run in state_call(state.unfinished_runs())? {
        if run.pipeline != spec.pipeline.name {
            continue;
        }
        tracing::warn!(run = %run.id, status = %run.status, "recovering a run a stopped process left behind");
        match run.status {
            RunStatus::Committing => match recommit(connections, &run).await {
                Ok(()) => {
                    run.status = RunStatus::Succeeded;
                    run.error = Some(
                        "interrupted while publishing; publishing was finished by the next run"
                            .to_owned(),
                    );
                    run.ended_at.get_or_insert_with(Utc::now);
                    let bookmarks = run.bookmarks.clone();
                    state_call(state.commit_run(&run, &bookmarks))?;
                }
                Err(e) => {
                    return Err(e.context(format!(
                        "run {} was interrupted while publishing and its files cannot be published now",
                        run.id
                    )));
                }
            },
            _ => {
                run.status = RunStatus::Interrupted;
                run.error = Some(interrupted_message(&run));
                run.ended_at.get_or_insert_with(Utc::now);
                state_call(state.save_run(&run))?;
            }
        }
        discard_staging(connections, spec, &run.id).await;
        recovered.push(run);
    }
    Ok(recovered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_error_keeps_its_cause() {
        let io = std::io::Error::other("the disk controller reset");
        let failed: std::result::Result<(), _> = Err(pipectl_state::StateError::Io {
            dir: "/var/lib/pipectl".into(),
            source: io,
        });
        let error = state_call(failed).unwrap_err();
        assert_eq!(error.class, ErrorClass::External);
        let text = error.to_string();
        assert!(
            text.starts_with("cannot use the state directory /var/lib/pipectl")
                && text.ends_with(": the disk controller reset"),
            "{text}"
        );
        let source = error
            .source
            .as_deref()
            .expect("the state error is the source");
        assert!(source.is::<pipectl_state::StateError>());
    }

    #[test]
    fn a_state_directory_without_permission_is_a_refusal() {
        let failed: std::result::Result<(), _> = Err(pipectl_state::StateError::Io {
            dir: "/var/lib/pipectl".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        });
        assert_eq!(state_call(failed).unwrap_err().class, ErrorClass::Refused);
    }
}
