//! The `mysql` source: MySQL and MariaDB read in InnoDB consistent snapshots.
//!
//! `mod.rs` is the dialect (SQL text, connection, snapshot calls); [`catalog`] lists tables
//! and maps types; [`read`] decodes rows. What every database source shares is in
//! [`crate::source::database`].

pub mod catalog;
pub mod read;

use std::str::FromStr;

use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{ConnectOptions, Connection, Row};

use crate::error::{Error, Result};
use crate::source::database::dialect::sqlx_server_calls;
use crate::source::database::{
    Dialect, SLOW_STATEMENT, Server, Statement, TablePlan, TableWriter, bound, read_fetched,
};

/// MySQL and MariaDB.
pub struct Mysql;

impl Dialect for Mysql {
    const NAME: &'static str = "mysql";

    fn quote(name: &str) -> String {
        format!("`{}`", name.replace('`', "``"))
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
    sqlx_server_calls!(MySqlConnection);

    async fn query_schema(conn: &mut MySqlConnection) -> Result<Option<String>> {
        catalog::query_schema(conn).await
    }

    const SNAPSHOT: &'static [(&'static str, &'static str)] = &[
        (
            "set session transaction isolation level repeatable read",
            "cannot set the isolation level",
        ),
        (
            "start transaction with consistent snapshot, read only",
            "cannot start a snapshot",
        ),
    ];

    async fn key_texts(
        conn: &mut MySqlConnection,
        statement: &Statement,
    ) -> sqlx::Result<Option<Vec<String>>> {
        let Some(row) = bound(statement).fetch_optional(conn).await? else {
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

    async fn read_rows(
        conn: &mut MySqlConnection,
        plan: &TablePlan,
        statement: &Statement,
        writer: &mut TableWriter<'_>,
    ) -> Result<()> {
        let rows = bound(statement).fetch(&mut *conn);
        read_fetched(rows, plan, writer, read::decode_value).await
    }
}
