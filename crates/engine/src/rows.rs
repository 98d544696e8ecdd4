//! Building Arrow columns from database values, one value at a time, with exact conversions.
//!
//! Database drivers hand out values in a handful of storage shapes (integer, real, text, blob);
//! the target Arrow type comes from the declared column type. A value that does not convert is
//! an error naming what was expected, never a silent NULL.

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float64Builder, Int64Builder, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::compute::kernels::cast_utils::parse_decimal;
use arrow::datatypes::{DataType, Decimal128Type, TimeUnit};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

/// A value as a database driver hands it out.
#[derive(Debug, Clone, Copy)]
pub enum SqlValue<'a> {
    /// NULL.
    Null,
    /// A 64-bit integer.
    Int(i64),
    /// A double.
    Real(f64),
    /// Text.
    Text(&'a str),
    /// Bytes.
    Blob(&'a [u8]),
}

impl SqlValue<'_> {
    fn describe(&self) -> String {
        match self {
            SqlValue::Null => "NULL".to_owned(),
            SqlValue::Int(i) => format!("integer {i}"),
            SqlValue::Real(f) => format!("real {f}"),
            SqlValue::Text(t) => {
                let shown: String = t.chars().take(60).collect();
                format!("text {shown:?}")
            }
            SqlValue::Blob(b) => format!("blob of {} bytes", b.len()),
        }
    }
}

const EPOCH: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(d) => d,
    None => panic!("1970-01-01 is a valid date"),
};

/// Appends values of one column into the Arrow builder for its type.
pub enum ColumnBuilder {
    /// Integers.
    Int64(Int64Builder),
    /// Doubles.
    Float64(Float64Builder),
    /// Booleans.
    Boolean(BooleanBuilder),
    /// Exact decimals with precision and scale.
    Decimal(Decimal128Builder, u8, i8),
    /// Text.
    Utf8(StringBuilder),
    /// Bytes.
    Binary(BinaryBuilder),
    /// Dates.
    Date32(Date32Builder),
    /// Times of day, microseconds.
    Time64(Time64MicrosecondBuilder),
    /// Timestamps, microseconds, with the column's zone (`None`: local time without zone).
    Timestamp(TimestampMicrosecondBuilder, Option<Arc<str>>),
}

impl ColumnBuilder {
    /// A builder for `data_type`, or `None` if the type is not one databases produce here.
    pub fn new(data_type: &DataType, capacity: usize) -> Option<Self> {
        Some(match data_type {
            DataType::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(capacity)),
            DataType::Float64 => ColumnBuilder::Float64(Float64Builder::with_capacity(capacity)),
            DataType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::with_capacity(capacity)),
            DataType::Decimal128(p, s) => ColumnBuilder::Decimal(
                Decimal128Builder::with_capacity(capacity)
                    .with_precision_and_scale(*p, *s)
                    .ok()?,
                *p,
                *s,
            ),
            DataType::Utf8 => {
                ColumnBuilder::Utf8(StringBuilder::with_capacity(capacity, capacity * 16))
            }
            DataType::Binary => {
                ColumnBuilder::Binary(BinaryBuilder::with_capacity(capacity, capacity * 16))
            }
            DataType::Date32 => ColumnBuilder::Date32(Date32Builder::with_capacity(capacity)),
            DataType::Time64(TimeUnit::Microsecond) => {
                ColumnBuilder::Time64(Time64MicrosecondBuilder::with_capacity(capacity))
            }
            DataType::Timestamp(TimeUnit::Microsecond, tz) => ColumnBuilder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone_opt(tz.clone()),
                tz.clone(),
            ),
            _ => return None,
        })
    }

    /// Appends one value; the error says what was expected and what was found.
    pub fn append(&mut self, value: SqlValue<'_>) -> Result<(), String> {
        if let SqlValue::Null = value {
            self.append_null();
            return Ok(());
        }
        let mismatch = |expected: &str| format!("expected {expected}, found {}", value.describe());
        match self {
            ColumnBuilder::Int64(b) => match value {
                SqlValue::Int(i) => b.append_value(i),
                SqlValue::Text(t) => {
                    b.append_value(t.trim().parse().map_err(|_| mismatch("an integer"))?)
                }
                _ => return Err(mismatch("an integer")),
            },
            ColumnBuilder::Float64(b) => match value {
                SqlValue::Int(i) => b.append_value(i as f64),
                SqlValue::Real(f) => b.append_value(f),
                SqlValue::Text(t) => {
                    b.append_value(t.trim().parse().map_err(|_| mismatch("a number"))?)
                }
                _ => return Err(mismatch("a number")),
            },
            ColumnBuilder::Boolean(b) => match value {
                SqlValue::Int(0) => b.append_value(false),
                SqlValue::Int(1) => b.append_value(true),
                SqlValue::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
                    "true" | "t" | "1" => b.append_value(true),
                    "false" | "f" | "0" => b.append_value(false),
                    _ => return Err(mismatch("a boolean")),
                },
                _ => return Err(mismatch("a boolean (0 or 1)")),
            },
            ColumnBuilder::Decimal(b, p, s) => {
                // Doubles print as the shortest text that reads back the same, so a value
                // stored as 4.99 becomes exactly 4.99, not 4.9900000000000002131628.
                let text = match value {
                    SqlValue::Int(i) => i.to_string(),
                    SqlValue::Real(f) => format!("{f}"),
                    SqlValue::Text(t) => t.trim().to_owned(),
                    SqlValue::Blob(_) | SqlValue::Null => return Err(mismatch("a decimal number")),
                };
                let parsed = parse_decimal::<Decimal128Type>(&text, *p, *s)
                    .map_err(|_| format!("{} does not fit decimal({p},{s})", value.describe()))?;
                b.append_value(parsed)
            }
            ColumnBuilder::Utf8(b) => match value {
                SqlValue::Text(t) => b.append_value(t),
                SqlValue::Int(i) => b.append_value(i.to_string()),
                SqlValue::Real(f) => b.append_value(format!("{f}")),
                SqlValue::Blob(bytes) => {
                    b.append_value(std::str::from_utf8(bytes).map_err(|_| mismatch("UTF-8 text"))?)
                }
                SqlValue::Null => b.append_null(),
            },
            ColumnBuilder::Binary(b) => match value {
                SqlValue::Blob(bytes) => b.append_value(bytes),
                SqlValue::Text(t) => b.append_value(t.as_bytes()),
                _ => return Err(mismatch("bytes")),
            },
            ColumnBuilder::Date32(b) => match value {
                SqlValue::Text(t) => {
                    let date = parse_date(t).ok_or_else(|| mismatch("a date (YYYY-MM-DD)"))?;
                    b.append_value((date - EPOCH).num_days() as i32)
                }
                _ => return Err(mismatch("a date (YYYY-MM-DD)")),
            },
            ColumnBuilder::Time64(b) => match value {
                SqlValue::Text(t) => {
                    let time = NaiveTime::parse_from_str(t.trim(), "%H:%M:%S%.f")
                        .map_err(|_| mismatch("a time (HH:MM:SS)"))?;
                    b.append_value(
                        time.num_seconds_from_midnight() as i64 * 1_000_000
                            + (time.nanosecond() / 1_000) as i64,
                    )
                }
                _ => return Err(mismatch("a time (HH:MM:SS)")),
            },
            ColumnBuilder::Timestamp(b, _) => match value {
                SqlValue::Text(t) => {
                    b.append_value(parse_timestamp_micros(t).ok_or_else(|| {
                        mismatch("a timestamp (YYYY-MM-DD HH:MM:SS[.ffffff][+HH:MM])")
                    })?)
                }
                // Integers in a timestamp column are Unix seconds, SQLite's other common convention.
                SqlValue::Int(secs) => b.append_value(
                    secs.checked_mul(1_000_000)
                        .ok_or_else(|| mismatch("a timestamp"))?,
                ),
                _ => return Err(mismatch("a timestamp")),
            },
        }
        Ok(())
    }

    /// Appends NULL.
    pub fn append_null(&mut self) {
        match self {
            ColumnBuilder::Int64(b) => b.append_null(),
            ColumnBuilder::Float64(b) => b.append_null(),
            ColumnBuilder::Boolean(b) => b.append_null(),
            ColumnBuilder::Decimal(b, ..) => b.append_null(),
            ColumnBuilder::Utf8(b) => b.append_null(),
            ColumnBuilder::Binary(b) => b.append_null(),
            ColumnBuilder::Date32(b) => b.append_null(),
            ColumnBuilder::Time64(b) => b.append_null(),
            ColumnBuilder::Timestamp(b, _) => b.append_null(),
        }
    }

    /// The column built so far; the builder is left empty for the next batch.
    pub fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Int64(b) => Arc::new(b.finish()),
            ColumnBuilder::Float64(b) => Arc::new(b.finish()),
            ColumnBuilder::Boolean(b) => Arc::new(b.finish()),
            ColumnBuilder::Decimal(b, ..) => Arc::new(b.finish()),
            ColumnBuilder::Utf8(b) => Arc::new(b.finish()),
            ColumnBuilder::Binary(b) => Arc::new(b.finish()),
            ColumnBuilder::Date32(b) => Arc::new(b.finish()),
            ColumnBuilder::Time64(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b, tz) => Arc::new(b.finish().with_timezone_opt(tz.clone())),
        }
    }

    /// Rows appended since the last finish.
    pub fn len(&self) -> usize {
        match self {
            ColumnBuilder::Int64(b) => b.len(),
            ColumnBuilder::Float64(b) => b.len(),
            ColumnBuilder::Boolean(b) => b.len(),
            ColumnBuilder::Decimal(b, ..) => b.len(),
            ColumnBuilder::Utf8(b) => b.len(),
            ColumnBuilder::Binary(b) => b.len(),
            ColumnBuilder::Date32(b) => b.len(),
            ColumnBuilder::Time64(b) => b.len(),
            ColumnBuilder::Timestamp(b, _) => b.len(),
        }
    }

    /// True when nothing was appended since the last finish.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn parse_date(text: &str) -> Option<NaiveDate> {
    let t = text.trim();
    NaiveDate::parse_from_str(t.get(..10).unwrap_or(t), "%Y-%m-%d").ok()
}

/// Microseconds since the Unix epoch in UTC. Text with an offset is converted to UTC; text
/// without one is taken as it stands (UTC for zoned columns, wall-clock time otherwise).
pub fn parse_timestamp_micros(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.timestamp_micros());
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f%#z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%#z",
    ] {
        if let Ok(dt) = DateTime::parse_from_str(t, format) {
            return Some(dt.timestamp_micros());
        }
    }
    let naive = t.strip_suffix('Z').unwrap_or(t);
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(naive, format) {
            return Some(dt.and_utc().timestamp_micros());
        }
    }
    parse_date(t)
        .filter(|_| t.len() == 10)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Decimal128Type as D, Int64Type, TimestampMicrosecondType};

    #[test]
    fn decimals_stay_exact() {
        let mut b = ColumnBuilder::new(&DataType::Decimal128(8, 2), 4).unwrap();
        b.append(SqlValue::Real(4.99)).unwrap();
        b.append(SqlValue::Text("12.30")).unwrap();
        b.append(SqlValue::Int(7)).unwrap();
        b.append(SqlValue::Null).unwrap();
        let err = b.append(SqlValue::Text("1234567.891")).unwrap_err();
        assert!(err.contains("decimal(8,2)"), "{err}");
        let a = b.finish();
        let a = a.as_primitive::<D>();
        assert_eq!(a.value(0), 499);
        assert_eq!(a.value(1), 1230);
        assert_eq!(a.value(2), 700);
        assert!(a.is_null(3));
    }

    #[test]
    fn timestamps_and_mismatches() {
        let mut b = ColumnBuilder::new(
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            2,
        )
        .unwrap();
        b.append(SqlValue::Text("2026-11-25 20:34:06.5+01:00"))
            .unwrap();
        b.append(SqlValue::Text("2026-11-25T19:34:06.5Z")).unwrap();
        let a = b.finish();
        let a = a.as_primitive::<TimestampMicrosecondType>();
        assert_eq!(a.value(0), a.value(1));
        let mut ints = ColumnBuilder::new(&DataType::Int64, 1).unwrap();
        assert_eq!(
            ints.append(SqlValue::Text("abc")).unwrap_err(),
            "expected an integer, found text \"abc\""
        );
        ints.append(SqlValue::Int(5)).unwrap();
        assert_eq!(ints.finish().as_primitive::<Int64Type>().value(0), 5);
    }
}
