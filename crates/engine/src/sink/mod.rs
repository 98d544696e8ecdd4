//! Sinks: steps that write batches into the lake.
//!
//! Files are written under a staging prefix (`_pipectl/staging/<run id>/...`) that readers
//! ignore, and only moved to their final keys by the executor after every step succeeded
//! (see [`crate::executor`]). A failed or killed run leaves nothing where readers look.

pub mod csv;
pub mod writer;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use object_store::path::Path;
use pipectl_spec::types::{ObjectStoreSink, Sink as SinkSpec, WriteMode};
use tokio::sync::mpsc;

use crate::context::StepContext;
use crate::error::{Error, Result};
use crate::table::{Message, TableId};
use writer::FileWriter;

/// Top-level folder of pipectl's own objects in a lake; `_` makes readers and crawlers skip it.
pub const RESERVED_PREFIX: &str = "_pipectl";

/// A file a sink wrote to staging, to be published at the end of the run.
#[derive(Debug, Clone)]
pub struct StagedFile {
    /// Connection name of the store.
    pub connection: String,
    /// Where it was written.
    pub staged: Path,
    /// Where it will be published.
    pub final_path: Path,
    /// The table it holds.
    pub table: TableId,
    /// Rows in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// For a full refresh: the table's key prefix, whose other objects the publish deletes.
    pub replaces: Option<Path>,
}

/// A sink step.
pub trait Sink: Send {
    /// Writes everything that arrives on `input` to staging; returns the staged files.
    fn run(
        self: Box<Self>,
        ctx: StepContext,
        input: mpsc::Receiver<Message>,
    ) -> BoxFuture<'static, Result<Vec<StagedFile>>>;
}

/// Builds the sink for a spec entry. `firehose` sinks belong to streaming pipelines, which
/// [`crate::executor::prepare`] turns away before any step is built.
pub fn build(name: &str, spec: &SinkSpec) -> Result<Box<dyn Sink>> {
    match spec {
        SinkSpec::ObjectStore(s) => Ok(Box::new(ObjectStoreSinkStep {
            name: name.to_owned(),
            spec: s.clone(),
        })),
        SinkSpec::Firehose(_) => Err(Error::internal(format!(
            "sink `{name}`: a firehose sink reached the batch executor"
        ))),
    }
}

/// The staging prefix of one run.
pub fn staging_prefix(run_id: &str) -> String {
    format!("{RESERVED_PREFIX}/staging/{run_id}")
}

/// Fills a key template for one table. Values cannot add path levels: `/` in them becomes `_`.
pub fn render_key(
    template: &str,
    pipeline: &str,
    table: &TableId,
    run_id: &str,
    date: &str,
) -> String {
    let clean = |s: &str| s.replace('/', "_");
    template
        .replace("{pipeline}", &clean(pipeline))
        .replace("{source}", &clean(&table.source))
        .replace("{schema}", &clean(&table.schema))
        .replace("{table}", &clean(&table.name))
        .replace("{run_id}", &clean(run_id))
        .replace("{date}", date)
}

struct ObjectStoreSinkStep {
    name: String,
    spec: ObjectStoreSink,
}

struct OpenFile {
    writer: Box<dyn FileWriter>,
    staged: Path,
    final_path: Path,
    replaces: Option<Path>,
    rows: u64,
}

impl Sink for ObjectStoreSinkStep {
    fn run(
        self: Box<Self>,
        ctx: StepContext,
        mut input: mpsc::Receiver<Message>,
    ) -> BoxFuture<'static, Result<Vec<StagedFile>>> {
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
            Ok(staged)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_render_without_extra_levels() {
        let t = TableId {
            source: "db".into(),
            schema: "main".into(),
            name: "a/b".into(),
        };
        assert_eq!(
            render_key(
                "landing/{pipeline}/{schema}/{table}/{date}/",
                "p",
                &t,
                "r1",
                "2026-11-25"
            ),
            "landing/p/main/a_b/2026-11-25/"
        );
    }
}
