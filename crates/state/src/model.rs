//! The records the state store keeps: runs (with their steps and publish manifest) and bookmarks.
//!
//! Records are stored as JSON. Every field that is optional or that a later version adds carries
//! `#[serde(default)]`, and unknown fields are ignored, so an older pipectl can read a newer
//! record and vice versa. Changes that cannot be expressed that way bump
//! [`crate::STATE_FORMAT_VERSION`] instead.

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a run, or one step of it, stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Reading, transforming and writing to staging.
    Running,
    /// Publishing staged files (see [`RunRecord::publish`]) and committing bookmarks.
    Committing,
    /// Finished; its output is published and its bookmarks committed.
    Succeeded,
    /// Finished with an error; nothing was published and no bookmark moved.
    Failed,
    /// Stopped on request before it finished.
    Cancelled,
    /// Found `Running` or `Committing` by a later process: the process running it died.
    Interrupted,
    /// Never started: dropped by `overlap: skip` or because `queue_limit` runs were waiting
    /// (its `error` says which).
    Skipped,
}

impl RunStatus {
    /// Whether a run in this status has not reached an end yet. A run found in such a status by
    /// a process that did not start it was left behind by a crash.
    pub fn is_unfinished(self) -> bool {
        matches!(self, Self::Running | Self::Committing)
    }

    /// The lowercase name used in storage, logs and CLI output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Committing => "committing",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Interrupted => "interrupted",
            Self::Skipped => "skipped",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one step (source, transform, sink or crawler) of a run did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step's name in the pipeline spec.
    pub name: String,
    /// `source`, `transform`, `sink` or `crawler`.
    pub kind: String,
    /// Rows the step produced (or, for a sink, wrote).
    #[serde(default)]
    pub rows: u64,
    /// Bytes the step produced (or, for a sink, wrote).
    #[serde(default)]
    pub bytes: u64,
    /// Objects (files) a sink wrote; 0 for other steps.
    #[serde(default)]
    pub objects: u64,
    /// Wall time the step took so far.
    #[serde(default)]
    pub duration_ms: u64,
    /// Why the step failed, if it did.
    #[serde(default)]
    pub error: Option<String>,
    /// Where the step stands.
    pub status: RunStatus,
    /// A change data capture source: how far behind the database it was when the run
    /// started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_lag: Option<ReplicationLag>,
}

/// How far a change data capture source was behind its database when a run started: what the
/// run then caught up with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReplicationLag {
    /// WAL bytes between the position the previous run committed and the server's WAL
    /// position at the start of the run (`pg_current_wal_lsn()` minus the bookmark's LSN).
    pub bytes: u64,
    /// Seconds between the commit of the oldest change not yet in the sinks and the start of
    /// the run; 0 when no change was waiting.
    pub seconds: f64,
}

/// One staged file to publish: the manifest entry written while a run is `Committing`, so a
/// later process can finish or roll back the publish after a crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishEntry {
    /// The sink connection name, or its URL without secrets.
    pub connection: String,
    /// Where the file was staged, relative to the connection.
    pub staged: String,
    /// Where the file is published, relative to the connection.
    pub final_key: String,
}

/// An object an earlier run published that a full refresh deletes once the new files are in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredObject {
    /// The sink connection name.
    pub connection: String,
    /// The object's key, relative to the connection.
    pub key: String,
}

/// A partition folder whose files a compaction replaces in one step: the staged folder (the
/// new files plus links to the files that stay) is exchanged with the published one where the
/// store can (local disks), or else the new files are moved in before the replaced ones are
/// deleted. Applying it again after a crash finishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionSwap {
    /// The sink connection name.
    pub connection: String,
    /// The published partition folder, a path in the connection's store.
    pub folder: String,
    /// The staged folder holding the new files, a path in the same store.
    pub staged: String,
    /// Names of the files the swap adds to the folder.
    pub added: Vec<String>,
    /// Names of the files it removes from the folder.
    pub removed: Vec<String>,
}

/// One run of a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Unique, caller-created id; see [`new_run_id`].
    pub id: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// Hash of the resolved pipeline spec, to tell which version of the spec ran.
    pub spec_hash: String,
    /// When the run started; runs are listed in this order.
    pub started_at: DateTime<Utc>,
    /// When the run reached a final status.
    #[serde(default)]
    pub ended_at: Option<DateTime<Utc>>,
    /// Where the run stands.
    pub status: RunStatus,
    /// What started the run: `manual`, `schedule`, ...
    #[serde(default)]
    pub trigger: String,
    /// Per-step progress and results, in execution order.
    #[serde(default)]
    pub steps: Vec<StepRecord>,
    /// Why the run failed, if it did.
    #[serde(default)]
    pub error: Option<String>,
    /// The publish manifest, written when the run enters `Committing`.
    #[serde(default)]
    pub publish: Vec<PublishEntry>,
    /// Objects a full refresh replaces: deleted after the manifest's files are published
    /// (again by a recovery that finishes the publish).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retire: Vec<RetiredObject>,
    /// Bookmark positions to commit with this run, written with the manifest when it enters
    /// `Committing`, so a recovery that finishes the publish also moves the bookmarks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bookmarks: Vec<Bookmark>,
    /// Table commits (Delta Lake) to apply with this run, written with the manifest when it
    /// enters `Committing`. Each is kept as the engine wrote it (JSON the state store does not
    /// read), so the state crate needs no table-format types; applying one is idempotent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub table_commits: Vec<serde_json::Value>,
    /// Partition folders a compaction swaps, written with the manifest when it enters
    /// `Committing` and applied (again by a recovery) like the rest of it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub swaps: Vec<PartitionSwap>,
    /// A streaming run: its sinks publish objects while it runs, so a run that stops early
    /// (even by kill -9) keeps what its steps' records say it published.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub streaming: bool,
}

impl RunRecord {
    /// A new `Running` run with no steps yet, ready for [`crate::StateStore::begin_run`].
    pub fn new(
        id: impl Into<String>,
        pipeline: impl Into<String>,
        spec_hash: impl Into<String>,
        started_at: DateTime<Utc>,
        trigger: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            pipeline: pipeline.into(),
            spec_hash: spec_hash.into(),
            started_at,
            ended_at: None,
            status: RunStatus::Running,
            trigger: trigger.into(),
            steps: Vec::new(),
            error: None,
            publish: Vec::new(),
            retire: Vec::new(),
            bookmarks: Vec::new(),
            table_commits: Vec::new(),
            swaps: Vec::new(),
            streaming: false,
        }
    }
}

/// How far a pipeline has read one stream: the incremental-load high-water mark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bookmark {
    /// The pipeline's name.
    pub pipeline: String,
    /// The stream read, e.g. `sakila.public.film`.
    pub stream: String,
    /// The cursor columns, in comparison order.
    pub keys: Vec<String>,
    /// The cursor values, one per key. Their encoding is the engine's: the store keeps them
    /// exactly (full precision) and never interprets them.
    pub values: Vec<serde_json::Value>,
    /// Each key column's type as the database declares it (`bigint`, `timestamp with time
    /// zone`), as the run that set the value read it; empty when unknown. Values set by hand
    /// and backfill bounds are checked against it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_types: Vec<String>,
    /// The run that set this value (or a marker such as `manual` for a hand-set value).
    pub run_id: String,
    /// When this value was set.
    pub updated_at: DateTime<Utc>,
}

impl Bookmark {
    /// Whether `other` holds the same cursor (keys and values), whoever set it and when.
    pub fn same_position(&self, other: &Bookmark) -> bool {
        self.keys == other.keys && self.values == other.values
    }
}

/// A readable, time-sortable, unique run id such as `20261125T203406Z-3f9a1c`.
///
/// Ids sort by their second; the 6 hex characters make them unique. Within one process they
/// never repeat (a counter stepped through all 2^24 values from a random start); across processes
/// the random start makes a clash within the same second very unlikely, and
/// [`crate::StateStore::begin_run`] rejects one that happens anyway.
pub fn new_run_id(now: DateTime<Utc>) -> String {
    static START: OnceLock<u32> = OnceLock::new();
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    // An odd step visits every value modulo 2^24 before repeating, and looks random to a reader.
    const STEP: u32 = 0x9E_3779;
    const SUFFIX_MASK: u32 = 0xFF_FFFF;

    let start = *START.get_or_init(|| {
        // RandomState is seeded by the OS once per thread; mixing in the process id and the clock
        // separates processes even if that seed were ever weak.
        let mut hasher = RandomState::new().build_hasher();
        std::process::id().hash(&mut hasher);
        std::time::SystemTime::now().hash(&mut hasher);
        // Truncation intended: only the low 24 bits are used.
        hasher.finish() as u32
    });
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let suffix = start.wrapping_add(count.wrapping_mul(STEP)) & SUFFIX_MASK;
    format!("{}-{suffix:06x}", now.format("%Y%m%dT%H%M%SZ"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::collections::HashSet;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0)
            .single()
            .expect("valid test time")
    }

    #[test]
    fn run_id_has_readable_time_and_six_hex_chars() {
        let now = Utc
            .with_ymd_and_hms(2026, 11, 25, 20, 34, 6)
            .single()
            .expect("valid test time");
        let id = new_run_id(now);
        let (time, suffix) = id.split_once('-').expect("id has a dash");
        assert_eq!(time, "20261125T203406Z");
        assert_eq!(suffix.len(), 6, "{id}");
        assert!(
            suffix
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "{id}"
        );
    }

    #[test]
    fn run_ids_sort_by_time() {
        let earlier = new_run_id(at(1_700_000_000));
        let later = new_run_id(at(1_700_000_001));
        let much_later = new_run_id(at(1_800_000_000));
        assert!(earlier < later, "{earlier} < {later}");
        assert!(later < much_later, "{later} < {much_later}");
    }

    #[test]
    fn run_ids_within_one_second_are_unique() {
        let now = at(1_700_000_000);
        let ids: HashSet<String> = (0..20_000).map(|_| new_run_id(now)).collect();
        assert_eq!(ids.len(), 20_000);
    }

    #[test]
    fn run_ids_are_unique_across_threads() {
        let now = at(1_700_000_000);
        let handles: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(move || (0..2_000).map(|_| new_run_id(now)).collect::<Vec<_>>())
            })
            .collect();
        let mut ids = HashSet::new();
        for handle in handles {
            for id in handle.join().expect("thread finished") {
                assert!(ids.insert(id.clone()), "duplicate id {id}");
            }
        }
        assert_eq!(ids.len(), 8_000);
    }

    #[test]
    fn status_serializes_as_snake_case_and_round_trips() {
        let all = [
            RunStatus::Running,
            RunStatus::Committing,
            RunStatus::Succeeded,
            RunStatus::Failed,
            RunStatus::Cancelled,
            RunStatus::Interrupted,
            RunStatus::Skipped,
        ];
        for status in all {
            let json = serde_json::to_string(&status).expect("serializes");
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(status.to_string(), status.as_str());
            let back: RunStatus = serde_json::from_str(&json).expect("deserializes");
            assert_eq!(back, status);
        }
        let unfinished: Vec<_> = all.into_iter().filter(|s| s.is_unfinished()).collect();
        assert_eq!(unfinished, [RunStatus::Running, RunStatus::Committing]);
    }

    #[test]
    fn unknown_status_is_an_error_not_a_default() {
        let result: Result<RunStatus, _> = serde_json::from_str("\"exploded\"");
        assert!(result.is_err());
    }

    #[test]
    fn run_record_reads_minimal_json_and_ignores_unknown_fields() {
        // What an older writer (missing optional fields) or a newer one (extra fields) may store.
        let json = r#"{
            "id": "20261125T203406Z-3f9a1c",
            "pipeline": "films",
            "spec_hash": "abc",
            "started_at": "2026-11-25T20:34:06.123456Z",
            "status": "running",
            "added_in_a_later_version": {"x": 1}
        }"#;
        let run: RunRecord = serde_json::from_str(json).expect("decodes");
        let expected = RunRecord::new(
            "20261125T203406Z-3f9a1c",
            "films",
            "abc",
            "2026-11-25T20:34:06.123456Z".parse().expect("valid time"),
            "",
        );
        assert_eq!(run, expected);
    }

    #[test]
    fn step_record_reads_without_counters() {
        let json = r#"{"name": "load", "kind": "sink", "status": "failed", "error": "disk full"}"#;
        let step: StepRecord = serde_json::from_str(json).expect("decodes");
        assert_eq!(step.rows, 0);
        assert_eq!(step.duration_ms, 0);
        assert_eq!(step.error.as_deref(), Some("disk full"));
        assert_eq!(step.status, RunStatus::Failed);
    }

    #[test]
    fn bookmark_keeps_large_numbers_exactly() {
        let bookmark = Bookmark {
            pipeline: "p".into(),
            stream: "s".into(),
            keys: vec!["id".into(), "ts".into()],
            values: vec![serde_json::json!(u64::MAX), serde_json::json!(i64::MIN)],
            key_types: vec!["bigint unsigned".into(), "bigint".into()],
            run_id: "r".into(),
            updated_at: at(0),
        };
        let json = serde_json::to_string(&bookmark).expect("serializes");
        let back: Bookmark = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, bookmark);
        assert_eq!(back.values[0].as_u64(), Some(u64::MAX));
    }

    #[test]
    fn same_position_ignores_who_set_it() {
        let first = Bookmark {
            pipeline: "p".into(),
            stream: "s".into(),
            keys: vec!["id".into()],
            values: vec![serde_json::json!(5)],
            key_types: Vec::new(),
            run_id: "r1".into(),
            updated_at: at(0),
        };
        let same = Bookmark {
            run_id: "r2".into(),
            updated_at: at(10),
            ..first.clone()
        };
        let moved = Bookmark {
            values: vec![serde_json::json!(6)],
            ..first.clone()
        };
        assert!(first.same_position(&same));
        assert!(!first.same_position(&moved));
    }
}
