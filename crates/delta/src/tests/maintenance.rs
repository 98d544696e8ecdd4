//! Compaction and vacuum.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

use super::*;
use crate::{CompactOptions, VacuumOptions};

/// Vacuum options that delete every removed file at once (`dry_run`: only list them), but no
/// orphans.
fn no_retention(dry_run: bool) -> VacuumOptions {
    VacuumOptions {
        retention: Duration::ZERO,
        dry_run,
        orphans: false,
    }
}

#[tokio::test]
async fn compaction_bin_packs_small_files_per_partition_keeping_every_row() {
    let (_dir, location) = local_table();
    for i in 0..12i64 {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("dt", DataType::Utf8, false),
            ])),
            vec![
                Arc::new(Int64Array::from(vec![i * 2, i * 2 + 1])),
                Arc::new(StringArray::from(vec![
                    "a",
                    if i % 2 == 0 { "a" } else { "b" },
                ])),
            ],
        )
        .unwrap();
        let mut opts = options(WriteMode::Append, i + 1);
        opts.partition_by = vec!["dt".into()];
        write_and_apply(&location, opts, &[batch]).await;
    }
    let mut table = DeltaTable::open(location.clone()).await.unwrap();
    let info = table.info(1).await.unwrap();
    assert_eq!(info.files, 18);
    let per_partition: Vec<(Vec<Option<String>>, u64)> = info
        .partitions
        .iter()
        .map(|p| (p.values.clone(), p.files))
        .collect();
    assert_eq!(
        per_partition,
        [
            (vec![Some("a".to_owned())], 12),
            (vec![Some("b".to_owned())], 6)
        ]
    );
    assert_eq!(
        info.bytes,
        info.partitions.iter().map(|p| p.bytes).sum::<u64>()
    );
    let report = table.compact(CompactOptions::default()).await.unwrap();
    assert_eq!(report.version, Some(12));
    assert_eq!(
        (report.files_removed, report.files_added, report.partitions),
        (18, 2, 2)
    );
    let table = DeltaTable::open(location.clone()).await.unwrap();
    assert_eq!(table.info(1).await.unwrap().files, 2);
    assert_eq!(ids(&read_sorted(&table).await), (0..24).collect::<Vec<_>>());
}

#[tokio::test]
async fn vacuum_deletes_only_files_the_newest_version_does_not_use_after_the_retention() {
    let (_dir, location) = local_table();
    write_and_apply(&location, options(WriteMode::Append, 1), &[rows(&[1, 2])]).await;
    write_and_apply(&location, options(WriteMode::Append, 2), &[rows(&[3])]).await;
    write_and_apply(&location, options(WriteMode::Overwrite, 3), &[rows(&[4])]).await;
    assert_eq!(data_files(&location).await.len(), 3);

    // The default retention (7 days) keeps the just-removed files for time travel.
    let mut table = DeltaTable::open(location.clone()).await.unwrap();
    let report = table.vacuum(VacuumOptions::default()).await.unwrap();
    assert!(report.files.is_empty(), "{report:?}");

    let dry = table.vacuum(no_retention(true)).await.unwrap();
    assert_eq!(dry.files.len(), 2);
    assert_eq!(data_files(&location).await.len(), 3);

    let report = table.vacuum(no_retention(false)).await.unwrap();
    assert_eq!(report.files.len(), 2);
    let left = data_files(&location).await;
    assert_eq!(left.len(), 1);
    let table = DeltaTable::open(location.clone()).await.unwrap();
    assert_eq!(
        ids(&read_sorted(&table).await),
        vec![4],
        "the newest version's file stays"
    );
}
