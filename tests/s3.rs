//! The object-store sink against a real S3-compatible server (started by scripts/test.sh).

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::common::{lake_sink_from, output, pipectl};

/// A pipeline that `pipectl run` has written into the test bucket, with what reads it back.
struct S3Run {
    dir: tempfile::TempDir,
    spec: std::path::PathBuf,
    /// The pipeline's `lake` prefix in the bucket.
    prefix: String,
    store: Arc<dyn ObjectStore>,
    rt: tokio::runtime::Runtime,
}

impl S3Run {
    /// Runs pipeline `name` (see [`s3_pipeline`]) under the prefix `{stem}-{pid}` with `sinks`
    /// appended; `None` when no S3 server runs.
    fn new(name: &str, stem: &str, batch_rows: u32, sinks: &str) -> Option<S3Run> {
        let (endpoint, bucket) = crate::common::s3_server()?;
        let dir = tempfile::tempdir().unwrap();
        let prefix = format!("{stem}-{}", std::process::id());
        let spec = dir.path().join("s3.yaml");
        std::fs::write(
            &spec,
            s3_pipeline(name, &bucket, &prefix, batch_rows) + sinks,
        )
        .unwrap();
        let run = S3Run {
            store: Arc::new(crate::common::s3_store(&endpoint, &bucket)),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            dir,
            spec,
            prefix,
        };
        run.pipectl("run");
        Some(run)
    }

    /// Runs `pipectl <command>` on the spec, asserts it succeeded and returns its stdout.
    fn pipectl(&self, command: &str) -> String {
        let (out, stdout, stderr) = output(pipectl(self.dir.path()).arg(command).arg(&self.spec));
        assert!(out.status.success(), "{stdout}\n{stderr}");
        stdout
    }

    /// Every object under `prefix`, by key.
    fn list(&self, prefix: &str) -> Vec<object_store::ObjectMeta> {
        let mut objects: Vec<object_store::ObjectMeta> = self
            .rt
            .block_on(
                self.store
                    .list(Some(&StorePath::from(prefix)))
                    .try_collect(),
            )
            .unwrap();
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        objects
    }

    /// The keys of every object under `prefix`.
    fn keys(&self, prefix: &str) -> Vec<String> {
        self.list(prefix)
            .iter()
            .map(|o| o.location.to_string())
            .collect()
    }

    /// The bytes of `object`.
    fn read(&self, object: &object_store::ObjectMeta) -> bytes::Bytes {
        self.rt.block_on(async {
            self.store
                .get(&object.location)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        })
    }

    /// How many rows the Parquet file `object` holds.
    fn parquet_rows(&self, object: &object_store::ObjectMeta) -> usize {
        ParquetRecordBatchReaderBuilder::try_new(self.read(object))
            .unwrap()
            .build()
            .unwrap()
            .map(|b| b.unwrap().num_rows())
            .sum()
    }
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

/// A lake sink `name` of the source `events` into `{folder}/{table}/`, with the settings
/// `options` (one a line).
fn events_sink(name: &str, folder: &str, options: &[&str]) -> String {
    let settings: String = options.iter().map(|o| format!("    {o}\n")).collect();
    lake_sink_from(name, "events", &format!("{folder}/{{table}}/"), &settings)
}

#[test]
fn parquet_lands_in_s3_and_staging_is_cleaned() {
    let parquet = "format: { type: parquet, compression: zstd }";
    let sink = events_sink("out", "streaming", &[parquet]);
    let Some(s3) = S3Run::new("to-s3", "t", 1000, &sink) else {
        return;
    };
    let prefix = &s3.prefix;
    let objects = s3.list(prefix);
    let keys = s3.keys(prefix);
    assert_eq!(
        keys.len(),
        1,
        "one published object, no staging left: {keys:?}"
    );
    assert!(
        keys[0].starts_with(&format!("{prefix}/streaming/events/part-")),
        "{keys:?}"
    );
    assert_eq!(s3.parquet_rows(&objects[0]), 3000);
}

/// `pipectl compact` on S3, where a partition is a listing: the new files are moved in before
/// the small ones are deleted, and every row is kept (Parquet rows, JSON lines byte for byte).
#[test]
fn plain_tables_in_s3_are_compacted_keeping_every_row() {
    let sinks = events_sink(
        "clean",
        "clean",
        &["max_file_rows: 300", "format: { type: parquet }"],
    ) + &events_sink(
        "raw",
        "raw",
        &["max_file_rows: 300", "format: { type: jsonl }"],
    );
    let Some(s3) = S3Run::new("compact-s3", "compact", 100, &sinks) else {
        return;
    };
    let prefix = &s3.prefix;
    let raw_prefix = format!("{prefix}/raw/events");
    let before = s3.list(&raw_prefix);
    assert_eq!(before.len(), 10);
    let mut lines = Vec::new();
    for object in &before {
        lines.extend_from_slice(&s3.read(object));
    }

    let stdout = s3.pipectl("compact");
    assert!(
        stdout.contains("sink clean, table events: compacted 10 files (")
            && stdout.contains("sink raw, table events: compacted 10 files ("),
        "{stdout}"
    );
    let keys = s3.keys(prefix);
    assert_eq!(keys.len(), 2, "one file a table, no staging left: {keys:?}");
    let after = s3.list(&raw_prefix);
    assert_eq!(s3.read(&after[0]), bytes::Bytes::from(lines));
    let clean = s3.list(&format!("{prefix}/clean/events"));
    assert_eq!(s3.parquet_rows(&clean[0]), 3000);
}
