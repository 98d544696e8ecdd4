//! The HTTP API, on hyper 1 with a hand-written router (a dozen routes do not need a framework):
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/health` | `{"status":"ok", "pipelines": n, "running": n}` |
//! | GET | `/api/pipelines` | every pipeline with next fire time and last status (and `replication_lag` per CDC source) |
//! | GET | `/api/streams` | streaming pipelines: running, run id, restarts, last error, next restart |
//! | POST | `/api/pipelines/{name}/trigger[?wait=true]` | start a run (queued behind a running one) |
//! | GET | `/api/runs[?pipeline=&limit=]` | run history, newest first |
//! | GET | `/api/runs/{id or prefix}` | one run with its steps |
//! | POST | `/api/run` | `{"file": "/abs/spec.yaml"}`: run a spec file now and wait (what `pipectl run` does while the daemon holds the state) |
//! | POST | `/api/command` | `{"args": ["state", "reset", ...]}`: a state or catalog command run against the daemon's store (what `pipectl state` and `pipectl catalog` do while the daemon holds it) |
//! | POST | `/streams/{pipeline}/{source}/records[/batch]`, `/streams/{pipeline}/{source}/` | a streaming pipeline's Direct PUT source, as on its own address |
//! | GET | `/metrics` | Prometheus text format |

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use pipectl_state::{StateError, StateStore};
use serde_json::json;

use crate::daemon::{LoadError, LoadErrors, Registry, StoreCommand};
use crate::metrics::Metrics;
use crate::policy::RunPolicy;
use crate::runner::LoadedPipeline;
use crate::scheduler::{PipelineDef, RunOutcome, Scheduler, Trigger, TriggerError};
use crate::streams::Streams;

/// What request handlers share.
pub(crate) struct ApiState {
    pub(crate) scheduler: Scheduler<LoadedPipeline>,
    pub(crate) state: Arc<dyn StateStore>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) files: Registry,
    /// Why pipeline files did not load.
    pub(crate) load_errors: LoadErrors,
    /// Pipelines not served from files, running for `pipectl run` through the API.
    pub(crate) adhoc: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Runs forwarded state commands; `None` answers 404.
    pub(crate) store_command: Option<StoreCommand>,
    /// The streaming pipelines running continuously.
    pub(crate) streams: Streams,
}

/// Accepts connections until the task is aborted.
pub(crate) async fn serve(listener: tokio::net::TcpListener, state: Arc<ApiState>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &str, body: String) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn json_reply(status: StatusCode, value: &impl serde::Serialize) -> Reply {
    let body = serde_json::to_string_pretty(value)
        .unwrap_or_else(|e| json!({ "error": e.to_string() }).to_string());
    reply(status, "application/json", body + "\n")
}

fn error(status: StatusCode, message: impl Into<String>) -> Reply {
    json_reply(status, &json!({ "error": message.into() }))
}

fn query(req: &Request<Incoming>) -> BTreeMap<String, String> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

async fn handle(api: &ApiState, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match (req.method().clone(), segments.as_slice()) {
        (Method::GET, ["health"]) => {
            let status = api.scheduler.status().await;
            let running = status.iter().filter(|p| p.running).count();
            json_reply(
                StatusCode::OK,
                &json!({ "status": "ok", "pipelines": status.len(), "running": running, "streams": api.streams.status().len() }),
            )
        }
        (Method::GET, ["metrics"]) => {
            let status = api.scheduler.status().await;
            let running = status.iter().filter(|p| p.running).count();
            reply(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                api.metrics.render(running, status.len()),
            )
        }
        (Method::GET, ["api", "pipelines"]) => json_reply(StatusCode::OK, &pipelines(api).await),
        (Method::GET, ["api", "streams"]) => json_reply(StatusCode::OK, &api.streams.status()),
        (Method::POST, ["api", "pipelines", name, "trigger"]) => {
            let wait = query(&req)
                .get("wait")
                .is_some_and(|v| v == "true" || v == "1");
            trigger(api, name, wait).await
        }
        (Method::GET, ["api", "runs"]) => {
            let q = query(&req);
            let limit = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(20);
            match api.state.runs(
                q.get("pipeline")
                    .map(String::as_str)
                    .filter(|p| !p.is_empty()),
                limit,
            ) {
                Ok(runs) => json_reply(StatusCode::OK, &runs),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            }
        }
        (Method::GET, ["api", "runs", id]) => match api.state.find_run(id) {
            Ok(Some(run)) => json_reply(StatusCode::OK, &run),
            Ok(None) => error(
                StatusCode::NOT_FOUND,
                format!("no run `{id}`; list runs with `pipectl runs`"),
            ),
            Err(e @ StateError::AmbiguousRunId { .. }) => {
                error(StatusCode::CONFLICT, e.to_string())
            }
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        (Method::POST, ["api", "run"]) => match body(req).await {
            Ok(body) => run_file(api, &body).await,
            Err(reply) => reply,
        },
        (Method::POST, ["api", "command"]) => match body(req).await {
            Ok(body) => store_command(api, &body).await,
            Err(reply) => reply,
        },
        (_, ["streams", pipeline, source, rest @ ..]) => {
            let below = format!("/{}", rest.join("/"));
            match pipectl_stream::source::http::dispatch(pipeline, source, &below, req).await {
                Some(reply) => reply,
                None => error(
                    StatusCode::NOT_FOUND,
                    format!(
                        "no Direct PUT source `{source}` of a streaming pipeline `{pipeline}` runs here; see GET /api/streams"
                    ),
                ),
            }
        }
        _ => error(
            StatusCode::NOT_FOUND,
            format!("no route {path}; see GET /api/pipelines, /api/runs, /metrics, /health"),
        ),
    }
}

/// The whole request body, or the 400 to answer when it cannot be read.
async fn body(req: Request<Incoming>) -> Result<Bytes, Reply> {
    match req.into_body().collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) => Err(error(
            StatusCode::BAD_REQUEST,
            format!("cannot read the request: {e}"),
        )),
    }
}

/// Runs a forwarded state command on a blocking thread (sled calls block) and returns its output.
async fn store_command(api: &ApiState, body: &[u8]) -> Reply {
    let Some(command) = api.store_command.clone() else {
        return error(
            StatusCode::NOT_FOUND,
            "this daemon does not take forwarded commands",
        );
    };
    #[derive(serde::Deserialize)]
    struct Body {
        args: Vec<String>,
    }
    let args = match serde_json::from_slice::<Body>(body) {
        Ok(b) => b.args,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"args\": [...]}}: {e}"),
            );
        }
    };
    let state = api.state.clone();
    match tokio::task::spawn_blocking(move || command(state.as_ref(), args)).await {
        Ok(Ok(output)) => json_reply(StatusCode::OK, &json!({ "output": output })),
        Ok(Err(message)) => error(StatusCode::BAD_REQUEST, message),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn trigger(api: &ApiState, name: &str, wait: bool) -> Reply {
    match api.scheduler.trigger(name, Trigger::Manual, wait).await {
        Ok((ack, None)) => json_reply(
            StatusCode::ACCEPTED,
            &json!({ "pipeline": name, "trigger": ack }),
        ),
        Ok((ack, Some(done))) => match done.await {
            Ok(outcome) => outcome_reply(api, &outcome),
            Err(_) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the run ({ack:?}) did not finish: the daemon is stopping"),
            ),
        },
        Err(e @ TriggerError::UnknownPipeline(_)) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e @ TriggerError::ShuttingDown) => {
            error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
    }
}

/// The run record of a finished run, or the outcome when no record was written.
fn outcome_reply(api: &ApiState, outcome: &RunOutcome) -> Reply {
    match outcome.run_id.as_deref().map(|id| api.state.run(id)) {
        Some(Ok(Some(run))) => json_reply(StatusCode::OK, &run),
        _ => json_reply(StatusCode::OK, outcome),
    }
}

/// Runs a spec file for `pipectl run`. A pipeline the daemon schedules is triggered through
/// the scheduler (so it never runs twice at once); any other runs right away.
async fn run_file(api: &ApiState, body: &[u8]) -> Reply {
    let Some(file) = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("file").and_then(|f| f.as_str()).map(PathBuf::from))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            r#"expected a JSON body {"file": "/absolute/path/to/pipeline.yaml"}"#,
        );
    };
    let bytes = match std::fs::read(&file) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the daemon cannot read {}: {e}", file.display()),
            );
        }
    };
    let spec = match pipectl_spec::load_bytes(&file.display().to_string(), &bytes) {
        Ok(s) => s,
        Err(diags) => {
            let text: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
            return error(StatusCode::BAD_REQUEST, text.join("\n\n"));
        }
    };
    let name = spec.pipeline.name.clone();
    if pipectl_stream::is_streaming(&spec.pipeline) {
        let how = if api.streams.contains(&name) {
            "this daemon keeps it running (see GET /api/streams)"
        } else {
            "put it in the folder `pipectl serve` loads, or stop the daemon and `pipectl run` it in the foreground"
        };
        return error(
            StatusCode::CONFLICT,
            format!(
                "pipeline `{name}` is a streaming pipeline: it runs until stopped, not as one run; {how}"
            ),
        );
    }
    let served_from = api.files.lock().ok().and_then(|f| f.get(&name).cloned());
    if let Some(served) = served_from {
        let canonical = file.canonicalize().unwrap_or(file.clone());
        if served != canonical {
            return error(
                StatusCode::CONFLICT,
                format!(
                    "pipeline `{name}` is run by the daemon from {}; run that file, rename the pipeline in {}, or stop the daemon",
                    served.display(),
                    file.display()
                ),
            );
        }
        return trigger(api, &name, true).await;
    }
    // Any other pipeline runs through the scheduler as a one-off, unscheduled pipeline, so the
    // global limit applies and SIGTERM stops it as cleanly as a scheduled run.
    let claimed = api
        .adhoc
        .lock()
        .map(|mut a| a.insert(name.clone()))
        .unwrap_or(false);
    if !claimed {
        return error(
            StatusCode::CONFLICT,
            format!(
                "a run of `{name}` started through the daemon is still going; wait for it to finish"
            ),
        );
    }
    let base_dir = file
        .parent()
        .map_or_else(|| PathBuf::from("."), |p| p.to_owned());
    let spec = Arc::new(LoadedPipeline { spec, base_dir });
    api.scheduler.upsert(PipelineDef {
        name: name.clone(),
        file: file.display().to_string(),
        policy: RunPolicy::from_spec(&spec.spec.pipeline),
        spec,
        schedule: None,
        last_fire: None,
    });
    let reply = trigger(api, &name, true).await;
    api.scheduler.remove(&name);
    if let Ok(mut a) = api.adhoc.lock() {
        a.remove(&name);
    }
    reply
}

/// `GET /api/pipelines`: every pipeline's status; one whose file no longer loads carries the
/// load error (its last good version keeps running), and a file that never loaded is listed
/// with `name: null` and its error.
async fn pipelines(api: &ApiState) -> Vec<serde_json::Value> {
    let mut errors: Vec<LoadError> = api
        .load_errors
        .lock()
        .map(|e| e.values().cloned().collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    for status in api.scheduler.status().await {
        let mut value = serde_json::to_value(&status).unwrap_or_default();
        let error = errors
            .iter()
            .position(|e| e.pipeline.as_deref() == Some(status.name.as_str()))
            .map(|i| errors.remove(i));
        if let Some(object) = value.as_object_mut() {
            object.insert("load_error".to_owned(), json!(error));
            let lag = api.metrics.replication_lag(&status.name);
            if !lag.is_empty() {
                object.insert("replication_lag".to_owned(), json!(lag));
            }
        }
        out.push(value);
    }
    for error in errors {
        out.push(json!({ "name": error.pipeline, "file": error.file, "load_error": error }));
    }
    out
}
