//! The consistent snapshot a `mysql_cdc` run's initial copy reads in, and the binlog
//! position it stands at; and the binlog position now, where a catch-up run stops.
//!
//! MariaDB reports the binlog position of a `START TRANSACTION WITH CONSISTENT SNAPSHOT` in the
//! `binlog_snapshot_file` and `binlog_snapshot_position` status variables, so no lock is taken
//! (its GTID position is `BINLOG_GTID_POS` of that file and position). MySQL has no such
//! variables: the position is read under `FLUSH TABLES WITH READ LOCK`, held only while the
//! snapshot starts and the position is read (the user needs `RELOAD` for it).

use sqlx::{Executor, MySqlConnection};

use crate::error::{Error, Result};
use crate::source::mysql;

use super::checks::{BinlogPosition, external, fetch_either, text};

/// A connection inside a `START TRANSACTION WITH CONSISTENT SNAPSHOT` (repeatable read): what
/// it reads is the data as of [`Snapshot::position`] in the binlog.
pub struct Snapshot {
    /// The connection holding the transaction; statements on it read the snapshot.
    pub conn: MySqlConnection,
    /// The binlog position the snapshot stands at: the binlog's changes from here on are
    /// those the snapshot does not see.
    pub position: BinlogPosition,
    /// Whether the server is MariaDB.
    pub mariadb: bool,
}

impl Snapshot {
    /// Opens a consistent snapshot on the server at `url` and reads its binlog position.
    pub async fn open(url: &str) -> Result<Snapshot> {
        let mut conn = mysql::connect(url).await?;
        let mariadb = is_mariadb(&mut conn).await?;
        conn.execute("set session transaction isolation level repeatable read")
            .await
            .map_err(external(
                "cannot set the snapshot's isolation level (SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ)",
            ))?;
        let position = if mariadb {
            start_snapshot(&mut conn).await?;
            mariadb_snapshot_position(&mut conn).await?
        } else {
            conn.execute("flush tables with read lock").await.map_err(external(
                "cannot lock the tables while reading the snapshot's binlog position (FLUSH TABLES WITH READ LOCK); grant the user RELOAD",
            ))?;
            let read = async {
                start_snapshot(&mut conn).await?;
                current_position(&mut conn, false).await?.ok_or_else(|| {
                    Error::user(
                        "the server reports no binlog position (SHOW MASTER STATUS is empty): turn the binlog on (log_bin) and restart the server",
                    )
                })
            }
            .await;
            let unlocked = conn
                .execute("unlock tables")
                .await
                .map_err(external("cannot unlock the tables (UNLOCK TABLES)"));
            let position = read?;
            unlocked?;
            position
        };
        Ok(Snapshot {
            conn,
            position,
            mariadb,
        })
    }

    /// Ends the snapshot's transaction.
    pub async fn close(mut self) -> Result<()> {
        self.conn
            .execute("commit")
            .await
            .map_err(external("cannot end the snapshot's transaction (COMMIT)"))?;
        Ok(())
    }
}

/// Whether the server `conn` talks to is MariaDB.
pub async fn is_mariadb(conn: &mut MySqlConnection) -> Result<bool> {
    let row = conn
        .fetch_one("select cast(@@version as char)")
        .await
        .map_err(external("cannot read the server's version"))?;
    Ok(text(&row, 0)
        .unwrap_or_default()
        .to_ascii_lowercase()
        .contains("mariadb"))
}

async fn start_snapshot(conn: &mut MySqlConnection) -> Result<()> {
    conn.execute("start transaction with consistent snapshot, read only")
        .await
        .map_err(external(
            "cannot start the initial copy's snapshot (START TRANSACTION WITH CONSISTENT SNAPSHOT)",
        ))?;
    Ok(())
}

/// MariaDB's position of the consistent snapshot open on `conn`.
async fn mariadb_snapshot_position(conn: &mut MySqlConnection) -> Result<BinlogPosition> {
    let rows = conn
        .fetch_all("show status like 'binlog_snapshot_%'")
        .await
        .map_err(external(
            "cannot read the snapshot's binlog position (SHOW STATUS LIKE 'binlog_snapshot_%')",
        ))?;
    let mut file = None;
    let mut position = None;
    for row in &rows {
        match text(row, 0).as_deref() {
            Some(name) if name.eq_ignore_ascii_case("binlog_snapshot_file") => {
                file = text(row, 1);
            }
            Some(name) if name.eq_ignore_ascii_case("binlog_snapshot_position") => {
                position = text(row, 1).and_then(|t| t.parse::<u64>().ok());
            }
            _ => {}
        }
    }
    let (Some(file), Some(position)) = (file.filter(|f| !f.is_empty()), position) else {
        return Err(Error::user(
            "the server reports no binlog position for the snapshot (binlog_snapshot_file is empty): turn the binlog on (log_bin) and restart the server",
        ));
    };
    let gtid: Option<String> = sqlx::query_scalar("select cast(binlog_gtid_pos(?, ?) as char)")
        .bind(&file)
        .bind(position)
        .fetch_one(&mut *conn)
        .await
        .map_err(external(
            "cannot read the snapshot's GTID position (BINLOG_GTID_POS)",
        ))?;
    Ok(BinlogPosition {
        file,
        position,
        gtid,
    })
}

/// The binlog position now (`SHOW MASTER STATUS`, or `SHOW BINARY LOG STATUS` on MySQL 8.4),
/// with the GTID position when the server writes GTIDs: where a catch-up run stops. `None`
/// when the server reports none (it writes no binlog).
pub async fn current_position(
    conn: &mut MySqlConnection,
    mariadb: bool,
) -> Result<Option<BinlogPosition>> {
    let rows = fetch_either(conn, "show master status", "show binary log status")
        .await
        .map_err(external(
            "cannot read the binlog position (SHOW MASTER STATUS); the user needs REPLICATION CLIENT",
        ))?;
    let Some(row) = rows.into_iter().next() else {
        return Ok(None);
    };
    let gtid = if mariadb {
        let row = conn
            .fetch_one("select cast(@@gtid_binlog_pos as char)")
            .await
            .map_err(external(
                "cannot read the GTID position (@@gtid_binlog_pos)",
            ))?;
        text(&row, 0)
    } else {
        let row = conn
            .fetch_one("select cast(@@gtid_mode as char), cast(@@gtid_executed as char)")
            .await
            .map_err(external("cannot read the GTID position (@@gtid_executed)"))?;
        (text(&row, 0).as_deref() == Some("ON"))
            .then(|| text(&row, 1))
            .flatten()
    };
    Ok(Some(BinlogPosition {
        file: text(&row, 0).unwrap_or_default(),
        position: text(&row, 1).and_then(|t| t.parse().ok()).unwrap_or(0),
        gtid,
    }))
}
