//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod pg;
mod services;
pub(crate) use pg::PgSession;
pub(crate) use services::{s3_server, s3_store, services_required, skip};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A `pipectl` command with a private state directory, in `dir`, with backtraces off so error
/// output is stable.
pub fn pipectl(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pipectl"));
    cmd.current_dir(dir)
        .env("RUST_BACKTRACE", "0")
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env("PIPECTL_STATE_DIR", dir.join(".pipectl-state"));
    cmd
}

/// Runs a command and returns its output, with stdout and stderr as text.
pub fn output(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.output().expect("pipectl binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

/// Compares `actual` with the golden file `tests/snapshots/<name>`; with `SNAPSHOTS=overwrite`
/// writes it instead.
pub fn snapshot(name: &str, actual: &str) {
    let path = repo().join("tests/snapshots").join(name);
    golden(&path, actual);
}

/// Compares `actual` with the golden file at `path` (see [`snapshot`]).
pub fn golden(path: &Path, actual: &str) {
    if std::env::var("SNAPSHOTS").as_deref() == Ok("overwrite") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|_| {
        panic!(
            "golden file {} is missing; run with SNAPSHOTS=overwrite to create it",
            path.display()
        )
    });
    if expected != actual {
        panic!(
            "output differs from {} (refresh with SNAPSHOTS=overwrite and review the diff)\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        );
    }
}

/// Copies the quickstart example (spec and SQLite database) into `dir`.
pub fn copy_quickstart(dir: &Path) -> PathBuf {
    let src = repo().join("examples/quickstart");
    for name in ["pipeline.yaml", "sakila.db"] {
        std::fs::copy(src.join(name), dir.join(name)).unwrap();
    }
    dir.join("pipeline.yaml")
}

/// Writes the spec `yaml` to `file` in `dir` and returns its path.
pub fn write_spec(dir: &Path, file: &str, yaml: &str) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Asserts that `text` contains each of `parts`, naming the one missing and printing `text`.
pub fn assert_contains_all(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "no {part:?} in:\n{text}");
    }
}

/// Every file under `dir`, relative, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The text field `field` of every element of the JSON array `array`, in order.
pub fn strings<'a>(array: &'a serde_json::Value, field: &str) -> Vec<&'a str> {
    array
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[field].as_str().unwrap())
        .collect()
}

/// The step of a run (as `--format json` prints it) whose `key` is `value`, e.g. the one
/// named `out` or the one of kind `sink`.
pub fn step_where<'a>(run: &'a serde_json::Value, key: &str, value: &str) -> &'a serde_json::Value {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s[key] == value)
        .unwrap_or_else(|| panic!("no step with {key} {value} in {run}"))
}

/// `pipectl plan --format json SPEC` in `dir`, asserted to succeed, as JSON.
pub fn plan_json(dir: &Path, spec: &Path) -> serde_json::Value {
    let (out, stdout, stderr) = output(pipectl(dir).args(["plan", "--format", "json"]).arg(spec));
    assert!(out.status.success(), "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

/// A spec's `connections:` block: each (name, url) pair as a connection with that URL.
pub fn connections(entries: &[(&str, &str)]) -> String {
    let mut out = "connections:\n".to_owned();
    for (name, url) in entries {
        out.push_str(&format!("  {name}: {{ url: \"{url}\" }}\n"));
    }
    out
}

/// A spec named `name` reading a database with a `kind` source `src` on connection `db`
/// (`db_settings`: the connection's mapping, e.g. `url: "..."`; `source`: the source's other
/// settings, YAML lines indented by 4) into the `lake` folder through `sinks` (the entries of
/// the `sinks:` mapping, e.g. [`lake_sink`]s).
pub fn db_spec(name: &str, kind: &str, db_settings: &str, source: &str, sinks: &str) -> String {
    format!(
        r#"version: 1
name: {name}
connections:
  db: {{ {db_settings} }}
  lake: {{ url: "file://lake" }}
sources:
  src:
    type: {kind}
    connection: db
{source}sinks:
{sinks}"#
    )
}

/// A sink `name` of a [`db_spec`]: `object_store` from `src` into the `lake` folder under
/// `key`, with `settings` (YAML lines indented by 4: its format at least).
pub fn lake_sink(name: &str, key: &str, settings: &str) -> String {
    lake_sink_from(name, "src", key, settings)
}

/// An `object_store` sink `name` from step `input` into the `lake` connection under `key`,
/// with `settings` (YAML lines indented by 4: its format at least).
pub fn lake_sink_from(name: &str, input: &str, key: &str, settings: &str) -> String {
    format!(
        "  {name}:\n    type: object_store\n    inputs: [{input}]\n    connection: lake\n    key: \"{key}\"\n{settings}"
    )
}

/// A spec's `connections:` block with one connection, `lake`, at `prefix` in `bucket` of the
/// local S3 server (see [`s3_server`]), its endpoint and keys taken from the environment.
pub fn s3_lake(bucket: &str, prefix: &str) -> String {
    format!(
        r#"connections:
  lake:
    url: s3://{bucket}/{prefix}
    endpoint: ${{env:PIPECTL_TEST_S3_ENDPOINT}}
    access_key_id: ${{env:AWS_ACCESS_KEY_ID}}
    secret_access_key: ${{env:AWS_SECRET_ACCESS_KEY}}
    allow_http: true"#
    )
}

/// Waits (up to 20 s) until a run has started writing under `lake`'s staging folder.
pub fn wait_for_staging(lake: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !files_under(lake)
        .iter()
        .any(|f| f.starts_with("_pipectl/staging/"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never started writing"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The interpreter of the Delta readers' virtualenv (Python `deltalake`, DuckDB with its delta
/// extension; `scripts/delta-readers.sh install`), or `None` after marking the test skipped
/// when it is missing outside CI.
pub fn delta_readers_python() -> Option<PathBuf> {
    let python = std::env::var_os("PIPECTL_DELTA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            Path::new(&home).join(".cache/pipectl-tools/delta-readers-venv/bin/python")
        });
    if python.exists() {
        return Some(python);
    }
    let why = format!(
        "{} is missing: run `bash scripts/delta-readers.sh install`",
        python.display()
    );
    assert!(
        !services_required(),
        "the Delta readers are required here: {why}"
    );
    skip(&why);
    None
}

/// The `txn` actions in the Delta log of the table at `root`, in commit order, as (commit
/// version, app id, txn version); none when the table has no log yet.
pub fn delta_txns(root: &Path) -> Vec<(u64, String, i64)> {
    let Ok(entries) = std::fs::read_dir(root.join("_delta_log")) else {
        return Vec::new();
    };
    let mut commits: Vec<(u64, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let version = e
                .file_name()
                .to_str()?
                .strip_suffix(".json")?
                .parse()
                .ok()?;
            Some((version, e.path()))
        })
        .collect();
    commits.sort();
    let mut out = Vec::new();
    for (version, path) in commits {
        let text = std::fs::read_to_string(path).unwrap();
        out.extend(text.lines().filter_map(|line| {
            let action: serde_json::Value = serde_json::from_str(line).unwrap();
            let txn = action.get("txn")?;
            let app_id = txn["appId"].as_str().unwrap().to_owned();
            Some((version, app_id, txn["version"].as_i64().unwrap()))
        }));
    }
    out
}

/// `python -c SCRIPT` for a reader script. The script's output is flushed and the interpreter
/// leaves with `os._exit`: the deltalake package's threads sometimes abort Python's teardown
/// ("terminate called without an active exception", delta-io/delta-rs#2184) after the script
/// succeeded. An exception still exits non-zero with its traceback.
pub fn python_script(python: &Path, script: &str) -> Command {
    let mut cmd = Command::new(python);
    cmd.arg("-c").arg(format!(
        "{script}\nimport os as _os, sys as _sys\n_sys.stdout.flush()\n_os._exit(0)\n"
    ));
    cmd
}

/// Runs `cmd` (a reader script, see [`python_script`]), asserting that it succeeds (`what`
/// names it in the failure), and parses what it printed as JSON.
pub fn python_json(cmd: &mut Command, what: &str) -> serde_json::Value {
    let out = cmd.output().expect("python runs");
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Starts `pipectl run -q SPEC` in `dir` in the background, its output discarded.
pub fn start_run(dir: &Path, spec: &Path) -> std::process::Child {
    pipectl(dir)
        .args(["run", "-q"])
        .arg(spec)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Starts a run and kills it (kill -9, by its pid) after `delay`, unless it finished first;
/// returns whether it was killed.
pub fn run_and_kill(dir: &Path, spec: &Path, delay: std::time::Duration) -> bool {
    let mut child = start_run(dir, spec);
    std::thread::sleep(delay);
    let finished = child.try_wait().unwrap().is_some();
    if !finished {
        Command::new("kill")
            .args(["-9", &child.id().to_string()])
            .status()
            .unwrap();
    }
    child.wait().unwrap();
    !finished
}
