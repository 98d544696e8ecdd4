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
        Arc::new(StringArray::from_iter_values(
            ids.iter()
                .map(|i| if i % 2 == 0 { "2026-01-02" } else { "2026-01-01" }),
        )),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

/// Commits `batches` (each its own data file) to the table at `dir/root` in one commit.
pub(crate) fn commit(dir: &Path, root: &str, mode: WriteMode, version: i64, batches: &[RecordBatch]) {
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
    commit(dir, "lake/orders", WriteMode::Append, 1, &[orders(&[1, 2, 3, 4])]);
    commit(dir, "lake/orders", WriteMode::Append, 2, &[orders(&[5, 6])]);
    // A file the log does not list (left by a crashed writer): not part of the table.
    std::fs::write(dir.join("lake/orders/dt=2026-01-01/stray.parquet"), b"not parquet").unwrap();

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
    let files: u64 = partitions.iter().map(|p| p["files"].as_u64().unwrap()).sum();
    assert_eq!(files, 4, "two commits, two partitions each: {t:#}");
    assert!(t["skipped_files"].is_null(), "nothing guessed from files: {t:#}");
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
    assert_eq!(serde_json::from_str::<Value>(&at).unwrap()[0]["n"], 4, "{at}");

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
