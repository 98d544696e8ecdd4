//! Tests of the crate on local temp dirs and object_store's in-memory store; the independent
//! readers (Python deltalake, DuckDB) in `readers`.

mod maintenance;
mod merge;
mod pg_oracle;
mod readers;
mod s3;
mod write;

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Decimal128Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::{
    ApplyOutcome, CommitIntent, DeltaTable, SchemaPolicy, TableLocation, Txn, WriteMode,
    WriteOptions,
};

/// A table root `lake/t` in a fresh temp dir (the dir lives as long as the guard).
pub(super) fn local_table() -> (tempfile::TempDir, TableLocation) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let location = TableLocation::new(
        store,
        Path::from("lake/t"),
        format!("file://{}", dir.path().display()),
    );
    (dir, location)
}

/// A table root in a fresh in-memory store.
pub(super) fn memory_table() -> TableLocation {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    TableLocation::new(store, Path::from("lake/t"), "memory://test")
}

/// Marks the running test skipped, as the integration tests' `common::skip` does: a `SKIP`
/// line on stderr and in `PIPECTL_TEST_SKIP_LOG`, which `scripts/test.sh` summarises.
pub(super) fn skip(reason: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let line = format!("SKIP {test}: {reason}");
    eprintln!("{line}");
    if let Ok(log) = std::env::var("PIPECTL_TEST_SKIP_LOG") {
        use std::io::Write;
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = appended {
            eprintln!("cannot append to PIPECTL_TEST_SKIP_LOG {log}: {e}");
        }
    }
}

/// Whether a missing service or tool fails the test instead of skipping it (CI).
pub(super) fn services_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("PIPECTL_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

pub(super) fn txn(version: i64) -> Txn {
    Txn::new("pipe", "sink", "t", version)
}

pub(super) fn options(mode: WriteMode, version: i64) -> WriteOptions {
    WriteOptions {
        mode,
        partition_by: Vec::new(),
        schema: SchemaPolicy::Evolve,
        target_file_size: None,
        txn: txn(version),
    }
}

/// A batch of merge input rows `(id, val, seq, op)`; `id`, `seq` and `op` are declared
/// nullable only when `nullable_keys`.
pub(super) fn change_rows(
    rows: &[(i64, Option<i64>, Option<i64>, &str)],
    nullable_keys: bool,
) -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, nullable_keys),
            Field::new("val", DataType::Int64, true),
            Field::new("seq", DataType::Int64, nullable_keys),
            Field::new("op", DataType::Utf8, nullable_keys),
        ])),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.1))),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.2))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.3))),
        ],
    )
    .unwrap()
}

/// The columns of [`rows`]: `id` (bigint, not null), `name` (string), `amount`
/// (decimal(12,3)), `ts` (timestamp UTC).
pub(super) fn row_fields() -> Vec<Field> {
    vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("amount", DataType::Decimal128(12, 3), true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]
}

/// `id` (bigint, not null), `name` (string), `amount` (decimal(12,3)), `ts` (timestamp UTC).
pub(super) fn rows(ids: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(row_fields()));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.to_vec())),
        Arc::new(StringArray::from_iter(
            ids.iter().map(|i| (i % 3 != 0).then(|| format!("n{i}"))),
        )),
        Arc::new(
            Decimal128Array::from_iter(
                ids.iter()
                    .map(|i| (i % 4 != 0).then_some(i128::from(*i) * 1001 - 5000)),
            )
            .with_precision_and_scale(12, 3)
            .unwrap(),
        ),
        Arc::new(
            TimestampMicrosecondArray::from_iter(
                ids.iter()
                    .map(|i| (i % 5 != 0).then_some(1_767_225_600_000_000 + i * 1_000_001)),
            )
            .with_timezone("UTC"),
        ),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

/// Writes `batches` as one intent and applies it.
pub(super) async fn write_and_apply(
    location: &TableLocation,
    options: WriteOptions,
    batches: &[RecordBatch],
) -> (CommitIntent, ApplyOutcome) {
    let mut table = DeltaTable::open(location.clone()).await.unwrap();
    let mut writer = table.writer(options);
    for b in batches {
        writer.write(b).await.unwrap();
    }
    let intent = writer.finish().await.unwrap();
    let outcome = table.apply(&intent).await.unwrap();
    (intent, outcome)
}

/// Every row of the table's version, sorted by `id`, as one batch.
pub(super) async fn read_sorted(table: &DeltaTable) -> RecordBatch {
    let ctx = table.location().session();
    ctx.register_table("t", table.table_provider().await.unwrap())
        .unwrap();
    let batches = ctx
        .sql("select * from t")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let schema: SchemaRef = match batches.first() {
        Some(b) => b.schema(),
        None => table.arrow_schema().unwrap().unwrap(),
    };
    let all = concat_batches(&schema, &batches).unwrap();
    let indices = sort_to_indices(all.column_by_name("id").unwrap(), None, None).unwrap();
    take_record_batch(&all, &indices).unwrap()
}

pub(super) fn ids(batch: &RecordBatch) -> Vec<i64> {
    batch
        .column_by_name("id")
        .unwrap()
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .values()
        .to_vec()
}

/// The values of `column` cast to `data_type` (an array of type `A`), each read by `value`;
/// `None` for NULL.
fn cast_values<A: Array + 'static, T>(
    batch: &RecordBatch,
    column: &str,
    data_type: &DataType,
    value: impl Fn(&A, usize) -> T,
) -> Vec<Option<T>> {
    let c = batch.column_by_name(column).unwrap();
    let c = arrow::compute::cast(c, data_type).unwrap();
    let c = c.as_any().downcast_ref::<A>().unwrap();
    (0..c.len())
        .map(|i| (!c.is_null(i)).then(|| value(c, i)))
        .collect()
}

pub(super) fn strings(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
    cast_values(batch, column, &DataType::Utf8, |c: &StringArray, i| {
        c.value(i).to_owned()
    })
}

pub(super) fn ints(batch: &RecordBatch, column: &str) -> Vec<Option<i64>> {
    cast_values(batch, column, &DataType::Int64, |c: &Int64Array, i| {
        c.value(i)
    })
}

/// Every object under `prefix` in the store of `location`.
pub(super) async fn objects_under(
    location: &TableLocation,
    prefix: &Path,
) -> Vec<object_store::ObjectMeta> {
    use futures::TryStreamExt;
    location
        .store()
        .list(Some(prefix))
        .try_collect()
        .await
        .unwrap()
}

/// The `txn` actions of every commit in the log: (version of the commit, app id, txn version).
pub(super) async fn txns_in_log(location: &TableLocation) -> Vec<(u64, String, i64)> {
    let objects = objects_under(location, &location.child("_delta_log")).await;
    let mut out = Vec::new();
    for o in objects {
        let name = o.location.filename().unwrap().to_owned();
        let Some(version) = name
            .strip_suffix(".json")
            .and_then(|v| v.parse::<u64>().ok())
        else {
            continue;
        };
        let bytes = location
            .store()
            .get(&o.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        for line in std::str::from_utf8(&bytes).unwrap().lines() {
            let action: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(t) = action.get("txn") {
                out.push((
                    version,
                    t["appId"].as_str().unwrap().to_owned(),
                    t["version"].as_i64().unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// Data files (`.parquet`) under the root, relative to it, sorted.
pub(super) async fn data_files(location: &TableLocation) -> Vec<String> {
    let objects = objects_under(location, location.root()).await;
    let mut out: Vec<String> = objects
        .into_iter()
        .filter(|o| {
            o.location.as_ref().ends_with(".parquet") && !o.location.as_ref().contains("_delta_log")
        })
        .map(|o| {
            o.location
                .prefix_match(location.root())
                .unwrap()
                .map(|p| p.as_ref().to_owned())
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect();
    out.sort();
    out
}

pub(super) fn int32_batch(name: &str, ids: &[i64], values: &[i32]) -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new(name, DataType::Int32, true),
        ])),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(Int32Array::from(values.to_vec())),
        ],
    )
    .unwrap()
}
