//! The contract every state store backend implements.

use crate::catalog::CatalogStore;
use crate::error::StateError;
use crate::model::{Bookmark, RunRecord};

/// Run history, bookmarks and (through [`CatalogStore`]) the data catalog, shared by everything
/// that runs pipelines.
///
/// The methods are synchronous: the embedded backend is fast, and async callers wrap calls in
/// `spawn_blocking`. [`crate::conformance::run_all`] is the executable form of this contract;
/// every backend's tests call it.
///
/// Rules common to all methods:
/// - Pipeline names, stream names and run ids must not contain NUL characters, and run ids must
///   not be empty; writes given such names fail with [`StateError::InvalidName`].
/// - Timestamps round-trip with at least microsecond precision.
/// - Bookmark values round-trip exactly (as JSON values).
/// - A method that returns `Ok` after writing has made the write durable, except
///   [`save_run`](Self::save_run) of a `Running` run (see there).
pub trait StateStore: CatalogStore + Send + Sync {
    /// Stores a new run. Fails with [`StateError::DuplicateRun`] if its id is already stored.
    fn begin_run(&self, run: &RunRecord) -> Result<(), StateError>;

    /// Replaces a stored run (progress, steps, status, publish manifest). Fails with
    /// [`StateError::RunNotFound`] if the run was never begun.
    ///
    /// A save that leaves the run `Running` may be lost by a crash (it is progress only); any
    /// other status, notably `Committing` with its publish manifest, is durable on return.
    fn save_run(&self, run: &RunRecord) -> Result<(), StateError>;

    /// Stores the run (normally `Succeeded`) and applies the bookmark updates, atomically: after
    /// a crash either both are visible or neither is. Fails with [`StateError::RunNotFound`]
    /// (changing nothing) if the run was never begun.
    ///
    /// A bookmark whose keys and values equal the stored ones is left as it is, so its
    /// `run_id`/`updated_at` keep naming the commit that set that position and its history
    /// gains one entry per change.
    fn commit_run(&self, run: &RunRecord, bookmarks: &[Bookmark]) -> Result<(), StateError>;

    /// The run with exactly this id.
    fn run(&self, id: &str) -> Result<Option<RunRecord>, StateError>;

    /// The run with this exact id, else the only run whose id starts with it. Fails with
    /// [`StateError::AmbiguousRunId`] if several do; an empty prefix finds nothing.
    fn find_run(&self, id_or_prefix: &str) -> Result<Option<RunRecord>, StateError>;

    /// At most `limit` runs, newest (latest `started_at`, then highest id) first; `pipeline:
    /// None` lists all pipelines.
    fn runs(&self, pipeline: Option<&str>, limit: usize) -> Result<Vec<RunRecord>, StateError>;

    /// Runs left `Running` or `Committing`, oldest first. Called at startup, these are runs a
    /// crashed process left behind: the caller recovers them (finishing or rolling back the
    /// publish manifest) and saves them as `Interrupted`.
    fn unfinished_runs(&self) -> Result<Vec<RunRecord>, StateError>;

    /// The current bookmark of one stream.
    fn bookmark(&self, pipeline: &str, stream: &str) -> Result<Option<Bookmark>, StateError>;

    /// Current bookmarks, ordered by pipeline then stream (bytewise); `pipeline: None` lists all.
    fn bookmarks(&self, pipeline: Option<&str>) -> Result<Vec<Bookmark>, StateError>;

    /// Every position a stream's bookmark has had, oldest first: one entry per commit or manual
    /// set that changed it. Deleting the bookmark keeps its history, so a reset can be undone.
    fn bookmark_history(&self, pipeline: &str, stream: &str) -> Result<Vec<Bookmark>, StateError>;

    /// Sets a bookmark by hand (set or rewind), recording the change in its history like a
    /// commit would. Setting the position it already has changes nothing.
    fn set_bookmark(&self, bookmark: &Bookmark) -> Result<(), StateError>;

    /// Deletes a stream's bookmark so its next run reads from the start; returns whether there
    /// was one.
    fn delete_bookmark(&self, pipeline: &str, stream: &str) -> Result<bool, StateError>;

    /// Deletes the pipeline's runs beyond its newest `keep`, except unfinished ones (their
    /// publish manifests are needed for recovery); returns how many were deleted.
    fn prune_runs(&self, pipeline: &str, keep: usize) -> Result<usize, StateError>;
}

/// Rejects names that cannot be keys: NUL separates key parts, and PostgreSQL text cannot hold it.
pub(crate) fn check_name(what: &'static str, value: &str) -> Result<(), StateError> {
    let reason = if value.contains('\0') {
        "it contains a NUL character"
    } else if value.is_empty() && what == RUN_ID {
        "it is empty"
    } else {
        return Ok(());
    };
    Err(StateError::InvalidName {
        what,
        value: value.to_owned(),
        reason,
    })
}

/// `what` for [`check_name`] on pipeline names.
pub(crate) const PIPELINE_NAME: &str = "pipeline name";
/// `what` for [`check_name`] on stream names.
pub(crate) const STREAM_NAME: &str = "stream name";
/// `what` for [`check_name`] on run ids.
pub(crate) const RUN_ID: &str = "run id";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_nul_are_rejected() {
        let err = check_name(PIPELINE_NAME, "a\0b").expect_err("NUL is rejected");
        assert!(
            matches!(&err, StateError::InvalidName { what, value, .. } if *what == PIPELINE_NAME && value == "a\0b"),
            "{err:?}"
        );
        assert!(err.to_string().contains("NUL"), "{err}");
    }

    #[test]
    fn only_run_ids_must_be_non_empty() {
        assert!(check_name(STREAM_NAME, "").is_ok());
        let err = check_name(RUN_ID, "").expect_err("empty run id is rejected");
        assert_eq!(
            err.to_string(),
            "the run id \"\" cannot be stored: it is empty"
        );
        assert!(check_name(RUN_ID, "20261125T203406Z-3f9a1c").is_ok());
    }

    #[test]
    fn trait_is_object_safe_and_shareable() {
        fn assert_shareable<T: Send + Sync + ?Sized>() {}
        assert_shareable::<dyn StateStore>();
        let _: Option<&dyn StateStore> = None;
    }
}
