//! What a `mysql_cdc` source needs from the server, checked before anything is read: a binlog
//! (`log_bin`) in `ROW` format with `FULL` row images, a `server_id` for pipectl's replica
//! connection that neither the server nor another replica uses, a user with `REPLICATION
//! SLAVE` and `REPLICATION CLIENT`, and tables with a primary key (in a transactional engine,
//! so the initial copy is consistent with the binlog position). `plan` shows the findings,
//! each problem and warning saying what to change.

use pipectl_spec::types::MysqlCdcSource;
use sqlx::mysql::MySqlRow;
use sqlx::{Executor, Row};

use crate::error::{Error, Result};
use crate::source::database::Dialect;
use crate::source::mysql::{self, Mysql};

/// One selected table's key and storage engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableKey {
    /// Schema (the database).
    pub schema: String,
    /// Table.
    pub name: String,
    /// The primary key's columns, in key order (empty: none).
    pub primary_key: Vec<String>,
    /// The storage engine (`InnoDB`), when the catalog names one.
    pub engine: Option<String>,
}

impl TableKey {
    /// `primary key (id), InnoDB`, as `plan` shows it.
    pub fn describe(&self) -> String {
        let key = if self.primary_key.is_empty() {
            "no primary key".to_owned()
        } else {
            format!("primary key ({})", self.primary_key.join(", "))
        };
        match &self.engine {
            Some(engine) => format!("{key}, {engine}"),
            None => key,
        }
    }

    /// What works only partly for this table, each saying what to change: without a primary
    /// key its changes land in change files (the binlog carries whole rows) but cannot be
    /// merged by key; outside a transactional engine the initial copy is not consistent with
    /// the binlog position.
    pub fn warnings(&self) -> Vec<String> {
        let table = format!(
            "{}.{}",
            Mysql::quote(&self.schema),
            Mysql::quote(&self.name)
        );
        let mut out = Vec::new();
        if self.primary_key.is_empty() {
            out.push(format!(
                "table {}.{}: no primary key, so its changes land in change files but cannot be merged into a Delta table by key; add one: ALTER TABLE {table} ADD PRIMARY KEY (...)",
                self.schema, self.name
            ));
        }
        if let Some(engine) = &self.engine
            && !TRANSACTIONAL_ENGINES
                .iter()
                .any(|e| e.eq_ignore_ascii_case(engine))
        {
            out.push(format!(
                "table {}.{}: storage engine {engine} has no transactions, so its initial copy is not consistent with the binlog position (rows changed during the copy may be missed or doubled); convert it: ALTER TABLE {table} ENGINE=InnoDB",
                self.schema, self.name
            ));
        }
        out
    }
}

/// Engines whose reads see `START TRANSACTION WITH CONSISTENT SNAPSHOT`.
const TRANSACTIONAL_ENGINES: &[&str] = &["InnoDB", "RocksDB", "TokuDB"];

/// The server's binlog position now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinlogPosition {
    /// The binlog file being written (`SHOW MASTER STATUS`'s `File`).
    pub file: String,
    /// The position in it.
    pub position: u64,
    /// The GTID position: MariaDB's `@@gtid_binlog_pos`, or MySQL's `@@gtid_executed` with
    /// `gtid_mode=ON`; `None` when the server writes no GTIDs.
    pub gtid: Option<String>,
}

impl BinlogPosition {
    /// `binlog.000001:805, GTID 0-1-3`, as `plan` shows it.
    pub fn describe(&self) -> String {
        match &self.gtid {
            Some(gtid) if !gtid.is_empty() => {
                format!("{}:{}, GTID {gtid}", self.file, self.position)
            }
            _ => format!("{}:{}", self.file, self.position),
        }
    }
}

/// What the server inspection found.
#[derive(Debug, Default)]
pub struct Report {
    /// The server, its binlog and pipectl's replica connection, as facts.
    pub notes: Vec<String>,
    /// What must change before a run can replicate, each saying how.
    pub problems: Vec<String>,
    /// What works only partly, each saying how to change it; a run goes ahead.
    pub warnings: Vec<String>,
    /// The selected tables' keys.
    pub tables: Vec<TableKey>,
    /// The binlog position now, when the server writes a binlog and the user may read it.
    pub position: Option<BinlogPosition>,
    /// Whether the server is MariaDB (whose GTIDs differ from MySQL's).
    pub mariadb: bool,
}

pub(super) fn external(what: &str) -> impl FnOnce(sqlx::Error) -> Error + '_ {
    move |e| Error::external(what.to_owned(), e)
}

/// Column `i` of a row as text, whatever its type (`SHOW` statements answer in text).
pub(super) fn text(row: &MySqlRow, i: usize) -> Option<String> {
    row.try_get_unchecked::<Option<&[u8]>, _>(i)
        .ok()
        .flatten()
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The privileges granted to the current user on `*.*`, upper case, from `SHOW GRANTS`.
fn global_privileges(grants: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for grant in grants {
        let upper = grant.to_ascii_uppercase();
        let Some(rest) = upper.strip_prefix("GRANT ") else {
            continue;
        };
        let Some((privileges, _)) = rest.split_once(" ON *.* TO ") else {
            continue;
        };
        out.extend(privileges.split(',').map(|p| p.trim().to_owned()));
    }
    out
}

/// Which of the two replication privileges `privileges` (from [`global_privileges`]) lack,
/// by the names `GRANT` takes. MariaDB 10.5 and later show `REPLICATION CLIENT` as `BINLOG
/// MONITOR` and `REPLICATION SLAVE` as `REPLICATION REPLICA`.
fn missing_privileges(privileges: &[String]) -> Vec<&'static str> {
    let has = |names: &[&str]| {
        privileges
            .iter()
            .any(|p| p == "ALL PRIVILEGES" || p == "ALL" || names.contains(&p.as_str()))
    };
    let mut missing = Vec::new();
    if !has(&["REPLICATION SLAVE", "REPLICATION REPLICA"]) {
        missing.push("REPLICATION SLAVE");
    }
    if !has(&["REPLICATION CLIENT", "BINLOG MONITOR", "SUPER"]) {
        missing.push("REPLICATION CLIENT");
    }
    missing
}

/// The rows of `statement`, or of `renamed` when the server does not know `statement` (MySQL
/// 8.4 dropped `SHOW SLAVE HOSTS` and `SHOW MASTER STATUS` for new names); the first error
/// when both fail, which says why (a missing privilege) better than the syntax error.
pub(super) async fn fetch_either(
    conn: &mut sqlx::MySqlConnection,
    statement: &str,
    renamed: &str,
) -> std::result::Result<Vec<MySqlRow>, sqlx::Error> {
    match conn.fetch_all(statement).await {
        Ok(rows) => Ok(rows),
        Err(first) => conn.fetch_all(renamed).await.map_err(|_| first),
    }
}

/// Inspects the server at `url` for `spec` and its selected `tables` (schema, name).
pub async fn inspect(
    url: &str,
    spec: &MysqlCdcSource,
    tables: &[(String, String)],
) -> Result<Report> {
    let mut conn = mysql::connect(url).await?;
    let mut report = Report::default();
    let row = conn
        .fetch_one(
            "select cast(@@version as char), cast(@@log_bin as char), cast(@@binlog_format as char), \
             cast(@@binlog_row_image as char), cast(@@server_id as char), cast(current_user() as char)",
        )
        .await
        .map_err(external("cannot read the server's binlog settings"))?;
    let version = text(&row, 0).unwrap_or_default();
    let log_bin = matches!(text(&row, 1).as_deref(), Some("1" | "ON"));
    let format = text(&row, 2).unwrap_or_default();
    let row_image = text(&row, 3).unwrap_or_default();
    let server_id: u64 = text(&row, 4).and_then(|t| t.parse().ok()).unwrap_or(0);
    let user = text(&row, 5).unwrap_or_default();
    report.mariadb = version.to_ascii_lowercase().contains("mariadb");
    let config = if report.mariadb {
        "the server's option file ([mariadbd] in /etc/mysql/mariadb.conf.d/50-server.cnf on Debian)"
    } else {
        "the server's option file ([mysqld] in my.cnf)"
    };
    report.notes.push(format!(
        "server: {} {version}, server_id {server_id}, binlog {}, format {format}, row image {row_image}",
        if report.mariadb { "MariaDB" } else { "MySQL" },
        if log_bin { "on" } else { "off" }
    ));
    if !log_bin {
        report.problems.push(format!(
            "server: log_bin is OFF, so there is no binlog to read changes from; turn it on in {config}: `log_bin = mysql-bin`, `binlog_format = ROW`, `binlog_row_image = FULL` and a `server_id`, then restart the server (on RDS: set a backup retention period above 0)"
        ));
    }
    if !format.eq_ignore_ascii_case("ROW") {
        report.problems.push(format!(
            "server: binlog_format is {format}; change data capture needs row events: set `binlog_format = ROW` in {config} (or `SET GLOBAL binlog_format = 'ROW'`, which sessions opened later take)"
        ));
    }
    if !row_image.eq_ignore_ascii_case("FULL") {
        report.problems.push(format!(
            "server: binlog_row_image is {row_image}, so updates and deletes do not carry the whole row; set `binlog_row_image = FULL` in {config} (or `SET GLOBAL binlog_row_image = 'FULL'`)"
        ));
    }
    if server_id == u64::from(spec.server_id) {
        report.problems.push(format!(
            "server_id {}: it is the server's own `server_id`, and the server refuses a replica with it; choose another `server_id` for the source",
            spec.server_id
        ));
    }

    // The replicas the server knows of (they register their server ids).
    let replicas = fetch_either(&mut conn, "show slave hosts", "show replicas").await;
    match replicas {
        Ok(rows) => {
            let mut used = false;
            for row in rows {
                let id: Option<u64> = text(&row, 0).and_then(|t| t.parse().ok());
                if id == Some(u64::from(spec.server_id)) {
                    let host = text(&row, 1).unwrap_or_default();
                    let port = text(&row, 2).unwrap_or_default();
                    report.problems.push(format!(
                        "server_id {}: a replica at {host}:{port} uses it, and the server drops one of two connections with the same id; choose a `server_id` no replica uses (see `SHOW SLAVE HOSTS`)",
                        spec.server_id
                    ));
                    used = true;
                }
            }
            if !used {
                report.notes.push(format!(
                    "replica connection: server_id {}, not used by a registered replica",
                    spec.server_id
                ));
            }
        }
        Err(e) => report.notes.push(format!(
            "replica connection: server_id {} (the registered replicas cannot be listed: {e}); it must differ from every replica's",
            spec.server_id
        )),
    }

    let grants: Vec<String> = conn
        .fetch_all("show grants")
        .await
        .map_err(external("cannot read the user's privileges (SHOW GRANTS)"))?
        .iter()
        .filter_map(|r| text(r, 0))
        .collect();
    let missing = missing_privileges(&global_privileges(&grants));
    if !missing.is_empty() {
        let (name, host) = user.rsplit_once('@').unwrap_or((&user, "%"));
        report.problems.push(format!(
            "server: user {user} lacks {}, which reading the binlog needs; run `GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{}'@'{}'` (granted through a role, they count only when the role is the user's default)",
            missing.join(" and "),
            name.replace('\'', "''"),
            host.replace('\'', "''")
        ));
    }

    if log_bin {
        match super::snapshot::current_position(&mut conn, report.mariadb).await {
            Ok(Some(position)) => {
                report.notes.push(format!(
                    "binlog position now: {}; the first run copies the tables at the position it reads in its snapshot",
                    position.describe()
                ));
                report.position = Some(position);
            }
            Ok(None) => report
                .notes
                .push("binlog position: the server reports none".to_owned()),
            Err(e) => report
                .notes
                .push(format!("binlog position: cannot be read ({e})")),
        }
    }

    for (schema, name) in tables {
        let primary_key: Vec<(String,)> = sqlx::query_as(
            "select cast(column_name as char) from information_schema.key_column_usage \
             where table_schema = ? and table_name = ? and constraint_name = 'PRIMARY' \
             order by ordinal_position",
        )
        .bind(schema)
        .bind(name)
        .fetch_all(&mut conn)
        .await
        .map_err(external("cannot read a table's primary key"))?;
        let engine: Option<(Option<String>,)> = sqlx::query_as(
            "select cast(engine as char) from information_schema.tables \
             where table_schema = ? and table_name = ?",
        )
        .bind(schema)
        .bind(name)
        .fetch_optional(&mut conn)
        .await
        .map_err(external("cannot read a table's storage engine"))?;
        let table = TableKey {
            schema: schema.clone(),
            name: name.clone(),
            primary_key: primary_key.into_iter().map(|(c,)| c).collect(),
            engine: engine.and_then(|(e,)| e),
        };
        report.warnings.extend(table.warnings());
        report.tables.push(table);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_privileges_by_any_of_their_names() {
        let grants = |lines: &[&str]| {
            global_privileges(&lines.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>())
        };
        assert!(
            missing_privileges(&grants(&[
                "GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"
            ]))
            .is_empty()
        );
        assert!(
            missing_privileges(&grants(&[
                "GRANT SELECT, REPLICATION REPLICA, BINLOG MONITOR ON *.* TO `cdc`@`%`"
            ]))
            .is_empty()
        );
        assert_eq!(
            missing_privileges(&grants(&[
                "GRANT REPLICATION SLAVE ON *.* TO `cdc`@`%`",
                "GRANT ALL PRIVILEGES ON `sakila`.* TO `cdc`@`%`"
            ])),
            ["REPLICATION CLIENT"]
        );
        assert_eq!(
            missing_privileges(&grants(&["GRANT USAGE ON *.* TO `cdc`@`%`"])),
            ["REPLICATION SLAVE", "REPLICATION CLIENT"]
        );
    }

    #[test]
    fn tables_without_a_key_or_transactions_say_what_to_change() {
        let t = TableKey {
            schema: "sakila".into(),
            name: "log".into(),
            primary_key: Vec::new(),
            engine: Some("MyISAM".into()),
        };
        let w = t.warnings();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("ADD PRIMARY KEY"), "{}", w[0]);
        assert!(w[1].contains("ENGINE=InnoDB"), "{}", w[1]);
        let keyed = TableKey {
            primary_key: vec!["id".into()],
            engine: Some("InnoDB".into()),
            ..t
        };
        assert!(keyed.warnings().is_empty());
        assert_eq!(keyed.describe(), "primary key (id), InnoDB");
    }
}
