//! `pipectl run` and `pipectl runs`: atomic publishing, crash recovery, history, locking, secrets.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{copy_quickstart, files_under, output, pipectl};

/// A pipeline that generates `count` records at `rate` per second into JSON lines under
/// `lake/events/`, 2,000 records a file, so finished files appear in staging while it runs.
fn generator_spec(dir: &Path, count: u64, rate: Option<u64>) -> std::path::PathBuf {
    let rate = rate
        .map(|r| format!("    rate_per_sec: {r}\n"))
        .unwrap_or_default();
    let spec = format!(
        r#"version: 1
name: gen
connections:
  lake:
    url: file://lake
sources:
  events:
    type: generator
    count: {count}
{rate}    seed: 7
    template: '{{"n": {{{{random.number(1000)}}}}, "state": "{{{{address.state}}}}"}}'
sinks:
  out:
    type: object_store
    inputs: [events]
    connection: lake
    key: events/
    max_file_rows: 2000
    format: {{ type: jsonl }}
"#
    );
    let path = dir.join("gen.yaml");
    std::fs::write(&path, spec).unwrap();
    path
}

fn published(dir: &Path) -> Vec<String> {
    files_under(&dir.join("lake"))
        .into_iter()
        .filter(|f| !f.starts_with("_pipectl"))
        .collect()
}

fn runs_json(dir: &Path) -> serde_json::Value {
    let (out, stdout, stderr) = output(pipectl(dir).args(["runs", "--format", "json"]));
    assert!(out.status.success(), "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn a_failing_step_publishes_nothing_and_records_why() {
    let dir = tempfile::tempdir().unwrap();
    let spec = copy_quickstart(dir.path());
    // Casting film titles to integers fails on the first row of `film`, after other tables
    // (actor, category, customer) were already written to staging.
    let text = std::fs::read_to_string(&spec).unwrap().replace(
        "transforms:\n",
        "transforms:\n  broken:\n    type: cast\n    inputs: [sakila]\n    tables: [film]\n    columns: { title: int64 }\n",
    );
    let text = text.replace(
        "    inputs: [sakila]\n    connection: lake\n    key: clean/",
        "    inputs: [broken]\n    connection: lake\n    key: clean/",
    );
    std::fs::write(&spec, text).unwrap();

    let (out, stdout, stderr) = output(pipectl(dir.path()).arg("run").arg(&spec));
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        published(dir.path()).is_empty(),
        "a failed run published {:?}",
        published(dir.path())
    );
    assert!(
        files_under(&dir.path().join("lake")).is_empty(),
        "staging not cleaned: {:?}",
        files_under(&dir.path().join("lake"))
    );
    assert!(stdout.contains("failed"), "{stdout}");
    assert!(
        stdout.contains("step `broken`: transform `broken`, table main.film: column `title`, row 1: cannot convert"),
        "the error names step, table, column and row:\n{stdout}"
    );
    let runs = runs_json(dir.path());
    assert_eq!(runs[0]["status"], "failed");
    let steps = runs[0]["steps"].as_array().unwrap();
    let broken = steps.iter().find(|s| s["name"] == "broken").unwrap();
    assert_eq!(broken["status"], "failed");
    assert!(broken["error"].as_str().unwrap().contains("column `title`"));
}

#[test]
fn a_killed_run_leaves_nothing_visible_and_the_next_run_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    // 20,000 records at 4,000/s: five seconds, so the kill lands mid-run.
    let spec = generator_spec(dir.path(), 20_000, Some(4_000));
    let mut child = pipectl(dir.path())
        .arg("run")
        .arg(&spec)
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the sink has started writing to staging, then kill -9.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !files_under(&dir.path().join("lake"))
        .iter()
        .any(|f| f.starts_with("_pipectl/staging/"))
    {
        assert!(Instant::now() < deadline, "the run never started writing");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        published(dir.path()).is_empty(),
        "a killed run published {:?}",
        published(dir.path())
    );
    let killed = runs_json(dir.path());
    assert_eq!(
        killed[0]["status"], "running",
        "the killed run is left as it was"
    );

    // The next run marks it interrupted, removes its staging and publishes its own files.
    let spec = generator_spec(dir.path(), 5_000, None);
    let (out, stdout, stderr) = output(pipectl(dir.path()).arg("run").arg(&spec));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let runs = runs_json(dir.path());
    assert_eq!(runs[0]["status"], "succeeded");
    assert_eq!(runs[1]["status"], "interrupted");
    assert_eq!(runs[1]["id"], killed[0]["id"]);
    let files = files_under(&dir.path().join("lake"));
    let new_run = runs[0]["id"].as_str().unwrap();
    assert_eq!(files.len(), 3, "only the new run's files remain: {files:?}");
    let mut rows = 0;
    for f in &files {
        assert!(f.starts_with(&format!("events/part-{new_run}-")), "{f}");
        let text = std::fs::read_to_string(dir.path().join("lake").join(f)).unwrap();
        for line in text.lines() {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(
                record["n"].as_i64().is_some() && record["state"].as_str().is_some(),
                "{line}"
            );
            rows += 1;
        }
    }
    assert_eq!(rows, 5_000);
}

#[test]
fn a_second_process_gets_a_clear_lock_error() {
    let dir = tempfile::tempdir().unwrap();
    let spec = generator_spec(dir.path(), 12_000, Some(4_000));
    let mut child = pipectl(dir.path())
        .arg("run")
        .arg(&spec)
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !files_under(&dir.path().join("lake"))
        .iter()
        .any(|f| f.starts_with("_pipectl/staging/"))
    {
        assert!(Instant::now() < deadline, "the run never started writing");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (out, _, stderr) = output(pipectl(dir.path()).arg("runs"));
    child.wait().unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let state_dir = dir.path().join(".pipectl-state");
    assert!(
        stderr.contains(&format!(
            "the state directory {} is in use by another pipectl process",
            state_dir.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("--state-dir"),
        "the message says what to do: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn secrets_never_reach_output_or_history() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "s3cr3t-Value-42";
    let spec = dir.path().join("secret.yaml");
    std::fs::write(
        &spec,
        r#"version: 1
name: secretive
connections:
  db:
    url: sqlite://missing-${env:PIPECTL_TEST_SECRET}.db
  lake:
    url: file://lake
sources:
  db:
    type: sqlite
    connection: db
sinks:
  out:
    type: object_store
    inputs: [db]
    connection: lake
    key: out/
    format: { type: jsonl }
"#,
    )
    .unwrap();
    let (out, stdout, stderr) = output(
        pipectl(dir.path())
            .env("PIPECTL_TEST_SECRET", secret)
            .arg("run")
            .arg(&spec),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout.contains("missing-***.db"),
        "the error is shown, redacted:\n{stdout}"
    );
    assert!(
        !stdout.contains(secret) && !stderr.contains(secret),
        "secret leaked:\n{stdout}\n{stderr}"
    );
    let (_, plan, _) = output(
        pipectl(dir.path())
            .env("PIPECTL_TEST_SECRET", secret)
            .args(["plan", "--format", "json"])
            .arg(&spec),
    );
    assert!(
        plan.contains("${env:PIPECTL_TEST_SECRET}") && !plan.contains(secret),
        "{plan}"
    );
    let (_, history, _) = output(pipectl(dir.path()).args(["runs", "--format", "json"]));
    assert!(
        history.contains("missing-***.db") && !history.contains(secret),
        "{history}"
    );
    let state_files = files_under(&dir.path().join(".pipectl-state"));
    for f in state_files {
        let bytes = std::fs::read(dir.path().join(".pipectl-state").join(&f)).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "secret stored in {f}"
        );
    }
}

#[test]
fn runs_show_lists_steps_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let spec = generator_spec(dir.path(), 1_000, None);
    let (out, _, stderr) = output(pipectl(dir.path()).arg("run").arg(&spec));
    assert!(out.status.success(), "{stderr}");
    let id = runs_json(dir.path())[0]["id"].as_str().unwrap().to_owned();
    let (out, text, _) = output(pipectl(dir.path()).args(["runs", "show", &id[..12]]));
    assert!(out.status.success());
    assert!(text.contains(&format!("run:       {id}")), "{text}");
    assert!(text.contains("events") && text.contains("1,000"), "{text}");
    assert!(
        text.contains(&format!("events/part-{id}-0001.jsonl")),
        "{text}"
    );
    let (out, _, stderr) = output(pipectl(dir.path()).args(["runs", "show", "nope"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("no run `nope`"), "{stderr}");
}
