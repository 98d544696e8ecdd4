//! Per-pipeline run limits and the retry backoff.

use std::time::Duration;

use pipectl_spec::types::{CatchUpPolicy, DEFAULT_QUEUE_LIMIT, OverlapPolicy, RunSettings};

/// What the scheduler needs to know about running one pipeline.
#[derive(Debug, Clone)]
pub struct RunPolicy {
    /// Cancel a run after this long.
    pub timeout: Option<Duration>,
    /// Fail a run whose step takes longer than this.
    pub step_timeout: Option<Duration>,
    /// Retries of retryable failures.
    pub retry: Option<Backoff>,
    /// Overlap policy of scheduled runs.
    pub overlap: OverlapPolicy,
    /// Catch-up policy after downtime.
    pub catch_up: CatchUpPolicy,
    /// With `catch_up: all`, the most missed runs made up for.
    pub catch_up_limit: u32,
    /// The most runs waiting behind a running one; more are dropped.
    pub queue_limit: usize,
}

impl Default for RunPolicy {
    fn default() -> Self {
        RunPolicy {
            timeout: None,
            step_timeout: None,
            retry: None,
            overlap: OverlapPolicy::default(),
            catch_up: CatchUpPolicy::default(),
            catch_up_limit: 0,
            queue_limit: DEFAULT_QUEUE_LIMIT as usize,
        }
    }
}

impl RunPolicy {
    /// The policy from a spec's `schedule:` and `run:` sections.
    pub fn from_spec(pipeline: &pipectl_spec::types::Pipeline) -> Self {
        let settings = pipeline.run.clone().unwrap_or_default();
        let secs = |s: Option<f64>| s.filter(|s| *s > 0.0).map(Duration::from_secs_f64);
        let (overlap, catch_up, catch_up_limit, queue_limit) = match &pipeline.schedule {
            Some(s) => (s.overlap, s.catch_up, s.catch_up_limit, s.queue_limit),
            None => (
                OverlapPolicy::default(),
                CatchUpPolicy::None,
                0,
                DEFAULT_QUEUE_LIMIT,
            ),
        };
        RunPolicy {
            timeout: secs(settings.timeout_secs),
            step_timeout: secs(settings.step_timeout_secs),
            retry: retry(&settings),
            overlap,
            catch_up,
            catch_up_limit,
            queue_limit: queue_limit.max(1) as usize,
        }
    }
}

fn retry(settings: &RunSettings) -> Option<Backoff> {
    let r = settings.retry.as_ref()?;
    Some(Backoff {
        max_attempts: r.max_attempts.max(1),
        initial: Duration::from_secs_f64(r.initial_backoff_secs.max(0.0)),
        max: Duration::from_secs_f64(r.max_backoff_secs.max(0.0)),
    })
}

/// Exponential backoff with jitter.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The base wait before the first retry.
    pub initial: Duration,
    /// The cap on the base wait.
    pub max: Duration,
}

impl Backoff {
    /// The base wait after failed attempt `attempt` (1-based): `initial * 2^(attempt-1)`, capped.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The wait with "equal jitter": uniformly between half the base wait and all of it, so
    /// pipelines that failed together (one database went down) do not retry in lockstep, yet
    /// every wait is at least half the base.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self.base_delay(attempt);
        base / 2 + base.mul_f64(fastrand::f64() / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_jitter_stays_within_half() {
        let b = Backoff {
            max_attempts: 10,
            initial: Duration::from_secs(10),
            max: Duration::from_secs(60),
        };
        let bases: Vec<u64> = (1..=5).map(|a| b.base_delay(a).as_secs()).collect();
        assert_eq!(bases, [10, 20, 40, 60, 60]);
        for attempt in 1..=5 {
            for _ in 0..100 {
                let d = b.delay(attempt);
                let base = b.base_delay(attempt);
                assert!(d >= base / 2 && d <= base, "{d:?} for base {base:?}");
            }
        }
    }
}
