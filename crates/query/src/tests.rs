//! Queries over small catalogued tables in a temporary folder: Hive-style and plain-folder
//! partitions, deprecated tables, type errors, and the three output formats.

use std::path::Path;

use super::*;

/// A catalog table over `dir` (a `file://` location ending in `/`), from the JSON the catalog
/// stores, so fields added later take their defaults.
fn table(dir: &Path, name: &str, extra: serde_json::Value) -> CatalogTable {
    let mut value = serde_json::json!({
        "database": "lake",
        "name": name,
        "location": format!("file://{}/", dir.display()),
        "format": { "kind": "csv", "header": true, "extension": ".csv" },
        "columns": [{ "name": "id", "type": "bigint" }, { "name": "city", "type": "string" }],
        "schema_version": 1,
        "created_at": "2026-12-01T00:00:00Z",
        "updated_at": "2026-12-01T00:00:00Z",
    });
    if let (Some(base), serde_json::Value::Object(extra)) = (value.as_object_mut(), extra) {
        base.extend(extra);
    }
    serde_json::from_value(value).expect("a valid catalog table")
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// The result of `sql` over `lake`: its schema and batches.
fn query(lake: &Lake, sql: &str) -> (SchemaRef, Vec<RecordBatch>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let out = runtime.block_on(lake.query(sql, false)).unwrap();
    (out.schema, out.batches)
}

fn rows(lake: &Lake, sql: &str) -> String {
    let (schema, batches) = query(lake, sql);
    render(&schema, &batches, OutputFormat::Csv).unwrap()
}

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn hive_partitions_are_columns_that_select_folders() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("year=2025/a.csv"),
        "id,city\n1,Oslo\n2,Rome\n",
    );
    write(&dir.path().join("year=2026/a.csv"), "id,city\n3,Lima\n");
    let t = table(
        dir.path(),
        "visits",
        serde_json::json!({
            "partition_keys": [{ "name": "year", "type": "int" }],
            "hive_partitions": true,
        }),
    );
    let lake = Lake::new(&[t], Some("lake"), no_env).unwrap();
    assert_eq!(
        rows(&lake, "select id, city, year from visits order by id"),
        "id,city,year\n1,Oslo,2025\n2,Rome,2025\n3,Lima,2026\n"
    );
    assert_eq!(
        rows(&lake, "select id from lake.visits where year = 2026"),
        "id\n3\n"
    );
}

#[test]
fn plain_folder_partitions_take_their_values_from_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("2025/11/a.csv"), "id,city\n1,Oslo\n");
    write(&dir.path().join("2026/01/a.csv"), "id,city\n2,Rome\n");
    let partition = |values: [&str; 2], location: &str| serde_json::json!({ "values": values, "location": location, "files": 1, "bytes": 16 });
    let t = table(
        dir.path(),
        "visits",
        serde_json::json!({
            "partition_keys": [
                { "name": "partition_0", "type": "string" },
                { "name": "partition_1", "type": "string" },
            ],
            "partitions": [partition(["2025", "11"], "2025/11/"), partition(["2026", "01"], "2026/01/")],
        }),
    );
    let lake = Lake::new(&[t], Some("lake"), no_env).unwrap();
    assert_eq!(
        rows(
            &lake,
            "select id, partition_0, partition_1 from visits order by id"
        ),
        "id,partition_0,partition_1\n1,2025,11\n2,2026,01\n"
    );
    assert_eq!(
        rows(&lake, "select city from visits where partition_0 = '2026'"),
        "city\nRome\n"
    );
}

#[test]
fn deprecated_tables_are_left_out_and_bad_types_name_the_table() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("a.csv"), "id,city\n1,Oslo\n");
    let old = table(
        dir.path(),
        "old",
        serde_json::json!({ "status": "deprecated" }),
    );
    let lake = Lake::new(&[old], Some("lake"), no_env).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let error = runtime
        .block_on(lake.query("select * from old", false))
        .err()
        .expect("a deprecated table is not read");
    assert!(error.to_string().contains("old"), "{error}");

    let bad = table(
        dir.path(),
        "bad",
        serde_json::json!({ "columns": [{ "name": "id", "type": "no_such_type" }] }),
    );
    let error = Lake::new(&[bad], Some("lake"), no_env)
        .err()
        .expect("an unknown column type is an error");
    assert!(
        matches!(&error, QueryError::Table { table, .. } if table == "lake.bad"),
        "{error}"
    );
}

#[test]
fn results_render_as_a_table_csv_or_json_and_empty_results_keep_their_columns() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("a.csv"), "id,city\n1,Oslo\n");
    let lake = Lake::new(
        &[table(dir.path(), "visits", serde_json::json!({}))],
        Some("lake"),
        no_env,
    )
    .unwrap();
    let (schema, batches) = query(&lake, "select id, city from visits");
    let table_text = render(&schema, &batches, OutputFormat::Table).unwrap();
    assert!(
        table_text.contains("| id | city |") && table_text.ends_with("(1 row)\n"),
        "{table_text}"
    );
    assert_eq!(
        render(&schema, &batches, OutputFormat::Json).unwrap(),
        "[{\"id\":1,\"city\":\"Oslo\"}]\n"
    );
    let (schema, batches) = query(&lake, "select id, city from visits where id > 5");
    let empty = render(&schema, &batches, OutputFormat::Table).unwrap();
    assert!(
        empty.contains("| id | city |") && empty.ends_with("(0 rows)\n"),
        "{empty}"
    );
    assert_eq!(
        render(&schema, &batches, OutputFormat::Json).unwrap(),
        "[]\n"
    );
    assert_eq!(
        render(&schema, &batches, OutputFormat::Csv).unwrap(),
        "id,city\n"
    );
}

/// A Delta table at `dir/orders` with one commit per entry of `commits` (ids, partition `dt`
/// = `a` for odd ids, `b` for even), catalogued as `lake.orders`.
fn delta_table(dir: &Path, commits: &[&[i64]]) -> CatalogTable {
    use datafusion::arrow::array::{Int64Array, StringArray};
    let store: Arc<dyn object_store::ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(dir).unwrap());
    let location = TableLocation::new(store, StorePath::from("orders"), "file://test");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (i, ids) in commits.iter().enumerate() {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("dt", DataType::Utf8, false),
            ])),
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from_iter_values(
                    ids.iter().map(|i| if i % 2 == 1 { "a" } else { "b" }),
                )),
            ],
        )
        .unwrap();
        runtime.block_on(async {
            let mut table = DeltaTable::open(location.clone()).await.unwrap();
            let mut writer = table.writer(pipectl_delta::WriteOptions {
                mode: pipectl_delta::WriteMode::Append,
                partition_by: vec!["dt".to_owned()],
                schema: pipectl_delta::SchemaPolicy::Evolve,
                target_file_size: None,
                txn: pipectl_delta::Txn::new("p", "s", "orders", i as i64 + 1),
            });
            writer.write(&batch).await.unwrap();
            let intent = writer.finish().await.unwrap();
            table.apply(&intent).await.unwrap();
        });
    }
    table(
        &dir.join("orders"),
        "orders",
        serde_json::json!({
            "format": { "kind": "delta" },
            "columns": [{ "name": "id", "type": "bigint", "nullable": false }],
            "partition_keys": [{ "name": "dt", "type": "string", "nullable": false }],
            "hive_partitions": true,
        }),
    )
}

#[test]
fn delta_tables_are_read_from_their_log_at_a_version_or_time() {
    let dir = tempfile::tempdir().unwrap();
    let t = delta_table(dir.path(), &[&[1, 2, 3], &[4, 5]]);
    // A data file the log does not list is not read.
    write(&dir.path().join("orders/dt=a/stray.parquet"), "junk");
    let lake = Lake::new(std::slice::from_ref(&t), Some("lake"), no_env).unwrap();
    assert_eq!(
        rows(&lake, "select id from orders order by id"),
        "id\n1\n2\n3\n4\n5\n"
    );
    assert_eq!(
        rows(
            &lake,
            "select id from lake.orders where dt = 'a' order by id"
        ),
        "id\n1\n3\n5\n"
    );
    let v0 = Lake::new(std::slice::from_ref(&t), Some("lake"), no_env)
        .unwrap()
        .with_as_of(AsOf::Version(0));
    assert_eq!(rows(&v0, "select count(*) as n from orders"), "n\n3\n");
    let long_ago = parse_as_of("2000-01-01T00:00:00Z").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for (as_of, message) in [
        (
            AsOf::Version(5),
            "table lake.orders: the Delta table has no version 5 (its newest is 1); list its versions with `pipectl catalog history lake.orders`",
        ),
        (
            long_ago,
            "table lake.orders: the Delta table has no version committed at or before 2000-01-01T00:00:00+00:00",
        ),
    ] {
        let lake = Lake::new(std::slice::from_ref(&t), Some("lake"), no_env)
            .unwrap()
            .with_as_of(as_of);
        let error = runtime
            .block_on(lake.query("select * from orders", false))
            .err()
            .expect("no such version")
            .to_string();
        assert!(error.starts_with(message), "{error}");
    }
}

#[test]
fn as_of_is_a_version_or_an_rfc_3339_time() {
    assert_eq!(parse_as_of("3"), Ok(AsOf::Version(3)));
    assert_eq!(
        parse_as_of("2026-12-01T10:00:00+01:00"),
        Ok(AsOf::Timestamp(
            chrono::DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z")
                .unwrap()
                .with_timezone(&chrono::Utc)
        ))
    );
    assert!(parse_as_of("yesterday").unwrap_err().contains("RFC 3339"));
}
