//! `pipectl generate`: the Kinesis Data Generator as a command. Records rendered from a
//! template at a fixed rate are published to a NATS subject (through JetStream, waiting for
//! its acknowledgements, when `jetstream` is set), an MQTT topic (QoS 1) or a Direct PUT
//! endpoint (`PutRecordBatch`), for demos and load tests.

use std::collections::VecDeque;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use pipectl_engine::{Error, Result};
use pipectl_spec::lang::template::{RenderContext, Template};

/// Where generated records go.
#[derive(Debug, Clone)]
pub enum Target {
    /// A NATS subject.
    Nats {
        /// Server URL, `nats://host:4222`.
        url: String,
        /// Subject.
        subject: String,
        /// Publish through JetStream and wait (pipelined) for the stream to store each record.
        jetstream: bool,
    },
    /// An MQTT topic, QoS 1.
    Mqtt {
        /// `mqtt://host:1883`.
        url: String,
        /// Topic.
        topic: String,
    },
    /// A Direct PUT endpoint.
    Http {
        /// `http://host:port`.
        url: String,
        /// Bearer token.
        token: Option<String>,
        /// Records per `PutRecordBatch` request (at most 500).
        batch: usize,
    },
}

/// What to generate.
pub struct GenerateOptions {
    /// The record template.
    pub template: Template,
    /// Records per second; `None`: as fast as the target takes them.
    pub rate: Option<f64>,
    /// Stop after this many records.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Seed for reproducible values.
    pub seed: Option<u64>,
    /// Where to send them.
    pub target: Target,
}

/// Records rendered between two rate checks.
const CHUNK: u64 = 100;
/// JetStream acknowledgements awaited at most at once. Below async-nats' own limit of pending
/// acknowledgements (5,000), past which a publish waits for one of the acknowledgements this
/// loop would only await after it: a deadlock.
const ACK_WINDOW: usize = 4096;

/// Publishes records until the count or duration is reached or `cancel` fires; returns how
/// many were sent (and, for JetStream, stored).
pub async fn generate(options: GenerateOptions, cancel: CancellationToken) -> Result<u64> {
    let mut publisher = Publisher::connect(&options.target).await?;
    let mut ctx = RenderContext::new(options.seed);
    let start = Instant::now();
    let total = options.count.unwrap_or(u64::MAX);
    let mut sent = 0u64;
    let mut text = String::new();
    let mut chunk: Vec<Bytes> = Vec::with_capacity(CHUNK as usize);
    while sent < total
        && !cancel.is_cancelled()
        && options.duration.is_none_or(|d| start.elapsed() < d)
    {
        if let Some(rate) = options.rate {
            let due = start + Duration::from_secs_f64(sent as f64 / rate);
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep_until(due) => {}
            }
        }
        let n = CHUNK.min(total - sent);
        // One buffer per chunk; each record is a slice of it.
        chunk.clear();
        text.clear();
        let mut ends = Vec::with_capacity(n as usize);
        for _ in 0..n {
            ctx.set_now(chrono::Utc::now());
            options.template.render(&mut ctx, &mut text);
            ends.push(text.len());
        }
        let buffer = Bytes::from(std::mem::take(&mut text));
        let mut start = 0;
        for end in ends {
            chunk.push(buffer.slice(start..end));
            start = end;
        }
        publisher.send(&chunk).await?;
        sent += n;
    }
    publisher.finish().await?;
    Ok(sent)
}

enum Publisher {
    Nats {
        client: async_nats::Client,
        jetstream: Option<Box<async_nats::jetstream::Context>>,
        subject: async_nats::Subject,
        acks: VecDeque<async_nats::jetstream::context::PublishAckFuture>,
    },
    Mqtt {
        client: rumqttc::AsyncClient,
        topic: String,
        published: u64,
        acked: tokio::sync::watch::Receiver<u64>,
        driver: tokio::task::JoinHandle<()>,
    },
    Http(Box<HttpClient>),
}

impl Publisher {
    async fn connect(target: &Target) -> Result<Self> {
        Ok(match target {
            Target::Nats {
                url,
                subject,
                jetstream,
            } => {
                let client = async_nats::connect(url.as_str())
                    .await
                    .map_err(|e| Error::external(format!("cannot connect to NATS at {url}"), e))?;
                Publisher::Nats {
                    jetstream: jetstream
                        .then(|| Box::new(async_nats::jetstream::new(client.clone()))),
                    client,
                    subject: subject.clone().into(),
                    acks: VecDeque::new(),
                }
            }
            Target::Mqtt { url, topic } => {
                let crate::source::mqtt::BrokerAddr {
                    host,
                    port,
                    credentials,
                } = crate::source::mqtt::parse_url(url)?;
                let mut options = rumqttc::MqttOptions::new(
                    format!("pipectl-generate-{}", std::process::id()),
                    host,
                    port,
                );
                options
                    .set_keep_alive(Duration::from_secs(30))
                    .set_inflight(1000);
                if let Some((user, password)) = credentials {
                    options.set_credentials(user, password);
                }
                let (client, mut events) = rumqttc::AsyncClient::new(options, 10_000);
                let (tx, acked) = tokio::sync::watch::channel(0u64);
                // The event loop sends the publishes and counts the broker's acknowledgements.
                let driver = tokio::spawn(async move {
                    let mut count = 0u64;
                    let mut failures = 0;
                    loop {
                        match events.poll().await {
                            Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => {
                                count += 1;
                                let _ = tx.send(count);
                            }
                            Ok(rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                            Ok(_) => failures = 0,
                            Err(e) => {
                                failures += 1;
                                tracing::warn!("MQTT connection error: {e}");
                                if failures > 10 {
                                    break;
                                }
                                tokio::time::sleep(Duration::from_millis(200)).await;
                            }
                        }
                    }
                });
                Publisher::Mqtt {
                    client,
                    topic: topic.clone(),
                    published: 0,
                    acked,
                    driver,
                }
            }
            Target::Http { url, token, batch } => {
                Publisher::Http(Box::new(HttpClient::new(url, token.clone(), *batch)?))
            }
        })
    }

    async fn send(&mut self, records: &[Bytes]) -> Result<()> {
        match self {
            Publisher::Nats {
                jetstream: Some(js),
                subject,
                acks,
                ..
            } => {
                for r in records {
                    let ack = js
                        .publish(subject.clone(), r.clone())
                        .await
                        .map_err(|e| Error::external("cannot publish to JetStream", e))?;
                    acks.push_back(ack);
                    if acks.len() > ACK_WINDOW
                        && let Some(a) = acks.pop_front()
                    {
                        a.await
                            .map_err(|e| Error::external("JetStream did not store a record", e))?;
                    }
                }
                Ok(())
            }
            Publisher::Nats {
                client,
                jetstream: None,
                subject,
                ..
            } => {
                for r in records {
                    client
                        .publish(subject.clone(), r.clone())
                        .await
                        .map_err(|e| Error::external("cannot publish to NATS", e))?;
                }
                Ok(())
            }
            Publisher::Mqtt {
                client,
                topic,
                published,
                ..
            } => {
                for r in records {
                    client
                        .publish_bytes(topic.as_str(), rumqttc::QoS::AtLeastOnce, false, r.clone())
                        .await
                        .map_err(|e| Error::external("cannot publish to MQTT", e))?;
                    *published += 1;
                }
                Ok(())
            }
            Publisher::Http(client) => client.put(records).await,
        }
    }

    async fn finish(self) -> Result<()> {
        match self {
            Publisher::Nats { client, acks, .. } => {
                for a in acks {
                    a.await
                        .map_err(|e| Error::external("JetStream did not store a record", e))?;
                }
                client
                    .flush()
                    .await
                    .map_err(|e| Error::external("cannot flush to NATS", e))
            }
            Publisher::Mqtt {
                client,
                published,
                mut acked,
                driver,
                ..
            } => {
                // Wait until the broker acknowledged every record (QoS 1), then disconnect.
                let done = acked.wait_for(|n| *n >= published).await.is_ok();
                let _ = client.disconnect().await;
                let _ = driver.await;
                if done {
                    Ok(())
                } else {
                    Err(Error::user(
                        "the MQTT connection ended before every record was acknowledged",
                    ))
                }
            }
            Publisher::Http(_) => Ok(()),
        }
    }
}

/// A keep-alive HTTP/1.1 client for `PutRecordBatch`, retrying 429 and 503 answers.
struct HttpClient {
    authority: String,
    token: Option<String>,
    batch: usize,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl HttpClient {
    fn new(url: &str, token: Option<String>, batch: usize) -> Result<Self> {
        let authority = url
            .strip_prefix("http://")
            .ok_or_else(|| Error::user(format!("`{url}` is not an http:// URL")))?
            .trim_end_matches('/')
            .to_owned();
        Ok(HttpClient {
            authority,
            token,
            batch: batch.clamp(1, 500),
            sender: None,
        })
    }

    async fn connection(
        &mut self,
    ) -> Result<&mut hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(&self.authority)
                .await
                .map_err(|e| Error::external(format!("cannot connect to {}", self.authority), e))?;
            let _ = stream.set_nodelay(true);
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| Error::external("HTTP handshake failed", e))?;
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        self.sender
            .as_mut()
            .ok_or_else(|| Error::internal("no HTTP connection"))
    }

    async fn put(&mut self, records: &[Bytes]) -> Result<()> {
        for chunk in records.chunks(self.batch) {
            let entries: Vec<serde_json::Value> = chunk
                .iter()
                .map(|r| {
                    serde_json::json!({"Data": base64::engine::general_purpose::STANDARD.encode(r)})
                })
                .collect();
            let body = Bytes::from(
                serde_json::json!({"DeliveryStreamName": "pipectl", "Records": entries})
                    .to_string(),
            );
            let mut wait = Duration::from_millis(50);
            loop {
                let mut request = hyper::Request::post("/")
                    .header(hyper::header::HOST, self.authority.as_str())
                    .header("x-amz-target", "Firehose_20150804.PutRecordBatch")
                    .header(hyper::header::CONTENT_TYPE, "application/x-amz-json-1.1");
                if let Some(token) = &self.token {
                    request =
                        request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
                }
                let request = request
                    .body(Full::new(body.clone()))
                    .map_err(|e| Error::internal(format!("request: {e}")))?;
                let sender = self.connection().await?;
                // The previous response may still be finishing on this connection.
                sender
                    .ready()
                    .await
                    .map_err(|e| Error::external("the Direct PUT connection failed", e))?;
                let response = sender
                    .send_request(request)
                    .await
                    .map_err(|e| Error::external("the Direct PUT request failed", e))?;
                let status = response.status();
                let text = response
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                match status {
                    StatusCode::OK => break,
                    StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(1));
                    }
                    other => {
                        return Err(Error::user(format!(
                            "the endpoint answered {other}: {}",
                            String::from_utf8_lossy(&text)
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}
