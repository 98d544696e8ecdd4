//! `pipectl plan`: what a run would read and write, resolved against live sources where possible.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::Utc;
use pipectl_spec::LoadedSpec;
use pipectl_spec::dag::StepKind;
use pipectl_state::Bookmark;
use serde::Serialize;

use crate::connect::Connections;
use crate::sink::{self, SinkPlanInput};
use crate::source;
use crate::source::PlanInput;
use crate::table::TableId;

/// The plan of one pipeline.
#[derive(Debug, Serialize)]
pub struct Plan {
    /// Pipeline name.
    pub pipeline: String,
    /// The spec file.
    pub file: String,
    /// Hash of the spec file, as recorded with runs.
    pub spec_hash: String,
    /// Schedule and its next fire times, if scheduled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<SchedulePlan>,
    /// Connection URLs as written in the spec (secrets stay `${env:NAME}`).
    pub connections: BTreeMap<String, String>,
    /// Steps in execution order.
    pub steps: Vec<PlanStep>,
}

/// When a scheduled pipeline runs next.
#[derive(Debug, Serialize)]
pub struct SchedulePlan {
    /// The cron expression.
    pub cron: String,
    /// Its time zone.
    pub timezone: String,
    /// The next three fire times, RFC 3339 in that zone.
    pub next: Vec<String>,
}

/// One step of the plan.
#[derive(Debug, Serialize)]
pub struct PlanStep {
    /// Step name.
    pub name: String,
    /// Source, transform, sink or crawler.
    pub kind: StepKind,
    /// The step's `type`.
    #[serde(rename = "type")]
    pub step_type: String,
    /// Upstream steps.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
    /// The step's settings with defaults filled in.
    pub settings: serde_json::Value,
    /// What a source reads: one entry per table, with the exact statement.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<PlanRead>,
    /// What a sink writes: one entry per table, with the key prefix and file name pattern.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub writes: Vec<PlanWrite>,
    /// Things worth knowing (e.g. a database that could not be inspected).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Probable mistakes: an include rule that matches no table. `plan --strict` and
    /// `run --strict` treat them as errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Plan {
    /// Every step's warnings, each prefixed with its step.
    pub fn warnings(&self) -> Vec<String> {
        self.steps
            .iter()
            .flat_map(|s| {
                s.warnings
                    .iter()
                    .map(move |w| format!("source `{}`: {w}", s.name))
            })
            .collect()
    }
}

/// A table a source reads.
#[derive(Debug, Serialize)]
pub struct PlanRead {
    /// `schema.table`.
    pub table: String,
    /// The statement, or the generator's description.
    pub query: String,
    /// Column names and types as they will land.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// Values bound to the statement's placeholders (`$1`, `?`), in order: the stored bookmark.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<String>,
}

/// A table a sink writes.
#[derive(Debug, Serialize)]
pub struct PlanWrite {
    /// `schema.table`.
    pub table: String,
    /// Object key of the files, with the run id left as `{run_id}`.
    pub key: String,
}

/// Builds the plan. With `live`, database sources are inspected to list the tables their rules
/// select; otherwise (or when a database cannot be reached) the step notes why not.
pub async fn build(
    spec: &LoadedSpec,
    base_dir: &Path,
    env: impl Fn(&str) -> Option<String>,
    live: bool,
) -> Plan {
    build_with_bookmarks(spec, base_dir, env, live, &[]).await
}

/// A step's settings as the plan shows them (null when the step has none).
fn settings(step: Option<&impl serde::Serialize>) -> serde_json::Value {
    step.map(|s| serde_json::to_value(s).unwrap_or_default())
        .unwrap_or_default()
}

/// [`build`], with the pipeline's stored bookmarks, so incremental reads show the WHERE clause
/// with the values they bind.
pub async fn build_with_bookmarks(
    spec: &LoadedSpec,
    base_dir: &Path,
    env: impl Fn(&str) -> Option<String>,
    live: bool,
    bookmarks: &[Bookmark],
) -> Plan {
    let pipeline = &spec.pipeline;
    let connections = Connections::resolve(pipeline, base_dir, env);
    let mut tables_of: BTreeMap<String, Vec<TableId>> = BTreeMap::new();
    let mut steps = Vec::new();
    let today = Utc::now().format("%Y-%m-%d").to_string();
    for step in spec.dag.ordered() {
        let mut plan_step = PlanStep {
            name: step.name.clone(),
            kind: step.kind,
            step_type: step.step_type.clone(),
            inputs: step.inputs.clone(),
            settings: serde_json::Value::Null,
            reads: Vec::new(),
            writes: Vec::new(),
            notes: Vec::new(),
            warnings: Vec::new(),
        };
        let mut tables: Vec<TableId> = Vec::new();
        match step.kind {
            StepKind::Source => {
                let Some(source) = pipeline.sources.get(&step.name) else {
                    continue;
                };
                plan_step.settings = settings(Some(source));
                let input = PlanInput {
                    pipeline,
                    step: &step.name,
                    connections: connections.as_ref().ok(),
                    live,
                    bookmarks,
                };
                let planned = source::connector(source).plan(&input).await;
                plan_step.reads = planned.reads;
                plan_step.notes = planned.notes;
                plan_step.warnings = planned.warnings;
                tables = planned.tables;
            }
            StepKind::Transform => {
                plan_step.settings = settings(pipeline.transforms.get(&step.name));
                tables = upstream_tables(&tables_of, &step.inputs);
            }
            StepKind::Sink => {
                let Some(sink) = pipeline.sinks.get(&step.name) else {
                    continue;
                };
                plan_step.settings = settings(Some(sink));
                tables = upstream_tables(&tables_of, &step.inputs);
                let planned = sink::connector(sink).plan(&SinkPlanInput {
                    pipeline,
                    step: &step.name,
                    inputs: &step.inputs,
                    tables: &tables,
                    today: &today,
                });
                plan_step.writes = planned.writes;
                plan_step.notes = planned.notes;
                tables = planned.tables;
            }
            StepKind::Crawler => {
                plan_step.settings = settings(pipeline.crawlers.get(&step.name));
                plan_step.notes.push(
                    "runs after the run publishes: catalogues every table its input sinks have written (all runs)"
                        .to_owned(),
                );
            }
        }
        tables_of.insert(step.name.clone(), tables);
        steps.push(plan_step);
    }
    let schedule = pipeline.schedule.as_ref().map(|s| {
        let next = match (
            pipectl_spec::validate::parse_cron(&s.cron),
            s.timezone.parse::<chrono_tz::Tz>(),
        ) {
            (Ok(cron), Ok(tz)) => cron.upcoming(tz).take(3).map(|t| t.to_rfc3339()).collect(),
            _ => Vec::new(),
        };
        SchedulePlan {
            cron: s.cron.clone(),
            timezone: s.timezone.clone(),
            next,
        }
    });
    let mut plan = Plan {
        pipeline: pipeline.name.clone(),
        file: spec.file.clone(),
        spec_hash: spec.hash.clone(),
        schedule,
        connections: pipeline
            .connections
            .iter()
            .map(|(k, v)| (k.clone(), v.url.clone()))
            .collect(),
        steps,
    };
    // Secrets never come from the spec text, but an error message (a note) can quote a
    // resolved value, such as a path that contains one: mask every string.
    if let Ok(c) = &connections {
        let r = c.redactor();
        for step in &mut plan.steps {
            step.notes.iter_mut().for_each(|n| *n = r.redact(n));
            step.warnings.iter_mut().for_each(|w| *w = r.redact(w));
            step.reads.iter_mut().for_each(|read| {
                read.query = r.redact(&read.query);
                read.params.iter_mut().for_each(|p| *p = r.redact(p));
            });
            if let Ok(masked) = serde_json::from_str(&r.redact(&step.settings.to_string())) {
                step.settings = masked;
            }
        }
    }
    plan
}

pub(crate) fn connections_display(pipeline: &pipectl_spec::types::Pipeline, name: &str) -> String {
    pipeline
        .connections
        .get(name)
        .map(|c| c.url.trim_end_matches('/').to_owned())
        .unwrap_or_default()
}

fn upstream_tables(tables_of: &BTreeMap<String, Vec<TableId>>, inputs: &[String]) -> Vec<TableId> {
    let mut out: Vec<TableId> = inputs
        .iter()
        .flat_map(|i| tables_of.get(i).cloned().unwrap_or_default())
        .collect();
    out.sort();
    out.dedup();
    out
}
