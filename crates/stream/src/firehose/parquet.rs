//! Parquet output of a firehose sink: a buffer's JSON records decoded into Arrow with the
//! declared schema, a catalog table's, or the one inferred from the first buffer, and written as
//! one Parquet object. Records that do not fit go to the error output as
//! `format-conversion-failed`; fields the schema lacks are left out and counted.

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::json::ReaderBuilder;
use arrow::json::reader::infer_json_schema_from_seekable;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use serde::de::IgnoredAny;

use pipectl_engine::arrow_eval::declared_schema;
use pipectl_engine::crawl::types::HiveType;
use pipectl_engine::sink::writer::parquet_properties;
use pipectl_engine::{Error, Result};
use pipectl_spec::types::{CatalogTableRef, ColumnDecl, ParquetFormat};
use pipectl_state::CatalogStore;

/// Converts buffers of JSON lines into Parquet objects.
pub struct ParquetEncoder {
    schema: Option<SchemaRef>,
    format: ParquetFormat,
    /// Records seen so far with a top-level field the schema lacks, by field.
    left_out: BTreeMap<String, u64>,
}

/// Records that could not be converted: their index in the buffer and why.
type Rejected = Vec<(usize, String)>;

/// One buffer decoded into Arrow batches, for Delta output.
pub struct Decoded {
    /// The records that fit, in buffer order.
    pub batches: Vec<RecordBatch>,
    /// Records that could not be converted: their index in the buffer and why.
    pub rejected: Vec<(usize, String)>,
    /// Fields the schema lacks, first met in this buffer (their values are left out).
    pub new_left_out: Vec<String>,
}

/// One buffer converted: the Parquet bytes, and the lines that did not fit with the reason.
pub struct Encoded {
    /// The Parquet object, `None` when no record fit.
    pub object: Option<Vec<u8>>,
    /// Records that could not be converted: their index in the buffer and why.
    pub rejected: Vec<(usize, String)>,
    /// Fields the schema lacks, first met in this buffer (their values are left out).
    pub new_left_out: Vec<String>,
}

impl ParquetEncoder {
    /// An encoder with the declared columns (none: infer from the first buffer).
    pub fn new(sink: &str, format: &ParquetFormat, columns: &[ColumnDecl]) -> Result<Self> {
        let schema = declared_schema(&format!("sink `{sink}`"), columns)?;
        Ok(ParquetEncoder {
            schema,
            format: format.clone(),
            left_out: BTreeMap::new(),
        })
    }

    /// An encoder with a given schema (a catalog table's).
    pub fn with_schema(format: &ParquetFormat, schema: SchemaRef) -> Self {
        ParquetEncoder {
            schema: Some(schema),
            format: format.clone(),
            left_out: BTreeMap::new(),
        }
    }

    /// Records with a field the schema lacks, by field, since the encoder was made.
    pub fn left_out(&self) -> &BTreeMap<String, u64> {
        &self.left_out
    }

    /// The schema fixed so far: declared, a catalog table's, or inferred from an earlier buffer.
    pub fn schema(&self) -> Option<&SchemaRef> {
        self.schema.as_ref()
    }

    /// Converts one buffer of newline-terminated JSON records.
    pub fn encode(&mut self, body: &[u8]) -> Result<Encoded> {
        let schema = match &self.schema {
            Some(s) => s.clone(),
            None => {
                // The first buffer fixes the schema for the rest of the run.
                let schema = Arc::new(infer(body)?);
                self.schema = Some(schema.clone());
                schema
            }
        };
        let format = self.format.clone();
        let mut writer: Option<ArrowWriter<Vec<u8>>> = None;
        let (rejected, new_left_out) = self.each_batch(&schema, body, |batch| {
            let writer = match &mut writer {
                Some(w) => w,
                None => {
                    let props = parquet_properties(&format, &batch)?;
                    let out = Vec::with_capacity(body.len() / 4);
                    writer.insert(
                        ArrowWriter::try_new(out, schema.clone(), Some(props))
                            .map_err(|e| Error::internal(format!("parquet: {e}")))?,
                    )
                }
            };
            writer
                .write(&batch)
                .map_err(|e| Error::internal(format!("parquet: {e}")))
        })?;
        let object = match writer {
            // Writes the footer and hands back the bytes.
            Some(w) => Some(
                w.into_inner()
                    .map_err(|e| Error::internal(format!("parquet: {e}")))?,
            ),
            None => None,
        };
        Ok(Encoded {
            object,
            rejected,
            new_left_out,
        })
    }

    /// Decodes one buffer into Arrow batches of `schema` (a Delta table's columns), with the
    /// same handling of misfits and left-out fields as [`Self::encode`].
    pub fn decode(&mut self, schema: &SchemaRef, body: &[u8]) -> Result<Decoded> {
        let mut batches = Vec::new();
        let (rejected, new_left_out) = self.each_batch(schema, body, |batch| {
            batches.push(batch);
            Ok(())
        })?;
        Ok(Decoded {
            batches,
            rejected,
            new_left_out,
        })
    }

    /// Decodes `body` a chunk of records at a time and hands each non-empty batch to `take`:
    /// memory holds one chunk's Arrow arrays, not the whole buffer decoded at once. Returns the
    /// records that did not fit (index in the buffer, reason) and the newly left-out fields.
    fn each_batch(
        &mut self,
        schema: &SchemaRef,
        body: &[u8],
        mut take: impl FnMut(RecordBatch) -> Result<()>,
    ) -> Result<(Rejected, Vec<String>)> {
        let mut rejected = Vec::new();
        let mut new_left_out = Vec::new();
        let mut first_line = 0;
        for (chunk, count) in line_chunks(body, CHUNK_RECORDS) {
            // Strict decoding fails on fields the schema lacks: only then are they looked for.
            let batch = match decode(schema, chunk, count, true) {
                Ok(batch) => batch,
                Err(_) => {
                    let (batch, bad) =
                        self.decode_lenient(schema, chunk, count, &mut new_left_out)?;
                    rejected.extend(bad.into_iter().map(|(i, e)| (first_line + i, e)));
                    batch
                }
            };
            first_line += count;
            if batch.num_rows() > 0 {
                take(batch)?;
            }
        }
        Ok((rejected, new_left_out))
    }

    /// Decodes a chunk leaving out fields the schema lacks (counted, new ones added to
    /// `new_left_out`); records that still do not fit are returned with their index and reason.
    fn decode_lenient(
        &mut self,
        schema: &SchemaRef,
        chunk: &[u8],
        count: usize,
        new_left_out: &mut Vec<String>,
    ) -> Result<(RecordBatch, Vec<(usize, String)>)> {
        let (batch, bad) = match decode(schema, chunk, count, false) {
            Ok(batch) => (batch, Vec::new()),
            Err(_) => {
                // Find the records that do not fit, one by one, and convert the rest.
                let mut good = Vec::with_capacity(chunk.len());
                let mut bad = Vec::new();
                for (i, line) in lines(chunk).enumerate() {
                    match decode(schema, line, 1, false) {
                        Ok(_) => {
                            good.extend_from_slice(line);
                            good.push(b'\n');
                        }
                        Err(e) => bad.push((i, e)),
                    }
                }
                let batch = decode(schema, &good, count - bad.len(), false).map_err(Error::user)?;
                (batch, bad)
            }
        };
        for (i, line) in lines(chunk).enumerate() {
            if bad.iter().any(|(b, _)| *b == i) {
                continue;
            }
            let Ok(fields) = serde_json::from_slice::<HashMap<String, IgnoredAny>>(line) else {
                continue;
            };
            for name in fields.keys() {
                if schema.field_with_name(name).is_err() {
                    let seen = self.left_out.entry(name.clone()).or_insert(0);
                    if *seen == 0 {
                        new_left_out.push(name.clone());
                    }
                    *seen += 1;
                }
            }
        }
        Ok((batch, bad))
    }
}

/// The schema of a catalog table (its data columns, in order; partition columns are in the
/// keys, not in the objects), for `catalog_table:`.
pub fn catalog_schema(
    catalog: &dyn CatalogStore,
    sink: &str,
    table: &CatalogTableRef,
) -> Result<SchemaRef> {
    let name = format!("{}.{}", table.database, table.table);
    let found = catalog
        .table(&table.database, &table.table)
        .map_err(|e| Error::internal(format!("sink `{sink}`: cannot read catalog table `{name}`: {e}")))?
        .ok_or_else(|| {
            Error::user(format!(
                "sink `{sink}`: catalog table `{name}` does not exist; catalogue it with a crawler first (`pipectl catalog tables` lists them), or declare `columns`"
            ))
        })?;
    let fields = found
        .columns
        .iter()
        .map(|c| {
            HiveType::parse(&c.data_type)
                .map(|t| Field::new(&c.name, t.to_arrow(), true))
                .map_err(|e| {
                    Error::user(format!(
                        "sink `{sink}`: catalog table `{name}`, column `{}`: {e}",
                        c.name
                    ))
                })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// The schema of a buffer's records as inferred from them, RFC 3339 text made timestamps.
pub fn infer(body: &[u8]) -> Result<Schema> {
    let (inferred, _) = infer_json_schema_from_seekable(Cursor::new(body), None)
        .map_err(|e| Error::user(format!("cannot infer a schema from the records: {e}")))?;
    Ok(with_timestamps(inferred, body))
}

/// An inferred schema with the text fields that hold an RFC 3339 time in every record of
/// `body` (and in at least one) made timestamps: inference alone keeps them strings.
fn with_timestamps(inferred: Schema, body: &[u8]) -> Schema {
    let text_fields: Vec<&str> = inferred
        .fields()
        .iter()
        .filter(|f| f.data_type() == &DataType::Utf8)
        .map(|f| f.name().as_str())
        .collect();
    if text_fields.is_empty() {
        return inferred;
    }
    let mut is_time: HashMap<&str, bool> = HashMap::new();
    for line in lines(body) {
        let Ok(record) = serde_json::from_slice::<HashMap<String, serde_json::Value>>(line) else {
            continue;
        };
        for name in &text_fields {
            match record.get(*name) {
                None | Some(serde_json::Value::Null) => {}
                Some(serde_json::Value::String(s)) => {
                    let parses = chrono::DateTime::parse_from_rfc3339(s).is_ok();
                    let entry = is_time.entry(name).or_insert(true);
                    *entry &= parses;
                }
                Some(_) => {
                    is_time.insert(name, false);
                }
            }
        }
    }
    let fields: Vec<Field> = inferred
        .fields()
        .iter()
        .map(|f| {
            if is_time.get(f.name().as_str()) == Some(&true) {
                Field::new(
                    f.name(),
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    true,
                )
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Schema::new(fields)
}

/// Records converted to Arrow at a time.
const CHUNK_RECORDS: usize = 8192;

/// The buffer cut into runs of up to `records` whole lines, each with its line count.
fn line_chunks(body: &[u8], records: usize) -> impl Iterator<Item = (&[u8], usize)> {
    let mut rest = body;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut count = 0;
        let mut end = 0;
        for (i, b) in rest.iter().enumerate() {
            if *b == b'\n' {
                count += 1;
                end = i + 1;
                if count == records {
                    break;
                }
            }
        }
        if end == 0 || (count < records && end < rest.len()) {
            // The last record has no newline.
            end = rest.len();
            count += 1;
        }
        let (chunk, tail) = rest.split_at(end);
        rest = tail;
        Some((chunk, count))
    })
}

/// The records of a buffer (lines without their newline).
pub fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    body.strip_suffix(b"\n")
        .unwrap_or(body)
        .split(|b| *b == b'\n')
}

/// Decodes `rows` JSON lines into one batch; `strict` fails on fields the schema lacks instead
/// of leaving them out.
fn decode(
    schema: &SchemaRef,
    body: &[u8],
    rows: usize,
    strict: bool,
) -> std::result::Result<RecordBatch, String> {
    let rows = rows.max(1);
    let mut decoder = ReaderBuilder::new(schema.clone())
        .with_batch_size(rows)
        .with_strict_mode(strict)
        .build_decoder()
        .map_err(|e| e.to_string())?;
    let mut rest = body;
    while !rest.is_empty() {
        let read = decoder.decode(rest).map_err(|e| e.to_string())?;
        if read == 0 {
            break;
        }
        rest = &rest[read..];
    }
    // The decoder stops taking input once it holds `rows` records: anything left means a line
    // held more than one, which would otherwise be dropped without a word.
    if !rest.trim_ascii().is_empty() {
        return Err("a line holds more than one JSON record".to_owned());
    }
    match decoder.flush().map_err(|e| e.to_string())? {
        Some(batch) => Ok(batch),
        None => Ok(RecordBatch::new_empty(schema.clone())),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use pipectl_spec::types::ParquetCompression;

    use super::*;

    #[test]
    fn chunks_hold_whole_lines_and_count_them_as_lines_does() {
        for body in [
            &b"a\nb\nc\nd\ne\n"[..],
            b"a\nb\nc\nd\ne",
            b"a",
            b"\n\n\n",
            b"",
        ] {
            let chunks: Vec<(&[u8], usize)> = line_chunks(body, 2).collect();
            let joined: Vec<u8> = chunks.iter().flat_map(|(c, _)| c.to_vec()).collect();
            assert_eq!(joined, body);
            let counted: usize = chunks.iter().map(|(_, n)| n).sum();
            let expected = if body.is_empty() {
                0
            } else {
                lines(body).count()
            };
            assert_eq!(counted, expected);
            assert!(
                chunks
                    .iter()
                    .all(|(c, n)| *n <= 2 && lines(c).count() == *n)
            );
        }
    }

    /// An encoder of one declared `int64` column `n`.
    fn int_encoder() -> ParquetEncoder {
        encoder_of("n", "int64")
    }

    /// An encoder of one declared column `name` of type `data_type`.
    fn encoder_of(name: &str, data_type: &str) -> ParquetEncoder {
        let columns = [ColumnDecl {
            name: name.into(),
            data_type: data_type.into(),
        }];
        let format = ParquetFormat {
            compression: ParquetCompression::Snappy,
            row_group_rows: 122_880,
        };
        ParquetEncoder::new("out", &format, &columns).unwrap()
    }

    /// The `n` values of an encoded object, read back.
    fn values(object: Vec<u8>) -> Vec<i64> {
        ParquetRecordBatchReaderBuilder::try_new(Bytes::from(object))
            .unwrap()
            .build()
            .unwrap()
            .flat_map(|b| {
                let b = b.unwrap();
                let n = b
                    .column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>();
                n.unwrap().values().to_vec()
            })
            .collect()
    }

    #[test]
    fn a_line_with_two_records_is_rejected_not_cut_short() {
        let encoded = int_encoder()
            .encode(b"{\"n\": 1}\n{\"n\": 2} {\"n\": 3}\n{\"n\": 4}\n")
            .unwrap();
        assert_eq!(encoded.rejected.len(), 1, "{:?}", encoded.rejected);
        assert_eq!(encoded.rejected[0].0, 1);
        assert_eq!(values(encoded.object.unwrap()), [1, 4]);
    }

    #[test]
    fn a_bad_record_in_a_later_chunk_is_rejected_with_its_place_in_the_buffer() {
        let bad = CHUNK_RECORDS + 7;
        let body: String = (0..CHUNK_RECORDS * 2 + 5)
            .map(|i| {
                if i == bad {
                    "{\"n\": \"not a number\"}\n".to_owned()
                } else {
                    format!("{{\"n\": {i}}}\n")
                }
            })
            .collect();
        let encoded = int_encoder().encode(body.as_bytes()).unwrap();
        assert_eq!(encoded.rejected.len(), 1);
        assert_eq!(encoded.rejected[0].0, bad);
        let expected: Vec<i64> = (0..(CHUNK_RECORDS * 2 + 5) as i64)
            .filter(|i| *i != bad as i64)
            .collect();
        assert_eq!(values(encoded.object.unwrap()), expected);
    }

    #[test]
    fn fields_absent_from_the_first_buffer_are_counted_not_dropped_silently() {
        let format = ParquetFormat {
            compression: ParquetCompression::Snappy,
            row_group_rows: 122_880,
        };
        let mut encoder = ParquetEncoder::new("out", &format, &[]).unwrap();
        let first = encoder.encode(b"{\"n\": 1}\n").unwrap();
        assert!(first.new_left_out.is_empty());
        let second = encoder
            .encode(b"{\"n\": 2, \"late\": \"x\"}\n{\"n\": 3, \"late\": \"y\"}\n{\"n\": 4}\n")
            .unwrap();
        assert_eq!(second.new_left_out, ["late"]);
        assert!(second.rejected.is_empty());
        assert_eq!(values(second.object.unwrap()), [2, 3, 4]);
        let third = encoder.encode(b"{\"n\": 5, \"late\": 1}\n").unwrap();
        assert!(third.new_left_out.is_empty(), "reported once");
        assert_eq!(encoder.left_out().get("late"), Some(&3));
    }

    #[test]
    fn declared_timestamp_columns_take_iso_times_with_any_offset() {
        let mut encoder = encoder_of("ts", "timestamptz");
        let encoded = encoder
            .encode(b"{\"ts\": \"2026-11-25T18:07:09Z\"}\n{\"ts\": \"2026-11-25T19:07:09.5+01:00\"}\n{\"ts\": \"yesterday\"}\n")
            .unwrap();
        assert_eq!(encoded.rejected.len(), 1, "{:?}", encoded.rejected);
        assert_eq!(encoded.rejected[0].0, 2);
        let batch = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(encoded.object.unwrap()))
            .unwrap()
            .build()
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let ts = batch
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::TimestampMicrosecondArray>()
            .unwrap();
        let expected = chrono::DateTime::parse_from_rfc3339("2026-11-25T18:07:09Z")
            .unwrap()
            .timestamp_micros();
        assert_eq!(ts.values().to_vec(), [expected, expected + 500_000]);
    }
}
