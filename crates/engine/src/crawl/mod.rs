//! Crawlers: list a prefix in an object store, group the objects into tables and partitions,
//! infer each table's schema, and record the result in the catalog by a stated policy.
//!
//! Two ways to find tables:
//! - From a pipectl sink's key template ([`Layout::Template`]): the `{table}` folder is the
//!   table, folders after it are partitions (`dt={date}` a Hive-style one named `dt`, a bare
//!   `{date}` one named `date`). Nothing is guessed.
//! - From the folder structure ([`Layout::Guess`]), as Glue does: a folder holding files, or
//!   whose subfolders are Hive-style (`year=2026`) or values (`2026`), or whose subfolders hold
//!   compatible schemas, is one table with those subfolders as partitions (plain folders are
//!   named `partition_0`, `partition_1`, ...); otherwise each subfolder is looked at in turn.
//!   `table_level` fixes the depth instead.
//!
//! Every file's schema is read (a Parquet footer, or the first 256 KiB of a text file) and the
//! table's columns are their union; a file no classifier recognises is reported by key and left
//! out (recorded in the table's `skipped_files`, which queries do not read).

pub mod infer;
pub mod types;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::path::Path as StorePath;
use pipectl_spec::types::{
    CatalogCrawler, Format, Pipeline, RecrawlPolicy, SchemaChangePolicy, Sink,
};
use pipectl_state::{
    CatalogColumn, CatalogFormat, CatalogPartition, CatalogStorage, CatalogStore, CatalogTable,
    CrawlRecord, SkippedFile, TableStatus,
};

use crate::connect::Connections;
use crate::error::{Error, Result};
use infer::{FileKind, FileSchema};
use types::{HiveType, merge_fields};

/// Files whose schema is read at once.
const SAMPLE_CONCURRENCY: usize = 32;
/// Most different schemas sibling folders may have and still be one table (Glue's "clusters").
const MAX_SCHEMA_CLUSTERS: usize = 5;

/// How a crawl finds tables under its prefix.
#[derive(Debug, Clone)]
pub enum Layout {
    /// A sink's key template, e.g. `landing/{schema}/{table}/dt={date}/`.
    Template(String),
    /// The folder structure; `table_level` (0 = the prefix itself is the table) fixes the depth.
    Guess {
        /// Depth of table folders below the prefix.
        table_level: Option<usize>,
    },
}

/// One place to crawl.
#[derive(Clone)]
pub struct CrawlTarget {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// The store path every key is relative to (a connection's prefix).
    pub base: StorePath,
    /// URL of `base`, ending with `/` (`file:///abs/lake/`, `s3://bucket/prefix/`).
    pub base_url: String,
    /// How to reach the store again at query time.
    pub storage: CatalogStorage,
    /// For a guessed layout, the prefix (relative to `base`) to crawl; ignored for templates.
    pub prefix: String,
    /// How tables are found.
    pub layout: Layout,
    /// The text CSV files write for NULL (a sink's `null_value`; empty: an empty field), which
    /// type inference skips over.
    pub csv_null_value: String,
}

/// What a crawl does with what it finds.
#[derive(Debug, Clone)]
pub struct CrawlOptions {
    /// Catalog database.
    pub database: String,
    /// The crawler's name in catalog records (`pipeline/step`, `pipectl crawl`).
    pub crawler: String,
    /// The run it belongs to.
    pub run_id: Option<String>,
    /// Prefix for table names.
    pub table_prefix: String,
    /// Schema-change policy.
    pub schema_change: SchemaChangePolicy,
    /// Recrawl policy.
    pub recrawl: RecrawlPolicy,
    /// Globs of keys to include (relative to the crawled prefix); empty = all.
    pub include: Vec<String>,
    /// Globs of keys to leave out.
    pub exclude: Vec<String>,
}

/// What happened to one table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableReport {
    /// Table name.
    pub table: String,
    /// `created`, `updated`, `unchanged` or `deprecated`.
    pub action: String,
    /// Partitions it has now.
    pub partitions: usize,
    /// Data files it has now.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// What changed.
    pub changes: Vec<String>,
}

/// The result of a crawl.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CrawlReport {
    /// Database written.
    pub database: String,
    /// Objects listed (after filters).
    pub objects: u64,
    /// Files whose schema was read.
    pub files_read: u64,
    /// Tables found or deprecated.
    pub tables: Vec<TableReport>,
    /// Objects or folders left out, with the reason.
    pub warnings: Vec<String>,
}

/// One listed object, relative to its target's base.
#[derive(Debug, Clone)]
struct Object {
    key: String,
    size: u64,
    modified: DateTime<Utc>,
}

/// A folder holding data files.
#[derive(Debug)]
struct Leaf {
    /// Folder path relative to the base, without a trailing `/` (empty for the base).
    dir: String,
    files: Vec<Object>,
    /// What reading each file's schema gave, in `files` order; empty when the folder was not
    /// read (known to the catalog under `recrawl: new_folders`).
    reads: Vec<std::result::Result<FileSchema, String>>,
}

/// A table found by the crawl, before it meets the catalog.
#[derive(Debug)]
struct FoundTable {
    name: String,
    /// Folder relative to the base, without a trailing `/`.
    root: String,
    /// Partition keys, when they come from a template or Hive folders.
    keys: Option<Vec<String>>,
    leaves: Vec<Leaf>,
}

/// Crawls `targets` into `options.database`.
pub async fn crawl(
    targets: &[CrawlTarget],
    options: &CrawlOptions,
    catalog: &dyn CatalogStore,
) -> Result<CrawlReport> {
    let mut report = CrawlReport {
        database: options.database.clone(),
        ..CrawlReport::default()
    };
    let existing = catalog
        .tables(Some(&options.database))
        .map_err(|e| Error::user(e.to_string()))?;
    let mut seen_tables: BTreeSet<String> = BTreeSet::new();
    let now = Utc::now();
    for target in targets {
        let listed_prefix = match &target.layout {
            Layout::Template(t) => static_prefix(t),
            Layout::Guess { .. } => target.prefix.trim_matches('/').to_owned(),
        };
        let (objects, empty) = list(target, &listed_prefix, options).await?;
        report.objects += objects.len() as u64;
        // Folders already catalogued keep their schema under `recrawl: new_folders`.
        let known: BTreeSet<String> = match options.recrawl {
            RecrawlPolicy::All => BTreeSet::new(),
            RecrawlPolicy::NewFolders => existing
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(move |p| format!("{}{}", t.location, p.location))
                })
                .collect(),
        };
        let mut leaves = group_leaves(objects);
        warn_empty_folders(&leaves, &empty, &mut report);
        sample(target, &mut leaves, &known, &mut report).await;
        let found = match &target.layout {
            Layout::Template(template) => by_template(template, leaves, &mut report),
            Layout::Guess { table_level } => {
                let root = listed_prefix.clone();
                let mut found = Vec::new();
                split(&root, leaves, *table_level, 0, &mut found);
                found
            }
        };
        for table in found {
            let name = unique_name(
                &format!("{}{}", options.table_prefix, sanitize(&table.name)),
                &table.root,
                target,
                &existing,
                &seen_tables,
            );
            seen_tables.insert(name.clone());
            let Some(built) = build_table(&name, table, target, options, now, &mut report) else {
                continue;
            };
            let old = existing.iter().find(|t| t.name == name);
            let table_report = apply(built, old, options, catalog)?;
            report.tables.push(table_report);
        }
    }
    // Tables this crawler catalogued earlier that it did not find now: deprecated, as Glue's
    // default delete behaviour (DEPRECATE_IN_DATABASE) does, unless changes are only logged.
    for old in &existing {
        let ours = old
            .last_crawl
            .as_ref()
            .is_some_and(|c| c.crawler == options.crawler);
        if !ours || seen_tables.contains(&old.name) || old.status == TableStatus::Deprecated {
            continue;
        }
        let (action, change) = match effective_policy(options) {
            SchemaChangePolicy::Update | SchemaChangePolicy::Deprecate => {
                let change = "data no longer found; marked deprecated".to_owned();
                let mut t = old.clone();
                t.status = TableStatus::Deprecated;
                t.updated_at = now;
                t.last_crawl = Some(crawl_record(options, now, vec![change.clone()]));
                catalog
                    .save_table(&t)
                    .map_err(|e| Error::user(e.to_string()))?;
                ("deprecated", change)
            }
            SchemaChangePolicy::Log => (
                "unchanged",
                format!("data no longer found; kept ({})", log_reason(options)),
            ),
        };
        report.tables.push(TableReport {
            table: old.name.clone(),
            action: action.to_owned(),
            partitions: partition_count(old),
            files: old.files(),
            bytes: old.bytes(),
            changes: vec![change],
        });
    }
    Ok(report)
}

/// The schema-change policy a crawl applies: `recrawl: new_folders` forces `log`, as Glue's
/// incremental crawls force the update and delete behaviours to LOG.
fn effective_policy(options: &CrawlOptions) -> SchemaChangePolicy {
    match options.recrawl {
        RecrawlPolicy::NewFolders => SchemaChangePolicy::Log,
        RecrawlPolicy::All => options.schema_change,
    }
}

/// Why changes are only logged, for the notes that say so.
fn log_reason(options: &CrawlOptions) -> &'static str {
    match options.recrawl {
        RecrawlPolicy::NewFolders => "schema_change: log, forced by recrawl: new_folders",
        RecrawlPolicy::All => "schema_change: log",
    }
}

fn crawl_record(options: &CrawlOptions, at: DateTime<Utc>, changes: Vec<String>) -> CrawlRecord {
    CrawlRecord {
        crawler: options.crawler.clone(),
        run_id: options.run_id.clone(),
        at,
        changes,
    }
}

/// The template up to its first folder with a placeholder, without a trailing `/`.
pub fn static_prefix(template: &str) -> String {
    template
        .split('/')
        .filter(|s| !s.is_empty())
        .take_while(|s| !s.contains('{'))
        .collect::<Vec<_>>()
        .join("/")
}

/// An object holding data, found by [`list_data_objects`].
pub struct DataObject {
    /// Its path below the listed folder, one entry per level.
    pub relative: Vec<String>,
    /// The same, joined with `/`.
    pub key: String,
    /// Its location, size and time.
    pub meta: object_store::ObjectMeta,
}

/// Lists the data objects under `folder`, by relative key: hidden ones (a `_` or `.` folder or
/// file below `folder`, like `_pipectl/` staging or `_SUCCESS`) and empty ones are skipped, and
/// the `include`/`exclude` globs apply to the key relative to `folder`. The lake's one rule for
/// what counts as data, shared by crawlers and the `files` source.
pub async fn list_data_objects(
    store: &dyn object_store::ObjectStore,
    folder: &StorePath,
    include: &[String],
    exclude: &[String],
) -> object_store::Result<Vec<DataObject>> {
    let mut objects = list_objects(store, folder, include, exclude).await?;
    objects.retain(|o| o.meta.size > 0);
    Ok(objects)
}

/// [`list_data_objects`] with the empty objects kept.
async fn list_objects(
    store: &dyn object_store::ObjectStore,
    folder: &StorePath,
    include: &[String],
    exclude: &[String],
) -> object_store::Result<Vec<DataObject>> {
    let skip = folder.parts().count();
    let metas: Vec<object_store::ObjectMeta> = store.list(Some(folder)).try_collect().await?;
    let mut objects: Vec<DataObject> = metas
        .into_iter()
        .filter_map(|meta| {
            let relative: Vec<String> = meta
                .location
                .parts()
                .skip(skip)
                .map(|p| p.as_ref().to_owned())
                .collect();
            if relative.is_empty()
                || relative
                    .iter()
                    .any(|p| p.starts_with('_') || p.starts_with('.'))
            {
                return None;
            }
            let key = relative.join("/");
            let included = include.is_empty() || include.iter().any(|g| glob_match(g, &key));
            if !included || exclude.iter().any(|g| glob_match(g, &key)) {
                return None;
            }
            Some(DataObject {
                relative,
                key,
                meta,
            })
        })
        .collect();
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(objects)
}

/// Lists objects under `prefix` (see [`list_data_objects`]), keyed from the target's base: the
/// data objects, and the keys of the empty ones.
async fn list(
    target: &CrawlTarget,
    prefix: &str,
    options: &CrawlOptions,
) -> Result<(Vec<Object>, Vec<String>)> {
    let prefix_parts: Vec<&str> = prefix.split('/').filter(|s| !s.is_empty()).collect();
    let folder = StorePath::from_iter(
        target
            .base
            .parts()
            .map(|p| p.as_ref().to_owned())
            .chain(prefix_parts.iter().map(|p| (*p).to_owned())),
    );
    let found = list_objects(
        target.store.as_ref(),
        &folder,
        &options.include,
        &options.exclude,
    )
    .await
    .map_err(|e| Error::external(format!("cannot list {}{prefix}", target.base_url), e))?;
    let mut objects = Vec::new();
    let mut empty = Vec::new();
    for o in found {
        let key = if prefix_parts.is_empty() {
            o.key
        } else {
            format!("{}/{}", prefix_parts.join("/"), o.key)
        };
        if o.meta.size == 0 {
            empty.push(key);
        } else {
            objects.push(Object {
                key,
                size: o.meta.size,
                modified: o.meta.last_modified,
            });
        }
    }
    Ok((objects, empty))
}

/// Glob match: `*` any run within a folder, `**` any run of folders, `?` one character.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') if p.get(1) == Some(&b'*') => {
                let rest = p[2..].strip_prefix(b"/").unwrap_or(&p[2..]);
                if rest.is_empty() {
                    return true;
                }
                (0..=t.len()).any(|i| (i == 0 || t[i - 1] == b'/') && go(rest, &t[i..]))
                    || go(&p[2..], t)
            }
            Some(b'*') => (0..=t.len())
                .take_while(|&i| i == 0 || t[i - 1] != b'/')
                .any(|i| go(&p[1..], &t[i..])),
            Some(b'?') => !t.is_empty() && t[0] != b'/' && go(&p[1..], &t[1..]),
            Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

fn group_leaves(objects: Vec<Object>) -> Vec<Leaf> {
    let mut by_dir: BTreeMap<String, Vec<Object>> = BTreeMap::new();
    for o in objects {
        by_dir
            .entry(parent_of(&o.key).to_owned())
            .or_default()
            .push(o);
    }
    by_dir
        .into_iter()
        .map(|(dir, files)| Leaf {
            dir,
            files,
            reads: Vec::new(),
        })
        .collect()
}

/// The folder of a key, without a trailing `/` (empty for a key at the base).
fn parent_of(key: &str) -> &str {
    key.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

/// Warns about folders that hold only empty objects (no data, also not in subfolders): they
/// make no table and no partition. Folder markers (`dt=1/` objects, `dt=1_$folder$`) are not
/// files.
fn warn_empty_folders(leaves: &[Leaf], empty: &[String], report: &mut CrawlReport) {
    let holds_data = |dir: &str| {
        leaves
            .iter()
            .any(|l| dir.is_empty() || l.dir == dir || l.dir.starts_with(&format!("{dir}/")))
    };
    let mut by_dir: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for key in empty {
        if key.ends_with("_$folder$") || holds_data(key) {
            continue;
        }
        let dir = parent_of(key);
        by_dir
            .entry(dir)
            .or_default()
            .push(key.rsplit('/').next().unwrap_or(key));
    }
    for (dir, files) in by_dir {
        if holds_data(dir) {
            continue;
        }
        report.warnings.push(format!(
            "{dir}/ holds only empty files ({}); no table or partition is made from it",
            files.join(", ")
        ));
    }
}

/// Reads the schema of every file (a Parquet footer, a text file's first 256 KiB), except in
/// folders `known` to the catalog. A file no classifier accepts is reported by key (Glue would
/// classify it `UNKNOWN`) and left out of its table.
async fn sample(
    target: &CrawlTarget,
    leaves: &mut [Leaf],
    known: &BTreeSet<String>,
    report: &mut CrawlReport,
) {
    let base: Vec<String> = target.base.parts().map(|p| p.as_ref().to_owned()).collect();
    let jobs = leaves
        .iter()
        .enumerate()
        .filter(|(_, l)| !known.contains(&format!("{}{}/", target.base_url, l.dir)))
        .flat_map(|(i, leaf)| {
            leaf.files
                .iter()
                .enumerate()
                .map(move |(j, file)| (i, j, file.key.clone(), file.size))
        })
        .map(|(i, j, key, size)| {
            let store = target.store.clone();
            let mut parts = base.clone();
            parts.extend(key.split('/').map(str::to_owned));
            let null_value = target.csv_null_value.clone();
            async move {
                let path = StorePath::from_iter(parts);
                (
                    i,
                    j,
                    infer::infer_file(&store, &path, size, &null_value).await,
                )
            }
        })
        // Collected first: a lazy iterator of closures held across the await below would make
        // the crawl future not `Send` for every lifetime.
        .collect::<Vec<_>>();
    let mut results: Vec<_> = futures::stream::iter(jobs)
        .buffer_unordered(SAMPLE_CONCURRENCY)
        .collect()
        .await;
    results.sort_by_key(|(i, j, _)| (*i, *j));
    report.files_read += results.len() as u64;
    for (i, _, result) in results {
        if let Err(e) = &result {
            let key = &leaves[i].files[leaves[i].reads.len()].key;
            report.warnings.push(format!(
                "{key}: no classifier recognises it (Glue: UNKNOWN): {e}; left out of its table"
            ));
        }
        leaves[i].reads.push(result);
    }
}

/// One template folder: literal text and placeholders.
fn segment_match(pattern: &str, text: &str) -> Option<Vec<(String, String)>> {
    // Split into literal runs and `{name}` placeholders.
    let mut parts: Vec<(bool, &str)> = Vec::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push((false, &rest[..open]));
        }
        let close = rest[open..].find('}').map(|c| open + c)?;
        parts.push((true, &rest[open + 1..close]));
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        parts.push((false, rest));
    }
    fn go(parts: &[(bool, &str)], text: &str, out: &mut Vec<(String, String)>) -> bool {
        match parts.split_first() {
            None => text.is_empty(),
            Some(((false, lit), more)) => {
                text.starts_with(lit) && go(more, &text[lit.len()..], out)
            }
            Some(((true, name), more)) => {
                for end in (1..=text.len()).filter(|&e| text.is_char_boundary(e)) {
                    out.push(((*name).to_owned(), text[..end].to_owned()));
                    if go(more, &text[end..], out) {
                        return true;
                    }
                    out.pop();
                }
                false
            }
        }
    }
    let mut out = Vec::new();
    go(&parts, text, &mut out).then_some(out)
}

/// The partition key a template folder stands for: `dt={date}` -> `dt` (Hive-style), `{date}`
/// -> `date`, anything else -> `partition_<n>`.
fn template_key(segment: &str, n: usize) -> (String, bool) {
    if let Some((k, v)) = segment.split_once('=')
        && !k.contains('{')
        && v.starts_with('{')
        && v.ends_with('}')
    {
        return (k.to_owned(), true);
    }
    if segment.starts_with('{') && segment.ends_with('}') && segment.matches('{').count() == 1 {
        return (segment[1..segment.len() - 1].to_owned(), false);
    }
    (format!("partition_{n}"), false)
}

/// Groups leaf folders into tables by a sink's key template; folders it does not match are
/// left out.
fn by_template(template: &str, leaves: Vec<Leaf>, report: &mut CrawlReport) -> Vec<FoundTable> {
    let segments: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
    let table_at = segments
        .iter()
        .position(|s| s.contains("{table}"))
        .unwrap_or_else(|| {
            segments
                .iter()
                .position(|s| s.contains('{'))
                .unwrap_or(segments.len())
                .saturating_sub(1)
        });
    let keys: Vec<String> = segments[table_at + 1..]
        .iter()
        .enumerate()
        .map(|(n, s)| template_key(s, n).0)
        .collect();
    let mut tables: BTreeMap<String, FoundTable> = BTreeMap::new();
    for leaf in leaves {
        let parts: Vec<&str> = leaf.dir.split('/').filter(|s| !s.is_empty()).collect();
        let mut captures = Vec::new();
        let matched = parts.len() == segments.len()
            && segments
                .iter()
                .zip(&parts)
                .all(|(s, p)| match segment_match(s, p) {
                    Some(c) => {
                        captures.extend(c);
                        true
                    }
                    None => false,
                });
        if !matched {
            report.warnings.push(format!(
                "{}/ does not match the sink's key template `{template}`; left out",
                leaf.dir
            ));
            continue;
        }
        let root = parts[..=table_at.min(parts.len() - 1)].join("/");
        let name = captures
            .iter()
            .find(|(n, _)| n == "table")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| parts[table_at.min(parts.len() - 1)].to_owned());
        tables
            .entry(root.clone())
            .or_insert_with(|| FoundTable {
                name,
                root,
                keys: Some(keys.clone()),
                leaves: Vec::new(),
            })
            .leaves
            .push(leaf);
    }
    tables.into_values().collect()
}

/// A folder name that reads as a partition value rather than a table name.
fn value_like(name: &str) -> bool {
    name.contains('=') || name.starts_with(|c: char| c.is_ascii_digit())
}

/// The format (name, gzip) and column names of a group of sibling folders' readable files, or
/// `None` when none was read; a group whose files disagree on the format has no single schema.
fn group_schema<'a>(
    leaves: &[&'a Leaf],
) -> Option<Option<(&'static str, bool, BTreeSet<&'a str>)>> {
    let mut format: Option<(&'static str, bool)> = None;
    let mut names = BTreeSet::new();
    for schema in leaves.iter().flat_map(|l| l.reads.iter().flatten()) {
        let this = (schema.kind.name(), schema.gzip);
        if format.is_some_and(|f| f != this) {
            return Some(None);
        }
        format = Some(this);
        names.extend(schema.columns.iter().map(|(n, _)| n.as_str()));
    }
    format.map(|(kind, gzip)| Some((kind, gzip, names)))
}

/// Glue's schema similarity, for sibling folders to be partitions of one table: the same format
/// and compression, each folder sharing more than 70% of its columns with the first (counted
/// against the folder with more columns: 8 shared of 10 and 10 is 80%), and no more than
/// [`MAX_SCHEMA_CLUSTERS`] different schemas among them.
fn compatible(groups: &[Vec<&Leaf>]) -> bool {
    let mut schemas = Vec::new();
    for group in groups {
        match group_schema(group) {
            None => {}
            Some(None) => return false,
            Some(Some(schema)) => schemas.push(schema),
        }
    }
    let Some((kind, gzip, first)) = schemas.first() else {
        return true;
    };
    let distinct: BTreeSet<&BTreeSet<&str>> = schemas.iter().map(|(_, _, names)| names).collect();
    distinct.len() <= MAX_SCHEMA_CLUSTERS
        && schemas.iter().skip(1).all(|(k, g, names)| {
            let shared = first.intersection(names).count();
            let larger = first.len().max(names.len()).max(1);
            k == kind && g == gzip && shared * 10 > larger * 7
        })
}

/// Decides where tables start below `root` (see the module docs).
fn split(
    root: &str,
    leaves: Vec<Leaf>,
    table_level: Option<usize>,
    depth: usize,
    out: &mut Vec<FoundTable>,
) {
    if leaves.is_empty() {
        return;
    }
    let child_of = |leaf: &Leaf| -> Option<String> {
        let rest = if root.is_empty() {
            leaf.dir.as_str()
        } else {
            leaf.dir.strip_prefix(root)?.strip_prefix('/').unwrap_or("")
        };
        rest.split('/').find(|s| !s.is_empty()).map(str::to_owned)
    };
    let mut children: BTreeMap<String, Vec<&Leaf>> = BTreeMap::new();
    let mut here = false;
    for leaf in &leaves {
        match child_of(leaf) {
            Some(c) => children.entry(c).or_default().push(leaf),
            None => here = true,
        }
    }
    let is_table = match table_level {
        Some(level) => depth >= level,
        None => {
            here || children.keys().all(|c| value_like(c))
                || (children.len() >= 2
                    && compatible(&children.values().cloned().collect::<Vec<_>>()))
        }
    };
    if is_table || children.is_empty() {
        let name = root
            .rsplit('/')
            .find(|s| !s.is_empty())
            .unwrap_or("table")
            .to_owned();
        out.push(FoundTable {
            name,
            root: root.to_owned(),
            keys: None,
            leaves,
        });
        return;
    }
    let mut grouped: BTreeMap<String, Vec<Leaf>> = BTreeMap::new();
    for leaf in leaves {
        if let Some(c) = child_of(&leaf) {
            grouped.entry(c).or_default().push(leaf);
        }
    }
    for (child, leaves) in grouped {
        let path = if root.is_empty() {
            child
        } else {
            format!("{root}/{child}")
        };
        split(&path, leaves, table_level, depth + 1, out);
    }
}

/// Table names as Glue writes them: lowercase letters, digits and `_`.
pub fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "table".to_owned() } else { s }
}

/// The table's name, suffixed with a hash of its location when another table in the database
/// (catalogued earlier, or found in this crawl) has the name for another location.
fn unique_name(
    name: &str,
    root: &str,
    target: &CrawlTarget,
    existing: &[CatalogTable],
    seen: &BTreeSet<String>,
) -> String {
    let location = format!("{}{root}/", target.base_url);
    let taken_elsewhere = existing
        .iter()
        .any(|t| t.name == name && t.location != location);
    if !taken_elsewhere && !seen.contains(name) {
        return name.to_owned();
    }
    let hash = location.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("{name}_{:08x}", hash as u32)
}

/// The type of a partition key from its values: integers, dates, else text. Values with
/// leading zeros (`month=02`) stay text: the folder names are the values queries prune by.
fn partition_type(values: &[&str]) -> HiveType {
    let mut t = HiveType::Unknown;
    for v in values {
        let this = match infer::classify(v) {
            x @ (HiveType::Int | HiveType::BigInt | HiveType::Date) => x,
            _ => HiveType::String,
        };
        t = t.widen(&this);
    }
    if t == HiveType::Unknown {
        HiveType::String
    } else {
        t
    }
}

/// A table as the crawl found it, with what [`apply`] needs to check it against the catalog.
struct BuiltTable {
    /// The table (its columns merged over the files read).
    table: CatalogTable,
    /// The folders whose files were read, by partition location.
    folders_read: BTreeMap<String, FolderRead>,
    /// Partition locations whose files were not read (known under `recrawl: new_folders`).
    unread_folders: BTreeSet<String>,
    /// CSV files with a header row, checked against the table's final columns.
    csv_headers: Vec<CsvHeader>,
}

/// What the files of one partition folder hold.
struct FolderRead {
    /// Their columns, merged.
    columns: Vec<(String, HiveType)>,
    /// Their keys, relative to the table's location.
    keys: Vec<String>,
}

/// A CSV file's header: CSV is read by position (as Athena reads it), so it must name the
/// table's first columns in order.
struct CsvHeader {
    /// Key relative to the table's location.
    key: String,
    /// Its partition's location.
    partition: String,
    size: u64,
    names: Vec<String>,
}

/// The table-relative key of an object below `root`.
fn relative_key(root: &str, key: &str) -> String {
    if root.is_empty() {
        key.to_owned()
    } else {
        key.strip_prefix(root)
            .map(|k| k.trim_start_matches('/'))
            .unwrap_or(key)
            .to_owned()
    }
}

/// A catalog table from what the crawl found (columns merged over its files), or `None` when
/// no file could be read and no folder is catalogued already.
fn build_table(
    name: &str,
    found: FoundTable,
    target: &CrawlTarget,
    options: &CrawlOptions,
    now: DateTime<Utc>,
    report: &mut CrawlReport,
) -> Option<BuiltTable> {
    let location = if found.root.is_empty() {
        target.base_url.clone()
    } else {
        format!("{}{}/", target.base_url, found.root)
    };
    // Partition folders below the root; all must be equally deep.
    let relative = |leaf: &Leaf| -> Vec<String> {
        relative_key(&found.root, &leaf.dir)
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mut depths: BTreeMap<usize, usize> = BTreeMap::new();
    for leaf in &found.leaves {
        *depths.entry(relative(leaf).len()).or_default() += leaf.files.len();
    }
    let depth = depths
        .iter()
        .max_by_key(|(d, n)| (**n, **d))
        .map(|(d, _)| *d)
        .unwrap_or(0);
    // The format most files have (CSV with its delimiter and header) decides; files in
    // another one are left out.
    let mut formats: BTreeMap<(FileKind, bool), usize> = BTreeMap::new();
    for schema in found.leaves.iter().flat_map(|l| l.reads.iter().flatten()) {
        *formats
            .entry((schema.kind.clone(), schema.gzip))
            .or_default() += 1;
    }
    let format_key = formats
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(k, _)| k.clone());
    let table_format = format_key
        .as_ref()
        .map(|(kind, gzip)| describe_kind(kind, *gzip))
        .unwrap_or_default();
    let mut skipped: Vec<SkippedFile> = Vec::new();
    let mut skip = |key: &str, reason: String| {
        skipped.push(SkippedFile {
            key: relative_key(&found.root, key),
            reason,
        });
    };
    let mut file_schemas: Vec<(String, &FileSchema)> = Vec::new();
    let mut folders_read = BTreeMap::new();
    let mut unread_folders = BTreeSet::new();
    let mut csv_headers = Vec::new();
    let mut partitions: Vec<(Vec<String>, CatalogPartition)> = Vec::new();
    let mut hive = true;
    let mut keys: Vec<String> = found.keys.clone().unwrap_or_default();
    let mut extensions: BTreeSet<String> = BTreeSet::new();
    for leaf in &found.leaves {
        let rel = relative(leaf);
        let partition_location: String = rel.iter().map(|s| format!("{s}/")).collect();
        if rel.len() != depth {
            let why = format!(
                "{} folder levels below table `{name}` where its other files have {depth}",
                rel.len()
            );
            report
                .warnings
                .push(format!("{}/: {why}; left out", leaf.dir));
            for f in &leaf.files {
                skip(&f.key, why.clone());
            }
            continue;
        }
        // The files that belong to the table: all of them in a folder not read.
        let mut included: Vec<&Object> = Vec::new();
        let mut columns: Vec<(String, HiveType)> = Vec::new();
        let mut other_format: Option<&'static str> = None;
        if leaf.reads.is_empty() {
            included.extend(&leaf.files);
            unread_folders.insert(partition_location.clone());
        }
        for (file, read) in leaf.files.iter().zip(&leaf.reads) {
            match read {
                Err(e) => skip(&file.key, format!("no classifier recognises it: {e}")),
                Ok(s) if Some((s.kind.clone(), s.gzip)) != format_key => {
                    other_format = Some(s.kind.name());
                    let reason = format!(
                        "{} where the table has {table_format}",
                        describe_kind(&s.kind, s.gzip)
                    );
                    skip(&file.key, reason);
                }
                Ok(s) => {
                    included.push(file);
                    columns = merge_fields(&columns, &s.columns);
                    file_schemas.push((file.key.clone(), s));
                    if let FileKind::Csv { header: true, .. } = s.kind {
                        csv_headers.push(CsvHeader {
                            key: relative_key(&found.root, &file.key),
                            partition: partition_location.clone(),
                            size: file.size,
                            names: s.columns.iter().map(|(n, _)| n.clone()).collect(),
                        });
                    }
                }
            }
        }
        if included.is_empty() {
            let why = match other_format {
                Some(kind) => format!("holds {kind} files where table `{name}` has {table_format}"),
                None => format!("holds no file readable as table `{name}`'s format"),
            };
            report
                .warnings
                .push(format!("{}/ {why}; left out", leaf.dir));
            continue;
        }
        if !leaf.reads.is_empty() {
            let keys = included
                .iter()
                .map(|f| relative_key(&found.root, &f.key))
                .collect();
            folders_read.insert(partition_location.clone(), FolderRead { columns, keys });
        }
        let mut values = Vec::new();
        for (n, segment) in rel.iter().enumerate() {
            match segment.split_once('=') {
                Some((k, v)) if found.keys.is_none() => {
                    if keys.len() <= n {
                        keys.push(k.to_owned());
                    }
                    values.push(v.to_owned());
                }
                Some((_, v)) if found.keys.is_some() => values.push(v.to_owned()),
                _ => {
                    hive = false;
                    if keys.len() <= n {
                        keys.push(format!("partition_{n}"));
                    }
                    values.push(segment.clone());
                }
            }
        }
        for f in &included {
            let file = f.key.rsplit('/').next().unwrap_or("");
            extensions.insert(extension_of(file));
        }
        partitions.push((
            rel.clone(),
            CatalogPartition {
                values,
                location: partition_location,
                files: included.len() as u64,
                bytes: included.iter().map(|f| f.size).sum(),
                last_modified: included.iter().map(|f| f.modified).max(),
            },
        ));
    }
    // Template keys: Hive only when every partition folder is `key=value`.
    if let Some(template_keys) = &found.keys {
        keys = template_keys.clone();
        hive = partitions.iter().all(|(rel, _)| {
            rel.iter()
                .zip(&keys)
                .all(|(s, k)| s.starts_with(&format!("{k}=")))
        });
    }
    if depth == 0 {
        hive = false;
        keys.clear();
    }
    keys.truncate(depth);
    if partitions.is_empty() {
        return None;
    }
    // CSV is read by position: the longest header gives the order, shorter ones (older files)
    // end early and read the columns after theirs as NULL.
    file_schemas.sort_by_key(|(_, s)| std::cmp::Reverse(s.columns.len()));
    let columns = file_schemas
        .iter()
        .fold(Vec::new(), |all, (_, s)| merge_fields(&all, &s.columns));
    // No file read: every folder was known (new_folders); nothing new to learn.
    let (format, schema_version) = match &format_key {
        Some((kind, gzip)) => {
            let (delimiter, header) = match kind {
                FileKind::Csv { delimiter, header } => (Some(*delimiter as char), Some(*header)),
                _ => (None, None),
            };
            let format = CatalogFormat {
                kind: kind.name().to_owned(),
                compression: gzip.then(|| "gzip".to_owned()),
                delimiter,
                header,
                extension: (extensions.len() == 1)
                    .then(|| extensions.into_iter().next())
                    .flatten()
                    .filter(|e| !e.is_empty()),
            };
            (format, 1)
        }
        None => (
            CatalogFormat {
                kind: String::new(),
                compression: None,
                delimiter: None,
                header: None,
                extension: None,
            },
            0,
        ),
    };
    let table = CatalogTable {
        database: options.database.clone(),
        name: name.to_owned(),
        location,
        storage: target.storage.clone(),
        format,
        columns: columns
            .into_iter()
            .map(|(name, t)| CatalogColumn {
                name,
                data_type: t.to_string(),
            })
            .collect(),
        partition_keys: key_columns(&keys, &partitions),
        hive_partitions: hive,
        partitions: partitions.into_iter().map(|(_, p)| p).collect(),
        skipped_files: skipped,
        schema_version,
        status: TableStatus::Active,
        created_at: now,
        updated_at: now,
        last_crawl: None,
    };
    Some(BuiltTable {
        table,
        folders_read,
        unread_folders,
        csv_headers,
    })
}

/// A file format as people name it: `csv (delimiter ';', header)`, `json (gzip)`.
fn describe_kind(kind: &FileKind, gzip: bool) -> String {
    let mut out = match kind {
        FileKind::Csv { delimiter, header } => format!(
            "csv (delimiter {:?}, {})",
            *delimiter as char,
            if *header { "header" } else { "no header" }
        ),
        other => other.name().to_owned(),
    };
    if gzip {
        out.push_str(" gzip");
    }
    out
}

fn key_columns(
    keys: &[String],
    partitions: &[(Vec<String>, CatalogPartition)],
) -> Vec<CatalogColumn> {
    keys.iter()
        .enumerate()
        .map(|(i, k)| {
            let values: Vec<&str> = partitions
                .iter()
                .filter_map(|(_, p)| p.values.get(i).map(String::as_str))
                .collect();
            CatalogColumn {
                name: k.clone(),
                data_type: partition_type(&values).to_string(),
            }
        })
        .collect()
}

/// `.csv.gz` for `part-1.csv.gz`: the last extension, with the one before it when the last is
/// a compression suffix.
fn extension_of(file: &str) -> String {
    let mut parts = file.rsplitn(3, '.');
    let last = parts.next().unwrap_or("");
    let before = parts.next();
    match (before, parts.next()) {
        (Some(b), Some(_)) if matches!(last, "gz" | "gzip") => format!(".{b}.{last}"),
        (Some(_), _) => format!(".{last}"),
        _ => String::new(),
    }
}

/// Records a found table in the catalog by the schema-change policy.
fn apply(
    built: BuiltTable,
    old: Option<&CatalogTable>,
    options: &CrawlOptions,
    catalog: &dyn CatalogStore,
) -> Result<TableReport> {
    let BuiltTable {
        table: mut found,
        folders_read,
        unread_folders,
        csv_headers,
    } = built;
    let now = found.updated_at;
    let save = |t: &CatalogTable| {
        catalog
            .save_table(t)
            .map_err(|e| Error::user(e.to_string()))
    };
    let Some(old) = old else {
        if found.schema_version == 0 {
            return Ok(TableReport {
                table: found.name.clone(),
                action: "unchanged".to_owned(),
                partitions: 0,
                files: 0,
                bytes: 0,
                changes: vec!["no readable files; not catalogued".to_owned()],
            });
        }
        let mut changes = vec![format!(
            "created: {} columns, {} partition keys, {} partitions",
            found.columns.len(),
            found.partition_keys.len(),
            partition_count(&found)
        )];
        let columns = found.columns.clone();
        changes.extend(skip_misplaced_csv(&mut found, &columns, &csv_headers));
        found.last_crawl = Some(crawl_record(options, now, changes.clone()));
        save(&found)?;
        return Ok(TableReport {
            table: found.name.clone(),
            action: "created".to_owned(),
            partitions: partition_count(&found),
            files: found.files(),
            bytes: found.bytes(),
            changes,
        });
    };
    let policy = effective_policy(options);
    let mut changes = Vec::new();
    // Columns: old ones first (vanished ones stay), widened; new ones appended.
    let mut merged: Vec<(String, HiveType)> = old
        .columns
        .iter()
        .map(|c| (c.name.clone(), parse_type(&c.data_type)))
        .collect();
    if found.schema_version > 0 {
        for c in &found.columns {
            let t = parse_type(&c.data_type);
            match merged.iter_mut().find(|(n, _)| *n == c.name) {
                Some((_, existing)) => {
                    let widened = existing.widen(&t);
                    if widened != *existing {
                        changes.push(format!(
                            "column {} changed type {existing} -> {widened}",
                            c.name
                        ));
                        *existing = widened;
                    }
                }
                None => {
                    changes.push(format!("added column {} {t}", c.name));
                    merged.push((c.name.clone(), t));
                }
            }
        }
        for c in &old.columns {
            if !found.columns.iter().any(|f| f.name == c.name)
                && options.recrawl == RecrawlPolicy::All
            {
                changes.push(format!("column {} no longer found; kept", c.name));
            }
        }
        if found.format != old.format && !old.format.kind.is_empty() {
            changes.push(format!(
                "format changed {} -> {}",
                describe_format(&old.format),
                describe_format(&found.format)
            ));
        }
    }
    if found
        .partition_keys
        .iter()
        .map(|k| &k.name)
        .ne(old.partition_keys.iter().map(|k| &k.name))
    {
        changes.push(format!(
            "partition keys changed ({}) -> ({})",
            old.partition_keys
                .iter()
                .map(|k| k.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            found
                .partition_keys
                .iter()
                .map(|k| k.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    } else {
        // Widen partition key types too (a new partition `x` turns int keys into strings).
        for (f, o) in found.partition_keys.iter_mut().zip(&old.partition_keys) {
            let widened = parse_type(&o.data_type).widen(&parse_type(&f.data_type));
            if widened.to_string() != o.data_type {
                changes.push(format!(
                    "partition key {} changed type {} -> {widened}",
                    f.name, o.data_type
                ));
            }
            f.data_type = widened.to_string();
        }
    }
    let schema_changed = !changes.is_empty();
    let apply_changes = schema_changed && policy != SchemaChangePolicy::Log;
    let mut table = old.clone();
    table.partitions = found.partitions.clone();
    table.updated_at = now;
    table.status = TableStatus::Active;
    table.location = found.location.clone();
    table.storage = found.storage.clone();
    // Files in folders not read this time keep the reasons they were skipped for.
    table.skipped_files = old
        .skipped_files
        .iter()
        .filter(|s| unread_folders.contains(&folder_location(&s.key)))
        .cloned()
        .chain(found.skipped_files.iter().cloned())
        .collect();
    let mut notes = Vec::new();
    if apply_changes {
        table.columns = merged
            .into_iter()
            .map(|(name, t)| CatalogColumn {
                name,
                data_type: t.to_string(),
            })
            .collect();
        if found.schema_version > 0 {
            table.format = found.format.clone();
        }
        table.partition_keys = found.partition_keys.clone();
        table.hive_partitions = found.hive_partitions;
        table.schema_version = old.schema_version + 1;
    } else {
        changes = changes
            .into_iter()
            .map(|c| format!("not applied ({}): {c}", log_reason(options)))
            .collect();
        // A new folder whose files the old columns cannot hold is not added: its rows would not
        // read (Glue's incremental crawls leave such objects out and log them).
        notes.extend(leave_out_incompatible_folders(
            &mut table,
            old,
            &folders_read,
        ));
    }
    let columns = table.columns.clone();
    notes.extend(skip_misplaced_csv(&mut table, &columns, &csv_headers));
    let added_partitions = table
        .partitions
        .iter()
        .filter(|p| !old.partitions.iter().any(|o| o.location == p.location))
        .count();
    let removed_partitions = old
        .partitions
        .iter()
        .filter(|p| !table.partitions.iter().any(|o| o.location == p.location))
        .count();
    if added_partitions > 0 {
        notes.insert(0, format!("added {added_partitions} partitions"));
    }
    if removed_partitions > 0 {
        notes.push(format!(
            "{removed_partitions} partitions no longer found; removed"
        ));
    }
    if old.status == TableStatus::Deprecated {
        notes.push("data found again; no longer deprecated".to_owned());
    }
    let action = if apply_changes || !notes.is_empty() {
        "updated"
    } else {
        "unchanged"
    };
    changes.extend(notes);
    table.last_crawl = Some(crawl_record(options, now, changes.clone()));
    save(&table)?;
    Ok(TableReport {
        table: table.name.clone(),
        action: action.to_owned(),
        partitions: partition_count(&table),
        files: table.files(),
        bytes: table.bytes(),
        changes,
    })
}

/// The partition location (`dt=1/`, or empty at the table's root) of a table-relative key.
fn folder_location(key: &str) -> String {
    match parent_of(key) {
        "" => String::new(),
        dir => format!("{dir}/"),
    }
}

fn parse_type(name: &str) -> HiveType {
    HiveType::parse(name).unwrap_or(HiveType::String)
}

/// Removes the new partitions of `table` whose columns have a type its columns cannot hold
/// (`id` string where the table has `int`); their files become skipped files. Returns a note
/// for each.
fn leave_out_incompatible_folders(
    table: &mut CatalogTable,
    old: &CatalogTable,
    folders_read: &BTreeMap<String, FolderRead>,
) -> Vec<String> {
    let mut notes = Vec::new();
    let mut kept = Vec::new();
    for partition in std::mem::take(&mut table.partitions) {
        let is_new = !old
            .partitions
            .iter()
            .any(|o| o.location == partition.location);
        let read = folders_read.get(&partition.location).filter(|_| is_new);
        let conflict = read.and_then(|read| {
            read.columns.iter().find_map(|(name, t)| {
                let column = old.columns.iter().find(|c| &c.name == name)?;
                let existing = parse_type(&column.data_type);
                (existing.widen(t) != existing)
                    .then(|| format!("column {name} is {t} where the table has {existing}"))
            })
        });
        match (conflict, read) {
            (Some(why), Some(read)) => {
                notes.push(format!(
                    "folder {} not added: {why} (the schema is only logged)",
                    partition.location
                ));
                table
                    .skipped_files
                    .extend(read.keys.iter().map(|key| SkippedFile {
                        key: key.clone(),
                        reason: why.clone(),
                    }));
            }
            _ => kept.push(partition),
        }
    }
    table.partitions = kept;
    notes
}

/// Skips the CSV files whose header does not name `columns`' first columns in order: CSV is
/// read by position, as Athena reads it, so such a file would put values under the wrong
/// names. Their partitions' counts go down; returns a note for each.
fn skip_misplaced_csv(
    table: &mut CatalogTable,
    columns: &[CatalogColumn],
    headers: &[CsvHeader],
) -> Vec<String> {
    let mut notes = Vec::new();
    for header in headers {
        let in_order = header.names.len() <= columns.len()
            && header.names.iter().zip(columns).all(|(n, c)| *n == c.name);
        if in_order {
            continue;
        }
        let Some(partition) = table
            .partitions
            .iter_mut()
            .find(|p| p.location == header.partition)
        else {
            continue;
        };
        partition.files = partition.files.saturating_sub(1);
        partition.bytes = partition.bytes.saturating_sub(header.size);
        let reason = format!(
            "its header ({}) is not the table's first columns in order ({}); CSV is read by position",
            header.names.join(", "),
            columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        notes.push(format!("{}: left out: {reason}", header.key));
        table.skipped_files.push(SkippedFile {
            key: header.key.clone(),
            reason,
        });
    }
    table.partitions.retain(|p| p.files > 0);
    notes
}

/// Partitions as users count them: an unpartitioned table has none (its one folder is kept
/// as a partition without values, for its file count and size).
pub fn partition_count(t: &CatalogTable) -> usize {
    if t.partition_keys.is_empty() {
        0
    } else {
        t.partitions.len()
    }
}

fn describe_format(f: &CatalogFormat) -> String {
    match &f.compression {
        Some(c) => format!("{} ({c})", f.kind),
        None => f.kind.clone(),
    }
}

/// Runs crawler step `name` of `pipeline`: crawls every input sink's output by its key
/// template into the crawler's database.
pub async fn run_step(
    pipeline: &Pipeline,
    name: &str,
    spec: &CatalogCrawler,
    connections: &Connections,
    catalog: &dyn CatalogStore,
    run_id: Option<&str>,
) -> Result<CrawlReport> {
    let mut targets = Vec::new();
    for input in &spec.inputs {
        let mut csv_null_value = String::new();
        let (connection, prefix, layout) = match pipeline.sinks.get(input) {
            Some(Sink::ObjectStore(sink)) => {
                if let Format::Csv(csv) = &sink.format {
                    csv_null_value = csv.null_value.clone();
                }
                (
                    &sink.connection,
                    String::new(),
                    Layout::Template(sink.key.clone()),
                )
            }
            // A delivery stream's prefix up to its first expression is one table; the folders
            // its timestamps make below it are plain partitions.
            Some(Sink::Firehose(sink)) => {
                let fixed = sink.prefix.split("!{").next().unwrap_or_default();
                let folder = fixed.rsplit_once('/').map(|(f, _)| f).unwrap_or_default();
                (
                    &sink.connection,
                    folder.to_owned(),
                    Layout::Guess {
                        table_level: Some(0),
                    },
                )
            }
            None => return Err(Error::user(format!("input `{input}` is not a sink"))),
        };
        let handle = connections.object_store(connection)?;
        let (base_url, storage) = connections.catalog_location(connection)?;
        targets.push(CrawlTarget {
            store: handle.store.clone(),
            base: handle.prefix.clone(),
            base_url,
            storage,
            prefix,
            layout,
            csv_null_value,
        });
    }
    let options = CrawlOptions {
        database: spec.database.clone(),
        crawler: format!("{}/{name}", pipeline.name),
        run_id: run_id.map(str::to_owned),
        table_prefix: spec.table_prefix.clone().unwrap_or_default(),
        schema_change: spec.schema_change,
        recrawl: spec.recrawl,
        include: spec.include.clone(),
        exclude: spec.exclude.clone(),
    };
    let report = crawl(&targets, &options, catalog).await?;
    for w in &report.warnings {
        tracing::warn!(crawler = %name, "{w}");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*.csv", "a.csv"));
        assert!(!glob_match("*.csv", "x/a.csv"));
        assert!(glob_match("**/*.csv", "x/y/a.csv"));
        assert!(glob_match("**/*.csv", "a.csv"));
        assert!(glob_match("film/**", "film/a/b.parquet"));
        assert!(!glob_match("film/**", "films/a"));
    }

    #[test]
    fn template_segments() {
        assert_eq!(
            segment_match("dt={date}", "dt=2026-11-26"),
            Some(vec![("date".to_owned(), "2026-11-26".to_owned())])
        );
        assert_eq!(segment_match("dt={date}", "x=1"), None);
        assert_eq!(
            segment_match("{schema}_{table}", "main_film"),
            Some(vec![
                ("schema".to_owned(), "main".to_owned()),
                ("table".to_owned(), "film".to_owned())
            ])
        );
        assert_eq!(template_key("dt={date}", 0), ("dt".to_owned(), true));
        assert_eq!(template_key("{date}", 0), ("date".to_owned(), false));
        assert_eq!(
            template_key("v{run_id}", 1),
            ("partition_1".to_owned(), false)
        );
        assert_eq!(static_prefix("landing/{schema}/{table}/"), "landing");
    }

    fn leaf(dir: &str, columns: &[&str]) -> Leaf {
        Leaf {
            dir: dir.to_owned(),
            files: Vec::new(),
            reads: vec![Ok(FileSchema {
                kind: FileKind::Json,
                gzip: false,
                columns: columns
                    .iter()
                    .map(|c| ((*c).to_owned(), HiveType::Int))
                    .collect(),
            })],
        }
    }

    #[test]
    fn similarity_is_glues_measure() {
        let ten = |extra: [&'static str; 2]| {
            let mut c = vec!["a", "b", "c", "d", "e", "f", "g", "h"];
            c.extend(extra);
            c
        };
        let eu = leaf("eu", &ten(["i", "j"]));
        let us = leaf("us", &ten(["k", "l"]));
        assert!(compatible(&[vec![&eu], vec![&us]]), "8 of 10 and 10 is 80%");
        let seven = leaf("x", &["a", "b", "c", "d", "e", "f", "g", "x", "y", "z"]);
        assert!(
            !compatible(&[vec![&eu], vec![&seven]]),
            "7 of 10 is not more than 70%"
        );
        // Six slightly different schemas are more than Glue's five clusters.
        let leaves: Vec<Leaf> = (0..6)
            .map(|i| {
                let mut c: Vec<String> = (0..20).map(|n| format!("c{n}")).collect();
                c.push(format!("only{i}"));
                let names: Vec<&str> = c.iter().map(String::as_str).collect();
                leaf(&format!("p{i}"), &names)
            })
            .collect();
        let groups: Vec<Vec<&Leaf>> = leaves.iter().map(|l| vec![l]).collect();
        assert!(!compatible(&groups));
        assert!(compatible(&groups[..5]));
    }

    #[test]
    fn extensions() {
        assert_eq!(extension_of("part-1.csv.gz"), ".csv.gz");
        assert_eq!(extension_of("part-1.parquet"), ".parquet");
        assert_eq!(extension_of("noext"), "");
        assert_eq!(extension_of("a.gz"), ".gz");
    }
}
