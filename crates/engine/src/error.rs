//! Engine errors: what failed, whose fault it is, and whether trying again can help.

use std::fmt;

/// Who is at fault, which decides whether a retry can help and how the error is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The spec or the data is wrong: retrying will not help; the message says what to change.
    User,
    /// A server, network or disk failed: retrying may help.
    External,
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
    /// A problem with the spec or the data.
    pub fn user(message: impl Into<String>) -> Self {
        Error {
            class: ErrorClass::User,
            message: message.into(),
            source: None,
        }
    }

    /// A failure of something outside pipectl.
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
        Error {
            class: ErrorClass::Internal,
            message: message.into(),
            source: None,
        }
    }

    /// The run was cancelled.
    pub fn cancelled() -> Self {
        Error {
            class: ErrorClass::Cancelled,
            message: "cancelled".to_owned(),
            source: None,
        }
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
    /// The message followed by the chain of causes: `what failed: because: because`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        let mut source = self
            .source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static));
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
        Error::internal("arrow").with_source(e)
    }
}
