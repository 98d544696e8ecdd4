//! Sources: steps that read data and emit record batches.

pub mod connector;
pub mod database;
pub mod delimited;
pub mod files;
pub mod generator;
pub mod key_type;
pub mod mysql;
pub mod mysql_cdc;
pub mod postgres;
pub mod postgres_cdc;
pub mod sqlite;
pub mod streamed;

pub use connector::{PlanInput, SourceConnector, SourcePlan, connector};

use futures::future::BoxFuture;
use pipectl_spec::types::Source as SourceSpec;
use pipectl_state::Bookmark;

use crate::context::{Output, StepContext};
use crate::error::Result;

/// The positions a source reached in one run. The source hands them back instead of storing
/// them: the executor saves them in the same state transaction that commits the run, and only
/// when the run succeeds.
pub type Reached = Vec<Bookmark>;

/// A running source: it ends with the bookmarks it reached.
pub type Running = BoxFuture<'static, Result<Reached>>;

/// A source step, built from the spec and run once.
pub trait Source: Send {
    /// Reads everything this run should read and sends it to `out`, ending each table with
    /// [`crate::table::Message::EndOfTable`]; returns the bookmarks it reached.
    fn run(self: Box<Self>, ctx: StepContext, out: Output) -> Running;
}

/// Builds the source for a spec entry. No I/O happens until [`Source::run`].
pub fn build(name: &str, spec: &SourceSpec) -> Result<Box<dyn Source>> {
    connector::connector(spec).batch(name)
}
