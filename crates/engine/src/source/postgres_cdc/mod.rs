//! The `postgres_cdc` source: change data capture from PostgreSQL logical replication.
//!
//! `mod.rs` is the descriptor (batch step, plan); [`checks`] inspects the server and the
//! selected tables (wal_level, privileges, slots, replica identity), for `plan` and before a
//! run; [`drop`] removes the slot and publication (`pipectl cdc drop-slot`). The replication protocol, the change model and the change records are in
//! `pipectl-cdc`; the tables are selected and typed as the `postgres` source does, through
//! [`crate::source::database`].

pub mod checks;
pub mod drop;
pub mod run;

use futures::future::BoxFuture;
use pipectl_spec::types::{DatabaseSource, PostgresCdcSource};

use std::collections::HashMap;

use pipectl_cdc::ChangeColumns;

use crate::error::Result;
use crate::plan::PlanRead;
use crate::source::Source;
use crate::source::connector::{PlanInput, SourceConnector, SourcePlan};
use crate::source::database::read::plan_tables;
use crate::source::postgres::Postgres;

/// The connector of a `postgres_cdc` source bound to its spec.
pub struct Connector<'a>(pub &'a PostgresCdcSource);

/// The `postgres` source settings that select and type the same tables as `spec`: its
/// connection, include/exclude rules and value policies, no queries, bookmarks or splits.
pub fn as_database_source(spec: &PostgresCdcSource) -> DatabaseSource {
    DatabaseSource {
        connection: spec.connection.clone(),
        include: spec.include.clone(),
        exclude: spec.exclude.clone(),
        queries: Vec::new(),
        batch_rows: spec.batch_rows,
        tables: Default::default(),
        parallel_tables: 1,
        unmapped_types: spec.unmapped_types,
        infinity: spec.infinity,
        mysql_time: Default::default(),
        transformations: Vec::new(),
    }
}

/// The schema metadata key under which a CDC source's change records carry the merge settings
/// a Delta sink with `mode: merge` and no `merge:` of its own applies.
pub const MERGE_METADATA: &str = "pipectl.cdc.merge";

/// The merge settings of a table's change records: keyed by its primary key, ordered by
/// (commit LSN, position), deleted by `Op = 'D'`, emptied by `Op = 'T'` (a truncate), and,
/// for each column a value could be TOASTed in (`toastable`), the table's value kept when
/// the record lists it in the unchanged column; as JSON under [`MERGE_METADATA`].
pub fn merge_metadata(
    primary_key: &[String],
    toastable: &[String],
    names: &ChangeColumns,
) -> HashMap<String, String> {
    let op = sql_ident(&names.op);
    let unchanged: serde_json::Map<String, serde_json::Value> = toastable
        .iter()
        .filter(|c| !primary_key.contains(c))
        .map(|c| (c.clone(), unchanged_condition(&names.unchanged, c).into()))
        .collect();
    let settings = serde_json::json!({
        "keys": primary_key,
        "sequence_by": [names.commit_lsn, names.position],
        "delete_when": format!("{op} = 'D'"),
        "truncate_when": format!("{op} = 'T'"),
        "unchanged_when": unchanged,
    });
    HashMap::from([(MERGE_METADATA.to_owned(), settings.to_string())])
}

/// A quoted SQL identifier.
fn sql_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The condition "column `column` is listed in the unchanged column": that column holds a
/// JSON array of names without spaces (`["body","doc"]`), where `,"` and `["` only occur
/// where an element starts, so the element `column` is `,<its JSON>,` in the array's inner
/// text between commas.
pub fn unchanged_condition(unchanged: &str, column: &str) -> String {
    let element = serde_json::Value::from(column).to_string();
    let u = sql_ident(unchanged);
    format!(
        "strpos(',' || substr({u}, 2, character_length({u}) - 2) || ',', '{}') > 0",
        format!(",{element},").replace('\'', "''")
    )
}

impl SourceConnector for Connector<'_> {
    fn batch(&self, name: &str) -> Result<Box<dyn Source>> {
        Ok(Box::new(run::CdcStep {
            name: name.to_owned(),
            spec: self.0.clone(),
        }))
    }

    fn plan<'a>(&'a self, input: &'a PlanInput<'a>) -> BoxFuture<'a, SourcePlan> {
        Box::pin(plan_cdc(self.0, input))
    }
}

/// What a CDC source replicates: the slot, the publication, each selected table with its
/// replica identity and primary key, and what the server lacks.
async fn plan_cdc(spec: &PostgresCdcSource, input: &PlanInput<'_>) -> SourcePlan {
    let url = input
        .connections
        .and_then(|c| c.database_url(&spec.connection, "postgres").ok());
    let url = match (input.live, url) {
        (false, _) => return SourcePlan::offline(),
        (true, None) => return SourcePlan::unresolved(),
        (true, Some(url)) => url,
    };
    let mut out = SourcePlan::default();
    let db = as_database_source(spec);
    let listing = match plan_tables::<Postgres>(input.step, &db, &url, &|_| None, false).await {
        Ok(listing) => listing,
        Err(e) => {
            out.notes.push(format!("cannot list tables: {e}"));
            return out;
        }
    };
    out.warnings = listing.unmatched_rules;
    let tables: Vec<(String, String)> = listing
        .plans
        .iter()
        .map(|p| (p.source.schema.clone(), p.source.name.clone()))
        .collect();
    match checks::inspect(&url, spec, &tables).await {
        Err(e) => out.notes.push(format!(
            "cannot inspect the server's replication settings: {e}"
        )),
        Ok(report) => {
            out.notes.extend(report.notes);
            out.warnings.extend(report.problems);
            out.warnings.extend(report.warnings);
            for p in &listing.plans {
                let table = report
                    .tables
                    .iter()
                    .find(|t| t.schema == p.source.schema && t.name == p.source.name);
                let identity = table.map_or_else(
                    || "replica identity unknown".to_owned(),
                    checks::TableIdentity::describe,
                );
                out.reads.push(PlanRead {
                    table: p.table.to_string(),
                    query: match spec.snapshot {
                        pipectl_spec::types::CdcSnapshot::Never => format!(
                            "{identity}; changes from slot {} (no initial copy: `snapshot: never`)",
                            spec.slot
                        ),
                        _ => format!(
                            "{identity}; initial copy when the slot is created: {}; then changes from slot {}",
                            p.read_statement::<Postgres>().sql,
                            spec.slot
                        ),
                    },
                    columns: p
                        .columns
                        .iter()
                        .map(|c| format!("{} {} ({})", c.name, c.kind.arrow_type(), c.declared))
                        .collect(),
                    params: Vec::new(),
                });
            }
        }
    }
    if listing.plans.is_empty() {
        out.notes
            .push("the selection rules match no table".to_owned());
    }
    out.tables = listing.plans.into_iter().map(|p| p.table).collect();
    out
}
