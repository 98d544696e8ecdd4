//! The crate's errors.

/// What went wrong decoding or typing changes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server sent bytes that are not valid pgoutput: a bug on one side or a protocol
    /// version this decoder does not speak.
    #[error("{0}")]
    Protocol(String),
    /// A change refers to something the stream has not described (a relation before its
    /// Relation message).
    #[error("{0}")]
    Sequence(String),
    /// A value does not convert to its column's type; the message names table and column.
    #[error("{0}")]
    Value(String),
    /// A column's type has no faithful Arrow mapping and the policy says to fail.
    #[error("{0}")]
    Unmapped(String),
    /// The replication connection failed or the server refused a command; the message says
    /// which.
    #[error("{0}")]
    Connection(String),
    /// Arrow refused a batch (a bug: the builders follow the schema).
    #[error("building Arrow arrays failed: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// This crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
