//! The logical replication stream of one slot, decoded into committed transactions.
//!
//! [`ReplicationStream::open`] connects with `pgwire-replication` in a gated session (the
//! replication connection authenticates and waits), creates the publication and the slot
//! when they are missing and reads the type catalog there, all before `START_REPLICATION`. A slot created here comes
//! with an exported snapshot ([`Snapshot`]): the server keeps it valid until the next command
//! on this replication connection, so the caller copies the tables in it on another
//! connection (`SET TRANSACTION SNAPSHOT`) and only then calls
//! [`ReplicationStream::start`]. The stream then begins at the slot's consistent point: every
//! transaction committed after the snapshot arrives, none before it (no gap, no duplicate).
//!
//! [`ReplicationStream::confirm`] reports an applied position (a transaction's `end_lsn`)
//! in standby status feedback; the slot's `confirmed_flush_lsn` follows, so call it only
//! once the transaction's changes are durably committed by the sink.

use std::time::Duration;

use pgwire_replication::{ReplicationClient, ReplicationConfig, ReplicationEvent};

use crate::change::{ChangeDecoder, Event, TypeOptions};
use crate::error::{Error, Result};
use crate::lsn::Lsn;
use crate::pgoutput::{Begin, Commit, Message, decode};
use crate::types::{CATALOG_SQL, TypeCatalog};

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// Server host (or a Unix socket directory).
    pub host: String,
    /// Server port.
    pub port: u16,
    /// User; it needs the `REPLICATION` attribute.
    pub user: String,
    /// Password (empty for trust authentication).
    pub password: String,
    /// Database.
    pub database: String,
    /// The replication slot, created when missing.
    pub slot: String,
    /// The publication naming the tables, created for `tables` when missing.
    pub publication: String,
    /// The tables (schema, name) a missing publication is created for; with none, a missing
    /// publication is an error.
    pub tables: Vec<(String, String)>,
    /// Where to start; `None` resumes at the slot's confirmed position.
    pub start_lsn: Option<Lsn>,
    /// How often applied positions are reported to the server.
    pub status_interval: Duration,
    /// `application_name` of the replication connection, so operators (and tests) can find it.
    pub application_name: String,
    /// Value conversion.
    pub types: TypeOptions,
}

/// The exported snapshot of a slot created by [`ReplicationStream::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The name for `SET TRANSACTION SNAPSHOT`.
    pub name: String,
    /// The slot's consistent point: the stream begins with the first commit after it.
    pub consistent_point: Lsn,
}

/// A replication slot's stream, decoded.
pub struct ReplicationStream {
    client: ReplicationClient,
    decoder: ChangeDecoder,
    slot: String,
    started: bool,
}

/// The comment of publications pipectl created, so that dropping a pipeline's slot drops its
/// publication too but never one someone else made.
pub const CREATED_BY_PIPECTL: &str = "created by pipectl";

/// `CREATE PUBLICATION` for `tables` (quoted `schema.table` names), with the comment
/// [`CREATED_BY_PIPECTL`].
pub fn publication_sql(publication: &str, tables: &[(String, String)]) -> String {
    let list: Vec<String> = tables
        .iter()
        .map(|(s, t)| format!("{}.{}", quote_ident(s), quote_ident(t)))
        .collect();
    format!(
        "CREATE PUBLICATION {0} FOR TABLE {1}; COMMENT ON PUBLICATION {0} IS {2}",
        quote_ident(publication),
        list.join(", "),
        quote_literal(CREATED_BY_PIPECTL)
    )
}

/// The primary key columns of the publication's tables, one row (table OID as int8, column
/// name) per column, for [`ChangeDecoder::set_primary_key`].
pub fn primary_keys_sql(publication: &str) -> String {
    format!(
        "SELECT c.oid::int8, a.attname::text FROM pg_publication_tables pt \
         JOIN pg_namespace n ON n.nspname = pt.schemaname \
         JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename \
         JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey) \
         WHERE pt.pubname = {} ORDER BY 1, array_position(i.indkey::int2[], a.attnum)",
        quote_literal(publication)
    )
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn replication_error(what: &str, e: pgwire_replication::PgWireError) -> Error {
    Error::Connection(format!("{what}: {e}"))
}

impl ReplicationStream {
    /// Connects, creates the slot if it is missing (returning its exported snapshot) and reads
    /// the type catalog; nothing streams until [`start`](Self::start).
    pub async fn open(settings: &StreamSettings) -> Result<(Self, Option<Snapshot>)> {
        let mut config = ReplicationConfig::new(
            settings.host.clone(),
            settings.user.clone(),
            settings.password.clone(),
            settings.database.clone(),
            settings.slot.clone(),
            settings.publication.clone(),
        )
        .with_port(settings.port)
        .with_status_interval(settings.status_interval)
        .with_application_name(settings.application_name.clone())
        // The text forms the decoder parses: ISO dates, hex bytea, shortest exact floats.
        .with_options(
            "-c datestyle=ISO -c intervalstyle=postgres -c bytea_output=hex -c extra_float_digits=1 -c timezone=UTC",
        );
        if let Some(lsn) = settings.start_lsn {
            config = config.with_start_lsn(pgwire_replication::Lsn(lsn.0));
        }
        let mut client = ReplicationClient::connect_gated(config)
            .await
            .map_err(|e| replication_error("cannot open the replication connection", e))?;
        let publication = &settings.publication;
        let published = client
            .simple_query(&format!(
                "SELECT 1 FROM pg_publication WHERE pubname = {}",
                quote_literal(publication)
            ))
            .await
            .map_err(|e| replication_error("cannot list publications", e))?;
        if published.is_empty() {
            if settings.tables.is_empty() {
                return Err(Error::Connection(format!(
                    "publication {publication} does not exist and no tables were given to create it for; create it with CREATE PUBLICATION {publication} FOR TABLE ..."
                )));
            }
            client
                .simple_query(&publication_sql(publication, &settings.tables))
                .await
                .map_err(|e| {
                    replication_error(&format!("cannot create publication {publication}"), e)
                })?;
        }
        let slot = settings.slot.clone();
        let exists = client
            .simple_query(&format!(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = {}",
                quote_literal(&slot)
            ))
            .await
            .map_err(|e| replication_error("cannot list replication slots", e))?;
        let mut catalog = TypeCatalog::default();
        let rows = client
            .simple_query(CATALOG_SQL)
            .await
            .map_err(|e| replication_error("cannot read the type catalog", e))?;
        for row in rows {
            catalog.insert_row(catalog_row(&row)?);
        }
        let rows = client
            .simple_query(&primary_keys_sql(publication))
            .await
            .map_err(|e| replication_error("cannot read the tables' primary keys", e))?;
        let mut primary_keys: Vec<(u32, Vec<String>)> = Vec::new();
        for row in rows {
            let text = |i: usize| {
                row.get(i)
                    .and_then(|v| v.as_ref())
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .ok_or_else(|| Error::Protocol("a primary key row does not parse".to_owned()))
            };
            let oid: u32 = text(0)?
                .parse()
                .map_err(|_| Error::Protocol("a primary key row does not parse".to_owned()))?;
            match primary_keys.last_mut() {
                Some((last, columns)) if *last == oid => columns.push(text(1)?),
                _ => primary_keys.push((oid, vec![text(1)?])),
            }
        }
        // Creating the slot comes last: its exported snapshot lives only until the next
        // command on this connection, which must be START_REPLICATION.
        let snapshot = if exists.is_empty() {
            let rows = client
                .simple_query(&format!(
                    "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput (SNAPSHOT 'export')",
                    quote_ident(&slot)
                ))
                .await
                .map_err(|e| {
                    replication_error(
                        &format!(
                            "cannot create replication slot {slot} (the server needs wal_level = logical, a free slot under max_replication_slots and a user with REPLICATION)"
                        ),
                        e,
                    )
                })?;
            // slot_name, consistent_point, snapshot_name, output_plugin
            let row = rows.first().filter(|r| r.len() >= 3).ok_or_else(|| {
                Error::Protocol("CREATE_REPLICATION_SLOT answered without its row".to_owned())
            })?;
            let text = |i: usize| {
                row[i]
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default()
            };
            let consistent_point = text(1).parse::<Lsn>().map_err(Error::Protocol)?;
            Some(Snapshot {
                name: text(2),
                consistent_point,
            })
        } else {
            None
        };
        let mut decoder = ChangeDecoder::new(settings.types, catalog);
        for (oid, columns) in primary_keys {
            decoder.set_primary_key(oid, columns);
        }
        let stream = ReplicationStream {
            client,
            decoder,
            slot,
            started: false,
        };
        Ok((stream, snapshot))
    }

    /// Starts streaming (and releases the exported snapshot).
    pub async fn start(&mut self) -> Result<()> {
        self.client
            .start()
            .await
            .map_err(|e| replication_error("cannot start replication", e))?;
        self.client.wait_started().await.map_err(|e| {
            replication_error(
                &format!("the server refused START_REPLICATION on slot {}", self.slot),
                e,
            )
        })?;
        self.started = true;
        Ok(())
    }

    /// The next committed transaction or non-transactional message; `None` when the stream
    /// ended.
    pub async fn next(&mut self) -> Result<Option<Event>> {
        if !self.started {
            return Err(Error::Sequence(
                "the stream was read before it was started".to_owned(),
            ));
        }
        loop {
            let event = self
                .client
                .recv()
                .await
                .map_err(|e| replication_error("the replication stream failed", e))?;
            let message = match event {
                None => return Ok(None),
                // pgwire-replication decodes these three itself.
                Some(ReplicationEvent::Begin {
                    final_lsn,
                    xid,
                    commit_time_micros,
                }) => Message::Begin(Begin {
                    final_lsn: Lsn(final_lsn.0),
                    commit_time_micros: pg_to_unix(commit_time_micros),
                    xid,
                }),
                Some(ReplicationEvent::Commit {
                    lsn,
                    end_lsn,
                    commit_time_micros,
                }) => Message::Commit(Commit {
                    commit_lsn: Lsn(lsn.0),
                    end_lsn: Lsn(end_lsn.0),
                    commit_time_micros: pg_to_unix(commit_time_micros),
                }),
                Some(ReplicationEvent::Message {
                    transactional,
                    lsn,
                    prefix,
                    content,
                }) => Message::LogicalMessage {
                    transactional,
                    lsn: Lsn(lsn.0),
                    prefix,
                    content: content.to_vec(),
                },
                Some(ReplicationEvent::XLogData { data, .. }) => decode(&data)?,
                Some(ReplicationEvent::KeepAlive { .. }) => continue,
                Some(ReplicationEvent::StoppedAt { .. }) => return Ok(None),
            };
            if let Some(event) = self.decoder.push(message)? {
                return Ok(Some(event));
            }
        }
    }

    /// Reports that everything up to `lsn` (a transaction's `end_lsn`) is applied: the slot's
    /// confirmed position follows within the status interval.
    pub fn confirm(&self, lsn: Lsn) {
        self.client
            .update_applied_lsn(pgwire_replication::Lsn(lsn.0));
    }

    /// Ends the stream cleanly.
    pub async fn close(mut self) -> Result<()> {
        self.client
            .shutdown()
            .await
            .map_err(|e| replication_error("closing the replication connection failed", e))
    }
}

fn pg_to_unix(micros_since_2000: i64) -> i64 {
    micros_since_2000.saturating_add(crate::pgoutput::PG_EPOCH_MICROS)
}

/// A text row of [`CATALOG_SQL`] from the replication connection.
fn catalog_row(row: &[Option<bytes::Bytes>]) -> Result<crate::types::CatalogRow> {
    let bad = || Error::Protocol("a pg_type row does not parse".to_owned());
    let text = |i: usize| -> Result<String> {
        row.get(i)
            .and_then(|v| v.as_ref())
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .ok_or_else(bad)
    };
    let int = |i: usize| -> Result<i64> { text(i)?.parse().map_err(|_| bad()) };
    Ok((
        int(0)?,
        text(1)?,
        text(2)?,
        int(3)?,
        i32::try_from(int(4)?).map_err(|_| bad())?,
        int(5)?,
        text(6)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publication_sql_quotes_names() {
        assert_eq!(
            publication_sql(
                "p\"1",
                &[("public".into(), "a".into()), ("s".into(), "b\"c".into())]
            ),
            r#"CREATE PUBLICATION "p""1" FOR TABLE "public"."a", "s"."b""c"; COMMENT ON PUBLICATION "p""1" IS 'created by pipectl'"#
        );
    }
}
