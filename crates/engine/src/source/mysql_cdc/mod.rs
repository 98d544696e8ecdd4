//! The `mysql_cdc` source: change data capture from MySQL's and MariaDB's row-based binlog.
//!
//! The change model and the change records are `pipectl-cdc`'s, shared with `postgres_cdc`;
//! the tables are selected and typed as the `mysql` source does, through
//! [`crate::source::database`]. This version validates the spec only: `plan` and `run` say
//! that the source is not supported yet.

use futures::future::BoxFuture;
use pipectl_spec::types::MysqlCdcSource;

use crate::error::{Error, Result};
use crate::source::Source;
use crate::source::connector::{PlanInput, SourceConnector, SourcePlan};

/// The connector of a `mysql_cdc` source bound to its spec.
pub struct Connector<'a>(pub &'a MysqlCdcSource);

impl SourceConnector for Connector<'_> {
    fn batch(&self, name: &str) -> Result<Box<dyn Source>> {
        Err(Error::user(format!(
            "source `{name}`: `mysql_cdc` sources cannot run in this version yet (reading the binlog is not built); replicate with a `mysql` source's incremental loads meanwhile"
        )))
    }

    fn plan<'a>(&'a self, _input: &'a PlanInput<'a>) -> BoxFuture<'a, SourcePlan> {
        Box::pin(async { SourcePlan::note("`mysql_cdc` sources cannot run in this version yet") })
    }
}
