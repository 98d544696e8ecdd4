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
//!   columns ([`ChangeColumns`]);
//! - [`stream`]: a slot's stream over `pgwire-replication`: publication and slot created when
//!   missing, the slot's exported snapshot handed out for the initial copy before
//!   `START_REPLICATION`, decoded transactions, standby status feedback of applied LSNs.
//!
//! The batch PostgreSQL source in pipectl-engine maps types by name from its catalog query;
//! this crate maps pgoutput's type OIDs to the same Arrow types ([`types`]). When the engine
//! gains the CDC source, one of the two should use the other's table.
//!
//! Still to come (issue 15), in the crates that own each part:
//! - the spec's source type `postgres_cdc` (connection, include/exclude tables, publication,
//!   slot, `snapshot: initial | never | when_needed`) in pipectl-spec, with `plan` showing
//!   the tables and their replica identity, and `wal_level`/privilege/replica identity checks;
//! - the initial copy itself (binary COPY of each table inside the exported snapshot, as full
//!   loads do) and restarting an interrupted snapshot;
//! - applying changes into Delta tables by merge ordered by (LSN, position), keeping the
//!   table's value for unchanged TOASTed columns, and DMS-style change files through the
//!   object_store sink;
//! - bookmarks of LSNs: the slot's confirmed flush LSN advances only after a sink committed;
//! - `serve` supervision of long-running CDC pipelines, heartbeats, lag metrics and
//!   `--until current` catch-up runs;
//! - types created while streaming: the catalog is read once at connect, so a Relation using
//!   a type created later maps it by the `unmapped_types` policy until the next connect;
//! - binary tuple values: decoded by [`pgoutput`], refused by [`records`] (the stream asks
//!   for text);
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
