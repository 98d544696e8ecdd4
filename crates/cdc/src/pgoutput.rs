//! PostgreSQL's `pgoutput` logical replication messages, decoded from their bytes.
//!
//! [`decode`] is a pure function over one message as the server sends it (the payload of an
//! `XLogData` message on a replication connection, or one row of
//! `pg_logical_slot_get_binary_changes`). It covers protocol version 1 (what
//! `proto_version '1'` sends, with `messages 'true'` for logical messages and `binary 'true'`
//! for binary tuple values); the streaming and two-phase messages of later versions are
//! refused by name so a caller asking for them learns it at once.
//!
//! The format is documented in PostgreSQL's "Logical Replication Message Formats" chapter.

use crate::error::{Error, Result};
use crate::lsn::Lsn;

/// Microseconds from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
pub const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// One decoded pgoutput message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A transaction starts; its changes follow, then [`Message::Commit`].
    Begin(Begin),
    /// The transaction started by the last [`Message::Begin`] committed.
    Commit(Commit),
    /// Where the transaction came from (sent when it was replicated from another server).
    Origin {
        /// The commit LSN on the origin server.
        commit_lsn: Lsn,
        /// The origin's name.
        name: String,
    },
    /// A table's description; sent before its first change and again after it changed.
    Relation(RelationMessage),
    /// A non-built-in type used by a relation's column: its namespace and name.
    Type {
        /// The type's OID.
        oid: u32,
        /// Its schema.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// A row was inserted.
    Insert {
        /// The table's OID.
        relation: u32,
        /// The new row.
        new: Tuple,
    },
    /// A row was updated.
    Update {
        /// The table's OID.
        relation: u32,
        /// The old row: its key columns (`K`, when the key changed) or all of it (`O`, with
        /// `REPLICA IDENTITY FULL`); absent otherwise.
        old: Option<OldTuple>,
        /// The new row.
        new: Tuple,
    },
    /// A row was deleted.
    Delete {
        /// The table's OID.
        relation: u32,
        /// The deleted row's key, or all of it with `REPLICA IDENTITY FULL`.
        old: OldTuple,
    },
    /// Tables were truncated.
    Truncate {
        /// `TRUNCATE ... CASCADE`.
        cascade: bool,
        /// `TRUNCATE ... RESTART IDENTITY`.
        restart_identity: bool,
        /// The truncated tables' OIDs.
        relations: Vec<u32>,
    },
    /// A logical decoding message (`pg_logical_emit_message`), sent with `messages 'true'`.
    LogicalMessage {
        /// Part of a transaction (else it was emitted on its own).
        transactional: bool,
        /// The message's LSN.
        lsn: Lsn,
        /// The prefix given when it was emitted.
        prefix: String,
        /// Its content.
        content: Vec<u8>,
    },
}

/// The start of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Begin {
    /// The LSN of the transaction's commit record.
    pub final_lsn: Lsn,
    /// Commit time in microseconds since 1970-01-01 UTC.
    pub commit_time_micros: i64,
    /// The transaction id.
    pub xid: u32,
}

/// The end of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    /// The LSN of the commit record.
    pub commit_lsn: Lsn,
    /// The LSN just past the commit record: where a restart resumes.
    pub end_lsn: Lsn,
    /// Commit time in microseconds since 1970-01-01 UTC.
    pub commit_time_micros: i64,
}

/// A table's description as the server sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationMessage {
    /// The table's OID.
    pub oid: u32,
    /// Its schema.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its replica identity: what deletes and updates carry of the old row.
    pub replica_identity: ReplicaIdentity,
    /// Its columns, in table order.
    pub columns: Vec<RelationColumn>,
}

/// One column of a [`RelationMessage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Part of the replica identity key.
    pub key: bool,
    /// The column's name.
    pub name: String,
    /// The OID of its type.
    pub type_oid: u32,
    /// Its type modifier (`-1` when none), e.g. precision and scale of `numeric(p,s)`.
    pub type_modifier: i32,
}

/// `REPLICA IDENTITY` of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaIdentity {
    /// The primary key (`d`).
    Default,
    /// Nothing (`n`): updates and deletes cannot be replicated.
    Nothing,
    /// The whole row (`f`).
    Full,
    /// The columns of a unique index (`i`).
    Index,
}

impl ReplicaIdentity {
    /// The name `ALTER TABLE ... REPLICA IDENTITY` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaIdentity::Default => "default",
            ReplicaIdentity::Nothing => "nothing",
            ReplicaIdentity::Full => "full",
            ReplicaIdentity::Index => "index",
        }
    }
}

/// The old row of an update or delete.
#[derive(Debug, Clone, PartialEq)]
pub enum OldTuple {
    /// Only the replica identity key's columns have values (the others are NULL).
    Key(Tuple),
    /// The whole old row (`REPLICA IDENTITY FULL`).
    Full(Tuple),
}

impl OldTuple {
    /// The tuple, whichever kind it is.
    pub fn tuple(&self) -> &Tuple {
        match self {
            OldTuple::Key(t) | OldTuple::Full(t) => t,
        }
    }
}

/// A row's values, one per column of its relation.
pub type Tuple = Vec<Value>;

/// One column's value in a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// NULL.
    Null,
    /// A TOASTed value the update left unchanged: the server does not send it.
    Unchanged,
    /// The value in the type's text output format.
    Text(Vec<u8>),
    /// The value in the type's binary send format (`binary 'true'`).
    Binary(Vec<u8>),
}

/// Decodes one pgoutput message.
pub fn decode(bytes: &[u8]) -> Result<Message> {
    let mut r = Reader { bytes, at: 0 };
    let tag = r.u8()?;
    let message = match tag {
        b'B' => Message::Begin(Begin {
            final_lsn: Lsn(r.u64()?),
            commit_time_micros: pg_time(r.i64()?),
            xid: r.u32()?,
        }),
        b'C' => {
            // Flags: none are defined yet.
            r.u8()?;
            Message::Commit(Commit {
                commit_lsn: Lsn(r.u64()?),
                end_lsn: Lsn(r.u64()?),
                commit_time_micros: pg_time(r.i64()?),
            })
        }
        b'O' => Message::Origin {
            commit_lsn: Lsn(r.u64()?),
            name: r.string()?,
        },
        b'R' => {
            let oid = r.u32()?;
            let namespace = r.string()?;
            let name = r.string()?;
            let replica_identity = match r.u8()? {
                b'd' => ReplicaIdentity::Default,
                b'n' => ReplicaIdentity::Nothing,
                b'f' => ReplicaIdentity::Full,
                b'i' => ReplicaIdentity::Index,
                other => {
                    return Err(r.bad(format!("unknown replica identity {:?}", other as char)));
                }
            };
            let count = r.u16()?;
            let mut columns = Vec::with_capacity(count as usize);
            for _ in 0..count {
                columns.push(RelationColumn {
                    key: r.u8()? & 1 == 1,
                    name: r.string()?,
                    type_oid: r.u32()?,
                    type_modifier: r.i32()?,
                });
            }
            Message::Relation(RelationMessage {
                oid,
                namespace,
                name,
                replica_identity,
                columns,
            })
        }
        b'Y' => Message::Type {
            oid: r.u32()?,
            namespace: r.string()?,
            name: r.string()?,
        },
        b'I' => {
            let relation = r.u32()?;
            r.expect(b'N', "the new tuple of an insert")?;
            Message::Insert {
                relation,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let relation = r.u32()?;
            let old = match r.u8()? {
                b'K' => {
                    let t = r.tuple()?;
                    r.expect(b'N', "the new tuple of an update")?;
                    Some(OldTuple::Key(t))
                }
                b'O' => {
                    let t = r.tuple()?;
                    r.expect(b'N', "the new tuple of an update")?;
                    Some(OldTuple::Full(t))
                }
                b'N' => None,
                other => {
                    return Err(r.bad(format!(
                        "an update's tuple starts with {:?}, not K, O or N",
                        other as char
                    )));
                }
            };
            Message::Update {
                relation,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relation = r.u32()?;
            let old = match r.u8()? {
                b'K' => OldTuple::Key(r.tuple()?),
                b'O' => OldTuple::Full(r.tuple()?),
                other => {
                    return Err(r.bad(format!(
                        "a delete's tuple starts with {:?}, not K or O",
                        other as char
                    )));
                }
            };
            Message::Delete { relation, old }
        }
        b'T' => {
            let count = r.u32()?;
            let options = r.u8()?;
            let mut relations = Vec::with_capacity(count.min(1024) as usize);
            for _ in 0..count {
                relations.push(r.u32()?);
            }
            Message::Truncate {
                cascade: options & 1 != 0,
                restart_identity: options & 2 != 0,
                relations,
            }
        }
        b'M' => {
            let transactional = r.u8()? & 1 == 1;
            let lsn = Lsn(r.u64()?);
            let prefix = r.string()?;
            let len = r.u32()? as usize;
            Message::LogicalMessage {
                transactional,
                lsn,
                prefix,
                content: r.take(len)?.to_vec(),
            }
        }
        b'S' | b'E' | b'c' | b'A' | b'b' | b'P' | b'K' | b'r' | b'p' => {
            return Err(Error::Protocol(format!(
                "pgoutput message {:?} belongs to streaming or two-phase replication (protocol version 2 and later); connect with proto_version '1' and without streaming",
                tag as char
            )));
        }
        other => {
            return Err(Error::Protocol(format!(
                "unknown pgoutput message type {:?} (byte {other})",
                other as char
            )));
        }
    };
    if r.at != bytes.len() {
        return Err(r.bad(format!(
            "{} bytes left after the message",
            bytes.len() - r.at
        )));
    }
    Ok(message)
}

fn pg_time(micros_since_2000: i64) -> i64 {
    micros_since_2000.saturating_add(PG_EPOCH_MICROS)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn bad(&self, what: String) -> Error {
        let tag = self.bytes.first().map_or('?', |b| *b as char);
        Error::Protocol(format!(
            "pgoutput message {tag:?} at byte {}: {what}",
            self.at
        ))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len());
        let Some(end) = end else {
            return Err(self.bad(format!(
                "truncated: needs {n} more bytes, {} left",
                self.bytes.len() - self.at
            )));
        };
        let v = &self.bytes[self.at..end];
        self.at = end;
        Ok(v)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let v = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(v);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn expect(&mut self, want: u8, what: &str) -> Result<()> {
        let got = self.u8()?;
        if got != want {
            return Err(self.bad(format!(
                "expected {:?} before {what}, found {:?}",
                want as char, got as char
            )));
        }
        Ok(())
    }

    /// A NUL-terminated string.
    fn string(&mut self) -> Result<String> {
        let rest = &self.bytes[self.at..];
        let Some(len) = rest.iter().position(|b| *b == 0) else {
            return Err(self.bad("a string has no terminating NUL".to_owned()));
        };
        let s = std::str::from_utf8(&rest[..len])
            .map_err(|_| self.bad("a string is not UTF-8".to_owned()))?
            .to_owned();
        self.at += len + 1;
        Ok(s)
    }

    fn tuple(&mut self) -> Result<Tuple> {
        let count = self.u16()?;
        let mut values = Vec::with_capacity(count as usize);
        for _ in 0..count {
            values.push(match self.u8()? {
                b'n' => Value::Null,
                b'u' => Value::Unchanged,
                b't' => {
                    let len = self.u32()? as usize;
                    Value::Text(self.take(len)?.to_vec())
                }
                b'b' => {
                    let len = self.u32()? as usize;
                    Value::Binary(self.take(len)?.to_vec())
                }
                other => {
                    return Err(self.bad(format!(
                        "unknown tuple value kind {:?} (expected n, u, t or b)",
                        other as char
                    )));
                }
            });
        }
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds messages byte by byte, as the server would.
    #[derive(Default)]
    struct Msg(Vec<u8>);

    impl Msg {
        fn tag(t: u8) -> Self {
            Msg(vec![t])
        }
        fn u8(mut self, v: u8) -> Self {
            self.0.push(v);
            self
        }
        fn u16(mut self, v: u16) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn u32(mut self, v: u32) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn i32(mut self, v: i32) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn u64(mut self, v: u64) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn str(mut self, s: &str) -> Self {
            self.0.extend_from_slice(s.as_bytes());
            self.0.push(0);
            self
        }
        fn text(self, s: &str) -> Self {
            let mut m = self.u8(b't').u32(s.len() as u32);
            m.0.extend_from_slice(s.as_bytes());
            m
        }
    }

    #[test]
    fn begin_and_commit_carry_lsns_and_unix_times() {
        let begin = Msg::tag(b'B').u64(0x1_0000_0020).u64(1_000_000).u32(742);
        assert_eq!(
            decode(&begin.0).unwrap(),
            Message::Begin(Begin {
                final_lsn: Lsn(0x1_0000_0020),
                commit_time_micros: PG_EPOCH_MICROS + 1_000_000,
                xid: 742,
            })
        );
        let commit = Msg::tag(b'C').u8(0).u64(0x20).u64(0x48).u64(5);
        assert_eq!(
            decode(&commit.0).unwrap(),
            Message::Commit(Commit {
                commit_lsn: Lsn(0x20),
                end_lsn: Lsn(0x48),
                commit_time_micros: PG_EPOCH_MICROS + 5,
            })
        );
    }

    #[test]
    fn relation_lists_columns_with_key_flags_and_typmods() {
        let m = Msg::tag(b'R')
            .u32(16384)
            .str("public")
            .str("orders")
            .u8(b'f')
            .u16(2)
            .u8(1)
            .str("id")
            .u32(20)
            .i32(-1)
            .u8(0)
            .str("amount")
            .u32(1700)
            .i32(((10 << 16) | 2) + 4);
        let Message::Relation(r) = decode(&m.0).unwrap() else {
            panic!("not a relation")
        };
        assert_eq!(r.oid, 16384);
        assert_eq!(
            (r.namespace.as_str(), r.name.as_str()),
            ("public", "orders")
        );
        assert_eq!(r.replica_identity, ReplicaIdentity::Full);
        assert!(r.columns[0].key && !r.columns[1].key);
        assert_eq!(r.columns[1].type_oid, 1700);
        assert_eq!(r.columns[1].type_modifier, ((10 << 16) | 2) + 4);
    }

    #[test]
    fn tuples_distinguish_null_unchanged_text_and_binary() {
        let m = Msg::tag(b'U')
            .u32(7)
            .u8(b'O')
            .u16(2)
            .text("1")
            .text("old")
            .u8(b'N')
            .u16(4)
            .text("1")
            .u8(b'u')
            .u8(b'n')
            .u8(b'b')
            .u32(2)
            .u8(0xca)
            .u8(0xfe);
        assert_eq!(
            decode(&m.0).unwrap(),
            Message::Update {
                relation: 7,
                old: Some(OldTuple::Full(vec![
                    Value::Text(b"1".to_vec()),
                    Value::Text(b"old".to_vec())
                ])),
                new: vec![
                    Value::Text(b"1".to_vec()),
                    Value::Unchanged,
                    Value::Null,
                    Value::Binary(vec![0xca, 0xfe]),
                ],
            }
        );
        let plain = Msg::tag(b'U').u32(7).u8(b'N').u16(1).text("x");
        assert!(matches!(
            decode(&plain.0).unwrap(),
            Message::Update { old: None, .. }
        ));
        let key = Msg::tag(b'U')
            .u32(7)
            .u8(b'K')
            .u16(1)
            .text("1")
            .u8(b'N')
            .u16(1)
            .text("2");
        assert!(matches!(
            decode(&key.0).unwrap(),
            Message::Update {
                old: Some(OldTuple::Key(_)),
                ..
            }
        ));
    }

    #[test]
    fn insert_delete_truncate_type_origin_and_messages() {
        let insert = Msg::tag(b'I').u32(9).u8(b'N').u16(1).text("a");
        assert_eq!(
            decode(&insert.0).unwrap(),
            Message::Insert {
                relation: 9,
                new: vec![Value::Text(b"a".to_vec())]
            }
        );
        let delete = Msg::tag(b'D').u32(9).u8(b'K').u16(2).text("1").u8(b'n');
        assert_eq!(
            decode(&delete.0).unwrap(),
            Message::Delete {
                relation: 9,
                old: OldTuple::Key(vec![Value::Text(b"1".to_vec()), Value::Null])
            }
        );
        let truncate = Msg::tag(b'T').u32(2).u8(3).u32(9).u32(10);
        assert_eq!(
            decode(&truncate.0).unwrap(),
            Message::Truncate {
                cascade: true,
                restart_identity: true,
                relations: vec![9, 10]
            }
        );
        let ty = Msg::tag(b'Y').u32(16390).str("public").str("mood");
        assert_eq!(
            decode(&ty.0).unwrap(),
            Message::Type {
                oid: 16390,
                namespace: "public".into(),
                name: "mood".into()
            }
        );
        let origin = Msg::tag(b'O').u64(99).str("east");
        assert_eq!(
            decode(&origin.0).unwrap(),
            Message::Origin {
                commit_lsn: Lsn(99),
                name: "east".into()
            }
        );
        let mut msg = Msg::tag(b'M').u8(1).u64(77).str("pipectl").u32(2);
        msg.0.extend_from_slice(b"hi");
        assert_eq!(
            decode(&msg.0).unwrap(),
            Message::LogicalMessage {
                transactional: true,
                lsn: Lsn(77),
                prefix: "pipectl".into(),
                content: b"hi".to_vec()
            }
        );
    }

    #[test]
    fn malformed_messages_are_errors_that_say_where() {
        let cut = Msg::tag(b'I').u32(9).u8(b'N').u16(1).u8(b't').u32(10);
        let err = decode(&cut.0).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
        let extra = Msg::tag(b'B').u64(1).u64(1).u32(1).u8(0);
        assert!(
            decode(&extra.0)
                .unwrap_err()
                .to_string()
                .contains("1 bytes left")
        );
        let kind = Msg::tag(b'I').u32(9).u8(b'N').u16(1).u8(b'x');
        assert!(
            decode(&kind.0)
                .unwrap_err()
                .to_string()
                .contains("unknown tuple value kind 'x'")
        );
        let stream = Msg::tag(b'S').u32(1).u8(1);
        assert!(
            decode(&stream.0)
                .unwrap_err()
                .to_string()
                .contains("proto_version '1'")
        );
        assert!(decode(&[]).is_err());
        let no_nul = Msg::tag(b'Y').u32(1).u8(b'a');
        assert!(decode(&no_nul.0).unwrap_err().to_string().contains("NUL"));
    }
}
