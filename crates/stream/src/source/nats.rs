//! NATS JetStream source: a durable pull consumer with `AckPolicy::All`.
//!
//! The consumer's acknowledgement floor is the delivery position: a batch is acknowledged
//! (with a confirmed "double ack") only after every record up to it is in a published object.
//! Unacknowledged messages come back after a restart with the same stream sequence numbers and
//! server timestamps, which is what lets the sink rewrite the same objects.
//!
//! One durable has one reader. A run that finds another process pulling from its durable
//! refuses to start, and a run whose durable is deleted or recreated under it (by a process
//! that started anyway) stops with an error: two readers would split the stream between them,
//! and one's cumulative acknowledgement could acknowledge what the other still holds.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{self, AckKind, stream};
use futures::StreamExt;
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use pipectl_engine::connect::Connections;
use pipectl_engine::{Error, Result};
use pipectl_spec::types::NatsSource;

use super::{Running, Started, StreamSource, hand_over};
use crate::record::{Ack, Batch, Record};

/// How long the server waits for an acknowledgement before redelivering. Long: records wait in
/// buffers for up to the sink's interval, and redeliveries before a restart are dropped anyway.
const ACK_WAIT: Duration = Duration::from_secs(3600);

/// How long one pull request waits on the server. A process that stopped leaves its requests
/// waiting at most this long; a live one renews them.
const PULL_EXPIRES: Duration = Duration::from_secs(10);

/// How often a running source checks that its durable is still the one it created.
const OWNER_CHECK_EVERY: Duration = Duration::from_secs(5);

/// A connected JetStream consumer.
pub struct NatsStream {
    name: String,
    durable: String,
    consumer: jetstream::consumer::Consumer<pull::Config>,
    acked_through: u64,
    pull_batch: usize,
}

impl NatsStream {
    /// Connects, creates the stream if asked to, and (re)creates the durable consumer at the
    /// acknowledgement floor: the server's, or `acked` (the sink's record) if that is higher or
    /// the consumer is gone.
    pub async fn connect(
        pipeline: &str,
        name: &str,
        spec: &NatsSource,
        connections: &Connections,
        acked: u64,
    ) -> Result<Self> {
        let url = connections.database_url(&spec.connection, "nats")?;
        let shown = connections.display_url(&spec.connection);
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .connect(url.as_str())
            .await
            .map_err(|e| {
                Error::external(
                    format!("source `{name}`: cannot connect to NATS at {shown}"),
                    e,
                )
            })?;
        let js = jetstream::new(client);
        let stream = match js.get_stream(&spec.stream).await {
            Ok(s) => s,
            Err(e) if spec.create_stream => {
                tracing::info!(stream = %spec.stream, "creating JetStream stream ({e})");
                js.create_stream(stream::Config {
                    name: spec.stream.clone(),
                    subjects: spec.subject.iter().cloned().collect(),
                    ..Default::default()
                })
                .await
                .map_err(|e| {
                    Error::external(
                        format!(
                            "source `{name}`: cannot create JetStream stream `{}`",
                            spec.stream
                        ),
                        e,
                    )
                })?
            }
            Err(e) => {
                return Err(Error::external(
                    format!(
                        "source `{name}`: JetStream stream `{}` not found on {shown}; create it or set `create_stream: true`",
                        spec.stream
                    ),
                    e,
                ));
            }
        };
        let durable = spec.durable_name(pipeline, name);
        // Messages a stopped process received but never acknowledged would come back only after
        // the acknowledgement wait (an hour). The consumer is recreated at its acknowledgement
        // floor instead, so they come back at once; everything below the floor is delivered.
        let floor = match stream.consumer_info(&durable).await {
            Ok(info) => {
                let info = if info.num_waiting > 0 {
                    wait_until_unread(&stream, &durable, name, info).await?
                } else {
                    info
                };
                let floor = info.ack_floor.stream_sequence;
                stream.delete_consumer(&durable).await.map_err(|e| {
                    Error::external(
                        format!("source `{name}`: cannot reset JetStream consumer `{durable}`"),
                        e,
                    )
                })?;
                floor.max(acked)
            }
            Err(_) => acked,
        };
        let deliver_policy = if floor == 0 {
            DeliverPolicy::All
        } else {
            DeliverPolicy::ByStartSequence {
                start_sequence: floor + 1,
            }
        };
        let consumer: jetstream::consumer::Consumer<pull::Config> = stream
            .create_consumer(pull::Config {
                durable_name: Some(durable.clone()),
                filter_subject: spec.subject.clone().unwrap_or_default(),
                deliver_policy,
                ack_policy: AckPolicy::All,
                ack_wait: ACK_WAIT,
                // Memory is bounded by the sink's buffers (the pull waits while they are
                // full), not by the server's count of unacknowledged messages.
                max_ack_pending: 1_000_000,
                ..Default::default()
            })
            .await
            .map_err(|e| {
                Error::external(
                    format!("source `{name}`: cannot create JetStream consumer `{durable}`"),
                    e,
                )
            })?;
        Ok(NatsStream {
            name: name.to_owned(),
            durable,
            acked_through: floor,
            consumer,
            pull_batch: spec.pull_batch,
        })
    }
}

struct NatsAck(jetstream::Message);

impl Ack for NatsAck {
    fn cumulative(&self) -> bool {
        true
    }

    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            self.0
                .double_ack_with(AckKind::Ack)
                .await
                .map_err(|e| Error::external("cannot acknowledge JetStream messages", e))
        })
    }
}

impl StreamSource for NatsStream {
    fn started(&self) -> Started {
        Started::same_sequence(self.acked_through)
    }

    fn run(self: Box<Self>, out: mpsc::Sender<Batch>, cancel: CancellationToken) -> Running {
        Box::pin(async move {
            let name = self.name;
            let durable = self.durable;
            let created = self.consumer.cached_info().created;
            let mut owner_check = tokio::time::interval(OWNER_CHECK_EVERY);
            owner_check.tick().await;
            let mut messages = self
                .consumer
                .stream()
                .max_messages_per_batch(self.pull_batch)
                .heartbeat(Duration::from_secs(5))
                .expires(PULL_EXPIRES)
                .messages()
                .await
                .map_err(|e| {
                    Error::external(format!("source `{name}`: cannot pull from JetStream"), e)
                })?;
            // Messages redelivered while earlier copies still wait in buffers are dropped.
            let mut highest = self.acked_through;
            let mut records = Vec::with_capacity(self.pull_batch);
            let mut last: Option<jetstream::Message> = None;
            loop {
                // Take what is ready now, then hand it over; wait only when nothing is ready.
                let next = if records.is_empty() {
                    tokio::select! {
                        _ = cancel.cancelled() => return Ok(()),
                        _ = owner_check.tick() => {
                            check_still_ours(&self.consumer, &name, &durable, created).await?;
                            continue;
                        }
                        m = messages.next() => m,
                    }
                } else {
                    match futures::FutureExt::now_or_never(messages.next()) {
                        Some(m) => m,
                        None => {
                            send(&out, &mut records, &mut last, &cancel).await?;
                            continue;
                        }
                    }
                };
                let Some(message) = next else { return Ok(()) };
                let message = message.map_err(|e| {
                    if e.kind() == pull::MessagesErrorKind::ConsumerDeleted {
                        taken_over(&name, &durable, "was deleted")
                    } else {
                        Error::external(format!("source `{name}`: JetStream pull failed"), e)
                    }
                })?;
                let (seq, published) = match message.info() {
                    Ok(info) => (info.stream_sequence, info.published),
                    Err(e) => {
                        tracing::warn!(source = %name, "skipping a message without JetStream metadata: {e}");
                        continue;
                    }
                };
                if seq <= highest {
                    continue;
                }
                highest = seq;
                records.push(Record {
                    seq,
                    arrival: published,
                    data: message.payload.clone(),
                });
                last = Some(message);
                if records.len() >= self.pull_batch {
                    send(&out, &mut records, &mut last, &cancel).await?;
                }
            }
        })
    }
}

/// Waits for the pull requests waiting on `durable` to expire: a process that stopped leaves
/// them for up to [`PULL_EXPIRES`]. Requests still waiting after that come from a live reader,
/// and the run refuses to start.
async fn wait_until_unread(
    stream: &stream::Stream,
    durable: &str,
    name: &str,
    mut info: jetstream::consumer::Info,
) -> Result<jetstream::consumer::Info> {
    let deadline = tokio::time::Instant::now() + PULL_EXPIRES + Duration::from_secs(2);
    while info.num_waiting > 0 {
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::user(format!(
                "source `{name}`: JetStream consumer `{durable}` is being read by another process \
                 ({} pull requests kept waiting for more than {} s). Two readers of one durable \
                 split the stream between them; stop the other run of this pipeline, or give \
                 this source its own `durable:`",
                info.num_waiting,
                (PULL_EXPIRES + Duration::from_secs(2)).as_secs()
            )));
        }
        tracing::info!(source = %name, %durable, waiting = info.num_waiting, "waiting for the pull requests of a stopped reader to expire");
        tokio::time::sleep(Duration::from_millis(500)).await;
        info = stream.consumer_info(durable).await.map_err(|e| {
            Error::external(
                format!("source `{name}`: cannot read JetStream consumer `{durable}`"),
                e,
            )
        })?;
    }
    Ok(info)
}

/// Fails when `durable` is no longer the consumer this run created (deleted, or deleted and
/// created again by another process).
async fn check_still_ours(
    consumer: &jetstream::consumer::Consumer<pull::Config>,
    name: &str,
    durable: &str,
    created: async_nats::datetime::DateTime,
) -> Result<()> {
    match consumer.get_info().await {
        Ok(info) if info.created == created => Ok(()),
        Ok(_) => Err(taken_over(name, durable, "was created again")),
        Err(e) if e.kind() == jetstream::context::ConsumerInfoErrorKind::NotFound => {
            Err(taken_over(name, durable, "was deleted"))
        }
        // A passing server or network problem: the pull itself reports lasting ones.
        Err(e) => {
            tracing::warn!(source = %name, %durable, "cannot check the JetStream consumer: {e}");
            Ok(())
        }
    }
}

/// The error of a run whose durable another process took.
fn taken_over(name: &str, durable: &str, what: &str) -> Error {
    Error::user(format!(
        "source `{name}`: JetStream consumer `{durable}` {what} while this run was reading it, \
         most likely by another run of this pipeline on the same durable; this run stops so that \
         the two do not split the stream. Run one process per pipeline, or give each its own \
         `durable:`"
    ))
}

async fn send(
    out: &mpsc::Sender<Batch>,
    records: &mut Vec<Record>,
    last: &mut Option<jetstream::Message>,
    cancel: &CancellationToken,
) -> Result<()> {
    let capacity = records.capacity();
    let batch = Batch {
        records: std::mem::replace(records, Vec::with_capacity(capacity)),
        ack: last.take().map(|m| Box::new(NatsAck(m)) as Box<dyn Ack>),
        flush: false,
    };
    hand_over(out, batch, cancel).await
}
