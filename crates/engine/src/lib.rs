//! pipectl's runtime: connectors over Arrow record batches and the DAG executor.
//!
//! Crate graph: `pipectl-spec` (types, validation) and `pipectl-state` (history, bookmarks)
//! below; the `pipectl` binary above. Sources emit [`table::Message`]s into bounded channels,
//! transforms map batches, sinks stage files, and [`executor`] publishes them atomically.
#![warn(missing_docs, unreachable_pub)]

pub mod arrow_eval;
pub mod connect;
pub mod context;
pub mod crawl;
pub mod error;
pub mod executor;
pub mod maintenance;
pub mod plan;
pub mod sink;
pub mod source;
pub mod table;
pub mod transform;

pub use error::{Error, ErrorClass, Result};
