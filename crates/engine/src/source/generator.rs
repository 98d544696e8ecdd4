//! The generator source: the Kinesis Data Generator as a pipeline step.
//!
//! Records are rendered from the template as JSON text in batches and decoded straight into
//! Arrow by arrow-json's decoder, which is much faster than building serde values per record.

use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::json::ReaderBuilder;
use arrow::json::reader::infer_json_schema_from_iterator;
use futures::future::BoxFuture;
use pipectl_spec::lang::template::{RenderContext, Template};
use pipectl_spec::types::GeneratorSource as GeneratorSpec;
use tokio::time::Instant;

use crate::arrow_eval::declared_schema;
use crate::context::{Output, StepContext};
use crate::error::{Error, Result};
use crate::plan::PlanRead;
use crate::table::{Message, TableId};

use super::connector::{PlanInput, SourceConnector, SourcePlan};

/// The `generator` source's connector, bound to its spec.
pub struct Connector<'a>(pub &'a GeneratorSpec);

impl SourceConnector for Connector<'_> {
    fn batch(&self, name: &str) -> Result<Box<dyn super::Source>> {
        Ok(Box::new(GeneratorSource::new(name, self.0.clone())?))
    }

    fn plan<'a>(&'a self, input: &'a PlanInput<'a>) -> BoxFuture<'a, SourcePlan> {
        let g = self.0;
        let table = TableId {
            source: input.step.to_owned(),
            schema: input.step.to_owned(),
            name: g.table.clone().unwrap_or_else(|| input.step.to_owned()),
        };
        let mut what = Vec::new();
        if let Some(c) = g.count {
            what.push(format!("{c} records"));
        }
        if let Some(d) = g.duration_secs {
            what.push(format!("for {d} s"));
        }
        match g.rate_per_sec {
            Some(r) => what.push(format!("at {r} records/s")),
            None => what.push("as fast as the pipeline takes them".to_owned()),
        }
        let plan = SourcePlan {
            reads: vec![PlanRead {
                table: table.to_string(),
                query: format!("generate {}", what.join(" ")),
                columns: g
                    .columns
                    .iter()
                    .map(|c| format!("{} {}", c.name, c.data_type))
                    .collect(),
                params: Vec::new(),
            }],
            tables: vec![table],
            ..SourcePlan::default()
        };
        Box::pin(std::future::ready(plan))
    }
}

/// Records rendered to infer the schema when the spec declares no columns.
const INFER_SAMPLE: usize = 100;

/// The generator source step.
pub struct GeneratorSource {
    table: TableId,
    spec: GeneratorSpec,
    template: Template,
    declared: Option<SchemaRef>,
}

/// Parses the template of generator source `name` (already validated with the spec), failing
/// with the first mistake in it.
pub fn parse_template(name: &str, text: &str) -> Result<Template> {
    Template::parse(text).map_err(|errors| {
        let first = errors
            .first()
            .map(|e| e.message.clone())
            .unwrap_or_default();
        Error::user(format!("source `{name}`: invalid template: {first}"))
    })
}

impl GeneratorSource {
    /// Builds the generator; the template and column types were validated with the spec.
    pub fn new(name: &str, spec: GeneratorSpec) -> Result<Self> {
        let template = parse_template(name, &spec.template)?;
        let declared = declared_schema(&format!("source `{name}`"), &spec.columns)?;
        Ok(GeneratorSource {
            table: TableId {
                source: name.to_owned(),
                schema: name.to_owned(),
                name: spec.table.clone().unwrap_or_else(|| name.to_owned()),
            },
            spec,
            template,
            declared,
        })
    }

    /// The table this generator produces.
    pub fn table(&self) -> &TableId {
        &self.table
    }
}

/// Renders `count` records as JSON lines into `buf` (cleared first).
fn render(template: &Template, ctx: &mut RenderContext, count: usize, buf: &mut String) {
    buf.clear();
    for _ in 0..count {
        ctx.set_now(chrono::Utc::now());
        template.render(ctx, buf);
        buf.push('\n');
    }
}

/// Infers a schema from sample records; the error names the first record that is not a JSON object.
pub fn infer_schema(sample: &str) -> Result<SchemaRef> {
    let mut values = Vec::new();
    for (i, line) in sample.lines().enumerate() {
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| {
            Error::user(format!(
                "record {} is not valid JSON ({e}): {}",
                i + 1,
                line.chars().take(200).collect::<String>()
            ))
            .with_source(e)
        })?;
        if !value.is_object() {
            return Err(Error::user(format!(
                "record {} is not a JSON object; write the template as {{\"field\": \"{{{{helper}}}}\", ...}}",
                i + 1
            )));
        }
        values.push(value);
    }
    let schema = infer_json_schema_from_iterator(values.into_iter().map(Ok))?;
    Ok(Arc::new(schema))
}

impl super::Source for GeneratorSource {
    fn run(self: Box<Self>, ctx: StepContext, out: Output) -> super::Running {
        Box::pin(async move {
            let GeneratorSource {
                table,
                spec,
                template,
                declared,
            } = *self;
            if ctx.run.backfill.as_ref().is_some_and(|b| !b.reads(&table)) {
                return Ok(Vec::new());
            }
            let table = Arc::new(table);
            let mut ctx = RenderContext::new(spec.seed);
            let mut buf = String::new();
            let schema = match declared {
                Some(s) => s,
                None => {
                    // Infer from a separate context so the seeded sequence of real records is
                    // the same whether or not columns are declared.
                    let mut sample_ctx = RenderContext::new(spec.seed);
                    render(&template, &mut sample_ctx, INFER_SAMPLE, &mut buf);
                    infer_schema(&buf).map_err(|e| e.context(format!("table {table}")))?
                }
            };
            let batch_rows = match spec.rate_per_sec {
                // About ten batches a second keep a paced stream smooth.
                Some(rate) => ((rate / 10.0).ceil() as usize).clamp(1, spec.batch_rows),
                None => spec.batch_rows,
            };
            let start = Instant::now();
            let deadline = spec
                .duration_secs
                .map(|d| start + Duration::from_secs_f64(d));
            let mut produced: u64 = 0;
            loop {
                let remaining = spec
                    .count
                    .map(|c| c.saturating_sub(produced))
                    .unwrap_or(u64::MAX);
                if remaining == 0 || deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let n = (batch_rows as u64).min(remaining) as usize;
                render(&template, &mut ctx, n, &mut buf);
                let mut decoder = ReaderBuilder::new(schema.clone())
                    .with_batch_size(n.max(1))
                    .build_decoder()?;
                decoder
                    .decode(buf.as_bytes())
                    .map_err(|e| decode_error(&table, e))?;
                let Some(batch) = decoder.flush().map_err(|e| decode_error(&table, e))? else {
                    break;
                };
                produced += batch.num_rows() as u64;
                out.send(Message::Batch(table.clone(), batch)).await?;
                if let Some(rate) = spec.rate_per_sec {
                    let due = start + Duration::from_secs_f64(produced as f64 / rate);
                    tokio::select! {
                        _ = out.cancel_token().cancelled() => return Err(Error::cancelled()),
                        _ = tokio::time::sleep_until(due) => {}
                    }
                }
            }
            out.send(Message::EndOfTable(table)).await?;
            // Generated records have no position to resume from.
            Ok(Vec::new())
        })
    }
}

fn decode_error(table: &TableId, e: arrow::error::ArrowError) -> Error {
    Error::user(format!(
        "table {table}: a rendered record does not fit the columns ({e}); declare `columns:` with types, or make the template render consistent types"
    ))
}
