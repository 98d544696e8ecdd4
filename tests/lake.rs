//! Crawlers, the catalog and SQL over the lake: data is written, crawled, and read back through
//! `pipectl catalog` and `pipectl query`.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use serde_json::Value;

use crate::common::{output, pipectl};

/// Runs pipectl in `dir`, asserts success, returns stdout.
pub(crate) fn ok(dir: &Path, args: &[&str]) -> String {
    let (out, stdout, stderr) = output(pipectl(dir).args(args));
    assert!(
        out.status.success(),
        "pipectl {args:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

/// Runs a query (in `database`, unless empty) and returns its rows as JSON objects.
pub(crate) fn query(dir: &Path, database: &str, sql: &str) -> Vec<Value> {
    let mut args = vec!["query", sql, "--format", "json"];
    if !database.is_empty() {
        args.extend(["--database", database]);
    }
    let stdout = ok(dir, &args);
    match serde_json::from_str(&stdout).expect("query prints JSON") {
        Value::Array(rows) => rows,
        other => panic!("not an array: {other}"),
    }
}

pub(crate) fn catalog_json(dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["catalog"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json"]);
    serde_json::from_str(&ok(dir, &all)).expect("catalog prints JSON")
}

/// Writes a Parquet file of `(id, name)` rows `from..to`.
pub(crate) fn write_parquet(path: &Path, from: i64, to: i64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let ids: Vec<i64> = (from..to).collect();
    let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(names)),
        ],
    )
    .unwrap();
    let mut writer = ArrowWriter::try_new(File::create(path).unwrap(), schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

const SAKILA_TO_LAKE: &str = r#"version: 1
name: lake
connections:
  sakila: { url: sqlite://sakila.db }
  lake: { url: file://lake }
sources:
  sakila:
    type: sqlite
    connection: sakila
    include: [{ table: film }, { table: language }]
  rentals:
    type: generator
    count: 500
    seed: 7
    table: streaming
    template: >-
      {"timestamp": "{{date.now}}", "eventType": "{{random.arrayElement(["rent","buy","trailer"])}}",
      "film_id": {{random.number({"min":1,"max":1000})}}, "meta": {"platform": "{{random.arrayElement(["web","ios"])}}"}}
sinks:
  clean:
    type: object_store
    inputs: [sakila]
    connection: lake
    key: clean/{table}/
    format: { type: parquet }
  events:
    type: object_store
    inputs: [rentals]
    connection: lake
    key: streaming/dt={date}/
    format: { type: jsonl, compression: gzip }
crawlers:
  catalog:
    type: catalog
    inputs: [clean, events]
    database: sakila
"#;

#[test]
fn pipeline_crawler_catalogues_sinks_and_query_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        crate::common::repo().join("examples/quickstart/sakila.db"),
        dir.path().join("sakila.db"),
    )
    .unwrap();
    std::fs::write(dir.path().join("p.yaml"), SAKILA_TO_LAKE).unwrap();
    ok(dir.path(), &["run", "p.yaml"]);

    let tables = catalog_json(dir.path(), &["tables", "sakila"]);
    let names = crate::common::strings(&tables, "name");
    assert_eq!(names, ["film", "language", "streaming"]);
    let streaming = catalog_json(dir.path(), &["show", "sakila.streaming"]);
    assert_eq!(streaming["format"]["kind"], "json");
    assert_eq!(streaming["format"]["compression"], "gzip");
    assert_eq!(streaming["hive_partitions"], true);
    assert_eq!(streaming["partition_keys"][0]["name"], "dt");
    assert_eq!(streaming["partition_keys"][0]["type"], "date");
    assert_eq!(
        columns_of(&streaming),
        [
            "eventType string",
            "film_id int",
            "meta struct<platform:string>",
            "timestamp string"
        ]
    );
    assert!(
        streaming["location"]
            .as_str()
            .unwrap()
            .ends_with("/lake/streaming/"),
        "{streaming}"
    );

    // The seed's checks.
    let films = query(dir.path(), "sakila", "select * from film limit 20");
    assert_eq!(films.len(), 20);
    assert!(films[0]["title"].is_string(), "{}", films[0]);
    let counts = query(
        dir.path(),
        "sakila",
        "select eventType, count(*) as n from streaming group by 1 order by 1",
    );
    let total: i64 = counts.iter().map(|r| r["n"].as_i64().unwrap()).sum();
    assert_eq!(total, 500);
    assert_eq!(counts.len(), 3, "{counts:?}");
    let nested = query(
        dir.path(),
        "sakila",
        "select count(*) as n from streaming where meta['platform'] = 'web' and dt = current_date",
    );
    assert!(nested[0]["n"].as_i64().unwrap() > 0, "{nested:?}");
    // Joins across tables, qualified names work from any default database.
    let joined = query(
        dir.path(),
        "",
        "select l.name, count(*) as n from sakila.film f join sakila.language l on f.language_id = l.language_id group by 1",
    );
    assert_eq!(joined.len(), 1, "{joined:?}");
    assert_eq!(joined[0]["n"], 1000);

    // A second run adds files to the same tables; the catalog counts them.
    ok(dir.path(), &["run", "p.yaml"]);
    let film = catalog_json(dir.path(), &["show", "film"]);
    assert_eq!(film["partitions"][0]["files"], 2);
    assert_eq!(film["schema_version"], 1, "same schema, same version");
    assert_eq!(
        query(dir.path(), "sakila", "select count(*) as n from film")[0]["n"],
        2000
    );
}

#[test]
fn hive_partitions_prune_the_files_read() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake/events");
    let mut next = 0;
    for year in [2025, 2026] {
        for month in 1..=3 {
            write_parquet(
                &lake.join(format!("year={year}/month={month:02}/part-0.parquet")),
                next,
                next + 10,
            );
            next += 10;
        }
    }
    let report = ok(
        dir.path(),
        &["crawl", "--path", "file://lake/events", "--database", "raw"],
    );
    assert!(report.contains("raw.events"), "{report}");
    let table = catalog_json(dir.path(), &["show", "raw.events"]);
    assert_eq!(table["partition_keys"][0]["name"], "year");
    assert_eq!(table["partition_keys"][0]["type"], "int");
    assert_eq!(table["partition_keys"][1]["name"], "month");
    assert_eq!(
        table["partition_keys"][1]["type"], "string",
        "leading zeros keep a key text"
    );
    assert_eq!(table["partitions"].as_array().unwrap().len(), 6);
    let rows = query(
        dir.path(),
        "raw",
        "select count(*) as n, min(id) as lo from events where year = 2026 and month = '02'",
    );
    assert_eq!(rows[0]["n"], 10);
    assert_eq!(rows[0]["lo"], 40);
    // The plan reads only the one matching file.
    let plan = ok(
        dir.path(),
        &[
            "query",
            "explain select sum(id) from events where year = 2026 and month = '02'",
            "--database",
            "raw",
            "--format",
            "csv",
        ],
    );
    let files = plan.matches(".parquet").count();
    assert_eq!(files, 1, "{plan}");
    assert!(plan.contains("year=2026/month=02"), "{plan}");
}

pub(crate) fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn gzip(path: &Path, text: &str) {
    use std::io::Write;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut enc =
        flate2::write::GzEncoder::new(File::create(path).unwrap(), flate2::Compression::fast());
    enc.write_all(text.as_bytes()).unwrap();
    enc.finish().unwrap();
}

/// The names of a database's tables.
pub(crate) fn table_names(dir: &Path, database: &str) -> Vec<String> {
    catalog_json(dir, &["tables", database])
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// A table's columns as `name type`.
pub(crate) fn columns_of(table: &Value) -> Vec<String> {
    names_and_types(&table["columns"])
}

/// A list of `{name, type}` objects (columns, partition keys) as `name type`.
pub(crate) fn names_and_types(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["name"].as_str().unwrap(),
                c["type"].as_str().unwrap()
            )
        })
        .collect()
}

pub(crate) fn crawl(dir: &Path, path: &str, database: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "crawl",
        "--path",
        path,
        "--database",
        database,
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(dir, &args)).expect("crawl prints JSON")
}

#[test]
fn csv_gzip_json_and_plain_folder_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        &d.join("lake/sales/2026/11/a.csv"),
        "id;city;amount;day\n1;Rome;2.5;2026-11-01\n2;Oslo;3;2026-11-02\n",
    );
    write(
        &d.join("lake/sales/2026/12/b.csv"),
        "id;city;amount;day\n3;Lima;4.25;2026-12-01\n",
    );
    gzip(
        &d.join("lake/clicks/part-0.jsonl.gz"),
        "{\"user\":{\"id\":1,\"tags\":[\"a\"]},\"n\":1}\n{\"user\":{\"id\":2,\"tags\":[]},\"n\":2.5}\n",
    );
    let report = crawl(d, "file://lake/sales", "raw", &[]);
    assert_eq!(report[0]["tables"][0]["action"], "created", "{report}");
    crawl(d, "file://lake/clicks", "raw", &[]);

    let sales = catalog_json(d, &["show", "raw.sales"]);
    assert_eq!(sales["format"]["kind"], "csv");
    assert_eq!(sales["format"]["delimiter"], ";");
    assert_eq!(sales["format"]["header"], true);
    assert_eq!(sales["hive_partitions"], false);
    assert_eq!(
        columns_of(&sales),
        ["id int", "city string", "amount double", "day date"]
    );
    assert_eq!(
        names_and_types(&sales["partition_keys"]),
        ["partition_0 int", "partition_1 int"]
    );
    let rows = query(
        d,
        "raw",
        "select id, city, amount, partition_1 from sales where partition_0 = 2026 and partition_1 = 12",
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["city"], "Lima");
    assert_eq!(rows[0]["amount"], 4.25);
    let all = query(
        d,
        "raw",
        "select sum(amount) as s, max(day) as d from sales",
    );
    assert_eq!(all[0]["s"], 9.75);
    assert_eq!(all[0]["d"], "2026-12-01");

    let clicks = catalog_json(d, &["show", "raw.clicks"]);
    assert_eq!(clicks["format"]["compression"], "gzip");
    assert_eq!(
        columns_of(&clicks),
        ["n double", "user struct<id:int,tags:array<string>>"]
    );
    let rows = query(
        d,
        "raw",
        "select sum(n) as n, max(user['id']) as u from clicks",
    );
    assert_eq!(rows[0]["n"], 3.5);
    assert_eq!(rows[0]["u"], 2);

    // The text forms people read.
    let text = ok(d, &["catalog", "show", "raw.sales"]);
    assert!(text.contains("partition_1"), "{text}");
    assert!(text.contains("delimiter ';'"), "{text}");
    let text = ok(d, &["catalog", "databases"]);
    assert!(text.contains("raw") && text.contains('2'), "{text}");
    let text = ok(
        d,
        &["query", "select city from sales order by id", "-d", "raw"],
    );
    assert!(
        text.contains("| Rome |") && text.contains("(3 rows)"),
        "{text}"
    );
    let csv = ok(
        d,
        &[
            "query",
            "select id, city from sales order by id",
            "-d",
            "raw",
            "--format",
            "csv",
        ],
    );
    assert_eq!(csv, "id,city\n1,Rome\n2,Oslo\n3,Lima\n");
}

#[test]
fn compatible_siblings_are_one_table_incompatible_ones_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(&d.join("lake/mixed/eu/x.csv"), "id,name,v\n1,a,2\n");
    write(&d.join("lake/mixed/us/y.csv"), "id,name,v\n2,b,3\n");
    write(&d.join("lake/zoo/film/f.csv"), "film_id,title\n1,Alien\n");
    write(
        &d.join("lake/zoo/actor/a.jsonl"),
        "{\"actor_id\":1,\"first\":\"Sigourney\"}\n",
    );
    crawl(d, "file://lake/mixed", "m", &[]);
    let tables = catalog_json(d, &["tables", "m"]);
    assert_eq!(tables.as_array().unwrap().len(), 1, "{tables}");
    assert_eq!(tables[0]["name"], "mixed");
    assert_eq!(tables[0]["partition_keys"][0]["name"], "partition_0");
    let rows = query(
        d,
        "m",
        "select partition_0 as p, sum(v) as v from mixed group by 1 order by 1",
    );
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["p"], "us");

    crawl(d, "file://lake/zoo", "z", &[]);
    let names: Vec<String> = catalog_json(d, &["tables", "z"])
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{} {}",
                t["name"].as_str().unwrap(),
                t["format"]["kind"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(names, ["actor json", "film csv"]);
    // table_level makes the folder itself the table, whatever it holds.
    crawl(d, "file://lake/mixed", "lvl", &["--table-level", "1"]);
    assert_eq!(table_names(d, "lvl"), ["eu", "us"]);
}

#[test]
fn schema_changes_follow_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        &d.join("lake/ev/day=1/a.jsonl"),
        "{\"id\":1,\"d\":\"2026-01-01\",\"gone\":1}\n",
    );
    crawl(d, "file://lake/ev", "s", &[]);
    let v1 = catalog_json(d, &["show", "s.ev"]);
    assert_eq!(v1["schema_version"], 1);
    // JSON objects' fields are listed by name.
    assert_eq!(columns_of(&v1), ["d string", "gone int", "id int"]);

    // A new partition with a wider id, a new column, and without `gone`.
    std::fs::remove_dir_all(d.join("lake/ev/day=1")).unwrap();
    write(
        &d.join("lake/ev/day=1/a.jsonl"),
        "{\"id\":5000000000,\"d\":\"x\",\"extra\":true}\n",
    );
    let report = crawl(d, "file://lake/ev", "s", &["--schema-change", "log"]);
    let changes = report[0]["tables"][0]["changes"].to_string();
    assert!(
        changes.contains("not applied (schema_change: log): column id changed type int -> bigint"),
        "{changes}"
    );
    assert_eq!(
        catalog_json(d, &["show", "s.ev"])["schema_version"],
        1,
        "log changes nothing"
    );

    let report = crawl(d, "file://lake/ev", "s", &[]);
    assert_eq!(report[0]["tables"][0]["action"], "updated", "{report}");
    let v2 = catalog_json(d, &["show", "s.ev"]);
    assert_eq!(v2["schema_version"], 2);
    assert_eq!(
        columns_of(&v2),
        ["d string", "gone int", "id bigint", "extra boolean"],
        "widened, added, and the vanished column kept"
    );
    let history = catalog_json(d, &["history", "s.ev"]);
    assert_eq!(history.as_array().unwrap().len(), 2);
    let text = history[1]["changes"].to_string();
    assert!(text.contains("added column extra boolean"), "{text}");
    assert!(text.contains("column gone no longer found; kept"), "{text}");
    let rows = query(d, "s", "select id, gone, extra from ev");
    assert_eq!(rows[0]["id"], 5_000_000_000i64);
    assert!(rows[0].get("gone").is_none_or(Value::is_null), "{rows:?}");
    let text = ok(d, &["catalog", "history", "s.ev"]);
    assert!(
        text.contains("version 2") && text.contains("- added column extra boolean"),
        "{text}"
    );

    // Recrawling only new folders reads nothing known.
    let report = crawl(d, "file://lake/ev", "s", &["--recrawl", "new-folders"]);
    assert_eq!(report[0]["files_read"], 0, "{report}");
    write(
        &d.join("lake/ev/day=2/b.jsonl"),
        "{\"id\":7,\"d\":\"y\",\"late\":1.5}\n",
    );
    let report = crawl(d, "file://lake/ev", "s", &["--recrawl", "new-folders"]);
    assert_eq!(report[0]["files_read"], 1, "{report}");
    // Incremental crawls only log schema changes (as Glue forces LOG); the folder is added.
    let changes = report[0]["tables"][0]["changes"].to_string();
    assert!(
        changes.contains(
            "not applied (schema_change: log, forced by recrawl: new_folders): added column late double"
        ) && changes.contains("added 1 partitions"),
        "{changes}"
    );
    assert!(!columns_of(&catalog_json(d, &["show", "s.ev"])).contains(&"late double".to_owned()));
    let rows = query(d, "s", "select id from ev where day = 2");
    assert_eq!(rows, [serde_json::json!({"id": 7})]);

    // Data gone: kept by default, deprecated under `deprecate`, and left out of queries.
    write(&d.join("lake/other/x.csv"), "a\n1\n");
    crawl(d, "file://lake/other", "s", &[]);
    std::fs::remove_dir_all(d.join("lake/other")).unwrap();
    std::fs::create_dir_all(d.join("lake/other")).unwrap();
    crawl(
        d,
        "file://lake/other",
        "s",
        &["--schema-change", "deprecate"],
    );
    let other = catalog_json(d, &["show", "s.other"]);
    assert_eq!(other["status"], "deprecated", "{other}");
    let (out, _, stderr) = output(pipectl(d).args(["query", "select * from other", "-d", "s"]));
    assert!(!out.status.success());
    assert!(stderr.contains("other"), "{stderr}");
}

const LANDING_TO_CLEAN: &str = r#"version: 1
name: clean
connections:
  lake: { url: file://lake }
sources:
  landing:
    type: files
    connection: lake
    prefix: landing/
    error_table: landing_errors
sinks:
  clean:
    type: object_store
    inputs: [landing]
    connection: lake
    key: clean/{table}/
    format: { type: parquet }
crawlers:
  catalog:
    type: catalog
    inputs: [clean]
    database: clean
"#;

#[test]
fn files_source_reads_each_file_once_and_skips_malformed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("p.yaml"), LANDING_TO_CLEAN).unwrap();
    write(
        &d.join("lake/landing/film/1.csv"),
        "id,title\n1,Alien\n2,Heat\n",
    );
    write(
        &d.join("lake/landing/actor/1.jsonl"),
        "{\"id\":1,\"name\":\"Al\"}\n",
    );
    write(
        &d.join("lake/landing/film/_tmp/ignored.csv"),
        "id,title\n9,Nope\n",
    );
    ok(d, &["run", "p.yaml"]);
    assert_eq!(
        query(d, "clean", "select count(*) as n from film")[0]["n"],
        2
    );
    assert_eq!(
        query(d, "clean", "select count(*) as n from actor")[0]["n"],
        1
    );

    // Nothing new: nothing read, nothing written.
    let summary = ok(d, &["run", "p.yaml", "--format", "json"]);
    let run: Value = serde_json::from_str(&summary).unwrap();
    let landing = crate::common::step_where(&run, "name", "landing");
    assert_eq!(landing["rows"], 0, "{run}");
    assert_eq!(
        query(d, "clean", "select count(*) as n from film")[0]["n"],
        2
    );

    // A new file, a malformed one (line 2 is cut short), and one with a column order of its own.
    write(&d.join("lake/landing/film/2.csv"), "id,title\n3,Ran\n");
    write(
        &d.join("lake/landing/film/3.jsonl"),
        "{\"id\":4,\"title\":\"Up\"}\n{\"id\":5,\"title\":\n",
    );
    write(&d.join("lake/landing/film/4.csv"), "title,id\nJaws,6\n");
    let (out, stdout, stderr) = output(pipectl(d).args(["run", "p.yaml"]));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("film/3.jsonl") && stderr.contains("line 2"),
        "{stderr}"
    );
    let ids: Vec<i64> = query(d, "clean", "select id from film order by id")
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids,
        [1, 2, 3, 6],
        "read once each, malformed file skipped whole"
    );
    let errors = query(
        d,
        "clean",
        "select \"table\", file, error from landing_errors",
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["file"], "film/3.jsonl");
    assert!(
        errors[0]["error"].as_str().unwrap().contains("line 2"),
        "{errors:?}"
    );

    // The bookmark is visible and resettable like database bookmarks.
    let state = ok(d, &["state", "clean", "--format", "json"]);
    assert!(state.contains("files:landing"), "{state}");
    // A rewritten file (new size) is read again.
    write(
        &d.join("lake/landing/film/3.jsonl"),
        "{\"id\":4,\"title\":\"Up\"}\n{\"id\":5,\"title\":\"Fixed\"}\n",
    );
    ok(d, &["run", "p.yaml"]);
    assert_eq!(
        query(d, "clean", "select count(*) as n from film")[0]["n"],
        6
    );
}

#[test]
fn a_failed_run_reads_the_same_files_again() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The sink's connection is a file where a folder should be: the run fails after reading.
    let spec = LANDING_TO_CLEAN.replace(
        "  lake: { url: file://lake }",
        "  lake: { url: file://lake }\n  broken: { url: file://broken/x }",
    );
    let failing = spec.replace(
        "    connection: lake\n    key: clean",
        "    connection: broken\n    key: clean",
    );
    std::fs::write(d.join("fail.yaml"), failing).unwrap();
    std::fs::write(d.join("p.yaml"), spec).unwrap();
    std::fs::write(d.join("broken"), "not a folder").unwrap();
    write(&d.join("lake/landing/film/1.csv"), "id,title\n1,Alien\n");
    let (out, _, _) = output(pipectl(d).args(["run", "fail.yaml"]));
    assert!(!out.status.success());
    let fail_state = ok(d, &["state", "clean", "--format", "json"]);
    assert!(
        !fail_state.contains("files:landing"),
        "no bookmark after a failed run: {fail_state}"
    );
    ok(d, &["run", "p.yaml"]);
    assert_eq!(
        query(d, "clean", "select count(*) as n from film")[0]["n"],
        1
    );
}

#[test]
fn lake_example_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let examples = crate::common::repo().join("examples");
    std::fs::create_dir_all(d.join("quickstart")).unwrap();
    std::fs::create_dir_all(d.join("lake")).unwrap();
    std::fs::copy(
        examples.join("quickstart/sakila.db"),
        d.join("quickstart/sakila.db"),
    )
    .unwrap();
    for f in ["land.yaml", "pipeline.yaml"] {
        std::fs::copy(examples.join("lake").join(f), d.join("lake").join(f)).unwrap();
    }
    ok(d, &["validate", "lake"]);
    ok(d, &["run", "lake/land.yaml"]);
    ok(d, &["run", "lake/pipeline.yaml"]);
    let films = query(d, "sakila", "select * from film limit 20");
    assert_eq!(films.len(), 20);
    let events = query(
        d,
        "sakila",
        "select eventType, count(*) as n from streaming group by 1 order by 1",
    );
    let kinds: Vec<&str> = events
        .iter()
        .map(|r| r["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["buy", "rent", "trailer"]);
    assert_eq!(
        events.iter().map(|r| r["n"].as_i64().unwrap()).sum::<i64>(),
        20_000
    );
    // Parquet in the clean zone has the landing zone's rows.
    let counts = query(
        d,
        "sakila",
        "select (select count(*) from film) as films, (select count(*) from payment) as payments",
    );
    assert_eq!(counts[0]["films"], 1000);
    assert!(counts[0]["payments"].as_i64().unwrap() > 0);
    let film = catalog_json(d, &["show", "sakila.film"]);
    assert_eq!(film["format"]["kind"], "parquet");
    assert!(
        film["location"]
            .as_str()
            .unwrap()
            .ends_with("/lake/lake/clean/sakila/film/"),
        "{film}"
    );
    // A second clean run converts nothing again.
    ok(d, &["run", "lake/pipeline.yaml"]);
    assert_eq!(
        query(d, "sakila", "select count(*) as n from film")[0]["n"],
        1000
    );
}

#[test]
fn s3_lake_is_crawled_and_queried() {
    let Some((endpoint, bucket)) = crate::common::s3_server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let prefix = format!(
        "lake-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    );
    let lake = crate::common::s3_lake(&bucket, &prefix);
    std::fs::write(
        d.join("s3.yaml"),
        format!(
            r#"version: 1
name: s3lake
{lake}
sources:
  events:
    type: generator
    count: 300
    seed: 3
    table: streaming
    template: '{{"eventType": "{{{{random.arrayElement(["rent","buy"])}}}}", "n": {{{{random.number(9)}}}}}}'
sinks:
  out:
    type: object_store
    inputs: [events]
    connection: lake
    key: streaming/dt={{date}}/
    format: {{ type: csv, compression: gzip }}
crawlers:
  catalog:
    type: catalog
    inputs: [out]
    database: s3db
"#
        ),
    )
    .unwrap();
    ok(d, &["run", "s3.yaml"]);
    let table = catalog_json(d, &["show", "s3db.streaming"]);
    assert_eq!(
        table["location"],
        format!("s3://{bucket}/{prefix}/streaming/")
    );
    assert_eq!(table["storage"]["endpoint"], endpoint);
    assert_eq!(
        table["storage"]["secret_access_key"], "${env:AWS_SECRET_ACCESS_KEY}",
        "only the reference is stored"
    );
    assert_eq!(table["format"]["compression"], "gzip");
    let rows = query(
        d,
        "s3db",
        "select eventType, count(*) as n from streaming group by 1 order by 1",
    );
    assert_eq!(
        rows.iter().map(|r| r["n"].as_i64().unwrap()).sum::<i64>(),
        300,
        "{rows:?}"
    );
    // An ad-hoc crawl of the same prefix finds the same table.
    let report = crawl(
        d,
        &format!("s3://{bucket}/{prefix}/streaming"),
        "adhoc",
        &["--endpoint", &endpoint],
    );
    assert_eq!(report[0]["tables"][0]["table"], "streaming", "{report}");
    assert_eq!(
        query(d, "adhoc", "select count(*) as n from streaming")[0]["n"],
        300
    );
}

#[test]
fn catalog_and_query_work_while_serve_holds_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_parquet(&d.join("lake/t/part-0.parquet"), 0, 5);
    crawl(d, "file://lake/t", "db", &[]);
    std::fs::create_dir_all(d.join("pipelines")).unwrap();
    let mut child = pipectl(d)
        .args(["serve", "pipelines", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("pipectl serve starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !d.join(".pipectl-state.daemon").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let tables = catalog_json(d, &["tables"]);
    let rows = query(d, "db", "select sum(id) as s from t");
    let text = ok(d, &["catalog", "show", "db.t"]);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(tables[0]["name"], "t", "{tables}");
    assert_eq!(rows[0]["s"], 10);
    assert!(text.contains("db.t"), "{text}");
}
