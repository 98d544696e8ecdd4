//! The pipeline spec, version 1: the Rust types behind `schemas/pipeline.schema.json`.
//!
//! Every field carries a doc comment because schemars turns it into the schema's `description`,
//! which editors show on hover; a test fails when one is missing. Units are part of option names
//! (`interval_secs`, `max_file_rows`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod files;
mod stream;
pub use files::*;
pub use stream::*;

/// A pipeline: connections plus named steps that form a DAG (sources -> transforms -> sinks -> crawlers).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "pipectl pipeline", extend("$id" = "https://pipectl.dev/schemas/pipeline.schema.json"))]
pub struct Pipeline {
    /// Spec format version: write `version: 1` (the only version so far).
    pub version: u32,
    /// Pipeline name: letters, digits, `-` and `_`. Names run history, bookmarks and scheduled runs.
    pub name: String,
    /// What this pipeline is for, shown by `pipectl plan`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When `pipectl serve` runs this pipeline. Without it the pipeline only runs on demand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Timeouts, retries and history retention for runs started by `pipectl serve`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunSettings>,
    /// Named connections to databases and object stores, referenced by steps.
    #[serde(default)]
    pub connections: BTreeMap<String, Connection>,
    /// Steps that read data: databases, generators.
    #[serde(default)]
    pub sources: BTreeMap<String, Source>,
    /// Steps that reshape record batches between sources and sinks.
    #[serde(default)]
    pub transforms: BTreeMap<String, Transform>,
    /// Steps that write data into an object store (the lake).
    #[serde(default)]
    pub sinks: BTreeMap<String, Sink>,
    /// Steps that catalogue what sinks wrote, after they publish.
    #[serde(default)]
    pub crawlers: BTreeMap<String, Crawler>,
    /// Table maintenance that `pipectl serve` runs on its own schedule: compaction and vacuum of
    /// the Delta tables under this pipeline's `object_store` sinks, and compaction of its plain
    /// Parquet and JSON lines tables (`pipectl compact` and `pipectl vacuum` do the same on
    /// demand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<Maintenance>,
}

/// Scheduled maintenance of a pipeline's tables, e.g.
/// `{schedule: "0 3 * * *", compact: {target_file_size: 134217728}, vacuum: {retention: 7d}}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Maintenance {
    /// Cron expression of when maintenance runs, independent of the pipeline's own schedule:
    /// `0 3 * * *` (daily at 03:00), or 6 fields with seconds first.
    pub schedule: String,
    /// IANA time zone the cron expression is read in, e.g. `Europe/Berlin`. Default `UTC`.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Compact each table: small files bin-packed, per partition, into larger ones (Delta tables
    /// in one commit; plain Parquet and JSON lines tables by swapping each partition's files).
    /// Omit to not compact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compact: Option<CompactSettings>,
    /// Vacuum each table (after compacting): delete files it no longer needs. Omit to not vacuum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vacuum: Option<VacuumSettings>,
}

/// How scheduled maintenance compacts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompactSettings {
    /// Size in bytes compacted files are packed to. Default 134217728 (128 MiB). `pipectl
    /// compact` uses it too unless `--target-size` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub target_file_size: Option<u64>,
}

/// How scheduled maintenance vacuums.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VacuumSettings {
    /// Files that left a table longer ago than this are deleted: `7d`, `12h`, `30m`. Time travel
    /// to versions younger than this keeps working; the newest version's files are never
    /// deleted. Default `7d`.
    #[serde(default = "default_retention")]
    pub retention: String,
}

impl Default for VacuumSettings {
    fn default() -> Self {
        VacuumSettings {
            retention: default_retention(),
        }
    }
}

fn default_retention() -> String {
    "7d".to_owned()
}

/// A cron schedule for background runs by `pipectl serve`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Cron expression with an optional seconds field: `0 */15 * * * *` (sec min hour day month weekday) or `*/15 * * * *`.
    pub cron: String,
    /// IANA time zone the cron expression is read in, e.g. `Europe/Berlin`. Default `UTC`.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// What to do when a run is due while the previous one still runs.
    #[serde(default)]
    pub overlap: OverlapPolicy,
    /// The most runs that wait behind a running one (`overlap: queue` fires, manual and file triggers); one beyond it is dropped and recorded as a `skipped` run. Default 16.
    #[serde(default = "default_queue_limit")]
    #[schemars(range(min = 1))]
    pub queue_limit: u32,
    /// Which runs missed while pipectl was down are made up for at start-up.
    #[serde(default)]
    pub catch_up: CatchUpPolicy,
    /// With `catch_up: all`, the most missed runs that are made up for.
    #[serde(default = "default_catch_up_limit")]
    pub catch_up_limit: u32,
}

/// How `pipectl serve` runs this pipeline: limits, retries and how much history it keeps.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunSettings {
    /// A run still going after this many seconds is cancelled and recorded as failed. Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<f64>,
    /// A step still going after this many seconds fails its run. Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_timeout_secs: Option<f64>,
    /// Retries of runs (by `pipectl run` and `pipectl serve`) that failed for a reason worth retrying (a dropped connection, a timeout); never for spec or data errors or refusals. Default: 3 attempts, 0.5 s and then 1 s apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySettings>,
    /// Keep at most this many runs of this pipeline in the history. Default: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_runs: Option<usize>,
    /// Delete runs of this pipeline older than this many days from the history. Default: keep them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_days: Option<u32>,
    /// Also start a run when new objects appear under a prefix (polled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_new_files: Option<FileTrigger>,
}

/// Retries with exponential backoff and jitter.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    /// Attempts in all, the first one included (`3`: up to two retries).
    pub max_attempts: u32,
    /// Wait before the first retry, in seconds; it doubles for every further retry. Default 10.
    #[serde(default = "default_initial_backoff_secs")]
    pub initial_backoff_secs: f64,
    /// The longest wait between two attempts, in seconds. Default 600.
    #[serde(default = "default_max_backoff_secs")]
    pub max_backoff_secs: f64,
}

fn default_initial_backoff_secs() -> f64 {
    10.0
}

fn default_max_backoff_secs() -> f64 {
    600.0
}

/// Starts a run when objects appear under a prefix of an object-store connection.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileTrigger {
    /// The object-store connection to watch.
    pub connection: String,
    /// The key prefix to watch, e.g. `incoming/`.
    pub prefix: String,
    /// How often to list the prefix, in seconds. Default 30.
    #[serde(default = "default_poll_secs")]
    pub poll_secs: f64,
}

fn default_poll_secs() -> f64 {
    30.0
}

fn default_timezone() -> String {
    "UTC".to_owned()
}

fn default_catch_up_limit() -> u32 {
    10
}

/// Runs waiting behind a running one, per pipeline, unless `queue_limit` says otherwise.
pub const DEFAULT_QUEUE_LIMIT: u32 = 16;

fn default_queue_limit() -> u32 {
    DEFAULT_QUEUE_LIMIT
}

/// Overlap policy for scheduled runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OverlapPolicy {
    /// Skip the new run and record that it was skipped.
    #[default]
    Skip,
    /// Start the new run as soon as the running one ends.
    Queue,
    /// Cancel the running run, then start the new one.
    Cancel,
}

/// Catch-up policy after downtime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CatchUpPolicy {
    /// Forget missed runs; wait for the next fire time.
    None,
    /// Run once for the latest missed fire time.
    #[default]
    Latest,
    /// Run once for every missed fire time, up to `catch_up_limit`.
    All,
}

/// A connection: a URL plus options. Strings may use `${env:NAME}` for secrets, which are never printed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// `sqlite://path/to.db`, `file:///abs/dir` or `file://relative/dir`, `memory://`, `s3://bucket/prefix`.
    pub url: String,
    /// S3-compatible endpoint, e.g. `http://127.0.0.1:9000`. Default: AWS, or `AWS_ENDPOINT_URL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// S3 region. Default: `AWS_REGION` or `us-east-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// S3 access key id; use `${env:NAME}`. Default: `AWS_ACCESS_KEY_ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// S3 secret access key; use `${env:NAME}`. Default: `AWS_SECRET_ACCESS_KEY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    /// Allow plain `http://` endpoints (local S3-compatible servers).
    #[serde(default)]
    pub allow_http: bool,
    /// TLS for PostgreSQL and MySQL connections. Default: whatever the URL says (`sslmode=`,
    /// `ssl-mode=`), else the driver's `prefer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSettings>,
}

/// TLS settings of a database connection.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// How much TLS to insist on.
    pub mode: TlsMode,
    /// PEM file of the certificate authority that signed the server's certificate (relative to
    /// the spec's folder); used by `verify_ca` and `verify_full`. Default: the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

/// TLS modes, as PostgreSQL's `sslmode` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Never use TLS.
    Disable,
    /// Use TLS when the server offers it.
    Prefer,
    /// Use TLS, or fail; the certificate is not checked.
    Require,
    /// Use TLS and check the certificate chain against the CA.
    VerifyCa,
    /// Use TLS, check the chain and that the certificate names the host.
    VerifyFull,
}

/// A source step. `type` picks the kind.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Source {
    /// Full load of SQLite tables chosen by include/exclude rules, or of explicit queries.
    Sqlite(DatabaseSource),
    /// Full or incremental load of PostgreSQL tables (binary COPY), chosen by rules or queries.
    Postgres(DatabaseSource),
    /// Full or incremental load of MySQL or MariaDB tables, chosen by rules or queries.
    Mysql(DatabaseSource),
    /// Change data capture from PostgreSQL logical replication (`pgoutput`), as DMS's "full
    /// load and ongoing replication": an initial copy of each table, then its inserts, updates
    /// and deletes as change records.
    PostgresCdc(PostgresCdcSource),
    /// Change data capture from MySQL's or MariaDB's row-based binlog: an initial copy of each
    /// table in a consistent snapshot, then its inserts, updates and deletes as change records.
    MysqlCdc(MysqlCdcSource),
    /// Records from a Kinesis-Data-Generator-style template at a fixed rate.
    Generator(GeneratorSource),
    /// Messages from a NATS JetStream stream (durable consumer); runs until stopped.
    Nats(NatsSource),
    /// Messages from an MQTT topic (QoS 1, persistent session); runs until stopped.
    Mqtt(MqttSource),
    /// Records PUT over HTTP, like Firehose's Direct PUT; runs until stopped.
    Http(HttpSource),
    /// Data files under a prefix of an object store, each read once (a landing zone).
    Files(FilesSource),
}

/// A relational database source.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSource {
    /// Name of an entry in `connections`.
    pub connection: String,
    /// Tables to load, as DMS selection rules; `%` matches any run of characters, `_` one character.
    /// Default: every table, unless `queries` are given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<TableRule>,
    /// Tables to leave out, applied after `include`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<TableRule>,
    /// Explicit queries, each landing as its own table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queries: Vec<QuerySpec>,
    /// Rows per Arrow record batch.
    #[serde(default = "default_batch_rows")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub batch_rows: usize,
    /// Per-table settings such as bookmarks, keyed by `schema.table` or `table` (`%` and `_` wildcards).
    /// The first matching entry applies.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tables: BTreeMap<String, TableSettings>,
    /// Tables loaded at the same time, each over its own connection (PostgreSQL and MySQL).
    #[serde(default = "default_parallel_tables")]
    #[schemars(range(min = 1, max = 64))]
    pub parallel_tables: usize,
    /// What a column of a type pipectl cannot map does: fail the run naming it, or land it as text.
    #[serde(default)]
    pub unmapped_types: UnmappedTypes,
    /// What PostgreSQL's `infinity` and `-infinity` dates and timestamps (common as `valid_to`)
    /// land as: fail the run naming the row (`fail`), NULL (`set_null`), or the latest and
    /// earliest values, `9999-12-31 23:59:59.999999` and `0001-01-01 00:00:00` (`clamp`).
    #[serde(default)]
    pub infinity: InfinityPolicy,
    /// How MySQL `TIME` columns land: as a time of day (a value below zero or of 24 hours or
    /// more fails the run naming the row), or as text in MySQL's own form (`-838:59:59`,
    /// `100:00:00`), for columns that hold durations.
    #[serde(default)]
    pub mysql_time: MysqlTime,
    /// DMS-style transformation rules applied in order to the tables this source lands: rename a
    /// table or column, remove a column, lowercase names, add a table prefix (PostgreSQL and MySQL).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transformations: Vec<TransformationRule>,
}

/// A PostgreSQL change data capture source: a publication names the tables, a logical
/// replication slot keeps the position.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresCdcSource {
    /// Name of an entry in `connections` (a `postgres://` URL; the user needs the
    /// `REPLICATION` attribute, or `rds_replication` on RDS).
    pub connection: String,
    /// Tables to replicate, as DMS selection rules (the `postgres` source's rules); `%` matches
    /// any run of characters, `_` one character. Default: every table. Views cannot be
    /// replicated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<TableRule>,
    /// Tables to leave out, applied after `include`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<TableRule>,
    /// The publication naming the replicated tables, created for the selected tables when
    /// missing (a PostgreSQL identifier: lowercase letters, digits, `_`, at most 63 bytes).
    pub publication: String,
    /// The logical replication slot holding the position, created when missing (lowercase
    /// letters, digits and `_`, at most 63 bytes, as PostgreSQL requires).
    pub slot: String,
    /// When tables are copied before changes stream: `initial` when the slot is created,
    /// `never` (changes only), or `when_needed` (also when the slot is gone and must be
    /// created again).
    #[serde(default)]
    pub snapshot: CdcSnapshot,
    /// Give full-load rows the `Op` column too (`I`), as DMS's `includeOpForFullLoad`; without
    /// it the initial copy's rows carry no operation.
    #[serde(default)]
    pub include_op_for_full_load: bool,
    /// Name of the commit timestamp column (DMS's `TimestampColumnName`).
    #[serde(default = "default_commit_timestamp_column")]
    pub timestamp_column_name: String,
    /// Rows per Arrow record batch of the initial copy.
    #[serde(default = "default_batch_rows")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub batch_rows: usize,
    /// What a column of a type pipectl cannot map does: fail the run naming it, or land it as text.
    #[serde(default)]
    pub unmapped_types: UnmappedTypes,
    /// What `infinity` and `-infinity` dates and timestamps land as (see the `postgres` source).
    #[serde(default)]
    pub infinity: InfinityPolicy,
}

/// A MySQL or MariaDB change data capture source: pipectl reads the binlog as a replica with
/// its own `server_id`; the binlog position it reached is the source's bookmark.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MysqlCdcSource {
    /// Name of an entry in `connections` (a `mysql://` or `mariadb://` URL; the user needs the
    /// `REPLICATION SLAVE` and `REPLICATION CLIENT` privileges and `SELECT` on the tables).
    pub connection: String,
    /// Tables to replicate, as DMS selection rules (the `mysql` source's rules: the schema is
    /// the database); `%` matches any run of characters, `_` one character. Default: every
    /// table. Views cannot be replicated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<TableRule>,
    /// Tables to leave out, applied after `include`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<TableRule>,
    /// The server id of pipectl's replica connection (1 to 4294967295): it must differ from
    /// the server's own `server_id` and from every other replica's, or the server drops one of
    /// the two connections.
    #[schemars(range(min = 1, max = 4_294_967_295u32))]
    pub server_id: u32,
    /// When tables are copied before changes stream: `initial` on the first run, `never`
    /// (changes only, from the binlog position at the first run), or `when_needed` (also when
    /// the stored binlog position is no longer on the server).
    #[serde(default)]
    pub snapshot: CdcSnapshot,
    /// Give full-load rows the `Op` column too (`I`), as DMS's `includeOpForFullLoad`; without
    /// it the initial copy's rows carry no operation.
    #[serde(default)]
    pub include_op_for_full_load: bool,
    /// Name of the commit timestamp column (DMS's `TimestampColumnName`).
    #[serde(default = "default_commit_timestamp_column")]
    pub timestamp_column_name: String,
    /// Rows per Arrow record batch of the initial copy.
    #[serde(default = "default_batch_rows")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub batch_rows: usize,
    /// What a column of a type pipectl cannot map does: fail the run naming it, or land it as text.
    #[serde(default)]
    pub unmapped_types: UnmappedTypes,
    /// How `TIME` columns land (see the `mysql` source).
    #[serde(default)]
    pub mysql_time: MysqlTime,
}

fn default_commit_timestamp_column() -> String {
    "_pipectl_commit_ts".to_owned()
}

/// When a CDC source copies its tables before streaming changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CdcSnapshot {
    /// Copy every table once, when the slot is created; later runs stream changes only.
    #[default]
    Initial,
    /// Never copy: stream changes from the slot only.
    Never,
    /// Copy whenever the slot has to be created, also after it was dropped or lost.
    WhenNeeded,
}

/// One transformation rule: which tables it applies to and what it does to them. Within a rule,
/// columns are removed, then renamed, then the table is renamed, prefixed and lowercased.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransformationRule {
    /// Tables the rule applies to, by their database names: `schema.table` or `table`, `%` and `_`
    /// wildcards. Default: all.
    #[serde(default = "default_wildcard")]
    pub tables: String,
    /// Columns not to read, by their database names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_columns: Vec<String>,
    /// Columns landed under other names: database name -> new name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rename_columns: BTreeMap<String, String>,
    /// Land the table under this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rename_table: Option<String>,
    /// Put this before the table name, e.g. `dms_`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_prefix: Option<String>,
    /// Lowercase the table name and every column name.
    #[serde(default)]
    pub lowercase: bool,
}

fn default_parallel_tables() -> usize {
    2
}

/// What a column of an unmappable type does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnmappedTypes {
    /// Fail before reading, naming the table, column and type.
    #[default]
    Fail,
    /// Read the column as the database's text form.
    Text,
}

/// What an infinite date or timestamp lands as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InfinityPolicy {
    /// Fail the run, naming the table, row and column.
    #[default]
    Fail,
    /// NULL (`set_null` rather than `null`, which YAML reads as no value).
    SetNull,
    /// `infinity` as `9999-12-31 23:59:59.999999` (dates: `9999-12-31`), `-infinity` as
    /// `0001-01-01 00:00:00` (dates: `0001-01-01`), the range every reader takes.
    Clamp,
}

/// How MySQL `TIME` columns land.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MysqlTime {
    /// A time of day (Arrow `time64`, microseconds).
    #[default]
    TimeOfDay,
    /// Text as MySQL prints it, negative and past 24 hours included.
    Text,
}

/// Settings for the tables one `tables:` entry matches.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TableSettings {
    /// Incremental load: read only rows whose key columns are past the stored bookmark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bookmark: Option<BookmarkSpec>,
    /// Full load of a large table over several connections at once, each reading one range of
    /// an integer column (PostgreSQL and MySQL; not with `bookmark`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<SplitSpec>,
}

/// How a table is split into ranges read in parallel.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitSpec {
    /// Integer column (usually the primary key) whose `[min, max]` is cut into equal ranges;
    /// rows where it is NULL are read with the first range.
    pub column: String,
    /// Number of ranges, each read over its own connection.
    #[schemars(range(min = 2, max = 64))]
    pub parts: usize,
}

/// A job bookmark: the columns whose values only grow, compared as a tuple.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BookmarkSpec {
    /// Key columns in comparison order, e.g. `[updated_at, id]`: rows with `(updated_at, id)` greater
    /// than the stored values are read.
    pub keys: Vec<String>,
    /// Settle window in seconds for a timestamp first key: only rows with that key at or before
    /// `now() - settle_secs` are read, so rows committed late with an older timestamp are not missed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle_secs: Option<u64>,
    /// What rows with a NULL key column do.
    #[serde(default)]
    pub null_keys: NullKeyPolicy,
}

/// Policy for rows whose bookmark key is NULL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NullKeyPolicy {
    /// Leave them out: a NULL key never compares greater than a bookmark.
    #[default]
    Skip,
    /// Fail the run naming the table, so the data can be fixed.
    Fail,
}

/// A selection rule on schema and table names.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TableRule {
    /// Schema name pattern. SQLite's schema is `main`. Default `%`.
    #[serde(default = "default_wildcard")]
    pub schema: String,
    /// Table name pattern. Default `%`.
    #[serde(default = "default_wildcard")]
    pub table: String,
    /// Which kind of object the rule selects: `table`, `view` or `all`. Default: `table` in
    /// `include` rules (views are loaded only when asked for, as in DMS), `all` in `exclude` rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_type: Option<TableType>,
}

/// The kind of database object a selection rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TableType {
    /// Tables (also partitioned and foreign tables).
    Table,
    /// Views (also materialized views).
    View,
    /// Tables and views.
    All,
}

impl TableType {
    /// Whether the rule selects an object that is a view (`true`) or a table (`false`).
    pub fn selects(self, view: bool) -> bool {
        match self {
            TableType::Table => !view,
            TableType::View => view,
            TableType::All => true,
        }
    }
}

fn default_wildcard() -> String {
    "%".to_owned()
}

/// An explicit query whose result lands as one table.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuerySpec {
    /// Table name the result lands under (`{table}` in sink keys).
    pub table: String,
    /// Schema name for `{schema}` in sink keys. Default: the connection's default schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// The SELECT statement.
    pub sql: String,
}

fn default_batch_rows() -> usize {
    8192
}

/// A generator source: the Kinesis Data Generator as a step.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GeneratorSource {
    /// Record template, usually a JSON object with helpers such as `{{date.now}}`,
    /// `{{random.number({"min":1,"max":1000})}}`, `{{random.arrayElement(["a","b"])}}`, `{{address.state}}`.
    pub template: String,
    /// Number of records to produce. Give this or `duration_secs` (or both: whichever ends first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// How long to produce records, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<f64>,
    /// Records per second. Default: as fast as the pipeline takes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_sec: Option<f64>,
    /// Seed for reproducible random values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Table name the records land under (`{table}` in sink keys). Default: the step name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Column types, in order. Default: inferred from the first rendered records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnDecl>,
    /// Records per Arrow record batch.
    #[serde(default = "default_batch_rows")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub batch_rows: usize,
}

/// A declared column.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnDecl {
    /// Column name.
    pub name: String,
    /// Type name: `int64`, `float64`, `decimal(10,2)`, `string`, `bool`, `date`, `timestamptz`, `binary`, `json`, ...
    #[serde(rename = "type")]
    pub data_type: String,
}

/// A transform step. `type` picks the kind; `inputs` names upstream sources or transforms.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Transform {
    /// Keep only the listed columns, in the listed order.
    Select(ColumnsTransform),
    /// Remove the listed columns.
    Drop(ColumnsTransform),
    /// Rename columns.
    Rename(RenameTransform),
    /// Convert columns to other types.
    Cast(CastTransform),
    /// Keep the rows for which a condition is true.
    Filter(FilterTransform),
    /// Add columns: a literal, the load timestamp or the run id.
    AddColumns(AddColumnsTransform),
}

/// `select` / `drop`: a list of columns.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnsTransform {
    /// Upstream steps (sources or transforms).
    pub inputs: Vec<String>,
    /// Column names.
    pub columns: Vec<String>,
    /// Tables this applies to (`%` wildcards, `schema.table` or `table`). Default: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
}

/// `rename`: old name -> new name.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameTransform {
    /// Upstream steps (sources or transforms).
    pub inputs: Vec<String>,
    /// Map of old column name to new column name.
    pub columns: BTreeMap<String, String>,
    /// Tables this applies to (`%` wildcards, `schema.table` or `table`). Default: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
}

/// `cast`: column -> type name.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CastTransform {
    /// Upstream steps (sources or transforms).
    pub inputs: Vec<String>,
    /// Map of column name to type name (`int64`, `decimal(10,2)`, `timestamptz`, ...).
    pub columns: BTreeMap<String, String>,
    /// What a value that does not convert does.
    #[serde(default)]
    pub on_error: CastErrorPolicy,
    /// Tables this applies to (`%` wildcards, `schema.table` or `table`). Default: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
}

/// What a failed conversion does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CastErrorPolicy {
    /// Fail the run, naming the table, column, row and value. Nothing is published.
    #[default]
    Fail,
    /// Store NULL and count the value in the run summary.
    Null,
}

/// `filter`: a SQL-like condition.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterTransform {
    /// Upstream steps (sources or transforms).
    pub inputs: Vec<String>,
    /// Rows for which this is true are kept (NULL counts as false), e.g. `amount > 10 and state in ('CA', 'NY')`.
    pub condition: String,
    /// Tables this applies to (`%` wildcards, `schema.table` or `table`). Default: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
}

/// `add_columns`: new columns appended to every batch.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddColumnsTransform {
    /// Upstream steps (sources or transforms).
    pub inputs: Vec<String>,
    /// The columns to add, in order.
    pub columns: Vec<AddColumn>,
    /// Tables this applies to (`%` wildcards, `schema.table` or `table`). Default: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
}

/// One added column: exactly one of `literal` or `generated`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddColumn {
    /// Column name.
    pub name: String,
    /// A constant value: string, number, boolean or null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub literal: Option<serde_json::Value>,
    /// A value pipectl fills in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<GeneratedValue>,
    /// Type of a literal column (`string`, `int64`, `decimal(8,2)`, ...). Default: from the literal.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
}

/// Values pipectl generates for `add_columns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GeneratedValue {
    /// The run's start time (UTC, microseconds): one value for the whole run.
    LoadTimestamp,
    /// The run id, as shown by `pipectl runs`.
    RunId,
}

/// A sink step. `type` picks the kind.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Sink {
    /// Files in an object store (local directory, memory, S3), staged and published atomically at the end of the run.
    ObjectStore(ObjectStoreSink),
    /// Streaming delivery: records buffered per destination, flushed into objects by size or time.
    Firehose(FirehoseSink),
}

/// An object-store sink.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectStoreSink {
    /// Upstream steps (sources or transforms).
    pub inputs: Vec<String>,
    /// Name of an entry in `connections` (a `file://`, `memory://` or `s3://` URL).
    pub connection: String,
    /// Key prefix per table, relative to the connection URL. Placeholders: `{pipeline}`, `{source}`,
    /// `{schema}`, `{table}`, `{run_id}`, `{date}` (run start, `yyyy-MM-dd`). Ends with `/`.
    pub key: String,
    /// File format.
    pub format: Format,
    /// Start a new file after this many rows. Default: one file per table per run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_file_rows: Option<u64>,
    /// What a run does to the data earlier runs left under a table's key: keep it (`append`,
    /// the default), replace it (`full_refresh`), or upsert by key (`merge`, Delta tables only).
    #[serde(default)]
    pub mode: WriteMode,
    /// Delta tables: partition columns of a table the sink creates (folders `col=value/`).
    /// The columns must be in the data; an existing table keeps its own partitioning.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_by: Vec<String>,
    /// Delta tables with `mode: merge`: how rows are matched, ordered and deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<MergeSettings>,
    /// Delta tables: what a run does when its columns differ from the table's. Default `evolve`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaPolicy>,
}

/// How a `merge` sink upserts into a Delta table.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeSettings {
    /// Columns that identify a row. The data must have them and they must never be NULL.
    #[schemars(length(min = 1))]
    pub keys: Vec<String>,
    /// Columns ordering the changes of one key, compared in order (NULL lowest): the row with
    /// the highest wins within a run's data and against the table; a tie goes to the later
    /// row. Empty: the last row of a key wins and always replaces the table's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sequence_by: Vec<String>,
    /// A condition over the incoming row that makes it a delete, e.g. `op = 'D'`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_when: Option<String>,
    /// What a delete does: remove the row (`hard`, the default) or keep it with
    /// `_deleted_at` set (`soft`), so that a stale change arriving later still loses to it.
    #[serde(default)]
    pub deletes: DeleteMode,
}

/// What a merge's delete does to the table's row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeleteMode {
    /// The row is removed.
    #[default]
    Hard,
    /// The row stays, with `_deleted_at` set.
    Soft,
}

/// What a Delta sink does when the data's columns differ from the table's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SchemaPolicy {
    /// New columns are added to the table (NULL in older rows), safe widenings (int32 to
    /// int64, float32 to float64, a decimal to a wider one) are applied, columns the data
    /// lacks stay (NULL in the new rows).
    #[default]
    Evolve,
    /// Any difference fails the run, naming the column, the table's type and the data's;
    /// nothing is committed.
    Strict,
}

/// How a sink's run treats the data already under each table's key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// Add this run's files next to earlier runs' files.
    #[default]
    Append,
    /// Replace each table's data: when the run publishes, every object under the table's key
    /// that this run did not write is deleted, after the new files are in place. The key must
    /// not contain `{run_id}` or `{date}`, which would give every run a new folder.
    FullRefresh,
    /// Upsert by key into a Delta table (`format: {type: delta}` and `merge:` settings).
    Merge,
}

/// Output file format. `type` picks the kind.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Format {
    /// Comma (or other) separated values.
    Csv(CsvFormat),
    /// One JSON object per line.
    Jsonl(JsonlFormat),
    /// Apache Parquet, with the Arrow schema embedded.
    Parquet(ParquetFormat),
    /// A Delta Lake table per `{table}` key (Parquet data files and a transaction log):
    /// every run is one atomic commit, readable by Spark, DuckDB, Python `deltalake` and
    /// `pipectl query`.
    Delta(DeltaFormat),
}

/// Delta Lake options. Partitioning and the schema policy may also be given on the sink.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeltaFormat {
    /// Partition columns of a table the sink creates (same as the sink's `partition_by`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_by: Vec<String>,
    /// What a run does when its columns differ from the table's (same as the sink's `schema`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaPolicy>,
    /// Size data files are cut at, in bytes. Default 128 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub target_file_size: Option<u64>,
    /// Page compression codec of the data files.
    #[serde(default)]
    pub compression: ParquetCompression,
}

/// CSV options.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CsvFormat {
    /// Write a header row with the column names (DMS `AddColumnName`).
    #[serde(default = "default_true")]
    pub header: bool,
    /// Field delimiter: a single ASCII character.
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
    /// What NULL is written as (DMS `CsvNullValue`), e.g. `NULL` or `\N`. Default: an empty
    /// field. Either way an empty string is written as `""`, and a text value equal to this is
    /// quoted, so NULL and text stay apart.
    #[serde(default)]
    pub null_value: String,
    /// Compress the file.
    #[serde(default)]
    pub compression: TextCompression,
}

fn default_true() -> bool {
    true
}

fn default_delimiter() -> String {
    ",".to_owned()
}

/// JSON lines options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonlFormat {
    /// Compress the file.
    #[serde(default)]
    pub compression: TextCompression,
}

/// Compression for text formats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TextCompression {
    /// Plain text.
    #[default]
    None,
    /// gzip; the file name ends in `.gz`.
    Gzip,
}

/// Parquet options.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParquetFormat {
    /// Page compression codec.
    #[serde(default)]
    pub compression: ParquetCompression,
    /// Rows per row group.
    #[serde(default = "default_row_group_rows")]
    #[schemars(range(min = 1))]
    pub row_group_rows: usize,
}

fn default_row_group_rows() -> usize {
    122_880
}

/// Parquet compression codecs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParquetCompression {
    /// No compression.
    None,
    /// Snappy: fast, the DMS and Spark default.
    #[default]
    Snappy,
    /// Zstandard (level 3): smaller files.
    Zstd,
    /// gzip: widest compatibility, slowest.
    Gzip,
}

/// A crawler step: catalogues what sinks published. `type` picks the kind.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Crawler {
    /// Record the tables a sink wrote in the catalog, using the sink's key template.
    Catalog(CatalogCrawler),
}

/// A catalog crawler: after the run publishes, lists what its input sinks wrote (all runs'
/// files, not only this run's) and records tables, partitions and schemas in the catalog.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogCrawler {
    /// Sinks whose output is catalogued. Their key templates say where each table starts and
    /// which folders are partitions (`dt={date}/` is a Hive-style partition `dt`).
    pub inputs: Vec<String>,
    /// Catalog database the tables go into.
    pub database: String,
    /// Put this before every table name, e.g. `raw_`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_prefix: Option<String>,
    /// What a changed schema does to a catalogued table.
    #[serde(default)]
    pub schema_change: SchemaChangePolicy,
    /// Which folders are read for schemas on each crawl.
    #[serde(default)]
    pub recrawl: RecrawlPolicy,
    /// Only catalogue objects whose key (relative to the sink's fixed prefix) matches one of
    /// these globs (`*` within a folder, `**` across folders). Default: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Leave out objects whose key matches one of these globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// What a crawler does when a table's schema changed, and when a table it catalogued is gone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SchemaChangePolicy {
    /// Update the table: new columns are added, types widen (int -> bigint -> double,
    /// date -> timestamp), vanished columns stay. Tables whose data is gone are marked
    /// deprecated (Glue's defaults, UPDATE_IN_DATABASE and DEPRECATE_IN_DATABASE).
    #[default]
    Update,
    /// Leave existing tables' columns as they are and only record what changed; partitions and
    /// new tables are still added, except folders whose column types the table cannot hold.
    /// Tables whose data is gone are kept. `recrawl: new_folders` always crawls this way.
    Log,
    /// The same as `update` (which marks tables whose data is gone as deprecated too).
    Deprecate,
}

/// Which folders a crawl reads schemas from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecrawlPolicy {
    /// Every folder, every time.
    #[default]
    All,
    /// Only folders (partitions) not catalogued yet; known ones keep their schema. Schema
    /// changes are then only logged (`schema_change: log`), as Glue's incremental crawls force.
    NewFolders,
}

impl Source {
    /// The spec's `type` name of this source.
    pub fn type_name(&self) -> &'static str {
        match self {
            Source::Sqlite(_) => "sqlite",
            Source::Postgres(_) => "postgres",
            Source::Mysql(_) => "mysql",
            Source::PostgresCdc(_) => "postgres_cdc",
            Source::MysqlCdc(_) => "mysql_cdc",
            Source::Generator(_) => "generator",
            Source::Nats(_) => "nats",
            Source::Mqtt(_) => "mqtt",
            Source::Http(_) => "http",
            Source::Files(_) => "files",
        }
    }
}

impl Transform {
    /// The spec's `type` name of this transform.
    pub fn type_name(&self) -> &'static str {
        match self {
            Transform::Select(_) => "select",
            Transform::Drop(_) => "drop",
            Transform::Rename(_) => "rename",
            Transform::Cast(_) => "cast",
            Transform::Filter(_) => "filter",
            Transform::AddColumns(_) => "add_columns",
        }
    }

    /// Upstream step names.
    pub fn inputs(&self) -> &[String] {
        match self {
            Transform::Select(t) | Transform::Drop(t) => &t.inputs,
            Transform::Rename(t) => &t.inputs,
            Transform::Cast(t) => &t.inputs,
            Transform::Filter(t) => &t.inputs,
            Transform::AddColumns(t) => &t.inputs,
        }
    }

    /// Table patterns the transform is limited to (empty: all tables).
    pub fn tables(&self) -> &[String] {
        match self {
            Transform::Select(t) | Transform::Drop(t) => &t.tables,
            Transform::Rename(t) => &t.tables,
            Transform::Cast(t) => &t.tables,
            Transform::Filter(t) => &t.tables,
            Transform::AddColumns(t) => &t.tables,
        }
    }
}

impl Sink {
    /// The spec's `type` name of this sink.
    pub fn type_name(&self) -> &'static str {
        match self {
            Sink::ObjectStore(_) => "object_store",
            Sink::Firehose(_) => "firehose",
        }
    }

    /// Upstream step names.
    pub fn inputs(&self) -> &[String] {
        match self {
            Sink::ObjectStore(s) => &s.inputs,
            Sink::Firehose(s) => &s.inputs,
        }
    }
}

impl Crawler {
    /// The spec's `type` name of this crawler.
    pub fn type_name(&self) -> &'static str {
        match self {
            Crawler::Catalog(_) => "catalog",
        }
    }

    /// Upstream step names (sinks).
    pub fn inputs(&self) -> &[String] {
        match self {
            Crawler::Catalog(c) => &c.inputs,
        }
    }
}
