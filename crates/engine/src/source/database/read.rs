//! Reading a server's tables: planning against the live catalog (with split ranges), then each
//! table in its own snapshot: the NULL-key count, the highest key, the rows, the end of the
//! table. Written once for every [`Server`]; the bookmarks reached go back to the executor.

use std::marker::PhantomData;
use std::sync::Arc;

use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use pipectl_spec::types::DatabaseSource;
use pipectl_state::Bookmark;

use super::columns::{ColumnValues, finish_batch};
use super::dialect::Server;
use super::plan::{DbColumn, Listing, Selection, Statement, TablePlan, plan_table, split_ranges};
use crate::context::{Backfill, Output, StepContext};
use crate::error::{Error, Result};
use crate::source::key_type::check_range;
use crate::source::{Running, Source};
use crate::table::{Message, TableId};

/// A source step reading a database server.
pub struct DatabaseSourceStep<D> {
    name: String,
    spec: DatabaseSource,
    dialect: PhantomData<D>,
}

impl<D: Server> DatabaseSourceStep<D> {
    /// A source reading with `spec`.
    pub fn new(name: &str, spec: DatabaseSource) -> Self {
        DatabaseSourceStep {
            name: name.to_owned(),
            spec,
            dialect: PhantomData,
        }
    }
}

/// Lists the tables a source reads, with their statements, against the live database. With
/// `in_ranges`, each table that has `split` set is cut into its ranges (see [`split_plans`]),
/// on the same connection.
pub async fn plan_tables<D: Server>(
    source: &str,
    spec: &DatabaseSource,
    url: &str,
    stored: &(dyn Fn(&str) -> Option<Bookmark> + Sync),
    in_ranges: bool,
) -> Result<Listing<TablePlan>> {
    let mut conn = D::connect(url).await?;
    let mut listing = list_tables::<D>(&mut conn, source, spec, stored).await?;
    if in_ranges {
        listing.plans = split_plans::<D>(listing.plans, &mut conn).await?;
    }
    Ok(listing)
}

/// Lists what a server source reads from its catalog: the tables its rules select (by schema,
/// then name), then its queries, each with the stored bookmark attached.
pub async fn list_tables<D: Server>(
    conn: &mut D::Conn,
    source: &str,
    spec: &DatabaseSource,
    stored: &(dyn Fn(&str) -> Option<Bookmark> + Sync),
) -> Result<Listing<TablePlan>> {
    let mut selection = Selection::new(spec);
    let mut plans = Vec::new();
    if selection.lists_tables() {
        for relation in D::relations(conn).await? {
            if !selection.select(&relation.schema, &relation.name, relation.view) {
                continue;
            }
            let table = TableId {
                source: source.to_owned(),
                schema: relation.schema.clone(),
                name: relation.name.clone(),
            };
            let columns = D::table_columns(conn, &relation, &table, spec).await?;
            let from = format!(
                "{}.{}",
                D::quote(&relation.schema),
                D::quote(&relation.name)
            );
            plans.push(plan_table::<D>(source, spec, table, columns, from, stored)?);
        }
    }
    for query in &spec.queries {
        let schema = match &query.schema {
            Some(schema) => Some(schema.clone()),
            None => D::query_schema(conn).await?,
        };
        let table = TableId {
            source: source.to_owned(),
            schema: schema.unwrap_or_default(),
            name: query.table.clone(),
        };
        let columns = D::query_columns(conn, query, &table, spec).await?;
        let from = format!("({}) as q", query.sql);
        plans.push(plan_table::<D>(source, spec, table, columns, from, stored)?);
    }
    Ok(selection.listing(plans))
}

/// Replaces each split table's plan with one plan per range of its split column, from the
/// column's current minimum and maximum. An empty table, or one with a single value, stays
/// whole.
async fn split_plans<D: Server>(
    plans: Vec<TablePlan>,
    conn: &mut D::Conn,
) -> Result<Vec<TablePlan>> {
    let mut out = Vec::with_capacity(plans.len());
    for plan in plans {
        let Some(split) = plan.split.clone() else {
            out.push(plan);
            continue;
        };
        let quoted = D::quote(&split.column);
        let sql = format!(
            "select {}, {} from {}",
            D::as_int8(&format!("min({quoted})")),
            D::as_int8(&format!("max({quoted})")),
            plan.from
        );
        let bounds = D::bounds(conn, &sql).await.map_err(|e| {
            Error::external(
                format!(
                    "table {}: cannot find the range of split column `{}`",
                    plan.table, split.column
                ),
                e,
            )
        })?;
        let ranges = match bounds {
            (Some(min), Some(max)) => split_ranges(&quoted, min, max, split.parts),
            _ => Vec::new(),
        };
        if ranges.is_empty() {
            out.push(plan);
            continue;
        }
        tracing::debug!(table = %plan.table, parts = ranges.len(), "reading in ranges");
        for range in ranges {
            let mut part = plan.clone();
            part.range = Some(range);
            out.push(part);
        }
    }
    Ok(out)
}

/// What reading one table found: the new bookmark position, if it moved.
pub type TableOutcome = Option<Vec<serde_json::Value>>;

/// Reads one table into `out` in its own snapshot; returns the new bookmark position when it
/// moved.
pub async fn read_table<D: Server>(
    url: &str,
    plan: &TablePlan,
    batch_rows: usize,
    out: &Output,
) -> Result<TableOutcome> {
    let mut conn = D::connect(url).await?;
    D::begin_snapshot(&mut conn).await?;
    if let Some(sql) = plan.null_count_statement::<D>() {
        let nulls = D::count(&mut conn, &sql)
            .await
            .map_err(|e| Error::external("cannot count NULL bookmark keys", e))?;
        if nulls > 0 {
            return Err(Error::user(format!(
                "{nulls} rows have a NULL bookmark key and `null_keys: fail` is set; fix the data or set `null_keys: skip`"
            )));
        }
    }
    let mut moved = None;
    if let Some(max) = plan.max_statement::<D>() {
        let texts = D::key_texts(&mut conn, &max)
            .await
            .map_err(|e| Error::external("cannot find the highest bookmark key", e))?;
        let Some(texts) = texts else {
            // Nothing past the bookmark: no file, and the bookmark stays.
            D::close(conn).await;
            out.send(Message::EndOfTable(Arc::new(plan.table.clone())))
                .await?;
            return Ok(None);
        };
        moved = Some(texts.into_iter().map(serde_json::Value::String).collect());
    }
    let statement = plan.read_statement::<D>();
    let mut writer = TableWriter::new(plan, batch_rows, out)?;
    D::read_rows(&mut conn, plan, &statement, &mut writer).await?;
    D::end_snapshot(conn).await;
    writer.finish().await?;
    Ok(moved)
}

/// `statement`'s SQL with its parameters bound, all as text.
pub fn bound<'q, DB>(
    statement: &'q Statement,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    statement
        .params
        .iter()
        .fold(sqlx::query(&statement.sql), |query, p| query.bind(p))
}

/// Decodes the rows of a prepared query (each value in the driver's binary form) into
/// `writer` with the dialect's `decode`.
pub async fn read_fetched<R, S, F>(
    mut rows: S,
    plan: &TablePlan,
    writer: &mut TableWriter<'_>,
    decode: F,
) -> Result<()>
where
    R: sqlx::Row,
    S: futures::Stream<Item = sqlx::Result<R>> + Unpin,
    for<'r> &'r [u8]: sqlx::Decode<'r, R::Database>,
    usize: sqlx::ColumnIndex<R>,
    F: Fn(&DbColumn, Option<&[u8]>, &mut ColumnValues) -> std::result::Result<(), String>,
{
    while let Some(row) = rows
        .try_next()
        .await
        .map_err(|e| Error::external("reading rows failed", e))?
    {
        let number = writer.start_row();
        for (i, (column, values)) in plan.columns.iter().zip(writer.columns()).enumerate() {
            let raw: Option<&[u8]> = row
                .try_get_unchecked(i)
                .map_err(|e| Error::external("decoding a value failed", e))?;
            decode(column, raw, values).map_err(|m| value_error(plan, column, number, &m))?;
        }
        writer.end_row().await?;
    }
    Ok(())
}

/// A value that does not decode: where it is, and why.
pub fn value_error(plan: &TablePlan, column: &DbColumn, row: u64, message: &str) -> Error {
    Error::user(format!(
        "{}: row {row}, column `{}` ({}): {message}",
        plan.table, column.name, column.declared
    ))
}

/// The rows of one table on their way out: Arrow builders filled row by row, sent as a batch
/// whenever `batch_rows` are full, and the end of the table.
pub struct TableWriter<'a> {
    table: Arc<TableId>,
    plan: &'a TablePlan,
    columns: Vec<ColumnValues>,
    batch_rows: usize,
    rows: u64,
    out: &'a Output,
}

impl<'a> TableWriter<'a> {
    /// Empty builders for `plan`'s columns.
    pub fn new(plan: &'a TablePlan, batch_rows: usize, out: &'a Output) -> Result<Self> {
        Ok(TableWriter {
            table: Arc::new(plan.table.clone()),
            plan,
            columns: ColumnValues::for_schema(&plan.schema, batch_rows)?,
            batch_rows,
            rows: 0,
            out,
        })
    }

    /// Starts the next row; returns its number (from 1), for error messages.
    pub fn start_row(&mut self) -> u64 {
        self.rows += 1;
        self.rows
    }

    /// The builders of the row being read, one per column.
    pub fn columns(&mut self) -> &mut [ColumnValues] {
        &mut self.columns
    }

    /// Ends the row: sends a batch when `batch_rows` are full.
    pub async fn end_row(&mut self) -> Result<()> {
        if self
            .columns
            .first()
            .is_some_and(|c| c.len() >= self.batch_rows)
        {
            let batch = finish_batch(&self.plan.schema, &mut self.columns)?;
            self.out
                .send(Message::Batch(self.table.clone(), batch))
                .await?;
        }
        Ok(())
    }

    /// Sends the last rows and the end of the table. An empty table still sends one empty
    /// batch so sinks can write its schema.
    pub async fn finish(mut self) -> Result<()> {
        if self.columns.first().is_some_and(|c| !c.is_empty()) || self.rows == 0 {
            let batch = finish_batch(&self.plan.schema, &mut self.columns)?;
            self.out
                .send(Message::Batch(self.table.clone(), batch))
                .await?;
        }
        self.out.send(Message::EndOfTable(self.table)).await
    }
}

impl<D: Server> Source for DatabaseSourceStep<D> {
    fn run(self: Box<Self>, ctx: StepContext, out: Output) -> Running {
        Box::pin(async move {
            let url = ctx
                .run
                .connections
                .database_url(&self.spec.connection, D::NAME)?;
            // Read after the executor's recovery, so a crashed run's finished publish counts.
            let stored: std::collections::BTreeMap<String, Bookmark> = ctx
                .run
                .state
                .bookmarks(Some(&ctx.run.pipeline))
                .map_err(|e| Error::external("cannot read the stored bookmarks", e))?
                .into_iter()
                .map(|b| (b.stream.clone(), b))
                .collect();
            let stored = move |stream: &str| stored.get(stream).cloned();
            let listing = plan_tables::<D>(&self.name, &self.spec, &url, &stored, true).await?;
            ctx.report_unmatched_rules(&listing.unmatched_rules)?;
            let mut plans = listing.plans;
            // Ranges of a split table are read at the same time, beside other tables.
            let most_parts = plans
                .iter()
                .filter_map(|p| p.split.as_ref().map(|s| s.parts))
                .max()
                .unwrap_or(1);
            if let Some(range) = &ctx.run.backfill {
                plans.retain(|p| range.reads(&p.source));
                for plan in &mut plans {
                    backfill_plan(plan, range)?;
                }
            }
            let out = &out;
            let url = &url;
            let batch_rows = self.spec.batch_rows;
            let mut reads = futures::stream::iter(plans.into_iter().map(|plan| async move {
                // Cancellation is watched here, once per table, rather than once per row.
                let read = read_table::<D>(url, &plan, batch_rows, out);
                let result = tokio::select! {
                    biased;
                    _ = out.cancel_token().cancelled() => Err(Error::cancelled()),
                    r = read => r,
                };
                (plan, result)
            }))
            .buffer_unordered(self.spec.parallel_tables.max(most_parts).max(1));
            let mut reached = Vec::new();
            while let Some((plan, result)) = reads.next().await {
                let moved = result.map_err(|e| {
                    if e.is_cancelled() {
                        e
                    } else {
                        e.context(format!("table {}", plan.table))
                    }
                })?;
                if let (Some(b), Some(values)) = (&plan.bookmark, moved) {
                    reached.push(Bookmark {
                        pipeline: ctx.run.pipeline.clone(),
                        stream: b.stream.clone(),
                        keys: b.spec.keys.clone(),
                        values,
                        key_types: b.key_types.clone(),
                        run_id: ctx.run.run_id.clone(),
                        updated_at: Utc::now(),
                    });
                }
            }
            Ok(reached)
        })
    }
}

/// Makes `plan` read `range` of its first bookmark key, after checking the bounds against the
/// key's declared type. A table named by `--table` must be bookmarked.
fn backfill_plan(plan: &mut TablePlan, range: &Backfill) -> Result<()> {
    let Some(b) = &mut plan.bookmark else {
        if range.tables.is_empty() {
            return Ok(());
        }
        return Err(Error::user(format!(
            "table {} has no bookmark: a backfill re-reads a range of a bookmarked table's first key; name bookmarked tables with --table",
            plan.source
        )));
    };
    let what = format!("table {}, key `{}`", plan.source, b.spec.keys[0]);
    check_range(&b.key_types[0], &range.from, &range.to, &what).map_err(|e| {
        let hint = if range.tables.is_empty() {
            "; name the tables whose keys the bounds fit with --table"
        } else {
            ""
        };
        Error::user(format!("{e}{hint}"))
    })?;
    b.backfill = Some(range.clone());
    Ok(())
}
