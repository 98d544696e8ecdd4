//! Arrow column builders for database values: the one set every database source appends to.
//!
//! Servers (PostgreSQL, MySQL) decode their own binary wire formats and append typed values
//! (`append_i64`, `append_micros`, ...); SQLite hands out values in a few storage shapes
//! ([`SqlValue`]) that [`ColumnValues::append_sql`] converts exactly to the declared type. A
//! value that does not convert is an error naming what was expected, never a silent NULL.

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float32Builder, Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder,
    StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder, UInt8Builder,
    UInt16Builder, UInt32Builder, UInt64Builder,
};
use arrow::compute::kernels::cast_utils::parse_decimal;
use arrow::datatypes::{DataType, Decimal128Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

use crate::error::{Error, Result};

const EPOCH: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(d) => d,
    None => panic!("1970-01-01 is a valid date"),
};

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

/// Arrow builders for one column, appended to by the dialect decoders.
pub enum ColumnValues {
    /// `Int8`.
    I8(Int8Builder),
    /// `Int16`.
    I16(Int16Builder),
    /// `Int32`.
    I32(Int32Builder),
    /// `Int64`.
    I64(Int64Builder),
    /// `UInt8`.
    U8(UInt8Builder),
    /// `UInt16`.
    U16(UInt16Builder),
    /// `UInt32`.
    U32(UInt32Builder),
    /// `UInt64`.
    U64(UInt64Builder),
    /// `Float32`.
    F32(Float32Builder),
    /// `Float64`.
    F64(Float64Builder),
    /// `Boolean`.
    Bool(BooleanBuilder),
    /// `Decimal128(p, s)`, with its precision and scale for parsing text.
    Decimal(Decimal128Builder, u8, i8),
    /// `Utf8`.
    Text(StringBuilder),
    /// `Binary`.
    Binary(BinaryBuilder),
    /// `Date32`.
    Date(Date32Builder),
    /// `Time64(µs)`.
    Time(Time64MicrosecondBuilder),
    /// `Timestamp(µs, tz)`.
    Timestamp(TimestampMicrosecondBuilder),
}

macro_rules! each_builder {
    ($self:expr, $b:ident => $e:expr) => {
        match $self {
            ColumnValues::I8($b) => $e,
            ColumnValues::I16($b) => $e,
            ColumnValues::I32($b) => $e,
            ColumnValues::I64($b) => $e,
            ColumnValues::U8($b) => $e,
            ColumnValues::U16($b) => $e,
            ColumnValues::U32($b) => $e,
            ColumnValues::U64($b) => $e,
            ColumnValues::F32($b) => $e,
            ColumnValues::F64($b) => $e,
            ColumnValues::Bool($b) => $e,
            ColumnValues::Decimal($b, ..) => $e,
            ColumnValues::Text($b) => $e,
            ColumnValues::Binary($b) => $e,
            ColumnValues::Date($b) => $e,
            ColumnValues::Time($b) => $e,
            ColumnValues::Timestamp($b) => $e,
        }
    };
}

impl ColumnValues {
    /// Builders for every column of `schema`.
    pub fn for_schema(schema: &SchemaRef, capacity: usize) -> Result<Vec<ColumnValues>> {
        schema
            .fields()
            .iter()
            .map(|f| ColumnValues::new(f.data_type(), capacity))
            .collect()
    }

    /// A builder for `data_type`; an error for a type no database source lands.
    pub fn new(data_type: &DataType, capacity: usize) -> Result<Self> {
        use arrow::datatypes::TimeUnit::Microsecond;
        Ok(match data_type {
            DataType::Int8 => ColumnValues::I8(Int8Builder::with_capacity(capacity)),
            DataType::Int16 => ColumnValues::I16(Int16Builder::with_capacity(capacity)),
            DataType::Int32 => ColumnValues::I32(Int32Builder::with_capacity(capacity)),
            DataType::Int64 => ColumnValues::I64(Int64Builder::with_capacity(capacity)),
            DataType::UInt8 => ColumnValues::U8(UInt8Builder::with_capacity(capacity)),
            DataType::UInt16 => ColumnValues::U16(UInt16Builder::with_capacity(capacity)),
            DataType::UInt32 => ColumnValues::U32(UInt32Builder::with_capacity(capacity)),
            DataType::UInt64 => ColumnValues::U64(UInt64Builder::with_capacity(capacity)),
            DataType::Float32 => ColumnValues::F32(Float32Builder::with_capacity(capacity)),
            DataType::Float64 => ColumnValues::F64(Float64Builder::with_capacity(capacity)),
            DataType::Boolean => ColumnValues::Bool(BooleanBuilder::with_capacity(capacity)),
            DataType::Decimal128(p, s) => ColumnValues::Decimal(
                Decimal128Builder::with_capacity(capacity).with_precision_and_scale(*p, *s)?,
                *p,
                *s,
            ),
            DataType::Utf8 => {
                ColumnValues::Text(StringBuilder::with_capacity(capacity, capacity * 16))
            }
            DataType::Binary => {
                ColumnValues::Binary(BinaryBuilder::with_capacity(capacity, capacity * 16))
            }
            DataType::Date32 => ColumnValues::Date(Date32Builder::with_capacity(capacity)),
            DataType::Time64(Microsecond) => {
                ColumnValues::Time(Time64MicrosecondBuilder::with_capacity(capacity))
            }
            DataType::Timestamp(Microsecond, tz) => ColumnValues::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone_opt(tz.clone()),
            ),
            other => return Err(Error::internal(format!("no builder for {other}"))),
        })
    }

    /// Appends one value in a driver's storage shape (SQLite's), converting it exactly to the
    /// column's type; the error says what was expected and what was found.
    pub fn append_sql(&mut self, value: SqlValue<'_>) -> std::result::Result<(), String> {
        if let SqlValue::Null = value {
            self.append_null();
            return Ok(());
        }
        let mismatch = |expected: &str| format!("expected {expected}, found {}", value.describe());
        match self {
            ColumnValues::I64(b) => match value {
                SqlValue::Int(i) => b.append_value(i),
                SqlValue::Text(t) => {
                    b.append_value(t.trim().parse().map_err(|_| mismatch("an integer"))?)
                }
                _ => return Err(mismatch("an integer")),
            },
            ColumnValues::F64(b) => match value {
                SqlValue::Int(i) => b.append_value(i as f64),
                SqlValue::Real(f) => b.append_value(f),
                SqlValue::Text(t) => {
                    b.append_value(t.trim().parse().map_err(|_| mismatch("a number"))?)
                }
                _ => return Err(mismatch("a number")),
            },
            ColumnValues::Bool(b) => match value {
                SqlValue::Int(0) => b.append_value(false),
                SqlValue::Int(1) => b.append_value(true),
                SqlValue::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
                    "true" | "t" | "1" => b.append_value(true),
                    "false" | "f" | "0" => b.append_value(false),
                    _ => return Err(mismatch("a boolean")),
                },
                _ => return Err(mismatch("a boolean (0 or 1)")),
            },
            ColumnValues::Decimal(b, p, s) => {
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
            ColumnValues::Text(b) => match value {
                SqlValue::Text(t) => b.append_value(t),
                SqlValue::Int(i) => b.append_value(i.to_string()),
                SqlValue::Real(f) => b.append_value(format!("{f}")),
                SqlValue::Blob(bytes) => {
                    b.append_value(std::str::from_utf8(bytes).map_err(|_| mismatch("UTF-8 text"))?)
                }
                SqlValue::Null => b.append_null(),
            },
            ColumnValues::Binary(b) => match value {
                SqlValue::Blob(bytes) => b.append_value(bytes),
                SqlValue::Text(t) => b.append_value(t.as_bytes()),
                _ => return Err(mismatch("bytes")),
            },
            ColumnValues::Date(b) => match value {
                SqlValue::Text(t) => {
                    let date = parse_date(t).ok_or_else(|| mismatch("a date (YYYY-MM-DD)"))?;
                    b.append_value((date - EPOCH).num_days() as i32)
                }
                _ => return Err(mismatch("a date (YYYY-MM-DD)")),
            },
            ColumnValues::Time(b) => match value {
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
            ColumnValues::Timestamp(b) => match value {
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
            // Narrow and unsigned integers come from servers, which decode their own wire
            // format; driver values of these shapes never meet them.
            ColumnValues::I8(_)
            | ColumnValues::I16(_)
            | ColumnValues::I32(_)
            | ColumnValues::U8(_)
            | ColumnValues::U16(_)
            | ColumnValues::U32(_)
            | ColumnValues::U64(_)
            | ColumnValues::F32(_) => return Err(mismatch("a value of the column's width")),
        }
        Ok(())
    }

    /// Appends NULL.
    pub fn append_null(&mut self) {
        each_builder!(self, b => b.append_null())
    }

    /// Appends an integer, checking it fits the column's width.
    pub fn append_i64(&mut self, v: i64) -> std::result::Result<(), String> {
        let range = || format!("integer {v} does not fit the column");
        match self {
            ColumnValues::I8(b) => b.append_value(v.try_into().map_err(|_| range())?),
            ColumnValues::I16(b) => b.append_value(v.try_into().map_err(|_| range())?),
            ColumnValues::I32(b) => b.append_value(v.try_into().map_err(|_| range())?),
            ColumnValues::I64(b) => b.append_value(v),
            ColumnValues::Bool(b) => b.append_value(v != 0),
            _ => return Err(format!("integer {v} in a non-integer column")),
        }
        Ok(())
    }

    /// Appends an unsigned integer, checking it fits the column's width.
    pub fn append_u64(&mut self, v: u64) -> std::result::Result<(), String> {
        let range = || format!("integer {v} does not fit the column");
        match self {
            ColumnValues::U8(b) => b.append_value(v.try_into().map_err(|_| range())?),
            ColumnValues::U16(b) => b.append_value(v.try_into().map_err(|_| range())?),
            ColumnValues::U32(b) => b.append_value(v.try_into().map_err(|_| range())?),
            ColumnValues::U64(b) => b.append_value(v),
            _ => return Err(format!("integer {v} in a non-integer column")),
        }
        Ok(())
    }

    /// Appends a floating-point value.
    pub fn append_f64(&mut self, v: f64) -> std::result::Result<(), String> {
        match self {
            ColumnValues::F32(b) => b.append_value(v as f32),
            ColumnValues::F64(b) => b.append_value(v),
            _ => return Err(format!("number {v} in a non-float column")),
        }
        Ok(())
    }

    /// Appends a boolean.
    pub fn append_bool(&mut self, v: bool) -> std::result::Result<(), String> {
        match self {
            ColumnValues::Bool(b) => b.append_value(v),
            _ => return Err("boolean in a non-boolean column".to_owned()),
        }
        Ok(())
    }

    /// Appends a decimal given as its unscaled integer.
    pub fn append_decimal(&mut self, v: i128) -> std::result::Result<(), String> {
        match self {
            ColumnValues::Decimal(b, ..) => b.append_value(v),
            _ => return Err("decimal in a non-decimal column".to_owned()),
        }
        Ok(())
    }

    /// Appends text.
    pub fn append_str(&mut self, v: &str) -> std::result::Result<(), String> {
        match self {
            ColumnValues::Text(b) => b.append_value(v),
            ColumnValues::Binary(b) => b.append_value(v.as_bytes()),
            _ => return Err("text in a non-text column".to_owned()),
        }
        Ok(())
    }

    /// Appends bytes.
    pub fn append_bytes(&mut self, v: &[u8]) -> std::result::Result<(), String> {
        match self {
            ColumnValues::Binary(b) => b.append_value(v),
            _ => return Err("bytes in a non-binary column".to_owned()),
        }
        Ok(())
    }

    /// Appends a date as days since 1970-01-01.
    pub fn append_days(&mut self, v: i32) -> std::result::Result<(), String> {
        match self {
            ColumnValues::Date(b) => b.append_value(v),
            _ => return Err("date in a non-date column".to_owned()),
        }
        Ok(())
    }

    /// Appends a time of day or a timestamp in microseconds (timestamps: since 1970-01-01).
    pub fn append_micros(&mut self, v: i64) -> std::result::Result<(), String> {
        match self {
            ColumnValues::Time(b) => b.append_value(v),
            ColumnValues::Timestamp(b) => b.append_value(v),
            _ => return Err("time in a non-time column".to_owned()),
        }
        Ok(())
    }

    /// Rows appended since the last finish.
    pub fn len(&self) -> usize {
        each_builder!(self, b => ArrayBuilder::len(b))
    }

    /// True when nothing was appended since the last finish.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn finish(&mut self) -> ArrayRef {
        each_builder!(self, b => Arc::new(b.finish()) as ArrayRef)
    }
}

/// Turns the builders into a batch; they are left empty for the next one.
pub fn finish_batch(schema: &SchemaRef, columns: &mut [ColumnValues]) -> Result<RecordBatch> {
    let arrays = columns.iter_mut().map(ColumnValues::finish).collect();
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
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
    use arrow::datatypes::{Decimal128Type as D, Int64Type, TimeUnit, TimestampMicrosecondType};

    #[test]
    fn decimals_stay_exact() {
        let mut b = ColumnValues::new(&DataType::Decimal128(8, 2), 4).unwrap();
        b.append_sql(SqlValue::Real(4.99)).unwrap();
        b.append_sql(SqlValue::Text("12.30")).unwrap();
        b.append_sql(SqlValue::Int(7)).unwrap();
        b.append_sql(SqlValue::Null).unwrap();
        let err = b.append_sql(SqlValue::Text("1234567.891")).unwrap_err();
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
        let mut b = ColumnValues::new(
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            2,
        )
        .unwrap();
        b.append_sql(SqlValue::Text("2026-11-25 20:34:06.5+01:00"))
            .unwrap();
        b.append_sql(SqlValue::Text("2026-11-25T19:34:06.5Z"))
            .unwrap();
        let a = b.finish();
        let a = a.as_primitive::<TimestampMicrosecondType>();
        assert_eq!(a.value(0), a.value(1));
        let mut ints = ColumnValues::new(&DataType::Int64, 1).unwrap();
        assert_eq!(
            ints.append_sql(SqlValue::Text("abc")).unwrap_err(),
            "expected an integer, found text \"abc\""
        );
        ints.append_sql(SqlValue::Int(5)).unwrap();
        assert_eq!(ints.finish().as_primitive::<Int64Type>().value(0), 5);
    }
}
