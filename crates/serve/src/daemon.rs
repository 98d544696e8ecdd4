//! The daemon around the scheduler: loads pipeline files and reloads them when they change,
//! recovers runs a crashed daemon left behind, watches prefixes for new files, prunes history,
//! serves the HTTP API, and stops cleanly.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use pipectl_engine::connect::Connections;
use pipectl_engine::executor;
use pipectl_state::{RunRecord, RunStatus, StateStore, new_run_id};
use tokio::task::JoinHandle;

use crate::api::{self, ApiState};
use crate::clock::SystemClock;
use crate::cron::CronSchedule;
use crate::maintenance::Maintenance;
use crate::metrics::Metrics;
use crate::policy::RunPolicy;
use crate::runner::{EngineRunner, EnvLookup, LoadedPipeline, prune};
use crate::scheduler::{Event, PipelineDef, Scheduler, SchedulerConfig, Trigger};
use crate::streams::Streams;

/// Carries out a state command (`pipectl state ...`, given as its command-line arguments
/// without the program name) against the daemon's open state store and returns what to print,
/// or an error message. The CLI supplies it, so the daemon serves exactly the CLI's commands.
pub type StoreCommand =
    Arc<dyn Fn(&dyn StateStore, Vec<String>) -> Result<String, String> + Send + Sync>;

/// Prints one notice for whoever runs the daemon (loads, reload errors, start and stop); the
/// CLI writes them to stderr. The library itself prints nothing.
pub type Notice = Arc<dyn Fn(&str) + Send + Sync>;

/// How `pipectl serve` is started.
#[derive(Clone)]
pub struct ServeOptions {
    /// The folder of pipeline files.
    pub dir: PathBuf,
    /// The state directory (its address file sits beside it).
    pub state_dir: PathBuf,
    /// Where the HTTP API listens.
    pub listen: SocketAddr,
    /// Runs executing at once.
    pub max_concurrent_runs: usize,
    /// How long running runs may finish after SIGTERM before they are cancelled.
    pub grace: Duration,
    /// How often pipeline files are checked for changes.
    pub reload_interval: Duration,
    /// Serves `POST /api/command`, so state and catalog commands work while this daemon holds the store.
    pub store_command: Option<StoreCommand>,
    /// Where the daemon's notices go.
    pub notice: Notice,
}

/// The daemon's address file: `<state dir>.daemon`, beside the state directory, so commands
/// that find the state locked know where to send their request instead.
pub fn address_file(state_dir: &Path) -> PathBuf {
    let mut name = state_dir.as_os_str().to_owned();
    name.push(".daemon");
    PathBuf::from(name)
}

/// Runs the daemon until `stop` completes (SIGTERM, Ctrl-C), then stops triggering, gives
/// running runs `grace` to finish, cancels the rest and returns.
pub async fn serve(
    options: ServeOptions,
    state: Arc<dyn StateStore>,
    env: EnvLookup,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    // This process holds the state lock, so an address file left by a killed daemon is stale.
    let addr_file = address_file(&options.state_dir);
    let _ = std::fs::remove_file(&addr_file);
    let metrics = Arc::new(Metrics::default());
    let runner = Arc::new(EngineRunner::new(
        state.clone(),
        metrics.clone(),
        env.clone(),
    ));
    let (events_tx, events) = tokio::sync::mpsc::unbounded_channel();
    let (scheduler, scheduler_task) = Scheduler::spawn(
        Arc::new(SystemClock),
        runner.clone(),
        SchedulerConfig {
            max_concurrent_runs: options.max_concurrent_runs,
        },
        metrics.clone(),
        Some(events_tx),
    );
    let log_task = tokio::spawn(log_events(events, state.clone()));

    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {}: {e}; pick another address with --listen",
                options.listen
            )
        })?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let streams = Streams::new(
        state.clone(),
        options.state_dir.clone(),
        metrics.clone(),
        env.clone(),
    );
    let mut files = Files::new(
        options.dir.clone(),
        state.clone(),
        scheduler.clone(),
        streams.clone(),
        metrics.clone(),
        env.clone(),
        options.notice.clone(),
    );
    let maintenance = files.maintenance.clone();
    files.scan(true).await;
    // The address is announced only after recovery, so clients never see half-recovered state.
    let info = serde_json::json!({ "addr": addr.to_string(), "pid": std::process::id() });
    std::fs::write(&addr_file, info.to_string()).map_err(|e| {
        format!(
            "cannot write the daemon address file {}: {e}",
            addr_file.display()
        )
    })?;

    let loaded = files.loaded.len();
    (options.notice)(&format!(
        "pipectl serve: {loaded} pipeline{} from {}; API on http://{addr}",
        if loaded == 1 { "" } else { "s" },
        options.dir.display()
    ));

    let api_state = Arc::new(ApiState {
        scheduler: scheduler.clone(),
        state: state.clone(),
        metrics: metrics.clone(),
        files: files.registry.clone(),
        load_errors: files.load_errors.clone(),
        adhoc: Default::default(),
        store_command: options.store_command.clone(),
        streams: streams.clone(),
    });
    let server = tokio::spawn(api::serve(listener, api_state));

    let reload_interval = options.reload_interval;
    let reloader = tokio::spawn(async move {
        loop {
            tokio::time::sleep(reload_interval).await;
            files.scan(false).await;
        }
    });

    stop.await;
    (options.notice)(&format!(
        "pipectl serve: stopping; running runs have {}s to finish before they are cancelled",
        options.grace.as_secs()
    ));
    reloader.abort();
    // Streams flush and publish while batch runs get their grace period.
    tokio::join!(
        streams.stop_all(options.grace),
        scheduler.shutdown(options.grace),
        maintenance.stop_all()
    );
    let _ = scheduler_task.await;
    server.abort();
    log_task.abort();
    let _ = std::fs::remove_file(&addr_file);
    (options.notice)("pipectl serve: stopped");
    Ok(())
}

/// Logs the scheduler's events, and records dropped runs in the run history so `pipectl runs`
/// shows them.
async fn log_events(
    mut events: tokio::sync::mpsc::UnboundedReceiver<Event>,
    state: Arc<dyn StateStore>,
) {
    while let Some(event) = events.recv().await {
        match event {
            Event::Started {
                pipeline, trigger, ..
            } => tracing::info!(%pipeline, %trigger, "run started"),
            Event::Finished {
                pipeline,
                trigger,
                outcome,
                ..
            } => {
                let run = outcome.run_id.unwrap_or_default();
                match outcome.error {
                    Some(error) => {
                        tracing::warn!(%pipeline, %trigger, %run, status = ?outcome.outcome, %error, "run ended")
                    }
                    None => {
                        tracing::info!(%pipeline, %trigger, %run, status = ?outcome.outcome, "run ended")
                    }
                }
            }
            Event::Cancelling { pipeline, reason } => {
                tracing::info!(%pipeline, %reason, "cancelling run")
            }
            Event::Skipped {
                pipeline,
                trigger,
                reason,
            } => {
                let now = chrono::Utc::now();
                let mut run = RunRecord::new(new_run_id(now), &pipeline, "", now, trigger);
                run.status = RunStatus::Skipped;
                run.ended_at = Some(now);
                run.error = Some(format!("dropped: {reason}"));
                if let Err(e) = state.begin_run(&run) {
                    tracing::warn!(%pipeline, "cannot record a dropped run: {e}");
                }
            }
            Event::Fired { .. } | Event::RetryScheduled { .. } => {}
        }
    }
}

/// What was loaded from one file.
struct FileEntry {
    modified: Option<SystemTime>,
    len: u64,
    /// The pipeline it defines, when its last good version was loaded.
    pipeline: Option<String>,
}

/// Pipeline name -> the file it was loaded from (canonical), shared with the API.
pub(crate) type Registry = Arc<std::sync::Mutex<BTreeMap<String, PathBuf>>>;

/// Why a pipeline file did not load, by file, shared with the API.
pub(crate) type LoadErrors = Arc<std::sync::Mutex<BTreeMap<String, LoadError>>>;

/// The last failed load of a pipeline file.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct LoadError {
    /// The file.
    pub(crate) file: String,
    /// The pipeline its last good version defines (which keeps running), if any.
    pub(crate) pipeline: Option<String>,
    /// What is wrong, as `pipectl validate` says it.
    pub(crate) error: String,
    /// When the load failed.
    pub(crate) at: chrono::DateTime<chrono::Utc>,
}

struct Files {
    dir: PathBuf,
    state: Arc<dyn StateStore>,
    scheduler: Scheduler<LoadedPipeline>,
    streams: Streams,
    maintenance: Maintenance,
    metrics: Arc<Metrics>,
    env: EnvLookup,
    notice: Notice,
    files: BTreeMap<PathBuf, FileEntry>,
    loaded: BTreeMap<String, Arc<LoadedPipeline>>,
    watchers: BTreeMap<String, JoinHandle<()>>,
    registry: Registry,
    load_errors: LoadErrors,
    last_prune: Option<std::time::Instant>,
}

/// History is pruned at most this often (it reads each pruned pipeline's history).
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

impl Files {
    fn new(
        dir: PathBuf,
        state: Arc<dyn StateStore>,
        scheduler: Scheduler<LoadedPipeline>,
        streams: Streams,
        metrics: Arc<Metrics>,
        env: EnvLookup,
        notice: Notice,
    ) -> Self {
        Files {
            dir,
            maintenance: Maintenance::new(state.clone(), env.clone()),
            state,
            scheduler,
            streams,
            metrics,
            env,
            notice,
            files: BTreeMap::new(),
            loaded: BTreeMap::new(),
            watchers: BTreeMap::new(),
            registry: Registry::default(),
            load_errors: LoadErrors::default(),
            last_prune: None,
        }
    }

    /// Loads new and changed files, unloads deleted ones, and prunes history. At start-up
    /// (`first`) it also recovers crashed runs and looks up last fire times for catch-up.
    async fn scan(&mut self, first: bool) {
        let mut found = Vec::new();
        if let Err(e) = collect_yaml(&self.dir, &mut found) {
            tracing::error!(
                "cannot read the pipeline folder {}: {e}",
                self.dir.display()
            );
            return;
        }
        let found: BTreeSet<PathBuf> = found.into_iter().collect();
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| !found.contains(*p))
            .cloned()
            .collect();
        for path in gone {
            if let Ok(mut errors) = self.load_errors.lock() {
                errors.remove(&path.display().to_string());
            }
            if let Some(name) = self.files.remove(&path).and_then(|f| f.pipeline) {
                (self.notice)(&format!(
                    "pipectl serve: {} was removed; pipeline `{name}` is unloaded",
                    path.display()
                ));
                self.unload(&name).await;
            }
        }
        for path in found {
            let meta = std::fs::metadata(&path).ok();
            let modified = meta.as_ref().and_then(|m| m.modified().ok());
            let len = meta.as_ref().map_or(0, |m| m.len());
            if let Some(entry) = self.files.get(&path)
                && entry.modified == modified
                && entry.len == len
            {
                continue;
            }
            let previous = self.files.get(&path).and_then(|f| f.pipeline.clone());
            let pipeline = match self.load(&path, previous.as_deref(), first).await {
                Ok(name) => {
                    if let Ok(mut errors) = self.load_errors.lock() {
                        errors.remove(&path.display().to_string());
                    }
                    Some(name)
                }
                Err(error) => {
                    if let Ok(mut errors) = self.load_errors.lock() {
                        let file = path.display().to_string();
                        errors.insert(
                            file.clone(),
                            LoadError {
                                file,
                                pipeline: previous.clone(),
                                error,
                                at: chrono::Utc::now(),
                            },
                        );
                    }
                    None
                }
            };
            self.files.insert(
                path,
                FileEntry {
                    modified,
                    len,
                    pipeline: pipeline.or(previous),
                },
            );
        }
        if self
            .last_prune
            .is_none_or(|t| t.elapsed() >= PRUNE_INTERVAL)
        {
            self.last_prune = Some(std::time::Instant::now());
            self.prune_history();
        }
    }

    /// Loads one file; returns the pipeline name when it loaded, or what is wrong. An invalid
    /// file is reported and whatever it defined before keeps running.
    async fn load(
        &mut self,
        path: &Path,
        previous: Option<&str>,
        first: bool,
    ) -> Result<String, String> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                let error = format!("cannot read {}: {e}", path.display());
                tracing::error!("{error}");
                return Err(error);
            }
        };
        let keep = match previous {
            Some(name) => format!("; the last good version of `{name}` keeps running"),
            None => String::new(),
        };
        let spec = match pipectl_spec::load_bytes(&path.display().to_string(), &bytes) {
            Ok(spec) => spec,
            Err(diags) => {
                self.metrics.reload_failed();
                let text: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
                let text = text.join("\n\n");
                (self.notice)(&format!(
                    "{text}\npipectl serve: {} is invalid{keep}",
                    path.display()
                ));
                return Err(text);
            }
        };
        let name = spec.pipeline.name.clone();
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_owned());
        let clash = self
            .registry
            .lock()
            .ok()
            .and_then(|r| r.get(&name).cloned())
            .filter(|other| *other != canonical);
        if let Some(other) = clash {
            self.metrics.reload_failed();
            let error = format!(
                "{} defines pipeline `{name}`, which {} defines already; rename one of them",
                path.display(),
                other.display()
            );
            (self.notice)(&format!("pipectl serve: {error}{keep}"));
            return Err(error);
        }
        let schedule = match &spec.pipeline.schedule {
            Some(s) => match CronSchedule::parse(&s.cron, &s.timezone) {
                Ok(c) => Some(c),
                Err(e) => {
                    self.metrics.reload_failed();
                    let error = format!("{}: {e}", path.display());
                    (self.notice)(&format!("pipectl serve: {error}{keep}"));
                    return Err(error);
                }
            },
            None => None,
        };
        let base_dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let loaded = Arc::new(LoadedPipeline { spec, base_dir });
        if first {
            self.recover(&loaded).await;
        }
        if let Some(old) = previous.filter(|old| *old != name) {
            self.unload(old).await;
        }
        let streaming = pipectl_stream::is_streaming(&loaded.spec.pipeline);
        if streaming {
            // Runs continuously: not on the schedule, and restarted with the new version.
            self.scheduler.remove(&name);
            self.streams.start(loaded.clone()).await;
        } else {
            if self.streams.contains(&name) {
                self.streams.stop(&name).await;
            }
            let last_fire = if first { self.last_fire(&name) } else { None };
            self.scheduler.upsert(PipelineDef {
                name: name.clone(),
                file: path.display().to_string(),
                spec: loaded.clone(),
                schedule,
                policy: RunPolicy::from_spec(&loaded.spec.pipeline),
                last_fire,
            });
        }
        if !first {
            (self.notice)(&format!(
                "pipectl serve: loaded {} ({}pipeline `{name}`)",
                path.display(),
                if streaming { "streaming " } else { "" }
            ));
        }
        if let Err(e) = self
            .maintenance
            .start(&path.display().to_string(), loaded.clone())
        {
            (self.notice)(&format!("pipectl serve: {e}"));
        }
        if let Ok(mut r) = self.registry.lock() {
            r.insert(name.clone(), canonical);
        }
        self.watch_files(&name, &loaded);
        self.loaded.insert(name.clone(), loaded);
        Ok(name)
    }

    async fn unload(&mut self, name: &str) {
        self.scheduler.remove(name);
        self.maintenance.stop(name);
        self.streams.stop(name).await;
        self.loaded.remove(name);
        if let Some(w) = self.watchers.remove(name) {
            w.abort();
        }
        if let Ok(mut r) = self.registry.lock() {
            r.remove(name);
        }
    }

    /// Finishes or rolls back runs of this pipeline that a killed daemon left unfinished.
    async fn recover(&self, pipeline: &LoadedPipeline) {
        let env = self.env.clone();
        let spec = &pipeline.spec;
        let recovered = match Connections::resolve(&spec.pipeline, &pipeline.base_dir, |n| env(n)) {
            Ok(connections) => executor::recover(self.state.as_ref(), spec, &connections).await,
            Err(e) => Err(e),
        };
        match recovered {
            Ok(runs) => {
                for run in runs {
                    (self.notice)(&format!(
                        "pipectl serve: run {} of `{}` was left unfinished by a stopped process; now {:?}",
                        run.id, run.pipeline, run.status
                    ));
                }
            }
            Err(e) => {
                tracing::error!(pipeline = %spec.pipeline.name, "cannot recover unfinished runs: {e}")
            }
        }
    }

    /// The fire time of the newest scheduled or catch-up run in the history.
    fn last_fire(&self, name: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        let runs = self.state.runs(Some(name), 200).ok()?;
        runs.iter().find_map(|r| Trigger::fire_time_of(&r.trigger))
    }

    /// Applies `run.keep_runs` / `run.keep_days` to every loaded pipeline (runs also prune
    /// their own pipeline when they end; this catches `keep_days` of pipelines that rarely run).
    fn prune_history(&self) {
        for (name, pipeline) in &self.loaded {
            if let Some(settings) = &pipeline.spec.pipeline.run {
                prune(self.state.as_ref(), name, settings);
            }
        }
    }

    /// Starts (or restarts) the watcher of `run.on_new_files`.
    fn watch_files(&mut self, name: &str, pipeline: &Arc<LoadedPipeline>) {
        if let Some(w) = self.watchers.remove(name) {
            w.abort();
        }
        let Some(trigger) = pipeline
            .spec
            .pipeline
            .run
            .as_ref()
            .and_then(|r| r.on_new_files.clone())
        else {
            return;
        };
        let env = self.env.clone();
        let connections =
            match Connections::resolve(&pipeline.spec.pipeline, &pipeline.base_dir, |n| env(n)) {
                Ok(c) => c,
                Err(e) => {
                    (self.notice)(&format!(
                        "pipectl serve: pipeline `{name}`: run.on_new_files cannot be watched: {e}"
                    ));
                    return;
                }
            };
        let handle = match connections.object_store(&trigger.connection) {
            Ok(h) => h,
            Err(e) => {
                (self.notice)(&format!(
                    "pipectl serve: pipeline `{name}`: run.on_new_files.connection: {e}"
                ));
                return;
            }
        };
        let scheduler = self.scheduler.clone();
        let key = name.to_owned();
        let name = name.to_owned();
        let interval = Duration::from_secs_f64(trigger.poll_secs.max(0.1));
        let prefix = handle.path(&trigger.prefix);
        let task = tokio::spawn(async move {
            // Files present when watching starts are the baseline; only later ones trigger.
            let mut seen: Option<BTreeSet<String>> = None;
            loop {
                let mut now_seen = BTreeSet::new();
                let mut listing = handle.store.list(Some(&prefix));
                let mut failed = false;
                while let Some(item) = listing.next().await {
                    match item {
                        Ok(meta) => {
                            let key = meta.location.to_string();
                            // Staging folders and other reserved `_` folders are not new data.
                            if !key.split('/').any(|part| part.starts_with('_')) {
                                now_seen.insert(key);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(pipeline = %name, "cannot list {} in {}: {e}", prefix, handle.display);
                            failed = true;
                            break;
                        }
                    }
                }
                if !failed {
                    if let Some(before) = &seen
                        && let Some(first_new) = now_seen.difference(before).next()
                    {
                        let _ = scheduler
                            .trigger(&name, Trigger::Files(first_new.clone()), false)
                            .await;
                    }
                    seen = Some(now_seen);
                }
                tokio::time::sleep(interval).await;
            }
        });
        self.watchers.insert(key, task);
    }
}

/// Pipeline files under `dir` (hidden entries skipped), sorted.
fn collect_yaml(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'))
        {
            continue;
        }
        if path.is_dir() {
            collect_yaml(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(())
}
