//! `pipectl plan`: what a run would read and write, resolved against live sources where possible.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::Utc;
use pipectl_spec::LoadedSpec;
use pipectl_spec::dag::StepKind;
use pipectl_spec::types::{DatabaseSource, Format, Sink, Source};
use pipectl_state::Bookmark;
use serde::Serialize;

use crate::connect::Connections;
use crate::sink::{render_key, writer};
use crate::source::database::{self, Server};
use crate::source::mysql::Mysql;
use crate::source::postgres::Postgres;
use crate::source::sqlite::{self, Sqlite};
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
                plan_step.settings = serde_json::to_value(source).unwrap_or_default();
                match source {
                    Source::Sqlite(db) => {
                        let path = connections
                            .as_ref()
                            .ok()
                            .and_then(|c| c.sqlite_path(&db.connection).ok());
                        match (live, path) {
                            (false, _) => plan_step.notes.push("tables are listed when the database is inspected (run without --offline)".to_owned()),
                            (true, None) => plan_step.notes.push("the connection could not be resolved (is an environment variable missing?)".to_owned()),
                            (true, Some(path)) => match sqlite::connect(&path).await {
                                Err(e) => plan_step.notes.push(format!("cannot inspect the database: {e}")),
                                Ok(mut conn) => match sqlite::plan_tables(&step.name, db, &mut conn).await {
                                    Err(e) => plan_step.notes.push(format!("cannot list tables: {e}")),
                                    Ok(listing) => {
                                        if listing.plans.is_empty() {
                                            plan_step.notes.push("the selection rules match no table".to_owned());
                                        }
                                        plan_step.warnings = listing.unmatched_rules;
                                        for p in listing.plans {
                                            plan_step.reads.push(PlanRead {
                                                table: p.table.to_string(),
                                                query: p.read_statement::<Sqlite>().sql,
                                                columns: p.schema.fields().iter().map(|f| format!("{} {}", f.name(), f.data_type())).collect(),
                                                params: Vec::new(),
                                            });
                                            tables.push(p.table);
                                        }
                                    }
                                },
                            },
                        }
                    }
                    Source::Postgres(db) => {
                        plan_server::<Postgres>(
                            &step.name,
                            db,
                            connections.as_ref().ok(),
                            live,
                            bookmarks,
                            &mut plan_step,
                            &mut tables,
                        )
                        .await
                    }
                    Source::Mysql(db) => {
                        plan_server::<Mysql>(
                            &step.name,
                            db,
                            connections.as_ref().ok(),
                            live,
                            bookmarks,
                            &mut plan_step,
                            &mut tables,
                        )
                        .await
                    }
                    Source::Generator(g) => {
                        let table = TableId {
                            source: step.name.clone(),
                            schema: step.name.clone(),
                            name: g.table.clone().unwrap_or_else(|| step.name.clone()),
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
                        plan_step.reads.push(PlanRead {
                            table: table.to_string(),
                            query: format!("generate {}", what.join(" ")),
                            columns: g
                                .columns
                                .iter()
                                .map(|c| format!("{} {}", c.name, c.data_type))
                                .collect(),
                            params: Vec::new(),
                        });
                        tables.push(table);
                    }
                    Source::Nats(n) => plan_step.reads.push(PlanRead {
                        table: step.name.clone(),
                        query: format!(
                            "JetStream stream {} subject {} durable {} until stopped",
                            n.stream,
                            n.subject.as_deref().unwrap_or(">"),
                            n.durable_name(&pipeline.name, &step.name)
                        ),
                        columns: Vec::new(),
                        params: Vec::new(),
                    }),
                    Source::Mqtt(m) => plan_step.reads.push(PlanRead {
                        table: step.name.clone(),
                        query: format!("MQTT topic {} (QoS 1) until stopped", m.topic),
                        columns: Vec::new(),
                        params: Vec::new(),
                    }),
                    Source::Http(h) => plan_step.reads.push(PlanRead {
                        table: step.name.clone(),
                        query: format!(
                            "HTTP PutRecord/PutRecordBatch on {} until stopped",
                            h.listen
                        ),
                        columns: Vec::new(),
                        params: Vec::new(),
                    }),
                    Source::Files(f) => {
                        plan_step.reads.push(PlanRead {
                            table: f
                                .table
                                .clone()
                                .unwrap_or_else(|| "(one per folder)".to_owned()),
                            query: format!(
                                "{:?} files under {}/{} not read before (look-back {} s)",
                                f.format,
                                connections_display(pipeline, &f.connection),
                                f.prefix,
                                f.look_back_secs
                            )
                            .to_lowercase(),
                            columns: Vec::new(),
                            params: Vec::new(),
                        });
                        plan_step.notes.push(
                            "the bookmark of files read commits with the run; a malformed file is skipped and reported".to_owned(),
                        );
                    }
                }
            }
            StepKind::Transform => {
                if let Some(t) = pipeline.transforms.get(&step.name) {
                    plan_step.settings = serde_json::to_value(t).unwrap_or_default();
                }
                tables = upstream_tables(&tables_of, &step.inputs);
            }
            StepKind::Sink => {
                let Some(sink) = pipeline.sinks.get(&step.name) else {
                    continue;
                };
                plan_step.settings = serde_json::to_value(sink).unwrap_or_default();
                let s = match sink {
                    Sink::ObjectStore(s) => s,
                    Sink::Firehose(f) => {
                        let display = connections_display(pipeline, &f.connection);
                        plan_step.writes.push(PlanWrite {
                            table: step.inputs.join(", "),
                            key: format!("{display}/{}", f.prefix),
                        });
                        plan_step.notes.push(format!(
                            "buffers flush every {} s or {} bytes; objects are published, then messages acknowledged",
                            f.interval_secs, f.max_bytes
                        ));
                        tables_of.insert(step.name.clone(), Vec::new());
                        steps.push(plan_step);
                        continue;
                    }
                };
                tables = upstream_tables(&tables_of, &step.inputs);
                let ext = writer::extension(&s.format);
                for t in &tables {
                    let key = render_key(&s.key, &pipeline.name, t, "{run_id}", &today);
                    plan_step.writes.push(PlanWrite {
                        table: t.to_string(),
                        key: format!(
                            "{}/{key}part-{{run_id}}-0001.{ext}",
                            connections_display(pipeline, &s.connection)
                        ),
                    });
                }
                if matches!(
                    s.format,
                    Format::Csv(_) | Format::Jsonl(_) | Format::Parquet(_)
                ) {
                    plan_step.notes.push("files are staged under _pipectl/staging/ and published when the whole run succeeds".to_owned());
                }
            }
            StepKind::Crawler => {
                if let Some(c) = pipeline.crawlers.get(&step.name) {
                    plan_step.settings = serde_json::to_value(c).unwrap_or_default();
                }
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

fn connections_display(pipeline: &pipectl_spec::types::Pipeline, name: &str) -> String {
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

/// Lists what a server source (PostgreSQL, MySQL) reads into `plan_step` and `tables`, with
/// the statements and the values they bind from the stored `bookmarks`.
async fn plan_server<D: Server>(
    step_name: &str,
    db: &DatabaseSource,
    connections: Option<&Connections>,
    live: bool,
    bookmarks: &[Bookmark],
    plan_step: &mut PlanStep,
    tables: &mut Vec<TableId>,
) {
    let url = connections.and_then(|c| c.database_url(&db.connection, D::NAME).ok());
    match (live, url) {
        (false, _) => plan_step.notes.push(
            "tables are listed when the database is inspected (run without --offline)".to_owned(),
        ),
        (true, None) => plan_step.notes.push(
            "the connection could not be resolved (is an environment variable missing?)".to_owned(),
        ),
        (true, Some(url)) => {
            let stored = |stream: &str| bookmarks.iter().find(|b| b.stream == stream).cloned();
            match database::plan_tables::<D>(step_name, db, &url, &stored, false).await {
                Err(e) => plan_step.notes.push(format!("cannot list tables: {e}")),
                Ok(listing) => {
                    if listing.plans.is_empty() {
                        plan_step
                            .notes
                            .push("the selection rules match no table".to_owned());
                    }
                    plan_step.warnings = listing.unmatched_rules;
                    for p in listing.plans {
                        let statement = p.read_statement::<D>();
                        if let Some(b) = &p.bookmark {
                            plan_step.notes.push(match &b.previous {
                                    Some(prev) => format!("{}: incremental from bookmark ({}) set by run {}", p.table, prev.keys.join(", "), prev.run_id),
                                    None => format!("{}: first incremental run, everything is read and the bookmark ({}) recorded", p.table, b.spec.keys.join(", ")),
                                });
                        }
                        if let Some(split) = &p.split {
                            plan_step.notes.push(format!(
                                "{}: read in {} ranges of `{}` over {} connections at once",
                                p.table, split.parts, split.column, split.parts
                            ));
                        }
                        plan_step.reads.push(PlanRead {
                            table: p.table.to_string(),
                            query: statement.sql,
                            columns: p
                                .columns
                                .iter()
                                .map(|c| {
                                    format!("{} {} ({})", c.name, c.kind.arrow_type(), c.declared)
                                })
                                .collect(),
                            params: statement.params,
                        });
                        tables.push(p.table);
                    }
                }
            }
        }
    }
}
