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
use pipectl_spec::types::{HttpSource, Source as SourceSpec};

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
    fn run(
        self: Box<Self>,
        out: mpsc::Sender<Batch>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<()>>;
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

/// Connects the source of a streaming pipeline. `previous` is the sink's own record of what is
/// published and acknowledged (empty if none); a Direct PUT source keeps its write-ahead log
/// under `state_dir` (see [`HttpSource::log_dir`]).
pub async fn connect(
    pipeline: &str,
    name: &str,
    spec: &SourceSpec,
    connections: &Connections,
    previous: &Pending,
    state_dir: &Path,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Box<dyn StreamSource>> {
    match spec {
        SourceSpec::Nats(n) => Ok(Box::new(
            nats::NatsStream::connect(pipeline, name, n, connections, previous.acked).await?,
        )),
        SourceSpec::Generator(g) => Ok(Box::new(generator::GeneratorStream::new(name, g)?)),
        SourceSpec::Http(h) => {
            let token = match &h.token {
                Some(t) => Some(pipectl_spec::env::interpolate(t, env).map_err(|var| {
                    Error::user(format!(
                        "source `{name}`: token uses environment variable `{var}`, which is not set"
                    ))
                })?),
                None => None,
            };
            let log_dir = HttpSource::log_dir(state_dir, pipeline, name);
            Ok(Box::new(
                http::HttpStream::bind(pipeline, name, h, token, &log_dir, previous).await?,
            ))
        }
        SourceSpec::Mqtt(m) => Ok(Box::new(mqtt::MqttStream::connect(
            pipeline,
            name,
            m,
            connections,
        )?)),
        other => Err(Error::user(format!(
            "source `{name}`: `{}` sources cannot be delivered by this version yet",
            other.type_name()
        ))),
    }
}
