//! The write loop of file sinks: one file per table (rolled at `max_file_rows`), staged under
//! the run's staging prefix.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use object_store::path::Path;
use pipectl_spec::types::{ObjectStoreSink, WriteMode};
use tokio::sync::mpsc;

use crate::context::StepContext;
use crate::error::{Error, Result};
use crate::sink::writer::{self, FileWriter};
use crate::sink::{CommitIntent, Sink, StagedFile, render_key, staging_prefix};
use crate::table::{Message, TableId};

/// The write loop of an `object_store` sink with a file format.
pub(super) struct FilesSink {
    pub(super) name: String,
    pub(super) spec: ObjectStoreSink,
}

struct OpenFile {
    writer: Box<dyn FileWriter>,
    staged: Path,
    final_path: Path,
    replaces: Option<Path>,
    rows: u64,
}

impl Sink for FilesSink {
    fn run(
        self: Box<Self>,
        ctx: StepContext,
        mut input: mpsc::Receiver<Message>,
    ) -> BoxFuture<'static, Result<Vec<CommitIntent>>> {
        Box::pin(async move {
            let handle = ctx.run.connections.object_store(&self.spec.connection)?;
            let run = &ctx.run;
            let date = run.started_at.format("%Y-%m-%d").to_string();
            let extension = writer::extension(&self.spec.format);
            let mut open: BTreeMap<Arc<TableId>, OpenFile> = BTreeMap::new();
            let mut sequence: BTreeMap<Arc<TableId>, u32> = BTreeMap::new();
            let mut staged = Vec::new();
            loop {
                let message = tokio::select! {
                    biased;
                    _ = run.cancel.cancelled() => return Err(Error::cancelled()),
                    m = input.recv() => m,
                };
                let Some(message) = message else { break };
                match message {
                    Message::Batch(table, batch) => {
                        let mut rest = batch;
                        loop {
                            let full = open.get(&table).is_some_and(|f| {
                                self.spec.max_file_rows.is_some_and(|max| f.rows >= max)
                            });
                            if full && let Some(file) = open.remove(&table) {
                                staged
                                    .push(close(&self.spec.connection, &table, file, &ctx).await?);
                            }
                            if !open.contains_key(&table) {
                                let seq = sequence.entry(table.clone()).or_insert(0);
                                *seq += 1;
                                let key = render_key(
                                    &self.spec.key,
                                    &run.pipeline,
                                    &table,
                                    &run.run_id,
                                    &date,
                                );
                                let file_name =
                                    format!("part-{}-{:04}.{extension}", run.run_id, seq);
                                let final_path = handle.path(&format!("{key}{file_name}"));
                                let staged_path = handle.path(&format!(
                                    "{}/{}/{key}{file_name}",
                                    staging_prefix(&run.run_id),
                                    self.name
                                ));
                                let replaces = (self.spec.mode == WriteMode::FullRefresh)
                                    .then(|| handle.path(&key));
                                let writer = writer::open(
                                    handle.store.clone(),
                                    staged_path.clone(),
                                    &self.spec.format,
                                    &rest,
                                )?;
                                open.insert(
                                    table.clone(),
                                    OpenFile {
                                        writer,
                                        staged: staged_path,
                                        final_path,
                                        replaces,
                                        rows: 0,
                                    },
                                );
                            }
                            let Some(file) = open.get_mut(&table) else {
                                return Err(Error::internal("open file vanished"));
                            };
                            // Split the batch where a file reaches `max_file_rows`.
                            let room = self
                                .spec
                                .max_file_rows
                                .map_or(u64::MAX, |max| max.saturating_sub(file.rows));
                            let take = (rest.num_rows() as u64).min(room) as usize;
                            let part = rest.slice(0, take);
                            file.writer
                                .write(&part)
                                .await
                                .map_err(|e| e.context(format!("table {table}")))?;
                            file.rows += take as u64;
                            ctx.metrics
                                .rows
                                .fetch_add(take as u64, std::sync::atomic::Ordering::Relaxed);
                            if take == rest.num_rows() {
                                break;
                            }
                            rest = rest.slice(take, rest.num_rows() - take);
                        }
                    }
                    Message::EndOfTable(table) => {
                        if let Some(file) = open.remove(&table) {
                            staged.push(close(&self.spec.connection, &table, file, &ctx).await?);
                        }
                    }
                }
            }
            for (table, file) in std::mem::take(&mut open) {
                staged.push(close(&self.spec.connection, &table, file, &ctx).await?);
            }
            Ok(staged.into_iter().map(CommitIntent::File).collect())
        })
    }
}

async fn close(
    connection: &str,
    table: &TableId,
    file: OpenFile,
    ctx: &StepContext,
) -> Result<StagedFile> {
    let bytes = file
        .writer
        .finish()
        .await
        .map_err(|e| e.context(format!("table {table}")))?;
    ctx.metrics
        .bytes
        .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    ctx.metrics
        .extra
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(StagedFile {
        connection: connection.to_owned(),
        staged: file.staged,
        final_path: file.final_path,
        table: table.clone(),
        rows: file.rows,
        bytes,
        replaces: file.replaces,
    })
}
