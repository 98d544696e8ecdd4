//! PostgreSQL's catalog: the tables and views a source selects, their columns, and how each
//! `pg_type` lands in Arrow (natively, or selected as text).

use pipectl_spec::types::{DatabaseSource, QuerySpec, UnmappedTypes};
use sqlx::Executor;
use sqlx::postgres::PgConnection;

use super::Postgres;
use crate::error::{Error, Result};
use crate::source::database::query::{inspect_error, query_does_not_run};
use crate::source::database::{ColumnKind, DbColumn, Dialect, Relation};
use crate::table::TableId;

/// One catalog row describing a column.
type CatalogColumn = (String, String, String, String, String, i32);

const COLUMNS_SQL: &str = "select a.attname::text, format_type(a.atttypid, a.atttypmod), bt.typname::text, bt.typtype::text, bt.typcategory::text, case when t.typtype = 'd' then t.typtypmod else a.atttypmod end \
     from pg_attribute a join pg_type t on t.oid = a.atttypid \
     join pg_type bt on bt.oid = case when t.typtype = 'd' then t.typbasetype else t.oid end \
     where a.attrelid = $1::oid and a.attnum > 0 and not a.attisdropped order by a.attnum";

/// The tables, views and foreign tables of `pg_class`, by schema and name (not partitions:
/// their parent is read; not the system schemas).
pub(super) async fn relations(conn: &mut PgConnection) -> Result<Vec<Relation>> {
    let tables: Vec<(i64, String, String, bool)> = sqlx::query_as(
        "select c.oid::int8, n.nspname::text, c.relname::text, c.relkind in ('v', 'm') from pg_class c join pg_namespace n on n.oid = c.relnamespace \
         where c.relkind in ('r', 'p', 'v', 'm', 'f') and not c.relispartition \
         and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%' and n.nspname not like 'pg\\_temp%' \
         order by 2, 3",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| Error::external("cannot list PostgreSQL tables", e))?;
    Ok(tables
        .into_iter()
        .map(|(id, schema, name, view)| Relation {
            id,
            schema,
            name,
            view,
        })
        .collect())
}

/// The columns of a listed table or view.
pub(super) async fn table_columns(
    conn: &mut PgConnection,
    relation: &Relation,
    table: &TableId,
    spec: &DatabaseSource,
) -> Result<Vec<DbColumn>> {
    columns_of(conn, relation.id, table, spec.unmapped_types).await
}

/// The columns of a query, through a temporary view.
pub(super) async fn query_columns(
    conn: &mut PgConnection,
    query: &QuerySpec,
    table: &TableId,
    spec: &DatabaseSource,
) -> Result<Vec<DbColumn>> {
    conn.execute("drop view if exists pg_temp.pipectl_query")
        .await
        .map_err(inspect_error)?;
    conn.execute(format!("create temporary view pipectl_query as {}", query.sql).as_str())
        .await
        .map_err(query_does_not_run(query))?;
    let (oid,): (i64,) = sqlx::query_as("select 'pg_temp.pipectl_query'::regclass::oid::int8")
        .fetch_one(&mut *conn)
        .await
        .map_err(inspect_error)?;
    let columns = columns_of(conn, oid, table, spec.unmapped_types).await?;
    conn.execute("drop view pg_temp.pipectl_query")
        .await
        .map_err(inspect_error)?;
    Ok(columns)
}

async fn columns_of(
    conn: &mut PgConnection,
    oid: i64,
    table: &TableId,
    unmapped: UnmappedTypes,
) -> Result<Vec<DbColumn>> {
    let rows: Vec<CatalogColumn> = sqlx::query_as(COLUMNS_SQL)
        .bind(oid)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| Error::external(format!("cannot read the columns of {table}"), e))?;
    rows.into_iter()
        .map(|(name, declared, base, typtype, category, typmod)| {
            let quoted = Postgres::quote(&name);
            let (kind, select) = match map_type(&base, &typtype, &category, typmod) {
                Mapping::Native(kind) => (kind, quoted),
                Mapping::AsText => (ColumnKind::Text, format!("{quoted}::text as {quoted}")),
                // `inet::text` always adds the netmask (`::1/128`); `abbrev` prints an inet
                // as PostgreSQL's output does (`::1`, `10.0.0.0/8`).
                Mapping::Inet => (ColumnKind::Text, format!("abbrev({quoted}) as {quoted}")),
                Mapping::ArrayAsJson => (
                    ColumnKind::Text,
                    format!("array_to_json({quoted})::text as {quoted}"),
                ),
                Mapping::Unmapped => {
                    let as_text = format!("{quoted}::text as {quoted}");
                    DbColumn::unmapped(unmapped, table, &name, &declared, as_text)?
                }
            };
            Ok(DbColumn::new(name, declared, kind, select))
        })
        .collect()
}

enum Mapping {
    /// Decoded from the binary format.
    Native(ColumnKind),
    /// Selected as `col::text`: the type's own exact text form.
    AsText,
    /// `inet`, selected in the form PostgreSQL prints it.
    Inet,
    /// Arrays land as JSON arrays, which every reader parses.
    ArrayAsJson,
    /// No faithful mapping.
    Unmapped,
}

fn map_type(base: &str, typtype: &str, category: &str, typmod: i32) -> Mapping {
    use ColumnKind::*;
    if typtype == "e" {
        return Mapping::Native(Text);
    }
    if category == "A" {
        return Mapping::ArrayAsJson;
    }
    Mapping::Native(match base {
        "int2" => Int(2),
        "int4" => Int(4),
        "int8" => Int(8),
        "float4" => Float32,
        "float8" => Float64,
        "bool" => Bool,
        "numeric" => match numeric_typmod(typmod) {
            Some((p, s)) => Decimal(p, s),
            // Unconstrained numeric has no fixed scale: its exact text is the faithful form.
            None => return Mapping::AsText,
        },
        "text" | "varchar" | "bpchar" | "name" | "json" | "xml" | "citext" => Text,
        "jsonb" => Jsonb,
        "uuid" => Uuid,
        "bytea" => Binary,
        "date" => Date,
        "time" => Time,
        "timestamp" => Timestamp,
        "timestamptz" => TimestampUtc,
        "inet" => return Mapping::Inet,
        "interval" | "bit" | "varbit" | "money" | "cidr" | "macaddr" | "macaddr8" | "timetz"
        | "oid" | "char" | "tsvector" => return Mapping::AsText,
        _ => return Mapping::Unmapped,
    })
}

/// Precision and scale of `numeric(p,s)` from its type modifier, when Arrow can hold it exactly.
fn numeric_typmod(typmod: i32) -> Option<(u8, i8)> {
    if typmod < 4 {
        return None;
    }
    let t = typmod - 4;
    let precision = (t >> 16) & 0xffff;
    let scale = t & 0x7ff;
    // PostgreSQL 15 allows negative scales (11-bit two's complement); those stay text.
    if !(1..=38).contains(&precision) || scale > precision || scale & 0x400 != 0 {
        return None;
    }
    Some((precision as u8, scale as i8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_typmods() {
        // numeric(8,2): ((8 << 16) | 2) + 4
        assert_eq!(numeric_typmod(((8 << 16) | 2) + 4), Some((8, 2)));
        assert_eq!(numeric_typmod(-1), None);
        assert_eq!(numeric_typmod(((60 << 16) | 2) + 4), None);
    }
}
