//! Spec column types as Arrow types.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit as ArrowTimeUnit};
use pipectl_spec::lang::datatype::{ColumnType, TimeUnit, parse_column_type};
use pipectl_spec::types::ColumnDecl;

/// The Arrow schema of declared `columns` (all nullable), `None` when none are declared.
/// `owner` names the step in errors, e.g. "source `events`".
pub fn declared_schema(owner: &str, columns: &[ColumnDecl]) -> crate::Result<Option<SchemaRef>> {
    if columns.is_empty() {
        return Ok(None);
    }
    let fields = columns
        .iter()
        .map(|c| {
            let t = parse_column_type(&c.data_type).map_err(|e| {
                crate::Error::user(format!("{owner}: column `{}`: {}", c.name, e.message))
            })?;
            Ok(Field::new(&c.name, arrow_type(&t), true))
        })
        .collect::<crate::Result<Vec<_>>>()?;
    Ok(Some(Arc::new(Schema::new(fields))))
}

/// Maps a spec column type to an Arrow data type.
pub fn arrow_type(t: &ColumnType) -> DataType {
    match t {
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Int8 => DataType::Int8,
        ColumnType::Int16 => DataType::Int16,
        ColumnType::Int32 => DataType::Int32,
        ColumnType::Int64 => DataType::Int64,
        ColumnType::UInt8 => DataType::UInt8,
        ColumnType::UInt16 => DataType::UInt16,
        ColumnType::UInt32 => DataType::UInt32,
        ColumnType::UInt64 => DataType::UInt64,
        ColumnType::Float32 => DataType::Float32,
        ColumnType::Float64 => DataType::Float64,
        ColumnType::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
        // JSON travels as text; validating it is the job of whoever produces or consumes it.
        ColumnType::String | ColumnType::Json => DataType::Utf8,
        ColumnType::Binary => DataType::Binary,
        ColumnType::Date => DataType::Date32,
        ColumnType::Time => DataType::Time64(ArrowTimeUnit::Microsecond),
        ColumnType::Timestamp { unit, timezone } => DataType::Timestamp(
            match unit {
                TimeUnit::Second => ArrowTimeUnit::Second,
                TimeUnit::Millisecond => ArrowTimeUnit::Millisecond,
                TimeUnit::Microsecond => ArrowTimeUnit::Microsecond,
                TimeUnit::Nanosecond => ArrowTimeUnit::Nanosecond,
            },
            timezone.as_deref().map(Arc::from),
        ),
    }
}
