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

/// The batch executor's answer for a streaming source.
fn streaming_only(name: &str, type_name: &str) -> Result<Box<dyn Source>> {
    Err(Error::user(format!(
        "source `{name}` is a `{type_name}` stream: it runs in streaming mode, delivered by a `firehose` sink"
    )))
}

/// The plan of a stream: one read described by `query`.
fn stream_plan<'a>(step: &str, query: String) -> BoxFuture<'a, SourcePlan> {
    let plan = SourcePlan {
        reads: vec![PlanRead {
            table: step.to_owned(),
            query,
            columns: Vec::new(),
            params: Vec::new(),
        }],
        ..SourcePlan::default()
    };
    Box::pin(async move { plan })
}

/// The `nats` source: a JetStream consumer.
pub struct Nats<'a>(pub &'a NatsSource);

impl SourceConnector for Nats<'_> {
    fn batch(&self, name: &str) -> Result<Box<dyn Source>> {
        streaming_only(name, "nats")
    }

    fn plan<'a>(&'a self, input: &'a PlanInput<'a>) -> BoxFuture<'a, SourcePlan> {
        let n = self.0;
        stream_plan(
            input.step,
            format!(
                "JetStream stream {} subject {} durable {} until stopped",
                n.stream,
                n.subject.as_deref().unwrap_or(">"),
                n.durable_name(&input.pipeline.name, input.step)
            ),
        )
    }
}

/// The `mqtt` source: one topic at QoS 1.
pub struct Mqtt<'a>(pub &'a MqttSource);

impl SourceConnector for Mqtt<'_> {
    fn batch(&self, name: &str) -> Result<Box<dyn Source>> {
        streaming_only(name, "mqtt")
    }

    fn plan<'a>(&'a self, input: &'a PlanInput<'a>) -> BoxFuture<'a, SourcePlan> {
        stream_plan(
            input.step,
            format!("MQTT topic {} (QoS 1) until stopped", self.0.topic),
        )
    }
}

/// The `http` source: Firehose Direct PUT.
pub struct Http<'a>(pub &'a HttpSource);

impl SourceConnector for Http<'_> {
    fn batch(&self, name: &str) -> Result<Box<dyn Source>> {
        streaming_only(name, "http")
    }

    fn plan<'a>(&'a self, input: &'a PlanInput<'a>) -> BoxFuture<'a, SourcePlan> {
        stream_plan(
            input.step,
            format!(
                "HTTP PutRecord/PutRecordBatch on {} until stopped; records answered 200 wait in the write-ahead log {} under the state directory (at most {} bytes)",
                self.0.listen,
                HttpSource::log_dir(Path::new(""), &input.pipeline.name, input.step).display(),
                self.0.max_buffered_bytes
            ),
        )
    }
}
