//! What differs between the SQL databases pipectl reads: the SQL text ([`Dialect`]) and, for
//! servers read in snapshots with bookmarks, the connection calls ([`Server`]).
//!
//! Everything else (what to read, the statements, the snapshot / NULL-count / highest-key /
//! end-of-table sequence, the Arrow builders) is written once, in this module's siblings.

use std::future::Future;

use pipectl_spec::types::{DatabaseSource, QuerySpec};

use super::plan::{DbColumn, Relation, Statement, TablePlan};
use super::read::TableWriter;
use crate::error::Result;
use crate::table::TableId;

/// How long a statement runs before sqlx logs it as slow, and at what level. A full load reads
/// a table in one long statement: a slow statement is the normal case, so it is logged for
/// debugging (`-vv`), not as a warning (sqlx's default).
pub const SLOW_STATEMENT: (log::LevelFilter, std::time::Duration) =
    (log::LevelFilter::Debug, std::time::Duration::from_secs(1));

/// The SQL text of one database: quoting, placeholders and the casts bookmarks need.
pub trait Dialect: Send + Sync + 'static {
    /// The spec's `type` name (`postgres`).
    const NAME: &'static str;

    /// Quotes an identifier so that any name (spaces, quotes, capitals, unicode) is read as
    /// that name and can never end the identifier early and inject SQL. By default as standard
    /// SQL does: wrapped in `"`, inner quotes doubled.
    fn quote(name: &str) -> String {
        format!("\"{}\"", name.replace('"', "\"\""))
    }

    /// The placeholder of the `n`th bound parameter (1-based); by default `?`.
    fn placeholder(_n: usize) -> String {
        "?".to_owned()
    }

    /// A (quoted) key column as text in the database's exact output form.
    fn key_as_text(quoted: &str) -> String;

    /// A text parameter cast to a key column's declared type, so the comparison is typed and
    /// exact. `declared` comes from the catalog, never from the spec. By default the
    /// placeholder as it is, for databases whose column affinity converts it.
    fn cast_param(placeholder: &str, _declared: &str) -> String {
        placeholder.to_owned()
    }

    /// The condition that a (quoted) key is at least `seconds` (a placeholder) in the past.
    fn settled(quoted: &str, seconds: &str) -> String;

    /// An integer expression as a 64-bit signed integer.
    fn as_int8(expr: &str) -> String;
}

/// The minimum and maximum of a split column.
pub type Bounds = (Option<i64>, Option<i64>);

/// A database server read in consistent snapshots: the calls that differ between servers.
/// [`super::read`] drives them in the same order for every server.
pub trait Server: Dialect {
    /// An open connection.
    type Conn: Send;

    /// Connects and fixes the session settings values are read in.
    fn connect(url: &str) -> impl Future<Output = Result<Self::Conn>> + Send;

    /// The tables and views the catalog lists, by schema, then name (system schemas left out).
    fn relations(conn: &mut Self::Conn) -> impl Future<Output = Result<Vec<Relation>>> + Send;

    /// The columns of a listed table or view, as they are read.
    fn table_columns(
        conn: &mut Self::Conn,
        relation: &Relation,
        table: &TableId,
        spec: &DatabaseSource,
    ) -> impl Future<Output = Result<Vec<DbColumn>>> + Send;

    /// The schema a query's table lands in when the spec names none.
    fn query_schema(conn: &mut Self::Conn) -> impl Future<Output = Result<Option<String>>> + Send;

    /// The columns of a query, as they are read.
    fn query_columns(
        conn: &mut Self::Conn,
        query: &QuerySpec,
        table: &TableId,
        spec: &DatabaseSource,
    ) -> impl Future<Output = Result<Vec<DbColumn>>> + Send;

    /// The statements that start a read-only transaction seeing one consistent snapshot, each
    /// with what failed when it fails.
    const SNAPSHOT: &'static [(&'static str, &'static str)];

    /// Starts the snapshot ([`Server::SNAPSHOT`]).
    fn begin_snapshot(conn: &mut Self::Conn) -> impl Future<Output = Result<()>> + Send;

    /// Ends the snapshot and closes the connection (errors are of no consequence: the rows
    /// were read).
    fn end_snapshot(conn: Self::Conn) -> impl Future<Output = ()> + Send;

    /// Closes the connection without ending a snapshot.
    fn close(conn: Self::Conn) -> impl Future<Output = ()> + Send;

    /// The single integer `sql` selects (a count).
    fn count(conn: &mut Self::Conn, sql: &str) -> impl Future<Output = sqlx::Result<i64>> + Send;

    /// The text columns of the one row `statement` selects, if any (the highest key tuple).
    fn key_texts(
        conn: &mut Self::Conn,
        statement: &Statement,
    ) -> impl Future<Output = sqlx::Result<Option<Vec<String>>>> + Send;

    /// The two nullable integers `sql` selects (a split column's minimum and maximum).
    fn bounds(
        conn: &mut Self::Conn,
        sql: &str,
    ) -> impl Future<Output = sqlx::Result<Bounds>> + Send;

    /// Runs `statement` and decodes its rows into `writer`.
    fn read_rows(
        conn: &mut Self::Conn,
        plan: &TablePlan,
        statement: &Statement,
        writer: &mut TableWriter<'_>,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// The [`Server`] items that read the same for every sqlx driver (only the connection type
/// differs), expanded inside each server's `impl Server`: the connection type; connecting and
/// reading the catalog by the folder's convention (`connect` in its `mod.rs`; `relations`,
/// `table_columns` and `query_columns` in its `catalog.rs`);
/// ending the snapshot, closing, and the one-row integer queries.
macro_rules! sqlx_server_calls {
    ($conn:ty) => {
        type Conn = $conn;

        async fn connect(url: &str) -> $crate::error::Result<$conn> {
            connect(url).await
        }

        async fn relations(
            conn: &mut $conn,
        ) -> $crate::error::Result<Vec<$crate::source::database::Relation>> {
            catalog::relations(conn).await
        }

        async fn table_columns(
            conn: &mut $conn,
            relation: &$crate::source::database::Relation,
            table: &$crate::table::TableId,
            spec: &pipectl_spec::types::DatabaseSource,
        ) -> $crate::error::Result<Vec<$crate::source::database::DbColumn>> {
            catalog::table_columns(conn, relation, table, spec).await
        }

        async fn query_columns(
            conn: &mut $conn,
            query: &pipectl_spec::types::QuerySpec,
            table: &$crate::table::TableId,
            spec: &pipectl_spec::types::DatabaseSource,
        ) -> $crate::error::Result<Vec<$crate::source::database::DbColumn>> {
            catalog::query_columns(conn, query, table, spec).await
        }

        async fn begin_snapshot(conn: &mut $conn) -> $crate::error::Result<()> {
            use sqlx::Executor as _;
            for (sql, failed) in Self::SNAPSHOT {
                conn.execute(*sql)
                    .await
                    .map_err(|e| $crate::error::Error::external(*failed, e))?;
            }
            Ok(())
        }

        async fn end_snapshot(mut conn: $conn) {
            use sqlx::{Connection as _, Executor as _};
            conn.execute("commit").await.ok();
            conn.close().await.ok();
        }

        async fn close(conn: $conn) {
            use sqlx::Connection as _;
            conn.close().await.ok();
        }

        async fn count(conn: &mut $conn, sql: &str) -> sqlx::Result<i64> {
            let (n,): (i64,) = sqlx::query_as(sql).fetch_one(conn).await?;
            Ok(n)
        }

        async fn bounds(
            conn: &mut $conn,
            sql: &str,
        ) -> sqlx::Result<$crate::source::database::Bounds> {
            sqlx::query_as(sql).fetch_one(conn).await
        }
    };
}
pub(crate) use sqlx_server_calls;

#[cfg(test)]
mod tests {
    use super::Dialect;
    use crate::source::mysql::Mysql;
    use crate::source::postgres::Postgres;

    #[test]
    fn quoting_cannot_be_escaped() {
        assert_eq!(Postgres::quote("a\"; drop"), "\"a\"\"; drop\"");
        assert_eq!(Mysql::quote("a`b"), "`a``b`");
        assert_eq!(Mysql::quote("Año Ümlaut"), "`Año Ümlaut`");
    }
}
