//! A Delta table root: open (refusing roots that hold other files), phase 2 (`apply`),
//! discard, maintenance and reads.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{Schema, SchemaRef};
use chrono::{DateTime, Utc};
use datafusion::catalog::TableProvider;
use datafusion::execution::SendableRecordBatchStream;
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake_core::kernel::{Action, MetadataExt, Remove, StructType, Transaction};
use deltalake_core::logstore::LogStoreRef;
use deltalake_core::operations::optimize::OptimizeType;
use deltalake_core::operations::vacuum::VacuumMode;
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use deltalake_core::{DeltaTableError, Path};
use futures::{StreamExt, TryStreamExt};

use crate::error::{Context, Error, ErrorClass, Result};
use crate::intent::{
    ApplyOutcome, CommitIntent, IntentAction, MergeIntent, Txn, WriteIntent, WriteMode,
};
use crate::location::TableLocation;
use crate::merge::{self, MergeOptions, MergeWriter};
use crate::schema;
use crate::write::{self, TableWriter, WriteOptions};

/// A hidden object phase 1 writes into a root that has no log yet: files under such a root are
/// pipectl's own, not foreign ones.
pub(crate) const PENDING_MARKER: &str = "_pipectl_pending";

/// How often `apply` starts over after a concurrent commit (re-reading the log each time).
const COMMIT_ATTEMPTS: usize = 10;

/// Which version of a table to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AsOf {
    /// The newest version.
    #[default]
    Latest,
    /// A version number.
    Version(u64),
    /// The newest version committed at or before this time.
    Timestamp(DateTime<Utc>),
}

/// What the catalog shows of a table, read from its log.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// The table (`s3://bucket/lake/sales/orders`).
    pub location: String,
    /// The version read.
    pub version: u64,
    /// Columns and types (partition columns included).
    pub schema: SchemaRef,
    /// Partition columns, in folder order.
    pub partition_columns: Vec<String>,
    /// Data files of the version.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Files and bytes per partition, ordered by partition values (one entry with no values
    /// for an unpartitioned table).
    pub partitions: Vec<PartitionInfo>,
    /// The newest commits first.
    pub history: Vec<HistoryEntry>,
}

/// The data files of one partition of a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Values in partition-column order, as the log writes them (`None`: NULL).
    pub values: Vec<Option<String>>,
    /// Data files.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// When its newest file was written.
    pub last_modified: Option<DateTime<Utc>>,
}

/// One commit of a table's history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    /// The version the commit made.
    pub version: u64,
    /// When it was committed.
    pub timestamp: Option<DateTime<Utc>>,
    /// `WRITE`, `MERGE`, `OPTIMIZE`, `CREATE TABLE`, `VACUUM END`...
    pub operation: String,
    /// The operation's parameters (mode, predicate, ...), as the log has them.
    pub parameters: BTreeMap<String, String>,
}

/// How `compact` rewrites small files.
#[derive(Debug, Clone, Copy)]
pub struct CompactOptions {
    /// Files are bin-packed, per partition, into files of about this many bytes.
    pub target_file_size: u64,
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions {
            target_file_size: 128 * 1024 * 1024,
        }
    }
}

/// What `compact` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactReport {
    /// The version the compaction committed (`None`: nothing to compact).
    pub version: Option<u64>,
    /// Small files replaced.
    pub files_removed: u64,
    /// Files written instead.
    pub files_added: u64,
    /// Partitions that were rewritten.
    pub partitions: u64,
}

/// How `vacuum` deletes files no version within the retention needs.
#[derive(Debug, Clone, Copy)]
pub struct VacuumOptions {
    /// Files removed from the table longer ago than this are deleted (default 7 days):
    /// time travel to versions younger than this keeps working.
    pub retention: Duration,
    /// Only list what would be deleted.
    pub dry_run: bool,
    /// Also delete files under the root that no version references (left by a crashed
    /// writer) once they are older than the retention. Keep the retention longer than the
    /// longest run: a pending intent's files are unreferenced until it is applied.
    pub orphans: bool,
}

impl Default for VacuumOptions {
    fn default() -> Self {
        VacuumOptions {
            retention: Duration::from_secs(7 * 24 * 3600),
            dry_run: false,
            orphans: false,
        }
    }
}

/// What `vacuum` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VacuumReport {
    /// Files deleted (or, on a dry run, that would be), relative to the root.
    pub files: Vec<String>,
    /// Whether it was a dry run.
    pub dry_run: bool,
}

/// A Delta table root, with the version it was read at.
#[derive(Clone)]
pub struct DeltaTable {
    location: TableLocation,
    log_store: LogStoreRef,
    /// `None` while the root has no log yet.
    inner: Option<deltalake_core::DeltaTable>,
}

impl std::fmt::Debug for DeltaTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaTable")
            .field("location", &self.location.display())
            .field("version", &self.version())
            .finish()
    }
}

impl DeltaTable {
    /// Opens the table at `location` at its newest version. A root with no log is a table to
    /// be created, if it is empty (or holds only pipectl's pending files); one that holds other
    /// files is refused, naming the root and a file.
    pub async fn open(location: TableLocation) -> Result<Self> {
        Self::open_as_of(location, AsOf::Latest).await
    }

    /// Opens the table at `location` at version `as_of` (time travel). Only `AsOf::Latest`
    /// accepts a root without a log.
    pub async fn open_as_of(location: TableLocation, as_of: AsOf) -> Result<Self> {
        let log_store = location.log_store();
        let name = location.display();
        let exists = log_store
            .is_delta_table_location()
            .await
            .context(|| format!("table {name}: reading the Delta log"))?;
        if !exists {
            if as_of != AsOf::Latest {
                return Err(Error::user(format!(
                    "table {name} has no Delta log, so it has no version to read"
                )));
            }
            refuse_foreign_files(&location).await?;
            return Ok(DeltaTable {
                location,
                log_store,
                inner: None,
            });
        }
        let mut inner = deltalake_core::DeltaTable::new(log_store.clone());
        let loaded = match as_of {
            AsOf::Latest => inner.load().await,
            AsOf::Version(v) => inner.load_version(v).await,
            AsOf::Timestamp(t) => inner.load_with_datetime(t).await,
        };
        loaded.map_err(|e| match e {
            DeltaTableError::InvalidVersion(_) | DeltaTableError::InvalidDateTimeString { .. } => {
                Error::user(format!("table {name} has no version {as_of:?}: {e}"))
            }
            other => Error::external(format!("table {name}: reading the Delta log"), other),
        })?;
        Ok(DeltaTable {
            location,
            log_store,
            inner: Some(inner),
        })
    }

    /// Where the table is.
    pub fn location(&self) -> &TableLocation {
        &self.location
    }

    /// The version read (`None`: no table yet).
    pub fn version(&self) -> Option<u64> {
        self.inner.as_ref().and_then(|t| t.version())
    }

    /// Partition columns (`None`: no table yet).
    pub fn partition_columns(&self) -> Option<Vec<String>> {
        let table = self.inner.as_ref()?;
        table
            .snapshot()
            .ok()
            .map(|s| s.metadata().partition_columns().to_vec())
    }

    /// The table's Arrow schema (`None`: no table yet).
    pub fn arrow_schema(&self) -> Result<Option<SchemaRef>> {
        let Some(schema) = self.delta_schema()? else {
            return Ok(None);
        };
        Ok(Some(Arc::new(schema::to_arrow(
            &self.location.display(),
            &schema,
        )?)))
    }

    pub(crate) fn delta_schema(&self) -> Result<Option<StructType>> {
        let Some(table) = &self.inner else {
            return Ok(None);
        };
        let snapshot = table
            .snapshot()
            .context(|| format!("table {}: reading the schema", self.location.display()))?;
        Ok(Some(snapshot.schema().as_ref().clone()))
    }

    pub(crate) fn log_store(&self) -> &LogStoreRef {
        &self.log_store
    }

    pub(crate) fn inner(&self) -> Result<&deltalake_core::DeltaTable> {
        self.inner.as_ref().ok_or_else(|| {
            Error::user(format!(
                "table {} does not exist yet (no Delta log)",
                self.location.display()
            ))
        })
    }

    /// Re-reads the log up to its newest version.
    pub async fn refresh(&mut self) -> Result<()> {
        let fresh = Self::open(self.location.clone()).await?;
        *self = fresh;
        Ok(())
    }

    /// The highest `txn` version the log holds for `app_id` (`None`: none, or no table).
    pub async fn txn_version(&self, app_id: &str) -> Result<Option<i64>> {
        let Some(table) = &self.inner else {
            return Ok(None);
        };
        table
            .snapshot()
            .context(|| format!("table {}: reading the log", self.location.display()))?
            .transaction_version(self.log_store.as_ref(), app_id)
            .await
            .context(|| {
                format!(
                    "table {}: reading the transaction of {app_id}",
                    self.location.display()
                )
            })
    }

    /// Phase 1 of an append or an overwrite: a writer of data files for this table.
    pub fn writer(&self, options: WriteOptions) -> TableWriter {
        TableWriter::new(self.clone(), options)
    }

    /// Phase 1 of a merge: a writer that checks and stages its input.
    pub fn merge_writer(&self, options: MergeOptions) -> MergeWriter {
        MergeWriter::new(self.clone(), options)
    }

    /// Phase 2: commits `intent` unless the log already has its `txn` (then nothing happens).
    /// Idempotent: applying an intent again, after a crash or twice at once, commits it at
    /// most once. The table is re-read first and is at the newest version afterwards.
    pub async fn apply(&mut self, intent: &CommitIntent) -> Result<ApplyOutcome> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.refresh().await?;
            if let Some(done) = self.txn_version(&intent.txn.app_id).await?
                && done >= intent.txn.version
            {
                if let IntentAction::Merge(merge) = &intent.action {
                    // A crash between the merge's commit and this cleanup left them.
                    write::delete_all(&self.location, staged_paths(merge))
                        .await
                        .ok();
                }
                return Ok(ApplyOutcome::AlreadyApplied { txn_version: done });
            }
            let result = match &intent.action {
                IntentAction::Write(write) => {
                    self.commit_write(intent, write, Some(&intent.txn)).await
                }
                IntentAction::Merge(merge) => self.commit_merge(merge, &intent.txn).await,
            };
            match result {
                Err(e) if e.class == ErrorClass::Conflict && attempt < COMMIT_ATTEMPTS => {
                    tracing::debug!(table = %intent.table, "commit conflict, re-reading the log: {e}");
                }
                other => {
                    if matches!(other, Ok(ApplyOutcome::Committed { .. }))
                        && let IntentAction::Merge(merge) = &intent.action
                    {
                        // The staged input is not needed once merged.
                        write::delete_all(&self.location, staged_paths(merge))
                            .await
                            .ok();
                    }
                    return other;
                }
            }
        }
    }

    /// Commits the files of a write intent (with `txn`, or without for a merge's widening).
    async fn commit_write(
        &mut self,
        intent: &CommitIntent,
        write: &WriteIntent,
        txn: Option<&Txn>,
    ) -> Result<ApplyOutcome> {
        let name = self.location.display();
        let Some(schema) = &write.schema else {
            return Ok(ApplyOutcome::NothingToCommit);
        };
        let properties = commit_properties(txn);
        let adds = write.adds.iter().cloned().map(Action::Add);
        let Some(table) = &self.inner else {
            // The first commit creates the table with its files, in one version.
            let created = deltalake_core::DeltaTable::new(self.log_store.clone())
                .create()
                .with_save_mode(SaveMode::ErrorIfExists)
                .with_columns(schema.fields().cloned())
                .with_partition_columns(write.partition_by.clone())
                .with_actions(adds)
                .with_commit_properties(properties)
                .await
                .map_err(|e| classify(&name, "creating the table", e))?;
            self.inner = Some(created);
            // The root has a log now: the marker has done its work.
            write::delete_all(&self.location, vec![self.location.child(PENDING_MARKER)])
                .await
                .ok();
            return Ok(ApplyOutcome::Committed {
                version: self.version().unwrap_or_default(),
            });
        };
        let snapshot = table
            .snapshot()
            .context(|| format!("table {name}: reading the log"))?;
        let current = snapshot.schema().as_ref().clone();
        let mut actions = Vec::new();
        if &current != schema {
            if write.base_schema.as_ref() != Some(&current) {
                return Err(Error::conflict(format!(
                    "table {name}: its schema changed since this write was prepared; prepare it again"
                )));
            }
            let metadata = snapshot
                .metadata()
                .clone()
                .with_schema(schema)
                .context(|| format!("table {name}: changing the schema"))?;
            actions.push(Action::Metadata(metadata));
        }
        actions.extend(adds);
        match write.mode {
            WriteMode::Overwrite => actions.extend(
                self.current_removes()
                    .await?
                    .into_iter()
                    .map(Action::Remove),
            ),
            WriteMode::Append if !write.removes.is_empty() => {
                if self.version() != intent.read_version {
                    return Err(Error::conflict(format!(
                        "table {name}: the files a widening rewrote changed since it was prepared; prepare it again"
                    )));
                }
                actions.extend(write.removes.iter().cloned().map(Action::Remove));
            }
            WriteMode::Append => {}
        }
        let operation = DeltaOperation::Write {
            mode: match write.mode {
                WriteMode::Append => SaveMode::Append,
                WriteMode::Overwrite => SaveMode::Overwrite,
            },
            partition_by: (!write.partition_by.is_empty()).then(|| write.partition_by.clone()),
            predicate: None,
        };
        let committed = CommitBuilder::from(properties)
            .with_actions(actions)
            .build(Some(snapshot), self.log_store.clone(), operation)
            .await
            .map_err(|e| classify(&name, "committing", e))?;
        let version = committed.version();
        self.refresh().await?;
        Ok(ApplyOutcome::Committed { version })
    }

    /// Runs a merge intent: creates the table if needed, widens columns if the input needs
    /// it (a commit of its own: rows unchanged), then merges with `txn` in the commit.
    async fn commit_merge(&mut self, merge: &MergeIntent, txn: &Txn) -> Result<ApplyOutcome> {
        let name = self.location.display();
        if merge.staged.is_empty() {
            return Ok(ApplyOutcome::NothingToCommit);
        }
        let input = self.staged_schema(merge).await?;
        let target = merge::created_schema(&input, &merge.spec);
        if self.inner.is_none() {
            let schema = schema::to_delta(&name, &target)?;
            let created = deltalake_core::DeltaTable::new(self.log_store.clone())
                .create()
                .with_save_mode(SaveMode::ErrorIfExists)
                .with_columns(schema.fields().cloned())
                .with_partition_columns(merge.partition_by.clone())
                .await
                .map_err(|e| classify(&name, "creating the table", e))?;
            self.inner = Some(created);
        }
        let current = self.arrow_schema()?.expect("created above");
        let plan = schema::reconcile(&name, Some(&current), &target, merge.schema)?;
        if plan.widens() {
            let mut rewrite = TableWriter::for_rewrite(
                self.clone(),
                plan.target.clone(),
                merge.partition_by.clone(),
            );
            rewrite.rewrite_current().await?;
            let intent = rewrite.finish().await?;
            if let IntentAction::Write(write) = &intent.action {
                self.commit_write(&intent, write, None).await?;
            }
        }
        let merged = merge::run(self, merge, txn).await.map_err(|e| {
            match e
                .source
                .as_deref()
                .and_then(|s| s.downcast_ref::<DeltaTableError>())
            {
                Some(d) if is_conflict(d) => Error::conflict(e.message),
                _ => e,
            }
        })?;
        let version = merged.version().unwrap_or_default();
        self.inner = Some(merged);
        Ok(ApplyOutcome::Committed { version })
    }

    async fn staged_schema(&self, merge: &MergeIntent) -> Result<Schema> {
        let name = self.location.display();
        let ctx = self.location.session();
        let first = self
            .location
            .object_url(&Path::from(merge.staged[0].as_str()));
        let df = ctx
            .read_parquet(first, Default::default())
            .await
            .context(|| format!("table {name}: reading the staged merge input"))?;
        Ok(df.schema().as_arrow().clone())
    }

    /// Deletes what phase 1 of `intent` wrote, unless the log shows it was applied (then the
    /// files are the table's). Returns how many files were deleted.
    pub async fn discard(&mut self, intent: &CommitIntent) -> Result<u64> {
        self.refresh().await?;
        let applied = self
            .txn_version(&intent.txn.app_id)
            .await?
            .is_some_and(|v| v >= intent.txn.version);
        match &intent.action {
            IntentAction::Write(_) if applied => Ok(0),
            IntentAction::Write(write) => {
                let mut paths: Vec<Path> = write
                    .adds
                    .iter()
                    .map(|a| self.location.child(&a.path))
                    .collect();
                if self.inner.is_none() {
                    paths.push(self.location.child(PENDING_MARKER));
                }
                write::delete_all(&self.location, paths).await
            }
            IntentAction::Merge(merge) => {
                write::delete_all(&self.location, staged_paths(merge)).await
            }
        }
    }

    /// Remove actions for every file of the version read.
    pub(crate) async fn current_removes(&self) -> Result<Vec<Remove>> {
        let table = self.inner()?;
        let snapshot = table
            .snapshot()
            .context(|| format!("table {}: reading the log", self.location.display()))?;
        snapshot
            .snapshot()
            .file_views(self.log_store.as_ref(), None)
            .map_ok(|f| f.remove_action(true))
            .try_collect()
            .await
            .context(|| format!("table {}: listing its files", self.location.display()))
    }

    /// Every row of the version read.
    pub(crate) async fn scan_current(&self) -> Result<SendableRecordBatchStream> {
        let name = self.location.display();
        let ctx = self.location.session();
        ctx.register_table("current", self.table_provider().await?)
            .context(|| format!("table {name}: reading its rows"))?;
        ctx.table("current")
            .await
            .context(|| format!("table {name}: reading its rows"))?
            .execute_stream()
            .await
            .context(|| format!("table {name}: reading its rows"))
    }

    /// A DataFusion table of the version read (open with [`DeltaTable::open_as_of`] for time
    /// travel). A `WHERE` on partition columns skips the other partitions' files, and file
    /// statistics skip files whose values cannot match. Columns have the types of
    /// [`TableInfo::schema`] (strings as `Utf8`, not views).
    pub async fn table_provider(&self) -> Result<Arc<dyn TableProvider>> {
        let table = self.inner()?;
        table
            .table_provider()
            .with_session(Arc::new(self.location.session().state()))
            .await
            .context(|| {
                format!(
                    "table {}: building its DataFusion table",
                    self.location.display()
                )
            })
    }

    /// Schema, partitions, version, files, bytes and the newest `history_limit` commits.
    pub async fn info(&self, history_limit: usize) -> Result<TableInfo> {
        let name = self.location.display();
        let table = self.inner()?;
        let version = self.version().unwrap_or_default();
        let snapshot = table
            .snapshot()
            .context(|| format!("table {name}: reading the log"))?;
        let partition_columns = self.partition_columns().unwrap_or_default();
        let by_partition = snapshot
            .snapshot()
            .file_views(self.log_store.as_ref(), None)
            .try_fold(
                BTreeMap::<Vec<Option<String>>, PartitionInfo>::new(),
                |mut parts, f| {
                    let mut map = f.partition_values_map();
                    let values: Vec<Option<String>> = partition_columns
                        .iter()
                        .map(|c| map.remove(c).flatten())
                        .collect();
                    let modified = DateTime::from_timestamp_millis(f.modification_time());
                    let part = parts.entry(values.clone()).or_insert(PartitionInfo {
                        values,
                        files: 0,
                        bytes: 0,
                        last_modified: None,
                    });
                    part.files += 1;
                    part.bytes += f.size().max(0) as u64;
                    part.last_modified = part.last_modified.max(modified);
                    async move { Ok(parts) }
                },
            )
            .await
            .context(|| format!("table {name}: listing its files"))?;
        let partitions: Vec<PartitionInfo> = by_partition.into_values().collect();
        let files = partitions.iter().map(|p| p.files).sum();
        let bytes = partitions.iter().map(|p| p.bytes).sum();
        let infos: Vec<_> = table
            .history(Some(history_limit))
            .try_collect()
            .await
            .context(|| format!("table {name}: reading its history"))?;
        let history = infos
            .into_iter()
            .enumerate()
            .map(|(i, info)| HistoryEntry {
                version: version.saturating_sub(i as u64),
                timestamp: info.timestamp.and_then(DateTime::from_timestamp_millis),
                operation: info.operation.unwrap_or_default(),
                parameters: info
                    .operation_parameters
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| {
                        let v = match v {
                            serde_json::Value::String(s) => s,
                            other => other.to_string(),
                        };
                        (k, v)
                    })
                    .collect(),
            })
            .collect();
        Ok(TableInfo {
            location: name,
            version,
            schema: self.arrow_schema()?.expect("the table exists"),
            partition_columns,
            files,
            bytes,
            partitions,
            history,
        })
    }

    /// Bin-packs small files, per partition, into files of about the target size: one commit
    /// that removes them and adds the new ones (rows unchanged).
    pub async fn compact(&mut self, options: CompactOptions) -> Result<CompactReport> {
        let name = self.location.display();
        let before = self.version();
        let target = NonZeroU64::new(options.target_file_size.max(1)).expect("at least 1");
        let (table, metrics) = self
            .inner()?
            .clone()
            .optimize()
            .with_type(OptimizeType::Compact)
            .with_target_size(target)
            .await
            .map_err(|e| classify(&name, "compacting", e))?;
        self.inner = Some(table);
        let after = self.version();
        Ok(CompactReport {
            version: after.filter(|v| Some(*v) != before),
            files_removed: metrics.num_files_removed,
            files_added: metrics.num_files_added,
            partitions: metrics.partitions_optimized,
        })
    }

    /// Deletes files that left the table longer ago than the retention; files of the newest
    /// version are never deleted.
    pub async fn vacuum(&mut self, options: VacuumOptions) -> Result<VacuumReport> {
        let name = self.location.display();
        let retention = chrono::Duration::from_std(options.retention)
            .map_err(|_| Error::user(format!("table {name}: vacuum retention is too long")))?;
        let (table, metrics) = self
            .inner()?
            .clone()
            .vacuum()
            .with_retention_period(retention)
            .with_enforce_retention_duration(false)
            .with_dry_run(options.dry_run)
            .with_mode(if options.orphans {
                VacuumMode::Full
            } else {
                VacuumMode::Lite
            })
            .await
            .map_err(|e| classify(&name, "vacuuming", e))?;
        self.inner = Some(table);
        Ok(VacuumReport {
            files: metrics.files_deleted,
            dry_run: metrics.dry_run,
        })
    }
}

fn staged_paths(merge: &MergeIntent) -> Vec<Path> {
    merge
        .staged
        .iter()
        .map(|p| Path::from(p.as_str()))
        .collect()
}

/// Properties of every commit: with `txn`, and without delta-rs' own retries. Its retry of a
/// first commit (no read snapshot) moves it to the next version without checking what the
/// winner committed, which committed one intent twice; `apply` retries instead, re-reading
/// the log and the `txn` first.
pub(crate) fn commit_properties(txn: Option<&Txn>) -> CommitProperties {
    let properties = CommitProperties::default().with_max_retries(0);
    match txn {
        Some(txn) => {
            properties.with_application_transaction(Transaction::new(&txn.app_id, txn.version))
        }
        None => properties,
    }
}

fn is_conflict(e: &DeltaTableError) -> bool {
    matches!(
        e,
        DeltaTableError::VersionAlreadyExists(_)
            | DeltaTableError::Transaction {
                source: TransactionError::CommitConflict(_)
                    | TransactionError::MaxCommitAttempts(_)
                    | TransactionError::VersionAlreadyExists(_)
            }
    ) || matches!(
        e,
        // Two first commits at once: the loser finds the table created (delta-rs' private
        // CreateError::TableAlreadyExists, only visible as text).
        DeltaTableError::GenericError { source } if source.to_string().contains("already exists")
    )
}

/// A delta-rs error as a conflict (retry after re-reading the log) or an external failure.
fn classify(name: &str, what: &str, e: DeltaTableError) -> Error {
    if is_conflict(&e) {
        Error::conflict(format!(
            "table {name}: {what}: another writer committed first: {e}"
        ))
    } else {
        Error::external(format!("table {name}: {what}"), e)
    }
}

/// Fails when a root without a log holds files that are not pipectl's pending ones.
async fn refuse_foreign_files(location: &TableLocation) -> Result<()> {
    let name = location.display();
    let root = location.root();
    let mut listing = location.store().list(Some(root));
    let mut foreign = None;
    while let Some(object) = listing.next().await {
        let object = match object {
            Ok(o) => o,
            Err(object_store::Error::NotFound { .. }) => break,
            Err(e) => {
                return Err(Error::external(
                    format!("table {name}: listing the root"),
                    e,
                ));
            }
        };
        let relative: Vec<_> = object
            .location
            .prefix_match(root)
            .map(|parts| parts.map(|p| p.as_ref().to_owned()).collect())
            .unwrap_or_default();
        match relative.first().map(String::as_str) {
            Some(PENDING_MARKER) => return Ok(()),
            Some(first) if first.starts_with('_') || first.starts_with('.') => {}
            Some(_) if foreign.is_none() => foreign = Some(relative.join("/")),
            _ => {}
        }
    }
    match foreign {
        None => Ok(()),
        Some(file) => Err(Error::user(format!(
            "table root {name} holds files that are not a Delta table (for example `{file}`) and no _delta_log; write the Delta table to an empty prefix, or move those files away"
        ))),
    }
}
