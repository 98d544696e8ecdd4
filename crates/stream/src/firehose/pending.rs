//! The record of objects in flight: written before a flush publishes anything, so that after
//! a crash the restarted sink knows which sequence ranges were (or were being) published.
//!
//! On restart, an entry whose object exists was published: its records, redelivered because
//! they were not acknowledged yet, are skipped. An entry whose object is missing is rebuilt
//! from the redelivered records (every one of them comes back: none was acknowledged) and
//! written under the same key. Either way each record lands in the lake exactly once.
//!
//! A flush into a Delta table is recorded twice: with its sequence range before its data files
//! are written, then with the commit they make ([`DeltaFlush`]) before it is applied. On
//! restart a recorded commit is applied again (at most once: it carries the range's end as its
//! transaction version). Once applied, the commit is dropped from the record; a range without
//! one is in the table if the log's transaction has reached the range's end, and is rebuilt
//! like a missing object otherwise.

use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use pipectl_engine::connect::StoreHandle;
use pipectl_engine::{Error, Result};

/// One object of a flush.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// Full object key (under the connection's prefix).
    pub key: String,
    /// The buffer the records were in: the same records land in the same partition again.
    pub partition: String,
    /// First sequence number in the object.
    pub first: u64,
    /// Last sequence number in the object.
    pub last: u64,
    /// Records in the object.
    pub count: u64,
    /// For a flush into a Delta table (`key` is then the table root): the commit it makes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<DeltaFlush>,
}

/// A flush into a Delta table, as far as it got.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeltaFlush {
    /// The table root, relative to the sink's connection.
    pub root: String,
    /// The transaction app id its commit carries (`<pipeline>/<sink>/<table root>`); the
    /// commit's version is the entry's `last`.
    pub app_id: String,
    /// The commit, from when its data files are written until it is applied. Applying it
    /// again after a crash commits it once: the log's transaction for `app_id` says whether
    /// it is there. `None`: either the commit was applied (the log's transaction version is
    /// at least `last`), or its files were being written (the range is rebuilt from the
    /// redelivered records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<pipectl_delta::CommitIntent>,
}

/// What the record holds.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct Pending {
    /// Every sequence number up to this one is published and acknowledged. Kept here too, so
    /// a consumer lost on the server (deleted, or a crash while it was being recreated) is
    /// recreated from the right position.
    #[serde(default)]
    pub acked: u64,
    /// Objects published or being published whose records are not all acknowledged.
    pub entries: Vec<Entry>,
}

/// Where one sink keeps its record of objects in flight.
pub struct PendingStore {
    handle: StoreHandle,
    path: object_store::path::Path,
}

impl PendingStore {
    /// The record of sink `sink` of `pipeline`, under `_pipectl/streams/` in the sink's store.
    pub fn new(handle: StoreHandle, pipeline: &str, sink: &str) -> Self {
        let path = handle.path(&format!(
            "{}/streams/{pipeline}/{sink}/pending.json",
            pipectl_engine::sink::RESERVED_PREFIX
        ));
        PendingStore { handle, path }
    }

    /// The record left by the previous process (no entries if it ended cleanly).
    pub async fn load(&self) -> Result<Pending> {
        match self.handle.store.get(&self.path).await {
            Ok(got) => {
                let bytes = got
                    .bytes()
                    .await
                    .map_err(|e| Error::external(format!("cannot read {}", self.path), e))?;
                serde_json::from_slice(&bytes).map_err(|e| {
                    Error::user(format!(
                        "{} in {} is damaged ({e}); delete it only if you accept possible duplicates",
                        self.path, self.handle.display
                    ))
                })
            }
            Err(object_store::Error::NotFound { .. }) => Ok(Pending::default()),
            Err(e) => Err(Error::external(format!("cannot read {}", self.path), e)),
        }
    }

    /// Replaces the record (durably, before anything it names is published).
    pub async fn save(&self, pending: &Pending) -> Result<()> {
        let body = serde_json::to_vec(pending)
            .map_err(|e| Error::internal(format!("pending record: {e}")))?;
        self.handle
            .store
            .put(&self.path, PutPayload::from(body))
            .await
            .map(|_| ())
            .map_err(|e| Error::external(format!("cannot write {}", self.path), e))
    }

    /// Whether the object of an entry was published.
    pub async fn published(&self, entry: &Entry) -> Result<bool> {
        let path = object_store::path::Path::parse(&entry.key)
            .unwrap_or_else(|_| object_store::path::Path::from(entry.key.as_str()));
        match self.handle.store.head(&path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            // A name the file system cannot hold (a prefix that failed the run before it was
            // fixed) names no object.
            Err(e) if names_nothing(&e) => Ok(false),
            Err(e) => Err(Error::external(format!("cannot check {path}"), e)),
        }
    }
}

/// Whether a store error says the name itself is impossible (too long, invalid), so that no
/// object can have it.
fn names_nothing(error: &object_store::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::InvalidFilename
        {
            return true;
        }
        cause = e.source();
    }
    false
}
