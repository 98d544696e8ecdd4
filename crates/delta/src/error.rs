//! Errors of Delta table operations: what failed, whose fault it is, and whether to retry.

use std::fmt;

/// Who is at fault, which decides whether a retry can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The spec or the data is wrong (a missing merge key, a NULL key, a strict schema
    /// difference, a root holding other files): retrying will not help.
    User,
    /// Another writer committed something this commit cannot be combined with (the schema
    /// changed, the files an intent replaces are gone): prepare the intent again.
    Conflict,
    /// The store, the network or the disk failed: retrying may help.
    External,
    /// A bug in pipectl or delta-rs.
    Internal,
}

/// An error from a Delta table operation.
#[derive(Debug)]
pub struct Error {
    /// Who is at fault.
    pub class: ErrorClass,
    /// What failed, naming the table and the column where there is one.
    pub message: String,
    /// The underlying error, if any.
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `class` without an underlying one.
    fn of(class: ErrorClass, message: impl Into<String>) -> Self {
        Error {
            class,
            message: message.into(),
            source: None,
        }
    }

    /// A problem with the spec or the data.
    pub fn user(message: impl Into<String>) -> Self {
        Error::of(ErrorClass::User, message)
    }

    /// A concurrent commit got in the way.
    pub fn conflict(message: impl Into<String>) -> Self {
        Error::of(ErrorClass::Conflict, message)
    }

    /// A failure of the store or of something delta-rs called.
    pub fn external(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error {
            class: ErrorClass::External,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A bug.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::of(ErrorClass::Internal, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Adds what was being done to an error of delta-rs, DataFusion, Arrow or the store.
pub(crate) trait Context<T> {
    /// On error, an [`ErrorClass::External`] error saying `what` failed.
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::external(what(), e))
    }
}
