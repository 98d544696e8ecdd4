//! What every step gets: the run it belongs to, its own counters, and where to send batches.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use pipectl_state::StateStore;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::connect::Connections;
use crate::error::{Error, Result};
use crate::table::{Message, TableId};

/// Batches in flight between two steps. Small: each holds thousands of rows, and a full channel
/// makes the upstream step wait (backpressure) instead of buffering without bound.
pub const CHANNEL_CAPACITY: usize = 4;

/// Shared by all steps of one run.
pub struct RunContext {
    /// The run's id.
    pub run_id: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// When the run started; also the value of `generated: load_timestamp`.
    pub started_at: DateTime<Utc>,
    /// Cancelled on Ctrl-C, SIGTERM or when any step fails.
    pub cancel: CancellationToken,
    /// The pipeline's connections, secrets resolved.
    pub connections: Arc<Connections>,
    /// Run history and bookmarks; sources read their stored positions from it.
    pub state: Arc<dyn StateStore>,
    /// Set for a backfill run: bookmarked tables read a range of their first key instead.
    pub backfill: Option<Backfill>,
    /// `--strict`: an include rule that matches no table fails the run instead of warning.
    pub strict: bool,
}

/// A date (or any first-key) range re-read by a backfill run, which never moves bookmarks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backfill {
    /// Inclusive lower bound, in the database's text form (`2026-01-01`).
    pub from: String,
    /// Exclusive upper bound.
    pub to: String,
    /// The tables to backfill (`schema.table` or `table` patterns with `%` and `_`, by their
    /// database names); the run reads no other table. Empty: every table, bookmarked ones in
    /// the range.
    pub tables: Vec<String>,
}

impl Backfill {
    /// Whether the backfill run reads `table` (named by its database name).
    pub fn reads(&self, table: &TableId) -> bool {
        self.tables.is_empty() || self.tables.iter().any(|p| table.matches(p))
    }
}

impl RunContext {
    /// A fresh context for one attempt of the run: same run, connections and state, a
    /// cancellation token that the run's token cancels but that cancelling does not propagate
    /// up from.
    pub fn attempt(&self) -> RunContext {
        RunContext {
            run_id: self.run_id.clone(),
            pipeline: self.pipeline.clone(),
            started_at: self.started_at,
            cancel: self.cancel.child_token(),
            connections: self.connections.clone(),
            state: self.state.clone(),
            backfill: self.backfill.clone(),
            strict: self.strict,
        }
    }
}

/// Live counters of one step, read by progress displays while the run goes on.
#[derive(Debug, Default)]
pub struct StepMetrics {
    /// Rows the step emitted (sources, transforms) or wrote (sinks).
    pub rows: AtomicU64,
    /// Bytes: in-memory size of emitted batches, or bytes written to files by sinks.
    pub bytes: AtomicU64,
    /// Rows a transform removed or nulled, or files a sink wrote.
    pub extra: AtomicU64,
    timing: Mutex<(Option<Instant>, Option<Instant>)>,
    lag: Mutex<Option<pipectl_state::ReplicationLag>>,
}

impl StepMetrics {
    /// Adds to the row and byte counters.
    pub fn add(&self, rows: u64, bytes: u64) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Zeroes the counters and timing, for a new attempt of the run.
    pub fn reset(&self) {
        self.rows.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
        self.extra.store(0, Ordering::Relaxed);
        if let Ok(mut t) = self.timing.lock() {
            *t = (None, None);
        }
        self.set_replication_lag(None);
    }

    /// Marks the step started.
    pub fn start(&self) {
        if let Ok(mut t) = self.timing.lock() {
            t.0 = Some(Instant::now());
        }
    }

    /// Records how far a change data capture source was behind when the run started.
    pub fn set_replication_lag(&self, lag: Option<pipectl_state::ReplicationLag>) {
        if let Ok(mut l) = self.lag.lock() {
            *l = lag;
        }
    }

    /// What [`set_replication_lag`](Self::set_replication_lag) recorded.
    pub fn replication_lag(&self) -> Option<pipectl_state::ReplicationLag> {
        self.lag.lock().ok().and_then(|l| *l)
    }

    /// Marks the step finished.
    pub fn finish(&self) {
        if let Ok(mut t) = self.timing.lock() {
            t.1 = Some(Instant::now());
        }
    }

    /// Time since start (until finish, if finished).
    pub fn elapsed(&self) -> Duration {
        match self.timing.lock().map(|t| *t) {
            Ok((Some(start), Some(end))) => end - start,
            Ok((Some(start), None)) => start.elapsed(),
            _ => Duration::ZERO,
        }
    }

    /// True once the step has finished.
    pub fn is_finished(&self) -> bool {
        self.timing.lock().map(|t| t.1.is_some()).unwrap_or(false)
    }
}

/// What a step is given when it runs.
#[derive(Clone)]
pub struct StepContext {
    /// The run.
    pub run: Arc<RunContext>,
    /// The step's name.
    pub name: String,
    /// The step's counters.
    pub metrics: Arc<StepMetrics>,
}

impl StepContext {
    /// Reports a source's include rules that matched no table (`messages`, one per rule): as
    /// warnings, or with `--strict` as the error that fails the run.
    pub fn report_unmatched_rules(&self, messages: &[String]) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        if self.run.strict {
            return Err(Error::user(format!(
                "source `{}`: {} (--strict)",
                self.name,
                messages.join("; ")
            )));
        }
        for message in messages {
            tracing::warn!("source `{}`: {message}", self.name);
        }
        Ok(())
    }
}

/// Where a step sends its batches: one channel per downstream step (fan-out clones batches,
/// which is cheap: Arrow arrays are reference counted).
pub struct Output {
    targets: Vec<mpsc::Sender<Message>>,
    metrics: Arc<StepMetrics>,
    cancel: CancellationToken,
}

impl Output {
    /// An output to the given downstream channels.
    pub fn new(
        targets: Vec<mpsc::Sender<Message>>,
        metrics: Arc<StepMetrics>,
        cancel: CancellationToken,
    ) -> Self {
        Output {
            targets,
            metrics,
            cancel,
        }
    }

    /// Sends a message to every downstream step, waiting while their channels are full.
    pub async fn send(&self, message: Message) -> Result<()> {
        if let Message::Batch(_, batch) = &message {
            self.metrics.add(
                batch.num_rows() as u64,
                batch.get_array_memory_size() as u64,
            );
        }
        for target in &self.targets {
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Err(Error::cancelled()),
                sent = target.send(message.clone()) => sent.map_err(|_| Error::cancelled())?,
            }
        }
        Ok(())
    }

    /// The run's cancellation token.
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }
}
