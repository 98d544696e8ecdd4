//! MySQL and MariaDB: tables from `information_schema`, types mapped from the declared column
//! type, rows streamed over the binary protocol and decoded straight into Arrow builders.

use std::str::FromStr;
use std::sync::Arc;

use arrow::compute::kernels::cast_utils::parse_decimal;
use arrow::datatypes::Decimal128Type;
use futures::TryStreamExt;
use pipectl_spec::types::{DatabaseSource, MysqlTime, UnmappedTypes};
use pipectl_state::Bookmark;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{ConnectOptions, Connection, Executor, Row};

use super::database::{
    ColumnKind, ColumnValues, DbColumn, Dialect, Listing, SLOW_STATEMENT, Selection, TableOutcome,
    TablePlan, finish_batch, plan_table,
};
use crate::context::Output;
use crate::error::{Error, Result};
use crate::table::{Message, TableId};

/// The Unix epoch, which Arrow dates and timestamps count from.
const EPOCH: chrono::NaiveDate = match chrono::NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(d) => d,
    None => panic!("1970-01-01 is a valid date"),
};

/// Connects (a `mariadb://` URL is read as `mysql://`) and reads times in UTC.
pub async fn connect(url: &str) -> Result<MySqlConnection> {
    let url = match url.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => url.to_owned(),
    };
    let (level, after) = SLOW_STATEMENT;
    let options = MySqlConnectOptions::from_str(&url)
        .map_err(|e| Error::user(format!("the MySQL URL does not parse: {e}")))?
        .timezone(Some("+00:00".to_owned()))
        .log_slow_statements(level, after);
    MySqlConnection::connect_with(&options)
        .await
        .map_err(|e| Error::external("cannot connect to MySQL", e))
}

/// System schemas never selected by `%` rules.
const SYSTEM_SCHEMAS: &[&str] = &["mysql", "information_schema", "performance_schema", "sys"];

/// Lists what the source reads: the tables its rules select (by schema, then name), then its
/// queries, each with the stored bookmark attached.
pub async fn plan_tables(
    source: &str,
    spec: &DatabaseSource,
    conn: &mut MySqlConnection,
    stored: &(dyn Fn(&str) -> Option<Bookmark> + Sync),
) -> Result<Listing<TablePlan>> {
    let mut plans = Vec::new();
    let mut selection = Selection::new(spec);
    if !spec.include.is_empty() || spec.queries.is_empty() {
        let tables: Vec<(String, String, bool)> = sqlx::query_as(
            "select cast(table_schema as char), cast(table_name as char), table_type in ('VIEW', 'SYSTEM VIEW') from information_schema.tables order by 1, 2",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| Error::external("cannot list MySQL tables", e))?;
        for (schema, name, view) in tables {
            if SYSTEM_SCHEMAS.contains(&schema.as_str()) || !selection.select(&schema, &name, view)
            {
                continue;
            }
            let table = TableId {
                source: source.to_owned(),
                schema: schema.clone(),
                name: name.clone(),
            };
            let declared: Vec<(String, String)> = sqlx::query_as(
                "select cast(column_name as char), cast(column_type as char) from information_schema.columns where table_schema = ? and table_name = ? order by ordinal_position",
            )
            .bind(&schema)
            .bind(&name)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| Error::external(format!("cannot read the columns of {table}"), e))?;
            let columns = columns_of(declared, &table, spec)?;
            let from = format!(
                "{}.{}",
                Dialect::Mysql.quote(&schema),
                Dialect::Mysql.quote(&name)
            );
            plans.push(plan_table(
                Dialect::Mysql,
                source,
                spec,
                table,
                columns,
                from,
                stored,
            )?);
        }
    }
    for query in &spec.queries {
        let (database,): (Option<String>,) = sqlx::query_as("select cast(database() as char)")
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| Error::external("cannot inspect a query", e))?;
        let table = TableId {
            source: source.to_owned(),
            schema: query.schema.clone().or(database).unwrap_or_default(),
            name: query.table.clone(),
        };
        // An empty temporary table built from the query reports its columns' full declared
        // types (decimal precision and scale included).
        conn.execute("drop temporary table if exists pipectl_query")
            .await
            .map_err(|e| Error::external("cannot inspect a query", e))?;
        conn.execute(
            format!(
                "create temporary table pipectl_query as select * from ({}) as q limit 0",
                query.sql
            )
            .as_str(),
        )
        .await
        .map_err(|e| {
            Error::user(format!(
                "query for table `{}` does not run: {e}",
                query.table
            ))
        })?;
        let rows = sqlx::query("show columns from pipectl_query")
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| Error::external("cannot inspect a query", e))?;
        let mut declared = Vec::new();
        for row in rows {
            let name: &[u8] = row
                .try_get_unchecked(0)
                .map_err(|e| Error::external("cannot inspect a query", e))?;
            let ty: &[u8] = row
                .try_get_unchecked(1)
                .map_err(|e| Error::external("cannot inspect a query", e))?;
            declared.push((
                String::from_utf8_lossy(name).into_owned(),
                String::from_utf8_lossy(ty).into_owned(),
            ));
        }
        conn.execute("drop temporary table pipectl_query")
            .await
            .map_err(|e| Error::external("cannot inspect a query", e))?;
        let columns = columns_of(declared, &table, spec)?;
        let from = format!("({}) as q", query.sql);
        plans.push(plan_table(
            Dialect::Mysql,
            source,
            spec,
            table,
            columns,
            from,
            stored,
        )?);
    }
    Ok(selection.listing(plans))
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
            let quoted = Dialect::Mysql.quote(&name);
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
                None => match spec.unmapped_types {
                    UnmappedTypes::Text => (ColumnKind::Text, as_text),
                    UnmappedTypes::Fail => {
                        return Err(Error::user(format!(
                            "table {table}, column `{name}`: type `{declared}` cannot be mapped; set `unmapped_types: text` on the source to land it as text, or cast it in a `queries:` entry"
                        )));
                    }
                },
            };
            Ok(DbColumn {
                source: name.clone(),
                name,
                declared,
                kind,
                select,
            })
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

/// Reads one table into `out`; returns the new bookmark position when it moved.
pub async fn read_table(
    url: &str,
    plan: &TablePlan,
    batch_rows: usize,
    out: &Output,
) -> Result<TableOutcome> {
    let mut conn = connect(url).await?;
    conn.execute("set session transaction isolation level repeatable read")
        .await
        .map_err(|e| Error::external("cannot set the isolation level", e))?;
    conn.execute("start transaction with consistent snapshot, read only")
        .await
        .map_err(|e| Error::external("cannot start a snapshot", e))?;
    let table = Arc::new(plan.table.clone());
    if let Some(sql) = plan.null_count_statement(Dialect::Mysql) {
        let (nulls,): (i64,) = sqlx::query_as(&sql)
            .fetch_one(&mut conn)
            .await
            .map_err(|e| Error::external("cannot count NULL bookmark keys", e))?;
        if nulls > 0 {
            return Err(Error::user(format!(
                "{nulls} rows have a NULL bookmark key and `null_keys: fail` is set; fix the data or set `null_keys: skip`"
            )));
        }
    }
    let mut moved = None;
    if let Some(max) = plan.max_statement(Dialect::Mysql) {
        let mut query = sqlx::query(&max.sql);
        for p in &max.params {
            query = query.bind(p);
        }
        let row = query
            .fetch_optional(&mut conn)
            .await
            .map_err(|e| Error::external("cannot find the highest bookmark key", e))?;
        let Some(row) = row else {
            conn.close().await.ok();
            out.send(Message::EndOfTable(table)).await?;
            return Ok(None);
        };
        let mut values = Vec::with_capacity(row.len());
        for i in 0..row.len() {
            let v: &[u8] = row
                .try_get_unchecked(i)
                .map_err(|e| Error::external("cannot read the highest bookmark key", e))?;
            values.push(serde_json::Value::String(
                String::from_utf8_lossy(v).into_owned(),
            ));
        }
        moved = Some(values);
    }
    let statement = plan.read_statement(Dialect::Mysql);
    let mut columns = ColumnValues::for_schema(&plan.schema, batch_rows)?;
    let mut rows = 0u64;
    {
        let mut query = sqlx::query(&statement.sql);
        for p in &statement.params {
            query = query.bind(p);
        }
        let mut stream = query.fetch(&mut conn);
        loop {
            let row = stream
                .try_next()
                .await
                .map_err(|e| Error::external("reading rows failed", e))?;
            let Some(row) = row else { break };
            rows += 1;
            for (i, (column, values)) in plan.columns.iter().zip(columns.iter_mut()).enumerate() {
                let raw: Option<&[u8]> = row
                    .try_get_unchecked(i)
                    .map_err(|e| Error::external("decoding a value failed", e))?;
                decode_value(column, raw, values).map_err(|m| {
                    Error::user(format!(
                        "{}: row {rows}, column `{}` ({}): {m}",
                        plan.table, column.name, column.declared
                    ))
                })?;
            }
            if columns.first().is_some_and(|c| c.len() >= batch_rows) {
                let batch = finish_batch(&plan.schema, &mut columns)?;
                out.send(Message::Batch(table.clone(), batch)).await?;
            }
        }
    }
    conn.execute("commit").await.ok();
    conn.close().await.ok();
    if columns.first().is_some_and(|c| !c.is_empty()) || rows == 0 {
        // An empty table still sends one empty batch so sinks can write its schema.
        let batch = finish_batch(&plan.schema, &mut columns)?;
        out.send(Message::Batch(table.clone(), batch)).await?;
    }
    out.send(Message::EndOfTable(table)).await?;
    Ok(moved)
}

/// A little-endian integer of 1 to 8 bytes, sign-extended when `signed`.
fn le_int(v: &[u8], signed: bool) -> std::result::Result<u64, String> {
    if v.is_empty() || v.len() > 8 {
        return Err(format!("integer of {} bytes", v.len()));
    }
    let mut bytes = [0u8; 8];
    bytes[..v.len()].copy_from_slice(v);
    if signed && v[v.len() - 1] & 0x80 != 0 {
        bytes[v.len()..].fill(0xff);
    }
    Ok(u64::from_le_bytes(bytes))
}

/// Decodes one value in MySQL's binary protocol format.
fn decode_value(
    column: &DbColumn,
    raw: Option<&[u8]>,
    out: &mut ColumnValues,
) -> std::result::Result<(), String> {
    let Some(v) = raw else {
        out.append_null();
        return Ok(());
    };
    let text = || std::str::from_utf8(v).map_err(|_| "text is not valid UTF-8".to_owned());
    match column.kind {
        ColumnKind::Int(_) => out.append_i64(le_int(v, true)? as i64),
        ColumnKind::UInt(_) => out.append_u64(le_int(v, false)?),
        ColumnKind::Float32 | ColumnKind::Float64 => match v.len() {
            4 => out.append_f64(f32::from_le_bytes([v[0], v[1], v[2], v[3]]) as f64),
            8 => out.append_f64(f64::from_le_bytes(
                v.try_into().map_err(|_| "float of 8 bytes".to_owned())?,
            )),
            n => Err(format!("float of {n} bytes")),
        },
        ColumnKind::Decimal(p, s) => {
            let t = text()?;
            let parsed = parse_decimal::<Decimal128Type>(t, p, s)
                .map_err(|_| format!("{t} does not fit decimal({p},{s})"))?;
            out.append_decimal(parsed)
        }
        ColumnKind::Text => out.append_str(text()?),
        ColumnKind::Binary => out.append_bytes(v),
        ColumnKind::Bits(width) => {
            let mut bits = String::with_capacity(v.len() * 8);
            for byte in v {
                bits.push_str(&format!("{byte:08b}"));
            }
            let keep = (width as usize).min(bits.len());
            out.append_str(&bits[bits.len() - keep..])
        }
        ColumnKind::Date => {
            let (date, _) = datetime_parts(v)?;
            out.append_days((date - EPOCH).num_days() as i32)
        }
        ColumnKind::Timestamp | ColumnKind::TimestampUtc => {
            let (date, micros) = datetime_parts(v)?;
            out.append_micros((date - EPOCH).num_days() * 86_400_000_000 + micros)
        }
        ColumnKind::Time => {
            // [len][negative][days u32][hour][minute][second][micros u32]
            let len = v.first().copied().unwrap_or(0) as usize;
            if len == 0 {
                return out.append_micros(0);
            }
            // The length byte says 8 (no fraction) or 12 (with microseconds); the value must
            // hold all of them before any is read.
            if !matches!(len, 8 | 12) || v.len() < 1 + len {
                return Err("time value is truncated".to_owned());
            }
            let days = u32::from_le_bytes([v[2], v[3], v[4], v[5]]);
            if v[1] != 0 || days != 0 {
                return Err(
                    "a negative time or one of 24 hours or more is not a time of day; set `mysql_time: text` on the source to land TIME columns as MySQL prints them"
                        .to_owned(),
                );
            }
            let micros = if len == 12 {
                u32::from_le_bytes([v[9], v[10], v[11], v[12]]) as i64
            } else {
                0
            };
            out.append_micros(
                (v[6] as i64 * 3600 + v[7] as i64 * 60 + v[8] as i64) * 1_000_000 + micros,
            )
        }
        ColumnKind::Bool | ColumnKind::Jsonb | ColumnKind::Uuid => {
            Err(format!("{:?} does not occur in MySQL", column.kind))
        }
    }
}

/// A binary DATE/DATETIME/TIMESTAMP: the date and microseconds into the day.
fn datetime_parts(v: &[u8]) -> std::result::Result<(chrono::NaiveDate, i64), String> {
    let len = v.first().copied().unwrap_or(0) as usize;
    if len < 4 || v.len() < 1 + len {
        return Err(
            "zero dates (0000-00-00) cannot be landed; filter them out or set them to NULL"
                .to_owned(),
        );
    }
    let year = u16::from_le_bytes([v[1], v[2]]) as i32;
    let date = chrono::NaiveDate::from_ymd_opt(year, v[3] as u32, v[4] as u32)
        .ok_or_else(|| format!("{year}-{}-{} is not a valid date", v[3], v[4]))?;
    let mut micros = 0i64;
    if len >= 7 {
        micros = (v[5] as i64 * 3600 + v[6] as i64 * 60 + v[7] as i64) * 1_000_000;
    }
    if len >= 11 {
        micros += u32::from_le_bytes([v[8], v[9], v[10], v[11]]) as i64;
    }
    Ok((date, micros))
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

    #[test]
    fn a_time_shorter_than_its_length_byte_is_an_error_not_a_panic() {
        let column = DbColumn {
            name: "t".into(),
            source: "t".into(),
            declared: "time(6)".into(),
            kind: ColumnKind::Time,
            select: "`t`".into(),
        };
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("t", ColumnKind::Time.arrow_type(), true),
        ]));
        let mut values = ColumnValues::for_schema(&schema, 1).expect("builders");
        // Says 12 bytes (with microseconds) but holds only the 8 without them.
        let short = [12, 0, 0, 0, 0, 0, 1, 2, 3];
        assert_eq!(
            decode_value(&column, Some(&short), &mut values[0]),
            Err("time value is truncated".to_owned())
        );
        // 01:02:03.000004 in full.
        let full = [12, 0, 0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0];
        decode_value(&column, Some(&full), &mut values[0]).expect("a whole time");
        assert_eq!(values[0].len(), 1);
    }

    #[test]
    fn little_endian_integers_sign_extend() {
        assert_eq!(le_int(&[0xff], true).map(|v| v as i64), Ok(-1));
        assert_eq!(le_int(&[0xff], false), Ok(255));
        assert_eq!(le_int(&[0x00, 0x80], true).map(|v| v as i64), Ok(-32768));
    }
}
