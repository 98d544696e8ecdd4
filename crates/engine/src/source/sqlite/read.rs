//! Reading SQLite rows: each value in its storage class, converted exactly to the column's
//! declared type by the shared builders.

use futures::TryStreamExt;
use sqlx::sqlite::SqliteConnection;
use sqlx::{Row, TypeInfo, ValueRef};

use super::Sqlite;
use crate::context::Output;
use crate::error::{Error, Result};
use crate::source::database::{SqlValue, TablePlan, TableWriter};

/// Reads one table (or query) on `conn` into `out`, watching for cancellation between rows.
pub(super) async fn read_table(
    conn: &mut SqliteConnection,
    plan: &TablePlan,
    batch_rows: usize,
    out: &Output,
) -> Result<()> {
    let mut writer = TableWriter::new(plan, batch_rows, out)?;
    let statement = plan.read_statement::<Sqlite>();
    let mut rows = sqlx::query(&statement.sql).fetch(&mut *conn);
    loop {
        let row = tokio::select! {
            biased;
            _ = out.cancel_token().cancelled() => return Err(Error::cancelled()),
            row = rows.try_next() => row.map_err(|e| Error::external("reading rows failed", e))?,
        };
        let Some(row) = row else { break };
        let row_number = writer.start_row();
        for (i, builder) in writer.columns().iter_mut().enumerate() {
            let raw = row
                .try_get_raw(i)
                .map_err(|e| Error::internal("column index").with_source(e))?;
            let value = if raw.is_null() {
                SqlValue::Null
            } else {
                let storage = raw.type_info().name().to_owned();
                match storage.as_str() {
                    "INTEGER" | "BOOLEAN" => {
                        SqlValue::Int(row.try_get_unchecked::<i64, _>(i).map_err(decode_error)?)
                    }
                    "REAL" => {
                        SqlValue::Real(row.try_get_unchecked::<f64, _>(i).map_err(decode_error)?)
                    }
                    "BLOB" => {
                        SqlValue::Blob(row.try_get_unchecked::<&[u8], _>(i).map_err(decode_error)?)
                    }
                    _ => SqlValue::Text(row.try_get_unchecked::<&str, _>(i).map_err(decode_error)?),
                }
            };
            builder.append_sql(value).map_err(|message| {
                Error::user(format!(
                    "row {row_number}, column `{}` (declared {}): {message}",
                    plan.schema.field(i).name(),
                    plan.columns
                        .get(i)
                        .map(|c| c.declared.as_str())
                        .filter(|d| !d.is_empty())
                        .unwrap_or("without a type")
                ))
            })?;
        }
        writer.end_row().await?;
    }
    drop(rows);
    writer.finish().await
}

fn decode_error(e: sqlx::Error) -> Error {
    Error::external("decoding a value failed", e)
}
