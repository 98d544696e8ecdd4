//! File writers: Arrow batches in, one object out, streamed in parts so memory stays bounded.

use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, FieldRef, Float16Type, Float32Type, Float64Type};
use arrow::error::ArrowError;
use arrow::json::writer::{Encoder, EncoderFactory, EncoderOptions, NullableEncoder, make_encoder};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use futures::future::BoxFuture;
use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression as ParquetCodec, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use pipectl_spec::types::{Format, ParquetCompression, ParquetFormat, TextCompression};
use tokio::io::AsyncWriteExt;

use super::csv::CsvEncoder;
use crate::error::{Error, Result};

/// Encoded text is handed to the store in parts of about this size.
const PART_BYTES: usize = 8 * 1024 * 1024;
/// Room a text part is encoded into: a part and one more batch, so it is allocated once instead
/// of regrown (and copied) a dozen times per part.
const TEXT_BUFFER_BYTES: usize = PART_BYTES + 2 * 1024 * 1024;

/// Writes batches of one schema into one object.
pub trait FileWriter: Send {
    /// Appends a batch.
    fn write<'a>(&'a mut self, batch: &'a RecordBatch) -> BoxFuture<'a, Result<()>>;
    /// Completes the object; returns its size in bytes.
    fn finish(self: Box<Self>) -> BoxFuture<'static, Result<u64>>;
}

/// The file name extension for a format (with `.gz` when compressed).
pub fn extension(format: &Format) -> &'static str {
    match format {
        Format::Csv(c) if c.compression == TextCompression::Gzip => "csv.gz",
        Format::Csv(_) => "csv",
        Format::Jsonl(j) if j.compression == TextCompression::Gzip => "jsonl.gz",
        Format::Jsonl(_) => "jsonl",
        Format::Parquet(_) | Format::Delta(_) => "parquet",
    }
}

/// Opens a writer for `format` at `path`, for batches of `first`'s schema. `first` is the
/// batch the file starts with; a Parquet file picks each column's encoding from it.
pub fn open(
    store: Arc<dyn ObjectStore>,
    path: Path,
    format: &Format,
    first: &RecordBatch,
) -> Result<Box<dyn FileWriter>> {
    let write_error = |e: parquet::errors::ParquetError| {
        Error::external(format!("cannot start writing {path}"), e)
    };
    Ok(match format {
        Format::Delta(_) => {
            return Err(Error::internal(format!(
                "{path}: Delta tables are not written as single files"
            )));
        }
        Format::Parquet(p) => {
            let props = parquet_properties(p, first)?;
            let object = BufWriter::with_capacity(store, path.clone(), PART_BYTES);
            let writer = AsyncArrowWriter::try_new(object, first.schema(), Some(props))
                .map_err(write_error)?;
            Box::new(ParquetFile { writer, path })
        }
        Format::Csv(c) => Box::new(TextFile::new(
            store,
            path,
            c.compression,
            TextEncoding::Csv {
                encoder: Box::new(CsvEncoder::new(
                    c.delimiter.as_bytes().first().copied().unwrap_or(b','),
                    &c.null_value,
                )),
                header: c.header,
            },
        )),
        Format::Jsonl(j) => Box::new(TextFile::new(
            store,
            path,
            j.compression,
            TextEncoding::Jsonl,
        )),
    })
}

/// Rows of a file's first batch looked at to choose each Parquet column's encoding.
const SAMPLE_ROWS: usize = 4096;
/// Fewer non-null sampled values than this say too little; the column keeps the default.
const SAMPLE_MIN_VALUES: usize = 64;

/// Writer properties for `format`, with dictionary encoding turned off for the columns of
/// `sample` whose values are mostly distinct (keys, timestamps, free text).
///
/// Why: a dictionary only pays when values repeat. For a column of distinct values the writer
/// would hash every value into a dictionary as large as the data (a 122,880-row group of
/// 8-byte keys stays just under the 1 MiB limit, so it never falls back to plain), which took a
/// quarter of a database full load's CPU time and made the file no smaller.
pub fn parquet_properties(
    format: &ParquetFormat,
    sample: &RecordBatch,
) -> Result<WriterProperties> {
    let codec = match format.compression {
        ParquetCompression::None => ParquetCodec::UNCOMPRESSED,
        ParquetCompression::Snappy => ParquetCodec::SNAPPY,
        ParquetCompression::Zstd => ParquetCodec::ZSTD(
            ZstdLevel::try_new(3).map_err(|e| Error::internal(format!("zstd: {e}")))?,
        ),
        ParquetCompression::Gzip => ParquetCodec::GZIP(GzipLevel::default()),
    };
    let mut builder = WriterProperties::builder()
        .set_compression(codec)
        .set_max_row_group_row_count(Some(format.row_group_rows));
    for column in mostly_distinct_columns(sample) {
        builder = builder.set_column_dictionary_enabled(ColumnPath::new(vec![column]), false);
    }
    Ok(builder.build())
}

/// Top-level, non-nested columns of `sample` whose first rows are more than half distinct.
fn mostly_distinct_columns(sample: &RecordBatch) -> Vec<String> {
    let rows = sample.num_rows().min(SAMPLE_ROWS);
    let schema = sample.schema();
    schema
        .fields()
        .iter()
        .zip(sample.columns())
        .filter_map(|(field, column)| {
            let data_type = field.data_type();
            if data_type.is_nested() || *data_type == DataType::Boolean {
                return None;
            }
            let column = column.slice(0, rows);
            let values = rows - column.null_count();
            if values < SAMPLE_MIN_VALUES {
                return None;
            }
            // The row format gives every type comparable bytes, so one distinct count serves all.
            let converter = RowConverter::new(vec![SortField::new(data_type.clone())]).ok()?;
            let converted = converter.convert_columns(&[column]).ok()?;
            let distinct: HashSet<&[u8]> = converted.iter().map(|row| row.data()).collect();
            (distinct.len() * 2 > values).then(|| field.name().clone())
        })
        .collect()
}

struct ParquetFile {
    writer: AsyncArrowWriter<BufWriter>,
    path: Path,
}

impl FileWriter for ParquetFile {
    fn write<'a>(&'a mut self, batch: &'a RecordBatch) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.writer
                .write(batch)
                .await
                .map_err(|e| Error::external(format!("writing {} failed", self.path), e))
        })
    }

    fn finish(self: Box<Self>) -> BoxFuture<'static, Result<u64>> {
        Box::pin(async move {
            let ParquetFile { mut writer, path } = *self;
            writer
                .finish()
                .await
                .map_err(|e| Error::external(format!("finishing {path} failed"), e))?;
            Ok(writer.bytes_written() as u64)
        })
    }
}

enum TextEncoding {
    Csv {
        encoder: Box<CsvEncoder>,
        /// A header line is still to be written.
        header: bool,
    },
    Jsonl,
}

impl TextEncoding {
    /// Appends `batch`'s lines to `out`.
    fn encode(&mut self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<()> {
        match self {
            TextEncoding::Csv { encoder, header } => {
                if std::mem::take(header) {
                    encoder.write_header(batch, out);
                }
                encoder.write_rows(batch, out)?;
            }
            TextEncoding::Jsonl => {
                let mut writer = arrow::json::WriterBuilder::new()
                    .with_encoder_factory(Arc::new(NonFiniteAsText))
                    .build::<_, arrow::json::writer::LineDelimited>(out);
                writer.write(batch)?;
                writer.finish()?;
            }
        }
        Ok(())
    }
}

/// JSON has no NaN or infinity, and arrow writes them as `null`, which silently turns a value
/// into a missing one. They are written as the strings `"NaN"`, `"Infinity"` and `"-Infinity"`
/// instead, the spelling Spark, Jackson and pandas read back as floats.
#[derive(Debug)]
struct NonFiniteAsText;

/// arrow's own encoders, used for every finite value.
static PLAIN_JSON: std::sync::LazyLock<EncoderOptions> =
    std::sync::LazyLock::new(EncoderOptions::default);

impl EncoderFactory for NonFiniteAsText {
    fn make_default_encoder<'a>(
        &self,
        field: &'a FieldRef,
        array: &'a dyn Array,
        _options: &'a EncoderOptions,
    ) -> std::result::Result<Option<NullableEncoder<'a>>, ArrowError> {
        let floats: Box<dyn Fn(usize) -> f64 + 'a> = match array.data_type() {
            DataType::Float16 => {
                let a = array.as_primitive::<Float16Type>();
                Box::new(move |i| a.value(i).to_f64())
            }
            DataType::Float32 => {
                let a = array.as_primitive::<Float32Type>();
                Box::new(move |i| f64::from(a.value(i)))
            }
            DataType::Float64 => {
                let a = array.as_primitive::<Float64Type>();
                Box::new(move |i| a.value(i))
            }
            _ => return Ok(None),
        };
        let plain = make_encoder(field, array, &PLAIN_JSON)?;
        let nulls = array.logical_nulls();
        Ok(Some(NullableEncoder::new(
            Box::new(FloatText { floats, plain }),
            nulls,
        )))
    }
}

/// Encodes finite floats as arrow does and the others as text.
struct FloatText<'a> {
    floats: Box<dyn Fn(usize) -> f64 + 'a>,
    plain: NullableEncoder<'a>,
}

impl Encoder for FloatText<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let value = (self.floats)(idx);
        if value.is_nan() {
            out.extend_from_slice(b"\"NaN\"");
        } else if value == f64::INFINITY {
            out.extend_from_slice(b"\"Infinity\"");
        } else if value == f64::NEG_INFINITY {
            out.extend_from_slice(b"\"-Infinity\"");
        } else {
            self.plain.encode(idx, out);
        }
    }
}

/// Where encoded text goes before it is uploaded: plain, or through gzip.
enum Sink {
    Plain(Vec<u8>),
    Gzip(Box<GzEncoder<Vec<u8>>>),
}

impl Sink {
    /// Takes the bytes ready for upload.
    fn take_ready(&mut self) -> Vec<u8> {
        let fresh = Vec::with_capacity(TEXT_BUFFER_BYTES);
        match self {
            Sink::Plain(v) => std::mem::replace(v, fresh),
            Sink::Gzip(g) => std::mem::replace(g.get_mut(), fresh),
        }
    }

    fn ready_len(&self) -> usize {
        match self {
            Sink::Plain(v) => v.len(),
            Sink::Gzip(g) => g.get_ref().len(),
        }
    }
}

struct TextFile {
    upload: BufWriter,
    sink: Sink,
    /// A batch's text on its way into the gzip encoder.
    scratch: Vec<u8>,
    encoding: TextEncoding,
    path: Path,
    bytes: u64,
}

impl TextFile {
    fn new(
        store: Arc<dyn ObjectStore>,
        path: Path,
        compression: TextCompression,
        encoding: TextEncoding,
    ) -> Self {
        let sink = match compression {
            TextCompression::None => Sink::Plain(Vec::with_capacity(TEXT_BUFFER_BYTES)),
            TextCompression::Gzip => Sink::Gzip(Box::new(GzEncoder::new(
                Vec::with_capacity(TEXT_BUFFER_BYTES),
                Compression::default(),
            ))),
        };
        TextFile {
            upload: BufWriter::with_capacity(store, path.clone(), PART_BYTES),
            sink,
            scratch: Vec::new(),
            encoding,
            path,
            bytes: 0,
        }
    }

    fn encode(&mut self, batch: &RecordBatch) -> Result<()> {
        match &mut self.sink {
            Sink::Plain(out) => self.encoding.encode(batch, out),
            Sink::Gzip(gzip) => {
                self.scratch.clear();
                self.encoding.encode(batch, &mut self.scratch)?;
                gzip.write_all(&self.scratch)
                    .map_err(|e| Error::internal("gzip").with_source(e))
            }
        }
    }

    async fn upload(&mut self, bytes: Vec<u8>) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.bytes += bytes.len() as u64;
        self.upload
            .put(Bytes::from(bytes))
            .await
            .map_err(|e| Error::external(format!("writing {} failed", self.path), e))
    }
}

impl FileWriter for TextFile {
    fn write<'a>(&'a mut self, batch: &'a RecordBatch) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.encode(batch)?;
            if self.sink.ready_len() >= PART_BYTES {
                let ready = self.sink.take_ready();
                self.upload(ready).await?;
            }
            Ok(())
        })
    }

    fn finish(self: Box<Self>) -> BoxFuture<'static, Result<u64>> {
        Box::pin(async move {
            let mut this = *self;
            let rest = match std::mem::replace(&mut this.sink, Sink::Plain(Vec::new())) {
                Sink::Plain(v) => v,
                Sink::Gzip(g) => g
                    .finish()
                    .map_err(|e| Error::internal("gzip").with_source(e))?,
            };
            this.upload(rest).await?;
            this.upload
                .shutdown()
                .await
                .map_err(|e| Error::external(format!("completing {} failed", this.path), e))?;
            Ok(this.bytes)
        })
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use pipectl_spec::types::ParquetCompression;

    use super::*;

    fn dictionary(props: &WriterProperties, column: &str) -> bool {
        props.dictionary_enabled(&ColumnPath::new(vec![column.to_owned()]))
    }

    #[test]
    fn json_lines_keep_nan_and_infinities_as_text() {
        use arrow::array::{Float32Array, Float64Array};
        let schema = Schema::new(vec![
            Field::new("f8", DataType::Float64, true),
            Field::new("f4", DataType::Float32, true),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Float64Array::from(vec![
                    Some(f64::NAN),
                    Some(f64::INFINITY),
                    Some(f64::NEG_INFINITY),
                    Some(0.1),
                    None,
                ])),
                Arc::new(Float32Array::from(vec![
                    Some(f32::NEG_INFINITY),
                    Some(1.5),
                    Some(f32::NAN),
                    Some(f32::INFINITY),
                    Some(2.0),
                ])),
            ],
        )
        .unwrap();
        let mut out = Vec::new();
        TextEncoding::Jsonl.encode(&batch, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"f8\":\"NaN\",\"f4\":\"-Infinity\"}\n{\"f8\":\"Infinity\",\"f4\":1.5}\n{\"f8\":\"-Infinity\",\"f4\":\"NaN\"}\n{\"f8\":0.1,\"f4\":\"Infinity\"}\n{\"f4\":2.0}\n"
        );
    }

    #[test]
    fn mostly_distinct_columns_are_written_without_a_dictionary() {
        let rows = 5000;
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("id", Arc::new(Int64Array::from_iter_values(0..rows))),
            (
                "state",
                Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|i| ["CA", "NY", "TX"][i as usize % 3]),
                )),
            ),
            (
                "note",
                Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|i| format!("note {i}")),
                )),
            ),
            // Mostly NULL: too few values to judge, so the default stays.
            (
                "rare",
                Arc::new(Int64Array::from_iter(
                    (0..rows).map(|i| (i % 1000 == 0).then_some(i)),
                )),
            ),
        ];
        let schema = Schema::new(
            columns
                .iter()
                .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        );
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            columns.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap();
        let format = ParquetFormat {
            compression: ParquetCompression::Snappy,
            row_group_rows: 1000,
        };
        let props = parquet_properties(&format, &batch).unwrap();
        assert!(!dictionary(&props, "id"));
        assert!(dictionary(&props, "state"));
        assert!(!dictionary(&props, "note"));
        assert!(dictionary(&props, "rare"));
        assert_eq!(props.max_row_group_row_count(), Some(1000));
        // An empty first batch (an empty table) keeps every default.
        let empty = parquet_properties(&format, &batch.slice(0, 0)).unwrap();
        assert!(dictionary(&empty, "id"));
    }
}
