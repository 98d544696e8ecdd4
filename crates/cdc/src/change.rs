//! The change model: what a database's log says happened to a row, in commit order.
//!
//! Shared by every CDC source (PostgreSQL here, MySQL/MariaDB's binlog next): a [`Change`] is
//! a row's values with its [`Op`], the commit's time and LSN, and its position inside the
//! transaction, so (`commit_lsn`, `position`) orders all changes of a stream. The
//! [`ChangeDecoder`] turns pgoutput [`Message`]s into committed [`Transaction`]s of them.
//!
//! Rules the decoder applies so that applying changes in order reproduces the table:
//! - A delete carries the old row as the server sent it: the replica identity key (other
//!   columns NULL), or the whole row with `REPLICA IDENTITY FULL`.
//! - An update that changed the replica identity key (pgoutput then sends the old key) becomes
//!   a delete of the old key followed by the update, so a merge by key removes the old row;
//!   with `REPLICA IDENTITY FULL` the same holds when the primary key's values changed (the
//!   caller names the primary key: [`ChangeDecoder::set_primary_key`]).
//! - A TOASTed value an update left unchanged is not sent by the server: it takes the old
//!   row's value when the server sent one (`REPLICA IDENTITY FULL`), else it stays
//!   [`Value::Unchanged`] and the change records list the column as unchanged, so a merge
//!   keeps the table's value; it never becomes NULL.
//! - A truncate is one change per truncated table, without values.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::lsn::Lsn;
use crate::pgoutput::{Message, OldTuple, RelationMessage, ReplicaIdentity, Tuple, Value};
use crate::types::{ColumnType, Infinity, TypeCatalog, Unmapped, map_type};

/// What happened to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Inserted (`I`).
    Insert,
    /// Updated (`U`): the values are the new row.
    Update,
    /// Deleted (`D`): the values are the old row's key, or all of it.
    Delete,
    /// The table was truncated (`T`): no values.
    Truncate,
}

impl Op {
    /// The letter change records carry (DMS's `Op` column, plus `T` for truncate).
    pub fn letter(self) -> &'static str {
        match self {
            Op::Insert => "I",
            Op::Update => "U",
            Op::Delete => "D",
            Op::Truncate => "T",
        }
    }
}

/// How values convert to Arrow (the batch source's `unmapped_types` and `infinity`).
#[derive(Debug, Clone, Copy, Default)]
pub struct TypeOptions {
    /// Columns of types without a faithful mapping.
    pub unmapped: Unmapped,
    /// Infinite dates and timestamps.
    pub infinity: Infinity,
}

/// A table as the stream last described it.
#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    /// Its OID.
    pub oid: u32,
    /// Its schema.
    pub schema: String,
    /// Its name.
    pub name: String,
    /// What updates and deletes carry of the old row.
    pub replica_identity: ReplicaIdentity,
    /// Its columns, in table order.
    pub columns: Vec<Column>,
}

impl Relation {
    /// `schema.name`, for messages.
    pub fn display_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// One column of a [`Relation`].
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Part of the replica identity key.
    pub key: bool,
    /// Its type's OID.
    pub type_oid: u32,
    /// Its type modifier.
    pub type_modifier: i32,
    /// How its values land in Arrow.
    pub ty: ColumnType,
}

/// One change to one row (or, for a truncate, to a table).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The table, as described when the change was made.
    pub relation: Arc<Relation>,
    /// What happened.
    pub op: Op,
    /// The commit's LSN: changes order by (`commit_lsn`, `position`).
    pub commit_lsn: Lsn,
    /// The commit's time, in microseconds since 1970-01-01 UTC.
    pub commit_time_micros: i64,
    /// Position inside the transaction, from 1.
    pub position: u32,
    /// The row's values, one per column (empty for a truncate).
    pub values: Tuple,
}

/// A committed transaction's changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    /// Its id.
    pub xid: u32,
    /// Its commit record's LSN.
    pub commit_lsn: Lsn,
    /// Just past its commit record: the position to confirm once it is applied.
    pub end_lsn: Lsn,
    /// Its commit time, in microseconds since 1970-01-01 UTC.
    pub commit_time_micros: i64,
    /// The origin it was replicated from, when it was.
    pub origin: Option<String>,
    /// Its row changes, in order.
    pub changes: Vec<Change>,
    /// Its transactional logical messages (prefix, content), in order.
    pub messages: Vec<(String, Vec<u8>)>,
}

/// What the decoder hands on.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A transaction committed.
    Commit(Transaction),
    /// A non-transactional logical message.
    Message {
        /// Its LSN.
        lsn: Lsn,
        /// Its prefix.
        prefix: String,
        /// Its content.
        content: Vec<u8>,
    },
}

/// Turns pgoutput messages into committed transactions, keeping the relations the stream
/// described.
#[derive(Debug, Default)]
pub struct ChangeDecoder {
    options: TypeOptions,
    catalog: TypeCatalog,
    relations: HashMap<u32, Arc<Relation>>,
    primary_keys: HashMap<u32, Vec<String>>,
    open: Option<Transaction>,
}

impl ChangeDecoder {
    /// A decoder converting values by `options`, resolving non-built-in types in `catalog`.
    pub fn new(options: TypeOptions, catalog: TypeCatalog) -> Self {
        ChangeDecoder {
            options,
            catalog,
            relations: HashMap::new(),
            primary_keys: HashMap::new(),
            open: None,
        }
    }

    /// The types used to map columns; a caller adds those a Type message names before
    /// pushing the Relation that uses them.
    pub fn catalog_mut(&mut self) -> &mut TypeCatalog {
        &mut self.catalog
    }

    /// Names the primary key columns of the table with `oid`. With `REPLICA IDENTITY FULL`
    /// the server flags every column as key, so only this tells an update that changed the
    /// primary key (a delete and an update) from one that did not.
    pub fn set_primary_key(&mut self, oid: u32, columns: Vec<String>) {
        self.primary_keys.insert(oid, columns);
    }

    /// The value conversion options.
    pub fn options(&self) -> TypeOptions {
        self.options
    }

    /// The relation with `oid`, when the stream described it.
    pub fn relation(&self, oid: u32) -> Option<&Arc<Relation>> {
        self.relations.get(&oid)
    }

    /// Takes one message; returns a transaction when it commits.
    pub fn push(&mut self, message: Message) -> Result<Option<Event>> {
        match message {
            Message::Begin(b) => {
                if let Some(open) = &self.open {
                    return Err(Error::Sequence(format!(
                        "transaction {} began while transaction {} was still open",
                        b.xid, open.xid
                    )));
                }
                self.open = Some(Transaction {
                    xid: b.xid,
                    commit_lsn: b.final_lsn,
                    end_lsn: b.final_lsn,
                    commit_time_micros: b.commit_time_micros,
                    origin: None,
                    changes: Vec::new(),
                    messages: Vec::new(),
                });
            }
            Message::Commit(c) => {
                let mut tx = self.open.take().ok_or_else(|| {
                    Error::Sequence(format!("commit at {} without a begin", c.commit_lsn))
                })?;
                tx.commit_lsn = c.commit_lsn;
                tx.end_lsn = c.end_lsn;
                tx.commit_time_micros = c.commit_time_micros;
                return Ok(Some(Event::Commit(tx)));
            }
            Message::Origin { name, .. } => self.open_tx("an origin")?.origin = Some(name),
            Message::Relation(r) => {
                let relation = self.relation_of(r)?;
                self.relations.insert(relation.oid, Arc::new(relation));
            }
            // The catalog read from pg_type describes these types; the message only names
            // them, so there is nothing to learn from it here.
            Message::Type { .. } => {}
            Message::Insert { relation, new } => {
                let relation = self.known(relation)?;
                self.add(relation, Op::Insert, new)?;
            }
            Message::Update { relation, old, new } => {
                let relation = self.known(relation)?;
                let mut new = new;
                if let Some(OldTuple::Full(old)) = &old {
                    // The old row has the values the update left unchanged.
                    for (n, o) in new.iter_mut().zip(old) {
                        if *n == Value::Unchanged && matches!(o, Value::Text(_) | Value::Binary(_))
                        {
                            *n = o.clone();
                        }
                    }
                }
                match old {
                    Some(OldTuple::Key(key)) => self.add(relation.clone(), Op::Delete, key)?,
                    Some(OldTuple::Full(old))
                        if self.primary_key_changed(&relation, &old, &new) =>
                    {
                        self.add(relation.clone(), Op::Delete, old)?
                    }
                    _ => {}
                }
                self.add(relation, Op::Update, new)?;
            }
            Message::Delete { relation, old } => {
                let relation = self.known(relation)?;
                let values = match old {
                    OldTuple::Key(t) | OldTuple::Full(t) => t,
                };
                self.add(relation, Op::Delete, values)?;
            }
            Message::Truncate { relations, .. } => {
                for oid in relations {
                    let relation = self.known(oid)?;
                    self.add(relation, Op::Truncate, Vec::new())?;
                }
            }
            Message::LogicalMessage {
                transactional,
                lsn,
                prefix,
                content,
            } => {
                if transactional {
                    self.open_tx("a transactional message")?
                        .messages
                        .push((prefix, content));
                } else {
                    return Ok(Some(Event::Message {
                        lsn,
                        prefix,
                        content,
                    }));
                }
            }
        }
        Ok(None)
    }

    /// Whether the primary key's values differ between a full old row and the new row.
    fn primary_key_changed(&self, relation: &Relation, old: &Tuple, new: &Tuple) -> bool {
        let Some(key) = self.primary_keys.get(&relation.oid) else {
            return false;
        };
        relation
            .columns
            .iter()
            .enumerate()
            .any(|(i, c)| key.contains(&c.name) && old.get(i) != new.get(i))
    }

    fn open_tx(&mut self, what: &str) -> Result<&mut Transaction> {
        self.open
            .as_mut()
            .ok_or_else(|| Error::Sequence(format!("{what} arrived outside a transaction")))
    }

    fn known(&self, oid: u32) -> Result<Arc<Relation>> {
        self.relations.get(&oid).cloned().ok_or_else(|| {
            Error::Sequence(format!(
                "a change to relation OID {oid} arrived before its Relation message"
            ))
        })
    }

    fn add(&mut self, relation: Arc<Relation>, op: Op, values: Tuple) -> Result<()> {
        if op != Op::Truncate && values.len() != relation.columns.len() {
            return Err(Error::Protocol(format!(
                "table {}: a change has {} values but the table has {} columns",
                relation.display_name(),
                values.len(),
                relation.columns.len()
            )));
        }
        let tx = self.open_tx("a change")?;
        let position = u32::try_from(tx.changes.len() + 1)
            .map_err(|_| Error::Protocol(format!("transaction {} has too many changes", tx.xid)))?;
        tx.changes.push(Change {
            relation,
            op,
            commit_lsn: tx.commit_lsn,
            commit_time_micros: tx.commit_time_micros,
            position,
            values,
        });
        Ok(())
    }

    fn relation_of(&self, r: RelationMessage) -> Result<Relation> {
        let display = format!("{}.{}", r.namespace, r.name);
        let columns = r
            .columns
            .into_iter()
            .map(|c| {
                let ty = match map_type(c.type_oid, c.type_modifier, &self.catalog) {
                    Ok(ty) => ty,
                    Err(_) if self.options.unmapped == Unmapped::Text => ColumnType::Text,
                    Err(what) => {
                        return Err(Error::Unmapped(format!(
                            "table {display}, column `{}`: {what} cannot be mapped; set `unmapped_types: text` on the source to land it as text",
                            c.name
                        )));
                    }
                };
                Ok(Column {
                    name: c.name,
                    key: c.key,
                    type_oid: c.type_oid,
                    type_modifier: c.type_modifier,
                    ty,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Relation {
            oid: r.oid,
            schema: r.namespace,
            name: r.name,
            replica_identity: r.replica_identity,
            columns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pgoutput::{Begin, Commit, RelationColumn};

    fn relation(identity: ReplicaIdentity) -> Message {
        Message::Relation(RelationMessage {
            oid: 1,
            namespace: "public".into(),
            name: "docs".into(),
            replica_identity: identity,
            columns: vec![
                RelationColumn {
                    key: true,
                    name: "id".into(),
                    type_oid: 20,
                    type_modifier: -1,
                },
                RelationColumn {
                    key: false,
                    name: "body".into(),
                    type_oid: 25,
                    type_modifier: -1,
                },
            ],
        })
    }

    fn t(s: &str) -> Value {
        Value::Text(s.as_bytes().to_vec())
    }

    fn run(messages: Vec<Message>) -> Transaction {
        let mut d = ChangeDecoder::default();
        let mut out = None;
        for m in messages {
            if let Some(Event::Commit(tx)) = d.push(m).unwrap() {
                out = Some(tx);
            }
        }
        out.expect("a commit")
    }

    fn begin() -> Message {
        Message::Begin(Begin {
            final_lsn: Lsn(100),
            commit_time_micros: 5,
            xid: 9,
        })
    }

    fn commit() -> Message {
        Message::Commit(Commit {
            commit_lsn: Lsn(100),
            end_lsn: Lsn(120),
            commit_time_micros: 5,
        })
    }

    #[test]
    fn changes_are_numbered_in_commit_order_and_key_changes_split() {
        let tx = run(vec![
            relation(ReplicaIdentity::Default),
            begin(),
            Message::Insert {
                relation: 1,
                new: vec![t("1"), t("a")],
            },
            Message::Update {
                relation: 1,
                old: Some(OldTuple::Key(vec![t("1"), Value::Null])),
                new: vec![t("2"), Value::Unchanged],
            },
            Message::Truncate {
                cascade: false,
                restart_identity: false,
                relations: vec![1],
            },
            commit(),
        ]);
        assert_eq!((tx.commit_lsn, tx.end_lsn, tx.xid), (Lsn(100), Lsn(120), 9));
        let ops: Vec<_> = tx.changes.iter().map(|c| (c.op, c.position)).collect();
        assert_eq!(
            ops,
            [
                (Op::Insert, 1),
                (Op::Delete, 2),
                (Op::Update, 3),
                (Op::Truncate, 4)
            ]
        );
        assert_eq!(tx.changes[1].values, vec![t("1"), Value::Null]);
        // Without a full old row the unchanged TOAST value stays marked, never NULL.
        assert_eq!(tx.changes[2].values, vec![t("2"), Value::Unchanged]);
    }

    #[test]
    fn a_full_old_row_fills_unchanged_values() {
        let tx = run(vec![
            relation(ReplicaIdentity::Full),
            begin(),
            Message::Update {
                relation: 1,
                old: Some(OldTuple::Full(vec![t("1"), t("long")])),
                new: vec![t("1"), Value::Unchanged],
            },
            commit(),
        ]);
        assert_eq!(tx.changes[0].values, vec![t("1"), t("long")]);
    }

    #[test]
    fn a_primary_key_change_under_full_identity_is_a_delete_and_an_update() {
        let mut d = ChangeDecoder::default();
        d.set_primary_key(1, vec!["id".into()]);
        let mut txs = Vec::new();
        for m in [
            relation(ReplicaIdentity::Full),
            begin(),
            Message::Update {
                relation: 1,
                old: Some(OldTuple::Full(vec![t("1"), t("a")])),
                new: vec![t("2"), t("a")],
            },
            Message::Update {
                relation: 1,
                old: Some(OldTuple::Full(vec![t("2"), t("a")])),
                new: vec![t("2"), t("b")],
            },
            commit(),
        ] {
            if let Some(Event::Commit(tx)) = d.push(m).unwrap() {
                txs.push(tx);
            }
        }
        let ops: Vec<_> = txs[0].changes.iter().map(|c| c.op).collect();
        assert_eq!(ops, [Op::Delete, Op::Update, Op::Update]);
        assert_eq!(txs[0].changes[0].values, vec![t("1"), t("a")]);
    }

    #[test]
    fn out_of_sequence_messages_are_errors() {
        let mut d = ChangeDecoder::default();
        let err = d
            .push(Message::Insert {
                relation: 1,
                new: vec![],
            })
            .unwrap_err();
        assert!(err.to_string().contains("before its Relation"), "{err}");
        d.push(relation(ReplicaIdentity::Default)).unwrap();
        let err = d
            .push(Message::Insert {
                relation: 1,
                new: vec![t("1"), t("x")],
            })
            .unwrap_err();
        assert!(err.to_string().contains("outside a transaction"), "{err}");
        assert!(d.push(commit()).is_err());
    }

    #[test]
    fn unmapped_types_fail_or_land_as_text() {
        let point = Message::Relation(RelationMessage {
            oid: 2,
            namespace: "public".into(),
            name: "places".into(),
            replica_identity: ReplicaIdentity::Default,
            columns: vec![RelationColumn {
                key: false,
                name: "at".into(),
                type_oid: 600,
                type_modifier: -1,
            }],
        });
        let err = ChangeDecoder::default()
            .push(point.clone())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("table public.places, column `at`") && err.contains("unmapped_types"),
            "{err}"
        );
        let mut d = ChangeDecoder::new(
            TypeOptions {
                unmapped: Unmapped::Text,
                ..TypeOptions::default()
            },
            TypeCatalog::default(),
        );
        d.push(point).unwrap();
        assert_eq!(d.relation(2).unwrap().columns[0].ty, ColumnType::Text);
    }
}
