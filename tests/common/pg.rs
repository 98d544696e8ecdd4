//! A PostgreSQL connection for the synchronous integration tests, on a runtime of its own.

use serde_json::Value;
use sqlx::Connection;

use super::{services_required, skip};

/// One connection to a test server and the runtime that drives it.
pub(crate) struct PgSession {
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) url: String,
    pub(crate) conn: sqlx::PgConnection,
}

impl PgSession {
    /// Connects to `url`; `None` (the test skips) when it does not answer, or a panic naming
    /// `server` when the services are required.
    pub(crate) fn connect(url: &str, server: &str) -> Option<PgSession> {
        let rt = tokio::runtime::Runtime::new().unwrap();
        match rt.block_on(sqlx::PgConnection::connect(url)) {
            Ok(conn) => Some(PgSession {
                rt,
                url: url.to_owned(),
                conn,
            }),
            Err(e) if services_required() => panic!("{server} at {url} is required: {e}"),
            Err(e) => {
                skip(&format!("{server} at {url} is unreachable ({e})"));
                None
            }
        }
    }

    /// Runs `sql` (one or more statements), panicking with the statement on error.
    pub(crate) fn exec(&mut self, sql: &str) {
        self.rt
            .block_on(sqlx::raw_sql(sql).execute(&mut self.conn))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Runs `sql` and ignores its outcome: clean-up that must not fail a finished test.
    pub(crate) fn exec_ignoring_errors(&mut self, sql: &str) {
        let _ = self.rt.block_on(sqlx::raw_sql(sql).execute(&mut self.conn));
    }

    /// One JSON value per row of `sql` (which selects `to_jsonb(...)` or `json_build_object`).
    pub(crate) fn json_rows(&mut self, sql: &str) -> Vec<Value> {
        self.rt
            .block_on(sqlx::query_scalar::<_, Value>(sql).fetch_all(&mut self.conn))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}
