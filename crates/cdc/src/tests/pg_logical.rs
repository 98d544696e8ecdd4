//! Real pgoutput bytes from `pg_logical_slot_get_binary_changes`, decoded and compared with
//! what the test did and with what the server itself prints for the same values.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Time64MicrosecondType, TimestampMicrosecondType,
};
use sqlx::{Executor, PgConnection, Row};

use super::{logical_cluster, unique};
use crate::pgoutput::{ReplicaIdentity, Value, decode};
use crate::types::{CATALOG_SQL, TypeCatalog};
use crate::{
    Change, ChangeColumns, ChangeDecoder, Event, Lsn, Op, Transaction, TypeOptions,
    to_record_batches,
};

/// Every change the slot holds, decoded.
async fn slot_events(
    conn: &mut PgConnection,
    slot: &str,
    publication: &str,
    schema: &str,
) -> Vec<Event> {
    let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(
        "select lsn::text, data from pg_logical_slot_get_binary_changes($1, NULL, NULL, 'proto_version', '1', 'publication_names', $2, 'messages', 'true')",
    )
    .bind(slot)
    .bind(publication)
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let mut catalog = TypeCatalog::default();
    let types: Vec<crate::types::CatalogRow> = sqlx::query_as(CATALOG_SQL)
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    for row in types {
        catalog.insert_row(row);
    }
    let mut decoder = ChangeDecoder::new(TypeOptions::default(), catalog);
    let keys: Vec<(i64, String)> = sqlx::query_as(&crate::stream::primary_keys_sql(publication))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    for (oid, column) in keys {
        decoder.set_primary_key(oid as u32, vec![column]);
    }
    let mut events = Vec::new();
    for (lsn, data) in rows {
        let message = decode(&data).unwrap_or_else(|e| panic!("message at {lsn}: {e}"));
        if let Some(event) = decoder.push(message).unwrap() {
            events.push(event);
        }
    }
    // Each relation was described as the table is.
    let kinds = decoder
        .relation(oid_of(conn, &format!("{schema}.kinds")).await)
        .unwrap();
    assert_eq!(kinds.replica_identity, ReplicaIdentity::Default);
    let full = decoder
        .relation(oid_of(conn, &format!("{schema}.full_rows")).await)
        .unwrap();
    assert_eq!(full.replica_identity, ReplicaIdentity::Full);
    events
}

async fn oid_of(conn: &mut PgConnection, table: &str) -> u32 {
    let (oid,): (i64,) = sqlx::query_as("select $1::regclass::oid::int8")
        .bind(table)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    oid as u32
}

fn commits(events: &[Event]) -> Vec<&Transaction> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Commit(tx) => Some(tx),
            Event::Message { .. } => None,
        })
        .collect()
}

fn ops(tx: &Transaction) -> Vec<(&str, Op, u32)> {
    tx.changes
        .iter()
        .map(|c| (c.relation.name.as_str(), c.op, c.position))
        .collect()
}

fn batch(changes: &[Change]) -> RecordBatch {
    let mut batches =
        to_record_batches(changes, &ChangeColumns::default(), TypeOptions::default()).unwrap();
    assert_eq!(batches.len(), 1, "one table's changes");
    batches.remove(0).1
}

fn text(b: &RecordBatch, column: &str, row: usize) -> Option<String> {
    let a = b.column_by_name(column).unwrap().as_string::<i32>();
    (!a.is_null(row)).then(|| a.value(row).to_owned())
}

/// What the server prints for row 1 of `kinds`, read in the same session (same TimeZone) as
/// the changes: the batch source's forms (`array_to_json`, exact numeric text, epoch
/// microseconds).
const EXPECTED_SQL: &str =
    "select amount::text as amount, big::text as big, array_to_json(ints)::text as ints,
        array_to_json(texts)::text as texts, array_to_json(stamps)::text as stamps,
        array_to_json(flags)::text as flags, array_to_json(docs)::text as docs,
        (extract(epoch from tstz) * 1000000)::int8 as tstz_micros,
        (extract(epoch from ts) * 1000000)::int8 as ts_micros,
        (extract(epoch from t) * 1000000)::int8 as t_micros,
        (d - date '1970-01-01') as days, j::text as j, jb::text as jb, u::text as u, b,
        iv::text as iv, mood::text as mood, abbrev(addr) as inet, doc
 from SCHEMA.kinds where id = 1";

#[tokio::test]
async fn pgoutput_bytes_from_a_real_slot_decode_to_the_changes_made() {
    let Some(mut conn) = logical_cluster().await else {
        return;
    };
    let schema = unique("cdc");
    let slot = schema.clone();
    let publication = format!("{schema}_pub");
    // Offsets other than whole hours prove the zone is applied, not dropped.
    conn.execute("set timezone = 'Asia/Kolkata'").await.unwrap();
    conn.execute(
        format!(
            "create schema {schema};
             create type {schema}.mood as enum ('sad', 'happy');
             create table {schema}.kinds (
                 id bigint primary key, i2 smallint, i4 integer, f4 real, f8 double precision,
                 ok boolean, amount numeric(12,3), big numeric, note text, v varchar(10),
                 d date, t time, ts timestamp, tstz timestamptz, j json, jb jsonb, u uuid,
                 b bytea, ints integer[], texts text[], stamps timestamptz[], flags boolean[],
                 docs jsonb[], iv interval, mood {schema}.mood, addr inet, doc text);
             alter table {schema}.kinds alter doc set storage external;
             create table {schema}.full_rows (id integer primary key, n integer, doc text);
             alter table {schema}.full_rows replica identity full;
             alter table {schema}.full_rows alter doc set storage external;
             create publication {publication} for table {schema}.kinds, {schema}.full_rows;"
        )
        .as_str(),
    )
    .await
    .unwrap();
    sqlx::query("select pg_create_logical_replication_slot($1, 'pgoutput')")
        .bind(&slot)
        .execute(&mut conn)
        .await
        .unwrap();

    // 12,800 characters stored out of line (storage external): a TOASTed value.
    let doc = "(select string_agg(md5(i::text), '') from generate_series(1, 400) i)";
    conn.execute(
        format!(
            "insert into {schema}.kinds values (
                 1, -32768, 2147483647, 1.5, 2.25, true, -123456789.125,
                 12345678901234567890.000000000001, 'first', 'väl', '0044-03-15 BC', '24:00:00',
                 '2026-12-03 10:11:12.345678', '2026-12-03 10:11:12.5+01',
                 '{{\"a\": [1, 2]}}', '{{\"b\": null, \"a\": 1}}',
                 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x00ff7f', '{{1,NULL,3}}',
                 '{{\"with space\",\"quote\\\"d\",NULL,\"NULL\"}}',
                 '{{\"2026-01-01 00:00:00+00\",\"2026-06-01 12:30:00.25+02\"}}', '{{t,f}}',
                 array['{{\"k\": [1]}}'::jsonb], '1 year 2 mons 3 days 04:05:06.5', 'happy',
                 '::1', {doc});
             insert into {schema}.kinds (id) values (2);"
        )
        .as_str(),
    )
    .await
    .unwrap();
    let expected = sqlx::query(&EXPECTED_SQL.replace("SCHEMA", &schema))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let want = |name: &str| -> String { expected.get(name) };
    let want_i64 = |name: &str| -> i64 { expected.get(name) };
    conn.execute(format!("update {schema}.kinds set note = 'changed' where id = 1").as_str())
        .await
        .unwrap();
    conn.execute(format!("update {schema}.kinds set id = 3 where id = 2").as_str())
        .await
        .unwrap();
    // Rolled back: never decoded.
    conn.execute(format!("begin; insert into {schema}.kinds (id) values (99); rollback").as_str())
        .await
        .unwrap();
    conn.execute(format!("insert into {schema}.full_rows values (1, 1, {doc})").as_str())
        .await
        .unwrap();
    conn.execute(
        format!(
            "begin; update {schema}.full_rows set n = 2 where id = 1;
             delete from {schema}.full_rows where id = 1; commit"
        )
        .as_str(),
    )
    .await
    .unwrap();
    // A primary key change under REPLICA IDENTITY FULL.
    conn.execute(format!("insert into {schema}.full_rows values (5, 5, 'five')").as_str())
        .await
        .unwrap();
    conn.execute(format!("update {schema}.full_rows set id = 6 where id = 5").as_str())
        .await
        .unwrap();
    // A message outside a transaction is written without a flush: the commit after it makes
    // it readable.
    conn.execute("select pg_logical_emit_message(false, 'pipectl', 'outside')")
        .await
        .unwrap();
    conn.execute(
        format!(
            "begin; select pg_logical_emit_message(true, 'pipectl', 'inside');
             truncate {schema}.kinds; commit"
        )
        .as_str(),
    )
    .await
    .unwrap();

    let events = slot_events(&mut conn, &slot, &publication, &schema).await;
    let txs = commits(&events);
    assert_eq!(txs.len(), 8, "eight committed transactions: {events:#?}");
    // Commit order is LSN order, and each change carries its commit's LSN and time.
    for pair in txs.windows(2) {
        assert!(pair[0].commit_lsn < pair[1].commit_lsn);
        assert!(pair[0].end_lsn <= pair[1].commit_lsn);
    }
    for tx in &txs {
        assert!(tx.changes.iter().all(
            |c| c.commit_lsn == tx.commit_lsn && c.commit_time_micros == tx.commit_time_micros
        ));
    }
    let now = chrono::Utc::now().timestamp_micros();
    assert!(
        (now - txs[0].commit_time_micros).abs() < 600_000_000,
        "commit times are Unix times"
    );

    // 1: two inserts, every type converted as the batch source lands it.
    assert_eq!(
        ops(txs[0]),
        [("kinds", Op::Insert, 1), ("kinds", Op::Insert, 2)]
    );
    let b = batch(&txs[0].changes);
    let col = |name: &str| b.column_by_name(name).unwrap();
    assert_eq!(col("id").as_primitive::<Int64Type>().value(0), 1);
    assert_eq!(col("i2").as_primitive::<Int16Type>().value(0), -32768);
    assert_eq!(col("i4").as_primitive::<Int32Type>().value(0), i32::MAX);
    assert_eq!(col("f4").as_primitive::<Float32Type>().value(0), 1.5);
    assert_eq!(col("f8").as_primitive::<Float64Type>().value(0), 2.25);
    assert!(col("ok").as_boolean().value(0));
    let amount = col("amount");
    assert_eq!(
        amount.data_type(),
        &arrow::datatypes::DataType::Decimal128(12, 3)
    );
    assert_eq!(
        amount.as_primitive::<Decimal128Type>().value_as_string(0),
        want("amount")
    );
    assert_eq!(text(&b, "big", 0).unwrap(), want("big"));
    assert_eq!(text(&b, "v", 0).unwrap(), "väl");
    assert_eq!(
        col("d").as_primitive::<Date32Type>().value(0),
        expected.get::<i32, _>("days")
    );
    assert_eq!(
        col("t").as_primitive::<Time64MicrosecondType>().value(0),
        want_i64("t_micros")
    );
    assert_eq!(
        col("ts")
            .as_primitive::<TimestampMicrosecondType>()
            .value(0),
        want_i64("ts_micros")
    );
    assert_eq!(
        col("tstz")
            .as_primitive::<TimestampMicrosecondType>()
            .value(0),
        want_i64("tstz_micros")
    );
    assert_eq!(text(&b, "j", 0).unwrap(), want("j"));
    assert_eq!(text(&b, "jb", 0).unwrap(), want("jb"));
    assert_eq!(text(&b, "u", 0).unwrap(), want("u"));
    assert_eq!(
        col("b").as_binary::<i32>().value(0),
        expected.get::<Vec<u8>, _>("b").as_slice()
    );
    assert_eq!(text(&b, "ints", 0).unwrap(), want("ints"));
    assert_eq!(text(&b, "texts", 0).unwrap(), want("texts"));
    assert_eq!(text(&b, "stamps", 0).unwrap(), want("stamps"));
    assert_eq!(text(&b, "flags", 0).unwrap(), want("flags"));
    assert_eq!(text(&b, "docs", 0).unwrap(), want("docs"));
    assert_eq!(text(&b, "iv", 0).unwrap(), want("iv"));
    assert_eq!(text(&b, "mood", 0).unwrap(), want("mood"));
    assert_eq!(text(&b, "addr", 0).unwrap(), want("inet"));
    let doc_text = want("doc");
    assert_eq!(doc_text.len(), 12_800);
    assert_eq!(text(&b, "doc", 0).unwrap(), doc_text);
    // Row 2: NULLs stay NULL.
    assert!((1..b.num_columns() - 5).all(|i| b.column(i).is_null(1)));

    // 2: the update leaves the TOASTed doc out; it is marked unchanged, not NULL.
    assert_eq!(ops(txs[1]), [("kinds", Op::Update, 1)]);
    assert_eq!(txs[1].changes[0].values.last(), Some(&Value::Unchanged));
    let b = batch(&txs[1].changes);
    assert_eq!(text(&b, "note", 0).unwrap(), "changed");
    let unchanged = b
        .column_by_name("_pipectl_unchanged")
        .unwrap()
        .as_list::<i32>();
    let names = unchanged.value(0);
    let names: Vec<_> = names.as_string::<i32>().iter().flatten().collect();
    assert_eq!(names, ["doc"]);

    // 3: a key change is a delete of the old key, then the update.
    assert_eq!(
        ops(txs[2]),
        [("kinds", Op::Delete, 1), ("kinds", Op::Update, 2)]
    );
    let b = batch(&txs[2].changes);
    let ids = b.column_by_name("id").unwrap().as_primitive::<Int64Type>();
    assert_eq!((ids.value(0), ids.value(1)), (2, 3));
    let ops_col: Vec<_> = b
        .column_by_name("Op")
        .unwrap()
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect();
    assert_eq!(ops_col, ["D", "U"]);

    // 4 and 5 (REPLICA IDENTITY FULL): the server sends the whole old row, TOASTed doc
    // included, so the update carries the doc instead of marking it unchanged; the delete
    // carries the whole old row.
    assert_eq!(ops(txs[3]), [("full_rows", Op::Insert, 1)]);
    assert_eq!(
        ops(txs[4]),
        [("full_rows", Op::Update, 1), ("full_rows", Op::Delete, 2)]
    );
    let b = batch(&txs[4].changes);
    let n = b.column_by_name("n").unwrap().as_primitive::<Int32Type>();
    assert_eq!(
        (n.value(0), n.value(1)),
        (2, 2),
        "the delete carries the old row"
    );
    for change in &txs[4].changes {
        assert_eq!(change.values[2], Value::Text(doc_text.clone().into_bytes()));
    }

    // 6 and 7: the primary key change is a delete of the old row and the update.
    assert_eq!(ops(txs[5]), [("full_rows", Op::Insert, 1)]);
    assert_eq!(
        ops(txs[6]),
        [("full_rows", Op::Delete, 1), ("full_rows", Op::Update, 2)]
    );
    let b = batch(&txs[6].changes);
    let ids = b.column_by_name("id").unwrap().as_primitive::<Int32Type>();
    assert_eq!((ids.value(0), ids.value(1)), (5, 6));

    // The message outside a transaction, then 8: the transactional message and the truncate.
    assert_eq!(ops(txs[7]), [("kinds", Op::Truncate, 1)]);
    assert_eq!(
        txs[7].messages,
        [("pipectl".to_owned(), b"inside".to_vec())]
    );
    assert!(matches!(
        &events[events.len() - 2],
        Event::Message { prefix, content, lsn } if prefix == "pipectl" && content == b"outside" && *lsn > Lsn(0)
    ));

    sqlx::query("select pg_drop_replication_slot($1)")
        .bind(&slot)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.execute(format!("drop publication {publication}; drop schema {schema} cascade").as_str())
        .await
        .unwrap();
}
