//! Reading PostgreSQL rows: `COPY (select ...) TO STDOUT (FORMAT binary)` decoded straight
//! into Arrow builders.
//!
//! `COPY` cannot take bound parameters, so a read past a stored bookmark runs as an ordinary
//! prepared query instead; its rows arrive in the same binary send format per value, so one
//! decoder serves both.

use bytes::BytesMut;
use futures::TryStreamExt;
use pipectl_spec::types::InfinityPolicy;
use sqlx::postgres::PgConnection;

use crate::error::{Error, Result};
use crate::source::database::{
    ColumnKind, ColumnValues, DbColumn, Statement, TablePlan, TableWriter, bound, read_fetched,
    value_error,
};

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

/// Runs `statement` and decodes its rows into `writer`.
pub(super) async fn read_rows(
    conn: &mut PgConnection,
    plan: &TablePlan,
    statement: &Statement,
    writer: &mut TableWriter<'_>,
) -> Result<()> {
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
                let row = writer.start_row();
                decode_copy_tuple(tuple, plan, writer.columns(), row)?;
                writer.end_row().await?;
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
        let rows = bound(statement).fetch(&mut *conn);
        read_fetched(rows, plan, writer, |column, raw, values| {
            decode_value(column, raw, values, plan.infinity)
        })
        .await?;
    }
    Ok(())
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
