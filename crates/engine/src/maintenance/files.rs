//! Compaction of plain Parquet and JSON lines tables (not Delta): per partition folder, the
//! small files pipectl wrote are rewritten into fewer, and the swap is published through the
//! same commit step as a run (see [`crate::sink::commit`]).
//!
//! A compaction is recorded as a run of its pipeline (trigger `compact`):
//! 1. The run is begun (`Running`); the new files are written under its staging folder
//!    (`_pipectl/staging/<id>/`, which readers and crawlers skip).
//! 2. The intent is saved: the run becomes `Committing` with one [`PartitionSwap`] per
//!    partition (the staged folder, the files it adds, the small files it removes).
//! 3. The intent is applied ([`crate::sink::swap`]: on a local disk the staged folder and the
//!    partition folder are exchanged at once; on object stores the new files are moved in,
//!    then the small ones deleted; each idempotent), and the run is committed as `Succeeded`.
//!
//! Killed in step 1, the run is `Running`: the next run or compaction of the pipeline marks it
//! `Interrupted` and deletes its staging, so nothing changed. Killed in step 2 or 3, it is
//! `Committing`: the next run or compaction applies the intent again, finishing the swap. In
//! either case every row is in exactly one visible file afterwards.
//!
//! Only files pipectl wrote are touched: their folder matches the sink's key template and their
//! name is `part-<run id>-<sequence>.<extension>` (what the sink and this compaction write).

use std::collections::BTreeMap;

use chrono::Utc;
use object_store::path::Path as StorePath;
use object_store::{ObjectMeta, ObjectStoreExt, PutPayload};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::async_writer::AsyncArrowWriter;
use pipectl_spec::LoadedSpec;
use pipectl_spec::types::{Format, ObjectStoreSink, ParquetFormat, Sink, TextCompression};
use pipectl_state::{PartitionSwap, RunRecord, RunStatus, StateStore, StepRecord, new_run_id};

use super::Selection;
use crate::connect::{Connections, StoreHandle};
use crate::error::{Error, Result};
use crate::executor::state_call;
use crate::sink::{commit, staging_prefix, writer};

/// The trigger recorded for compactions of plain tables.
pub const TRIGGER: &str = "compact";

/// Bytes uploaded per part when a compacted file is written.
const UPLOAD_PART_BYTES: usize = 10 * 1024 * 1024;

/// What a compacted file holds: how its rows are rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// Parquet: the rows are read and written again with the same Arrow schema.
    Parquet,
    /// JSON lines: the files are concatenated byte for byte.
    Jsonl,
}

/// A plain (not Delta) table under an `object_store` sink, with the files pipectl wrote in it.
#[derive(Debug, Clone)]
pub struct FilesTable {
    /// The sink's name.
    pub sink: String,
    /// The table: its `{table}` folder's name (or the key's folder when it has none).
    pub table: String,
    /// The sink's connection.
    pub connection: String,
    /// The connection's URL as the spec writes it, for messages.
    pub display: String,
    /// How its files are compacted; `None` for formats that are not (CSV, gzip JSON lines).
    pub kind: Option<FileKind>,
    /// The format's file extension (`parquet`, `jsonl`, `csv`...).
    pub extension: String,
    /// The sink's Parquet settings (compression, row groups), for the rewritten files.
    pub parquet: Option<ParquetFormat>,
    /// Partition folders (full store paths) and pipectl's files in each, by key.
    pub partitions: BTreeMap<StorePath, Vec<ObjectMeta>>,
}

impl FilesTable {
    /// Every file pipectl wrote in the table.
    pub fn files(&self) -> u64 {
        self.partitions.values().map(|f| f.len() as u64).sum()
    }

    /// Their bytes.
    pub fn bytes(&self) -> u64 {
        self.partitions.values().flatten().map(|f| f.size).sum()
    }
}

/// Small files of one partition that are rewritten into one file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rewrite {
    /// The partition folder (a store path).
    pub partition: String,
    /// The files rewritten, in order (store paths).
    pub files: Vec<String>,
    /// Their bytes.
    pub bytes: u64,
}

/// The files under the selected `object_store` sinks of `pipeline` that are not Delta tables,
/// by sink, table and partition folder.
pub async fn file_tables(
    pipeline: &pipectl_spec::types::Pipeline,
    connections: &Connections,
    selection: &Selection,
) -> Result<Vec<FilesTable>> {
    let mut found = Vec::new();
    for (name, sink) in &pipeline.sinks {
        let Sink::ObjectStore(sink) = sink else {
            continue;
        };
        if matches!(sink.format, Format::Delta(_))
            || selection.sink.as_ref().is_some_and(|s| s != name)
        {
            continue;
        }
        let handle = connections.object_store(&sink.connection)?;
        found.extend(sink_tables(&pipeline.name, name, sink, &handle, selection).await?);
    }
    Ok(found)
}

async fn sink_tables(
    pipeline: &str,
    name: &str,
    sink: &ObjectStoreSink,
    handle: &StoreHandle,
    selection: &Selection,
) -> Result<Vec<FilesTable>> {
    let (folders, file_prefix) = match sink.key.rsplit_once('/') {
        Some((folders, last)) => (folders, last),
        None => ("", sink.key.as_str()),
    };
    let segments: Vec<String> = folders
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| s.replace("{pipeline}", &pipeline.replace('/', "_")))
        .collect();
    let table_at = segments.iter().position(|s| s.contains("{table}"));
    // (folder, table name) pairs, one level of the template at a time.
    let mut level = vec![(handle.prefix.clone(), None::<String>)];
    for (i, segment) in segments.iter().enumerate() {
        let mut next = Vec::new();
        for (path, table) in level {
            if !segment.contains('{') {
                next.push((path.clone().join(segment.as_str()), table));
                continue;
            }
            let children = super::folders(&handle.store, &path, &handle.display).await?;
            if children.iter().any(|c| c == super::DELTA_LOG) {
                // A Delta table root: `compact` handles it through its log.
                continue;
            }
            for child in children {
                if child.starts_with('_') || !template_matches(segment, &child) {
                    continue;
                }
                let table = if Some(i) == table_at {
                    Some(child.clone())
                } else {
                    table.clone()
                };
                next.push((path.clone().join(child.as_str()), table));
            }
        }
        level = next;
    }
    let extension = writer::extension(&sink.format);
    let kind = match &sink.format {
        Format::Parquet(_) => Some(FileKind::Parquet),
        Format::Jsonl(j) if j.compression == TextCompression::None => Some(FileKind::Jsonl),
        _ => None,
    };
    let mut tables: BTreeMap<String, FilesTable> = BTreeMap::new();
    for (folder, table) in level {
        let table = table.unwrap_or_else(|| folders.to_owned());
        if selection.table.as_ref().is_some_and(|t| *t != table) {
            continue;
        }
        let listing = handle
            .store
            .list_with_delimiter(Some(&folder))
            .await
            .map_err(|e| Error::external(format!("cannot list {}/{folder}", handle.display), e))?;
        if listing
            .common_prefixes
            .iter()
            .any(|p| p.filename() == Some(super::DELTA_LOG))
        {
            continue;
        }
        let files: Vec<ObjectMeta> = listing
            .objects
            .into_iter()
            .filter(|o| {
                o.location
                    .filename()
                    .is_some_and(|f| is_pipectl_file(f, file_prefix, extension))
            })
            .collect();
        if files.is_empty() {
            continue;
        }
        // Key order (listings of local folders are not sorted): runs in the order they wrote.
        let mut files = files;
        files.sort_by(|a, b| a.location.cmp(&b.location));
        let entry = tables.entry(table.clone()).or_insert_with(|| FilesTable {
            sink: name.to_owned(),
            table,
            connection: sink.connection.clone(),
            display: handle.display.clone(),
            kind,
            extension: extension.to_owned(),
            parquet: match &sink.format {
                Format::Parquet(p) => Some(p.clone()),
                _ => None,
            },
            partitions: BTreeMap::new(),
        });
        entry.partitions.insert(folder, files);
    }
    Ok(tables.into_values().collect())
}

/// Whether `text` can be what `template` (fixed text with `{placeholders}`, each standing for
/// any text) renders to.
fn template_matches(template: &str, text: &str) -> bool {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        pieces.push(&rest[..open]);
        match rest[open..].find('}') {
            Some(close) => rest = &rest[open + close + 1..],
            None => {
                rest = "";
                break;
            }
        }
    }
    pieces.push(rest);
    let (first, others) = (pieces[0], &pieces[1..]);
    let Some(mut text) = text.strip_prefix(first) else {
        return false;
    };
    if others.is_empty() {
        return text.is_empty();
    }
    let (last, middle) = others.split_last().unwrap_or((&"", &[]));
    for piece in middle {
        match text.find(piece) {
            Some(at) => text = &text[at + piece.len()..],
            None => return false,
        }
    }
    text.ends_with(last)
}

/// Whether `name` is a file pipectl wrote for a key whose last segment is `prefix`:
/// `<prefix>part-<run id>-<sequence>.<extension>`, the run id as `new_run_id` makes them
/// (`20261204T183000Z-1a2b3c`).
fn is_pipectl_file(name: &str, prefix: &str, extension: &str) -> bool {
    let Some(at) = name.rfind("part-") else {
        return false;
    };
    if !template_matches(prefix, &name[..at]) {
        return false;
    }
    let Some(stem) = name[at + "part-".len()..].strip_suffix(&format!(".{extension}")) else {
        return false;
    };
    let Some((run, sequence)) = stem.rsplit_once('-') else {
        return false;
    };
    let Some((time, suffix)) = run.split_once('-') else {
        return false;
    };
    !sequence.is_empty()
        && sequence.bytes().all(|b| b.is_ascii_digit())
        && time.len() == 16
        && time.as_bytes()[8] == b'T'
        && time.ends_with('Z')
        && suffix.len() == 6
        && suffix.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The rewrites compaction would make in `table`: per partition, files smaller than
/// `target_file_size` packed in key order into groups of about that size; a group of one file
/// is left as it is. Empty when there is nothing to compact (a second compaction is a no-op).
pub fn plan(table: &FilesTable, target_file_size: u64) -> Vec<Rewrite> {
    if table.kind.is_none() {
        return Vec::new();
    }
    let mut rewrites = Vec::new();
    for (partition, files) in &table.partitions {
        let mut group: Vec<&ObjectMeta> = Vec::new();
        let mut bytes = 0;
        let mut close = |group: &mut Vec<&ObjectMeta>, bytes: &mut u64| {
            if group.len() > 1 {
                rewrites.push(Rewrite {
                    partition: partition.to_string(),
                    files: group.iter().map(|f| f.location.to_string()).collect(),
                    bytes: *bytes,
                });
            }
            group.clear();
            *bytes = 0;
        };
        for file in files.iter().filter(|f| f.size < target_file_size) {
            group.push(file);
            bytes += file.size;
            if bytes >= target_file_size {
                close(&mut group, &mut bytes);
            }
        }
        close(&mut group, &mut bytes);
    }
    rewrites
}

/// Where a compaction can be stopped on purpose: tests stop the process there to show that
/// the next run or compaction finishes or discards it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The new files are staged; the intent is not saved yet.
    Staged,
    /// The intent is saved; nothing is applied yet.
    IntentSaved,
}

/// What compacting one plain table did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FilesOutcome {
    /// The sink.
    pub sink: String,
    /// The table.
    pub table: String,
    /// The compaction's run id (`None` when there was nothing to compact).
    pub run_id: Option<String>,
    /// pipectl's files in the table before.
    pub files_before: u64,
    /// And after.
    pub files_after: u64,
    /// Their bytes before.
    pub bytes_before: u64,
    /// And after.
    pub bytes_after: u64,
    /// Rows rewritten.
    pub rows: u64,
    /// Partitions rewritten.
    pub partitions: u64,
}

/// Compacts one plain table as [`plan`] says, as one run of `spec`'s pipeline recorded in
/// `state` (see the module documentation). `stage` is called at each [`Stage`].
pub async fn compact(
    spec: &LoadedSpec,
    state: &dyn StateStore,
    connections: &Connections,
    table: &FilesTable,
    target_file_size: u64,
    stage: &(dyn Fn(Stage) + Sync),
) -> Result<FilesOutcome> {
    let rewrites = plan(table, target_file_size);
    let mut outcome = FilesOutcome {
        sink: table.sink.clone(),
        table: table.table.clone(),
        run_id: None,
        files_before: table.files(),
        files_after: table.files(),
        bytes_before: table.bytes(),
        bytes_after: table.bytes(),
        rows: 0,
        partitions: 0,
    };
    let Some(kind) = table.kind else {
        return Ok(outcome);
    };
    if rewrites.is_empty() {
        return Ok(outcome);
    }
    let handle = connections.object_store(&table.connection)?;
    let started = Utc::now();
    let id = new_run_id(started);
    let mut run = RunRecord::new(
        id.clone(),
        spec.pipeline.name.clone(),
        spec.hash.clone(),
        started,
        TRIGGER,
    );
    let clock = std::time::Instant::now();
    run.steps = vec![StepRecord {
        name: format!("compact {}/{}", table.sink, table.table),
        kind: TRIGGER.to_owned(),
        rows: 0,
        bytes: 0,
        objects: 0,
        duration_ms: 0,
        error: None,
        status: RunStatus::Running,
        replication_lag: None,
    }];
    state_call(state.begin_run(&run))?;
    outcome.run_id = Some(id.clone());
    let what = format!("sink `{}`, table `{}`", table.sink, table.table);

    let written = write_all(&handle, table, kind, &rewrites, &id).await;
    let (swaps, rows) = match written {
        Ok(w) => w,
        Err(e) => {
            let e = e.context(format!("{what}: compacting"));
            fail(state, &mut run, &e);
            discard(&handle, &id).await;
            return Err(e);
        }
    };
    if swaps.is_empty() {
        // Every group held files of different columns: nothing to swap.
        discard(&handle, &id).await;
        run.status = RunStatus::Succeeded;
        run.ended_at = Some(Utc::now());
        run.error = Some("nothing to compact: the small files have different columns".to_owned());
        if let Some(step) = run.steps.first_mut() {
            step.status = RunStatus::Succeeded;
        }
        state_call(state.commit_run(&run, &[]))?;
        outcome.run_id = None;
        return Ok(outcome);
    }
    stage(Stage::Staged);

    // A recovery by a run of this pipeline in the same process (the daemon) may have taken this
    // compaction for an interrupted one and deleted its staging: then it must not commit.
    let still_ours = matches!(
        state_call(state.run(&id))?,
        Some(r) if r.status == RunStatus::Running
    );
    let removed: Vec<String> = swaps
        .iter()
        .flat_map(|swap| {
            let folder = parse(&swap.folder);
            swap.removed
                .iter()
                .map(move |name| folder.clone().join(name.as_str()).to_string())
        })
        .collect();
    let gone = missing(&handle, removed.iter().map(String::as_str)).await?;
    if !still_ours || !gone.is_empty() {
        let e = Error::user(format!(
            "{what}: the table changed while it was compacted ({}); nothing was changed, compact again",
            if still_ours {
                format!("{} is gone", gone.join(", "))
            } else {
                "a run of the pipeline recovered this compaction".to_owned()
            }
        ));
        fail(state, &mut run, &e);
        discard(&handle, &id).await;
        return Err(e);
    }

    run.status = RunStatus::Committing;
    run.swaps = swaps;
    state_call(state.save_run(&run))?;
    stage(Stage::IntentSaved);
    if let Err(e) = commit::apply(connections, &[], &[], &[], &run.swaps).await {
        let e = e.context(format!(
            "{what}: publishing the compacted files failed; the next run or compaction of the pipeline finishes it"
        ));
        run.error = Some(e.to_string());
        let _ = state.save_run(&run);
        return Err(e);
    }
    let added: u64 = run.swaps.iter().map(|s| s.added.len() as u64).sum();
    let files_after = outcome.files_before + added - removed.len() as u64;
    let rewritten: u64 = table
        .partitions
        .values()
        .flatten()
        .filter(|f| removed.contains(&f.location.to_string()))
        .map(|f| f.size)
        .sum();
    let published = published_bytes(&handle, &run.swaps).await;
    run.status = RunStatus::Succeeded;
    run.ended_at = Some(Utc::now());
    if let Some(step) = run.steps.first_mut() {
        step.status = RunStatus::Succeeded;
        step.rows = rows;
        step.bytes = published;
        step.objects = added;
        step.duration_ms = clock.elapsed().as_millis() as u64;
    }
    state_call(state.commit_run(&run, &[]))?;
    discard(&handle, &id).await;
    outcome.files_after = files_after;
    outcome.bytes_after = outcome.bytes_before - rewritten + published;
    outcome.rows = rows;
    outcome.partitions = run.swaps.len() as u64;
    Ok(outcome)
}

/// Runs `pipeline`'s crawlers whose inputs include a sink of `compacted` (sink, compaction run
/// id), so the catalog lists the files the compaction left.
pub async fn recrawl(
    pipeline: &pipectl_spec::types::Pipeline,
    connections: &Connections,
    catalog: &dyn pipectl_state::CatalogStore,
    compacted: &[(String, String)],
) -> Result<()> {
    for (name, crawler) in &pipeline.crawlers {
        let pipectl_spec::types::Crawler::Catalog(c) = crawler;
        let Some((_, run_id)) = compacted.iter().find(|(sink, _)| c.inputs.contains(sink)) else {
            continue;
        };
        crate::crawl::run_step(pipeline, name, c, connections, catalog, Some(run_id))
            .await
            .map_err(|e| {
                e.context(format!(
                    "crawler `{name}` after compacting (catalogue the new files with `pipectl crawl`)"
                ))
            })?;
    }
    Ok(())
}

fn fail(state: &dyn StateStore, run: &mut RunRecord, e: &Error) {
    run.status = RunStatus::Failed;
    run.error = Some(e.to_string());
    run.ended_at = Some(Utc::now());
    if let Some(step) = run.steps.first_mut() {
        step.status = RunStatus::Failed;
        step.error = Some(e.to_string());
    }
    if let Err(e) = state.save_run(run) {
        tracing::error!(run = %run.id, "cannot record the failed compaction: {e}");
    }
}

/// Deletes a compaction's staging folder (best effort, like a run's).
async fn discard(handle: &StoreHandle, id: &str) {
    crate::executor::delete_prefix(handle, &staging_prefix(id)).await;
}

/// The keys of `keys` that are not in the store.
async fn missing<'a>(
    handle: &StoreHandle,
    keys: impl Iterator<Item = &'a str>,
) -> Result<Vec<String>> {
    let mut gone = Vec::new();
    for key in keys {
        let path = parse(key);
        match handle.store.head(&path).await {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => gone.push(key.to_owned()),
            Err(e) => {
                return Err(Error::external(
                    format!("cannot look up {path} in {}", handle.display),
                    e,
                ));
            }
        }
    }
    Ok(gone)
}

async fn published_bytes(handle: &StoreHandle, swaps: &[PartitionSwap]) -> u64 {
    let mut bytes = 0;
    for swap in swaps {
        let folder = parse(&swap.folder);
        for name in &swap.added {
            if let Ok(meta) = handle.store.head(&folder.clone().join(name.as_str())).await {
                bytes += meta.size;
            }
        }
    }
    bytes
}

async fn read(handle: &StoreHandle, path: &StorePath) -> Result<bytes::Bytes> {
    let error = |e| Error::external(format!("cannot read {path} in {}", handle.display), e);
    handle
        .store
        .get(path)
        .await
        .map_err(error)?
        .bytes()
        .await
        .map_err(error)
}

fn parse(key: &str) -> StorePath {
    StorePath::parse(key).unwrap_or_else(|_| StorePath::from(key))
}

/// Writes every rewrite's file under the staging folder of compaction `id`; returns where
/// each is published and the rows written.
async fn write_all(
    handle: &StoreHandle,
    table: &FilesTable,
    kind: FileKind,
    rewrites: &[Rewrite],
    id: &str,
) -> Result<(Vec<PartitionSwap>, u64)> {
    let mut swaps: BTreeMap<&str, PartitionSwap> = BTreeMap::new();
    let mut rows = 0;
    for rewrite in rewrites {
        let partition = parse(&rewrite.partition);
        let relative: Vec<String> = partition
            .prefix_match(&handle.prefix)
            .map(|parts| parts.map(|p| p.as_ref().to_owned()).collect())
            .unwrap_or_default();
        let staged_folder = handle.path(&format!(
            "{}/{}/{}",
            staging_prefix(id),
            table.sink,
            relative.join("/")
        ));
        let files = match kind {
            FileKind::Parquet => same_schema(handle, &rewrite.files).await?,
            FileKind::Jsonl => rewrite.files.clone(),
        };
        if files.len() < 2 {
            continue;
        }
        let swap = swaps
            .entry(rewrite.partition.as_str())
            .or_insert_with(|| PartitionSwap {
                connection: table.connection.clone(),
                folder: partition.to_string(),
                staged: staged_folder.to_string(),
                added: Vec::new(),
                removed: Vec::new(),
            });
        let first = files.first().map(|f| parse(f)).unwrap_or_default();
        let first_name = first.filename().unwrap_or_default();
        let prefix = &first_name[..first_name.rfind("part-").unwrap_or(0)];
        let name = format!(
            "{prefix}part-{id}-{:04}.{}",
            swap.added.len() + 1,
            table.extension
        );
        let staged = staged_folder.clone().join(name.as_str());
        rows += match kind {
            FileKind::Parquet => rewrite_parquet(handle, table, &files, &staged).await?,
            FileKind::Jsonl => concatenate(handle, &files, &staged).await?,
        };
        swap.added.push(name);
        for file in &files {
            swap.removed
                .push(parse(file).filename().unwrap_or_default().to_owned());
        }
    }
    Ok((swaps.into_values().collect(), rows))
}

/// The files of `files` that are compacted together: those with the columns most of them have
/// (the newest such set on a tie), so a table whose schema changed compacts the files of each
/// schema apart instead of failing. Each file's footer is read; the files are small.
async fn same_schema(handle: &StoreHandle, files: &[String]) -> Result<Vec<String>> {
    let mut schemas: Vec<(arrow::datatypes::Fields, Vec<String>)> = Vec::new();
    for file in files {
        let path = parse(file);
        let builder = ParquetRecordBatchReaderBuilder::try_new(read(handle, &path).await?)
            .map_err(|e| Error::external(format!("cannot read {path}"), e))?;
        let fields = builder.schema().fields().clone();
        match schemas.iter_mut().find(|(f, _)| *f == fields) {
            Some((_, same)) => same.push(file.clone()),
            None => schemas.push((fields, vec![file.clone()])),
        }
    }
    let most = schemas.iter().map(|(_, f)| f.len()).max().unwrap_or(0);
    Ok(schemas
        .into_iter()
        .rev()
        .find(|(_, f)| f.len() == most)
        .map(|(_, f)| f)
        .unwrap_or_default())
}

/// Reads the rows of `files` (all of one schema) and writes them, in order, to one Parquet file
/// at `to` with their Arrow schema (kept in the file, so types, decimals, time zones and
/// nullability read back the same).
async fn rewrite_parquet(
    handle: &StoreHandle,
    table: &FilesTable,
    files: &[String],
    to: &StorePath,
) -> Result<u64> {
    let format = table
        .parquet
        .clone()
        .ok_or_else(|| Error::internal("a Parquet table without Parquet settings"))?;
    let mut writer: Option<AsyncArrowWriter<_>> = None;
    let mut schema = None;
    let mut expected = 0u64;
    let mut rows = 0u64;
    for file in files {
        let path = parse(file);
        let read_error =
            |e: parquet::errors::ParquetError| Error::external(format!("cannot read {path}"), e);
        // Compacted files are small (below the target size): each is read whole.
        let bytes = read(handle, &path).await?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(read_error)?;
        expected += builder.metadata().file_metadata().num_rows() as u64;
        let file_schema = builder.schema().clone();
        match &schema {
            None => schema = Some(file_schema.clone()),
            Some(s) if s.fields() == file_schema.fields() => {}
            Some(_) => {
                return Err(Error::internal(format!(
                    "{path} changed its columns while it was compacted"
                )));
            }
        }
        let reader = builder.build().map_err(read_error)?;
        for batch in reader {
            let batch = batch.map_err(|e| Error::external(format!("cannot read {path}"), e))?;
            rows += batch.num_rows() as u64;
            if writer.is_none() {
                let props = writer::parquet_properties(&format, &batch)?;
                let object = object_store::buffered::BufWriter::with_capacity(
                    handle.store.clone(),
                    to.clone(),
                    UPLOAD_PART_BYTES,
                );
                writer = Some(
                    AsyncArrowWriter::try_new(object, file_schema.clone(), Some(props))
                        .map_err(|e| Error::external(format!("cannot start writing {to}"), e))?,
                );
            }
            if let (Some(w), Some(first)) = (writer.as_mut(), &schema) {
                // A later file's batches carry its own schema metadata; the file keeps the
                // first file's (same columns and types).
                let batch = batch
                    .with_schema(first.clone())
                    .map_err(|e| Error::internal(format!("compacting into {to}: {e}")))?;
                w.write(&batch)
                    .await
                    .map_err(|e| Error::external(format!("cannot write {to}"), e))?;
            }
        }
    }
    let writer = match writer {
        Some(w) => w,
        // Every file was empty: the compacted file is an empty file of the same schema.
        None => {
            let schema = schema.ok_or_else(|| Error::internal("compacting no files"))?;
            let object = object_store::buffered::BufWriter::new(handle.store.clone(), to.clone());
            AsyncArrowWriter::try_new(object, schema, None)
                .map_err(|e| Error::external(format!("cannot start writing {to}"), e))?
        }
    };
    writer
        .close()
        .await
        .map_err(|e| Error::external(format!("cannot finish writing {to}"), e))?;
    if rows != expected {
        return Err(Error::internal(format!(
            "compacting into {to}: read {rows} rows, the files' footers say {expected}"
        )));
    }
    Ok(rows)
}

/// Concatenates JSON lines `files` byte for byte into `to` (a newline is added after a file
/// whose last line has none, so lines never merge). Returns the lines.
async fn concatenate(handle: &StoreHandle, files: &[String], to: &StorePath) -> Result<u64> {
    let mut out: Vec<u8> = Vec::new();
    for file in files {
        let path = parse(file);
        out.extend_from_slice(&read(handle, &path).await?);
        if out.last().is_some_and(|b| *b != b'\n') {
            out.push(b'\n');
        }
    }
    let lines = out.iter().filter(|b| **b == b'\n').count() as u64;
    handle
        .store
        .put(to, PutPayload::from(out))
        .await
        .map_err(|e| Error::external(format!("cannot write {to}"), e))?;
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_pipectl_wrote_are_compacted() {
        assert!(is_pipectl_file(
            "part-20261204T183000Z-1a2b3c-0001.parquet",
            "",
            "parquet"
        ));
        assert!(is_pipectl_file(
            "data-part-20261204T183000Z-1a2b3c-0012.jsonl",
            "data-",
            "jsonl"
        ));
        assert!(!is_pipectl_file("export.parquet", "", "parquet"));
        assert!(!is_pipectl_file(
            "part-20261204T183000Z-1a2b3c-0001.csv",
            "",
            "parquet"
        ));
        assert!(!is_pipectl_file("part-manual-0001.parquet", "", "parquet"));
        assert!(!is_pipectl_file(
            "part-20261204T183000Z-1a2b3c-0001.parquet",
            "x-",
            "parquet"
        ));
    }

    #[test]
    fn templates_match_folders_they_render() {
        assert!(template_matches("{table}", "film"));
        assert!(template_matches("dt={date}", "dt=2026-12-04"));
        assert!(!template_matches("dt={date}", "day=2026-12-04"));
        assert!(template_matches("{schema}_{table}", "main_film"));
        assert!(template_matches("fixed", "fixed"));
        assert!(!template_matches("fixed", "fixed2"));
    }

    fn meta(key: &str, size: u64) -> ObjectMeta {
        ObjectMeta {
            location: StorePath::from(key),
            last_modified: Utc::now(),
            size,
            e_tag: None,
            version: None,
        }
    }

    #[test]
    fn small_files_are_packed_per_partition_and_a_lone_file_is_left() {
        let mut partitions = BTreeMap::new();
        partitions.insert(
            StorePath::from("t/a"),
            vec![
                meta("t/a/1", 40),
                meta("t/a/2", 40),
                meta("t/a/3", 40),
                meta("t/a/big", 500),
            ],
        );
        partitions.insert(StorePath::from("t/b"), vec![meta("t/b/1", 10)]);
        let table = FilesTable {
            sink: "s".into(),
            table: "t".into(),
            connection: "lake".into(),
            display: "file://lake".into(),
            kind: Some(FileKind::Jsonl),
            extension: "jsonl".into(),
            parquet: None,
            partitions,
        };
        let rewrites = plan(&table, 100);
        assert_eq!(rewrites.len(), 1, "{rewrites:?}");
        assert_eq!(rewrites[0].files, vec!["t/a/1", "t/a/2", "t/a/3"]);
        assert_eq!(rewrites[0].bytes, 120);
        assert!(plan(&table, 50).len() == 1 && plan(&table, 50)[0].files.len() == 2);
    }
}
