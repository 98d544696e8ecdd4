//! Merge semantics against PostgreSQL: random batches of inserts, updates and deletes (keys
//! repeated within a batch and across batches) merged into a Delta table, and the same
//! changes applied to a PostgreSQL table with plain SQL (`DISTINCT ON` picks each key's
//! winner in a batch, `DELETE` and `INSERT ... ON CONFLICT` guarded by the sequence). The two
//! tables must hold the same rows after every batch.

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use object_store::path::Path;
use sqlx::{Executor as _, Row as _};

use super::*;
use crate::{Compression, MergeOptions, MergeSpec};

type Change = (i64, Option<i64>, i64, &'static str);

fn batch_of(changes: &[Change]) -> RecordBatch {
    let rows: Vec<_> = changes
        .iter()
        .map(|&(id, val, seq, op)| (id, val, Some(seq), op))
        .collect();
    change_rows(&rows, false)
}

/// Applies one batch to the PostgreSQL table `table`: per key the highest `seq` wins (a tie:
/// the later arrival), then replaces the table's row unless that has a higher `seq`; a winning
/// `D` deletes.
async fn apply_in_postgres(pool: &sqlx::PgPool, table: &str, changes: &[Change]) {
    let mut tx = pool.begin().await.unwrap();
    tx.execute("create temp table changes (arrival int, id bigint, val bigint, seq bigint, op text) on commit drop")
        .await
        .unwrap();
    for (arrival, (id, val, seq, op)) in changes.iter().enumerate() {
        sqlx::query("insert into changes values ($1, $2, $3, $4, $5)")
            .bind(arrival as i32)
            .bind(id)
            .bind(val)
            .bind(seq)
            .bind(op)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.execute(
        "create temp table winners on commit drop as
         select distinct on (id) id, val, seq, op from changes order by id, seq desc, arrival desc",
    )
    .await
    .unwrap();
    tx.execute(
        format!(
            "delete from {table} t using winners w where t.id = w.id and w.op = 'D' and w.seq >= t.seq"
        )
        .as_str(),
    )
    .await
    .unwrap();
    tx.execute(
        format!(
            "insert into {table} (id, val, seq, op) select id, val, seq, op from winners where op <> 'D'
             on conflict (id) do update set val = excluded.val, seq = excluded.seq, op = excluded.op
             where excluded.seq >= {table}.seq"
        )
        .as_str(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

type Rows = BTreeMap<i64, (Option<i64>, i64, String)>;

async fn postgres_rows(pool: &sqlx::PgPool, table: &str) -> Rows {
    sqlx::query(&format!("select id, val, seq, op from {table}"))
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get("id"), (r.get("val"), r.get("seq"), r.get("op"))))
        .collect()
}

async fn delta_rows(location: &TableLocation) -> Rows {
    let table = DeltaTable::open(location.clone()).await.unwrap();
    let read = read_sorted(&table).await;
    ids(&read)
        .into_iter()
        .zip(ints(&read, "val"))
        .zip(ints(&read, "seq"))
        .zip(strings(&read, "op"))
        .map(|(((id, val), seq), op)| (id, (val, seq.unwrap(), op.unwrap())))
        .collect()
}

#[tokio::test]
async fn random_merges_equal_the_same_changes_applied_to_postgresql() {
    let url = std::env::var("PIPECTL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let pool = match sqlx::PgPool::connect(&url).await {
        Ok(pool) => pool,
        Err(e) if !services_required() => {
            eprintln!("SKIP: no PostgreSQL at {url}: {e}");
            return;
        }
        Err(e) => panic!("PostgreSQL at {url} is required: {e}"),
    };
    let seed = fastrand::u64(..);
    let mut rng = fastrand::Rng::with_seed(seed);
    let table = format!("delta_merge_oracle_{}", rng.u32(..));
    pool.execute(
        format!(
            "create table {table} (id bigint primary key, val bigint, seq bigint not null, op text not null)"
        )
        .as_str(),
    )
    .await
    .unwrap();

    let (_dir, location) = local_table();
    let spec = MergeSpec {
        keys: vec!["id".into()],
        sequence_by: vec!["seq".into()],
        delete_when: Some("op = 'D'".into()),
        ..MergeSpec::default()
    };
    for round in 1..=10 {
        // Few keys, many changes: repeats within a batch, ties on `seq`, stale changes.
        let changes: Vec<Change> = (0..rng.usize(1..80))
            .map(|_| {
                let op = ["I", "U", "U", "D"][rng.usize(..4)];
                let val = (rng.u8(..) > 40).then(|| rng.i64(-1000..1000));
                (rng.i64(0..30), val, rng.i64(0..40), op)
            })
            .collect();
        apply_in_postgres(&pool, &table, &changes).await;

        let mut delta = DeltaTable::open(location.clone()).await.unwrap();
        let mut writer = delta.merge_writer(MergeOptions {
            spec: spec.clone(),
            schema: SchemaPolicy::Evolve,
            partition_by: Vec::new(),
            staging: Path::from(format!("_pipectl/staging/oracle-{round}")),
            txn: txn(round),
            compression: Compression::default(),
        });
        // Split in two input batches: de-duplication spans them.
        let (a, b) = changes.split_at(changes.len() / 2);
        for part in [a, b] {
            writer.write(&batch_of(part)).await.unwrap();
        }
        let intent = writer.finish().await.unwrap();
        delta.apply(&intent).await.unwrap();

        let (expected, got) = (
            postgres_rows(&pool, &table).await,
            delta_rows(&location).await,
        );
        assert_eq!(
            got, expected,
            "seed {seed}, round {round}, changes {changes:?}"
        );
    }
    pool.execute(format!("drop table {table}").as_str())
        .await
        .unwrap();
}
