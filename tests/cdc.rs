//! `postgres_cdc` sources against the private logical-replication cluster
//! (`scripts/pg-logical.sh`, started by `scripts/test.sh`; its URL in
//! `PIPECTL_TEST_PG_LOGICAL_URL`): what `plan` shows and checks.

use std::path::{Path, PathBuf};

use sqlx::Connection;

use crate::common::{output, pipectl, services_required, skip, snapshot};

/// One test's schema, slot and publication on the logical cluster, on a private runtime.
struct Cluster {
    rt: tokio::runtime::Runtime,
    url: String,
    conn: sqlx::PgConnection,
    /// The schema, also the slot's and the publication's name.
    name: String,
}

impl Cluster {
    fn connect() -> Option<Cluster> {
        let Ok(url) = std::env::var("PIPECTL_TEST_PG_LOGICAL_URL") else {
            assert!(
                !services_required(),
                "PIPECTL_TEST_PG_LOGICAL_URL is not set: start the cluster with scripts/pg-logical.sh start and eval \"$(scripts/pg-logical.sh env)\""
            );
            skip(
                "PIPECTL_TEST_PG_LOGICAL_URL not set (scripts/test.sh starts the logical cluster)",
            );
            return None;
        };
        let rt = tokio::runtime::Runtime::new().unwrap();
        let conn = match rt.block_on(sqlx::PgConnection::connect(&url)) {
            Ok(conn) => conn,
            Err(e) if services_required() => {
                panic!("the logical cluster at {url} is required: {e}")
            }
            Err(e) => {
                skip(&format!("no logical cluster at {url}: {e}"));
                return None;
            }
        };
        // The cdc crate's tests drop what dead processes left under `cdc_<pid>_`.
        let name = format!("cdc_{}_{:x}", std::process::id(), fastrand::u32(..));
        let mut cluster = Cluster {
            rt,
            url,
            conn,
            name,
        };
        cluster.exec(&format!("create schema {}", cluster.name));
        Some(cluster)
    }

    fn exec(&mut self, sql: &str) {
        self.rt
            .block_on(sqlx::raw_sql(sql).execute(&mut self.conn))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// A pipeline replicating the test's schema into change files (Parquet) and merged
    /// Delta tables.
    fn spec(&self, dir: &Path, extra: &str) -> PathBuf {
        let text = format!(
            r#"version: 1
name: cdc
connections:
  db: {{ url: "{url}" }}
  lake: {{ url: "file://lake" }}
sources:
  shop:
    type: postgres_cdc
    connection: db
    include: [{{ schema: "{name}", table: "%" }}]
    publication: {name}
    slot: {name}
{extra}sinks:
  changes:
    type: object_store
    inputs: [shop]
    connection: lake
    key: "changes/{{table}}/"
    format: {{ type: parquet }}
  current:
    type: object_store
    inputs: [shop]
    connection: lake
    key: "tables/{{table}}/"
    format: {{ type: delta }}
    mode: merge
"#,
            url = self.url,
            name = self.name,
        );
        let path = dir.join("pipeline.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = self.rt.block_on(
            sqlx::query("select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1 and not active")
                .bind(&name)
                .execute(&mut self.conn),
        );
        let sql =
            format!("drop publication if exists {name}; drop schema if exists {name} cascade");
        let _ = self
            .rt
            .block_on(sqlx::raw_sql(&sql).execute(&mut self.conn));
    }
}

#[test]
fn plan_shows_slot_publication_tables_and_what_to_change() {
    let Some(mut c) = Cluster::connect() else {
        return;
    };
    let s = c.name.clone();
    c.exec(&format!(
        "create table {s}.items (id bigint primary key, note text);
         create table {s}.lines (order_id int, line int, qty int, primary key (order_id, line));
         create table {s}.audit (at timestamptz, what text);
         create table {s}.events (at timestamptz, what text);
         alter table {s}.events replica identity full;"
    ));
    let dir = tempfile::tempdir().unwrap();
    let spec = c.spec(dir.path(), "");
    let (out, stdout, stderr) = output(pipectl(dir.path()).arg("plan").arg(&spec));
    assert!(out.status.success(), "{stderr}");
    let text = stdout
        .replace(&c.url, "<url>")
        .replace(&s, "<name>")
        .replace(&dir.path().display().to_string(), "<dir>");
    let text = match text.find(", spec ") {
        Some(i) => format!("{}, spec <hash>{}", &text[..i], &text[i + 7 + 16..]),
        None => text,
    };
    snapshot("plan_postgres_cdc.txt", &text);
}

#[test]
fn plan_against_a_replica_level_server_says_to_set_wal_level_logical() {
    let url = std::env::var("PIPECTL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut conn = match rt.block_on(sqlx::PgConnection::connect(&url)) {
        Ok(conn) => conn,
        Err(e) if services_required() => panic!("PostgreSQL at {url} is required: {e}"),
        Err(e) => {
            skip(&format!("PostgreSQL at {url} is unreachable ({e})"));
            return;
        }
    };
    let level: String = rt
        .block_on(sqlx::query_scalar("show wal_level").fetch_one(&mut conn))
        .unwrap();
    if level == "logical" {
        skip("the machine's PostgreSQL already runs with wal_level=logical");
        return;
    }
    let name = format!("cdcplan_{}_{:x}", std::process::id(), fastrand::u32(..));
    rt.block_on(
        sqlx::raw_sql(&format!(
            "create schema {name}; create table {name}.t (id int primary key)"
        ))
        .execute(&mut conn),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("pipeline.yaml");
    std::fs::write(
        &spec,
        format!(
            "version: 1\nname: cdc\nconnections:\n  db: {{ url: \"{url}\" }}\n  lake: {{ url: \"file://lake\" }}\nsources:\n  shop:\n    type: postgres_cdc\n    connection: db\n    include: [{{ schema: {name} }}]\n    publication: {name}\n    slot: {name}\nsinks:\n  changes:\n    type: object_store\n    inputs: [shop]\n    connection: lake\n    key: \"changes/{{table}}/\"\n    format: {{ type: csv }}\n"
        ),
    )
    .unwrap();
    let (out, stdout, stderr) = output(pipectl(dir.path()).arg("plan").arg(&spec));
    let _ = rt.block_on(sqlx::raw_sql(&format!("drop schema {name} cascade")).execute(&mut conn));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("wal_level is `replica`; logical replication needs `wal_level = logical`"),
        "{stdout}"
    );
}
