//! The object-store sink against a real S3-compatible server (started by scripts/test.sh).

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::common::{output, pipectl};

#[test]
fn parquet_lands_in_s3_and_staging_is_cleaned() {
    let Some((endpoint, bucket)) = crate::common::s3_server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("t-{}", std::process::id());
    let lake = crate::common::s3_lake(&bucket, &prefix);
    let sink = crate::common::lake_sink_from(
        "out",
        "events",
        "streaming/{table}/",
        "    format: { type: parquet, compression: zstd }\n",
    );
    let spec = dir.path().join("s3.yaml");
    std::fs::write(
        &spec,
        format!(
            r#"version: 1
name: to-s3
{lake}
sources:
  events:
    type: generator
    count: 3000
    seed: 1
    batch_rows: 1000
    template: '{{"id": {{{{random.number(1000000)}}}}, "platform": "{{{{random.arrayElement(["web","ios"])}}}}"}}'
sinks:
{sink}"#
        ),
    )
    .unwrap();
    let (out, stdout, stderr) = output(pipectl(dir.path()).arg("run").arg(&spec));
    assert!(out.status.success(), "{stdout}\n{stderr}");

    let store: Arc<dyn ObjectStore> = Arc::new(crate::common::s3_store(&endpoint, &bucket));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let objects = rt.block_on(async {
        store
            .list(Some(&StorePath::from(prefix.as_str())))
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
    });
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
    let bytes = rt.block_on(async {
        store
            .get(&objects[0].location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    });
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 3000);
}
