//! The object-store sink against a real S3-compatible server (started by scripts/test.sh).

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::common::{lake_sink_from, output, pipectl};

/// The test bucket on the local S3 server.
fn bucket_store(endpoint: &str, bucket: &str) -> Arc<dyn ObjectStore> {
    Arc::new(crate::common::s3_store(endpoint, bucket))
}

/// Every object under `prefix`, by key.
async fn list(store: &Arc<dyn ObjectStore>, prefix: &str) -> Vec<object_store::ObjectMeta> {
    let mut objects: Vec<object_store::ObjectMeta> = store
        .list(Some(&StorePath::from(prefix)))
        .try_collect()
        .await
        .unwrap();
    objects.sort_by(|a, b| a.location.cmp(&b.location));
    objects
}

async fn read(store: &Arc<dyn ObjectStore>, object: &object_store::ObjectMeta) -> bytes::Bytes {
    store
        .get(&object.location)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
}

/// A pipeline `name` whose `lake` connection is `prefix` in the test bucket, with a generator
/// source `events` of 3,000 records in batches of `batch_rows`; its sinks follow.
fn s3_pipeline(name: &str, bucket: &str, prefix: &str, batch_rows: u32) -> String {
    let lake = crate::common::s3_lake(bucket, prefix);
    format!(
        r#"version: 1
name: {name}
{lake}
sources:
  events:
    type: generator
    count: 3000
    seed: 1
    batch_rows: {batch_rows}
    template: '{{"id": {{{{random.number(1000000)}}}}, "platform": "{{{{random.arrayElement(["web","ios"])}}}}"}}'
sinks:
"#
    )
}

#[test]
fn parquet_lands_in_s3_and_staging_is_cleaned() {
    let Some((endpoint, bucket)) = crate::common::s3_server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("t-{}", std::process::id());
    let spec = dir.path().join("s3.yaml");
    std::fs::write(
        &spec,
        s3_pipeline("to-s3", &bucket, &prefix, 1000)
            + &lake_sink_from(
                "out",
                "events",
                "streaming/{table}/",
                "    format: { type: parquet, compression: zstd }\n",
            ),
    )
    .unwrap();
    let (out, stdout, stderr) = output(pipectl(dir.path()).arg("run").arg(&spec));
    assert!(out.status.success(), "{stdout}\n{stderr}");

    let store = bucket_store(&endpoint, &bucket);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let objects = rt.block_on(list(&store, &prefix));
    let keys: Vec<String> = objects.iter().map(|o| o.location.to_string()).collect();
    assert_eq!(
        keys.len(),
        1,
        "one published object, no staging left: {keys:?}"
    );
    assert!(
        keys[0].starts_with(&format!("{prefix}/streaming/events/part-")),
        "{keys:?}"
    );
    let bytes = rt.block_on(read(&store, &objects[0]));
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 3000);
}

/// `pipectl compact` on S3, where a partition is a listing: the new files are moved in before
/// the small ones are deleted, and every row is kept (Parquet rows, JSON lines byte for byte).
#[test]
fn plain_tables_in_s3_are_compacted_keeping_every_row() {
    let Some((endpoint, bucket)) = crate::common::s3_server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("compact-{}", std::process::id());
    let spec = dir.path().join("s3.yaml");
    std::fs::write(
        &spec,
        s3_pipeline("compact-s3", &bucket, &prefix, 100)
            + &lake_sink_from(
                "clean",
                "events",
                "clean/{table}/",
                "    max_file_rows: 300\n    format: { type: parquet }\n",
            )
            + &lake_sink_from(
                "raw",
                "events",
                "raw/{table}/",
                "    max_file_rows: 300\n    format: { type: jsonl }\n",
            ),
    )
    .unwrap();
    let (out, stdout, stderr) = output(pipectl(dir.path()).arg("run").arg(&spec));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let store = bucket_store(&endpoint, &bucket);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let raw_prefix = format!("{prefix}/raw/events");
    let before = rt.block_on(list(&store, &raw_prefix));
    assert_eq!(before.len(), 10);
    let mut lines = Vec::new();
    for object in &before {
        lines.extend_from_slice(&rt.block_on(read(&store, object)));
    }

    let (out, stdout, stderr) = output(pipectl(dir.path()).arg("compact").arg(&spec));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("sink clean, table events: compacted 10 files (")
            && stdout.contains("sink raw, table events: compacted 10 files ("),
        "{stdout}"
    );
    let all = rt.block_on(list(&store, &prefix));
    let keys: Vec<String> = all.iter().map(|o| o.location.to_string()).collect();
    assert_eq!(keys.len(), 2, "one file a table, no staging left: {keys:?}");
    let after = rt.block_on(list(&store, &raw_prefix));
    assert_eq!(
        rt.block_on(read(&store, &after[0])),
        bytes::Bytes::from(lines)
    );
    let clean = rt.block_on(list(&store, &format!("{prefix}/clean/events")));
    let reader = ParquetRecordBatchReaderBuilder::try_new(rt.block_on(read(&store, &clean[0])))
        .unwrap()
        .build()
        .unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 3000);
}
