//! How PostgreSQL column types land in Arrow, and text-format values converted to them.
//!
//! The mapping is the batch PostgreSQL source's (`crates/engine/src/source/postgres/catalog.rs`),
//! so a table's full load and its changes have one schema: integers and floats of their
//! width, `numeric(p,s)` as an exact `Decimal128(p,s)` (unconstrained `numeric` as its exact
//! text), `timestamptz` as UTC microseconds with the zone, `timestamp` without, arrays as JSON
//! arrays (what `array_to_json` prints), `json`/`jsonb`/`uuid`/enums and the types the batch
//! source selects as `::text` as text, `bytea` as binary. The batch source keys it by type
//! name from the catalog; pgoutput sends type OIDs, so here it is keyed by the built-in OIDs,
//! and a [`TypeCatalog`] read from `pg_type` resolves the rest (domains, enums, extension
//! types). The two tables should become one when the engine reads its changes from this crate.
//!
//! pgoutput sends values in their types' text output format (with `binary` off, the default),
//! which is what the batch source's `::text` casts print, so text-typed columns match it
//! byte for byte. The session must use `DateStyle` `ISO` (the default) and `bytea_output`
//! `hex` (the default).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow::compute::kernels::cast_utils::parse_decimal;
use arrow::datatypes::{DataType, Decimal128Type, TimeUnit};
use chrono::NaiveDate;

/// The Arrow shape of a PostgreSQL column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// `smallint`: `Int16`.
    Int16,
    /// `integer`: `Int32`.
    Int32,
    /// `bigint`: `Int64`.
    Int64,
    /// `real`: `Float32`.
    Float32,
    /// `double precision`: `Float64`.
    Float64,
    /// `boolean`: `Boolean`.
    Bool,
    /// `numeric(p,s)` with `p <= 38`: `Decimal128(p, s)`.
    Decimal(u8, i8),
    /// Text as the server prints it: `Utf8`.
    Text,
    /// `bytea`: `Binary`.
    Binary,
    /// `date`: `Date32`.
    Date,
    /// `time`: `Time64(µs)`.
    Time,
    /// `timestamp`: `Timestamp(µs)` without a zone.
    Timestamp,
    /// `timestamptz`: `Timestamp(µs, "UTC")`.
    TimestampTz,
    /// An array: a JSON array in `Utf8`, its elements rendered by kind.
    Array(Element),
}

/// How an array's elements appear in its JSON form (as `to_json` renders them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Element {
    /// Integers, floats, numerics: JSON numbers (non-finite ones as strings).
    Number,
    /// Booleans: `true`/`false`.
    Bool,
    /// `json`/`jsonb`: the JSON itself.
    Json,
    /// `timestamp`: ISO 8601 strings with a `T`.
    Timestamp,
    /// `timestamptz`: ISO 8601 strings with a `T` and a `+HH:MM` offset.
    TimestampTz,
    /// Everything else: JSON strings of the text form.
    Text,
}

impl ColumnType {
    /// The Arrow type values land as (the batch source's, see the module doc).
    pub fn arrow_type(self) -> DataType {
        match self {
            ColumnType::Int16 => DataType::Int16,
            ColumnType::Int32 => DataType::Int32,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float32 => DataType::Float32,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Bool => DataType::Boolean,
            ColumnType::Decimal(p, s) => DataType::Decimal128(p, s),
            ColumnType::Text | ColumnType::Array(_) => DataType::Utf8,
            ColumnType::Binary => DataType::Binary,
            ColumnType::Date => DataType::Date32,
            ColumnType::Time => DataType::Time64(TimeUnit::Microsecond),
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            ColumnType::TimestampTz => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }
        }
    }
}

/// What a column of a type without a faithful mapping becomes (the batch source's
/// `unmapped_types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unmapped {
    /// Refuse the table, naming the column and its type.
    #[default]
    Fail,
    /// Land its text form.
    Text,
}

/// What `infinity`/`-infinity` dates and timestamps become (the batch source's `infinity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Infinity {
    /// An error naming the column: other readers cannot take them.
    #[default]
    Fail,
    /// NULL.
    SetNull,
    /// 9999-12-31 (23:59:59.999999) and 0001-01-01.
    Clamp,
}

/// A type that is not built in, as `pg_type` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomType {
    /// A domain: it lands as its base type, with the domain's type modifier.
    Domain {
        /// The base type's OID.
        base_oid: u32,
        /// The domain's type modifier (`numeric(10,2)` domains keep their scale).
        type_modifier: i32,
    },
    /// An enum: its label as text.
    Enum,
    /// An array of another type.
    Array {
        /// The element type's OID.
        element_oid: u32,
    },
    /// Anything else (composite, range, extension types): unmapped, named for the error.
    Other {
        /// `schema.name`.
        name: String,
    },
}

/// The non-built-in types a stream's relations use, read from `pg_type` with [`CATALOG_SQL`].
#[derive(Debug, Clone, Default)]
pub struct TypeCatalog {
    types: HashMap<u32, CustomType>,
}

/// Reads one [`CatalogRow`] per non-built-in type, for [`TypeCatalog::insert_row`].
pub const CATALOG_SQL: &str = "select t.oid::int8, t.typtype::text, t.typcategory::text, t.typbasetype::int8, t.typtypmod, t.typelem::int8, format('%s.%s', n.nspname, t.typname) \
     from pg_type t join pg_namespace n on n.oid = t.typnamespace where t.oid >= 16384";

/// A row of [`CATALOG_SQL`]: `oid`, `typtype`, `typcategory`, `typbasetype`, `typtypmod`,
/// `typelem`, `schema.name`.
pub type CatalogRow = (i64, String, String, i64, i32, i64, String);

impl TypeCatalog {
    /// Adds a type.
    pub fn insert(&mut self, oid: u32, ty: CustomType) {
        self.types.insert(oid, ty);
    }

    /// Adds a row of [`CATALOG_SQL`].
    pub fn insert_row(&mut self, row: CatalogRow) {
        let (oid, typtype, category, base_oid, type_modifier, element_oid, name) = row;
        // OIDs are unsigned 32-bit; the query casts them to int8 because sqlx has no `oid` type.
        let (oid, base_oid, element_oid) = (oid as u32, base_oid as u32, element_oid as u32);
        let ty = match (typtype.as_str(), category.as_str()) {
            ("d", _) => CustomType::Domain {
                base_oid,
                type_modifier,
            },
            ("e", _) => CustomType::Enum,
            (_, "A") if element_oid != 0 => CustomType::Array { element_oid },
            _ => CustomType::Other { name },
        };
        self.insert(oid, ty);
    }

    /// The type of `oid`, when it was read.
    pub fn get(&self, oid: u32) -> Option<&CustomType> {
        self.types.get(&oid)
    }
}

/// The Arrow shape of a column of type `oid` with modifier `type_modifier`, or the reason it
/// has none (for the caller to apply its [`Unmapped`] policy to).
pub fn map_type(oid: u32, type_modifier: i32, catalog: &TypeCatalog) -> Result<ColumnType, String> {
    map_type_at(oid, type_modifier, catalog, 0)
}

fn map_type_at(
    oid: u32,
    type_modifier: i32,
    catalog: &TypeCatalog,
    depth: u8,
) -> Result<ColumnType, String> {
    use ColumnType::*;
    Ok(match oid {
        21 => Int16,
        23 => Int32,
        20 => Int64,
        700 => Float32,
        701 => Float64,
        16 => Bool,
        1700 => match numeric_typmod(type_modifier) {
            Some((p, s)) => Decimal(p, s),
            // Unconstrained numeric has no fixed scale: its exact text is the faithful form.
            None => Text,
        },
        // text, varchar, bpchar, name, json, xml, jsonb, uuid
        25 | 1043 | 1042 | 19 | 114 | 142 | 3802 | 2950 => Text,
        17 => Binary,
        1082 => Date,
        1083 => Time,
        1114 => Timestamp,
        1184 => TimestampTz,
        // inet, interval, bit, varbit, money, cidr, macaddr, macaddr8, timetz, oid, "char",
        // tsvector: the batch source selects these as text too.
        869 | 1186 | 1560 | 1562 | 790 | 650 | 829 | 774 | 1266 | 26 | 18 | 3614 => Text,
        _ => {
            if let Some(element) = builtin_array_element(oid) {
                return Ok(Array(element_kind(element, catalog, depth)?));
            }
            return match catalog.get(oid) {
                Some(CustomType::Enum) => Ok(Text),
                Some(CustomType::Domain {
                    base_oid,
                    type_modifier,
                }) if depth < 8 => map_type_at(*base_oid, *type_modifier, catalog, depth + 1),
                Some(CustomType::Array { element_oid }) => {
                    Ok(Array(element_kind(*element_oid, catalog, depth)?))
                }
                Some(CustomType::Other { name }) => Err(format!("type `{name}`")),
                _ => Err(format!("type OID {oid}")),
            };
        }
    })
}

fn element_kind(oid: u32, catalog: &TypeCatalog, depth: u8) -> Result<Element, String> {
    // Every element type has a JSON form (`to_json` falls back to the text form), so an
    // element type without an Arrow mapping of its own still lands as a string.
    Ok(match map_type_at(oid, -1, catalog, depth + 1) {
        Ok(ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64)
        | Ok(ColumnType::Float32 | ColumnType::Float64 | ColumnType::Decimal(..)) => {
            Element::Number
        }
        // Unconstrained numeric maps to text but is a number in JSON.
        Ok(ColumnType::Text) if oid == 1700 => Element::Number,
        Ok(ColumnType::Text) if oid == 114 || oid == 3802 => Element::Json,
        Ok(ColumnType::Bool) => Element::Bool,
        Ok(ColumnType::Timestamp) => Element::Timestamp,
        Ok(ColumnType::TimestampTz) => Element::TimestampTz,
        _ => Element::Text,
    })
}

/// The element type of a built-in array type.
fn builtin_array_element(oid: u32) -> Option<u32> {
    Some(match oid {
        1000 => 16,
        1001 => 17,
        1002 => 18,
        1003 => 19,
        1005 => 21,
        1007 => 23,
        1009 => 25,
        1014 => 1042,
        1015 => 1043,
        1016 => 20,
        1021 => 700,
        1022 => 701,
        1028 => 26,
        199 => 114,
        143 => 142,
        791 => 790,
        1041 => 869,
        651 => 650,
        1040 => 829,
        775 => 774,
        1182 => 1082,
        1183 => 1083,
        1115 => 1114,
        1185 => 1184,
        1187 => 1186,
        1231 => 1700,
        1270 => 1266,
        1561 => 1560,
        1563 => 1562,
        2951 => 2950,
        3807 => 3802,
        3643 => 3614,
        _ => return None,
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

/// `infinity: clamp`: 9999-12-31 and 0001-01-01 as days since 1970-01-01.
const LATEST_DAY: i32 = 2_932_896;
const EARLIEST_DAY: i32 = -719_162;
/// `infinity: clamp`: 9999-12-31 23:59:59.999999 and 0001-01-01 00:00:00 in microseconds.
const LATEST_MICROS: i64 = 253_402_300_799_999_999;
const EARLIEST_MICROS: i64 = -62_135_596_800_000_000;

/// Arrow builders for one column of change records.
pub(crate) enum Builder {
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
    Decimal(Decimal128Builder, u8, i8),
    Text(StringBuilder),
    Binary(BinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder),
}

macro_rules! each_builder {
    ($self:expr, $b:ident => $e:expr) => {
        match $self {
            Builder::I16($b) => $e,
            Builder::I32($b) => $e,
            Builder::I64($b) => $e,
            Builder::F32($b) => $e,
            Builder::F64($b) => $e,
            Builder::Bool($b) => $e,
            Builder::Decimal($b, ..) => $e,
            Builder::Text($b) => $e,
            Builder::Binary($b) => $e,
            Builder::Date($b) => $e,
            Builder::Time($b) => $e,
            Builder::Timestamp($b) => $e,
        }
    };
}

impl Builder {
    pub(crate) fn new(ty: ColumnType) -> Result<Self, arrow::error::ArrowError> {
        Ok(match ty {
            ColumnType::Int16 => Builder::I16(Int16Builder::new()),
            ColumnType::Int32 => Builder::I32(Int32Builder::new()),
            ColumnType::Int64 => Builder::I64(Int64Builder::new()),
            ColumnType::Float32 => Builder::F32(Float32Builder::new()),
            ColumnType::Float64 => Builder::F64(Float64Builder::new()),
            ColumnType::Bool => Builder::Bool(BooleanBuilder::new()),
            ColumnType::Decimal(p, s) => Builder::Decimal(
                Decimal128Builder::new().with_precision_and_scale(p, s)?,
                p,
                s,
            ),
            ColumnType::Text | ColumnType::Array(_) => Builder::Text(StringBuilder::new()),
            ColumnType::Binary => Builder::Binary(BinaryBuilder::new()),
            ColumnType::Date => Builder::Date(Date32Builder::new()),
            ColumnType::Time => Builder::Time(Time64MicrosecondBuilder::new()),
            ColumnType::Timestamp => Builder::Timestamp(TimestampMicrosecondBuilder::new()),
            ColumnType::TimestampTz => {
                Builder::Timestamp(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
            }
        })
    }

    pub(crate) fn append_null(&mut self) {
        each_builder!(self, b => b.append_null())
    }

    pub(crate) fn finish(&mut self) -> ArrayRef {
        each_builder!(self, b => Arc::new(b.finish()) as ArrayRef)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        each_builder!(self, b => arrow::array::ArrayBuilder::len(b))
    }

    /// Appends a value given in its type's text output format.
    pub(crate) fn append_text(
        &mut self,
        ty: ColumnType,
        text: &[u8],
        infinity: Infinity,
    ) -> Result<(), String> {
        let text = std::str::from_utf8(text).map_err(|_| "the value is not UTF-8".to_owned())?;
        let bad = |what: &str| format!("{:?} is not {what}", shorten(text));
        match (self, ty) {
            (Builder::I16(b), _) => b.append_value(text.parse().map_err(|_| bad("a smallint"))?),
            (Builder::I32(b), _) => b.append_value(text.parse().map_err(|_| bad("an integer"))?),
            (Builder::I64(b), _) => b.append_value(text.parse().map_err(|_| bad("a bigint"))?),
            (Builder::F32(b), _) => {
                b.append_value(parse_float(text).ok_or_else(|| bad("a real"))? as f32)
            }
            (Builder::F64(b), _) => {
                b.append_value(parse_float(text).ok_or_else(|| bad("a double"))?)
            }
            (Builder::Bool(b), _) => b.append_value(match text {
                "t" => true,
                "f" => false,
                _ => return Err(bad("a boolean (t or f)")),
            }),
            (Builder::Decimal(b, p, s), _) => {
                let v = parse_decimal::<Decimal128Type>(text, *p, *s)
                    .map_err(|_| format!("{:?} does not fit decimal({p},{s})", shorten(text)))?;
                b.append_value(v)
            }
            (Builder::Text(b), ColumnType::Array(element)) => b.append_value(
                array_to_json(text, element)
                    .map_err(|why| format!("array {:?} does not parse: {why}", shorten(text)))?,
            ),
            (Builder::Text(b), _) => b.append_value(text),
            (Builder::Binary(b), _) => {
                let hex = text
                    .strip_prefix("\\x")
                    .ok_or_else(|| bad("bytea in hex format (set bytea_output = hex)"))?;
                b.append_value(decode_hex(hex).ok_or_else(|| bad("bytea in hex format"))?)
            }
            (Builder::Date(b), _) => match parse_date(text).ok_or_else(|| bad("an ISO date"))? {
                Infinite::Finite(days) => b.append_value(days),
                Infinite::Positive | Infinite::Negative => {
                    let positive = text == "infinity";
                    match infinite(infinity, positive, "date")? {
                        Some(true) => b.append_value(LATEST_DAY),
                        Some(false) => b.append_value(EARLIEST_DAY),
                        None => b.append_null(),
                    }
                }
            },
            (Builder::Time(b), _) => {
                b.append_value(parse_time(text).ok_or_else(|| bad("a time (HH:MM:SS)"))?)
            }
            (Builder::Timestamp(b), ty) => {
                let zoned = ty == ColumnType::TimestampTz;
                match parse_timestamp(text, zoned).ok_or_else(|| bad("an ISO timestamp"))? {
                    Infinite::Finite(micros) => b.append_value(micros),
                    other => match infinite(infinity, other == Infinite::Positive, "timestamp")? {
                        Some(true) => b.append_value(LATEST_MICROS),
                        Some(false) => b.append_value(EARLIEST_MICROS),
                        None => b.append_null(),
                    },
                }
            }
        }
        Ok(())
    }
}

fn shorten(text: &str) -> String {
    let mut s: String = text.chars().take(60).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}

/// What an infinite value lands as: `Some(true)` the latest value, `Some(false)` the earliest,
/// `None` NULL (the batch source's wording).
fn infinite(policy: Infinity, positive: bool, what: &str) -> Result<Option<bool>, String> {
    match policy {
        Infinity::Fail => Err(format!(
            "{}infinity is not a {what} other readers take; set `infinity: clamp` (9999-12-31 / 0001-01-01) or `infinity: set_null` on the source",
            if positive { "" } else { "-" }
        )),
        Infinity::SetNull => Ok(None),
        Infinity::Clamp => Ok(Some(positive)),
    }
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let bytes = hex.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[derive(Debug, PartialEq, Eq)]
enum Infinite<T> {
    Finite(T),
    Positive,
    Negative,
}

const EPOCH: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(d) => d,
    None => panic!("1970-01-01 is a valid date"),
};

/// `YYYY-MM-DD[ BC]` (years may have more than four digits) as days since 1970-01-01.
fn parse_date(text: &str) -> Option<Infinite<i32>> {
    match text {
        "infinity" => return Some(Infinite::Positive),
        "-infinity" => return Some(Infinite::Negative),
        _ => {}
    }
    let (body, bc) = match text.strip_suffix(" BC") {
        Some(b) => (b, true),
        None => (text, false),
    };
    Some(Infinite::Finite(days_of(body, bc)?))
}

fn days_of(date: &str, bc: bool) -> Option<i32> {
    let mut parts = date.splitn(3, '-');
    let year: i32 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    // 1 BC is year 0 in the proleptic Gregorian calendar chrono uses.
    let year = if bc { 1 - year } else { year };
    let d = NaiveDate::from_ymd_opt(year, month, day)?;
    i32::try_from((d - EPOCH).num_days()).ok()
}

/// `HH:MM:SS[.ffffff]` as microseconds since midnight (`24:00:00` is the end of the day).
fn parse_time(text: &str) -> Option<i64> {
    let (hms, frac) = match text.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (text, None),
    };
    let mut parts = hms.splitn(3, ':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let s: i64 = parts.next()?.parse().ok()?;
    if h > 24 || m > 59 || s > 60 || (h == 24 && (m, s) != (0, 0)) {
        return None;
    }
    let micros = match frac {
        Some(f) if !f.is_empty() && f.len() <= 6 && f.bytes().all(|c| c.is_ascii_digit()) => {
            f.parse::<i64>().ok()? * 10i64.pow(6 - f.len() as u32)
        }
        Some(_) => return None,
        None => 0,
    };
    Some(((h * 60 + m) * 60 + s) * 1_000_000 + micros)
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff][±HH[:MM[:SS]]][ BC]` as microseconds since 1970-01-01 UTC
/// (zoned values are converted by their offset; values without one stand as they are).
fn parse_timestamp(text: &str, zoned: bool) -> Option<Infinite<i64>> {
    match text {
        "infinity" => return Some(Infinite::Positive),
        "-infinity" => return Some(Infinite::Negative),
        _ => {}
    }
    let (body, bc) = match text.strip_suffix(" BC") {
        Some(b) => (b, true),
        None => (text, false),
    };
    let (date, rest) = body.split_once(' ')?;
    let days = days_of(date, bc)?;
    let (time, offset_secs) = if zoned {
        let at = rest.rfind(['+', '-'])?;
        (&rest[..at], parse_offset(&rest[at..])?)
    } else {
        (rest, 0)
    };
    let micros = i64::from(days) * 86_400_000_000 + parse_time(time)? - offset_secs * 1_000_000;
    Some(Infinite::Finite(micros))
}

/// `±HH[:MM[:SS]]` in seconds east of UTC.
fn parse_offset(text: &str) -> Option<i64> {
    let sign = match text.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let mut secs = 0i64;
    for (i, part) in text[1..].split(':').enumerate() {
        if i > 2 || part.len() != 2 {
            return None;
        }
        let v: i64 = part.parse().ok()?;
        secs += v * [3600, 60, 1][i];
    }
    Some(sign * secs)
}

/// An array's text form (`{1,2,NULL}`, `{{"a b",c}}`, `[0:1]={x,y}`) as the JSON array
/// `array_to_json` prints.
fn array_to_json(text: &str, element: Element) -> Result<String, String> {
    let mut s = text;
    // Arrays with lower bounds other than 1 carry their dimensions first.
    if s.starts_with('[') {
        let eq = s.find('=').ok_or("a dimension decoration without `=`")?;
        s = &s[eq + 1..];
    }
    let mut p = ArrayParser {
        chars: s.as_bytes(),
        at: 0,
        out: String::with_capacity(s.len() + 2),
        element,
    };
    p.array()?;
    if p.at != p.chars.len() {
        return Err(format!("unexpected text after the array at byte {}", p.at));
    }
    Ok(p.out)
}

struct ArrayParser<'a> {
    chars: &'a [u8],
    at: usize,
    out: String,
    element: Element,
}

impl ArrayParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.chars.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn array(&mut self) -> Result<(), String> {
        if self.peek() != Some(b'{') {
            return Err(format!("expected `{{` at byte {}", self.at));
        }
        self.at += 1;
        self.out.push('[');
        self.skip_space();
        if self.peek() == Some(b'}') {
            self.at += 1;
            self.out.push(']');
            return Ok(());
        }
        let mut first = true;
        loop {
            if !first {
                self.out.push(',');
            }
            first = false;
            self.skip_space();
            match self.peek() {
                Some(b'{') => self.array()?,
                Some(b'"') => {
                    let v = self.quoted()?;
                    self.element_json(&v);
                }
                Some(_) => {
                    let v = self.unquoted()?;
                    if v.eq_ignore_ascii_case("NULL") {
                        self.out.push_str("null");
                    } else {
                        self.element_json(&v);
                    }
                }
                None => return Err("the array is not closed".to_owned()),
            }
            self.skip_space();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    self.out.push(']');
                    return Ok(());
                }
                _ => return Err(format!("expected `,` or `}}` at byte {}", self.at)),
            }
        }
    }

    fn quoted(&mut self) -> Result<String, String> {
        self.at += 1;
        let mut v = Vec::new();
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    break;
                }
                Some(b'\\') => {
                    let c = self.chars.get(self.at + 1).ok_or("a trailing backslash")?;
                    v.push(*c);
                    self.at += 2;
                }
                Some(c) => {
                    v.push(c);
                    self.at += 1;
                }
                None => return Err("a quoted element is not closed".to_owned()),
            }
        }
        String::from_utf8(v).map_err(|_| "an element is not UTF-8".to_owned())
    }

    fn unquoted(&mut self) -> Result<String, String> {
        let mut v = Vec::new();
        while let Some(c) = self.peek() {
            match c {
                b',' | b'}' => break,
                b'\\' => {
                    let c = self.chars.get(self.at + 1).ok_or("a trailing backslash")?;
                    v.push(*c);
                    self.at += 2;
                }
                _ => {
                    v.push(c);
                    self.at += 1;
                }
            }
        }
        while v.last().is_some_and(|c| c.is_ascii_whitespace()) {
            v.pop();
        }
        String::from_utf8(v).map_err(|_| "an element is not UTF-8".to_owned())
    }

    fn element_json(&mut self, v: &str) {
        match self.element {
            Element::Number if is_json_number(v) => self.out.push_str(v),
            Element::Bool if v == "t" => self.out.push_str("true"),
            Element::Bool if v == "f" => self.out.push_str("false"),
            Element::Json => self.out.push_str(v),
            Element::Timestamp | Element::TimestampTz if v.contains(' ') => {
                let iso = v.replacen(' ', "T", 1);
                let iso = if self.element == Element::TimestampTz {
                    iso_offset(&iso)
                } else {
                    iso
                };
                self.push_string(&iso);
            }
            _ => self.push_string(v),
        }
    }

    fn push_string(&mut self, v: &str) {
        // serde_json escapes as PostgreSQL's escape_json does: quote, backslash, \b \f \n \r
        // \t, other control characters as \u00XX.
        self.out
            .push_str(&serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned()));
    }
}

/// `...+05` as `...+05:00`: to_json prints offsets with minutes.
fn iso_offset(v: &str) -> String {
    if let Some(at) = v.rfind(['+', '-']) {
        let off = &v[at + 1..];
        if off.len() == 2 && off.bytes().all(|c| c.is_ascii_digit()) && v[..at].contains('T') {
            return format!("{v}:00");
        }
    }
    v.to_owned()
}

/// JSON's number grammar: what to_json prints unquoted.
fn is_json_number(v: &str) -> bool {
    let b = v.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Date32Type, Decimal128Type as D, TimestampMicrosecondType};

    fn one(ty: ColumnType, text: &str, infinity: Infinity) -> Result<ArrayRef, String> {
        let mut b = Builder::new(ty).unwrap();
        b.append_text(ty, text.as_bytes(), infinity)?;
        assert_eq!(b.len(), 1);
        Ok(b.finish())
    }

    #[test]
    fn builtin_oids_map_as_the_batch_source_does() {
        let c = TypeCatalog::default();
        assert_eq!(map_type(20, -1, &c), Ok(ColumnType::Int64));
        assert_eq!(
            map_type(1700, ((12 << 16) | 3) + 4, &c),
            Ok(ColumnType::Decimal(12, 3))
        );
        assert_eq!(map_type(1700, -1, &c), Ok(ColumnType::Text));
        assert_eq!(map_type(1184, -1, &c), Ok(ColumnType::TimestampTz));
        assert_eq!(
            map_type(1007, -1, &c),
            Ok(ColumnType::Array(Element::Number))
        );
        assert_eq!(map_type(3807, -1, &c), Ok(ColumnType::Array(Element::Json)));
        assert_eq!(map_type(600, -1, &c), Err("type OID 600".to_owned()));
        assert_eq!(
            ColumnType::TimestampTz.arrow_type(),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
    }

    #[test]
    fn catalog_resolves_domains_enums_and_custom_arrays() {
        let mut c = TypeCatalog::default();
        let typmod = ((10 << 16) | 2) + 4;
        c.insert_row((
            16400,
            "d".into(),
            "N".into(),
            1700,
            typmod,
            0,
            "public.m".into(),
        ));
        c.insert_row((
            16401,
            "e".into(),
            "E".into(),
            0,
            -1,
            0,
            "public.mood".into(),
        ));
        c.insert_row((
            16402,
            "b".into(),
            "A".into(),
            0,
            -1,
            16401,
            "public._mood".into(),
        ));
        c.insert_row((
            16403,
            "c".into(),
            "C".into(),
            0,
            -1,
            0,
            "public.pair".into(),
        ));
        assert_eq!(map_type(16400, -1, &c), Ok(ColumnType::Decimal(10, 2)));
        assert_eq!(map_type(16401, -1, &c), Ok(ColumnType::Text));
        assert_eq!(
            map_type(16402, -1, &c),
            Ok(ColumnType::Array(Element::Text))
        );
        assert_eq!(
            map_type(16403, -1, &c),
            Err("type `public.pair`".to_owned())
        );
    }

    #[test]
    fn text_values_convert_exactly() {
        let a = one(ColumnType::Decimal(10, 2), "-1234.50", Infinity::Fail).unwrap();
        assert_eq!(a.as_primitive::<D>().value(0), -123450);
        let err = one(ColumnType::Decimal(4, 2), "123.45", Infinity::Fail).unwrap_err();
        assert!(err.contains("decimal(4,2)"), "{err}");
        let a = one(
            ColumnType::TimestampTz,
            "2026-12-03 16:30:00.25+05:30",
            Infinity::Fail,
        )
        .unwrap();
        let b = one(
            ColumnType::TimestampTz,
            "2026-12-03 11:00:00.25+00",
            Infinity::Fail,
        )
        .unwrap();
        assert_eq!(
            a.as_primitive::<TimestampMicrosecondType>().value(0),
            b.as_primitive::<TimestampMicrosecondType>().value(0)
        );
        assert_eq!(
            b.as_primitive::<TimestampMicrosecondType>().value(0),
            chrono::DateTime::parse_from_rfc3339("2026-12-03T11:00:00.25Z")
                .unwrap()
                .timestamp_micros()
        );
        let bc = one(ColumnType::Date, "0044-03-15 BC", Infinity::Fail).unwrap();
        let expected = (NaiveDate::from_ymd_opt(-43, 3, 15).unwrap() - EPOCH).num_days();
        assert_eq!(bc.as_primitive::<Date32Type>().value(0) as i64, expected);
        assert_eq!(parse_time("24:00:00"), Some(86_400_000_000));
        assert_eq!(parse_time("10:00:00.5"), Some(36_000_500_000));
        let bytes = one(ColumnType::Binary, "\\x00ff10", Infinity::Fail).unwrap();
        assert_eq!(bytes.as_binary::<i32>().value(0), &[0, 255, 16]);
        assert!(one(ColumnType::Int16, "70000", Infinity::Fail).is_err());
        let nan = one(ColumnType::Float64, "NaN", Infinity::Fail).unwrap();
        assert!(
            nan.as_primitive::<arrow::datatypes::Float64Type>()
                .value(0)
                .is_nan()
        );
    }

    #[test]
    fn infinities_follow_the_policy() {
        let err = one(ColumnType::Timestamp, "infinity", Infinity::Fail).unwrap_err();
        assert!(err.contains("infinity: clamp"), "{err}");
        let null = one(ColumnType::Date, "-infinity", Infinity::SetNull).unwrap();
        assert!(null.is_null(0));
        let clamped = one(ColumnType::Date, "infinity", Infinity::Clamp).unwrap();
        assert_eq!(clamped.as_primitive::<Date32Type>().value(0), LATEST_DAY);
    }

    #[test]
    fn arrays_become_the_json_array_to_json_prints() {
        assert_eq!(
            array_to_json("{1,2,NULL}", Element::Number).unwrap(),
            "[1,2,null]"
        );
        assert_eq!(array_to_json("{}", Element::Number).unwrap(), "[]");
        assert_eq!(
            array_to_json("{{1.50,2},{NaN,3}}", Element::Number).unwrap(),
            "[[1.50,2],[\"NaN\",3]]"
        );
        assert_eq!(
            array_to_json(r#"{"a b","c\"d",NULL,"NULL",plain}"#, Element::Text).unwrap(),
            r#"["a b","c\"d",null,"NULL","plain"]"#
        );
        assert_eq!(
            array_to_json("{t,f}", Element::Bool).unwrap(),
            "[true,false]"
        );
        assert_eq!(
            array_to_json(r#"{"{\"k\": 1}"}"#, Element::Json).unwrap(),
            r#"[{"k": 1}]"#
        );
        assert_eq!(
            array_to_json(r#"{"2026-01-02 03:04:05+00"}"#, Element::TimestampTz).unwrap(),
            r#"["2026-01-02T03:04:05+00:00"]"#
        );
        assert_eq!(
            array_to_json("[0:1]={7,8}", Element::Number).unwrap(),
            "[7,8]"
        );
        assert!(array_to_json("{1,2", Element::Number).is_err());
        assert!(array_to_json("{1}x", Element::Number).is_err());
    }
}
