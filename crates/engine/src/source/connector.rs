//! The source registry: one descriptor per source type, found by [`connector`].
//!
//! A descriptor ties a spec type (validated, purely, in `pipectl-spec`) to what the engine does
//! with it: the batch step it builds and what `pipectl plan` shows. [`connector`] is one
//! exhaustive match over the spec's `Source` enum with no catch-all, so a source type without
//! its line there does not compile.

use futures::future::BoxFuture;
use pipectl_spec::types::{Pipeline, Source as SourceSpec};
use pipectl_state::Bookmark;

use super::{
    Source, database, files, generator, mysql, mysql_cdc, postgres, postgres_cdc, sqlite, streamed,
};
use crate::connect::Connections;
use crate::error::Result;
use crate::plan::PlanRead;
use crate::table::TableId;

/// What `pipectl plan` knows while it renders one source step.
pub struct PlanInput<'a> {
    /// The pipeline.
    pub pipeline: &'a Pipeline,
    /// The step's name.
    pub step: &'a str,
    /// The resolved connections, unless resolving failed (a missing environment variable).
    pub connections: Option<&'a Connections>,
    /// Whether databases may be inspected (`plan` without `--offline`).
    pub live: bool,
    /// The pipeline's stored bookmarks, so incremental reads show the values they bind.
    pub bookmarks: &'a [Bookmark],
}

/// What a source step shows in the plan.
#[derive(Debug, Default)]
pub struct SourcePlan {
    /// One entry per table (or stream) it reads.
    pub reads: Vec<PlanRead>,
    /// Things worth knowing.
    pub notes: Vec<String>,
    /// Probable mistakes (an include rule that matches no table).
    pub warnings: Vec<String>,
    /// The tables it sends downstream, for the sinks' plans.
    pub tables: Vec<TableId>,
}

impl SourcePlan {
    /// A plan holding one note.
    pub fn note(note: impl Into<String>) -> Self {
        SourcePlan {
            notes: vec![note.into()],
            ..SourcePlan::default()
        }
    }

    /// The note of a database that `plan --offline` does not inspect.
    pub fn offline() -> Self {
        SourcePlan::note("tables are listed when the database is inspected (run without --offline)")
    }

    /// The note of a connection that could not be resolved.
    pub fn unresolved() -> Self {
        SourcePlan::note(
            "the connection could not be resolved (is an environment variable missing?)",
        )
    }
}

/// One source type's connector, bound to a step's spec.
pub trait SourceConnector: Send + Sync {
    /// Builds the batch step named `name`; no I/O happens until [`Source::run`]. Streaming
    /// sources say that they run in streaming mode.
    fn batch(&self, name: &str) -> Result<Box<dyn Source>>;

    /// What the step reads, for `pipectl plan`.
    fn plan<'a>(&'a self, input: &'a PlanInput<'a>) -> BoxFuture<'a, SourcePlan>;

    /// Whether its bookmark streams are `<step>.<schema>.<table>` of database tables, which a
    /// backfill's `--table` patterns name.
    fn bookmarks_tables(&self) -> bool {
        false
    }
}

/// The registry: the connector of every source type, one line each.
pub fn connector(spec: &SourceSpec) -> Box<dyn SourceConnector + '_> {
    match spec {
        SourceSpec::Sqlite(s) => Box::new(sqlite::Connector(s)),
        SourceSpec::Postgres(s) => {
            Box::new(database::ServerConnector::<postgres::Postgres>::new(s))
        }
        SourceSpec::Mysql(s) => Box::new(database::ServerConnector::<mysql::Mysql>::new(s)),
        SourceSpec::PostgresCdc(s) => Box::new(postgres_cdc::Connector(s)),
        SourceSpec::MysqlCdc(s) => Box::new(mysql_cdc::Connector(s)),
        SourceSpec::Generator(s) => Box::new(generator::Connector(s)),
        SourceSpec::Files(s) => Box::new(files::Connector(s)),
        SourceSpec::Nats(s) => Box::new(streamed::Streamed(s)),
        SourceSpec::Mqtt(s) => Box::new(streamed::Streamed(s)),
        SourceSpec::Http(s) => Box::new(streamed::Streamed(s)),
    }
}
