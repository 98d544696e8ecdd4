//! Streaming sources. Each runs until cancelled, sending [`Batch`]es into a bounded channel:
//! a full channel (a slow sink) makes the source wait instead of dropping records.

pub mod generator;
pub mod http;
pub mod mqtt;
pub mod nats;

use std::path::Path;

use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use pipectl_engine::connect::Connections;
use pipectl_engine::{Error, Result};
use pipectl_spec::types::{
    FirehoseSink, GeneratorSource, HttpSource, MqttSource, NatsSource, Source as SourceSpec,
};

use crate::firehose::pending::Pending;
use crate::record::{Batch, Replay};

/// What a source knows when it starts.
#[derive(Debug, Clone, Copy)]
pub struct Started {
    /// How records come back after a restart.
    pub replay: Replay,
    /// The highest sequence number already acknowledged (JetStream's ack floor), if known.
    pub acked_through: Option<u64>,
}

impl Started {
    /// A source that replays records with the same sequence numbers after a restart,
    /// having had everything up to `acked_through` acknowledged.
    pub fn same_sequence(acked_through: u64) -> Started {
        Started {
            replay: Replay::SameSequence,
            acked_through: Some(acked_through),
        }
    }
}

/// A running source: resolves when it is cancelled or ends.
pub type Running = BoxFuture<'static, Result<()>>;

/// A connected streaming source.
pub trait StreamSource: Send {
    /// What the source knows about its position. By default: nothing is replayed with the
    /// same sequence numbers, and there is no acknowledgement floor.
    fn started(&self) -> Started {
        Started {
            replay: Replay::None,
            acked_through: None,
        }
    }
    /// Sends batches until `cancel` fires or the source ends (a generator's `count`).
    fn run(self: Box<Self>, out: mpsc::Sender<Batch>, cancel: CancellationToken) -> Running;
}

/// Hands a batch to the sink, waiting while its channel is full (a slow sink slows the source
/// down). Fails as cancelled when the pipeline stops first or the sink has gone.
async fn hand_over(
    out: &mpsc::Sender<Batch>,
    batch: Batch,
    cancel: &CancellationToken,
) -> Result<()> {
    tokio::select! {
        _ = cancel.cancelled() => Err(Error::cancelled()),
        sent = out.send(batch) => sent.map_err(|_| Error::cancelled()),
    }
}

/// What connecting a streaming source needs.
pub struct ConnectInput<'a> {
    /// The pipeline's name.
    pub pipeline: &'a str,
    /// The source step's name.
    pub name: &'a str,
    /// The pipeline's connections.
    pub connections: &'a Connections,
    /// The sink's own record of what is published and acknowledged (empty if none).
    pub previous: &'a Pending,
    /// The state directory, under which a Direct PUT source keeps its write-ahead log (see
    /// [`HttpSource::log_dir`]).
    pub state_dir: &'a Path,
    /// Looks up `${env:NAME}` values outside connections (an HTTP source's token).
    pub env: &'a (dyn Fn(&str) -> Option<String> + Sync),
}

/// A source being connected.
pub type Connecting<'a> = BoxFuture<'a, Result<Box<dyn StreamSource>>>;

/// One streaming source type: how it connects and how it resumes after a restart.
pub trait StreamConnector: Send + Sync {
    /// Whether records come back with the same sequence numbers after a restart, so the
    /// sink's own record of what is pending says where to resume (JetStream, a Direct PUT
    /// write-ahead log).
    fn resumes_from_sink(&self) -> bool {
        false
    }

    /// A warning about how the sink `sink` (spec `sink_spec`) delivers this source, if any.
    fn warning(&self, _source: &str, _sink: &str, _sink_spec: &FirehoseSink) -> Option<String> {
        None
    }

    /// Connects (or binds) the source.
    fn connect<'a>(&'a self, input: ConnectInput<'a>) -> Connecting<'a>;
}

/// The streaming registry: the connector of every source type that streams. The match lists
/// every type, with no catch-all, so a new source type must say here whether it streams or the
/// crate does not compile.
pub fn connector<'a>(name: &str, spec: &'a SourceSpec) -> Result<Box<dyn StreamConnector + 'a>> {
    Ok(match spec {
        SourceSpec::Nats(n) => Box::new(NatsConnector(n)),
        SourceSpec::Mqtt(m) => Box::new(MqttConnector(m)),
        SourceSpec::Http(h) => Box::new(HttpConnector(h)),
        SourceSpec::Generator(g) => Box::new(GeneratorConnector(g)),
        SourceSpec::Sqlite(_)
        | SourceSpec::Postgres(_)
        | SourceSpec::PostgresCdc(_)
        | SourceSpec::MysqlCdc(_)
        | SourceSpec::Mysql(_)
        | SourceSpec::Files(_) => {
            return Err(Error::user(format!(
                "source `{name}`: `{}` sources cannot be delivered by this version yet",
                spec.type_name()
            )));
        }
    })
}

struct NatsConnector<'a>(&'a NatsSource);

impl StreamConnector for NatsConnector<'_> {
    fn resumes_from_sink(&self) -> bool {
        true
    }

    fn connect<'a>(&'a self, input: ConnectInput<'a>) -> Connecting<'a> {
        Box::pin(async move {
            let stream = nats::NatsStream::connect(
                input.pipeline,
                input.name,
                self.0,
                input.connections,
                input.previous.acked,
            )
            .await?;
            Ok(Box::new(stream) as Box<dyn StreamSource>)
        })
    }
}

struct MqttConnector<'a>(&'a MqttSource);

impl StreamConnector for MqttConnector<'_> {
    fn warning(&self, source: &str, sink: &str, sink_spec: &FirehoseSink) -> Option<String> {
        mqtt::early_flush_warning(source, self.0, sink, sink_spec)
    }

    fn connect<'a>(&'a self, input: ConnectInput<'a>) -> Connecting<'a> {
        Box::pin(async move {
            let stream =
                mqtt::MqttStream::connect(input.pipeline, input.name, self.0, input.connections)?;
            Ok(Box::new(stream) as Box<dyn StreamSource>)
        })
    }
}

struct HttpConnector<'a>(&'a HttpSource);

impl StreamConnector for HttpConnector<'_> {
    fn resumes_from_sink(&self) -> bool {
        true
    }

    fn connect<'a>(&'a self, input: ConnectInput<'a>) -> Connecting<'a> {
        Box::pin(async move {
            let name = input.name;
            let token = match &self.0.token {
                Some(t) => Some(pipectl_spec::env::interpolate(t, input.env).map_err(|var| {
                    Error::user(format!(
                        "source `{name}`: token uses environment variable `{var}`, which is not set"
                    ))
                })?),
                None => None,
            };
            let log_dir = HttpSource::log_dir(input.state_dir, input.pipeline, name);
            let stream = http::HttpStream::bind(
                input.pipeline,
                name,
                self.0,
                token,
                &log_dir,
                input.previous,
            )
            .await?;
            Ok(Box::new(stream) as Box<dyn StreamSource>)
        })
    }
}

struct GeneratorConnector<'a>(&'a GeneratorSource);

impl StreamConnector for GeneratorConnector<'_> {
    fn connect<'a>(&'a self, input: ConnectInput<'a>) -> Connecting<'a> {
        let built = generator::GeneratorStream::new(input.name, self.0);
        Box::pin(async move { Ok(Box::new(built?) as Box<dyn StreamSource>) })
    }
}
