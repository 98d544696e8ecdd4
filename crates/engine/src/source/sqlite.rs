//! SQLite full loads: tables chosen by DMS-style include/exclude rules, or explicit queries.

use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use futures::future::BoxFuture;
use pipectl_spec::types::DatabaseSource;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Column, Connection, Executor, Row, TypeInfo, ValueRef};

use crate::context::{Output, StepContext};
use crate::error::{Error, Result};
use crate::rows::{ColumnBuilder, SqlValue};
use crate::table::{Message, TableId};

use super::database::{Listing, Selection};

/// SQLite's schema name for the main database.
const MAIN: &str = "main";

/// One table (or query) a source will read, with the exact SQL it runs.
#[derive(Debug, Clone)]
pub struct TablePlan {
    /// The table's identity downstream.
    pub table: TableId,
    /// The statement that reads it.
    pub sql: String,
    /// Declared column types as the database reports them, for `plan`.
    pub declared: Vec<(String, String)>,
    /// The Arrow schema the rows are read into.
    pub schema: SchemaRef,
}

/// The SQLite source step.
pub struct SqliteSource {
    name: String,
    spec: DatabaseSource,
}

impl SqliteSource {
    /// A source reading with `spec`.
    pub fn new(name: &str, spec: DatabaseSource) -> Self {
        SqliteSource {
            name: name.to_owned(),
            spec,
        }
    }
}

/// Quotes an identifier for SQLite: wrapped in `"` with inner quotes doubled, so no name can
/// end the identifier early and inject SQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Opens the database read-only; a missing file is an error, not a new empty database.
pub async fn connect(path: &Path) -> Result<SqliteConnection> {
    if !path.exists() {
        return Err(Error::user(format!(
            "SQLite database {} does not exist (relative paths in `sqlite://` URLs are relative to the spec file's folder)",
            path.display()
        )));
    }
    let options = SqliteConnectOptions::new().filename(path).read_only(true);
    SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| Error::external(format!("cannot open SQLite database {}", path.display()), e))
}

/// Lists what the source will read: the tables its rules select (in name order), then its queries.
pub async fn plan_tables(
    source: &str,
    spec: &DatabaseSource,
    conn: &mut SqliteConnection,
) -> Result<Listing<TablePlan>> {
    let mut plans = Vec::new();
    let mut selection = Selection::new(spec);
    if !spec.include.is_empty() || spec.queries.is_empty() {
        let names: Vec<(String, bool)> = sqlx::query_as(
            "select name, type = 'view' from sqlite_schema where type in ('table', 'view') and name not like 'sqlite\\_%' escape '\\' order by name",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| Error::external("cannot list SQLite tables", e))?;
        for (table, view) in names {
            if !selection.select(MAIN, &table, view) {
                continue;
            }
            let declared: Vec<(String, String)> =
                sqlx::query_as("select name, type from pragma_table_info(?) order by cid")
                    .bind(&table)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(|e| {
                        Error::external(format!("cannot read the columns of table {table}"), e)
                    })?;
            let columns = declared
                .iter()
                .map(|(c, _)| quote_ident(c))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "select {columns} from {}.{}",
                quote_ident(MAIN),
                quote_ident(&table)
            );
            let schema =
                schema_for(&declared).map_err(|e| e.context(format!("table {MAIN}.{table}")))?;
            plans.push(TablePlan {
                table: TableId {
                    source: source.to_owned(),
                    schema: MAIN.to_owned(),
                    name: table,
                },
                sql,
                declared,
                schema,
            });
        }
    }
    for query in &spec.queries {
        let described = conn.describe(&query.sql).await.map_err(|e| {
            Error::user(format!(
                "query for table `{}` does not run: {e}",
                query.table
            ))
        })?;
        let declared: Vec<(String, String)> = described
            .columns()
            .iter()
            .map(|c| (c.name().to_owned(), c.type_info().name().to_owned()))
            .collect();
        let schema =
            schema_for(&declared).map_err(|e| e.context(format!("query `{}`", query.table)))?;
        plans.push(TablePlan {
            table: TableId {
                source: source.to_owned(),
                schema: query.schema.clone().unwrap_or_else(|| MAIN.to_owned()),
                name: query.table.clone(),
            },
            sql: query.sql.clone(),
            declared,
            schema,
        });
    }
    Ok(selection.listing(plans))
}

fn schema_for(declared: &[(String, String)]) -> Result<SchemaRef> {
    let mut fields = Vec::with_capacity(declared.len());
    for (i, (name, decl)) in declared.iter().enumerate() {
        if declared[..i].iter().any(|(other, _)| other == name) {
            return Err(Error::user(format!(
                "column name `{name}` appears twice; give the columns distinct names (use `as`)"
            )));
        }
        fields.push(Field::new(name, arrow_type_for_declared(decl), true));
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// Maps a declared SQLite column type to Arrow, following SQLite's affinity rules with the
/// common names for dates, decimals and booleans recognised first.
pub fn arrow_type_for_declared(declared: &str) -> DataType {
    let upper = declared.trim().to_ascii_uppercase();
    let base = upper.split('(').next().unwrap_or("").trim();
    if base.starts_with("BOOL") {
        return DataType::Boolean;
    }
    if base == "DECIMAL" || base == "NUMERIC" {
        if let Some((p, s)) = precision_scale(&upper) {
            return DataType::Decimal128(p, s);
        }
        return DataType::Decimal128(38, 10);
    }
    match base {
        "DATE" => return DataType::Date32,
        "TIME" => return DataType::Time64(TimeUnit::Microsecond),
        "DATETIME" | "TIMESTAMP" => return DataType::Timestamp(TimeUnit::Microsecond, None),
        "TIMESTAMPTZ" | "TIMESTAMP WITH TIME ZONE" => {
            return DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        }
        "NULL" | "" => return DataType::Utf8,
        _ => {}
    }
    if upper.contains("INT") {
        DataType::Int64
    } else if upper.contains("CHAR")
        || upper.contains("CLOB")
        || upper.contains("TEXT")
        || upper.contains("JSON")
    {
        DataType::Utf8
    } else if upper.contains("BLOB") {
        DataType::Binary
    } else if upper.contains("REAL") || upper.contains("FLOA") || upper.contains("DOUB") {
        DataType::Float64
    } else {
        DataType::Utf8
    }
}

fn precision_scale(declared: &str) -> Option<(u8, i8)> {
    let inner = declared.split_once('(')?.1.split_once(')')?.0;
    let mut parts = inner.split(',').map(|p| p.trim().parse::<u8>());
    let precision = parts.next()?.ok()?;
    let scale = match parts.next() {
        Some(s) => s.ok()?,
        None => 0,
    };
    (1..=38).contains(&precision).then_some(())?;
    (scale <= precision).then_some((precision, scale as i8))
}

impl super::Source for SqliteSource {
    fn run(
        self: Box<Self>,
        ctx: StepContext,
        out: Output,
    ) -> BoxFuture<'static, Result<super::Reached>> {
        Box::pin(async move {
            let path = ctx.run.connections.sqlite_path(&self.spec.connection)?;
            let mut conn = connect(&path).await?;
            let listing = plan_tables(&self.name, &self.spec, &mut conn).await?;
            ctx.report_unmatched_rules(&listing.unmatched_rules)?;
            let backfill = ctx.run.backfill.as_ref();
            for plan in listing
                .plans
                .into_iter()
                .filter(|p| backfill.is_none_or(|b| b.reads(&p.table)))
            {
                read_table(&mut conn, &plan, self.spec.batch_rows, &out)
                    .await
                    .map_err(|e| {
                        if e.is_cancelled() {
                            e
                        } else {
                            e.context(format!("table {}", plan.table))
                        }
                    })?;
            }
            conn.close().await.ok();
            // SQLite tables are read whole: there is no position to keep.
            Ok(Vec::new())
        })
    }
}

async fn read_table(
    conn: &mut SqliteConnection,
    plan: &TablePlan,
    batch_rows: usize,
    out: &Output,
) -> Result<()> {
    let table = Arc::new(plan.table.clone());
    let mut builders: Vec<ColumnBuilder> = plan
        .schema
        .fields()
        .iter()
        .map(|f| {
            ColumnBuilder::new(f.data_type(), batch_rows)
                .ok_or_else(|| Error::internal(format!("no builder for {}", f.data_type())))
        })
        .collect::<Result<_>>()?;
    let mut rows = sqlx::query(&plan.sql).fetch(&mut *conn);
    let mut row_number = 0u64;
    loop {
        let row = tokio::select! {
            biased;
            _ = out.cancel_token().cancelled() => return Err(Error::cancelled()),
            row = rows.try_next() => row.map_err(|e| Error::external("reading rows failed", e))?,
        };
        let Some(row) = row else { break };
        row_number += 1;
        for (i, builder) in builders.iter_mut().enumerate() {
            let raw = row
                .try_get_raw(i)
                .map_err(|e| Error::internal("column index").with_source(e))?;
            let value = if raw.is_null() {
                SqlValue::Null
            } else {
                let storage = raw.type_info().name().to_owned();
                match storage.as_str() {
                    "INTEGER" | "BOOLEAN" => {
                        SqlValue::Int(row.try_get_unchecked::<i64, _>(i).map_err(decode_error)?)
                    }
                    "REAL" => {
                        SqlValue::Real(row.try_get_unchecked::<f64, _>(i).map_err(decode_error)?)
                    }
                    "BLOB" => {
                        SqlValue::Blob(row.try_get_unchecked::<&[u8], _>(i).map_err(decode_error)?)
                    }
                    _ => SqlValue::Text(row.try_get_unchecked::<&str, _>(i).map_err(decode_error)?),
                }
            };
            builder.append(value).map_err(|message| {
                Error::user(format!(
                    "row {row_number}, column `{}` (declared {}): {message}",
                    plan.schema.field(i).name(),
                    plan.declared
                        .get(i)
                        .map(|d| d.1.as_str())
                        .filter(|d| !d.is_empty())
                        .unwrap_or("without a type")
                ))
            })?;
        }
        if builders.first().is_some_and(|b| b.len() >= batch_rows) {
            let batch = finish_batch(&plan.schema, &mut builders)?;
            out.send(Message::Batch(table.clone(), batch)).await?;
        }
    }
    drop(rows);
    if builders.first().is_some_and(|b| !b.is_empty()) || row_number == 0 {
        // An empty table still sends one empty batch so sinks can write its schema.
        let batch = finish_batch(&plan.schema, &mut builders)?;
        out.send(Message::Batch(table.clone(), batch)).await?;
    }
    out.send(Message::EndOfTable(table)).await
}

fn decode_error(e: sqlx::Error) -> Error {
    Error::external("decoding a value failed", e)
}

fn finish_batch(schema: &SchemaRef, builders: &mut [ColumnBuilder]) -> Result<RecordBatch> {
    let columns = builders.iter_mut().map(ColumnBuilder::finish).collect();
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_map_faithfully() {
        assert_eq!(arrow_type_for_declared("INTEGER"), DataType::Int64);
        assert_eq!(
            arrow_type_for_declared("smallint unsigned"),
            DataType::Int64
        );
        assert_eq!(
            arrow_type_for_declared("DECIMAL(4,2)"),
            DataType::Decimal128(4, 2)
        );
        assert_eq!(
            arrow_type_for_declared("numeric(10)"),
            DataType::Decimal128(10, 0)
        );
        assert_eq!(arrow_type_for_declared("VARCHAR(45)"), DataType::Utf8);
        assert_eq!(arrow_type_for_declared("BLOB"), DataType::Binary);
        assert_eq!(
            arrow_type_for_declared("TIMESTAMP"),
            DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        assert_eq!(arrow_type_for_declared("boolean"), DataType::Boolean);
        assert_eq!(
            arrow_type_for_declared("DOUBLE PRECISION"),
            DataType::Float64
        );
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("my \"odd\" table"), "\"my \"\"odd\"\" table\"");
    }
}
