//! `pipectl serve`, and how `runs` and `run` reach the daemon while it holds the state store.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use pipectl_serve::client;
use pipectl_serve::daemon::{self, ServeOptions};
use pipectl_state::{RunRecord, StateError, StateStore};

use crate::{OutputFormat, UsageError, print_out, render};

/// `pipectl serve` settings from the command line.
pub(crate) struct ServeArgs {
    pub(crate) dir: Option<PathBuf>,
    pub(crate) listen: SocketAddr,
    pub(crate) max_concurrent_runs: usize,
    pub(crate) grace_secs: u64,
    pub(crate) reload_secs: f64,
}

pub(crate) fn serve(args: ServeArgs, state_dir: &Path) -> Result<ExitCode> {
    let dir = args.dir.unwrap_or_else(|| PathBuf::from("pipelines"));
    if !dir.is_dir() {
        return Err(UsageError(format!(
            "{} is not a folder of pipeline files; give one: `pipectl serve DIR`",
            dir.display()
        ))
        .into());
    }
    let store = match crate::open_state(state_dir) {
        Ok(s) => s,
        Err(e) => {
            if let Some(addr) = locked_daemon(state_dir, &e) {
                return Err(UsageError(format!(
                    "a pipectl daemon already serves the state directory {} (API on http://{addr}); stop it first, or give this one another --state-dir",
                    state_dir.display()
                ))
                .into());
            }
            return Err(e);
        }
    };
    let state: Arc<dyn StateStore> = Arc::new(store);
    let options = ServeOptions {
        dir,
        state_dir: state_dir.to_owned(),
        listen: args.listen,
        max_concurrent_runs: args.max_concurrent_runs,
        grace: Duration::from_secs(args.grace_secs),
        reload_interval: Duration::from_secs_f64(args.reload_secs.max(0.1)),
        store_command: Some(Arc::new(crate::forwarded_command)),
    };
    let env: pipectl_serve::runner::EnvLookup = Arc::new(|name| std::env::var(name).ok());
    crate::runtime()?
        .block_on(daemon::serve(options, state, env, stop_signal()))
        .map_err(|e| anyhow!(e))?;
    Ok(ExitCode::SUCCESS)
}

/// The signal that asked pipectl to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopSignal {
    /// Ctrl-C (SIGINT).
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl StopSignal {
    /// How the stop is announced: `interrupted`, `terminated`.
    pub(crate) fn noun(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "interrupted",
            StopSignal::Terminate => "terminated (SIGTERM)",
        }
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub(crate) async fn stop_signal() {
    stop_signal_kind().await;
}

/// Completes on SIGTERM or Ctrl-C, saying which came.
pub(crate) async fn stop_signal_kind() -> StopSignal {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => StopSignal::Terminate,
                    _ = tokio::signal::ctrl_c() => StopSignal::Interrupt,
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                StopSignal::Interrupt
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        StopSignal::Interrupt
    }
}

/// The daemon's address when `err` is a locked state directory and a daemon announced itself.
pub(crate) fn locked_daemon(state_dir: &Path, err: &anyhow::Error) -> Option<SocketAddr> {
    let locked = matches!(
        err.downcast_ref::<StateError>(),
        Some(StateError::Locked { .. })
    );
    locked.then(|| client::daemon_address(state_dir)).flatten()
}

fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<client::Response> {
    client::request(addr, method, path, body).with_context(|| {
        format!("the state directory is held by a pipectl daemon, but its API at http://{addr} does not answer; check that `pipectl serve` is running (its address file may be stale)")
    })
}

fn api_error(resp: &client::Response) -> String {
    serde_json::from_str::<serde_json::Value>(&resp.body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| format!("the daemon answered {}: {}", resp.status, resp.body.trim()))
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs a state command (`args` as typed, without the program name) on the daemon's store and
/// returns what it printed.
pub(crate) fn forward(addr: SocketAddr, args: Vec<String>) -> Result<String> {
    let body = serde_json::json!({ "args": args }).to_string();
    let resp = call(addr, "POST", "/api/command", Some(&body))?;
    if resp.status != 200 {
        return Err(anyhow!(api_error(&resp)));
    }
    let value: serde_json::Value =
        serde_json::from_str(&resp.body).context("reading the daemon's answer")?;
    Ok(value
        .get("output")
        .and_then(|o| o.as_str())
        .unwrap_or_default()
        .to_owned())
}

/// One pipeline's bookmarks, from the daemon's store.
pub(crate) fn bookmarks(addr: SocketAddr, pipeline: &str) -> Result<Vec<pipectl_state::Bookmark>> {
    let args = ["state", pipeline, "--format", "json"].map(str::to_owned);
    let text = forward(addr, args.to_vec())?;
    serde_json::from_str(&text).context("reading the daemon's bookmarks")
}

/// `pipectl runs` through the daemon's API.
pub(crate) fn runs_list(
    addr: SocketAddr,
    pipeline: Option<&str>,
    limit: usize,
    format: OutputFormat,
) -> Result<ExitCode> {
    let mut path = format!("/api/runs?limit={limit}");
    if let Some(p) = pipeline {
        path.push_str(&format!("&pipeline={}", encode(p)));
    }
    let resp = call(addr, "GET", &path, None)?;
    if resp.status != 200 {
        return Err(anyhow!(api_error(&resp)));
    }
    let runs: Vec<RunRecord> =
        serde_json::from_str(&resp.body).context("reading the daemon's answer")?;
    print_out(&match format {
        OutputFormat::Json => serde_json::to_string_pretty(&runs)? + "\n",
        OutputFormat::Text => render::run_list(&runs),
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `pipectl runs show` through the daemon's API.
pub(crate) fn runs_show(addr: SocketAddr, id: &str, format: OutputFormat) -> Result<ExitCode> {
    let resp = call(addr, "GET", &format!("/api/runs/{}", encode(id)), None)?;
    match resp.status {
        200 => {}
        404 | 409 => return Err(UsageError(api_error(&resp)).into()),
        _ => return Err(anyhow!(api_error(&resp))),
    }
    let run: RunRecord = serde_json::from_str(&resp.body).context("reading the daemon's answer")?;
    print_out(&match format {
        OutputFormat::Json => serde_json::to_string_pretty(&run)? + "\n",
        OutputFormat::Text => render::run_details(&run),
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `pipectl run` through the daemon: it runs the file and answers when the run ends.
pub(crate) fn run(
    addr: SocketAddr,
    file: &Path,
    spec: &pipectl_spec::LoadedSpec,
    format: OutputFormat,
    quiet: bool,
) -> Result<ExitCode> {
    let file = file
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", file.display()))?;
    if !quiet {
        eprintln!(
            "the state directory is held by a pipectl daemon; running through its API at http://{addr}"
        );
    }
    let body = serde_json::json!({ "file": file }).to_string();
    let resp = call(addr, "POST", "/api/run", Some(&body))?;
    if resp.status != 200 {
        let usage = matches!(resp.status, 400 | 404 | 409);
        let message = api_error(&resp);
        return Err(if usage {
            UsageError(message).into()
        } else {
            anyhow!(message)
        });
    }
    let record: RunRecord = match serde_json::from_str(&resp.body) {
        Ok(r) => r,
        Err(_) => return Err(anyhow!("the run did not start: {}", resp.body.trim())),
    };
    crate::report_run(&record, spec, format, quiet, None)
}
