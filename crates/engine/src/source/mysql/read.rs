//! Reading MySQL rows: streamed over the binary protocol and decoded straight into Arrow
//! builders.

use arrow::compute::kernels::cast_utils::parse_decimal;
use arrow::datatypes::Decimal128Type;

use crate::source::database::{ColumnKind, ColumnValues, DbColumn};

/// The Unix epoch, which Arrow dates and timestamps count from.
const EPOCH: chrono::NaiveDate = match chrono::NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(d) => d,
    None => panic!("1970-01-01 is a valid date"),
};

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
pub(super) fn decode_value(
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
    use std::sync::Arc;

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
