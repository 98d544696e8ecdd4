//! SQLite's schema: the tables and views a source selects (`sqlite_schema`), their declared
//! column types, and how each lands in Arrow by SQLite's affinity rules.

use arrow::datatypes::DataType;
use pipectl_spec::types::DatabaseSource;
use sqlx::sqlite::SqliteConnection;
use sqlx::{Column, Executor, TypeInfo};

use super::{MAIN, Sqlite};
use crate::error::{Error, Result};
use crate::source::database::{ColumnKind, DbColumn, Dialect, Listing, Selection, TablePlan};
use crate::table::TableId;

/// Lists what the source will read: the tables its rules select (in name order), then its queries.
pub async fn plan_tables(
    source: &str,
    spec: &DatabaseSource,
    conn: &mut SqliteConnection,
) -> Result<Listing<TablePlan>> {
    let mut plans = Vec::new();
    let mut selection = Selection::new(spec);
    if selection.lists_tables() {
        let names: Vec<(String, bool)> = sqlx::query_as(
            "select name, type = 'view' from sqlite_schema where type in ('table', 'view') and name not like 'sqlite\\_%' escape '\\' order by name",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| Error::external("cannot list SQLite tables", e))?;
        for (table, view) in names {
            if !selection.select(MAIN, &table, view) {
                continue;
            }
            let declared: Vec<(String, String)> =
                sqlx::query_as("select name, type from pragma_table_info(?) order by cid")
                    .bind(&table)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(|e| {
                        Error::external(format!("cannot read the columns of table {table}"), e)
                    })?;
            let columns =
                columns_of(declared).map_err(|e| e.context(format!("table {MAIN}.{table}")))?;
            let from = format!("{}.{}", Sqlite::quote(MAIN), Sqlite::quote(&table));
            let id = TableId {
                source: source.to_owned(),
                schema: MAIN.to_owned(),
                name: table,
            };
            plans.push(TablePlan::new(id, columns, from, None)?);
        }
    }
    for query in &spec.queries {
        let described = conn.describe(&query.sql).await.map_err(|e| {
            Error::user(format!(
                "query for table `{}` does not run: {e}",
                query.table
            ))
        })?;
        let declared: Vec<(String, String)> = described
            .columns()
            .iter()
            .map(|c| (c.name().to_owned(), c.type_info().name().to_owned()))
            .collect();
        let columns =
            columns_of(declared).map_err(|e| e.context(format!("query `{}`", query.table)))?;
        let id = TableId {
            source: source.to_owned(),
            schema: query.schema.clone().unwrap_or_else(|| MAIN.to_owned()),
            name: query.table.clone(),
        };
        let mut plan = TablePlan::new(id, columns, format!("({}) as q", query.sql), None)?;
        // Read as written: SQLite queries take neither bookmarks nor ranges.
        plan.verbatim = Some(query.sql.clone());
        plans.push(plan);
    }
    Ok(selection.listing(plans))
}

/// Maps a declared SQLite column type to Arrow, following SQLite's affinity rules with the
/// common names for dates, decimals and booleans recognised first.
pub fn arrow_type_for_declared(declared: &str) -> DataType {
    kind_for_declared(declared).arrow_type()
}

/// How a column of a declared SQLite type is landed (see [`arrow_type_for_declared`]).
pub fn kind_for_declared(declared: &str) -> ColumnKind {
    let upper = declared.trim().to_ascii_uppercase();
    let base = upper.split('(').next().unwrap_or("").trim();
    if base.starts_with("BOOL") {
        return ColumnKind::Bool;
    }
    if base == "DECIMAL" || base == "NUMERIC" {
        if let Some((p, s)) = precision_scale(&upper) {
            return ColumnKind::Decimal(p, s);
        }
        return ColumnKind::Decimal(38, 10);
    }
    match base {
        "DATE" => return ColumnKind::Date,
        "TIME" => return ColumnKind::Time,
        "DATETIME" | "TIMESTAMP" => return ColumnKind::Timestamp,
        "TIMESTAMPTZ" | "TIMESTAMP WITH TIME ZONE" => return ColumnKind::TimestampUtc,
        "NULL" | "" => return ColumnKind::Text,
        _ => {}
    }
    if upper.contains("INT") {
        ColumnKind::Int(8)
    } else if upper.contains("CHAR")
        || upper.contains("CLOB")
        || upper.contains("TEXT")
        || upper.contains("JSON")
    {
        ColumnKind::Text
    } else if upper.contains("BLOB") {
        ColumnKind::Binary
    } else if upper.contains("REAL") || upper.contains("FLOA") || upper.contains("DOUB") {
        ColumnKind::Float64
    } else {
        ColumnKind::Text
    }
}

/// The columns of a table or query from their declared types; names must be distinct.
fn columns_of(declared: Vec<(String, String)>) -> Result<Vec<DbColumn>> {
    for (i, (name, _)) in declared.iter().enumerate() {
        if declared[..i].iter().any(|(other, _)| other == name) {
            return Err(Error::user(format!(
                "column name `{name}` appears twice; give the columns distinct names (use `as`)"
            )));
        }
    }
    Ok(declared
        .into_iter()
        .map(|(name, declared)| {
            let kind = kind_for_declared(&declared);
            let select = Sqlite::quote(&name);
            DbColumn::new(name, declared, kind, select)
        })
        .collect())
}

fn precision_scale(declared: &str) -> Option<(u8, i8)> {
    let inner = declared.split_once('(')?.1.split_once(')')?.0;
    let mut parts = inner.split(',').map(|p| p.trim().parse::<u8>());
    let precision = parts.next()?.ok()?;
    let scale = match parts.next() {
        Some(s) => s.ok()?,
        None => 0,
    };
    (1..=38).contains(&precision).then_some(())?;
    (scale <= precision).then_some((precision, scale as i8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::TimeUnit;

    #[test]
    fn declared_types_map_faithfully() {
        assert_eq!(arrow_type_for_declared("INTEGER"), DataType::Int64);
        assert_eq!(
            arrow_type_for_declared("smallint unsigned"),
            DataType::Int64
        );
        assert_eq!(
            arrow_type_for_declared("DECIMAL(4,2)"),
            DataType::Decimal128(4, 2)
        );
        assert_eq!(
            arrow_type_for_declared("numeric(10)"),
            DataType::Decimal128(10, 0)
        );
        assert_eq!(arrow_type_for_declared("VARCHAR(45)"), DataType::Utf8);
        assert_eq!(arrow_type_for_declared("BLOB"), DataType::Binary);
        assert_eq!(
            arrow_type_for_declared("TIMESTAMP"),
            DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        assert_eq!(arrow_type_for_declared("boolean"), DataType::Boolean);
        assert_eq!(
            arrow_type_for_declared("DOUBLE PRECISION"),
            DataType::Float64
        );
    }
}
