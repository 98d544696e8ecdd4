//! File writers: Arrow batches in, one object out, streamed in parts so memory stays bounded.

use std::io::Write;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
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
use pipectl_spec::types::{Format, ParquetCompression, TextCompression};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};

/// Encoded text is handed to the store in parts of about this size.
const PART_BYTES: usize = 8 * 1024 * 1024;

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
        Format::Parquet(_) => "parquet",
    }
}

/// Opens a writer for `format` at `path`.
pub fn open(
    store: Arc<dyn ObjectStore>,
    path: Path,
    format: &Format,
    schema: arrow::datatypes::SchemaRef,
) -> Result<Box<dyn FileWriter>> {
    let write_error = |e: parquet::errors::ParquetError| {
        Error::external(format!("cannot start writing {path}"), e)
    };
    Ok(match format {
        Format::Parquet(p) => {
            let codec = match p.compression {
                ParquetCompression::None => ParquetCodec::UNCOMPRESSED,
                ParquetCompression::Snappy => ParquetCodec::SNAPPY,
                ParquetCompression::Zstd => {
                    ParquetCodec::ZSTD(ZstdLevel::try_new(3).map_err(write_error)?)
                }
                ParquetCompression::Gzip => ParquetCodec::GZIP(GzipLevel::default()),
            };
            let props = WriterProperties::builder()
                .set_compression(codec)
                .set_max_row_group_row_count(Some(p.row_group_rows))
                .build();
            let object = BufWriter::with_capacity(store, path.clone(), PART_BYTES);
            let writer =
                AsyncArrowWriter::try_new(object, schema, Some(props)).map_err(write_error)?;
            Box::new(ParquetFile { writer, path })
        }
        Format::Csv(c) => Box::new(TextFile::new(
            store,
            path,
            c.compression,
            TextEncoding::Csv {
                header: c.header,
                delimiter: c.delimiter.as_bytes().first().copied().unwrap_or(b','),
                wrote_header: false,
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
        header: bool,
        delimiter: u8,
        wrote_header: bool,
    },
    Jsonl,
}

/// Where encoded text goes before it is uploaded: plain, or through gzip.
enum Sink {
    Plain(Vec<u8>),
    Gzip(Box<GzEncoder<Vec<u8>>>),
}

impl Sink {
    fn buffer(&mut self) -> &mut dyn Write {
        match self {
            Sink::Plain(v) => v,
            Sink::Gzip(g) => g,
        }
    }

    /// Takes the bytes ready for upload.
    fn take_ready(&mut self) -> Vec<u8> {
        match self {
            Sink::Plain(v) => std::mem::take(v),
            Sink::Gzip(g) => std::mem::take(g.get_mut()),
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
            TextCompression::None => Sink::Plain(Vec::new()),
            TextCompression::Gzip => {
                Sink::Gzip(Box::new(GzEncoder::new(Vec::new(), Compression::default())))
            }
        };
        TextFile {
            upload: BufWriter::with_capacity(store, path.clone(), PART_BYTES),
            sink,
            encoding,
            path,
            bytes: 0,
        }
    }

    fn encode(&mut self, batch: &RecordBatch) -> Result<()> {
        let out = self.sink.buffer();
        match &mut self.encoding {
            TextEncoding::Csv {
                header,
                delimiter,
                wrote_header,
            } => {
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(*header && !*wrote_header)
                    .with_delimiter(*delimiter)
                    .build(out);
                writer.write(batch)?;
                *wrote_header = true;
            }
            TextEncoding::Jsonl => {
                let mut writer = arrow::json::LineDelimitedWriter::new(out);
                writer.write(batch)?;
                writer.finish()?;
            }
        }
        Ok(())
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
