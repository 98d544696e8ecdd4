//! Sinks: steps that write batches into the lake.
//!
//! Sinks write what readers do not see yet (files under a staging prefix
//! `_pipectl/staging/<run id>/...` that readers ignore; Delta data files without a log entry)
//! and hand back commit intents, which the executor saves and applies only after every step
//! succeeded (see [`commit`] and [`crate::executor`]). A failed or killed run leaves nothing
//! where readers look.

pub mod commit;
pub mod connector;
pub mod csv;
mod delta;
mod firehose;
mod object_store;
pub mod swap;
pub mod writer;

pub use commit::{CommitIntent, DeltaCommit};
pub use connector::{SinkConnector, SinkOutput, SinkPlan, SinkPlanInput, connector};

use ::object_store::path::Path;
use futures::future::BoxFuture;
use pipectl_spec::types::Sink as SinkSpec;
use tokio::sync::mpsc;

use crate::context::StepContext;
use crate::error::Result;
use crate::table::{Message, TableId};

/// Top-level folder of pipectl's own objects in a lake; `_` makes readers and crawlers skip it.
pub const RESERVED_PREFIX: &str = "_pipectl";

/// A file a sink wrote to staging, to be published at the end of the run.
#[derive(Debug, Clone)]
pub struct StagedFile {
    /// Connection name of the store.
    pub connection: String,
    /// Where it was written.
    pub staged: Path,
    /// Where it will be published.
    pub final_path: Path,
    /// The table it holds.
    pub table: TableId,
    /// Rows in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// For a full refresh: the table's key prefix, whose other objects the publish deletes.
    pub replaces: Option<Path>,
}

/// A sink step.
pub trait Sink: Send {
    /// Writes everything that arrives on `input` where readers do not see it yet (staging, or
    /// data files without a log entry); returns the commit intents that make it visible, which
    /// the executor saves and then applies (see [`commit`]). A sink that fails or is cancelled
    /// deletes what it wrote and returns no intent.
    fn run(
        self: Box<Self>,
        ctx: StepContext,
        input: mpsc::Receiver<Message>,
    ) -> BoxFuture<'static, Result<Vec<CommitIntent>>>;
}

/// Builds the sink for a spec entry. `firehose` sinks belong to streaming pipelines, which
/// [`crate::executor::prepare`] turns away before any step is built.
pub fn build(name: &str, spec: &SinkSpec) -> Result<Box<dyn Sink>> {
    connector::connector(spec).batch(name)
}

/// The staging prefix of one run.
pub fn staging_prefix(run_id: &str) -> String {
    format!("{RESERVED_PREFIX}/staging/{run_id}")
}

/// Fills a key template for one table. Values cannot add path levels: `/` in them becomes `_`.
pub fn render_key(
    template: &str,
    pipeline: &str,
    table: &TableId,
    run_id: &str,
    date: &str,
) -> String {
    let clean = |s: &str| s.replace('/', "_");
    template
        .replace("{pipeline}", &clean(pipeline))
        .replace("{source}", &clean(&table.source))
        .replace("{schema}", &clean(&table.schema))
        .replace("{table}", &clean(&table.name))
        .replace("{run_id}", &clean(run_id))
        .replace("{date}", date)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_render_without_extra_levels() {
        let t = TableId {
            source: "db".into(),
            schema: "main".into(),
            name: "a/b".into(),
        };
        assert_eq!(
            render_key(
                "landing/{pipeline}/{schema}/{table}/{date}/",
                "p",
                &t,
                "r1",
                "2026-11-25"
            ),
            "landing/p/main/a_b/2026-11-25/"
        );
    }
}
