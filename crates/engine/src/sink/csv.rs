//! CSV encoding of Arrow batches: the same text as arrow's CSV writer (value formats, quoting
//! only where needed, `\n` line ends), written straight into the output buffer, with one
//! difference: NULL and the empty string stay apart. NULL is written as the format's
//! `null_value` (default: nothing), and a text or binary value that would read back as NULL
//! (empty, or equal to `null_value`) is quoted, as DMS does: `""` is an empty string. Readers
//! that keep quoting apart (pipectl's files source, pandas, Spark) read both back.
//!
//! Why not arrow's writer: it formats every value through a `dyn` formatter into a string and
//! copies it through the `csv` crate's record buffer, which made CSV encoding the largest part
//! of a database full load's CPU time. Integers, text, decimals and microsecond timestamps (the
//! bulk of database tables) are formatted here directly; every other type goes through arrow's
//! own formatter, so the output is identical whatever the type (a test compares the two).

use std::fmt::Write as _;

use arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, PrimitiveArray, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{
    DataType, Int8Type, Int16Type, Int32Type, Int64Type, TimeUnit, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// Encodes batches as CSV with a given delimiter and text for NULL.
pub struct CsvEncoder {
    delimiter: u8,
    /// What a NULL is written as.
    null_value: Vec<u8>,
    /// Bytes that force a field into quotes: the delimiter, the quote, CR and LF.
    needs_quotes: [bool; 256],
}

/// How one column's values are written.
enum Column<'a> {
    Int(IntColumn<'a>),
    Text(&'a StringArray),
    Decimal(&'a Decimal128Array, u32),
    /// Microsecond timestamps without a time zone or in UTC (then with a `Z`).
    Micros(&'a TimestampMicrosecondArray, bool),
    /// Bytes (written as arrow writes them, in hex), which can be empty like text.
    Binary(ArrayFormatter<'a>),
    Other(ArrayFormatter<'a>),
}

enum IntColumn<'a> {
    I8(&'a PrimitiveArray<Int8Type>),
    I16(&'a PrimitiveArray<Int16Type>),
    I32(&'a PrimitiveArray<Int32Type>),
    I64(&'a PrimitiveArray<Int64Type>),
    U8(&'a PrimitiveArray<UInt8Type>),
    U16(&'a PrimitiveArray<UInt16Type>),
    U32(&'a PrimitiveArray<UInt32Type>),
    U64(&'a PrimitiveArray<UInt64Type>),
}

impl CsvEncoder {
    /// An encoder writing fields separated by `delimiter`, NULL as `null_value`.
    pub fn new(delimiter: u8, null_value: &str) -> Self {
        let mut needs_quotes = [false; 256];
        for b in [delimiter, b'"', b'\r', b'\n'] {
            needs_quotes[b as usize] = true;
        }
        CsvEncoder {
            delimiter,
            null_value: null_value.as_bytes().to_vec(),
            needs_quotes,
        }
    }

    /// Appends the header line: the column names.
    pub fn write_header(&self, batch: &RecordBatch, out: &mut Vec<u8>) {
        let schema = batch.schema();
        let single = schema.fields().len() == 1;
        for (i, field) in schema.fields().iter().enumerate() {
            if i > 0 {
                out.push(self.delimiter);
            }
            self.write_field(field.name().as_bytes(), single, out);
        }
        out.push(b'\n');
    }

    /// Appends one line per row of `batch`.
    pub fn write_rows(&self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), ArrowError> {
        let options = FormatOptions::default().with_null("");
        let columns = batch
            .columns()
            .iter()
            .map(|array| Ok((column(array, &options)?, array.logical_nulls())))
            .collect::<Result<Vec<_>, ArrowError>>()?;
        // A line holding one empty field is written as `""`, so it is not read as a blank line
        // (which readers skip): in a one-column file with an empty `null_value`, NULL and the
        // empty string are both `""`.
        let single = columns.len() == 1;
        let mut scratch = String::new();
        let mut digits = itoa::Buffer::new();
        for row in 0..batch.num_rows() {
            for (i, ((column, nulls), array)) in columns.iter().zip(batch.columns()).enumerate() {
                if i > 0 {
                    out.push(self.delimiter);
                }
                if nulls.as_ref().is_some_and(|n| n.is_null(row)) {
                    if single && self.null_value.is_empty() {
                        out.extend_from_slice(b"\"\"");
                    } else {
                        out.extend_from_slice(&self.null_value);
                    }
                    continue;
                }
                match column {
                    Column::Int(ints) => out.extend_from_slice(ints.format(row, &mut digits)),
                    Column::Text(strings) => self.write_value(strings.value(row).as_bytes(), out),
                    Column::Binary(formatter) => {
                        scratch.clear();
                        write!(scratch, "{}", formatter.value(row)).map_err(|e| {
                            ArrowError::CsvError(format!("cannot format row {}: {e}", row + 1))
                        })?;
                        self.write_value(scratch.as_bytes(), out)
                    }
                    Column::Decimal(decimals, scale) => {
                        write_decimal(decimals.value(row), *scale, &mut digits, out)
                    }
                    Column::Micros(stamps, utc) => {
                        if !write_micros(stamps.value(row), *utc, out) {
                            let formatter = ArrayFormatter::try_new(array.as_ref(), &options)?;
                            self.write_formatted(&formatter, row, single, &mut scratch, out)?;
                        }
                    }
                    Column::Other(formatter) => {
                        self.write_formatted(formatter, row, single, &mut scratch, out)?
                    }
                }
            }
            out.push(b'\n');
        }
        Ok(())
    }

    fn write_formatted(
        &self,
        formatter: &ArrayFormatter<'_>,
        row: usize,
        single: bool,
        scratch: &mut String,
        out: &mut Vec<u8>,
    ) -> Result<(), ArrowError> {
        scratch.clear();
        write!(scratch, "{}", formatter.value(row))
            .map_err(|e| ArrowError::CsvError(format!("cannot format row {}: {e}", row + 1)))?;
        self.write_field(scratch.as_bytes(), single, out);
        Ok(())
    }

    /// Appends a text value: quoted when it would otherwise read back as NULL (empty, or the
    /// `null_value`), or when it holds a special byte.
    fn write_value(&self, value: &[u8], out: &mut Vec<u8>) {
        if value.is_empty() || value == self.null_value.as_slice() {
            out.push(b'"');
            out.extend_from_slice(value);
            out.push(b'"');
        } else {
            self.write_field(value, false, out);
        }
    }

    /// Appends a field, in quotes (with inner quotes doubled) when it holds a special byte.
    fn write_field(&self, field: &[u8], single: bool, out: &mut Vec<u8>) {
        if field.is_empty() && single {
            out.extend_from_slice(b"\"\"");
        } else if field.iter().any(|b| self.needs_quotes[*b as usize]) {
            out.push(b'"');
            for part in field.split_inclusive(|b| *b == b'"') {
                out.extend_from_slice(part);
                if part.last() == Some(&b'"') {
                    out.push(b'"');
                }
            }
            out.push(b'"');
        } else {
            out.extend_from_slice(field);
        }
    }
}

fn column<'a>(array: &'a ArrayRef, options: &FormatOptions<'a>) -> Result<Column<'a>, ArrowError> {
    if array.data_type().is_nested() {
        return Err(ArrowError::CsvError(format!(
            "Nested type {} is not supported in CSV",
            array.data_type()
        )));
    }
    Ok(match array.data_type() {
        DataType::Int8 => Column::Int(IntColumn::I8(array.as_primitive())),
        DataType::Int16 => Column::Int(IntColumn::I16(array.as_primitive())),
        DataType::Int32 => Column::Int(IntColumn::I32(array.as_primitive())),
        DataType::Int64 => Column::Int(IntColumn::I64(array.as_primitive())),
        DataType::UInt8 => Column::Int(IntColumn::U8(array.as_primitive())),
        DataType::UInt16 => Column::Int(IntColumn::U16(array.as_primitive())),
        DataType::UInt32 => Column::Int(IntColumn::U32(array.as_primitive())),
        DataType::UInt64 => Column::Int(IntColumn::U64(array.as_primitive())),
        DataType::Utf8 => Column::Text(array.as_string()),
        DataType::Decimal128(_, scale) if *scale >= 0 => {
            Column::Decimal(array.as_primitive(), *scale as u32)
        }
        DataType::Timestamp(TimeUnit::Microsecond, None) => {
            Column::Micros(array.as_primitive(), false)
        }
        DataType::Timestamp(TimeUnit::Microsecond, Some(tz))
            if tz.as_ref() == "UTC" || tz.as_ref() == "+00:00" =>
        {
            Column::Micros(array.as_primitive(), true)
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => {
            Column::Binary(ArrayFormatter::try_new(array.as_ref(), options)?)
        }
        _ => Column::Other(ArrayFormatter::try_new(array.as_ref(), options)?),
    })
}

impl IntColumn<'_> {
    fn format<'b>(&self, row: usize, digits: &'b mut itoa::Buffer) -> &'b [u8] {
        match self {
            IntColumn::I8(a) => digits.format(a.value(row)),
            IntColumn::I16(a) => digits.format(a.value(row)),
            IntColumn::I32(a) => digits.format(a.value(row)),
            IntColumn::I64(a) => digits.format(a.value(row)),
            IntColumn::U8(a) => digits.format(a.value(row)),
            IntColumn::U16(a) => digits.format(a.value(row)),
            IntColumn::U32(a) => digits.format(a.value(row)),
            IntColumn::U64(a) => digits.format(a.value(row)),
        }
        .as_bytes()
    }
}

/// A decimal as arrow shows it: `-0.05` for -5 at scale 2, every scale digit written.
fn write_decimal(value: i128, scale: u32, digits: &mut itoa::Buffer, out: &mut Vec<u8>) {
    if value < 0 {
        out.push(b'-');
    }
    let magnitude = value.unsigned_abs();
    let unit = 10u128.pow(scale);
    out.extend_from_slice(digits.format(magnitude / unit).as_bytes());
    if scale > 0 {
        out.push(b'.');
        let fraction = digits.format(magnitude % unit).as_bytes();
        out.resize(out.len() + scale as usize - fraction.len(), b'0');
        out.extend_from_slice(fraction);
    }
}

/// A microsecond timestamp as arrow shows it (chrono's RFC 3339 with `Z` for UTC, its ISO
/// form without a zone): `2026-01-01T00:00:01.5Z`-style with 0, 3 or 6 fraction digits.
/// Returns false, writing nothing, for years outside 0..=9999, which chrono writes its own way.
fn write_micros(micros: i64, utc: bool, out: &mut Vec<u8>) -> bool {
    let seconds = micros.div_euclid(1_000_000);
    let fraction = micros.rem_euclid(1_000_000) as u32;
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    if !(0..=9999).contains(&year) {
        return false;
    }
    let of_day = seconds.rem_euclid(86_400) as u32;
    let mut text = [0u8; 27];
    put_digits(&mut text[0..4], year as u32);
    text[4] = b'-';
    put_digits(&mut text[5..7], month);
    text[7] = b'-';
    put_digits(&mut text[8..10], day);
    text[10] = b'T';
    put_digits(&mut text[11..13], of_day / 3600);
    text[13] = b':';
    put_digits(&mut text[14..16], of_day / 60 % 60);
    text[16] = b':';
    put_digits(&mut text[17..19], of_day % 60);
    let mut len = 19;
    if fraction != 0 {
        text[19] = b'.';
        if fraction.is_multiple_of(1000) {
            put_digits(&mut text[20..23], fraction / 1000);
            len = 23;
        } else {
            put_digits(&mut text[20..26], fraction);
            len = 26;
        }
    }
    if utc {
        text[len] = b'Z';
        len += 1;
    }
    out.extend_from_slice(&text[..len]);
    true
}

/// Writes `value` as exactly `slot.len()` decimal digits, zero-padded.
fn put_digits(slot: &mut [u8], mut value: u32) {
    for b in slot.iter_mut().rev() {
        *b = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Year, month and day of a day count from 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, UInt64Array,
    };
    use arrow::datatypes::{Field, Schema};

    use super::*;

    /// What arrow's own CSV writer makes of `batch`.
    fn arrow_csv(batch: &RecordBatch, delimiter: u8) -> String {
        let mut out = Vec::new();
        let mut writer = arrow::csv::WriterBuilder::new()
            .with_delimiter(delimiter)
            .build(&mut out);
        writer.write(batch).unwrap();
        drop(writer);
        String::from_utf8(out).unwrap()
    }

    fn ours(batch: &RecordBatch, delimiter: u8) -> String {
        ours_with_null(batch, delimiter, "")
    }

    fn ours_with_null(batch: &RecordBatch, delimiter: u8, null_value: &str) -> String {
        let encoder = CsvEncoder::new(delimiter, null_value);
        let mut out = Vec::new();
        encoder.write_header(batch, &mut out);
        encoder.write_rows(batch, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        let fields: Vec<Field> = columns
            .iter()
            .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
            .collect();
        RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap()
    }

    /// Every value but the empty string, which arrow writes like NULL.
    #[test]
    fn output_is_what_arrow_writes() {
        let micros = vec![
            Some(0),
            Some(-1),
            Some(1_767_225_601_000_000),
            Some(1_767_225_601_500_000),
            Some(1_767_225_601_000_123),
            Some(-62_135_596_800_000_000), // 0001-01-01
            Some(-62_167_219_200_000_000), // 0000-01-01
            Some(-62_167_219_200_000_001), // before year 0: chrono's own form
            Some(253_402_300_800_000_000), // 10000-01-01: chrono's own form
            Some(951_782_400_000_000),     // 2000-02-29
            None,
        ];
        let n = micros.len();
        let texts: Vec<Option<&str>> = vec![
            Some("plain"),
            Some("with,comma"),
            Some("with \"quotes\""),
            Some("line\nbreak"),
            Some("carriage\rreturn"),
            Some("e"),
            Some("ünïcode ✓"),
            Some("\""),
            Some("tab\tseparated"),
            None,
            Some(" spaced "),
        ];
        let decimals = Decimal128Array::from(vec![
            Some(0),
            Some(5),
            Some(-5),
            Some(12_345),
            Some(-12_345),
            Some(100),
            Some(i128::from(i64::MAX)),
            Some(-1),
            None,
            Some(99_999_999),
            Some(1),
        ])
        .with_precision_and_scale(38, 2)
        .unwrap();
        let b = batch(vec![
            (
                "id",
                Arc::new(Int64Array::from(
                    (0..n as i64)
                        .map(|i| (i != 3).then_some(i * -7_654_321))
                        .collect::<Vec<_>>(),
                )),
            ),
            (
                "small",
                Arc::new(Int32Array::from(
                    (0..n as i32).map(|i| Some(i - 5)).collect::<Vec<_>>(),
                )),
            ),
            (
                "big",
                Arc::new(UInt64Array::from(
                    (0..n as u64)
                        .map(|i| Some(u64::MAX - i))
                        .collect::<Vec<_>>(),
                )),
            ),
            ("text", Arc::new(StringArray::from(texts))),
            ("amount", Arc::new(decimals)),
            (
                "whole",
                Arc::new(
                    Decimal128Array::from((0..n as i128).map(|i| Some(i - 3)).collect::<Vec<_>>())
                        .with_precision_and_scale(10, 0)
                        .unwrap(),
                ),
            ),
            (
                "utc",
                Arc::new(TimestampMicrosecondArray::from(micros.clone()).with_timezone("UTC")),
            ),
            (
                "naive",
                Arc::new(TimestampMicrosecondArray::from(micros.clone())),
            ),
            (
                "offset",
                Arc::new(TimestampMicrosecondArray::from(micros).with_timezone("+02:00")),
            ),
            (
                "float",
                Arc::new(Float64Array::from(
                    (0..n).map(|i| Some(i as f64 / 3.0)).collect::<Vec<_>>(),
                )),
            ),
            (
                "flag",
                Arc::new(BooleanArray::from(
                    (0..n)
                        .map(|i| (i % 3 != 0).then_some(i % 2 == 0))
                        .collect::<Vec<_>>(),
                )),
            ),
            (
                "day",
                Arc::new(Date32Array::from(
                    (0..n as i32)
                        .map(|i| Some(i * 4000 - 20000))
                        .collect::<Vec<_>>(),
                )),
            ),
            ("odd, \"name\"", Arc::new(Int32Array::from(vec![None; n]))),
        ]);
        for delimiter in [b',', b';', b'\t', b'|'] {
            assert_eq!(
                ours(&b, delimiter),
                arrow_csv(&b, delimiter),
                "delimiter {delimiter}"
            );
        }
    }

    #[test]
    fn a_single_empty_field_is_quoted_as_arrow_does() {
        let b = batch(vec![(
            "only",
            Arc::new(StringArray::from(vec![Some(""), None, Some("x")])),
        )]);
        assert_eq!(ours(&b, b','), arrow_csv(&b, b','));
        assert_eq!(ours(&b, b','), "only\n\"\"\n\"\"\nx\n");
        assert_eq!(ours_with_null(&b, b',', "NULL"), "only\n\"\"\nNULL\nx\n");
    }

    #[test]
    fn empty_strings_are_quoted_and_nulls_written_as_the_null_value() {
        use arrow::array::BinaryArray;
        let b = batch(vec![
            (
                "t",
                Arc::new(StringArray::from(vec![
                    Some(""),
                    None,
                    Some("NULL"),
                    Some("x"),
                ])),
            ),
            (
                "b",
                Arc::new(BinaryArray::from(vec![
                    Some(&b""[..]),
                    None,
                    Some(&b"\xde"[..]),
                    Some(&b""[..]),
                ])),
            ),
            (
                "n",
                Arc::new(Int32Array::from(vec![Some(1), None, None, Some(4)])),
            ),
        ]);
        assert_eq!(
            ours(&b, b','),
            "t,b,n\n\"\",\"\",1\n,,\nNULL,de,\nx,\"\",4\n"
        );
        assert_eq!(
            ours_with_null(&b, b',', "NULL"),
            "t,b,n\n\"\",\"\",1\nNULL,NULL,NULL\n\"NULL\",de,NULL\nx,\"\",4\n"
        );
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
    }
}
