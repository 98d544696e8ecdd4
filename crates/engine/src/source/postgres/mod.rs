//! The `postgres` source: PostgreSQL read in `REPEATABLE READ` snapshots.
//!
//! `mod.rs` is the dialect (SQL text, connection, snapshot calls); [`catalog`] lists tables
//! and maps types; [`read`] decodes rows. What every database source shares is in
//! [`crate::source::database`].

pub mod catalog;
pub mod read;

use std::str::FromStr;

use pipectl_spec::types::DatabaseSource;
use pipectl_state::Bookmark;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection, Executor, Row};

use crate::error::{Error, Result};
use crate::source::database::{
    Bounds, Dialect, Listing, SLOW_STATEMENT, Server, Statement, TablePlan, TableWriter,
};

/// PostgreSQL.
pub struct Postgres;

impl Dialect for Postgres {
    const NAME: &'static str = "postgres";

    fn quote(name: &str) -> String {
        format!("\"{}\"", name.replace('"', "\"\""))
    }

    fn placeholder(n: usize) -> String {
        format!("${n}")
    }

    fn key_as_text(quoted: &str) -> String {
        format!("{quoted}::text")
    }

    fn cast_param(placeholder: &str, declared: &str) -> String {
        // `declared` comes from `format_type()` in the catalog, never from the spec.
        format!("{placeholder}::{declared}")
    }

    fn settled(quoted: &str, seconds: &str) -> String {
        format!("{quoted} <= now() - make_interval(secs => {seconds}::bigint)")
    }

    fn as_int8(expr: &str) -> String {
        format!("{expr}::int8")
    }
}

/// Connects and fixes the session settings values are read in: UTC, ISO dates and intervals.
pub async fn connect(url: &str) -> Result<PgConnection> {
    let (level, after) = SLOW_STATEMENT;
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| Error::user(format!("the PostgreSQL URL does not parse: {e}")))?
        .log_slow_statements(level, after);
    let mut conn = PgConnection::connect_with(&options)
        .await
        .map_err(|e| Error::external("cannot connect to PostgreSQL", e))?;
    conn.execute("set timezone = 'UTC'; set datestyle = 'ISO'; set intervalstyle = 'iso_8601'")
        .await
        .map_err(|e| Error::external("cannot set up the PostgreSQL session", e))?;
    Ok(conn)
}

impl Server for Postgres {
    type Conn = PgConnection;

    async fn connect(url: &str) -> Result<PgConnection> {
        connect(url).await
    }

    async fn list_tables(
        source: &str,
        spec: &DatabaseSource,
        conn: &mut PgConnection,
        stored: &(dyn Fn(&str) -> Option<Bookmark> + Sync),
    ) -> Result<Listing<TablePlan>> {
        catalog::list_tables(source, spec, conn, stored).await
    }

    async fn begin_snapshot(conn: &mut PgConnection) -> Result<()> {
        conn.execute("begin isolation level repeatable read read only")
            .await
            .map_err(|e| Error::external("cannot start a snapshot", e))?;
        Ok(())
    }

    async fn end_snapshot(mut conn: PgConnection) {
        conn.execute("commit").await.ok();
        conn.close().await.ok();
    }

    async fn close(conn: PgConnection) {
        conn.close().await.ok();
    }

    async fn count(conn: &mut PgConnection, sql: &str) -> sqlx::Result<i64> {
        let (n,): (i64,) = sqlx::query_as(sql).fetch_one(conn).await?;
        Ok(n)
    }

    async fn key_texts(
        conn: &mut PgConnection,
        statement: &Statement,
    ) -> sqlx::Result<Option<Vec<String>>> {
        let mut query = sqlx::query(&statement.sql);
        for p in &statement.params {
            query = query.bind(p);
        }
        let Some(row) = query.fetch_optional(conn).await? else {
            return Ok(None);
        };
        (0..row.len())
            .map(|i| row.try_get(i))
            .collect::<sqlx::Result<_>>()
            .map(Some)
    }

    async fn bounds(conn: &mut PgConnection, sql: &str) -> sqlx::Result<Bounds> {
        sqlx::query_as(sql).fetch_one(conn).await
    }

    async fn read_rows(
        conn: &mut PgConnection,
        plan: &TablePlan,
        statement: &Statement,
        writer: &mut TableWriter<'_>,
    ) -> Result<()> {
        read::read_rows(conn, plan, statement, writer).await
    }
}
