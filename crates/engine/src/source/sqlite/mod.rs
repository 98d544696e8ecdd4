//! The `sqlite` source: full loads of a SQLite file, tables chosen by DMS-style
//! include/exclude rules, or explicit queries.
//!
//! `mod.rs` is the dialect, the connection and the step; [`catalog`] lists tables and maps
//! declared types; [`read`] converts rows. What every database source shares is in
//! [`crate::source::database`].

pub mod catalog;
pub mod read;

use std::path::Path;

use futures::future::BoxFuture;
use pipectl_spec::types::DatabaseSource;
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use crate::context::{Output, StepContext};
use crate::error::{Error, Result};
use crate::plan::PlanRead;
use crate::source::connector::{PlanInput, SourceConnector, SourcePlan};
use crate::source::database::Dialect;
use crate::source::{Running, Source};

pub use catalog::{arrow_type_for_declared, kind_for_declared, plan_tables};

/// SQLite's schema name for the main database.
const MAIN: &str = "main";

/// The `sqlite` source's connector, bound to its spec.
pub struct Connector<'a>(pub &'a DatabaseSource);

impl SourceConnector for Connector<'_> {
    fn batch(&self, name: &str) -> Result<Box<dyn Source>> {
        Ok(Box::new(SqliteSource::new(name, self.0.clone())))
    }

    fn plan<'a>(&'a self, input: &'a PlanInput<'a>) -> BoxFuture<'a, SourcePlan> {
        Box::pin(plan_sqlite(self.0, input))
    }
}

/// Lists what a SQLite source reads, against the file.
async fn plan_sqlite(db: &DatabaseSource, input: &PlanInput<'_>) -> SourcePlan {
    let path = input
        .connections
        .and_then(|c| c.sqlite_path(&db.connection).ok());
    let (true, Some(path)) = (input.live, path) else {
        return if input.live {
            SourcePlan::unresolved()
        } else {
            SourcePlan::offline()
        };
    };
    let mut conn = match connect(&path).await {
        Ok(conn) => conn,
        Err(e) => return SourcePlan::note(format!("cannot inspect the database: {e}")),
    };
    let listing = match plan_tables(input.step, db, &mut conn).await {
        Ok(listing) => listing,
        Err(e) => return SourcePlan::note(format!("cannot list tables: {e}")),
    };
    let mut out = SourcePlan::default();
    if listing.plans.is_empty() {
        out.notes
            .push("the selection rules match no table".to_owned());
    }
    out.warnings = listing.unmatched_rules;
    for p in listing.plans {
        out.reads.push(PlanRead {
            table: p.table.to_string(),
            query: p.read_statement::<Sqlite>().sql,
            columns: p
                .schema
                .fields()
                .iter()
                .map(|f| format!("{} {}", f.name(), f.data_type()))
                .collect(),
            params: Vec::new(),
        });
        out.tables.push(p.table);
    }
    out
}

/// SQLite. Its sources take no bookmarks or split ranges yet (validation says so), so the
/// bookmark SQL below is what they would run, not yet what they do.
pub struct Sqlite;

impl Dialect for Sqlite {
    const NAME: &'static str = "sqlite";

    fn key_as_text(quoted: &str) -> String {
        format!("cast({quoted} as text)")
    }

    fn settled(quoted: &str, seconds: &str) -> String {
        format!("{quoted} <= datetime('now', '-' || {seconds} || ' seconds')")
    }

    fn as_int8(expr: &str) -> String {
        format!("cast({expr} as integer)")
    }
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

impl Source for SqliteSource {
    fn run(self: Box<Self>, ctx: StepContext, out: Output) -> Running {
        Box::pin(async move {
            let path = ctx.run.connections.sqlite_path(&self.spec.connection)?;
            let mut conn = connect(&path).await?;
            let listing = catalog::plan_tables(&self.name, &self.spec, &mut conn).await?;
            ctx.report_unmatched_rules(&listing.unmatched_rules)?;
            let backfill = ctx.run.backfill.as_ref();
            for plan in listing
                .plans
                .into_iter()
                .filter(|p| backfill.is_none_or(|b| b.reads(&p.table)))
            {
                read::read_table(&mut conn, &plan, self.spec.batch_rows, &out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(
            Sqlite::quote("my \"odd\" table"),
            "\"my \"\"odd\"\" table\""
        );
    }
}
