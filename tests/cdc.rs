//! `postgres_cdc` sources against the private logical-replication cluster
//! (`scripts/pg-logical.sh`, started by `scripts/test.sh`; its URL in
//! `PIPECTL_TEST_PG_LOGICAL_URL`): what `plan` shows and checks, and catch-up runs whose
//! change files and merged Delta tables are read back and compared with the source.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sqlx::Connection;

use crate::common::{PgSession, output, pipectl, repo, services_required, skip, snapshot};

/// One test's schema, slot and publication on the logical cluster, on a private runtime.
struct Cluster {
    db: PgSession,
    /// The schema and the slot's name; the publication is `<name>_pub` (the names the cdc
    /// crate's tests drop when the process that made them is gone).
    name: String,
}

impl std::ops::Deref for Cluster {
    type Target = PgSession;
    fn deref(&self) -> &PgSession {
        &self.db
    }
}

impl std::ops::DerefMut for Cluster {
    fn deref_mut(&mut self) -> &mut PgSession {
        &mut self.db
    }
}

impl Cluster {
    fn connect() -> Option<Cluster> {
        let Ok(url) = std::env::var("PIPECTL_TEST_PG_LOGICAL_URL") else {
            assert!(
                !services_required(),
                "PIPECTL_TEST_PG_LOGICAL_URL is not set: start the cluster with scripts/pg-logical.sh start and eval \"$(scripts/pg-logical.sh env)\""
            );
            skip(
                "PIPECTL_TEST_PG_LOGICAL_URL not set (scripts/test.sh starts the logical cluster)",
            );
            return None;
        };
        let db = PgSession::connect(&url, "the logical cluster")?;
        // The cdc crate's tests drop what dead processes left under `cdc_<pid>_`.
        let name = format!("cdc_{}_{:x}", std::process::id(), fastrand::u32(..));
        let mut cluster = Cluster { db, name };
        let create = format!("create schema {}", cluster.name);
        cluster.exec(&create);
        Some(cluster)
    }

    /// The `items` table of the replication tests: many types, [`source_rows`] reads it.
    fn create_items(&mut self) {
        let s = self.name.clone();
        self.exec(&format!(
            "create table {s}.items (id bigint primary key, price numeric(12,4), at timestamptz,
                                    tags text[], doc jsonb, raw bytea, note text)"
        ));
    }

    /// The slot's confirmed position, as text.
    fn confirmed_flush(&mut self) -> Option<String> {
        let sql = "select confirmed_flush_lsn::text from pg_replication_slots where slot_name = $1";
        self.db
            .rt
            .block_on(
                sqlx::query_scalar::<_, Option<String>>(sql)
                    .bind(&self.name)
                    .fetch_optional(&mut self.db.conn),
            )
            .unwrap()
            .flatten()
    }

    /// A pipeline replicating the test's schema into change files (Parquet) and merged
    /// Delta tables.
    fn spec(&self, dir: &Path, extra: &str) -> PathBuf {
        let text = format!(
            r#"version: 1
name: cdc
connections:
  db: {{ url: "{url}" }}
  lake: {{ url: "file://lake" }}
sources:
  shop:
    type: postgres_cdc
    connection: db
    include: [{{ schema: "{name}", table: "%" }}]
    publication: {name}_pub
    slot: {name}
{extra}sinks:
  changes:
    type: object_store
    inputs: [shop]
    connection: lake
    key: "changes/{{table}}/"
    format: {{ type: parquet }}
  current:
    type: object_store
    inputs: [shop]
    connection: lake
    key: "tables/{{table}}/"
    format: {{ type: delta }}
    mode: merge
"#,
            url = self.url,
            name = self.name,
        );
        let path = dir.join("pipeline.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = self.db.rt.block_on(
            sqlx::query("select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1 and not active")
                .bind(&name)
                .execute(&mut self.db.conn),
        );
        let sql =
            format!("drop publication if exists {name}_pub; drop schema if exists {name} cascade");
        self.exec_ignoring_errors(&sql);
    }
}

/// A replication test's set-up (cluster, Delta readers' Python, temp folder, spec, lake, the
/// `items` Delta table's root): the cluster with the `items` table holding `rows` (what follows
/// `insert into <schema>.items `) and a pipeline with `extra` source settings; `None` after
/// marking the test skipped.
type Items = (
    Cluster,
    PathBuf,
    tempfile::TempDir,
    PathBuf,
    PathBuf,
    PathBuf,
);

fn items(rows: &str, extra: &str) -> Option<Items> {
    let mut c = Cluster::connect()?;
    let python = crate::common::delta_readers_python()?;
    c.create_items();
    let insert = format!("insert into {}.items {rows}", c.name);
    c.exec(&insert);
    let dir = tempfile::tempdir().unwrap();
    let spec = c.spec(dir.path(), extra);
    let lake = dir.path().join("lake");
    let root = lake.join("tables/items");
    Some((c, python, dir, spec, lake, root))
}

fn run_ok(dir: &Path, spec: &Path) -> String {
    let (out, stdout, stderr) = output(pipectl(dir).args(["run", "-q"]).arg(spec));
    assert!(out.status.success(), "run failed\n{stdout}\n{stderr}");
    format!("{stdout}{stderr}")
}

/// The stored bookmark of the CDC source: its LSN.
fn stored_lsn(dir: &Path) -> Option<String> {
    let (out, stdout, stderr) = output(pipectl(dir).args(["state", "--format", "json"]));
    assert!(out.status.success(), "{stderr}");
    let state: Value = serde_json::from_str(&stdout).unwrap();
    let list = state
        .as_array()
        .cloned()
        .or_else(|| state["bookmarks"].as_array().cloned())
        .unwrap_or_default();
    list.iter()
        .find(|b| b["stream"] == "shop")
        .and_then(|b| b["values"][0].as_str().map(str::to_owned))
}

fn lsn(text: &str) -> u64 {
    let (hi, lo) = text.split_once('/').unwrap();
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

/// The rows of the Delta table at `root` as the Python `deltalake` package reads them (sorted
/// by `id`, values in the readers' canonical text form), without the change columns.
fn delta_rows(python: &Path, root: &Path) -> Vec<Value> {
    let out = std::process::Command::new(python)
        .arg(repo().join("crates/delta/scripts/read_delta.py"))
        .arg(root)
        .output()
        .unwrap();
    let read: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        let why = String::from_utf8_lossy(&out.stderr);
        panic!("reading {} failed ({e}): {why}", root.display())
    });
    let mut rows: Vec<Value> = read["deltalake"]["rows"].as_array().unwrap().clone();
    for row in &mut rows {
        let map = row.as_object_mut().unwrap();
        map.retain(|k, _| k != "Op" && !k.starts_with("_pipectl_"));
    }
    assert_eq!(
        read["duckdb"]["rows"].as_array().map(Vec::len),
        Some(rows.len()),
        "DuckDB reads as many rows as deltalake"
    );
    rows
}

/// The `items` table of the source in the readers' canonical form.
fn source_rows(c: &mut Cluster) -> Vec<Value> {
    let s = c.name.clone();
    c.json_rows(&format!(
        "select json_build_object(
            'id', id,
            'price', price::text,
            'at', to_char(at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"'),
            'tags', array_to_json(tags)::text,
            'doc', doc::text,
            'raw', encode(raw, 'hex'),
            'note', note)
         from {s}.items order by id"
    ))
}

/// Every change file's (Op, id) pairs, across runs, sorted by (LSN, position).
fn change_rows(lake: &Path) -> Vec<(Option<String>, i64)> {
    changes_of(lake, "items")
        .into_iter()
        .map(|(op, id, _)| (op, id.expect("a change of a row has its key")))
        .collect()
}

/// Every change file's (Op, id, unchanged columns) of `table`, across runs, sorted by (LSN,
/// position).
fn changes_of(lake: &Path, table: &str) -> Vec<(Option<String>, Option<i64>, Option<String>)> {
    use arrow::array::{Array, AsArray, Int32Array, Int64Array};
    let text =
        |a: &arrow::array::StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_owned());
    let mut rows = Vec::new();
    let dir = lake.join("changes").join(table);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let file = std::fs::File::open(entry.path()).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let op = batch.column_by_name("Op").unwrap().as_string::<i32>();
            let id = batch.column_by_name("id").unwrap();
            let id = id.as_any().downcast_ref::<Int64Array>().unwrap();
            let l = batch.column_by_name("_pipectl_commit_lsn").unwrap();
            let l = l.as_any().downcast_ref::<Int64Array>().unwrap();
            let p = batch.column_by_name("_pipectl_position").unwrap();
            let p = p.as_any().downcast_ref::<Int32Array>().unwrap();
            let u = batch
                .column_by_name("_pipectl_unchanged")
                .unwrap()
                .as_string::<i32>();
            for i in 0..batch.num_rows() {
                let id = (!id.is_null(i)).then(|| id.value(i));
                rows.push((l.value(i), p.value(i), text(op, i), id, text(u, i)));
            }
        }
    }
    rows.sort();
    rows.into_iter()
        .map(|(_, _, op, id, u)| (op, id, u))
        .collect()
}

fn delta_commits(root: &Path) -> usize {
    std::fs::read_dir(root.join("_delta_log"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn plan_shows_slot_publication_tables_and_what_to_change() {
    let Some(mut c) = Cluster::connect() else {
        return;
    };
    let s = c.name.clone();
    c.exec(&format!(
        "create table {s}.items (id bigint primary key, note text);
         create table {s}.lines (order_id int, line int, qty int, primary key (order_id, line));
         create table {s}.audit (at timestamptz, what text);
         create table {s}.events (at timestamptz, what text);
         alter table {s}.events replica identity full;"
    ));
    let dir = tempfile::tempdir().unwrap();
    let spec = c.spec(dir.path(), "");
    let (out, stdout, stderr) = output(pipectl(dir.path()).arg("plan").arg(&spec));
    assert!(out.status.success(), "{stderr}");
    let text = stdout
        .replace(&c.url, "<url>")
        .replace(&s, "<name>")
        .replace(&dir.path().display().to_string(), "<dir>");
    let text = match text.find(", spec ") {
        Some(i) => format!("{}, spec <hash>{}", &text[..i], &text[i + 7 + 16..]),
        None => text,
    };
    snapshot("plan_postgres_cdc.txt", &text);
}

#[test]
fn plan_against_a_replica_level_server_says_to_set_wal_level_logical() {
    let url = std::env::var("PIPECTL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut conn = match rt.block_on(sqlx::PgConnection::connect(&url)) {
        Ok(conn) => conn,
        Err(e) if services_required() => panic!("PostgreSQL at {url} is required: {e}"),
        Err(e) => {
            skip(&format!("PostgreSQL at {url} is unreachable ({e})"));
            return;
        }
    };
    let level: String = rt
        .block_on(sqlx::query_scalar("show wal_level").fetch_one(&mut conn))
        .unwrap();
    if level == "logical" {
        skip("the machine's PostgreSQL already runs with wal_level=logical");
        return;
    }
    let name = format!("cdcplan_{}_{:x}", std::process::id(), fastrand::u32(..));
    rt.block_on(
        sqlx::raw_sql(&format!(
            "create schema {name}; create table {name}.t (id int primary key)"
        ))
        .execute(&mut conn),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("pipeline.yaml");
    std::fs::write(
        &spec,
        format!(
            "version: 1\nname: cdc\nconnections:\n  db: {{ url: \"{url}\" }}\n  lake: {{ url: \"file://lake\" }}\nsources:\n  shop:\n    type: postgres_cdc\n    connection: db\n    include: [{{ schema: {name} }}]\n    publication: {name}\n    slot: {name}\nsinks:\n  changes:\n    type: object_store\n    inputs: [shop]\n    connection: lake\n    key: \"changes/{{table}}/\"\n    format: {{ type: csv }}\n"
        ),
    )
    .unwrap();
    let (out, stdout, stderr) = output(pipectl(dir.path()).arg("plan").arg(&spec));
    let (run, run_stdout, run_stderr) = output(pipectl(dir.path()).args(["run", "-q"]).arg(&spec));
    let _ = rt.block_on(sqlx::raw_sql(&format!("drop schema {name} cascade")).execute(&mut conn));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("wal_level is `replica`; logical replication needs `wal_level = logical`"),
        "{stdout}"
    );
    assert!(!run.status.success(), "{run_stdout}{run_stderr}");
    let run_text = format!("{run_stdout}{run_stderr}");
    assert!(
        run_text.contains("the server is not ready for change data capture")
            && run_text.contains("wal_level = logical"),
        "{run_text}"
    );
}

#[test]
fn snapshot_then_changes_land_in_change_files_and_a_delta_table_equal_to_the_source() {
    let Some((mut c, python, dir, spec, lake, root)) = items(
        "values
           (1, 1234.5678, '2026-01-01 10:00:00.123456+02', '{a,b}', '{\"k\": [1, 2]}', '\\x00ff', 'zoë'),
           (2, -0.0001, null, '{}', 'null', '\\x', null),
           (3, null, '1970-01-01 00:00:00.000001+00', null, null, null, '')",
        "",
    ) else {
        return;
    };
    let s = c.name.clone();

    // 1. The initial copy.
    run_ok(dir.path(), &spec);
    assert_eq!(delta_rows(&python, &root), source_rows(&mut c));
    assert_eq!(change_rows(&lake), [(None, 1), (None, 2), (None, 3)]);
    let first = stored_lsn(dir.path()).expect("the run stores its LSN");

    // 2. Changes: inserts, updates, a delete, a multi-row transaction, a rolled-back one.
    c.exec(&format!(
        "insert into {s}.items values (4, 4.4, '2026-06-30 23:59:59.999999+00', '{{x,\"y z\"}}', '[]', '\\xdeadbeef', 'four');
         update {s}.items set price = 99999999.9999, tags = '{{c}}', note = null where id = 1;
         delete from {s}.items where id = 2;
         begin;
           insert into {s}.items (id, note) values (5, 'five');
           update {s}.items set note = 'five again', doc = '{{\"n\": 5}}' where id = 5;
           update {s}.items set raw = '\\x01' where id = 3;
         commit;
         begin; insert into {s}.items (id) values (6); rollback;"
    ));
    run_ok(dir.path(), &spec);
    assert_eq!(delta_rows(&python, &root), source_rows(&mut c));
    let changes: Vec<(Option<String>, i64)> = vec![
        (None, 1),
        (None, 2),
        (None, 3),
        (Some("I".into()), 4),
        (Some("U".into()), 1),
        (Some("D".into()), 2),
        (Some("I".into()), 5),
        (Some("U".into()), 5),
        (Some("U".into()), 3),
    ];
    assert_eq!(change_rows(&lake), changes);
    let second = stored_lsn(dir.path()).unwrap();
    assert!(lsn(&second) > lsn(&first), "{second} after {first}");

    // 3. No changes: no new change file, no new Delta commit; the position still moves on
    // (the run's stop marker), which lets the slot release WAL of an idle database.
    let commits = delta_commits(&root);
    run_ok(dir.path(), &spec);
    assert_eq!(change_rows(&lake), changes);
    assert_eq!(delta_commits(&root), commits);

    // 4. A run whose sink fails leaves the position where it was; the next run delivers
    // every change once. The sink fails on a commit file in the Delta table's log that does
    // not parse.
    c.exec(&format!(
        "update {s}.items set note = 'after failure' where id = 4;
         delete from {s}.items where id = 1;"
    ));
    let before = stored_lsn(dir.path()).unwrap();
    let version = delta_commits(&root);
    let bogus = root.join(format!("_delta_log/{version:020}.json"));
    std::fs::write(&bogus, "this is not a commit\n").unwrap();
    let (out, stdout, stderr) = output(pipectl(dir.path()).args(["run", "-q"]).arg(&spec));
    assert!(
        !out.status.success(),
        "the run should fail\n{stdout}\n{stderr}"
    );
    assert_eq!(stored_lsn(dir.path()).unwrap(), before);
    let confirmed = c.confirmed_flush().expect("the slot exists");
    assert!(
        lsn(&confirmed) <= lsn(&before),
        "slot at {confirmed}, bookmark {before}"
    );
    assert_eq!(
        change_rows(&lake),
        changes,
        "a failed run publishes nothing"
    );
    std::fs::remove_file(&bogus).unwrap();
    run_ok(dir.path(), &spec);
    assert_eq!(delta_rows(&python, &root), source_rows(&mut c));
    let mut all = changes.clone();
    all.extend([(Some("U".into()), 4), (Some("D".into()), 1)]);
    assert_eq!(change_rows(&lake), all);
    assert!(lsn(&stored_lsn(dir.path()).unwrap()) > lsn(&before));
}

#[test]
fn an_interrupted_initial_copy_starts_over_in_a_new_snapshot_without_gap_or_duplicate() {
    let Some((mut c, python, dir, spec, lake, root)) =
        items("(id, note) values (1, 'one'), (2, 'two')", "")
    else {
        return;
    };
    let s = c.name.clone();
    // A file where the Delta table's root belongs: the first run creates the slot, copies,
    // then fails in the Delta sink and commits nothing.
    std::fs::create_dir_all(lake.join("tables")).unwrap();
    std::fs::write(&root, "not a folder").unwrap();
    let (out, stdout, stderr) = output(pipectl(dir.path()).args(["run", "-q"]).arg(&spec));
    assert!(
        !out.status.success(),
        "the run should fail\n{stdout}\n{stderr}"
    );
    assert_eq!(stored_lsn(dir.path()), None);
    assert!(
        c.confirmed_flush().is_some(),
        "the failed run created the slot"
    );
    assert_eq!(change_rows(&lake), [], "a failed run publishes nothing");
    // Committed after the first slot's snapshot: the new snapshot has it, the stream does not.
    c.exec(&format!(
        "insert into {s}.items (id, note) values (3, 'three'); update {s}.items set note = 'uno' where id = 1;"
    ));
    std::fs::remove_file(&root).unwrap();
    run_ok(dir.path(), &spec);
    assert_eq!(delta_rows(&python, &root), source_rows(&mut c));
    assert_eq!(change_rows(&lake), [(None, 1), (None, 2), (None, 3)]);
    c.exec(&format!("delete from {s}.items where id = 2;"));
    run_ok(dir.path(), &spec);
    assert_eq!(delta_rows(&python, &root), source_rows(&mut c));
    assert_eq!(
        change_rows(&lake),
        [(None, 1), (None, 2), (None, 3), (Some("D".into()), 2)]
    );
}

#[test]
fn runs_killed_at_ten_moments_while_a_writer_changes_rows_lose_and_double_nothing() {
    let Some((mut c, python, dir, spec, lake, root)) = items(
        "(id, price, note) select i, i * 1.5, 'row ' || i from generate_series(1, 200) i",
        "",
    ) else {
        return;
    };
    let s = c.name.clone();
    run_ok(dir.path(), &spec);

    // A writer: inserts, updates, deletes and multi-row transactions, one or two per step.
    let url = c.url.clone();
    let schema = s.clone();
    let writer = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let mut conn = rt.block_on(sqlx::PgConnection::connect(&url)).unwrap();
        let mut counts = [0usize; 3];
        for step in 0..300i64 {
            let id = 1000 + step;
            let victim = 1 + (step * 7) % 200;
            let sql = match step % 3 {
                0 => {
                    counts[0] += 1;
                    format!("insert into {schema}.items (id, note) values ({id}, 'new')")
                }
                1 => {
                    counts[0] += 1;
                    counts[1] += 1;
                    format!(
                        "begin; insert into {schema}.items (id, price) values ({id}, 1); update {schema}.items set price = price + 1, note = 'upd {step}' where id = {id}; commit"
                    )
                }
                _ => {
                    counts[2] += 1;
                    format!("delete from {schema}.items where id = {victim} or id = {id} - 2")
                }
            };
            rt.block_on(sqlx::raw_sql(&sql).execute(&mut conn)).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        counts
    });
    let mut killed = 0;
    for delay in [40, 90, 150, 230, 320, 450, 600, 800, 1100, 1500] {
        if crate::common::run_and_kill(dir.path(), &spec, std::time::Duration::from_millis(delay)) {
            killed += 1;
        }
    }
    let counts = writer.join().unwrap();
    eprintln!("{killed} of 10 runs were killed before they finished");
    run_ok(dir.path(), &spec);
    assert_eq!(delta_rows(&python, &root), source_rows(&mut c));
    let changes = change_rows(&lake);
    let deleted: usize = changes
        .iter()
        .filter(|(op, _)| op.as_deref() == Some("D"))
        .count();
    let inserted: usize = changes
        .iter()
        .filter(|(op, _)| op.as_deref() == Some("I"))
        .count();
    assert_eq!(changes.iter().filter(|(op, _)| op.is_none()).count(), 200);
    // Every insert and every deleted row once (a delete matching no row sends nothing).
    let left: i64 = c.json_rows(&format!("select to_jsonb(count(*)) from {s}.items"))[0]
        .as_i64()
        .unwrap();
    assert_eq!(
        200 + inserted as i64 - deleted as i64,
        left,
        "{killed} runs killed"
    );
    let updated = changes
        .iter()
        .filter(|(op, _)| op.as_deref() == Some("U"))
        .count();
    assert_eq!(
        (inserted, updated),
        (counts[0], counts[1]),
        "{killed} runs killed"
    );
}

#[test]
fn snapshot_settings_op_for_full_load_and_the_timestamp_column_name() {
    // include_op_for_full_load: copied rows carry Op = I; the commit time has its own name.
    let Some((mut c, python, dir, spec, lake, _)) = items(
        "(id, note) values (1, 'one'), (2, 'two')",
        "    include_op_for_full_load: true\n    timestamp_column_name: commit_ts\n",
    ) else {
        return;
    };
    let s = c.name.clone();
    run_ok(dir.path(), &spec);
    assert_eq!(
        change_rows(&lake),
        [(Some("I".into()), 1), (Some("I".into()), 2)]
    );
    let file = std::fs::read_dir(lake.join("changes/items"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(file).unwrap(),
    )
    .unwrap();
    let names: Vec<String> = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert!(names.contains(&"commit_ts".to_owned()), "{names:?}");
    assert!(
        !names.contains(&"_pipectl_commit_ts".to_owned()),
        "{names:?}"
    );

    // snapshot: never: rows from before the slot are not copied, later changes stream.
    c.exec(&format!(
        "drop publication {s}_pub; select pg_drop_replication_slot('{s}');"
    ));
    let dir = tempfile::tempdir().unwrap();
    let spec = c.spec(dir.path(), "    snapshot: never\n");
    run_ok(dir.path(), &spec);
    let lake = dir.path().join("lake");
    assert_eq!(change_rows(&lake), []);
    c.exec(&format!(
        "insert into {s}.items (id, note) values (3, 'three');"
    ));
    run_ok(dir.path(), &spec);
    assert_eq!(change_rows(&lake), [(Some("I".into()), 3)]);
    let rows = delta_rows(&python, &lake.join("tables/items"));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["id"], 3);
}

/// A `docs` table (id, n, body) with `body` stored out of line, replicated by a pipeline
/// whose first run has copied it.
fn docs_pipeline(c: &mut Cluster, dir: &Path) -> PathBuf {
    let s = c.name.clone();
    c.exec(&format!(
        "create table {s}.docs (id bigint primary key, n int, body text);
         alter table {s}.docs alter column body set storage external;"
    ));
    let spec = c.spec(dir, "");
    run_ok(dir, &spec);
    spec
}

/// The `docs` table of the source in the readers' canonical form.
fn source_docs(c: &mut Cluster) -> Vec<Value> {
    let s = c.name.clone();
    c.json_rows(&format!(
        "select json_build_object('id', id, 'n', n, 'body', body) from {s}.docs order by id"
    ))
}

#[test]
fn an_update_leaving_a_toasted_value_unchanged_keeps_the_tables_value_never_null() {
    let Some(mut c) = Cluster::connect() else {
        return;
    };
    let Some(python) = crate::common::delta_readers_python() else {
        return;
    };
    let s = c.name.clone();
    let dir = tempfile::tempdir().unwrap();
    let spec = docs_pipeline(&mut c, dir.path());
    let lake = dir.path().join("lake");
    let root = lake.join("tables/docs");
    c.exec(&format!(
        "insert into {s}.docs values (1, 1, repeat('a', 20000)), (3, 3, repeat('c', 20000));"
    ));
    run_ok(dir.path(), &spec);
    // Row 1: the update leaves the 20 kB text unchanged (the table's value stays). Row 2:
    // inserted and then updated in the same run (the insert's value stays). Row 3: the text
    // set to NULL, then another column updated.
    c.exec(&format!(
        "update {s}.docs set n = 10 where id = 1;
         insert into {s}.docs values (2, 2, repeat('b', 20000) || 'z');
         update {s}.docs set n = 20 where id = 2;
         update {s}.docs set n = 21 where id = 2;
         update {s}.docs set body = null where id = 3;
         update {s}.docs set n = 30 where id = 3;"
    ));
    run_ok(dir.path(), &spec);
    let rows = delta_rows(&python, &root);
    assert_eq!(rows, source_docs(&mut c));
    assert_eq!(rows[0]["body"].as_str().map(str::len), Some(20000));
    assert_eq!(rows[1]["body"].as_str().map(str::len), Some(20001));
    // The change files: the column NULL and listed as unchanged.
    let unchanged = Some(r#"["body"]"#.to_owned());
    let u = |id| (Some("U".to_owned()), Some(id), unchanged.clone());
    let plain = |op: &str, id| (Some(op.to_owned()), Some(id), None);
    assert_eq!(
        changes_of(&lake, "docs"),
        [
            plain("I", 1),
            plain("I", 3),
            u(1),
            plain("I", 2),
            u(2),
            u(2),
            plain("U", 3),
            plain("U", 3),
        ]
    );
    // A later run leaving it unchanged again: still the table's value.
    c.exec(&format!("update {s}.docs set n = 11 where id = 1;"));
    run_ok(dir.path(), &spec);
    assert_eq!(delta_rows(&python, &root), source_docs(&mut c));
}

#[test]
fn a_truncate_is_a_change_record_and_empties_the_merged_table_before_later_changes() {
    let Some(mut c) = Cluster::connect() else {
        return;
    };
    let Some(python) = crate::common::delta_readers_python() else {
        return;
    };
    let s = c.name.clone();
    let dir = tempfile::tempdir().unwrap();
    let spec = docs_pipeline(&mut c, dir.path());
    let lake = dir.path().join("lake");
    let root = lake.join("tables/docs");
    c.exec(&format!(
        "insert into {s}.docs (id, n) values (1, 1), (2, 2);"
    ));
    run_ok(dir.path(), &spec);
    assert_eq!(delta_rows(&python, &root).len(), 2);
    // In one run: a change before the truncate, the truncate, then changes after it (key 2
    // again, key 3 inserted and deleted, key 4 updated).
    c.exec(&format!(
        "update {s}.docs set n = 11 where id = 1;
         insert into {s}.docs (id, n) values (5, 5);
         truncate {s}.docs;
         insert into {s}.docs (id, n) values (2, 22), (3, 3), (4, 4);
         delete from {s}.docs where id = 3;
         update {s}.docs set n = 44 where id = 4;"
    ));
    run_ok(dir.path(), &spec);
    let rows = delta_rows(&python, &root);
    assert_eq!(rows, source_docs(&mut c));
    assert_eq!(rows.len(), 2, "{rows:?}");
    let ops: Vec<(Option<String>, Option<i64>)> = changes_of(&lake, "docs")
        .into_iter()
        .map(|(op, id, _)| (op, id))
        .collect();
    let op = |o: &str, id: Option<i64>| (Some(o.to_owned()), id);
    assert_eq!(
        ops,
        [
            op("I", Some(1)),
            op("I", Some(2)),
            op("U", Some(1)),
            op("I", Some(5)),
            op("T", None),
            op("I", Some(2)),
            op("I", Some(3)),
            op("I", Some(4)),
            op("D", Some(3)),
            op("U", Some(4)),
        ]
    );
    // A run holding only a truncate empties the table.
    c.exec(&format!("truncate {s}.docs;"));
    run_ok(dir.path(), &spec);
    assert_eq!(delta_rows(&python, &root), Vec::<Value>::new());
}

/// Whether the logical cluster has `sql`'s row (a `select 1 ... where ...`).
fn exists(c: &mut Cluster, sql: &str) -> bool {
    let name = c.name.clone();
    c.db.rt
        .block_on(
            sqlx::query_scalar::<_, i32>(sql)
                .bind(&name)
                .fetch_optional(&mut c.db.conn),
        )
        .unwrap()
        .is_some()
}

const SLOT_EXISTS: &str = "select 1 from pg_replication_slots where slot_name = $1";
const PUBLICATION_EXISTS: &str = "select 1 from pg_publication where pubname = $1 || '_pub'";

#[test]
fn cdc_drop_slot_drops_the_slot_and_pipectls_publication_and_resets_the_position() {
    let Some((mut c, python, dir, spec, _lake, root)) =
        items("(id, note) values (1, 'one'), (2, 'two')", "")
    else {
        return;
    };
    let s = c.name.clone();
    run_ok(dir.path(), &spec);
    assert!(stored_lsn(dir.path()).is_some());

    // Without --yes: what it would do, nothing dropped.
    let (out, stdout, stderr) = output(pipectl(dir.path()).args(["cdc", "drop-slot"]).arg(&spec));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("replication slot {s}: would drop"))
            && stdout.contains("(pipectl created it)")
            && stdout.contains("run again with --yes"),
        "{stdout}"
    );
    assert!(exists(&mut c, SLOT_EXISTS));
    assert!(stored_lsn(dir.path()).is_some());

    // With --yes: slot, publication and position gone.
    let (out, stdout, stderr) = output(
        pipectl(dir.path())
            .args(["cdc", "drop-slot", "--yes"])
            .arg(&spec),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("position reset"), "{stdout}");
    assert!(!exists(&mut c, SLOT_EXISTS));
    assert!(!exists(&mut c, PUBLICATION_EXISTS));
    assert_eq!(stored_lsn(dir.path()), None);

    // The next run creates both again and copies the tables (the re-snapshot).
    c.exec(&format!(
        "insert into {s}.items (id, note) values (3, 'three')"
    ));
    run_ok(dir.path(), &spec);
    assert!(exists(&mut c, SLOT_EXISTS));
    assert_eq!(delta_rows(&python, &root), source_rows(&mut c));

    // A publication someone else created stays.
    let (out, _, stderr) = output(
        pipectl(dir.path())
            .args(["cdc", "drop-slot", "--yes"])
            .arg(&spec),
    );
    assert!(out.status.success(), "{stderr}");
    c.exec(&format!("create publication {s}_pub for table {s}.items"));
    run_ok(dir.path(), &spec);
    let (out, stdout, stderr) = output(
        pipectl(dir.path())
            .args(["cdc", "drop-slot", "--yes"])
            .arg(&spec),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("kept (not created by pipectl"), "{stdout}");
    assert!(exists(&mut c, PUBLICATION_EXISTS));
    assert!(!exists(&mut c, SLOT_EXISTS));
}

/// The newest run's record (`pipectl runs --format json`).
fn last_run(dir: &Path) -> Value {
    let (out, stdout, stderr) = output(pipectl(dir).args(["runs", "--format", "json"]));
    assert!(out.status.success(), "{stderr}");
    let runs: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    runs.into_iter()
        .max_by_key(|r| r["started_at"].as_str().unwrap_or_default().to_owned())
        .expect("a run")
}

#[test]
fn runs_record_the_replication_lag_they_caught_up_with() {
    let Some((mut c, _python, dir, spec, lake, _root)) = items("(id, note) values (1, 'one')", "")
    else {
        return;
    };
    let s = c.name.clone();
    run_ok(dir.path(), &spec);
    let source = |run: &Value| {
        run["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|st| st["name"] == "shop")
            .cloned()
            .unwrap()
    };
    // A first run has no position to be behind of.
    assert!(
        source(&last_run(dir.path()))
            .get("replication_lag")
            .is_none()
    );
    let committed = lsn(&stored_lsn(dir.path()).unwrap());

    // The slot lags: WAL written after the committed position, waiting at least 2 s.
    let wal = |c: &mut Cluster| {
        lsn(c.json_rows("select to_json(pg_current_wal_lsn()::text)")[0]
            .as_str()
            .unwrap())
    };
    let before = wal(&mut c);
    c.exec(&format!(
        "insert into {s}.items (id, note) select g, repeat('x', 100) from generate_series(2, 2001) g"
    ));
    let after = wal(&mut c);
    assert!(lsn(&c.confirmed_flush().unwrap()) <= before);
    std::thread::sleep(std::time::Duration::from_secs(2));
    run_ok(dir.path(), &spec);
    let run = last_run(dir.path());
    let lag = source(&run)["replication_lag"].clone();
    let bytes = lag["bytes"].as_u64().unwrap();
    let seconds = lag["seconds"].as_f64().unwrap();
    // Bytes: from the committed position to the new one (the run's stop marker, at the
    // server's WAL position when the run started), which holds the inserts' WAL.
    let reached = lsn(&stored_lsn(dir.path()).unwrap());
    assert_eq!(bytes, reached - committed, "{lag}");
    assert!(bytes >= after - before, "{bytes} < {}", after - before);
    // Seconds: the oldest waiting change's age when the run started: at least the 2 s
    // waited, at most its age now.
    let now_micros = c.json_rows("select to_json(extract(epoch from clock_timestamp()) * 1000000)")
        [0]
    .as_f64()
    .unwrap();
    let oldest = {
        use arrow::array::{Array, TimestampMicrosecondArray};
        let mut oldest = i64::MAX;
        for entry in std::fs::read_dir(lake.join("changes/items"))
            .unwrap()
            .flatten()
        {
            let file = std::fs::File::open(entry.path()).unwrap();
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .unwrap()
                    .build()
                    .unwrap();
            for batch in reader {
                let batch = batch.unwrap();
                let op = batch.column_by_name("Op").unwrap();
                let ts = batch.column_by_name("_pipectl_commit_ts").unwrap();
                let ts = ts
                    .as_any()
                    .downcast_ref::<TimestampMicrosecondArray>()
                    .unwrap();
                for i in (0..batch.num_rows()).filter(|&i| !op.is_null(i)) {
                    oldest = oldest.min(ts.value(i));
                }
            }
        }
        oldest
    };
    assert!(seconds >= 2.0, "{lag}");
    assert!(seconds <= (now_micros - oldest as f64) / 1e6, "{lag}");
    let id = run["id"].as_str().unwrap();
    let (_, shown, _) = output(pipectl(dir.path()).args(["runs", "show", id]));
    assert!(
        shown.contains("replication lag of `shop` at the start"),
        "{shown}"
    );

    // Caught up: the next run found nothing waiting.
    run_ok(dir.path(), &spec);
    let lag = source(&last_run(dir.path()))["replication_lag"].clone();
    assert_eq!(lag["seconds"].as_f64(), Some(0.0), "{lag}");
    assert!(
        lag["bytes"].as_u64().unwrap() > 0,
        "the previous run's stop marker: {lag}"
    );
}
