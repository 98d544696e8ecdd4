//! The files source: reads the objects under a prefix (a landing zone) and remembers which it
//! has read, as Glue's S3 job bookmarks do, so each run reads only new files.
//!
//! The bookmark keeps the newest modification time read (the high-water mark) and the list of
//! files read within `look_back_secs` before it. A file is new when it was modified after the
//! mark, or within the window and is not on the list (a late listing, or a file rewritten with
//! another size). The bookmark is committed with the run, so a failed run reads the same files
//! again.
//!
//! Each file is read whole before any of its rows are sent: a malformed file (a row that does
//! not parse, a broken Parquet footer) is reported by key and row and skipped, and the other
//! files are read. With `error_table`, one record per malformed file is sent as that table.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, new_null_array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use futures::future::BoxFuture;
use object_store::path::Path as StorePath;
use object_store::{ObjectMeta, ObjectStoreExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use pipectl_spec::types::{FilesFormat, FilesSource as FilesSpec};
use pipectl_state::Bookmark;
use serde_json::{Value, json};

use crate::arrow_eval::declared_schema;
use crate::context::{Output, StepContext};
use crate::crawl::infer::{FileKind, FileSchema, infer_file};
use crate::crawl::types::{HiveType, merge_fields};
use crate::crawl::{DataObject, list_data_objects};
use crate::error::{Error, Result};
use crate::table::{Message, TableId};

use super::connector::{PlanInput, SourceConnector, SourcePlan};
use super::delimited;
use crate::plan::{PlanRead, connections_display};

/// The `files` source's connector, bound to its spec.
pub struct Connector<'a>(pub &'a FilesSpec);

impl SourceConnector for Connector<'_> {
    fn batch(&self, name: &str) -> Result<Box<dyn super::Source>> {
        Ok(Box::new(FilesSource::new(name, self.0.clone())))
    }

    fn plan<'a>(&'a self, input: &'a PlanInput<'a>) -> BoxFuture<'a, SourcePlan> {
        let f = self.0;
        let plan = SourcePlan {
            reads: vec![PlanRead {
                table: f
                    .table
                    .clone()
                    .unwrap_or_else(|| "(one per folder)".to_owned()),
                query: format!(
                    "{:?} files under {}/{} not read before (look-back {} s)",
                    f.format,
                    connections_display(input.pipeline, &f.connection),
                    f.prefix,
                    f.look_back_secs
                )
                .to_lowercase(),
                columns: Vec::new(),
                params: Vec::new(),
            }],
            notes: vec![
                "the bookmark of files read commits with the run; a malformed file is skipped and reported".to_owned(),
            ],
            ..SourcePlan::default()
        };
        Box::pin(std::future::ready(plan))
    }
}

/// Bookmark key names (the values are the mark and the list).
const KEYS: [&str; 2] = ["modified", "files"];

/// The files source step.
pub struct FilesSource {
    name: String,
    spec: FilesSpec,
}

impl FilesSource {
    /// Builds the step; nothing is read until it runs.
    pub fn new(name: &str, spec: FilesSpec) -> Self {
        FilesSource {
            name: name.to_owned(),
            spec,
        }
    }
}

/// One listed file, as the bookmark remembers it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    key: String,
    size: u64,
    modified_micros: i64,
}

/// What the bookmark says was read.
#[derive(Debug, Default)]
struct Position {
    mark: Option<DateTime<Utc>>,
    seen: BTreeSet<Seen>,
}

impl Position {
    fn from_bookmark(b: &Bookmark) -> Position {
        let mark = b
            .values
            .first()
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc));
        let seen = b
            .values
            .get(1)
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|e| {
                        Some(Seen {
                            key: e.get(0)?.as_str()?.to_owned(),
                            size: e.get(1)?.as_u64()?,
                            modified_micros: e.get(2)?.as_i64()?,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Position { mark, seen }
    }

    /// Whether a listed file still needs reading.
    fn is_new(&self, file: &Seen, look_back: TimeDelta) -> bool {
        let Some(mark) = self.mark else { return true };
        let mark_micros = mark.timestamp_micros();
        if file.modified_micros > mark_micros {
            return true;
        }
        let window_start = (mark - look_back).timestamp_micros();
        file.modified_micros > window_start && !self.seen.contains(file)
    }
}

fn seen_of(meta: &ObjectMeta, key: String) -> Seen {
    Seen {
        key,
        size: meta.size,
        modified_micros: meta.last_modified.timestamp_micros(),
    }
}

/// A file to read: its store path, key relative to the prefix, table and size.
struct Pending {
    path: StorePath,
    key: String,
    table: String,
    size: u64,
}

impl super::Source for FilesSource {
    fn run(self: Box<Self>, ctx: StepContext, out: Output) -> super::Running {
        Box::pin(async move {
            let FilesSource { name, spec } = *self;
            let run = ctx.run.clone();
            let handle = run.connections.object_store(&spec.connection)?;
            let prefix: Vec<String> = spec
                .prefix
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            let listed = list_data_objects(
                handle.store.as_ref(),
                &handle.path(&prefix.join("/")),
                &spec.include,
                &spec.exclude,
            )
            .await
            .map_err(|e| {
                Error::external(format!("cannot list {}/{}", handle.display, spec.prefix), e)
            })?;
            let stream = format!("files:{name}");
            let position = match run.backfill {
                Some(_) => Position::default(),
                None => run
                    .state
                    .bookmark(&run.pipeline, &stream)
                    .map_err(|e| Error::user(e.to_string()))?
                    .map(|b| Position::from_bookmark(&b))
                    .unwrap_or_default(),
            };
            let look_back = TimeDelta::seconds(spec.look_back_secs as i64);
            let default_table = prefix.last().cloned().unwrap_or_else(|| name.clone());
            let mut all: Vec<Seen> = Vec::new();
            let mut pending: Vec<Pending> = Vec::new();
            for DataObject {
                relative: parts,
                key,
                meta,
            } in &listed
            {
                let seen = seen_of(meta, key.clone());
                let table = match (&spec.table, parts.len()) {
                    (Some(t), _) => t.clone(),
                    (None, 1) => default_table.clone(),
                    (None, _) => parts[0].clone(),
                };
                let backfilled = run.backfill.as_ref().is_none_or(|b| {
                    b.reads(&TableId {
                        source: name.clone(),
                        schema: name.clone(),
                        name: table.clone(),
                    })
                });
                if backfilled && position.is_new(&seen, look_back) {
                    pending.push(Pending {
                        path: meta.location.clone(),
                        key: key.clone(),
                        table,
                        size: meta.size,
                    });
                }
                all.push(seen);
            }
            tracing::info!(source = %name, listed = all.len(), new = pending.len(), "files to read");

            // Pass 1: each new file's schema; a table's columns are the union over its files.
            let mut schemas: BTreeMap<String, FileSchema> = BTreeMap::new();
            let mut tables: BTreeMap<String, Vec<(String, HiveType)>> = BTreeMap::new();
            let mut bad: Vec<(String, String, String)> = Vec::new();
            for p in &pending {
                match infer_file(&handle.store, &p.path, p.size, &spec.null_value).await {
                    Ok(mut s) => {
                        if let FileKind::Csv { delimiter, header } = &mut s.kind {
                            if let Some(d) =
                                spec.delimiter.as_deref().and_then(|d| d.bytes().next())
                            {
                                *delimiter = d;
                            }
                            if let Some(h) = spec.header {
                                *header = h;
                            }
                        }
                        if let Some(err) = format_mismatch(&spec.format, &s.kind) {
                            bad.push((p.table.clone(), p.key.clone(), err));
                            continue;
                        }
                        let cols = tables.entry(p.table.clone()).or_default();
                        *cols = merge_fields(cols, &s.columns);
                        schemas.insert(p.key.clone(), s);
                    }
                    Err(e) => bad.push((p.table.clone(), p.key.clone(), e)),
                }
            }
            // Each column's type: declared, else the catalog table's, else inferred.
            let declared = declared_schema(&format!("source `{name}`"), &spec.columns)?;
            let mut table_schemas: BTreeMap<&String, SchemaRef> = BTreeMap::new();
            for (table, columns) in &tables {
                let catalogued = catalog_types(&run, &name, &spec, table)?;
                let fields: Vec<Field> = columns
                    .iter()
                    .map(
                        |(n, t)| match declared.as_ref().and_then(|d| d.field_with_name(n).ok()) {
                            Some(f) => f.clone(),
                            None => Field::new(n, catalogued.get(n).unwrap_or(t).to_arrow(), true),
                        },
                    )
                    .collect();
                table_schemas.insert(table, Arc::new(Schema::new(fields)));
            }
            // Pass 2: read each file whole, cast to its table's columns, then send.
            let mut open_tables: BTreeSet<String> = BTreeSet::new();
            for p in &pending {
                let Some(file_schema) = schemas.get(&p.key) else {
                    continue;
                };
                let table_schema = &table_schemas[&p.table];
                let batches = match read_file(&handle, p, file_schema, table_schema, &spec)
                    .await
                    .and_then(|batches| {
                        batches
                            .into_iter()
                            .map(|b| conform(&b, table_schema))
                            .collect::<std::result::Result<Vec<_>, String>>()
                    }) {
                    Ok(b) => b,
                    Err(e) => {
                        bad.push((p.table.clone(), p.key.clone(), e));
                        continue;
                    }
                };
                let id = Arc::new(TableId {
                    source: name.clone(),
                    schema: name.clone(),
                    name: p.table.clone(),
                });
                open_tables.insert(p.table.clone());
                for b in batches {
                    out.send(Message::Batch(id.clone(), b)).await?;
                }
            }
            for t in &open_tables {
                out.send(Message::EndOfTable(Arc::new(TableId {
                    source: name.clone(),
                    schema: name.clone(),
                    name: t.clone(),
                })))
                .await?;
            }
            for (table, key, error) in &bad {
                tracing::warn!(source = %name, "skipped malformed file {key} (table {table}): {error}");
            }
            if let Some(error_table) = spec.error_table.as_ref().filter(|_| !bad.is_empty()) {
                let id = Arc::new(TableId {
                    source: name.clone(),
                    schema: name.clone(),
                    name: error_table.clone(),
                });
                out.send(Message::Batch(id.clone(), error_batch(&bad, &run.run_id)?))
                    .await?;
                out.send(Message::EndOfTable(id)).await?;
            }
            ctx.metrics
                .extra
                .fetch_add(bad.len() as u64, std::sync::atomic::Ordering::Relaxed);
            // Files within the window stay listed so a late listing is still told apart.
            let mark = listed
                .iter()
                .map(|m| m.meta.last_modified)
                .chain(position.mark)
                .max();
            let mut reached = Vec::new();
            if let (Some(mark), None) = (mark, &run.backfill) {
                let window_start = (mark - look_back).timestamp_micros();
                let mut keep: Vec<&Seen> = all
                    .iter()
                    .chain(position.seen.iter())
                    .filter(|s| s.modified_micros > window_start)
                    .collect();
                keep.sort();
                keep.dedup();
                reached.push(Bookmark {
                    pipeline: run.pipeline.clone(),
                    stream,
                    keys: KEYS.iter().map(|k| (*k).to_owned()).collect(),
                    key_types: Vec::new(),
                    values: vec![
                        json!(mark.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
                        Value::Array(
                            keep.iter()
                                .map(|s| json!([s.key, s.size, s.modified_micros]))
                                .collect(),
                        ),
                    ],
                    run_id: run.run_id.clone(),
                    updated_at: Utc::now(),
                });
            }
            Ok(reached)
        })
    }
}

/// The column types of `table` in the source's `types_from_catalog` database (none without
/// that setting). A table the catalog does not have is reported and read with inferred types.
fn catalog_types(
    run: &crate::context::RunContext,
    source: &str,
    spec: &FilesSpec,
    table: &str,
) -> Result<BTreeMap<String, HiveType>> {
    let Some(database) = &spec.types_from_catalog else {
        return Ok(BTreeMap::new());
    };
    let Some(entry) = run
        .state
        .table(database, table)
        .map_err(|e| Error::external("cannot read the catalog", e))?
    else {
        tracing::warn!(
            "source `{source}`: the catalog has no table {database}.{table} (types_from_catalog); its columns keep their inferred types"
        );
        return Ok(BTreeMap::new());
    };
    entry
        .columns
        .iter()
        .map(|c| {
            let t = HiveType::parse(&c.data_type).map_err(|e| {
                Error::internal(format!(
                    "catalog table {database}.{table}, column `{}`: {e}",
                    c.name
                ))
            })?;
            Ok((c.name.clone(), t))
        })
        .collect()
}

/// Why a file's detected format is not the one the spec asks for.
fn format_mismatch(wanted: &FilesFormat, found: &FileKind) -> Option<String> {
    let ok = matches!(
        (wanted, found),
        (FilesFormat::Auto, _)
            | (FilesFormat::Csv, FileKind::Csv { .. })
            | (FilesFormat::Jsonl, FileKind::Json)
            | (FilesFormat::Parquet, FileKind::Parquet)
    );
    (!ok).then(|| format!("is {} where the source reads {wanted:?}", found.name()).to_lowercase())
}

/// Reads a whole file into batches of its own columns (typed as its table's).
async fn read_file(
    handle: &crate::connect::StoreHandle,
    p: &Pending,
    file: &FileSchema,
    table: &SchemaRef,
    spec: &FilesSpec,
) -> std::result::Result<Vec<RecordBatch>, String> {
    let batch_rows = spec.batch_rows;
    let bytes = handle
        .store
        .get(&p.path)
        .await
        .map_err(|e| format!("cannot read: {e}"))?
        .bytes()
        .await
        .map_err(|e| format!("cannot read: {e}"))?;
    if file.kind == FileKind::Parquet {
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .map_err(|e| format!("not a readable Parquet file: {e}"))?
            .with_batch_size(batch_rows)
            .build()
            .map_err(|e| format!("not a readable Parquet file: {e}"))?;
        return reader
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| format!("not a readable Parquet file: {e}"));
    }
    let bytes = if file.gzip {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .map_err(|e| format!("not readable as gzip: {e}"))?;
        Bytes::from(out)
    } else {
        bytes
    };
    // The file's own columns, typed as the table has them.
    let typed: Vec<Field> = file
        .columns
        .iter()
        .map(|(n, _)| match table.field_with_name(n) {
            Ok(f) => f.clone(),
            Err(_) => Field::new(n, DataType::Utf8, true),
        })
        .collect();
    let schema = Arc::new(Schema::new(typed));
    match &file.kind {
        FileKind::Csv { delimiter, header } => delimited::read(
            &bytes,
            &schema,
            delimited::Layout {
                delimiter: *delimiter,
                header: *header,
                null_value: &spec.null_value,
            },
            batch_rows,
        ),
        _ => json_lines(&bytes, schema, batch_rows),
    }
}

/// Decodes a JSON-lines file into batches of `batch_rows`; errors name the file's row.
fn json_lines(
    bytes: &[u8],
    schema: SchemaRef,
    batch_rows: usize,
) -> std::result::Result<Vec<RecordBatch>, String> {
    let mut batches = Vec::new();
    let mut decoder = arrow::json::ReaderBuilder::new(schema)
        .with_batch_size(batch_rows)
        .build_decoder()
        .map_err(|e| e.to_string())?;
    // Line by line, so an error names its row. A last line without its newline gets one
    // (the decoder needs the end of a value to see it).
    let ends_with_newline = bytes.last().is_none_or(|b| *b == b'\n');
    let last_line;
    let mut lines: Vec<&[u8]> = bytes.split_inclusive(|b| *b == b'\n').collect();
    if !ends_with_newline && let Some(last) = lines.pop() {
        last_line = [last, b"\n"].concat();
        lines.push(&last_line);
    }
    for (n, line) in lines.into_iter().enumerate() {
        let row = |e: arrow::error::ArrowError| format!("row {}: {e}", n + 1);
        let mut rest = line;
        // Decoded straight from the file's bytes; a full batch is flushed mid-line, so
        // a line holding two records loses neither.
        while !rest.iter().all(u8::is_ascii_whitespace) {
            let read = decoder.decode(rest).map_err(row)?;
            rest = &rest[read..];
            if decoder.len() >= batch_rows {
                if let Some(b) = decoder.flush().map_err(row)? {
                    batches.push(b);
                }
            } else if read == 0 {
                break;
            }
        }
    }
    if let Some(b) = decoder.flush().map_err(|e| e.to_string())? {
        batches.push(b);
    }
    Ok(batches)
}

/// A batch with exactly the table's columns: by name, cast, missing ones null.
fn conform(batch: &RecordBatch, table: &SchemaRef) -> std::result::Result<RecordBatch, String> {
    let columns: Vec<ArrayRef> = table
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => cast(c, f.data_type()).map_err(|e| format!("column {}: {e}", f.name())),
            None => Ok(new_null_array(f.data_type(), batch.num_rows())),
        })
        .collect::<std::result::Result<_, _>>()?;
    RecordBatch::try_new(table.clone(), columns).map_err(|e| e.to_string())
}

/// One record per malformed file.
fn error_batch(bad: &[(String, String, String)], run_id: &str) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("table", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, false),
        Field::new("run_id", DataType::Utf8, false),
    ]));
    let col = |f: &dyn Fn(&(String, String, String)) -> String| -> ArrayRef {
        Arc::new(StringArray::from(bad.iter().map(f).collect::<Vec<_>>()))
    };
    Ok(RecordBatch::try_new(
        schema,
        vec![
            col(&|b| b.0.clone()),
            col(&|b| b.1.clone()),
            col(&|b| b.2.clone()),
            col(&|_| run_id.to_owned()),
        ],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(key: &str, size: u64, at: i64) -> Seen {
        Seen {
            key: key.to_owned(),
            size,
            modified_micros: at * 1_000_000,
        }
    }

    #[test]
    fn new_files_by_mark_and_window() {
        let mark = DateTime::from_timestamp(1_000, 0).unwrap();
        let position = Position {
            mark: Some(mark),
            seen: [seen("a", 1, 950), seen("b", 1, 1_000)].into(),
        };
        let window = TimeDelta::seconds(100);
        assert!(
            position.is_new(&seen("c", 1, 1_001), window),
            "after the mark"
        );
        assert!(!position.is_new(&seen("a", 1, 950), window), "read already");
        assert!(position.is_new(&seen("a", 2, 950), window), "rewritten");
        assert!(
            position.is_new(&seen("late", 1, 960), window),
            "late listing"
        );
        assert!(
            !position.is_new(&seen("old", 1, 800), window),
            "before the window"
        );
        assert!(Position::default().is_new(&seen("x", 1, 0), window));
    }

    #[test]
    fn json_lines_keep_every_record_across_batches_and_name_bad_rows() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        // Two records on one line, a blank line, and no newline at the end.
        let body = b"{\"n\": 1}\n{\"n\": 2} {\"n\": 3}\n\n{\"n\": 4}\n{\"n\": 5}";
        let batches = json_lines(body, schema.clone(), 2).unwrap();
        let values: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(values, [1, 2, 3, 4, 5]);
        assert!(batches.iter().all(|b| b.num_rows() <= 2));
        // Syntax errors name their row (type errors surface when the batch is built).
        let error = json_lines(b"{\"n\": 1}\n{\"n\" 2}\n", schema, 10).unwrap_err();
        assert!(error.starts_with("row 2: "), "{error}");
    }
}
