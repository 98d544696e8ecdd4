//! What streaming sources hand to a firehose sink: batches of raw records with the sequence
//! numbers that name objects, and the acknowledgement that releases them at the source.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use pipectl_engine::Result;

/// One record as it arrived.
#[derive(Debug, Clone)]
pub struct Record {
    /// Position in the source: the JetStream stream sequence, or a counter for other sources.
    pub seq: u64,
    /// When the source received it (for JetStream: when the server stored it, so a redelivery
    /// after a crash has the same arrival time and renders the same prefix).
    pub arrival: DateTime<Utc>,
    /// The record's bytes, usually one JSON object.
    pub data: Bytes,
}

/// Releases a batch at its source once every record in it is in a published object.
pub trait Ack: Send {
    /// True when acknowledging this batch also acknowledges every earlier one (JetStream's
    /// `AckAll`), so only the newest of several releasable batches needs acknowledging.
    fn cumulative(&self) -> bool;
    /// Acknowledges the batch and waits until the source confirmed it.
    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<()>>;
}

/// Records in source order, with the acknowledgement of the whole batch.
pub struct Batch {
    /// The records, sequence numbers increasing.
    pub records: Vec<Record>,
    /// Acknowledges the batch; `None` for sources without acknowledgements.
    pub ack: Option<Box<dyn Ack>>,
    /// The source cannot receive more until what it sent is acknowledged (a broker's
    /// in-flight window is full): flush every buffer now.
    pub flush: bool,
}

/// How much a source can replay after a restart, which decides how objects are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Unacknowledged records come back with the same sequence numbers (JetStream): object
    /// names are deterministic and a restart rewrites the same objects.
    SameSequence,
    /// Sequence numbers restart with the process (MQTT, HTTP, generator): object names carry
    /// the run id so a restart never overwrites earlier objects.
    None,
}
