//! The Delta benchmark's pipectl side (run by `bench/delta.sh`, not a test). Each step is its
//! own process, so that its peak RSS is its own:
//!
//! - `prepare DIR ROWS CHANGES`: a table `DIR/table` of ROWS rows (`id`, `val`, `note`, `seq`,
//!   `op`), and the changes (50% updates, 40% inserts, 10% deletes of existing keys) as a
//!   Parquet file `DIR/changes.parquet`, so that another implementation can merge the same data;
//!   also `DIR/small`, a table of 1,000 small files.
//! - `merge DIR TABLE`: merges `DIR/changes.parquet` into `DIR/TABLE` by `id`, the highest
//!   `seq` winning, `op = 'D'` deleting.
//! - `compact DIR`: compacts `DIR/small`.
//!
//! Each prints one line: `<step> <seconds> s, peak RSS <MB> MB[, ...]`.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use pipectl_delta::{
    CompactOptions, Compression, DeltaTable, MergeOptions, MergeSpec, SchemaPolicy, TableLocation,
    Txn, WriteMode, WriteOptions,
};

const BATCH_ROWS: usize = 65_536;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("val", DataType::Int64, true),
        Field::new("note", DataType::Utf8, true),
        Field::new("seq", DataType::Int64, false),
        Field::new("op", DataType::Utf8, false),
    ]))
}

/// Rows `ids` with sequence `seq` and operation `op`.
fn rows(ids: &[i64], seq: i64, ops: &[&str]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(
                ids.iter().map(|i| i * 7 + seq),
            )),
            Arc::new(Int64Array::from_iter_values(ids.iter().map(|i| i % 1000))),
            Arc::new(StringArray::from_iter_values(
                ids.iter().map(|i| format!("note {i} at {seq}")),
            )),
            Arc::new(Int64Array::from_iter_values(ids.iter().map(|_| seq))),
            Arc::new(StringArray::from_iter_values(ops.iter().copied())),
        ],
    )
    .map(|b| {
        // The first column is the key: replace the computed values with the ids themselves.
        let mut columns = b.columns().to_vec();
        columns[0] = Arc::new(Int64Array::from_iter_values(ids.iter().copied()));
        RecordBatch::try_new(schema(), columns).unwrap()
    })
    .unwrap()
}

fn location(dir: &str, table: &str) -> TableLocation {
    std::fs::create_dir_all(format!("{dir}/{table}")).unwrap();
    let store = Arc::new(LocalFileSystem::new_with_prefix(dir).unwrap());
    TableLocation::new(store, Path::from(table), format!("file://{dir}"))
}

fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

fn write_options(version: i64) -> WriteOptions {
    WriteOptions {
        mode: WriteMode::Append,
        partition_by: Vec::new(),
        schema: SchemaPolicy::Evolve,
        target_file_size: None,
        txn: Txn::new("bench", "sink", "t", version),
    }
}

async fn append(location: TableLocation, batches: impl Iterator<Item = RecordBatch>, version: i64) {
    let mut table = DeltaTable::open(location).await.unwrap();
    let mut writer = table.writer(write_options(version));
    for b in batches {
        writer.write(&b).await.unwrap();
    }
    let intent = writer.finish().await.unwrap();
    table.apply(&intent).await.unwrap();
}

async fn prepare(dir: &str, rows_total: i64, changes: i64) {
    let started = Instant::now();
    let ids: Vec<i64> = (0..rows_total).collect();
    append(
        location(dir, "table"),
        ids.chunks(BATCH_ROWS)
            .map(|c| rows(c, 0, &vec!["I"; c.len()])),
        1,
    )
    .await;
    // Changes: updates and deletes of existing keys spread over the table, inserts of new ones.
    let mut rng = fastrand::Rng::with_seed(42);
    let (updates, inserts) = (changes / 2, changes * 4 / 10);
    let deletes = changes - updates - inserts;
    let mut change_ids = Vec::with_capacity(changes as usize);
    let mut ops = Vec::with_capacity(changes as usize);
    let mut existing: Vec<i64> = rng.choose_multiple(0..rows_total, (updates + deletes) as usize);
    rng.shuffle(&mut existing);
    for (n, id) in existing.into_iter().enumerate() {
        change_ids.push(id);
        ops.push(if (n as i64) < updates { "U" } else { "D" });
    }
    for id in rows_total..rows_total + inserts {
        change_ids.push(id);
        ops.push("I");
    }
    let file = std::fs::File::create(format!("{dir}/changes.parquet")).unwrap();
    let mut writer = ArrowWriter::try_new(file, schema(), None).unwrap();
    for (c, o) in change_ids.chunks(BATCH_ROWS).zip(ops.chunks(BATCH_ROWS)) {
        writer.write(&rows(c, 1, o)).unwrap();
    }
    writer.close().unwrap();
    // 1,000 small files: one commit of 1,000 appends would be one file; 1,000 commits are not.
    let small = location(dir, "small");
    let ids: Vec<i64> = (0..1_000_000).collect();
    let mut table = DeltaTable::open(small).await.unwrap();
    let mut writer = table.writer(WriteOptions {
        target_file_size: Some(1),
        ..write_options(1)
    });
    for c in ids.chunks(1_000) {
        writer
            .write(&rows(c, 0, &vec!["I"; c.len()]))
            .await
            .unwrap();
    }
    let intent = writer.finish().await.unwrap();
    table.apply(&intent).await.unwrap();
    println!(
        "prepare {:.2} s, peak RSS {} MB",
        started.elapsed().as_secs_f64(),
        peak_rss_mb()
    );
}

async fn merge(dir: &str, table_name: &str) {
    let file = std::fs::File::open(format!("{dir}/changes.parquet")).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .with_batch_size(BATCH_ROWS)
        .build()
        .unwrap();
    let started = Instant::now();
    let mut table = DeltaTable::open(location(dir, table_name)).await.unwrap();
    let mut writer = table.merge_writer(MergeOptions {
        spec: MergeSpec {
            keys: vec!["id".into()],
            sequence_by: vec!["seq".into()],
            delete_when: Some("op = 'D'".into()),
            ..MergeSpec::default()
        },
        schema: SchemaPolicy::Evolve,
        partition_by: Vec::new(),
        staging: Path::from("_pipectl/staging/bench"),
        txn: Txn::new("bench", "sink", "t", 2),
        // As the Python deltalake package writes.
        compression: Compression::Snappy,
    });
    let mut changes = 0;
    for batch in reader {
        let batch = batch.unwrap();
        changes += batch.num_rows();
        writer.write(&batch).await.unwrap();
    }
    let intent = writer.finish().await.unwrap();
    let staged = started.elapsed().as_secs_f64();
    let outcome = table.apply(&intent).await.unwrap();
    let total = started.elapsed().as_secs_f64();
    println!(
        "merge {total:.2} s (staging {staged:.2} s, apply {:.2} s), peak RSS {} MB, {changes} changes, {outcome:?}",
        total - staged,
        peak_rss_mb()
    );
}

async fn compact(dir: &str) {
    let started = Instant::now();
    let mut table = DeltaTable::open(location(dir, "small")).await.unwrap();
    let before = table.info(0).await.unwrap().files;
    let report = table.compact(CompactOptions::default()).await.unwrap();
    let after = DeltaTable::open(location(dir, "small"))
        .await
        .unwrap()
        .info(0)
        .await
        .unwrap()
        .files;
    println!(
        "compact {:.2} s, peak RSS {} MB, files {before} -> {after} ({report:?})",
        started.elapsed().as_secs_f64(),
        peak_rss_mb()
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["prepare", dir, rows, changes] => {
            prepare(dir, rows.parse().unwrap(), changes.parse().unwrap()).await
        }
        ["merge", dir, table] => merge(dir, table).await,
        ["compact", dir] => compact(dir).await,
        _ => {
            eprintln!(
                "usage: delta_bench prepare DIR ROWS CHANGES | merge DIR TABLE | compact DIR"
            );
            std::process::exit(2);
        }
    }
}
