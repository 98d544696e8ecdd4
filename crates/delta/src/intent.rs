//! Commit intents: what phase 1 wrote and phase 2 commits, serializable so the executor can
//! save them in the run's manifest before applying any.

use deltalake_core::kernel::{Add, Remove, StructType};
use serde::{Deserialize, Serialize};

use crate::merge::MergeSpec;
use crate::schema::{SchemaChange, SchemaPolicy};

/// The application transaction (`txn` action) a commit carries: the log keeps the highest
/// version per app id, so a commit whose version is already there is never made again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    /// `<pipeline>/<sink>/<table>`.
    pub app_id: String,
    /// A number that only grows per app id: the run's sequence, or the end of a streaming
    /// sequence range.
    pub version: i64,
}

impl Txn {
    /// The transaction of `pipeline`'s sink `sink` writing `table`, at `version`.
    pub fn new(pipeline: &str, sink: &str, table: &str, version: i64) -> Self {
        Txn {
            app_id: format!("{pipeline}/{sink}/{table}"),
            version,
        }
    }
}

/// How a write meets the rows already in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// The new files are added to the table's.
    #[default]
    Append,
    /// One commit removes every current file and adds the new ones (`full_refresh`): readers
    /// see the old version or the new, never a mix.
    Overwrite,
}

/// Page compression of the data files a merge writes (appends and overwrites take whole
/// Parquet writer properties from the caller instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// No compression.
    None,
    /// Snappy, delta-rs' default.
    #[default]
    Snappy,
    /// Zstandard at level 3.
    Zstd,
    /// Gzip at its default level.
    Gzip,
}

/// What phase 1 prepared for one table; [`crate::DeltaTable::apply`] commits it once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitIntent {
    /// The table, for messages (`s3://bucket/lake/sales/orders`).
    pub table: String,
    /// The transaction the commit carries.
    pub txn: Txn,
    /// The table version the intent was prepared against (`None`: no table yet).
    pub read_version: Option<u64>,
    /// What to commit.
    pub action: IntentAction,
}

/// The commit an intent describes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum IntentAction {
    /// Data files already written under the table root (boxed: far larger than a merge).
    Write(Box<WriteIntent>),
    /// An upsert of staged input, run when applied.
    Merge(MergeIntent),
}

/// Files written by phase 1 of an append or an overwrite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteIntent {
    /// Append or overwrite.
    pub mode: WriteMode,
    /// Partition columns of the table (a new table is created with them).
    pub partition_by: Vec<String>,
    /// The table's schema after the commit (`None` when nothing was written to a table that
    /// does not exist yet: applying then commits nothing).
    pub schema: Option<StructType>,
    /// The table's schema when the intent was prepared (`None`: no table yet); applying fails
    /// with a conflict when the table's schema is neither this nor [`Self::schema`].
    pub base_schema: Option<StructType>,
    /// The schema changes the commit makes.
    pub schema_changes: Vec<SchemaChange>,
    /// The new data files (paths relative to the table root).
    pub adds: Vec<Add>,
    /// Files a widening rewrite replaced (their rows are in `adds` with the wider type);
    /// applying fails with a conflict unless the table is still at `read_version`. An
    /// overwrite removes every file current when applied, whatever is listed here.
    pub removes: Vec<Remove>,
    /// Rows in `adds` that came from the data (not from a rewrite).
    pub rows: u64,
}

/// A merge prepared by phase 1: its input staged as Parquet files, run by `apply`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeIntent {
    /// Keys, sequence, deletes.
    pub spec: MergeSpec,
    /// Schema policy for columns the input adds or widens.
    pub schema: SchemaPolicy,
    /// Partition columns for a table the merge creates.
    pub partition_by: Vec<String>,
    /// Store paths of the staged Parquet files (in the table's store).
    pub staged: Vec<String>,
    /// Rows staged.
    pub rows: u64,
    /// When deletes happened, for soft deletes (`_deleted_at`), in microseconds since the
    /// epoch: fixed at prepare so a retried apply writes the same value.
    pub deleted_at_micros: i64,
    /// Page compression of the files the merge writes (intents saved before it was recorded
    /// read as delta-rs' default, Snappy).
    #[serde(default)]
    pub compression: Compression,
}

/// What [`crate::DeltaTable::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The commit was made: the table is now at `version`.
    Committed {
        /// The new table version.
        version: u64,
    },
    /// The log already holds this app id at this version or a later one: nothing committed.
    AlreadyApplied {
        /// The version of the app id in the log.
        txn_version: i64,
    },
    /// There was nothing to commit (no rows for a table that does not exist).
    NothingToCommit,
}
