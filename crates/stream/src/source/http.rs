//! HTTP "Direct PUT" source: pipectl serves Firehose's `PutRecord` and `PutRecordBatch`.
//!
//! Requests (all need `Authorization: Bearer <token>` when `token` is set, else 401):
//! - `POST /` with `X-Amz-Target: Firehose_20150804.PutRecord` and `{"Record": {"Data": "<base64>"}}`,
//!   or `Firehose_20150804.PutRecordBatch` and `{"Records": [{"Data": "<base64>"}, ...]}` (at most 500):
//!   Firehose's own wire format, so its SDKs and the Kinesis Data Generator can send here;
//! - `POST /records`: the body is one record;
//! - `POST /records/batch`: the body is JSON lines, one record per line.
//!
//! A body over `max_body_bytes` gets 413; when the sink's buffers are full (the channel to it
//! is full) the request gets 429 with `Retry-After`, and nothing of it is kept.
//!
//! Under `pipectl serve` the same requests are also answered on the daemon's API at
//! `/streams/{pipeline}/{source}/...` (e.g. `POST /streams/clicks/put/records`).
//!
//! Guarantees: a 200 means the records are in the sink's memory, not yet in the lake: a crash
//! before the next flush loses them (at most once). A client that retries until it gets a
//! 200 gets at-least-once delivery; a retry after a lost 200 may duplicate records.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use base64::Engine as _;
use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use pipectl_engine::{Error, Result};
use pipectl_spec::types::HttpSource;

use super::StreamSource;
use crate::record::{Batch, Record};

/// Records one PutRecordBatch may carry (Firehose's limit).
const MAX_BATCH_RECORDS: usize = 500;

/// Direct PUT endpoints of the streaming runs in this process, by `pipeline/source`, so that
/// `pipectl serve` answers them on its own API as well (see [`dispatch`]). Process-wide because
/// the daemon and the runs it supervises share nothing else that lives as long as a run.
static ENDPOINTS: LazyLock<Mutex<BTreeMap<String, Weak<Shared>>>> = LazyLock::new(Mutex::default);

fn endpoint_key(pipeline: &str, source: &str) -> String {
    format!("{pipeline}/{source}")
}

/// Removes a run's endpoint from [`ENDPOINTS`] when the run ends, however it ends.
struct Registered {
    key: String,
    shared: Weak<Shared>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut endpoints) = ENDPOINTS.lock()
            && endpoints
                .get(&self.key)
                .is_some_and(|w| w.ptr_eq(&self.shared))
        {
            endpoints.remove(&self.key);
        }
    }
}

/// Answers a Direct PUT request for source `source` of the streaming pipeline `pipeline`
/// running in this process, as if it had come to the source's own address at `path` (`/`,
/// `/records` or `/records/batch`). `None` when no such source is running here.
pub async fn dispatch(
    pipeline: &str,
    source: &str,
    path: &str,
    req: Request<Incoming>,
) -> Option<Response<Full<Bytes>>> {
    let shared = ENDPOINTS
        .lock()
        .ok()?
        .get(&endpoint_key(pipeline, source))?
        .upgrade()?;
    let (mut parts, body) = req.into_parts();
    parts.uri = path.parse().ok()?;
    Some(handle(&shared, Request::from_parts(parts, body)).await)
}

/// A bound Direct PUT endpoint.
pub struct HttpStream {
    pipeline: String,
    name: String,
    listener: tokio::net::TcpListener,
    token: Option<String>,
    max_body_bytes: usize,
}

impl HttpStream {
    /// Binds the listen address; `token` is the bearer token (`${env:...}` already resolved).
    pub async fn bind(
        pipeline: &str,
        name: &str,
        spec: &HttpSource,
        token: Option<String>,
    ) -> Result<Self> {
        let addr: SocketAddr = spec.listen.parse().map_err(|_| {
            Error::user(format!(
                "source `{name}`: `{}` is not an address",
                spec.listen
            ))
        })?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::external(format!("source `{name}`: cannot listen on {addr}"), e))?;
        tracing::info!(source = %name, %addr, "Direct PUT endpoint listening");
        Ok(HttpStream {
            pipeline: pipeline.to_owned(),
            name: name.to_owned(),
            listener,
            token,
            max_body_bytes: spec.max_body_bytes,
        })
    }
}

struct Shared {
    /// The next sequence number, locked together with the send so sequence numbers reach
    /// the sink in order.
    out: std::sync::Mutex<(u64, mpsc::Sender<Batch>)>,
    token: Option<String>,
    max_body_bytes: usize,
}

impl StreamSource for HttpStream {
    fn run(
        self: Box<Self>,
        out: mpsc::Sender<Batch>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            let shared = Arc::new(Shared {
                out: std::sync::Mutex::new((0, out)),
                token: self.token,
                max_body_bytes: self.max_body_bytes,
            });
            let key = endpoint_key(&self.pipeline, &self.name);
            if let Ok(mut endpoints) = ENDPOINTS.lock() {
                endpoints.insert(key.clone(), Arc::downgrade(&shared));
            }
            let _registered = Registered {
                key,
                shared: Arc::downgrade(&shared),
            };
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let accepted = tokio::select! {
                    _ = cancel.cancelled() => break,
                    a = self.listener.accept() => a,
                };
                let (stream, _) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(source = %self.name, "accept failed: {e}");
                        continue;
                    }
                };
                // Reap finished connections so the set does not grow with every client.
                while connections.try_join_next().is_some() {}
                let shared = shared.clone();
                let cancel = cancel.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(&shared, req).await) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = cancel.cancelled() => conn.as_mut().graceful_shutdown(),
                    }
                });
            }
            // Requests in progress finish (their records reach the sink, or they get an error).
            while connections.join_next().await.is_some() {}
            Ok(())
        })
    }
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::TOO_MANY_REQUESTS {
        r.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from_static("1"),
        );
    }
    r
}

fn failure(status: StatusCode, kind: &str, message: &str) -> Response<Full<Bytes>> {
    reply(
        status,
        serde_json::json!({"__type": kind, "message": message}),
    )
}

#[derive(Deserialize)]
struct WireRecord {
    #[serde(rename = "Data")]
    data: String,
}

#[derive(Deserialize)]
struct PutRecord {
    #[serde(rename = "Record")]
    record: WireRecord,
}

#[derive(Deserialize)]
struct PutRecordBatch {
    #[serde(rename = "Records")]
    records: Vec<WireRecord>,
}

#[derive(Clone, Copy)]
enum Shape {
    Single,
    Batch,
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if let Some(token) = &shared.token {
        let given = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !token_matches(given, token) {
            return failure(
                StatusCode::UNAUTHORIZED,
                "UnauthorizedException",
                "missing or wrong bearer token",
            );
        }
    }
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (wire, shape) = match (req.method(), req.uri().path(), target.as_deref()) {
        (&Method::POST, "/", Some("Firehose_20150804.PutRecord")) => (true, Shape::Single),
        (&Method::POST, "/", Some("Firehose_20150804.PutRecordBatch")) => (true, Shape::Batch),
        (&Method::POST | &Method::PUT, "/records", _) => (false, Shape::Single),
        (&Method::POST | &Method::PUT, "/records/batch", _) => (false, Shape::Batch),
        _ => {
            return failure(
                StatusCode::NOT_FOUND,
                "UnknownOperationException",
                "use POST / with X-Amz-Target PutRecord or PutRecordBatch, POST /records or POST /records/batch",
            );
        }
    };
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > shared.max_body_bytes) {
        return failure(
            StatusCode::PAYLOAD_TOO_LARGE,
            "ValidationException",
            &format!("the body is larger than {} bytes", shared.max_body_bytes),
        );
    }
    let body = match Limited::new(req.into_body(), shared.max_body_bytes)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return failure(
                StatusCode::PAYLOAD_TOO_LARGE,
                "ValidationException",
                &format!("the body is larger than {} bytes", shared.max_body_bytes),
            );
        }
        Err(_) => {
            return failure(
                StatusCode::BAD_REQUEST,
                "InvalidArgumentException",
                "the body could not be read",
            );
        }
    };
    let payloads: Vec<Bytes> = match (wire, shape) {
        (true, Shape::Single) => match serde_json::from_slice::<PutRecord>(&body) {
            Ok(p) => match decode(&p.record.data) {
                Some(d) => vec![d],
                None => {
                    return failure(
                        StatusCode::BAD_REQUEST,
                        "InvalidArgumentException",
                        "Record.Data is not base64",
                    );
                }
            },
            Err(e) => {
                return failure(
                    StatusCode::BAD_REQUEST,
                    "SerializationException",
                    &e.to_string(),
                );
            }
        },
        (true, Shape::Batch) => match serde_json::from_slice::<PutRecordBatch>(&body) {
            Ok(p) => {
                let mut out = Vec::with_capacity(p.records.len());
                for r in &p.records {
                    match decode(&r.data) {
                        Some(d) => out.push(d),
                        None => {
                            return failure(
                                StatusCode::BAD_REQUEST,
                                "InvalidArgumentException",
                                "a Records[].Data is not base64",
                            );
                        }
                    }
                }
                out
            }
            Err(e) => {
                return failure(
                    StatusCode::BAD_REQUEST,
                    "SerializationException",
                    &e.to_string(),
                );
            }
        },
        (false, Shape::Single) => vec![body],
        (false, Shape::Batch) => body
            .split(|b| *b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .map(|l| body.slice_ref(l))
            .collect(),
    };
    if payloads.is_empty() || (matches!(shape, Shape::Batch) && payloads.len() > MAX_BATCH_RECORDS)
    {
        return failure(
            StatusCode::BAD_REQUEST,
            "InvalidArgumentException",
            &format!("a batch holds 1 to {MAX_BATCH_RECORDS} records"),
        );
    }
    let n = payloads.len() as u64;
    let arrival = chrono::Utc::now();
    let first = {
        let Ok(mut out) = shared.out.lock() else {
            return failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalFailure",
                "the source is broken",
            );
        };
        let first = out.0 + 1;
        let records: Vec<Record> = payloads
            .into_iter()
            .enumerate()
            .map(|(i, data)| Record {
                seq: first + i as u64,
                arrival,
                data,
            })
            .collect();
        // Never wait for room: a client told to slow down retries; a waiting one holds a connection.
        match out.1.try_send(Batch {
            records,
            ack: None,
            flush: false,
        }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                return failure(
                    StatusCode::TOO_MANY_REQUESTS,
                    "ServiceUnavailableException",
                    "buffers are full; retry after a second",
                );
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return failure(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailableException",
                    "the pipeline is stopping",
                );
            }
        }
        out.0 += n;
        first
    };
    let ids: Vec<serde_json::Value> = (first..first + n)
        .map(|s| serde_json::json!({"RecordId": s.to_string()}))
        .collect();
    match shape {
        Shape::Single => reply(
            StatusCode::OK,
            serde_json::json!({"RecordId": first.to_string(), "Encrypted": false}),
        ),
        Shape::Batch => reply(
            StatusCode::OK,
            serde_json::json!({"FailedPutCount": 0, "Encrypted": false, "RequestResponses": ids}),
        ),
    }
}

fn decode(data: &str) -> Option<Bytes> {
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .ok()
        .map(Bytes::from)
}

/// Whether the request's bearer token is `token`, compared in constant time (`subtle`), so the
/// time a refusal takes does not tell a caller how many leading bytes it guessed right.
fn token_matches(given: Option<&str>, token: &str) -> bool {
    use subtle::ConstantTimeEq;
    given.is_some_and(|given| bool::from(given.as_bytes().ct_eq(token.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::token_matches;

    #[test]
    fn only_the_exact_token_matches() {
        assert!(token_matches(Some("s3cret"), "s3cret"));
        assert!(!token_matches(Some("s3creT"), "s3cret"));
        assert!(!token_matches(Some("s3cre"), "s3cret"));
        assert!(!token_matches(Some("s3crets"), "s3cret"));
        assert!(!token_matches(Some(""), "s3cret"));
        assert!(!token_matches(None, "s3cret"));
    }
}
