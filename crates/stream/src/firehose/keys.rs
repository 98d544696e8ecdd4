//! Object keys of a firehose sink: the evaluated prefix (data or error) followed by
//! `<pipeline>-<sink>-[<tag>-]<first sequence>-<last sequence>.<extension>`.
//!
//! A key depends only on what the object holds, so an object rebuilt after a crash gets the
//! key it was recorded under; `!{firehose:random-string}` draws from a seed made of pipeline,
//! sink, tag, destination and sequence range (a different string at each occurrence).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use pipectl_engine::{Error, Result};
use pipectl_spec::lang::prefix::{Prefix, PrefixKind, RenderValues};
use pipectl_spec::types::{FirehoseSink, Format, Pipeline, Sink, TextCompression};

use super::route::{Dest, ErrorOutputType, Router};
use super::{hash, partition_id};
use crate::record::Record;

/// What an object's key depends on.
pub struct ObjectInfo<'a> {
    /// Where its records go.
    pub dest: &'a Dest,
    /// Its first sequence number.
    pub first: u64,
    /// Its last sequence number.
    pub last: u64,
    /// Its oldest record's arrival: the time of `!{timestamp:...}`.
    pub oldest: DateTime<Utc>,
    /// Its event time, for `!{eventTimestamp:...}`.
    pub event_time: Option<DateTime<Utc>>,
    /// The run id, for sources whose sequence numbers restart with the process.
    pub tag: Option<&'a str>,
}

/// Makes the object keys of one sink.
pub struct ObjectKeys {
    pipeline: String,
    sink: String,
    prefix: Prefix,
    error_prefix: Prefix,
    tz: chrono_tz::Tz,
    key_names: Vec<String>,
    data_extension: &'static str,
}

impl ObjectKeys {
    /// The keys of sink `sink` of `pipeline` (a validated spec: its prefixes parse).
    pub fn new(pipeline: &str, sink: &str, spec: &FirehoseSink) -> Result<Self> {
        let keys: Vec<&str> = spec.partition_keys.keys().map(String::as_str).collect();
        let invalid = |field: &str, errors: Vec<pipectl_spec::lang::prefix::PrefixError>| {
            Error::user(format!(
                "sink `{sink}`: invalid {field}: {}",
                errors
                    .first()
                    .map(|e| e.message.clone())
                    .unwrap_or_default()
            ))
        };
        // A Delta table root is the prefix as written: no arrival-time folders are appended.
        let prefix = match &spec.format {
            Format::Delta(_) => Prefix::parse(&spec.prefix, PrefixKind::Data, &keys),
            _ => Prefix::data(&spec.prefix, &keys),
        }
        .map_err(|e| invalid("prefix", e))?;
        let error_prefix = Prefix::error(spec.error_output_prefix.as_deref(), &spec.prefix, &keys)
            .map_err(|e| invalid("error_output_prefix", e))?;
        let tz = match &spec.time_zone {
            Some(tz) => tz
                .parse()
                .map_err(|_| Error::user(format!("sink `{sink}`: unknown time zone `{tz}`")))?,
            None => chrono_tz::UTC,
        };
        let data_extension = match &spec.format {
            Format::Parquet(_) => "parquet",
            Format::Jsonl(j) if j.compression == TextCompression::Gzip => "jsonl.gz",
            _ => "jsonl",
        };
        Ok(ObjectKeys {
            pipeline: pipeline.to_owned(),
            sink: sink.to_owned(),
            prefix,
            error_prefix,
            tz,
            key_names: spec.partition_keys.keys().cloned().collect(),
            data_extension,
        })
    }

    /// The pipeline's name.
    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    /// The data prefix as Firehose evaluates it.
    pub fn prefix(&self) -> &Prefix {
        &self.prefix
    }

    /// The time zone prefixes are rendered in.
    pub fn tz(&self) -> chrono_tz::Tz {
        self.tz
    }

    /// The value of partition key `name` among `values` (given in the order of the sink's
    /// `partition_keys`), if the sink has such a key.
    fn key_value<'v>(&self, values: &'v [String], name: &str) -> Option<&'v str> {
        self.key_names
            .iter()
            .position(|n| n == name)
            .and_then(|i| values.get(i))
            .map(String::as_str)
    }

    /// The root of the Delta table records of `dest` go to, relative to the sink's connection
    /// and without a trailing `/` (`format: delta`, whose prefix has no time or random
    /// expressions, only partition keys).
    pub fn table_root(&self, dest: &Dest) -> String {
        let values: &[String] = match dest {
            Dest::Data { keys, .. } => keys,
            Dest::Error(_) => &[],
        };
        let lookup = |name: &str| self.key_value(values, name);
        let now = Utc::now().with_timezone(&self.tz);
        let root = self.prefix.render(&RenderValues {
            arrival: &now,
            event_time: None,
            random_seed: 0,
            error_output_type: "",
            partition_key: &lookup,
        });
        root.trim_matches('/').to_owned()
    }

    /// The key of an object, relative to the sink's connection.
    pub fn key(&self, object: &ObjectInfo<'_>) -> String {
        let partition = partition_id(object.dest);
        let tag = object.tag.unwrap_or("");
        let seed = hash(&format!(
            "{}\u{1f}{}\u{1f}{tag}\u{1f}{partition}",
            self.pipeline, self.sink
        )) ^ object.first.rotate_left(17)
            ^ object.last.rotate_left(41);
        let arrival = object.oldest.with_timezone(&self.tz);
        let event = object.event_time.map(|t| t.with_timezone(&self.tz));
        let (template, error_type, values): (&Prefix, &str, &[String]) = match object.dest {
            Dest::Data { keys, .. } => (&self.prefix, "", keys),
            Dest::Error(t) => (&self.error_prefix, t.as_str(), &[]),
        };
        let lookup = |name: &str| self.key_value(values, name);
        let prefix = template.render(&RenderValues {
            arrival: &arrival,
            event_time: event.as_ref(),
            random_seed: seed,
            error_output_type: error_type,
            partition_key: &lookup,
        });
        // Error envelopes are always plain JSON lines.
        let extension = match object.dest {
            Dest::Data { .. } => self.data_extension,
            Dest::Error(_) => "jsonl",
        };
        let tag = object.tag.map(|t| format!("{t}-")).unwrap_or_default();
        format!(
            "{prefix}{}-{}-{tag}{:012}-{:012}.{extension}",
            self.pipeline, self.sink, object.first, object.last
        )
    }
}

/// The keys one firehose sink would write at one instant: what `pipectl plan --at` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyPreview {
    /// The sink's name.
    pub sink: String,
    /// The connection the keys are relative to.
    pub connection: String,
    /// The data object's key; `None` when the sample record goes to an error output instead.
    pub object_key: Option<String>,
    /// The error object's key for each error output type this sink can write.
    pub error_keys: BTreeMap<String, String>,
    /// The sample record's partition values, by key name.
    pub partition_values: BTreeMap<String, String>,
    /// Why the sample record would go to an error output, if it would.
    pub record_error: Option<String>,
}

/// The keys of every firehose sink of `pipeline` for objects of sequence 1 to 1 whose oldest
/// record arrived `at`. With a sample `record`, the data key is the one that record would go to
/// (its partition values and event time); without one, partition values show as `{NAME}`.
pub fn preview(
    pipeline: &Pipeline,
    at: DateTime<Utc>,
    record: Option<&[u8]>,
) -> Result<Vec<KeyPreview>> {
    let mut previews = Vec::new();
    for (name, sink) in &pipeline.sinks {
        let Sink::Firehose(spec) = sink else {
            continue;
        };
        let keys = ObjectKeys::new(&pipeline.name, name, spec)?;
        let router = Router::new(spec, keys.prefix().event_time_format(), keys.tz())
            .with_value_budget(keys.prefix().partition_value_budget())
            .for_table_roots(matches!(spec.format, Format::Delta(_)));
        let delta = matches!(spec.format, Format::Delta(_));
        let object = |dest: &Dest, event_time: Option<DateTime<Utc>>| {
            if delta && matches!(dest, Dest::Data { .. }) {
                // Data goes into the Delta table under this root (one commit per flush).
                return format!("{}/", keys.table_root(dest));
            }
            keys.key(&ObjectInfo {
                dest,
                first: 1,
                last: 1,
                oldest: at,
                event_time,
                tag: None,
            })
        };
        let mut preview = KeyPreview {
            sink: name.clone(),
            connection: spec.connection.clone(),
            object_key: None,
            error_keys: BTreeMap::new(),
            partition_values: BTreeMap::new(),
            record_error: None,
        };
        let mut types = vec![ErrorOutputType::ProcessingFailed];
        if !spec.partition_keys.is_empty() || spec.event_time.is_some() {
            types.push(ErrorOutputType::PartitioningFailed);
        }
        if matches!(spec.format, Format::Parquet(_) | Format::Delta(_)) {
            types.push(ErrorOutputType::FormatConversionFailed);
        }
        for t in types {
            preview
                .error_keys
                .insert(t.as_str().to_owned(), object(&Dest::Error(t), None));
        }
        match record {
            Some(data) => {
                let routed = router.route(&Record {
                    seq: 1,
                    arrival: at,
                    data: bytes::Bytes::copy_from_slice(data),
                });
                match &routed.dest {
                    Dest::Data { keys: values, .. } => {
                        preview.partition_values = router
                            .key_names()
                            .into_iter()
                            .zip(values.iter().cloned())
                            .collect();
                        preview.object_key = Some(object(&routed.dest, routed.event_time));
                    }
                    Dest::Error(t) => {
                        let reason = routed
                            .envelope
                            .as_deref()
                            .and_then(|e| serde_json::from_slice::<serde_json::Value>(e).ok())
                            .and_then(|e| e["errorMessage"].as_str().map(str::to_owned))
                            .unwrap_or_default();
                        preview.record_error = Some(format!("{}: {reason}", t.as_str()));
                    }
                }
            }
            None => {
                let placeholders = router
                    .key_names()
                    .iter()
                    .map(|k| format!("{{{k}}}"))
                    .collect();
                let dest = Dest::Data {
                    keys: placeholders,
                    bucket: None,
                };
                preview.object_key = Some(object(&dest, None));
            }
        }
        previews.push(preview);
    }
    Ok(previews)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pipeline: &str, sink: &str) -> ObjectKeys {
        let spec: FirehoseSink = serde_json::from_value(serde_json::json!({
            "inputs": ["a"], "connection": "lake", "format": {"type": "jsonl"},
            "prefix": "r=!{firehose:random-string}/!{firehose:random-string}/",
            "error_output_prefix": "errors/!{firehose:error-output-type}/",
        }))
        .unwrap();
        ObjectKeys::new(pipeline, sink, &spec).unwrap()
    }

    /// The two random strings of the data key of the object holding `first..=last`.
    fn randoms(keys: &ObjectKeys, first: u64, last: u64) -> (String, String) {
        let dest = Dest::Data {
            keys: Vec::new(),
            bucket: None,
        };
        let key = keys.key(&ObjectInfo {
            dest: &dest,
            first,
            last,
            oldest: chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 25, 18, 7, 9).unwrap(),
            event_time: None,
            tag: None,
        });
        let parts: Vec<&str> = key.trim_start_matches("r=").split('/').collect();
        (parts[0].to_owned(), parts[1].to_owned())
    }

    #[test]
    fn random_strings_are_new_per_occurrence_and_object_and_the_same_when_rebuilt() {
        let orders = keys("shop", "orders");
        let (a, b) = randoms(&orders, 1, 100);
        assert_ne!(a, b, "each occurrence draws its own string");
        assert_eq!(randoms(&orders, 1, 100), (a.clone(), b), "a rebuilt object");
        let next = randoms(&orders, 101, 200);
        assert_ne!(next.0, a, "the next object");
        assert_ne!(randoms(&orders, 1, 101).0, a, "a longer range");
        assert_ne!(
            randoms(&keys("shop2", "orders"), 1, 100).0,
            a,
            "another pipeline"
        );
        assert_ne!(
            randoms(&keys("shop", "refunds"), 1, 100).0,
            a,
            "another sink"
        );
    }
}
