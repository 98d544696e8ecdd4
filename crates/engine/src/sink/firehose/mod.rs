//! The `firehose` sink's descriptor. Its delivery loop is the streaming runtime's
//! (`pipectl-stream`): a pipeline with a firehose sink never reaches the batch executor.

use pipectl_spec::types::FirehoseSink;

use crate::crawl::Layout;
use crate::error::{Error, Result};
use crate::plan::{PlanWrite, connections_display};
use crate::sink::Sink;
use crate::sink::connector::{SinkConnector, SinkOutput, SinkPlan, SinkPlanInput};

/// The descriptor of a `firehose` sink.
pub(crate) struct Connector<'a>(pub(crate) &'a FirehoseSink);

impl SinkConnector for Connector<'_> {
    fn batch(&self, name: &str) -> Result<Box<dyn Sink>> {
        // `executor::prepare` turns streaming pipelines away before any step is built.
        Err(Error::internal(format!(
            "sink `{name}`: a firehose sink reached the batch executor"
        )))
    }

    fn plan(&self, input: &SinkPlanInput<'_>) -> SinkPlan {
        let f = self.0;
        let display = connections_display(input.pipeline, &f.connection);
        SinkPlan {
            writes: vec![PlanWrite {
                table: input.inputs.join(", "),
                key: format!("{display}/{}", f.prefix),
            }],
            notes: vec![format!(
                "buffers flush every {} s or {} bytes; objects are published, then messages acknowledged",
                f.interval_secs, f.max_bytes
            )],
            tables: Vec::new(),
        }
    }

    fn output(&self) -> SinkOutput<'_> {
        // A delivery stream's prefix up to its first expression is one table; the folders its
        // timestamps make below it are plain partitions.
        let fixed = self.0.prefix.split("!{").next().unwrap_or_default();
        let folder = fixed.rsplit_once('/').map(|(f, _)| f).unwrap_or_default();
        SinkOutput {
            connection: &self.0.connection,
            prefix: folder.to_owned(),
            layout: Layout::Guess {
                table_level: Some(0),
            },
            csv_null_value: String::new(),
            delta: false,
            stages: false,
        }
    }
}
