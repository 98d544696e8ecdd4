//! Delta Lake tables for pipectl, on delta-rs: appends, overwrites and merges committed in two
//! phases with application transactions, schema evolution by policy, compaction, vacuum, and
//! reads (catalog information, a DataFusion table with time travel).
//!
//! # The intent/apply protocol
//!
//! Every change to a table is made in two phases, so that the executor (and the streaming
//! firehose sink) can save what a run is about to commit before committing anything, and a
//! crash at any moment leaves a table that is either without the change or with it once:
//!
//! 1. **Prepare** (phase 1, no commit). [`DeltaTable::writer`] (append, overwrite) writes
//!    Parquet data files under the table root; [`DeltaTable::merge_writer`] checks a merge's
//!    input (keys present and never NULL, conditions over known columns, the schema policy)
//!    and stages it as Parquet files under a staging path the caller owns. `finish()`
//!    returns a [`CommitIntent`]: serde-serializable, naming the data files (Add actions),
//!    the schema change, the staged input, and the [`Txn`] — app id
//!    `<pipeline>/<sink>/<table>` and a version that only grows (the run's sequence, or the
//!    end of a streaming sequence range). Readers do not see any of it: files without a log
//!    entry are not part of a Delta table.
//! 2. **Save** the intents (the executor's manifest, state `Committing`) before applying any.
//! 3. **Apply** (phase 2): [`DeltaTable::apply`] re-reads the log; if the log's `txn` for the
//!    app id is already at the intent's version or later, it returns
//!    [`ApplyOutcome::AlreadyApplied`] and commits nothing. Otherwise it makes one commit that
//!    carries the `txn` action: the Adds (and, for an overwrite, a Remove of every current
//!    file, so readers see the old version or the new, never a mix), or the merge. A
//!    commit is made without delta-rs' own retries: when another writer took the version
//!    (or delta-rs' conflict checker sees the same `txn` in a newer commit), `apply` re-reads
//!    the log, checks the `txn` again and only then retries, so two appliers never commit
//!    twice. Recovery after a crash simply applies the saved intents again.
//! 4. **Discard** instead of applying (a failed or cancelled run): [`DeltaTable::discard`]
//!    deletes the intent's data files or staged input, unless the log shows it was applied.
//!
//! The first commit to a root creates the table (protocol, metadata, files and `txn` in
//! version 0). A root without a log that holds other files is refused, naming the root; files
//! phase 1 wrote into a new root are recognised by a hidden `_pipectl_pending` marker.
//!
//! Merges ([`MergeSpec`]): upsert by `keys`; within the input and against the table, the row
//! with the highest `sequence_by` wins (a tie goes to the later arrival); rows matching
//! `delete_when` delete (hard) or set `_deleted_at` (soft, [`DeleteMode::Soft`]);
//! `unchanged_when` marks columns whose input value is a placeholder to keep the table's
//! value (CDC's unchanged TOAST columns; an earlier input row of the key that has the value
//! wins over the table's); a row matching `truncate_when` empties the table at its place in
//! the sequence. [`MergeSpec::predicate_sql`] and
//! [`MergeSpec::describe`] are the text `plan` shows.
//!
//! Stores: the table is given as a [`TableLocation`], the caller's `object_store` (as pipectl
//! builds it from a connection, S3 settings and secrets included) and the root inside it;
//! this crate never builds a store from credentials. Commits rely on the store's
//! create-if-absent put (local disks, memory, S3 with conditional writes).
//!
//! This crate depends on no other pipectl crate, so editing the engine never rebuilds it.
#![warn(missing_docs, unreachable_pub)]

mod error;
mod footer;
mod intent;
mod location;
mod merge;
mod schema;
pub mod store;
mod table;
mod write;

pub use error::{Error, ErrorClass, Result};
pub use footer::parquet_footer_schema;
pub use intent::{
    ApplyOutcome, CommitIntent, Compression, IntentAction, MergeIntent, Txn, WriteIntent, WriteMode,
};
pub use location::TableLocation;
pub use merge::{DELETED_AT, DeleteMode, MergeOptions, MergeSpec, MergeWriter};
pub use schema::{SchemaChange, SchemaPolicy};
pub use table::{
    AsOf, CompactOptions, CompactReport, DeltaTable, HistoryEntry, PartitionInfo, TableInfo,
    VacuumOptions, VacuumReport,
};
pub use write::{TableWriter, WriteOptions};

#[cfg(test)]
mod tests;
