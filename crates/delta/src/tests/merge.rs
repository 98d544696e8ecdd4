//! Merge semantics against an in-memory oracle, soft deletes, unchanged columns, txn, errors.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use object_store::ObjectStoreExt;
use object_store::path::Path;

use super::*;
use crate::{Compression, DELETED_AT, DeleteMode, ErrorClass, MergeOptions, MergeSpec};

fn changes(rows: &[(i64, Option<i64>, Option<i64>, &str)]) -> RecordBatch {
    change_rows(rows, true)
}

fn spec() -> MergeSpec {
    MergeSpec {
        keys: vec!["id".into()],
        sequence_by: vec!["seq".into()],
        delete_when: Some("op = 'D'".into()),
        ..MergeSpec::default()
    }
}

fn merge_options(spec: MergeSpec, version: i64) -> MergeOptions {
    MergeOptions {
        spec,
        schema: SchemaPolicy::Evolve,
        partition_by: Vec::new(),
        staging: Path::from(format!("_pipectl/staging/run-{version}")),
        txn: txn(version),
        compression: Compression::default(),
    }
}

async fn merge(
    location: &TableLocation,
    options: MergeOptions,
    batches: &[RecordBatch],
) -> ApplyOutcome {
    let mut table = DeltaTable::open(location.clone()).await.unwrap();
    let mut writer = table.merge_writer(options);
    for b in batches {
        writer.write(b).await.unwrap();
    }
    let intent = writer.finish().await.unwrap();
    table.apply(&intent).await.unwrap()
}

/// Merges the change rows `rows` (`id`, `val`, `seq`, `op`) into the table at `location` under
/// `spec`, as the commit of txn version `version`.
async fn merge_rows(
    location: &TableLocation,
    spec: &MergeSpec,
    version: i64,
    rows: &[(i64, Option<i64>, Option<i64>, &str)],
) -> ApplyOutcome {
    merge(
        location,
        merge_options(spec.clone(), version),
        &[changes(rows)],
    )
    .await
}

#[derive(Debug, Clone, PartialEq)]
struct Row {
    val: Option<i64>,
    seq: i64,
    op: String,
}

/// The same changes applied by hand: per key the highest sequence (ties: later arrival) wins
/// within the batch, and replaces the table's row unless that has a higher sequence.
fn apply_to_oracle(
    oracle: &mut BTreeMap<i64, Row>,
    batch: &[(i64, Option<i64>, Option<i64>, &str)],
) {
    let mut winners: BTreeMap<i64, (Option<i64>, i64, &str)> = BTreeMap::new();
    for &(id, val, seq, op) in batch {
        let seq = seq.unwrap();
        match winners.get(&id) {
            Some((_, best, _)) if *best > seq => {}
            _ => {
                winners.insert(id, (val, seq, op));
            }
        }
    }
    for (id, (val, seq, op)) in winners {
        match oracle.get(&id) {
            Some(existing) if existing.seq > seq => {}
            Some(_) if op == "D" => {
                oracle.remove(&id);
            }
            None if op == "D" => {}
            _ => {
                oracle.insert(
                    id,
                    Row {
                        val,
                        seq,
                        op: op.to_owned(),
                    },
                );
            }
        }
    }
}

#[tokio::test]
async fn random_upserts_and_deletes_with_repeated_keys_equal_the_oracle() {
    let seed = fastrand::u64(..);
    let mut rng = fastrand::Rng::with_seed(seed);
    let (_dir, location) = local_table();
    let mut oracle = BTreeMap::new();
    for round in 1..=6 {
        let batch: Vec<(i64, Option<i64>, Option<i64>, &str)> = (0..40)
            .map(|_| {
                let op = ["I", "U", "U", "D"][rng.usize(..4)];
                let val = (rng.u8(..) > 30).then(|| rng.i64(-1000..1000));
                (rng.i64(0..25), val, Some(rng.i64(0..60)), op)
            })
            .collect();
        apply_to_oracle(&mut oracle, &batch);
        // Two input batches per merge: repeated keys across them are de-duplicated too.
        let (a, b) = batch.split_at(17);
        let outcome = merge(
            &location,
            merge_options(spec(), round),
            &[changes(a), changes(b)],
        )
        .await;
        assert!(
            matches!(outcome, ApplyOutcome::Committed { .. }),
            "seed {seed}: {outcome:?}"
        );

        let table = DeltaTable::open(location.clone()).await.unwrap();
        let read = read_sorted(&table).await;
        let got: BTreeMap<i64, Row> = ids(&read)
            .into_iter()
            .zip(ints(&read, "val"))
            .zip(ints(&read, "seq"))
            .zip(strings(&read, "op"))
            .map(|(((id, val), seq), op)| {
                (
                    id,
                    Row {
                        val,
                        seq: seq.unwrap(),
                        op: op.unwrap(),
                    },
                )
            })
            .collect();
        assert_eq!(got, oracle, "seed {seed}, round {round}");
    }
    // One commit per merge (after the create), each with its own txn version.
    let txns = txns_in_log(&location).await;
    assert_eq!(
        txns.iter().map(|t| t.2).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6],
        "{txns:?}"
    );
}

#[tokio::test]
async fn a_merge_applies_once_and_removes_its_staged_input() {
    let location = memory_table();
    let table = DeltaTable::open(location.clone()).await.unwrap();
    let mut writer = table.merge_writer(merge_options(spec(), 3));
    writer
        .write(&changes(&[
            (1, Some(1), Some(1), "I"),
            (2, Some(2), Some(1), "I"),
        ]))
        .await
        .unwrap();
    let intent = writer.finish().await.unwrap();
    let crate::IntentAction::Merge(m) = &intent.action else {
        panic!()
    };
    let staged = Path::from(m.staged[0].as_str());
    assert!(location.store().head(&staged).await.is_ok());

    let mut table = DeltaTable::open(location.clone()).await.unwrap();
    assert!(matches!(
        table.apply(&intent).await.unwrap(),
        ApplyOutcome::Committed { .. }
    ));
    assert_eq!(
        table.apply(&intent).await.unwrap(),
        ApplyOutcome::AlreadyApplied { txn_version: 3 }
    );
    assert!(
        location.store().head(&staged).await.is_err(),
        "staged input deleted"
    );
    assert_eq!(txns_in_log(&location).await.len(), 1);
    assert_eq!(ids(&read_sorted(&table).await), vec![1, 2]);
}

#[tokio::test]
async fn soft_deletes_keep_a_tombstone_that_stale_changes_lose_to() {
    let location = memory_table();
    let soft = MergeSpec {
        deletes: DeleteMode::Soft,
        ..spec()
    };
    merge_rows(&location, &soft, 1, &[(1, Some(10), Some(1), "I")]).await;
    merge_rows(
        &location,
        &soft,
        2,
        &[(1, None, Some(5), "D"), (9, None, Some(5), "D")],
    )
    .await;
    merge_rows(&location, &soft, 3, &[(1, Some(30), Some(3), "U")]).await;

    let table = DeltaTable::open(location.clone()).await.unwrap();
    let read = read_sorted(&table).await;
    assert_eq!(ids(&read), vec![1, 9]);
    // Row 1 keeps its value, takes the delete's sequence, and is marked deleted; the stale
    // update (seq 3) lost. Row 9 is a tombstone of a key the table never had.
    assert_eq!(ints(&read, "val"), vec![Some(10), None]);
    assert_eq!(ints(&read, "seq"), vec![Some(5), Some(5)]);
    assert!(strings(&read, DELETED_AT).iter().all(Option::is_some));

    merge_rows(&location, &soft, 4, &[(1, Some(40), Some(7), "U")]).await;
    let read = read_sorted(&DeltaTable::open(location.clone()).await.unwrap()).await;
    assert_eq!(ints(&read, "val"), vec![Some(40), None]);
    assert_eq!(
        strings(&read, DELETED_AT)[0],
        None,
        "a newer upsert revives the row"
    );
}

#[tokio::test]
async fn an_unchanged_marker_keeps_the_tables_value() {
    let location = memory_table();
    let spec = MergeSpec {
        unchanged_when: [("op".to_owned(), "op = '__unchanged'".to_owned())].into(),
        delete_when: None,
        ..spec()
    };
    merge_rows(&location, &spec, 1, &[(1, Some(1), Some(1), "big")]).await;
    merge_rows(
        &location,
        &spec,
        2,
        &[
            (1, Some(2), Some(2), "__unchanged"),
            (2, Some(3), Some(2), "__unchanged"),
        ],
    )
    .await;
    let read = read_sorted(&DeltaTable::open(location.clone()).await.unwrap()).await;
    assert_eq!(ints(&read, "val"), vec![Some(2), Some(3)]);
    assert_eq!(strings(&read, "op"), vec![Some("big".into()), None]);
}

#[tokio::test]
async fn an_unchanged_marker_takes_the_value_of_an_earlier_row_of_the_same_merge() {
    let location = memory_table();
    let spec = MergeSpec {
        unchanged_when: [("val".to_owned(), "op = 'K'".to_owned())].into(),
        ..spec()
    };
    merge(
        &location,
        merge_options(spec.clone(), 1),
        &[changes(&[(1, Some(10), Some(1), "I")])],
    )
    .await;
    // Key 1: the table's value stays; key 2: inserted, updated, then left unchanged twice;
    // key 3: set to NULL, then left unchanged (NULL is a value, not a placeholder).
    merge(
        &location,
        merge_options(spec, 2),
        &[changes(&[
            (1, None, Some(2), "K"),
            (2, Some(20), Some(2), "I"),
            (2, Some(21), Some(3), "U"),
            (2, None, Some(4), "K"),
            (3, Some(30), Some(2), "I"),
            (3, None, Some(3), "U"),
            (3, None, Some(4), "K"),
        ])],
    )
    .await;
    let read = read_sorted(&DeltaTable::open(location.clone()).await.unwrap()).await;
    assert_eq!(ints(&read, "val"), vec![Some(10), Some(21), None]);
    assert_eq!(ints(&read, "seq"), vec![Some(2), Some(4), Some(4)]);
}

#[tokio::test]
async fn a_truncate_empties_the_table_and_the_changes_after_it_apply() {
    let location = memory_table();
    let spec = MergeSpec {
        truncate_when: Some("op = 'T'".into()),
        ..spec()
    };
    merge(
        &location,
        merge_options(spec.clone(), 1),
        &[changes(&[
            (1, Some(1), Some(1), "I"),
            (2, Some(2), Some(1), "I"),
            (3, Some(3), Some(1), "I"),
        ])],
    )
    .await;
    // Before the truncate: changes that it wipes out; after: a new row, key 2 again, and
    // key 3 inserted and deleted.
    let mut batch = changes(&[
        (1, Some(11), Some(2), "U"),
        (4, Some(4), Some(2), "I"),
        (0, None, Some(3), "T"),
        (5, Some(5), Some(4), "I"),
        (2, Some(22), Some(5), "I"),
        (3, Some(33), Some(5), "I"),
        (3, None, Some(6), "D"),
    ]);
    // The truncate's key is NULL, as CDC's truncate records have it.
    let ids = Int64Array::from(vec![
        Some(1),
        Some(4),
        None,
        Some(5),
        Some(2),
        Some(3),
        Some(3),
    ]);
    let mut columns = batch.columns().to_vec();
    columns[0] = Arc::new(ids);
    batch = RecordBatch::try_new(batch.schema(), columns).unwrap();
    merge(&location, merge_options(spec.clone(), 2), &[batch]).await;
    let read = read_sorted(&DeltaTable::open(location.clone()).await.unwrap()).await;
    assert_eq!(ints(&read, "id"), vec![Some(2), Some(5)]);
    assert_eq!(ints(&read, "val"), vec![Some(22), Some(5)]);
    // A merge holding only a truncate empties the table.
    merge(
        &location,
        merge_options(spec, 3),
        &[changes(&[(0, None, Some(7), "T")])],
    )
    .await;
    let read = read_sorted(&DeltaTable::open(location.clone()).await.unwrap()).await;
    assert_eq!(ints(&read, "id"), Vec::<Option<i64>>::new());
}

#[tokio::test]
async fn a_merge_adds_new_input_columns_under_evolve() {
    let location = memory_table();
    merge_rows(&location, &spec(), 1, &[(1, Some(1), Some(1), "I")]).await;
    let int = |v: i64| Arc::new(Int64Array::from(vec![v])) as ArrayRef;
    let text = |v: &str| Arc::new(StringArray::from(vec![v])) as ArrayRef;
    let wider = RecordBatch::try_from_iter_with_nullable([
        ("id", int(2), false),
        ("val", int(2), true),
        ("seq", int(2), true),
        ("op", text("I"), true),
        ("region", text("eu"), true),
    ])
    .unwrap();
    merge(&location, merge_options(spec(), 2), &[wider]).await;
    let read = read_sorted(&DeltaTable::open(location.clone()).await.unwrap()).await;
    assert_eq!(strings(&read, "region"), vec![None, Some("eu".into())]);
}

#[tokio::test]
async fn bad_merge_input_fails_clearly_and_commits_nothing() {
    let location = memory_table();
    merge_rows(&location, &spec(), 1, &[(1, Some(1), Some(1), "I")]).await;
    let table = DeltaTable::open(location.clone()).await.unwrap();
    let cases = [
        (
            MergeSpec {
                keys: vec!["customer".into()],
                ..spec()
            },
            changes(&[(2, None, Some(1), "I")]),
            "merge key `customer` is not a column of the data",
        ),
        (
            MergeSpec {
                delete_when: Some("kind = 'D'".into()),
                ..spec()
            },
            changes(&[(2, None, Some(1), "I")]),
            "delete_when `kind = 'D'`",
        ),
        (
            MergeSpec {
                delete_when: Some("seq + 1".into()),
                ..spec()
            },
            changes(&[(2, None, Some(1), "I")]),
            "not a condition",
        ),
        (
            spec(),
            {
                let b = changes(&[(2, None, Some(1), "I"), (3, None, Some(1), "I")]);
                let ids = Int64Array::from(vec![Some(2), None]);
                RecordBatch::try_new(
                    b.schema(),
                    vec![
                        Arc::new(ids),
                        b.column(1).clone(),
                        b.column(2).clone(),
                        b.column(3).clone(),
                    ],
                )
                .unwrap()
            },
            "merge key `id` is NULL in 1 rows",
        ),
    ];
    for (i, (spec, batch, expected)) in cases.into_iter().enumerate() {
        let options = merge_options(spec, 10 + i as i64);
        let staging = options.staging.clone();
        let err = table.merge_writer(options).write(&batch).await.unwrap_err();
        assert_eq!(err.class, ErrorClass::User, "{err}");
        assert!(err.message.contains(expected), "{err}");
        assert!(err.message.contains(&location.display()), "{err}");
        let staged = objects_under(&location, &staging).await;
        assert!(staged.is_empty(), "nothing staged for {expected}");
    }
    assert_eq!(
        DeltaTable::open(location.clone()).await.unwrap().version(),
        Some(1)
    );
    assert_eq!(txns_in_log(&location).await.len(), 1);
}

#[tokio::test]
async fn a_merge_widens_a_column_the_input_needs_wider() {
    let location = memory_table();
    let plain = MergeSpec {
        keys: vec!["id".into()],
        ..MergeSpec::default()
    };
    merge(
        &location,
        merge_options(plain.clone(), 1),
        &[int32_batch("qty", &[1, 2], &[10, 20])],
    )
    .await;
    let wide = RecordBatch::try_from_iter_with_nullable([
        (
            "id",
            Arc::new(Int64Array::from(vec![2, 3])) as ArrayRef,
            false,
        ),
        (
            "qty",
            Arc::new(Int64Array::from(vec![5_000_000_000, 7])),
            true,
        ),
    ])
    .unwrap();
    merge(&location, merge_options(plain, 2), &[wide]).await;
    let read = read_sorted(&DeltaTable::open(location.clone()).await.unwrap()).await;
    assert_bigints(&read, "qty", &[Some(10), Some(5_000_000_000), Some(7)]);
}

#[tokio::test]
async fn an_aborted_merge_leaves_no_staged_input() {
    let location = memory_table();
    let options = merge_options(spec(), 1);
    let staging = options.staging.clone();
    let table = DeltaTable::open(location.clone()).await.unwrap();
    let mut writer = table.merge_writer(options);
    writer
        .write(&changes(&[(1, Some(1), Some(1), "I")]))
        .await
        .unwrap();
    writer.abort().await.unwrap();
    let staged = objects_under(&location, &staging).await;
    assert!(staged.is_empty(), "{staged:?}");
    assert_eq!(DeltaTable::open(location).await.unwrap().version(), None);
}

#[tokio::test]
async fn a_merge_writes_its_data_files_with_the_sinks_compression() {
    let (_dir, location) = local_table();
    for (version, compression) in [(1, Compression::Zstd), (2, Compression::Gzip)] {
        let options = MergeOptions {
            compression,
            ..merge_options(spec(), version)
        };
        let rows = [
            (version, Some(1), Some(1), "I"),
            (1, Some(version), Some(version), "U"),
        ];
        merge(&location, options, &[changes(&rows)]).await;
    }
    let mut codecs = Vec::new();
    for file in data_files(&location).await {
        let path = Path::from(format!("{}/{file}", location.root()));
        let bytes = object_bytes(&location, &path).await;
        let reader = parquet::file::reader::SerializedFileReader::new(bytes).unwrap();
        use parquet::file::reader::FileReader;
        let column = reader.metadata().row_group(0).column(0).compression();
        codecs.push(format!("{column:?}"));
    }
    // Every file the two merges wrote (the first merge's rewritten by the second when it
    // updated id 1) carries one of the two codecs asked for, never delta-rs' default Snappy.
    assert!(!codecs.is_empty());
    assert!(
        codecs
            .iter()
            .all(|c| c.starts_with("ZSTD") || c.starts_with("GZIP")),
        "{codecs:?}"
    );
    assert!(codecs.iter().any(|c| c.starts_with("GZIP")), "{codecs:?}");
}
