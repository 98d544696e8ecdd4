//! `pipectl compact` and `pipectl vacuum`: maintenance of the Delta tables under a pipeline's
//! `object_store` sinks.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, anyhow};
use clap::Args;
use pipectl_engine::connect::Connections;
use pipectl_engine::maintenance::{self, FoundTable, Selection};

use crate::render::{human_bytes, human_count};
use crate::{OutputFormat, UsageError, base_dir, env_lookup, load_or_report, print_out, runtime};

/// Default target size of compacted files: 128 MiB, delta-rs' and Spark's default.
const DEFAULT_TARGET_SIZE: u64 = 128 * 1024 * 1024;

/// Which tables (`pipectl compact`/`vacuum` arguments).
#[derive(Args)]
pub(crate) struct TableArgs {
    /// The pipeline file whose sinks' tables to maintain.
    file: PathBuf,
    /// Only this sink's tables.
    #[arg(long)]
    sink: Option<String>,
    /// Only this table (its `{table}` folder name).
    #[arg(long)]
    table: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,
}

/// `pipectl compact` arguments.
#[derive(Args)]
pub(crate) struct CompactArgs {
    #[command(flatten)]
    tables: TableArgs,
    /// Bin-pack small files, per partition, into files of about this many bytes.
    #[arg(long, default_value_t = DEFAULT_TARGET_SIZE)]
    target_size: u64,
}

/// `pipectl vacuum` arguments.
#[derive(Args)]
pub(crate) struct VacuumArgs {
    #[command(flatten)]
    tables: TableArgs,
    /// Files that left a table longer ago than this are deleted (`7d`, `12h`, `30m`, `0s`);
    /// time travel to versions younger than this keeps working. Files of the newest version
    /// are never deleted.
    #[arg(long, default_value = "7d", value_parser = pipectl_spec::duration::parse)]
    retention: std::time::Duration,
    /// Only list what would be deleted.
    #[arg(long)]
    dry_run: bool,
}

/// Loads the pipeline and finds the selected Delta tables; `None` when the file is invalid
/// (its errors are printed).
fn tables(args: &TableArgs) -> Result<Option<(Vec<FoundTable>, tokio::runtime::Runtime)>> {
    let Some(spec) = load_or_report(&args.file, false)? else {
        return Ok(None);
    };
    let file = args.file.display().to_string();
    let connections = Connections::resolve(&spec.pipeline, &base_dir(&args.file), env_lookup)
        .map_err(|e| anyhow!("{file}: {e}"))?;
    let selection = Selection {
        sink: args.sink.clone(),
        table: args.table.clone(),
    };
    let rt = runtime()?;
    let found = rt
        .block_on(maintenance::delta_tables(
            &spec.pipeline,
            &file,
            &connections,
            &selection,
        ))
        .map_err(|e| {
            let text = connections.redactor().redact(&e.to_string());
            if e.class == pipectl_engine::error::ErrorClass::User {
                anyhow::Error::new(UsageError(text))
            } else {
                anyhow!(text)
            }
        })?;
    Ok(Some((found, rt)))
}

fn none_found(args: &TableArgs) -> String {
    format!(
        "no Delta tables under the object_store sinks of {}; a table root is a `{{table}}` folder of a sink's key holding a `_delta_log/`\n",
        args.file.display()
    )
}

/// `pipectl compact`.
pub(crate) fn compact(args: CompactArgs) -> Result<ExitCode> {
    let Some((found, rt)) = tables(&args.tables)? else {
        return Ok(ExitCode::from(1));
    };
    let mut outcomes = Vec::new();
    let mut failed = false;
    let mut text = String::new();
    for table in &found {
        match rt.block_on(maintenance::compact(table, args.target_size)) {
            Ok(o) => {
                text.push_str(&if o.version_after == o.version_before {
                    format!(
                        "sink {}, table {} ({}): nothing to compact ({} files, {}; version {})\n",
                        o.sink,
                        o.table,
                        o.location,
                        human_count(o.files_before),
                        human_bytes(o.bytes_before),
                        o.version_before
                    )
                } else {
                    format!(
                        "sink {}, table {} ({}): compacted {} files ({}) into {} ({}) in {} partitions; version {} -> {}\n",
                        o.sink,
                        o.table,
                        o.location,
                        human_count(o.files_before),
                        human_bytes(o.bytes_before),
                        human_count(o.files_after),
                        human_bytes(o.bytes_after),
                        o.partitions,
                        o.version_before,
                        o.version_after
                    )
                });
                outcomes.push(serde_json::to_value(&o)?);
            }
            Err(e) => {
                failed = true;
                text.push_str(&format!("error: {e}\n"));
                outcomes.push(serde_json::json!({
                    "sink": table.sink, "table": table.table, "error": e.to_string(),
                }));
            }
        }
    }
    finish(&args.tables, found.is_empty(), text, outcomes, failed)
}

/// `pipectl vacuum`.
pub(crate) fn vacuum(args: VacuumArgs) -> Result<ExitCode> {
    let Some((found, rt)) = tables(&args.tables)? else {
        return Ok(ExitCode::from(1));
    };
    let mut outcomes = Vec::new();
    let mut failed = false;
    let mut text = String::new();
    let retention = humanize(args.retention);
    for table in &found {
        match rt.block_on(maintenance::vacuum(table, args.retention, args.dry_run)) {
            Ok(o) => {
                text.push_str(&format!(
                    "sink {}, table {} ({}): {} {} files that left the table more than {retention} ago; version {} keeps its {} files\n",
                    o.sink,
                    o.table,
                    o.location,
                    if o.dry_run { "would delete" } else { "deleted" },
                    human_count(o.deleted.len() as u64),
                    o.version,
                    human_count(o.files_kept),
                ));
                for f in &o.deleted {
                    text.push_str(&format!("  {f}\n"));
                }
                outcomes.push(serde_json::to_value(&o)?);
            }
            Err(e) => {
                failed = true;
                text.push_str(&format!("error: {e}\n"));
                outcomes.push(serde_json::json!({
                    "sink": table.sink, "table": table.table, "error": e.to_string(),
                }));
            }
        }
    }
    finish(&args.tables, found.is_empty(), text, outcomes, failed)
}

fn finish(
    args: &TableArgs,
    empty: bool,
    text: String,
    outcomes: Vec<serde_json::Value>,
    failed: bool,
) -> Result<ExitCode> {
    match args.format {
        OutputFormat::Json => print_out(&(serde_json::to_string_pretty(&outcomes)? + "\n"))?,
        OutputFormat::Text if empty => print_out(&none_found(args))?,
        OutputFormat::Text => print_out(&text)?,
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `7d`, `12h`, `90s`: a retention as it was probably written.
fn humanize(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".to_owned(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
