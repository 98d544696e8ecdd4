//! The two-phase commit step every batch sink goes through (and the streaming firehose sink
//! can use): a sink's run hands back [`CommitIntent`]s without making anything visible; the
//! executor saves all of them in the run's manifest (state `Committing`) before applying any;
//! applying is idempotent, so a recovery after a crash simply applies the saved intents again;
//! a failed or cancelled run discards them.
//!
//! - Files: the intent is the rename of a staged file to its final key (and, for a full
//!   refresh, the objects it retires). A file already moved is skipped on a second apply.
//! - Compacted partitions of plain tables: the intent is a [`PartitionSwap`], the folder's
//!   new file set replacing its old one ([`super::swap`]); a swap already made is not redone.
//! - Delta tables: the intent is `pipectl_delta`'s [`pipectl_delta::CommitIntent`] (the data
//!   files or the staged merge input, the schema change, the `txn` action) with the connection
//!   and table root. Applying reads the table's log and commits only when the `txn` version is
//!   not there yet, so a table never gets the same run twice.

use std::collections::{BTreeMap, BTreeSet};

use ::object_store::ObjectStoreExt;
use ::object_store::path::Path as StorePath;
use futures::StreamExt;
use pipectl_delta::{ApplyOutcome, DeltaTable};
use pipectl_state::{PartitionSwap, PublishEntry, RetiredObject};
use serde::{Deserialize, Serialize};

use super::StagedFile;
use super::delta;
use crate::connect::Connections;
use crate::error::{Error, Result};

/// What a sink's run prepared, made visible only by [`apply`].
#[derive(Debug, Clone)]
pub enum CommitIntent {
    /// A staged file, renamed to its final key.
    File(StagedFile),
    /// One commit to a Delta table.
    Delta(DeltaCommit),
}

/// One Delta table commit prepared by a run: saved in the run's manifest as JSON (the state
/// store keeps it opaque, so it needs no Delta types).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeltaCommit {
    /// The connection of the store holding the table.
    pub connection: String,
    /// The table root: a store path in that connection's store.
    pub root: String,
    /// The table as the pipeline names it (`schema.table`), for messages.
    pub table: String,
    /// What to commit.
    pub intent: pipectl_delta::CommitIntent,
}

impl DeltaCommit {
    /// The commit as the run manifest stores it.
    pub fn to_manifest(&self) -> Result<serde_json::Value> {
        serde_json::to_value(self).map_err(|e| {
            Error::internal(format!(
                "table {}: cannot save its commit intent: {e}",
                self.table
            ))
        })
    }

    /// A commit read back from a run manifest.
    pub fn from_manifest(value: &serde_json::Value) -> Result<Self> {
        Self::deserialize(value).map_err(|e| {
            Error::internal(format!(
                "a saved Delta commit intent cannot be read ({e}); was it written by another pipectl version?"
            ))
        })
    }

    async fn open(&self, connections: &Connections) -> Result<DeltaTable> {
        let handle = connections.object_store(&self.connection)?;
        let root =
            StorePath::parse(&self.root).unwrap_or_else(|_| StorePath::from(self.root.as_str()));
        DeltaTable::open(delta::location(&handle, root))
            .await
            .map_err(|e| delta::engine_error(&self.table, e))
    }

    /// Commits the intent unless the table's log already has its `txn` version.
    pub async fn apply(&self, connections: &Connections) -> Result<ApplyOutcome> {
        let mut table = self.open(connections).await?;
        let outcome = table
            .apply(&self.intent)
            .await
            .map_err(|e| delta::engine_error(&self.table, e))?;
        tracing::debug!(table = %self.table, ?outcome, "applied a Delta commit");
        Ok(outcome)
    }

    /// Deletes what the intent wrote (unless the log shows it was applied). Best effort.
    pub async fn discard(&self, connections: &Connections) {
        let result = match self.open(connections).await {
            Ok(mut table) => table
                .discard(&self.intent)
                .await
                .map_err(|e| delta::engine_error(&self.table, e)),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(table = %self.table, error = %e, "could not delete the files of a discarded Delta commit; `pipectl vacuum` removes them");
        }
    }
}

/// The intents of a run, split by kind, as the manifest saves them.
#[derive(Debug, Default)]
pub struct Manifest {
    /// Staged files and their final keys.
    pub publish: Vec<PublishEntry>,
    /// Objects a full refresh replaces.
    pub retire: Vec<RetiredObject>,
    /// Delta table commits.
    pub tables: Vec<DeltaCommit>,
}

impl Manifest {
    /// The manifest of `intents`. Lists what a full refresh of files retires now, before the
    /// manifest is saved, so a recovery deletes the same objects.
    pub async fn of(connections: &Connections, intents: Vec<CommitIntent>) -> Result<Manifest> {
        let mut files = Vec::new();
        let mut tables = Vec::new();
        for intent in intents {
            match intent {
                CommitIntent::File(f) => files.push(f),
                CommitIntent::Delta(d) => tables.push(d),
            }
        }
        Ok(Manifest {
            publish: files
                .iter()
                .map(|f| PublishEntry {
                    connection: f.connection.clone(),
                    staged: f.staged.to_string(),
                    final_key: f.final_path.to_string(),
                })
                .collect(),
            retire: retired_objects(connections, &files).await?,
            tables,
        })
    }

    /// The Delta commits as the run record stores them.
    pub fn tables_json(&self) -> Result<Vec<serde_json::Value>> {
        self.tables.iter().map(DeltaCommit::to_manifest).collect()
    }
}

/// Reads the Delta commits of a run record.
pub fn tables_of(record: &pipectl_state::RunRecord) -> Result<Vec<DeltaCommit>> {
    record
        .table_commits
        .iter()
        .map(DeltaCommit::from_manifest)
        .collect::<Result<_>>()
        .map_err(|e| e.context(format!("run {}", record.id)))
}

/// Applies a saved manifest: publishes the files, deletes what they replace, then commits each
/// Delta table, then swaps each compacted partition ([`super::swap`]). Every part can be
/// repeated, so a recovery calls this again after a crash.
pub async fn apply(
    connections: &Connections,
    publish_entries: &[PublishEntry],
    retire: &[RetiredObject],
    tables: &[DeltaCommit],
    swaps: &[PartitionSwap],
) -> Result<()> {
    publish(connections, publish_entries, retire).await?;
    for table in tables {
        table.apply(connections).await?;
    }
    for swap in swaps {
        super::swap::apply(connections, swap).await?;
    }
    Ok(())
}

/// Discards the Delta commits of a run that will not commit (best effort; staged files are
/// deleted with the run's staging folder).
pub async fn discard(connections: &Connections, tables: &[DeltaCommit]) {
    for table in tables {
        table.discard(connections).await;
    }
}
/// What a full refresh replaces: every object under a replaced table's key that this run does
/// not publish. Listed before the manifest is saved, so a recovery deletes the same objects.
async fn retired_objects(
    connections: &Connections,
    staged: &[StagedFile],
) -> Result<Vec<RetiredObject>> {
    let mut prefixes: BTreeMap<(&str, &StorePath), BTreeSet<&StorePath>> = BTreeMap::new();
    for file in staged {
        if let Some(prefix) = &file.replaces {
            prefixes
                .entry((file.connection.as_str(), prefix))
                .or_default()
                .insert(&file.final_path);
        }
    }
    let mut retired = Vec::new();
    for ((connection, prefix), keep) in prefixes {
        let handle = connections.object_store(connection)?;
        let mut listing = handle.store.list(Some(prefix));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| {
                Error::external(
                    format!("cannot list {prefix} in {} to replace it", handle.display),
                    e,
                )
            })?;
            if !keep.contains(&meta.location) {
                retired.push(RetiredObject {
                    connection: connection.to_owned(),
                    key: meta.location.to_string(),
                });
            }
        }
    }
    Ok(retired)
}

/// Moves staged files to their final keys, then deletes what a full refresh replaces. A file
/// no longer staged but present at its final key was moved by an earlier attempt and is
/// skipped, and a replaced object already gone is fine, so publishing can be repeated.
pub(crate) async fn publish(
    connections: &Connections,
    entries: &[PublishEntry],
    retire: &[RetiredObject],
) -> Result<()> {
    for entry in entries {
        let handle = connections.object_store(&entry.connection)?;
        // Manifest keys are stored in their encoded form (`%60` for a backtick): parse, don't re-encode.
        let parse = |key: &str| StorePath::parse(key).unwrap_or_else(|_| StorePath::from(key));
        let from = parse(&entry.staged);
        let to = parse(&entry.final_key);
        match handle.store.rename(&from, &to).await {
            Ok(()) => {}
            Err(object_store::Error::NotFound { .. }) if handle.store.head(&to).await.is_ok() => {}
            Err(e) => {
                return Err(Error::external(
                    format!("cannot publish {to} in {}", handle.display),
                    e,
                ));
            }
        }
    }
    for object in retire {
        let handle = connections.object_store(&object.connection)?;
        let path =
            StorePath::parse(&object.key).unwrap_or_else(|_| StorePath::from(object.key.as_str()));
        match handle.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                return Err(Error::external(
                    format!("cannot delete the replaced {path} in {}", handle.display),
                    e,
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use pipectl_delta::{SchemaPolicy, Txn, WriteMode, WriteOptions};
    use pipectl_state::{RunRecord, RunStatus, SledStore, StateStore};

    use super::*;

    const SPEC: &str = r#"version: 1
name: p
connections:
  lake: { url: "file://lake" }
sources:
  gen: { type: generator, template: "{}", count: 1 }
sinks:
  out:
    type: object_store
    inputs: [gen]
    connection: lake
    key: "t/{table}/"
    format: { type: delta }
"#;

    fn batch(ids: &[i64]) -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)])),
            vec![Arc::new(Int64Array::from(ids.to_vec()))],
        )
        .unwrap()
    }

    /// A run killed after saving its manifest and before applying it (or after applying but
    /// before committing the run) is finished by `recover`, which applies the saved intent once
    /// however often it runs; a discarded intent deletes its files.
    #[tokio::test]
    async fn recover_applies_a_saved_delta_intent_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let spec = pipectl_spec::load_str("p.yaml", SPEC).unwrap();
        let connections = Connections::resolve(&spec.pipeline, dir.path(), |_| None).unwrap();
        let handle = connections.object_store("lake").unwrap();
        let root = handle.path("t/events");
        let table = DeltaTable::open(delta::location(&handle, root.clone()))
            .await
            .unwrap();
        let prepare = |version: i64, ids: Vec<i64>| {
            let table = table.clone();
            async move {
                let mut writer = table.writer(WriteOptions {
                    mode: WriteMode::Append,
                    partition_by: Vec::new(),
                    schema: SchemaPolicy::Evolve,
                    target_file_size: None,
                    txn: Txn::new("p", "out", "t/events", version),
                });
                writer.write(&batch(&ids)).await.unwrap();
                writer.finish().await.unwrap()
            }
        };
        let commit = DeltaCommit {
            connection: "lake".into(),
            root: root.to_string(),
            table: "main.events".into(),
            intent: prepare(1, vec![1, 2, 3]).await,
        };

        let state = SledStore::temporary().unwrap();
        let mut run = RunRecord::new("r1", "p", "h", chrono::Utc::now(), "manual");
        state.begin_run(&run).unwrap();
        run.status = RunStatus::Committing;
        run.table_commits = vec![commit.to_manifest().unwrap()];
        state.save_run(&run).unwrap();

        // Applied once already (killed before the run was committed), then recovered twice.
        commit.apply(&connections).await.unwrap();
        let recovered = crate::executor::recover(&state, &spec, &connections)
            .await
            .unwrap();
        assert_eq!(recovered.len(), 1);
        assert_eq!(recovered[0].status, RunStatus::Succeeded);
        crate::executor::recover(&state, &spec, &connections)
            .await
            .unwrap();
        let mut read = DeltaTable::open(delta::location(&handle, root.clone()))
            .await
            .unwrap();
        assert_eq!(read.version(), Some(0), "one commit");
        assert_eq!(read.txn_version("p/out/t/events").await.unwrap(), Some(1));
        assert!(matches!(
            commit.apply(&connections).await.unwrap(),
            ApplyOutcome::AlreadyApplied { txn_version: 1 }
        ));

        // A second run's intent, discarded: its data file is gone and nothing is committed.
        let discarded = DeltaCommit {
            intent: prepare(2, vec![4]).await,
            ..commit.clone()
        };
        let pipectl_delta::IntentAction::Write(write) = &discarded.intent.action else {
            panic!("a write intent");
        };
        let file = dir.path().join("lake/t/events").join(&write.adds[0].path);
        assert!(file.exists());
        discarded.discard(&connections).await;
        assert!(!file.exists());
        read.refresh().await.unwrap();
        assert_eq!(read.version(), Some(0));
    }
}
