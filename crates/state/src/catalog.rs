//! The data catalog: databases, tables, partitions and schema versions, kept with the state.
//!
//! Crawlers write it, `pipectl catalog` shows it, `pipectl query` reads it to find each table's
//! files, format and columns. Like the rest of the state, records are JSON with defaults on
//! every optional field, so versions of pipectl can read each other's records.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::StateError;

/// A catalog database: a namespace of tables (Glue database, Athena schema).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogDatabase {
    /// The database name.
    pub name: String,
    /// When a crawler first wrote to it.
    pub created_at: DateTime<Utc>,
}

/// One column: a name and a Hive-style type (`bigint`, `string`, `struct<a:int>`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogColumn {
    /// Column name.
    pub name: String,
    /// Hive-style type name, as Glue and Athena show it.
    #[serde(rename = "type")]
    pub data_type: String,
    /// Whether the column may hold NULL. Only a table format that declares it (Delta) says
    /// `false`; crawled files are always nullable.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub nullable: bool,
}

impl CatalogColumn {
    /// A nullable column.
    pub fn new(name: impl Into<String>, data_type: impl Into<String>) -> Self {
        CatalogColumn {
            name: name.into(),
            data_type: data_type.into(),
            nullable: true,
        }
    }
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// Where a table's objects live and how to reach them again without the pipeline file.
///
/// Credentials are kept only as `${env:NAME}` references, never as values: a query resolves
/// them from its own environment (or the standard `AWS_*` variables).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogStorage {
    /// S3-compatible endpoint, if not AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// S3 region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Access key id, as an `${env:NAME}` reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// Secret access key, as an `${env:NAME}` reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    /// Plain `http://` endpoints are allowed.
    #[serde(default)]
    pub allow_http: bool,
}

/// A table's file format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogFormat {
    /// `csv`, `json` (JSON lines), `parquet`, or `delta` (a Delta Lake table: its log says
    /// which files, columns and partitions it has; see [`CatalogTable::delta`]).
    pub kind: String,
    /// `gzip` for compressed text files; `None` for plain text and for Parquet (compressed inside).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// CSV field delimiter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<char>,
    /// CSV files start with a header row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<bool>,
    /// The file-name ending every data file has (`.csv.gz`), so queries skip other objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
}

/// One partition: its values (one per partition key) and its folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogPartition {
    /// Values in partition-key order, as written in the folder names.
    pub values: Vec<String>,
    /// The folder, relative to the table's location, ending with `/`.
    pub location: String,
    /// Data files in it.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// When its newest file was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<DateTime<Utc>>,
}

/// Whether a table's data is still where the crawler found it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableStatus {
    /// Found by the last crawl of its crawler.
    #[default]
    Active,
    /// No longer found by its crawler (the `deprecate` schema-change policy).
    Deprecated,
}

/// What one crawl did to a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrawlRecord {
    /// The crawler: `pipeline/step`, or `pipectl crawl` for ad-hoc crawls.
    pub crawler: String,
    /// The run it was part of, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// When it crawled.
    pub at: DateTime<Utc>,
    /// What changed, one line each (`added column rating string`); empty when nothing did.
    #[serde(default)]
    pub changes: Vec<String>,
}

/// A data object under a table's location that the crawler left out of the table (Glue would
/// classify it `UNKNOWN`, or it holds another format or layout); queries do not read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedFile {
    /// Its key relative to the table's location (`dt=2/part-1.csv`).
    pub key: String,
    /// Why it was left out.
    pub reason: String,
}

impl CrawlRecord {
    /// When and by whom, as people read it: `2026-11-26 02:30:00 UTC by lake/catalog (run R)`.
    pub fn describe(&self) -> String {
        format!(
            "{} by {}{}",
            self.at.format("%Y-%m-%d %H:%M:%S UTC"),
            self.crawler,
            self.run_id
                .as_deref()
                .map(|r| format!(" (run {r})"))
                .unwrap_or_default()
        )
    }
}

/// A catalogued table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogTable {
    /// The database it belongs to.
    pub database: String,
    /// The table name.
    pub name: String,
    /// URL of the folder holding its files (`file:///lake/clean/film/`, `s3://bucket/clean/film/`),
    /// ending with `/`.
    pub location: String,
    /// How to reach `location` if it is not a local folder.
    #[serde(default)]
    pub storage: CatalogStorage,
    /// File format.
    pub format: CatalogFormat,
    /// Data columns, in order.
    pub columns: Vec<CatalogColumn>,
    /// Partition columns, in folder order.
    #[serde(default)]
    pub partition_keys: Vec<CatalogColumn>,
    /// Partition folders are Hive-style (`key=value`) rather than plain values.
    #[serde(default)]
    pub hive_partitions: bool,
    /// Partitions, ordered by location.
    #[serde(default)]
    pub partitions: Vec<CatalogPartition>,
    /// Data objects under `location` that are not part of the table, by key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_files: Vec<SkippedFile>,
    /// Schema version: 1 when created, +1 for every change of columns, partition keys or format.
    pub schema_version: u32,
    /// Active, or deprecated when its data went away.
    #[serde(default)]
    pub status: TableStatus,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When a crawl last wrote it.
    pub updated_at: DateTime<Utc>,
    /// The last crawl that looked at it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_crawl: Option<CrawlRecord>,
    /// For a Delta table (format `delta`): the version catalogued and its recent commits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<DeltaLog>,
}

/// What the catalog keeps of a Delta table's log, read by the crawl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeltaLog {
    /// The table version the crawl read.
    pub version: u64,
    /// Its newest commits, newest first.
    #[serde(default)]
    pub commits: Vec<DeltaCommit>,
}

/// One commit of a Delta table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeltaCommit {
    /// The version it made.
    pub version: u64,
    /// When it was committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    /// `WRITE`, `MERGE`, `OPTIMIZE`, `VACUUM END`, ...
    pub operation: String,
    /// The operation's parameters as the log has them (mode, predicate, ...).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub parameters: std::collections::BTreeMap<String, String>,
}

impl CatalogTable {
    /// Data files over all partitions.
    pub fn files(&self) -> u64 {
        self.partitions.iter().map(|p| p.files).sum()
    }

    /// Bytes over all partitions.
    pub fn bytes(&self) -> u64 {
        self.partitions.iter().map(|p| p.bytes).sum()
    }

    /// This table's schema as a history entry.
    pub fn schema_snapshot(&self) -> SchemaVersion {
        SchemaVersion {
            version: self.schema_version,
            at: self.updated_at,
            columns: self.columns.clone(),
            partition_keys: self.partition_keys.clone(),
            format: self.format.clone(),
            changes: self
                .last_crawl
                .as_ref()
                .map(|c| c.changes.clone())
                .unwrap_or_default(),
            crawler: self.last_crawl.as_ref().map(|c| c.crawler.clone()),
        }
    }
}

/// One version of a table's schema, kept in its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaVersion {
    /// The version number.
    pub version: u32,
    /// When it was recorded.
    pub at: DateTime<Utc>,
    /// Data columns.
    pub columns: Vec<CatalogColumn>,
    /// Partition columns.
    #[serde(default)]
    pub partition_keys: Vec<CatalogColumn>,
    /// File format.
    pub format: CatalogFormat,
    /// What changed from the previous version.
    #[serde(default)]
    pub changes: Vec<String>,
    /// The crawler that recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crawler: Option<String>,
}

/// The catalog part of the state store. [`crate::catalog_conformance::run_all`] is its
/// executable contract.
///
/// Database and table names must not contain NUL characters ([`StateError::InvalidName`]).
pub trait CatalogStore: Send + Sync {
    /// All databases, by name.
    fn databases(&self) -> Result<Vec<CatalogDatabase>, StateError>;

    /// One table.
    fn table(&self, database: &str, name: &str) -> Result<Option<CatalogTable>, StateError>;

    /// The tables of one database (or of all, by database), ordered by database then name.
    fn tables(&self, database: Option<&str>) -> Result<Vec<CatalogTable>, StateError>;

    /// Stores a table (creating its database if needed), durably. When no history entry has its
    /// `schema_version` yet, its schema is added to the history in the same transaction.
    fn save_table(&self, table: &CatalogTable) -> Result<(), StateError>;

    /// Every schema version of a table, oldest first (kept after the table is deleted).
    fn table_history(&self, database: &str, name: &str) -> Result<Vec<SchemaVersion>, StateError>;

    /// Deletes a table; returns whether it existed.
    fn delete_table(&self, database: &str, name: &str) -> Result<bool, StateError>;
}
