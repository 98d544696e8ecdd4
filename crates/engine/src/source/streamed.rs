//! The descriptors of streaming sources (`nats`, `mqtt`, `http`): what `pipectl plan` shows and
//! the refusal to run them as batch steps. Their read loops live in `crates/stream/src/source/`,
//! beside the clients (async-nats, rumqttc, hyper) the engine does not depend on.

use std::path::Path;

use futures::future::BoxFuture;
use pipectl_spec::types::{HttpSource, MqttSource, NatsSource};

use super::Source;
use super::connector::{PlanInput, SourceConnector, SourcePlan};
use crate::error::{Error, Result};
use crate::plan::PlanRead;

/// A streaming source's spec: its type name and what it reads, in words.
pub trait StreamSpec: Send + Sync {
    /// The spec's `type`.
    const TYPE: &'static str;

    /// What the step `step` of `pipeline` reads, for the plan.
    fn describe(&self, pipeline: &str, step: &str) -> String;
}

impl StreamSpec for NatsSource {
    const TYPE: &'static str = "nats";

    fn describe(&self, pipeline: &str, step: &str) -> String {
        format!(
            "JetStream stream {} subject {} durable {} until stopped",
            self.stream,
            self.subject.as_deref().unwrap_or(">"),
            self.durable_name(pipeline, step)
        )
    }
}

impl StreamSpec for MqttSource {
    const TYPE: &'static str = "mqtt";

    fn describe(&self, _pipeline: &str, _step: &str) -> String {
        format!("MQTT topic {} (QoS 1) until stopped", self.topic)
    }
}

impl StreamSpec for HttpSource {
    const TYPE: &'static str = "http";

    fn describe(&self, pipeline: &str, step: &str) -> String {
        // Relative to the state directory, which `plan` does not know.
        let log = HttpSource::log_dir(Path::new(""), pipeline, step);
        format!(
            "HTTP PutRecord/PutRecordBatch on {} until stopped; records answered 200 wait in the write-ahead log {} under the state directory (at most {} bytes)",
            self.listen,
            log.display(),
            self.max_buffered_bytes
        )
    }
}

/// The connector of a streaming source, bound to its spec.
pub struct Streamed<'a, S>(pub &'a S);

impl<S: StreamSpec> SourceConnector for Streamed<'_, S> {
    fn batch(&self, name: &str) -> Result<Box<dyn Source>> {
        Err(Error::user(format!(
            "source `{name}` is a `{}` stream: it runs in streaming mode, delivered by a `firehose` sink",
            S::TYPE
        )))
    }

    fn plan<'a>(&'a self, input: &'a PlanInput<'a>) -> BoxFuture<'a, SourcePlan> {
        let plan = SourcePlan {
            reads: vec![PlanRead {
                table: input.step.to_owned(),
                query: self.0.describe(&input.pipeline.name, input.step),
                columns: Vec::new(),
                params: Vec::new(),
            }],
            ..SourcePlan::default()
        };
        Box::pin(std::future::ready(plan))
    }
}
