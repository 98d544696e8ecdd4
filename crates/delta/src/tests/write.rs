//! Appends, overwrites, txn idempotency, schema policy, roots, time travel, catalog info.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::physical_plan::displayable;
use datafusion::prelude::SessionContext;
use object_store::{ObjectStoreExt, PutPayload};

use super::*;
use crate::{AsOf, ErrorClass, IntentAction, SchemaChange};

#[tokio::test]
async fn an_append_is_invisible_until_applied_then_reads_back_exactly() {
    let (_dir, location) = local_table();
    let batch = rows(&[1, 2, 3, 4, 5, 6]);
    let table = DeltaTable::open(location.clone()).await.unwrap();
    let mut writer = table.writer(options(WriteMode::Append, 1));
    writer.write(&batch).await.unwrap();
    let intent = writer.finish().await.unwrap();

    // Phase 1 wrote files but no log: nothing to read yet.
    assert_eq!(
        DeltaTable::open(location.clone()).await.unwrap().version(),
        None
    );
    assert_eq!(data_files(&location).await.len(), 1);
    let IntentAction::Write(write) = &intent.action else {
        panic!("a write intent")
    };
    let stats: serde_json::Value =
        serde_json::from_str(write.adds[0].stats.as_deref().unwrap()).unwrap();
    assert_eq!(stats["numRecords"], 6);
    assert_eq!(stats["minValues"]["id"], 1);
    assert_eq!(stats["nullCount"]["name"], 2);

    // The intent survives a trip through the manifest's JSON.
    let saved: CommitIntent =
        serde_json::from_str(&serde_json::to_string(&intent).unwrap()).unwrap();
    assert_eq!(saved, intent);

    let mut table = DeltaTable::open(location.clone()).await.unwrap();
    assert_eq!(
        table.apply(&saved).await.unwrap(),
        ApplyOutcome::Committed { version: 0 }
    );
    let marker = location.child(crate::table::PENDING_MARKER);
    assert!(
        location.store().head(&marker).await.is_err(),
        "marker gone once the log exists"
    );
    let read = read_sorted(&table).await;
    // Types, decimals, zoned timestamps and NULLs come back as written.
    assert_eq!(read.schema().fields(), batch.schema().fields());
    assert_eq!(read.columns(), batch.columns());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_twice_or_concurrently_commits_once() {
    let location = memory_table();
    let (intent, outcome) =
        write_and_apply(&location, options(WriteMode::Append, 7), &[rows(&[1, 2])]).await;
    assert_eq!(outcome, ApplyOutcome::Committed { version: 0 });
    let mut table = DeltaTable::open(location.clone()).await.unwrap();
    assert_eq!(
        table.apply(&intent).await.unwrap(),
        ApplyOutcome::AlreadyApplied { txn_version: 7 }
    );

    // Two appliers of the same new intent at once (a recovering run and a stale one).
    let table = DeltaTable::open(location.clone()).await.unwrap();
    let mut writer = table.writer(options(WriteMode::Append, 8));
    writer.write(&rows(&[3])).await.unwrap();
    let intent = writer.finish().await.unwrap();
    let apply = |intent: CommitIntent, location: TableLocation| async move {
        let mut table = DeltaTable::open(location).await.unwrap();
        table.apply(&intent).await.unwrap()
    };
    let (a, b) = tokio::join!(
        tokio::spawn(apply(intent.clone(), location.clone())),
        tokio::spawn(apply(intent.clone(), location.clone()))
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, ApplyOutcome::Committed { .. }))
            .count(),
        1,
        "{outcomes:?}"
    );
    // An older version than the log's is never committed either.
    let mut table = DeltaTable::open(location.clone()).await.unwrap();
    let mut stale = intent.clone();
    stale.txn.version = 5;
    assert_eq!(
        table.apply(&stale).await.unwrap(),
        ApplyOutcome::AlreadyApplied { txn_version: 8 }
    );

    let txns = txns_in_log(&location).await;
    assert_eq!(
        txns,
        vec![
            (0, "pipe/sink/t".to_owned(), 7),
            (1, "pipe/sink/t".to_owned(), 8)
        ]
    );
    assert_eq!(ids(&read_sorted(&table).await), vec![1, 2, 3]);
}

#[tokio::test]
async fn an_overwrite_replaces_every_file_in_one_commit_and_old_versions_stay_readable() {
    let (_dir, location) = local_table();
    write_and_apply(&location, options(WriteMode::Append, 1), &[rows(&[1, 2])]).await;
    write_and_apply(&location, options(WriteMode::Append, 2), &[rows(&[3])]).await;
    let (_, outcome) = write_and_apply(
        &location,
        options(WriteMode::Overwrite, 3),
        &[rows(&[10, 11])],
    )
    .await;
    assert_eq!(outcome, ApplyOutcome::Committed { version: 2 });

    let table = DeltaTable::open(location.clone()).await.unwrap();
    assert_eq!(ids(&read_sorted(&table).await), vec![10, 11]);
    let info = table.info(10).await.unwrap();
    assert_eq!(info.files, 1);
    // The overwrite commit removes both old files and adds the new one at once.
    let commit = location.child("_delta_log/00000000000000000002.json");
    let text = String::from_utf8(object_bytes(&location, &commit).await.to_vec()).unwrap();
    assert_eq!(text.matches("\"remove\"").count(), 2, "{text}");
    assert_eq!(text.matches("\"add\"").count(), 1, "{text}");

    let before = DeltaTable::open_as_of(location.clone(), AsOf::Version(1))
        .await
        .unwrap();
    assert_eq!(ids(&read_sorted(&before).await), vec![1, 2, 3]);
}

#[tokio::test]
async fn discarding_deletes_the_files_and_leaves_an_empty_root_usable() {
    let (_dir, location) = local_table();
    let table = DeltaTable::open(location.clone()).await.unwrap();
    let mut writer = table.writer(options(WriteMode::Append, 1));
    writer.write(&rows(&[1, 2, 3])).await.unwrap();
    let intent = writer.finish().await.unwrap();
    // A root holding only a pending intent's files opens (a crashed run is recovered).
    let mut table = DeltaTable::open(location.clone()).await.unwrap();
    assert_eq!(
        table.discard(&intent).await.unwrap(),
        2,
        "the data file and the marker"
    );
    assert!(data_files(&location).await.is_empty());
    assert_eq!(
        DeltaTable::open(location.clone()).await.unwrap().version(),
        None
    );

    // Once applied, discarding deletes nothing: the files are the table's.
    let (intent, _) =
        write_and_apply(&location, options(WriteMode::Append, 2), &[rows(&[4])]).await;
    let mut table = DeltaTable::open(location.clone()).await.unwrap();
    assert_eq!(table.discard(&intent).await.unwrap(), 0);
    assert_eq!(ids(&read_sorted(&table).await), vec![4]);
}

#[tokio::test]
async fn a_root_holding_other_files_is_refused_naming_it() {
    let (_dir, location) = local_table();
    location
        .store()
        .put(
            &location.child("old/part-0.csv"),
            PutPayload::from_static(b"a,b\n"),
        )
        .await
        .unwrap();
    let err = DeltaTable::open(location.clone()).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::User);
    assert!(err.message.contains(&location.display()), "{err}");
    assert!(err.message.contains("old/part-0.csv"), "{err}");
}

#[tokio::test]
async fn partitions_are_hive_folders_and_a_where_on_them_reads_one_folder() {
    let (_dir, location) = local_table();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("dt", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
            Arc::new(StringArray::from(vec![
                "2026-01-01",
                "2026-01-02",
                "2026-01-01",
                "2026-01-03",
            ])),
        ],
    )
    .unwrap();
    let mut opts = options(WriteMode::Append, 1);
    opts.partition_by = vec!["dt".into()];
    write_and_apply(&location, opts, std::slice::from_ref(&batch)).await;
    let files = data_files(&location).await;
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(
        files.iter().all(|f| f.starts_with("dt=2026-01-0")),
        "{files:?}"
    );

    let table = DeltaTable::open(location.clone()).await.unwrap();
    let ctx = SessionContext::new();
    ctx.register_table("t", table.table_provider().await.unwrap())
        .unwrap();
    let df = ctx
        .sql("select id from t where dt = '2026-01-01'")
        .await
        .unwrap();
    let plan = df.clone().create_physical_plan().await.unwrap();
    let shown = displayable(plan.as_ref()).indent(true).to_string();
    assert_eq!(shown.matches(".parquet").count(), 1, "{shown}");
    let batches = df.collect().await.unwrap();
    let mut got: Vec<i64> = batches.iter().flat_map(ids).collect();
    got.sort();
    assert_eq!(got, vec![1, 3]);
    assert_eq!(
        table.info(1).await.unwrap().partition_columns,
        vec!["dt".to_owned()]
    );

    // A different partitioning of the same table is refused, as is a missing column.
    let mut other = options(WriteMode::Append, 2);
    other.partition_by = vec!["id".into()];
    let mut writer = table.writer(other);
    let err = writer.write(&batch.slice(0, 1)).await.unwrap_err();
    assert!(err.message.contains("partitioned by [dt]"), "{err}");
    let fresh = memory_table();
    let mut missing = options(WriteMode::Append, 1);
    missing.partition_by = vec!["region".into()];
    let mut writer = DeltaTable::open(fresh).await.unwrap().writer(missing);
    let err = writer.write(&rows(&[9])).await.unwrap_err();
    assert!(err.message.contains("partition column `region`"), "{err}");
}

#[tokio::test]
async fn evolve_adds_columns_and_widens_by_rewriting_while_strict_commits_nothing() {
    let (_dir, location) = local_table();
    write_and_apply(
        &location,
        options(WriteMode::Append, 1),
        &[int32_batch("qty", &[1, 2], &[10, 20])],
    )
    .await;

    // strict: a bigint where the table has int fails naming both; no file, no commit.
    let table = DeltaTable::open(location.clone()).await.unwrap();
    let mut strict = options(WriteMode::Append, 2);
    strict.schema = SchemaPolicy::Strict;
    let wide = RecordBatch::try_from_iter_with_nullable([
        ("id", Arc::new(Int64Array::from(vec![3])) as ArrayRef, false),
        ("qty", Arc::new(Int64Array::from(vec![5_000_000_000])), true),
        ("note", Arc::new(StringArray::from(vec![Some("new")])), true),
    ])
    .unwrap();
    let files_before = data_files(&location).await;
    let err = table.writer(strict).write(&wide).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::User);
    assert!(
        err.message
            .contains("column `qty` is int in the table but bigint in the data"),
        "{err}"
    );
    assert!(
        err.message
            .contains("column `note` (string) is not in the table"),
        "{err}"
    );
    assert_eq!(data_files(&location).await, files_before);
    assert_eq!(
        DeltaTable::open(location.clone()).await.unwrap().version(),
        Some(0)
    );

    // evolve: `note` added, `qty` widened to bigint with the old rows rewritten, one commit.
    let (intent, outcome) =
        write_and_apply(&location, options(WriteMode::Append, 2), &[wide]).await;
    assert_eq!(outcome, ApplyOutcome::Committed { version: 1 });
    let IntentAction::Write(write) = &intent.action else {
        panic!()
    };
    assert_eq!(
        write.schema_changes,
        vec![
            SchemaChange::WidenColumn {
                column: "qty".into(),
                from: "int".into(),
                to: "bigint".into()
            },
            SchemaChange::AddColumn {
                column: "note".into(),
                data_type: "string".into()
            },
        ]
    );
    let table = DeltaTable::open(location.clone()).await.unwrap();
    let read = read_sorted(&table).await;
    assert_bigints(&read, "qty", &[Some(10), Some(20), Some(5_000_000_000)]);
    assert_eq!(strings(&read, "note"), vec![None, None, Some("new".into())]);
    assert_eq!(
        write.removes.len(),
        1,
        "the old file is replaced by its rewrite"
    );
    assert_eq!(table.info(1).await.unwrap().files, 1);

    // A narrower input is cast up without changing the table.
    write_and_apply(
        &location,
        options(WriteMode::Append, 3),
        &[int32_batch("qty", &[4], &[7])],
    )
    .await;
    let table = DeltaTable::open(location.clone()).await.unwrap();
    assert_eq!(
        ints(&read_sorted(&table).await, "qty"),
        vec![Some(10), Some(20), Some(5_000_000_000), Some(7)]
    );
}

#[tokio::test]
async fn time_travel_by_version_and_timestamp_and_the_history() {
    let location = memory_table();
    write_and_apply(&location, options(WriteMode::Append, 1), &[rows(&[1])]).await;
    let between = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    write_and_apply(&location, options(WriteMode::Append, 2), &[rows(&[2])]).await;

    let v0 = DeltaTable::open_as_of(location.clone(), AsOf::Version(0))
        .await
        .unwrap();
    assert_eq!(ids(&read_sorted(&v0).await), vec![1]);
    let at = DeltaTable::open_as_of(location.clone(), AsOf::Timestamp(between))
        .await
        .unwrap();
    assert_eq!(at.version(), Some(0));
    let err = DeltaTable::open_as_of(location.clone(), AsOf::Version(9))
        .await
        .unwrap_err();
    assert!(err.message.contains(&location.display()), "{err}");

    let info = DeltaTable::open(location.clone())
        .await
        .unwrap()
        .info(10)
        .await
        .unwrap();
    assert_eq!(info.version, 1);
    assert_eq!(info.files, 2);
    assert!(info.bytes > 0);
    assert_eq!(
        info.history
            .iter()
            .map(|h| (h.version, h.operation.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "WRITE"), (0, "CREATE TABLE")]
    );
    assert!(info.history.iter().all(|h| h.timestamp.is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_appliers_of_the_first_commit_create_the_table_once() {
    let location = memory_table();
    let table = DeltaTable::open(location.clone()).await.unwrap();
    let mut writer = table.writer(options(WriteMode::Append, 1));
    writer.write(&rows(&[1, 2])).await.unwrap();
    let intent = writer.finish().await.unwrap();
    let appliers: Vec<_> = (0..6)
        .map(|_| {
            let (intent, location) = (intent.clone(), location.clone());
            tokio::spawn(async move {
                let mut table = DeltaTable::open(location).await.unwrap();
                table.apply(&intent).await.unwrap()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for a in appliers {
        outcomes.push(a.await.unwrap());
    }
    let committed: Vec<_> = outcomes
        .iter()
        .filter(|o| matches!(o, ApplyOutcome::Committed { .. }))
        .collect();
    assert_eq!(
        committed,
        vec![&ApplyOutcome::Committed { version: 0 }],
        "{outcomes:?}"
    );
    assert_eq!(txns_in_log(&location).await.len(), 1);
    assert_eq!(
        ids(&read_sorted(&DeltaTable::open(location).await.unwrap()).await),
        vec![1, 2]
    );
}
