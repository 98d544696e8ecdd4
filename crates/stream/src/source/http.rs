//! HTTP "Direct PUT" source: pipectl serves Firehose's `PutRecord` and `PutRecordBatch`.
//!
//! Requests (all need `Authorization: Bearer <token>` when `token` is set, else 401):
//! - `POST /` with `X-Amz-Target: Firehose_20150804.PutRecord` and `{"Record": {"Data": "<base64>"}}`,
//!   or `Firehose_20150804.PutRecordBatch` and `{"Records": [{"Data": "<base64>"}, ...]}` (at most 500):
//!   Firehose's own wire format, so its SDKs and the Kinesis Data Generator can send here;
//! - `POST /records`: the body is one record;
//! - `POST /records/batch`: the body is JSON lines, one record per line.
//!
//! A body over `max_body_bytes` gets 413. A 200 means the records are stored: they are in the
//! source's write-ahead log ([`crate::wal`]), synced to disk, and stay there until the objects
//! holding them are published; the sink reads them from the log, so a slow sink holds them on
//! disk, not in memory, and a restart delivers them again with the same sequence numbers, so
//! the firehose sink publishes each exactly once. Requests arriving during a sync share the
//! next one (group commit). When the log holds `max_buffered_bytes` (or the disk is so slow
//! that requests queue up), the request gets 429 with `Retry-After` and nothing of it is
//! kept. A client that retries until it gets a 200 gets every record at least once; a
//! duplicate comes only from a retry of a request whose answer was lost.
//!
//! Under `pipectl serve` the same requests are also answered on the daemon's API at
//! `/streams/{pipeline}/{source}/...` (e.g. `POST /streams/clicks/put/records`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use pipectl_engine::{Error, Result};
use pipectl_spec::types::HttpSource;

use super::{Running, Started, StreamSource};
use crate::firehose::pending::Pending;
use crate::record::{Ack, Batch};
use crate::wal::{self, Wal};

/// Records one PutRecordBatch may carry (Firehose's limit).
const MAX_BATCH_RECORDS: usize = 500;
/// How long a stopping source waits for requests in progress to be answered.
const DRAIN_SECS: u64 = 10;

/// One sync covers the requests waiting when it starts, up to about this many bytes.
const GROUP_BYTES: u64 = 1024 * 1024;

/// Bytes of requests waiting for the log at most (beyond one request), so memory stays bounded
/// when the sink falls behind: more get 429.
const QUEUE_BYTES: u64 = 16 * 1024 * 1024;

/// Bytes of records the sink gets from the log at a time (at most one batch more for a
/// record bigger than that).
const READ_BYTES: usize = 1024 * 1024;

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

/// A bound Direct PUT endpoint with its write-ahead log.
pub struct HttpStream {
    pipeline: String,
    name: String,
    listener: tokio::net::TcpListener,
    token: Option<String>,
    max_body_bytes: usize,
    max_log_bytes: u64,
    wal: Arc<Wal>,
}

impl HttpStream {
    /// Opens the write-ahead log in `log_dir` and binds the listen address; `token` is the
    /// bearer token (`${env:...}` already resolved); `previous` is the sink's record of objects
    /// in flight, which says how far the log's records are published.
    pub async fn bind(
        pipeline: &str,
        name: &str,
        spec: &HttpSource,
        token: Option<String>,
        log_dir: &Path,
        previous: &Pending,
    ) -> Result<Self> {
        let addr: SocketAddr = spec.listen.parse().map_err(|_| {
            Error::user(format!(
                "source `{name}`: `{}` is not an address",
                spec.listen
            ))
        })?;
        let reserved = previous.entries.iter().map(|e| e.last).max().unwrap_or(0);
        let (dir, acked) = (log_dir.to_owned(), previous.acked);
        // Segments of an eighth of the bound: acknowledged records leave the disk in steps
        // small enough for the bound to mean something.
        let segment_bytes = (spec.max_buffered_bytes / 8).clamp(64 * 1024, 32 * 1024 * 1024);
        let wal =
            tokio::task::spawn_blocking(move || Wal::open(&dir, acked, reserved, segment_bytes))
                .await
                .map_err(|e| Error::internal(format!("opening the write-ahead log: {e}")))?
                .map_err(|e| e.context(format!("source `{name}`")))?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::external(format!("source `{name}`: cannot listen on {addr}"), e))?;
        tracing::info!(source = %name, %addr, log = %wal.dir().display(), held_bytes = wal.held(), "Direct PUT endpoint listening");
        Ok(HttpStream {
            pipeline: pipeline.to_owned(),
            name: name.to_owned(),
            listener,
            token,
            max_body_bytes: spec.max_body_bytes,
            max_log_bytes: spec.max_buffered_bytes,
            wal: Arc::new(wal),
        })
    }
}

struct Shared {
    log: Appender,
    token: Option<String>,
    max_body_bytes: usize,
}

impl StreamSource for HttpStream {
    fn started(&self) -> Started {
        Started::same_sequence(self.wal.released())
    }

    fn run(self: Box<Self>, out: mpsc::Sender<Batch>, cancel: CancellationToken) -> Running {
        Box::pin(async move {
            let HttpStream {
                pipeline,
                name,
                listener,
                token,
                max_body_bytes,
                max_log_bytes,
                wal,
            } = *self;
            let (tx, rx) = mpsc::unbounded_channel();
            let queued = Arc::new(AtomicU64::new(0));
            let (synced, synced_rx) = watch::channel(());
            let mut committer = tokio::spawn(commit(wal.clone(), rx, queued.clone(), synced));
            // What a stopped process left in the log comes first, then each group once synced.
            let mut feeder = tokio::spawn(feed(wal.clone(), out, synced_rx, max_log_bytes));
            let shared = Arc::new(Shared {
                log: Appender {
                    tx,
                    queued,
                    wal,
                    max_log_bytes,
                },
                token,
                max_body_bytes,
            });
            let key = endpoint_key(&pipeline, &name);
            if let Ok(mut endpoints) = ENDPOINTS.lock() {
                endpoints.insert(key.clone(), Arc::downgrade(&shared));
            }
            let registered = Registered {
                key,
                shared: Arc::downgrade(&shared),
            };
            let mut connections = tokio::task::JoinSet::new();
            // Cancelled with the pipeline, or when the source stops early: connections then
            // finish the request in progress (answering it) and close.
            let stop_connections = cancel.child_token();
            // A writer or reader that ends before the pipeline stops has failed (or the sink
            // has stopped): the source stops too.
            let mut ended_early = None;
            loop {
                let accepted = tokio::select! {
                    _ = cancel.cancelled() => break,
                    done = &mut committer => {
                        ended_early = Some(("writer", done));
                        break;
                    }
                    done = &mut feeder => {
                        ended_early = Some(("reader", done));
                        break;
                    }
                    a = listener.accept() => a,
                };
                let (stream, _) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(source = %name, "accept failed: {e}");
                        continue;
                    }
                };
                // Reap finished connections so the set does not grow with every client.
                while connections.try_join_next().is_some() {}
                let shared = shared.clone();
                let stop = stop_connections.clone();
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
                        _ = stop.cancelled() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.as_mut().await;
                        }
                    }
                });
            }
            let joined =
                |what: &str, done: std::result::Result<Result<()>, tokio::task::JoinError>| {
                    done.map_err(|e| {
                        Error::internal(format!("the write-ahead log {what} failed: {e}"))
                    })?
                    .map_err(|e| e.context(format!("source `{name}`")))
                };
            if let Some((what, done)) = ended_early {
                // A request whose records the writer already synced still gets its 200 (the
                // records are in the log and the next run delivers them); one the writer can no
                // longer take gets its error. Only connections that do not finish in time are
                // cut off.
                stop_connections.cancel();
                drain(&mut connections).await;
                drop(registered);
                return joined(what, done);
            }
            // Requests in progress finish (their records reach the log, or they get an error);
            // then the writer ends, and the reader hands the sink what is left and ends,
            // closing the sink's input.
            drain(&mut connections).await;
            drop(registered);
            drop(shared);
            joined("writer", committer.await)?;
            joined("reader", feeder.await)
        })
    }
}

/// Waits for the connections, told to stop, to finish their request in progress, for at most
/// [`DRAIN_SECS`]; then cuts off those still open (a client that stalls mid-body must not keep
/// the pipeline from stopping).
async fn drain(connections: &mut tokio::task::JoinSet<()>) {
    let finished = tokio::time::timeout(Duration::from_secs(DRAIN_SECS), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!("requests still in progress after {DRAIN_SECS} s were cut off");
        connections.abort_all();
    }
}

/// Why a request's records were not taken.
enum Refusal {
    /// The log is full, or its writer is behind: retry later (429).
    Full(&'static str),
    /// The pipeline is stopping (503).
    Stopping,
    /// The log could not be written (500).
    Failed(String),
}

/// One request's records waiting for the log.
struct Append {
    records: Vec<Bytes>,
    arrival: DateTime<Utc>,
    bytes: u64,
    /// The first sequence number given to the records, once they are synced.
    reply: oneshot::Sender<std::result::Result<u64, Refusal>>,
}

/// Hands requests to the log's writer ([`commit`]).
struct Appender {
    tx: mpsc::UnboundedSender<Append>,
    /// Bytes of requests waiting for the writer.
    queued: Arc<AtomicU64>,
    wal: Arc<Wal>,
    max_log_bytes: u64,
}

impl Appender {
    /// Stores the records of one request; returns the first sequence number given to them.
    async fn append(
        &self,
        records: Vec<Bytes>,
        arrival: DateTime<Utc>,
    ) -> std::result::Result<u64, Refusal> {
        let bytes: u64 = records
            .iter()
            .map(|r| (r.len() + wal::HEADER_BYTES) as u64)
            .sum();
        let queued = self.queued.load(Ordering::Relaxed);
        let held = self.wal.held() + queued;
        // One request always fits into an empty log or queue, however big it is.
        if held > 0 && held + bytes > self.max_log_bytes {
            return Err(Refusal::Full(
                "the write-ahead log is full (max_buffered_bytes): records wait for their objects to be published",
            ));
        }
        if queued > 0 && queued + bytes > QUEUE_BYTES {
            return Err(Refusal::Full("the write-ahead log's disk is behind"));
        }
        self.queued.fetch_add(bytes, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        let append = Append {
            records,
            arrival,
            bytes,
            reply,
        };
        if self.tx.send(append).is_err() {
            self.queued.fetch_sub(bytes, Ordering::Relaxed);
            return Err(Refusal::Stopping);
        }
        answer.await.unwrap_or(Err(Refusal::Stopping))
    }
}

/// The log's writer: writes and syncs the requests waiting, all at once (group commit), then
/// answers them and tells the reader ([`feed`]). Ends when every [`Appender`] is gone. Fails
/// only when a failed write could not be undone.
async fn commit(
    wal: Arc<Wal>,
    mut rx: mpsc::UnboundedReceiver<Append>,
    queued: Arc<AtomicU64>,
    synced: watch::Sender<()>,
) -> Result<()> {
    while let Some(first) = rx.recv().await {
        let mut bytes = first.bytes;
        let mut group = vec![first];
        while bytes < GROUP_BYTES {
            match rx.try_recv() {
                Ok(a) => {
                    bytes += a.bytes;
                    group.push(a);
                }
                Err(_) => break,
            }
        }
        let log = wal.clone();
        let (group, written) = tokio::task::spawn_blocking(move || {
            let parts: Vec<(&[Bytes], DateTime<Utc>)> =
                group.iter().map(|a| (&a.records[..], a.arrival)).collect();
            let written = log.append(&parts);
            (group, written)
        })
        .await
        .map_err(|e| Error::internal(format!("the write-ahead log writer failed: {e}")))?;
        queued.fetch_sub(bytes, Ordering::Relaxed);
        match written {
            Ok(mut first) => {
                synced.send_replace(());
                for a in group {
                    // Synced: the answer is 200, whatever happens to the sink from here on.
                    let _ = a.reply.send(Ok(first));
                    first += a.records.len() as u64;
                }
            }
            Err(e) => {
                tracing::error!(log = %wal.dir().display(), "{e}");
                let message = e.to_string();
                for a in group {
                    let _ = a.reply.send(Err(Refusal::Failed(message.clone())));
                }
                if wal.broken() {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

/// The log's reader: hands the sink every record in the log, oldest first, then each group the
/// writer syncs, waiting while the sink's input is full (the records wait on disk meanwhile).
/// Ends once the writer has ended and everything is handed over, or when the sink has stopped
/// (what it did not take stays in the log for the next run).
async fn feed(
    wal: Arc<Wal>,
    out: mpsc::Sender<Batch>,
    mut synced: watch::Receiver<()>,
    max_log_bytes: u64,
) -> Result<()> {
    let mut reader = wal.reader();
    let mut writer_done = false;
    // The last record of the batch that last asked the sink to flush: no new ask until it is
    // acknowledged.
    let mut flush_asked: Option<u64> = None;
    loop {
        // Seen before reading: a group synced from here on wakes the wait below.
        synced.borrow_and_update();
        let log = wal.clone();
        let (records, back) = tokio::task::spawn_blocking(move || {
            let records = reader.next_batch(&log, READ_BYTES);
            (records, reader)
        })
        .await
        .map_err(|e| Error::internal(format!("reading the write-ahead log: {e}")))?;
        reader = back;
        let records = records?;
        let Some(through) = records.last().map(|r| r.seq) else {
            if writer_done {
                return Ok(());
            }
            if synced.changed().await.is_err() {
                // The writer has ended: one more read takes what it synced last.
                writer_done = true;
            }
            continue;
        };
        // A log half full holds records behind buffers waiting for their interval: flush them.
        let flush = wal.held() > max_log_bytes / 2
            && flush_asked.is_none_or(|asked| wal.released() >= asked);
        if flush {
            flush_asked = Some(through);
        }
        let batch = Batch {
            records,
            ack: Some(Box::new(LogAck {
                wal: wal.clone(),
                through,
            })),
            flush,
        };
        if out.send(batch).await.is_err() {
            return Ok(());
        }
    }
}

/// Releases the log's records up to `through` once their objects are published.
struct LogAck {
    wal: Arc<Wal>,
    through: u64,
}

impl Ack for LogAck {
    fn cumulative(&self) -> bool {
        true
    }

    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            let LogAck { wal, through } = *self;
            tokio::task::spawn_blocking(move || wal.release(through))
                .await
                .map_err(|e| Error::internal(format!("releasing write-ahead log records: {e}")))?
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
    let first = match shared.log.append(payloads, Utc::now()).await {
        Ok(first) => first,
        Err(Refusal::Full(why)) => {
            return failure(
                StatusCode::TOO_MANY_REQUESTS,
                "ServiceUnavailableException",
                &format!("{why}; retry after a second"),
            );
        }
        Err(Refusal::Stopping) => {
            return failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableException",
                "the pipeline is stopping",
            );
        }
        Err(Refusal::Failed(message)) => {
            return failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalFailure",
                &format!("the records were not stored: {message}"),
            );
        }
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
