//! The `postgres_cdc` source: change data capture from PostgreSQL logical replication.
//!
//! The replication protocol, the change model and the change records are in `pipectl-cdc`;
//! the tables are selected and typed as the `postgres` source does, through
//! [`crate::source::database`]. This version validates the spec only: `plan` and `run` say
//! that the source is not supported yet.

use futures::future::BoxFuture;
use pipectl_spec::types::PostgresCdcSource;

use crate::error::{Error, Result};
use crate::source::Source;
use crate::source::connector::{PlanInput, SourceConnector, SourcePlan};

/// The connector of a `postgres_cdc` source bound to its spec.
pub struct Connector<'a>(pub &'a PostgresCdcSource);

impl SourceConnector for Connector<'_> {
    fn batch(&self, name: &str) -> Result<Box<dyn Source>> {
        Err(Error::user(format!(
            "source `{name}`: `postgres_cdc` sources cannot run in this version yet"
        )))
    }

    fn plan<'a>(&'a self, _input: &'a PlanInput<'a>) -> BoxFuture<'a, SourcePlan> {
        Box::pin(async {
            SourcePlan::note("`postgres_cdc` sources cannot run in this version yet")
        })
    }
}
