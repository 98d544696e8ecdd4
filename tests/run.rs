//! `pipectl run` and `pipectl runs`: atomic publishing, crash recovery, history, locking, secrets.

use std::path::Path;
use std::time::Duration;

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

/// A run of [`generator_spec`] (`count` records at `rate` a second) started in `dir`, once its
/// sink writes to staging.
fn run_writing_staging(dir: &Path, count: u64, rate: u64) -> std::process::Child {
    let spec = generator_spec(dir, count, Some(rate));
    let child = crate::common::start_run(dir, &spec);
    crate::common::wait_for_staging(&dir.join("lake"));
    child
}

/// `spec` with the sink that reads `input` under a key starting `key` reading the step
/// `broken` instead.
fn fed_by_broken(spec: &str, input: &str, key: &str) -> String {
    spec.replacen(
        &format!("    inputs: [{input}]\n    connection: lake\n    key: {key}"),
        &format!("    inputs: [broken]\n    connection: lake\n    key: {key}"),
        1,
    )
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
    let text = fed_by_broken(&text, "sakila", "clean/");
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
    let broken = crate::common::step_where(&runs[0], "name", "broken");
    assert_eq!(broken["status"], "failed");
    assert!(broken["error"].as_str().unwrap().contains("column `title`"));
}

#[test]
fn a_killed_run_leaves_nothing_visible_and_the_next_run_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    // 20,000 records at 4,000/s: five seconds, so the kill lands mid-run, once the sink has
    // started writing to staging (kill -9).
    let mut child = run_writing_staging(dir.path(), 20_000, 4_000);
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
    let mut child = run_writing_staging(dir.path(), 12_000, 4_000);
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

#[test]
fn ctrl_c_cancels_cleanly_and_publishes_nothing() {
    stop_mid_run("-INT", 130);
}

#[test]
fn sigterm_cancels_a_batch_run_like_ctrl_c() {
    stop_mid_run("-TERM", 143);
}

/// Sends `signal` to a batch run once it writes to staging: the run is recorded as cancelled,
/// publishes nothing, leaves no staging behind and exits with `code`.
fn stop_mid_run(signal: &str, code: i32) {
    let dir = tempfile::tempdir().unwrap();
    let spec = generator_spec(dir.path(), 40_000, Some(4_000));
    let child = pipectl(dir.path())
        .arg("run")
        .arg(&spec)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    crate::common::wait_for_staging(&dir.path().join("lake"));
    let status = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(code), "{stdout}");
    assert!(stdout.contains("cancelled"), "{stdout}");
    assert!(
        files_under(&dir.path().join("lake")).is_empty(),
        "{:?}",
        files_under(&dir.path().join("lake"))
    );
    let runs = runs_json(dir.path());
    assert_eq!(runs[0]["status"], "cancelled");
}

#[test]
fn transforms_reshape_rows_as_specified() {
    let dir = tempfile::tempdir().unwrap();
    copy_quickstart(dir.path());
    let spec = dir.path().join("transforms.yaml");
    std::fs::write(
        &spec,
        r#"version: 1
name: shaped
connections:
  db: { url: "sqlite://sakila.db" }
  lake: { url: "file://lake" }
sources:
  db:
    type: sqlite
    connection: db
    queries:
      - table: films
        sql: select film_id, title, rental_rate, length, rating from film where film_id <= 100
transforms:
  long:
    type: filter
    inputs: [db]
    condition: length > 120 and rating in ('PG', 'R')
  renamed:
    type: rename
    inputs: [long]
    columns: { title: film_title }
  trimmed:
    type: drop
    inputs: [renamed]
    columns: [rating]
  typed:
    type: cast
    inputs: [trimmed]
    columns: { length: string, rental_rate: "decimal(6,3)" }
  tagged:
    type: add_columns
    inputs: [typed]
    columns:
      - { name: origin, literal: sakila }
      - { name: fee, literal: "1.50", type: "decimal(4,2)" }
  ordered:
    type: select
    inputs: [tagged]
    columns: [film_id, film_title, rental_rate, length, origin, fee]
sinks:
  out:
    type: object_store
    inputs: [ordered]
    connection: lake
    key: shaped/{table}/
    format: { type: jsonl, compression: gzip }
"#,
    )
    .unwrap();
    let (out, stdout, stderr) = output(pipectl(dir.path()).arg("run").arg(&spec));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let files = files_under(&dir.path().join("lake/shaped/films"));
    assert_eq!(files.len(), 1);
    assert!(files[0].ends_with(".jsonl.gz"), "{files:?}");
    let compressed = std::fs::read(dir.path().join("lake/shaped/films").join(&files[0])).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&compressed[..]),
        &mut text,
    )
    .unwrap();
    let got: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let expected: Vec<(i64, String, String, i64)> = rt.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", dir.path().join("sakila.db").display())).await.unwrap();
        sqlx::query_as("select film_id, title, cast(rental_rate as text), length from film where film_id <= 100 and length > 120 and rating in ('PG', 'R') order by film_id")
            .fetch_all(&mut conn)
            .await
            .unwrap()
    });
    assert!(!expected.is_empty());
    assert_eq!(got.len(), expected.len(), "{text}");
    for ((row, line), (id, title, rate, length)) in got.iter().zip(text.lines()).zip(&expected) {
        // Column order is the `select` order (serde_json sorts keys, so check the raw line).
        let order = [
            "film_id",
            "film_title",
            "rental_rate",
            "length",
            "origin",
            "fee",
        ];
        let positions: Vec<usize> = order
            .iter()
            .map(|k| line.find(&format!("\"{k}\":")).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{line}");
        assert_eq!(row.as_object().unwrap().len(), order.len(), "{line}");
        assert_eq!(row["film_id"], *id);
        assert_eq!(row["film_title"], title.as_str());
        // decimal(6,3) keeps the exact value; JSON writes decimals as exact text.
        assert!(
            line.contains(&format!("\"rental_rate\":{rate}0,")),
            "{line}"
        );
        assert_eq!(row["length"], length.to_string());
        assert_eq!(row["origin"], "sakila");
        assert!(line.contains("\"fee\":1.50}"), "{line}");
    }
}

/// Rows in the JSON-lines files under `lake/<folder>/`, and how many files hold them.
fn jsonl_rows(dir: &Path, folder: &str) -> (usize, usize) {
    let files: Vec<String> = published(dir)
        .into_iter()
        .filter(|f| f.starts_with(folder))
        .collect();
    let rows = files
        .iter()
        .map(|f| {
            std::fs::read_to_string(dir.join("lake").join(f))
                .unwrap()
                .lines()
                .count()
        })
        .sum();
    (rows, files.len())
}

#[test]
fn full_refresh_replaces_a_tables_files_and_a_failed_run_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let spec_path = generator_spec(dir.path(), 5000, None);
    let base = std::fs::read_to_string(&spec_path).unwrap();
    // One sink replaces its table's data, a second one appends.
    let both = base.replace(
        "    key: events/\n",
        "    key: events/{table}/\n    mode: full_refresh\n",
    ) + "  history:\n    type: object_store\n    inputs: [events]\n    connection: lake\n    key: history/\n    format: { type: jsonl }\n";
    std::fs::write(&spec_path, &both).unwrap();
    let (out, stdout, stderr) = output(pipectl(dir.path()).arg("run").arg(&spec_path));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(jsonl_rows(dir.path(), "events/"), (5000, 3));

    std::fs::write(&spec_path, both.replace("count: 5000", "count: 3000")).unwrap();
    let (out, stdout, stderr) = output(pipectl(dir.path()).arg("run").arg(&spec_path));
    assert!(out.status.success(), "{stdout}{stderr}");
    // Only the second run's rows remain under the refreshed key; the appending sink has both.
    assert_eq!(jsonl_rows(dir.path(), "events/"), (3000, 2));
    assert_eq!(jsonl_rows(dir.path(), "history/"), (8000, 2));
    let second_run = runs_json(dir.path())[0]["id"].as_str().unwrap().to_owned();
    assert!(
        published(dir.path())
            .iter()
            .filter(|f| f.starts_with("events/"))
            .all(|f| f.contains(&second_run)),
        "{:?}",
        published(dir.path())
    );

    // A run that fails replaces nothing.
    let broken = both.replace("count: 5000", "count: 100").replace(
        "sinks:\n",
        "transforms:\n  broken:\n    type: cast\n    inputs: [events]\n    columns: { state: int64 }\nsinks:\n",
    );
    let broken = fed_by_broken(&broken, "events", "events");
    std::fs::write(&spec_path, broken).unwrap();
    let (out, stdout, stderr) = output(pipectl(dir.path()).arg("run").arg(&spec_path));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(jsonl_rows(dir.path(), "events/"), (3000, 2));
    assert_eq!(jsonl_rows(dir.path(), "history/"), (8000, 2));
}

#[test]
fn quiet_prints_only_errors_and_the_final_line() {
    let dir = tempfile::tempdir().unwrap();
    let spec = generator_spec(dir.path(), 100, None);
    let (out, stdout, stderr) = output(pipectl(dir.path()).args(["run", "-q"]).arg(&spec));
    assert!(out.status.success(), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(
        lines[0].starts_with("run ") && lines[0].contains(" of gen: succeeded in "),
        "{stdout}"
    );
    assert_eq!(stderr, "");

    // A failed run: the final line and the error, nothing else.
    let text = std::fs::read_to_string(&spec)
        .unwrap()
        .replace("inputs: [events]", "inputs: [bad]")
        .replace(
            "sinks:",
            "transforms:\n  bad: { type: cast, inputs: [events], columns: { state: int64 } }\nsinks:",
        );
    std::fs::write(&spec, text).unwrap();
    let (out, stdout, stderr) = output(pipectl(dir.path()).args(["run", "-q"]).arg(&spec));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].contains(" of gen: failed in "), "{stdout}");
    assert!(lines[1].starts_with("error: step `bad`"), "{stdout}");
}
