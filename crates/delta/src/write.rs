//! Phase 1 of appends and overwrites: Arrow batches become Parquet data files under the table
//! root (Hive-style partition folders, column statistics in the Add actions), and a
//! [`CommitIntent`] lists them. Nothing is committed here.

use std::num::NonZeroU64;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use delta_kernel::table_properties::DataSkippingNumIndexedCols;
use deltalake_core::datafile::writer::{DeltaWriter, WriterConfig};
use deltalake_core::kernel::Remove;
use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::error::{Context, Error, Result};
use crate::intent::{CommitIntent, IntentAction, Txn, WriteIntent, WriteMode};
use crate::location::TableLocation;
use crate::schema::{self, Reconciled, SchemaPolicy};
use crate::table::{DeltaTable, PENDING_MARKER};

/// Columns with statistics (min, max, null count) in each Add action: Delta's default.
const STATS_COLUMNS: u64 = 32;

/// How an append or an overwrite writes.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Append or overwrite (`full_refresh`).
    pub mode: WriteMode,
    /// Partition columns of a new table; an existing table must have exactly these.
    pub partition_by: Vec<String>,
    /// What a schema difference does.
    pub schema: SchemaPolicy,
    /// Roll to a new data file past this many bytes (`None`: one file per partition).
    pub target_file_size: Option<u64>,
    /// The transaction the commit carries.
    pub txn: Txn,
}

/// Writes the data files of one append or overwrite; [`TableWriter::finish`] hands back the
/// intent that commits them.
pub struct TableWriter {
    table: DeltaTable,
    options: WriteOptions,
    /// Decided by the first batch: the table's schema after the commit.
    plan: Option<Reconciled>,
    writer: Option<DeltaWriter>,
    removes: Vec<Remove>,
    rows: u64,
    /// Parquet settings of the data files (`None`: Snappy, the defaults otherwise).
    properties: Option<WriterProperties>,
}

impl TableWriter {
    pub(crate) fn new(table: DeltaTable, options: WriteOptions) -> Self {
        TableWriter {
            table,
            options,
            plan: None,
            writer: None,
            removes: Vec::new(),
            rows: 0,
            properties: None,
        }
    }

    /// Writes the data files with `properties` (compression, per-column encodings) instead of
    /// the default (Snappy, as Delta writers do). Takes effect from the first batch on.
    pub fn with_properties(mut self, properties: WriterProperties) -> Self {
        self.properties = Some(properties);
        self
    }

    /// A writer that only rewrites the table's rows into files of the widened `target`
    /// schema (a merge's widening, committed before the merge).
    pub(crate) fn for_rewrite(
        table: DeltaTable,
        target: SchemaRef,
        partition_by: Vec<String>,
    ) -> Self {
        let writer = data_writer(&table, target.clone(), &partition_by, None, None);
        // Never committed with this txn: the rewrite commits without one (`commit_write`).
        let txn = Txn {
            app_id: String::new(),
            version: 0,
        };
        TableWriter {
            table,
            options: WriteOptions {
                mode: WriteMode::Append,
                partition_by,
                schema: SchemaPolicy::Evolve,
                target_file_size: None,
                txn,
            },
            plan: Some(Reconciled {
                target,
                changes: Vec::new(),
            }),
            writer: Some(writer),
            removes: Vec::new(),
            rows: 0,
            properties: None,
        }
    }

    /// Writes `batch` (any column order; narrower types are widened to the table's). The first
    /// batch decides the schema under the policy: a `strict` difference fails here, before
    /// any file is written.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let name = self.table.location().display();
        if self.plan.is_none() {
            self.start(batch).await?;
        }
        let plan = self.plan.as_ref().expect("started");
        let batch = schema::conform(&name, batch, &plan.target)?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.write_data(&batch, "writing a data file").await?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Writes `batch` (of the target schema) into the open data files; `doing` names what for,
    /// in an error.
    async fn write_data(&mut self, batch: &RecordBatch, doing: &str) -> Result<()> {
        let name = self.table.location().display();
        self.writer
            .as_mut()
            .expect("started")
            .write(batch)
            .await
            .context(|| format!("table {name}: {doing}"))
    }

    /// Reconciles the schemas, checks the partition columns, and opens the file writer. A
    /// widening of an existing table under `append` rewrites its current rows first.
    async fn start(&mut self, batch: &RecordBatch) -> Result<()> {
        let location = self.table.location().clone();
        let name = location.display();
        let data = schema::normalize(&name, &batch.schema())?;
        let current = self.table.arrow_schema()?;
        let plan = schema::reconcile(&name, current.as_deref(), &data, self.options.schema)?;
        check_partitions(&self.table, &name, &self.options.partition_by, &plan.target)?;
        if current.is_none() {
            mark_pending(&location).await?;
        }
        self.writer = Some(data_writer(
            &self.table,
            plan.target.clone(),
            &self.options.partition_by,
            self.options.target_file_size,
            self.properties.clone(),
        ));
        let rewrite = plan.widens() && self.options.mode == WriteMode::Append;
        self.plan = Some(plan);
        if rewrite {
            self.rewrite_current().await?;
        }
        Ok(())
    }

    /// Copies every current row into new files of the widened schema, and lists the files they
    /// replace, so the commit widens the table without Delta's `typeWidening` feature, which
    /// many readers (delta-rs among them) do not read.
    pub(crate) async fn rewrite_current(&mut self) -> Result<()> {
        let name = self.table.location().display();
        let target = self.plan.as_ref().expect("started").target.clone();
        self.removes = self.table.current_removes().await?;
        let mut batches = self.table.scan_current().await?;
        while let Some(batch) = batches.next().await {
            let batch = batch.context(|| format!("table {name}: reading rows to widen"))?;
            let batch = schema::conform(&name, &batch, &target)?;
            self.write_data(&batch, "rewriting a data file").await?;
        }
        Ok(())
    }

    /// Closes the last files and returns the intent that commits them.
    pub async fn finish(self) -> Result<CommitIntent> {
        let name = self.table.location().display();
        let adds = match self.writer {
            Some(writer) => writer
                .close()
                .await
                .context(|| format!("table {name}: finishing the data files"))?,
            None => Vec::new(),
        };
        let base_schema = self.table.delta_schema()?;
        let schema = match &self.plan {
            Some(plan) => Some(schema::to_delta(&name, &plan.target)?),
            None => base_schema.clone(),
        };
        Ok(CommitIntent {
            table: name,
            txn: self.options.txn,
            read_version: self.table.version(),
            action: IntentAction::Write(Box::new(WriteIntent {
                mode: self.options.mode,
                partition_by: self.options.partition_by,
                schema,
                base_schema,
                schema_changes: self.plan.map(|p| p.changes).unwrap_or_default(),
                adds,
                removes: self.removes,
                rows: self.rows,
            })),
        })
    }

    /// Stops writing and deletes the files written so far.
    pub async fn abort(self) -> Result<()> {
        let location = self.table.location().clone();
        let intent = self.finish().await?;
        if let IntentAction::Write(write) = &intent.action {
            let paths: Vec<_> = write.adds.iter().map(|a| location.child(&a.path)).collect();
            delete_all(&location, paths).await?;
        }
        Ok(())
    }
}

/// The Parquet writer of data files for `target` under the table root.
pub(crate) fn data_writer(
    table: &DeltaTable,
    target: SchemaRef,
    partition_by: &[String],
    target_file_size: Option<u64>,
    properties: Option<WriterProperties>,
) -> DeltaWriter {
    let properties = properties.unwrap_or_else(|| {
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build()
    });
    let config = WriterConfig::new(
        target,
        partition_by.to_vec(),
        Some(properties),
        target_file_size.and_then(NonZeroU64::new),
        None,
        DataSkippingNumIndexedCols::NumColumns(STATS_COLUMNS),
        None,
    );
    DeltaWriter::new(table.log_store().object_store(None), config)
}

/// Fails unless every partition column is in `target` and an existing table is partitioned
/// by exactly `partition_by`.
pub(crate) fn check_partitions(
    table: &DeltaTable,
    name: &str,
    partition_by: &[String],
    target: &SchemaRef,
) -> Result<()> {
    for column in partition_by {
        if target.field_with_name(column).is_err() {
            return Err(Error::user(format!(
                "table {name}: partition column `{column}` is not a column of the data"
            )));
        }
    }
    if let Some(existing) = table.partition_columns()
        && existing != partition_by
    {
        return Err(Error::user(format!(
            "table {name}: the table is partitioned by [{}] but the sink says partition_by [{}]; a Delta table keeps the partitioning it was created with",
            existing.join(", "),
            partition_by.join(", ")
        )));
    }
    Ok(())
}

/// Marks a root without a log as being filled by pipectl, so that opening it while an intent
/// is pending (or after a crash) does not take its data files for foreign ones.
pub(crate) async fn mark_pending(location: &TableLocation) -> Result<()> {
    location
        .store()
        .put(
            &location.child(PENDING_MARKER),
            PutPayload::from_static(b""),
        )
        .await
        .map(|_| ())
        .context(|| format!("table {}: marking the new table root", location.display()))
}

/// Deletes `paths`, ignoring ones already gone; returns how many existed.
pub(crate) async fn delete_all(
    location: &TableLocation,
    paths: Vec<object_store::path::Path>,
) -> Result<u64> {
    let store: Arc<dyn ObjectStore> = location.store().clone();
    let results: Vec<Result<bool>> = futures::stream::iter(paths)
        .map(|path| {
            let store = store.clone();
            let name = location.display();
            async move {
                match store.delete(&path).await {
                    Ok(()) => Ok(true),
                    Err(object_store::Error::NotFound { .. }) => Ok(false),
                    Err(e) => Err(Error::external(format!("table {name}: deleting {path}"), e)),
                }
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut deleted = 0;
    for r in results {
        if r? {
            deleted += 1;
        }
    }
    Ok(deleted)
}
