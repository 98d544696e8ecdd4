//! Where each record goes: checked as JSON, its partition keys and event time read, or turned
//! into an error envelope (Firehose's format) for the error prefix.

use base64::Engine as _;
use chrono::{DateTime, TimeZone as _, Utc};
use serde::Serialize;

use pipectl_spec::types::{EventTime, EventTimeFormat, FirehoseSink};

use crate::record::Record;

/// Why a record went to the error prefix: the value of `!{firehose:error-output-type}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorOutputType {
    /// The record is not a JSON object.
    ProcessingFailed,
    /// A partition key or the event time is missing or unusable.
    PartitioningFailed,
    /// The record does not fit the Parquet schema.
    FormatConversionFailed,
}

impl ErrorOutputType {
    /// The name used in prefixes.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorOutputType::ProcessingFailed => "processing-failed",
            ErrorOutputType::PartitioningFailed => "partitioning-failed",
            ErrorOutputType::FormatConversionFailed => "format-conversion-failed",
        }
    }
}

/// The destination of one record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dest {
    /// Delivered data: partition key values (in `partition_keys` order) and the event-time bucket.
    Data {
        /// Values of the partition keys, by declared order.
        keys: Vec<String>,
        /// The event time of the partition's first record (all render the same bucket).
        bucket: Option<String>,
    },
    /// A failed record's envelope.
    Error(ErrorOutputType),
}

/// A routed record.
pub struct Routed {
    /// The destination.
    pub dest: Dest,
    /// The record's event time, if the sink partitions by it.
    pub event_time: Option<DateTime<Utc>>,
    /// The error envelope written in place of the record, for records that failed.
    pub envelope: Option<Vec<u8>>,
}

/// Reads records for one sink.
pub struct Router {
    keys: Vec<(String, Vec<String>)>,
    event_time: Option<(Vec<String>, EventTimeFormat)>,
    bucket_format: Option<String>,
    tz: chrono_tz::Tz,
    /// How many characters one record's partition values may have together.
    value_budget: Option<usize>,
    /// Partition values name Delta table roots: see [`Router::for_table_roots`].
    table_roots: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    attempts_made: u32,
    arrival_timestamp: i64,
    error_code: &'a str,
    error_message: &'a str,
    raw_data: String,
}

fn field_path(path: &str) -> Vec<String> {
    path.strip_prefix('.')
        .unwrap_or(path)
        .split('.')
        .map(str::to_owned)
        .collect()
}

impl Router {
    /// A router for the sink's partition keys and event time; `bucket_format` is the chrono
    /// format of `!{eventTimestamp:...}`, applied in the sink's time zone `tz` (the one the
    /// prefix is rendered in, so one bucket is one rendered prefix).
    pub fn new(spec: &FirehoseSink, bucket_format: Option<&str>, tz: chrono_tz::Tz) -> Self {
        Router {
            keys: spec
                .partition_keys
                .iter()
                .map(|(k, v)| (k.clone(), field_path(v)))
                .collect(),
            event_time: spec
                .event_time
                .as_ref()
                .map(|EventTime { field, format }| (field_path(field), *format)),
            bucket_format: bucket_format.map(str::to_owned),
            tz,
            value_budget: None,
            table_roots: false,
        }
    }

    /// Partition values name Delta table folders (`format: delta`): a `/` in a value is made
    /// `_` here, as the prefix renders it, so that the records of one table share one
    /// destination (and one buffer, whose ranges then only grow); `.` and `..`, which name no
    /// folder of their own, go to `partitioning-failed`.
    pub fn for_table_roots(mut self, on: bool) -> Self {
        self.table_roots = on;
        self
    }

    /// Sends records whose partition values together pass `budget` characters to
    /// `partitioning-failed`: the prefix would pass Firehose's length limit.
    pub fn with_value_budget(mut self, budget: Option<usize>) -> Self {
        self.value_budget = budget;
        self
    }

    /// Names of the partition keys, in the order of [`Dest::Data`]'s values.
    pub fn key_names(&self) -> Vec<String> {
        self.keys.iter().map(|(k, _)| k.clone()).collect()
    }

    /// Routes a record. Without partitioning the record is only checked to be a JSON object,
    /// without building a value.
    pub fn route(&self, record: &Record) -> Routed {
        if self.keys.is_empty() && self.event_time.is_none() {
            return match check_object(&record.data) {
                Ok(()) => Routed {
                    dest: Dest::Data {
                        keys: Vec::new(),
                        bucket: None,
                    },
                    event_time: None,
                    envelope: None,
                },
                Err(message) => error(
                    record,
                    ErrorOutputType::ProcessingFailed,
                    "InvalidJson",
                    &message,
                ),
            };
        }
        let value: serde_json::Value = match serde_json::from_slice(&record.data) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            Ok(_) => {
                return error(
                    record,
                    ErrorOutputType::ProcessingFailed,
                    "InvalidJson",
                    "the record is not a JSON object",
                );
            }
            Err(e) => {
                return error(
                    record,
                    ErrorOutputType::ProcessingFailed,
                    "InvalidJson",
                    &format!("the record is not JSON: {e}"),
                );
            }
        };
        let mut keys = Vec::with_capacity(self.keys.len());
        for (name, path) in &self.keys {
            match lookup(&value, path).and_then(scalar_text) {
                Some(v) if self.table_roots && (v == "." || v == "..") => {
                    return error(
                        record,
                        ErrorOutputType::PartitioningFailed,
                        "DynamicPartitioning.InvalidTableRoot",
                        &format!(
                            "partition key `{name}` (.{}) is `{v}`, which cannot name a Delta table folder",
                            path.join(".")
                        ),
                    );
                }
                Some(v) if self.table_roots && v.contains('/') => keys.push(v.replace('/', "_")),
                Some(v) if !v.is_empty() => keys.push(v),
                _ => {
                    return error(
                        record,
                        ErrorOutputType::PartitioningFailed,
                        "DynamicPartitioning.MetadataExtractionFailed",
                        &format!(
                            "partition key `{name}` (.{}) is missing, empty or not a scalar",
                            path.join(".")
                        ),
                    );
                }
            }
        }
        if let Some(budget) = self.value_budget {
            let used: usize = keys.iter().map(|k| k.chars().count()).sum();
            if used > budget {
                return error(
                    record,
                    ErrorOutputType::PartitioningFailed,
                    "DynamicPartitioning.PrefixTooLong",
                    &format!(
                        "the partition values have {used} characters; the prefix leaves room for {budget} within Firehose's {} characters",
                        pipectl_spec::lang::prefix::MAX_EVALUATED_CHARS
                    ),
                );
            }
        }
        let mut event_time = None;
        let mut bucket = None;
        if let Some((path, format)) = &self.event_time {
            match lookup(&value, path).and_then(|v| parse_time(v, *format)) {
                Some(t) => {
                    bucket = self
                        .bucket_format
                        .as_ref()
                        .map(|f| t.with_timezone(&self.tz).format(f).to_string());
                    event_time = Some(t);
                }
                None => {
                    return error(
                        record,
                        ErrorOutputType::PartitioningFailed,
                        "EventTime.Invalid",
                        &format!(
                            "event time .{} is missing or not a {format:?} time",
                            path.join(".")
                        ),
                    );
                }
            }
        }
        Routed {
            dest: Dest::Data { keys, bucket },
            event_time,
            envelope: None,
        }
    }
}

/// The error envelope of a record, as Firehose writes it under the error prefix.
pub fn envelope(record: &Record, code: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&Envelope {
        attempts_made: 1,
        arrival_timestamp: record.arrival.timestamp_millis(),
        error_code: code,
        error_message: message,
        raw_data: base64::engine::general_purpose::STANDARD.encode(&record.data),
    })
    .unwrap_or_default()
}

fn error(record: &Record, kind: ErrorOutputType, code: &str, message: &str) -> Routed {
    Routed {
        dest: Dest::Error(kind),
        event_time: None,
        envelope: Some(envelope(record, code, message)),
    }
}

/// Checks that bytes are one JSON object, without building it. JSON is UTF-8: serde_json
/// checks that only for strings it builds, so the bytes are checked first.
fn check_object(data: &[u8]) -> Result<(), String> {
    if let Err(e) = std::str::from_utf8(data) {
        return Err(format!(
            "the record is not JSON: invalid UTF-8 at byte {}",
            e.valid_up_to()
        ));
    }
    let first = data.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err("the record is not a JSON object".to_owned());
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(data)
        .map(|_| ())
        .map_err(|e| format!("the record is not JSON: {e}"))
}

fn lookup<'a>(value: &'a serde_json::Value, path: &[String]) -> Option<&'a serde_json::Value> {
    path.iter().try_fold(value, |v, part| v.get(part))
}

fn scalar_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse_time(v: &serde_json::Value, format: EventTimeFormat) -> Option<DateTime<Utc>> {
    match format {
        EventTimeFormat::Rfc3339 => {
            let s = v.as_str()?;
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .ok()
                .or_else(|| {
                    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
                        .ok()
                        .map(|n| n.and_utc())
                })
        }
        EventTimeFormat::EpochSecs => Utc.timestamp_opt(v.as_f64()?.floor() as i64, 0).single(),
        EventTimeFormat::EpochMillis => Utc.timestamp_millis_opt(v.as_f64()? as i64).single(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(partition_keys: serde_json::Value) -> Router {
        let spec: FirehoseSink = serde_json::from_value(serde_json::json!({
            "inputs": ["a"], "connection": "lake", "format": {"type": "jsonl"},
            "partition_keys": partition_keys,
        }))
        .unwrap();
        Router::new(&spec, None, chrono_tz::UTC)
    }

    fn record(data: &[u8]) -> Record {
        Record {
            seq: 1,
            arrival: Utc::now(),
            data: bytes::Bytes::copy_from_slice(data),
        }
    }

    #[test]
    fn invalid_utf8_is_not_json_with_or_without_partition_keys() {
        let bad = b"{\"kind\":\"caf\xe9\"}";
        for router in [
            router(serde_json::json!({})),
            router(serde_json::json!({"kind": ".kind"})),
        ] {
            let routed = router.route(&record(bad));
            assert_eq!(routed.dest, Dest::Error(ErrorOutputType::ProcessingFailed));
            let envelope: serde_json::Value =
                serde_json::from_slice(&routed.envelope.unwrap()).unwrap();
            assert!(
                envelope["errorMessage"].as_str().unwrap().contains("UTF-8")
                    || envelope["errorMessage"]
                        .as_str()
                        .unwrap()
                        .contains("unicode"),
                "{envelope}"
            );
        }
        let good = router(serde_json::json!({})).route(&record("{\"kind\":\"café\"}".as_bytes()));
        assert!(matches!(good.dest, Dest::Data { .. }));
    }

    #[test]
    fn partition_values_longer_than_the_prefix_allows_fail_partitioning() {
        let router = router(serde_json::json!({"kind": ".kind"})).with_value_budget(Some(5));
        let short = router.route(&record(br#"{"kind":"abcde"}"#));
        assert!(matches!(short.dest, Dest::Data { .. }));
        let long = router.route(&record(br#"{"kind":"abcdef"}"#));
        assert_eq!(long.dest, Dest::Error(ErrorOutputType::PartitioningFailed));
    }

    #[test]
    fn table_root_values_share_a_destination_when_they_render_alike_and_dots_fail() {
        let router = router(serde_json::json!({"t": ".t"})).for_table_roots(true);
        let slash = router.route(&record(br#"{"t":"a/b"}"#));
        let underscore = router.route(&record(br#"{"t":"a_b"}"#));
        assert_eq!(slash.dest, underscore.dest);
        for dots in [&br#"{"t":"."}"#[..], br#"{"t":".."}"#] {
            assert_eq!(
                router.route(&record(dots)).dest,
                Dest::Error(ErrorOutputType::PartitioningFailed)
            );
        }
    }
}
