//! The firehose sink: records buffered per destination (data partition or error type) and
//! flushed into one object per buffer when it reaches `max_bytes`, `max_records` or
//! `interval_secs`, whichever comes first.
//!
//! Delivery protocol, per flush:
//! 1. the record of objects in flight ([`pending`]) is saved with the new objects' keys;
//! 2. the objects are written (each `put` is atomic: readers see all of it or nothing);
//! 3. source batches whose records are all in published objects are acknowledged.
//!
//! Object names come from the sequence range they hold, so after a crash the redelivered
//! records are either recognised as published (and skipped) or rebuilt into the same object.
//!
//! With `format: delta` ([`delta`]) a data buffer becomes one commit to the Delta table its
//! prefix names: the record is saved with the buffer's range, the data files are written, the
//! record is saved again with the commit, the commit is applied (its transaction version is the
//! range's end, so applying it again after a crash commits nothing more), then the batches are
//! acknowledged. Error output stays objects, as for the other formats.

pub mod delta;
pub mod keys;
pub mod parquet;
pub mod pending;
pub mod route;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::{ObjectStoreExt, PutPayload};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use pipectl_engine::connect::StoreHandle;
use pipectl_engine::context::StepMetrics;
use pipectl_engine::{Error, Result};
use pipectl_spec::types::{DeltaFormat, FirehoseSink, Format, ParquetFormat, TextCompression};

use crate::record::{Ack, Batch, Record, Replay};
use crate::source::Started;
use keys::{ObjectInfo, ObjectKeys};
use pending::{DeltaFlush, Entry, Pending, PendingStore};
use route::{Dest, Router};

/// How long a stopping sink waits for its source to stop.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// How often buffers are checked against their interval.
const TICK: Duration = Duration::from_millis(100);

/// A firehose sink ready to run.
pub struct FirehoseStep {
    name: String,
    run_id: String,
    spec: FirehoseSink,
    handle: StoreHandle,
    keys: ObjectKeys,
    router: Router,
    metrics: Arc<StepMetrics>,
    /// The source's counters: what arrives is counted here, with no extra hop between them.
    source_metrics: Option<Arc<StepMetrics>>,
    /// Set for Parquet and Delta output; locked only while a buffer is converted (no await
    /// inside).
    parquet: Option<std::sync::Mutex<parquet::ParquetEncoder>>,
    /// Set for Delta output: the tables, locked while a flush is prepared or committed.
    delta: Option<tokio::sync::Mutex<delta::DeltaOutput>>,
    /// Told after each flush that published objects, so the run's history says so at once.
    published: Option<Arc<Notify>>,
}

struct Buffer {
    dest: Dest,
    body: Vec<u8>,
    first: u64,
    last: u64,
    count: u64,
    oldest: DateTime<Utc>,
    event_time: Option<DateTime<Utc>>,
    opened: Instant,
    /// For a buffer rebuilding an object of the previous process: its entry.
    replay: Option<Entry>,
}

/// Where the sink is: open buffers, batches waiting for acknowledgement, objects in flight.
struct State {
    replay: Replay,
    buffers: BTreeMap<Dest, Buffer>,
    /// Buffers rebuilding unpublished objects of the previous process, by partition.
    rebuilding: Vec<Buffer>,
    /// Ranges published by the previous process but not acknowledged: their records are skipped.
    published: Vec<Entry>,
    /// Objects in flight (saved before publishing, dropped once acknowledged).
    in_flight: Vec<Entry>,
    /// Every sequence number up to this one is published and acknowledged.
    acked: u64,
    /// Batches received, with the last sequence number each holds, oldest first.
    acks: VecDeque<(u64, Box<dyn Ack>)>,
    /// The highest sequence number received.
    highest: u64,
    /// Bytes held in all buffers.
    held: u64,
    pending: Option<PendingStore>,
}

impl FirehoseStep {
    /// Prepares the sink (the spec was validated: templates parse).
    pub fn new(
        pipeline: &str,
        name: &str,
        run_id: &str,
        spec: &FirehoseSink,
        handle: StoreHandle,
        metrics: Arc<StepMetrics>,
    ) -> Result<Self> {
        let keys = ObjectKeys::new(pipeline, name, spec)?;
        let parquet = match &spec.format {
            Format::Jsonl(_) => None,
            Format::Parquet(p) => Some(std::sync::Mutex::new(parquet::ParquetEncoder::new(
                name,
                p,
                &spec.columns,
            )?)),
            // Records become Arrow rows as for Parquet; the Delta writer makes the files.
            Format::Delta(d) => Some(std::sync::Mutex::new(parquet::ParquetEncoder::new(
                name,
                &delta_parquet_format(d),
                &spec.columns,
            )?)),
            Format::Csv(_) => {
                return Err(Error::user(format!(
                    "sink `{name}`: firehose sinks write `jsonl`, `parquet` or `delta`"
                )));
            }
        };
        let delta = match &spec.format {
            Format::Delta(d) => Some(tokio::sync::Mutex::new(delta::DeltaOutput::new(
                pipeline,
                name,
                handle.clone(),
                d,
                !spec.columns.is_empty() || spec.catalog_table.is_some(),
            ))),
            _ => None,
        };
        let router = Router::new(spec, keys.prefix().event_time_format(), keys.tz())
            .with_value_budget(keys.prefix().partition_value_budget())
            .for_table_roots(matches!(spec.format, Format::Delta(_)));
        Ok(FirehoseStep {
            name: name.to_owned(),
            run_id: run_id.to_owned(),
            spec: spec.clone(),
            handle,
            keys,
            router,
            metrics,
            source_metrics: None,
            published: None,
            parquet,
            delta,
        })
    }

    /// Converts to Parquet with this schema (a catalog table's) instead of the declared or
    /// inferred one.
    pub fn with_parquet_schema(mut self, schema: arrow::datatypes::SchemaRef) -> Self {
        let format = match &self.spec.format {
            Format::Parquet(p) => p.clone(),
            Format::Delta(d) => delta_parquet_format(d),
            _ => return self,
        };
        self.parquet = Some(std::sync::Mutex::new(parquet::ParquetEncoder::with_schema(
            &format, schema,
        )));
        self
    }

    /// Warns once at the end of a run about fields the Parquet schema lacks.
    fn report_left_out(&self) {
        let Some(Ok(encoder)) = self.parquet.as_ref().map(|p| p.lock()) else {
            return;
        };
        if encoder.left_out().is_empty() {
            return;
        }
        let fields: Vec<String> = encoder
            .left_out()
            .iter()
            .map(|(name, records)| {
                let unit = if *records == 1 { "record" } else { "records" };
                format!("`{name}` ({records} {unit})")
            })
            .collect();
        tracing::warn!(sink = %self.name, "fields not in the {} were left out: {}", self.schema_noun(), fields.join(", "));
    }

    /// Counts the records arriving from the source in the source's counters.
    pub fn counting_for(mut self, source: Arc<StepMetrics>) -> Self {
        self.source_metrics = Some(source);
        self
    }

    /// Notifies `published` after each flush that published objects.
    pub fn notifying(mut self, published: Arc<Notify>) -> Self {
        self.published = Some(published);
        self
    }

    fn max_buffered(&self) -> u64 {
        self.spec
            .max_buffered_bytes
            .unwrap_or_else(|| (self.spec.max_bytes * 4).max(64 * 1024 * 1024))
    }

    /// Delivers batches from `input` until it closes or `cancel` fires; then flushes every
    /// buffer, publishes and acknowledges. `resume` is the record of objects in flight, for
    /// sources that replay unacknowledged records with the same sequence numbers.
    pub async fn run(
        self,
        started: Started,
        resume: Option<(PendingStore, Pending)>,
        mut input: mpsc::Receiver<Batch>,
        cancel: CancellationToken,
    ) -> Result<()> {
        let floor = started.acked_through.unwrap_or(0);
        let mut state = State {
            replay: started.replay,
            buffers: BTreeMap::new(),
            rebuilding: Vec::new(),
            published: Vec::new(),
            in_flight: Vec::new(),
            acked: floor,
            acks: VecDeque::new(),
            highest: floor,
            held: 0,
            pending: None,
        };
        if let Some((store, previous)) = resume.filter(|_| started.replay == Replay::SameSequence) {
            let mut entries = previous.entries;
            // A table's commits are applied in the order of their ranges: its transaction
            // version only grows.
            entries.sort_by_key(|e| e.last);
            for entry in entries {
                if entry.last <= floor {
                    continue;
                }
                let published = match &entry.delta {
                    Some(flush) => self.recover_commit(&entry, flush).await?,
                    None => store.published(&entry).await?,
                };
                if published {
                    tracing::info!(sink = %self.name, key = %entry.key, "skipping records already published before a restart");
                    state.published.push(entry);
                } else {
                    tracing::info!(sink = %self.name, key = %entry.key, "rebuilding an object a stopped process did not publish");
                    state.in_flight.push(entry.clone());
                    state.rebuilding.push(Buffer {
                        dest: Dest::Error(route::ErrorOutputType::ProcessingFailed),
                        body: Vec::new(),
                        first: entry.first,
                        last: entry.first,
                        count: 0,
                        oldest: Utc::now(),
                        event_time: None,
                        opened: Instant::now(),
                        replay: Some(entry),
                    });
                }
            }
            state.in_flight.extend(state.published.iter().cloned());
            state.pending = Some(store);
        }
        let interval = Duration::from_secs_f64(self.spec.interval_secs);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                batch = input.recv() => match batch {
                    Some(batch) => self.take(&mut state, batch).await?,
                    None => break,
                },
                _ = tick.tick() => {
                    let due: Vec<Dest> = state
                        .buffers
                        .iter()
                        .filter(|(_, b)| b.opened.elapsed() >= interval)
                        .map(|(d, _)| d.clone())
                        .collect();
                    if !due.is_empty() {
                        self.flush(&mut state, due).await?;
                    }
                }
            }
        }
        // Everything the source still hands over is delivered too, until it has stopped (its
        // end of the channel closes): an HTTP request answered 200 while stopping must not be
        // lost. A source that does not stop in time is not waited for any longer.
        let stopping = Instant::now() + STOP_WAIT;
        loop {
            match tokio::time::timeout_at(stopping, input.recv()).await {
                Ok(Some(batch)) => self.take(&mut state, batch).await?,
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(sink = %self.name, "the source did not stop within {} s; delivering what arrived", STOP_WAIT.as_secs());
                    break;
                }
            }
        }
        let all: Vec<Dest> = state.buffers.keys().cloned().collect();
        let rebuilt = std::mem::take(&mut state.rebuilding);
        self.publish(&mut state, Vec::new(), rebuilt).await?;
        self.flush(&mut state, all).await?;
        self.report_left_out();
        Ok(())
    }

    /// Takes one batch: routes its records, then flushes everything if the source asked to.
    async fn take(&self, state: &mut State, batch: Batch) -> Result<()> {
        if let Some(m) = &self.source_metrics {
            let bytes: usize = batch.records.iter().map(|r| r.data.len()).sum();
            m.add(batch.records.len() as u64, bytes as u64);
        }
        // Tests (and users at -v) can tell records reached the sink, unacknowledged, in buffers.
        tracing::debug!(sink = %self.name, records = batch.records.len(), "records received");
        let flush = batch.flush;
        self.route_batch(state, batch).await?;
        if flush {
            let all: Vec<Dest> = state.buffers.keys().cloned().collect();
            self.flush(state, all).await?;
        }
        Ok(())
    }

    /// Routes one batch's records into buffers, flushing the ones that fill up.
    async fn route_batch(&self, state: &mut State, batch: Batch) -> Result<()> {
        let Some(last_seq) = batch.records.last().map(|r| r.seq) else {
            if let Some(ack) = batch.ack {
                state.acks.push_back((state.highest, ack));
            }
            return Ok(());
        };
        let max_records = self.spec.max_records.unwrap_or(u64::MAX);
        let mut full = Vec::new();
        for record in &batch.records {
            let routed = self.router.route(record);
            let line: &[u8] = routed.envelope.as_deref().unwrap_or(&record.data);
            // Only after a restart: records of objects the previous process handled.
            if !state.published.is_empty() || !state.rebuilding.is_empty() {
                let partition = partition_id(&routed.dest);
                let holds = |e: &Entry| {
                    e.partition == partition && (e.first..=e.last).contains(&record.seq)
                };
                if state.published.iter().any(holds) {
                    continue;
                }
                if let Some(buffer) = state
                    .rebuilding
                    .iter_mut()
                    .find(|b| b.replay.as_ref().is_some_and(holds))
                {
                    if buffer.count == 0 {
                        buffer.dest = routed.dest.clone();
                        buffer.oldest = record.arrival;
                        buffer.event_time = routed.event_time;
                    }
                    state.held += line.len() as u64 + 1;
                    append(buffer, record, line);
                    continue;
                }
            }
            state.held += line.len() as u64 + 1;
            // The destination is cloned only when it opens a buffer, not for every record.
            if !state.buffers.contains_key(&routed.dest) {
                state.buffers.insert(
                    routed.dest.clone(),
                    Buffer {
                        dest: routed.dest.clone(),
                        body: Vec::with_capacity(64 * 1024),
                        first: record.seq,
                        last: record.seq,
                        count: 0,
                        oldest: record.arrival,
                        event_time: routed.event_time,
                        opened: Instant::now(),
                        replay: None,
                    },
                );
            }
            let Some(buffer) = state.buffers.get_mut(&routed.dest) else {
                return Err(Error::internal("a buffer vanished"));
            };
            append(buffer, record, line);
            if buffer.body.len() as u64 >= self.spec.max_bytes || buffer.count >= max_records {
                // Full: set aside for publishing; the destination's next record opens a new buffer.
                if let Some(b) = state.buffers.remove(&routed.dest) {
                    full.push(b);
                }
            }
        }
        state.highest = state.highest.max(last_seq);
        if let Some(ack) = batch.ack {
            state.acks.push_back((last_seq, ack));
        }
        // Rebuilt objects are complete once the source has gone past their last record.
        let (done, waiting): (Vec<Buffer>, Vec<Buffer>) = std::mem::take(&mut state.rebuilding)
            .into_iter()
            .partition(|b| b.replay.as_ref().is_some_and(|e| e.last <= state.highest));
        state.rebuilding = waiting;
        // Memory bound: past it, the biggest buffers are flushed early.
        if state.held > self.max_buffered() {
            let mut sizes: Vec<(usize, Dest)> = state
                .buffers
                .iter()
                .map(|(d, b)| (b.body.len(), d.clone()))
                .collect();
            sizes.sort_by_key(|s| std::cmp::Reverse(s.0));
            let mut freed: u64 = full.iter().map(|b| b.body.len() as u64).sum();
            for (size, dest) in sizes {
                if state.held.saturating_sub(freed) <= self.max_buffered() / 2 {
                    break;
                }
                freed += size as u64;
                if let Some(b) = state.buffers.remove(&dest) {
                    full.push(b);
                }
            }
        }
        if !done.is_empty() || !full.is_empty() {
            self.publish(state, full, done).await?;
        }
        Ok(())
    }

    async fn flush(&self, state: &mut State, dests: Vec<Dest>) -> Result<()> {
        let flushed: Vec<Buffer> = dests
            .iter()
            .filter_map(|d| state.buffers.remove(d))
            .collect();
        if flushed.is_empty() {
            // Nothing to write, but batches may be waiting (e.g. all skipped after a restart).
            return self.acknowledge(state).await;
        }
        self.publish(state, flushed, Vec::new()).await
    }

    /// The object key of a buffer, as a path in the sink's store: for Delta output, a data
    /// buffer's table root.
    fn object_key(&self, b: &Buffer, tag: Option<&str>) -> String {
        if self.delta.is_some() && matches!(b.dest, Dest::Data { .. }) {
            return self.handle.path(&self.keys.table_root(&b.dest)).to_string();
        }
        let key = self.keys.key(&ObjectInfo {
            dest: &b.dest,
            first: b.first,
            last: b.last,
            oldest: b.oldest,
            event_time: b.event_time,
            tag,
        });
        self.handle.path(&key).to_string()
    }

    /// A buffer's object bytes and record count, `None` when no object is due (every record
    /// failed conversion). Records that do not fit the Parquet schema are written to the error
    /// prefix first, under a key derived from the same sequence range, so a rebuild after a
    /// crash rewrites the same error object.
    /// A JSON lines body is moved out of the buffer, not copied.
    async fn encode(&self, b: &mut Buffer, tag: Option<&str>) -> Result<Option<(Vec<u8>, u64)>> {
        let (Some(encoder), Dest::Data { .. }) = (&self.parquet, &b.dest) else {
            if matches!(b.dest, Dest::Data { .. }) && self.compression() == TextCompression::Gzip {
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(b.body.len() / 4),
                    flate2::Compression::fast(),
                );
                let body = enc
                    .write_all(&b.body)
                    .and_then(|_| enc.finish())
                    .map_err(|e| Error::internal(format!("gzip: {e}")))?;
                return Ok(Some((body, b.count)));
            }
            return Ok(Some((std::mem::take(&mut b.body), b.count)));
        };
        let encoded = encoder
            .lock()
            .map_err(|_| Error::internal("parquet encoder poisoned"))?
            .encode(&b.body)
            .map_err(|e| e.context(format!("sink `{}`", self.name)))?;
        self.warn_left_out(&encoded.new_left_out);
        self.write_rejected(b, &encoded.rejected, tag).await?;
        let rows = b.count - encoded.rejected.len() as u64;
        Ok(encoded.object.map(|o| (o, rows)))
    }

    /// What the records are converted to, for messages.
    fn schema_noun(&self) -> &'static str {
        if self.delta.is_some() {
            "Delta table's columns"
        } else {
            "Parquet schema"
        }
    }

    fn warn_left_out(&self, fields: &[String]) {
        for field in fields {
            tracing::warn!(sink = %self.name, %field, "field `{field}` is not in the {}: its values are left out (counted; the total is reported when the run stops)", self.schema_noun());
        }
    }

    /// Writes the records of `b` that did not fit the schema to the error prefix, under a
    /// key derived from the buffer's sequence range, so a rebuild after a crash rewrites the
    /// same error object.
    async fn write_rejected(
        &self,
        b: &Buffer,
        rejected: &[(usize, String)],
        tag: Option<&str>,
    ) -> Result<()> {
        if !rejected.is_empty() {
            let lines: Vec<&[u8]> = parquet::lines(&b.body).collect();
            let mut body = Vec::new();
            for (i, reason) in rejected {
                let record = Record {
                    seq: 0,
                    arrival: b.oldest,
                    data: bytes::Bytes::copy_from_slice(lines.get(*i).copied().unwrap_or_default()),
                };
                body.extend_from_slice(&route::envelope(
                    &record,
                    "DataFormatConversion.InvalidSchema",
                    reason,
                ));
                body.push(b'\n');
            }
            let errors = Buffer {
                dest: Dest::Error(route::ErrorOutputType::FormatConversionFailed),
                body: Vec::new(),
                first: b.first,
                last: b.last,
                count: rejected.len() as u64,
                oldest: b.oldest,
                event_time: None,
                opened: b.opened,
                replay: None,
            };
            let key = self.object_key(&errors, tag);
            self.put(&key, body).await?;
            self.metrics.rows.fetch_add(errors.count, Ordering::Relaxed);
        }
        Ok(())
    }

    /// A Delta data buffer's records as Arrow batches of the table's schema (see
    /// [`delta::DeltaOutput::schema`]); records that do not fit go to the error prefix.
    async fn decode_rows(
        &self,
        out: &mut delta::DeltaOutput,
        root: &str,
        b: &Buffer,
        tag: Option<&str>,
    ) -> Result<Vec<arrow::record_batch::RecordBatch>> {
        let encoder = self
            .parquet
            .as_ref()
            .ok_or_else(|| Error::internal("a Delta sink without its decoder"))?;
        let declared = encoder
            .lock()
            .map_err(|_| Error::internal("parquet encoder poisoned"))?
            .schema()
            .cloned();
        let schema = out.schema(root, declared.as_ref(), &b.body).await?;
        let decoded = encoder
            .lock()
            .map_err(|_| Error::internal("parquet encoder poisoned"))?
            .decode(&schema, &b.body)
            .map_err(|e| e.context(format!("sink `{}`", self.name)))?;
        self.warn_left_out(&decoded.new_left_out);
        self.write_rejected(b, &decoded.rejected, tag).await?;
        Ok(decoded.batches)
    }

    /// After a restart: whether the range of a Delta flush the stopped process recorded is in
    /// its table. A recorded commit is applied again (the log's transaction makes that commit
    /// at most once); a range recorded without one was not committed and is rebuilt.
    async fn recover_commit(&self, entry: &Entry, flush: &DeltaFlush) -> Result<bool> {
        let mut transient;
        let mut guard;
        let out: &mut delta::DeltaOutput = match &self.delta {
            Some(d) => {
                guard = d.lock().await;
                &mut guard
            }
            // The sink writes another format now: the recorded commit is finished all the same.
            None => {
                transient = delta::DeltaOutput::new(
                    self.keys.pipeline(),
                    &self.name,
                    self.handle.clone(),
                    &DeltaFormat::default(),
                    false,
                );
                &mut transient
            }
        };
        match &flush.intent {
            Some(intent) => {
                let applied = out.apply(&flush.root, intent, false).await?;
                if applied.committed {
                    tracing::info!(sink = %self.name, table = %intent.table, txn = intent.txn.version, "committed a flush a stopped process prepared but did not commit");
                } else {
                    tracing::info!(sink = %self.name, table = %intent.table, txn = intent.txn.version, "skipping records a stopped process already committed (the table's log has the flush's transaction)");
                }
                self.count_commit(&applied);
                Ok(true)
            }
            None => Ok(out
                .committed(&flush.root)
                .await?
                .is_some_and(|v| v >= i64::try_from(entry.last).unwrap_or(i64::MAX))),
        }
    }

    fn count_commit(&self, applied: &delta::Applied) {
        self.metrics.rows.fetch_add(applied.rows, Ordering::Relaxed);
        self.metrics
            .bytes
            .fetch_add(applied.bytes, Ordering::Relaxed);
        self.metrics
            .extra
            .fetch_add(applied.files, Ordering::Relaxed);
    }

    fn compression(&self) -> TextCompression {
        match &self.spec.format {
            Format::Jsonl(j) => j.compression,
            _ => TextCompression::None,
        }
    }

    /// Saves the record of objects in flight, writes the objects, then acknowledges.
    async fn publish(
        &self,
        state: &mut State,
        fresh: Vec<Buffer>,
        rebuilt: Vec<Buffer>,
    ) -> Result<()> {
        // Without replay, sequence numbers restart with the process: the run id keeps names
        // unique.
        let tag = (state.replay == Replay::None).then_some(self.run_id.as_str());
        let mut objects = Vec::new();
        for b in fresh {
            let key = self.object_key(&b, tag);
            if state.replay == Replay::SameSequence {
                state.in_flight.push(Entry {
                    key: key.clone(),
                    partition: partition_id(&b.dest),
                    first: b.first,
                    last: b.last,
                    count: b.count,
                    delta: self.delta_flush(&b.dest),
                });
            }
            objects.push((key, b));
        }
        for b in rebuilt {
            let Some(entry) = &b.replay else { continue };
            // The key the spec gives this range now: the recorded one, unless the spec changed
            // (say, a prefix whose names the store refused was fixed). The object was never
            // written, so it may land under the new key.
            let key = if b.count == 0 {
                entry.key.clone()
            } else {
                self.object_key(&b, tag)
            };
            if key != entry.key {
                tracing::info!(sink = %self.name, old = %entry.key, new = %key, "the prefix changed since a stopped process recorded this object; writing it under the new key");
                if let Some(e) = state.in_flight.iter_mut().find(|e| e.key == entry.key) {
                    e.key = key.clone();
                    e.delta = self.delta_flush(&b.dest);
                }
            }
            objects.push((key, b));
        }
        if objects.is_empty() {
            return self.acknowledge(state).await;
        }
        if let Some(store) = &state.pending {
            store.save(&state.record()).await?;
        }
        // Delta commits prepared (data files written, nothing committed yet): the table root,
        // the commit, and whether its records were never flushed before.
        let mut commits = Vec::new();
        for (key, mut b) in objects {
            state.held = state.held.saturating_sub(b.body.len() as u64);
            if let (Some(out), Dest::Data { .. }) = (&self.delta, &b.dest) {
                let root = self.keys.table_root(&b.dest);
                let (first, last) = b
                    .replay
                    .as_ref()
                    .map_or((b.first, b.last), |e| (e.first, e.last));
                let mut out = out.lock().await;
                let version = out
                    .version(&root, last, state.replay == Replay::SameSequence)
                    .await?;
                let batches = self.decode_rows(&mut out, &root, &b, tag).await?;
                let intent = out.prepare(&root, &batches, version).await?;
                let partition = partition_id(&b.dest);
                if let Some(e) = state
                    .in_flight
                    .iter_mut()
                    .find(|e| e.partition == partition && e.first == first && e.last == last)
                {
                    e.delta = Some(DeltaFlush {
                        root: root.clone(),
                        app_id: intent.txn.app_id.clone(),
                        intent: Some(intent.clone()),
                    });
                }
                commits.push((root, intent, b.replay.is_none()));
                continue;
            }
            if self.delta.is_some() && b.count == 0 && b.replay.is_some() {
                // A recorded Delta flush none of whose records came back: nothing to commit.
                continue;
            }
            let Some((body, rows)) = self.encode(&mut b, tag).await? else {
                continue;
            };
            self.put(&key, body).await?;
            self.metrics.rows.fetch_add(rows, Ordering::Relaxed);
        }
        if let Some(out) = &self.delta
            && !commits.is_empty()
        {
            // The commits are recorded before any is applied: after a crash they are applied
            // again (at most once each) instead of rebuilt.
            if let Some(store) = &state.pending {
                store.save(&state.record()).await?;
            }
            // A table's transaction version only grows: its commits go in range order.
            commits.sort_by_key(|(_, intent, _)| intent.txn.version);
            let mut out = out.lock().await;
            for (root, intent, fresh) in &commits {
                let applied = out.apply(root, intent, *fresh).await?;
                self.count_commit(&applied);
            }
            // Every recorded commit is in its table's log now, whose transaction alone says
            // so after a restart: the record need not carry the commits any longer (the next
            // save drops them, keeping the record small while acknowledgements wait).
            for entry in &mut state.in_flight {
                if let Some(flush) = &mut entry.delta {
                    flush.intent = None;
                }
            }
        }
        if let Some(published) = &self.published {
            published.notify_one();
        }
        self.acknowledge(state).await
    }

    /// Writes one object (atomically: readers see all of it or nothing).
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<()> {
        let bytes = body.len() as u64;
        let path = object_store::path::Path::parse(key)
            .unwrap_or_else(|_| object_store::path::Path::from(key));
        self.handle
            .store
            .put(&path, PutPayload::from(body))
            .await
            .map_err(|e| {
                Error::external(
                    format!(
                        "sink `{}`: cannot write {key} in {}",
                        self.name, self.handle.display
                    ),
                    e,
                )
            })?;
        tracing::debug!(sink = %self.name, %key, bytes, "published");
        self.metrics.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.metrics.extra.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Acknowledges every batch whose records are all published: those up to the first record
    /// still waiting in a buffer.
    async fn acknowledge(&self, state: &mut State) -> Result<()> {
        let waiting = state
            .buffers
            .values()
            .chain(state.rebuilding.iter())
            .map(|b| b.replay.as_ref().map_or(b.first, |e| e.first))
            .min();
        let through = match waiting {
            Some(first) => first.saturating_sub(1),
            None => state.highest,
        };
        let mut releasable = Vec::new();
        while state.acks.front().is_some_and(|(last, _)| *last <= through) {
            if let Some(entry) = state.acks.pop_front() {
                releasable.push(entry);
            }
        }
        let Some((acked, _)) = releasable.last().map(|(l, _)| (*l, ())) else {
            return Ok(());
        };
        let cumulative = releasable.last().is_some_and(|(_, a)| a.cumulative());
        if cumulative {
            if let Some((_, ack)) = releasable.pop() {
                ack.ack().await?;
            }
        } else {
            for (_, ack) in releasable {
                ack.ack().await?;
            }
        }
        state.acked = state.acked.max(acked);
        let before = state.in_flight.len();
        state.in_flight.retain(|e| e.last > acked);
        state.published.retain(|e| e.last > acked);
        if state.in_flight.len() != before
            && let Some(store) = &state.pending
        {
            store.save(&state.record()).await?;
        }
        Ok(())
    }
}

impl FirehoseStep {
    /// What the pending record holds of a flush into a Delta table before its files exist.
    fn delta_flush(&self, dest: &Dest) -> Option<DeltaFlush> {
        self.delta.as_ref()?;
        let Dest::Data { .. } = dest else {
            return None;
        };
        let root = self.keys.table_root(dest);
        let app_id = pipectl_delta::Txn::new(self.keys.pipeline(), &self.name, &root, 0).app_id;
        Some(DeltaFlush {
            root,
            app_id,
            intent: None,
        })
    }
}

impl State {
    /// The record of objects in flight as it stands.
    fn record(&self) -> Pending {
        Pending {
            acked: self.acked,
            entries: self.in_flight.clone(),
        }
    }
}

fn append(buffer: &mut Buffer, record: &Record, line: &[u8]) {
    // One record is one line: a record's own line ending is not doubled.
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    buffer.body.extend_from_slice(line);
    buffer.body.push(b'\n');
    buffer.count += 1;
    buffer.last = record.seq;
    if record.arrival < buffer.oldest {
        buffer.oldest = record.arrival;
    }
}

/// The Parquet settings records of a Delta sink are decoded with (its files are written by the
/// Delta writer).
fn delta_parquet_format(d: &DeltaFormat) -> ParquetFormat {
    ParquetFormat {
        compression: d.compression,
        row_group_rows: 122_880,
    }
}

/// A stable name of a buffer's destination, saved in the pending record.
fn partition_id(dest: &Dest) -> String {
    match dest {
        Dest::Data { keys, bucket } => {
            let mut s = String::from("data");
            for k in keys {
                s.push('\u{1f}');
                s.push_str(k);
            }
            if let Some(b) = bucket {
                s.push('\u{1e}');
                s.push_str(b);
            }
            s
        }
        Dest::Error(t) => format!("error\u{1f}{}", t.as_str()),
    }
}

/// FNV-1a: a stable hash (unlike std's, which may change between releases).
fn hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
