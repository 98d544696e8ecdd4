//! The descriptor of a server source (PostgreSQL, MySQL): its batch step and its plan.

use std::marker::PhantomData;

use futures::future::BoxFuture;
use pipectl_spec::types::DatabaseSource;

use super::dialect::Server;
use super::plan::{Listing, TablePlan};
use super::read::{DatabaseSourceStep, plan_tables};
use crate::error::Result;
use crate::plan::PlanRead;
use crate::source::Source;
use crate::source::connector::{PlanInput, SourceConnector, SourcePlan};

/// The connector of a `D` source bound to its spec.
pub struct ServerConnector<'a, D> {
    spec: &'a DatabaseSource,
    dialect: PhantomData<D>,
}

impl<'a, D: Server> ServerConnector<'a, D> {
    /// The connector of the source `spec`.
    pub fn new(spec: &'a DatabaseSource) -> Self {
        ServerConnector {
            spec,
            dialect: PhantomData,
        }
    }
}

impl<D: Server> SourceConnector for ServerConnector<'_, D> {
    fn batch(&self, name: &str) -> Result<Box<dyn Source>> {
        Ok(Box::new(DatabaseSourceStep::<D>::new(
            name,
            self.spec.clone(),
        )))
    }

    fn plan<'a>(&'a self, input: &'a PlanInput<'a>) -> BoxFuture<'a, SourcePlan> {
        Box::pin(plan_server::<D>(self.spec, input))
    }

    fn bookmarks_tables(&self) -> bool {
        true
    }
}

/// Lists what a server source reads, with the statements and the values they bind from the
/// stored bookmarks.
async fn plan_server<D: Server>(db: &DatabaseSource, input: &PlanInput<'_>) -> SourcePlan {
    let url = input
        .connections
        .and_then(|c| c.database_url(&db.connection, D::NAME).ok());
    let mut out = SourcePlan::default();
    match (input.live, url) {
        (false, _) => return SourcePlan::offline(),
        (true, None) => return SourcePlan::unresolved(),
        (true, Some(url)) => {
            let stored =
                |stream: &str| input.bookmarks.iter().find(|b| b.stream == stream).cloned();
            match plan_tables::<D>(input.step, db, &url, &stored, false).await {
                Err(e) => out.notes.push(format!("cannot list tables: {e}")),
                Ok(listing) => {
                    if listing.plans.is_empty() {
                        out.notes
                            .push("the selection rules match no table".to_owned());
                    }
                    out.warnings = listing.unmatched_rules;
                    for p in listing.plans {
                        let statement = p.read_statement::<D>();
                        if let Some(b) = &p.bookmark {
                            out.notes.push(match &b.previous {
                                Some(prev) => format!("{}: incremental from bookmark ({}) set by run {}", p.table, prev.keys.join(", "), prev.run_id),
                                None => format!("{}: first incremental run, everything is read and the bookmark ({}) recorded", p.table, b.spec.keys.join(", ")),
                            });
                        }
                        if let Some(split) = &p.split {
                            out.notes.push(format!(
                                "{}: read in {} ranges of `{}` over {} connections at once",
                                p.table, split.parts, split.column, split.parts
                            ));
                        }
                        out.reads.push(PlanRead {
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
                        out.tables.push(p.table);
                    }
                }
            }
        }
    }
    out
}

/// What a change data capture source's plan starts from: the resolved URL and the tables its
/// rules select (`db` holds the CDC source's selection as a `D` source's settings), with the
/// rules that matched nothing as warnings. `Err` is the whole plan when there is nothing to
/// inspect: `plan --offline`, an unresolved connection, or a catalog that cannot be listed.
pub async fn selected_tables<D: Server>(
    db: &DatabaseSource,
    input: &PlanInput<'_>,
) -> std::result::Result<(String, Listing<TablePlan>), SourcePlan> {
    let url = input
        .connections
        .and_then(|c| c.database_url(&db.connection, D::NAME).ok());
    let url = match (input.live, url) {
        (false, _) => return Err(SourcePlan::offline()),
        (true, None) => return Err(SourcePlan::unresolved()),
        (true, Some(url)) => url,
    };
    match plan_tables::<D>(input.step, db, &url, &|_| None, false).await {
        Ok(listing) => Ok((url, listing)),
        Err(e) => Err(SourcePlan::note(format!("cannot list tables: {e}"))),
    }
}
