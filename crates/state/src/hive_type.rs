//! Column types as the catalog keeps them: Hive-style names (`bigint`, `struct<a:int>`), as Glue
//! and Athena show them, with widening for schema changes and a mapping to Arrow for queries.

use std::fmt;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, TimeUnit};

/// A column type the crawler infers or reads from a Parquet footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HiveType {
    /// Only nulls (or empty strings) were seen; catalogued as `string`.
    Unknown,
    /// `boolean`.
    Boolean,
    /// `int` (32-bit).
    Int,
    /// `bigint` (64-bit).
    BigInt,
    /// `float` (32-bit).
    Float,
    /// `double`.
    Double,
    /// `decimal(precision,scale)`.
    Decimal(u8, i8),
    /// `date`.
    Date,
    /// `timestamp` (UTC, microseconds).
    Timestamp,
    /// `string`.
    String,
    /// `binary`.
    Binary,
    /// `array<element>`.
    Array(Box<HiveType>),
    /// `struct<name:type,...>`, fields in first-seen order.
    Struct(Vec<(String, HiveType)>),
}

impl fmt::Display for HiveType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HiveType::Unknown | HiveType::String => f.write_str("string"),
            HiveType::Boolean => f.write_str("boolean"),
            HiveType::Int => f.write_str("int"),
            HiveType::BigInt => f.write_str("bigint"),
            HiveType::Float => f.write_str("float"),
            HiveType::Double => f.write_str("double"),
            HiveType::Decimal(p, s) => write!(f, "decimal({p},{s})"),
            HiveType::Date => f.write_str("date"),
            HiveType::Timestamp => f.write_str("timestamp"),
            HiveType::Binary => f.write_str("binary"),
            HiveType::Array(e) => write!(f, "array<{e}>"),
            HiveType::Struct(fields) => {
                f.write_str("struct<")?;
                for (i, (name, t)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{name}:{t}")?;
                }
                f.write_str(">")
            }
        }
    }
}

impl HiveType {
    /// The narrowest type holding values of both: `int`+`bigint` = `bigint`, integers+`double` =
    /// `double`, `date`+`timestamp` = `timestamp`, structs merge field by field; anything else
    /// that differs becomes `string`.
    pub fn widen(&self, other: &HiveType) -> HiveType {
        use HiveType::*;
        match (self, other) {
            (a, b) if a == b => a.clone(),
            (Unknown, x) | (x, Unknown) => x.clone(),
            (Int, BigInt) | (BigInt, Int) => BigInt,
            (Int | BigInt | Float | Double | Decimal(..), Float | Double)
            | (Float | Double, Int | BigInt | Decimal(..)) => Double,
            (Int | BigInt | Decimal(..), Decimal(..)) | (Decimal(..), Int | BigInt) => Double,
            (Date, Timestamp) | (Timestamp, Date) => Timestamp,
            (Array(a), Array(b)) => Array(Box::new(a.widen(b))),
            (Struct(a), Struct(b)) => Struct(merge_fields(a, b)),
            _ => String,
        }
    }

    /// Parses a Hive-style type name as [`Display`](fmt::Display) writes it.
    pub fn parse(text: &str) -> Result<HiveType, String> {
        let mut parser = Parser {
            text: text.as_bytes(),
            at: 0,
        };
        let t = parser.parse_type()?;
        parser.skip_spaces();
        if parser.at != text.len() {
            return Err(format!("unexpected text after the type in `{text}`"));
        }
        Ok(t)
    }

    /// The Arrow type queries read this column as.
    pub fn to_arrow(&self) -> DataType {
        match self {
            HiveType::Unknown | HiveType::String => DataType::Utf8,
            HiveType::Boolean => DataType::Boolean,
            HiveType::Int => DataType::Int32,
            HiveType::BigInt => DataType::Int64,
            HiveType::Float => DataType::Float32,
            HiveType::Double => DataType::Float64,
            HiveType::Decimal(p, s) => DataType::Decimal128(*p, *s),
            HiveType::Date => DataType::Date32,
            HiveType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            HiveType::Binary => DataType::Binary,
            HiveType::Array(e) => DataType::List(Arc::new(Field::new("item", e.to_arrow(), true))),
            HiveType::Struct(fields) => DataType::Struct(Fields::from(
                fields
                    .iter()
                    .map(|(n, t)| Field::new(n, t.to_arrow(), true))
                    .collect::<Vec<_>>(),
            )),
        }
    }

    /// The catalog type of an Arrow type (from a Parquet footer). Types without a Hive
    /// counterpart (maps, unions) are `None`.
    pub fn from_arrow(data_type: &DataType) -> Option<HiveType> {
        Some(match data_type {
            DataType::Null => HiveType::Unknown,
            DataType::Boolean => HiveType::Boolean,
            DataType::Int8 | DataType::Int16 | DataType::Int32 => HiveType::Int,
            DataType::UInt8 | DataType::UInt16 => HiveType::Int,
            DataType::Int64 | DataType::UInt32 | DataType::UInt64 => HiveType::BigInt,
            DataType::Float16 | DataType::Float32 => HiveType::Float,
            DataType::Float64 => HiveType::Double,
            DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s)
                if *p <= 38 =>
            {
                HiveType::Decimal(*p, *s)
            }
            DataType::Decimal128(..) | DataType::Decimal256(..) => HiveType::String,
            DataType::Date32 | DataType::Date64 => HiveType::Date,
            DataType::Timestamp(..) => HiveType::Timestamp,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => HiveType::String,
            DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_) => HiveType::Binary,
            DataType::List(f)
            | DataType::LargeList(f)
            | DataType::ListView(f)
            | DataType::LargeListView(f)
            | DataType::FixedSizeList(f, _) => {
                HiveType::Array(Box::new(HiveType::from_arrow(f.data_type())?))
            }
            DataType::Struct(fields) => HiveType::Struct(
                fields
                    .iter()
                    .map(|f| Some((f.name().clone(), HiveType::from_arrow(f.data_type())?)))
                    .collect::<Option<Vec<_>>>()?,
            ),
            _ => return None,
        })
    }
}

/// Fields of `a` in order, widened with `b`'s, then `b`'s new fields.
pub fn merge_fields(a: &[(String, HiveType)], b: &[(String, HiveType)]) -> Vec<(String, HiveType)> {
    let mut out: Vec<(String, HiveType)> = a.to_vec();
    for (name, t) in b {
        match out.iter_mut().find(|(n, _)| n == name) {
            Some((_, existing)) => *existing = existing.widen(t),
            None => out.push((name.clone(), t.clone())),
        }
    }
    out
}

struct Parser<'a> {
    text: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn skip_spaces(&mut self) {
        while self
            .text
            .get(self.at)
            .is_some_and(|c| c.is_ascii_whitespace())
        {
            self.at += 1;
        }
    }

    fn word(&mut self) -> String {
        self.skip_spaces();
        let start = self.at;
        while self
            .text
            .get(self.at)
            .is_some_and(|c| !matches!(c, b'<' | b'>' | b',' | b':' | b'(' | b')'))
        {
            self.at += 1;
        }
        String::from_utf8_lossy(&self.text[start..self.at])
            .trim()
            .to_owned()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        self.skip_spaces();
        if self.text.get(self.at) == Some(&c) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!(
                "expected `{}` at character {} of `{}`",
                c as char,
                self.at + 1,
                String::from_utf8_lossy(self.text)
            ))
        }
    }

    fn parse_type(&mut self) -> Result<HiveType, String> {
        let name = self.word().to_ascii_lowercase();
        Ok(match name.as_str() {
            "string" | "varchar" | "char" => HiveType::String,
            "boolean" => HiveType::Boolean,
            "tinyint" | "smallint" | "int" | "integer" => HiveType::Int,
            "bigint" => HiveType::BigInt,
            "float" => HiveType::Float,
            "double" => HiveType::Double,
            "date" => HiveType::Date,
            "timestamp" => HiveType::Timestamp,
            "binary" => HiveType::Binary,
            "decimal" => {
                self.expect(b'(')?;
                let p = self.word().parse::<u8>().map_err(|e| e.to_string())?;
                self.expect(b',')?;
                let s = self.word().parse::<i8>().map_err(|e| e.to_string())?;
                self.expect(b')')?;
                HiveType::Decimal(p, s)
            }
            "array" => {
                self.expect(b'<')?;
                let e = self.parse_type()?;
                self.expect(b'>')?;
                HiveType::Array(Box::new(e))
            }
            "struct" => {
                self.expect(b'<')?;
                let mut fields = Vec::new();
                loop {
                    self.skip_spaces();
                    if self.text.get(self.at) == Some(&b'>') {
                        self.at += 1;
                        break;
                    }
                    if !fields.is_empty() {
                        self.expect(b',')?;
                    }
                    let field = self.word();
                    self.expect(b':')?;
                    fields.push((field, self.parse_type()?));
                }
                HiveType::Struct(fields)
            }
            other => return Err(format!("unknown type `{other}`")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_follows_the_lattice() {
        use HiveType::*;
        assert_eq!(Int.widen(&BigInt), BigInt);
        assert_eq!(BigInt.widen(&Double), Double);
        assert_eq!(Int.widen(&Double), Double);
        assert_eq!(Date.widen(&Timestamp), Timestamp);
        assert_eq!(Unknown.widen(&Date), Date);
        assert_eq!(Boolean.widen(&Int), String);
        assert_eq!(
            Struct(vec![("a".into(), Int)])
                .widen(&Struct(vec![("b".into(), String), ("a".into(), BigInt)])),
            Struct(vec![("a".into(), BigInt), ("b".into(), String)])
        );
    }

    #[test]
    fn names_round_trip() {
        for name in [
            "bigint",
            "decimal(10,2)",
            "array<struct<k:string,v:array<double>>>",
            "struct<a:int,b:timestamp>",
        ] {
            assert_eq!(HiveType::parse(name).expect(name).to_string(), name);
        }
        assert!(HiveType::parse("struct<a:int").is_err());
        assert!(HiveType::parse("blob").is_err());
    }
}
