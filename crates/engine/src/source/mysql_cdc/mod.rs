//! The `mysql_cdc` source: change data capture from MySQL's and MariaDB's row-based binlog.
//!
//! `mod.rs` is the descriptor (batch step, plan); [`checks`] inspects the server and the
//! selected tables (binlog settings, the replica connection's server id, privileges, primary
//! keys), for `plan`; [`snapshot`] opens the consistent snapshot an initial copy reads in and
//! reads its binlog position, and the position now (where a catch-up run stops); [`binlog`]
//! reads the committed row changes between two positions as a replica. The change model and
//! the change records are `pipectl-cdc`'s, shared with `postgres_cdc`; the tables are selected
//! and typed as the `mysql` source does, through [`crate::source::database`].
//!
//! This version plans only: a run refuses the source, because the run itself (the initial
//! copy through the snapshot, binlog values typed as the `mysql` source types them into change
//! records, the position bookmark committed after the sinks) is not built yet. The binlog
//! client is `mysql_async` 0.36 with `default-features = false, features = ["binlog",
//! "minimal-rust", "rustls-tls"]`: it adds no second tokio or rustls (per `cargo tree -d`).

pub mod binlog;
pub mod checks;
pub mod snapshot;

use futures::future::BoxFuture;
use pipectl_spec::types::{CdcSnapshot, DatabaseSource, MysqlCdcSource};

use crate::error::{Error, Result};
use crate::plan::PlanRead;
use crate::source::Source;
use crate::source::connector::{PlanInput, SourceConnector, SourcePlan};
use crate::source::database::selected_tables;
use crate::source::mysql::Mysql;

/// The connector of a `mysql_cdc` source bound to its spec.
pub struct Connector<'a>(pub &'a MysqlCdcSource);

/// The `mysql` source settings that select and type the same tables as `spec`: its
/// connection, include/exclude rules and value policies, no queries, bookmarks or splits.
pub fn as_database_source(spec: &MysqlCdcSource) -> DatabaseSource {
    DatabaseSource {
        connection: spec.connection.clone(),
        include: spec.include.clone(),
        exclude: spec.exclude.clone(),
        queries: Vec::new(),
        batch_rows: spec.batch_rows,
        tables: Default::default(),
        parallel_tables: 1,
        unmapped_types: spec.unmapped_types,
        infinity: Default::default(),
        mysql_time: spec.mysql_time,
        transformations: Vec::new(),
    }
}

impl SourceConnector for Connector<'_> {
    fn batch(&self, name: &str) -> Result<Box<dyn Source>> {
        Err(Error::user(format!(
            "source `{name}`: `mysql_cdc` sources cannot run in this version yet (reading the binlog is not built; `pipectl plan` checks the server); replicate with a `mysql` source's incremental loads meanwhile"
        )))
    }

    fn plan<'a>(&'a self, input: &'a PlanInput<'a>) -> BoxFuture<'a, SourcePlan> {
        Box::pin(plan_cdc(self.0, input))
    }
}

/// What a `mysql_cdc` source would replicate: each selected table with its primary key, the
/// binlog position, and what the server lacks.
async fn plan_cdc(spec: &MysqlCdcSource, input: &PlanInput<'_>) -> SourcePlan {
    let (url, listing) = match selected_tables::<Mysql>(&as_database_source(spec), input).await {
        Ok(found) => found,
        Err(plan) => return plan,
    };
    let mut out = SourcePlan {
        warnings: listing.unmatched_rules.clone(),
        ..SourcePlan::default()
    };
    let tables: Vec<(String, String)> = listing
        .plans
        .iter()
        .map(|p| (p.source.schema.clone(), p.source.name.clone()))
        .collect();
    match checks::inspect(&url, spec, &tables).await {
        Err(e) => out
            .notes
            .push(format!("cannot inspect the server's binlog settings: {e}")),
        Ok(report) => {
            out.notes.extend(report.notes);
            out.warnings.extend(report.problems);
            out.warnings.extend(report.warnings);
            for p in &listing.plans {
                let key = report
                    .tables
                    .iter()
                    .find(|t| t.schema == p.source.schema && t.name == p.source.name)
                    .map_or_else(
                        || "primary key unknown".to_owned(),
                        checks::TableKey::describe,
                    );
                out.reads.push(PlanRead {
                    table: p.table.to_string(),
                    query: match spec.snapshot {
                        CdcSnapshot::Never => format!(
                            "{key}; row changes from the binlog (no initial copy: `snapshot: never`)"
                        ),
                        _ => format!(
                            "{key}; initial copy in a consistent snapshot at a binlog position: {}; then row changes from the binlog",
                            p.read_statement::<Mysql>().sql
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
    out.notes.push(
        "`mysql_cdc` sources cannot run in this version yet: this plan checks the server only"
            .to_owned(),
    );
    if listing.plans.is_empty() {
        out.notes
            .push("the selection rules match no table".to_owned());
    }
    out.tables = listing.plans.into_iter().map(|p| p.table).collect();
    out
}
