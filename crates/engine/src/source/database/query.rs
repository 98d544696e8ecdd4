//! What the servers share in learning a query's columns, which each learns through a temporary
//! relation made from the query (a view, or an empty table): its catalog entry gives every
//! column's declared type, precision and scale included, which a statement description does not.

use pipectl_spec::types::QuerySpec;

use crate::error::Error;

/// The error of a catalog call made to learn a query's columns.
pub fn inspect_error(e: sqlx::Error) -> Error {
    Error::external("cannot inspect a query", e)
}

/// The error of the statement making the temporary relation from `query`: a query that does
/// not run is the user's error, naming its table.
pub fn query_does_not_run(query: &QuerySpec) -> impl FnOnce(sqlx::Error) -> Error + '_ {
    move |e| {
        Error::user(format!(
            "query for table `{}` does not run: {e}",
            query.table
        ))
    }
}
