//! The embedded backend: one sled database in the state directory.
//!
//! Trees (all values JSON, names validated free of NUL so `\0` can separate key parts):
//! - `runs`: run id → [`RunRecord`]; exact lookups and id-prefix search.
//! - `runs_by_time`: start time ++ run id → (); newest-first listing of all runs.
//! - `runs_by_pipeline`: pipeline `\0` start time ++ run id → (); the same per pipeline.
//! - `runs_unfinished`: start time ++ run id → (), present while a run is Running or Committing,
//!   so startup recovery does not scan the whole history.
//! - `bookmarks`: pipeline `\0` stream → current [`Bookmark`].
//! - `bookmark_history`: pipeline `\0` stream `\0` sequence → [`Bookmark`], one per change.
//! - `meta`: `format_version` → the layout version, checked on open.
//!
//! Start times are keyed, rather than relying on ids being time-sortable, so the order does not
//! depend on how callers make ids. Multi-tree updates run in sled transactions, so indexes and
//! records change together.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::Transactional;
use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};

use crate::error::StateError;
use crate::model::{Bookmark, RunRecord};
use crate::store::{PIPELINE_NAME, RUN_ID, STREAM_NAME, StateStore, check_name};

/// The layout version this build writes and reads; bump it for changes old builds cannot read.
pub const STATE_FORMAT_VERSION: u64 = 1;

/// How many matching ids an ambiguous-prefix error lists.
const AMBIGUOUS_MATCHES_SHOWN: usize = 8;

/// sled's default page cache is 1 GiB; the state store is small and shares the machine with the
/// pipelines it records.
const CACHE_CAPACITY_BYTES: u64 = 64 * 1024 * 1024;

const FORMAT_VERSION_KEY: &[u8] = b"format_version";

/// The state store in a local directory, backed by sled.
///
/// Only one process can open a directory at a time: a second one gets [`StateError::Locked`].
pub struct SledStore {
    dir: PathBuf,
    db: sled::Db,
    runs: sled::Tree,
    runs_by_time: sled::Tree,
    runs_by_pipeline: sled::Tree,
    runs_unfinished: sled::Tree,
    bookmarks: sled::Tree,
    bookmark_history: sled::Tree,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl SledStore {
    /// Opens (creating if needed) the store in `dir`.
    ///
    /// Fails with [`StateError::Locked`] if another process has it open, and with
    /// [`StateError::NewerFormat`] if a newer pipectl wrote it.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_CAPACITY_BYTES);
        Self::open_config(config, dir.to_path_buf())
    }

    /// Opens an empty store in a fresh temporary directory, deleted once the store is dropped
    /// (by sled, when its background flusher has let go of the database a moment later).
    /// For tests and dry runs.
    pub fn temporary() -> Result<Self, StateError> {
        // Not sled's default temporary path: that is /dev/shm, which containers often keep tiny.
        let dir = std::env::temp_dir().join(format!(
            "pipectl-state-{}-{}",
            std::process::id(),
            crate::model::new_run_id(Utc::now())
        ));
        let config = sled::Config::new()
            .path(&dir)
            .temporary(true)
            .create_new(true)
            .cache_capacity(CACHE_CAPACITY_BYTES);
        Self::open_config(config, dir)
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The sled database, for the catalog's trees (see `sled_catalog`).
    pub(crate) fn db(&self) -> &sled::Db {
        &self.db
    }

    fn open_config(config: sled::Config, dir: PathBuf) -> Result<Self, StateError> {
        let db = config.open().map_err(|err| sled_error(&dir, err))?;
        let open_tree = |name: &str| db.open_tree(name).map_err(|err| sled_error(&dir, err));
        let meta = open_tree("meta")?;
        check_format_version(&meta, &dir)?;
        Ok(Self {
            runs: open_tree("runs")?,
            runs_by_time: open_tree("runs_by_time")?,
            runs_by_pipeline: open_tree("runs_by_pipeline")?,
            runs_unfinished: open_tree("runs_unfinished")?,
            bookmarks: open_tree("bookmarks")?,
            bookmark_history: open_tree("bookmark_history")?,
            db,
            dir,
        })
    }

    fn flush(&self) -> Result<(), StateError> {
        self.db
            .flush()
            .map(drop)
            .map_err(|err| self.sled_error(err))
    }

    fn sled_error(&self, err: sled::Error) -> StateError {
        sled_error(&self.dir, err)
    }

    fn transaction_error(&self, err: TransactionError<StateError>) -> StateError {
        match err {
            TransactionError::Abort(err) => err,
            TransactionError::Storage(err) => self.sled_error(err),
        }
    }

    /// Stores `run`, replacing the stored version (if `must_exist`) or refusing to (if not),
    /// together with `bookmarks`, in one transaction.
    fn write_run(
        &self,
        run: &RunRecord,
        must_exist: bool,
        bookmarks: &[Bookmark],
    ) -> Result<(), StateError> {
        check_name(RUN_ID, &run.id)?;
        check_name(PIPELINE_NAME, &run.pipeline)?;
        for bookmark in bookmarks {
            check_bookmark_names(bookmark)?;
        }
        let encoded_run = encode(run)?;
        let encoded_bookmarks = bookmarks
            .iter()
            .map(|bookmark| Ok((bookmark, encode(bookmark)?)))
            .collect::<Result<Vec<_>, StateError>>()?;

        (
            &self.runs,
            &self.runs_by_time,
            &self.runs_by_pipeline,
            &self.runs_unfinished,
            &self.bookmarks,
            &self.bookmark_history,
        )
            .transaction(
                |(runs, by_time, by_pipeline, unfinished, current_bookmarks, history)| {
                    let run_trees = RunTrees {
                        runs,
                        by_time,
                        by_pipeline,
                        unfinished,
                    };
                    let old = match runs.get(run.id.as_bytes())? {
                        Some(bytes) if must_exist => Some(
                            decode::<RunRecord>(&bytes, || run_what(&run.id))
                                .map_err(ConflictableTransactionError::Abort)?,
                        ),
                        Some(_) => {
                            return Err(ConflictableTransactionError::Abort(
                                StateError::DuplicateRun { id: run.id.clone() },
                            ));
                        }
                        None if must_exist => {
                            return Err(ConflictableTransactionError::Abort(
                                StateError::RunNotFound { id: run.id.clone() },
                            ));
                        }
                        None => None,
                    };
                    if let Some(old) = &old {
                        run_trees.remove_index(old)?;
                    }
                    run_trees.insert(run, &encoded_run)?;
                    for (bookmark, encoded) in &encoded_bookmarks {
                        put_bookmark(current_bookmarks, history, bookmark, encoded)?;
                    }
                    Ok(())
                },
            )
            .map_err(|err| self.transaction_error(err))
    }

    fn load_run(&self, id: &[u8]) -> Result<Option<RunRecord>, StateError> {
        let Some(bytes) = self.runs.get(id).map_err(|err| self.sled_error(err))? else {
            return Ok(None);
        };
        let id = String::from_utf8_lossy(id);
        decode(&bytes, || run_what(&id)).map(Some)
    }

    /// Loads the runs named by index keys, each ending with time ++ run id after `skip` bytes.
    fn load_indexed_runs(
        &self,
        index_keys: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StateError> {
        let mut found = Vec::new();
        for entry in index_keys {
            if found.len() >= limit {
                break;
            }
            let (key, _) = entry.map_err(|err| self.sled_error(err))?;
            let id = key.get(skip + TIME_KEY_LEN..).unwrap_or_default();
            // Index and record change in one transaction, so a missing record cannot happen short
            // of sled itself losing data; listing the rest beats failing the whole listing.
            if let Some(run) = self.load_run(id)? {
                found.push(run);
            }
        }
        Ok(found)
    }

    fn load_bookmarks(
        &self,
        entries: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
        what: &str,
    ) -> Result<Vec<Bookmark>, StateError> {
        entries
            .map(|entry| {
                let (key, value) = entry.map_err(|err| self.sled_error(err))?;
                decode(&value, || format!("{what} {}", printable_key(&key)))
            })
            .collect()
    }
}

impl StateStore for SledStore {
    fn begin_run(&self, run: &RunRecord) -> Result<(), StateError> {
        self.write_run(run, false, &[])?;
        self.flush()
    }

    fn save_run(&self, run: &RunRecord) -> Result<(), StateError> {
        self.write_run(run, true, &[])?;
        // Progress of a running run may be lost to a crash (recovery marks it Interrupted either
        // way); every other status, above all Committing with its publish manifest, must not be.
        if run.status == crate::model::RunStatus::Running {
            Ok(())
        } else {
            self.flush()
        }
    }

    fn commit_run(&self, run: &RunRecord, bookmarks: &[Bookmark]) -> Result<(), StateError> {
        self.write_run(run, true, bookmarks)?;
        // The engine publishes files once this returns, so the commit must survive any crash,
        // the machine's included: flush fsyncs.
        self.flush()
    }

    fn run(&self, id: &str) -> Result<Option<RunRecord>, StateError> {
        self.load_run(id.as_bytes())
    }

    fn find_run(&self, id_or_prefix: &str) -> Result<Option<RunRecord>, StateError> {
        if id_or_prefix.is_empty() {
            return Ok(None);
        }
        if let Some(run) = self.run(id_or_prefix)? {
            return Ok(Some(run));
        }
        let mut matches = Vec::new();
        for entry in self.runs.scan_prefix(id_or_prefix.as_bytes()) {
            let (key, _) = entry.map_err(|err| self.sled_error(err))?;
            matches.push(key);
            if matches.len() > AMBIGUOUS_MATCHES_SHOWN {
                break;
            }
        }
        match matches.as_slice() {
            [] => Ok(None),
            [only] => self.load_run(only),
            _ => {
                let truncated = matches.len() > AMBIGUOUS_MATCHES_SHOWN;
                Err(StateError::AmbiguousRunId {
                    prefix: id_or_prefix.to_owned(),
                    matches: matches
                        .iter()
                        .take(AMBIGUOUS_MATCHES_SHOWN)
                        .map(|key| String::from_utf8_lossy(key).into_owned())
                        .collect(),
                    truncated,
                })
            }
        }
    }

    fn runs(&self, pipeline: Option<&str>, limit: usize) -> Result<Vec<RunRecord>, StateError> {
        match pipeline {
            None => self.load_indexed_runs(self.runs_by_time.iter().rev(), 0, limit),
            Some(pipeline) => {
                check_name(PIPELINE_NAME, pipeline)?;
                let prefix = key_prefix(&[pipeline]);
                self.load_indexed_runs(
                    self.runs_by_pipeline.scan_prefix(&prefix).rev(),
                    prefix.len(),
                    limit,
                )
            }
        }
    }

    fn unfinished_runs(&self) -> Result<Vec<RunRecord>, StateError> {
        self.load_indexed_runs(self.runs_unfinished.iter(), 0, usize::MAX)
    }

    fn bookmark(&self, pipeline: &str, stream: &str) -> Result<Option<Bookmark>, StateError> {
        check_name(PIPELINE_NAME, pipeline)?;
        check_name(STREAM_NAME, stream)?;
        let key = bookmark_key(pipeline, stream);
        let Some(bytes) = self
            .bookmarks
            .get(&key)
            .map_err(|err| self.sled_error(err))?
        else {
            return Ok(None);
        };
        decode(&bytes, || format!("bookmark {}", printable_key(&key))).map(Some)
    }

    fn bookmarks(&self, pipeline: Option<&str>) -> Result<Vec<Bookmark>, StateError> {
        match pipeline {
            None => self.load_bookmarks(self.bookmarks.iter(), "bookmark"),
            Some(pipeline) => {
                check_name(PIPELINE_NAME, pipeline)?;
                let prefix = key_prefix(&[pipeline]);
                self.load_bookmarks(self.bookmarks.scan_prefix(prefix), "bookmark")
            }
        }
    }

    fn bookmark_history(&self, pipeline: &str, stream: &str) -> Result<Vec<Bookmark>, StateError> {
        check_name(PIPELINE_NAME, pipeline)?;
        check_name(STREAM_NAME, stream)?;
        let prefix = key_prefix(&[pipeline, stream]);
        self.load_bookmarks(
            self.bookmark_history.scan_prefix(prefix),
            "bookmark history entry",
        )
    }

    fn set_bookmark(&self, bookmark: &Bookmark) -> Result<(), StateError> {
        check_bookmark_names(bookmark)?;
        let encoded = encode(bookmark)?;
        (&self.bookmarks, &self.bookmark_history)
            .transaction(|(current, history)| put_bookmark(current, history, bookmark, &encoded))
            .map_err(|err| self.transaction_error(err))?;
        self.flush()
    }

    fn delete_bookmark(&self, pipeline: &str, stream: &str) -> Result<bool, StateError> {
        check_name(PIPELINE_NAME, pipeline)?;
        check_name(STREAM_NAME, stream)?;
        let key = bookmark_key(pipeline, stream);
        // A transaction, not a plain remove: sled does not isolate transactions (commit_run,
        // set_bookmark) from plain writes to the same tree.
        let removed = self
            .bookmarks
            .transaction(|current| Ok(current.remove(key.as_slice())?))
            .map_err(|err: TransactionError<StateError>| self.transaction_error(err))?;
        self.flush()?;
        Ok(removed.is_some())
    }

    fn prune_runs(&self, pipeline: &str, keep: usize) -> Result<usize, StateError> {
        check_name(PIPELINE_NAME, pipeline)?;
        let prefix = key_prefix(&[pipeline]);
        // Collected first so the deletions below do not race the scan.
        let candidates = self
            .runs_by_pipeline
            .scan_prefix(&prefix)
            .rev()
            .skip(keep)
            .map(|entry| entry.map(|(key, _)| key))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| self.sled_error(err))?;

        let mut deleted = 0;
        for pipeline_key in candidates {
            // time ++ id: the key of the same run in runs_by_time and runs_unfinished.
            let Some(time_and_id) = pipeline_key.get(prefix.len()..) else {
                continue;
            };
            let Some(id) = time_and_id.get(TIME_KEY_LEN..) else {
                continue;
            };
            let removed = (
                &self.runs,
                &self.runs_by_time,
                &self.runs_by_pipeline,
                &self.runs_unfinished,
            )
                .transaction(|(runs, by_time, by_pipeline, unfinished)| {
                    if unfinished.get(time_and_id)?.is_some() {
                        return Ok(false);
                    }
                    by_pipeline.remove(&pipeline_key)?;
                    by_time.remove(time_and_id)?;
                    Ok(runs.remove(id)?.is_some())
                })
                .map_err(|err: TransactionError<StateError>| self.transaction_error(err))?;
            deleted += usize::from(removed);
        }
        self.flush()?;
        Ok(deleted)
    }
}

/// The run trees as seen inside a transaction.
struct RunTrees<'a> {
    runs: &'a TransactionalTree,
    by_time: &'a TransactionalTree,
    by_pipeline: &'a TransactionalTree,
    unfinished: &'a TransactionalTree,
}

impl RunTrees<'_> {
    fn remove_index(&self, run: &RunRecord) -> Result<(), UnabortableTransactionError> {
        let time_key = run_time_key(run);
        self.by_time.remove(time_key.as_slice())?;
        self.unfinished.remove(time_key.as_slice())?;
        self.by_pipeline.remove(run_pipeline_key(run))?;
        Ok(())
    }

    fn insert(&self, run: &RunRecord, encoded: &[u8]) -> Result<(), UnabortableTransactionError> {
        let time_key = run_time_key(run);
        self.runs.insert(run.id.as_bytes(), encoded)?;
        self.by_time.insert(time_key.as_slice(), EMPTY)?;
        self.by_pipeline.insert(run_pipeline_key(run), EMPTY)?;
        if run.status.is_unfinished() {
            self.unfinished.insert(time_key, EMPTY)?;
        }
        Ok(())
    }
}

/// Makes `bookmark` current and records it in the history, unless its position is unchanged.
fn put_bookmark(
    current: &TransactionalTree,
    history: &TransactionalTree,
    bookmark: &Bookmark,
    encoded: &[u8],
) -> Result<(), ConflictableTransactionError<StateError>> {
    let key = bookmark_key(&bookmark.pipeline, &bookmark.stream);
    if let Some(bytes) = current.get(&key)? {
        let stored: Bookmark = decode(&bytes, || format!("bookmark {}", printable_key(&key)))
            .map_err(ConflictableTransactionError::Abort)?;
        if stored.same_position(bookmark) {
            return Ok(());
        }
    }
    // Monotonic and never reused, even across restarts, so history keys sort by change order.
    let sequence = history.generate_id()?;
    let mut history_key = key.clone();
    history_key.push(0);
    history_key.extend_from_slice(&sequence.to_be_bytes());
    current.insert(key, encoded)?;
    history.insert(history_key, encoded)?;
    Ok(())
}

const TIME_KEY_LEN: usize = 8;

/// Index entries carry everything in their keys.
const EMPTY: &[u8] = &[];

/// A big-endian key that sorts like the time: microseconds since the epoch with the sign bit
/// flipped, so times before 1970 sort first too.
fn time_key(time: DateTime<Utc>) -> [u8; TIME_KEY_LEN] {
    // Reinterpreting the sign bit is the point; no value is lost.
    ((time.timestamp_micros() as u64) ^ (1 << 63)).to_be_bytes()
}

fn run_time_key(run: &RunRecord) -> Vec<u8> {
    let mut key = time_key(run.started_at).to_vec();
    key.extend_from_slice(run.id.as_bytes());
    key
}

fn run_pipeline_key(run: &RunRecord) -> Vec<u8> {
    let mut key = key_prefix(&[&run.pipeline]);
    key.extend_from_slice(&run_time_key(run));
    key
}

fn bookmark_key(pipeline: &str, stream: &str) -> Vec<u8> {
    let mut key = key_prefix(&[pipeline]);
    key.extend_from_slice(stream.as_bytes());
    key
}

/// The parts, each followed by `\0`.
pub(crate) fn key_prefix(parts: &[&str]) -> Vec<u8> {
    let mut key = Vec::new();
    for part in parts {
        key.extend_from_slice(part.as_bytes());
        key.push(0);
    }
    key
}

/// A key for messages: parts joined by `/`, binary suffixes (sequence numbers) shown as hex.
fn printable_key(key: &[u8]) -> String {
    // At most three parts: a history key's binary sequence number may contain NUL bytes.
    key.splitn(3, |&byte| byte == 0)
        .map(|part| match std::str::from_utf8(part) {
            Ok(text) if !text.chars().any(char::is_control) => text.to_owned(),
            _ => part.iter().map(|byte| format!("{byte:02x}")).collect(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn run_what(id: &str) -> String {
    format!("run {id}")
}

fn check_bookmark_names(bookmark: &Bookmark) -> Result<(), StateError> {
    check_name(PIPELINE_NAME, &bookmark.pipeline)?;
    check_name(STREAM_NAME, &bookmark.stream)
}

pub(crate) fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, StateError> {
    serde_json::to_vec(record).map_err(|err| StateError::Backend {
        location: String::from("(encoding)"),
        message: format!("a record could not be encoded as JSON: {err}"),
        source: Some(Box::new(err)),
    })
}

pub(crate) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    what: impl FnOnce() -> String,
) -> Result<T, StateError> {
    serde_json::from_slice(bytes).map_err(|err| StateError::Corrupt {
        what: what(),
        source: Box::new(err),
    })
}

/// Stamps a new store with the layout version, and refuses one written by a newer layout.
fn check_format_version(meta: &sled::Tree, dir: &Path) -> Result<(), StateError> {
    let stored = meta
        .get(FORMAT_VERSION_KEY)
        .map_err(|err| sled_error(dir, err))?;
    let Some(stored) = stored else {
        meta.insert(
            FORMAT_VERSION_KEY,
            STATE_FORMAT_VERSION.to_string().as_bytes(),
        )
        .map_err(|err| sled_error(dir, err))?;
        return Ok(());
    };
    let found: u64 = decode(&stored, || String::from("meta/format_version"))?;
    if found > STATE_FORMAT_VERSION {
        return Err(StateError::NewerFormat {
            location: dir.display().to_string(),
            found,
            supported: STATE_FORMAT_VERSION,
        });
    }
    Ok(())
}

pub(crate) fn sled_error(dir: &Path, err: sled::Error) -> StateError {
    match err {
        sled::Error::Io(io) if is_lock_conflict(&io) => StateError::Locked {
            dir: dir.to_path_buf(),
        },
        sled::Error::Io(source) => StateError::Io {
            dir: dir.to_path_buf(),
            source,
        },
        err @ sled::Error::Corruption { .. } => StateError::Corrupt {
            what: format!("(sled data files in {})", dir.display()),
            source: Box::new(err),
        },
        other => StateError::Backend {
            location: dir.display().to_string(),
            message: other.to_string(),
            source: Some(Box::new(other)),
        },
    }
}

/// sled reports a held lock as a generic io error whose text names it (sled 0.34, `try_lock`).
fn is_lock_conflict(err: &std::io::Error) -> bool {
    err.kind() == std::io::ErrorKind::WouldBlock
        || err.to_string().contains("could not acquire lock")
}

/// Calls `open` until it returns `Some` (it returns `None` while the directory is locked),
/// for at most 10 s. sled's flusher thread holds the directory's lock for a moment after
/// the last handle is dropped, so tests that reopen a store wait for it.
#[cfg(test)]
pub(crate) fn retry_while_locked<T>(mut open: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(value) = open() {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the state directory stays locked"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Opens the store at `dir`, waiting while a just-dropped handle still holds its lock.
#[cfg(test)]
pub(crate) fn open_when_unlocked(dir: &Path) -> SledStore {
    retry_while_locked(|| match SledStore::open(dir) {
        Err(StateError::Locked { .. }) => None,
        other => Some(other.expect("reopen")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    const CHILD_STATE_DIR: &str = "PIPECTL_STATE_TEST_CHILD_STATE_DIR";
    const CHILD_SIGNAL_DIR: &str = "PIPECTL_STATE_TEST_CHILD_SIGNAL_DIR";
    const CHILD_MODE: &str = "PIPECTL_STATE_TEST_CHILD_MODE";
    const CHILD_TEST_NAME: &str = "sled_store::tests::child_process_body";
    const CHILD_TIMEOUT: Duration = Duration::from_secs(120);
    const CRASH_EXIT_CODE: i32 = 86;

    /// Does nothing in a normal test run. Spawned by the tests below (this test binary running
    /// only this test, with the env vars set), it is a second process holding the store.
    #[test]
    fn child_process_body() {
        let (Some(state_dir), Some(signal_dir), Some(mode)) = (
            std::env::var_os(CHILD_STATE_DIR),
            std::env::var_os(CHILD_SIGNAL_DIR),
            std::env::var(CHILD_MODE).ok(),
        ) else {
            return;
        };
        let signal_dir = PathBuf::from(signal_dir);
        let store = SledStore::open(Path::new(&state_dir)).expect("child opens the store");
        if mode == "write-fixture-then-abort" {
            conformance::write_durability_fixture(&store);
            std::fs::write(signal_dir.join("written"), b"").expect("child signals written");
            // Exits without running destructors, so sled's flush on drop never happens: for the
            // store, the same as kill -9 (and, unlike abort, it leaves no core dump).
            std::process::exit(CRASH_EXIT_CODE);
        }
        std::fs::write(signal_dir.join("ready"), b"").expect("child signals ready");
        let deadline = Instant::now() + CHILD_TIMEOUT;
        while !signal_dir.join("release").exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(store);
    }

    /// A child process using the store; killed on drop so a failing test leaves no orphan.
    struct HoldingChild {
        process: Child,
        signal_dir: tempfile::TempDir,
    }

    impl HoldingChild {
        fn spawn(state_dir: &Path, mode: &str) -> Self {
            let signal_dir = tempfile::tempdir().expect("signal dir");
            let process = Command::new(std::env::current_exe().expect("test binary path"))
                .args([
                    CHILD_TEST_NAME,
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_STATE_DIR, state_dir)
                .env(CHILD_SIGNAL_DIR, signal_dir.path())
                .env(CHILD_MODE, mode)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn child test process");
            Self {
                process,
                signal_dir,
            }
        }

        fn signalled(&self, name: &str) -> bool {
            self.signal_dir.path().join(name).exists()
        }

        /// Spawns a child that opens the store and holds it until released.
        fn hold(state_dir: &Path) -> Self {
            let mut child = Self::spawn(state_dir, "hold");
            let deadline = Instant::now() + CHILD_TIMEOUT;
            while !child.signalled("ready") {
                if let Some(status) = child.process.try_wait().expect("poll child") {
                    panic!("child exited before holding the store: {status}");
                }
                assert!(
                    Instant::now() < deadline,
                    "child did not open the store in time"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            child
        }

        /// Runs a child that writes the durability fixture and aborts right after.
        fn write_fixture_then_crash(state_dir: &Path) {
            let mut child = Self::spawn(state_dir, "write-fixture-then-abort");
            let deadline = Instant::now() + CHILD_TIMEOUT;
            let status = loop {
                if let Some(status) = child.process.try_wait().expect("poll child") {
                    break status;
                }
                assert!(Instant::now() < deadline, "child did not finish in time");
                std::thread::sleep(Duration::from_millis(20));
            };
            assert!(child.signalled("written"), "child failed writing: {status}");
            assert_eq!(
                status.code(),
                Some(CRASH_EXIT_CODE),
                "child crashed on purpose"
            );
        }

        fn release(mut self) {
            std::fs::write(self.signal_dir.path().join("release"), b"").expect("signal release");
            let status = self.process.wait().expect("wait for child");
            assert!(status.success(), "child failed: {status}");
        }
    }

    impl Drop for HoldingChild {
        fn drop(&mut self) {
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
    }

    fn snapshot(store: &SledStore) -> (Vec<RunRecord>, Vec<Bookmark>, Vec<Vec<Bookmark>>) {
        let runs = store.runs(None, usize::MAX).expect("runs");
        let bookmarks = store.bookmarks(None).expect("bookmarks");
        let histories = bookmarks
            .iter()
            .map(|b| {
                store
                    .bookmark_history(&b.pipeline, &b.stream)
                    .expect("history")
            })
            .collect();
        (runs, bookmarks, histories)
    }

    #[test]
    fn temporary_store_conforms() {
        let store = SledStore::temporary().expect("temporary store");
        conformance::run_all(&store);
    }

    #[test]
    fn on_disk_store_conforms_and_keeps_everything_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state_dir = dir.path().join(".pipectl").join("state");
        let store = SledStore::open(&state_dir).expect("open creates missing directories");
        conformance::run_all(&store);
        let before = snapshot(&store);
        assert!(
            !before.0.is_empty() && !before.1.is_empty(),
            "the suite wrote data"
        );
        drop(store);

        let reopened = open_when_unlocked(&state_dir);
        assert_eq!(
            snapshot(&reopened),
            before,
            "everything survives close and reopen"
        );
    }

    #[test]
    fn durability_fixture_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("open");
        conformance::write_durability_fixture(&store);
        drop(store);
        let reopened = open_when_unlocked(dir.path());
        conformance::check_durability_fixture(&reopened);
    }

    #[test]
    fn writes_survive_a_crash_right_after_they_return() {
        let dir = tempfile::tempdir().expect("tempdir");
        HoldingChild::write_fixture_then_crash(dir.path());
        let store = SledStore::open(dir.path()).expect("open after the writer crashed");
        conformance::check_durability_fixture(&store);
    }

    #[test]
    fn second_process_gets_locked_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state_dir = dir.path().join(".pipectl").join("state");
        let child = HoldingChild::hold(&state_dir);

        let err = SledStore::open(&state_dir).expect_err("the directory is held by the child");
        assert!(
            matches!(&err, StateError::Locked { dir } if dir == &state_dir),
            "expected Locked, got {err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "the state directory {} is in use by another pipectl process (a running \
                 'pipectl run' or 'pipectl serve'); wait for it to finish, or point this command \
                 at another state directory with --state-dir",
                state_dir.display()
            )
        );

        child.release();
        let store = SledStore::open(&state_dir).expect("open once the child has exited");
        assert!(store.runs(None, 10).expect("runs").is_empty());
    }

    #[test]
    fn second_open_in_the_same_process_is_locked_too() {
        // flock locks belong to the open file description, not the process, so sled's lock
        // also stops a second open of the same directory within one process.
        let dir = tempfile::tempdir().expect("tempdir");
        let first = SledStore::open(dir.path()).expect("first open");
        let err = SledStore::open(dir.path()).expect_err("second open in the same process");
        assert!(matches!(err, StateError::Locked { .. }), "{err:?}");
        drop(first);
        SledStore::open(dir.path()).expect("open after the first store is dropped");
    }

    #[test]
    fn temporary_store_is_removed_on_drop() {
        let store = SledStore::temporary().expect("temporary store");
        let dir = store.dir().to_path_buf();
        assert!(dir.is_dir(), "{}", dir.display());
        let other = SledStore::temporary().expect("second temporary store");
        assert_ne!(
            other.dir(),
            dir,
            "each temporary store has its own directory"
        );
        drop(store);
        // sled removes the directory when its background flusher lets go of the database,
        // a moment after the last handle is dropped.
        retry_while_locked(|| (!dir.exists()).then_some(()));
    }

    #[test]
    fn a_file_in_place_of_the_directory_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let not_a_dir = dir.path().join("state");
        std::fs::write(&not_a_dir, b"oops").expect("write file");
        let err = SledStore::open(&not_a_dir).expect_err("a file is not a state directory");
        assert!(
            matches!(&err, StateError::Io { dir, .. } if dir == &not_a_dir),
            "expected Io, got {err:?}"
        );
        assert!(
            err.to_string().contains(&not_a_dir.display().to_string()),
            "{err}"
        );
        assert!(
            std::error::Error::source(&err).is_some(),
            "the OS error is kept as the source"
        );
    }

    #[test]
    fn undecodable_run_is_corrupt_and_names_its_key() {
        let store = SledStore::temporary().expect("temporary store");
        let run = RunRecord::new(
            "20300101T000000Z-abcdef",
            "films",
            "h",
            Utc::now(),
            "manual",
        );
        store.begin_run(&run).expect("begin_run");
        store
            .runs
            .insert(run.id.as_bytes(), &b"{not json"[..])
            .expect("overwrite with garbage");

        let err = store.run(&run.id).expect_err("garbage must not decode");
        assert!(
            matches!(&err, StateError::Corrupt { what, .. } if what == "run 20300101T000000Z-abcdef"),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("run 20300101T000000Z-abcdef"),
            "{err}"
        );
        let listed = store
            .runs(Some("films"), 10)
            .expect_err("listing meets the same record");
        assert!(matches!(listed, StateError::Corrupt { .. }), "{listed:?}");
        let saved = store
            .save_run(&run)
            .expect_err("saving over it needs the old record");
        assert!(matches!(saved, StateError::Corrupt { .. }), "{saved:?}");
    }

    #[test]
    fn undecodable_bookmark_is_corrupt_and_names_its_key() {
        let store = SledStore::temporary().expect("temporary store");
        store
            .bookmarks
            .insert(bookmark_key("films", "public.film"), &b"[]"[..])
            .expect("write garbage");
        let err = store.bookmark("films", "public.film").expect_err("garbage");
        assert!(
            matches!(&err, StateError::Corrupt { what, .. } if what == "bookmark films/public.film"),
            "{err:?}"
        );
    }

    #[test]
    fn store_from_a_newer_format_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("open");
        drop(store);
        // sled's flusher thread lets go of the directory's lock a moment after the last handle
        // is dropped: wait for it rather than fail on a busy machine.
        let db = retry_while_locked(|| match sled::open(dir.path()) {
            Err(sled::Error::Io(e)) if is_lock_conflict(&e) => None,
            other => Some(other.expect("raw open")),
        });
        db.open_tree("meta")
            .expect("meta tree")
            .insert(FORMAT_VERSION_KEY, &b"99"[..])
            .expect("write version");
        db.flush().expect("flush");
        drop(db);
        let err = retry_while_locked(|| match SledStore::open(dir.path()) {
            Err(StateError::Locked { .. }) => None,
            other => Some(other),
        })
        .expect_err("format 99 is too new");
        assert!(
            matches!(
                err,
                StateError::NewerFormat {
                    found: 99,
                    supported: STATE_FORMAT_VERSION,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("upgrade pipectl"), "{err}");
    }

    #[test]
    fn new_store_is_stamped_with_the_current_format() {
        let store = SledStore::temporary().expect("temporary store");
        let meta = store.db.open_tree("meta").expect("meta tree");
        let stored = meta
            .get(FORMAT_VERSION_KEY)
            .expect("read")
            .expect("stamped");
        assert_eq!(&stored[..], STATE_FORMAT_VERSION.to_string().as_bytes());
    }

    #[test]
    fn time_keys_sort_like_times_across_the_epoch() {
        let times = [-1_000_000_000_000_i64, -1, 0, 1, 1_893_456_000_000_000]
            .map(|micros| DateTime::from_timestamp_micros(micros).expect("in range"));
        let keys = times.map(time_key);
        assert!(keys.windows(2).all(|pair| pair[0] < pair[1]), "{keys:?}");
    }

    #[test]
    fn printable_key_shows_parts_and_hex_sequences() {
        let mut key = key_prefix(&["films", "public.film"]);
        key.extend_from_slice(&258_u64.to_be_bytes());
        assert_eq!(printable_key(&key), "films/public.film/0000000000000102");
    }

    #[test]
    fn ambiguous_error_lists_a_bounded_number_of_matches() {
        let store = SledStore::temporary().expect("temporary store");
        for n in 0..20 {
            let run = RunRecord::new(format!("run-{n:02}"), "p", "h", Utc::now(), "manual");
            store.begin_run(&run).expect("begin_run");
        }
        match store.find_run("run-") {
            Err(StateError::AmbiguousRunId {
                matches, truncated, ..
            }) => {
                assert_eq!(matches.len(), AMBIGUOUS_MATCHES_SHOWN);
                assert_eq!(matches[0], "run-00");
                assert!(truncated);
            }
            other => panic!("expected AmbiguousRunId, got {other:?}"),
        }
        let err = store.find_run("run-0").expect_err("ten matches");
        assert!(
            err.to_string().ends_with(", ...); type more of the id"),
            "{err}"
        );
    }
}
