//! Kinesis Data Firehose's S3 prefix language, used by `firehose` sinks for object keys.
//!
//! A prefix is literal text with `!{namespace:argument}` expressions:
//! - `!{timestamp:yyyy/MM/dd/HH}`: the buffer's time (the oldest record's arrival) in a Java
//!   date pattern (letters `y M d H m s S D E`, `'quoted literals'`, other characters as is);
//! - `!{eventTimestamp:yyyy/MM/dd}`: the same, from a record field (the sink's `event_time`),
//!   which partitions the buffers by event time (beyond Firehose);
//! - `!{firehose:random-string}`: 11 characters, derived from the object's sequence range so a
//!   rewrite after a crash lands on the same key;
//! - `!{firehose:error-output-type}`: why records failed (error prefix only);
//! - `!{partitionKeyFromQuery:NAME}`: a dynamic partition key declared in `partition_keys`.
//!
//! Every timestamp in one prefix renders the same instant. Errors carry the 1-based column
//! (in characters) of the mistake, so `validate` can point at it.

use std::fmt::Write as _;

use chrono::{DateTime, TimeZone};

/// A mistake in a prefix, at a 1-based character column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixError {
    /// Column of the mistake, 1-based, in characters.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
}

/// Which prefix a template is: the data prefix or the error prefix (different expressions apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixKind {
    /// Where delivered records go.
    Data,
    /// Where records that failed go.
    Error,
}

/// One piece of a parsed prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text copied as is.
    Literal(String),
    /// The buffer's arrival time, as a chrono format string.
    Timestamp(String),
    /// The records' event time, as a chrono format string.
    EventTimestamp(String),
    /// 11 characters derived from the object's sequence range.
    RandomString,
    /// Why the records failed, e.g. `processing-failed`.
    ErrorOutputType,
    /// A dynamic partition key's value.
    PartitionKey(String),
}

/// A parsed prefix template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix {
    parts: Vec<Part>,
}

/// The timestamp Firehose appends to a prefix that has none.
pub const DEFAULT_TIME_SUFFIX: &str = "!{timestamp:yyyy/MM/dd/HH}/";

/// Values a prefix is rendered with.
pub struct RenderValues<'a, Tz: TimeZone> {
    /// The buffer's time: the oldest record's arrival, in the sink's time zone.
    pub arrival: &'a DateTime<Tz>,
    /// The buffer's event time, when the sink partitions by it.
    pub event_time: Option<&'a DateTime<Tz>>,
    /// Seed of `random-string`: e.g. a hash of the object's sequence range.
    pub random_seed: u64,
    /// Why the records failed (error prefix only).
    pub error_output_type: &'a str,
    /// Values of `partitionKeyFromQuery` keys, by name.
    pub partition_key: &'a dyn Fn(&str) -> Option<&'a str>,
}

impl Prefix {
    /// Parses a prefix; `keys` are the declared `partition_keys` names. Collects every mistake.
    pub fn parse(
        source: &str,
        kind: PrefixKind,
        keys: &[&str],
    ) -> Result<Prefix, Vec<PrefixError>> {
        let mut parts = Vec::new();
        let mut errors = Vec::new();
        let chars: Vec<char> = source.chars().collect();
        let mut literal = String::new();
        let mut i = 0;
        if chars.first() == Some(&'/') {
            errors.push(err(
                1,
                "a prefix is relative to the connection URL and cannot start with `/`",
                None,
            ));
        }
        while i < chars.len() {
            if chars[i] == '!' && chars.get(i + 1) == Some(&'{') {
                let start = i;
                let Some(close) = chars[i + 2..]
                    .iter()
                    .position(|c| *c == '}')
                    .map(|p| p + i + 2)
                else {
                    errors.push(err(
                        start + 1,
                        "`!{` is not closed by `}`",
                        Some("write expressions as `!{namespace:value}`"),
                    ));
                    break;
                };
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                let body: String = chars[i + 2..close].iter().collect();
                match expression(&body, start + 3, kind, keys) {
                    Ok(part) => parts.push(part),
                    Err(e) => errors.push(e),
                }
                i = close + 1;
            } else {
                literal.push(chars[i]);
                i += 1;
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        if kind == PrefixKind::Error
            && !parts.is_empty()
            && parts.iter().any(|p| !matches!(p, Part::Literal(_)))
            && !parts.contains(&Part::ErrorOutputType)
        {
            errors.push(err(
                1,
                "an error prefix with expressions must contain `!{firehose:error-output-type}`",
                Some("e.g. `errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/`"),
            ));
        }
        if errors.is_empty() {
            Ok(Prefix { parts })
        } else {
            Err(errors)
        }
    }

    /// The pieces, in order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Whether the prefix has any `!{...}` expression.
    pub fn has_expressions(&self) -> bool {
        self.parts.iter().any(|p| !matches!(p, Part::Literal(_)))
    }

    /// Whether the prefix has a `timestamp` or `eventTimestamp` expression.
    pub fn has_timestamp(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Timestamp(_) | Part::EventTimestamp(_)))
    }

    /// Whether the prefix partitions by record content (partition keys or event time).
    pub fn is_dynamic(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::PartitionKey(_) | Part::EventTimestamp(_)))
    }

    /// The event-time format, if the prefix partitions by event time.
    pub fn event_time_format(&self) -> Option<&str> {
        self.parts.iter().find_map(|p| match p {
            Part::EventTimestamp(f) => Some(f.as_str()),
            _ => None,
        })
    }

    /// Firehose's rule: a prefix without a timestamp expression and without dynamic
    /// partitioning gets `yyyy/MM/dd/HH/` appended (after a `/` if it does not end in one).
    pub fn with_default_time(mut self) -> Prefix {
        if self.has_timestamp() || self.is_dynamic() {
            return self;
        }
        if let Some(Part::Literal(last)) = self.parts.last()
            && !last.ends_with('/')
        {
            self.parts.push(Part::Literal("/".to_owned()));
        }
        self.parts.push(Part::Timestamp("%Y/%m/%d/%H".to_owned()));
        self.parts.push(Part::Literal("/".to_owned()));
        self
    }

    /// Renders the prefix. Values never add path levels: `/` in partition values becomes `_`.
    pub fn render<Tz: TimeZone>(&self, v: &RenderValues<'_, Tz>) -> String
    where
        Tz::Offset: std::fmt::Display,
    {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Timestamp(f) => {
                    let _ = write!(out, "{}", v.arrival.format(f));
                }
                Part::EventTimestamp(f) => {
                    let _ = write!(out, "{}", v.event_time.unwrap_or(v.arrival).format(f));
                }
                Part::RandomString => out.push_str(&random_string(v.random_seed)),
                Part::ErrorOutputType => out.push_str(v.error_output_type),
                Part::PartitionKey(name) => {
                    let value = (v.partition_key)(name).unwrap_or("");
                    out.push_str(&value.replace('/', "_"));
                }
            }
        }
        out
    }
}

/// 11 lowercase letters and digits from a seed (splitmix64), like Firehose's random string.
pub fn random_string(seed: u64) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut x = seed;
    (0..11)
        .map(|_| {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ALPHABET[(z % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

fn err(column: usize, message: impl Into<String>, help: Option<&str>) -> PrefixError {
    PrefixError {
        column,
        message: message.into(),
        help: help.map(str::to_owned),
    }
}

/// Parses the text between `!{` and `}`; `column` is the 1-based column of its first character.
fn expression(
    body: &str,
    column: usize,
    kind: PrefixKind,
    keys: &[&str],
) -> Result<Part, PrefixError> {
    let Some((namespace, value)) = body.split_once(':') else {
        return Err(err(
            column,
            format!("`!{{{body}}}` has no namespace"),
            Some(
                "write `!{timestamp:yyyy/MM/dd}`, `!{firehose:random-string}`, `!{firehose:error-output-type}` or `!{partitionKeyFromQuery:NAME}`",
            ),
        ));
    };
    let value_column = column + namespace.chars().count() + 1;
    match namespace {
        "timestamp" => date_pattern(value, value_column).map(Part::Timestamp),
        "eventTimestamp" => {
            if kind == PrefixKind::Error {
                return Err(err(
                    column,
                    "an error prefix cannot use `eventTimestamp`: failed records may have no event time",
                    Some("use `!{timestamp:...}`"),
                ));
            }
            date_pattern(value, value_column).map(Part::EventTimestamp)
        }
        "firehose" => match value {
            "random-string" => Ok(Part::RandomString),
            "error-output-type" if kind == PrefixKind::Error => Ok(Part::ErrorOutputType),
            "error-output-type" => Err(err(
                value_column,
                "`error-output-type` is only allowed in the error prefix",
                Some("move it to `error_output_prefix`"),
            )),
            other => Err(err(
                value_column,
                format!("unknown firehose expression `{other}`"),
                Some("use `random-string` or `error-output-type`"),
            )),
        },
        "partitionKeyFromQuery" => {
            if kind == PrefixKind::Error {
                return Err(err(
                    column,
                    "an error prefix cannot use `partitionKeyFromQuery`: failed records may have no partition key",
                    None,
                ));
            }
            if keys.contains(&value) {
                Ok(Part::PartitionKey(value.to_owned()))
            } else if keys.is_empty() {
                Err(err(
                    value_column,
                    format!("partition key `{value}` is not declared"),
                    Some(
                        "declare it under the sink's `partition_keys:`, e.g. `partition_keys: {customer_id: .customer_id}`",
                    ),
                ))
            } else {
                Err(err(
                    value_column,
                    format!("partition key `{value}` is not declared"),
                    Some(&format!("declared keys: {}", keys.join(", "))),
                ))
            }
        }
        "partitionKeyFromLambda" => Err(err(
            column,
            "`partitionKeyFromLambda` is not supported: pipectl runs no Lambda functions",
            Some("declare a `partition_keys` entry and use `!{partitionKeyFromQuery:NAME}`"),
        )),
        other => Err(err(
            column,
            format!("unknown namespace `{other}`"),
            Some("use `timestamp`, `eventTimestamp`, `firehose` or `partitionKeyFromQuery`"),
        )),
    }
}

/// Converts a Java date pattern (as Firehose takes) into a chrono format string.
fn date_pattern(pattern: &str, column: usize) -> Result<String, PrefixError> {
    if pattern.is_empty() {
        return Err(err(
            column,
            "empty date pattern",
            Some("e.g. `yyyy/MM/dd/HH`"),
        ));
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // `''` is a quote; `'text'` is literal text.
            if chars.get(i + 1) == Some(&'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            let start = i;
            i += 1;
            loop {
                match (chars.get(i), chars.get(i + 1)) {
                    (None, _) => {
                        return Err(err(
                            column + start,
                            "quoted text is not closed by `'`",
                            None,
                        ));
                    }
                    (Some('\''), Some('\'')) => {
                        out.push('\'');
                        i += 2;
                    }
                    (Some('\''), _) => {
                        i += 1;
                        break;
                    }
                    (Some(q), _) => {
                        push_literal(&mut out, *q);
                        i += 1;
                    }
                }
            }
            continue;
        }
        if !c.is_ascii_alphabetic() {
            push_literal(&mut out, c);
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|x| **x == c).count();
        let spec = match (c, run) {
            ('y', 2) => "%y",
            ('y', 4) | ('y', 1) | ('u', 4) => "%Y",
            ('M', 1) => "%-m",
            ('M', 2) => "%m",
            ('M', 3) => "%b",
            ('M', 4) => "%B",
            ('d', 1) => "%-d",
            ('d', 2) => "%d",
            ('D', 1..=3) => "%j",
            ('H', 1) => "%-H",
            ('H', 2) => "%H",
            ('m', 1) => "%-M",
            ('m', 2) => "%M",
            ('s', 1) => "%-S",
            ('s', 2) => "%S",
            ('S', 3) => "%3f",
            ('E', 1..=3) => "%a",
            ('E', 4) => "%A",
            ('Z', 1..=3) => "%z",
            _ => {
                let letters: String = std::iter::repeat_n(c, run).collect();
                return Err(err(
                    column + i,
                    format!("unsupported date pattern letters `{letters}`"),
                    Some(
                        "use yyyy, yy, MM, M, dd, d, DDD, HH, H, mm, ss, SSS, EEE; quote literal text as 'text'",
                    ),
                ));
            }
        };
        out.push_str(spec);
        i += run;
    }
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    if c == '%' {
        out.push_str("%%");
    } else {
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn render(prefix: &str, kind: PrefixKind) -> String {
        let at = Utc.with_ymd_and_hms(2026, 11, 5, 7, 8, 9).unwrap();
        let event = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
        let keys = |name: &str| match name {
            "customer" => Some("acme/eu"),
            _ => None,
        };
        Prefix::parse(prefix, kind, &["customer"])
            .unwrap()
            .with_default_time()
            .render(&RenderValues {
                arrival: &at,
                event_time: Some(&event),
                random_seed: 42,
                error_output_type: "processing-failed",
                partition_key: &keys,
            })
    }

    fn first_error(prefix: &str, kind: PrefixKind) -> (usize, String) {
        let e = Prefix::parse(prefix, kind, &["customer"]).unwrap_err();
        (e[0].column, e[0].message.clone())
    }

    #[test]
    fn timestamps_use_java_letters_and_quoted_literals() {
        assert_eq!(
            render("streaming/!{timestamp:yyyy/MM/}", PrefixKind::Data),
            "streaming/2026/11/"
        );
        assert_eq!(
            render(
                "s/!{timestamp:'year='yyyy'/month='M'/day='d}/",
                PrefixKind::Data
            ),
            "s/year=2026/month=11/day=5/"
        );
        assert_eq!(
            render("s/!{timestamp:yy-MM-dd HH.mm.ss}/", PrefixKind::Data),
            "s/26-11-05 07.08.09/"
        );
        assert_eq!(
            render("s/!{timestamp:'it''s' 100%}/", PrefixKind::Data),
            "s/it's 100%/"
        );
    }

    #[test]
    fn default_time_is_appended_only_without_a_timestamp() {
        assert_eq!(render("raw/", PrefixKind::Data), "raw/2026/11/05/07/");
        assert_eq!(render("raw", PrefixKind::Data), "raw/2026/11/05/07/");
        assert_eq!(render("", PrefixKind::Data), "2026/11/05/07/");
        assert_eq!(
            render("k/!{partitionKeyFromQuery:customer}/", PrefixKind::Data),
            "k/acme_eu/"
        );
    }

    #[test]
    fn event_time_and_random_string() {
        assert_eq!(
            render("e/!{eventTimestamp:yyyy/MM}/", PrefixKind::Data),
            "e/2025/01/"
        );
        let r = render(
            "r/!{firehose:random-string}/!{timestamp:yyyy}/",
            PrefixKind::Data,
        );
        assert_eq!(r.len(), "r/".len() + 11 + "/2026/".len());
        assert_eq!(
            r,
            render(
                "r/!{firehose:random-string}/!{timestamp:yyyy}/",
                PrefixKind::Data
            )
        );
        assert_ne!(random_string(1), random_string(2));
    }

    #[test]
    fn error_output_type_belongs_to_the_error_prefix() {
        assert_eq!(
            render(
                "errors/!{firehose:error-output-type}/!{timestamp:yyyy}/",
                PrefixKind::Error
            ),
            "errors/processing-failed/2026/"
        );
        assert_eq!(
            first_error("data/!{firehose:error-output-type}/", PrefixKind::Data),
            (
                17,
                "`error-output-type` is only allowed in the error prefix".to_owned()
            )
        );
        assert_eq!(first_error("e/!{timestamp:yyyy}/", PrefixKind::Error).0, 1);
        assert_eq!(
            first_error(
                "e/!{partitionKeyFromQuery:customer}/!{firehose:error-output-type}",
                PrefixKind::Error
            )
            .0,
            5
        );
    }

    #[test]
    fn mistakes_point_at_their_column() {
        assert_eq!(
            first_error("a/!{timestamp:yyyy/qq}/", PrefixKind::Data),
            (20, "unsupported date pattern letters `qq`".to_owned())
        );
        assert_eq!(
            first_error("a/!{timestmp:yyyy}/", PrefixKind::Data),
            (5, "unknown namespace `timestmp`".to_owned())
        );
        assert_eq!(
            first_error("a/!{timestamp:yyyy", PrefixKind::Data),
            (3, "`!{` is not closed by `}`".to_owned())
        );
        assert_eq!(
            first_error("a/!{partitionKeyFromQuery:shop}/", PrefixKind::Data),
            (27, "partition key `shop` is not declared".to_owned())
        );
        assert_eq!(first_error("/a/", PrefixKind::Data).0, 1);
        assert_eq!(first_error("a/!{firehose:uuid}/", PrefixKind::Data).0, 14);
        assert_eq!(first_error("a/!{timestamp:'x}/", PrefixKind::Data).0, 15);
    }
}
