//! The sink registry: one descriptor per sink type, found by [`connector`].
//!
//! A descriptor ties a sink spec (validated, purely, in `pipectl-spec`) to what the engine does
//! with it: the batch step it builds, what `pipectl plan` shows, and what the executor and the
//! crawlers need to know about its output (the connection, the key layout). [`connector`] is one
//! exhaustive match over the spec's `Sink` enum and the object-store sink's `Format`, with no
//! catch-all, so a sink type or format without its line there does not compile.

use pipectl_spec::types::{Format, Pipeline, Sink as SinkSpec};

use super::{Sink, delta, firehose, object_store};
use crate::crawl::Layout;
use crate::error::Result;
use crate::plan::PlanWrite;
use crate::table::TableId;

/// What `pipectl plan` knows while it renders one sink step.
pub struct SinkPlanInput<'a> {
    /// The pipeline.
    pub pipeline: &'a Pipeline,
    /// The step's name.
    pub step: &'a str,
    /// The step's upstream steps.
    pub inputs: &'a [String],
    /// The tables the upstream steps send, as far as the plan knows them.
    pub tables: &'a [TableId],
    /// The run date keys are rendered with (`yyyy-MM-dd`).
    pub today: &'a str,
}

/// What a sink step shows in the plan.
#[derive(Debug, Default)]
pub struct SinkPlan {
    /// One entry per table (or destination) it writes.
    pub writes: Vec<PlanWrite>,
    /// Things worth knowing (how it publishes, a merge's predicate).
    pub notes: Vec<String>,
    /// The tables it writes, for the steps after it.
    pub tables: Vec<TableId>,
}

/// Where a sink's output lands, for crawlers and for the executor's clean-up.
#[derive(Debug, Clone)]
pub struct SinkOutput<'a> {
    /// The connection of the store it writes into.
    pub connection: &'a str,
    /// The prefix (relative to the connection) a crawler starts at.
    pub prefix: String,
    /// How a crawler finds the tables under the prefix.
    pub layout: Layout,
    /// What a CSV sink writes for NULL (empty for other formats), so a crawler reads it back.
    pub csv_null_value: String,
    /// Each table is a Delta table (its root holds `_delta_log/`): catalogue it from its log.
    pub delta: bool,
    /// Whether a batch run stages objects under `_pipectl/staging/<run id>/` in this store,
    /// which the executor deletes when the run ends.
    pub stages: bool,
}

/// One sink type's connector, bound to a step's spec.
pub trait SinkConnector: Send + Sync {
    /// Builds the batch step named `name`; no I/O happens until [`Sink::run`]. Streaming sinks
    /// say that they run in streaming mode.
    fn batch(&self, name: &str) -> Result<Box<dyn Sink>>;

    /// What the step writes, for `pipectl plan`.
    fn plan(&self, input: &SinkPlanInput<'_>) -> SinkPlan;

    /// Where its output lands.
    fn output(&self) -> SinkOutput<'_>;
}

/// The registry: the connector of every sink type, one line each.
pub fn connector(spec: &SinkSpec) -> Box<dyn SinkConnector + '_> {
    match spec {
        SinkSpec::ObjectStore(s) => match &s.format {
            Format::Csv(_) | Format::Jsonl(_) | Format::Parquet(_) => {
                Box::new(object_store::Connector(s))
            }
            Format::Delta(format) => Box::new(delta::Connector { sink: s, format }),
        },
        SinkSpec::Firehose(s) => Box::new(firehose::Connector(s)),
    }
}
