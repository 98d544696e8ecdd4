//! SQL over the catalogued lake: every catalogued table becomes a DataFusion table in a schema
//! named after its database, reading its files where the crawler found them.
//!
//! Hive-style partitions (`year=2026/`) are partition columns of a listing table, so a `WHERE`
//! on them lists and reads only the matching folders. Plain-folder partitions (`2026/11/`)
//! become a union of one listing table per folder with the values as constant columns; a
//! `WHERE` on them folds the other folders' branches away before any file is read.
//!
//! A leaf crate: only the CLI depends on it, so DataFusion never slows the other crates' builds.
#![warn(missing_docs, unreachable_pub)]

mod output;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableProvider;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::logical_expr::{col, lit};
use datafusion::prelude::{SessionConfig, SessionContext};
use object_store::aws::AmazonS3Builder;
use pipectl_state::hive_type::HiveType;
use pipectl_state::{CatalogTable, TableStatus};

pub use output::{OutputFormat, render};

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
    /// The SQL is invalid or failed while running.
    #[error("{0}")]
    Sql(String),
}

/// Everything a query needs: the catalogued tables and the default database.
pub struct Lake {
    ctx: SessionContext,
}

/// Name of DataFusion's catalog the databases live in.
const CATALOG: &str = "datafusion";

impl Lake {
    /// Registers `tables` (deprecated ones are left out). `database` is the schema unqualified
    /// names resolve in; `env` resolves `${env:NAME}` credentials of S3 tables.
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
        let ctx = SessionContext::new_with_config(config);
        let catalog = ctx
            .catalog(CATALOG)
            .ok_or_else(|| QueryError::Sql("no catalog".into()))?;
        let mut schemas: BTreeMap<String, Arc<MemorySchemaProvider>> = BTreeMap::new();
        schemas.insert(
            default_schema.clone(),
            Arc::new(MemorySchemaProvider::new()),
        );
        let mut buckets: BTreeMap<String, &CatalogTable> = BTreeMap::new();
        for table in tables.iter().filter(|t| t.status == TableStatus::Active) {
            schemas
                .entry(table.database.clone())
                .or_insert_with(|| Arc::new(MemorySchemaProvider::new()));
            if let Some(rest) = table.location.strip_prefix("s3://") {
                let bucket = rest.split('/').next().unwrap_or_default().to_owned();
                buckets.entry(bucket).or_insert(table);
            }
        }
        for (bucket, table) in buckets {
            let store = s3_store(&bucket, table, &env)?;
            let url =
                url::Url::parse(&format!("s3://{bucket}")).map_err(|e| table_error(table, e))?;
            ctx.register_object_store(&url, store);
        }
        for (name, schema) in &schemas {
            catalog
                .register_schema(name, schema.clone())
                .map_err(|e| QueryError::Sql(e.to_string()))?;
        }
        let lake = Lake { ctx };
        for table in tables.iter().filter(|t| t.status == TableStatus::Active) {
            if table.format.kind.is_empty() {
                continue;
            }
            let provider = lake.provider(table)?;
            if let Some(schema) = schemas.get(&table.database) {
                schema
                    .register_table(table.name.clone(), provider)
                    .map_err(|e| table_error(table, e))?;
            }
        }
        Ok(lake)
    }

    /// Runs one SQL statement and collects its result.
    pub async fn query(&self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>), QueryError> {
        let df = self
            .ctx
            .sql(sql)
            .await
            .map_err(|e| QueryError::Sql(e.to_string()))?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df
            .collect()
            .await
            .map_err(|e| QueryError::Sql(e.to_string()))?;
        Ok((schema, batches))
    }

    fn provider(&self, table: &CatalogTable) -> Result<Arc<dyn TableProvider>, QueryError> {
        let err = |e: &dyn std::fmt::Display| table_error(table, e);
        let fields: Vec<Field> = table
            .columns
            .iter()
            .map(|c| {
                Ok(Field::new(
                    &c.name,
                    arrow_type(&c.data_type).map_err(|e| err(&e))?,
                    true,
                ))
            })
            .collect::<Result<_, QueryError>>()?;
        let schema = Arc::new(Schema::new(fields));
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
        "csv" => Arc::new(
            CsvFormat::default()
                .with_has_header(table.format.header.unwrap_or(true))
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
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(endpoint) = &s.endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_virtual_hosted_style_request(false);
    }
    builder = builder.with_region(
        s.region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .unwrap_or_else(|| "us-east-1".to_owned()),
    );
    if let Some(key) = &s.access_key_id {
        builder = builder.with_access_key_id(resolve("access_key_id", key)?);
    }
    if let Some(secret) = &s.secret_access_key {
        builder = builder.with_secret_access_key(resolve("secret_access_key", secret)?);
    }
    if s.allow_http {
        builder = builder.with_allow_http(true);
    }
    Ok(Arc::new(
        builder.build().map_err(|e| table_error(table, e))?,
    ))
}
