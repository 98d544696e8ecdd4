//! What the SQL database sources (SQLite, PostgreSQL, MySQL) share, split along its seams:
//!
//! - [`dialect`]: the [`Dialect`] trait (SQL text) and the [`Server`] trait (the connection
//!   calls of a server read in snapshots); each connector folder implements them;
//! - [`plan`]: the one table plan type, its statements, selection and transformation rules;
//! - [`read`]: the read loop, written once: snapshot, NULL-key count, highest key, rows, end
//!   of table, bookmarks returned to the executor;
//! - [`connector`]: the descriptor of a server source (its batch step and plan);
//! - [`columns`]: the one set of Arrow column builders the decoders append to;
//! - [`query`]: the errors of learning a query's columns through a temporary relation.

pub mod columns;
pub mod connector;
pub mod dialect;
pub mod plan;
pub mod query;
pub mod read;

pub use columns::{ColumnValues, SqlValue, finish_batch};
pub use connector::{ServerConnector, selected_tables};
pub use dialect::{Bounds, Dialect, SLOW_STATEMENT, Server};
pub use plan::{
    BookmarkPlan, ColumnKind, DbColumn, Listing, Relation, Selection, Statement, TablePlan,
    plan_table, settings_for, split_ranges,
};
pub use read::{
    DatabaseSourceStep, TableOutcome, TableWriter, bound, plan_tables, read_fetched, read_table,
    value_error,
};
