//! `pipectl`: declarative data ingestion from YAML pipelines.
//!
//! Exit codes: 0 success; 1 invalid spec or failed run; 2 usage error (bad flags, missing
//! files, locked state). A closed stdout (`pipectl runs | head`) is not an error.

mod cdc_cmd;
mod generate_cmd;
mod lake_cmd;
mod maintenance_cmd;
mod progress;
mod render;
mod serve;
mod state_cmd;
mod stream_cmd;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use clap::{Parser, Subcommand, ValueEnum};
use pipectl_engine::executor::{self, RunOptions};
use pipectl_spec::{Diagnostic, LoadedSpec};
use pipectl_state::{RunStatus, SledStore, StateError, StateStore};
use tokio_util::sync::CancellationToken;

/// Declarative data ingestion: pipelines in YAML, validated, planned and run by one binary.
#[derive(Parser)]
#[command(name = "pipectl", version, about, long_about = None)]
struct Cli {
    /// Where run history and bookmarks are kept.
    #[arg(
        long,
        global = true,
        env = "PIPECTL_STATE_DIR",
        default_value = ".pipectl/state"
    )]
    state_dir: PathBuf,
    /// More log output (-v: debug, -vv: trace). `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors and the final line (`run ... of ...: succeeded in ...`).
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check pipeline files: every error in every file, with file:line:column.
    Validate {
        /// Files or folders (folders are searched for *.yaml / *.yml). Default: pipelines/.
        paths: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Show what a run would read and write, without running it.
    Plan {
        /// The pipeline file.
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        /// Do not connect to sources to list their tables.
        #[arg(long)]
        offline: bool,
        /// Show the object key and error keys each firehose sink would write for records
        /// arriving at this instant (RFC 3339, e.g. `2026-11-25T18:07:09Z`).
        #[arg(long, value_parser = parse_instant)]
        at: Option<chrono::DateTime<chrono::Utc>>,
        /// A sample record (JSON) for the keys: its partition values and event time; the
        /// instant is `--at`, or now.
        #[arg(long)]
        record: Option<String>,
        /// Exit 1 when the plan has warnings, such as an include rule that matches no table
        /// (for CI).
        #[arg(long)]
        strict: bool,
    },
    /// Run a pipeline once, now.
    Run {
        /// The pipeline file.
        file: PathBuf,
        /// Backfill: bookmarked tables read the rows whose first bookmark key is at or after this
        /// value (e.g. `2026-01-01`), instead of the rows after the bookmark; bookmarks stay.
        #[arg(long, requires = "backfill_to")]
        backfill_from: Option<String>,
        /// Backfill: exclusive upper bound of the first bookmark key.
        #[arg(long, requires = "backfill_from")]
        backfill_to: Option<String>,
        /// Backfill only this table (`schema.table` or `table`, `%` wildcards; repeatable): the
        /// run reads no other table. Needed when bookmarked tables have keys of different types.
        #[arg(long = "table", requires = "backfill_from")]
        tables: Vec<String>,
        /// Output format of the final summary.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        /// Fail the run (nothing is published) when an include rule matches no table, instead
        /// of warning.
        #[arg(long)]
        strict: bool,
    },
    /// Change data capture sources: drop a pipeline's replication slot and publication.
    Cdc {
        #[command(subcommand)]
        action: cdc_cmd::CdcAction,
    },
    /// Run history.
    Runs {
        #[command(subcommand)]
        action: Option<RunsAction>,
        /// Only this pipeline's runs.
        pipeline: Option<String>,
        /// How many runs to list.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Job bookmarks per pipeline and stream: list, show with history, set, reset, rewind.
    State {
        #[command(subcommand)]
        action: Option<state_cmd::StateAction>,
        /// Only this pipeline's bookmarks.
        pipeline: Option<String>,
        /// Output format.
        #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// The data catalog: databases, tables, partitions, schema history.
    Catalog {
        #[command(subcommand)]
        action: lake_cmd::CatalogAction,
        /// Output format.
        #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Crawl a pipeline's sinks, or any folder or prefix, into the catalog.
    Crawl(lake_cmd::CrawlArgs),
    /// Run SQL over the catalogued tables.
    Query {
        /// The SQL statement, e.g. `select * from film limit 20`.
        sql: String,
        /// Database unqualified table names are looked up in.
        #[arg(long, short)]
        database: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = lake_cmd::QueryFormat::Table)]
        format: lake_cmd::QueryFormat,
        /// Leave files that cannot be read out of the query (each is reported on stderr)
        /// instead of failing on the first.
        #[arg(long)]
        skip_unreadable: bool,
        /// Read Delta tables as they were at this version (a number) or time (RFC 3339, e.g.
        /// `2026-12-01T10:00:00Z`: the newest version committed then). Other tables are read
        /// as they are now.
        #[arg(long, value_parser = parse_as_of)]
        as_of: Option<pipectl_query::AsOf>,
    },
    /// Compact the tables of a pipeline's object_store sinks: small files bin-packed, per
    /// partition, into files of about a target size, rows unchanged (a Delta table in one
    /// commit; a plain Parquet or JSON lines table's files swapped like a run publishes them).
    Compact(maintenance_cmd::CompactArgs),
    /// Delete files the Delta tables of a pipeline's object_store sinks no longer need: those
    /// that left a table longer ago than the retention. The newest version's files stay.
    Vacuum(maintenance_cmd::VacuumArgs),
    /// Print the JSON Schema of pipeline files (for editors and CI).
    Schema,
    /// Publish records from a template at a fixed rate to NATS, MQTT or a Direct PUT endpoint
    /// (the Kinesis Data Generator as a command).
    Generate(generate_cmd::GenerateArgs),
    /// Run every pipeline in a folder on its schedule, in the background, with an HTTP API.
    Serve {
        /// The folder of pipeline files. Default: pipelines/.
        dir: Option<PathBuf>,
        /// Address of the HTTP API (health, pipelines, runs, triggers, /metrics).
        #[arg(long, default_value = "127.0.0.1:8787")]
        listen: std::net::SocketAddr,
        /// Runs executing at once, over all pipelines.
        #[arg(long, default_value_t = 4)]
        max_concurrent_runs: usize,
        /// After SIGTERM, how long running runs may finish before they are cancelled.
        #[arg(long, default_value_t = 30)]
        grace_secs: u64,
        /// How often pipeline files are checked for changes, in seconds.
        #[arg(long, default_value_t = 2.0)]
        reload_secs: f64,
    },
}

#[derive(Subcommand)]
enum RunsAction {
    /// One run with its steps.
    Show {
        /// Run id, or an unambiguous prefix of one.
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    /// For people.
    Text,
    /// For programs and CI.
    Json,
}

/// An error that maps to exit code 2 (the command could not be carried out as asked).
#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose, cli.quiet);
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            let usage = e.chain().any(|c| {
                c.is::<UsageError>()
                    || matches!(
                        c.downcast_ref::<StateError>(),
                        Some(StateError::Locked { .. })
                    )
            });
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn init_tracing(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "pipectl=debug,info",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .with_target(false)
        .init();
}

fn real_main(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Validate { paths, format } => validate(paths, format),
        Command::Plan {
            file,
            format,
            offline,
            at,
            record,
            strict,
        } => {
            let keys = (at.is_some() || record.is_some()).then(|| KeysAt {
                at: at.unwrap_or_else(chrono::Utc::now),
                record,
            });
            plan(&file, format, offline, keys, strict, &cli.state_dir)
        }
        Command::Run {
            file,
            format,
            backfill_from,
            backfill_to,
            tables,
            strict,
        } => {
            let backfill = backfill_from
                .zip(backfill_to)
                .map(|(from, to)| executor::Backfill { from, to, tables });
            run(&file, format, &cli.state_dir, cli.quiet, backfill, strict)
        }
        Command::Runs {
            action,
            pipeline,
            limit,
            format,
        } => {
            let store = match open_state_or_daemon(&cli.state_dir)? {
                Ok(store) => store,
                // The daemon holds the state: ask it instead.
                Err(addr) => {
                    return match action {
                        Some(RunsAction::Show { id, format }) => {
                            serve::runs_show(addr, &id, format)
                        }
                        None => serve::runs_list(addr, pipeline.as_deref(), limit, format),
                    };
                }
            };
            match action {
                Some(RunsAction::Show { id, format }) => {
                    let run = store.find_run(&id)?.ok_or_else(|| {
                        UsageError(format!(
                            "no run `{id}` in {}; list runs with `pipectl runs`",
                            cli.state_dir.display()
                        ))
                    })?;
                    print_out(&match format {
                        OutputFormat::Json => serde_json::to_string_pretty(&run)? + "\n",
                        OutputFormat::Text => render::run_details(&run),
                    })?;
                }
                None => {
                    let runs = store.runs(pipeline.as_deref(), limit)?;
                    print_out(&match format {
                        OutputFormat::Json => serde_json::to_string_pretty(&runs)? + "\n",
                        OutputFormat::Text => render::run_list(&runs),
                    })?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            dir,
            listen,
            max_concurrent_runs,
            grace_secs,
            reload_secs,
        } => serve::serve(
            serve::ServeArgs {
                dir,
                listen,
                max_concurrent_runs,
                grace_secs,
                reload_secs,
            },
            &cli.state_dir,
        ),
        Command::State {
            action,
            pipeline,
            format,
        } => {
            let store = match open_state_or_daemon(&cli.state_dir)? {
                Ok(store) => store,
                // The daemon holds the state: it runs this same command on its store.
                Err(addr) => {
                    print_out(&serve::forward(addr, std::env::args().skip(1).collect())?)?;
                    return Ok(ExitCode::SUCCESS);
                }
            };
            print_out(&state_command(&store, action, pipeline.as_deref(), format)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Generate(args) => generate_cmd::run(args),
        Command::Cdc { action } => cdc_cmd::run(action, &cli.state_dir),
        Command::Catalog { action, format } => lake_cmd::catalog(&cli.state_dir, action, format),
        Command::Crawl(args) => lake_cmd::crawl(&cli.state_dir, args),
        Command::Compact(args) => maintenance_cmd::compact(args, &cli.state_dir),
        Command::Vacuum(args) => maintenance_cmd::vacuum(args),
        Command::Query {
            sql,
            database,
            format,
            skip_unreadable,
            as_of,
        } => lake_cmd::query(
            &cli.state_dir,
            &sql,
            database.as_deref(),
            format,
            skip_unreadable,
            as_of.unwrap_or_default(),
        ),
        Command::Schema => {
            print_out(&(serde_json::to_string_pretty(&pipectl_spec::json_schema())? + "\n"))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `pipectl state`: what to print for one action (or the list) on `store`.
fn state_command(
    store: &dyn StateStore,
    action: Option<state_cmd::StateAction>,
    pipeline: Option<&str>,
    format: OutputFormat,
) -> Result<String> {
    let json = format == OutputFormat::Json;
    match action {
        Some(action) => state_cmd::act(store, action, json),
        None => state_cmd::list(store, pipeline, json),
    }
}

/// Runs a command forwarded to the daemon (`args` without the program name) against the
/// daemon's store. Only commands that read or change the state store are taken.
pub(crate) fn forwarded_command(
    store: &dyn StateStore,
    args: Vec<String>,
) -> std::result::Result<String, String> {
    let cli = Cli::try_parse_from(std::iter::once("pipectl".to_owned()).chain(args))
        .map_err(|e| e.to_string())?;
    match cli.command {
        Command::State {
            action,
            pipeline,
            format,
        } => {
            state_command(store, action, pipeline.as_deref(), format).map_err(|e| format!("{e:#}"))
        }
        Command::Catalog { action, format } => {
            lake_cmd::catalog_text(store, action, format).map_err(|e| format!("{e:#}"))
        }
        _ => Err(
            "only `pipectl state` and `pipectl catalog` commands are forwarded to the daemon"
                .to_owned(),
        ),
    }
}

/// Prints a finished run (summary table or JSON; with `quiet`, only its final line and error)
/// and returns its exit code: 0 succeeded, 130 cancelled (as after Ctrl-C; 143 when `stopped_by`
/// says SIGTERM stopped it), 1 otherwise.
pub(crate) fn report_run(
    record: &pipectl_state::RunRecord,
    spec: &LoadedSpec,
    format: OutputFormat,
    quiet: bool,
    stopped_by: Option<serve::StopSignal>,
) -> Result<ExitCode> {
    match (format, quiet) {
        (OutputFormat::Json, _) => print_out(&(serde_json::to_string_pretty(record)? + "\n"))?,
        (OutputFormat::Text, true) => print_out(&render::run_outcome(record))?,
        (OutputFormat::Text, false) => print_out(&render::run_summary(record, spec))?,
    }
    Ok(match record.status {
        RunStatus::Succeeded => ExitCode::SUCCESS,
        RunStatus::Cancelled => ExitCode::from(match stopped_by {
            Some(serve::StopSignal::Terminate) => 143,
            _ => 130,
        }),
        _ => ExitCode::from(1),
    })
}

/// Writes to stdout, surfacing a closed pipe as an error `main` recognises.
fn print_out(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn open_state(dir: &Path) -> Result<SledStore> {
    Ok(SledStore::open(dir)?)
}

/// The state store, or (`Err`) the address of the running `pipectl serve` that holds its lock,
/// for commands that the daemon can answer instead.
fn open_state_or_daemon(
    dir: &Path,
) -> Result<std::result::Result<SledStore, std::net::SocketAddr>> {
    match open_state(dir) {
        Ok(store) => Ok(Ok(store)),
        Err(e) => serve::locked_daemon(dir, &e).map(Err).ok_or(e),
    }
}

/// The spec files named by `paths` (folders searched recursively for .yaml/.yml), sorted.
fn spec_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let defaults = [PathBuf::from("pipelines")];
    let paths = if paths.is_empty() {
        &defaults[..]
    } else {
        paths
    };
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            collect_yaml(path, &mut files)
                .with_context(|| format!("reading folder {}", path.display()))?;
        } else if path.exists() {
            files.push(path.clone());
        } else {
            return Err(UsageError(format!("{} does not exist", path.display())).into());
        }
    }
    files.sort();
    Ok(files)
}

fn collect_yaml(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            collect_yaml(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
    Ok(())
}

/// Reads and checks one spec file.
fn load(file: &Path) -> Result<Result<LoadedSpec, Vec<Diagnostic>>> {
    let bytes = std::fs::read(file)
        .map_err(|e| UsageError(format!("cannot read {}: {e}", file.display())))?;
    Ok(pipectl_spec::load_bytes(
        &file.display().to_string(),
        &bytes,
    ))
}

/// Loads a spec for `plan`/`run`, printing its diagnostics (warnings only unless `quiet`);
/// `None` when it has errors.
fn load_or_report(file: &Path, quiet: bool) -> Result<Option<LoadedSpec>> {
    match load(file)? {
        Ok(spec) => {
            for w in spec.warnings.iter().filter(|_| !quiet) {
                eprintln!("{w}\n");
            }
            Ok(Some(spec))
        }
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}\n");
            }
            let errors = diags.iter().filter(|d| d.is_error()).count();
            eprintln!(
                "{}: {errors} error{} found; nothing was run",
                file.display(),
                if errors == 1 { "" } else { "s" }
            );
            Ok(None)
        }
    }
}

fn validate(paths: Vec<PathBuf>, format: OutputFormat) -> Result<ExitCode> {
    let files = spec_files(&paths)?;
    if files.is_empty() {
        return Err(UsageError("no pipeline files (*.yaml, *.yml) found".to_owned()).into());
    }
    let mut all: Vec<Diagnostic> = Vec::new();
    let mut valid = 0usize;
    for file in &files {
        match load(file)? {
            Ok(spec) => {
                valid += 1;
                all.extend(spec.warnings);
            }
            Err(diags) => all.extend(diags),
        }
    }
    let errors = all.iter().filter(|d| d.is_error()).count();
    match format {
        OutputFormat::Json => {
            let report = serde_json::json!({
                "files": files.len(),
                "valid": valid,
                "errors": errors,
                "warnings": all.len() - errors,
                "diagnostics": all,
            });
            print_out(&(serde_json::to_string_pretty(&report)? + "\n"))?;
        }
        OutputFormat::Text => {
            let mut text = String::new();
            for d in &all {
                text.push_str(&format!("{d}\n\n"));
            }
            text.push_str(&format!(
                "{} file{} checked: {valid} valid, {errors} error{}, {} warning{}\n",
                files.len(),
                plural(files.len()),
                plural(errors),
                all.len() - errors,
                plural(all.len() - errors)
            ));
            if errors > 0 {
                eprint!("{text}");
            } else {
                print_out(&text)?;
            }
        }
    }
    Ok(if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn base_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// `pipectl plan --at/--record`: the instant and sample record to show object keys for.
struct KeysAt {
    at: chrono::DateTime<chrono::Utc>,
    record: Option<String>,
}

fn parse_as_of(text: &str) -> Result<pipectl_query::AsOf, String> {
    pipectl_query::parse_as_of(text)
}

fn parse_instant(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("{e}: write an RFC 3339 instant such as 2026-11-25T18:07:09Z"))
}

fn plan(
    file: &Path,
    format: OutputFormat,
    offline: bool,
    keys_at: Option<KeysAt>,
    strict: bool,
    state_dir: &Path,
) -> Result<ExitCode> {
    let Some(spec) = load_or_report(file, false)? else {
        return Ok(ExitCode::from(1));
    };
    let keys = match &keys_at {
        Some(k) => Some(
            pipectl_stream::firehose::keys::preview(
                &spec.pipeline,
                k.at,
                k.record.as_deref().map(str::as_bytes),
            )
            .map_err(|e| anyhow!("{e}"))?,
        ),
        None => None,
    };
    // Stored bookmarks let the plan show the values incremental reads bind; without a state
    // folder (or while a run holds it) the plan shows first-run reads.
    let bookmarks = if state_dir.exists() {
        match open_state(state_dir) {
            Ok(store) => store.bookmarks(Some(&spec.pipeline.name))?,
            Err(e) => match serve::locked_daemon(state_dir, &e) {
                // A daemon holds the state: ask it for the bookmarks.
                Some(addr) => serve::bookmarks(addr, &spec.pipeline.name)?,
                None => Vec::new(),
            },
        }
    } else {
        Vec::new()
    };
    let plan = runtime()?.block_on(pipectl_engine::plan::build_with_bookmarks(
        &spec,
        &base_dir(file),
        env_lookup,
        !offline,
        &bookmarks,
    ));
    let text = match format {
        OutputFormat::Json => {
            let mut json = serde_json::to_value(&plan)?;
            if let (Some(keys), Some(object)) = (&keys, json.as_object_mut()) {
                object.insert("keys".to_owned(), serde_json::to_value(keys)?);
            }
            serde_json::to_string_pretty(&json)? + "\n"
        }
        OutputFormat::Text => {
            let mut text = render::plan(&plan);
            if let (Some(keys), Some(k)) = (&keys, &keys_at) {
                text.push_str(&render::key_previews(keys, k.at));
            }
            text
        }
    };
    print_out(&text)?;
    let warnings = plan.warnings();
    if strict && !warnings.is_empty() {
        for w in &warnings {
            eprintln!("error: {w}");
        }
        eprintln!(
            "{}: {} warning{} with --strict",
            file.display(),
            warnings.len(),
            plural(warnings.len())
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn run(
    file: &Path,
    format: OutputFormat,
    state_dir: &Path,
    quiet: bool,
    backfill: Option<executor::Backfill>,
    strict: bool,
) -> Result<ExitCode> {
    let Some(spec) = load_or_report(file, quiet)? else {
        return Ok(ExitCode::from(1));
    };
    let state: Arc<dyn StateStore> = match open_state(state_dir) {
        Ok(store) => Arc::new(store),
        Err(e) => match serve::locked_daemon(state_dir, &e) {
            Some(addr) => return serve::run(addr, file, &spec, format, quiet),
            None => return Err(e),
        },
    };
    if pipectl_stream::is_streaming(&spec.pipeline) {
        return stream_cmd::run(file, &spec, state, state_dir, format, quiet);
    }
    let cancel = CancellationToken::new();
    let trigger = if backfill.is_some() {
        "backfill"
    } else {
        "manual"
    };
    // The daemon's retry policy, so a run started here is tried again as the daemon would.
    let backoff = pipectl_serve::policy::RunPolicy::from_spec(&spec.pipeline)
        .retry
        .unwrap_or(pipectl_serve::policy::Backoff {
            max_attempts: 1,
            ..pipectl_serve::policy::Backoff::DEFAULT
        });
    let runtime = runtime()?;
    // Ctrl-C and SIGTERM (what systemd, Kubernetes, Docker and CI send) stop the run the same way.
    let stopped_by = Arc::new(std::sync::OnceLock::new());
    let record = runtime.block_on(async {
        let on_signal = cancel.clone();
        let stopped = stopped_by.clone();
        tokio::spawn(async move {
            let signal = serve::stop_signal_kind().await;
            let _ = stopped.set(signal);
            eprintln!(
                "\n{}: stopping steps, nothing will be published (press Ctrl-C again to force)",
                signal.noun()
            );
            on_signal.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        });
        let max = backoff.max_attempts;
        let mut attempt = 1u32;
        loop {
            let prepared = executor::prepare(
                &spec,
                &base_dir(file),
                state.clone(),
                RunOptions {
                    trigger: match attempt {
                        1 => trigger.to_owned(),
                        n => format!("{trigger} (attempt {n} of {max})"),
                    },
                    cancel: cancel.clone(),
                    strict,
                },
                env_lookup,
            )
            .map_err(|e| anyhow!("{e}"))?;
            let prepared = match &backfill {
                Some(b) => prepared
                    .with_backfill(b.clone())
                    .map_err(|e| UsageError(e.to_string()))?,
                None => prepared,
            };
            let display = progress::Display::start(&prepared.steps, &prepared.run_id, quiet);
            let result = prepared.execute_classified().await;
            display.stop().await;
            let (mut record, class) = result.map_err(|e| anyhow!("{e}"))?;
            let retry = record.status != RunStatus::Succeeded
                && attempt < max
                && !cancel.is_cancelled()
                && pipectl_serve::policy::worth_retrying(record.status, class);
            if !retry {
                if attempt > 1 && record.status != RunStatus::Succeeded {
                    record.error = record.error.map(|e| gave_up(&e, attempt));
                }
                return Ok::<_, anyhow::Error>(record);
            }
            let wait = backoff.delay(attempt);
            tracing::warn!(
                "attempt {attempt} of {max} failed in {}; retrying in {} ms",
                record.error.as_deref().unwrap_or("the run"),
                wait.as_millis()
            );
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            attempt += 1;
        }
    })?;
    crate::report_run(&record, &spec, format, quiet, stopped_by.get().copied())
}

/// A run's error after its last attempt: `step `x` (gave up after 3 attempts): why`.
fn gave_up(error: &str, attempts: u32) -> String {
    match error.split_once("`: ") {
        Some((step, why)) if step.starts_with("step `") => {
            format!("{step}` (gave up after {attempts} attempts): {why}")
        }
        _ => format!("{error} (gave up after {attempts} attempts)"),
    }
}
