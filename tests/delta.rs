//! Delta Lake sinks end to end: SQLite and PostgreSQL sources into Delta tables (append,
//! full_refresh, merge with deletes and a sequence, incremental runs with bookmarks), read back
//! by the Python `deltalake` package and DuckDB's delta extension; bad input that fails the run
//! naming step, table and column with nothing committed; and kill -9 at random moments of a
//! full load and of a merge, after which the table equals the source and no txn version is in
//! the log twice.
//!
//! PostgreSQL comes from `PIPECTL_TEST_POSTGRES_URL` (default: this machine's); the readers
//! from `scripts/delta-readers.sh install`. Either missing skips locally and fails in CI.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::Connection;

use crate::common::{PgSession, output, pipectl, repo};

/// A test's own schema on the machine's PostgreSQL, dropped at the end.
struct Pg {
    db: PgSession,
    schema: String,
}

impl std::ops::Deref for Pg {
    type Target = PgSession;
    fn deref(&self) -> &PgSession {
        &self.db
    }
}

impl std::ops::DerefMut for Pg {
    fn deref_mut(&mut self) -> &mut PgSession {
        &mut self.db
    }
}

impl Pg {
    fn connect(prefix: &str) -> Option<Pg> {
        let url = std::env::var("PIPECTL_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let db = PgSession::connect(&url, "PostgreSQL")?;
        let schema = format!("{prefix}_{}_{:x}", std::process::id(), fastrand::u32(..));
        let mut pg = Pg { db, schema };
        let create = format!("create schema \"{}\"", pg.schema);
        pg.exec(&create);
        Some(pg)
    }

    fn ids(&mut self, table: &str) -> Vec<i64> {
        let sql = format!(
            "select id::int8 from \"{}\".{table} order by id",
            self.schema
        );
        self.db
            .rt
            .block_on(sqlx::query_scalar(&sql).fetch_all(&mut self.db.conn))
            .unwrap()
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let sql = format!("drop schema if exists \"{}\" cascade", self.schema);
        self.exec_ignoring_errors(&sql);
    }
}

/// Both readers' view of the table at `root`: `{"deltalake": {version, types, rows},
/// "duckdb": {types, rows}}`, rows sorted by `id` in a canonical text form.
fn read_table(python: &Path, root: &Path) -> Value {
    let script = repo().join("crates/delta/scripts/read_delta.py");
    crate::common::python_json(
        std::process::Command::new(python).arg(&script).arg(root),
        &format!("reading {}", root.display()),
    )
}

/// The `id` column of the table at `root` as the Python `deltalake` package reads it, sorted
/// (duplicates kept).
fn deltalake_ids(python: &Path, root: &Path) -> Vec<i64> {
    let script = "import deltalake, json, sys\n\
                  t = deltalake.DeltaTable(sys.argv[1])\n\
                  ids = t.to_pyarrow_table(columns=['id']).column('id').to_pylist()\n\
                  print(json.dumps(sorted(ids)))\n";
    let ids = crate::common::python_json(
        crate::common::python_script(python, script).arg(root),
        &format!("reading {}", root.display()),
    );
    serde_json::from_value(ids).unwrap()
}

/// Fails unless no two commits carry the same txn version of one app id, and versions grow
/// with the commits.
fn assert_txns_once(root: &Path) {
    let txns = crate::common::delta_txns(root);
    let mut seen: BTreeMap<&str, i64> = BTreeMap::new();
    for (commit, app, version) in &txns {
        if let Some(last) = seen.get(app.as_str()) {
            assert!(
                version > last,
                "commit {commit} of {} carries txn version {version} of {app}, not above {last}: {txns:?}",
                root.display()
            );
        }
        seen.insert(app, *version);
    }
}

fn commits(root: &Path) -> usize {
    std::fs::read_dir(root.join("_delta_log"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0)
}

fn write_spec(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("pipeline.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run_ok(dir: &Path, spec: &Path) {
    let (out, stdout, stderr) = output(pipectl(dir).args(["run", "-q"]).arg(spec));
    assert!(out.status.success(), "run failed\n{stdout}\n{stderr}");
}

fn run_fails(dir: &Path, spec: &Path) -> String {
    let (out, stdout, stderr) = output(pipectl(dir).args(["run", "-q"]).arg(spec));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    format!("{stdout}{stderr}")
}

fn state_json(dir: &Path) -> Value {
    let (out, stdout, stderr) = output(pipectl(dir).args(["state", "--format", "json"]));
    assert!(out.status.success(), "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

/// A pipeline reading `table` of the test's schema (bookmarked on `bookmark`, if any) into a
/// Delta sink with `sink` settings (YAML lines at the sink's indentation).
fn pg_spec(pg: &Pg, table: &str, bookmark: Option<&str>, sink: &str) -> String {
    let tables = bookmark.map_or(String::new(), |keys| {
        format!("    tables:\n      \"{table}\": {{ bookmark: {{ keys: [{keys}] }} }}\n")
    });
    crate::common::db_spec(
        "dl",
        "postgres",
        &format!("url: \"{}\"", pg.url),
        &format!(
            "    batch_rows: 5000\n    include: [{{ schema: \"{}\", table: \"{table}\" }}]\n{tables}",
            pg.schema
        ),
        &crate::common::lake_sink("out", "tables/{table}/", sink),
    )
}

/// The merge of the `changes` table (bookmarked on `seq`), ordered by `ord`.
fn changes_spec(pg: &Pg) -> String {
    pg_spec(
        pg,
        "changes",
        Some("seq"),
        &MERGE_SINK.replace("seq]", "ord]"),
    )
}

#[test]
fn postgres_to_delta_values_equal_the_source_for_both_readers() {
    let Some((mut pg, python)) = pg_and_readers("pipectl_delta_types") else {
        return;
    };
    let s = pg.schema.clone();
    pg.exec(&format!(
        "create table \"{s}\".items (id bigint primary key, amount numeric(12,3), at timestamptz, note text, day date, ok boolean);
         insert into \"{s}\".items values
           (1, -1234.567, '2026-01-01 10:00:00.123456+02', 'zoë', '2026-01-01', true),
           (2, 999999999.999, null, null, null, false),
           (3, null, '1970-01-01 00:00:00+00', '', '1970-01-01', null);"
    ));
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        &pg_spec(&pg, "items", None, "    format: { type: delta }\n"),
    );
    run_ok(dir.path(), &spec);
    let root = dir.path().join("lake/tables/items");
    let read = read_table(&python, &root);
    let expected = json!([
        {"id": 1, "amount": "-1234.567", "at": "2026-01-01T08:00:00.123456+00:00", "note": "zoë", "day": "2026-01-01", "ok": true},
        {"id": 2, "amount": "999999999.999", "at": null, "note": null, "day": null, "ok": false},
        {"id": 3, "amount": null, "at": "1970-01-01T00:00:00+00:00", "note": "", "day": "1970-01-01", "ok": null},
    ]);
    for reader in ["deltalake", "duckdb"] {
        assert_eq!(read[reader]["rows"], expected, "{reader}: {read}");
    }
    assert_eq!(read["deltalake"]["types"]["amount"], "decimal128(12, 3)");
    assert_eq!(read["deltalake"]["types"]["at"], "timestamp[us, tz=UTC]");
    assert_eq!(read["duckdb"]["types"]["at"], "TIMESTAMP WITH TIME ZONE");
    assert_txns_once(&root);
}

#[test]
fn sqlite_to_delta_append_then_full_refresh_replaces_in_one_commit() {
    let Some(python) = crate::common::delta_readers_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("src.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let exec = |sql: &str| {
        rt.block_on(async {
            let url = format!("sqlite://{}?mode=rwc", db.display());
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
        })
    };
    exec(
        "create table t (id integer primary key, name text, price real);
         insert into t values (1, 'a', 1.5), (2, null, null), (3, 'c', 3.25);",
    );
    let spec_text = |mode: &str| {
        format!(
            r#"version: 1
name: sq
connections:
  db: {{ url: "sqlite://src.db" }}
  lake: {{ url: "file://lake" }}
sources:
  src: {{ type: sqlite, connection: db, include: [{{ table: t }}] }}
sinks:
  out:
    type: object_store
    inputs: [src]
    connection: lake
    key: "delta/{{table}}/"
    mode: {mode}
    format: {{ type: delta, partition_by: [name] }}
"#
        )
    };
    let spec = write_spec(dir.path(), &spec_text("append"));
    run_ok(dir.path(), &spec);
    run_ok(dir.path(), &spec);
    let root = dir.path().join("lake/delta/t");
    assert_eq!(deltalake_ids(&python, &root), vec![1, 1, 2, 2, 3, 3]);
    exec("delete from t where id = 2; insert into t values (4, 'd', 4.0);");
    let spec = write_spec(dir.path(), &spec_text("full_refresh"));
    let before = commits(&root);
    run_ok(dir.path(), &spec);
    assert_eq!(commits(&root), before + 1, "a full refresh is one commit");
    let read = read_table(&python, &root);
    let expected = json!([
        {"id": 1, "name": "a", "price": 1.5},
        {"id": 3, "name": "c", "price": 3.25},
        {"id": 4, "name": "d", "price": 4.0},
    ]);
    for reader in ["deltalake", "duckdb"] {
        assert_eq!(read[reader]["rows"], expected, "{reader}: {read}");
    }
    // Partition folders, Hive style.
    assert!(root.join("name=a").is_dir(), "no partition folder name=a");

    // A new column: `schema: strict` fails naming it and commits nothing; `evolve` adds it.
    exec("alter table t add column extra text; update t set extra = 'x' || id;");
    let strict = spec_text("append").replace(
        "partition_by: [name] }",
        "partition_by: [name] }\n    schema: strict",
    );
    let spec = write_spec(dir.path(), &strict);
    let before = commits(&root);
    let message = run_fails(dir.path(), &spec);
    assert!(
        message.contains("step `out`") && message.contains("main.t") && message.contains("extra"),
        "{message}"
    );
    assert_eq!(commits(&root), before);
    let spec = write_spec(dir.path(), &strict.replace("strict", "evolve"));
    run_ok(dir.path(), &spec);
    let read = read_table(&python, &root);
    for reader in ["deltalake", "duckdb"] {
        let mut extras: Vec<String> = read[reader]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| format!("{}:{}", r["id"], r["extra"]))
            .collect();
        extras.sort();
        assert_eq!(
            extras,
            [
                "1:\"x1\"", "1:null", "3:\"x3\"", "3:null", "4:\"x4\"", "4:null"
            ],
            "{reader}: {read}"
        );
    }
    assert_txns_once(&root);
}

/// Applies the changes with `seq` above `after` to the truth table as a merge would: per key
/// the change with the highest `seq` wins; `D` deletes.
fn apply_to_truth(pg: &mut Pg, after: i64) {
    let s = pg.schema.clone();
    pg.exec(&format!(
        "create temp table w as select distinct on (id) id, val, seq, op from \"{s}\".changes where seq > {after} order by id, seq desc;
         delete from \"{s}\".truth t using w where t.id = w.id and w.op = 'D';
         insert into \"{s}\".truth select id, val, seq, op from w where op <> 'D'
           on conflict (id) do update set val = excluded.val, seq = excluded.seq, op = excluded.op;
         drop table w;"
    ));
}

/// Adds `n` random changes (inserts, updates, deletes, repeated keys) to `changes`, with
/// `seq` continuing from `next`.
fn add_changes(pg: &mut Pg, next: &mut i64, n: i64, keys: i64) {
    let s = pg.schema.clone();
    pg.exec(&format!(
        "insert into \"{s}\".changes
         select {next} + g, (random() * {keys})::int8, case when random() < 0.1 then null else (random() * 1000)::int8 end, {next} + g,
                case when random() < 0.15 then 'D' when random() < 0.5 then 'U' else 'I' end
         from generate_series(1, {n}) g",
        next = *next
    ));
    *next += n;
}

fn setup_changes(pg: &mut Pg) {
    let s = pg.schema.clone();
    pg.exec(&format!(
        "create table \"{s}\".changes (seq bigint primary key, id bigint not null, val bigint, ord bigint not null, op text not null);
         create table \"{s}\".truth (id bigint primary key, val bigint, seq bigint, op text);"
    ));
}

/// The truth table and the Delta table as the same JSON rows `{id, val, seq, op}`.
fn assert_merged_equals_truth(pg: &mut Pg, python: &Path, root: &Path, context: &str) {
    let s = pg.schema.clone();
    let expected: Vec<Value> = pg.json_rows(&format!(
        "select json_build_object('id', id, 'val', val, 'seq', seq, 'op', op) from \"{s}\".truth order by id"
    ));
    let read = read_table(python, root);
    for reader in ["deltalake", "duckdb"] {
        let rows: Vec<Value> = read[reader]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| json!({"id": r["id"], "val": r["val"], "seq": r["seq"], "op": r["op"]}))
            .collect();
        assert!(
            rows == expected,
            "{context}: {reader} read {} rows, the truth has {}; first difference: {:?}",
            rows.len(),
            expected.len(),
            rows.iter()
                .zip(&expected)
                .find(|(a, b)| a != b)
                .map(|(a, b)| format!("{a} vs {b}"))
        );
    }
}

/// A fresh schema on the PostgreSQL server (see [`Pg::connect`]) and the Delta readers'
/// interpreter, or `None` after marking the test skipped when either is missing.
fn pg_and_readers(prefix: &str) -> Option<(Pg, PathBuf)> {
    let pg = Pg::connect(prefix)?;
    Some((pg, crate::common::delta_readers_python()?))
}

const MERGE_SINK: &str = "    mode: merge\n    merge: { keys: [id], sequence_by: [seq], delete_when: \"op = 'D'\" }\n    format: { type: delta }\n";

#[test]
fn postgres_changes_merge_into_delta_incrementally_and_equal_the_source() {
    let Some((mut pg, python)) = pg_and_readers("pipectl_delta_merge") else {
        return;
    };
    setup_changes(&mut pg);
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), &changes_spec(&pg));
    let root = dir.path().join("lake/tables/changes");
    let (out, plan, stderr) = output(pipectl(dir.path()).args(["plan"]).arg(&spec));
    assert!(out.status.success(), "{stderr}");
    for line in [
        "mode: merge (one commit upserting by key)",
        "MERGE ON target.id = source.id",
        "WHEN MATCHED AND (op = 'D') AND (source.ord) >= (target.ord) THEN DELETE",
        "WHEN NOT MATCHED AND NOT (op = 'D') THEN INSERT *",
        "/tables/changes/",
    ] {
        assert!(plan.contains(line), "the plan lacks {line:?}:\n{plan}");
    }
    let mut next = 0;
    for round in 0..4 {
        let after = next;
        add_changes(&mut pg, &mut next, 3000, 800);
        apply_to_truth(&mut pg, after);
        run_ok(dir.path(), &spec);
        assert_merged_equals_truth(&mut pg, &python, &root, &format!("round {round}"));
        // The bookmark moved to the last change read.
        let state = state_json(dir.path()).to_string();
        assert!(state.contains(&next.to_string()), "round {round}: {state}");
    }
    // A run without new changes commits nothing.
    let before = commits(&root);
    run_ok(dir.path(), &spec);
    assert_eq!(commits(&root), before);
    assert_txns_once(&root);
}

/// Each kind of bad input fails the run naming the step, the table and the column; the table
/// stays at its version and the bookmark where it was.
#[test]
fn bad_input_fails_the_run_naming_step_table_and_column_and_commits_nothing() {
    let Some(mut pg) = Pg::connect("pipectl_delta_bad") else {
        return;
    };
    let s = pg.schema.clone();
    pg.exec(&format!(
        "create table \"{s}\".ev (id bigint, seq bigint primary key, op text);
         insert into \"{s}\".ev values (1, 1, 'I'), (2, 2, 'I');"
    ));
    let dir = tempfile::tempdir().unwrap();
    let good = pg_spec(
        &pg,
        "ev",
        Some("seq"),
        "    mode: merge\n    merge: { keys: [id], delete_when: \"op = 'D'\" }\n    format: { type: delta }\n",
    );
    let spec = write_spec(dir.path(), &good);
    run_ok(dir.path(), &spec);
    let root = dir.path().join("lake/tables/ev");
    pg.exec(&format!(
        "insert into \"{s}\".ev values (null, 3, 'I'), (3, 4, 'U')"
    ));
    let cases: Vec<(String, &str)> = vec![
        (good.clone(), "`id` is NULL"),
        (good.replace("keys: [id]", "keys: [ident]"), "`ident`"),
        (good.replace("op = 'D'", "kind = 'D'"), "kind"),
        (
            good.replace(
                "    mode: merge\n    merge: { keys: [id], delete_when: \"op = 'D'\" }\n",
                "",
            )
            .replace("tables/{table}/", "other/{table}/")
            .replace("type: delta }", "type: delta, partition_by: [region] }"),
            "`region`",
        ),
    ];
    for (text, column) in cases {
        let spec = write_spec(dir.path(), &text);
        let state = state_json(dir.path());
        let versions = commits(&root);
        let message = run_fails(dir.path(), &spec);
        eprintln!("{message}");
        assert!(
            message.contains("step `out`") && message.contains("ev") && message.contains(column),
            "the error names the step, table and column {column}: {message}"
        );
        assert_eq!(commits(&root), versions, "{message}");
        assert_eq!(
            state_json(dir.path()),
            state,
            "the bookmark moved: {message}"
        );
        assert!(
            !dir.path().join("lake/other/ev/_delta_log").exists(),
            "{message}"
        );
    }
    // A table root that holds files that are not a Delta table's.
    std::fs::create_dir_all(dir.path().join("lake/foreign/ev")).unwrap();
    std::fs::write(dir.path().join("lake/foreign/ev/data.csv"), "id\n1\n").unwrap();
    let spec = write_spec(
        dir.path(),
        &good.replace("tables/{table}/", "foreign/{table}/"),
    );
    let state = state_json(dir.path());
    let message = run_fails(dir.path(), &spec);
    eprintln!("{message}");
    assert!(
        message.contains("step `out`") && message.contains("foreign/ev"),
        "{message}"
    );
    assert_eq!(state_json(dir.path()), state);
    assert!(!dir.path().join("lake/foreign/ev/_delta_log").exists());
}

/// Reruns until a run succeeds (a killed run's successor recovers it first).
fn run_until_success(dir: &Path, spec: &Path) {
    for _ in 0..5 {
        let (out, _, _) = output(pipectl(dir).args(["run", "-q"]).arg(spec));
        if out.status.success() {
            return;
        }
    }
    run_ok(dir, spec);
}

#[test]
fn kill_9_during_a_full_load_and_a_merge_then_rerun_commits_every_row_once() {
    let Some((mut pg, python)) = pg_and_readers("pipectl_delta_kill") else {
        return;
    };
    let s = pg.schema.clone();
    let rows: i64 = std::env::var("PIPECTL_DELTA_KILL_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let kills: u32 = std::env::var("PIPECTL_DELTA_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    pg.exec(&format!(
        "create table \"{s}\".big (id bigint primary key, amount numeric(12,2), note text);
         insert into \"{s}\".big select g, g / 100.0, repeat('x', 40) from generate_series(1, {rows}) g;"
    ));
    let dir = tempfile::tempdir().unwrap();
    // How long a full load takes here, so the kills fall across its whole length: a full
    // refresh of the same rows into another root.
    let scratch = write_spec(
        dir.path(),
        &pg_spec(
            &pg,
            "big",
            None,
            "    mode: full_refresh\n    format: { type: delta }\n",
        )
        .replace("tables/{table}/", "scratch/{table}/"),
    );
    let started = std::time::Instant::now();
    run_ok(dir.path(), &scratch);
    let full_load = started.elapsed();

    // Full load, append with a bookmark: a killed run moves no bookmark, so its successor is
    // the same full load again, killed again at another moment. A run that finishes before its
    // kill is checked, and the load starts over from nothing, until `kills` runs were killed.
    let spec = write_spec(
        dir.path(),
        &pg_spec(&pg, "big", Some("id"), "    format: { type: delta }\n"),
    );
    let root = dir.path().join("lake/tables/big");
    let expected = pg.ids("big");
    let assert_table_equals_source = |context: &str| {
        let got = deltalake_ids(&python, &root);
        assert!(
            got == expected,
            "{context}: the table has {} rows ({} distinct), the source {}",
            got.len(),
            got.iter().collect::<BTreeSet<_>>().len(),
            expected.len()
        );
        assert_txns_once(&root);
    };
    let finished = kill_at_random_moments(dir.path(), &spec, kills, full_load, || {
        assert_table_equals_source("a full load that finished before its kill");
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::remove_dir_all(dir.path().join(".pipectl-state")).unwrap();
    });
    run_until_success(dir.path(), &spec);
    assert_table_equals_source(&format!("after {kills} kills"));
    eprintln!(
        "full load: {kills} runs killed, {finished} finished first (a full load takes {full_load:?})"
    );

    // Merge: changes with repeated keys and deletes, killed while they are merged.
    setup_changes(&mut pg);
    let spec = write_spec(dir.path(), &changes_spec(&pg));
    let root = dir.path().join("lake/tables/changes");
    let mut next = 0;
    add_changes(&mut pg, &mut next, rows / 2, rows / 4);
    apply_to_truth(&mut pg, 0);
    let started = std::time::Instant::now();
    run_ok(dir.path(), &spec);
    let first_merge = started.elapsed();
    assert_merged_equals_truth(&mut pg, &python, &root, "the first merge");
    // Each merge that finishes before its kill is checked and gets new changes to merge.
    let mut add_round = |pg: &mut Pg| {
        let after = next;
        add_changes(pg, &mut next, rows / 2, rows / 4);
        apply_to_truth(pg, after);
    };
    add_round(&mut pg);
    let finished = kill_at_random_moments(dir.path(), &spec, kills, first_merge, || {
        assert_merged_equals_truth(&mut pg, &python, &root, "a merge that finished first");
        add_round(&mut pg);
    });
    run_until_success(dir.path(), &spec);
    assert_merged_equals_truth(&mut pg, &python, &root, "the merge after kills");
    assert_txns_once(&root);
    eprintln!(
        "merge: {kills} runs killed, {finished} finished first (a merge takes {first_merge:?})"
    );
}

/// Starts runs of `spec`, each killed at a random moment within `length` (a little more, so
/// the commit at the end is hit too), until `kills` of them were killed. A run that finishes
/// before its kill leaves nothing to interrupt: `rearm` checks what it left and gives the next
/// run work again. Returns how many runs finished first.
fn kill_at_random_moments(
    dir: &Path,
    spec: &Path,
    kills: u32,
    length: Duration,
    mut rearm: impl FnMut(),
) -> u32 {
    let span = (length.as_millis() as u64 * 11 / 10).max(50);
    let (mut killed, mut finished) = (0, 0);
    while killed < kills {
        let delay = Duration::from_millis(20 + fastrand::u64(..span));
        if crate::common::run_and_kill(dir, spec, delay) {
            killed += 1;
        } else {
            finished += 1;
            assert!(
                finished <= 2 * kills,
                "{finished} runs finished before their kill: the runs take far less than {length:?}"
            );
            rearm();
        }
    }
    finished
}
