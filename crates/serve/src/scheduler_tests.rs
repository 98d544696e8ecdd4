//! Scheduler tests on a [`ManualClock`]: nothing here waits for real time to pass.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use pipectl_spec::types::{CatchUpPolicy, OverlapPolicy};
use tokio::sync::{mpsc, oneshot};

use crate::clock::{Clock, ManualClock};
use crate::cron::CronSchedule;
use crate::metrics::Metrics;
use crate::policy::{Backoff, RunPolicy};
use crate::scheduler::*;

/// A run the test finishes by hand.
struct RunCtl {
    job: Job,
    finish: oneshot::Sender<RunOutcome>,
}

/// A runner that hands every run to the test and ends it when told (or when cancelled).
struct FakeRunner {
    runs: mpsc::UnboundedSender<RunCtl>,
}

impl Runner for FakeRunner {
    type Spec = ();

    fn run(&self, _spec: Arc<()>, job: Job) -> BoxFuture<'static, RunOutcome> {
        let (finish, finished) = oneshot::channel();
        let cancel = job.cancel.clone();
        let _ = self.runs.send(RunCtl { job, finish });
        async move {
            tokio::select! {
                outcome = finished => outcome.unwrap_or(RunOutcome { run_id: None, outcome: Outcome::Cancelled, error: None }),
                () = cancel.cancelled() => RunOutcome { run_id: None, outcome: Outcome::Cancelled, error: None },
            }
        }
        .boxed()
    }
}

struct Harness {
    clock: Arc<ManualClock>,
    scheduler: Scheduler<()>,
    events: mpsc::UnboundedReceiver<Event>,
    runs: mpsc::UnboundedReceiver<RunCtl>,
    metrics: Arc<Metrics>,
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn harness(start: &str, max_concurrent_runs: usize) -> Harness {
    let clock = ManualClock::new(utc(start));
    let (runs_tx, runs) = mpsc::unbounded_channel();
    let (events_tx, events) = mpsc::unbounded_channel();
    let metrics = Arc::new(Metrics::default());
    let (scheduler, _task) = Scheduler::spawn(
        clock.clone(),
        Arc::new(FakeRunner { runs: runs_tx }),
        SchedulerConfig {
            max_concurrent_runs,
        },
        metrics.clone(),
        Some(events_tx),
    );
    Harness {
        clock,
        scheduler,
        events,
        runs,
        metrics,
    }
}

fn def(name: &str, cron: &str, tz: &str, policy: RunPolicy) -> PipelineDef<()> {
    PipelineDef {
        name: name.to_owned(),
        file: format!("{name}.yaml"),
        spec: Arc::new(()),
        schedule: Some(CronSchedule::parse(cron, tz).unwrap()),
        policy,
        last_fire: None,
    }
}

fn ok() -> RunOutcome {
    RunOutcome {
        run_id: Some("r".to_owned()),
        outcome: Outcome::Succeeded,
        error: None,
    }
}

fn failed(retryable: bool) -> RunOutcome {
    RunOutcome {
        run_id: Some("r".to_owned()),
        outcome: Outcome::Failed { retryable },
        error: Some("boom".to_owned()),
    }
}

const WAIT: Duration = Duration::from_secs(5);

impl Harness {
    /// The next event matching `pred`, skipping others.
    async fn event(&mut self, pred: impl Fn(&Event) -> bool) -> Event {
        loop {
            let e = tokio::time::timeout(WAIT, self.events.recv())
                .await
                .expect("event in time")
                .expect("scheduler alive");
            if pred(&e) {
                return e;
            }
        }
    }

    async fn run(&mut self) -> RunCtl {
        tokio::time::timeout(WAIT, self.runs.recv())
            .await
            .expect("a run starts")
            .expect("runner alive")
    }

    /// Asserts no run starts (after letting the scheduler process everything queued).
    async fn no_run(&mut self) {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Ok(ctl) = self.runs.try_recv() {
            panic!("unexpected run: {}", ctl.job.trigger);
        }
    }

    fn advance_secs(&self, secs: i64) {
        self.clock.advance(chrono::Duration::seconds(secs));
    }

    async fn status(&self, name: &str) -> PipelineStatus {
        self.scheduler
            .status()
            .await
            .into_iter()
            .find(|s| s.name == name)
            .expect("pipeline loaded")
    }
}

#[tokio::test]
async fn runs_fire_on_the_cron_schedule_with_seconds() {
    let mut h = harness("2026-01-01T00:00:05Z", 4);
    h.scheduler
        .upsert(def("p", "*/10 * * * * *", "UTC", RunPolicy::default()));
    assert_eq!(
        h.status("p").await.next_fire,
        Some(utc("2026-01-01T00:00:10Z"))
    );
    h.no_run().await;
    h.advance_secs(5);
    let run = h.run().await;
    assert_eq!(run.job.trigger, "schedule 2026-01-01T00:00:10Z");
    assert_eq!(run.job.attempt, 1);
    let _ = run.finish.send(ok());
    h.event(|e| matches!(e, Event::Finished { .. })).await;
    h.advance_secs(10);
    assert_eq!(h.run().await.job.trigger, "schedule 2026-01-01T00:00:20Z");
    assert_eq!(h.metrics.lateness_quantile(1.0), Some(0.0));
}

#[tokio::test]
async fn a_stalled_scheduler_coalesces_missed_fires_and_records_lateness() {
    let mut h = harness("2026-01-01T00:00:00Z", 4);
    h.scheduler
        .upsert(def("p", "* * * * *", "UTC", RunPolicy::default()));
    h.status("p").await;
    // Three fire times pass at once: one run, for the first, 2m30s late.
    h.advance_secs(210);
    let fired = h.event(|e| matches!(e, Event::Fired { .. })).await;
    assert_eq!(
        fired,
        Event::Fired {
            pipeline: "p".into(),
            fire: utc("2026-01-01T00:01:00Z"),
            lateness: Duration::from_secs(150)
        }
    );
    let run = h.run().await;
    let _ = run.finish.send(ok());
    h.no_run().await;
    assert_eq!(
        h.status("p").await.next_fire,
        Some(utc("2026-01-01T00:04:00Z"))
    );
}

#[tokio::test]
async fn daily_schedule_in_berlin_crosses_both_dst_changes() {
    let mut h = harness("2026-03-28T12:00:00Z", 4);
    h.scheduler.upsert(def(
        "p",
        "30 2 * * *",
        "Europe/Berlin",
        RunPolicy::default(),
    ));
    // 02:30 does not exist on 2026-03-29: the run fires when clocks jump to 03:00 CEST.
    assert_eq!(
        h.status("p").await.next_fire,
        Some(utc("2026-03-29T01:00:00Z"))
    );
    h.clock.set(utc("2026-03-29T01:00:00Z"));
    let _ = h.run().await.finish.send(ok());
    h.event(|e| matches!(e, Event::Finished { .. })).await;
    assert_eq!(
        h.status("p").await.next_fire,
        Some(utc("2026-03-30T00:30:00Z"))
    );
    // 02:30 happens twice on 2026-10-25: one run, at the first.
    h.clock.set(utc("2026-10-24T12:00:00Z"));
    let _ = h.run().await.finish.send(ok()); // the missed-while-stalled fire, coalesced
    h.event(|e| matches!(e, Event::Finished { .. })).await;
    assert_eq!(
        h.status("p").await.next_fire,
        Some(utc("2026-10-25T00:30:00Z"))
    );
    h.clock.set(utc("2026-10-25T00:30:00Z"));
    let _ = h.run().await.finish.send(ok());
    h.event(|e| matches!(e, Event::Finished { .. })).await;
    assert_eq!(
        h.status("p").await.next_fire,
        Some(utc("2026-10-26T01:30:00Z"))
    );
    h.clock.set(utc("2026-10-25T01:30:00Z"));
    h.no_run().await;
}

fn with_overlap(overlap: OverlapPolicy) -> RunPolicy {
    RunPolicy {
        overlap,
        ..RunPolicy::default()
    }
}

#[tokio::test]
async fn overlap_skip_drops_the_new_run() {
    let mut h = harness("2026-01-01T00:00:00Z", 4);
    h.scheduler.upsert(def(
        "p",
        "* * * * *",
        "UTC",
        with_overlap(OverlapPolicy::Skip),
    ));
    h.status("p").await;
    h.advance_secs(60);
    let first = h.run().await;
    h.advance_secs(60);
    let skipped = h.event(|e| matches!(e, Event::Skipped { .. })).await;
    assert_eq!(
        skipped,
        Event::Skipped {
            pipeline: "p".into(),
            trigger: "schedule 2026-01-01T00:02:00Z".into(),
            reason: "the previous run is still going (overlap: skip)".into(),
        }
    );
    let _ = first.finish.send(ok());
    h.no_run().await;
    assert_eq!(h.status("p").await.skipped, 1);
    assert!(
        h.metrics
            .render(0, 1)
            .contains("pipectl_runs_skipped_total{pipeline=\"p\"} 1")
    );
}

#[tokio::test]
async fn overlap_queue_runs_the_new_run_afterwards() {
    let mut h = harness("2026-01-01T00:00:00Z", 4);
    h.scheduler.upsert(def(
        "p",
        "* * * * *",
        "UTC",
        with_overlap(OverlapPolicy::Queue),
    ));
    h.status("p").await;
    h.advance_secs(60);
    let first = h.run().await;
    h.advance_secs(60);
    h.event(|e| matches!(e, Event::Fired { .. })).await;
    h.no_run().await;
    assert_eq!(h.status("p").await.queued, 1);
    let _ = first.finish.send(ok());
    assert_eq!(h.run().await.job.trigger, "schedule 2026-01-01T00:02:00Z");
}

#[tokio::test]
async fn overlap_queue_drops_fires_beyond_the_queue_limit_and_says_so() {
    let mut h = harness("2026-01-01T00:00:00Z", 4);
    h.scheduler.upsert(def(
        "p",
        "* * * * *",
        "UTC",
        RunPolicy {
            queue_limit: 2,
            ..with_overlap(OverlapPolicy::Queue)
        },
    ));
    h.status("p").await;
    h.advance_secs(60);
    let first = h.run().await;
    for minute in ["00:02", "00:03"] {
        h.advance_secs(60);
        let due = format!("2026-01-01T{minute}:00+00:00");
        h.event(|e| matches!(e, Event::Fired { fire, .. } if fire.to_rfc3339() == due))
            .await;
    }
    assert_eq!(h.status("p").await.queued, 2);
    h.advance_secs(60);
    let dropped = h.event(|e| matches!(e, Event::Skipped { .. })).await;
    assert_eq!(
        dropped,
        Event::Skipped {
            pipeline: "p".into(),
            trigger: "schedule 2026-01-01T00:04:00Z".into(),
            reason: "the queue of runs waiting behind the running one is full (queue_limit: 2)"
                .into(),
        }
    );
    let status = h.status("p").await;
    assert_eq!(
        (status.queued, status.skipped, status.queue_limit),
        (2, 1, 2)
    );
    let last = status.last_skipped.unwrap();
    assert_eq!(last.trigger, "schedule 2026-01-01T00:04:00Z");
    assert_eq!(last.at.to_rfc3339(), "2026-01-01T00:04:00+00:00");
    let _ = first.finish.send(ok());
    assert_eq!(h.run().await.job.trigger, "schedule 2026-01-01T00:02:00Z");
}

#[tokio::test]
async fn overlap_cancel_stops_the_running_run_then_starts_the_new_one() {
    let mut h = harness("2026-01-01T00:00:00Z", 4);
    h.scheduler.upsert(def(
        "p",
        "* * * * *",
        "UTC",
        with_overlap(OverlapPolicy::Cancel),
    ));
    h.status("p").await;
    h.advance_secs(60);
    let first = h.run().await;
    h.advance_secs(60);
    let second = h.run().await;
    assert!(first.job.cancel.is_cancelled());
    assert_eq!(second.job.trigger, "schedule 2026-01-01T00:02:00Z");
    let Event::Finished { outcome, .. } = h.event(|e| matches!(e, Event::Finished { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(outcome.outcome, Outcome::Cancelled);
    assert!(outcome.error.unwrap().contains("overlap: cancel"));
}

fn catch_up(policy: CatchUpPolicy, limit: u32) -> RunPolicy {
    RunPolicy {
        catch_up: policy,
        catch_up_limit: limit,
        overlap: OverlapPolicy::Skip,
        ..RunPolicy::default()
    }
}

#[tokio::test]
async fn catch_up_latest_runs_only_the_last_missed_fire_time() {
    let mut h = harness("2026-01-01T10:30:00Z", 4);
    let mut d = def("p", "0 * * * *", "UTC", catch_up(CatchUpPolicy::Latest, 10));
    d.last_fire = Some(utc("2026-01-01T07:00:00Z"));
    h.scheduler.upsert(d);
    assert_eq!(h.run().await.job.trigger, "catch-up 2026-01-01T10:00:00Z");
    h.no_run().await;
}

#[tokio::test]
async fn catch_up_all_runs_missed_fire_times_in_order_up_to_the_limit() {
    let mut h = harness("2026-01-01T10:30:00Z", 4);
    let mut d = def("p", "0 * * * *", "UTC", catch_up(CatchUpPolicy::All, 2));
    d.last_fire = Some(utc("2026-01-01T07:00:00Z"));
    h.scheduler.upsert(d);
    let first = h.run().await;
    assert_eq!(first.job.trigger, "catch-up 2026-01-01T09:00:00Z");
    h.no_run().await;
    let _ = first.finish.send(ok());
    let second = h.run().await;
    assert_eq!(second.job.trigger, "catch-up 2026-01-01T10:00:00Z");
    let _ = second.finish.send(ok());
    h.no_run().await;
    h.advance_secs(30 * 60);
    assert_eq!(h.run().await.job.trigger, "schedule 2026-01-01T11:00:00Z");
}

#[tokio::test]
async fn catch_up_none_waits_for_the_next_fire_time() {
    let mut h = harness("2026-01-01T10:30:00Z", 4);
    let mut d = def("p", "0 * * * *", "UTC", catch_up(CatchUpPolicy::None, 10));
    d.last_fire = Some(utc("2026-01-01T07:00:00Z"));
    h.scheduler.upsert(d);
    h.no_run().await;
    assert_eq!(
        h.status("p").await.next_fire,
        Some(utc("2026-01-01T11:00:00Z"))
    );
}

fn retrying(max_attempts: u32) -> RunPolicy {
    RunPolicy {
        retry: Some(Backoff {
            max_attempts,
            initial: Duration::from_secs(10),
            max: Duration::from_secs(15),
        }),
        ..RunPolicy::default()
    }
}

#[tokio::test]
async fn retryable_failures_are_retried_with_backoff_until_attempts_run_out() {
    let mut h = harness("2026-01-01T00:00:00Z", 4);
    let mut d = def("p", "0 0 * * *", "UTC", retrying(3));
    d.schedule = None;
    h.scheduler.upsert(d);
    let (ack, done) = h
        .scheduler
        .trigger("p", Trigger::Manual, true)
        .await
        .unwrap();
    assert_eq!(ack, TriggerAck::Started);
    let start = h.clock.now();
    let _ = h.run().await.finish.send(failed(true));
    let Event::RetryScheduled { attempt, at, .. } =
        h.event(|e| matches!(e, Event::RetryScheduled { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(attempt, 2);
    // Equal jitter: between half the base wait (10 s) and all of it.
    assert!(
        at >= start + chrono::Duration::seconds(5) && at <= start + chrono::Duration::seconds(10),
        "{at}"
    );
    h.no_run().await;
    h.clock.set(at);
    let second = h.run().await;
    assert_eq!(
        (second.job.attempt, second.job.trigger.as_str()),
        (2, "manual (attempt 2 of 3)")
    );
    let _ = second.finish.send(failed(true));
    let Event::RetryScheduled { at, .. } =
        h.event(|e| matches!(e, Event::RetryScheduled { .. })).await
    else {
        unreachable!()
    };
    // The base doubles to 20 s but is capped at 15 s.
    let waited = at - h.clock.now();
    assert!(
        waited >= chrono::Duration::milliseconds(7500) && waited <= chrono::Duration::seconds(15),
        "{waited}"
    );
    h.clock.set(at);
    let third = h.run().await;
    assert_eq!(third.job.attempt, 3);
    let _ = third.finish.send(failed(true));
    // The caller waiting on the trigger hears about the last attempt only.
    let outcome = tokio::time::timeout(WAIT, done.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.outcome, Outcome::Failed { retryable: true });
    h.advance_secs(3600);
    h.no_run().await;
    assert!(
        h.metrics
            .render(0, 1)
            .contains("pipectl_run_retries_total{pipeline=\"p\"} 2")
    );
}

#[tokio::test]
async fn failures_not_worth_retrying_are_not_retried() {
    let mut h = harness("2026-01-01T00:00:00Z", 4);
    let mut d = def("p", "0 0 * * *", "UTC", retrying(5));
    d.schedule = None;
    h.scheduler.upsert(d);
    h.scheduler
        .trigger("p", Trigger::Manual, false)
        .await
        .unwrap();
    let _ = h.run().await.finish.send(failed(false));
    h.event(|e| matches!(e, Event::Finished { .. })).await;
    h.advance_secs(3600);
    h.no_run().await;
    assert_eq!(h.status("p").await.retry_at, None);
}

#[tokio::test]
async fn a_run_over_its_timeout_is_cancelled_failed_and_retried() {
    let mut h = harness("2026-01-01T00:00:00Z", 4);
    let mut policy = retrying(2);
    policy.timeout = Some(Duration::from_secs(30));
    let mut d = def("p", "0 0 * * *", "UTC", policy);
    d.schedule = None;
    h.scheduler.upsert(d);
    h.scheduler
        .trigger("p", Trigger::Manual, false)
        .await
        .unwrap();
    let run = h.run().await;
    h.advance_secs(29);
    h.no_run().await;
    assert!(!run.job.cancel.is_cancelled());
    h.advance_secs(1);
    let Event::Finished { outcome, .. } = h.event(|e| matches!(e, Event::Finished { .. })).await
    else {
        unreachable!()
    };
    assert!(run.job.cancel.is_cancelled());
    assert_eq!(outcome.outcome, Outcome::Failed { retryable: true });
    assert_eq!(
        outcome.error.as_deref(),
        Some("the run timed out after 30s (run.timeout_secs)")
    );
    h.event(|e| matches!(e, Event::RetryScheduled { .. })).await;
    assert!(
        h.metrics
            .render(0, 1)
            .contains("pipectl_run_timeouts_total{pipeline=\"p\"} 1")
    );
}

#[tokio::test]
async fn the_global_limit_bounds_concurrent_runs() {
    let mut h = harness("2026-01-01T00:00:00Z", 1);
    for name in ["a", "b"] {
        h.scheduler
            .upsert(def(name, "* * * * *", "UTC", RunPolicy::default()));
    }
    h.status("a").await;
    h.advance_secs(60);
    let first = h.run().await;
    h.no_run().await;
    // Both count as started for their pipelines; the second waits for the slot.
    assert!(h.status("a").await.running && h.status("b").await.running);
    let _ = first.finish.send(ok());
    let second = h.run().await;
    assert_ne!(first.job.pipeline, second.job.pipeline);
}

#[tokio::test]
async fn manual_triggers_queue_behind_a_running_run() {
    let mut h = harness("2026-01-01T00:00:00Z", 4);
    h.scheduler.upsert(def(
        "p",
        "* * * * *",
        "UTC",
        with_overlap(OverlapPolicy::Skip),
    ));
    h.status("p").await;
    h.advance_secs(60);
    let first = h.run().await;
    let (ack, _) = h
        .scheduler
        .trigger("p", Trigger::Manual, false)
        .await
        .unwrap();
    assert_eq!(ack, TriggerAck::Queued);
    let _ = first.finish.send(ok());
    assert_eq!(h.run().await.job.trigger, "manual");
    let err = h
        .scheduler
        .trigger("nope", Trigger::Manual, false)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no pipeline named `nope` is loaded by this daemon"
    );
}

#[tokio::test]
async fn shutdown_lets_runs_finish_within_the_grace_period_then_cancels_them() {
    let mut h = harness("2026-01-01T00:00:00Z", 4);
    h.scheduler
        .upsert(def("p", "* * * * * *", "UTC", RunPolicy::default()));
    h.status("p").await;
    h.advance_secs(1);
    let run = h.run().await;
    let scheduler = h.scheduler.clone();
    let stopped = tokio::spawn(async move { scheduler.shutdown(Duration::from_secs(10)).await });
    h.scheduler.status().await; // commands are handled in order: shutdown has landed
    h.advance_secs(5);
    h.no_run().await; // no new fires after shutdown began
    assert!(!run.job.cancel.is_cancelled());
    assert!(!stopped.is_finished());
    h.advance_secs(5);
    let Event::Finished { outcome, .. } = h.event(|e| matches!(e, Event::Finished { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(outcome.outcome, Outcome::Cancelled);
    assert_eq!(
        outcome.error.as_deref(),
        Some("pipectl serve is stopping and the grace period ended")
    );
    tokio::time::timeout(WAIT, stopped).await.unwrap().unwrap();
    assert_eq!(
        h.scheduler
            .trigger("p", Trigger::Manual, false)
            .await
            .unwrap_err(),
        TriggerError::ShuttingDown
    );
}

#[test]
fn trigger_labels_carry_fire_times() {
    let t = utc("2026-01-01T10:00:00Z");
    assert_eq!(
        Trigger::fire_time_of(&Trigger::Schedule(t).label()),
        Some(t)
    );
    assert_eq!(
        Trigger::fire_time_of(&format!("{} (attempt 2 of 3)", Trigger::CatchUp(t).label())),
        Some(t)
    );
    assert_eq!(Trigger::fire_time_of("manual"), None);
}
