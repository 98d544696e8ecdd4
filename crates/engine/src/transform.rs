//! Transforms: functions from record batch to record batch, run as streaming steps.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray, TimestampMicrosecondArray, new_null_array};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use pipectl_spec::diag::did_you_mean;
use pipectl_spec::lang::datatype::parse_column_type;
use pipectl_spec::lang::expr::{Expr, parse_expr};
use pipectl_spec::types::{AddColumn, CastErrorPolicy, GeneratedValue, Transform as TransformSpec};
use tokio::sync::mpsc;

use crate::arrow_eval::{CompiledFilter, arrow_type, cast_column};
use crate::context::{Output, RunContext, StepContext};
use crate::error::{Error, Result};
use crate::table::{Message, TableId};

/// A batch-to-batch function. `None` drops the batch (e.g. a filter removed every row).
pub trait BatchTransform: Send {
    /// Transforms one batch of `table`.
    fn apply(&mut self, table: &TableId, batch: RecordBatch) -> Result<Option<RecordBatch>>;
}

/// Builds the transform for a spec entry.
pub fn build(spec: &TransformSpec, run: &RunContext) -> Result<Box<dyn BatchTransform>> {
    Ok(match spec {
        TransformSpec::Select(t) => Box::new(Project {
            columns: t.columns.clone(),
            keep: true,
        }),
        TransformSpec::Drop(t) => Box::new(Project {
            columns: t.columns.clone(),
            keep: false,
        }),
        TransformSpec::Rename(t) => Box::new(Rename {
            columns: t
                .columns
                .iter()
                .map(|(a, b)| (a.clone(), b.clone()))
                .collect(),
        }),
        TransformSpec::Cast(t) => {
            let mut columns = Vec::new();
            for (name, type_name) in &t.columns {
                let parsed = parse_column_type(type_name)
                    .map_err(|e| Error::user(format!("column `{name}`: {}", e.message)))?;
                columns.push((name.clone(), arrow_type(&parsed)));
            }
            Box::new(Cast {
                columns,
                null_on_error: t.on_error == CastErrorPolicy::Null,
                rows_seen: HashMap::new(),
            })
        }
        TransformSpec::Filter(t) => Box::new(Filter {
            expr: parse_expr(&t.condition)
                .map_err(|e| Error::user(format!("condition: {}", e.message)))?,
            compiled: HashMap::new(),
        }),
        TransformSpec::AddColumns(t) => Box::new(AddColumns {
            columns: t
                .columns
                .iter()
                .map(|c| constant_column(c, run))
                .collect::<Result<Vec<_>>>()?,
        }),
    })
}

/// Runs a transform step: reads its input channel, applies the transform to the tables it is
/// limited to (all when `tables` is empty), passes everything else through.
pub async fn run(
    ctx: StepContext,
    mut transform: Box<dyn BatchTransform>,
    tables: Vec<String>,
    mut input: mpsc::Receiver<Message>,
    out: Output,
) -> Result<()> {
    loop {
        let message = tokio::select! {
            biased;
            _ = out.cancel_token().cancelled() => return Err(Error::cancelled()),
            m = input.recv() => m,
        };
        let Some(message) = message else { break };
        match message {
            Message::Batch(table, batch) => {
                let applies = tables.is_empty() || tables.iter().any(|p| table.matches(p));
                if !applies {
                    out.send(Message::Batch(table, batch)).await?;
                    continue;
                }
                let before = batch.num_rows() as u64;
                let result = transform
                    .apply(&table, batch)
                    .map_err(|e| e.context(format!("transform `{}`, table {table}", ctx.name)))?;
                let after = result.as_ref().map_or(0, |b| b.num_rows() as u64);
                ctx.metrics.extra.fetch_add(
                    before.saturating_sub(after),
                    std::sync::atomic::Ordering::Relaxed,
                );
                if let Some(batch) = result {
                    out.send(Message::Batch(table, batch)).await?;
                }
            }
            end @ Message::EndOfTable(_) => out.send(end).await?,
        }
    }
    Ok(())
}

fn missing_column(name: &str, schema: &Schema) -> Error {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let hint = match did_you_mean(name, names.iter().copied()) {
        Some(g) => format!("did you mean `{g}`? "),
        None => String::new(),
    };
    Error::user(format!(
        "no column `{name}`; {hint}columns: {}",
        names.join(", ")
    ))
}

fn column_index(name: &str, schema: &Schema) -> Result<usize> {
    schema
        .index_of(name)
        .map_err(|_| missing_column(name, schema))
}

struct Project {
    columns: Vec<String>,
    keep: bool,
}

impl BatchTransform for Project {
    fn apply(&mut self, _table: &TableId, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let schema = batch.schema();
        let wanted: Vec<usize> = self
            .columns
            .iter()
            .map(|c| column_index(c, &schema))
            .collect::<Result<_>>()?;
        let indices: Vec<usize> = if self.keep {
            wanted
        } else {
            (0..schema.fields().len())
                .filter(|i| !wanted.contains(i))
                .collect()
        };
        Ok(Some(batch.project(&indices)?))
    }
}

struct Rename {
    columns: Vec<(String, String)>,
}

impl BatchTransform for Rename {
    fn apply(&mut self, _table: &TableId, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let schema = batch.schema();
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        for (from, to) in &self.columns {
            let i = column_index(from, &schema)?;
            fields[i] = fields[i].clone().with_name(to);
        }
        for (i, f) in fields.iter().enumerate() {
            if fields[..i].iter().any(|g| g.name() == f.name()) {
                return Err(Error::user(format!(
                    "renaming makes two columns named `{}`",
                    f.name()
                )));
            }
        }
        let schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
        Ok(Some(RecordBatch::try_new(
            schema,
            batch.columns().to_vec(),
        )?))
    }
}

struct Cast {
    columns: Vec<(String, DataType)>,
    null_on_error: bool,
    /// Rows of each table seen so far, so errors name the row within the table.
    rows_seen: HashMap<TableId, usize>,
}

impl BatchTransform for Cast {
    fn apply(&mut self, table: &TableId, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let offset = *self.rows_seen.get(table).unwrap_or(&0);
        self.rows_seen
            .insert(table.clone(), offset + batch.num_rows());
        let schema = batch.schema();
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        for (name, to) in &self.columns {
            let i = column_index(name, &schema)?;
            let (array, _nulled) =
                cast_column(&columns[i], to, self.null_on_error).map_err(|f| {
                    Error::user(format!(
                        "column `{name}`, row {}: cannot convert {} to {to}: {}",
                        offset + f.row + 1,
                        f.value,
                        f.message
                    ))
                })?;
            columns[i] = array;
            fields[i] = fields[i].clone().with_data_type(to.clone());
        }
        let schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
        Ok(Some(RecordBatch::try_new(schema, columns)?))
    }
}

struct Filter {
    expr: Expr,
    /// One compiled filter per input schema (tables differ; a table's schema does not change).
    compiled: HashMap<SchemaRef, CompiledFilter>,
}

impl BatchTransform for Filter {
    fn apply(&mut self, _table: &TableId, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let schema = batch.schema();
        if !self.compiled.contains_key(&schema) {
            let compiled = CompiledFilter::new(&self.expr, &schema).map_err(|e| {
                let help = e
                    .help
                    .as_deref()
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default();
                Error::user(format!("condition `{}`: {}{help}", self.expr, e.message))
            })?;
            self.compiled.insert(schema.clone(), compiled);
        }
        let Some(filter) = self.compiled.get(&schema) else {
            return Err(Error::internal("filter cache"));
        };
        let mask = filter
            .evaluate(&batch)
            .map_err(|e| Error::user(format!("condition `{}`: {}", self.expr, e.message)))?;
        let kept = filter_record_batch(&batch, &mask)?;
        Ok((kept.num_rows() > 0).then_some(kept))
    }
}

struct AddColumns {
    /// Each new column as a one-row array, repeated to the batch length.
    columns: Vec<(Field, ArrayRef)>,
}

impl BatchTransform for AddColumns {
    fn apply(&mut self, _table: &TableId, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let schema = batch.schema();
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        let mut columns = batch.columns().to_vec();
        for (field, one) in &self.columns {
            if schema.index_of(field.name()).is_ok() {
                return Err(Error::user(format!(
                    "column `{}` already exists; rename it first or pick another name",
                    field.name()
                )));
            }
            let indices = arrow::array::UInt32Array::from(vec![0u32; batch.num_rows()]);
            columns.push(arrow::compute::take(one.as_ref(), &indices, None)?);
            fields.push(field.clone());
        }
        let schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
        Ok(Some(RecordBatch::try_new(schema, columns)?))
    }
}

/// A one-row array holding an added column's value.
fn constant_column(column: &AddColumn, run: &RunContext) -> Result<(Field, ArrayRef)> {
    let context = |e: String| Error::user(format!("column `{}`: {e}", column.name));
    let array: ArrayRef = match (&column.generated, &column.literal) {
        (Some(GeneratedValue::LoadTimestamp), _) => Arc::new(
            TimestampMicrosecondArray::from(vec![run.started_at.timestamp_micros()])
                .with_timezone("UTC"),
        ),
        (Some(GeneratedValue::RunId), _) => Arc::new(StringArray::from(vec![run.run_id.clone()])),
        (None, Some(value)) => {
            let text = match value {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            };
            let natural = match value {
                serde_json::Value::Bool(_) => DataType::Boolean,
                serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => DataType::Int64,
                serde_json::Value::Number(_) => DataType::Float64,
                _ => DataType::Utf8,
            };
            let target = match &column.data_type {
                Some(t) => arrow_type(&parse_column_type(t).map_err(|e| context(e.message))?),
                None => natural,
            };
            match text {
                None => new_null_array(&target, 1),
                Some(text) => {
                    let source: ArrayRef = Arc::new(StringArray::from(vec![text]));
                    cast_column(&source, &target, false)
                        .map_err(|f| {
                            context(format!(
                                "literal {} is not a valid {target}: {}",
                                f.value, f.message
                            ))
                        })?
                        .0
                }
            }
        }
        (None, None) => return Err(context("needs `literal` or `generated`".to_owned())),
    };
    let data_type = match column.generated {
        Some(GeneratedValue::LoadTimestamp) => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        _ => array.data_type().clone(),
    };
    Ok((Field::new(&column.name, data_type, true), array))
}
