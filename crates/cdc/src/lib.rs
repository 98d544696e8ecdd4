//! Change data capture for pipectl: the change model every database CDC source shares, and
//! PostgreSQL logical replication decoded into it.
//!
//! What is here:
//! - [`pgoutput`]: a decoder for the messages of PostgreSQL's built-in `pgoutput` plugin
//!   (protocol version 1, logical messages, text and binary tuple values), a pure function
//!   over bytes;
//! - [`change`]: the change model (a row's values, [`Op`], commit time, commit LSN and
//!   position inside the transaction) and [`ChangeDecoder`], which turns messages into
//!   committed [`Transaction`]s and applies the rules that keep replayed changes faithful
//!   (deletes carry the key or the whole old row, a key change is a delete and an update,
//!   unchanged TOASTed values are marked unchanged and never NULL, truncate is a change);
//! - [`types`]: the Arrow type mapping, the batch PostgreSQL source's (see the module doc for
//!   how the two should become one), and text-format values converted exactly;
//! - [`records`]: change records as Arrow record batches, one per table, with the change
//!   columns ([`ChangeColumns`]).
//!
//! Still to come (issue 15), in the crates that own each part:
//! - the replication connection (`START_REPLICATION` from an LSN, standby status feedback
//!   with the applied LSN, heartbeats), slot and publication created if missing, and the
//!   initial snapshot in the slot's exported snapshot;
//! - the spec's source type `postgres_cdc` (connection, include/exclude tables, publication,
//!   slot, `snapshot: initial | never | when_needed`) in pipectl-spec, with `plan` showing
//!   the tables and their replica identity;
//! - applying changes into Delta tables by merge ordered by (LSN, position), and DMS-style
//!   change files through the object_store sink;
//! - bookmarks of LSNs: the slot's confirmed flush LSN advances only after a sink committed;
//! - `serve` supervision of long-running CDC pipelines and `--until current` catch-up runs;
//! - MySQL/MariaDB binlog CDC (issue 16) reusing [`Change`] and [`records`].
#![warn(missing_docs, unreachable_pub)]

pub mod change;
pub mod error;
pub mod lsn;
pub mod pgoutput;
pub mod records;
pub mod stream;
pub mod types;

pub use change::{Change, ChangeDecoder, Event, Op, Relation, Transaction, TypeOptions};
pub use error::{Error, Result};
pub use lsn::Lsn;
pub use records::{ChangeColumns, to_record_batches};
pub use stream::{ReplicationStream, Snapshot, StreamSettings};

#[cfg(test)]
mod tests;
