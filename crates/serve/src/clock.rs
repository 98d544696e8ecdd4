//! Time as the scheduler sees it. Production uses the system clock; tests use [`ManualClock`]
//! and move time forward by hand, so schedules, DST changes, timeouts and backoffs are tested
//! without waiting.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// A future returned by [`Clock::sleep_until`].
pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Wall-clock time and sleeping until a wall-clock instant.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
    /// Completes once `now() >= deadline`.
    fn sleep_until(&self, deadline: DateTime<Utc>) -> Sleep<'_>;
}

/// The system clock. Sleeps are cut into slices of at most [`SystemClock::SLICE`] and re-checked
/// against the wall clock, so an NTP step or a suspended laptop does not delay a fire time by
/// the size of the jump.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl SystemClock {
    /// The longest single sleep before the wall clock is read again.
    pub const SLICE: std::time::Duration = std::time::Duration::from_secs(30);
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> Sleep<'_> {
        Box::pin(async move {
            loop {
                let left = deadline - Utc::now();
                let Ok(left) = left.to_std() else { return };
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left.min(Self::SLICE)).await;
            }
        })
    }
}

/// A clock that only moves when told to: [`advance`](Self::advance) or [`set`](Self::set)
/// wake every sleeper whose deadline has come.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
    tick: watch::Sender<()>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Arc<Self> {
        Arc::new(ManualClock {
            now: Mutex::new(start),
            tick: watch::channel(()).0,
        })
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        let now = self.now() + by;
        self.set(now);
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: DateTime<Utc>) {
        if let Ok(mut now) = self.now.lock() {
            *now = to;
        }
        self.tick.send_replace(());
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.now.lock().map(|n| *n).unwrap_or_default()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> Sleep<'_> {
        // Subscribe before checking the time so an advance between the two is not missed.
        let mut ticks = self.tick.subscribe();
        Box::pin(async move {
            while self.now() < deadline {
                if ticks.changed().await.is_err() {
                    return futures::future::pending().await;
                }
            }
        })
    }
}
