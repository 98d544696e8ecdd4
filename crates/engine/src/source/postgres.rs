//! PostgreSQL: tables from the catalog, types mapped from `pg_type`, rows read with
//! `COPY (select ...) TO STDOUT (FORMAT binary)` and decoded straight into Arrow builders.
//!
//! `COPY` cannot take bound parameters, so a read past a stored bookmark runs as an ordinary
//! prepared query instead; its rows arrive in the same binary send format per value, so one
//! decoder serves both.

use std::str::FromStr;

use bytes::BytesMut;
use futures::TryStreamExt;
use pipectl_spec::types::{DatabaseSource, InfinityPolicy, UnmappedTypes};
use pipectl_state::Bookmark;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection, Executor, Row};
use std::sync::Arc;

use super::database::{
    ColumnKind, ColumnValues, DbColumn, Dialect, Listing, SLOW_STATEMENT, Selection, TableOutcome,
    TablePlan, finish_batch, plan_table,
};
use crate::context::Output;
use crate::error::{Error, Result};
use crate::table::{Message, TableId};

/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// `infinity: clamp`: 9999-12-31 and 0001-01-01 as days since 1970-01-01.
const LATEST_DAY: i32 = 2_932_896;
const EARLIEST_DAY: i32 = -719_162;
/// `infinity: clamp`: 9999-12-31 23:59:59.999999 and 0001-01-01 00:00:00 as microseconds
/// since 1970-01-01.
const LATEST_MICROS: i64 = 253_402_300_799_999_999;
const EARLIEST_MICROS: i64 = -62_135_596_800_000_000;
/// The binary COPY signature.
const COPY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Connects and fixes the session settings values are read in: UTC, ISO dates and intervals.
pub async fn connect(url: &str) -> Result<PgConnection> {
    let (level, after) = SLOW_STATEMENT;
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| Error::user(format!("the PostgreSQL URL does not parse: {e}")))?
        .log_slow_statements(level, after);
    let mut conn = PgConnection::connect_with(&options)
        .await
        .map_err(|e| Error::external("cannot connect to PostgreSQL", e))?;
    conn.execute("set timezone = 'UTC'; set datestyle = 'ISO'; set intervalstyle = 'iso_8601'")
        .await
        .map_err(|e| Error::external("cannot set up the PostgreSQL session", e))?;
    Ok(conn)
}

/// One catalog row describing a column.
type CatalogColumn = (String, String, String, String, String, i32);

const COLUMNS_SQL: &str = "select a.attname::text, format_type(a.atttypid, a.atttypmod), bt.typname::text, bt.typtype::text, bt.typcategory::text, case when t.typtype = 'd' then t.typtypmod else a.atttypmod end \
     from pg_attribute a join pg_type t on t.oid = a.atttypid \
     join pg_type bt on bt.oid = case when t.typtype = 'd' then t.typbasetype else t.oid end \
     where a.attrelid = $1::oid and a.attnum > 0 and not a.attisdropped order by a.attnum";

/// Lists what the source reads: the tables its rules select (by schema, then name), then its
/// queries, each with the stored bookmark attached.
pub async fn plan_tables(
    source: &str,
    spec: &DatabaseSource,
    conn: &mut PgConnection,
    stored: &(dyn Fn(&str) -> Option<Bookmark> + Sync),
) -> Result<Listing<TablePlan>> {
    let mut plans = Vec::new();
    let mut selection = Selection::new(spec);
    if !spec.include.is_empty() || spec.queries.is_empty() {
        let tables: Vec<(i64, String, String, bool)> = sqlx::query_as(
            "select c.oid::int8, n.nspname::text, c.relname::text, c.relkind in ('v', 'm') from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where c.relkind in ('r', 'p', 'v', 'm', 'f') and not c.relispartition \
             and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%' and n.nspname not like 'pg\\_temp%' \
             order by 2, 3",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| Error::external("cannot list PostgreSQL tables", e))?;
        for (oid, schema, name, view) in tables {
            if !selection.select(&schema, &name, view) {
                continue;
            }
            let table = TableId {
                source: source.to_owned(),
                schema: schema.clone(),
                name: name.clone(),
            };
            let columns = columns_of(conn, oid, &table, spec.unmapped_types).await?;
            let from = format!(
                "{}.{}",
                Dialect::Postgres.quote(&schema),
                Dialect::Postgres.quote(&name)
            );
            plans.push(plan_table(
                Dialect::Postgres,
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
        let table = TableId {
            source: source.to_owned(),
            schema: query.schema.clone().unwrap_or_else(|| "public".to_owned()),
            name: query.table.clone(),
        };
        // A temporary view gives the query's columns with their full declared types
        // (numeric precision and scale included), which a statement description does not.
        conn.execute("drop view if exists pg_temp.pipectl_query")
            .await
            .map_err(|e| Error::external("cannot inspect a query", e))?;
        conn.execute(format!("create temporary view pipectl_query as {}", query.sql).as_str())
            .await
            .map_err(|e| {
                Error::user(format!(
                    "query for table `{}` does not run: {e}",
                    query.table
                ))
            })?;
        let (oid,): (i64,) = sqlx::query_as("select 'pg_temp.pipectl_query'::regclass::oid::int8")
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| Error::external("cannot inspect a query", e))?;
        let columns = columns_of(conn, oid, &table, spec.unmapped_types).await?;
        conn.execute("drop view pg_temp.pipectl_query")
            .await
            .map_err(|e| Error::external("cannot inspect a query", e))?;
        let from = format!("({}) as q", query.sql);
        plans.push(plan_table(
            Dialect::Postgres,
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
            let quoted = Dialect::Postgres.quote(&name);
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
                Mapping::Unmapped => match unmapped {
                    UnmappedTypes::Text => (ColumnKind::Text, format!("{quoted}::text as {quoted}")),
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

/// Reads one table into `out`; returns the new bookmark position when it moved.
pub async fn read_table(
    url: &str,
    plan: &TablePlan,
    batch_rows: usize,
    out: &Output,
) -> Result<TableOutcome> {
    let mut conn = connect(url).await?;
    conn.execute("begin isolation level repeatable read read only")
        .await
        .map_err(|e| Error::external("cannot start a snapshot", e))?;
    let table = Arc::new(plan.table.clone());
    if let Some(sql) = plan.null_count_statement(Dialect::Postgres) {
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
    if let Some(max) = plan.max_statement(Dialect::Postgres) {
        let mut query = sqlx::query(&max.sql);
        for p in &max.params {
            query = query.bind(p);
        }
        let row = query
            .fetch_optional(&mut conn)
            .await
            .map_err(|e| Error::external("cannot find the highest bookmark key", e))?;
        let Some(row) = row else {
            // Nothing past the bookmark: no file, and the bookmark stays.
            conn.close().await.ok();
            out.send(Message::EndOfTable(table)).await?;
            return Ok(None);
        };
        let mut values = Vec::with_capacity(row.len());
        for i in 0..row.len() {
            let v: String = row
                .try_get(i)
                .map_err(|e| Error::external("cannot read the highest bookmark key", e))?;
            values.push(serde_json::Value::String(v));
        }
        moved = Some(values);
    }
    let statement = plan.read_statement(Dialect::Postgres);
    let mut columns = ColumnValues::for_schema(&plan.schema, batch_rows)?;
    let mut rows = 0u64;
    if statement.params.is_empty() {
        let copy = format!("copy ({}) to stdout (format binary)", statement.sql);
        let mut stream = conn
            .copy_out_raw(&copy)
            .await
            .map_err(|e| Error::external("COPY failed", e))?;
        // PostgreSQL sends one row per message; rows are decoded straight from the message,
        // and only a row split across messages is gathered in `pending`.
        let mut pending = BytesMut::new();
        let mut header_read = false;
        let mut done = false;
        while !done {
            let chunk = stream
                .try_next()
                .await
                .map_err(|e| Error::external("reading rows failed", e))?;
            let Some(chunk) = chunk else { break };
            let gathered;
            let data: &[u8] = if pending.is_empty() {
                &chunk
            } else {
                pending.extend_from_slice(&chunk);
                gathered = pending.split();
                &gathered
            };
            let mut at = 0usize;
            if !header_read {
                match copy_header_len(data)? {
                    Some(n) => {
                        at = n;
                        header_read = true;
                    }
                    None => {
                        pending.extend_from_slice(data);
                        continue;
                    }
                }
            }
            while let Some(used) = tuple_len(&data[at..])? {
                let tuple = &data[at..at + used];
                at += used;
                if tuple[..2] == [0xff, 0xff] {
                    done = true;
                    break;
                }
                rows += 1;
                decode_copy_tuple(tuple, plan, &mut columns, rows)?;
                if columns.first().is_some_and(|c| c.len() >= batch_rows) {
                    let batch = finish_batch(&plan.schema, &mut columns)?;
                    out.send(Message::Batch(table.clone(), batch)).await?;
                }
            }
            if !done {
                pending.extend_from_slice(&data[at..]);
            }
        }
        // Read to the end so the connection is left in a clean state.
        while stream
            .try_next()
            .await
            .map_err(|e| Error::external("reading rows failed", e))?
            .is_some()
        {}
    } else {
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
                decode_value(column, raw, values, plan.infinity)
                    .map_err(|m| value_error(plan, column, rows, &m))?;
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

fn value_error(plan: &TablePlan, column: &DbColumn, row: u64, message: &str) -> Error {
    Error::user(format!(
        "{}: row {row}, column `{}` ({}): {message}",
        plan.table, column.name, column.declared
    ))
}

/// Length of the COPY header once it is all in `buf`.
fn copy_header_len(buf: &[u8]) -> Result<Option<usize>> {
    if buf.len() < 19 {
        return Ok(None);
    }
    if &buf[..11] != COPY_SIGNATURE {
        return Err(Error::internal(
            "COPY output does not start with the binary signature",
        ));
    }
    let extension = u32::from_be_bytes([buf[15], buf[16], buf[17], buf[18]]) as usize;
    Ok((buf.len() >= 19 + extension).then_some(19 + extension))
}

/// Length of the next tuple (or the trailer) once it is all in `buf`.
fn tuple_len(buf: &[u8]) -> Result<Option<usize>> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let fields = i16::from_be_bytes([buf[0], buf[1]]);
    if fields == -1 {
        return Ok(Some(2));
    }
    let mut at = 2usize;
    for _ in 0..fields {
        if buf.len() < at + 4 {
            return Ok(None);
        }
        let len = i32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        at += 4;
        if len > 0 {
            at += len as usize;
        }
    }
    Ok((buf.len() >= at).then_some(at))
}

fn decode_copy_tuple(
    tuple: &[u8],
    plan: &TablePlan,
    columns: &mut [ColumnValues],
    row: u64,
) -> Result<()> {
    let fields = i16::from_be_bytes([tuple[0], tuple[1]]) as usize;
    if fields != plan.columns.len() {
        return Err(Error::internal(format!(
            "COPY sent {fields} fields, expected {}",
            plan.columns.len()
        )));
    }
    let mut at = 2usize;
    for (column, values) in plan.columns.iter().zip(columns.iter_mut()) {
        let len = i32::from_be_bytes([tuple[at], tuple[at + 1], tuple[at + 2], tuple[at + 3]]);
        at += 4;
        let raw = if len < 0 {
            None
        } else {
            let v = &tuple[at..at + len as usize];
            at += len as usize;
            Some(v)
        };
        decode_value(column, raw, values, plan.infinity)
            .map_err(|m| value_error(plan, column, row, &m))?;
    }
    Ok(())
}

fn fixed<const N: usize>(v: &[u8]) -> std::result::Result<[u8; N], String> {
    v.try_into()
        .map_err(|_| format!("expected {N} bytes, found {}", v.len()))
}

/// Decodes one value in PostgreSQL's binary send format; infinite dates and timestamps land
/// by `infinity`.
fn decode_value(
    column: &DbColumn,
    raw: Option<&[u8]>,
    out: &mut ColumnValues,
    infinity: InfinityPolicy,
) -> std::result::Result<(), String> {
    let Some(v) = raw else {
        out.append_null();
        return Ok(());
    };
    match column.kind {
        ColumnKind::Int(2) => out.append_i64(i16::from_be_bytes(fixed(v)?) as i64),
        ColumnKind::Int(4) => out.append_i64(i32::from_be_bytes(fixed(v)?) as i64),
        ColumnKind::Int(_) => out.append_i64(i64::from_be_bytes(fixed(v)?)),
        ColumnKind::Float32 => out.append_f64(f32::from_be_bytes(fixed(v)?) as f64),
        ColumnKind::Float64 => out.append_f64(f64::from_be_bytes(fixed(v)?)),
        ColumnKind::Bool => out.append_bool(v.first().is_some_and(|b| *b != 0)),
        ColumnKind::Decimal(_, scale) => out.append_decimal(decode_numeric(v, scale)?),
        ColumnKind::Text => out.append_str(utf8(v)?),
        ColumnKind::Jsonb => match v.split_first() {
            Some((1, text)) => out.append_str(utf8(text)?),
            _ => Err("unknown jsonb format version".to_owned()),
        },
        ColumnKind::Uuid => {
            let b: [u8; 16] = fixed(v)?;
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            out.append_str(&format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            ))
        }
        ColumnKind::Binary => out.append_bytes(v),
        ColumnKind::Date => {
            let days = i32::from_be_bytes(fixed(v)?);
            let positive = match days {
                i32::MAX => true,
                i32::MIN => false,
                _ => return out.append_days(days + PG_EPOCH_DAYS),
            };
            match infinite(infinity, positive, "date")? {
                Some(latest) => out.append_days(if latest { LATEST_DAY } else { EARLIEST_DAY }),
                None => {
                    out.append_null();
                    Ok(())
                }
            }
        }
        ColumnKind::Time => out.append_micros(i64::from_be_bytes(fixed(v)?)),
        ColumnKind::Timestamp | ColumnKind::TimestampUtc => {
            let micros = i64::from_be_bytes(fixed(v)?);
            let positive = match micros {
                i64::MAX => true,
                i64::MIN => false,
                _ => return out.append_micros(micros + PG_EPOCH_MICROS),
            };
            match infinite(infinity, positive, "timestamp")? {
                Some(latest) => out.append_micros(if latest {
                    LATEST_MICROS
                } else {
                    EARLIEST_MICROS
                }),
                None => {
                    out.append_null();
                    Ok(())
                }
            }
        }
        ColumnKind::UInt(_) | ColumnKind::Bits(_) => {
            Err(format!("{:?} does not occur in PostgreSQL", column.kind))
        }
    }
}

/// What an infinite value (`positive`: `infinity`, else `-infinity`) of a `what` column lands
/// as: `Some(true)` the latest value, `Some(false)` the earliest, `None` NULL.
fn infinite(
    policy: InfinityPolicy,
    positive: bool,
    what: &str,
) -> std::result::Result<Option<bool>, String> {
    match policy {
        InfinityPolicy::Fail => Err(format!(
            "{}infinity is not a {what} other readers take; set `infinity: clamp` (9999-12-31 / 0001-01-01) or `infinity: set_null` on the source",
            if positive { "" } else { "-" }
        )),
        InfinityPolicy::SetNull => Ok(None),
        InfinityPolicy::Clamp => Ok(Some(positive)),
    }
}

fn utf8(v: &[u8]) -> std::result::Result<&str, String> {
    std::str::from_utf8(v).map_err(|_| "text is not valid UTF-8".to_owned())
}

/// PostgreSQL's binary numeric (base-10000 digits) as an unscaled integer at `scale`.
fn decode_numeric(v: &[u8], scale: i8) -> std::result::Result<i128, String> {
    if v.len() < 8 {
        return Err("numeric value is truncated".to_owned());
    }
    let ndigits = u16::from_be_bytes([v[0], v[1]]) as usize;
    let weight = i16::from_be_bytes([v[2], v[3]]) as i32;
    let sign = u16::from_be_bytes([v[4], v[5]]);
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Err("NaN does not fit a decimal column".to_owned()),
        _ => return Err("infinity does not fit a decimal column".to_owned()),
    }
    if v.len() < 8 + 2 * ndigits {
        return Err("numeric value is truncated".to_owned());
    }
    let mut total: i128 = 0;
    for i in 0..ndigits {
        let digit = u16::from_be_bytes([v[8 + 2 * i], v[9 + 2 * i]]) as i128;
        // This digit counts 10000^(weight - i); in units of 10^-scale that is 10^(4(weight-i)+scale).
        let exp = 4 * (weight - i as i32) + scale as i32;
        let term = if exp >= 0 {
            10i128
                .checked_pow(exp as u32)
                .and_then(|p| digit.checked_mul(p))
                .ok_or("numeric value is too large")?
        } else {
            // Digits beyond the column's scale are zero (the column's typmod rounds them).
            digit / 10i128.pow((-exp) as u32)
        };
        total = total
            .checked_add(term)
            .ok_or("numeric value is too large")?;
    }
    Ok(if sign == 0x4000 { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamped_infinities_are_the_first_and_last_days_readers_take() {
        let day = |d: i32| {
            chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::TimeDelta::days(d.into())
        };
        assert_eq!(day(LATEST_DAY).to_string(), "9999-12-31");
        assert_eq!(day(EARLIEST_DAY).to_string(), "0001-01-01");
        let at = |m: i64| {
            chrono::DateTime::from_timestamp_micros(m)
                .unwrap()
                .naive_utc()
                .to_string()
        };
        assert_eq!(at(LATEST_MICROS), "9999-12-31 23:59:59.999999");
        assert_eq!(at(EARLIEST_MICROS), "0001-01-01 00:00:00");
    }

    #[test]
    fn numeric_typmods() {
        // numeric(8,2): ((8 << 16) | 2) + 4
        assert_eq!(numeric_typmod(((8 << 16) | 2) + 4), Some((8, 2)));
        assert_eq!(numeric_typmod(-1), None);
        assert_eq!(numeric_typmod(((60 << 16) | 2) + 4), None);
    }

    #[test]
    fn numerics_decode_exactly() {
        // 1234.5600 -> digits [1234, 5600], weight 0, dscale 4
        let mut v = vec![0, 2, 0, 0, 0x40, 0, 0, 4];
        v.extend_from_slice(&1234u16.to_be_bytes());
        v.extend_from_slice(&5600u16.to_be_bytes());
        assert_eq!(decode_numeric(&v, 2), Ok(-123456));
        // 0.05 -> digits [500], weight -1
        let mut v = vec![0, 1, 0xff, 0xff, 0, 0, 0, 2];
        v.extend_from_slice(&500u16.to_be_bytes());
        assert_eq!(decode_numeric(&v, 2), Ok(5));
        assert!(decode_numeric(&[0, 0, 0, 0, 0xC0, 0, 0, 0], 2).is_err());
    }
}
