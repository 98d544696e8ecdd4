//! The pipectl state store: run history and incremental-load bookmarks.
//!
//! [`StateStore`] is the contract; [`SledStore`] implements it in an embedded sled database in
//! one local directory (one process at a time). A shared backend (PostgreSQL, for several
//! `pipectl serve` workers) implements the same trait and proves it with
//! [`conformance::run_all`].

#![warn(missing_docs, unreachable_pub)]

pub mod catalog;
pub mod catalog_conformance;
pub mod conformance;
mod error;
pub mod hive_type;
mod model;
mod sled_catalog;
mod sled_store;
mod store;

pub use catalog::{
    CatalogColumn, CatalogDatabase, CatalogFormat, CatalogPartition, CatalogStorage, CatalogStore,
    CatalogTable, CrawlRecord, DeltaCommit, DeltaLog, SchemaVersion, SkippedFile, TableStatus,
};
pub use error::{BoxedCause, StateError};
pub use model::{
    Bookmark, PartitionSwap, PublishEntry, ReplicationLag, RetiredObject, RunRecord, RunStatus,
    StepRecord, new_run_id,
};
pub use sled_store::{STATE_FORMAT_VERSION, SledStore};
pub use store::StateStore;
