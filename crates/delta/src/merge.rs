//! Merges: upsert by key with a sequence, deletes by condition (hard, or soft with
//! `_deleted_at`), and columns a change marks as unchanged.
//!
//! Phase 1 ([`MergeWriter`]) checks the input against the spec and stages it as Parquet files
//! (with each row's arrival order); phase 2 (`DeltaTable::apply`) checks the log's `txn` for the
//! app id first and then runs one delta-rs merge whose commit carries the `txn`.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::functions_window::expr_fn::{first_value, row_number};
use datafusion::logical_expr::{
    Expr, ExprFunctionExt, ExprSchemable, Operator, SortExpr, binary_expr, col, lit, not, when,
};
use datafusion::prelude::{DataFrame, SessionContext};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression as Codec, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};
use crate::intent::{CommitIntent, Compression, IntentAction, MergeIntent, Txn};
use crate::schema::{self, SchemaPolicy};
use crate::table::DeltaTable;

/// The column soft deletes set: when the row was deleted (NULL while it exists).
pub const DELETED_AT: &str = "_deleted_at";

/// Each staged row's arrival order, so the last of equal sequences wins; never reaches the table.
const ORDINAL: &str = "__pipectl_ordinal";
/// The rank of a row among the rows of its key (1: the one that wins).
const RANK: &str = "__pipectl_rank";
/// Prefix of the source columns saying, per `unchanged_when` column, that the table's value
/// stays; never reaches the table.
const KEEP: &str = "__pipectl_keep_";
/// Aliases of the two sides in merge expressions.
const SOURCE: &str = "source";
const TARGET: &str = "target";
/// Merge inputs up to this many rows are held in memory once de-duplicated, rather than read
/// again from their staged files for each pass delta-rs makes over them.
const CACHED_SOURCE_ROWS: u64 = 500_000;
/// Rows per staged file before the next one starts.
const STAGED_FILE_ROWS: u64 = 1_000_000;

/// What a delete does to the table's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteMode {
    /// The row is removed.
    #[default]
    Hard,
    /// The row stays with [`DELETED_AT`] set (and its sequence columns), so a stale change
    /// arriving later still loses to the delete; a delete of an unknown key inserts such a
    /// tombstone. A later winning upsert clears `_deleted_at`.
    Soft,
}

/// How a merge matches and applies changes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MergeSpec {
    /// Columns that identify a row; the input must have them, never NULL.
    pub keys: Vec<String>,
    /// Columns ordering the changes of one key (compared in order; NULL lowest): the highest
    /// wins within the input and against the table; on a tie the later arrival wins.
    /// Empty: the last arrival wins and always replaces the table's row.
    pub sequence_by: Vec<String>,
    /// A SQL condition over the input row that makes it a delete (`op = 'D'`).
    pub delete_when: Option<String>,
    /// What a delete does.
    pub deletes: DeleteMode,
    /// Per column, a SQL condition over the input row meaning "this value is a placeholder,
    /// keep the table's" (CDC's unchanged TOAST columns, e.g.
    /// `payload = '__debezium_unavailable_value'`); a new row gets NULL there.
    pub unchanged_when: BTreeMap<String, String>,
    /// A SQL condition over the input row that makes it a truncate (CDC's `Op = 'T'`): the
    /// table's rows ordered before the last such row (by `sequence_by`) are deleted, and so
    /// are the input's rows before it, so the changes after it apply to an empty table. A
    /// truncate row's other columns are ignored and its keys may be NULL.
    pub truncate_when: Option<String>,
}

impl MergeSpec {
    /// The join condition as `plan` shows it: `target.id = source.id AND ...`.
    pub fn predicate_sql(&self) -> String {
        self.keys
            .iter()
            .map(|k| format!("{TARGET}.{0} = {SOURCE}.{0}", ident(k)))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// The whole merge as `plan` shows it, one clause a line.
    pub fn describe(&self) -> Vec<String> {
        let wins = if self.sequence_by.is_empty() {
            String::new()
        } else {
            format!(
                " AND ({}) >= ({})",
                self.sequence_by
                    .iter()
                    .map(|c| format!("{SOURCE}.{}", ident(c)))
                    .collect::<Vec<_>>()
                    .join(", "),
                self.sequence_by
                    .iter()
                    .map(|c| format!("{TARGET}.{}", ident(c)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let mut lines = vec![format!("MERGE ON {}", self.predicate_sql())];
        if !self.keys.is_empty() {
            let order = self
                .sequence_by
                .iter()
                .map(|c| format!("{} DESC", ident(c)))
                .chain(["arrival DESC".to_owned()])
                .collect::<Vec<_>>()
                .join(", ");
            lines.push(format!(
                "SOURCE: one row per key ({}), ORDER BY {order}",
                self.keys
                    .iter()
                    .map(|k| ident(k))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if let Some(delete) = &self.delete_when {
            match self.deletes {
                DeleteMode::Hard => {
                    lines.push(format!("WHEN MATCHED AND ({delete}){wins} THEN DELETE"))
                }
                DeleteMode::Soft => lines.push(format!(
                    "WHEN MATCHED AND ({delete}){wins} THEN UPDATE SET {DELETED_AT} = <commit time>"
                )),
            }
        }
        lines.push(format!("WHEN MATCHED{wins} THEN UPDATE SET *"));
        match (&self.delete_when, self.deletes) {
            (Some(delete), DeleteMode::Hard) => {
                lines.push(format!("WHEN NOT MATCHED AND NOT ({delete}) THEN INSERT *"))
            }
            _ => lines.push("WHEN NOT MATCHED THEN INSERT *".to_owned()),
        }
        if let Some(truncate) = &self.truncate_when {
            let older = if self.sequence_by.is_empty() {
                String::new()
            } else {
                format!(
                    " AND ({}) < <the last truncate's>",
                    self.sequence_by
                        .iter()
                        .map(|c| format!("{TARGET}.{}", ident(c)))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            lines.push(format!(
                "WHEN NOT MATCHED BY SOURCE{older} THEN DELETE, once a row has ({truncate}); input rows before it are dropped"
            ));
        }
        for (column, condition) in &self.unchanged_when {
            lines.push(format!(
                "{} keeps the table's value WHEN {condition} (unless an earlier input row of the key has it)",
                ident(column)
            ));
        }
        lines
    }
}

/// A SQL identifier, quoted unless plain lower-case.
fn ident(name: &str) -> String {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if plain && !name.is_empty() {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// How a merge is prepared.
#[derive(Debug, Clone)]
pub struct MergeOptions {
    /// Keys, sequence, deletes.
    pub spec: MergeSpec,
    /// What new or wider input columns do to the table.
    pub schema: SchemaPolicy,
    /// Partition columns of a table the merge creates.
    pub partition_by: Vec<String>,
    /// A store path (in the table's store) only this intent uses, for its staged input; the
    /// executor's run staging folder is the place.
    pub staging: Path,
    /// The transaction the commit carries.
    pub txn: Txn,
    /// Page compression of the data files the merge writes.
    pub compression: Compression,
}

/// Stages the input of one merge; [`MergeWriter::finish`] hands back its intent.
pub struct MergeWriter {
    table: DeltaTable,
    options: MergeOptions,
    /// The input's schema, fixed by the first batch.
    schema: Option<SchemaRef>,
    writer: Option<AsyncArrowWriter<BufWriter>>,
    staged: Vec<Path>,
    rows_in_file: u64,
    rows: u64,
}

impl MergeWriter {
    pub(crate) fn new(table: DeltaTable, options: MergeOptions) -> Self {
        MergeWriter {
            table,
            options,
            schema: None,
            writer: None,
            staged: Vec::new(),
            rows_in_file: 0,
            rows: 0,
        }
    }

    /// Checks `batch` (keys present and never NULL, `delete_when` and `unchanged_when` over
    /// known columns, the schema policy) and stages it. Nothing is staged from a batch that
    /// fails.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let name = self.table.location().display();
        if self.schema.is_none() {
            let normalized = schema::normalize(&name, &batch.schema())?;
            validate(&self.table, &name, &self.options, &normalized)?;
            self.schema = Some(normalized);
        }
        let input_schema = self.schema.clone().expect("set above");
        let batch = schema::conform(&name, batch, &input_schema)?;
        let truncates = match &self.options.spec.truncate_when {
            Some(sql) => Some(evaluate_condition(&name, "truncate_when", sql, &batch)?),
            None => None,
        };
        for key in &self.options.spec.keys {
            let nulls = batch.column_by_name(key).map_or(0, |c| match &truncates {
                // A truncate row carries no key.
                Some(t) => (0..c.len())
                    .filter(|&i| c.is_null(i) && !(t.is_valid(i) && t.value(i)))
                    .count(),
                None => c.null_count(),
            });
            if nulls > 0 {
                return Err(Error::user(format!(
                    "table {name}: merge key `{key}` is NULL in {nulls} rows of the data; every row needs its key"
                )));
            }
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let ordinals =
            UInt64Array::from_iter_values(self.rows..self.rows + batch.num_rows() as u64);
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(ordinals));
        let staged = RecordBatch::try_new(staged_schema(&input_schema), columns)
            .context(|| format!("table {name}: staging merge input"))?;
        if self.writer.is_none() || self.rows_in_file >= STAGED_FILE_ROWS {
            self.close_file().await?;
            let path = child(
                &self.options.staging,
                &format!("merge-input-{:05}.parquet", self.staged.len()),
            );
            let object = BufWriter::new(self.table.location().store().clone(), path.clone());
            self.writer = Some(
                AsyncArrowWriter::try_new(object, staged.schema(), None)
                    .context(|| format!("table {name}: staging merge input at {path}"))?,
            );
            self.staged.push(path);
            self.rows_in_file = 0;
        }
        self.writer
            .as_mut()
            .expect("opened above")
            .write(&staged)
            .await
            .context(|| format!("table {name}: staging merge input"))?;
        self.rows_in_file += batch.num_rows() as u64;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    async fn close_file(&mut self) -> Result<()> {
        if let Some(writer) = self.writer.take() {
            let name = self.table.location().display();
            writer
                .close()
                .await
                .context(|| format!("table {name}: finishing staged merge input"))?;
        }
        Ok(())
    }

    /// Closes the staged files and returns the intent that merges them.
    pub async fn finish(mut self) -> Result<CommitIntent> {
        self.close_file().await?;
        Ok(CommitIntent {
            table: self.table.location().display(),
            txn: self.options.txn,
            read_version: self.table.version(),
            action: IntentAction::Merge(MergeIntent {
                spec: self.options.spec,
                schema: self.options.schema,
                partition_by: self.options.partition_by,
                staged: self.staged.iter().map(|p| p.to_string()).collect(),
                rows: self.rows,
                deleted_at_micros: chrono::Utc::now().timestamp_micros(),
                compression: self.options.compression,
            }),
        })
    }

    /// Stops staging and deletes the files staged so far.
    pub async fn abort(mut self) -> Result<()> {
        self.close_file().await?;
        let location = self.table.location().clone();
        crate::write::delete_all(&location, std::mem::take(&mut self.staged)).await?;
        Ok(())
    }
}

fn child(prefix: &Path, name: &str) -> Path {
    Path::from_iter(
        prefix
            .parts()
            .map(|p| p.as_ref().to_owned())
            .chain([name.to_owned()]),
    )
}

fn staged_schema(input: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(ORDINAL, DataType::UInt64, false));
    Arc::new(Schema::new(fields))
}

/// Every problem of the spec against the input and the table, before anything is staged.
fn validate(
    table: &DeltaTable,
    name: &str,
    options: &MergeOptions,
    input: &SchemaRef,
) -> Result<()> {
    let spec = &options.spec;
    let columns = || {
        input
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if spec.keys.is_empty() {
        return Err(Error::user(format!(
            "table {name}: a merge needs at least one key column"
        )));
    }
    for (what, list) in [
        ("merge key", &spec.keys),
        ("sequence_by column", &spec.sequence_by),
    ] {
        for column in list.iter() {
            if input.field_with_name(column).is_err() {
                return Err(Error::user(format!(
                    "table {name}: {what} `{column}` is not a column of the data (columns: {})",
                    columns()
                )));
            }
        }
    }
    let df_schema = DFSchema::try_from(input.as_ref().clone())
        .context(|| format!("table {name}: reading the input schema"))?;
    if let Some(condition) = &spec.delete_when {
        parse_condition(name, "delete_when", condition, &df_schema)?;
    }
    if let Some(condition) = &spec.truncate_when {
        parse_condition(name, "truncate_when", condition, &df_schema)?;
    }
    for (column, condition) in &spec.unchanged_when {
        if input.field_with_name(column).is_err() {
            return Err(Error::user(format!(
                "table {name}: unchanged_when names column `{column}`, which is not a column of the data (columns: {})",
                columns()
            )));
        }
        parse_condition(
            name,
            &format!("unchanged_when.{column}"),
            condition,
            &df_schema,
        )?;
    }
    let mut target = input.as_ref().clone();
    if spec.deletes == DeleteMode::Soft {
        target = with_deleted_at(&target);
    }
    let current = table.arrow_schema()?;
    let plan = schema::reconcile(name, current.as_deref(), &target, options.schema)?;
    crate::write::check_partitions(table, name, &options.partition_by, &plan.target)?;
    Ok(())
}

/// `schema` with the soft-delete column (a UTC timestamp) unless it has one.
fn with_deleted_at(schema: &Schema) -> Schema {
    if schema.field_with_name(DELETED_AT).is_ok() {
        return schema.clone();
    }
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(DELETED_AT, deleted_at_type(), true));
    Schema::new(fields)
}

fn deleted_at_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// A SQL condition over the input's columns, as a boolean expression.
fn parse_condition(name: &str, what: &str, sql: &str, schema: &DFSchema) -> Result<Expr> {
    let ctx = SessionContext::new();
    let expr = ctx.parse_sql_expr(sql, schema).map_err(|e| {
        Error::user(format!(
            "table {name}: merge {what} `{sql}` is not a condition over the data's columns: {}",
            e.strip_backtrace()
        ))
    })?;
    let data_type = expr
        .to_field(schema)
        .map(|(_, f)| f.data_type().clone())
        .map_err(|e| {
            Error::user(format!(
                "table {name}: merge {what} `{sql}`: {}",
                e.strip_backtrace()
            ))
        })?;
    if data_type != DataType::Boolean {
        return Err(Error::user(format!(
            "table {name}: merge {what} `{sql}` is {}, not a condition (true or false)",
            schema::type_name(&data_type)
        )));
    }
    Ok(expr)
}

/// A condition over `batch`'s columns evaluated for each row.
fn evaluate_condition(
    name: &str,
    what: &str,
    sql: &str,
    batch: &RecordBatch,
) -> Result<BooleanArray> {
    let df_schema = DFSchema::try_from(batch.schema().as_ref().clone())
        .context(|| format!("table {name}: reading the input schema"))?;
    let expr = parse_condition(name, what, sql, &df_schema)?;
    let physical = SessionContext::new()
        .create_physical_expr(expr, &df_schema)
        .context(|| format!("table {name}: merge {what} `{sql}`"))?;
    let values = physical
        .evaluate(batch)
        .and_then(|v| v.into_array(batch.num_rows()))
        .context(|| format!("table {name}: evaluating merge {what} `{sql}`"))?;
    Ok(values.as_boolean().clone())
}

/// `expr` with its columns read from the `alias` side of the merge.
fn qualify(expr: Expr, alias: &str) -> Result<Expr> {
    expr.transform(|e| match e {
        Expr::Column(c) => Ok(Transformed::yes(Expr::Column(Column::new(
            Some(alias),
            c.name,
        )))),
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
    .map_err(|e| Error::internal(format!("qualifying a merge condition: {e}")))
}

fn side(alias: &str, column: &str) -> Expr {
    Expr::Column(Column::new(Some(alias), column))
}

/// Source beats target: the sequence columns compared in order, NULL lowest, a tie going to
/// the source (the later arrival).
fn source_wins(sequence_by: &[String]) -> Expr {
    later(
        sequence_by
            .iter()
            .map(|c| (side(SOURCE, c), side(TARGET, c)))
            .collect(),
        true,
    )
}

/// `(a1, a2, ...) > (b1, b2, ...)` in order, NULL lowest; `>=` with `or_equal`.
fn later(pairs: Vec<(Expr, Expr)>, or_equal: bool) -> Expr {
    pairs.into_iter().rev().fold(lit(or_equal), |rest, (a, b)| {
        let greater = a
            .clone()
            .gt(b.clone())
            .or(a.clone().is_not_null().and(b.clone().is_null()));
        greater.or(binary_expr(a, Operator::IsNotDistinctFrom, b).and(rest))
    })
}

/// The merge's source: the staged input after its last truncate, one row per key.
struct Source {
    data: DataFrame,
    /// Per `unchanged_when` column, the source column saying that the table's value stays.
    keep: Vec<(String, String)>,
    /// The sequence of the input's last truncate (`truncate_when`), if it has one.
    truncated_at: Option<Vec<ScalarValue>>,
}

/// The staged input, one row per key: the highest sequence, then the latest arrival; rows up
/// to the last truncate dropped. A column the winning row marks unchanged takes the value of
/// the key's latest earlier row that has one (an insert, then an update leaving it
/// unchanged, in one merge); only when none has it does the table's value stay.
async fn deduplicated_source(
    ctx: &SessionContext,
    name: &str,
    staged: Vec<String>,
    spec: &MergeSpec,
) -> Result<Source> {
    let mut df = ctx
        .read_parquet(staged, Default::default())
        .await
        .context(|| format!("table {name}: reading the staged merge input"))?;
    let input_schema = DFSchema::try_from(df.schema().as_arrow().clone())
        .context(|| format!("table {name}: reading the input schema"))?;
    // Latest first: the highest sequence (NULL lowest), then the latest arrival.
    let latest_first = || -> Vec<SortExpr> {
        spec.sequence_by
            .iter()
            .map(|c| col(Column::from_name(c)))
            .chain([col(ORDINAL)])
            .map(|e| e.sort(false, false))
            .collect()
    };
    let mut truncated_at = None;
    if let Some(sql) = &spec.truncate_when {
        let truncate = parse_condition(name, "truncate_when", sql, &input_schema)?.is_true();
        let last = df
            .clone()
            .filter(truncate.clone())
            .and_then(|d| d.sort(latest_first()))
            .and_then(|d| d.limit(0, Some(1)))
            .and_then(|d| {
                d.select(
                    spec.sequence_by
                        .iter()
                        .map(|c| col(Column::from_name(c)))
                        .chain([col(ORDINAL)])
                        .collect::<Vec<_>>(),
                )
            })
            .context(|| format!("table {name}: finding the input's last truncate"))?
            .collect()
            .await
            .context(|| format!("table {name}: finding the input's last truncate"))?;
        if let Some(batch) = last.iter().find(|b| b.num_rows() > 0) {
            let values = batch
                .columns()
                .iter()
                .map(|a| ScalarValue::try_from_array(a, 0))
                .collect::<std::result::Result<Vec<_>, _>>()
                .context(|| format!("table {name}: reading the last truncate's sequence"))?;
            let after = later(
                spec.sequence_by
                    .iter()
                    .map(|c| col(Column::from_name(c)))
                    .chain([col(ORDINAL)])
                    .zip(values.iter().cloned().map(lit))
                    .collect(),
                false,
            );
            df = df
                .filter(after.and(not(truncate)))
                .context(|| format!("table {name}: dropping the input before its truncate"))?;
            // Without the ordinal, which the table's rows lack.
            truncated_at = Some(values[..spec.sequence_by.len()].to_vec());
        } else {
            df = df
                .filter(not(truncate))
                .context(|| format!("table {name}: reading the staged merge input"))?;
        }
    }
    let partition: Vec<Expr> = spec
        .keys
        .iter()
        .map(|k| col(Column::from_name(k)))
        .collect();
    // One window call per ordering: DataFusion plans a call's windows with one sort.
    let mut windows = vec![vec![
        row_number()
            .partition_by(partition.clone())
            .order_by(latest_first())
            .build()
            .map_err(|e| Error::internal(format!("building the merge ranking: {e}")))?
            .alias(RANK),
    ]];
    // Per unchanged column: over the key's rows with the placeholders last, then latest
    // first, the first row's value and whether it is a placeholder. An input without any
    // placeholder (most) skips those sorts.
    let placeholders = spec
        .unchanged_when
        .values()
        .map(|sql| Ok(parse_condition(name, "unchanged_when", sql, &input_schema)?.is_true()))
        .collect::<Result<Vec<Expr>>>()?;
    let any_placeholder = match placeholders.iter().cloned().reduce(Expr::or) {
        None => false,
        Some(any) => df
            .clone()
            .filter(any)
            .and_then(|d| d.limit(0, Some(1)))
            .context(|| format!("table {name}: looking for unchanged values"))?
            .collect()
            .await
            .context(|| format!("table {name}: looking for unchanged values"))?
            .iter()
            .any(|b| b.num_rows() > 0),
    };
    let mut keep = Vec::new();
    let mut filled: BTreeMap<String, String> = BTreeMap::new();
    let mut constant_keeps = Vec::new();
    for (i, ((column, _), placeholder)) in spec.unchanged_when.iter().zip(placeholders).enumerate()
    {
        let kept = format!("{KEEP}{i}");
        keep.push((column.clone(), kept.clone()));
        if !any_placeholder {
            constant_keeps.push(lit(false).alias(kept));
            continue;
        }
        let mut order = vec![placeholder.clone().sort(true, false)];
        order.extend(latest_first());
        let window = |e: Expr, alias: String| {
            first_value(e)
                .partition_by(partition.clone())
                .order_by(order.clone())
                .build()
                .map(|e| e.alias(alias))
                .map_err(|e| {
                    Error::internal(format!("building the unchanged value of {column}: {e}"))
                })
        };
        let value = format!("__pipectl_value_{i}");
        windows.push(vec![
            window(col(Column::from_name(column)), value.clone())?,
            window(placeholder, kept.clone())?,
        ]);
        filled.insert(column.clone(), value);
    }
    let mut data_columns: Vec<Expr> = df
        .schema()
        .fields()
        .iter()
        .filter(|f| f.name() != ORDINAL)
        .map(|f| match filled.get(f.name()) {
            Some(value) => col(Column::from_name(value)).alias(f.name()),
            None => col(Column::from_name(f.name())),
        })
        .collect();
    if any_placeholder {
        data_columns.extend(keep.iter().map(|(_, k)| col(Column::from_name(k))));
    } else {
        data_columns.extend(constant_keeps);
    }
    let data = windows
        .into_iter()
        .try_fold(df, |df, w| df.window(w))
        .and_then(|df| df.filter(col(RANK).eq(lit(1u64))))
        .and_then(|df| df.select(data_columns))
        .context(|| format!("table {name}: de-duplicating the merge input by key"))?;
    Ok(Source {
        data,
        keep,
        truncated_at,
    })
}

/// Runs the merge of `intent` on `table` (which exists) with `txn` in its commit.
pub(crate) async fn run(
    table: &DeltaTable,
    intent: &MergeIntent,
    txn: &Txn,
) -> Result<deltalake_core::DeltaTable> {
    let location = table.location();
    let name = location.display();
    let spec = &intent.spec;
    let ctx = location.session();
    let staged: Vec<String> = intent
        .staged
        .iter()
        .map(|p| location.object_url(&Path::from(p.as_str())))
        .collect();
    let Source {
        data: mut source,
        keep,
        truncated_at,
    } = deduplicated_source(&ctx, &name, staged, spec).await?;
    if intent.rows <= CACHED_SOURCE_ROWS {
        // delta-rs runs the source plan twice (once for the join keys' bounds that prune the
        // target's files, once for the join): read and de-duplicate the staged input once.
        source = source
            .cache()
            .await
            .context(|| format!("table {name}: reading the staged merge input"))?;
    }
    let source_schema = DFSchema::try_from(source.schema().as_arrow().clone())
        .context(|| format!("table {name}: reading the input schema"))?;
    let delete = spec
        .delete_when
        .as_deref()
        .map(|sql| parse_condition(&name, "delete_when", sql, &source_schema))
        .transpose()?;
    let soft_deleted_at = lit(ScalarValue::TimestampMicrosecond(
        Some(intent.deleted_at_micros),
        Some("UTC".into()),
    ));
    if spec.deletes == DeleteMode::Soft {
        let deleted_at = soft_deleted_at.clone();
        let value = match &delete {
            Some(condition) => when(condition.clone().is_true(), deleted_at)
                .otherwise(lit(ScalarValue::TimestampMicrosecond(
                    None,
                    Some("UTC".into()),
                )))
                .map_err(|e| Error::internal(format!("building {DELETED_AT}: {e}")))?,
            None => lit(ScalarValue::TimestampMicrosecond(None, Some("UTC".into()))),
        };
        source = source
            .with_column(DELETED_AT, value)
            .context(|| format!("table {name}: adding {DELETED_AT}"))?;
    }
    let columns: Vec<String> = source
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|c| !c.starts_with(KEEP))
        .collect();
    let unchanged: Vec<(String, Expr)> = keep
        .iter()
        .map(|(column, kept)| (column.clone(), side(SOURCE, kept).is_true()))
        .collect();
    let update_value = |column: &str| -> Result<Expr> {
        match unchanged.iter().find(|(c, _)| c == column) {
            Some((_, keep)) => when(keep.clone(), side(TARGET, column))
                .otherwise(side(SOURCE, column))
                .map_err(|e| Error::internal(format!("building the update of {column}: {e}"))),
            None => Ok(side(SOURCE, column)),
        }
    };
    let insert_value = |column: &str| -> Result<Expr> {
        match unchanged.iter().find(|(c, _)| c == column) {
            Some((_, keep)) => when(keep.clone(), lit(ScalarValue::Null))
                .otherwise(side(SOURCE, column))
                .map_err(|e| Error::internal(format!("building the insert of {column}: {e}"))),
            None => Ok(side(SOURCE, column)),
        }
    };
    let updates: Vec<(String, Expr)> = columns
        .iter()
        .filter(|c| !spec.keys.contains(c))
        .map(|c| Ok((c.clone(), update_value(c)?)))
        .collect::<Result<_>>()?;
    let inserts: Vec<(String, Expr)> = columns
        .iter()
        .map(|c| Ok((c.clone(), insert_value(c)?)))
        .collect::<Result<_>>()?;
    let wins = source_wins(&spec.sequence_by);
    let on = spec
        .keys
        .iter()
        .map(|k| side(TARGET, k).eq(side(SOURCE, k)))
        .reduce(Expr::and)
        .expect("validated: at least one key");

    // Schema merging costs delta-rs a pass over the plan's schemas at every step: ask for it
    // only when the input brings columns the table lacks.
    let adds_columns = intent.schema == SchemaPolicy::Evolve
        && match table.arrow_schema()? {
            Some(target) => columns.iter().any(|c| target.field_with_name(c).is_err()),
            None => true,
        };
    let inner = table.inner()?.clone();
    let commit = crate::table::commit_properties(Some(txn));
    let mut builder = inner
        .merge(source, on)
        .with_source_alias(SOURCE)
        .with_target_alias(TARGET)
        .with_merge_schema(adds_columns)
        .with_session_state(Arc::new(ctx.state()))
        .with_writer_properties(writer_properties(intent.compression)?)
        .with_commit_properties(commit);
    let merge_error = |e| Error::external(format!("table {name}: merge"), e);
    // The first matching clause applies: a delete (or a soft delete's tombstone) first, then
    // the upsert; new rows are inserted unless they are hard deletes.
    let mut inserts_when = lit(true);
    match (&delete, spec.deletes) {
        (Some(condition), DeleteMode::Hard) => {
            let is_delete = qualify(condition.clone(), SOURCE)?.is_true();
            let deletes = is_delete.clone().and(wins.clone());
            builder = builder
                .when_matched_delete(|d| d.predicate(deletes))
                .map_err(merge_error)?;
            inserts_when = not(is_delete);
        }
        (Some(_), DeleteMode::Soft) => {
            let tombstone = side(SOURCE, DELETED_AT).is_not_null().and(wins.clone());
            let marks = std::iter::once(DELETED_AT)
                .chain(spec.sequence_by.iter().map(String::as_str))
                .map(|c| (c.to_owned(), side(SOURCE, c)))
                .collect();
            builder = set_when_matched(builder, tombstone, marks).map_err(merge_error)?;
        }
        (None, _) => {}
    }
    builder = set_when_matched(builder, wins, updates).map_err(merge_error)?;
    if let Some(at) = truncated_at {
        // The table's rows from before the truncate; those the input changes after it are
        // matched above.
        let older = later(
            at.into_iter()
                .map(lit)
                .zip(spec.sequence_by.iter().map(|c| side(TARGET, c)))
                .collect(),
            false,
        );
        builder = match spec.deletes {
            DeleteMode::Hard => builder.when_not_matched_by_source_delete(|d| d.predicate(older)),
            DeleteMode::Soft => builder.when_not_matched_by_source_update(|u| {
                u.predicate(older.and(side(TARGET, DELETED_AT).is_null()))
                    .update(DELETED_AT, soft_deleted_at.clone())
            }),
        }
        .map_err(merge_error)?;
    }
    builder = builder
        .when_not_matched_insert(|i| {
            inserts
                .into_iter()
                .fold(i.predicate(inserts_when), |i, (c, e)| i.set(c, e))
        })
        .map_err(merge_error)?;
    let (merged, _metrics) = builder.await.map_err(merge_error)?;
    Ok(merged)
}

/// Adds a clause updating `sets` on matched rows where `predicate` holds.
fn set_when_matched(
    builder: deltalake_core::operations::merge::MergeBuilder,
    predicate: Expr,
    sets: Vec<(String, Expr)>,
) -> deltalake_core::DeltaResult<deltalake_core::operations::merge::MergeBuilder> {
    builder.when_matched_update(|u| {
        sets.into_iter()
            .fold(u.predicate(predicate), |u, (c, e)| u.update(c, e))
    })
}

/// The schema a table created by this merge gets: the input's (without staging columns),
/// plus `_deleted_at` for soft deletes.
pub(crate) fn created_schema(staged: &Schema, spec: &MergeSpec) -> Schema {
    let fields: Vec<Field> = staged
        .fields()
        .iter()
        .filter(|f| f.name() != ORDINAL)
        .map(|f| f.as_ref().clone())
        .collect();
    let schema = Schema::new(fields);
    if spec.deletes == DeleteMode::Soft {
        with_deleted_at(&schema)
    } else {
        schema
    }
}

/// The Parquet writer properties of the files a merge writes.
fn writer_properties(compression: Compression) -> Result<WriterProperties> {
    let codec = match compression {
        Compression::None => Codec::UNCOMPRESSED,
        Compression::Snappy => Codec::SNAPPY,
        Compression::Zstd => Codec::ZSTD(
            ZstdLevel::try_new(3).map_err(|e| Error::internal(format!("zstd level: {e}")))?,
        ),
        Compression::Gzip => Codec::GZIP(GzipLevel::default()),
    };
    Ok(WriterProperties::builder().set_compression(codec).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_predicate_reads_as_sql() {
        let spec = MergeSpec {
            keys: vec!["id".into(), "Region".into()],
            sequence_by: vec!["lsn".into()],
            delete_when: Some("op = 'D'".into()),
            ..MergeSpec::default()
        };
        assert_eq!(
            spec.predicate_sql(),
            "target.id = source.id AND target.\"Region\" = source.\"Region\""
        );
        let plan = spec.describe().join("\n");
        assert!(
            plan.contains(
                "WHEN MATCHED AND (op = 'D') AND (source.lsn) >= (target.lsn) THEN DELETE"
            ),
            "{plan}"
        );
        assert!(
            plan.contains("WHEN NOT MATCHED AND NOT (op = 'D') THEN INSERT *"),
            "{plan}"
        );
    }
}
