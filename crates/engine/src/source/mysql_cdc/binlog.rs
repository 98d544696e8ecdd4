//! Reading the binlog between two positions as a replica (`mysql_async`'s binlog stream,
//! registered with the spec's `server_id`): each row event, decoded against its table map
//! event, becomes a [`RowChange`] with its transaction's commit position and time.
//!
//! The values are `mysql_common`'s binlog values, untyped: mapping them to the column types
//! the batch `mysql` source reads is the run's step, which knows the tables' columns.

use futures::StreamExt;
use mysql_async::binlog::events::{EventData, RowsEventData};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::{BinlogStreamRequest, Conn, Opts};
use pipectl_cdc::change::Op;

use crate::error::{Error, Result};

use super::checks::BinlogPosition;

/// One row changed by a committed transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct RowChange {
    /// The table's schema (database).
    pub schema: String,
    /// The table.
    pub table: String,
    /// Inserted, updated or deleted.
    pub op: Op,
    /// The row before the change (updates and deletes).
    pub before: Option<Vec<BinlogValue<'static>>>,
    /// The row after the change (inserts and updates).
    pub after: Option<Vec<BinlogValue<'static>>>,
    /// The binlog position after the transaction's commit: where reading resumes once the
    /// change is delivered.
    pub commit: BinlogPosition,
    /// The commit's time, seconds since the epoch (the binlog's resolution).
    pub commit_time: u32,
    /// The change's place in its transaction, from 0.
    pub index: u32,
}

fn binlog_error(what: String) -> impl FnOnce(mysql_async::Error) -> Error {
    move |e| Error::external(what, e)
}

/// The row changes committed between `from` and `until` (binlog file and position), read
/// from the server at `url` as a replica with `server_id`. Only committed transactions are
/// returned: rows of a transaction whose commit lies after `until` are left for the next read.
pub async fn read_changes(
    url: &str,
    server_id: u32,
    from: &BinlogPosition,
    until: &BinlogPosition,
) -> Result<Vec<RowChange>> {
    let url = match url.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => url.to_owned(),
    };
    let opts = Opts::from_url(&url)
        .map_err(|e| Error::user(format!("the MySQL URL does not parse: {e}")))?;
    let conn = Conn::new(opts).await.map_err(binlog_error(
        "cannot connect to MySQL to read the binlog".to_owned(),
    ))?;
    let request = BinlogStreamRequest::new(server_id)
        .with_filename(from.file.as_bytes())
        .with_pos(from.position)
        .with_non_blocking();
    let mut stream = conn.get_binlog_stream(request).await.map_err(binlog_error(format!(
        "cannot read the binlog from {} as a replica with server_id {server_id}; the user needs REPLICATION SLAVE and the server_id must be unused",
        from.describe()
    )))?;
    let mut file = from.file.clone();
    let mut out = Vec::new();
    let mut pending: Vec<RowChange> = Vec::new();
    let mut described = false;
    let stop = (until.file.clone(), until.position);
    while let Some(event) = stream.next().await {
        let event = event.map_err(binlog_error(format!(
            "cannot read the binlog after {file} (from {})",
            from.describe()
        )))?;
        let header = event.header();
        let end = u64::from(header.log_pos());
        let data = event.read_data().map_err(|e| {
            Error::external(
                format!("cannot decode a binlog event in {file} at {end}"),
                e,
            )
        })?;
        match data {
            // The server's first event names `from.file`, before the format description
            // that says whether events end in a checksum, so its name would keep one.
            Some(EventData::RotateEvent(rotate)) => {
                if described {
                    file = rotate.name().into_owned();
                }
                continue;
            }
            Some(EventData::FormatDescriptionEvent(_)) => described = true,
            Some(EventData::TableMapEvent(_)) | None => {}
            Some(EventData::RowsEvent(rows)) => {
                let op = match rows {
                    RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => {
                        Op::Insert
                    }
                    RowsEventData::UpdateRowsEventV1(_)
                    | RowsEventData::UpdateRowsEvent(_)
                    | RowsEventData::PartialUpdateRowsEvent(_) => Op::Update,
                    RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => {
                        Op::Delete
                    }
                };
                let Some(tme) = stream.get_tme(rows.table_id()) else {
                    return Err(Error::user(format!(
                        "binlog {file} at {end}: a row event names table id {} without its table map event; read from a transaction's start",
                        rows.table_id()
                    )));
                };
                let schema = tme.database_name().into_owned();
                let table = tme.table_name().into_owned();
                for row in rows.rows(tme) {
                    let (before, after) = row.map_err(|e| {
                        Error::external(
                            format!(
                                "cannot decode a row of {schema}.{table} in binlog {file} at {end}"
                            ),
                            e,
                        )
                    })?;
                    let values = |row: Option<mysql_async::binlog::row::BinlogRow>| {
                        row.map(|r| r.unwrap().into_iter().collect::<Vec<_>>())
                    };
                    pending.push(RowChange {
                        schema: schema.clone(),
                        table: table.clone(),
                        op,
                        before: values(before),
                        after: values(after),
                        commit: until.clone(),
                        commit_time: header.timestamp(),
                        index: u32::try_from(pending.len()).unwrap_or(u32::MAX),
                    });
                }
            }
            Some(EventData::XidEvent(_)) => {
                let commit = BinlogPosition {
                    file: file.clone(),
                    position: end,
                    gtid: None,
                };
                for mut change in pending.drain(..) {
                    change.commit = commit.clone();
                    change.commit_time = header.timestamp();
                    out.push(change);
                }
            }
            Some(_) => {}
        }
        if (file.as_str(), end) >= (stop.0.as_str(), stop.1) && end != 0 {
            break;
        }
    }
    stream
        .close()
        .await
        .map_err(binlog_error("cannot close the binlog stream".to_owned()))?;
    Ok(out)
}
