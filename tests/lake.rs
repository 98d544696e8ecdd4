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
fn ok(dir: &Path, args: &[&str]) -> String {
    let (out, stdout, stderr) = output(pipectl(dir).args(args));
    assert!(
        out.status.success(),
        "pipectl {args:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

/// Runs a query (in `database`, unless empty) and returns its rows as JSON objects.
fn query(dir: &Path, database: &str, sql: &str) -> Vec<Value> {
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

fn catalog_json(dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["catalog"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json"]);
    serde_json::from_str(&ok(dir, &all)).expect("catalog prints JSON")
}

/// Writes a Parquet file of `(id, name)` rows `from..to`.
fn write_parquet(path: &Path, from: i64, to: i64) {
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
    let names: Vec<&str> = tables
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["film", "language", "streaming"]);
    let streaming = catalog_json(dir.path(), &["show", "sakila.streaming"]);
    assert_eq!(streaming["format"]["kind"], "json");
    assert_eq!(streaming["format"]["compression"], "gzip");
    assert_eq!(streaming["hive_partitions"], true);
    assert_eq!(streaming["partition_keys"][0]["name"], "dt");
    assert_eq!(streaming["partition_keys"][0]["type"], "date");
    let columns: Vec<String> = streaming["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["name"].as_str().unwrap(),
                c["type"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        columns,
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
