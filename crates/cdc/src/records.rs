//! Change records in Arrow: one record batch per table, the row's columns plus the change
//! columns.
//!
//! The change columns, named by [`ChangeColumns`]:
//! - `Op`: `I`, `U`, `D` or `T` (DMS's column, with truncate as its own letter);
//! - the commit time, UTC microseconds (DMS's `TimestampColumnName`);
//! - the commit LSN (`Int64`: Delta and most readers have no unsigned integers; LSNs stay
//!   below 2^63) and the position inside the transaction (`Int32`), which order the records;
//! - the columns an update left unchanged (TOASTed values the server did not send), a list of
//!   names, NULL when none: their value columns are NULL and a merge must keep the table's
//!   value instead.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int32Builder, Int64Builder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;

use crate::change::{Change, Relation, TypeOptions};
use crate::error::{Error, Result};
use crate::pgoutput::Value;
use crate::types::Builder;

/// Names of the change columns added to each table's columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeColumns {
    /// The operation letter.
    pub op: String,
    /// The commit time.
    pub commit_time: String,
    /// The commit LSN.
    pub commit_lsn: String,
    /// The position inside the transaction.
    pub position: String,
    /// The columns left unchanged by an update.
    pub unchanged: String,
}

impl Default for ChangeColumns {
    fn default() -> Self {
        ChangeColumns {
            op: "Op".to_owned(),
            commit_time: "_pipectl_commit_ts".to_owned(),
            commit_lsn: "_pipectl_commit_lsn".to_owned(),
            position: "_pipectl_position".to_owned(),
            unchanged: "_pipectl_unchanged".to_owned(),
        }
    }
}

impl ChangeColumns {
    fn names(&self) -> [&str; 5] {
        [
            &self.op,
            &self.commit_time,
            &self.commit_lsn,
            &self.position,
            &self.unchanged,
        ]
    }

    /// The change records' schema for `relation`; an error when a table column has the name
    /// of a change column.
    pub fn schema(&self, relation: &Relation) -> Result<SchemaRef> {
        let mut fields: Vec<Field> = Vec::with_capacity(relation.columns.len() + 5);
        for c in &relation.columns {
            if self.names().contains(&c.name.as_str()) {
                return Err(Error::Value(format!(
                    "table {}, column `{}`: the name is taken by a change column; rename the change column in the source's settings",
                    relation.display_name(),
                    c.name
                )));
            }
            fields.push(Field::new(&c.name, c.ty.arrow_type(), true));
        }
        fields.push(Field::new(&self.op, DataType::Utf8, false));
        fields.push(Field::new(
            &self.commit_time,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ));
        fields.push(Field::new(&self.commit_lsn, DataType::Int64, false));
        fields.push(Field::new(&self.position, DataType::Int32, false));
        fields.push(Field::new(
            &self.unchanged,
            DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
            true,
        ));
        Ok(Arc::new(Schema::new(fields)))
    }
}

/// The changes as record batches, one per table description (a table whose description
/// changed mid-way gets one batch per description), in the order each first appears; each
/// batch keeps its changes' order.
pub fn to_record_batches(
    changes: &[Change],
    names: &ChangeColumns,
    options: TypeOptions,
) -> Result<Vec<(Arc<Relation>, RecordBatch)>> {
    let mut groups: Vec<(Arc<Relation>, Vec<&Change>)> = Vec::new();
    for change in changes {
        match groups
            .iter_mut()
            .find(|(r, _)| Arc::ptr_eq(r, &change.relation))
        {
            Some((_, g)) => g.push(change),
            None => groups.push((change.relation.clone(), vec![change])),
        }
    }
    groups
        .into_iter()
        .map(|(relation, changes)| {
            let batch = batch_of(&relation, &changes, names, options)?;
            Ok((relation, batch))
        })
        .collect()
}

fn batch_of(
    relation: &Relation,
    changes: &[&Change],
    names: &ChangeColumns,
    options: TypeOptions,
) -> Result<RecordBatch> {
    let schema = names.schema(relation)?;
    let mut columns = relation
        .columns
        .iter()
        .map(|c| Builder::new(c.ty))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut op = StringBuilder::new();
    let mut time = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut lsn = Int64Builder::new();
    let mut position = Int32Builder::new();
    let mut unchanged = ListBuilder::new(StringBuilder::new());
    for change in changes {
        let mut any_unchanged = false;
        for (i, (column, builder)) in relation.columns.iter().zip(&mut columns).enumerate() {
            match change.values.get(i) {
                // Truncates carry no values.
                None | Some(Value::Null) => builder.append_null(),
                Some(Value::Unchanged) => {
                    builder.append_null();
                    unchanged.values().append_value(&column.name);
                    any_unchanged = true;
                }
                Some(Value::Text(text)) => builder
                    .append_text(column.ty, text, options.infinity)
                    .map_err(|why| {
                    Error::Value(format!(
                        "table {}, column `{}`, change at LSN {} position {}: {why}",
                        relation.display_name(),
                        column.name,
                        change.commit_lsn,
                        change.position
                    ))
                })?,
                Some(Value::Binary(_)) => {
                    return Err(Error::Value(format!(
                        "table {}, column `{}`: the server sent a binary value; connect without the `binary` option (values are read in text format)",
                        relation.display_name(),
                        column.name
                    )));
                }
            }
        }
        unchanged.append(any_unchanged);
        op.append_value(change.op.letter());
        time.append_value(change.commit_time_micros);
        lsn.append_value(i64::try_from(change.commit_lsn.0).map_err(|_| {
            Error::Value(format!(
                "LSN {} does not fit a signed 64-bit column",
                change.commit_lsn
            ))
        })?);
        position.append_value(i32::try_from(change.position).map_err(|_| {
            Error::Value(format!(
                "position {} in the transaction at LSN {} does not fit a 32-bit column",
                change.position, change.commit_lsn
            ))
        })?);
    }
    let mut arrays: Vec<ArrayRef> = columns.iter_mut().map(Builder::finish).collect();
    arrays.push(Arc::new(op.finish()));
    arrays.push(Arc::new(time.finish()));
    arrays.push(Arc::new(lsn.finish()));
    arrays.push(Arc::new(position.finish()));
    arrays.push(Arc::new(unchanged.finish()));
    Ok(RecordBatch::try_new(schema, arrays)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::{Column, Op};
    use crate::lsn::Lsn;
    use crate::pgoutput::ReplicaIdentity;
    use crate::types::ColumnType;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Int32Type, Int64Type};

    fn docs() -> Arc<Relation> {
        Arc::new(Relation {
            oid: 1,
            schema: "public".into(),
            name: "docs".into(),
            replica_identity: ReplicaIdentity::Default,
            columns: vec![
                Column {
                    name: "id".into(),
                    key: true,
                    type_oid: 20,
                    type_modifier: -1,
                    ty: ColumnType::Int64,
                },
                Column {
                    name: "body".into(),
                    key: false,
                    type_oid: 25,
                    type_modifier: -1,
                    ty: ColumnType::Text,
                },
            ],
        })
    }

    fn change(r: &Arc<Relation>, op: Op, position: u32, values: Vec<Value>) -> Change {
        Change {
            relation: r.clone(),
            op,
            commit_lsn: Lsn(0x1_0000_0000),
            commit_time_micros: 1_700_000_000_000_000,
            position,
            values,
        }
    }

    #[test]
    fn records_carry_op_lsn_position_and_unchanged_columns() {
        let r = docs();
        let t = |s: &str| Value::Text(s.as_bytes().to_vec());
        let changes = vec![
            change(&r, Op::Insert, 1, vec![t("1"), t("hello")]),
            change(&r, Op::Update, 2, vec![t("1"), Value::Unchanged]),
            change(&r, Op::Delete, 3, vec![t("1"), Value::Null]),
            change(&r, Op::Truncate, 4, vec![]),
        ];
        let batches =
            to_record_batches(&changes, &ChangeColumns::default(), TypeOptions::default()).unwrap();
        assert_eq!(batches.len(), 1);
        let b = &batches[0].1;
        assert_eq!(b.num_rows(), 4);
        let ops: Vec<_> = b
            .column_by_name("Op")
            .unwrap()
            .as_string::<i32>()
            .iter()
            .map(|v| v.unwrap().to_owned())
            .collect();
        assert_eq!(ops, ["I", "U", "D", "T"]);
        let body = b.column_by_name("body").unwrap().as_string::<i32>();
        assert_eq!(body.value(0), "hello");
        assert!(body.is_null(1));
        let unchanged = b
            .column_by_name("_pipectl_unchanged")
            .unwrap()
            .as_list::<i32>();
        assert!(unchanged.is_null(0));
        assert_eq!(unchanged.value(1).as_string::<i32>().value(0), "body");
        let lsn = b.column_by_name("_pipectl_commit_lsn").unwrap();
        assert_eq!(lsn.as_primitive::<Int64Type>().value(0), 0x1_0000_0000);
        let pos = b.column_by_name("_pipectl_position").unwrap();
        assert_eq!(pos.as_primitive::<Int32Type>().value(3), 4);
    }

    #[test]
    fn bad_values_and_name_clashes_name_table_and_column() {
        let r = docs();
        let bad = vec![change(
            &r,
            Op::Insert,
            1,
            vec![Value::Text(b"x".to_vec()), Value::Null],
        )];
        let err = to_record_batches(&bad, &ChangeColumns::default(), TypeOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("table public.docs, column `id`, change at LSN 1/0 position 1"),
            "{err}"
        );
        let names = ChangeColumns {
            op: "body".into(),
            ..ChangeColumns::default()
        };
        let err = names.schema(&r).unwrap_err().to_string();
        assert!(err.contains("column `body`: the name is taken"), "{err}");
    }
}
