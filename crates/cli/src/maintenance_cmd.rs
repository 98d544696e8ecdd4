//! `pipectl compact` and `pipectl vacuum`: maintenance of the tables under a pipeline's
//! `object_store` sinks (Delta tables; `compact` also plain Parquet and JSON lines tables).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, anyhow};
use clap::Args;
use pipectl_engine::connect::Connections;
use pipectl_engine::maintenance::files::{self, FilesTable, Stage};
use pipectl_engine::maintenance::{self, FoundTable, Selection};

use crate::render::{human_bytes, human_count};
use crate::{
    OutputFormat, UsageError, base_dir, env_lookup, load_or_report, open_state, print_out, runtime,
};

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
    /// Bin-pack small files, per partition, into files of about this many bytes. Default: the
    /// spec's `maintenance.compact.target_file_size`, else 134217728 (128 MiB).
    #[arg(long)]
    target_size: Option<u64>,
    /// Only show what would be rewritten (plain Parquet and JSON lines tables: per partition,
    /// the files and what they become); nothing is written.
    #[arg(long)]
    dry_run: bool,
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

fn no_tables(args: &TableArgs) -> String {
    format!(
        "no tables under the object_store sinks of {}: no Delta table (a `{{table}}` folder of a sink's key holding a `_delta_log/`) and no files pipectl wrote\n",
        args.file.display()
    )
}

/// The environment variable that stops `pipectl compact` at a [`Stage`] of a plain table's
/// compaction as `kill -9` would (`staged` or `intent_saved`): for tests of the recovery.
const KILL_AT: &str = "PIPECTL_TEST_COMPACT_KILL_AT";

fn kill_at(stage: Stage) {
    let name = match stage {
        Stage::Staged => "staged",
        Stage::IntentSaved => "intent_saved",
    };
    if std::env::var(KILL_AT).is_ok_and(|v| v == name) {
        eprintln!("{KILL_AT}={name}: stopping here");
        std::process::abort();
    }
}

/// `pipectl compact`: the Delta tables, then the plain tables (recorded as runs of the
/// pipeline in the state store at `state_dir`, whose recovery finishes a killed one).
pub(crate) fn compact(args: CompactArgs, state_dir: &Path) -> Result<ExitCode> {
    let Some(spec) = load_or_report(&args.tables.file, false)? else {
        return Ok(ExitCode::from(1));
    };
    let file = args.tables.file.display().to_string();
    let connections =
        Connections::resolve(&spec.pipeline, &base_dir(&args.tables.file), env_lookup)
            .map_err(|e| anyhow!("{file}: {e}"))?;
    let selection = Selection {
        sink: args.tables.sink.clone(),
        table: args.tables.table.clone(),
    };
    let target = args
        .target_size
        .or_else(|| {
            spec.pipeline
                .maintenance
                .as_ref()
                .and_then(|m| m.compact.as_ref())
                .and_then(|c| c.target_file_size)
        })
        .unwrap_or(DEFAULT_TARGET_SIZE);
    let rt = runtime()?;
    let engine_error = |e: pipectl_engine::error::Error| {
        let text = connections.redactor().redact(&e.to_string());
        if e.class == pipectl_engine::error::ErrorClass::User {
            anyhow::Error::new(UsageError(text))
        } else {
            anyhow!(text)
        }
    };
    let (delta, mut plain) = rt
        .block_on(maintenance::all_tables(
            &spec.pipeline,
            &file,
            &connections,
            &selection,
        ))
        .map_err(engine_error)?;
    let mut report = Report::default();
    if args.dry_run {
        for table in &delta {
            report.text.push_str(&format!(
                "sink {}, table {} ({}): a Delta table; compact bin-packs its files smaller than {} per partition in one commit\n",
                table.sink,
                table.table,
                table.location.display(),
                human_bytes(target)
            ));
            report.outcomes.push(serde_json::json!({
                "sink": table.sink, "table": table.table, "delta": true,
            }));
        }
        for table in &plain {
            let rewrites = files::plan(table, target);
            report.text.push_str(&plain_plan_text(table, &rewrites));
            report.outcomes.push(serde_json::json!({
                "sink": table.sink, "table": table.table, "files": table.files(),
                "bytes": table.bytes(), "rewrites": rewrites,
            }));
        }
        let empty = delta.is_empty() && plain.is_empty();
        return report.finish(&args.tables, no_tables(&args.tables), empty);
    }
    // Opened before anything is compacted, so a state store held by the daemon changes nothing.
    let state = match plain.is_empty() {
        true => None,
        false => Some(open_state(state_dir).map_err(|e| {
            anyhow!(
                "compacting the plain tables of {file} needs the state store {} (each compaction is recorded as a run there, so a killed one is finished or undone): {e}; if `pipectl serve` holds it, let its `maintenance:` section compact, or stop it first",
                state_dir.display()
            )
        })?),
    };
    for table in &delta {
        match rt.block_on(maintenance::compact(table, target)) {
            Ok(o) => {
                let line = if o.version_after == o.version_before {
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
                };
                report.done(&line, &o)?;
            }
            Err(e) => report.table_failed(&table.sink, &table.table, &e.to_string()),
        }
    }
    if let Some(state) = state {
        // Compactions and runs a stopped process left behind are finished or discarded first,
        // and the tables listed again, so every compaction starts from a published file set.
        rt.block_on(pipectl_engine::executor::recover(
            &state,
            &spec,
            &connections,
        ))
        .map_err(engine_error)?;
        plain = rt
            .block_on(files::file_tables(&spec.pipeline, &connections, &selection))
            .map_err(engine_error)?;
        let mut compacted = Vec::new();
        for table in &plain {
            let result = rt.block_on(files::compact(
                &spec,
                &state,
                &connections,
                table,
                target,
                &kill_at,
            ));
            match result {
                Ok(o) => {
                    if let Some(id) = &o.run_id {
                        compacted.push((table.sink.clone(), id.clone()));
                    }
                    report.done(&plain_outcome_text(table, &o), &o)?;
                }
                Err(e) => report.table_failed(
                    &table.sink,
                    &table.table,
                    &connections.redactor().redact(&e.to_string()),
                ),
            }
        }
        if let Err(e) = rt.block_on(files::recrawl(
            &spec.pipeline,
            &connections,
            &state,
            &compacted,
        )) {
            report.error(&connections.redactor().redact(&e.to_string()));
        }
    }
    let empty = delta.is_empty() && plain.is_empty();
    report.finish(&args.tables, no_tables(&args.tables), empty)
}

/// `12 files`, `1 file`.
fn files(n: u64) -> String {
    format!("{} file{}", human_count(n), crate::plural(n as usize))
}

fn plain_plan_text(table: &FilesTable, rewrites: &[files::Rewrite]) -> String {
    let head = format!(
        "sink {}, table {} ({}, {})",
        table.sink,
        table.table,
        files(table.files()),
        human_bytes(table.bytes())
    );
    if table.kind.is_none() {
        return format!(
            "{head}: {} files are not compacted (only Parquet and uncompressed JSON lines)\n",
            table.extension
        );
    }
    if rewrites.is_empty() {
        return format!("{head}: nothing to compact\n");
    }
    let rewritten: usize = rewrites.iter().map(|r| r.files.len()).sum();
    let mut text = format!(
        "{head}: would rewrite {} into {}:\n",
        files(rewritten as u64),
        human_count(rewrites.len() as u64)
    );
    for r in rewrites {
        text.push_str(&format!(
            "  {}/{}/: {} ({}) -> 1\n",
            table.display,
            r.partition,
            files(r.files.len() as u64),
            human_bytes(r.bytes)
        ));
    }
    text
}

fn plain_outcome_text(table: &FilesTable, o: &files::FilesOutcome) -> String {
    match &o.run_id {
        None if table.kind.is_none() => format!(
            "sink {}, table {}: {} files are not compacted (only Parquet and uncompressed JSON lines)\n",
            o.sink, o.table, table.extension
        ),
        None => format!(
            "sink {}, table {}: nothing to compact ({}, {})\n",
            o.sink,
            o.table,
            files(o.files_before),
            human_bytes(o.bytes_before)
        ),
        Some(id) => format!(
            "sink {}, table {}: compacted {} ({}) into {} ({}) in {} partition{}, {} rows; run {id}\n",
            o.sink,
            o.table,
            files(o.files_before),
            human_bytes(o.bytes_before),
            human_count(o.files_after),
            human_bytes(o.bytes_after),
            o.partitions,
            crate::plural(o.partitions as usize),
            human_count(o.rows)
        ),
    }
}

/// `pipectl vacuum`.
pub(crate) fn vacuum(args: VacuumArgs) -> Result<ExitCode> {
    let Some((found, rt)) = tables(&args.tables)? else {
        return Ok(ExitCode::from(1));
    };
    let mut report = Report::default();
    let retention = humanize(args.retention);
    for table in &found {
        match rt.block_on(maintenance::vacuum(table, args.retention, args.dry_run)) {
            Ok(o) => {
                let mut text = format!(
                    "sink {}, table {} ({}): {} {} files that left the table more than {retention} ago; version {} keeps its {} files\n",
                    o.sink,
                    o.table,
                    o.location,
                    if o.dry_run { "would delete" } else { "deleted" },
                    human_count(o.deleted.len() as u64),
                    o.version,
                    human_count(o.files_kept),
                );
                for f in &o.deleted {
                    text.push_str(&format!("  {f}\n"));
                }
                report.done(&text, &o)?;
            }
            Err(e) => report.table_failed(&table.sink, &table.table, &e.to_string()),
        }
    }
    report.finish(&args.tables, none_found(&args.tables), found.is_empty())
}

/// What a maintenance command prints: a text line (or more) and a JSON outcome a table, and
/// whether anything failed.
#[derive(Default)]
struct Report {
    text: String,
    outcomes: Vec<serde_json::Value>,
    failed: bool,
}

impl Report {
    /// A table done: `text` to print and its `outcome` for `--format json`.
    fn done(&mut self, text: &str, outcome: &impl serde::Serialize) -> Result<()> {
        self.text.push_str(text);
        self.outcomes.push(serde_json::to_value(outcome)?);
        Ok(())
    }

    /// A failure that belongs to no one table, said as `error: {error}`.
    fn error(&mut self, error: &str) {
        self.failed = true;
        self.text.push_str(&format!("error: {error}\n"));
    }

    /// Table `table` of `sink` failed with `error`, which goes into its JSON outcome too.
    fn table_failed(&mut self, sink: &str, table: &str, error: &str) {
        self.error(error);
        self.outcomes.push(serde_json::json!({
            "sink": sink, "table": table, "error": error,
        }));
    }

    /// Prints the outcomes (JSON) or the text (`none` when no table was `found`), and exits 1
    /// when a table failed.
    fn finish(self, args: &TableArgs, none: String, empty: bool) -> Result<ExitCode> {
        match args.format {
            OutputFormat::Json => {
                print_out(&(serde_json::to_string_pretty(&self.outcomes)? + "\n"))?
            }
            OutputFormat::Text if empty => print_out(&none)?,
            OutputFormat::Text => print_out(&self.text)?,
        }
        Ok(if self.failed {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    }
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
