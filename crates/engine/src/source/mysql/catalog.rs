//! MySQL's and MariaDB's catalog (`information_schema`): the tables and views a source
//! selects, their columns, and how each declared column type lands in Arrow.

use pipectl_spec::types::{DatabaseSource, MysqlTime, QuerySpec};
use sqlx::mysql::MySqlConnection;
use sqlx::{Executor, Row};

use super::Mysql;
use crate::error::{Error, Result};
use crate::source::database::query::{inspect_error, query_does_not_run};
use crate::source::database::{ColumnKind, DbColumn, Dialect, Relation};
use crate::table::TableId;

/// System schemas never selected by `%` rules.
const SYSTEM_SCHEMAS: &[&str] = &["mysql", "information_schema", "performance_schema", "sys"];

/// The tables and views of `information_schema.tables`, by schema and name, without the
/// system schemas.
pub(super) async fn relations(conn: &mut MySqlConnection) -> Result<Vec<Relation>> {
    let tables: Vec<(String, String, bool)> = sqlx::query_as(
        "select cast(table_schema as char), cast(table_name as char), table_type in ('VIEW', 'SYSTEM VIEW') from information_schema.tables order by 1, 2",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| Error::external("cannot list MySQL tables", e))?;
    Ok(tables
        .into_iter()
        .filter(|(schema, _, _)| !SYSTEM_SCHEMAS.contains(&schema.as_str()))
        .map(|(schema, name, view)| Relation {
            id: 0,
            schema,
            name,
            view,
        })
        .collect())
}

/// The columns of a listed table or view, from `information_schema.columns`.
pub(super) async fn table_columns(
    conn: &mut MySqlConnection,
    relation: &Relation,
    table: &TableId,
    spec: &DatabaseSource,
) -> Result<Vec<DbColumn>> {
    let declared: Vec<(String, String)> = sqlx::query_as(
        "select cast(column_name as char), cast(column_type as char) from information_schema.columns where table_schema = ? and table_name = ? order by ordinal_position",
    )
    .bind(&relation.schema)
    .bind(&relation.name)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| Error::external(format!("cannot read the columns of {table}"), e))?;
    columns_of(declared, table, spec)
}

/// The schema a query's table lands in when the spec names none: the connection's database.
pub(super) async fn query_schema(conn: &mut MySqlConnection) -> Result<Option<String>> {
    let (database,): (Option<String>,) = sqlx::query_as("select cast(database() as char)")
        .fetch_one(&mut *conn)
        .await
        .map_err(inspect_error)?;
    Ok(database)
}

/// The columns of a query.
pub(super) async fn query_columns(
    conn: &mut MySqlConnection,
    query: &QuerySpec,
    table: &TableId,
    spec: &DatabaseSource,
) -> Result<Vec<DbColumn>> {
    // An empty temporary table built from the query reports its columns' full declared
    // types (decimal precision and scale included).
    conn.execute("drop temporary table if exists pipectl_query")
        .await
        .map_err(inspect_error)?;
    conn.execute(
        format!(
            "create temporary table pipectl_query as select * from ({}) as q limit 0",
            query.sql
        )
        .as_str(),
    )
    .await
    .map_err(query_does_not_run(query))?;
    let rows = sqlx::query("show columns from pipectl_query")
        .fetch_all(&mut *conn)
        .await
        .map_err(inspect_error)?;
    let mut declared = Vec::new();
    for row in rows {
        let name: &[u8] = row.try_get_unchecked(0).map_err(inspect_error)?;
        let ty: &[u8] = row.try_get_unchecked(1).map_err(inspect_error)?;
        declared.push((
            String::from_utf8_lossy(name).into_owned(),
            String::from_utf8_lossy(ty).into_owned(),
        ));
    }
    conn.execute("drop temporary table pipectl_query")
        .await
        .map_err(inspect_error)?;
    columns_of(declared, table, spec)
}

/// Spatial types, landed (with `unmapped_types: text`) as well-known text.
const GEOMETRY_TYPES: &[&str] = &[
    "geometry",
    "point",
    "linestring",
    "polygon",
    "multipoint",
    "multilinestring",
    "multipolygon",
    "geometrycollection",
];

fn columns_of(
    declared: Vec<(String, String)>,
    table: &TableId,
    spec: &DatabaseSource,
) -> Result<Vec<DbColumn>> {
    declared
        .into_iter()
        .map(|(name, declared)| {
            let quoted = Mysql::quote(&name);
            // Spatial values have no text cast; their well-known text is the portable form.
            let as_text = if GEOMETRY_TYPES.contains(&parse_declared(&declared).0.as_str()) {
                format!("st_astext({quoted}) as {quoted}")
            } else {
                format!("cast({quoted} as char) as {quoted}")
            };
            let (kind, select) = match map_type(&declared) {
                Some(Some(ColumnKind::Time)) if spec.mysql_time == MysqlTime::Text => {
                    (ColumnKind::Text, as_text)
                }
                Some(Some(kind)) => (kind, quoted),
                Some(None) => (ColumnKind::Text, as_text),
                None => DbColumn::unmapped(spec.unmapped_types, table, &name, &declared, as_text)?,
            };
            Ok(DbColumn::new(name, declared, kind, select))
        })
        .collect()
}

/// The base name, `(p,s)` arguments and signedness of a declared type such as
/// `decimal(8,2) unsigned`.
fn parse_declared(declared: &str) -> (String, Vec<u32>, bool) {
    let lower = declared.trim().to_ascii_lowercase();
    let base: String = lower
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let args = lower
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(inner, _)| {
            inner
                .split(',')
                .filter_map(|p| p.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    (base, args, lower.contains("unsigned"))
}

/// `Some(Some(kind))`: decoded natively; `Some(None)`: read as text; `None`: no mapping.
fn map_type(declared: &str) -> Option<Option<ColumnKind>> {
    use ColumnKind::*;
    let (base, args, unsigned) = parse_declared(declared);
    let int = |bytes: u8| if unsigned { UInt(bytes) } else { Int(bytes) };
    Some(Some(match base.as_str() {
        "tinyint" => int(1),
        "smallint" => int(2),
        "mediumint" | "int" | "integer" => int(4),
        "bigint" => int(8),
        "decimal" | "numeric" | "dec" | "fixed" => {
            let p = args.first().copied().unwrap_or(10);
            let s = args.get(1).copied().unwrap_or(0);
            if (1..=38).contains(&p) && s <= p {
                Decimal(p as u8, s as i8)
            } else {
                return Some(None);
            }
        }
        "float" => Float32,
        "double" | "real" => Float64,
        "bit" => Bits(args.first().copied().unwrap_or(1) as u16),
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set"
        | "json" => Text,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => Binary,
        "date" => Date,
        "datetime" => Timestamp,
        "timestamp" => TimestampUtc,
        "time" => Time,
        "year" => Int(2),
        "uuid" | "inet4" | "inet6" => return Some(None),
        _ => return None,
    }))
}

/// The `CAST(? AS ...)` target that makes a bound text value compare as the key column's type.
pub fn cast_target(declared: &str) -> Option<String> {
    let (base, args, unsigned) = parse_declared(declared);
    Some(match base.as_str() {
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "year" => {
            if unsigned { "unsigned" } else { "signed" }.to_owned()
        }
        "decimal" | "numeric" | "dec" | "fixed" => format!(
            "decimal({},{})",
            args.first().copied().unwrap_or(10),
            args.get(1).copied().unwrap_or(0)
        ),
        "float" | "double" | "real" => "double".to_owned(),
        "date" => "date".to_owned(),
        "datetime" | "timestamp" => "datetime(6)".to_owned(),
        "time" => "time(6)".to_owned(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_map() {
        assert_eq!(map_type("int(11)"), Some(Some(ColumnKind::Int(4))));
        assert_eq!(
            map_type("bigint(20) unsigned"),
            Some(Some(ColumnKind::UInt(8)))
        );
        assert_eq!(
            map_type("decimal(8,2)"),
            Some(Some(ColumnKind::Decimal(8, 2)))
        );
        assert_eq!(map_type("decimal(65,2)"), Some(None));
        assert_eq!(map_type("geometry"), None);
        assert_eq!(
            cast_target("bigint(20) unsigned").as_deref(),
            Some("unsigned")
        );
        assert_eq!(cast_target("varchar(10)"), None);
    }
}
