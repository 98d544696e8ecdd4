//! What a CDC source needs from the server, checked before anything is created: `wal_level =
//! logical`, a user allowed to replicate, a free replication slot (unless the slot exists),
//! and tables whose updates and deletes carry their key (a primary key or a replica identity).
//! `plan` shows the findings; a run fails on the problems and goes ahead with the warnings,
//! each saying what to change.

use pipectl_spec::types::PostgresCdcSource;
use sqlx::Row;

use crate::error::{Error, Result};
use crate::source::postgres;

/// How one table's updates and deletes identify their row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableIdentity {
    /// Schema.
    pub schema: String,
    /// Table.
    pub name: String,
    /// `pg_class.relreplident`: `d` default (the primary key), `f` full, `i` an index, `n`
    /// nothing.
    pub replica_identity: char,
    /// The primary key's columns, in key order (empty: none).
    pub primary_key: Vec<String>,
}

impl TableIdentity {
    /// `replica identity default, primary key (id)`, as `plan` shows it.
    pub fn describe(&self) -> String {
        let identity = match self.replica_identity {
            'd' => "default",
            'f' => "full",
            'i' => "index",
            'n' => "nothing",
            _ => "unknown",
        };
        let key = if self.primary_key.is_empty() {
            "no primary key".to_owned()
        } else {
            format!("primary key ({})", self.primary_key.join(", "))
        };
        format!("replica identity {identity}, {key}")
    }

    /// Why updates and deletes of the table cannot be replicated faithfully, if they cannot:
    /// the old row's key must reach the stream.
    pub fn problem(&self) -> Option<String> {
        let table = format!("{}.{}", quote(&self.schema), quote(&self.name));
        match (self.replica_identity, self.primary_key.is_empty()) {
            ('n', _) => Some(format!(
                "table {}.{}: replica identity is NOTHING, so its updates and deletes cannot be replicated; run `ALTER TABLE {table} REPLICA IDENTITY DEFAULT` (with a primary key) or `ALTER TABLE {table} REPLICA IDENTITY FULL`",
                self.schema, self.name
            )),
            ('d', true) => Some(format!(
                "table {}.{}: no primary key and replica identity DEFAULT, so PostgreSQL refuses its updates and deletes under a publication; add a primary key or run `ALTER TABLE {table} REPLICA IDENTITY FULL`",
                self.schema, self.name
            )),
            _ => None,
        }
    }

    /// What works only partly: a table whose changes replicate (replica identity `full` or
    /// `index`) but that has no primary key lands in change files, not in merged tables.
    pub fn warning(&self) -> Option<String> {
        (self.problem().is_none() && self.primary_key.is_empty()).then(|| {
            format!(
                "table {}.{}: no primary key, so its changes land in change files but cannot be merged into a Delta table by key; add one (`ALTER TABLE {}.{} ADD PRIMARY KEY (...)`)",
                self.schema,
                self.name,
                quote(&self.schema),
                quote(&self.name)
            )
        })
    }
}

/// What the server inspection found.
#[derive(Debug, Default)]
pub struct Report {
    /// The slot, the publication and the server's settings, as facts.
    pub notes: Vec<String>,
    /// What must change before a run can replicate, each saying how.
    pub problems: Vec<String>,
    /// What works only partly, each saying how to change it; a run goes ahead.
    pub warnings: Vec<String>,
    /// The selected tables' identities.
    pub tables: Vec<TableIdentity>,
    /// The slot's state, when it exists.
    pub slot: Option<SlotState>,
}

/// An existing replication slot.
#[derive(Debug, Clone)]
pub struct SlotState {
    /// Its output plugin.
    pub plugin: String,
    /// Its database.
    pub database: String,
    /// `confirmed_flush_lsn`, as text.
    pub confirmed_flush: Option<String>,
    /// `wal_status`: `reserved`, `extended`, `unreserved` or `lost`.
    pub wal_status: Option<String>,
    /// Whether a connection streams from it now.
    pub active: bool,
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn external(what: &str) -> impl FnOnce(sqlx::Error) -> Error + '_ {
    move |e| Error::external(what.to_owned(), e)
}

/// Inspects the server at `url` for `spec` and its selected `tables` (schema, name).
pub async fn inspect(
    url: &str,
    spec: &PostgresCdcSource,
    tables: &[(String, String)],
) -> Result<Report> {
    let mut conn = postgres::connect(url).await?;
    let mut report = Report::default();
    let row = sqlx::query(
        "select current_setting('wal_level'), current_setting('max_replication_slots')::int8, \
         (select count(*) from pg_replication_slots)::int8, current_user::text, \
         r.rolsuper, r.rolreplication, \
         exists(select 1 from pg_roles g where g.rolname = 'rds_replication' \
                and pg_has_role(current_user, g.oid, 'member')), \
         current_database()::text \
         from pg_roles r where r.rolname = current_user",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(external("cannot read the server's replication settings"))?;
    let wal_level: String = row.get(0);
    let max_slots: i64 = row.get(1);
    let used_slots: i64 = row.get(2);
    let user: String = row.get(3);
    let superuser: bool = row.get(4);
    let replication: bool = row.get(5);
    let rds_replication: bool = row.get(6);
    let database: String = row.get(7);
    if wal_level != "logical" {
        report.problems.push(format!(
            "server: wal_level is `{wal_level}`; logical replication needs `wal_level = logical` (`ALTER SYSTEM SET wal_level = logical`, then restart the server; on RDS set `rds.logical_replication = 1` in the parameter group)"
        ));
    }
    if !(superuser || replication || rds_replication) {
        report.problems.push(format!(
            "server: user `{user}` may not replicate; run `ALTER ROLE {} REPLICATION` (on RDS: `GRANT rds_replication TO {}`)",
            quote(&user),
            quote(&user)
        ));
    }
    let slot = sqlx::query(
        "select plugin::text, database::text, confirmed_flush_lsn::text, wal_status::text, active \
         from pg_replication_slots where slot_name = $1",
    )
    .bind(&spec.slot)
    .fetch_optional(&mut conn)
    .await
    .map_err(external("cannot list the replication slots"))?
    .map(|r| SlotState {
        plugin: r.get::<Option<String>, _>(0).unwrap_or_default(),
        database: r.get::<Option<String>, _>(1).unwrap_or_default(),
        confirmed_flush: r.get(2),
        wal_status: r.get(3),
        active: r.get(4),
    });
    match &slot {
        None => {
            report.notes.push(format!(
                "slot {}: created by the first run{}",
                spec.slot,
                match spec.snapshot {
                    pipectl_spec::types::CdcSnapshot::Never => ", changes only (`snapshot: never`)",
                    _ => ", with an exported snapshot the tables are copied in",
                }
            ));
            if used_slots >= max_slots {
                report.problems.push(format!(
                    "server: all {max_slots} replication slots (max_replication_slots) are in use, so slot {} cannot be created; raise max_replication_slots (restart) or drop an unused slot with `SELECT pg_drop_replication_slot('...')`",
                    spec.slot
                ));
            }
        }
        Some(s) => {
            report.notes.push(format!(
                "slot {}: exists ({}, confirmed flush {}{})",
                spec.slot,
                s.plugin,
                s.confirmed_flush.as_deref().unwrap_or("none"),
                if s.active {
                    ", in use by a connection now"
                } else {
                    ""
                }
            ));
            if s.plugin != "pgoutput" || s.database != database {
                report.problems.push(format!(
                    "slot {}: it is a `{}` slot of database `{}`; this source needs a `pgoutput` slot of `{database}`: choose another `slot` name",
                    spec.slot, s.plugin, s.database
                ));
            }
            if s.wal_status.as_deref() == Some("lost") {
                report.problems.push(format!(
                    "slot {}: invalidated, the server removed WAL it still needed (max_slot_wal_keep_size); re-snapshot: `pipectl cdc drop-slot <pipeline file> --yes` drops it and resets the position, and the next run copies the tables again",
                    spec.slot
                ));
            }
        }
    }
    report.slot = slot;
    let publication = sqlx::query("select puballtables from pg_publication where pubname = $1")
        .bind(&spec.publication)
        .fetch_optional(&mut conn)
        .await
        .map_err(external("cannot list the publications"))?;
    match publication {
        None => report.notes.push(format!(
            "publication {}: created by the first run for the {} selected tables",
            spec.publication,
            tables.len()
        )),
        Some(row) => {
            let all: bool = row.get(0);
            let published: Vec<(String, String)> = sqlx::query_as(
                "select schemaname::text, tablename::text from pg_publication_tables where pubname = $1",
            )
            .bind(&spec.publication)
            .fetch_all(&mut conn)
            .await
            .map_err(external("cannot list the publication's tables"))?;
            report.notes.push(format!(
                "publication {}: exists ({})",
                spec.publication,
                if all {
                    "FOR ALL TABLES".to_owned()
                } else {
                    format!("{} tables", published.len())
                }
            ));
            for (schema, name) in tables {
                if !published.iter().any(|(s, n)| s == schema && n == name) {
                    report.problems.push(format!(
                        "table {schema}.{name}: selected but not in publication {}, so its changes would not arrive; run `ALTER PUBLICATION {} ADD TABLE {}.{}`",
                        spec.publication,
                        quote(&spec.publication),
                        quote(schema),
                        quote(name)
                    ));
                }
            }
        }
    }
    for (schema, name) in tables {
        let row = sqlx::query(
            "select c.relreplident::text, coalesce(array(\
               select a.attname::text from pg_index i \
               join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey) \
               where i.indrelid = c.oid and i.indisprimary \
               order by array_position(i.indkey::int2[], a.attnum)), '{}') \
             from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where n.nspname = $1 and c.relname = $2",
        )
        .bind(schema)
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .map_err(external("cannot read a table's replica identity"))?;
        let identity: String = row.get(0);
        let table = TableIdentity {
            schema: schema.clone(),
            name: name.clone(),
            replica_identity: identity.chars().next().unwrap_or('d'),
            primary_key: row.get(1),
        };
        report.problems.extend(table.problem());
        report.warnings.extend(table.warning());
        report.tables.push(table);
    }
    Ok(report)
}
