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
//! A folder holding a `_delta_log/` is a Delta table root, whoever wrote it: it is catalogued
//! from its log (columns with their nullability, partition columns, version, files and bytes
//! of that version), never from the files under it, which may include removed ones.
//!
//! Every file's schema is read (a Parquet footer, or the first 256 KiB of a text file) and the
//! table's columns are their union; a file no classifier recognises is reported by key and left
//! out (recorded in the table's `skipped_files`, which queries do not read).

pub mod glob;
pub mod infer;
pub mod types;

mod delta;
mod layout;
mod list;
mod policy;
mod sample;
mod table;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Utc;
use object_store::ObjectStore;
use object_store::path::Path as StorePath;
use pipectl_spec::types::{CatalogCrawler, Pipeline, RecrawlPolicy, SchemaChangePolicy};
use pipectl_state::{CatalogStorage, CatalogStore};

use crate::connect::Connections;
use crate::error::{Error, Result};
use crate::sink::SinkOutput;
pub use glob::glob_match;
use layout::{by_template, group_leaves, split, unique_name, warn_empty_folders};
pub use layout::{sanitize, static_prefix};
pub use list::{DataObject, list_data_objects};
use list::{Listing, list};
pub use policy::partition_count;
use policy::{apply, deprecate_missing};
use sample::sample;
use table::build_table;

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
        let Listing {
            objects,
            empty,
            delta_roots,
        } = list(target, &listed_prefix, options).await?;
        report.objects += objects.len() as u64;
        // A Delta table is catalogued from its log, whatever the layout says.
        for root in &delta_roots {
            let last = root.rsplit('/').next().unwrap_or_default();
            let base_name = if last.is_empty() {
                target
                    .base_url
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or("table")
            } else {
                last
            };
            let name = unique_name(
                &format!("{}{}", options.table_prefix, sanitize(base_name)),
                root,
                target,
                &existing,
                &seen_tables,
            );
            seen_tables.insert(name.clone());
            let old = existing.iter().find(|t| t.name == name);
            match delta::catalogue(&name, root, target, options, old, now, catalog).await {
                Ok(table_report) => report.tables.push(table_report),
                Err(e) => report.warnings.push(e.to_string()),
            }
        }
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
    deprecate_missing(&existing, &seen_tables, options, now, catalog, &mut report)?;
    Ok(report)
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
        let Some(sink) = pipeline.sinks.get(input) else {
            return Err(Error::user(format!("input `{input}` is not a sink")));
        };
        let connector = crate::sink::connector(sink);
        let SinkOutput {
            connection,
            prefix,
            layout,
            csv_null_value,
            ..
        } = connector.output();
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
