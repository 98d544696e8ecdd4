//! Kinesis Data Firehose's S3 prefix language, used by `firehose` sinks for object keys.
//!
//! A prefix is literal text with `!{namespace:argument}` expressions:
//! - `!{timestamp:yyyy/MM/dd/HH}`: the buffer's time (the oldest record's arrival) in a Java
//!   `DateTimeFormatter` pattern (`'quoted literals'`, other characters as is);
//! - `!{eventTimestamp:yyyy/MM/dd}`: the same, from a record field (the sink's `event_time`),
//!   which partitions the buffers by event time (beyond Firehose);
//! - `!{firehose:random-string}`: 11 characters, new at each occurrence and for each object,
//!   drawn from a seed the sink derives from what the object is (pipeline, sink, destination,
//!   sequence range), so a rewrite after a crash lands on the same key;
//! - `!{firehose:error-output-type}`: why records failed (error prefix only);
//! - `!{partitionKeyFromQuery:NAME}`: a dynamic partition key declared in `partition_keys`.
//!
//! Firehose's rules (its "Custom Prefixes for Amazon S3 Objects" page) hold: a data prefix
//! without a timestamp gets `yyyy/MM/dd/HH/` appended, an error prefix never does; without an
//! error prefix (allowed only when the prefix has no expressions) failed records go to
//! `<prefix>/<error-output-type>/yyyy/MM/dd/HH/`; no prefix evaluates to more than
//! [`MAX_EVALUATED_CHARS`]. Every timestamp in one prefix renders the same instant. Errors carry
//! the 1-based column (in characters) of the mistake, so `validate` can point at it.

use std::fmt::Write as _;

use chrono::{DateTime, TimeZone};

/// The longest an evaluated prefix may be, in characters (Firehose's limit).
pub const MAX_EVALUATED_CHARS: usize = 512;

/// Characters in `!{firehose:random-string}`.
pub const RANDOM_STRING_CHARS: usize = 11;

/// The longest `!{firehose:error-output-type}` value: `format-conversion-failed`.
const LONGEST_ERROR_OUTPUT_TYPE: usize = 24;

/// Characters `DateTimeFormatter` reserves (`[`/`]` open optional sections, `#{}` are reserved
/// for future use); Firehose rejects them unquoted.
const RESERVED_PATTERN_CHARS: &[char] = &['#', '{', '}', '[', ']'];

/// Every pattern letter `DateTimeFormatter` defines; other letters are errors there too.
const JAVA_PATTERN_LETTERS: &str = "GuyDMLdQqYwWEecFaBhKkHmsSAnNVvzOXxZpg";

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

/// A Java date pattern converted for rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatePattern {
    /// The same pattern as a chrono format string.
    pub format: String,
    /// The most characters it renders (English month and day names, years up to 9999).
    pub max_chars: usize,
}

/// One piece of a parsed prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text copied as is.
    Literal(String),
    /// The buffer's arrival time.
    Timestamp(DatePattern),
    /// The records' event time.
    EventTimestamp(DatePattern),
    /// 11 characters, different at each occurrence.
    RandomString,
    /// Why the records failed, e.g. `processing-failed`.
    ErrorOutputType,
    /// A dynamic partition key's value.
    PartitionKey(String),
}

impl Part {
    /// The most characters this part renders; partition values count 0 (they are checked per
    /// record, see [`Prefix::partition_value_budget`]).
    fn max_chars(&self) -> usize {
        match self {
            Part::Literal(text) => text.chars().count(),
            Part::Timestamp(p) | Part::EventTimestamp(p) => p.max_chars,
            Part::RandomString => RANDOM_STRING_CHARS,
            Part::ErrorOutputType => LONGEST_ERROR_OUTPUT_TYPE,
            Part::PartitionKey(_) => 0,
        }
    }
}

/// A parsed prefix template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix {
    parts: Vec<Part>,
    /// The 1-based column each part starts at in the text; 0 for parts Firehose's rules added.
    columns: Vec<usize>,
}

/// Values a prefix is rendered with.
pub struct RenderValues<'a, Tz: TimeZone> {
    /// The buffer's time: the oldest record's arrival, in the sink's time zone.
    pub arrival: &'a DateTime<Tz>,
    /// The buffer's event time, when the sink partitions by it.
    pub event_time: Option<&'a DateTime<Tz>>,
    /// Seed of the `random-string`s: derived from what the object is, so a rebuilt object
    /// gets the same strings (each occurrence draws its own from it).
    pub random_seed: u64,
    /// Why the records failed (error prefix only).
    pub error_output_type: &'a str,
    /// Values of `partitionKeyFromQuery` keys, by name.
    pub partition_key: &'a dyn Fn(&str) -> Option<&'a str>,
}

impl Prefix {
    /// Parses a prefix as written; `keys` are the declared `partition_keys` names. Collects
    /// every mistake. See [`Prefix::data`] and [`Prefix::error`] for the prefixes Firehose
    /// evaluates.
    pub fn parse(
        source: &str,
        kind: PrefixKind,
        keys: &[&str],
    ) -> Result<Prefix, Vec<PrefixError>> {
        let mut prefix = Prefix {
            parts: Vec::new(),
            columns: Vec::new(),
        };
        let mut errors = Vec::new();
        let chars: Vec<char> = source.chars().collect();
        let mut literal = String::new();
        let mut literal_start = 1;
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
                    prefix.push(Part::Literal(std::mem::take(&mut literal)), literal_start);
                }
                let body: String = chars[i + 2..close].iter().collect();
                match expression(&body, start + 3, kind, keys) {
                    Ok(part) => prefix.push(part, start + 1),
                    Err(e) => errors.push(e),
                }
                i = close + 1;
            } else {
                if literal.is_empty() {
                    literal_start = i + 1;
                }
                literal.push(chars[i]);
                i += 1;
            }
        }
        if !literal.is_empty() {
            prefix.push(Part::Literal(literal), literal_start);
        }
        if kind == PrefixKind::Error
            && prefix.has_expressions()
            && !prefix.parts.contains(&Part::ErrorOutputType)
        {
            errors.push(err(
                1,
                "an error prefix with expressions must contain `!{firehose:error-output-type}`",
                Some("e.g. `errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/`"),
            ));
        }
        if errors.is_empty() {
            Ok(prefix)
        } else {
            Err(errors)
        }
    }

    /// The data prefix Firehose evaluates: `source`, and `yyyy/MM/dd/HH/` after it when it has
    /// no timestamp expression and no dynamic partitioning (after a `/` if it does not end in one).
    pub fn data(source: &str, keys: &[&str]) -> Result<Prefix, Vec<PrefixError>> {
        let mut prefix = Prefix::parse(source, PrefixKind::Data, keys)?;
        if !prefix.has_timestamp() && !prefix.is_dynamic() {
            prefix.separate();
            prefix.append_default_time();
        }
        Ok(prefix)
    }

    /// The error prefix Firehose evaluates: `error_output_prefix` as written (no time is
    /// appended), or without one, `<prefix>/<error-output-type>/yyyy/MM/dd/HH/`, which needs a
    /// `prefix` without expressions.
    pub fn error(
        error_output_prefix: Option<&str>,
        prefix: &str,
        keys: &[&str],
    ) -> Result<Prefix, Vec<PrefixError>> {
        if let Some(source) = error_output_prefix {
            return Prefix::parse(source, PrefixKind::Error, keys);
        }
        let mut errors = Prefix::parse(prefix, PrefixKind::Data, keys)?;
        if errors.has_expressions() {
            return Err(vec![err(
                1,
                "a prefix with expressions needs an `error_output_prefix`",
                Some(
                    "e.g. `error_output_prefix: errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/`",
                ),
            )]);
        }
        errors.separate();
        errors.push(Part::ErrorOutputType, 0);
        errors.push(Part::Literal("/".to_owned()), 0);
        errors.append_default_time();
        Ok(errors)
    }

    fn push(&mut self, part: Part, column: usize) {
        self.parts.push(part);
        self.columns.push(column);
    }

    /// Adds a `/` unless the prefix is empty or ends in one: what Firehose appends starts a folder.
    fn separate(&mut self) {
        if let Some(Part::Literal(last)) = self.parts.last()
            && !last.ends_with('/')
        {
            self.push(Part::Literal("/".to_owned()), 0);
        }
    }

    fn append_default_time(&mut self) {
        self.push(
            Part::Timestamp(DatePattern {
                format: "%Y/%m/%d/%H".to_owned(),
                max_chars: 13,
            }),
            0,
        );
        self.push(Part::Literal("/".to_owned()), 0);
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

    /// The event-time format (chrono), if the prefix partitions by event time.
    pub fn event_time_format(&self) -> Option<&str> {
        self.parts.iter().find_map(|p| match p {
            Part::EventTimestamp(f) => Some(f.format.as_str()),
            _ => None,
        })
    }

    /// The most characters the prefix evaluates to, partition values not counted.
    pub fn max_chars(&self) -> usize {
        self.parts.iter().map(Part::max_chars).sum()
    }

    /// How many characters the partition values of one record may have together so the
    /// prefix stays within [`MAX_EVALUATED_CHARS`]; `None` without partition keys.
    pub fn partition_value_budget(&self) -> Option<usize> {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::PartitionKey(_)))
            .then(|| MAX_EVALUATED_CHARS.saturating_sub(self.max_chars()))
    }

    /// The mistake of a prefix that can evaluate to more than [`MAX_EVALUATED_CHARS`], at the
    /// column where it passes the limit.
    pub fn length_error(&self) -> Option<PrefixError> {
        let total = self.max_chars();
        if total <= MAX_EVALUATED_CHARS {
            return None;
        }
        let mut before = 0;
        let mut column = 1;
        let mut added = false;
        for (part, start) in self.parts.iter().zip(&self.columns) {
            let len = part.max_chars();
            if before + len > MAX_EVALUATED_CHARS {
                added = *start == 0;
                column = match part {
                    Part::Literal(_) if !added => start + (MAX_EVALUATED_CHARS - before),
                    _ => (*start).max(1),
                };
                break;
            }
            before += len;
        }
        let what = if added {
            " with what Firehose's rules append to it"
        } else {
            ""
        };
        Some(err(
            column,
            format!(
                "evaluates to up to {total} characters{what}; Firehose allows at most {MAX_EVALUATED_CHARS}"
            ),
            Some("shorten the literal text or the date patterns"),
        ))
    }

    /// Renders the prefix. Values never add path levels: `/` in partition values becomes `_`.
    pub fn render<Tz: TimeZone>(&self, v: &RenderValues<'_, Tz>) -> String
    where
        Tz::Offset: std::fmt::Display,
    {
        let mut out = String::new();
        let mut occurrence = 0;
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Timestamp(p) => {
                    let _ = write!(out, "{}", v.arrival.format(&p.format));
                }
                Part::EventTimestamp(p) => {
                    let _ = write!(
                        out,
                        "{}",
                        v.event_time.unwrap_or(v.arrival).format(&p.format)
                    );
                }
                Part::RandomString => {
                    out.push_str(&random_string(v.random_seed, occurrence));
                    occurrence += 1;
                }
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

/// The `occurrence`-th random string of a seed: 11 lowercase letters and digits (splitmix64).
pub fn random_string(seed: u64, occurrence: u64) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    // Each occurrence starts its own splitmix64 sequence, far from the others.
    let mut x = seed ^ occurrence.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    (0..RANDOM_STRING_CHARS)
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

/// Converts a Java `DateTimeFormatter` pattern (as Firehose takes) into a chrono format string.
/// `column` is the 1-based column of the pattern's first character.
fn date_pattern(pattern: &str, column: usize) -> Result<DatePattern, PrefixError> {
    if pattern.is_empty() {
        return Err(err(
            column,
            "empty date pattern",
            Some("e.g. `yyyy/MM/dd/HH`"),
        ));
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut max_chars = 0;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // `''` is a quote; `'text'` is literal text.
            if chars.get(i + 1) == Some(&'\'') {
                out.push('\'');
                max_chars += 1;
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
                        max_chars += 1;
                        i += 2;
                    }
                    (Some('\''), _) => {
                        i += 1;
                        break;
                    }
                    (Some(q), _) => {
                        push_literal(&mut out, *q);
                        max_chars += 1;
                        i += 1;
                    }
                }
            }
            continue;
        }
        if RESERVED_PATTERN_CHARS.contains(&c) {
            return Err(err(
                column + i,
                format!("`{c}` is reserved in Java date patterns, so Firehose rejects it"),
                Some(&format!("quote it to write it as text: `'{c}'`")),
            ));
        }
        if !c.is_ascii_alphabetic() {
            push_literal(&mut out, c);
            max_chars += 1;
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|x| **x == c).count();
        let (spec, width) = match (c, run) {
            ('y' | 'u', 2) => ("%y", 2),
            ('y' | 'u', 1 | 3 | 4) => ("%Y", 4),
            ('M' | 'L', 1) => ("%-m", 2),
            ('M' | 'L', 2) => ("%m", 2),
            ('M' | 'L', 3) => ("%b", 3),
            ('M' | 'L', 4) => ("%B", 9),
            ('Q' | 'q', 1) => ("%q", 1),
            ('Q' | 'q', 2) => ("0%q", 2),
            ('d', 1) => ("%-d", 2),
            ('d', 2) => ("%d", 2),
            ('D', 1) => ("%-j", 3),
            ('D', 3) => ("%j", 3),
            ('E', 1..=3) => ("%a", 3),
            ('E', 4) => ("%A", 9),
            ('a', 1) => ("%p", 2),
            ('h', 1) => ("%-I", 2),
            ('h', 2) => ("%I", 2),
            ('H', 1) => ("%-H", 2),
            ('H', 2) => ("%H", 2),
            ('m', 1) => ("%-M", 2),
            ('m', 2) => ("%M", 2),
            ('s', 1) => ("%-S", 2),
            ('s', 2) => ("%S", 2),
            ('S', 3) => ("%3f", 3),
            ('S', 6) => ("%6f", 6),
            ('S', 9) => ("%9f", 9),
            ('Z', 1..=3) | ('x', 2) => ("%z", 5),
            ('Z', 5) | ('x', 3) => ("%:z", 6),
            _ => {
                let letters: String = std::iter::repeat_n(c, run).collect();
                let message = if JAVA_PATTERN_LETTERS.contains(c) {
                    format!("date pattern letters `{letters}` are not supported")
                } else {
                    format!("`{c}` is not a date pattern letter")
                };
                return Err(err(
                    column + i,
                    message,
                    Some(
                        "use yyyy, yy, MM, M, MMM, MMMM, dd, d, D, DDD, HH, H, hh, h, a, mm, ss, SSS, EEE, EEEE, Q, Z; quote literal text as 'text'",
                    ),
                ));
            }
        };
        out.push_str(spec);
        max_chars += width;
        i += run;
    }
    Ok(DatePattern {
        format: out,
        max_chars,
    })
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

    /// Renders a prefix at `at` as Firehose evaluates it (data or error), the random strings
    /// from seed 42, partition key `customer` = `acme/eu`.
    fn eval(prefix: &Prefix, at: DateTime<Utc>) -> String {
        let event = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
        let keys = |name: &str| match name {
            "customer" => Some("acme/eu"),
            _ => None,
        };
        prefix.render(&RenderValues {
            arrival: &at,
            event_time: Some(&event),
            random_seed: 42,
            error_output_type: "processing-failed",
            partition_key: &keys,
        })
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 9).unwrap()
    }

    fn data(prefix: &str) -> String {
        eval(
            &Prefix::data(prefix, &["customer"]).unwrap(),
            at(2026, 11, 5, 7, 8),
        )
    }

    /// The evaluated (data, error) prefixes of a sink at `when`.
    fn both(prefix: &str, error: Option<&str>, when: DateTime<Utc>) -> (String, String) {
        (
            eval(&Prefix::data(prefix, &[]).unwrap(), when),
            eval(&Prefix::error(error, prefix, &[]).unwrap(), when),
        )
    }

    fn first_error(prefix: &str, kind: PrefixKind) -> (usize, String) {
        let e = Prefix::parse(prefix, kind, &["customer"]).unwrap_err();
        (e[0].column, e[0].message.clone())
    }

    fn is_random(text: &str) -> bool {
        text.len() == RANDOM_STRING_CHARS
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    }

    // The examples of AWS's "Custom Prefixes for Amazon S3 Objects" page, evaluated at the
    // instant the page names (10:30 UTC on 27 August 2018, or the one its output shows).

    #[test]
    fn aws_example_unspecified_prefix_with_an_error_prefix() {
        let (data, error) = both(
            "",
            Some("myFirehoseFailures/!{firehose:error-output-type}/"),
            at(2018, 8, 27, 10, 30),
        );
        assert_eq!(data, "2018/08/27/10/");
        assert_eq!(error, "myFirehoseFailures/processing-failed/");
    }

    #[test]
    fn aws_example_expressions_without_an_error_prefix_are_invalid() {
        let e = Prefix::error(None, "!{timestamp:yyyy/MM/dd}", &[]).unwrap_err();
        assert_eq!(
            e[0].message,
            "a prefix with expressions needs an `error_output_prefix`"
        );
    }

    #[test]
    fn aws_example_random_string_and_repeated_timestamps() {
        let (data, error) = both(
            "myFirehose/DeliveredYear=!{timestamp:yyyy}/anyMonth/rand=!{firehose:random-string}",
            Some(
                "myFirehoseFailures/!{firehose:error-output-type}/!{timestamp:yyyy}/anyMonth/!{timestamp:dd}",
            ),
            at(2018, 8, 27, 10, 30),
        );
        let random = data
            .strip_prefix("myFirehose/DeliveredYear=2018/anyMonth/rand=")
            .unwrap();
        assert!(is_random(random), "{data}");
        assert_eq!(
            error,
            "myFirehoseFailures/processing-failed/2018/anyMonth/27"
        );
    }

    #[test]
    fn aws_example_hive_style_folders() {
        let when = at(2018, 7, 6, 23, 30);
        let (data, error) = both(
            "myPrefix/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/",
            Some(
                "myErrorPrefix/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/!{firehose:error-output-type}",
            ),
            when,
        );
        assert_eq!(data, "myPrefix/year=2018/month=07/day=06/hour=23/");
        assert_eq!(
            error,
            "myErrorPrefix/year=2018/month=07/day=06/hour=23/processing-failed"
        );
        // The page's older form of the same error prefix, with quoted literals.
        let (_, quoted) = both(
            "p/",
            Some(
                "myErrorPrefix/!{timestamp:'year='yyyy'/month='MM'/day='dd'/hour='HH}/!{firehose:error-output-type}",
            ),
            when,
        );
        assert_eq!(quoted, error);
    }

    #[test]
    fn aws_example_literal_prefix_without_an_error_prefix() {
        let (data, error) = both("myFirehosePrefix", None, at(2018, 8, 27, 10, 30));
        assert_eq!(data, "myFirehosePrefix/2018/08/27/10/");
        assert_eq!(error, "myFirehosePrefix/processing-failed/2018/08/27/10/");
        let (data, error) = both("raw/", None, at(2018, 8, 27, 10, 30));
        assert_eq!(data, "raw/2018/08/27/10/");
        assert_eq!(error, "raw/processing-failed/2018/08/27/10/");
        let (data, error) = both("", None, at(2018, 8, 27, 10, 30));
        assert_eq!(data, "2018/08/27/10/");
        assert_eq!(error, "processing-failed/2018/08/27/10/");
    }

    #[test]
    fn aws_example_error_output_type() {
        let (_, error) = both(
            "p/",
            Some("myPrefix/result=!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}"),
            at(2018, 8, 3, 10, 30),
        );
        assert_eq!(error, "myPrefix/result=processing-failed/2018/08/03");
        // Every occurrence is the same error string.
        let (_, twice) = both(
            "p/",
            Some("!{firehose:error-output-type}/x/!{firehose:error-output-type}/"),
            at(2018, 8, 3, 10, 30),
        );
        assert_eq!(twice, "processing-failed/x/processing-failed/");
    }

    #[test]
    fn aws_example_random_string_is_new_at_each_occurrence() {
        let prefix = Prefix::data(
            "myPrefix/!{firehose:random-string}/!{firehose:random-string}/",
            &[],
        )
        .unwrap();
        let key = eval(&prefix, at(2018, 8, 27, 10, 30));
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(parts[0], "myPrefix");
        assert!(is_random(parts[1]) && is_random(parts[2]), "{key}");
        assert_ne!(parts[1], parts[2]);
        // Rendering again with the same seed gives the same key (a rebuilt object).
        assert_eq!(key, eval(&prefix, at(2018, 8, 27, 10, 30)));
        assert_ne!(random_string(1, 0), random_string(2, 0));
        assert_ne!(random_string(1, 0), random_string(1, 1));
    }

    #[test]
    fn the_default_time_goes_to_the_data_prefix_only() {
        assert_eq!(data("raw/"), "raw/2026/11/05/07/");
        assert_eq!(data("raw"), "raw/2026/11/05/07/");
        assert_eq!(data(""), "2026/11/05/07/");
        assert_eq!(
            data("k/!{partitionKeyFromQuery:customer}/"),
            "k/acme_eu/",
            "dynamic partitioning: no time appended"
        );
        assert_eq!(data("t/!{timestamp:yyyy}/"), "t/2026/");
        let (_, error) = both(
            "p/",
            Some("errors/!{firehose:error-output-type}/"),
            at(2026, 11, 5, 7, 8),
        );
        assert_eq!(error, "errors/processing-failed/");
        let (_, literal) = both("p/", Some("errors/"), at(2026, 11, 5, 7, 8));
        assert_eq!(literal, "errors/");
    }

    #[test]
    fn timestamps_use_java_letters_and_quoted_literals() {
        assert_eq!(
            data("streaming/!{timestamp:yyyy/MM/}"),
            "streaming/2026/11/"
        );
        assert_eq!(
            data("s/!{timestamp:'year='yyyy'/month='M'/day='d}/"),
            "s/year=2026/month=11/day=5/"
        );
        assert_eq!(
            data("s/!{timestamp:yy-MM-dd HH.mm.ss}/"),
            "s/26-11-05 07.08.09/"
        );
        assert_eq!(data("s/!{timestamp:'it''s' 100%}/"), "s/it's 100%/");
        assert_eq!(data("s/!{timestamp:D/DDD/uuuu}/"), "s/309/309/2026/");
        assert_eq!(
            data("s/!{timestamp:EEE MMM h a Q QQ}/"),
            "s/Thu Nov 7 AM 4 04/"
        );
        assert_eq!(data("s/!{timestamp:'{#[]'}/"), "s/{#[]/");
    }

    #[test]
    fn event_time_partitions() {
        assert_eq!(data("e/!{eventTimestamp:yyyy/MM}/"), "e/2025/01/");
    }

    #[test]
    fn error_output_type_belongs_to_the_error_prefix() {
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
    fn reserved_pattern_characters_are_rejected() {
        for (prefix, column) in [
            ("a/!{timestamp:yyyy#MM}/", 19),
            ("a/!{timestamp:yyyy[MM]}/", 19),
            ("a/!{timestamp:yy]}/", 17),
            ("a/!{timestamp:{yyyy}/", 15),
        ] {
            let (at, message) = first_error(prefix, PrefixKind::Data);
            assert_eq!(at, column, "{prefix}");
            assert!(
                message.contains("is reserved in Java date patterns"),
                "{message}"
            );
        }
        // The sequence `!{` only opens expressions.
        assert_eq!(first_error("a/!{b/", PrefixKind::Data).0, 3);
    }

    #[test]
    fn prefixes_longer_than_firehose_allows_are_rejected() {
        let long = "a".repeat(500);
        let ok = Prefix::data(&format!("{long}/!{{timestamp:yyyy}}/"), &[]).unwrap();
        assert_eq!(ok.length_error(), None);
        // 500 + `/` + a month name of up to 9 characters + `/` passes 512 at the pattern.
        let too_long = Prefix::data(&format!("{long}/!{{timestamp:MMMM/EEEE}}/"), &[]).unwrap();
        let e = too_long.length_error().unwrap();
        assert_eq!(e.column, 502);
        assert!(
            e.message.contains("evaluates to up to 521 characters"),
            "{}",
            e.message
        );
        // The appended `yyyy/MM/dd/HH/` counts too.
        let appended = Prefix::data(&format!("{long}/"), &[]).unwrap();
        let e = appended.length_error().unwrap();
        assert_eq!(e.column, 1);
        assert!(
            e.message.contains("Firehose's rules append"),
            "{}",
            e.message
        );
        // A literal past the limit: at its 513th character.
        let e = Prefix::data(&"b".repeat(600), &[])
            .unwrap()
            .length_error()
            .unwrap();
        assert_eq!(e.column, 513);
        // Partition values share what the rest leaves.
        let keyed = Prefix::data("k/!{partitionKeyFromQuery:customer}/", &["customer"]).unwrap();
        assert_eq!(
            keyed.partition_value_budget(),
            Some(MAX_EVALUATED_CHARS - 3)
        );
    }

    #[test]
    fn mistakes_point_at_their_column() {
        assert_eq!(
            first_error("a/!{timestamp:yyyy/qqq}/", PrefixKind::Data),
            (
                20,
                "date pattern letters `qqq` are not supported".to_owned()
            )
        );
        assert_eq!(
            first_error("a/!{timestamp:yyyy/tt}/", PrefixKind::Data),
            (20, "`t` is not a date pattern letter".to_owned())
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
