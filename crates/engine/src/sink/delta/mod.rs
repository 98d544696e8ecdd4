//! The `object_store` sink with `format: {type: delta}`: each `{table}` key is a Delta table
//! root, and each run is one commit per table (append, overwrite or merge).

use pipectl_spec::types::{DeltaFormat, ObjectStoreSink};

use crate::crawl::Layout;
use crate::error::{Error, Result};
use crate::plan::{PlanWrite, connections_display};
use crate::sink::connector::{SinkConnector, SinkOutput, SinkPlan, SinkPlanInput};
use crate::sink::{Sink, render_key};

/// The descriptor of an `object_store` sink writing Delta tables.
pub(crate) struct Connector<'a> {
    pub(crate) sink: &'a ObjectStoreSink,
    pub(crate) format: &'a DeltaFormat,
}

impl SinkConnector for Connector<'_> {
    fn batch(&self, name: &str) -> Result<Box<dyn Sink>> {
        let _ = self.format;
        Err(Error::user(format!(
            "sink `{name}`: the `delta` format is not available in this build yet"
        )))
    }

    fn plan(&self, input: &SinkPlanInput<'_>) -> SinkPlan {
        let s = self.sink;
        let display = connections_display(input.pipeline, &s.connection);
        let writes = input
            .tables
            .iter()
            .map(|t| PlanWrite {
                table: t.to_string(),
                key: format!(
                    "{display}/{}",
                    render_key(&s.key, &input.pipeline.name, t, "{run_id}", input.today)
                ),
            })
            .collect();
        SinkPlan {
            writes,
            notes: Vec::new(),
            tables: input.tables.to_vec(),
        }
    }

    fn output(&self) -> SinkOutput<'_> {
        SinkOutput {
            connection: &self.sink.connection,
            prefix: String::new(),
            layout: Layout::Template(self.sink.key.clone()),
            csv_null_value: String::new(),
            delta: true,
            stages: true,
        }
    }
}
