//! `pipectl catalog`, `pipectl crawl` and `pipectl query`: the catalogued lake.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use clap::{Args, Subcommand, ValueEnum};
use comfy_table::Table;
use comfy_table::presets::UTF8_BORDERS_ONLY;
use pipectl_engine::connect::Connections;
use pipectl_engine::crawl::{self, CrawlOptions, CrawlReport, CrawlTarget, Layout};
use pipectl_spec::diag::comma_list;
use pipectl_spec::types::{Connection, Crawler, Pipeline, RecrawlPolicy, SchemaChangePolicy};
use pipectl_state::{CatalogColumn, CatalogStore, CatalogTable};

use crate::render::{human_bytes, human_count};
use crate::{
    OutputFormat, UsageError, base_dir, env_lookup, load_or_report, open_state, print_out, runtime,
};

/// `pipectl catalog` actions.
#[derive(Subcommand)]
pub(crate) enum CatalogAction {
    /// Databases with their table counts.
    Databases,
    /// Tables of one database, or of all.
    Tables {
        /// Database. Default: all.
        database: Option<String>,
    },
    /// One table: location, format, columns, partition keys and partitions.
    Show {
        /// `database.table`, or a table name found in one database only.
        table: String,
    },
    /// Every schema version of a table, with what changed.
    History {
        /// `database.table`, or a table name found in one database only.
        table: String,
    },
}

/// Output formats of `pipectl query`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum QueryFormat {
    /// An aligned table.
    Table,
    /// CSV with a header row.
    Csv,
    /// A JSON array of objects.
    Json,
}

/// `pipectl crawl` arguments.
#[derive(Args)]
pub(crate) struct CrawlArgs {
    /// A pipeline file: run its crawlers now over what its sinks have published.
    #[arg(conflicts_with = "path", required_unless_present = "path")]
    file: Option<PathBuf>,
    /// Crawl this folder or prefix instead (`file:///abs/dir`, `file://relative/dir`, `s3://bucket/prefix`).
    #[arg(long)]
    path: Option<String>,
    /// Catalog database the tables go into (with --path).
    #[arg(long, requires = "path")]
    database: Option<String>,
    /// The text CSV files under the path write for NULL, e.g. `NULL` (with --path). Default: an
    /// empty field.
    #[arg(long, requires = "path")]
    null_value: Option<String>,
    /// Depth of the table folders below the path (0: the path itself is one table). Default: guessed.
    #[arg(long, requires = "path")]
    table_level: Option<usize>,
    /// Put this before every table name.
    #[arg(long, requires = "path")]
    table_prefix: Option<String>,
    /// What a changed schema does: update, log, deprecate.
    #[arg(long, value_enum, default_value_t = SchemaChangeArg::Update)]
    schema_change: SchemaChangeArg,
    /// Which folders are read: all, or only new ones.
    #[arg(long, value_enum, default_value_t = RecrawlArg::All)]
    recrawl: RecrawlArg,
    /// Only objects matching this glob (relative to the path; repeatable).
    #[arg(long, requires = "path")]
    include: Vec<String>,
    /// Leave out objects matching this glob (repeatable).
    #[arg(long, requires = "path")]
    exclude: Vec<String>,
    /// S3-compatible endpoint, e.g. `http://127.0.0.1:5000`. Default: `AWS_ENDPOINT_URL` or AWS.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    endpoint: Option<String>,
    /// S3 region. Default: `AWS_REGION` or `us-east-1`.
    #[arg(long)]
    region: Option<String>,
    /// Allow a plain `http://` endpoint.
    #[arg(long)]
    allow_http: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum SchemaChangeArg {
    Update,
    Log,
    Deprecate,
}

#[derive(Clone, Copy, ValueEnum)]
enum RecrawlArg {
    All,
    NewFolders,
}

fn table() -> Table {
    let mut t = Table::new();
    *t.style_mut() = UTF8_BORDERS_ONLY;
    t
}

fn json(value: &impl serde::Serialize) -> Result<String> {
    Ok(serde_json::to_string_pretty(value)? + "\n")
}

/// `pipectl catalog ...`.
pub(crate) fn catalog(
    state_dir: &Path,
    action: CatalogAction,
    format: OutputFormat,
) -> Result<ExitCode> {
    let text = match open_state(state_dir) {
        Ok(store) => catalog_text(&store, action, format)?,
        Err(e) => match crate::serve::locked_daemon(state_dir, &e) {
            // `pipectl serve` holds the state: it answers catalog commands itself.
            Some(addr) => crate::serve::forward(addr, std::env::args().skip(1).collect())?,
            None => return Err(e),
        },
    };
    print_out(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// What a `pipectl catalog` command prints, from `store`; the daemon runs it for forwarded
/// commands too.
pub(crate) fn catalog_text(
    store: &dyn CatalogStore,
    action: CatalogAction,
    format: OutputFormat,
) -> Result<String> {
    let as_json = format == OutputFormat::Json;
    let text = match action {
        CatalogAction::Databases => {
            let databases = store.databases()?;
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for t in store.tables(None)? {
                *counts.entry(t.database).or_default() += 1;
            }
            if as_json {
                let list: Vec<_> = databases
                    .iter()
                    .map(|d| {
                        serde_json::json!({
                            "name": d.name,
                            "created_at": d.created_at,
                            "tables": counts.get(&d.name).copied().unwrap_or(0),
                        })
                    })
                    .collect();
                json(&list)?
            } else if databases.is_empty() {
                "no databases; crawl some data with `pipectl crawl` or a `crawlers:` step\n"
                    .to_owned()
            } else {
                let mut t = table();
                t.set_header(["database", "tables", "created"]);
                for d in &databases {
                    t.add_row([
                        d.name.clone(),
                        counts.get(&d.name).copied().unwrap_or(0).to_string(),
                        d.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    ]);
                }
                format!("{t}\n")
            }
        }
        CatalogAction::Tables { database } => {
            if let Some(db) = &database
                && !store.databases()?.iter().any(|d| &d.name == db)
            {
                return Err(UsageError(format!(
                    "no database `{db}` in the catalog; list them with `pipectl catalog databases`"
                ))
                .into());
            }
            let tables = store.tables(database.as_deref())?;
            if as_json {
                json(&tables)?
            } else {
                let mut t = table();
                t.set_header([
                    "database",
                    "table",
                    "format",
                    "columns",
                    "partitions",
                    "files",
                    "size",
                    "version",
                    "status",
                    "updated",
                ]);
                for tb in &tables {
                    t.add_row([
                        tb.database.clone(),
                        tb.name.clone(),
                        format_name(tb),
                        tb.columns.len().to_string(),
                        crawl::partition_count(tb).to_string(),
                        human_count(tb.files()),
                        human_bytes(tb.bytes()),
                        tb.schema_version.to_string(),
                        status(tb),
                        tb.updated_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    ]);
                }
                format!("{t}\n")
            }
        }
        CatalogAction::Show { table: name } => {
            let tb = find_table(store, &name)?;
            if as_json { json(&tb)? } else { show(&tb) }
        }
        CatalogAction::History { table: name } => {
            let tb = find_table(store, &name)?;
            let history = store.table_history(&tb.database, &tb.name)?;
            if as_json {
                json(&history)?
            } else {
                let mut out = String::new();
                if let Some(delta) = &tb.delta {
                    out.push_str(&delta_history(delta));
                    out.push_str("\nschema versions in the catalog\n");
                }
                for v in &history {
                    out.push_str(&format!(
                        "version {}  {}  {}\n",
                        v.version,
                        v.at.format("%Y-%m-%d %H:%M:%S"),
                        v.crawler.as_deref().unwrap_or("")
                    ));
                    out.push_str(&format!("  columns: {}\n", column_list(&v.columns)));
                    if !v.partition_keys.is_empty() {
                        out.push_str(&format!(
                            "  partition keys: {}\n",
                            column_list(&v.partition_keys)
                        ));
                    }
                    for c in &v.changes {
                        out.push_str(&format!("  - {c}\n"));
                    }
                }
                out
            }
        }
    };
    Ok(text)
}

fn status(t: &CatalogTable) -> String {
    match t.status {
        pipectl_state::TableStatus::Active => "active".to_owned(),
        pipectl_state::TableStatus::Deprecated => "deprecated".to_owned(),
    }
}

fn format_name(t: &CatalogTable) -> String {
    if let Some(delta) = &t.delta {
        return format!("{} (version {})", t.format.kind, delta.version);
    }
    match &t.format.compression {
        Some(c) => format!("{} ({c})", t.format.kind),
        None => t.format.kind.clone(),
    }
}

/// A table by `database.table`, or by a name only one database has.
fn find_table(store: &dyn CatalogStore, name: &str) -> Result<CatalogTable> {
    if let Some((db, table)) = name.split_once('.')
        && let Some(t) = store.table(db, table)?
    {
        return Ok(t);
    }
    let matches: Vec<CatalogTable> = store
        .tables(None)?
        .into_iter()
        .filter(|t| t.name == name)
        .collect();
    match matches.len() {
        1 => Ok(matches.into_iter().next().expect("one match")),
        0 => Err(UsageError(format!(
            "no table `{name}` in the catalog; list tables with `pipectl catalog tables`"
        ))
        .into()),
        _ => Err(UsageError(format!(
            "table `{name}` is in several databases ({}); write `database.{name}`",
            comma_list(matches.iter().map(|t| t.database.as_str()))
        ))
        .into()),
    }
}

fn show(t: &CatalogTable) -> String {
    let mut out = format!(
        "table       {}.{}\nlocation    {}\nformat      {}{}\nstatus      {}\nversion     {}\nupdated     {}\n",
        t.database,
        t.name,
        t.location,
        format_name(t),
        match (t.format.delimiter, t.format.header) {
            (Some(d), Some(h)) =>
                format!(", delimiter {d:?}, header {}", if h { "yes" } else { "no" }),
            _ => String::new(),
        },
        status(t),
        t.schema_version,
        t.updated_at.format("%Y-%m-%d %H:%M:%S UTC"),
    );
    if let Some(delta) = &t.delta {
        out.push_str(&format!(
            "delta       version {}{}\n",
            delta.version,
            delta
                .commits
                .first()
                .and_then(|c| c.at)
                .map(|at| format!(", committed {}", at.format("%Y-%m-%d %H:%M:%S UTC")))
                .unwrap_or_default()
        ));
    }
    out.push_str(&format!(
        "files       {} ({})\n",
        human_count(t.files()),
        human_bytes(t.bytes())
    ));
    let mut cols = table();
    // Only a table format declares NOT NULL columns (crawled files are always nullable).
    let declares_nulls = t.delta.is_some();
    let mut header = vec!["column", "type", "partition key"];
    if declares_nulls {
        header.push("nullable");
    }
    cols.set_header(header);
    let nullable = |c: &pipectl_state::CatalogColumn| if c.nullable { "yes" } else { "no" };
    for c in &t.columns {
        let mut row = vec![c.name.clone(), c.data_type.clone(), String::new()];
        if declares_nulls {
            row.push(nullable(c).to_owned());
        }
        cols.add_row(row);
    }
    for c in &t.partition_keys {
        let mut row = vec![c.name.clone(), c.data_type.clone(), "yes".to_owned()];
        if declares_nulls {
            row.push(nullable(c).to_owned());
        }
        cols.add_row(row);
    }
    out.push_str(&format!("\n{cols}\n"));
    if !t.partition_keys.is_empty() {
        let mut parts = table();
        let mut header: Vec<String> = t.partition_keys.iter().map(|k| k.name.clone()).collect();
        header.extend(["location".to_owned(), "files".to_owned(), "size".to_owned()]);
        parts.set_header(header);
        for p in &t.partitions {
            let mut row = p.values.clone();
            row.extend([
                p.location.clone(),
                human_count(p.files),
                human_bytes(p.bytes),
            ]);
            parts.add_row(row);
        }
        out.push_str(&format!(
            "\n{} partitions\n{parts}\n",
            crawl::partition_count(t)
        ));
    }
    if !t.skipped_files.is_empty() {
        let mut skipped = table();
        skipped.set_header(["skipped file", "why"]);
        for f in &t.skipped_files {
            skipped.add_row([f.key.clone(), f.reason.clone()]);
        }
        out.push_str(&format!(
            "\n{} files left out (queries do not read them)\n{skipped}\n",
            human_count(t.skipped_files.len() as u64)
        ));
    }
    if let Some(c) = &t.last_crawl {
        out.push_str(&format!("\nlast crawl  {}\n", c.describe()));
        for change in &c.changes {
            out.push_str(&format!("  - {change}\n"));
        }
    }
    out
}

/// A Delta table's commits as the catalog has them, newest first.
fn delta_history(delta: &pipectl_state::DeltaLog) -> String {
    let mut t = table();
    t.set_header(["delta version", "committed", "operation", "parameters"]);
    for c in &delta.commits {
        t.add_row([
            c.version.to_string(),
            c.at.map(|at| at.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default(),
            c.operation.clone(),
            comma_list(c.parameters.iter().map(|(k, v)| format!("{k}={v}"))),
        ]);
    }
    format!(
        "Delta table at version {} (time travel: pipectl query --as-of VERSION|TIMESTAMP)\n{t}\n",
        delta.version
    )
}

/// `pipectl query`.
pub(crate) fn query(
    state_dir: &Path,
    sql: &str,
    database: Option<&str>,
    format: QueryFormat,
    skip_unreadable: bool,
    as_of: pipectl_query::AsOf,
) -> Result<ExitCode> {
    let tables: Vec<CatalogTable> = match open_state(state_dir) {
        Ok(store) => store.tables(None)?,
        Err(e) => match crate::serve::locked_daemon(state_dir, &e) {
            // `pipectl serve` holds the state: ask it for the catalog, then query here.
            Some(addr) => serde_json::from_str(&crate::serve::forward(
                addr,
                ["catalog", "tables", "--format", "json"]
                    .map(str::to_owned)
                    .to_vec(),
            )?)
            .context("reading the daemon's catalog")?,
            None => return Err(e),
        },
    };
    if let Some(db) = database
        && !tables.iter().any(|t| t.database == db)
    {
        return Err(UsageError(format!(
            "no database `{db}` in the catalog; list them with `pipectl catalog databases`"
        ))
        .into());
    }
    let lake = pipectl_query::Lake::new(&tables, database, env_lookup)?.with_as_of(as_of);
    // A corrupt file can make a reader panic; the query reports it as an error naming the
    // file, so the panic itself is not printed.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = runtime()?.block_on(lake.query(sql, skip_unreadable));
    std::panic::set_hook(default_hook);
    let output = result?;
    for file in &output.skipped {
        eprintln!(
            "warning: left out {} (table {}): {}",
            file.url, file.table, file.reason
        );
    }
    let (schema, batches) = (output.schema, output.batches);
    let format = match format {
        QueryFormat::Table => pipectl_query::OutputFormat::Table,
        QueryFormat::Csv => pipectl_query::OutputFormat::Csv,
        QueryFormat::Json => pipectl_query::OutputFormat::Json,
    };
    print_out(&pipectl_query::render(&schema, &batches, format).map_err(|e| anyhow!(e))?)?;
    Ok(ExitCode::SUCCESS)
}

/// `pipectl crawl`.
pub(crate) fn crawl(state_dir: &Path, args: CrawlArgs) -> Result<ExitCode> {
    let reports = match (&args.file, &args.path) {
        (Some(file), _) => {
            let Some(spec) = load_or_report(file, false)? else {
                return Ok(ExitCode::from(1));
            };
            if spec.pipeline.crawlers.is_empty() {
                return Err(
                    UsageError(format!("{} has no `crawlers:` steps", file.display())).into(),
                );
            }
            let store = open_state(state_dir)?;
            let connections = Connections::resolve(&spec.pipeline, &base_dir(file), env_lookup)
                .map_err(|e| anyhow!("{e}"))?;
            let rt = runtime()?;
            let mut reports = Vec::new();
            for (name, crawler) in &spec.pipeline.crawlers {
                let Crawler::Catalog(c) = crawler;
                let report = rt
                    .block_on(crawl::run_step(
                        &spec.pipeline,
                        name,
                        c,
                        &connections,
                        &store,
                        None,
                    ))
                    .map_err(|e| {
                        anyhow!(
                            "crawler `{name}`: {}",
                            connections.redactor().redact(&e.to_string())
                        )
                    })?;
                reports.push(report);
            }
            reports
        }
        (None, Some(path)) => vec![crawl_path(state_dir, path, &args)?],
        (None, None) => return Err(UsageError("give a pipeline file or --path".to_owned()).into()),
    };
    let text = if args.format == OutputFormat::Json {
        json(&reports)?
    } else {
        reports.iter().map(render_report).collect::<String>()
    };
    print_out(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn crawl_path(state_dir: &Path, path: &str, args: &CrawlArgs) -> Result<CrawlReport> {
    let database = args.database.clone().ok_or_else(|| {
        UsageError("--path needs --database, the catalog database to write".to_owned())
    })?;
    if !pipectl_spec::validate::valid_name(&database) {
        return Err(UsageError(format!(
            "invalid database name `{database}`: use letters, digits, `-` and `_`"
        ))
        .into());
    }
    // The store is opened at the path's parent, so the crawled folder keeps its name.
    let (scheme, rest) = path.split_once("://").ok_or_else(|| {
        UsageError(format!(
            "`{path}` is not a URL; write file:///abs/dir or s3://bucket/prefix"
        ))
    })?;
    let rest = rest.trim_end_matches('/');
    let (store_url, prefix) = match scheme {
        "file" => {
            let local = Path::new(rest);
            let absolute = if local.is_absolute() {
                local.to_owned()
            } else {
                std::env::current_dir()?.join(local)
            };
            if !absolute.is_dir() {
                return Err(UsageError(format!("{} is not a folder", absolute.display())).into());
            }
            let parent = absolute.parent().unwrap_or(Path::new("/"));
            let name = absolute
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (format!("file://{}", parent.display()), name)
        }
        "s3" => {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            (format!("s3://{bucket}"), key.to_owned())
        }
        _ => {
            return Err(UsageError(format!(
                "cannot crawl `{path}`: only file:// and s3:// paths can be crawled"
            ))
            .into());
        }
    };
    let mut pipeline: Pipeline = serde_json::from_value(serde_json::json!({
        "version": 1,
        "name": "crawl",
    }))?;
    // Built through serde so the connection's other settings keep their defaults.
    let connection: Connection = serde_json::from_value(serde_json::json!({
        "url": store_url,
        "endpoint": args.endpoint,
        "region": args.region,
        "allow_http": args.allow_http
            || args.endpoint.as_deref().is_some_and(|e| e.starts_with("http://")),
    }))?;
    pipeline.connections.insert("path".to_owned(), connection);
    let connections =
        Connections::resolve(&pipeline, Path::new("."), env_lookup).map_err(|e| anyhow!("{e}"))?;
    let handle = connections
        .object_store("path")
        .map_err(|e| anyhow!("{e}"))?;
    let (base_url, storage) = connections
        .catalog_location("path")
        .map_err(|e| anyhow!("{e}"))?;
    let target = CrawlTarget {
        store: handle.store.clone(),
        base: handle.prefix.clone(),
        base_url,
        storage,
        prefix,
        layout: Layout::Guess {
            table_level: args.table_level,
        },
        csv_null_value: args.null_value.clone().unwrap_or_default(),
    };
    let options = CrawlOptions {
        database,
        crawler: format!("pipectl crawl {path}"),
        run_id: None,
        table_prefix: args.table_prefix.clone().unwrap_or_default(),
        schema_change: match args.schema_change {
            SchemaChangeArg::Update => SchemaChangePolicy::Update,
            SchemaChangeArg::Log => SchemaChangePolicy::Log,
            SchemaChangeArg::Deprecate => SchemaChangePolicy::Deprecate,
        },
        recrawl: match args.recrawl {
            RecrawlArg::All => RecrawlPolicy::All,
            RecrawlArg::NewFolders => RecrawlPolicy::NewFolders,
        },
        include: args.include.clone(),
        exclude: args.exclude.clone(),
    };
    let store = open_state(state_dir)?;
    runtime()?
        .block_on(crawl::crawl(&[target], &options, &store))
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("crawling {path}"))
}

fn render_report(r: &CrawlReport) -> String {
    let mut out = String::new();
    for w in &r.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    let mut t = table();
    t.set_header(["table", "action", "partitions", "files", "changes"]);
    for tb in &r.tables {
        t.add_row([
            format!("{}.{}", r.database, tb.table),
            tb.action.clone(),
            tb.partitions.to_string(),
            human_count(tb.files),
            tb.changes.join("\n"),
        ]);
    }
    out.push_str(&format!(
        "{t}\ncrawled {} objects ({} schemas read) into database `{}`\n",
        human_count(r.objects),
        human_count(r.files_read),
        r.database
    ));
    out
}

/// Columns as `name type`, comma-separated.
fn column_list(columns: &[CatalogColumn]) -> String {
    comma_list(
        columns
            .iter()
            .map(|c| format!("{} {}", c.name, c.data_type)),
    )
}
