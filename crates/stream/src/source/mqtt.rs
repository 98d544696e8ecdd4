//! MQTT source: a QoS 1 subscription in a persistent session (`clean_session = false`), with
//! acknowledgements sent by hand, only after the objects holding the messages are published.
//!
//! Guarantee: at least once. A message the broker delivered is acknowledged only once it is in
//! the lake, and a persistent session makes the broker deliver unacknowledged messages again
//! after a reconnect, so a crash loses nothing the broker accepted. MQTT messages carry no
//! stable sequence number, though, so a message published into an object but not yet
//! acknowledged when the process dies lands a second time after the restart (a duplicate).
//! Messages published while pipectl is down are queued by the broker for the session, up to
//! its own limits (Mosquitto: `max_queued_messages`, 1000 by default; more are dropped).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use percent_encoding::percent_decode_str;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use pipectl_engine::connect::Connections;
use pipectl_engine::{Error, Result};
use pipectl_spec::types::{FirehoseSink, MqttSource};

use super::{Running, StreamSource, hand_over};
use crate::record::{Ack, Batch, Record};

/// Records handed over at most per batch.
const MAX_BATCH: usize = 1000;
/// Requests (publishes, acknowledgements) queued for the connection at most. Larger than any
/// broker's in-flight window, so acknowledging never waits for the source's own loop.
const REQUEST_QUEUE: usize = 70_000;
/// Connection failures in a row before the source gives up.
const MAX_FAILURES: u32 = 10;

/// A broker address from an `mqtt://` URL.
pub struct BrokerAddr {
    /// Host name or IP.
    pub host: String,
    /// Port (1883 by default).
    pub port: u16,
    /// User and password, if the URL has them.
    pub credentials: Option<(String, String)>,
}

/// Splits `mqtt://[user[:password]@]host[:port]` into host, port and credentials (which may
/// be percent-encoded, as in any URL).
pub fn parse_url(text: &str) -> Result<BrokerAddr> {
    // The parser's messages never quote the URL, so no password reaches an error.
    let url = url::Url::parse(text)
        .map_err(|e| Error::user(format!("the MQTT URL does not parse: {e}")))?;
    if url.scheme() != "mqtt" {
        return Err(Error::user("an MQTT URL starts with mqtt://"));
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| Error::user("the MQTT URL has no host"))?;
    let decoded = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    let credentials = (!url.username().is_empty() || url.password().is_some()).then(|| {
        (
            decoded(url.username()),
            decoded(url.password().unwrap_or("")),
        )
    });
    Ok(BrokerAddr {
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port: url.port().unwrap_or(1883),
        credentials,
    })
}

/// An MQTT subscription (the connection is made by the first poll).
pub struct MqttStream {
    name: String,
    client: AsyncClient,
    events: rumqttc::EventLoop,
    topic: String,
    window: u64,
}

impl MqttStream {
    /// Prepares the persistent session.
    pub fn connect(
        pipeline: &str,
        name: &str,
        spec: &MqttSource,
        connections: &Connections,
    ) -> Result<Self> {
        let url = connections.database_url(&spec.connection, "mqtt")?;
        let BrokerAddr {
            host,
            port,
            credentials,
        } = parse_url(&url).map_err(|e| {
            Error::user(format!(
                "source `{name}`: {} ({})",
                e.message,
                connections.display_url(&spec.connection)
            ))
        })?;
        let client_id = spec
            .client_id
            .clone()
            .unwrap_or_else(|| format!("pipectl-{pipeline}-{name}"));
        let mut options = MqttOptions::new(client_id, host, port);
        options
            .set_clean_session(false)
            .set_manual_acks(true)
            .set_keep_alive(Duration::from_secs(30));
        if let Some((user, password)) = credentials {
            options.set_credentials(user, password);
        }
        let (client, events) = AsyncClient::new(options, REQUEST_QUEUE);
        Ok(MqttStream {
            name: name.to_owned(),
            client,
            events,
            topic: spec.topic.clone(),
            window: u64::from(spec.broker_inflight),
        })
    }
}

struct MqttAck {
    client: AsyncClient,
    messages: Vec<Publish>,
    unacked: Arc<AtomicU64>,
}

impl Ack for MqttAck {
    fn cumulative(&self) -> bool {
        false
    }

    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            for m in &self.messages {
                // Never waits: the request queue is larger than any in-flight window.
                self.client
                    .try_ack(m)
                    .map_err(|e| Error::external("cannot acknowledge MQTT messages", e))?;
            }
            self.unacked
                .fetch_sub(self.messages.len() as u64, Ordering::Relaxed);
            Ok(())
        })
    }
}

impl StreamSource for MqttStream {
    fn run(self: Box<Self>, out: mpsc::Sender<Batch>, cancel: CancellationToken) -> Running {
        Box::pin(async move {
            let MqttStream {
                name,
                client,
                mut events,
                topic,
                window,
            } = *self;
            let unacked = Arc::new(AtomicU64::new(0));
            let mut seq: u64 = 0;
            let mut records = Vec::new();
            let mut messages = Vec::new();
            let mut failures = 0u32;
            loop {
                // Wait for an event while nothing is held; otherwise take only what is ready.
                let event = if records.is_empty() {
                    tokio::select! {
                        _ = cancel.cancelled() => return Ok(()),
                        e = events.poll() => Some(e),
                    }
                } else {
                    futures::FutureExt::now_or_never(events.poll())
                };
                let idle = event.is_none();
                match event {
                    None => {}
                    Some(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                        failures = 0;
                        // A resumed session keeps its subscription; subscribing again is harmless
                        // and covers a session the broker dropped.
                        if !ack.session_present || seq == 0 {
                            client
                                .subscribe(topic.clone(), QoS::AtLeastOnce)
                                .await
                                .map_err(|e| {
                                    Error::external(
                                        format!("source `{name}`: cannot subscribe to `{topic}`"),
                                        e,
                                    )
                                })?;
                        }
                    }
                    Some(Ok(Event::Incoming(Packet::Publish(p)))) => {
                        seq += 1;
                        unacked.fetch_add(1, Ordering::Relaxed);
                        records.push(Record {
                            seq,
                            arrival: chrono::Utc::now(),
                            data: p.payload.clone(),
                        });
                        messages.push(Publish {
                            payload: Bytes::new(),
                            ..p
                        });
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        failures += 1;
                        if failures >= MAX_FAILURES {
                            return Err(Error::external(
                                format!("source `{name}`: the MQTT connection keeps failing"),
                                e,
                            ));
                        }
                        tracing::warn!(source = %name, "MQTT connection error, reconnecting: {e}");
                        tokio::select! {
                            _ = cancel.cancelled() => return Ok(()),
                            _ = tokio::time::sleep(Duration::from_millis(200 * u64::from(failures))) => {}
                        }
                    }
                }
                // Hand over when nothing more is ready or the batch is full.
                if !records.is_empty() && (idle || records.len() >= MAX_BATCH) {
                    let batch = Batch {
                        records: std::mem::take(&mut records),
                        ack: Some(Box::new(MqttAck {
                            client: client.clone(),
                            messages: std::mem::take(&mut messages),
                            unacked: unacked.clone(),
                        })),
                        // No more can arrive until these are acknowledged: flush them now.
                        flush: unacked.load(Ordering::Relaxed) >= window,
                    };
                    hand_over(&out, batch, &cancel).await?;
                }
            }
        })
    }
}

/// The warning to give at start when the broker's in-flight window, not the sink's buffering
/// hints, decides how big objects get: the sink flushes once `broker_inflight` messages wait,
/// so unless `max_records` is at most that, objects hold fewer records than the hints allow.
pub fn early_flush_warning(
    source: &str,
    spec: &MqttSource,
    sink: &str,
    sink_spec: &FirehoseSink,
) -> Option<String> {
    let window = u64::from(spec.broker_inflight);
    if sink_spec.max_records.is_some_and(|m| m <= window) {
        return None;
    }
    Some(format!(
        "source `{source}`: the broker sends at most {window} unacknowledged messages (`broker_inflight`), so sink `{sink}` flushes an object every {window} records, before `max_bytes` or `interval_secs`; for bigger objects raise the broker's `max_inflight_messages` (Mosquitto: 20 by default) and `broker_inflight` together (see docs/streaming.md)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_below_the_buffering_hints_is_warned_about() {
        let mqtt: MqttSource = serde_json::from_value(
            serde_json::json!({"connection": "b", "topic": "t/#", "broker_inflight": 100}),
        )
        .unwrap();
        let sink = |max_records: Option<u64>| -> FirehoseSink {
            serde_json::from_value(serde_json::json!({
                "inputs": ["e"], "connection": "lake", "format": {"type": "jsonl"},
                "max_records": max_records,
            }))
            .unwrap()
        };
        let warning = early_flush_warning("e", &mqtt, "out", &sink(None)).unwrap();
        assert!(
            warning.contains("flushes an object every 100 records"),
            "{warning}"
        );
        assert!(early_flush_warning("e", &mqtt, "out", &sink(Some(500))).is_some());
        assert_eq!(
            early_flush_warning("e", &mqtt, "out", &sink(Some(100))),
            None
        );
    }

    #[test]
    fn broker_urls_split_with_decoded_credentials() {
        let a = parse_url("mqtt://user%40corp:p%3Ass%2Fw@broker.local:8883").unwrap();
        assert_eq!(a.host, "broker.local");
        assert_eq!(a.port, 8883);
        assert_eq!(
            a.credentials,
            Some(("user@corp".to_owned(), "p:ss/w".to_owned()))
        );
        let b = parse_url("mqtt://127.0.0.1").unwrap();
        assert_eq!(
            (b.host.as_str(), b.port, b.credentials),
            ("127.0.0.1", 1883, None)
        );
        assert!(parse_url("http://127.0.0.1").is_err());
        assert!(parse_url("mqtt://127.0.0.1:notaport").is_err());
    }
}
