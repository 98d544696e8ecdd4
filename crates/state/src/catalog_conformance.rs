//! The [`CatalogStore`] contract as executable checks, shared by every backend's tests.

use chrono::{DateTime, TimeDelta, Utc};

use crate::StateError;
use crate::catalog::{
    CatalogColumn, CatalogFormat, CatalogPartition, CatalogStorage, CatalogStore, CatalogTable,
    CrawlRecord, SkippedFile, TableStatus,
};

/// Runs every catalog contract check against `store`, whose catalog must start empty.
///
/// # Panics
/// On the first contract violation, naming it.
pub fn run_all(store: &dyn CatalogStore) {
    tables_round_trip_and_create_their_database(store);
    tables_are_listed_by_database_then_name(store);
    schema_history_gains_one_entry_per_version(store);
    delete_keeps_history(store);
    invalid_names_are_rejected(store);
}

fn time(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(1_893_456_000_000_000 + 123_456).expect("in range")
        + TimeDelta::seconds(seconds)
}

fn column(name: &str, data_type: &str) -> CatalogColumn {
    CatalogColumn::new(name, data_type)
}

/// A table with two columns, one partition key and two partitions, at schema `version`.
pub fn sample_table(database: &str, name: &str, version: u32) -> CatalogTable {
    CatalogTable {
        database: database.to_owned(),
        name: name.to_owned(),
        location: format!("s3://bucket/clean/{name}/"),
        storage: CatalogStorage {
            endpoint: Some("http://127.0.0.1:5000".to_owned()),
            region: Some("us-east-1".to_owned()),
            access_key_id: Some("${env:KEY}".to_owned()),
            secret_access_key: None,
            allow_http: true,
        },
        format: CatalogFormat {
            kind: "csv".to_owned(),
            compression: Some("gzip".to_owned()),
            delimiter: Some(';'),
            header: Some(true),
            extension: Some(".csv.gz".to_owned()),
        },
        columns: vec![
            column("id", "bigint"),
            column("tags", "array<struct<k:string,v:double>>"),
        ],
        partition_keys: vec![column("year", "int")],
        hive_partitions: true,
        partitions: vec![
            CatalogPartition {
                values: vec!["2025".to_owned()],
                location: "year=2025/".to_owned(),
                files: 3,
                bytes: 1024,
                last_modified: Some(time(1)),
            },
            CatalogPartition {
                values: vec!["2026".to_owned()],
                location: "year=2026/".to_owned(),
                files: 1,
                bytes: 10,
                last_modified: None,
            },
        ],
        skipped_files: vec![SkippedFile {
            key: "year=2026/notes.csv.gz".to_owned(),
            reason: "not CSV: row 3 has 1 fields where row 1 has 2".to_owned(),
        }],
        schema_version: version,
        status: TableStatus::Active,
        created_at: time(0),
        updated_at: time(i64::from(version)),
        last_crawl: Some(CrawlRecord {
            crawler: "p/crawl".to_owned(),
            run_id: Some("run-1".to_owned()),
            at: time(i64::from(version)),
            changes: vec![format!("version {version}")],
        }),
        delta: None,
    }
}

fn tables_round_trip_and_create_their_database(store: &dyn CatalogStore) {
    let table = sample_table("rt", "film", 1);
    store.save_table(&table).expect("save_table");
    assert_eq!(
        store.table("rt", "film").expect("table"),
        Some(table.clone()),
        "a saved table reads back equal"
    );
    assert!(
        store
            .databases()
            .expect("databases")
            .iter()
            .any(|d| d.name == "rt"),
        "saving a table creates its database"
    );
    assert_eq!(store.table("rt", "nope").expect("table"), None);
    let mut changed = table.clone();
    changed.status = TableStatus::Deprecated;
    changed.partitions.pop();
    store.save_table(&changed).expect("save_table again");
    assert_eq!(
        store.table("rt", "film").expect("table"),
        Some(changed),
        "saving replaces the stored table"
    );
}

fn tables_are_listed_by_database_then_name(store: &dyn CatalogStore) {
    for (db, name) in [("ls_b", "z"), ("ls_a", "y"), ("ls_b", "a"), ("ls_a", "x")] {
        store
            .save_table(&sample_table(db, name, 1))
            .expect("save_table");
    }
    let names = |tables: Vec<CatalogTable>| {
        tables
            .into_iter()
            .filter(|t| t.database.starts_with("ls_"))
            .map(|t| format!("{}.{}", t.database, t.name))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(store.tables(None).expect("tables")),
        ["ls_a.x", "ls_a.y", "ls_b.a", "ls_b.z"],
        "all tables by database then name"
    );
    assert_eq!(
        names(store.tables(Some("ls_b")).expect("tables")),
        ["ls_b.a", "ls_b.z"],
        "one database's tables"
    );
    assert!(
        store.tables(Some("ls_")).expect("tables").is_empty(),
        "a database name is not a prefix"
    );
    let dbs: Vec<String> = store
        .databases()
        .expect("databases")
        .into_iter()
        .map(|d| d.name)
        .filter(|n| n.starts_with("ls_"))
        .collect();
    assert_eq!(dbs, ["ls_a", "ls_b"], "databases by name");
}

fn schema_history_gains_one_entry_per_version(store: &dyn CatalogStore) {
    store
        .save_table(&sample_table("hist", "t", 1))
        .expect("save v1");
    // Saving the same version again (new partitions, same schema) adds no history entry.
    store
        .save_table(&sample_table("hist", "t", 1))
        .expect("save v1 again");
    let mut v2 = sample_table("hist", "t", 2);
    v2.columns.push(column("added", "string"));
    store.save_table(&v2).expect("save v2");
    let history = store.table_history("hist", "t").expect("history");
    assert_eq!(
        history.iter().map(|v| v.version).collect::<Vec<_>>(),
        [1, 2],
        "one history entry per schema version, oldest first"
    );
    assert_eq!(history[1].columns, v2.columns);
    assert_eq!(history[1].changes, ["version 2"]);
    assert_eq!(history[1].crawler.as_deref(), Some("p/crawl"));
    assert!(
        store
            .table_history("hist", "other")
            .expect("history")
            .is_empty()
    );
}

fn delete_keeps_history(store: &dyn CatalogStore) {
    store
        .save_table(&sample_table("del", "t", 1))
        .expect("save");
    assert!(store.delete_table("del", "t").expect("delete"));
    assert!(!store.delete_table("del", "t").expect("delete again"));
    assert_eq!(store.table("del", "t").expect("table"), None);
    assert_eq!(store.table_history("del", "t").expect("history").len(), 1);
}

fn invalid_names_are_rejected(store: &dyn CatalogStore) {
    let err = store
        .save_table(&sample_table("a\0b", "t", 1))
        .expect_err("NUL in a database name");
    assert!(matches!(err, StateError::InvalidName { .. }), "{err:?}");
    let err = store.table("db", "t\0").expect_err("NUL in a table name");
    assert!(matches!(err, StateError::InvalidName { .. }), "{err:?}");
}
