//! The replication stream against the logical cluster: a slot created with an exported
//! snapshot, the table copied in it, then changes made before and while streaming arrive
//! decoded, once, in commit order; a confirmed position survives a reconnect.

use std::time::Duration;

use sqlx::{Executor, PgConnection};

use super::{logical_cluster, unique};
use crate::pgoutput::Value;
use crate::{Event, Lsn, Op, ReplicationStream, StreamSettings, Transaction, TypeOptions};

/// Stream settings for the cluster in `PIPECTL_TEST_PG_LOGICAL_URL`.
fn settings(slot: &str, publication: &str, schema: &str) -> StreamSettings {
    let url = std::env::var("PIPECTL_TEST_PG_LOGICAL_URL").unwrap();
    let url = url::Url::parse(&url).unwrap();
    StreamSettings {
        host: url.host_str().unwrap().to_owned(),
        port: url.port().unwrap_or(5432),
        user: url.username().to_owned(),
        password: url.password().unwrap_or("").to_owned(),
        database: url.path().trim_start_matches('/').to_owned(),
        slot: slot.to_owned(),
        publication: publication.to_owned(),
        tables: vec![(schema.to_owned(), "items".to_owned())],
        start_lsn: None,
        status_interval: Duration::from_millis(100),
        application_name: schema.to_owned(),
        types: TypeOptions::default(),
    }
}

/// The next `n` committed transactions with changes (a guard fails the test instead of
/// hanging it). Transactions of other tests on the cluster arrive without changes when they
/// carry only logical messages, which every slot receives.
async fn next_commits(stream: &mut ReplicationStream, n: usize) -> Vec<Transaction> {
    let mut out = Vec::new();
    while out.len() < n {
        let event = tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await
            .expect("a transaction arrives within 60 s")
            .unwrap()
            .expect("the stream goes on");
        if let Event::Commit(tx) = event
            && !tx.changes.is_empty()
        {
            out.push(tx);
        }
    }
    out
}

/// (op, id) of each change: the tables' first column is `id integer`.
fn ids(tx: &Transaction) -> Vec<(Op, i64)> {
    tx.changes
        .iter()
        .map(|c| match &c.values[0] {
            Value::Text(t) => (c.op, std::str::from_utf8(t).unwrap().parse().unwrap()),
            other => panic!("id is {other:?}"),
        })
        .collect()
}

/// Waits until the slot's confirmed position reached `lsn` (feedback is asynchronous).
async fn wait_confirmed(conn: &mut PgConnection, slot: &str, lsn: Lsn) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (confirmed,): (String,) = sqlx::query_as(
            "select confirmed_flush_lsn::text from pg_replication_slots where slot_name = $1",
        )
        .bind(slot)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        if confirmed.parse::<Lsn>().unwrap() >= lsn {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "slot {slot} confirmed {confirmed}, never {lsn}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until no connection holds the slot, so it can be dropped.
async fn wait_released(conn: &mut PgConnection, slot: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (active,): (bool,) =
            sqlx::query_as("select active from pg_replication_slots where slot_name = $1")
                .bind(slot)
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        if !active {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "slot {slot} still active"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_new_slot_snapshot_then_streamed_changes_meet_without_gap_or_duplicate() {
    let Some(mut conn) = logical_cluster().await else {
        return;
    };
    let Some(mut copier) = logical_cluster().await else {
        return;
    };
    let schema = unique("cdcs");
    let slot = schema.clone();
    let publication = format!("{schema}_pub");
    conn.execute(
        format!(
            "create schema {schema};
             create table {schema}.items (id integer primary key, name text, amount numeric(8,2));
             insert into {schema}.items values (1, 'one', 1.10), (2, 'two', 2.20), (3, 'three', 3.30);"
        )
        .as_str(),
    )
    .await
    .unwrap();

    let (mut stream, snapshot) = ReplicationStream::open(&settings(&slot, &publication, &schema))
        .await
        .unwrap();
    let snapshot = snapshot.expect("a new slot exports its snapshot");
    let (created,): (i64,) =
        sqlx::query_as("select count(*) from pg_publication_tables where pubname = $1")
            .bind(&publication)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        created, 1,
        "the missing publication was created for the table"
    );
    assert!(snapshot.consistent_point > Lsn(0));

    // Committed after the slot's consistent point: streamed, not in the snapshot.
    conn.execute(format!("insert into {schema}.items values (4, 'four', 4.40)").as_str())
        .await
        .unwrap();
    conn.execute(format!("update {schema}.items set name = 'uno' where id = 1").as_str())
        .await
        .unwrap();

    // The copy sees the table as of the slot's creation.
    copier
        .execute("begin isolation level repeatable read")
        .await
        .unwrap();
    copier
        .execute(format!("set transaction snapshot '{}'", snapshot.name).as_str())
        .await
        .unwrap();
    let copied: Vec<(i32, String)> =
        sqlx::query_as(&format!("select id, name from {schema}.items order by id"))
            .fetch_all(&mut copier)
            .await
            .unwrap();
    copier.execute("commit").await.unwrap();
    assert_eq!(
        copied,
        [(1, "one".into()), (2, "two".into()), (3, "three".into())]
    );

    stream.start().await.unwrap();
    // Made while streaming: a multi-row transaction, a delete, a rolled-back transaction and
    // an update.
    conn.execute(
        format!("insert into {schema}.items values (5, 'five', 5.50), (6, 'six', 6.60)").as_str(),
    )
    .await
    .unwrap();
    conn.execute(format!("delete from {schema}.items where id = 2").as_str())
        .await
        .unwrap();
    conn.execute(
        format!("begin; insert into {schema}.items values (99, 'never', 0); rollback").as_str(),
    )
    .await
    .unwrap();
    conn.execute(format!("update {schema}.items set amount = 5.55 where id = 5").as_str())
        .await
        .unwrap();

    let txs = next_commits(&mut stream, 5).await;
    let got: Vec<_> = txs.iter().map(ids).collect();
    assert_eq!(
        got,
        [
            vec![(Op::Insert, 4)],
            vec![(Op::Update, 1)],
            vec![(Op::Insert, 5), (Op::Insert, 6)],
            vec![(Op::Delete, 2)],
            vec![(Op::Update, 5)],
        ]
    );
    assert!(txs[0].commit_lsn > snapshot.consistent_point);
    for pair in txs.windows(2) {
        assert!(pair[0].end_lsn <= pair[1].commit_lsn, "commit order");
    }
    let amount = &txs[4].changes[0].values[2];
    assert_eq!(amount, &Value::Text(b"5.55".to_vec()));

    // The applied position reaches the slot; after a reconnect only later changes arrive.
    let applied = txs[4].end_lsn;
    stream.confirm(applied);
    wait_confirmed(&mut conn, &slot, applied).await;
    stream.close().await.unwrap();
    wait_released(&mut conn, &slot).await;
    conn.execute(format!("insert into {schema}.items values (7, 'seven', 7.70)").as_str())
        .await
        .unwrap();
    let (mut again, snapshot) = ReplicationStream::open(&settings(&slot, &publication, &schema))
        .await
        .unwrap();
    assert!(snapshot.is_none(), "an existing slot exports no snapshot");
    again.start().await.unwrap();
    let txs = next_commits(&mut again, 1).await;
    assert_eq!(ids(&txs[0]), [(Op::Insert, 7)]);
    again.close().await.unwrap();

    wait_released(&mut conn, &slot).await;
    sqlx::query("select pg_drop_replication_slot($1)")
        .bind(&slot)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.execute(format!("drop publication {publication}; drop schema {schema} cascade").as_str())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_missing_publication_without_tables_is_an_error_that_says_what_to_do() {
    let Some(_conn) = logical_cluster().await else {
        return;
    };
    let name = unique("cdcs");
    let mut s = settings(&name, &format!("{name}_pub"), &name);
    s.tables.clear();
    let err = match ReplicationStream::open(&s).await {
        Ok(_) => panic!("opened a stream without a publication"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("does not exist") && err.contains("CREATE PUBLICATION"),
        "{err}"
    );
}
