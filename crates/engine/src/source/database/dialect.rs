//! What differs between the SQL databases pipectl reads: the SQL text ([`Dialect`]) and, for
//! servers read in snapshots with bookmarks, the connection calls ([`Server`]).
//!
//! Everything else (what to read, the statements, the snapshot / NULL-count / highest-key /
//! end-of-table sequence, the Arrow builders) is written once, in this module's siblings.

use std::future::Future;

use pipectl_spec::types::DatabaseSource;
use pipectl_state::Bookmark;

use super::plan::{Listing, Statement, TablePlan};
use super::read::TableWriter;
use crate::error::Result;

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
    /// that name and can never end the identifier early and inject SQL.
    fn quote(name: &str) -> String;

    /// The placeholder of the `n`th bound parameter (1-based).
    fn placeholder(n: usize) -> String;

    /// A (quoted) key column as text in the database's exact output form.
    fn key_as_text(quoted: &str) -> String;

    /// A text parameter cast to a key column's declared type, so the comparison is typed and
    /// exact. `declared` comes from the catalog, never from the spec.
    fn cast_param(placeholder: &str, declared: &str) -> String;

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

    /// Lists what the source reads from the catalog: the tables its rules select (by schema,
    /// then name), then its queries, each with the stored bookmark attached.
    fn list_tables(
        source: &str,
        spec: &DatabaseSource,
        conn: &mut Self::Conn,
        stored: &(dyn Fn(&str) -> Option<Bookmark> + Sync),
    ) -> impl Future<Output = Result<Listing<TablePlan>>> + Send;

    /// Starts a read-only transaction that sees one consistent snapshot.
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
