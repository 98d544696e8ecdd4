//! The `object_store` sink with a file format (`csv`, `jsonl`, `parquet`): one or more files
//! per table and run, staged and published by the executor when the run succeeds.

mod write;

use pipectl_spec::types::{Format, ObjectStoreSink};

use crate::crawl::Layout;
use crate::error::Result;
use crate::plan::{PlanWrite, connections_display};
use crate::sink::connector::{SinkConnector, SinkOutput, SinkPlan, SinkPlanInput};
use crate::sink::{Sink, render_key, writer};

/// The descriptor of an `object_store` sink writing files.
pub(crate) struct Connector<'a>(pub(crate) &'a ObjectStoreSink);

impl SinkConnector for Connector<'_> {
    fn batch(&self, name: &str) -> Result<Box<dyn Sink>> {
        Ok(Box::new(write::FilesSink {
            name: name.to_owned(),
            spec: self.0.clone(),
        }))
    }

    fn plan(&self, input: &SinkPlanInput<'_>) -> SinkPlan {
        let s = self.0;
        let ext = writer::extension(&s.format);
        let display = connections_display(input.pipeline, &s.connection);
        let writes = input
            .tables
            .iter()
            .map(|t| {
                let key = render_key(&s.key, &input.pipeline.name, t, "{run_id}", input.today);
                PlanWrite {
                    table: t.to_string(),
                    key: format!("{display}/{key}part-{{run_id}}-0001.{ext}"),
                }
            })
            .collect();
        SinkPlan {
            writes,
            notes: vec![
                "files are staged under _pipectl/staging/ and published when the whole run succeeds"
                    .to_owned(),
            ],
            tables: input.tables.to_vec(),
        }
    }

    fn output(&self) -> SinkOutput<'_> {
        let csv_null_value = match &self.0.format {
            Format::Csv(csv) => csv.null_value.clone(),
            Format::Jsonl(_) | Format::Parquet(_) | Format::Delta(_) => String::new(),
        };
        SinkOutput {
            connection: &self.0.connection,
            prefix: String::new(),
            layout: Layout::Template(self.0.key.clone()),
            csv_null_value,
            delta: false,
            stages: true,
        }
    }
}
