//! Checks of streaming steps: `nats`, `mqtt` and `http` sources and `firehose` sinks, and how
//! they may be wired (a firehose sink delivers one streaming source; streaming sources feed
//! only firehose sinks).

use super::{OBJECT_STORE_SCHEMES, Validator, key};
use crate::env::env_refs;
use crate::lang::prefix::{Prefix, PrefixError};
use crate::types::{DeltaFormat, FirehoseSink, Format, Pipeline, Sink, Source};
use crate::yaml::PathSeg;

/// URL schemes `nats` sources accept.
pub const NATS_SCHEMES: &[&str] = &["nats"];
/// URL schemes `mqtt` sources accept.
pub const MQTT_SCHEMES: &[&str] = &["mqtt"];

/// Whether a source produces an unbounded stream that only a `firehose` sink can deliver.
pub fn is_stream_source(source: &Source) -> bool {
    // Every type listed, no catch-all: a new source type must say whether it streams.
    match source {
        Source::Nats(_) | Source::Mqtt(_) | Source::Http(_) => true,
        Source::Sqlite(_)
        | Source::Postgres(_)
        | Source::PostgresCdc(_)
        | Source::MysqlCdc(_)
        | Source::Mysql(_)
        | Source::Generator(_)
        | Source::Files(_) => false,
    }
}

/// Whether the pipeline runs in streaming mode: it has a `firehose` sink.
pub fn is_streaming(p: &Pipeline) -> bool {
    p.sinks.values().any(|s| matches!(s, Sink::Firehose(_)))
}

/// Whether a field reference is `.a.b` (jq-style) or `a.b`: names of letters, digits, `_`, `-`.
pub fn valid_field_path(path: &str) -> bool {
    let path = path.strip_prefix('.').unwrap_or(path);
    !path.is_empty()
        && path.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        })
}

impl Validator<'_> {
    /// Checks a streaming source's own settings.
    pub(super) fn stream_source(&mut self, p: &Pipeline, name: &str, source: &Source) {
        let base = [key("sources"), key(name)];
        let at = |k: &str| vec![base[0].clone(), base[1].clone(), key(k)];
        match source {
            Source::Nats(n) => {
                self.connection_ref(p, &base, &n.connection, NATS_SCHEMES, "a NATS server");
                if n.stream.is_empty() || n.stream.contains(['.', '*', '>', ' ', '/', '\\']) {
                    self.error(&at("stream"), format!("invalid JetStream stream name `{}`", n.stream), Some("stream names cannot be empty or contain `.`, `*`, `>`, spaces or slashes".to_owned()));
                }
                if n.create_stream && n.subject.is_none() {
                    self.error(
                        &at("create_stream"),
                        "`create_stream` needs `subject`, the subjects the new stream captures",
                        Some("e.g. `subject: rentals.>`".to_owned()),
                    );
                }
                if let Some(d) = &n.durable
                    && (d.is_empty() || d.contains(['.', '*', '>', ' ']))
                {
                    self.error(
                        &at("durable"),
                        format!("invalid consumer name `{d}`"),
                        Some("use letters, digits, `-` and `_`".to_owned()),
                    );
                }
            }
            Source::Mqtt(m) => {
                self.connection_ref(p, &base, &m.connection, MQTT_SCHEMES, "an MQTT broker");
                let levels: Vec<&str> = m.topic.split('/').collect();
                let bad = m.topic.is_empty()
                    || levels.iter().enumerate().any(|(i, l)| {
                        (l.contains('#') && (*l != "#" || i + 1 != levels.len()))
                            || (l.contains('+') && *l != "+")
                    });
                if bad {
                    self.error(&at("topic"), format!("invalid MQTT topic filter `{}`", m.topic), Some("`+` matches one whole level, `#` the rest and only at the end: `sensors/+/events`, `rentals/#`".to_owned()));
                }
            }
            Source::Http(h) => {
                if h.listen.parse::<std::net::SocketAddr>().is_err() {
                    self.error(
                        &at("listen"),
                        format!("`{}` is not an address to listen on", h.listen),
                        Some("write IP:port, e.g. `127.0.0.1:8443`".to_owned()),
                    );
                }
                if let Some(token) = &h.token {
                    match env_refs(token) {
                        Ok(refs) if refs.is_empty() => self.error(&at("token"), "a secret is written into the spec", Some("specs live in git: use `${env:NAME}` and set NAME in the environment".to_owned())),
                        Ok(_) => {}
                        Err(e) => self.error_in_text(&at("token"), 1, e.offset + 1, e.message, Some("write secrets as `${env:NAME}`".to_owned())),
                    }
                }
            }
            _ => {}
        }
    }

    /// Checks a firehose sink: its connection, prefixes, buffering, format and wiring.
    pub(super) fn firehose_sink(&mut self, p: &Pipeline, name: &str, s: &FirehoseSink) {
        let base = vec![key("sinks"), key(name)];
        let at = |k: &str| {
            let mut path = base.clone();
            path.push(key(k));
            path
        };
        // A setting inside a mapping of the sink: `partition_keys.<name>`, `event_time.field`.
        let within = |k: &str, inner: &str| {
            let mut path = at(k);
            path.push(key(inner));
            path
        };
        self.connection_ref(
            p,
            &base,
            &s.connection,
            OBJECT_STORE_SCHEMES,
            "an object store",
        );
        let keys: Vec<&str> = s.partition_keys.keys().map(String::as_str).collect();
        let data = match Prefix::data(&s.prefix, &keys) {
            Ok(prefix) => Some(prefix),
            Err(errors) => {
                for e in errors {
                    self.prefix_error(&at("prefix"), "prefix", e);
                }
                None
            }
        };
        if let Some(e) = data.as_ref().and_then(Prefix::length_error) {
            self.prefix_error(&at("prefix"), "prefix", e);
        }
        // Without an error prefix, Firehose derives it from the prefix: mistakes point there.
        let (error_field, error_label, derived_label) = match &s.error_output_prefix {
            Some(_) => ("error_output_prefix", "error prefix", "error prefix"),
            None => (
                "prefix",
                "prefix",
                "as the error prefix (no `error_output_prefix` is set)",
            ),
        };
        match Prefix::error(s.error_output_prefix.as_deref(), &s.prefix, &keys) {
            Ok(error_prefix) => {
                if let Some(e) = error_prefix.length_error() {
                    self.prefix_error(&at(error_field), derived_label, e);
                }
            }
            // The prefix's own mistakes were reported above.
            Err(_) if s.error_output_prefix.is_none() && data.is_none() => {}
            Err(errors) => {
                for e in errors {
                    self.prefix_error(&at(error_field), error_label, e);
                }
            }
        }
        if let Some(prefix) = &data {
            if prefix.event_time_format().is_some() && s.event_time.is_none() {
                self.error(
                    &at("prefix"),
                    "`!{eventTimestamp:...}` needs the sink's `event_time`",
                    Some("e.g. `event_time: {field: .timestamp}`".to_owned()),
                );
            }
            for used in &keys {
                let in_prefix = prefix.parts().iter().any(
                    |part| matches!(part, crate::lang::prefix::Part::PartitionKey(k) if k == used),
                );
                if !in_prefix {
                    self.error(
                        &within("partition_keys", used),
                        format!("partition key `{used}` is not used in the prefix"),
                        Some(format!(
                            "add `!{{partitionKeyFromQuery:{used}}}` to `prefix`, or remove the key"
                        )),
                    );
                }
            }
        }
        for (k, field) in &s.partition_keys {
            if !valid_field_path(field) {
                self.error(
                    &within("partition_keys", k),
                    format!("`{field}` is not a record field"),
                    Some(
                        "write a field path such as `.customer_id` or `.customer.region`"
                            .to_owned(),
                    ),
                );
            }
        }
        if let Some(et) = &s.event_time
            && !valid_field_path(&et.field)
        {
            self.error(
                &within("event_time", "field"),
                format!("`{}` is not a record field", et.field),
                Some("write a field path such as `.timestamp`".to_owned()),
            );
        }
        if !(s.interval_secs > 0.0 && s.interval_secs.is_finite()) {
            self.error(
                &at("interval_secs"),
                "must be greater than 0",
                Some("Firehose's default is 300".to_owned()),
            );
        }
        if let Some(tz) = &s.time_zone
            && tz.parse::<chrono_tz::Tz>().is_err()
        {
            self.error(
                &at("time_zone"),
                format!("unknown time zone `{tz}`"),
                Some("use an IANA name such as `Europe/Berlin` or `UTC`".to_owned()),
            );
        }
        if let Format::Delta(d) = &s.format {
            self.firehose_delta(&base, s, d);
        }
        match &s.format {
            Format::Csv(_) => self.error(
                &within("format", "type"),
                "firehose sinks write `jsonl`, `parquet` or `delta`",
                None,
            ),
            Format::Jsonl(_) if !s.columns.is_empty() => self.error(
                &at("columns"),
                "`columns` applies to `parquet` output",
                Some("remove it, or use `format: {type: parquet}`".to_owned()),
            ),
            Format::Jsonl(_) if s.catalog_table.is_some() => self.error(
                &at("catalog_table"),
                "`catalog_table` applies to `parquet` output",
                Some("remove it, or use `format: {type: parquet}`".to_owned()),
            ),
            Format::Parquet(_) | Format::Delta(_)
                if s.catalog_table.is_some() && !s.columns.is_empty() =>
            {
                self.error(
                    &at("catalog_table"),
                    "a sink takes its schema from `columns` or from `catalog_table`, not both",
                    Some("remove one of them".to_owned()),
                )
            }
            _ => {}
        }
        for (i, column) in s.columns.iter().enumerate() {
            let mut path = at("columns");
            path.push(PathSeg::Index(i));
            path.push(key("type"));
            self.column_type(&path, &column.data_type);
        }
        match s.inputs.as_slice() {
            [input] => match p.sources.get(input) {
                Some(src) if is_stream_source(src) || matches!(src, Source::Generator(_)) => {}
                Some(src) => self.error(&input_path(&base, 0), format!("`{input}` is a `{}` source; a firehose sink delivers a `nats`, `mqtt`, `http` or `generator` source", src.type_name()), Some("use an `object_store` sink for batch sources".to_owned())),
                None if p.transforms.contains_key(input) => self.error(&input_path(&base, 0), "transforms between a streaming source and a firehose sink are not supported yet", Some("name the source itself as the input".to_owned())),
                None => {}
            },
            _ => self.error(&at("inputs"), "a firehose sink delivers exactly one source", Some("add one firehose sink per source".to_owned())),
        }
    }

    /// Checks a firehose sink writing Delta tables: its prefix names table roots, which must
    /// stay the same from one flush to the next, and its error output lies outside them.
    fn firehose_delta(&mut self, base: &[PathSeg], s: &FirehoseSink, d: &DeltaFormat) {
        let at = |k: &str| {
            let mut path = base.to_vec();
            path.push(key(k));
            path
        };
        for (column, expression) in varying_expressions(&s.prefix) {
            self.error_in_text(
                &at("prefix"),
                1,
                column,
                format!("prefix: `{expression}` changes from one flush to the next, but with `format: delta` the prefix names a Delta table root, which must stay the same"),
                Some("remove it: rows are partitioned inside a table with `format: {type: delta, partition_by: [column]}`; `!{partitionKeyFromQuery:...}` may pick one of several tables".to_owned()),
            );
        }
        // One partition key per folder: two in one folder name could render the same name
        // from different values, sending two destinations' ranges into one table.
        let mut offset = 0;
        for segment in s.prefix.split('/') {
            let mut keys = segment.match_indices("!{partitionKeyFromQuery:");
            if let (Some(_), Some((second, _))) = (keys.next(), keys.next()) {
                let column = s.prefix[..offset + second].chars().count() + 1;
                self.error_in_text(
                    &at("prefix"),
                    1,
                    column,
                    "prefix: with `format: delta` each `!{partitionKeyFromQuery:...}` needs a folder of its own (the table root's folders name tables)".to_owned(),
                    Some("put a `/` between them, e.g. `tables/!{partitionKeyFromQuery:tenant}/!{partitionKeyFromQuery:kind}/`".to_owned()),
                );
            }
            offset += segment.len() + 1;
        }
        let root = s.prefix.trim_matches('/');
        if root.is_empty() {
            self.error(
                &at("prefix"),
                "with `format: delta` the prefix names the Delta table root and cannot be empty",
                Some("e.g. `prefix: lake/events/`".to_owned()),
            );
        }
        match &s.error_output_prefix {
            // A prefix with expressions is told to get one already.
            None if s.prefix.contains("!{") => {}
            None => self.error(
                &at("format"),
                "a firehose sink writing `delta` needs an `error_output_prefix`: the default one lies inside the table root, where files that are not the table's do not belong",
                Some("e.g. `error_output_prefix: errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/`".to_owned()),
            ),
            Some(errors)
                if !root.is_empty()
                    && !root.contains("!{")
                    && (errors.trim_matches('/') == root
                        || errors.trim_start_matches('/').starts_with(&format!("{root}/"))) =>
            {
                self.error_in_text(
                    &at("error_output_prefix"),
                    1,
                    1,
                    format!("error prefix: `{errors}` lies inside the Delta table root `{root}/`"),
                    Some("put error output beside the table, e.g. `errors/!{firehose:error-output-type}/`".to_owned()),
                )
            }
            Some(_) => {}
        }
        if !s.columns.is_empty() {
            for (i, column) in d.partition_by.iter().enumerate() {
                if !s.columns.iter().any(|c| &c.name == column) {
                    let mut path = at("format");
                    path.push(key("partition_by"));
                    path.push(PathSeg::Index(i));
                    self.error(
                        &path,
                        format!("partition column `{column}` is not one of the sink's `columns`"),
                        Some(
                            "declare it in `columns`, or remove it from `partition_by`".to_owned(),
                        ),
                    );
                }
            }
        }
    }

    /// Reports a prefix mistake at its column in the prefix's text.
    fn prefix_error(&mut self, path: &[PathSeg], label: &str, e: PrefixError) {
        self.error_in_text(path, 1, e.column, format!("{label}: {}", e.message), e.help);
    }

    /// Streaming sources feed only firehose sinks, and each one at most one of them: its
    /// acknowledgements follow that sink's deliveries.
    pub(super) fn stream_wiring(&mut self, p: &Pipeline) {
        for (name, source) in &p.sources {
            if !is_stream_source(source) {
                continue;
            }
            let consumers: Vec<(&String, &Sink)> = p
                .sinks
                .iter()
                .filter(|(_, s)| s.inputs().contains(name))
                .collect();
            for (t, transform) in &p.transforms {
                if let Some(i) = transform.inputs().iter().position(|x| x == name) {
                    self.error(
                        &input_path(&[key("transforms"), key(t)], i),
                        format!("`{name}` is a streaming source; transforms cannot read it yet"),
                        Some("deliver it with a `firehose` sink".to_owned()),
                    );
                }
            }
            for (sink_name, sink) in &consumers {
                if let Sink::ObjectStore(s) = sink
                    && let Some(i) = s.inputs.iter().position(|x| x == name)
                {
                    self.error(&input_path(&[key("sinks"), key(sink_name)], i), format!("`{name}` is a streaming source; an `object_store` sink cannot deliver it"), Some("use `type: firehose`".to_owned()));
                }
            }
            let firehoses = consumers
                .iter()
                .filter(|(_, s)| matches!(s, Sink::Firehose(_)))
                .count();
            if firehoses > 1 {
                self.error(
                    &[key("sources"), key(name)],
                    format!(
                        "`{name}` feeds {firehoses} firehose sinks; a streaming source feeds one"
                    ),
                    Some(
                        "define one source per sink (e.g. two NATS durables on one stream)"
                            .to_owned(),
                    ),
                );
            }
        }
        if is_streaming(p) && p.schedule.is_some() {
            self.error(&[key("schedule")], "a streaming pipeline runs until it is stopped and has no schedule", Some("remove `schedule:`: `pipectl serve` keeps streaming pipelines running (so does `pipectl run`, until stopped)".to_owned()));
        }
        if is_streaming(p) && p.sinks.values().any(|s| matches!(s, Sink::ObjectStore(_))) {
            self.error(&[key("sinks")], "a pipeline with a `firehose` sink runs until stopped and cannot also have `object_store` sinks", Some("put batch loads in their own pipeline file".to_owned()));
        }
    }
}

/// The `!{...}` expressions of a prefix whose value changes with time or per object (times,
/// random strings), with the column (1-based, in characters) where each starts.
fn varying_expressions(prefix: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut rest = prefix;
    let mut offset = 0;
    while let Some(start) = rest.find("!{") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        let expression = &rest[start..start + len + 1];
        let inner = expression[2..expression.len() - 1].trim();
        if inner.starts_with("timestamp:")
            || inner.starts_with("eventTimestamp:")
            || inner == "firehose:random-string"
        {
            let column = prefix[..offset + start].chars().count() + 1;
            found.push((column, expression.to_owned()));
        }
        offset += start + len + 1;
        rest = &rest[start + len + 1..];
    }
    found
}

fn input_path(base: &[PathSeg], i: usize) -> Vec<PathSeg> {
    let mut path = base.to_vec();
    path.push(key("inputs"));
    path.push(PathSeg::Index(i));
    path
}
