//! Streaming steps: NATS JetStream, MQTT and HTTP "Direct PUT" sources, and the buffered
//! `firehose` sink that delivers them into the lake as Kinesis Data Firehose does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ColumnDecl, Format};

/// A NATS JetStream source: a durable pull consumer, acknowledged only after delivery.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatsSource {
    /// Name of an entry in `connections` with a `nats://` URL (`nats://user:${env:PW}@host:4222`).
    pub connection: String,
    /// The JetStream stream to read.
    pub stream: String,
    /// Only messages on this subject (wildcards allowed). Default: every subject of the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Durable consumer name; its position survives restarts. Default `pipectl-<pipeline>-<step>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durable: Option<String>,
    /// Create the stream, capturing `subject`, when it does not exist.
    #[serde(default)]
    pub create_stream: bool,
    /// Messages asked for per pull request.
    #[serde(default = "default_pull_batch")]
    #[schemars(range(min = 1, max = 100_000))]
    pub pull_batch: usize,
}

fn default_pull_batch() -> usize {
    2000
}

impl NatsSource {
    /// The durable consumer's name: `durable`, or `pipectl-<pipeline>-<step>`.
    pub fn durable_name(&self, pipeline: &str, step: &str) -> String {
        self.durable
            .clone()
            .unwrap_or_else(|| format!("pipectl-{pipeline}-{step}"))
    }
}

/// An MQTT source: QoS 1 subscription in a persistent session, acknowledged after delivery.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MqttSource {
    /// Name of an entry in `connections` with an `mqtt://` URL.
    pub connection: String,
    /// Topic filter, e.g. `sensors/+/events` or `rentals/#`.
    pub topic: String,
    /// Client id of the persistent session. Default `pipectl-<pipeline>-<step>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Messages the broker sends before it waits for acknowledgements (Mosquitto's
    /// `max_inflight_messages`, 20 by default). When this many wait in buffers, the sink
    /// flushes early, since no more can arrive until they are acknowledged.
    #[serde(default = "default_broker_inflight")]
    #[schemars(range(min = 1, max = 65535))]
    pub broker_inflight: u32,
}

fn default_broker_inflight() -> u32 {
    20
}

/// An HTTP "Direct PUT" endpoint pipectl serves: `PutRecord` and `PutRecordBatch`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSource {
    /// Address to listen on, e.g. `127.0.0.1:8443`.
    pub listen: String,
    /// Bearer token clients must send; use `${env:NAME}`. Default: no authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Largest request body accepted; larger ones get 413. Default 4 MiB (PutRecordBatch's limit).
    #[serde(default = "default_max_body_bytes")]
    #[schemars(range(min = 1))]
    pub max_body_bytes: usize,
    /// Most bytes the write-ahead log keeps on disk: records answered 200 whose objects are not
    /// published yet. Beyond it requests get 429 with `Retry-After`; past half of it the sink
    /// flushes its buffers early. Default 256 MiB.
    #[serde(default = "default_log_max_bytes")]
    #[schemars(range(min = 65536))]
    pub max_buffered_bytes: u64,
}

fn default_max_body_bytes() -> usize {
    4 * 1024 * 1024
}

fn default_log_max_bytes() -> u64 {
    256 * 1024 * 1024
}

impl HttpSource {
    /// The folder of this source's write-ahead log: `<state dir>/wal/<pipeline>/<step>/`. It is
    /// part of the pipeline's state: records answered 200 wait there until they are published.
    pub fn log_dir(state_dir: &Path, pipeline: &str, step: &str) -> PathBuf {
        state_dir.join("wal").join(pipeline).join(step)
    }
}

/// A firehose sink: records buffered per destination and flushed into objects by size or time.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FirehoseSink {
    /// The streaming source whose records this sink delivers.
    pub inputs: Vec<String>,
    /// Name of an entry in `connections` (a `file://`, `memory://` or `s3://` URL).
    pub connection: String,
    /// Object key prefix in Firehose's language, e.g. `streaming/!{timestamp:yyyy/MM/dd}/`.
    /// Without a timestamp expression (and without dynamic partitioning) `yyyy/MM/dd/HH/` is appended.
    #[serde(default)]
    pub prefix: String,
    /// Prefix of records that failed, e.g. `errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM}/`, used as
    /// written (no time is appended). Required when `prefix` has expressions; without it failed records go to
    /// `<prefix>/<error-output-type>/yyyy/MM/dd/HH/`, as with Firehose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_output_prefix: Option<String>,
    /// Flush a buffer when it holds this many bytes. Default 5 MiB.
    #[serde(default = "default_max_bytes")]
    #[schemars(range(min = 1))]
    pub max_bytes: u64,
    /// Flush a buffer this many seconds after its first record arrived. Default 300.
    #[serde(default = "default_interval_secs")]
    pub interval_secs: f64,
    /// Flush a buffer when it holds this many records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_records: Option<u64>,
    /// Most bytes held in all buffers together; beyond it the source waits. Default 4 × `max_bytes`, at least 64 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_buffered_bytes: Option<u64>,
    /// Object format: `jsonl` (optionally gzip) or `parquet`.
    pub format: Format,
    /// Parquet columns, in order. Default: `catalog_table`'s, else inferred from the first buffer (text that is
    /// an RFC 3339 time in every record becomes a timestamp). Records that do not fit go to the error output;
    /// fields not in the schema are left out, counted and reported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnDecl>,
    /// Take the Parquet schema from this catalog table (as Firehose takes a Glue table), e.g. one a crawler
    /// catalogued. Instead of `columns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_table: Option<CatalogTableRef>,
    /// Dynamic partitioning: key name -> record field (`.customer.id`), used as `!{partitionKeyFromQuery:NAME}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub partition_keys: BTreeMap<String, String>,
    /// The record field holding the event time, used by `!{eventTimestamp:...}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<EventTime>,
    /// IANA time zone timestamps in prefixes are rendered in. Default `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

fn default_max_bytes() -> u64 {
    5 * 1024 * 1024
}

fn default_interval_secs() -> f64 {
    300.0
}

/// A table of the catalog, by database and name.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogTableRef {
    /// The catalog database, e.g. `sakila`.
    pub database: String,
    /// The table's name in it, e.g. `rentals`.
    pub table: String,
}

/// Where a record's event time is and how it is written.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventTime {
    /// The record field, e.g. `.timestamp`.
    pub field: String,
    /// How the field is written.
    #[serde(default)]
    pub format: EventTimeFormat,
}

/// Encodings of an event-time field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventTimeFormat {
    /// RFC 3339 text (`2026-11-26T01:02:03Z`), or `yyyy-MM-dd HH:mm:ss` read as UTC.
    #[default]
    Rfc3339,
    /// Seconds since 1970 (a number).
    EpochSecs,
    /// Milliseconds since 1970 (a number).
    EpochMillis,
}
