//! SQL over the catalogued lake: every catalogued table becomes a DataFusion table in a schema
//! named after its database, reading its files where the crawler found them.
//!
//! Hive-style partitions (`year=2026/`) are partition columns of a listing table, so a `WHERE`
//! on them lists and reads only the matching folders. Plain-folder partitions (`2026/11/`)
//! become a union of one listing table per folder with the values as constant columns; a
//! `WHERE` on them folds the other folders' branches away before any file is read.
//!
//! Files the crawler left out of a table are hidden from its listings. When a query fails, the
//! files it read are checked one by one, so the error names the file that cannot be read (as
//! Athena's HIVE_CANNOT_OPEN_SPLIT does); with `skip_unreadable` those files are left out and
//! the query runs again.
//!
//! Delta tables (format `delta`) are read through pipectl-delta's DataFusion table, at their
//! newest version or at [`AsOf`] (time travel): their log says which files make the version,
//! a `WHERE` on partition columns skips other partitions' files, and file statistics skip
//! files whose values cannot match.
//!
//! A leaf crate: only the CLI depends on it, so DataFusion never slows the other crates' builds.
#![warn(missing_docs, unreachable_pub)]

mod output;
mod store;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider, Session};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{ScalarValue, plan_err};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl, PartitionedFile,
};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::TaskContext;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{Expr, col, lit};
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::{FutureExt, StreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use pipectl_delta::store::S3Settings;
use pipectl_delta::{DeltaTable, TableLocation, parquet_footer_schema};
use pipectl_state::hive_type::HiveType;
use pipectl_state::{CatalogTable, TableStatus};

use store::{HidingStore, hiding_store};

pub use output::{OutputFormat, render};
pub use pipectl_delta::AsOf;

/// Files checked at once when a query failed.
const CHECK_CONCURRENCY: usize = 8;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A catalogued table cannot be set up (bad location, unknown type, unreachable store).
    #[error("table {table}: {message}")]
    Table {
        /// `database.table`.
        table: String,
        /// What is wrong.
        message: String,
    },
    /// A file of a table cannot be read (Athena: HIVE_CANNOT_OPEN_SPLIT).
    #[error(
        "cannot read {file} (table {table}): {reason}{}; leave unreadable files out with --skip-unreadable",
        if *others > 0 { format!(" (and {others} more unreadable files)") } else { String::new() }
    )]
    Unreadable {
        /// The file's URL.
        file: String,
        /// `database.table`.
        table: String,
        /// What reading it said.
        reason: String,
        /// Other files of the query that cannot be read either.
        others: usize,
    },
    /// The SQL is invalid or failed while running.
    #[error("{0}")]
    Sql(String),
}

/// A file a query left out because it cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableFile {
    /// The file's URL.
    pub url: String,
    /// `database.table`.
    pub table: String,
    /// What reading it said.
    pub reason: String,
}

/// A query's result.
pub struct QueryOutput {
    /// The result's columns.
    pub schema: SchemaRef,
    /// Its rows.
    pub batches: Vec<RecordBatch>,
    /// Files left out because they cannot be read (only with `skip_unreadable`).
    pub skipped: Vec<UnreadableFile>,
}

/// Everything a query needs: the catalogued tables and the default database.
pub struct Lake {
    ctx: SessionContext,
    /// Delta tables, opened (at `as_of`) when a query names them: their log is read then.
    delta: Vec<DeltaEntry>,
    /// The version Delta tables are read at.
    as_of: AsOf,
    /// The stores tables are read through, by store URL (`file://`, `s3://bucket`).
    stores: BTreeMap<String, Arc<HidingStore>>,
    /// Each active table's location with its `database.table`, to name a file's table.
    locations: Vec<(String, String)>,
}

/// Name of DataFusion's catalog the databases live in.
const CATALOG: &str = "datafusion";

impl Lake {
    /// Registers `tables`. `database` is the schema unqualified names resolve in; `env`
    /// resolves `${env:NAME}` credentials of S3 tables. A deprecated table answers every query
    /// with an error saying since which crawl.
    pub fn new(
        tables: &[CatalogTable],
        database: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Lake, QueryError> {
        let default_schema = database.unwrap_or("default").to_owned();
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_default_catalog_and_schema(CATALOG, &default_schema);
        // Column names keep their case (`eventType`), as the files have them.
        config.options_mut().sql_parser.enable_ident_normalization = false;
        // Footers are read when a scan runs, not while planning, so a corrupt one fails where
        // the files it read can be checked.
        config.options_mut().execution.collect_statistics = false;
        // No listing is cached: a query that leaves unreadable files out lists again.
        let runtime = RuntimeEnvBuilder::new()
            .with_cache_manager(CacheManagerConfig::default().with_list_files_cache_limit(0))
            .build_arc()
            .map_err(|e| QueryError::Sql(e.to_string()))?;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        let catalog = ctx
            .catalog(CATALOG)
            .ok_or_else(|| QueryError::Sql("no catalog".into()))?;
        let mut schemas: BTreeMap<String, Arc<MemorySchemaProvider>> = BTreeMap::new();
        schemas.insert(
            default_schema.clone(),
            Arc::new(MemorySchemaProvider::new()),
        );
        let mut stores = BTreeMap::new();
        stores.insert(
            "file://".to_owned(),
            Arc::new(hiding_store(Arc::new(LocalFileSystem::new()))),
        );
        for table in tables {
            schemas
                .entry(table.database.clone())
                .or_insert_with(|| Arc::new(MemorySchemaProvider::new()));
            if table.status != TableStatus::Active {
                continue;
            }
            if let Some(rest) = table.location.strip_prefix("s3://") {
                let bucket = rest.split('/').next().unwrap_or_default();
                if let std::collections::btree_map::Entry::Vacant(entry) =
                    stores.entry(format!("s3://{bucket}"))
                {
                    entry.insert(Arc::new(hiding_store(s3_store(bucket, table, &env)?)));
                }
            }
        }
        for (key, store) in &stores {
            let url = url::Url::parse(key).map_err(|e| QueryError::Sql(e.to_string()))?;
            ctx.register_object_store(&url, store.clone());
        }
        for (name, schema) in &schemas {
            catalog
                .register_schema(name, schema.clone())
                .map_err(|e| QueryError::Sql(e.to_string()))?;
        }
        let mut delta = Vec::new();
        for table in tables {
            if table.status == TableStatus::Active && table.format.kind == DELTA {
                delta.push(DeltaEntry {
                    table: table.clone(),
                    location: delta_location(table, &stores)?,
                });
            }
        }
        let lake = Lake {
            ctx,
            delta,
            as_of: AsOf::Latest,
            stores,
            locations: tables
                .iter()
                .filter(|t| t.status == TableStatus::Active)
                .map(|t| (t.location.clone(), format!("{}.{}", t.database, t.name)))
                .collect(),
        };
        for table in tables {
            let provider = match table.status {
                TableStatus::Deprecated => Arc::new(DeprecatedTable::new(table)) as _,
                TableStatus::Active if table.format.kind.is_empty() => continue,
                TableStatus::Active if table.format.kind == DELTA => continue,
                TableStatus::Active => {
                    for skipped in &table.skipped_files {
                        lake.hide(&format!("{}{}", table.location, skipped.key));
                    }
                    lake.provider(table)?
                }
            };
            if let Some(schema) = schemas.get(&table.database) {
                schema
                    .register_table(table.name.clone(), provider)
                    .map_err(|e| table_error(table, e))?;
            }
        }
        Ok(lake)
    }

    /// Runs one SQL statement and collects its result. When it fails, the files it read are
    /// checked one by one: an unreadable one is named in the error, or, with
    /// `skip_unreadable`, left out (reported in [`QueryOutput::skipped`]) and the query run
    /// again.
    pub async fn query(&self, sql: &str, skip_unreadable: bool) -> Result<QueryOutput, QueryError> {
        self.open_delta_tables(sql).await?;
        let df = self
            .ctx
            .sql(sql)
            .await
            .map_err(|e| QueryError::Sql(e.to_string()))?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let mut skipped = Vec::new();
        // Each round hides at least one more file, so this ends.
        loop {
            let plan = df
                .clone()
                .create_physical_plan()
                .await
                .map_err(|e| QueryError::Sql(e.to_string()))?;
            let failure = match run(plan.clone(), self.ctx.task_ctx()).await {
                Ok(batches) => {
                    return Ok(QueryOutput {
                        schema,
                        batches,
                        skipped,
                    });
                }
                Err(failure) => failure,
            };
            let unreadable = self.unreadable_files(&plan).await;
            let Some(first) = unreadable.first() else {
                return Err(QueryError::Sql(failure));
            };
            if !skip_unreadable {
                return Err(QueryError::Unreadable {
                    file: first.url.clone(),
                    table: first.table.clone(),
                    reason: first.reason.clone(),
                    others: unreadable.len() - 1,
                });
            }
            for file in unreadable {
                self.hide(&file.url);
                skipped.push(file);
            }
        }
    }

    /// Reads Delta tables at `as_of` (time travel) instead of their newest version.
    pub fn with_as_of(mut self, as_of: AsOf) -> Self {
        self.as_of = as_of;
        self
    }

    /// Registers the Delta tables `sql` names, each opened at `as_of` from its log (so a
    /// query sees the version committed when it starts). A version a table does not have is
    /// an error naming the table and its newest version.
    async fn open_delta_tables(&self, sql: &str) -> Result<(), QueryError> {
        if self.delta.is_empty() {
            return match self.as_of {
                AsOf::Latest => Ok(()),
                _ => Err(QueryError::Sql(
                    "--as-of reads Delta tables at an earlier version, and the catalog has no Delta table; crawl one first".to_owned(),
                )),
            };
        }
        let state = self.ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let statement = state
            .sql_to_statement(sql, &dialect)
            .map_err(|e| QueryError::Sql(e.to_string()))?;
        let references = state
            .resolve_table_references(&statement)
            .map_err(|e| QueryError::Sql(e.to_string()))?;
        let default_schema = state.config().options().catalog.default_schema.clone();
        let mut named = 0;
        for entry in &self.delta {
            let table = &entry.table;
            let referenced = references.iter().any(|r| {
                r.table() == table.name
                    && r.schema().unwrap_or(default_schema.as_str()) == table.database
            });
            if !referenced {
                continue;
            }
            named += 1;
            let provider = self.delta_provider(entry).await?;
            let schema = self
                .ctx
                .catalog(CATALOG)
                .and_then(|c| c.schema(&table.database))
                .ok_or_else(|| table_error(table, "its database is not registered"))?;
            schema
                .deregister_table(&table.name)
                .map_err(|e| table_error(table, e))?;
            schema
                .register_table(table.name.clone(), provider)
                .map_err(|e| table_error(table, e))?;
        }
        if named == 0 && self.as_of != AsOf::Latest {
            return Err(QueryError::Sql(
                "--as-of reads Delta tables at an earlier version, and the query names none"
                    .to_owned(),
            ));
        }
        Ok(())
    }

    async fn delta_provider(
        &self,
        entry: &DeltaEntry,
    ) -> Result<Arc<dyn TableProvider>, QueryError> {
        let table = &entry.table;
        let opened = DeltaTable::open_as_of(entry.location.clone(), self.as_of).await;
        let opened = match opened {
            Ok(t) => t,
            Err(e) if self.as_of != AsOf::Latest => {
                // Which versions there are, when the table itself can be read.
                let Some(newest) = DeltaTable::open(entry.location.clone())
                    .await
                    .ok()
                    .and_then(|t| t.version())
                else {
                    return Err(table_error(table, e));
                };
                let wanted = match self.as_of {
                    AsOf::Version(v) => format!("no version {v}"),
                    AsOf::Timestamp(t) => {
                        format!("no version committed at or before {}", t.to_rfc3339())
                    }
                    AsOf::Latest => String::new(),
                };
                return Err(table_error(
                    table,
                    format!(
                        "the Delta table has {wanted} (its newest is {newest}); list its versions with `pipectl catalog history {}.{}`",
                        table.database, table.name
                    ),
                ));
            }
            Err(e) => return Err(table_error(table, e)),
        };
        // A time before the first commit loads the first version: refuse it, as a version
        // committed later than asked is not the table as it was then.
        if let (AsOf::Timestamp(t), Some(loaded)) = (self.as_of, opened.version()) {
            // The history as the newest version reads it names every commit's version.
            let newest = DeltaTable::open(entry.location.clone())
                .await
                .map_err(|e| table_error(table, e))?;
            let back = newest.version().unwrap_or(loaded).saturating_sub(loaded) as usize + 1;
            let info = newest.info(back).await.map_err(|e| table_error(table, e))?;
            if let Some(committed) = info
                .history
                .iter()
                .find(|h| h.version == loaded)
                .and_then(|h| h.timestamp)
                && committed > t
            {
                return Err(table_error(
                    table,
                    format!(
                        "the Delta table has no version committed at or before {} (its first was committed at {}); list its versions with `pipectl catalog history {}.{}`",
                        t.to_rfc3339(),
                        committed.to_rfc3339(),
                        table.database,
                        table.name
                    ),
                ));
            }
        }
        opened
            .table_provider()
            .await
            .map_err(|e| table_error(table, e))
    }

    /// Leaves the file at `url` out of listings from now on.
    fn hide(&self, url: &str) {
        let Ok(parsed) = url::Url::parse(url) else {
            return;
        };
        let key = match parsed.scheme() {
            "file" => "file://".to_owned(),
            scheme => format!("{scheme}://{}", parsed.host_str().unwrap_or_default()),
        };
        if let (Some(store), Ok(path)) = (
            self.stores.get(&key),
            StorePath::from_url_path(parsed.path()),
        ) {
            store.filter().hide(path);
        }
    }

    /// The files `plan` reads that cannot be read on their own, with why, in URL order.
    async fn unreadable_files(&self, plan: &Arc<dyn ExecutionPlan>) -> Vec<UnreadableFile> {
        let mut scans: BTreeMap<String, (FileScanConfig, PartitionedFile)> = BTreeMap::new();
        // The closure never fails: it only collects.
        let _ = plan.apply(|node| {
            if let Some(exec) = node.downcast_ref::<DataSourceExec>()
                && let Some(conf) = exec.data_source().downcast_ref::<FileScanConfig>()
            {
                for file in conf.file_groups.iter().flat_map(FileGroup::iter) {
                    let url = format!(
                        "{}{}",
                        conf.object_store_url.as_str(),
                        file.object_meta.location
                    );
                    scans
                        .entry(url)
                        .or_insert_with(|| (conf.clone(), file.clone()));
                }
            }
            Ok(TreeNodeRecursion::Continue)
        });
        let task_ctx = self.ctx.task_ctx();
        let mut found: Vec<UnreadableFile> = futures::stream::iter(scans)
            .map(|(url, (conf, file))| {
                let task_ctx = task_ctx.clone();
                async move {
                    let reason = check_file(conf, file, task_ctx).await?;
                    Some((url, reason))
                }
            })
            .buffer_unordered(CHECK_CONCURRENCY)
            .filter_map(std::future::ready)
            .map(|(url, reason)| UnreadableFile {
                table: self.table_of(&url),
                url,
                reason,
            })
            .collect()
            .await;
        found.sort_by(|a, b| a.url.cmp(&b.url));
        found
    }

    /// The `database.table` whose location holds `url` (the deepest one).
    fn table_of(&self, url: &str) -> String {
        self.locations
            .iter()
            .filter(|(location, _)| url.starts_with(location.as_str()))
            .max_by_key(|(location, _)| location.len())
            .map(|(_, name)| name.clone())
            .unwrap_or_default()
    }

    fn provider(&self, table: &CatalogTable) -> Result<Arc<dyn TableProvider>, QueryError> {
        let err = |e: &dyn std::fmt::Display| table_error(table, e);
        let schema = data_schema(table)?;
        let keys: Vec<(String, DataType)> = table
            .partition_keys
            .iter()
            .map(|k| {
                Ok((
                    k.name.clone(),
                    arrow_type(&k.data_type).map_err(|e| err(&e))?,
                ))
            })
            .collect::<Result<_, QueryError>>()?;
        if keys.is_empty() || table.hive_partitions {
            let options = listing_options(table).with_table_partition_cols(keys);
            return listing_table(&table.location, options, schema).map_err(|e| err(&e));
        }
        // Plain folders: one listing table per partition, values as constant columns.
        let mut union: Option<datafusion::dataframe::DataFrame> = None;
        for partition in &table.partitions {
            let location = format!("{}{}", table.location, partition.location);
            let part = listing_table(&location, listing_options(table), schema.clone())
                .map_err(|e| err(&e))?;
            let mut columns: Vec<datafusion::logical_expr::Expr> = schema
                .fields()
                .iter()
                .map(|f| col(format!("\"{}\"", f.name())))
                .collect();
            for ((name, data_type), value) in keys.iter().zip(&partition.values) {
                let scalar =
                    ScalarValue::try_from_string(value.clone(), data_type).map_err(|e| err(&e))?;
                columns.push(lit(scalar).alias(name));
            }
            let df = self
                .ctx
                .read_table(part)
                .and_then(|df| df.select(columns))
                .map_err(|e| err(&e))?;
            union = Some(match union {
                None => df,
                Some(u) => u.union(df).map_err(|e| err(&e))?,
            });
        }
        match union {
            Some(df) => Ok(df.into_view()),
            None => {
                listing_table(&table.location, listing_options(table), schema).map_err(|e| err(&e))
            }
        }
    }
}

/// The catalog's format name of Delta tables.
const DELTA: &str = "delta";

/// A catalogued Delta table and where its root is.
struct DeltaEntry {
    table: CatalogTable,
    location: TableLocation,
}

/// The root of a catalogued Delta table in the lake's store for its location.
fn delta_location(
    table: &CatalogTable,
    stores: &BTreeMap<String, Arc<HidingStore>>,
) -> Result<TableLocation, QueryError> {
    let url = url::Url::parse(&table.location).map_err(|e| table_error(table, e))?;
    let key = match url.scheme() {
        "file" => "file://".to_owned(),
        scheme => format!("{scheme}://{}", url.host_str().unwrap_or_default()),
    };
    let store = stores.get(&key).ok_or_else(|| {
        table_error(
            table,
            format!(
                "no store for {}: only file:// and s3:// tables can be queried",
                table.location
            ),
        )
    })?;
    let root = StorePath::from_url_path(url.path()).map_err(|e| table_error(table, e))?;
    let store: Arc<dyn object_store::ObjectStore> = store.clone();
    Ok(TableLocation::new(store, root, key))
}

/// Parses `--as-of`: a version number, or an RFC 3339 time (`2026-12-01T10:00:00Z`) meaning
/// the newest version committed at or before it.
pub fn parse_as_of(text: &str) -> Result<AsOf, String> {
    if let Ok(version) = text.parse::<u64>() {
        return Ok(AsOf::Version(version));
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| AsOf::Timestamp(t.with_timezone(&chrono::Utc)))
        .map_err(|_| {
            format!(
                "`{text}` is neither a version number nor an RFC 3339 time such as 2026-12-01T10:00:00Z"
            )
        })
}

/// The columns a table's files hold, as Arrow fields.
fn data_schema(table: &CatalogTable) -> Result<SchemaRef, QueryError> {
    let fields: Vec<Field> = table
        .columns
        .iter()
        .map(|c| {
            Ok(Field::new(
                &c.name,
                arrow_type(&c.data_type).map_err(|e| table_error(table, e))?,
                true,
            ))
        })
        .collect::<Result<_, QueryError>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// Runs `plan` to the end; a panic deep in a reader (a corrupt file) becomes an error.
async fn run(
    plan: Arc<dyn ExecutionPlan>,
    task_ctx: Arc<TaskContext>,
) -> Result<Vec<RecordBatch>, String> {
    match AssertUnwindSafe(collect(plan, task_ctx))
        .catch_unwind()
        .await
    {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(format!("the reader failed: {message}"))
        }
    }
}

/// Why one file of a scan cannot be read on its own, or `None` when it can: the scan `conf`
/// made for `file` alone is run to the end. A Parquet footer is checked first, since a corrupt
/// one can make the reader panic.
async fn check_file(
    conf: FileScanConfig,
    mut file: PartitionedFile,
    task_ctx: Arc<TaskContext>,
) -> Option<String> {
    if conf.file_source.file_type() == "parquet" {
        let store = match task_ctx.runtime_env().object_store(&conf.object_store_url) {
            Ok(store) => store,
            Err(e) => return Some(e.to_string()),
        };
        let meta = &file.object_meta;
        if let Err(e) = parquet_footer_schema(&store, &meta.location, meta.size).await {
            return Some(e);
        }
    }
    file.range = None;
    let single = FileScanConfigBuilder::from(conf)
        .with_file_groups(vec![FileGroup::new(vec![file])])
        .with_limit(None)
        .build();
    run(DataSourceExec::from_data_source(single), task_ctx)
        .await
        .err()
}

/// A deprecated table: its columns resolve, and any scan fails saying since which crawl.
#[derive(Debug)]
struct DeprecatedTable {
    schema: SchemaRef,
    message: String,
}

impl DeprecatedTable {
    fn new(table: &CatalogTable) -> Self {
        let since = table
            .last_crawl
            .as_ref()
            .map(|c| format!(" since the crawl of {}", c.describe()))
            .unwrap_or_default();
        DeprecatedTable {
            schema: data_schema(table).unwrap_or_else(|_| Arc::new(Schema::empty())),
            message: format!(
                "table {}.{} is deprecated{since}: its data at {} was no longer found; crawl it again once the data is back",
                table.database, table.name, table.location
            ),
        }
    }
}

#[async_trait::async_trait]
impl TableProvider for DeprecatedTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        plan_err!("{}", self.message)
    }
}

fn table_error(table: &CatalogTable, e: impl std::fmt::Display) -> QueryError {
    QueryError::Table {
        table: format!("{}.{}", table.database, table.name),
        message: e.to_string(),
    }
}

/// The Arrow type of a catalog type name.
fn arrow_type(name: &str) -> Result<DataType, String> {
    HiveType::parse(name).map(|t| t.to_arrow())
}

fn listing_options(table: &CatalogTable) -> ListingOptions {
    let compression = match table.format.compression.as_deref() {
        Some("gzip") => FileCompressionType::GZIP,
        _ => FileCompressionType::UNCOMPRESSED,
    };
    let format: Arc<dyn FileFormat> = match table.format.kind.as_str() {
        // Files written before a column was added end early: their rows read it as NULL, as
        // Athena reads CSV (by position).
        "csv" => Arc::new(
            CsvFormat::default()
                .with_has_header(table.format.header.unwrap_or(true))
                .with_truncated_rows(true)
                .with_delimiter(table.format.delimiter.map_or(b',', |d| d as u8))
                .with_file_compression_type(compression),
        ),
        "json" => Arc::new(JsonFormat::default().with_file_compression_type(compression)),
        _ => Arc::new(ParquetFormat::default()),
    };
    ListingOptions::new(format)
        .with_file_extension(table.format.extension.clone().unwrap_or_default())
}

fn listing_table(
    location: &str,
    options: ListingOptions,
    schema: SchemaRef,
) -> datafusion::error::Result<Arc<dyn TableProvider>> {
    let url = ListingTableUrl::parse(location)?;
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// An S3 store for `bucket`, configured from the table's storage settings; credentials come
/// from its `${env:NAME}` references, else the standard `AWS_*` variables.
fn s3_store(
    bucket: &str,
    table: &CatalogTable,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Arc<dyn object_store::ObjectStore>, QueryError> {
    let s = &table.storage;
    let resolve = |what: &str, v: &str| {
        pipectl_spec::env::interpolate(v, env).map_err(|var| {
            table_error(
                table,
                format!("{what} uses environment variable `{var}`, which is not set"),
            )
        })
    };
    let builder = S3Settings {
        bucket,
        endpoint: s.endpoint.as_deref(),
        region: s.region.clone(),
        access_key_id: s
            .access_key_id
            .as_deref()
            .map(|key| resolve("access_key_id", key))
            .transpose()?,
        secret_access_key: s
            .secret_access_key
            .as_deref()
            .map(|secret| resolve("secret_access_key", secret))
            .transpose()?,
        allow_http: s.allow_http,
    }
    .builder(env("AWS_REGION"));
    Ok(Arc::new(
        builder.build().map_err(|e| table_error(table, e))?,
    ))
}
