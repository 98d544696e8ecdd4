//! Engine errors: what failed, whose fault it is, and whether trying again can help.

use std::fmt;

/// Who is at fault, which decides whether a retry can help and how the error is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The spec or the data is wrong: retrying will not help; the message says what to change.
    User,
    /// A server, network or disk failed in a way that may pass: retrying may help.
    External,
    /// A server or the machine refused in a way that waiting does not change (authentication
    /// failed, permission denied, disk full, an invalid parameter): reported at once, never
    /// retried.
    Refused,
    /// A bug in pipectl.
    Internal,
    /// The run was cancelled (Ctrl-C, SIGTERM, a failing sibling step).
    Cancelled,
}

/// An error from building or running a step.
#[derive(Debug)]
pub struct Error {
    /// Who is at fault.
    pub class: ErrorClass,
    /// What failed, in words a user can act on.
    pub message: String,
    /// The underlying error, if any.
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// Result with the engine's [`Error`].
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

    /// A failure of something outside pipectl: [`ErrorClass::Refused`] when the cause is one
    /// that retrying cannot fix (see [`is_refusal`]), else [`ErrorClass::External`].
    pub fn external(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        let source = source.into();
        Error {
            class: if is_refusal(source.as_ref()) {
                ErrorClass::Refused
            } else {
                ErrorClass::External
            },
            message: message.into(),
            source: Some(source),
        }
    }

    /// A bug.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::of(ErrorClass::Internal, message)
    }

    /// The run was cancelled.
    pub fn cancelled() -> Self {
        Error::of(ErrorClass::Cancelled, "cancelled")
    }

    /// Attaches an underlying error.
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Prefixes the message with where it happened (`table main.film`, `step landing`).
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// True when the error was a cancellation.
    pub fn is_cancelled(&self) -> bool {
        self.class == ErrorClass::Cancelled
    }
}

impl fmt::Display for Error {
    /// The message followed by the chain of causes, each written once: `what failed: because`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = self.message.clone();
        let mut source = self
            .source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static));
        while let Some(s) = source {
            // Most errors print their cause inside their own message (sqlx's `error returned
            // from database: {0}`, object_store's `...: {source}`), and then return it again
            // as their source: a cause already in the text is not written a second time.
            let cause = s.to_string();
            if !text.contains(&cause) {
                text.push_str(": ");
                text.push_str(&cause);
            }
            source = s.source();
        }
        f.write_str(&text)
    }
}

/// Whether `error` (or a cause in its chain) is one that waiting does not fix: authentication
/// failed, permission denied, disk full, quota exceeded, a read-only file system, an invalid
/// parameter or value. Dropped connections, timeouts and restarting servers are not.
pub fn is_refusal(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                PermissionDenied | StorageFull | QuotaExceeded | ReadOnlyFilesystem | FileTooLarge
            ) {
                return true;
            }
        }
        if let Some(db) = e.downcast_ref::<sqlx::Error>() {
            match db {
                sqlx::Error::Configuration(_) | sqlx::Error::InvalidArgument(_) => return true,
                sqlx::Error::Database(db) if refused_by_database(db.as_ref()) => return true,
                _ => {}
            }
        }
        if let Some(store) = e.downcast_ref::<object_store::Error>()
            && matches!(
                store,
                object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. }
                    | object_store::Error::InvalidPath { .. }
                    | object_store::Error::UnknownConfigurationKey { .. }
            )
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// SQLSTATE classes (and MySQL error numbers) of refusals: `28` invalid authorization, `42`
/// access rule violations and undefined objects (`42501` permission denied), `22` data
/// exceptions (a value that does not convert), `3D` no such database, `53100` disk full;
/// MySQL 1021 (disk full) and 1114 (table full).
fn refused_by_database(db: &dyn sqlx::error::DatabaseError) -> bool {
    if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        && matches!(my.number(), 1021 | 1114)
    {
        return true;
    }
    let Some(code) = db.code() else {
        return false;
    };
    ["28", "42", "22", "3D"]
        .iter()
        .any(|class| code.starts_with(class))
        || code == "53100"
}

impl std::error::Error for Error {}

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
        Error::internal("arrow").with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that prints its cause inside its own message and also returns it as its
    /// source, as sqlx and object_store errors do.
    #[derive(Debug)]
    struct Wrapping(std::io::Error);

    impl fmt::Display for Wrapping {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "unable to open file /lake/x: {}", self.0)
        }
    }

    impl std::error::Error for Wrapping {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    fn io(kind: std::io::ErrorKind) -> std::io::Error {
        std::io::Error::new(kind, "Permission denied (os error 13)")
    }

    #[test]
    fn each_cause_is_written_once() {
        let e = Error::external(
            "cannot write x",
            Wrapping(io(std::io::ErrorKind::PermissionDenied)),
        );
        assert_eq!(
            e.to_string(),
            "cannot write x: unable to open file /lake/x: Permission denied (os error 13)"
        );
        let nested = Error::external("a", std::io::Error::other("b"));
        assert_eq!(nested.to_string(), "a: b");
    }

    #[test]
    fn refusals_are_not_retryable_and_passing_failures_are() {
        use std::io::ErrorKind::*;
        for kind in [
            PermissionDenied,
            StorageFull,
            QuotaExceeded,
            ReadOnlyFilesystem,
        ] {
            let e = Error::external("cannot write", Wrapping(io(kind)));
            assert_eq!(e.class, ErrorClass::Refused, "{kind:?}");
        }
        for kind in [ConnectionRefused, ConnectionReset, TimedOut, UnexpectedEof] {
            let e = Error::external("cannot read", sqlx::Error::Io(io(kind)));
            assert_eq!(e.class, ErrorClass::External, "{kind:?}");
        }
        let config = sqlx::Error::Configuration("bad sslmode".into());
        assert_eq!(
            Error::external("cannot connect", config).class,
            ErrorClass::Refused
        );
        let denied = object_store::Error::PermissionDenied {
            path: "x".into(),
            source: "403".into(),
        };
        assert_eq!(
            Error::external("cannot put", denied).class,
            ErrorClass::Refused
        );
    }
}
