//! The read and maintenance side of Delta tables: tables written directly through pipectl-delta
//! (as any other writer would), then crawled, queried (partition filters, time travel),
//! compacted and vacuumed through the `pipectl` binary, and read back (also by the Python
//! `deltalake` package).

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Decimal128Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use pipectl_delta::{DeltaTable, SchemaPolicy, TableLocation, Txn, WriteMode, WriteOptions};
use serde_json::Value;

use crate::common::{output, pipectl};
use crate::lake::{catalog_json, ok, query};

/// The Delta table at `dir/root` (a folder path relative to `dir`).
pub(crate) fn location(dir: &Path, root: &str) -> TableLocation {
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(dir).unwrap());
    TableLocation::new(
        store,
        StorePath::from(root),
        format!("file://{}", dir.display()),
    )
}

/// `id` (bigint, not null), `name` (string), `amount` (decimal(12,3)), `dt` (partition).
pub(crate) fn orders(ids: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("amount", DataType::Decimal128(12, 3), true),
        Field::new("dt", DataType::Utf8, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.to_vec())),
        Arc::new(StringArray::from_iter(
            ids.iter().map(|i| (i % 3 != 0).then(|| format!("n{i}"))),
        )),
        Arc::new(
            Decimal128Array::from_iter(ids.iter().map(|i| Some(i128::from(*i) * 1001)))
                .with_precision_and_scale(12, 3)
                .unwrap(),
        ),
        Arc::new(StringArray::from_iter_values(ids.iter().map(|i| {
            if i % 2 == 0 {
                "2026-01-02"
            } else {
                "2026-01-01"
            }
        }))),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

/// How many Parquet files are under `root` (current and removed data files alike).
fn parquet_file_count(root: &Path) -> usize {
    crate::common::files_under(root)
        .into_iter()
        .filter(|f| f.ends_with(".parquet"))
        .count()
}

/// `n` appends to the table at `dir/lake/orders`, commit `i` adding the orders `2i` and `2i + 1`
/// (txn versions 1 to `n`).
fn commit_order_pairs(dir: &Path, n: i64) {
    for i in 0..n {
        commit(
            dir,
            "lake/orders",
            WriteMode::Append,
            i + 1,
            &[orders(&[i * 2, i * 2 + 1])],
        );
    }
}

/// Commits `batches` (each its own data file) to the table at `dir/root` in one commit.
pub(crate) fn commit(
    dir: &Path,
    root: &str,
    mode: WriteMode,
    version: i64,
    batches: &[RecordBatch],
) {
    let location = location(dir, root);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut table = DeltaTable::open(location).await.unwrap();
        let mut writer = table.writer(WriteOptions {
            mode,
            partition_by: vec!["dt".to_owned()],
            schema: SchemaPolicy::Evolve,
            target_file_size: None,
            txn: Txn::new("test", "orders", root, version),
        });
        for b in batches {
            writer.write(b).await.unwrap();
        }
        let intent = writer.finish().await.unwrap();
        table.apply(&intent).await.unwrap();
    });
}

fn ids(rows: &[Value]) -> Vec<i64> {
    rows.iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

#[test]
fn a_crawled_delta_table_is_catalogued_from_its_log_and_queried_with_time_travel() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    commit(
        dir,
        "lake/orders",
        WriteMode::Append,
        1,
        &[orders(&[1, 2, 3, 4])],
    );
    commit(dir, "lake/orders", WriteMode::Append, 2, &[orders(&[5, 6])]);
    // A file the log does not list (left by a crashed writer): not part of the table.
    std::fs::write(
        dir.join("lake/orders/dt=2026-01-01/stray.parquet"),
        b"not parquet",
    )
    .unwrap();

    let lake = format!("file://{}/lake", dir.display());
    ok(dir, &["crawl", "--path", &lake, "--database", "sales"]);
    let t = catalog_json(dir, &["show", "sales.orders"]);
    assert_eq!(t["format"]["kind"], "delta", "{t:#}");
    assert_eq!(t["delta"]["version"], 1, "{t:#}");
    assert_eq!(
        t["columns"],
        serde_json::json!([
            {"name": "id", "type": "bigint", "nullable": false},
            {"name": "name", "type": "string"},
            {"name": "amount", "type": "decimal(12,3)"},
        ]),
        "{t:#}"
    );
    assert_eq!(
        t["partition_keys"],
        serde_json::json!([{"name": "dt", "type": "string", "nullable": false}])
    );
    let partitions = t["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 2, "{t:#}");
    let files: u64 = partitions
        .iter()
        .map(|p| p["files"].as_u64().unwrap())
        .sum();
    assert_eq!(files, 4, "two commits, two partitions each: {t:#}");
    assert!(
        t["skipped_files"].is_null(),
        "nothing guessed from files: {t:#}"
    );
    let commits = t["delta"]["commits"].as_array().unwrap();
    assert_eq!(commits.len(), 2);
    assert_eq!(commits[0]["version"], 1);

    let text = ok(dir, &["catalog", "show", "sales.orders"]);
    assert!(text.contains("delta       version 1"), "{text}");
    let history = ok(dir, &["catalog", "history", "sales.orders"]);
    assert!(history.contains("Delta table at version 1"), "{history}");
    assert!(history.contains("WRITE"), "{history}");

    // The newest version, a partition filter, decimals and NULLs as written.
    let all = query(dir, "sales", "select * from orders order by id");
    assert_eq!(ids(&all), [1, 2, 3, 4, 5, 6]);
    assert_eq!(all[2]["name"], Value::Null);
    assert_eq!(all[1]["name"], "n2");
    assert_eq!(all[1]["amount"].to_string().trim_matches('"'), "2.002");
    let odd = query(
        dir,
        "sales",
        "select id from orders where dt = '2026-01-01' order by id",
    );
    assert_eq!(ids(&odd), [1, 3, 5]);
    // The filter prunes the other partition's files.
    let plan = ok(
        dir,
        &[
            "query",
            "explain select id from orders where dt = '2026-01-01'",
            "--database",
            "sales",
            "--format",
            "csv",
        ],
    );
    assert!(!plan.contains("dt=2026-01-02"), "{plan}");
    assert!(plan.contains("dt=2026-01-01"), "{plan}");

    // Time travel by version and by time.
    let v0 = ok(
        dir,
        &[
            "query",
            "select id from orders order by id",
            "--database",
            "sales",
            "--format",
            "json",
            "--as-of",
            "0",
        ],
    );
    let v0: Vec<Value> = serde_json::from_str(&v0).unwrap();
    assert_eq!(ids(&v0), [1, 2, 3, 4]);
    let first_commit = commits[1]["at"].as_str().unwrap();
    let at = ok(
        dir,
        &[
            "query",
            "select count(*) as n from orders",
            "--database",
            "sales",
            "--format",
            "json",
            "--as-of",
            first_commit,
        ],
    );
    assert_eq!(
        serde_json::from_str::<Value>(&at).unwrap()[0]["n"],
        4,
        "{at}"
    );

    // A version the table does not have.
    let (out, _, stderr) = output(pipectl(dir).args([
        "query",
        "select * from orders",
        "--database",
        "sales",
        "--as-of",
        "7",
    ]));
    assert!(!out.status.success());
    assert!(
        stderr.contains("table sales.orders: the Delta table has no version 7 (its newest is 1)"),
        "{stderr}"
    );

    // A new commit: the next crawl records the version; the schema stays version 1.
    commit(dir, "lake/orders", WriteMode::Overwrite, 3, &[orders(&[9])]);
    ok(dir, &["crawl", "--path", &lake, "--database", "sales"]);
    let t = catalog_json(dir, &["show", "sales.orders"]);
    assert_eq!(t["delta"]["version"], 2);
    assert_eq!(t["schema_version"], 1);
    assert_eq!(
        t["last_crawl"]["changes"],
        serde_json::json!(["Delta version 1 -> 2"])
    );
    assert_eq!(ids(&query(dir, "sales", "select id from orders")), [9]);
}

/// A pipeline whose `object_store` sink `lake` writes tables under `lake/{table}/`.
pub(crate) const SHOP: &str = r#"version: 1
name: shop
connections:
  lake: { url: file://lake }
sources:
  gen: { type: generator, count: 1, template: '{"a": 1}' }
sinks:
  lake:
    type: object_store
    inputs: [gen]
    connection: lake
    key: "{table}/"
    format: { type: parquet }
"#;

/// The table at `root` as the Python `deltalake` package reads it: sorted ids, file count.
fn read_with_deltalake(python: &Path, root: &Path) -> (Vec<i64>, usize) {
    let read = crate::common::python_json(
        crate::common::python_script(
            python,
            "import sys, json\nfrom deltalake import DeltaTable\nt = DeltaTable(sys.argv[1])\n\
             ids = sorted(t.to_pyarrow_table().column('id').to_pylist())\n\
             print(json.dumps([ids, len(t.file_uris())]))",
        )
        .arg(root),
        "deltalake",
    );
    serde_json::from_value(read).unwrap()
}

#[test]
fn compact_and_vacuum_maintain_the_delta_tables_of_a_pipelines_sinks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("shop.yaml"), SHOP).unwrap();
    commit_order_pairs(dir, 6);
    // Not a Delta table: left alone.
    crate::lake::write_parquet(&dir.join("lake/plain/part-1.parquet"), 0, 3);
    let root = dir.join("lake/orders");
    let python = crate::common::delta_readers_python();

    let text = ok(dir, &["compact", "shop.yaml", "--sink", "lake"]);
    assert!(
        text.contains("sink lake, table orders (file://lake/orders): compacted 12 files (")
            && text.contains("into 2 (")
            && text.contains("in 2 partitions; version 5 -> 6"),
        "{text}"
    );
    assert!(!text.contains("plain"), "{text}");
    let expected: Vec<i64> = (0..12).collect();
    if let Some(python) = &python {
        assert_eq!(read_with_deltalake(python, &root), (expected.clone(), 2));
    }
    let again = ok(dir, &["compact", "shop.yaml", "--format", "json"]);
    let again: Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again[0]["version_after"], 6, "{again:#}");
    assert_eq!(again[0]["files_after"], 2, "{again:#}");

    // The default retention (7 days) keeps the replaced files for time travel.
    let kept = ok(dir, &["vacuum", "shop.yaml"]);
    assert!(
        kept.contains(
            "deleted 0 files that left the table more than 7d ago; version 6 keeps its 2 files"
        ),
        "{kept}"
    );
    let dry = ok(
        dir,
        &["vacuum", "shop.yaml", "--retention", "0s", "--dry-run"],
    );
    assert!(dry.contains("would delete 12 files"), "{dry}");
    let parquet_files = || parquet_file_count(&root);
    assert_eq!(parquet_files(), 14);
    let done = ok(
        dir,
        &[
            "vacuum",
            "shop.yaml",
            "--table",
            "orders",
            "--retention",
            "0s",
        ],
    );
    assert!(done.contains("deleted 12 files"), "{done}");
    assert_eq!(parquet_files(), 2);
    if let Some(python) = &python {
        assert_eq!(read_with_deltalake(python, &root), (expected, 2));
    }

    // Bad selections name the file, sink and table.
    for (args, message) in [
        (
            vec!["compact", "shop.yaml", "--sink", "nope"],
            "shop.yaml has no sink `nope`; its sinks: lake",
        ),
        (
            vec!["vacuum", "shop.yaml", "--table", "plain"],
            "no Delta table `plain` under its object_store sinks of shop.yaml",
        ),
        (
            vec!["vacuum", "shop.yaml", "--retention", "7 days"],
            "`7 days` is not a duration",
        ),
    ] {
        let (out, _, stderr) = output(pipectl(dir).args(&args));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn serve_runs_the_maintenance_section_on_its_own_schedule_and_records_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("pipelines")).unwrap();
    let spec = SHOP.replace("file://lake", "file://../lake")
        + "maintenance:\n  schedule: \"* * * * * *\"\n  compact: { target_file_size: 100000000 }\n  vacuum: { retention: 0s }\n";
    std::fs::write(dir.join("pipelines/shop.yaml"), spec).unwrap();
    commit_order_pairs(dir, 4);
    let root = dir.join("lake/orders");
    let parquet_files = || parquet_file_count(&root);
    assert_eq!(parquet_files(), 8);
    let python = crate::common::delta_readers_python();

    let daemon = crate::serve::Daemon::start(dir, &[]);
    let run = crate::serve::wait_for(
        std::time::Duration::from_secs(60),
        "a maintenance pass that compacted and vacuumed the table",
        || {
            let runs = crate::serve::runs(dir, "shop");
            runs.into_iter().find(|r| {
                r["trigger"] == "maintenance"
                    && r["status"] == "succeeded"
                    && r["steps"].as_array().is_some_and(|steps| {
                        steps.iter().any(|s| {
                            s["name"] == "vacuum lake/orders" && s["objects"].as_u64() == Some(8)
                        })
                    })
            })
        },
    );
    let status = daemon.terminate();
    assert!(status.success());
    let steps = crate::common::strings(&run["steps"], "name");
    assert_eq!(
        steps,
        ["compact lake/orders", "vacuum lake/orders"],
        "{run:#}"
    );
    assert_eq!(run["steps"][0]["objects"], 2, "{run:#}");
    assert_eq!(parquet_files(), 2);
    if let Some(python) = &python {
        assert_eq!(read_with_deltalake(python, &root), ((0..8).collect(), 2));
    }
}
