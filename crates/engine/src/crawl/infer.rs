//! Schema inference from one file: its format (extension, else magic bytes), then its columns
//! from a sample (CSV: delimiter and header detection, types by sampling rows; JSON lines:
//! nested objects and arrays; Parquet: the footer only).
//!
//! A file that fails a classifier's sanity rules is an error (Glue classifies it `UNKNOWN`):
//! text must be UTF-8 without NUL or other control bytes, and a CSV sample must split every
//! row into the same number of fields.

use std::io::Read;
use std::sync::Arc;

use arrow::compute::kernels::cast_utils::string_to_datetime;
use chrono::{NaiveDate, Utc};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use super::types::{HiveType, merge_fields};

/// Bytes read from the start of a text file to infer its schema.
const SAMPLE_BYTES: u64 = 256 * 1024;
/// Most decompressed bytes looked at in a gzip sample.
const SAMPLE_TEXT_BYTES: usize = 4 * 1024 * 1024;
/// Rows sampled per file.
const SAMPLE_ROWS: usize = 1000;
/// Delimiters tried, in order of preference on a tie.
const DELIMITERS: [u8; 4] = [b',', b'\t', b'|', b';'];
/// A header cell this long or longer is data, not a column name (Glue's CSV classifier rule).
const MAX_HEADER_CELL_CHARS: usize = 150;

/// A file's format.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileKind {
    /// Delimited text.
    Csv {
        /// Field delimiter.
        delimiter: u8,
        /// The first row holds column names.
        header: bool,
    },
    /// One JSON object per line.
    Json,
    /// Apache Parquet.
    Parquet,
}

impl FileKind {
    /// The catalog's name of the format.
    pub fn name(&self) -> &'static str {
        match self {
            FileKind::Csv { .. } => "csv",
            FileKind::Json => "json",
            FileKind::Parquet => "parquet",
        }
    }
}

/// What a sample of one file says about it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSchema {
    /// Format.
    pub kind: FileKind,
    /// gzip-compressed text.
    pub gzip: bool,
    /// Columns in file order.
    pub columns: Vec<(String, HiveType)>,
}

/// The format an extension names: (kind without CSV details, gzip), or `None` to sniff.
fn kind_from_name(name: &str) -> (Option<&'static str>, bool) {
    let lower = name.to_ascii_lowercase();
    let (stem, gzip) = match lower
        .strip_suffix(".gz")
        .or_else(|| lower.strip_suffix(".gzip"))
    {
        Some(stem) => (stem.to_owned(), true),
        None => (lower.clone(), false),
    };
    let kind = match stem.rsplit_once('.').map(|(_, e)| e) {
        Some("parquet" | "pq") => Some("parquet"),
        Some("csv" | "tsv" | "txt") => Some("csv"),
        Some("json" | "jsonl" | "ndjson") => Some("json"),
        _ => None,
    };
    (kind, gzip)
}

/// Reads a sample of the object at `path` (`size` bytes) and infers its format and columns;
/// in CSV, fields equal to `null_value` are NULL (they say nothing about a column's type).
pub async fn infer_file(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    size: u64,
    null_value: &str,
) -> Result<FileSchema, String> {
    let name = path.filename().unwrap_or_default();
    let (kind, mut gzip) = kind_from_name(name);
    if kind == Some("parquet") {
        return parquet_schema(store, path, size).await;
    }
    let head = store
        .get_range(path, 0..size.min(SAMPLE_BYTES))
        .await
        .map_err(|e| format!("cannot read: {e}"))?;
    let truncated = size > SAMPLE_BYTES;
    if kind.is_none() && head.starts_with(b"PAR1") {
        return parquet_schema(store, path, size).await;
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        gzip = true;
    }
    let text = if gzip {
        gunzip_prefix(&head)?
    } else {
        head.to_vec()
    };
    let mut text = text_of(text, truncated || gzip)?;
    if truncated || gzip {
        // The sample may end inside a row: keep whole lines only (a lone line is kept).
        if let Some(end) = text.rfind('\n')
            && end > 0
        {
            text.truncate(end);
        }
    }
    let kind = match kind {
        Some(k) => k,
        None if text.trim_start().starts_with('{') => "json",
        None => "csv",
    };
    if kind == "json" {
        Ok(FileSchema {
            kind: FileKind::Json,
            gzip,
            columns: json_columns(&text)?,
        })
    } else {
        let (delimiter, header, columns) = csv_columns(&text, name.ends_with(".tsv"), null_value)?;
        Ok(FileSchema {
            kind: FileKind::Csv { delimiter, header },
            gzip,
            columns,
        })
    }
}

/// The columns of the Parquet file at `path` (`size` bytes) from its footer, checked against its size
/// before it is decoded (a corrupt footer length would otherwise make the reader panic).
pub async fn parquet_schema(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    size: u64,
) -> Result<FileSchema, String> {
    let schema = pipectl_delta::parquet_footer_schema(store, path, size).await?;
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            (
                f.name().clone(),
                HiveType::from_arrow(f.data_type()).unwrap_or(HiveType::String),
            )
        })
        .collect();
    Ok(FileSchema {
        kind: FileKind::Parquet,
        gzip: false,
        columns,
    })
}

/// The sample as text, or why it is not text: invalid UTF-8 (binary data, or another
/// encoding), NUL or other control bytes. A sample `cut` short may end inside a character.
fn text_of(bytes: Vec<u8>, cut: bool) -> Result<String, String> {
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let err = e.utf8_error();
            if err.error_len().is_some() || !cut {
                return Err(format!(
                    "not UTF-8 text (invalid byte at offset {}): binary data or another encoding",
                    err.valid_up_to()
                ));
            }
            let mut bytes = e.into_bytes();
            bytes.truncate(err.valid_up_to());
            String::from_utf8(bytes).map_err(|e| e.to_string())?
        }
    };
    if let Some(at) = text.find(|c: char| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) {
        let byte = text.as_bytes()[at];
        return Err(format!(
            "not text: control byte 0x{byte:02x} at offset {at} (binary data)"
        ));
    }
    Ok(text)
}

/// Decompresses as much of a gzip prefix as is there (a sample cuts the stream short).
fn gunzip_prefix(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut decoder = flate2::read::MultiGzDecoder::new(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match decoder.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.len() >= SAMPLE_TEXT_BYTES {
                    break;
                }
            }
            // A cut-off stream ends with an error after yielding what it could.
            Err(e) if out.is_empty() => return Err(format!("not readable as gzip: {e}")),
            Err(_) => break,
        }
    }
    Ok(out)
}

/// The type of one CSV field's text.
pub fn classify(value: &str) -> HiveType {
    let v = value.trim();
    if v.is_empty() {
        return HiveType::Unknown;
    }
    if v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false") {
        return HiveType::Boolean;
    }
    let digits = v.strip_prefix(['-', '+']).unwrap_or(v);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        // Leading zeros (zip codes, ids) are text: a number would lose them.
        if digits.len() > 1 && digits.starts_with('0') {
            return HiveType::String;
        }
        return match v.parse::<i64>() {
            Ok(n) if i32::try_from(n).is_ok() => HiveType::Int,
            Ok(_) => HiveType::BigInt,
            Err(_) => HiveType::String,
        };
    }
    if digits
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && digits.bytes().any(|b| b.is_ascii_digit())
        && v.parse::<f64>().is_ok_and(f64::is_finite)
    {
        return HiveType::Double;
    }
    if v.len() == 10 && NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok() {
        return HiveType::Date;
    }
    if v.len() > 10
        && v.get(..10)
            .is_some_and(|day| NaiveDate::parse_from_str(day, "%Y-%m-%d").is_ok())
        && matches!(v.as_bytes()[10], b'T' | b' ')
        && string_to_datetime(&Utc, v).is_ok()
    {
        return HiveType::Timestamp;
    }
    HiveType::String
}

fn parse_records(text: &str, delimiter: u8, limit: usize) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    reader
        .records()
        .take(limit)
        .filter_map(|r| r.ok())
        .map(|r| r.iter().map(str::to_owned).collect())
        .collect()
}

/// Picks the delimiter that splits the first lines into the same number (> 1) of fields,
/// preferring more fields; a `.tsv` name means tab.
fn sniff_delimiter(text: &str, tsv: bool) -> u8 {
    if tsv {
        return b'\t';
    }
    let mut best = (b',', 0usize);
    for d in DELIMITERS {
        let records = parse_records(text, d, 20);
        let Some(first) = records.first() else {
            continue;
        };
        let n = first.len();
        if n > 1 && records.iter().all(|r| r.len() == n) && n > best.1 {
            best = (d, n);
        }
    }
    best.0
}

/// Delimiter, header flag and columns of a CSV sample.
pub type CsvLayout = (u8, bool, Vec<(String, HiveType)>);

/// Delimiter, header flag and columns of a CSV sample whose NULLs are written as `null_value`.
pub fn csv_columns(text: &str, tsv: bool, null_value: &str) -> Result<CsvLayout, String> {
    let type_of = |v: &str| {
        if v == null_value {
            HiveType::Unknown
        } else {
            classify(v)
        }
    };
    let delimiter = sniff_delimiter(text, tsv);
    let records = parse_records(text, delimiter, SAMPLE_ROWS + 1);
    let Some(first) = records.first() else {
        return Err("the file is empty".to_owned());
    };
    let width = first.len();
    // A classifier's sanity rule: every sampled row has the first row's number of fields.
    if let Some((n, row)) = records.iter().enumerate().find(|(_, r)| r.len() != width) {
        return Err(format!(
            "not CSV: row {} has {} fields where row 1 has {width} (delimiter {:?})",
            n + 1,
            row.len(),
            delimiter as char
        ));
    }
    let rest = &records[1..];
    let mut rest_types = vec![HiveType::Unknown; width];
    for row in rest {
        for (i, v) in row.iter().enumerate() {
            rest_types[i] = rest_types[i].widen(&type_of(v));
        }
    }
    let first_types: Vec<HiveType> = first.iter().map(|v| type_of(v)).collect();
    let mut distinct = first.clone();
    distinct.sort();
    distinct.dedup();
    let names_like = distinct.len() == first.len()
        && first.iter().zip(&first_types).all(|(v, t)| {
            !v.trim().is_empty()
                && v.chars().count() < MAX_HEADER_CELL_CHARS
                && *t == HiveType::String
        });
    // A header is a row of distinct texts over columns that hold something else, or whose
    // texts never appear again below it.
    let header = names_like
        && (rest.is_empty()
            || rest_types
                .iter()
                .any(|t| !matches!(t, HiveType::String | HiveType::Unknown))
            || first
                .iter()
                .enumerate()
                .all(|(i, v)| rest.iter().all(|r| r.get(i) != Some(v))));
    let mut types = rest_types;
    if !header {
        for (i, t) in first_types.iter().enumerate() {
            types[i] = types[i].widen(t);
        }
    }
    let columns = (0..width)
        .map(|i| {
            let name = match first.get(i) {
                Some(n) if header => n.trim().to_owned(),
                _ => format!("col{i}"),
            };
            (name, types[i].clone())
        })
        .collect();
    Ok((delimiter, header, columns))
}

fn json_type(value: &serde_json::Value) -> HiveType {
    use serde_json::Value;
    match value {
        Value::Null => HiveType::Unknown,
        Value::Bool(_) => HiveType::Boolean,
        Value::Number(n) => match n.as_i64() {
            Some(i) if i32::try_from(i).is_ok() => HiveType::Int,
            Some(_) => HiveType::BigInt,
            None => HiveType::Double,
        },
        Value::String(_) => HiveType::String,
        Value::Array(items) => HiveType::Array(Box::new(
            items
                .iter()
                .fold(HiveType::Unknown, |t, v| t.widen(&json_type(v))),
        )),
        Value::Object(map) => {
            HiveType::Struct(map.iter().map(|(k, v)| (k.clone(), json_type(v))).collect())
        }
    }
}

/// Columns of a JSON-lines sample: the union of the objects' fields, types widened.
pub fn json_columns(text: &str) -> Result<Vec<(String, HiveType)>, String> {
    let mut columns: Vec<(String, HiveType)> = Vec::new();
    let mut seen = 0usize;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if seen >= SAMPLE_ROWS {
            break;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line {} is not JSON: {e}", n + 1))?;
        let HiveType::Struct(fields) = json_type(&value) else {
            return Err(format!("line {} is not a JSON object", n + 1));
        };
        columns = merge_fields(&columns, &fields);
        seen += 1;
    }
    if seen == 0 {
        return Err("the file has no JSON objects".to_owned());
    }
    Ok(columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_csv_values() {
        assert_eq!(classify("42"), HiveType::Int);
        assert_eq!(classify("-5000000000"), HiveType::BigInt);
        assert_eq!(classify("007"), HiveType::String);
        assert_eq!(classify("4.99"), HiveType::Double);
        assert_eq!(classify("2006-02-15"), HiveType::Date);
        assert_eq!(classify("2006-02-15 05:03:42"), HiveType::Timestamp);
        assert_eq!(classify("2006-02-15T05:03:42.5Z"), HiveType::Timestamp);
        assert_eq!(classify("TRUE"), HiveType::Boolean);
        assert_eq!(classify(""), HiveType::Unknown);
        assert_eq!(classify("PG-13"), HiveType::String);
        assert_eq!(classify("1e5x"), HiveType::String);
    }

    #[test]
    fn csv_header_and_delimiter() {
        let (d, header, cols) =
            csv_columns("id;title;price\n1;A;2.5\n2;\"B;x\";3\n", false, "").expect("csv");
        assert_eq!(d, b';');
        assert!(header);
        assert_eq!(
            cols,
            vec![
                ("id".to_owned(), HiveType::Int),
                ("title".to_owned(), HiveType::String),
                ("price".to_owned(), HiveType::Double)
            ]
        );
        let (d, header, cols) = csv_columns("1,a\n2,b\n", false, "").expect("csv");
        assert_eq!(d, b',');
        assert!(!header);
        assert_eq!(cols[0], ("col0".to_owned(), HiveType::Int));
        let (_, header, _) =
            csv_columns("name,city\nann,rome\nbob,oslo\n", false, "").expect("csv");
        assert!(header, "distinct names that never recur are a header");
    }

    #[test]
    fn classify_survives_multibyte_text_at_the_date_boundary() {
        // Byte 10 falls inside `é`: the date check must not slice there.
        assert_eq!(classify("2026-01-0é12345"), HiveType::String);
        assert_eq!(
            classify("\u{fffd}d>\u{fffd}\u{fffd}\u{fffd}3A6\u{fffd}"),
            HiveType::String
        );
    }

    #[test]
    fn binary_and_ragged_samples_are_not_csv() {
        let nul = text_of(vec![0; 4096], false).expect_err("NUL bytes");
        assert!(nul.contains("control byte 0x00 at offset 0"), "{nul}");
        let binary = text_of(vec![b'a', 0xff, 0xfe, b'b'], false).expect_err("invalid UTF-8");
        assert!(binary.contains("invalid byte at offset 1"), "{binary}");
        // A sample cut inside a character keeps the whole characters before it.
        assert_eq!(
            text_of("aé".as_bytes()[..2].to_vec(), true).as_deref(),
            Ok("a")
        );
        let ragged = csv_columns("a,b\n1,2\n3,4,5\n", false, "").expect_err("ragged");
        assert!(
            ragged.contains("row 3 has 3 fields where row 1 has 2"),
            "{ragged}"
        );
    }

    #[test]
    fn long_first_cells_are_data_not_a_header() {
        let long = "x".repeat(MAX_HEADER_CELL_CHARS);
        let (_, header, cols) = csv_columns(&format!("{long},b\n1,2\n"), false, "").expect("csv");
        assert!(!header, "a 150-character cell is not a column name");
        assert_eq!(cols[0].0, "col0");
        let short = "x".repeat(MAX_HEADER_CELL_CHARS - 1);
        let (_, header, _) = csv_columns(&format!("{short},b\n1,2\n"), false, "").expect("csv");
        assert!(header);
    }

    #[test]
    fn the_null_value_says_nothing_about_a_columns_type() {
        let (_, header, cols) =
            csv_columns("id,amount\n1,NULL\nNULL,2.5\n", false, "NULL").expect("csv");
        assert!(header);
        assert_eq!(
            cols,
            vec![
                ("id".to_owned(), HiveType::Int),
                ("amount".to_owned(), HiveType::Double)
            ]
        );
        let (_, _, cols) = csv_columns("id,amount\n1,NULL\n", false, "").expect("csv");
        assert_eq!(cols[1], ("amount".to_owned(), HiveType::String));
    }

    #[test]
    fn json_nested() {
        let cols = json_columns(
            "{\"a\":1,\"b\":{\"c\":[1,2.5]}}\n{\"a\":5000000000,\"d\":null,\"b\":{\"e\":\"x\"}}\n",
        )
        .expect("json");
        assert_eq!(
            cols.iter()
                .map(|(n, t)| format!("{n} {t}"))
                .collect::<Vec<_>>(),
            ["a bigint", "b struct<c:array<double>,e:string>", "d string"]
        );
        assert!(json_columns("[1]\n").is_err());
    }
}
