//! Delimited text read into Arrow with its quoting kept: an unquoted field equal to the
//! `null_value` is NULL and a quoted field is text, so `""` is the empty string. (arrow's CSV
//! reader drops the quotes before it looks at a field, which reads both as NULL.)
//!
//! Fields are split by `csv_core`; each column is gathered as text and then cast to its type
//! (a value that does not convert names its row and column).

use std::sync::Arc;

use arrow::array::{Array, ArrayBuilder, ArrayRef, RecordBatch, StringBuilder};
use arrow::compute::{CastOptions, cast, cast_with_options};
use arrow::datatypes::{DataType, SchemaRef};
use csv_core::{ReadFieldResult, ReaderBuilder};

/// How a delimited file is laid out.
#[derive(Debug, Clone, Copy)]
pub struct Layout<'a> {
    /// Field delimiter.
    pub delimiter: u8,
    /// The first row holds column names, and is skipped.
    pub header: bool,
    /// The unquoted field that stands for NULL (empty: an empty field).
    pub null_value: &'a str,
}

/// Reads `bytes` into batches of `schema` (the file's columns in order), `batch_rows` rows each.
/// Errors name the row (counting the header) as users count them.
pub fn read(
    bytes: &[u8],
    schema: &SchemaRef,
    layout: Layout<'_>,
    batch_rows: usize,
) -> Result<Vec<RecordBatch>, String> {
    let width = schema.fields().len();
    let texts: Vec<bool> = schema
        .fields()
        .iter()
        .map(|f| is_text(f.data_type()))
        .collect();
    let mut reader = ReaderBuilder::new().delimiter(layout.delimiter).build();
    let mut columns = new_builders(width, batch_rows);
    let mut batches = Vec::new();
    let mut field = vec![0u8; 256];
    let mut record: Vec<(Vec<u8>, bool)> = Vec::with_capacity(width);
    let mut pos = 0usize;
    let mut row = 0usize;
    let mut first_row_of_batch = 1 + usize::from(layout.header);
    'records: loop {
        // Blank lines are skipped (as csv_core does), so a field's first byte tells whether
        // it is quoted.
        if record.is_empty() {
            while matches!(bytes.get(pos), Some(b'\n' | b'\r')) {
                pos += 1;
            }
        }
        let quoted = bytes.get(pos) == Some(&b'"');
        let mut len = 0usize;
        let record_end = loop {
            let (result, read, written) = reader.read_field(&bytes[pos..], &mut field[len..]);
            pos += read;
            len += written;
            match result {
                // All input is given at once: the next call, on empty input, ends the field.
                ReadFieldResult::InputEmpty => {}
                ReadFieldResult::OutputFull => field.resize(field.len() * 2, 0),
                ReadFieldResult::Field { record_end } => break record_end,
                ReadFieldResult::End => break 'records,
            }
        };
        record.push((field[..len].to_vec(), quoted));
        if !record_end {
            continue;
        }
        row += 1;
        if layout.header && row == 1 {
            record.clear();
            continue;
        }
        if record.len() != width {
            return Err(format!(
                "row {row}: expected {width} fields, found {}",
                record.len()
            ));
        }
        for (i, (value, quoted)) in record.drain(..).enumerate() {
            let text = String::from_utf8(value)
                .map_err(|_| format!("row {row}, column {}: not UTF-8 text", i + 1))?;
            let null = if texts[i] {
                !quoted && text == layout.null_value
            } else {
                text == layout.null_value || text.trim().is_empty()
            };
            if null {
                columns[i].append_null();
            } else {
                columns[i].append_value(text);
            }
        }
        if columns.first().is_some_and(|c| c.len() >= batch_rows) {
            batches.push(finish(schema, &mut columns, first_row_of_batch)?);
            first_row_of_batch = row + 1;
        }
    }
    if columns.first().is_some_and(|c| !c.is_empty()) {
        batches.push(finish(schema, &mut columns, first_row_of_batch)?);
    }
    Ok(batches)
}

fn is_text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

fn new_builders(width: usize, rows: usize) -> Vec<StringBuilder> {
    (0..width)
        .map(|_| StringBuilder::with_capacity(rows, rows * 16))
        .collect()
}

/// The gathered text as a batch of `schema`'s types; `first_row` is the row number of its
/// first row, for messages.
fn finish(
    schema: &SchemaRef,
    columns: &mut [StringBuilder],
    first_row: usize,
) -> Result<RecordBatch, String> {
    let arrays = schema
        .fields()
        .iter()
        .zip(columns.iter_mut())
        .map(|(f, builder)| {
            let text: ArrayRef = Arc::new(builder.finish());
            if f.data_type() == text.data_type() {
                return Ok(text);
            }
            let strict = CastOptions {
                safe: false,
                ..CastOptions::default()
            };
            cast_with_options(&text, f.data_type(), &strict).map_err(|e| {
                // Where: the first value the lenient cast turns into NULL.
                let bad = cast(&text, f.data_type()).ok().and_then(|lenient| {
                    (0..text.len()).find(|&i| text.is_valid(i) && lenient.is_null(i))
                });
                let strings = text
                    .as_any()
                    .downcast_ref::<arrow::array::StringArray>()
                    .filter(|_| bad.is_some());
                match (bad, strings) {
                    (Some(i), Some(s)) => format!(
                        "row {}, column `{}`: `{}` is not a {} value",
                        first_row + i,
                        f.name(),
                        s.value(i),
                        f.data_type()
                    ),
                    _ => format!("column `{}`: {e}", f.name()),
                }
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    RecordBatch::try_new(schema.clone(), arrays).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::{Decimal128Type, Field, Schema};

    use super::*;

    fn schema(fields: &[(&str, DataType)]) -> SchemaRef {
        Arc::new(Schema::new(
            fields
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        ))
    }

    fn layout(null_value: &str) -> Layout<'_> {
        Layout {
            delimiter: b',',
            header: true,
            null_value,
        }
    }

    #[test]
    fn quoted_empty_is_text_and_unquoted_null_value_is_null() {
        let s = schema(&[("t", DataType::Utf8), ("n", DataType::Int64)]);
        let body = b"t,n\n\"\",1\n,\n\"NULL\",\nNULL,\n\r\nx,\"4\"\r\n";
        let batches = read(body, &s, layout(""), 100).unwrap();
        let t = batches[0].column(0).as_string::<i32>();
        let n = batches[0]
            .column(1)
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(
            t.iter().collect::<Vec<_>>(),
            [Some(""), None, Some("NULL"), Some("NULL"), Some("x")]
        );
        assert_eq!(
            n.iter().collect::<Vec<_>>(),
            [Some(1), None, None, None, Some(4)]
        );
        let batches = read(body, &s, layout("NULL"), 100).unwrap();
        let t = batches[0].column(0).as_string::<i32>();
        assert_eq!(
            t.iter().collect::<Vec<_>>(),
            [Some(""), Some(""), Some("NULL"), None, Some("x")]
        );
    }

    #[test]
    fn decimals_stay_exact_and_bad_values_name_their_row() {
        let s = schema(&[
            ("id", DataType::Int64),
            ("amount", DataType::Decimal128(5, 2)),
        ]);
        let batches = read(b"id,amount\n1,0.10\n2,999.99\n", &s, layout(""), 1).unwrap();
        assert_eq!(batches.len(), 2);
        let amount = batches[1].column(1).as_primitive::<Decimal128Type>();
        assert_eq!(amount.value(0), 99_999);
        let e = read(b"id,amount\n1,0.10\n2,x\n", &s, layout(""), 100).unwrap_err();
        assert_eq!(
            e,
            "row 3, column `amount`: `x` is not a Decimal128(5, 2) value"
        );
        let e = read(b"id,amount\n1\n", &s, layout(""), 100).unwrap_err();
        assert_eq!(e, "row 2: expected 2 fields, found 1");
        // Quoted line breaks and delimiters stay inside their field.
        let s = schema(&[("a", DataType::Utf8), ("b", DataType::Int64)]);
        let batches = read(b"a,b\n\"x,\ny\",7\n", &s, layout(""), 100).unwrap();
        assert_eq!(
            batches[0].column(0).as_string::<i32>(),
            &StringArray::from(vec!["x,\ny"])
        );
        assert_eq!(
            batches[0].column(1).as_primitive(),
            &Int64Array::from(vec![7])
        );
    }
}
