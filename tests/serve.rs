//! `pipectl serve` end to end: the real binary, per-second schedules, the lake and the history.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pipectl_serve::scheduler::Trigger;
use serde_json::Value;

use crate::common::{connections, files_under, lake_sink_from, output, pipectl};

/// A generator pipeline writing CSV files into `lake/events/<run id>/`.
fn pipeline(name: &str, schedule: &str, source: &str, extra: &str) -> String {
    format!(
        r#"version: 1
name: {name}
schedule:
  cron: "{schedule}"
  catch_up: none
{extra}
connections:
  lake:
    url: file://../lake
sources:
  events:
    type: generator
    seed: 7
{source}
    template: '{{"id": {{{{random.number({{"min":1,"max":1000}})}}}}}}'
sinks:
{sink}"#,
        sink = lake_sink_from(
            "out",
            "events",
            "events/{run_id}/",
            "    format: { type: csv, header: true }\n"
        )
    )
}

/// A running `pipectl serve`, killed (SIGKILL) if a test ends without stopping it.
pub(crate) struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    pub(crate) fn start(dir: &Path, extra: &[&str]) -> Daemon {
        Self::start_with_env(dir, extra, &[])
    }

    fn start_with_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let log = dir.join(format!("serve-{}.log", Instant::now().elapsed().as_nanos()));
        let child = pipectl(dir)
            .envs(env.iter().copied())
            .args([
                "serve",
                "pipelines",
                "--listen",
                "127.0.0.1:0",
                "--reload-secs",
                "0.2",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("pipectl serve starts");
        let daemon = Daemon { child, log };
        // Wait for this daemon's address file (a killed one leaves its own behind).
        let pid = u64::from(daemon.child.id());
        wait_for(Duration::from_secs(20), "the daemon's address file", || {
            let text = std::fs::read_to_string(address_file(dir)).ok()?;
            let info: Value = serde_json::from_str(&text).ok()?;
            (info["pid"].as_u64() == Some(pid)).then_some(())
        });
        daemon
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Sends SIGTERM and returns the exit status.
    pub(crate) fn terminate(mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not stop after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill9(mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn address_file(dir: &Path) -> PathBuf {
    dir.join(".pipectl-state.daemon")
}

pub(crate) fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `pipectl runs PIPELINE --format json`, which goes through the daemon while it runs.
pub(crate) fn runs(dir: &Path, pipeline: &str) -> Vec<Value> {
    let (out, stdout, stderr) =
        output(pipectl(dir).args(["runs", pipeline, "--limit", "100", "--format", "json"]));
    assert!(out.status.success(), "pipectl runs failed: {stderr}");
    serde_json::from_str(&stdout).unwrap()
}

fn api(dir: &Path, method: &str, path: &str) -> (u16, String) {
    let addr =
        pipectl_serve::client::daemon_address(&dir.join(".pipectl-state")).expect("daemon address");
    let resp = pipectl_serve::client::request(addr, method, path, None).expect("the API answers");
    (resp.status, resp.body)
}

fn with_status<'a>(runs: &'a [Value], status: &str) -> Vec<&'a Value> {
    runs.iter().filter(|r| r["status"] == status).collect()
}

#[test]
fn serve_runs_a_per_second_schedule_reloads_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("pipelines")).unwrap();
    let spec = dir.join("pipelines/ticks.yaml");
    std::fs::write(&spec, pipeline("ticks", "* * * * * *", "    count: 5", "")).unwrap();
    let daemon = Daemon::start(dir, &[]);

    // Two scheduled runs in the history (read through the daemon's API: the state is locked).
    let scheduled = wait_for(Duration::from_secs(20), "two scheduled runs", || {
        let runs = runs(dir, "ticks");
        let ok: Vec<Value> = with_status(&runs, "succeeded")
            .into_iter()
            .filter(|r| r["trigger"].as_str().unwrap().starts_with("schedule "))
            .cloned()
            .collect();
        (ok.len() >= 2).then_some(ok)
    });
    for run in &scheduled {
        let id = run["id"].as_str().unwrap();
        assert_eq!(run["steps"][1]["rows"], 5, "{run}");
        let folder = dir.join("lake/events").join(id);
        let files: Vec<_> = std::fs::read_dir(&folder)
            .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
            .flatten()
            .collect();
        assert_eq!(files.len(), 1);
        let csv = std::fs::read_to_string(files[0].path()).unwrap();
        assert_eq!(csv.lines().count(), 6, "header + 5 rows: {csv}");
        assert_eq!(csv.lines().next(), Some("id"));
    }

    // `pipectl run` works while the daemon holds the state: the daemon runs it.
    let (out, stdout, stderr) =
        output(pipectl(dir).args(["run", "pipelines/ticks.yaml", "--format", "json"]));
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("running through its API"), "{stderr}");
    let manual: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (manual["status"].as_str(), manual["trigger"].as_str()),
        (Some("succeeded"), Some("manual"))
    );

    // A pipeline the daemon does not serve runs as a one-off; a second file claiming a served
    // pipeline's name is refused with what to do.
    std::fs::write(
        dir.join("other.yaml"),
        pipeline("other", "0 0 0 1 1 *", "    count: 2", ""),
    )
    .unwrap();
    let (out, stdout, stderr) =
        output(pipectl(dir).args(["run", "other.yaml", "--format", "json"]));
    assert!(out.status.success(), "{stderr}");
    let other: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (other["pipeline"].as_str(), other["status"].as_str()),
        (Some("other"), Some("succeeded"))
    );
    std::fs::write(
        dir.join("clash.yaml"),
        pipeline("ticks", "0 0 0 1 1 *", "    count: 2", ""),
    )
    .unwrap();
    let (out, _, stderr) = output(pipectl(dir).args(["run", "clash.yaml"]));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("pipeline `ticks` is run by the daemon from"),
        "{stderr}"
    );

    // The API: pipelines with their next fire time, a manual trigger, metrics.
    let (status, body) = api(dir, "GET", "/api/pipelines");
    assert_eq!(status, 200);
    let pipelines: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(pipelines[0]["name"], "ticks");
    assert!(pipelines[0]["next_fire"].is_string(), "{body}");
    let (status, body) = api(dir, "POST", "/api/pipelines/ticks/trigger?wait=true");
    assert_eq!(status, 200, "{body}");
    let triggered: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(triggered["trigger"], "manual");
    assert_eq!(api(dir, "POST", "/api/pipelines/nope/trigger").0, 404);
    let (_, metrics) = api(dir, "GET", "/metrics");
    assert!(
        metrics.contains("pipectl_runs_ended_total{pipeline=\"ticks\",status=\"succeeded\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pipectl_trigger_lateness_seconds{quantile=\"0.99\"}"),
        "{metrics}"
    );

    // An invalid edit is reported; the last good version keeps running.
    std::fs::write(&spec, "version: 1\nname: ticks\nbogus: true\n").unwrap();
    wait_for(
        Duration::from_secs(10),
        "the invalid edit to be reported",
        || {
            daemon
                .log()
                .contains("is invalid; the last good version of `ticks` keeps running")
                .then_some(())
        },
    );
    // The API shows the load error beside the last good version's status.
    let (_, body) = api(dir, "GET", "/api/pipelines");
    let pipelines: Value = serde_json::from_str(&body).unwrap();
    let ticks = &pipelines[0];
    assert_eq!(ticks["name"], "ticks", "{body}");
    let load_error = &ticks["load_error"];
    assert_eq!(load_error["pipeline"], "ticks", "{body}");
    assert!(
        load_error["file"].as_str().unwrap().ends_with("ticks.yaml"),
        "{body}"
    );
    assert!(
        load_error["error"].as_str().unwrap().contains("bogus"),
        "{body}"
    );
    let before = with_status(&runs(dir, "ticks"), "succeeded").len();
    wait_for(
        Duration::from_secs(10),
        "a run after the invalid edit",
        || (with_status(&runs(dir, "ticks"), "succeeded").len() > before).then_some(()),
    );
    // A valid edit is loaded: a new pipeline name replaces the old one.
    std::fs::write(&spec, pipeline("ticks2", "* * * * * *", "    count: 3", "")).unwrap();
    wait_for(
        Duration::from_secs(10),
        "a run of the edited pipeline",
        || (!with_status(&runs(dir, "ticks2"), "succeeded").is_empty()).then_some(()),
    );
    let (_, body) = api(dir, "GET", "/api/pipelines");
    let pipelines: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(pipelines[0]["name"], "ticks2", "{body}");
    assert!(pipelines[0]["load_error"].is_null(), "{body}");
    assert_eq!(pipelines.as_array().unwrap().len(), 1, "{body}");

    let status = daemon.terminate();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        !address_file(dir).exists(),
        "the address file is removed on exit"
    );
    // The state is free again: `runs` opens it directly.
    let (out, stdout, stderr) = output(pipectl(dir).args(["runs", "--format", "json"]));
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("daemon"), "{stderr}");
    let all: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    // A per-second fire that came while a run still went is recorded as skipped (overlap: skip).
    assert!(
        all.iter()
            .all(|r| r["status"] == "succeeded" || r["status"] == "skipped"),
        "{stdout}"
    );
}

#[test]
fn after_kill_9_the_next_start_marks_the_run_interrupted_and_sigterm_cancels_after_the_grace_period()
 {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("pipelines")).unwrap();
    // A slow run: 20 rows a second for a minute.
    std::fs::write(
        dir.join("pipelines/slow.yaml"),
        pipeline(
            "slow",
            "* * * * * *",
            "    count: 1200\n    rate_per_sec: 20\n    batch_rows: 10",
            "",
        ),
    )
    .unwrap();
    let daemon = Daemon::start(dir, &[]);
    let running = wait_for(Duration::from_secs(20), "a running run", || {
        with_status(&runs(dir, "slow"), "running")
            .first()
            .map(|r| r["id"].as_str().unwrap().to_owned())
    });
    std::thread::sleep(Duration::from_millis(300));
    daemon.kill9();

    let daemon = Daemon::start(dir, &["--grace-secs", "1"]);
    let recovered = runs(dir, "slow")
        .into_iter()
        .find(|r| r["id"] == running.as_str())
        .expect("the killed run is in the history");
    assert_eq!(recovered["status"], "interrupted", "{recovered}");
    assert!(
        !dir.join("lake/_pipectl/staging").join(&running).exists(),
        "its staging folder is gone"
    );
    assert!(
        !dir.join("lake/events").join(&running).exists(),
        "nothing of it was published"
    );

    // A new run starts on schedule; SIGTERM gives it 1 s, then cancels it cleanly.
    let second = wait_for(Duration::from_secs(20), "a new running run", || {
        with_status(&runs(dir, "slow"), "running")
            .first()
            .map(|r| r["id"].as_str().unwrap().to_owned())
    });
    let status = daemon.terminate();
    assert!(status.success(), "exit status {status:?}");
    let (out, stdout, _) = output(pipectl(dir).args(["runs", "show", &second, "--format", "json"]));
    assert!(out.status.success());
    let run: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(run["status"], "cancelled", "{run}");
    assert_eq!(
        run["error"],
        "pipectl serve is stopping and the grace period ended"
    );
    assert!(!dir.join("lake/events").join(&second).exists());
}

#[test]
fn a_step_over_its_timeout_fails_the_run_and_is_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("pipelines")).unwrap();
    let run_settings = "run:\n  step_timeout_secs: 0.5\n  retry: { max_attempts: 2, initial_backoff_secs: 0.2, max_backoff_secs: 0.2 }\n";
    // Once a day: only the first fire can happen during the test; triggered by hand.
    std::fs::write(
        dir.join("pipelines/slow.yaml"),
        pipeline(
            "slow",
            "0 0 0 1 1 *",
            "    count: 1000\n    rate_per_sec: 20\n    batch_rows: 10",
            run_settings,
        ),
    )
    .unwrap();
    let daemon = Daemon::start(dir, &["--grace-secs", "1"]);
    let (status, body) = api(dir, "POST", "/api/pipelines/slow/trigger?wait=true");
    assert_eq!(status, 200, "{body}");
    let last: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(last["status"], "failed", "{body}");
    assert_eq!(
        last["error"],
        "step `events` timed out after 0.5s (run.step_timeout_secs)"
    );
    assert_eq!(last["trigger"], "manual (attempt 2 of 2)");
    let history = runs(dir, "slow");
    assert_eq!(with_status(&history, "failed").len(), 2, "{history:?}");
    assert!(daemon.terminate().success());
}

#[test]
fn new_files_under_a_prefix_trigger_runs_and_history_is_pruned() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("pipelines")).unwrap();
    std::fs::create_dir_all(dir.join("lake/incoming")).unwrap();
    std::fs::write(dir.join("lake/incoming/old.csv"), "id\n1\n").unwrap();
    let settings = "run:\n  keep_runs: 2\n  on_new_files: { connection: lake, prefix: incoming/, poll_secs: 0.1 }\n";
    // A schedule that does not fire during the test: only file triggers start runs.
    let spec = pipeline("landing", "0 0 0 1 1 *", "    count: 2", settings);
    std::fs::write(dir.join("pipelines/landing.yaml"), spec).unwrap();
    let daemon = Daemon::start(dir, &[]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        runs(dir, "landing").is_empty(),
        "files present at start-up are the baseline"
    );

    std::fs::write(dir.join("lake/incoming/new.csv"), "id\n2\n").unwrap();
    let run = wait_for(
        Duration::from_secs(10),
        "a run triggered by the new file",
        || {
            runs(dir, "landing")
                .into_iter()
                .find(|r| r["status"] == "succeeded")
        },
    );
    assert_eq!(run["trigger"], "files incoming/new.csv");

    // keep_runs: 2 prunes older runs as new ones end.
    for _ in 0..3 {
        let (status, body) = api(dir, "POST", "/api/pipelines/landing/trigger?wait=true");
        assert_eq!(status, 200, "{body}");
    }
    let history = runs(dir, "landing");
    assert_eq!(history.len(), 2, "{history:?}");
    assert!(
        history.iter().all(|r| r["trigger"] == "manual"),
        "{history:?}"
    );
    assert!(daemon.terminate().success());
}

#[test]
fn a_restarted_daemon_catches_up_on_the_latest_missed_fire_time() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("pipelines")).unwrap();
    let spec = pipeline("ticks", "* * * * * *", "    count: 1", "")
        .replace("catch_up: none", "catch_up: latest");
    std::fs::write(dir.join("pipelines/ticks.yaml"), spec).unwrap();
    let daemon = Daemon::start(dir, &[]);
    wait_for(Duration::from_secs(20), "a scheduled run", || {
        (!with_status(&runs(dir, "ticks"), "succeeded").is_empty()).then_some(())
    });
    // `runs show` goes through the daemon too.
    let id = runs(dir, "ticks")[0]["id"].as_str().unwrap().to_owned();
    let (out, stdout, stderr) = output(pipectl(dir).args(["runs", "show", &id[..18]]));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains(&id), "{stdout}");
    // So do `state` commands: set a bookmark, read it back, and `plan` shows the bound value.
    let stream = "events.main.clicks";
    let (out, _, stderr) = output(pipectl(dir).args([
        "state", "set", "ticks", stream, "--key", "id", "--value", "41",
    ]));
    assert!(
        out.status.success(),
        "state set through the daemon: {stderr}"
    );
    let (out, stdout, stderr) = output(pipectl(dir).args(["state", "ticks", "--format", "json"]));
    assert!(out.status.success(), "{stderr}");
    let bookmarks: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(bookmarks.len(), 1, "{stdout}");
    assert_eq!(bookmarks[0]["stream"], stream);
    assert_eq!(bookmarks[0]["keys"], serde_json::json!(["id"]));
    assert_eq!(bookmarks[0]["values"], serde_json::json!(["41"]));
    let (out, stdout, stderr) = output(pipectl(dir).args(["state", "show", "ticks", stream]));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("id=41"), "{stdout}");
    // An error the command reports comes back as the daemon's answer, not a lock error.
    let (out, _, stderr) = output(pipectl(dir).args(["state", "reset", "ticks", "no.such.stream"]));
    assert!(!out.status.success());
    assert!(stderr.contains("no.such.stream"), "{stderr}");
    assert!(!stderr.contains("lock"), "{stderr}");
    let (out, _, stderr) = output(pipectl(dir).args(["state", "reset", "ticks", stream]));
    assert!(out.status.success(), "{stderr}");
    let (_, stdout, _) = output(pipectl(dir).args(["state", "ticks", "--format", "json"]));
    assert_eq!(stdout.trim(), "[]");
    assert!(daemon.terminate().success());

    // Down for a few fire times: the next start runs the latest missed one, once. Two
    // per-second fire times after the newest one in the history must have passed.
    let last_fire = runs(dir, "ticks")
        .iter()
        .filter_map(|r| Trigger::fire_time_of(r["trigger"].as_str()?))
        .max()
        .expect("a scheduled run's fire time in the history");
    wait_for(Duration::from_secs(20), "two missed fire times", || {
        (chrono::Utc::now() >= last_fire + chrono::Duration::seconds(2)).then_some(())
    });
    let daemon = Daemon::start(dir, &[]);
    let caught_up = wait_for(Duration::from_secs(20), "a catch-up run", || {
        let runs = runs(dir, "ticks");
        let catch_up: Vec<Value> = runs
            .into_iter()
            .filter(|r| r["trigger"].as_str().unwrap().starts_with("catch-up "))
            .collect();
        let ended = catch_up
            .iter()
            .all(|r| r["status"] != "running" && r["status"] != "committing");
        (!catch_up.is_empty() && ended).then_some(catch_up)
    });
    assert_eq!(caught_up.len(), 1, "{caught_up:?}");
    assert_eq!(caught_up[0]["status"], "succeeded");
    assert!(daemon.terminate().success());
}

/// A SQLite pipeline reading `db` (relative to the lake folder), retrying once.
fn sqlite_pipeline(name: &str, db: &str) -> String {
    format!(
        r#"version: 1
name: {name}
run:
  retry: {{ max_attempts: 2, initial_backoff_secs: 0.1, max_backoff_secs: 0.1 }}
{connections}sources:
  shop:
    type: sqlite
    connection: shop
sinks:
{sink}"#,
        connections = connections(&[
            ("shop", &format!("sqlite://../{db}")),
            ("lake", "file://../lake")
        ]),
        sink = lake_sink_from(
            "out",
            "shop",
            &format!("{name}/{{table}}/"),
            "    format: { type: csv }\n"
        )
    )
}

#[test]
fn external_errors_are_retried_as_new_runs_and_user_errors_are_not() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("pipelines")).unwrap();
    // A file that is not a database: reading it fails in the driver (an external error).
    std::fs::write(
        dir.join("garbage.db"),
        "this is not a SQLite database, just text ".repeat(200),
    )
    .unwrap();
    std::fs::write(
        dir.join("pipelines/garbage.yaml"),
        sqlite_pipeline("garbage", "garbage.db"),
    )
    .unwrap();
    // A path that does not exist: the spec is wrong (a user error), retrying cannot help.
    std::fs::write(
        dir.join("pipelines/missing.yaml"),
        sqlite_pipeline("missing", "missing.db"),
    )
    .unwrap();
    let daemon = Daemon::start(dir, &[]);

    let (status, body) = api(dir, "POST", "/api/pipelines/garbage/trigger?wait=true");
    assert_eq!(status, 200, "{body}");
    let last: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (last["status"].as_str(), last["trigger"].as_str()),
        (Some("failed"), Some("manual (attempt 2 of 2)")),
        "{body}"
    );
    assert_eq!(with_status(&runs(dir, "garbage"), "failed").len(), 2);

    let (status, body) = api(dir, "POST", "/api/pipelines/missing/trigger?wait=true");
    assert_eq!(status, 200, "{body}");
    let last: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (last["status"].as_str(), last["trigger"].as_str()),
        (Some("failed"), Some("manual")),
        "{body}"
    );
    assert!(
        last["error"].as_str().unwrap().contains("does not exist"),
        "{body}"
    );
    assert_eq!(runs(dir, "missing").len(), 1);
    assert!(daemon.terminate().success());
}

/// Lines in the `.jsonl` objects under `dir`, skipping pipectl's own folder.
fn jsonl_lines_under(dir: &Path) -> usize {
    crate::common::files_under(dir)
        .iter()
        .filter(|f| !f.starts_with("_pipectl") && f.ends_with(".jsonl"))
        .map(|f| {
            std::fs::read_to_string(dir.join(f))
                .unwrap()
                .lines()
                .count()
        })
        .sum()
}

#[test]
fn streaming_pipelines_run_continuously_restart_after_failures_and_flush_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("pipelines")).unwrap();
    // A generator without a count streams until stopped; the sink publishes every second.
    std::fs::write(
        dir.join("pipelines/clicks.yaml"),
        r#"version: 1
name: clicks
connections:
  lake: {url: "file://../lake"}
sources:
  events:
    type: generator
    template: '{"n": {{random.number(100)}}}'
    rate_per_sec: 200
sinks:
  out:
    type: firehose
    inputs: [events]
    connection: lake
    prefix: "clicks/"
    error_output_prefix: "errors/"
    interval_secs: 1
    format: {type: jsonl}
"#,
    )
    .unwrap();
    // A source that cannot connect fails every run: restarted with growing waits.
    std::fs::write(
        dir.join("pipelines/broken.yaml"),
        r#"version: 1
name: broken
connections:
  nats: {url: "nats://127.0.0.1:1"}
  lake: {url: "file://../lake"}
sources:
  events: {type: nats, connection: nats, stream: NOPE, subject: "nope.>", durable: d}
sinks:
  out: {type: firehose, inputs: [events], connection: lake, prefix: "broken/", interval_secs: 1, format: {type: jsonl}}
"#,
    )
    .unwrap();
    // A Direct PUT source is answered on the daemon's API too (its own port is ephemeral here).
    std::fs::write(
        dir.join("pipelines/puts.yaml"),
        r#"version: 1
name: puts
connections:
  lake: {url: "file://../lake"}
sources:
  put: {type: http, listen: "127.0.0.1:0", token: "${env:PIPECTL_TEST_PUT_TOKEN}"}
sinks:
  out: {type: firehose, inputs: [put], connection: lake, prefix: "puts/", interval_secs: 60, format: {type: jsonl}}
"#,
    )
    .unwrap();
    let daemon = Daemon::start_with_env(dir, &[], &[("PIPECTL_TEST_PUT_TOKEN", "s3cret")]);
    let lake = dir.join("lake");
    let addr = pipectl_serve::client::daemon_address(&dir.join(".pipectl-state")).unwrap();
    let batch = (0..25)
        .map(|n| format!("{{\"n\":{n}}}"))
        .collect::<Vec<_>>()
        .join("\n");
    // Without the bearer token: 401 (once the source is registered: 404 before). With it
    // (raw HTTP, as any client): 200.
    let unauthorized = wait_for(Duration::from_secs(20), "the Direct PUT source", || {
        pipectl_serve::client::request(
            addr,
            "POST",
            "/streams/puts/put/records/batch",
            Some(&batch),
        )
        .ok()
        .filter(|answer| answer.status != 404)
    });
    assert_eq!(unauthorized.status, 401, "{}", unauthorized.body);
    let accepted = wait_for(Duration::from_secs(20), "the Direct PUT source", || {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(addr).ok()?;
        write!(
            conn,
            "POST /streams/puts/put/records/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{batch}",
            batch.len()
        )
        .ok()?;
        let mut answer = String::new();
        conn.read_to_string(&mut answer).ok()?;
        answer.starts_with("HTTP/1.1 200").then_some(answer)
    });
    assert!(accepted.contains("200"), "{accepted}");
    let (code, body) = api(dir, "POST", "/streams/puts/nope/records");
    assert_eq!(code, 404, "{body}");
    wait_for(Duration::from_secs(20), "streamed objects", || {
        (jsonl_lines_under(&lake.join("clicks")) > 0).then_some(())
    });
    let (code, body) = api(dir, "GET", "/api/streams");
    assert_eq!(code, 200, "{body}");
    let streams: Vec<Value> = serde_json::from_str(&body).unwrap();
    let clicks = streams.iter().find(|s| s["pipeline"] == "clicks").unwrap();
    assert_eq!(clicks["running"], true, "{body}");
    let running = runs(dir, "clicks");
    assert_eq!(running.len(), 1, "{running:?}");
    assert_eq!(running[0]["status"], "running");
    assert_eq!(running[0]["trigger"], "stream");

    // The broken one is retried, each attempt a failed run in the history.
    let failed = wait_for(Duration::from_secs(20), "two failed attempts", || {
        let failed = with_status(&runs(dir, "broken"), "failed").len();
        (failed >= 2).then_some(failed)
    });
    assert!(failed >= 2);
    let (_, body) = api(dir, "GET", "/api/streams");
    let streams: Vec<Value> = serde_json::from_str(&body).unwrap();
    let broken = streams.iter().find(|s| s["pipeline"] == "broken").unwrap();
    assert!(broken["restarts"].as_u64().unwrap() >= 1, "{body}");
    assert!(
        broken["last_error"].as_str().unwrap().contains("nats"),
        "{body}"
    );
    assert!(daemon.log().contains("restarting in"), "{}", daemon.log());

    // `pipectl run` of a streaming pipeline while the daemon holds the state is forwarded to
    // it and turned away with a clear error (no batch run that fails in its sink).
    let (out, stdout, stderr) = output(pipectl(dir).args(["run", "pipelines/clicks.yaml"]));
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stderr.contains("is a streaming pipeline")
            && stderr.contains("this daemon keeps it running"),
        "{stderr}"
    );

    // SIGTERM flushes: every record the run counted is in the lake, and the run succeeded.
    assert!(daemon.terminate().success());
    let (out, stdout, stderr) = output(pipectl(dir).args(["runs", "clicks", "--format", "json"]));
    assert!(out.status.success(), "{stderr}");
    let history: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(history[0]["status"], "succeeded", "{stdout}");
    let sink = crate::common::step_where(&history[0], "name", "out");
    let delivered = sink["rows"].as_u64().unwrap();
    assert!(delivered > 0);
    assert_eq!(jsonl_lines_under(&lake.join("clicks")) as u64, delivered);
    // The records put through the daemon were flushed on SIGTERM, once each.
    assert_eq!(jsonl_lines_under(&lake.join("puts")), 25);
}

#[test]
fn triggers_beyond_the_queue_limit_are_dropped_and_recorded_as_skipped_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("pipelines")).unwrap();
    // Once a year: only manual triggers run; each run takes about 3 s.
    std::fs::write(
        dir.join("pipelines/slow.yaml"),
        pipeline(
            "slow",
            "0 0 0 1 1 *",
            "    count: 60\n    rate_per_sec: 20\n    batch_rows: 10",
            "  overlap: queue\n  queue_limit: 1",
        ),
    )
    .unwrap();
    let daemon = Daemon::start(dir, &["--grace-secs", "1"]);
    let acks: Vec<Value> = (0..3)
        .map(|_| {
            let (status, body) = api(dir, "POST", "/api/pipelines/slow/trigger");
            assert_eq!(status, 202, "{body}");
            serde_json::from_str::<Value>(&body).unwrap()["trigger"].clone()
        })
        .collect();
    assert_eq!(acks, ["started", "queued", "skipped"]);
    let (_, body) = api(dir, "GET", "/api/pipelines");
    let pipelines: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(pipelines[0]["queue_limit"], 1, "{body}");
    assert_eq!(pipelines[0]["skipped"], 1, "{body}");
    assert_eq!(
        pipelines[0]["last_skipped"]["reason"],
        "the queue of runs waiting behind the running one is full (queue_limit: 1)",
        "{body}"
    );
    let history = wait_for(Duration::from_secs(30), "the queued run to finish", || {
        let history = runs(dir, "slow");
        (with_status(&history, "succeeded").len() == 2).then_some(history)
    });
    let skipped = with_status(&history, "skipped");
    assert_eq!(skipped.len(), 1, "{history:?}");
    assert_eq!(skipped[0]["trigger"], "manual");
    assert_eq!(
        skipped[0]["error"],
        "dropped: the queue of runs waiting behind the running one is full (queue_limit: 1)"
    );
    let (out, stdout, stderr) = output(pipectl(dir).args(["runs", "slow"]));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("skipped"), "{stdout}");
    assert!(daemon.terminate().success());
}

/// Under `serve` a Direct PUT 200 means stored too: records answered 200 through the daemon's
/// API survive a kill -9 of the daemon in its write-ahead log (in the daemon's state
/// directory) and land once after the restart.
#[test]
fn direct_put_records_answered_200_survive_a_kill_9_of_the_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("pipelines")).unwrap();
    // A long interval: nothing is flushed before the kill.
    std::fs::write(
        dir.join("pipelines/puts.yaml"),
        r#"version: 1
name: puts
connections:
  lake: {url: "file://../lake"}
sources:
  put: {type: http, listen: "127.0.0.1:0"}
sinks:
  out: {type: firehose, inputs: [put], connection: lake, prefix: "puts/", interval_secs: 600, format: {type: jsonl}}
"#,
    )
    .unwrap();
    let lake = dir.join("lake");
    let put = |first: u32| {
        let batch = (first..first + 25)
            .map(|n| format!("{{\"n\":{n}}}"))
            .collect::<Vec<_>>()
            .join("\n");
        let addr = pipectl_serve::client::daemon_address(&dir.join(".pipectl-state")).unwrap();
        wait_for(Duration::from_secs(20), "the Direct PUT source", || {
            let answer = pipectl_serve::client::request(
                addr,
                "POST",
                "/streams/puts/put/records/batch",
                Some(&batch),
            )
            .ok()?;
            (answer.status == 200).then_some(())
        });
    };
    let daemon = Daemon::start(dir, &[]);
    put(0);
    put(25);
    daemon.kill9();
    assert_eq!(
        jsonl_lines_under(&lake.join("puts")),
        0,
        "nothing flushed yet"
    );
    let log = dir.join(".pipectl-state/wal/puts/put");
    assert!(log.is_dir(), "the log is in the daemon's state directory");

    let daemon = Daemon::start(dir, &[]);
    put(50);
    // SIGTERM flushes what the restarted source delivered from its log and what came since.
    assert!(daemon.terminate().success());
    let mut seen: Vec<u64> = Vec::new();
    for file in files_under(&lake.join("puts")) {
        for line in std::fs::read_to_string(lake.join("puts").join(file))
            .unwrap()
            .lines()
        {
            let value: Value = serde_json::from_str(line).unwrap();
            seen.push(value["n"].as_u64().unwrap());
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..75).collect::<Vec<u64>>());
}
