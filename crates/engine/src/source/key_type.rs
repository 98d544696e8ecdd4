//! Bookmark key values checked against their column's declared type, before they reach SQL:
//! values set by hand (`pipectl state set`) and backfill bounds (`--backfill-from/-to`).
//!
//! The declared type is the database's own spelling (PostgreSQL `format_type()`, MySQL
//! `column_type`), stored with every bookmark a run commits. A value the database would reject
//! (`notanumber` for a `bigint` key) is refused here with the type it needs, instead of failing
//! the next run.

use std::cmp::Ordering;

use arrow::compute::kernels::cast_utils::{parse_decimal, string_to_datetime};
use arrow::datatypes::Decimal128Type;
use chrono::{NaiveDate, NaiveTime, Utc};

/// What a key column's values are, as far as checking and ordering text values goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// Integers from `min` to `max`.
    Integer {
        /// Smallest value.
        min: i128,
        /// Largest value.
        max: i128,
    },
    /// Exact decimals with this many digits after the point (`None`: unconstrained).
    Decimal(Option<i8>),
    /// Floating point.
    Float,
    /// Calendar dates.
    Date,
    /// Timestamps, with or without a time zone.
    Timestamp,
    /// Times of day (or MySQL durations).
    Time,
    /// Booleans.
    Bool,
    /// UUIDs.
    Uuid,
    /// Anything else: text, compared by the database's collation.
    Text,
}

/// A value of a [`KeyType`], ordered as the database orders it (text excepted: see
/// [`KeyType::compare`]).
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum KeyValue {
    Number(i128),
    Float(f64),
    Micros(i64),
    Text(String),
}

impl KeyType {
    /// The type of a column declared as `declared` (either dialect's spelling).
    pub fn of(declared: &str) -> KeyType {
        let lower = declared.trim().to_ascii_lowercase();
        let base: String = lower
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ' ')
            .collect::<String>()
            .trim()
            .to_owned();
        let unsigned = lower.contains("unsigned");
        let ints = |bits: u32| {
            if unsigned {
                KeyType::Integer {
                    min: 0,
                    max: (1i128 << bits) - 1,
                }
            } else {
                KeyType::Integer {
                    min: -(1i128 << (bits - 1)),
                    max: (1i128 << (bits - 1)) - 1,
                }
            }
        };
        let first = base.split(' ').next().unwrap_or_default();
        match first {
            "tinyint" => ints(8),
            "smallint" | "int2" | "year" => ints(16),
            "mediumint" => ints(24),
            "integer" | "int" | "int4" | "serial" => ints(32),
            "bigint" | "int8" | "bigserial" => ints(64),
            "numeric" | "decimal" | "dec" | "fixed" => KeyType::Decimal(
                lower
                    .split_once('(')
                    .and_then(|(_, rest)| rest.split_once(')'))
                    .and_then(|(args, _)| args.split(',').nth(1))
                    .and_then(|s| s.trim().parse().ok())
                    .or_else(|| lower.contains('(').then_some(0)),
            ),
            "real" | "float" | "float4" | "float8" | "double" => KeyType::Float,
            "date" => KeyType::Date,
            "timestamp" | "timestamptz" | "datetime" => KeyType::Timestamp,
            "time" | "timetz" => KeyType::Time,
            "boolean" | "bool" => KeyType::Bool,
            "uuid" => KeyType::Uuid,
            _ => KeyType::Text,
        }
    }

    /// What a value must look like, for messages: `an integer`, `a timestamp such as ...`.
    pub fn expected(self) -> String {
        match self {
            KeyType::Integer { min, max } => format!("an integer from {min} to {max}"),
            KeyType::Decimal(_) => "a decimal number such as 12.50".to_owned(),
            KeyType::Float => "a number such as 1.5".to_owned(),
            KeyType::Date => "a date such as 2026-01-31".to_owned(),
            KeyType::Timestamp => {
                "a timestamp such as 2026-01-31 10:00:00 or 2026-01-31T10:00:00+00:00".to_owned()
            }
            KeyType::Time => "a time such as 10:30:00".to_owned(),
            KeyType::Bool => "true or false".to_owned(),
            KeyType::Uuid => "a UUID such as 123e4567-e89b-12d3-a456-426614174000".to_owned(),
            KeyType::Text => "text".to_owned(),
        }
    }

    fn parse(self, value: &str) -> Option<KeyValue> {
        let v = value.trim();
        match self {
            KeyType::Integer { min, max } => v
                .parse::<i128>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .map(KeyValue::Number),
            KeyType::Decimal(Some(scale)) => parse_decimal::<Decimal128Type>(v, 38, scale)
                .ok()
                .map(KeyValue::Number),
            KeyType::Decimal(None) | KeyType::Float => v
                .parse::<f64>()
                .ok()
                .filter(|f| !f.is_nan())
                .map(KeyValue::Float),
            KeyType::Date => NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| KeyValue::Micros(t.and_utc().timestamp_micros())),
            KeyType::Timestamp => {
                let date_only = NaiveDate::parse_from_str(v, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|t| t.and_utc());
                date_only
                    .or_else(|| string_to_datetime(&Utc, v).ok())
                    .map(|t| KeyValue::Micros(t.timestamp_micros()))
            }
            KeyType::Time => ["%H:%M:%S%.f", "%H:%M"]
                .iter()
                .find_map(|f| NaiveTime::parse_from_str(v, f).ok())
                .map(|t| KeyValue::Text(t.format("%H:%M:%S%.6f").to_string())),
            KeyType::Bool => matches!(
                v.to_ascii_lowercase().as_str(),
                "true" | "false" | "t" | "f" | "1" | "0"
            )
            .then(|| KeyValue::Text(v.to_owned())),
            KeyType::Uuid => (v.len() == 36
                && v.char_indices().all(|(i, c)| {
                    if matches!(i, 8 | 13 | 18 | 23) {
                        c == '-'
                    } else {
                        c.is_ascii_hexdigit()
                    }
                }))
            .then(|| KeyValue::Text(v.to_ascii_lowercase())),
            KeyType::Text => Some(KeyValue::Text(v.to_owned())),
        }
    }

    /// Checks that `value` is one the database reads as this type; the error says which type
    /// it needs.
    pub fn check(self, value: &str) -> Result<(), String> {
        match self.parse(value) {
            Some(_) => Ok(()),
            None => Err(format!("`{value}` is not {}", self.expected())),
        }
    }

    /// How `a` compares with `b` (both already [checked](Self::check)); `None` for text, whose
    /// order is the database's collation.
    pub fn compare(self, a: &str, b: &str) -> Option<Ordering> {
        if self == KeyType::Text {
            return None;
        }
        self.parse(a)?.partial_cmp(&self.parse(b)?)
    }
}

/// Checks a backfill range `[from, to)` against the first key's declared type: both bounds are
/// values of that type, and `from` is below `to` (an empty or inverted range is refused, since it
/// would land an empty file). `what` names the key in messages (`table public.events, key `id``).
pub fn check_range(declared: &str, from: &str, to: &str, what: &str) -> Result<(), String> {
    let key = KeyType::of(declared);
    for (flag, value) in [("--backfill-from", from), ("--backfill-to", to)] {
        key.check(value)
            .map_err(|e| format!("{what} is `{declared}`: {flag} {e}"))?;
    }
    let inverted = match key.compare(from, to) {
        Some(order) => order != Ordering::Less,
        None => from == to,
    };
    if inverted {
        return Err(format!(
            "{what}: the range from {from} to {to} is empty; --backfill-from must be below --backfill-to (the upper bound is exclusive)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_of_both_dialects() {
        assert_eq!(
            KeyType::of("bigint"),
            KeyType::Integer {
                min: i64::MIN as i128,
                max: i64::MAX as i128
            }
        );
        assert_eq!(
            KeyType::of("int(10) unsigned"),
            KeyType::Integer {
                min: 0,
                max: u32::MAX as i128
            }
        );
        assert_eq!(KeyType::of("numeric(8,2)"), KeyType::Decimal(Some(2)));
        assert_eq!(KeyType::of("decimal(10)"), KeyType::Decimal(Some(0)));
        assert_eq!(KeyType::of("numeric"), KeyType::Decimal(None));
        assert_eq!(KeyType::of("timestamp with time zone"), KeyType::Timestamp);
        assert_eq!(KeyType::of("datetime(6)"), KeyType::Timestamp);
        assert_eq!(KeyType::of("double precision"), KeyType::Float);
        assert_eq!(KeyType::of("character varying(20)"), KeyType::Text);
    }

    #[test]
    fn values_are_checked_and_ordered_by_type() {
        let bigint = KeyType::of("bigint");
        assert!(bigint.check("42").is_ok());
        assert_eq!(
            bigint.check("notanumber").unwrap_err(),
            format!(
                "`notanumber` is not an integer from {} to {}",
                i64::MIN,
                i64::MAX
            )
        );
        assert!(KeyType::of("smallint").check("40000").is_err());
        assert_eq!(bigint.compare("9", "10"), Some(Ordering::Less));
        let ts = KeyType::of("timestamp with time zone");
        assert!(ts.check("2026-01-10").is_ok());
        assert!(ts.check("2026-01-10 10:00:00+02").is_ok());
        assert!(ts.check("42").is_err());
        assert_eq!(
            ts.compare("2026-01-10", "2026-01-09 23:00:00"),
            Some(Ordering::Greater)
        );
        assert!(KeyType::of("numeric(8,2)").check("12.345x").is_err());
        assert_eq!(KeyType::of("text").compare("a", "b"), None);
    }

    #[test]
    fn backfill_ranges_must_fit_the_key_and_not_be_empty() {
        assert!(check_range("bigint", "10", "20", "t").is_ok());
        let wrong =
            check_range("bigint", "2026-01-01", "2026-02-01", "table a.t, key `id`").unwrap_err();
        assert!(
            wrong.starts_with(
                "table a.t, key `id` is `bigint`: --backfill-from `2026-01-01` is not an integer"
            ),
            "{wrong}"
        );
        let inverted = check_range("date", "2026-02-01", "2026-01-01", "t").unwrap_err();
        assert!(inverted.contains("is empty"), "{inverted}");
        assert!(check_range("bigint", "9", "10", "t").is_ok());
        assert!(check_range("text", "a", "a", "t").is_err());
    }
}
