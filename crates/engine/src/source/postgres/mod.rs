//! The `postgres` source: PostgreSQL read in `REPEATABLE READ` snapshots.
//!
//! `mod.rs` is the dialect (SQL text, connection, snapshot calls); [`catalog`] lists tables
//! and maps types; [`read`] decodes rows. What every database source shares is in
//! [`crate::source::database`].

pub mod catalog;
pub mod read;

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection, Executor, Row};

use crate::error::{Error, Result};
use crate::source::database::dialect::sqlx_server_calls;
use crate::source::database::{
    Dialect, SLOW_STATEMENT, Server, Statement, TablePlan, TableWriter, bound,
};

/// PostgreSQL.
pub struct Postgres;

impl Dialect for Postgres {
    const NAME: &'static str = "postgres";

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
    sqlx_server_calls!(PgConnection);

    async fn query_schema(_conn: &mut PgConnection) -> Result<Option<String>> {
        Ok(Some("public".to_owned()))
    }

    const SNAPSHOT: &'static [(&'static str, &'static str)] = &[(
        "begin isolation level repeatable read read only",
        "cannot start a snapshot",
    )];

    async fn key_texts(
        conn: &mut PgConnection,
        statement: &Statement,
    ) -> sqlx::Result<Option<Vec<String>>> {
        let Some(row) = bound(statement).fetch_optional(conn).await? else {
            return Ok(None);
        };
        (0..row.len())
            .map(|i| row.try_get(i))
            .collect::<sqlx::Result<_>>()
            .map(Some)
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
