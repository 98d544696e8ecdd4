//! The scheduler: one task that owns every pipeline's schedule and decides when runs start.
//!
//! It sleeps (on an injectable [`Clock`]) until the next fire time or retry, and reacts to
//! commands: load or replace a pipeline, remove one, trigger one, report status, shut down.
//! Runs execute in their own tasks through a [`Runner`]; a global semaphore bounds how many
//! run at once, and the run task enforces the per-run timeout with the same clock.
//!
//! Rules:
//! - Scheduled fires follow the pipeline's overlap policy when a run of it is still going (or
//!   waiting to retry): `skip` drops the new one, `queue` runs it afterwards, `cancel` cancels
//!   the running one and starts the new one when it has stopped.
//! - Manual and file triggers never cancel or skip: they queue behind a running run.
//! - Fire times missed because the scheduler was late (a stalled machine) are coalesced into
//!   one run; fire times missed while the daemon was down follow the catch-up policy.
//! - A failed run is retried (as a new run, with the same trigger) when its error is worth
//!   retrying and the pipeline has a retry policy; timeouts count as worth retrying.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use pipectl_spec::types::{CatchUpPolicy, OverlapPolicy};
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::cron::CronSchedule;
use crate::metrics::{Ended, Metrics};
use crate::policy::RunPolicy;

/// Executes one run of a pipeline.
pub trait Runner: Send + Sync + 'static {
    /// What the runner needs to run a pipeline (the loaded spec and its folder, in production).
    type Spec: Send + Sync + 'static;

    /// Runs `spec` once. Must return soon after `job.cancel` fires.
    fn run(&self, spec: Arc<Self::Spec>, job: Job) -> BoxFuture<'static, RunOutcome>;
}

/// One attempt of a run, as handed to a [`Runner`].
#[derive(Clone, Debug)]
pub struct Job {
    /// The pipeline's name.
    pub pipeline: String,
    /// What started it, as recorded in the run history (`schedule 2026-...Z`, `manual`, ...).
    pub trigger: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Fail the run when a step takes longer than this.
    pub step_timeout: Option<Duration>,
    /// Fired to stop the run; [`Job::cancel_reason`] says why.
    pub cancel: CancellationToken,
    /// Why the run was cancelled.
    pub cancel_reason: CancelReason,
}

/// Why a run was cancelled: set once, by whoever cancels first.
#[derive(Clone, Debug, Default)]
pub struct CancelReason(Arc<Mutex<Option<(String, bool)>>>);

impl CancelReason {
    /// Records why; `failure` marks reasons that make the run fail (timeouts) rather than end
    /// as cancelled (overlap, shutdown). The first reason wins.
    pub fn set(&self, message: impl Into<String>, failure: bool) {
        if let Ok(mut r) = self.0.lock()
            && r.is_none()
        {
            *r = Some((message.into(), failure));
        }
    }

    /// The reason and whether it is a failure.
    pub fn get(&self) -> Option<(String, bool)> {
        self.0.lock().ok().and_then(|r| r.clone())
    }
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Outcome {
    /// Output published.
    Succeeded,
    /// Failed; `retryable` when trying again may help.
    Failed {
        /// Whether a retry may help.
        retryable: bool,
    },
    /// Stopped on request.
    Cancelled,
}

/// The result of one attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunOutcome {
    /// The run's id in the history, when a run record was written.
    pub run_id: Option<String>,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Why it failed or was cancelled.
    pub error: Option<String>,
}

/// What started a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The cron schedule, for this fire time.
    Schedule(DateTime<Utc>),
    /// A fire time missed while the daemon was down.
    CatchUp(DateTime<Utc>),
    /// The API or `pipectl run` while the daemon holds the state.
    Manual,
    /// New objects under the watched prefix; the first new key.
    Files(String),
}

impl Trigger {
    /// The text recorded in the run history. Scheduled and catch-up triggers carry their fire
    /// time, which is how the daemon finds the last fire time after a restart.
    pub fn label(&self) -> String {
        match self {
            Trigger::Schedule(t) => format!(
                "schedule {}",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            Trigger::CatchUp(t) => format!(
                "catch-up {}",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            Trigger::Manual => "manual".to_owned(),
            Trigger::Files(key) => format!("files {key}"),
        }
    }

    /// The fire time recorded in a trigger label, if it is a scheduled or catch-up one.
    pub fn fire_time_of(label: &str) -> Option<DateTime<Utc>> {
        let mut words = label.split_whitespace();
        match words.next()? {
            "schedule" | "catch-up" => DateTime::parse_from_rfc3339(words.next()?)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            _ => None,
        }
    }
}

/// A pipeline as the scheduler knows it.
pub struct PipelineDef<S> {
    /// The pipeline's name (unique).
    pub name: String,
    /// The file it was loaded from, for status output.
    pub file: String,
    /// What the runner needs.
    pub spec: Arc<S>,
    /// Its cron schedule; `None` runs only on triggers.
    pub schedule: Option<CronSchedule>,
    /// Overlap, catch-up, timeouts and retries.
    pub policy: RunPolicy,
    /// The last fire time that started a run before the daemon (re)started; with the catch-up
    /// policy it decides which missed fire times run at start-up. Ignored on reloads.
    pub last_fire: Option<DateTime<Utc>>,
}

/// What became of a trigger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerAck {
    /// A run started (it may still wait for a free slot under the global limit).
    Started,
    /// A run of the pipeline is going; this one runs after it.
    Queued,
    /// Too many runs are queued already; this one was dropped.
    Skipped,
}

/// Why a trigger was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TriggerError {
    /// No pipeline with that name is loaded.
    UnknownPipeline(String),
    /// The daemon is stopping.
    ShuttingDown,
}

impl std::fmt::Display for TriggerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TriggerError::UnknownPipeline(name) => {
                write!(f, "no pipeline named `{name}` is loaded by this daemon")
            }
            TriggerError::ShuttingDown => {
                f.write_str("the daemon is stopping and starts no more runs")
            }
        }
    }
}

/// A pipeline's state, for the API.
#[derive(Clone, Debug, Serialize)]
pub struct PipelineStatus {
    /// Name.
    pub name: String,
    /// File it was loaded from.
    pub file: String,
    /// Cron expression, if scheduled.
    pub cron: Option<String>,
    /// Its time zone.
    pub timezone: Option<String>,
    /// Next scheduled fire time.
    pub next_fire: Option<DateTime<Utc>>,
    /// Whether a run is going.
    pub running: bool,
    /// Runs waiting behind the running one.
    pub queued: usize,
    /// When the next retry starts, if one is pending.
    pub retry_at: Option<DateTime<Utc>>,
    /// How the last attempt ended.
    pub last: Option<RunOutcome>,
    /// When the last attempt ended.
    pub last_ended_at: Option<DateTime<Utc>>,
    /// Runs dropped since start: by `overlap: skip`, or because `queue_limit` runs waited.
    pub skipped: u64,
    /// The most runs that may wait behind the running one (`queue_limit`).
    pub queue_limit: usize,
    /// The last dropped run: when, its trigger, and why.
    pub last_skipped: Option<SkippedRun>,
}

/// A run that was dropped instead of started or queued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SkippedRun {
    /// When it was dropped.
    pub at: DateTime<Utc>,
    /// What would have started it.
    pub trigger: String,
    /// Why it was dropped.
    pub reason: String,
}

/// Something that happened, for logs and tests.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A scheduled fire time came, `lateness` after it was due.
    Fired {
        /// Pipeline.
        pipeline: String,
        /// The fire time.
        fire: DateTime<Utc>,
        /// How late the scheduler noticed it.
        lateness: Duration,
    },
    /// An attempt was handed to the runner.
    Started {
        /// Pipeline.
        pipeline: String,
        /// Trigger label.
        trigger: String,
        /// Attempt number.
        attempt: u32,
    },
    /// A trigger was dropped by the overlap policy or the queue limit.
    Skipped {
        /// Pipeline.
        pipeline: String,
        /// Trigger label.
        trigger: String,
        /// Why it was dropped.
        reason: String,
    },
    /// A running attempt was asked to stop.
    Cancelling {
        /// Pipeline.
        pipeline: String,
        /// Why.
        reason: String,
    },
    /// An attempt ended.
    Finished {
        /// Pipeline.
        pipeline: String,
        /// Trigger label.
        trigger: String,
        /// Attempt number.
        attempt: u32,
        /// How.
        outcome: RunOutcome,
    },
    /// A retry will start at `at`.
    RetryScheduled {
        /// Pipeline.
        pipeline: String,
        /// The attempt that will run.
        attempt: u32,
        /// When.
        at: DateTime<Utc>,
    },
}

/// Scheduler-wide settings.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// Runs executing at once, over all pipelines.
    pub max_concurrent_runs: usize,
}

enum Cmd<S> {
    Upsert(Box<PipelineDef<S>>),
    Remove(String),
    Trigger {
        pipeline: String,
        trigger: Trigger,
        done: Option<oneshot::Sender<RunOutcome>>,
        reply: oneshot::Sender<Result<TriggerAck, TriggerError>>,
    },
    Status(oneshot::Sender<Vec<PipelineStatus>>),
    Shutdown {
        grace: Duration,
        done: oneshot::Sender<()>,
    },
    Done {
        pipeline: String,
        key: u64,
        outcome: RunOutcome,
    },
}

/// A handle to the scheduler task; cheap to clone.
pub struct Scheduler<S> {
    tx: mpsc::UnboundedSender<Cmd<S>>,
}

impl<S> Clone for Scheduler<S> {
    fn clone(&self) -> Self {
        Scheduler {
            tx: self.tx.clone(),
        }
    }
}

impl<S: Send + Sync + 'static> Scheduler<S> {
    /// Starts the scheduler task. `events` receives every [`Event`] (for logs and tests).
    pub fn spawn<R: Runner<Spec = S>>(
        clock: Arc<dyn Clock>,
        runner: Arc<R>,
        config: SchedulerConfig,
        metrics: Arc<Metrics>,
        events: Option<mpsc::UnboundedSender<Event>>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let actor = Actor {
            clock,
            runner,
            semaphore: Arc::new(Semaphore::new(config.max_concurrent_runs.max(1))),
            metrics,
            events,
            slots: BTreeMap::new(),
            tx: tx.clone(),
            next_key: 0,
            shutdown: None,
        };
        let task = tokio::spawn(actor.run(rx));
        (Scheduler { tx }, task)
    }

    /// Loads a pipeline, or replaces the loaded one of the same name (its running run goes on).
    pub fn upsert(&self, def: PipelineDef<S>) {
        let _ = self.tx.send(Cmd::Upsert(Box::new(def)));
    }

    /// Unloads a pipeline; a running run of it finishes, nothing more starts.
    pub fn remove(&self, name: &str) {
        let _ = self.tx.send(Cmd::Remove(name.to_owned()));
    }

    /// Triggers a run. With `wait`, the returned receiver yields the outcome of its last attempt.
    pub async fn trigger(
        &self,
        pipeline: &str,
        trigger: Trigger,
        wait: bool,
    ) -> Result<(TriggerAck, Option<oneshot::Receiver<RunOutcome>>), TriggerError> {
        let (reply, ack) = oneshot::channel();
        let (done, outcome) = if wait {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        self.tx
            .send(Cmd::Trigger {
                pipeline: pipeline.to_owned(),
                trigger,
                done,
                reply,
            })
            .map_err(|_| TriggerError::ShuttingDown)?;
        let ack = ack.await.map_err(|_| TriggerError::ShuttingDown)??;
        Ok((ack, outcome))
    }

    /// Every loaded pipeline's status, by name.
    pub async fn status(&self) -> Vec<PipelineStatus> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Status(tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Stops triggering, lets running runs finish for `grace`, then cancels them; returns when
    /// every run has ended.
    pub async fn shutdown(&self, grace: Duration) {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Cmd::Shutdown { grace, done }).is_ok() {
            let _ = rx.await;
        }
    }
}

struct Pending {
    trigger: Trigger,
    attempt: u32,
    done: Option<oneshot::Sender<RunOutcome>>,
}

struct Active {
    key: u64,
    trigger: Trigger,
    attempt: u32,
    done: Option<oneshot::Sender<RunOutcome>>,
    cancel: CancellationToken,
    reason: CancelReason,
    started: DateTime<Utc>,
}

struct Slot<S> {
    def: PipelineDef<S>,
    next_fire: Option<DateTime<Utc>>,
    active: Option<Active>,
    queue: VecDeque<Pending>,
    retry: Option<(DateTime<Utc>, Pending)>,
    last: Option<(RunOutcome, DateTime<Utc>)>,
    skipped: u64,
    last_skipped: Option<SkippedRun>,
    removed: bool,
}

impl<S> Slot<S> {
    fn busy(&self) -> bool {
        self.active.is_some() || self.retry.is_some()
    }
}

struct Actor<R: Runner> {
    clock: Arc<dyn Clock>,
    runner: Arc<R>,
    semaphore: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    events: Option<mpsc::UnboundedSender<Event>>,
    slots: BTreeMap<String, Slot<R::Spec>>,
    tx: mpsc::UnboundedSender<Cmd<R::Spec>>,
    next_key: u64,
    shutdown: Option<(DateTime<Utc>, bool, Vec<oneshot::Sender<()>>)>,
}

impl<R: Runner> Actor<R> {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd<R::Spec>>) {
        loop {
            let wake = self.next_wake();
            let clock = self.clock.clone();
            let sleep = async move {
                match wake {
                    Some(t) => clock.sleep_until(t).await,
                    None => futures::future::pending().await,
                }
            };
            tokio::select! {
                () = sleep => self.on_time(),
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => return,
                },
            }
            if let Some((_, _, waiters)) = &mut self.shutdown
                && self.slots.values().all(|s| s.active.is_none())
            {
                for w in waiters.drain(..) {
                    let _ = w.send(());
                }
                return;
            }
        }
    }

    fn emit(&self, event: Event) {
        if let Some(events) = &self.events {
            let _ = events.send(event);
        }
    }

    fn next_wake(&self) -> Option<DateTime<Utc>> {
        if let Some((deadline, cancelled, _)) = &self.shutdown {
            return (!cancelled).then_some(*deadline);
        }
        self.slots
            .values()
            .flat_map(|s| [s.next_fire, s.retry.as_ref().map(|r| r.0)])
            .flatten()
            .min()
    }

    fn on_time(&mut self) {
        let now = self.clock.now();
        if let Some((deadline, cancelled, _)) = &mut self.shutdown {
            if now >= *deadline && !*cancelled {
                *cancelled = true;
                let names: Vec<String> = self.slots.keys().cloned().collect();
                for name in names {
                    self.cancel_active(
                        &name,
                        "pipectl serve is stopping and the grace period ended",
                        false,
                    );
                }
            }
            return;
        }
        let names: Vec<String> = self.slots.keys().cloned().collect();
        for name in names {
            let Some(slot) = self.slots.get_mut(&name) else {
                continue;
            };
            if let Some(fire) = slot.next_fire.filter(|f| *f <= now) {
                // Coalesce fire times missed by a stalled scheduler into this one.
                slot.next_fire = slot.def.schedule.as_ref().and_then(|s| s.next_after(now));
                // Read the clock again: with many pipelines due at once, later ones are later.
                let lateness = (self.clock.now() - fire).to_std().unwrap_or_default();
                self.metrics.record_lateness(lateness);
                self.emit(Event::Fired {
                    pipeline: name.clone(),
                    fire,
                    lateness,
                });
                self.scheduled(&name, fire);
            }
            let Some(slot) = self.slots.get_mut(&name) else {
                continue;
            };
            if slot.retry.as_ref().is_some_and(|(at, _)| *at <= now)
                && let Some((_, pending)) = slot.retry.take()
            {
                self.start(&name, pending);
            }
        }
    }

    /// Applies the overlap policy to a scheduled fire.
    fn scheduled(&mut self, name: &str, fire: DateTime<Utc>) {
        let Some(slot) = self.slots.get_mut(name) else {
            return;
        };
        let pending = Pending {
            trigger: Trigger::Schedule(fire),
            attempt: 1,
            done: None,
        };
        if !slot.busy() {
            self.start(name, pending);
            return;
        }
        match slot.def.policy.overlap {
            OverlapPolicy::Skip => self.skip(
                name,
                &pending.trigger,
                "the previous run is still going (overlap: skip)".to_owned(),
            ),
            OverlapPolicy::Queue => {
                self.enqueue(name, pending);
            }
            OverlapPolicy::Cancel => {
                slot.queue.clear();
                if slot.active.is_some() {
                    slot.queue.push_front(pending);
                    let reason = format!(
                        "cancelled by the next scheduled run ({}; overlap: cancel)",
                        Trigger::Schedule(fire).label()
                    );
                    self.cancel_active(name, &reason, false);
                } else {
                    // Waiting to retry: the new run replaces the retry.
                    slot.retry = None;
                    self.start(name, pending);
                }
            }
        }
    }

    fn skip(&mut self, name: &str, trigger: &Trigger, reason: String) {
        let at = self.clock.now();
        if let Some(slot) = self.slots.get_mut(name) {
            slot.skipped += 1;
            slot.last_skipped = Some(SkippedRun {
                at,
                trigger: trigger.label(),
                reason: reason.clone(),
            });
        }
        self.metrics.run_skipped(name);
        tracing::warn!(pipeline = name, trigger = %trigger.label(), %reason, "run dropped");
        self.emit(Event::Skipped {
            pipeline: name.to_owned(),
            trigger: trigger.label(),
            reason,
        });
    }

    fn enqueue(&mut self, name: &str, pending: Pending) -> TriggerAck {
        let Some(slot) = self.slots.get_mut(name) else {
            return TriggerAck::Skipped;
        };
        let limit = slot.def.policy.queue_limit;
        if slot.queue.len() >= limit {
            let trigger = pending.trigger.clone();
            self.skip(
                name,
                &trigger,
                format!("the queue of runs waiting behind the running one is full (queue_limit: {limit})"),
            );
            return TriggerAck::Skipped;
        }
        slot.queue.push_back(pending);
        TriggerAck::Queued
    }

    fn cancel_active(&mut self, name: &str, reason: &str, failure: bool) {
        let Some(active) = self.slots.get(name).and_then(|s| s.active.as_ref()) else {
            return;
        };
        active.reason.set(reason, failure);
        active.cancel.cancel();
        self.emit(Event::Cancelling {
            pipeline: name.to_owned(),
            reason: reason.to_owned(),
        });
    }

    fn start(&mut self, name: &str, pending: Pending) {
        let Some(slot) = self.slots.get_mut(name) else {
            return;
        };
        self.next_key += 1;
        let key = self.next_key;
        let cancel = CancellationToken::new();
        let reason = CancelReason::default();
        let mut label = pending.trigger.label();
        if pending.attempt > 1 {
            let max = slot.def.policy.retry.as_ref().map_or(1, |r| r.max_attempts);
            label = format!("{label} (attempt {} of {max})", pending.attempt);
        }
        let job = Job {
            pipeline: name.to_owned(),
            trigger: label.clone(),
            attempt: pending.attempt,
            step_timeout: slot.def.policy.step_timeout,
            cancel: cancel.clone(),
            cancel_reason: reason.clone(),
        };
        let started = self.clock.now();
        slot.active = Some(Active {
            key,
            trigger: pending.trigger,
            attempt: pending.attempt,
            done: pending.done,
            cancel: cancel.clone(),
            reason: reason.clone(),
            started,
        });
        let timeout = slot.def.policy.timeout;
        let spec = slot.def.spec.clone();
        let (runner, clock, semaphore, tx) = (
            self.runner.clone(),
            self.clock.clone(),
            self.semaphore.clone(),
            self.tx.clone(),
        );
        let pipeline = name.to_owned();
        self.metrics.run_started(name);
        self.emit(Event::Started {
            pipeline: name.to_owned(),
            trigger: label,
            attempt: job.attempt,
        });
        tokio::spawn(async move {
            let outcome = run_attempt(runner, clock, semaphore, spec, job, timeout).await;
            let _ = tx.send(Cmd::Done {
                pipeline,
                key,
                outcome,
            });
        });
    }

    fn handle(&mut self, cmd: Cmd<R::Spec>) {
        match cmd {
            Cmd::Upsert(def) => self.upsert(*def),
            Cmd::Remove(name) => {
                if let Some(slot) = self.slots.get_mut(&name) {
                    if slot.active.is_some() {
                        slot.removed = true;
                        slot.next_fire = None;
                        slot.queue.clear();
                        slot.retry = None;
                    } else {
                        self.slots.remove(&name);
                    }
                }
            }
            Cmd::Trigger {
                pipeline,
                trigger,
                done,
                reply,
            } => {
                let result = self.trigger(&pipeline, trigger, done);
                let _ = reply.send(result);
            }
            Cmd::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Cmd::Shutdown { grace, done } => {
                match &mut self.shutdown {
                    Some((_, _, waiters)) => waiters.push(done),
                    None => {
                        let deadline = self.clock.now()
                            + chrono::Duration::from_std(grace).unwrap_or_default();
                        self.shutdown = Some((deadline, false, vec![done]));
                    }
                }
                for slot in self.slots.values_mut() {
                    slot.next_fire = None;
                    slot.queue.clear();
                    slot.retry = None;
                }
            }
            Cmd::Done {
                pipeline,
                key,
                outcome,
            } => self.done(&pipeline, key, outcome),
        }
    }

    fn upsert(&mut self, def: PipelineDef<R::Spec>) {
        let now = self.clock.now();
        if self.shutdown.is_some() {
            return;
        }
        if let Some(slot) = self.slots.get_mut(&def.name) {
            let same_schedule = match (&slot.def.schedule, &def.schedule) {
                (Some(a), Some(b)) => a.expr() == b.expr() && a.timezone() == b.timezone(),
                (None, None) => true,
                _ => false,
            };
            if !same_schedule || slot.removed {
                slot.next_fire = def.schedule.as_ref().and_then(|s| s.next_after(now));
            }
            slot.removed = false;
            slot.def = def;
            return;
        }
        let name = def.name.clone();
        let next_fire = def.schedule.as_ref().and_then(|s| s.next_after(now));
        let missed = match (&def.schedule, def.last_fire, def.policy.catch_up) {
            (Some(s), Some(last), CatchUpPolicy::Latest) => s.fires_between(last, now, 1),
            (Some(s), Some(last), CatchUpPolicy::All) => {
                s.fires_between(last, now, def.policy.catch_up_limit as usize)
            }
            _ => Vec::new(),
        };
        let mut slot = Slot {
            def,
            next_fire,
            active: None,
            queue: VecDeque::new(),
            retry: None,
            last: None,
            skipped: 0,
            last_skipped: None,
            removed: false,
        };
        if !missed.is_empty() {
            tracing::info!(pipeline = %name, missed = missed.len(), "catching up on fire times missed while the daemon was down");
        }
        slot.queue.extend(missed.into_iter().map(|t| Pending {
            trigger: Trigger::CatchUp(t),
            attempt: 1,
            done: None,
        }));
        self.slots.insert(name.clone(), slot);
        self.start_next(&name);
    }

    fn trigger(
        &mut self,
        name: &str,
        trigger: Trigger,
        done: Option<oneshot::Sender<RunOutcome>>,
    ) -> Result<TriggerAck, TriggerError> {
        if self.shutdown.is_some() {
            return Err(TriggerError::ShuttingDown);
        }
        let slot = match self.slots.get(name) {
            Some(s) if !s.removed => s,
            _ => return Err(TriggerError::UnknownPipeline(name.to_owned())),
        };
        let pending = Pending {
            trigger,
            attempt: 1,
            done,
        };
        if slot.busy() {
            Ok(self.enqueue(name, pending))
        } else {
            self.start(name, pending);
            Ok(TriggerAck::Started)
        }
    }

    fn start_next(&mut self, name: &str) {
        if self.shutdown.is_some() {
            return;
        }
        let Some(slot) = self.slots.get_mut(name) else {
            return;
        };
        if slot.busy() {
            return;
        }
        if let Some(pending) = slot.queue.pop_front() {
            self.start(name, pending);
        }
    }

    fn done(&mut self, name: &str, key: u64, outcome: RunOutcome) {
        let now = self.clock.now();
        let Some(slot) = self.slots.get_mut(name) else {
            return;
        };
        if slot.active.as_ref().is_none_or(|a| a.key != key) {
            return;
        }
        let Some(mut active) = slot.active.take() else {
            return;
        };
        let ended = match outcome.outcome {
            Outcome::Succeeded => Ended::Succeeded,
            Outcome::Failed { .. } => Ended::Failed,
            Outcome::Cancelled => Ended::Cancelled,
        };
        self.metrics.run_ended(
            name,
            ended,
            (now - active.started).to_std().unwrap_or_default(),
        );
        if matches!(active.reason.get(), Some((_, true))) {
            self.metrics.run_timed_out(name);
        }
        slot.last = Some((outcome.clone(), now));
        let label = active.trigger.label();
        let retry = match (&outcome.outcome, &slot.def.policy.retry) {
            (Outcome::Failed { retryable: true }, Some(backoff))
                if active.attempt < backoff.max_attempts
                    && self.shutdown.is_none()
                    && !slot.removed =>
            {
                Some(backoff.delay(active.attempt))
            }
            _ => None,
        };
        match retry {
            Some(delay) => {
                let at = now + chrono::Duration::from_std(delay).unwrap_or_default();
                let attempt = active.attempt + 1;
                slot.retry = Some((
                    at,
                    Pending {
                        trigger: active.trigger.clone(),
                        attempt,
                        done: active.done.take(),
                    },
                ));
                self.metrics.run_retried(name);
                tracing::warn!(pipeline = name, attempt, at = %at, error = outcome.error.as_deref().unwrap_or(""), "run failed; retrying");
            }
            None => {
                if let Some(done) = active.done.take() {
                    let _ = done.send(outcome.clone());
                }
            }
        }
        let removed = slot.removed;
        let retry_at = slot.retry.as_ref().map(|r| r.0);
        self.emit(Event::Finished {
            pipeline: name.to_owned(),
            trigger: label,
            attempt: active.attempt,
            outcome,
        });
        if let Some(at) = retry_at {
            self.emit(Event::RetryScheduled {
                pipeline: name.to_owned(),
                attempt: active.attempt + 1,
                at,
            });
        }
        if removed {
            self.slots.remove(name);
            return;
        }
        self.start_next(name);
    }

    fn status(&self) -> Vec<PipelineStatus> {
        self.slots
            .values()
            .filter(|s| !s.removed)
            .map(|s| PipelineStatus {
                name: s.def.name.clone(),
                file: s.def.file.clone(),
                cron: s.def.schedule.as_ref().map(|c| c.expr().to_owned()),
                timezone: s
                    .def
                    .schedule
                    .as_ref()
                    .map(|c| c.timezone().name().to_owned()),
                next_fire: s.next_fire,
                running: s.active.is_some(),
                queued: s.queue.len(),
                retry_at: s.retry.as_ref().map(|r| r.0),
                last: s.last.as_ref().map(|l| l.0.clone()),
                last_ended_at: s.last.as_ref().map(|l| l.1),
                skipped: s.skipped,
                queue_limit: s.def.policy.queue_limit,
                last_skipped: s.last_skipped.clone(),
            })
            .collect()
    }
}

/// One attempt: waits for a slot under the global limit, runs, enforces the run timeout.
async fn run_attempt<R: Runner>(
    runner: Arc<R>,
    clock: Arc<dyn Clock>,
    semaphore: Arc<Semaphore>,
    spec: Arc<R::Spec>,
    job: Job,
    timeout: Option<Duration>,
) -> RunOutcome {
    let permit = tokio::select! {
        permit = semaphore.acquire_owned() => permit.ok(),
        () = job.cancel.cancelled() => None,
    };
    let Some(_permit) = permit else {
        let reason = job.cancel_reason.get().map(|r| r.0);
        return RunOutcome {
            run_id: None,
            outcome: Outcome::Cancelled,
            error: reason,
        };
    };
    let cancel = job.cancel.clone();
    let reason = job.cancel_reason.clone();
    let mut run = runner.run(spec, job);
    let outcome = match timeout {
        None => run.await,
        Some(limit) => {
            let deadline = clock.now() + chrono::Duration::from_std(limit).unwrap_or_default();
            tokio::select! {
                outcome = &mut run => outcome,
                () = clock.sleep_until(deadline) => {
                    reason.set(format!("the run timed out after {} (run.timeout_secs)", human(limit)), true);
                    cancel.cancel();
                    run.await
                }
            }
        }
    };
    match (outcome.outcome.clone(), reason.get()) {
        // A cancellation that was really a timeout is a failure worth retrying.
        (Outcome::Cancelled, Some((message, true))) => RunOutcome {
            run_id: outcome.run_id,
            outcome: Outcome::Failed { retryable: true },
            error: Some(message),
        },
        (Outcome::Cancelled, Some((message, false))) if outcome.error.is_none() => RunOutcome {
            error: Some(message),
            ..outcome
        },
        _ => outcome,
    }
}

/// `90s`, `1.5s`, `10m`.
pub(crate) fn human(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 60.0 && secs.fract() == 0.0 && secs % 60.0 == 0.0 {
        format!("{}m", secs / 60.0)
    } else {
        format!("{secs}s")
    }
}
