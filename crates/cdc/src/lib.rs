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
//! this crate maps pgoutput's type OIDs to the same Arrow types ([`types`]). The engine's
//! `postgres_cdc` source (`crates/engine/src/source/postgres_cdc/`) copies tables with the
//! batch source's read path and casts change records to its types, so one of the two tables
//! should still use the other's.
//!
//! Built on this crate in the engine (issue 15): the `postgres_cdc` source's plan and server
//! checks, catch-up runs (initial copy in the exported snapshot, a restarted copy in a new
//! slot, changes up to a stop marker written at the start of the run), change files and Delta
//! merges by primary key ordered by (LSN, position), and the LSN bookmark that advances only
//! with the sinks' commit.
//!
//! Unchanged TOASTed values reach change files as NULL listed in the unchanged column, and
//! the Delta merge keeps the table's value for them; truncates are records with `Op = 'T'`
//! that empty a merged table at their place in the run.
//!
//! Still to come, in the crates that own each part:
//! - `serve` supervision of long-running CDC pipelines, heartbeats and live lag (the engine
//!   records each catch-up run's lag at its start; `pipectl cdc drop-slot` drops a pipeline's
//!   slot and publication);
//! - schema changes while streaming: the catalog is read once at connect, so a Relation using
//!   a type created later maps it by the `unmapped_types` policy until the next connect, and a
//!   column added during a run stops it (the next run's plan has it);
//! - TLS on the replication connection ([`StreamSettings`] has no TLS settings yet);
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
