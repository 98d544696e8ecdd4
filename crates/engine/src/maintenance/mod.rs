//! Table maintenance over a pipeline's sinks: compaction (bin-packing small files) and vacuum
//! (deleting files no version within the retention needs) of the Delta tables under its
//! `object_store` sinks, and compaction of its plain Parquet and JSON lines tables
//! ([`files`]). `pipectl compact`/`pipectl vacuum` and the `maintenance:` schedule of
//! `pipectl serve` both run through here.
//!
//! The tables are found by listing: the sink's key template is followed folder by folder up to
//! its `{table}` folder (fixed folders as written, `{pipeline}` as the pipeline's name, other
//! placeholders matching any folder), and a folder holding a `_delta_log/` is a Delta table
//! root, whoever wrote it.

pub mod files;

use std::time::Duration;

use object_store::path::Path as StorePath;
use pipectl_delta::{CompactOptions, DeltaTable, TableLocation, VacuumOptions};
use pipectl_spec::types::{Format, Pipeline, Sink};

use crate::connect::Connections;
use crate::error::{Error, Result};

/// The folder that makes its parent a Delta table root.
const DELTA_LOG: &str = "_delta_log";

/// Which tables a maintenance command works on.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only this sink (default: every `object_store` sink).
    pub sink: Option<String>,
    /// Only this table (the `{table}` folder's name).
    pub table: Option<String>,
}

/// A Delta table found under a sink.
#[derive(Debug, Clone)]
pub struct FoundTable {
    /// The sink's name.
    pub sink: String,
    /// The table (the `{table}` folder).
    pub table: String,
    /// Where it is.
    pub location: TableLocation,
}

/// The Delta tables under the selected sinks of `pipeline`, by sink then table. `file` names
/// the pipeline file in errors.
pub async fn delta_tables(
    pipeline: &Pipeline,
    file: &str,
    connections: &Connections,
    selection: &Selection,
) -> Result<Vec<FoundTable>> {
    let found = find_delta_tables(pipeline, file, connections, selection).await?;
    if let Some(table) = &selection.table
        && found.is_empty()
    {
        return Err(Error::user(format!(
            "no Delta table `{table}` under {} of {file}; a table root is a `{{table}}` folder holding a `_delta_log/`",
            selected(selection)
        )));
    }
    Ok(found)
}

/// Every table compaction works on under the selected sinks of `pipeline`: the Delta tables
/// and the plain Parquet/JSON lines tables (files pipectl wrote, by partition folder).
pub async fn all_tables(
    pipeline: &Pipeline,
    file: &str,
    connections: &Connections,
    selection: &Selection,
) -> Result<(Vec<FoundTable>, Vec<files::FilesTable>)> {
    let delta = find_delta_tables(pipeline, file, connections, selection).await?;
    let plain = files::file_tables(pipeline, connections, selection).await?;
    if let Some(table) = &selection.table
        && delta.is_empty()
        && plain.is_empty()
    {
        return Err(Error::user(format!(
            "no table `{table}` under {} of {file}: neither a Delta table (a `{{table}}` folder holding a `_delta_log/`) nor files pipectl wrote",
            selected(selection)
        )));
    }
    Ok((delta, plain))
}

fn selected(selection: &Selection) -> String {
    match &selection.sink {
        Some(s) => format!("sink `{s}`"),
        None => "its object_store sinks".to_owned(),
    }
}

async fn find_delta_tables(
    pipeline: &Pipeline,
    file: &str,
    connections: &Connections,
    selection: &Selection,
) -> Result<Vec<FoundTable>> {
    let sinks: Vec<(&String, &pipectl_spec::types::ObjectStoreSink)> = match &selection.sink {
        Some(name) => match pipeline.sinks.get(name) {
            Some(Sink::ObjectStore(s)) => vec![(name, s)],
            Some(_) => {
                return Err(Error::user(format!(
                    "sink `{name}` of {file} is not an object_store sink; compact and vacuum work on the tables of object_store sinks"
                )));
            }
            None => {
                return Err(Error::user(format!(
                    "{file} has no sink `{name}`; its sinks: {}",
                    names(pipeline.sinks.keys())
                )));
            }
        },
        None => pipeline
            .sinks
            .iter()
            .filter_map(|(n, s)| match s {
                Sink::ObjectStore(s) => Some((n, s)),
                _ => None,
            })
            .collect(),
    };
    let mut found = Vec::new();
    for (name, sink) in sinks {
        let handle = connections.object_store(&sink.connection)?;
        let segments: Vec<&str> = sink.key.split('/').filter(|s| !s.is_empty()).collect();
        let Some(table_at) = segments.iter().position(|s| s.contains("{table}")) else {
            if selection.sink.is_some() && matches!(sink.format, Format::Delta(_)) {
                return Err(Error::user(format!(
                    "sink `{name}` of {file}: its key `{}` has no `{{table}}` folder, so it has no table roots",
                    sink.key
                )));
            }
            continue;
        };
        let mut roots = vec![(handle.prefix.clone(), String::new())];
        for (i, segment) in segments[..=table_at].iter().enumerate() {
            let mut next = Vec::new();
            for (path, table) in roots {
                if !segment.contains('{') || *segment == "{pipeline}" {
                    let fixed = segment.replace("{pipeline}", &pipeline.name);
                    next.push((path.clone().join(fixed.as_str()), table));
                    continue;
                }
                for child in folders(&handle.store, &path, &handle.display).await? {
                    let table = if i == table_at {
                        child.clone()
                    } else {
                        table.clone()
                    };
                    next.push((path.clone().join(child.as_str()), table));
                }
            }
            roots = next;
        }
        for (root, table) in roots {
            if selection.table.as_ref().is_some_and(|t| *t != table) {
                continue;
            }
            let children = folders(&handle.store, &root, &handle.display).await?;
            if children.iter().any(|c| c == DELTA_LOG) {
                found.push(FoundTable {
                    sink: name.clone(),
                    table,
                    location: TableLocation::new(
                        handle.store.clone(),
                        root,
                        handle.display.clone(),
                    ),
                });
            }
        }
    }
    Ok(found)
}

/// The subfolders of `path` (their names).
async fn folders(
    store: &std::sync::Arc<dyn object_store::ObjectStore>,
    path: &StorePath,
    display: &str,
) -> Result<Vec<String>> {
    let listing = store
        .list_with_delimiter(Some(path))
        .await
        .map_err(|e| Error::external(format!("cannot list {display}/{path}"), e))?;
    Ok(listing
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename().map(str::to_owned))
        .collect())
}

fn names<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let all: Vec<&str> = names.map(String::as_str).collect();
    if all.is_empty() {
        "none".to_owned()
    } else {
        all.join(", ")
    }
}

/// What compacting one table did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CompactOutcome {
    /// The sink.
    pub sink: String,
    /// The table.
    pub table: String,
    /// The table's location.
    pub location: String,
    /// Version before.
    pub version_before: u64,
    /// Version after (the same when there was nothing to compact).
    pub version_after: u64,
    /// Data files of the newest version before.
    pub files_before: u64,
    /// And after.
    pub files_after: u64,
    /// Their bytes before.
    pub bytes_before: u64,
    /// And after.
    pub bytes_after: u64,
    /// Partitions rewritten.
    pub partitions: u64,
}

/// Compacts one table: small files bin-packed, per partition, to about `target_file_size`.
pub async fn compact(found: &FoundTable, target_file_size: u64) -> Result<CompactOutcome> {
    let mut table = open(found).await?;
    let before = info(found, &table).await?;
    let report = table
        .compact(CompactOptions { target_file_size })
        .await
        .map_err(|e| delta_error(found, "compacting", e))?;
    let table = open(found).await?;
    let after = info(found, &table).await?;
    Ok(CompactOutcome {
        sink: found.sink.clone(),
        table: found.table.clone(),
        location: found.location.display(),
        version_before: before.version,
        version_after: after.version,
        files_before: before.files,
        files_after: after.files,
        bytes_before: before.bytes,
        bytes_after: after.bytes,
        partitions: report.partitions,
    })
}

/// What vacuuming one table did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VacuumOutcome {
    /// The sink.
    pub sink: String,
    /// The table.
    pub table: String,
    /// The table's location.
    pub location: String,
    /// The newest version (its files are never deleted).
    pub version: u64,
    /// Data files of the newest version, kept.
    pub files_kept: u64,
    /// Files deleted (on a dry run: that would be), relative to the root.
    pub deleted: Vec<String>,
    /// Whether it was a dry run.
    pub dry_run: bool,
}

/// Vacuums one table: files that left it longer ago than `retention` are deleted.
pub async fn vacuum(
    found: &FoundTable,
    retention: Duration,
    dry_run: bool,
) -> Result<VacuumOutcome> {
    let mut table = open(found).await?;
    let report = table
        .vacuum(VacuumOptions {
            retention,
            dry_run,
            orphans: false,
        })
        .await
        .map_err(|e| delta_error(found, "vacuuming", e))?;
    let table = open(found).await?;
    let now = info(found, &table).await?;
    Ok(VacuumOutcome {
        sink: found.sink.clone(),
        table: found.table.clone(),
        location: found.location.display(),
        version: now.version,
        files_kept: now.files,
        deleted: report.files,
        dry_run: report.dry_run,
    })
}

async fn open(found: &FoundTable) -> Result<DeltaTable> {
    DeltaTable::open(found.location.clone())
        .await
        .map_err(|e| delta_error(found, "opening", e))
}

async fn info(found: &FoundTable, table: &DeltaTable) -> Result<pipectl_delta::TableInfo> {
    table
        .info(1)
        .await
        .map_err(|e| delta_error(found, "reading the log of", e))
}

fn delta_error(found: &FoundTable, what: &str, e: pipectl_delta::Error) -> Error {
    let message = format!(
        "sink `{}`, table `{}`: {what} the Delta table: {e}",
        found.sink, found.table
    );
    match e.class {
        pipectl_delta::ErrorClass::User => Error::user(message),
        _ => Error::external(message, e),
    }
}
