//! The write loop of Delta sinks: one table writer (append, overwrite) or merge writer per
//! table root; at the end of each table its commit intent, applied later by the executor.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::record_batch::RecordBatch;
use futures::future::BoxFuture;
use pipectl_delta::{
    Compression, DeltaTable, IntentAction, MergeOptions, MergeWriter, TableWriter, Txn,
    WriteOptions,
};
use pipectl_spec::types::{ParquetCompression, WriteMode};
use tokio::sync::mpsc;

use super::{Settings, engine_error, location};
use crate::connect::StoreHandle;
use crate::context::StepContext;
use crate::error::{Error, Result};
use crate::sink::{CommitIntent, DeltaCommit, Sink, render_key, staging_prefix, writer};
use crate::table::{Message, TableId};

/// The write loop of an `object_store` sink with `format: delta`.
pub(super) struct DeltaSink {
    pub(super) name: String,
    pub(super) settings: Settings,
}

/// The writer of one table's data in this run.
enum Writer {
    Table(TableWriter),
    Merge(MergeWriter),
}

struct OpenTable {
    writer: Writer,
    /// The table root, a store path.
    root: String,
    rows: u64,
}

impl Sink for DeltaSink {
    fn run(
        self: Box<Self>,
        ctx: StepContext,
        input: mpsc::Receiver<Message>,
    ) -> BoxFuture<'static, Result<Vec<CommitIntent>>> {
        Box::pin(async move {
            let handle = ctx
                .run
                .connections
                .object_store(&self.settings.connection)?;
            let mut run = Run {
                sink: &self,
                ctx: &ctx,
                handle: &handle,
                open: BTreeMap::new(),
                roots: BTreeMap::new(),
                done: Vec::new(),
            };
            match run.receive(input).await {
                Ok(()) => Ok(run.done.into_iter().map(CommitIntent::Delta).collect()),
                Err(e) => {
                    run.abort().await;
                    Err(e)
                }
            }
        })
    }
}

/// One run of the sink: the open tables and the intents of the finished ones.
struct Run<'a> {
    sink: &'a DeltaSink,
    ctx: &'a StepContext,
    handle: &'a StoreHandle,
    open: BTreeMap<Arc<TableId>, OpenTable>,
    /// Table roots written in this run, and the table each holds.
    roots: BTreeMap<String, Arc<TableId>>,
    done: Vec<DeltaCommit>,
}

impl Run<'_> {
    async fn receive(&mut self, mut input: mpsc::Receiver<Message>) -> Result<()> {
        let cancel = self.ctx.run.cancel.clone();
        loop {
            let message = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(Error::cancelled()),
                m = input.recv() => m,
            };
            match message {
                None => break,
                Some(Message::Batch(table, batch)) => self.write(&table, &batch).await?,
                Some(Message::EndOfTable(table)) => {
                    if !self.open.contains_key(&table) {
                        // A table without rows: a full refresh still empties it.
                        self.start(&table, None).await?;
                    }
                    self.finish(&table).await?;
                }
            }
        }
        let tables: Vec<Arc<TableId>> = self.open.keys().cloned().collect();
        for table in tables {
            self.finish(&table).await?;
        }
        Ok(())
    }

    async fn write(&mut self, table: &Arc<TableId>, batch: &RecordBatch) -> Result<()> {
        if !self.open.contains_key(table) {
            self.start(table, Some(batch)).await?;
        }
        let open = self
            .open
            .get_mut(table)
            .ok_or_else(|| Error::internal("open table vanished"))?;
        let written = match &mut open.writer {
            Writer::Table(w) => w.write(batch).await,
            Writer::Merge(w) => w.write(batch).await,
        };
        written.map_err(|e| engine_error(&table.to_string(), e))?;
        open.rows += batch.num_rows() as u64;
        self.ctx
            .metrics
            .rows
            .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Opens the table of `table`'s root and a writer for it, with this run's `txn`. The
    /// table's `first` batch picks the data files' column encodings, as for Parquet files.
    async fn start(&mut self, table: &Arc<TableId>, first: Option<&RecordBatch>) -> Result<()> {
        let settings = &self.sink.settings;
        let run = &self.ctx.run;
        let date = run.started_at.format("%Y-%m-%d").to_string();
        let key = render_key(&settings.key, &run.pipeline, table, &run.run_id, &date);
        let key = key.trim_end_matches('/').to_owned();
        let root = self.handle.path(&key);
        if let Some(other) = self.roots.get(root.as_ref()) {
            return Err(Error::user(format!(
                "tables {other} and {table} both go to the Delta table root `{key}`; put `{{table}}` (and `{{schema}}` if needed) in the sink's key so each table has its own root"
            )));
        }
        self.roots.insert(root.to_string(), table.clone());
        let name = table.to_string();
        let delta = DeltaTable::open(location(self.handle, root.clone()))
            .await
            .map_err(|e| engine_error(&name, e))?;
        let txn = txn(&run.pipeline, &self.sink.name, &key, run, &delta)
            .await
            .map_err(|e| engine_error(&name, e))?;
        let writer = match settings.mode {
            WriteMode::Append | WriteMode::FullRefresh => {
                let mode = if settings.mode == WriteMode::FullRefresh {
                    pipectl_delta::WriteMode::Overwrite
                } else {
                    pipectl_delta::WriteMode::Append
                };
                let mut table_writer = delta.writer(WriteOptions {
                    mode,
                    partition_by: settings.partition_by.clone(),
                    schema: settings.schema,
                    target_file_size: settings.target_file_size,
                    txn,
                });
                if let Some(first) = first {
                    let properties = writer::parquet_properties(&settings.parquet, first)?;
                    table_writer = table_writer.with_properties(properties);
                }
                Writer::Table(table_writer)
            }
            WriteMode::Merge => {
                let spec = match (&settings.merge, first) {
                    (Some(spec), _) => spec.clone(),
                    // Change records of a CDC source say how they merge.
                    (None, Some(first)) => change_merge_spec(table, first)?.ok_or_else(|| {
                        Error::user(format!(
                            "sink `{}`: `mode: merge` needs `merge:` settings (only change records of a CDC source bring their own)",
                            self.sink.name
                        ))
                    })?,
                    // A CDC table without changes in this run: nothing to merge.
                    (None, None) => return Ok(()),
                };
                let staging = self.handle.path(&format!(
                    "{}/{}/{key}",
                    staging_prefix(&run.run_id),
                    self.sink.name
                ));
                Writer::Merge(delta.merge_writer(MergeOptions {
                    spec,
                    schema: settings.schema,
                    partition_by: settings.partition_by.clone(),
                    staging,
                    txn,
                    compression: match settings.parquet.compression {
                        ParquetCompression::None => Compression::None,
                        ParquetCompression::Snappy => Compression::Snappy,
                        ParquetCompression::Zstd => Compression::Zstd,
                        ParquetCompression::Gzip => Compression::Gzip,
                    },
                }))
            }
        };
        self.open.insert(
            table.clone(),
            OpenTable {
                writer,
                root: root.to_string(),
                rows: 0,
            },
        );
        Ok(())
    }

    /// Finishes `table`'s writer into an intent. An append or a merge without rows commits
    /// nothing; a full refresh without rows still replaces the table's rows with none.
    async fn finish(&mut self, table: &Arc<TableId>) -> Result<()> {
        let Some(open) = self.open.remove(table) else {
            return Ok(());
        };
        let name = table.to_string();
        let empty = open.rows == 0;
        let intent = match open.writer {
            Writer::Table(w) if empty && self.sink.settings.mode == WriteMode::Append => {
                return w.abort().await.map_err(|e| engine_error(&name, e));
            }
            Writer::Merge(w) if empty => {
                return w.abort().await.map_err(|e| engine_error(&name, e));
            }
            Writer::Table(w) => w.finish().await,
            Writer::Merge(w) => w.finish().await,
        }
        .map_err(|e| engine_error(&name, e))?;
        if let IntentAction::Write(write) = &intent.action {
            let bytes: i64 = write.adds.iter().map(|a| a.size).sum();
            self.ctx
                .metrics
                .bytes
                .fetch_add(bytes.max(0) as u64, Ordering::Relaxed);
            self.ctx
                .metrics
                .extra
                .fetch_add(write.adds.len() as u64, Ordering::Relaxed);
        }
        self.done.push(DeltaCommit {
            connection: self.sink.settings.connection.clone(),
            root: open.root,
            table: name,
            intent,
        });
        Ok(())
    }

    /// After a failure or a cancellation: deletes what the open writers wrote and the data
    /// files of the intents finished so far (best effort; nothing was committed).
    async fn abort(&mut self) {
        for (table, open) in std::mem::take(&mut self.open) {
            let aborted = match open.writer {
                Writer::Table(w) => w.abort().await,
                Writer::Merge(w) => w.abort().await,
            };
            if let Err(e) = aborted {
                tracing::warn!(%table, error = %e, "could not delete the data files of an aborted Delta write; `pipectl vacuum` removes them");
            }
        }
        let done = std::mem::take(&mut self.done);
        crate::sink::commit::discard(&self.ctx.run.connections, &done).await;
    }
}

/// The `txn` of this run's commit to the table at `key`: app id `<pipeline>/<sink>/<key>`,
/// version the run's start in microseconds since the epoch, or one more than the log's
/// version for the app id if that is higher (a clock set back), so the version only grows.
async fn txn(
    pipeline: &str,
    sink: &str,
    key: &str,
    run: &crate::context::RunContext,
    table: &DeltaTable,
) -> pipectl_delta::Result<Txn> {
    let mut txn = Txn::new(pipeline, sink, key, run.started_at.timestamp_micros());
    if let Some(last) = table.txn_version(&txn.app_id).await? {
        txn.version = txn.version.max(last + 1);
    }
    Ok(txn)
}

/// The merge settings a CDC source's change records carry in their schema metadata
/// ([`crate::source::postgres_cdc::MERGE_METADATA`]): the table's primary key, the (LSN,
/// position) order, the delete and truncate conditions and the columns an update can leave
/// unchanged. `None` for other data.
fn change_merge_spec(
    table: &TableId,
    batch: &RecordBatch,
) -> Result<Option<pipectl_delta::MergeSpec>> {
    let Some(text) = batch
        .schema()
        .metadata()
        .get(crate::source::postgres_cdc::MERGE_METADATA)
        .cloned()
    else {
        return Ok(None);
    };
    #[derive(serde::Deserialize)]
    struct Carried {
        keys: Vec<String>,
        sequence_by: Vec<String>,
        delete_when: String,
        #[serde(default)]
        truncate_when: Option<String>,
        #[serde(default)]
        unchanged_when: std::collections::BTreeMap<String, String>,
    }
    let carried: Carried = serde_json::from_str(&text).map_err(|e| {
        Error::internal(format!(
            "table {table}: change records' merge settings: {e}"
        ))
    })?;
    if carried.keys.is_empty() {
        return Err(Error::user(format!(
            "table {table} has no primary key, so its changes cannot be merged by key; add a primary key, or give the sink `merge: {{keys: [...]}}`"
        )));
    }
    Ok(Some(pipectl_delta::MergeSpec {
        keys: carried.keys,
        sequence_by: carried.sequence_by,
        delete_when: Some(carried.delete_when),
        truncate_when: carried.truncate_when,
        unchanged_when: carried.unchanged_when,
        ..pipectl_delta::MergeSpec::default()
    }))
}
