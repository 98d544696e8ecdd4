//! Delta Lake output of a firehose sink (`format: delta`): each flush of a buffer is one commit
//! to the table its prefix names, made in two phases (see [`pipectl_delta`]).
//!
//! The commit carries the transaction `<pipeline>/<sink>/<table root>` at the end of the
//! buffer's sequence range. Ranges of one table only grow, so the log's transaction version
//! says which flushes are in the table: a commit prepared before a crash and applied again
//! afterwards is made at most once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use pipectl_delta::{
    ApplyOutcome, CommitIntent, DeltaTable, IntentAction, TableLocation, Txn, WriteMode,
    WriteOptions,
};
use pipectl_engine::connect::StoreHandle;
use pipectl_engine::{Error, Result};
use pipectl_spec::types::{DeltaFormat, SchemaPolicy};

/// What one applied commit added.
pub struct Applied {
    /// Rows committed (0 when the log already had the commit).
    pub rows: u64,
    /// Data files committed.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Whether this call made the commit (`false`: the log had it, or there was nothing).
    pub committed: bool,
}

impl Applied {
    const NOTHING: Applied = Applied {
        rows: 0,
        files: 0,
        bytes: 0,
        committed: false,
    };
}

/// The Delta tables of one firehose sink.
pub struct DeltaOutput {
    pipeline: String,
    sink: String,
    handle: StoreHandle,
    format: DeltaFormat,
    /// Whether the columns are declared (`columns`, `catalog_table`) rather than read from the
    /// table and the records.
    declared: bool,
    /// Tables opened so far, by root: this sink is their only writer for its app id, so each
    /// stays current between its commits.
    tables: HashMap<String, DeltaTable>,
    /// For sources whose sequence numbers restart with the process: each table's transaction
    /// version when this process first opened it, added to the sequence numbers so that
    /// versions keep growing across runs.
    bases: HashMap<String, i64>,
}

impl DeltaOutput {
    /// The output of sink `sink` of `pipeline` into tables of `handle`'s store.
    pub fn new(
        pipeline: &str,
        sink: &str,
        handle: StoreHandle,
        format: &DeltaFormat,
        declared: bool,
    ) -> Self {
        DeltaOutput {
            pipeline: pipeline.to_owned(),
            sink: sink.to_owned(),
            handle,
            format: format.clone(),
            declared,
            tables: HashMap::new(),
            bases: HashMap::new(),
        }
    }

    /// The transaction app id of the table at `root` (relative to the connection).
    fn app_id(&self, root: &str) -> String {
        Txn::new(&self.pipeline, &self.sink, root, 0).app_id
    }

    /// The table at `root`, opened once.
    async fn table(&mut self, root: &str) -> Result<&mut DeltaTable> {
        if !self.tables.contains_key(root) {
            let location = TableLocation::new(
                self.handle.store.clone(),
                self.handle.path(root),
                self.handle.display.clone(),
            );
            let table = DeltaTable::open(location)
                .await
                .map_err(|e| self.error(root, e))?;
            let base = table
                .txn_version(&self.app_id(root))
                .await
                .map_err(|e| self.error(root, e))?
                .unwrap_or(0);
            self.bases.insert(root.to_owned(), base);
            self.tables.insert(root.to_owned(), table);
        }
        self.tables
            .get_mut(root)
            .ok_or_else(|| Error::internal("a Delta table vanished"))
    }

    /// The transaction version of a flush ending at sequence number `last`: `last` itself for
    /// sources that replay with the same numbers; otherwise offset by the version the table
    /// had when this process first opened it.
    pub async fn version(&mut self, root: &str, last: u64, same_sequence: bool) -> Result<i64> {
        self.table(root).await?;
        let last = i64::try_from(last).unwrap_or(i64::MAX);
        if same_sequence {
            return Ok(last);
        }
        let base = self.bases.get(root).copied().unwrap_or(0);
        Ok(base.saturating_add(last))
    }

    /// The highest transaction version the table at `root` holds for this sink, read from
    /// the newest log.
    pub async fn committed(&mut self, root: &str) -> Result<Option<i64>> {
        let app_id = self.app_id(root);
        let sink = self.sink.clone();
        let table = self.table(root).await?;
        table
            .refresh()
            .await
            .map_err(|e| delta_error(&sink, root, e))?;
        table
            .txn_version(&app_id)
            .await
            .map_err(|e| delta_error(&sink, root, e))
    }

    /// The schema a buffer's records are decoded with: the declared one; otherwise the table's
    /// columns, and under `schema: evolve` the buffer's other fields as inferred from it
    /// (fields NULL in every record of the buffer wait for a buffer that has a value).
    pub async fn schema(
        &mut self,
        root: &str,
        declared: Option<&SchemaRef>,
        body: &[u8],
    ) -> Result<SchemaRef> {
        if self.declared
            && let Some(schema) = declared
        {
            return Ok(schema.clone());
        }
        let policy = self.format.schema.unwrap_or_default();
        let sink = self.sink.clone();
        let table = self.table(root).await?;
        let current = table
            .arrow_schema()
            .map_err(|e| delta_error(&sink, root, e))?;
        let mut fields: Vec<Arc<arrow::datatypes::Field>> = current
            .as_ref()
            .map(|s| s.fields().iter().cloned().collect())
            .unwrap_or_default();
        let known: HashSet<&str> = fields.iter().map(|f| f.name().as_str()).collect();
        // Inference reads every value: only a buffer with a field the table lacks needs it.
        if current.is_none() || (policy == SchemaPolicy::Evolve && has_new_fields(body, &known)) {
            let inferred = super::parquet::infer(body)?;
            for field in inferred.fields() {
                if field.data_type() != &DataType::Null
                    && !fields.iter().any(|f| f.name() == field.name())
                {
                    fields.push(field.clone());
                }
            }
        }
        Ok(Arc::new(Schema::new(fields)))
    }

    /// Phase 1: writes `batches` as data files under the table root and returns the commit
    /// that adds them, with transaction version `version`. Nothing is committed.
    pub async fn prepare(
        &mut self,
        root: &str,
        batches: &[RecordBatch],
        version: i64,
    ) -> Result<CommitIntent> {
        let options = WriteOptions {
            mode: WriteMode::Append,
            partition_by: self.format.partition_by.clone(),
            schema: match self.format.schema.unwrap_or_default() {
                SchemaPolicy::Evolve => pipectl_delta::SchemaPolicy::Evolve,
                SchemaPolicy::Strict => pipectl_delta::SchemaPolicy::Strict,
            },
            target_file_size: self.format.target_file_size,
            txn: Txn::new(&self.pipeline, &self.sink, root, version),
        };
        let sink = self.sink.clone();
        let table = self.table(root).await?;
        let mut writer = table.writer(options);
        for batch in batches {
            if let Err(e) = writer.write(batch).await {
                // The files written so far are not part of the table; delete them.
                let _ = writer.abort().await;
                return Err(delta_error(&sink, root, e));
            }
        }
        writer
            .finish()
            .await
            .map_err(|e| delta_error(&sink, root, e))
    }

    /// Phase 2: commits `intent` into the table at `root`, unless its log already has it.
    /// `fresh` says the intent was prepared by this process from records never flushed
    /// before: the log having it then means the source's sequence numbers went backwards,
    /// and committing nothing would lose the records, so that is an error.
    pub async fn apply(
        &mut self,
        root: &str,
        intent: &CommitIntent,
        fresh: bool,
    ) -> Result<Applied> {
        let sink = self.sink.clone();
        let table = self.table(root).await?;
        let outcome = table
            .apply(intent)
            .await
            .map_err(|e| delta_error(&sink, root, e))?;
        let (files, bytes) = match &intent.action {
            IntentAction::Write(w) => (
                w.adds.len() as u64,
                w.adds.iter().map(|a| a.size.max(0) as u64).sum(),
            ),
            IntentAction::Merge(_) => (0, 0),
        };
        let rows = match &intent.action {
            IntentAction::Write(w) => w.rows,
            IntentAction::Merge(m) => m.rows,
        };
        match outcome {
            ApplyOutcome::Committed { version } => {
                tracing::debug!(sink = %sink, table = %intent.table, version, txn = intent.txn.version, rows, "committed");
                Ok(Applied {
                    rows,
                    files,
                    bytes,
                    committed: true,
                })
            }
            ApplyOutcome::NothingToCommit => Ok(Applied::NOTHING),
            ApplyOutcome::AlreadyApplied { txn_version } if fresh => Err(Error::user(format!(
                "sink `{sink}`: table {}: its log already holds transaction {} at version {txn_version}, beyond the records just flushed (sequence up to {}); the source's sequence numbers went backwards (a JetStream stream deleted and recreated, or a Direct PUT write-ahead log deleted). Write to a new table root, or a new sink name, so these records are not lost",
                intent.table, intent.txn.app_id, intent.txn.version
            ))),
            ApplyOutcome::AlreadyApplied { .. } => Ok(Applied::NOTHING),
        }
    }

    fn error(&self, root: &str, e: pipectl_delta::Error) -> Error {
        delta_error(&self.sink, root, e)
    }
}

/// Whether a record of `body` has a top-level field not in `known`. Lines that are not JSON
/// objects do not count: decoding sends them to the error output.
fn has_new_fields(body: &[u8], known: &HashSet<&str>) -> bool {
    super::parquet::lines(body).any(|line| {
        serde_json::from_slice::<HashMap<String, serde::de::IgnoredAny>>(line)
            .is_ok_and(|fields| fields.keys().any(|k| !known.contains(k.as_str())))
    })
}

/// A Delta error of this sink, whose own message names the table and what to do.
fn delta_error(sink: &str, root: &str, e: pipectl_delta::Error) -> Error {
    match e.class {
        pipectl_delta::ErrorClass::User => Error::user(format!("sink `{sink}`: {e}")),
        pipectl_delta::ErrorClass::Internal => Error::internal(format!("sink `{sink}`: {e}")),
        _ => {
            let message = format!("sink `{sink}`: {}", e.message);
            let cause = e
                .source
                .unwrap_or_else(|| format!("Delta table `{root}`").into());
            Error::external(message, cause)
        }
    }
}
