//! Schema policy: how the data's schema meets the table's (`evolve` or `strict`), the types
//! Delta can hold, and conforming batches to the table's schema.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, new_null_array};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema, SchemaRef, TimeUnit};
use deltalake_core::kernel::StructType;
use deltalake_core::kernel::engine::arrow_conversion::{TryIntoArrow, TryIntoKernel};
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

/// How a write treats data whose schema differs from the table's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaPolicy {
    /// New columns are added to the table (nullable: older rows have none), a column whose
    /// type is a safe widening of the other side's is widened, columns the data lacks stay
    /// (NULL in the new rows).
    #[default]
    Evolve,
    /// Any difference of columns or types fails, naming the column and both types; nothing
    /// is written or committed.
    Strict,
}

/// One change a commit makes to the table's schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum SchemaChange {
    /// A column the table did not have.
    AddColumn {
        /// Column name.
        column: String,
        /// Its type, in SQL words (`bigint`, `decimal(10,2)`).
        data_type: String,
    },
    /// A column whose type becomes wider (its existing files are rewritten with the wider type,
    /// so every Delta reader reads them without the `typeWidening` table feature).
    WidenColumn {
        /// Column name.
        column: String,
        /// The table's type before.
        from: String,
        /// The table's type after.
        to: String,
    },
}

/// The table's schema after a write and what changed on the way.
#[derive(Debug, Clone)]
pub(crate) struct Reconciled {
    /// The schema the written files and the table have after the commit.
    pub(crate) target: SchemaRef,
    /// What the commit changes.
    pub(crate) changes: Vec<SchemaChange>,
}

impl Reconciled {
    /// Whether existing files must be rewritten (a column was widened).
    pub(crate) fn widens(&self) -> bool {
        self.changes
            .iter()
            .any(|c| matches!(c, SchemaChange::WidenColumn { .. }))
    }
}

/// `data` with every type replaced by the one a Delta table stores it as: unsigned integers
/// as the next wider signed type (`bigint unsigned` as `decimal(20,0)`, exact), timestamps in
/// microseconds (with a zone: UTC, the instant kept), views and large variants as their plain
/// kinds. Fails naming the column for a type Delta has no equivalent for.
pub(crate) fn normalize(table: &str, data: &Schema) -> Result<SchemaRef> {
    let fields = data
        .fields()
        .iter()
        .map(|f| normalize_field(table, f))
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(Schema::new_with_metadata(
        fields,
        data.metadata().clone(),
    )))
}

fn normalize_field(table: &str, field: &FieldRef) -> Result<FieldRef> {
    let data_type = normalize_type(field.data_type()).ok_or_else(|| {
        Error::user(format!(
            "table {table}: column `{}` has type {}, which a Delta table cannot hold; cast it (for example to string) before the sink",
            field.name(),
            type_name(field.data_type())
        ))
    })?;
    Ok(Arc::new(
        Field::new(field.name(), data_type, field.is_nullable())
            .with_metadata(field.metadata().clone()),
    ))
}

fn normalize_type(data_type: &DataType) -> Option<DataType> {
    use DataType::*;
    Some(match data_type {
        Boolean | Int8 | Int16 | Int32 | Int64 | Float32 | Float64 | Utf8 | Binary | Date32 => {
            data_type.clone()
        }
        UInt8 => Int16,
        UInt16 => Int32,
        UInt32 => Int64,
        UInt64 => Decimal128(20, 0),
        Float16 => Float32,
        Utf8View | LargeUtf8 => Utf8,
        BinaryView | LargeBinary | FixedSizeBinary(_) => Binary,
        Date64 => Date32,
        // Columns that were NULL in every row of a schemaless source.
        Null => Utf8,
        Decimal32(p, s) | Decimal64(p, s) | Decimal128(p, s) => Decimal128(*p, *s),
        Decimal256(p, s) if *p <= 38 => Decimal128(*p, *s),
        Timestamp(_, zone) => Timestamp(TimeUnit::Microsecond, zone.as_ref().map(|_| "UTC".into())),
        Dictionary(_, value) => normalize_type(value)?,
        List(item) | LargeList(item) | ListView(item) | LargeListView(item) => {
            let item_type = normalize_type(item.data_type())?;
            List(Arc::new(Field::new(
                item.name(),
                item_type,
                item.is_nullable(),
            )))
        }
        Struct(fields) => Struct(
            fields
                .iter()
                .map(|f| {
                    normalize_type(f.data_type())
                        .map(|t| Arc::new(Field::new(f.name(), t, f.is_nullable())))
                })
                .collect::<Option<Fields>>()?,
        ),
        Map(entries, sorted) => {
            let entry_type = normalize_type(entries.data_type())?;
            Map(
                Arc::new(Field::new(
                    entries.name(),
                    entry_type,
                    entries.is_nullable(),
                )),
                *sorted,
            )
        }
        _ => return None,
    })
}

/// Whether every value of `from` is exactly a value of `to`.
fn widens(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    match (from, to) {
        (Int8, Int16 | Int32 | Int64 | Float64)
        | (Int16, Int32 | Int64 | Float64)
        | (Int32, Int64 | Float64)
        | (Float32, Float64) => true,
        (Decimal128(p1, s1), Decimal128(p2, s2)) => {
            s2 >= s1 && i16::from(*p2) - i16::from(*s2) >= i16::from(*p1) - i16::from(*s1)
        }
        _ => false,
    }
}

/// The schema the table has after writing data of schema `data` (already [`normalize`]d)
/// under `policy`. `table` is `None` for a table not created yet. Every difference that the
/// policy refuses is reported at once, each naming the column and both types.
pub(crate) fn reconcile(
    name: &str,
    table: Option<&Schema>,
    data: &Schema,
    policy: SchemaPolicy,
) -> Result<Reconciled> {
    let Some(table) = table else {
        return Ok(Reconciled {
            target: Arc::new(data.clone()),
            changes: Vec::new(),
        });
    };
    let strict = policy == SchemaPolicy::Strict;
    let mut problems = Vec::new();
    let mut changes = Vec::new();
    let mut fields: Vec<FieldRef> = table.fields().iter().cloned().collect();
    for incoming in data.fields() {
        let column = incoming.name();
        let new_type = type_name(incoming.data_type());
        match fields.iter().position(|f| f.name() == column) {
            None if strict => problems.push(format!(
                "column `{column}` ({new_type}) is not in the table"
            )),
            None => {
                changes.push(SchemaChange::AddColumn {
                    column: column.clone(),
                    data_type: new_type,
                });
                fields.push(Arc::new(Field::new(
                    column,
                    incoming.data_type().clone(),
                    true,
                )));
            }
            Some(i) => {
                let existing = fields[i].data_type().clone();
                let old_type = type_name(&existing);
                if &existing == incoming.data_type() {
                    continue;
                }
                if strict {
                    problems.push(format!(
                        "column `{column}` is {old_type} in the table but {new_type} in the data"
                    ));
                } else if widens(incoming.data_type(), &existing) {
                    // Narrower data is cast up as it is written; the table stays.
                } else if widens(&existing, incoming.data_type()) {
                    changes.push(SchemaChange::WidenColumn {
                        column: column.clone(),
                        from: old_type,
                        to: new_type,
                    });
                    fields[i] = Arc::new(Field::new(
                        column,
                        incoming.data_type().clone(),
                        fields[i].is_nullable(),
                    ));
                } else {
                    problems.push(format!(
                        "column `{column}` is {old_type} in the table but {new_type} in the data, which is not a safe widening"
                    ));
                }
            }
        }
    }
    for existing in table.fields() {
        if data.field_with_name(existing.name()).is_ok() {
            continue;
        }
        let old_type = type_name(existing.data_type());
        if strict {
            problems.push(format!(
                "column `{}` ({old_type}) of the table is missing from the data",
                existing.name()
            ));
        } else if !existing.is_nullable() {
            problems.push(format!(
                "column `{}` ({old_type}) of the table is NOT NULL but missing from the data",
                existing.name()
            ));
        }
    }
    if !problems.is_empty() {
        let policy = if strict { "strict" } else { "evolve" };
        return Err(Error::user(format!(
            "table {name}: the data does not fit the table's schema (schema: {policy}): {}",
            problems.join("; ")
        )));
    }
    Ok(Reconciled {
        target: Arc::new(Schema::new_with_metadata(fields, table.metadata().clone())),
        changes,
    })
}

/// `batch` as a batch of `target`: columns in the target's order, cast to its types (narrower
/// data widened, Delta's representation of unsigned integers and timestamps), NULL for columns
/// the batch lacks. Fails naming the column when a NOT NULL column gets NULLs or a value does
/// not fit.
pub(crate) fn conform(name: &str, batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema() == *target {
        return Ok(batch.clone());
    }
    let schema = batch.schema();
    if let Some(extra) = schema
        .fields()
        .iter()
        .find(|f| target.field_with_name(f.name()).is_err())
    {
        return Err(Error::user(format!(
            "table {name}: column `{}` appeared in the middle of a write; one write has one schema",
            extra.name()
        )));
    }
    let options = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    let columns = target
        .fields()
        .iter()
        .map(|field| {
            let column: ArrayRef = match batch.column_by_name(field.name()) {
                Some(c) if c.data_type() == field.data_type() => c.clone(),
                Some(c) => cast_with_options(c, field.data_type(), &options).map_err(|e| {
                    Error::user(format!(
                        "table {name}: column `{}`: a value of type {} does not fit {}: {e}",
                        field.name(),
                        type_name(c.data_type()),
                        type_name(field.data_type())
                    ))
                })?,
                None => new_null_array(field.data_type(), batch.num_rows()),
            };
            if !field.is_nullable() && column.null_count() > 0 {
                return Err(Error::user(format!(
                    "table {name}: column `{}` is NOT NULL in the table but {} rows of the data have NULL there",
                    field.name(),
                    column.null_count()
                )));
            }
            Ok(column)
        })
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new(target.clone(), columns)
        .context(|| format!("table {name}: building a batch of the table's schema"))
}

/// The Delta schema of an Arrow schema of Delta types.
pub(crate) fn to_delta(name: &str, schema: &Schema) -> Result<StructType> {
    schema
        .try_into_kernel()
        .context(|| format!("table {name}: converting the schema to Delta's"))
}

/// The Arrow schema of a Delta schema.
pub(crate) fn to_arrow(name: &str, schema: &StructType) -> Result<Schema> {
    schema
        .try_into_arrow()
        .context(|| format!("table {name}: converting Delta's schema to Arrow's"))
}

/// A type in the SQL words users know from the catalog (`bigint`, `decimal(10,2)`).
pub(crate) fn type_name(data_type: &DataType) -> String {
    use DataType::*;
    match data_type {
        Boolean => "boolean".into(),
        Int8 => "tinyint".into(),
        Int16 => "smallint".into(),
        Int32 => "int".into(),
        Int64 => "bigint".into(),
        UInt8 => "tinyint unsigned".into(),
        UInt16 => "smallint unsigned".into(),
        UInt32 => "int unsigned".into(),
        UInt64 => "bigint unsigned".into(),
        Float16 | Float32 => "float".into(),
        Float64 => "double".into(),
        Utf8 | LargeUtf8 | Utf8View => "string".into(),
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => "binary".into(),
        Date32 | Date64 => "date".into(),
        Timestamp(_, Some(_)) => "timestamp".into(),
        Timestamp(_, None) => "timestamp_ntz".into(),
        Decimal32(p, s) | Decimal64(p, s) | Decimal128(p, s) | Decimal256(p, s) => {
            format!("decimal({p},{s})")
        }
        List(item) | LargeList(item) => format!("array<{}>", type_name(item.data_type())),
        Struct(fields) => format!(
            "struct<{}>",
            fields
                .iter()
                .map(|f| format!("{}:{}", f.name(), type_name(f.data_type())))
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(fields: &[(&str, DataType)]) -> Schema {
        Schema::new(
            fields
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn evolve_adds_columns_and_widens_safely() {
        let table = schema(&[
            ("id", DataType::Int32),
            ("amount", DataType::Decimal128(10, 2)),
        ]);
        let data = schema(&[
            ("id", DataType::Int64),
            ("amount", DataType::Decimal128(8, 2)),
            ("note", DataType::Utf8),
        ]);
        let r = reconcile("t", Some(&table), &data, SchemaPolicy::Evolve).unwrap();
        assert_eq!(
            r.changes,
            vec![
                SchemaChange::WidenColumn {
                    column: "id".into(),
                    from: "int".into(),
                    to: "bigint".into()
                },
                SchemaChange::AddColumn {
                    column: "note".into(),
                    data_type: "string".into()
                }
            ]
        );
        // The table's decimal(10,2) stays: the data's decimal(8,2) is cast up.
        assert_eq!(
            r.target.field_with_name("amount").unwrap().data_type(),
            &DataType::Decimal128(10, 2)
        );
    }

    #[test]
    fn strict_names_every_difference_with_both_types() {
        let table = schema(&[("id", DataType::Int32), ("gone", DataType::Utf8)]);
        let data = schema(&[("id", DataType::Int64), ("new", DataType::Boolean)]);
        let err = reconcile("lake/t", Some(&table), &data, SchemaPolicy::Strict).unwrap_err();
        assert_eq!(err.class, crate::ErrorClass::User);
        assert!(err.message.contains("table lake/t"), "{err}");
        assert!(
            err.message
                .contains("column `id` is int in the table but bigint in the data"),
            "{err}"
        );
        assert!(
            err.message
                .contains("column `new` (boolean) is not in the table"),
            "{err}"
        );
        assert!(
            err.message
                .contains("column `gone` (string) of the table is missing"),
            "{err}"
        );
    }

    #[test]
    fn an_unsafe_change_fails_even_under_evolve() {
        let table = schema(&[("id", DataType::Int64)]);
        let data = schema(&[("id", DataType::Utf8)]);
        let err = reconcile("t", Some(&table), &data, SchemaPolicy::Evolve).unwrap_err();
        assert!(err.message.contains("not a safe widening"), "{err}");
    }

    #[test]
    fn unsigned_and_nanosecond_types_become_delta_types() {
        let data = schema(&[
            ("u64", DataType::UInt64),
            (
                "ts",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("+02:00".into())),
            ),
        ]);
        let n = normalize("t", &data).unwrap();
        assert_eq!(n.field(0).data_type(), &DataType::Decimal128(20, 0));
        assert_eq!(
            n.field(1).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        let err =
            normalize("t", &schema(&[("d", DataType::Duration(TimeUnit::Second))])).unwrap_err();
        assert!(err.message.contains("column `d`"), "{err}");
    }
}
