//! Parquet output of a firehose sink: a buffer's JSON records decoded into Arrow with the
//! declared schema (or the one inferred from the first buffer) and written as one Parquet
//! object. Records that do not fit go to the error output as `format-conversion-failed`.

use std::io::Cursor;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::json::ReaderBuilder;
use arrow::json::reader::infer_json_schema_from_seekable;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;

use pipectl_engine::arrow_eval::arrow_type;
use pipectl_engine::sink::writer::parquet_properties;
use pipectl_engine::{Error, Result};
use pipectl_spec::lang::datatype::parse_column_type;
use pipectl_spec::types::{ColumnDecl, ParquetFormat};

/// Converts buffers of JSON lines into Parquet objects.
pub struct ParquetEncoder {
    schema: Option<SchemaRef>,
    format: ParquetFormat,
}

/// One buffer converted: the Parquet bytes, and the lines that did not fit with the reason.
pub struct Encoded {
    /// The Parquet object, `None` when no record fit.
    pub object: Option<Vec<u8>>,
    /// Records that could not be converted: their index in the buffer and why.
    pub rejected: Vec<(usize, String)>,
}

impl ParquetEncoder {
    /// An encoder with the declared columns (none: infer from the first buffer).
    pub fn new(sink: &str, format: &ParquetFormat, columns: &[ColumnDecl]) -> Result<Self> {
        let schema = if columns.is_empty() {
            None
        } else {
            let mut fields = Vec::new();
            for c in columns {
                let t = parse_column_type(&c.data_type).map_err(|e| {
                    Error::user(format!("sink `{sink}`: column `{}`: {}", c.name, e.message))
                })?;
                fields.push(Field::new(&c.name, arrow_type(&t), true));
            }
            Some(Arc::new(Schema::new(fields)))
        };
        Ok(ParquetEncoder {
            schema,
            format: format.clone(),
        })
    }

    /// Converts one buffer of newline-terminated JSON records.
    pub fn encode(&mut self, body: &[u8]) -> Result<Encoded> {
        let schema = match &self.schema {
            Some(s) => s.clone(),
            None => {
                // The first buffer fixes the schema for the rest of the run.
                let (inferred, _) = infer_json_schema_from_seekable(Cursor::new(body), None)
                    .map_err(|e| Error::user(format!("cannot infer a Parquet schema: {e}")))?;
                let schema = Arc::new(inferred);
                self.schema = Some(schema.clone());
                schema
            }
        };
        let (batch, rejected) = match decode(&schema, body) {
            Ok(batch) => (batch, Vec::new()),
            Err(_) => {
                // Find the records that do not fit, one by one, and convert the rest.
                let mut good = Vec::with_capacity(body.len());
                let mut rejected = Vec::new();
                for (i, line) in lines(body).enumerate() {
                    match decode(&schema, line) {
                        Ok(_) => {
                            good.extend_from_slice(line);
                            good.push(b'\n');
                        }
                        Err(e) => rejected.push((i, e)),
                    }
                }
                (decode(&schema, &good).map_err(Error::user)?, rejected)
            }
        };
        if batch.num_rows() == 0 {
            return Ok(Encoded {
                object: None,
                rejected,
            });
        }
        let props = parquet_properties(&self.format, &batch)?;
        let mut out = Vec::with_capacity(body.len() / 4);
        let mut writer = ArrowWriter::try_new(&mut out, schema, Some(props))
            .map_err(|e| Error::internal(format!("parquet: {e}")))?;
        writer
            .write(&batch)
            .and_then(|_| writer.close().map(|_| ()))
            .map_err(|e| Error::internal(format!("parquet: {e}")))?;
        Ok(Encoded {
            object: Some(out),
            rejected,
        })
    }
}

/// The records of a buffer (lines without their newline).
pub fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    body.strip_suffix(b"\n")
        .unwrap_or(body)
        .split(|b| *b == b'\n')
}

fn decode(schema: &SchemaRef, body: &[u8]) -> std::result::Result<RecordBatch, String> {
    let rows = lines(body).count().max(1);
    let mut decoder = ReaderBuilder::new(schema.clone())
        .with_batch_size(rows)
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
    match decoder.flush().map_err(|e| e.to_string())? {
        Some(batch) => Ok(batch),
        None => Ok(RecordBatch::new_empty(schema.clone())),
    }
}
