//! The `object_store` sink with `format: {type: delta}`: each `{table}` key is a Delta table
//! root, and each run makes one commit per table (append, an overwrite for `full_refresh`, or a
//! merge), through the executor's two-phase commit step ([`crate::sink::commit`]).

mod write;

use std::sync::Arc;

use ::object_store::path::Path as StorePath;
use pipectl_delta::{DeleteMode, ErrorClass as DeltaClass, MergeSpec, SchemaPolicy, TableLocation};
use pipectl_spec::types::{self, DeltaFormat, ObjectStoreSink, ParquetFormat, WriteMode};

use crate::connect::StoreHandle;
use crate::crawl::Layout;
use crate::error::{Error, Result};
use crate::plan::{PlanWrite, connections_display};
use crate::sink::connector::{SinkConnector, SinkOutput, SinkPlan, SinkPlanInput};
use crate::sink::{Sink, render_key};

/// The descriptor of an `object_store` sink writing Delta tables.
pub(crate) struct Connector<'a> {
    pub(crate) sink: &'a ObjectStoreSink,
    pub(crate) format: &'a DeltaFormat,
}

/// Rows per row group of the data files: the `parquet` format's default.
const ROW_GROUP_ROWS: usize = 122_880;

/// A Delta sink's settings, with the ones that may be given on the sink or in the format
/// merged (validation checked that both agree) and defaults filled in.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) connection: String,
    pub(crate) key: String,
    pub(crate) mode: WriteMode,
    pub(crate) partition_by: Vec<String>,
    pub(crate) schema: SchemaPolicy,
    pub(crate) target_file_size: Option<u64>,
    /// Page compression and row groups of the data files.
    pub(crate) parquet: ParquetFormat,
    pub(crate) merge: Option<MergeSpec>,
}

impl Connector<'_> {
    fn settings(&self) -> Settings {
        let s = self.sink;
        let partition_by = if s.partition_by.is_empty() {
            self.format.partition_by.clone()
        } else {
            s.partition_by.clone()
        };
        let schema = match s.schema.or(self.format.schema).unwrap_or_default() {
            types::SchemaPolicy::Evolve => SchemaPolicy::Evolve,
            types::SchemaPolicy::Strict => SchemaPolicy::Strict,
        };
        let merge = s.merge.as_ref().map(|m| MergeSpec {
            keys: m.keys.clone(),
            sequence_by: m.sequence_by.clone(),
            delete_when: m.delete_when.clone(),
            deletes: match m.deletes {
                types::DeleteMode::Hard => DeleteMode::Hard,
                types::DeleteMode::Soft => DeleteMode::Soft,
            },
            ..MergeSpec::default()
        });
        Settings {
            connection: s.connection.clone(),
            key: s.key.clone(),
            mode: s.mode,
            partition_by,
            schema,
            target_file_size: Some(self.format.target_file_size.unwrap_or(128 * 1024 * 1024)),
            parquet: ParquetFormat {
                compression: self.format.compression,
                row_group_rows: ROW_GROUP_ROWS,
            },
            merge,
        }
    }
}

impl SinkConnector for Connector<'_> {
    fn batch(&self, name: &str) -> Result<Box<dyn Sink>> {
        Ok(Box::new(write::DeltaSink {
            name: name.to_owned(),
            settings: self.settings(),
        }))
    }

    fn plan(&self, input: &SinkPlanInput<'_>) -> SinkPlan {
        let s = self.sink;
        let settings = self.settings();
        let display = connections_display(input.pipeline, &s.connection);
        let writes = input
            .tables
            .iter()
            .map(|t| PlanWrite {
                table: t.to_string(),
                key: format!(
                    "{display}/{}",
                    render_key(&s.key, &input.pipeline.name, t, "{run_id}", input.today)
                ),
            })
            .collect();
        let mode = match settings.mode {
            WriteMode::Append => "append (one commit adding this run's files)",
            WriteMode::FullRefresh => {
                "full_refresh (one overwrite commit: readers see the old version or the new)"
            }
            WriteMode::Merge => "merge (one commit upserting by key)",
        };
        let mut notes = vec![
            format!("Delta table per key (table root); mode: {mode}"),
            match settings.partition_by.is_empty() {
                true => "partition_by: none".to_owned(),
                false => format!("partition_by: [{}]", settings.partition_by.join(", ")),
            },
            format!(
                "schema: {}",
                match settings.schema {
                    SchemaPolicy::Evolve => "evolve (new columns added, safe widenings applied)",
                    SchemaPolicy::Strict => "strict (any difference fails the run)",
                }
            ),
        ];
        match (settings.mode, &settings.merge) {
            (WriteMode::Merge, Some(merge)) => notes.extend(merge.describe()),
            (WriteMode::Merge, None) => notes.push(
                "merge settings from the CDC source's change records: each table's primary key, ordered by (_pipectl_commit_lsn, _pipectl_position), `\"Op\" = 'D'` deletes"
                    .to_owned(),
            ),
            _ => {}
        }
        notes.push(
            "data files are written under each table root and committed (with a txn per table and run) when the whole run succeeds"
                .to_owned(),
        );
        SinkPlan {
            writes,
            notes,
            tables: input.tables.to_vec(),
        }
    }

    fn output(&self) -> SinkOutput<'_> {
        SinkOutput {
            connection: &self.sink.connection,
            prefix: String::new(),
            layout: Layout::Template(self.sink.key.clone()),
            csv_null_value: String::new(),
            delta: true,
            stages: true,
        }
    }
}

/// The Delta table whose root is `root` in `handle`'s store. The store URL the table is known
/// by is the connection's URL without its prefix, since `root` already includes it.
pub(crate) fn location(handle: &StoreHandle, root: StorePath) -> TableLocation {
    let display = handle.display.trim_end_matches('/');
    let prefix = handle.prefix.as_ref();
    let base = match display.strip_suffix(prefix) {
        Some(base) if !prefix.is_empty() => base.trim_end_matches('/'),
        _ => display,
    };
    TableLocation::new(Arc::clone(&handle.store), root, base)
}

/// A Delta error as the engine's, prefixed with the pipeline's name of the table.
pub(crate) fn engine_error(table: &str, e: pipectl_delta::Error) -> Error {
    let context = format!("table {table}");
    let error = match e.class {
        DeltaClass::User => Error::user(e.message),
        DeltaClass::Internal => Error::internal(e.message),
        DeltaClass::Conflict | DeltaClass::External => {
            let message = e.message.clone();
            Error::external(message, e)
        }
    };
    error.context(context)
}
