//! The `mysql` source: MySQL and MariaDB read in InnoDB consistent snapshots.
//!
//! `mod.rs` is the dialect (SQL text, connection, snapshot calls); [`catalog`] lists tables
//! and maps types; [`read`] decodes rows. What every database source shares is in
//! [`crate::source::database`].

pub mod catalog;
pub mod read;

use std::str::FromStr;

use pipectl_spec::types::DatabaseSource;
use pipectl_state::Bookmark;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{ConnectOptions, Connection, Executor, Row};

use crate::error::{Error, Result};
use crate::source::database::{
    Bounds, Dialect, Listing, SLOW_STATEMENT, Server, Statement, TablePlan, TableWriter,
};

/// MySQL and MariaDB.
pub struct Mysql;

impl Dialect for Mysql {
    const NAME: &'static str = "mysql";

    fn quote(name: &str) -> String {
        format!("`{}`", name.replace('`', "``"))
    }

    fn placeholder(_n: usize) -> String {
        "?".to_owned()
    }

    fn key_as_text(quoted: &str) -> String {
        format!("cast({quoted} as char)")
    }

    fn cast_param(placeholder: &str, declared: &str) -> String {
        match catalog::cast_target(declared) {
            Some(target) => format!("cast({placeholder} as {target})"),
            None => placeholder.to_owned(),
        }
    }

    fn settled(quoted: &str, seconds: &str) -> String {
        format!("{quoted} <= now(6) - interval {seconds} second")
    }

    fn as_int8(expr: &str) -> String {
        format!("cast({expr} as signed)")
    }
}

/// Connects (a `mariadb://` URL is read as `mysql://`) and reads times in UTC.
pub async fn connect(url: &str) -> Result<MySqlConnection> {
    let url = match url.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => url.to_owned(),
    };
    let (level, after) = SLOW_STATEMENT;
    let options = MySqlConnectOptions::from_str(&url)
        .map_err(|e| Error::user(format!("the MySQL URL does not parse: {e}")))?
        .timezone(Some("+00:00".to_owned()))
        .log_slow_statements(level, after);
    MySqlConnection::connect_with(&options)
        .await
        .map_err(|e| Error::external("cannot connect to MySQL", e))
}

impl Server for Mysql {
    type Conn = MySqlConnection;

    async fn connect(url: &str) -> Result<MySqlConnection> {
        connect(url).await
    }

    async fn list_tables(
        source: &str,
        spec: &DatabaseSource,
        conn: &mut MySqlConnection,
        stored: &(dyn Fn(&str) -> Option<Bookmark> + Sync),
    ) -> Result<Listing<TablePlan>> {
        catalog::list_tables(source, spec, conn, stored).await
    }

    async fn begin_snapshot(conn: &mut MySqlConnection) -> Result<()> {
        conn.execute("set session transaction isolation level repeatable read")
            .await
            .map_err(|e| Error::external("cannot set the isolation level", e))?;
        conn.execute("start transaction with consistent snapshot, read only")
            .await
            .map_err(|e| Error::external("cannot start a snapshot", e))?;
        Ok(())
    }

    async fn end_snapshot(mut conn: MySqlConnection) {
        conn.execute("commit").await.ok();
        conn.close().await.ok();
    }

    async fn close(conn: MySqlConnection) {
        conn.close().await.ok();
    }

    async fn count(conn: &mut MySqlConnection, sql: &str) -> sqlx::Result<i64> {
        let (n,): (i64,) = sqlx::query_as(sql).fetch_one(conn).await?;
        Ok(n)
    }

    async fn key_texts(
        conn: &mut MySqlConnection,
        statement: &Statement,
    ) -> sqlx::Result<Option<Vec<String>>> {
        let mut query = sqlx::query(&statement.sql);
        for p in &statement.params {
            query = query.bind(p);
        }
        let Some(row) = query.fetch_optional(conn).await? else {
            return Ok(None);
        };
        // Read as bytes: MySQL sends `cast(... as char)` in the connection's character set.
        (0..row.len())
            .map(|i| {
                row.try_get_unchecked::<&[u8], _>(i)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            })
            .collect::<sqlx::Result<_>>()
            .map(Some)
    }

    async fn bounds(conn: &mut MySqlConnection, sql: &str) -> sqlx::Result<Bounds> {
        sqlx::query_as(sql).fetch_one(conn).await
    }

    async fn read_rows(
        conn: &mut MySqlConnection,
        plan: &TablePlan,
        statement: &Statement,
        writer: &mut TableWriter<'_>,
    ) -> Result<()> {
        read::read_rows(conn, plan, statement, writer).await
    }
}
