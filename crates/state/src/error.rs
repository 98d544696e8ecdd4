//! Errors of the state store, worded to tell the user what went wrong and what to do.

use std::path::PathBuf;

/// A boxed cause, so backends can report their own error types without leaking them.
pub type BoxedCause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a state store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Another process holds the state directory (sled allows one process per directory).
    #[error(
        "the state directory {} is in use by another pipectl process (a running 'pipectl run' or \
         'pipectl serve'); wait for it to finish, or point this command at another state \
         directory with --state-dir",
        dir.display()
    )]
    Locked {
        /// The state directory.
        dir: PathBuf,
    },

    /// Reading or writing the state directory failed.
    #[error(
        "cannot use the state directory {}: check that it is a writable directory on a disk \
         with free space, or point this command at another one with --state-dir",
        dir.display()
    )]
    Io {
        /// The state directory.
        dir: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A stored record (or the store itself) cannot be decoded.
    #[error(
        "the state store record {what} cannot be decoded: it is damaged or was written by an \
         incompatible pipectl version; restore the state directory from a backup, or move it \
         aside to start with empty run history and bookmarks"
    )]
    Corrupt {
        /// Which record (or file) is damaged, naming its key.
        what: String,
        /// The decoding error.
        #[source]
        source: BoxedCause,
    },

    /// The store was written by a newer pipectl with an incompatible layout.
    #[error(
        "the state store at {location} uses state format {found}, but this pipectl understands \
         only up to {supported}; upgrade pipectl, or use another state directory with --state-dir"
    )]
    NewerFormat {
        /// The state directory or database.
        location: String,
        /// The format version found in the store.
        found: u64,
        /// The newest format version this build understands.
        supported: u64,
    },

    /// `begin_run` was given an id that is already stored.
    #[error(
        "a run with id {id} already exists in the state store; create a fresh id for every run \
         (pipectl_state::new_run_id)"
    )]
    DuplicateRun {
        /// The clashing run id.
        id: String,
    },

    /// `save_run` or `commit_run` was given a run that `begin_run` never stored.
    #[error(
        "no run with id {id} exists in the state store; a run must be begun before it is saved or committed"
    )]
    RunNotFound {
        /// The unknown run id.
        id: String,
    },

    /// A run id prefix matches more than one run.
    #[error(
        "the run id prefix '{prefix}' matches several runs ({}{}); type more of the id",
        matches.join(", "),
        if *truncated { ", ..." } else { "" }
    )]
    AmbiguousRunId {
        /// The prefix given.
        prefix: String,
        /// Some of the matching ids, in id order.
        matches: Vec<String>,
        /// Whether more ids match than `matches` lists.
        truncated: bool,
    },

    /// A pipeline, stream or run id cannot be used as a key.
    #[error("the {what} {value:?} cannot be stored: {reason}")]
    InvalidName {
        /// `pipeline name`, `stream name` or `run id`.
        what: &'static str,
        /// The rejected value.
        value: String,
        /// Why it is rejected.
        reason: &'static str,
    },

    /// The storage backend failed in a way not covered above.
    #[error("the state store at {location} failed: {message}")]
    Backend {
        /// The state directory or database.
        location: String,
        /// What failed.
        message: String,
        /// The backend's own error, if any.
        #[source]
        source: Option<BoxedCause>,
    },
}
