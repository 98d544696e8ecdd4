//! Loading a spec file: parse -> schema check -> typed spec -> semantic checks -> DAG.
//!
//! Every phase is pure and collects all of its errors; a later phase runs only when the earlier
//! ones produced something it can work on, so one pass reports everything that can be known.

use std::collections::BTreeMap;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::dag::{Dag, DagErrorKind};
use crate::diag::{Diagnostic, did_you_mean};
use crate::env::env_refs;
use crate::lang::{datatype, expr, template};
use crate::types::{
    AddColumnsTransform, Connection, Crawler, DatabaseSource, Format, GeneratorSource, Maintenance,
    MysqlCdcSource, Pipeline, PostgresCdcSource, Schedule, Sink, Source, TableRule, TableType,
    Transform,
};
use crate::yaml::{self, Node, NodeKind, PathSeg, Pos, Style};

mod stream;
pub use stream::{MQTT_SCHEMES, NATS_SCHEMES, is_stream_source, is_streaming, valid_field_path};

/// Largest spec file accepted.
pub const MAX_SPEC_BYTES: usize = 4 * 1024 * 1024;

/// A spec that passed every check.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    /// The file name as given.
    pub file: String,
    /// The file's text.
    pub source: String,
    /// The typed pipeline.
    pub pipeline: Pipeline,
    /// The step graph.
    pub dag: Dag,
    /// First 16 hex digits of the SHA-256 of the file's bytes, recorded with every run.
    pub hash: String,
    /// Warnings: the spec runs, but probably not as meant.
    pub warnings: Vec<Diagnostic>,
}

/// Loads and checks a spec from bytes read from `file`. On failure, every diagnostic found
/// (errors and warnings), each carrying the file name and source line.
pub fn load_bytes(file: &str, bytes: &[u8]) -> Result<LoadedSpec, Vec<Diagnostic>> {
    let origin = Pos { line: 1, column: 1 };
    if bytes.len() > MAX_SPEC_BYTES {
        return Err(vec![
            Diagnostic::error(
                origin,
                "",
                format!(
                    "the file is {} bytes; specs larger than {MAX_SPEC_BYTES} bytes are refused",
                    bytes.len()
                ),
            )
            .with_help("is this really a pipeline spec?")
            .in_file(file, ""),
        ]);
    }
    let source = match std::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let line = good.iter().filter(|b| **b == b'\n').count() + 1;
            let column =
                String::from_utf8_lossy(good.rsplit(|b| *b == b'\n').next().unwrap_or_default())
                    .chars()
                    .count()
                    + 1;
            return Err(vec![
                Diagnostic::error(Pos { line, column }, "", "the file is not UTF-8 text")
                    .with_help("save the spec as UTF-8")
                    .in_file(file, &String::from_utf8_lossy(bytes)),
            ]);
        }
    };
    load_str(file, source)
}

/// Loads and checks a spec from text. See [`load_bytes`].
pub fn load_str(file: &str, source: &str) -> Result<LoadedSpec, Vec<Diagnostic>> {
    let finish = |diags: Vec<Diagnostic>| -> Vec<Diagnostic> {
        let mut diags: Vec<Diagnostic> =
            diags.into_iter().map(|d| d.in_file(file, source)).collect();
        diags.sort_by_key(|a| (a.line, a.column, a.severity));
        // An anchored node merged into several places is one mistake in the file, however many
        // spec paths reach it: keep the first report of each message at each position.
        diags.dedup_by(|later, first| {
            (later.line, later.column, later.severity, &later.message)
                == (first.line, first.column, first.severity, &first.message)
        });
        diags
    };
    if let Some(nul) = source.find('\0') {
        let before = &source[..nul];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        return Err(finish(vec![
            Diagnostic::error(
                Pos {
                    line: before.matches('\n').count() + 1,
                    column: before[line_start..].chars().count() + 1,
                },
                "",
                "the file contains NUL bytes; it is not a text file",
            )
            .with_help("pass a YAML pipeline spec"),
        ]));
    }
    let tree = match yaml::parse(source) {
        Ok(tree) => tree,
        Err(e) => {
            return Err(finish(vec![
                Diagnostic::error(e.pos, "", e.message).with_help_opt(e.help),
            ]));
        }
    };
    if tree.is_null() {
        return Err(finish(vec![
            Diagnostic::error(
                tree.pos,
                "",
                if source.trim().is_empty() {
                    "the file is empty"
                } else {
                    "the file has no content, only comments"
                },
            )
                .with_help("a pipeline needs at least `version: 1`, `name:` and one source and sink; see examples/quickstart"),
        ]));
    }
    let (value, schema_errors) = crate::check::check(&tree, &crate::json_schema());
    // With schema errors, the parts that passed are still checked (semantics, graph), so one
    // pass reports every error that can be known. Steps left out are remembered by name so
    // their absence is not reported as a second error.
    let partial = !schema_errors.is_empty();
    let (pipeline, dropped_steps) = match value {
        Some(v) if partial => partial_pipeline(v, &schema_errors),
        Some(v) => (serde_json::from_value::<Pipeline>(v).ok(), Vec::new()),
        None => (None, Vec::new()),
    };
    let Some(pipeline) = pipeline else {
        let mut errors = schema_errors;
        if errors.is_empty() {
            errors.push(Diagnostic::error(
                tree.pos,
                "",
                "the spec does not fit the schema",
            ));
        }
        return Err(finish(errors));
    };
    let mut v = Validator {
        tree: &tree,
        source,
        raw_connections: tree
            .get("connections")
            .map(|c| match &c.kind {
                NodeKind::Map(entries) => entries
                    .iter()
                    .filter_map(|(k, _)| k.scalar_text().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            })
            .unwrap_or_default(),
        diags: schema_errors,
    };
    v.pipeline(&pipeline);
    let dag = match Dag::build(&pipeline) {
        Ok(dag) => Some(dag),
        Err(errors) => {
            for e in errors {
                let known_elsewhere = match &e.kind {
                    DagErrorKind::UnknownInput(name) => dropped_steps.contains(name),
                    DagErrorKind::Unread | DagErrorKind::NoSources => !dropped_steps.is_empty(),
                    _ => false,
                };
                if known_elsewhere {
                    continue;
                }
                let mut path: Vec<PathSeg> =
                    e.path.iter().map(|s| PathSeg::Key(s.clone())).collect();
                if let Some(i) = e.input_index {
                    path.push(PathSeg::Index(i));
                }
                v.push(
                    Diagnostic::error(Pos::default(), "", e.message).with_help_opt(e.help),
                    &path,
                );
            }
            None
        }
    };
    let (errors, warnings): (Vec<_>, Vec<_>) = v.diags.into_iter().partition(Diagnostic::is_error);
    match dag {
        Some(dag) if errors.is_empty() => Ok(LoadedSpec {
            file: file.to_owned(),
            source: source.to_owned(),
            pipeline,
            dag,
            hash: hash_hex(source.as_bytes()),
            warnings: finish(warnings),
        }),
        _ => Err(finish(errors.into_iter().chain(warnings).collect())),
    }
}

/// The pipeline built from the parts of the spec that passed the schema check, and the names
/// of the steps left out. Each entry is kept when it deserializes on its own (an unknown key
/// was already dropped from it); `None` when not even the skeleton can be built.
fn partial_pipeline(
    value: serde_json::Value,
    errors: &[Diagnostic],
) -> (Option<Pipeline>, Vec<String>) {
    use crate::types::{Connection, Crawler, Schedule, Sink, Source, Transform};
    fn fits<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> bool {
        serde_json::from_value::<T>(v.clone()).is_ok()
    }
    let serde_json::Value::Object(mut map) = value else {
        return (None, Vec::new());
    };
    if !map.get("version").is_some_and(fits::<u32>) {
        map.insert("version".to_owned(), 1.into());
    }
    if !map.get("name").is_some_and(fits::<String>) {
        map.insert("name".to_owned(), "unnamed".into());
    }
    if !map.get("schedule").is_none_or(fits::<Option<Schedule>>) {
        map.remove("schedule");
    }
    if !map
        .get("maintenance")
        .is_none_or(fits::<Option<crate::types::Maintenance>>)
    {
        map.remove("maintenance");
    }
    let mut dropped = Vec::new();
    // An unknown top-level key may be a misspelled section (`sinkss:`): its steps exist, so
    // steps that look unread or a pipeline that looks source-less are not reported on top.
    if errors.iter().any(|e| e.path.is_empty()) {
        dropped.push("*".to_owned());
    }
    // A step with a wrong value was checked without that value; checking the rest would invent
    // errors (`count: many` read as no count at all). Only unknown keys leave a step whole.
    let damaged = |section: &str, name: &str| {
        let prefix = format!("{section}.{name}");
        errors.iter().any(|e| {
            let under = e.path == prefix
                || e.path.starts_with(&format!("{prefix}."))
                || e.path.starts_with(&format!("{prefix}["));
            under && !e.message.starts_with("unknown key `")
        })
    };
    type Fits = fn(&serde_json::Value) -> bool;
    let sections: [(&str, Fits); 5] = [
        ("connections", fits::<Connection>),
        ("sources", fits::<Source>),
        ("transforms", fits::<Transform>),
        ("sinks", fits::<Sink>),
        ("crawlers", fits::<Crawler>),
    ];
    for (section, fits_section) in sections {
        if errors.iter().any(|e| e.path == section) && section != "connections" {
            // The whole section is unusable: its steps are unknown, but they exist.
            dropped.push(format!("{section}.*"));
        }
        if let Some(serde_json::Value::Object(entries)) = map.get_mut(section) {
            entries.retain(|name, entry| {
                let keep =
                    fits_section(entry) && (section == "connections" || !damaged(section, name));
                if !keep && section != "connections" {
                    dropped.push(name.clone());
                }
                keep
            });
        }
    }
    // Steps whose whole entry failed (e.g. an unknown `type`) are absent from the value.
    for e in errors {
        let mut parts = e.path.splitn(3, '.');
        if let (Some(section), Some(name)) = (parts.next(), parts.next()) {
            let name = name.split('[').next().unwrap_or(name);
            if ["sources", "transforms", "sinks", "crawlers"].contains(&section)
                && !dropped.iter().any(|d| d == name)
            {
                let present = map.get(section).and_then(|s| s.get(name)).is_some();
                if !present {
                    dropped.push(name.to_owned());
                }
            }
        }
    }
    (
        serde_json::from_value(serde_json::Value::Object(map)).ok(),
        dropped,
    )
}

fn hash_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Parses a cron expression as pipectl reads it: 5 fields (minute precision) or 6-7 (with seconds, year).
pub fn parse_cron(expr: &str) -> Result<cron::Schedule, String> {
    let fields = expr.split_whitespace().count();
    let normalized = match fields {
        5 => format!("0 {expr}"),
        6 | 7 => expr.to_owned(),
        n => {
            return Err(format!(
                "a cron expression has 5 fields (min hour day month weekday) or 6 with seconds first; found {n}"
            ));
        }
    };
    cron::Schedule::from_str(&normalized).map_err(|e| {
        let text = e.to_string();
        // The crate's message repeats the expression with a caret under it; keep the last line,
        // which says what is wrong.
        text.lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or(&text)
            .to_owned()
    })
}

/// True when `name` is usable as a step, connection or pipeline name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Checks a PostgreSQL object name used unquoted: a letter or `_` first, then lowercase
/// letters, digits and `_` (and `$`, except in `slot` names, which the server restricts to
/// `[a-z0-9_]`), at most 63 bytes (NAMEDATALEN - 1). The error says what is wrong.
pub fn pg_identifier(name: &str, slot: bool) -> std::result::Result<(), &'static str> {
    if name.is_empty() {
        return Err("the name is empty");
    }
    if name.len() > 63 {
        return Err("PostgreSQL names are at most 63 bytes");
    }
    let first = name.chars().next().unwrap_or('_');
    if !(first.is_ascii_lowercase() || first == '_') {
        return Err("the name must start with a lowercase letter or `_`");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || (c == '$' && !slot))
    {
        return Err("only lowercase letters, digits and `_` are allowed");
    }
    Ok(())
}

/// Object-store URL schemes sinks accept.
pub const OBJECT_STORE_SCHEMES: &[&str] = &["file", "memory", "s3"];
/// Database URL schemes sources accept.
pub const DATABASE_SCHEMES: &[&str] = &["sqlite"];
/// URL schemes `postgres` sources accept.
pub const POSTGRES_SCHEMES: &[&str] = &["postgres", "postgresql"];
/// URL schemes `mysql` sources accept (MariaDB included).
pub const MYSQL_SCHEMES: &[&str] = &["mysql", "mariadb"];

/// The scheme of a URL, if it has one.
pub fn url_scheme(url: &str) -> Option<&str> {
    url.split_once("://").map(|(s, _)| s)
}

/// Placeholders allowed in sink keys.
pub const KEY_PLACEHOLDERS: &[&str] = &["pipeline", "source", "schema", "table", "run_id", "date"];

struct Validator<'t> {
    tree: &'t Node,
    source: &'t str,
    /// Every connection name in the file, including ones left out for schema errors.
    raw_connections: Vec<String>,
    diags: Vec<Diagnostic>,
}

fn key(s: &str) -> PathSeg {
    PathSeg::Key(s.to_owned())
}

impl Validator<'_> {
    /// Records a diagnostic at the node `path` leads to (or the deepest node found on the way).
    fn push(&mut self, mut diag: Diagnostic, path: &[PathSeg]) {
        let (node, found) = self.tree.locate(path);
        // A problem with a whole mapping (a step) is shown at the key that names it.
        let pos = match (&node.kind, found, path.split_last()) {
            (NodeKind::Map(_), true, Some((PathSeg::Key(last), parent))) => {
                let (owner, _) = self.tree.locate(parent);
                owner.entry(last).map_or(node.pos, |(k, _)| k.pos)
            }
            _ => node.pos,
        };
        diag.line = pos.line;
        diag.column = pos.column;
        diag.path = yaml::path_to_string(path);
        self.diags.push(diag);
    }

    fn error(&mut self, path: &[PathSeg], message: impl Into<String>, help: Option<String>) {
        self.push(
            Diagnostic::error(Pos::default(), "", message).with_help_opt(help),
            path,
        );
    }

    /// An error inside a string value at a character offset (e.g. a template or condition).
    fn error_in_text(
        &mut self,
        path: &[PathSeg],
        line_in_text: usize,
        column_in_text: usize,
        message: String,
        help: Option<String>,
    ) {
        let (node, _) = self.tree.locate(path);
        let pos = text_position(self.source, node, line_in_text, column_in_text);
        let diag = Diagnostic::error(pos, yaml::path_to_string(path), message).with_help_opt(help);
        self.diags.push(diag);
    }

    fn pipeline(&mut self, p: &Pipeline) {
        if p.version != 1 {
            self.error(
                &[key("version")],
                format!("unsupported spec version {}", p.version),
                Some("this pipectl reads `version: 1`".to_owned()),
            );
        }
        if !valid_name(&p.name) {
            self.error(
                &[key("name")],
                format!("invalid pipeline name `{}`", p.name),
                Some("use letters, digits, `-` and `_` (at most 128)".to_owned()),
            );
        }
        if let Some(schedule) = &p.schedule {
            self.schedule(schedule);
        }
        if let Some(run) = &p.run {
            self.run_settings(p, run);
        }
        if let Some(m) = &p.maintenance {
            self.maintenance(p, m);
        }
        for (name, conn) in &p.connections {
            self.connection(name, conn);
        }
        for (name, source) in &p.sources {
            self.step_name("sources", name);
            match source {
                Source::Sqlite(db) => {
                    self.database(p, name, db, DATABASE_SCHEMES);
                    for (field, used) in [
                        ("tables", !db.tables.is_empty()),
                        ("transformations", !db.transformations.is_empty()),
                    ] {
                        if used {
                            self.error(
                                &[key("sources"), key(name), key(field)],
                                format!("`{field}` is not supported by `sqlite` sources yet"),
                                Some(
                                    "use a `postgres` or `mysql` source, or `transforms:` steps"
                                        .to_owned(),
                                ),
                            );
                        }
                    }
                }
                Source::Postgres(db) => self.database(p, name, db, POSTGRES_SCHEMES),
                Source::Mysql(db) => self.database(p, name, db, MYSQL_SCHEMES),
                Source::PostgresCdc(cdc) => self.postgres_cdc(p, name, cdc),
                Source::MysqlCdc(cdc) => self.mysql_cdc(p, name, cdc),
                Source::Generator(g) => self.generator(p, name, g),
                Source::Nats(_) | Source::Mqtt(_) | Source::Http(_) => {
                    self.stream_source(p, name, source)
                }
                Source::Files(f) => self.files_source(p, name, f),
            }
        }
        self.stream_wiring(p);
        for (name, transform) in &p.transforms {
            self.step_name("transforms", name);
            self.transform(name, transform);
        }
        for (name, sink) in &p.sinks {
            self.step_name("sinks", name);
            match sink {
                Sink::ObjectStore(s) => {
                    let base = [key("sinks"), key(name)];
                    self.connection_ref(
                        p,
                        &base,
                        &s.connection,
                        OBJECT_STORE_SCHEMES,
                        "an object store",
                    );
                    self.sink_key(&base, &s.key);
                    self.format(&base, &s.format);
                    // A Delta table's root is checked by `table_options`.
                    if s.mode == crate::types::WriteMode::FullRefresh
                        && !matches!(s.format, Format::Delta(_))
                    {
                        self.full_refresh_key(&base, &s.key);
                    }
                    let cdc_fed = !s.inputs.is_empty()
                        && s.inputs.iter().all(|i| {
                            matches!(
                                p.sources.get(i),
                                Some(Source::PostgresCdc(_) | Source::MysqlCdc(_))
                            )
                        });
                    self.table_options(&base, s, cdc_fed);
                }
                Sink::Firehose(s) => self.firehose_sink(p, name, s),
            }
        }
        for (name, crawler) in &p.crawlers {
            self.step_name("crawlers", name);
            match crawler {
                Crawler::Catalog(c) => {
                    if !valid_name(&c.database) {
                        self.error(
                            &[key("crawlers"), key(name), key("database")],
                            format!("invalid database name `{}`", c.database),
                            Some("use letters, digits, `-` and `_`".to_owned()),
                        );
                    }
                    self.crawler(p, name, c);
                }
            }
        }
    }

    /// A full refresh replaces what is under each table's key, so that key must name the
    /// table and stay the same from run to run.
    fn full_refresh_key(&mut self, base: &[PathSeg], template: &str) {
        let path = [base[0].clone(), base[1].clone(), key("key")];
        for placeholder in ["{run_id}", "{date}"] {
            if let Some(at) = template.find(placeholder) {
                self.error_in_text(
                    &path,
                    1,
                    template[..at].chars().count() + 1,
                    format!("`mode: full_refresh` replaces the data under this key, but `{placeholder}` gives every run a new key, so nothing would ever be replaced"),
                    Some("remove the placeholder, or use `mode: append`".to_owned()),
                );
            }
        }
        if !template.contains("{table}") {
            self.error(
                &path,
                "`mode: full_refresh` replaces each table's data under its key, but this key has no `{table}`, so tables would replace each other",
                Some("add `{table}`, e.g. `clean/{schema}/{table}/`".to_owned()),
            );
        }
    }

    fn crawler(&mut self, p: &Pipeline, name: &str, c: &crate::types::CatalogCrawler) {
        let base = [key("crawlers"), key(name)];
        if let Some(prefix) = &c.table_prefix
            && !prefix
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
        {
            let mut path = base.to_vec();
            path.push(key("table_prefix"));
            self.error(
                &path,
                format!(
                    "table prefix `{prefix}` would make table names queries cannot use unquoted"
                ),
                Some("use lowercase letters, digits and `_`, e.g. `raw_`".to_owned()),
            );
        }
        for (i, input) in c.inputs.iter().enumerate() {
            let connection = match p.sinks.get(input) {
                Some(Sink::ObjectStore(s)) => &s.connection,
                Some(Sink::Firehose(s)) => &s.connection,
                None => continue,
            };
            if let Some(conn) = p.connections.get(connection)
                && url_scheme(&conn.url) == Some("memory")
            {
                let mut path = base.to_vec();
                path.extend([key("inputs"), PathSeg::Index(i)]);
                self.error(
                    &path,
                    format!(
                        "sink `{input}` writes to `memory://` connection `{connection}`, which is gone when the run ends: a catalogued table there could never be queried"
                    ),
                    Some("write the sink to a `file://` or `s3://` connection".to_owned()),
                );
            }
        }
        for (field, globs) in [("include", &c.include), ("exclude", &c.exclude)] {
            for (i, glob) in globs.iter().enumerate() {
                if glob.trim().is_empty() || glob.starts_with('/') {
                    let mut path = base.to_vec();
                    path.extend([key(field), PathSeg::Index(i)]);
                    self.error(
                        &path,
                        format!(
                            "`{glob}` matches no key: globs are relative to the sink's fixed prefix"
                        ),
                        Some(
                            "write e.g. `film/**` or `**/*.parquet`, without a leading `/`"
                                .to_owned(),
                        ),
                    );
                }
            }
        }
    }

    fn files_source(&mut self, p: &Pipeline, name: &str, f: &crate::types::FilesSource) {
        let base = [key("sources"), key(name)];
        self.connection_ref(
            p,
            &base,
            &f.connection,
            OBJECT_STORE_SCHEMES,
            "an object store",
        );
        let at = |field: &str| {
            let mut path = base.to_vec();
            path.push(key(field));
            path
        };
        if let Some(d) = &f.delimiter
            && !(d.len() == 1 && d.is_ascii() && !matches!(d.as_str(), "\"" | "\n" | "\r"))
        {
            self.error(
                &at("delimiter"),
                format!("delimiter must be one ASCII character other than a quote or newline, found {d:?}"),
                Some("e.g. `\",\"`, `\";\"`, `\"|\"` or `\"\\t\"`".to_owned()),
            );
        }
        self.declared_columns(&at("columns"), &f.columns);
        if let Some(problem) =
            null_value_problem(&f.null_value, f.delimiter.as_deref().unwrap_or(","))
        {
            self.error(&at("null_value"), problem, Some(NULL_VALUE_HELP.to_owned()));
        }
        let csv_only = [
            ("delimiter", f.delimiter.is_some()),
            ("header", f.header.is_some()),
            ("null_value", !f.null_value.is_empty()),
        ];
        if matches!(
            f.format,
            crate::types::FilesFormat::Jsonl | crate::types::FilesFormat::Parquet
        ) {
            for (field, set) in csv_only {
                if set {
                    self.error(
                        &at(field),
                        format!(
                            "`{field}` applies to CSV files, but this source reads {}",
                            format!("{:?}", f.format).to_lowercase()
                        ),
                        Some(format!("remove `{field}`, or set `format: csv`")),
                    );
                }
            }
        }
        for (field, value) in [("table", &f.table), ("error_table", &f.error_table)] {
            if let Some(v) = value
                && !valid_name(v)
            {
                self.error(
                    &at(field),
                    format!("invalid table name `{v}`"),
                    Some("use letters, digits, `-` and `_`".to_owned()),
                );
            }
        }
        if f.error_table.is_some() && f.error_table == f.table {
            self.error(
                &at("error_table"),
                "`error_table` is the table the files land in; malformed-file records would mix with the data".to_owned(),
                Some("name the error table differently, e.g. `landing_errors`".to_owned()),
            );
        }
    }

    fn step_name(&mut self, section: &str, name: &str) {
        if !valid_name(name) {
            self.error(
                &[key(section), key(name)],
                format!("invalid step name `{name}`"),
                Some("use letters, digits, `-` and `_` (at most 128)".to_owned()),
            );
        }
    }

    fn run_settings(&mut self, p: &Pipeline, r: &crate::types::RunSettings) {
        let positive = [
            ("timeout_secs", r.timeout_secs),
            ("step_timeout_secs", r.step_timeout_secs),
        ];
        for (field, value) in positive {
            if value.is_some_and(|v| !(v > 0.0 && v.is_finite())) {
                self.error(
                    &[key("run"), key(field)],
                    "must be a positive number of seconds",
                    None,
                );
            }
        }
        if let Some(retry) = &r.retry {
            if retry.max_attempts == 0 {
                self.error(
                    &[key("run"), key("retry"), key("max_attempts")],
                    "must be at least 1 (the first attempt counts)",
                    Some("`max_attempts: 3` makes up to two retries".to_owned()),
                );
            }
            for (field, value) in [
                ("initial_backoff_secs", retry.initial_backoff_secs),
                ("max_backoff_secs", retry.max_backoff_secs),
            ] {
                if !(value >= 0.0 && value.is_finite()) {
                    self.error(
                        &[key("run"), key("retry"), key(field)],
                        "must be zero or a positive number of seconds",
                        None,
                    );
                }
            }
        }
        if let Some(files) = &r.on_new_files {
            let base = [key("run"), key("on_new_files")];
            self.connection_ref(
                p,
                &base,
                &files.connection,
                OBJECT_STORE_SCHEMES,
                "an object store",
            );
            if !(files.poll_secs > 0.0 && files.poll_secs.is_finite()) {
                self.error(
                    &[key("run"), key("on_new_files"), key("poll_secs")],
                    "must be a positive number of seconds",
                    None,
                );
            }
        }
    }

    fn schedule(&mut self, s: &Schedule) {
        if let Err(e) = parse_cron(&s.cron) {
            self.error(&[key("schedule"), key("cron")], format!("invalid cron expression `{}`: {e}", s.cron), Some("examples: `*/15 * * * *` (every 15 minutes), `0 30 2 * * Mon-Fri` (with seconds)".to_owned()));
        }
        if chrono_tz::Tz::from_str(&s.timezone).is_err() {
            let guess = did_you_mean(&s.timezone, chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()));
            self.error(
                &[key("schedule"), key("timezone")],
                format!("unknown time zone `{}`", s.timezone),
                Some(match guess {
                    Some(g) => format!(
                        "did you mean `{g}`? Use an IANA name such as `Europe/Berlin` or `UTC`"
                    ),
                    None => "use an IANA name such as `Europe/Berlin` or `UTC`".to_owned(),
                }),
            );
        }
        if s.queue_limit == 0 {
            self.error(
                &[key("schedule"), key("queue_limit")],
                "must be at least 1",
                Some("how many runs may wait behind a running one (default 16)".to_owned()),
            );
        }
    }

    fn maintenance(&mut self, p: &Pipeline, m: &Maintenance) {
        if let Err(e) = parse_cron(&m.schedule) {
            self.error(
                &[key("maintenance"), key("schedule")],
                format!("invalid cron expression `{}`: {e}", m.schedule),
                Some(
                    "examples: `0 3 * * *` (daily at 03:00), `0 0 4 * * Sun` (with seconds)"
                        .to_owned(),
                ),
            );
        }
        if chrono_tz::Tz::from_str(&m.timezone).is_err() {
            self.error(
                &[key("maintenance"), key("timezone")],
                format!("unknown time zone `{}`", m.timezone),
                Some("use an IANA name such as `Europe/Berlin` or `UTC`".to_owned()),
            );
        }
        if m.compact.is_none() && m.vacuum.is_none() {
            self.error(
                &[key("maintenance")],
                "maintenance does nothing: it has neither `compact` nor `vacuum`",
                Some(
                    "add `compact: {}` or `vacuum: {retention: 7d}`, or remove the section"
                        .to_owned(),
                ),
            );
        }
        if let Some(v) = &m.vacuum
            && let Err(e) = crate::duration::parse(&v.retention)
        {
            self.error(
                &[key("maintenance"), key("vacuum"), key("retention")],
                e,
                None,
            );
        }
        if !p.sinks.values().any(|s| matches!(s, Sink::ObjectStore(_))) {
            self.error(
                &[key("maintenance")],
                "maintenance works on the tables of `object_store` sinks, and this pipeline has none",
                None,
            );
        }
    }

    fn connection(&mut self, name: &str, c: &Connection) {
        let base = [key("connections"), key(name)];
        if !valid_name(name) {
            self.error(
                &base,
                format!("invalid connection name `{name}`"),
                Some("use letters, digits, `-` and `_`".to_owned()),
            );
        }
        if c.tls.is_some() {
            let scheme = url_scheme(&c.url).unwrap_or_default();
            let database = POSTGRES_SCHEMES.contains(&scheme) || MYSQL_SCHEMES.contains(&scheme);
            // A URL made entirely of `${env:...}` has no scheme until run time.
            if !database && !c.url.starts_with("${") {
                self.error(
                    &[base[0].clone(), base[1].clone(), key("tls")],
                    format!("`tls` applies to PostgreSQL and MySQL connections, not `{scheme}://`"),
                    Some("for S3 use an `https://` endpoint; remove `tls` here".to_owned()),
                );
            }
        }
        let fields: [(&str, Option<&String>); 5] = [
            ("url", Some(&c.url)),
            ("endpoint", c.endpoint.as_ref()),
            ("region", c.region.as_ref()),
            ("access_key_id", c.access_key_id.as_ref()),
            ("secret_access_key", c.secret_access_key.as_ref()),
        ];
        for (field, value) in fields {
            let Some(value) = value else { continue };
            let path = [base[0].clone(), base[1].clone(), key(field)];
            match env_refs(value) {
                Err(e) => self.error_in_text(
                    &path,
                    1,
                    e.offset + 1,
                    e.message,
                    Some("write secrets as `${env:NAME}`".to_owned()),
                ),
                Ok(refs) => {
                    if field == "secret_access_key" && refs.is_empty() {
                        self.error(&path, "a secret is written into the spec", Some("specs live in git: use `${env:NAME}` and set NAME in the environment".to_owned()));
                    }
                    for r in refs {
                        if std::env::var_os(&r.name).is_none() {
                            self.push(
                                Diagnostic::warning(Pos::default(), "", format!("environment variable `{}` is not set here; `pipectl run` will fail without it", r.name)),
                                &path,
                            );
                        }
                    }
                }
            }
        }
        match url_scheme(&c.url) {
            // A URL whose scheme comes from the environment (`${env:DATABASE_URL}`, as
            // twelve-factor deployments keep it) is checked when the run resolves it.
            None if c.url.starts_with("${") => {}
            None => self.error(&[base[0].clone(), base[1].clone(), key("url")], format!("`{}` is not a URL", c.url), Some("write `scheme://...`, e.g. `sqlite://data/app.db`, `file://lake`, `s3://bucket/prefix`".to_owned())),
            Some(scheme) => {
                let known: Vec<&str> = OBJECT_STORE_SCHEMES.iter().chain(DATABASE_SCHEMES).chain(POSTGRES_SCHEMES).chain(MYSQL_SCHEMES).chain(NATS_SCHEMES).chain(MQTT_SCHEMES).copied().collect();
                if !known.contains(&scheme) {
                    let help = match did_you_mean(scheme, known.iter().copied()) {
                        Some(g) => format!("did you mean `{g}://`? Supported: {}", known.join(", ")),
                        None => format!("supported schemes: {}", known.join(", ")),
                    };
                    self.error(&[base[0].clone(), base[1].clone(), key("url")], format!("unsupported URL scheme `{scheme}`"), Some(help));
                }
                if let Some(password) = url_password(&c.url)
                    && env_refs(password).map(|r| r.is_empty()).unwrap_or(false) {
                        self.error(&[base[0].clone(), base[1].clone(), key("url")], "the URL contains a password written into the spec", Some("specs live in git: write `${env:NAME}` in place of the password".to_owned()));
                    }
            }
        }
    }

    fn connection_ref(
        &mut self,
        p: &Pipeline,
        base: &[PathSeg],
        name: &str,
        schemes: &[&str],
        what: &str,
    ) {
        let mut path = base.to_vec();
        path.push(key("connection"));
        match p.connections.get(name) {
            // Defined, but left out for its own schema errors: already reported.
            None if self.raw_connections.iter().any(|c| c == name) => {}
            None => {
                let help = match did_you_mean(name, p.connections.keys().map(String::as_str)) {
                    Some(g) => format!("did you mean `{g}`?"),
                    None if p.connections.is_empty() => "define it under `connections:`".to_owned(),
                    None => format!(
                        "connections defined: {}",
                        p.connections.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                };
                self.error(
                    &path,
                    format!("connection `{name}` is not defined"),
                    Some(help),
                );
            }
            Some(conn) => {
                if let Some(scheme) = url_scheme(&conn.url)
                    && !schemes.contains(&scheme)
                    && (OBJECT_STORE_SCHEMES.contains(&scheme)
                        || DATABASE_SCHEMES.contains(&scheme)
                        || POSTGRES_SCHEMES.contains(&scheme)
                        || MYSQL_SCHEMES.contains(&scheme)
                        || NATS_SCHEMES.contains(&scheme)
                        || MQTT_SCHEMES.contains(&scheme))
                {
                    self.error(&path, format!("connection `{name}` is a `{scheme}://` URL; this step needs {what} ({})", schemes.iter().map(|s| format!("{s}://")).collect::<Vec<_>>().join(", ")), None);
                }
            }
        }
    }

    fn database(&mut self, p: &Pipeline, name: &str, db: &DatabaseSource, schemes: &[&str]) {
        let base = [key("sources"), key(name)];
        self.connection_ref(p, &base, &db.connection, schemes, "a database");
        for (pattern, settings) in &db.tables {
            let at = [
                base[0].clone(),
                base[1].clone(),
                key("tables"),
                key(pattern),
            ];
            if settings.split.is_some() && settings.bookmark.is_some() {
                let mut path = at.to_vec();
                path.push(key("split"));
                self.error(
                    &path,
                    "`split` reads a full load in ranges and cannot be combined with `bookmark`",
                    Some("incremental reads after the first are small; split a full-load table only, or give the bookmarked table its own source".to_owned()),
                );
            }
            if let Some(b) = &settings.bookmark {
                let mut path = at.to_vec();
                path.push(key("bookmark"));
                path.push(key("keys"));
                if b.keys.is_empty() {
                    self.error(
                        &path,
                        "a bookmark needs at least one key column",
                        Some("e.g. `keys: [updated_at, id]`".to_owned()),
                    );
                }
                for (i, k) in b.keys.iter().enumerate() {
                    if b.keys[..i].contains(k) {
                        self.error(&path, format!("key column `{k}` is listed twice"), None);
                    }
                }
            }
        }
        self.table_rules(&base, &db.include, &db.exclude);
        let mut seen = BTreeMap::new();
        for (i, q) in db.queries.iter().enumerate() {
            let path = [
                base[0].clone(),
                base[1].clone(),
                key("queries"),
                PathSeg::Index(i),
            ];
            if q.sql.trim().is_empty() {
                self.error(
                    &[
                        path[0].clone(),
                        path[1].clone(),
                        path[2].clone(),
                        path[3].clone(),
                        key("sql"),
                    ],
                    "empty query",
                    None,
                );
            }
            if let Some(first) = seen.insert(q.table.clone(), i) {
                self.error(
                    &[
                        path[0].clone(),
                        path[1].clone(),
                        path[2].clone(),
                        path[3].clone(),
                        key("table"),
                    ],
                    format!(
                        "table `{}` is already produced by queries[{first}]",
                        q.table
                    ),
                    Some("give each query its own table name".to_owned()),
                );
            }
        }
    }

    /// The include/exclude selection rules of a database source.
    fn table_rules(&mut self, base: &[PathSeg; 2], include: &[TableRule], exclude: &[TableRule]) {
        for (list, rules) in [("include", include), ("exclude", exclude)] {
            for (i, rule) in rules.iter().enumerate() {
                for (field, pattern) in [("schema", &rule.schema), ("table", &rule.table)] {
                    if pattern.is_empty() {
                        self.error(
                            &[
                                base[0].clone(),
                                base[1].clone(),
                                key(list),
                                PathSeg::Index(i),
                                key(field),
                            ],
                            "empty pattern",
                            Some("use `%` to match every name".to_owned()),
                        );
                    }
                }
            }
        }
    }

    fn postgres_cdc(&mut self, p: &Pipeline, name: &str, cdc: &PostgresCdcSource) {
        let base = [key("sources"), key(name)];
        let at = |k: &str| vec![base[0].clone(), base[1].clone(), key(k)];
        self.connection_ref(p, &base, &cdc.connection, POSTGRES_SCHEMES, "a database");
        self.table_rules(&base, &cdc.include, &cdc.exclude);
        self.no_view_rules(
            &base,
            &cdc.include,
            "logical replication carries tables' changes only",
            "postgres",
        );
        if let Err(why) = pg_identifier(&cdc.publication, false) {
            self.error(
                &at("publication"),
                format!("invalid publication name `{}`: {why}", cdc.publication),
                Some("use lowercase letters, digits and `_`, e.g. `pipectl_orders`".to_owned()),
            );
        }
        if let Err(why) = pg_identifier(&cdc.slot, true) {
            self.error(
                &at("slot"),
                format!("invalid replication slot name `{}`: {why}", cdc.slot),
                Some("use lowercase letters, digits and `_`, e.g. `pipectl_orders`".to_owned()),
            );
        }
        self.commit_timestamp_column(&at("timestamp_column_name"), &cdc.timestamp_column_name);
    }

    /// A CDC source's include rules name no view: `why` the log has no view changes, and the
    /// batch source type that loads views instead.
    fn no_view_rules(
        &mut self,
        base: &[PathSeg; 2],
        include: &[TableRule],
        why: &str,
        batch: &str,
    ) {
        for (i, rule) in include.iter().enumerate() {
            if rule.table_type == Some(TableType::View) {
                self.error(
                    &[
                        base[0].clone(),
                        base[1].clone(),
                        key("include"),
                        PathSeg::Index(i),
                        key("table_type"),
                    ],
                    format!("views cannot be replicated: {why}"),
                    Some(format!(
                        "remove `table_type: view`, or load the view with a `{batch}` source"
                    )),
                );
            }
        }
    }

    /// A CDC source's `timestamp_column_name`: not empty, not another change column's name.
    fn commit_timestamp_column(&mut self, path: &[PathSeg], column: &str) {
        if column.trim().is_empty() {
            self.error(
                path,
                "empty column name",
                Some("leave it out for `_pipectl_commit_ts`".to_owned()),
            );
        } else if [
            "Op",
            "_pipectl_commit_lsn",
            "_pipectl_position",
            "_pipectl_unchanged",
        ]
        .contains(&column)
        {
            self.error(
                path,
                format!("`{column}` is the name of another change column"),
                Some("choose another name, e.g. `commit_ts`".to_owned()),
            );
        }
    }

    fn mysql_cdc(&mut self, p: &Pipeline, name: &str, cdc: &MysqlCdcSource) {
        let base = [key("sources"), key(name)];
        let at = |k: &str| vec![base[0].clone(), base[1].clone(), key(k)];
        self.connection_ref(p, &base, &cdc.connection, MYSQL_SCHEMES, "a database");
        self.table_rules(&base, &cdc.include, &cdc.exclude);
        self.no_view_rules(
            &base,
            &cdc.include,
            "the binlog carries tables' row changes only",
            "mysql",
        );
        self.commit_timestamp_column(&at("timestamp_column_name"), &cdc.timestamp_column_name);
    }

    fn generator(&mut self, p: &Pipeline, name: &str, g: &GeneratorSource) {
        let base = vec![key("sources"), key(name)];
        let at = |k: &str| {
            let mut p = base.clone();
            p.push(key(k));
            p
        };
        match template::Template::parse(&g.template) {
            Err(errors) => {
                for e in errors {
                    self.error_in_text(
                        &at("template"),
                        e.line,
                        e.column,
                        format!("template: {}", e.message),
                        e.help,
                    );
                }
            }
            Ok(parsed) => {
                // Records must be JSON objects; a sample render catches a missing quote or
                // comma now instead of at run time.
                let mut ctx = template::RenderContext::new(Some(0));
                let mut sample = String::new();
                parsed.render(&mut ctx, &mut sample);
                match serde_json::from_str::<serde_json::Value>(&sample) {
                    Ok(serde_json::Value::Object(_)) => {}
                    Ok(_) => self.error(
                        &at("template"),
                        "the template does not render a JSON object",
                        Some("write records as {\"field\": \"{{helper}}\", ...}".to_owned()),
                    ),
                    Err(e) => {
                        let shown: String = sample.chars().take(160).collect();
                        self.error(
                            &at("template"),
                            format!("the template does not render valid JSON ({e}); a sample record: {shown}"),
                            Some("check quotes around text helpers (\"{{address.state}}\") and commas between fields".to_owned()),
                        )
                    }
                }
            }
        }
        // Delivered by a firehose sink, a generator may run until stopped.
        let streamed = p
            .sinks
            .values()
            .any(|s| matches!(s, Sink::Firehose(_)) && s.inputs().iter().any(|i| i == name));
        if g.count.is_none() && g.duration_secs.is_none() && !streamed {
            self.error(
                &base,
                "a generator needs `count` or `duration_secs`",
                Some(
                    "say how many records (`count: 10000`) or for how long (`duration_secs: 60`)"
                        .to_owned(),
                ),
            );
        }
        if let Some(d) = g.duration_secs
            && !(d > 0.0 && d.is_finite())
        {
            self.error(&at("duration_secs"), "must be greater than 0", None);
        }
        if let Some(r) = g.rate_per_sec
            && !(r > 0.0 && r.is_finite())
        {
            self.error(
                &at("rate_per_sec"),
                "must be greater than 0",
                Some("leave it out to generate as fast as the pipeline takes records".to_owned()),
            );
        }
        self.declared_columns(&at("columns"), &g.columns);
    }

    /// Checks the types of a `columns:` list, and that no name is declared twice.
    fn declared_columns(&mut self, base: &[PathSeg], columns: &[crate::types::ColumnDecl]) {
        for (i, column) in columns.iter().enumerate() {
            let mut path = base.to_vec();
            path.push(PathSeg::Index(i));
            if columns[..i].iter().any(|c| c.name == column.name) {
                let mut at = path.clone();
                at.push(key("name"));
                self.error(
                    &at,
                    format!("column `{}` is declared twice", column.name),
                    None,
                );
            }
            path.push(key("type"));
            self.column_type(&path, &column.data_type);
        }
    }

    fn column_type(&mut self, path: &[PathSeg], text: &str) {
        if let Err(e) = datatype::parse_column_type(text) {
            self.error_in_text(path, 1, e.column, e.message, e.help);
        }
    }

    fn transform(&mut self, name: &str, t: &Transform) {
        let base = vec![key("transforms"), key(name)];
        let at = |parts: &[&str]| {
            let mut p = base.clone();
            p.extend(parts.iter().map(|s| key(s)));
            p
        };
        match t {
            Transform::Select(c) | Transform::Drop(c) => {
                if c.columns.is_empty() {
                    self.error(
                        &at(&["columns"]),
                        "`columns` is empty",
                        Some("list at least one column".to_owned()),
                    );
                }
                for (i, col) in c.columns.iter().enumerate() {
                    if c.columns[..i].contains(col) {
                        let mut p = at(&["columns"]);
                        p.push(PathSeg::Index(i));
                        self.error(&p, format!("column `{col}` is listed twice"), None);
                    }
                }
            }
            Transform::Rename(r) => {
                let mut targets = BTreeMap::new();
                for (from, to) in &r.columns {
                    if to.is_empty() {
                        self.error(&at(&["columns", from]), "new name is empty", None);
                    }
                    if let Some(other) = targets.insert(to.clone(), from.clone()) {
                        self.error(
                            &at(&["columns", from]),
                            format!("`{other}` and `{from}` would both be renamed to `{to}`"),
                            None,
                        );
                    }
                }
            }
            Transform::Cast(c) => {
                for (column, type_name) in &c.columns {
                    self.column_type(&at(&["columns", column]), type_name);
                }
            }
            Transform::Filter(f) => {
                if let Err(e) = expr::parse_expr(&f.condition) {
                    self.error_in_text(
                        &at(&["condition"]),
                        1,
                        e.column,
                        format!("condition: {}", e.message),
                        e.help,
                    );
                }
            }
            Transform::AddColumns(a) => self.add_columns(&base, a),
        }
        for (i, pattern) in t.tables().iter().enumerate() {
            if pattern.is_empty() {
                let mut p = at(&["tables"]);
                p.push(PathSeg::Index(i));
                self.error(
                    &p,
                    "empty table pattern",
                    Some("use `%` for all tables, or leave `tables` out".to_owned()),
                );
            }
        }
    }

    fn add_columns(&mut self, base: &[PathSeg], a: &AddColumnsTransform) {
        for (i, column) in a.columns.iter().enumerate() {
            let mut path = base.to_vec();
            path.push(key("columns"));
            path.push(PathSeg::Index(i));
            match (&column.literal, &column.generated) {
                (Some(_), Some(_)) => self.error(
                    &path,
                    format!(
                        "column `{}` has both `literal` and `generated`",
                        column.name
                    ),
                    Some("keep one".to_owned()),
                ),
                (None, None) => self.error(
                    &path,
                    format!("column `{}` needs `literal` or `generated`", column.name),
                    Some("e.g. `literal: \"sakila\"` or `generated: load_timestamp`".to_owned()),
                ),
                (Some(value), None) => {
                    if value.is_object() || value.is_array() {
                        let mut p = path.clone();
                        p.push(key("literal"));
                        self.error(&p, "a literal is a string, number, boolean or null", None);
                    }
                }
                (None, Some(_)) => {
                    if column.data_type.is_some() {
                        let mut p = path.clone();
                        p.push(key("type"));
                        self.error(
                            &p,
                            "`type` applies to literals; generated columns have fixed types",
                            None,
                        );
                    }
                }
            }
            if let Some(t) = &column.data_type {
                let mut p = path.clone();
                p.push(key("type"));
                self.column_type(&p, t);
            }
            if a.columns[..i].iter().any(|c| c.name == column.name) {
                let mut p = path.clone();
                p.push(key("name"));
                self.error(&p, format!("column `{}` is added twice", column.name), None);
            }
        }
    }

    fn sink_key(&mut self, base: &[PathSeg], template: &str) {
        let mut path = base.to_vec();
        path.push(key("key"));
        if let Err((offset, message, help)) = check_key_template(template) {
            self.error_in_text(&path, 1, offset + 1, message, help);
        }
    }

    /// Checks the options that only Delta tables take (`mode: merge`, `merge`,
    /// `partition_by`, `schema`) are not given for file formats, and that a Delta sink's are
    /// consistent. A merge fed only by CDC sources may leave out `merge:`: each table is then
    /// keyed by its primary key, ordered by the commit LSN and position, and `Op = 'D'` deletes.
    fn table_options(
        &mut self,
        base: &[PathSeg],
        s: &crate::types::ObjectStoreSink,
        cdc_fed: bool,
    ) {
        let at = |fields: &[&str]| {
            let mut path = base.to_vec();
            path.extend(fields.iter().map(|f| key(f)));
            path
        };
        let Format::Delta(delta) = &s.format else {
            let help = || Some("use `format: {type: delta}`".to_owned());
            if s.mode == crate::types::WriteMode::Merge {
                self.error(&at(&["mode"]), "`mode: merge` needs a Delta table", help());
            }
            for (field, given) in [
                ("merge", s.merge.is_some()),
                ("partition_by", !s.partition_by.is_empty()),
                ("schema", s.schema.is_some()),
            ] {
                if given {
                    self.error(
                        &at(&[field]),
                        format!("`{field}` applies to Delta tables"),
                        help(),
                    );
                }
            }
            return;
        };
        self.delta_table_key(&at(&["key"]), &s.key);
        match (&s.merge, s.mode == crate::types::WriteMode::Merge) {
            (None, true) if cdc_fed => {}
            (None, true) => self.error(
                &at(&["mode"]),
                "`mode: merge` needs `merge:` settings saying which columns identify a row",
                Some("add e.g. `merge: { keys: [id] }`".to_owned()),
            ),
            (Some(_), false) => self.error(
                &at(&["merge"]),
                "`merge:` settings apply only with `mode: merge`",
                Some("add `mode: merge`, or remove `merge:`".to_owned()),
            ),
            (Some(m), true) => self.merge_settings(&at(&["merge"]), m),
            (None, false) => {}
        }
        if !s.partition_by.is_empty()
            && !delta.partition_by.is_empty()
            && s.partition_by != delta.partition_by
        {
            self.error(
                &at(&["partition_by"]),
                format!(
                    "the sink says partition_by [{}] but its format says [{}]",
                    s.partition_by.join(", "),
                    delta.partition_by.join(", ")
                ),
                Some("give `partition_by` in one place".to_owned()),
            );
        }
        for (path, columns) in [
            (at(&["partition_by"]), &s.partition_by),
            (at(&["format", "partition_by"]), &delta.partition_by),
        ] {
            for (i, column) in columns.iter().enumerate() {
                let mut path = path.clone();
                path.push(PathSeg::Index(i));
                if column.is_empty() {
                    self.error(&path, "empty partition column name", None);
                } else if columns[..i].contains(column) {
                    self.error(
                        &path,
                        format!("partition column `{column}` is listed twice"),
                        None,
                    );
                }
            }
        }
        if let (Some(a), Some(b)) = (s.schema, delta.schema)
            && a != b
        {
            self.error(
                &at(&["schema"]),
                "the sink's `schema` policy and its format's differ",
                Some("give `schema` in one place".to_owned()),
            );
        }
    }

    /// A Delta sink's key is the root of one table, the same from run to run.
    fn delta_table_key(&mut self, path: &[PathSeg], template: &str) {
        for placeholder in ["{run_id}", "{date}"] {
            if let Some(at) = template.find(placeholder) {
                self.error_in_text(
                    path,
                    1,
                    template[..at].chars().count() + 1,
                    format!("a Delta sink's key is a table root that every run commits to, but `{placeholder}` gives every run a new root"),
                    Some("remove the placeholder; partition by a column instead (`partition_by`)".to_owned()),
                );
            }
        }
    }

    fn merge_settings(&mut self, base: &[PathSeg], m: &crate::types::MergeSettings) {
        let at = |field: &str| {
            let mut path = base.to_vec();
            path.push(key(field));
            path
        };
        if m.keys.is_empty() {
            self.error(
                &at("keys"),
                "`merge.keys` names no column",
                Some("name the columns that identify a row, e.g. `keys: [id]`".to_owned()),
            );
        }
        for (field, columns) in [("keys", &m.keys), ("sequence_by", &m.sequence_by)] {
            for (i, column) in columns.iter().enumerate() {
                let mut path = at(field);
                path.push(PathSeg::Index(i));
                if column.is_empty() {
                    self.error(&path, "empty column name", None);
                } else if columns[..i].contains(column) {
                    self.error(&path, format!("column `{column}` is listed twice"), None);
                }
            }
        }
        if let Some(condition) = &m.delete_when
            && let Err(e) = expr::parse_expr(condition)
        {
            self.error_in_text(
                &at("delete_when"),
                1,
                e.column,
                format!("not a condition: {}", e.message),
                e.help,
            );
        }
    }

    fn format(&mut self, base: &[PathSeg], format: &Format) {
        let mut path = base.to_vec();
        path.push(key("format"));
        match format {
            Format::Csv(csv) => {
                let ok = csv.delimiter.len() == 1
                    && csv.delimiter.is_ascii()
                    && !matches!(csv.delimiter.as_str(), "\"" | "\n" | "\r");
                if !ok {
                    let mut path = path.clone();
                    path.push(key("delimiter"));
                    self.error(&path, format!("delimiter must be one ASCII character other than a quote or newline, found {:?}", csv.delimiter), Some("e.g. `\",\"`, `\";\"`, `\"|\"` or `\"\\t\"`".to_owned()));
                }
                if let Some(problem) = null_value_problem(&csv.null_value, &csv.delimiter) {
                    path.push(key("null_value"));
                    self.error(&path, problem, Some(NULL_VALUE_HELP.to_owned()));
                }
            }
            // A Delta sink's options are checked with the sink's (`table_options`).
            Format::Parquet(_) | Format::Jsonl(_) | Format::Delta(_) => {}
        }
    }
}

/// Examples of a CSV `null_value`: YAML reads `\N` in double quotes as an escape.
const NULL_VALUE_HELP: &str = "e.g. `NULL`, or `'\\N'` in single quotes";

/// Why a CSV `null_value` cannot be told apart from the file's structure: it may not hold the
/// delimiter, a quote or a line break.
fn null_value_problem(null_value: &str, delimiter: &str) -> Option<String> {
    let bad = null_value
        .chars()
        .any(|c| matches!(c, '"' | '\n' | '\r') || delimiter.starts_with(c));
    bad.then(|| {
        format!("null_value {null_value:?} holds the delimiter, a quote or a line break, which would make it text")
    })
}

/// Checks a sink key template; on error, the character offset, message and help.
pub fn check_key_template(template: &str) -> Result<(), (usize, String, Option<String>)> {
    if template.starts_with('/') {
        return Err((
            0,
            "key must be relative to the connection URL, without a leading `/`".to_owned(),
            None,
        ));
    }
    if !template.ends_with('/') {
        return Err((
            template.chars().count().saturating_sub(1),
            "key is a prefix and must end with `/`; pipectl names the files".to_owned(),
            Some(format!("write `{template}/`")),
        ));
    }
    let chars: Vec<char> = template.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '{' => {
                let Some(len) = chars[i + 1..].iter().position(|c| *c == '}') else {
                    return Err((i, "`{` is not closed by `}`".to_owned(), None));
                };
                let name: String = chars[i + 1..i + 1 + len].iter().collect();
                if !KEY_PLACEHOLDERS.contains(&name.as_str()) {
                    let help = match did_you_mean(&name, KEY_PLACEHOLDERS.iter().copied()) {
                        Some(g) => format!(
                            "did you mean `{{{g}}}`? Placeholders: {}",
                            KEY_PLACEHOLDERS.join(", ")
                        ),
                        None => format!(
                            "placeholders: {}",
                            KEY_PLACEHOLDERS
                                .iter()
                                .map(|p| format!("{{{p}}}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    return Err((i, format!("unknown placeholder `{{{name}}}`"), Some(help)));
                }
                i += len + 2;
            }
            '}' => return Err((i, "`}` without `{`".to_owned(), None)),
            _ => i += 1,
        }
    }
    if template
        .split('/')
        .any(|segment| segment == ".." || segment == ".")
    {
        return Err((
            0,
            "`.` and `..` are not allowed as key segments".to_owned(),
            None,
        ));
    }
    if template
        .split('/')
        .next()
        .is_some_and(|s| s.starts_with('_'))
    {
        return Err((
            0,
            "keys starting with `_` are reserved for pipectl's staging area".to_owned(),
            None,
        ));
    }
    Ok(())
}

/// The password part of `scheme://user:password@host/...`, if any.
pub fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    userinfo.split_once(':').map(|(_, p)| p)
}

/// Maps a position inside a string value (line and column within the text, 1-based) to the
/// file position, for the common ways of writing a string in YAML.
fn text_position(source: &str, node: &Node, line_in_text: usize, column_in_text: usize) -> Pos {
    match &node.kind {
        NodeKind::Scalar {
            text,
            style: Style::Block,
        } => block_text_position(source, node.pos, text, line_in_text, column_in_text)
            .unwrap_or(node.pos),
        NodeKind::Scalar {
            style: Style::Quoted,
            ..
        } if line_in_text <= 1 => Pos {
            line: node.pos.line,
            column: node.pos.column + column_in_text,
        },
        NodeKind::Scalar { .. } if line_in_text <= 1 => Pos {
            line: node.pos.line,
            column: node.pos.column + column_in_text.saturating_sub(1),
        },
        _ => Pos {
            line: node.pos.line + line_in_text.saturating_sub(1),
            column: node.pos.column,
        },
    }
}

/// Maps a position in the text of a `|` or `>` block scalar to the file. The text is found
/// line by line in the block's source lines, so folding (`>` joins lines with spaces) and
/// leading blank lines do not shift the result. `None` when the block cannot be lined up.
fn block_text_position(
    source: &str,
    pos: Pos,
    text: &str,
    line_in_text: usize,
    column_in_text: usize,
) -> Option<Pos> {
    let lines: Vec<&str> = source.lines().collect();
    let at_pos = lines.get(pos.line.checked_sub(1)?)?;
    // saphyr places the node at its first content line; the indicator is on the nearest
    // non-blank line above (or at the node itself, should a parser report that instead).
    let indicator_line = if matches!(
        at_pos.chars().nth(pos.column.saturating_sub(1)),
        Some('|' | '>')
    ) {
        pos.line
    } else {
        (1..pos.line)
            .rev()
            .find(|l| !lines[l - 1].trim().is_empty())?
    };
    let indent_of = |l: &str| l.chars().take_while(|c| *c == ' ').count();
    let indent = lines
        .iter()
        .skip(indicator_line)
        .find(|l| !l.trim().is_empty())
        .map(|l| indent_of(l))?;
    let text: Vec<char> = text.chars().collect();
    let offset = text
        .split(|c| *c == '\n')
        .take(line_in_text.saturating_sub(1))
        .map(|l| l.len() + 1)
        .sum::<usize>()
        + column_in_text.saturating_sub(1);
    let mut p = 0;
    let mut last = None;
    for (i, raw) in lines.iter().enumerate().skip(indicator_line) {
        if !raw.trim().is_empty() && indent_of(raw) < indent {
            break;
        }
        let content: Vec<char> = raw.chars().skip(indent).collect();
        if content.is_empty() {
            continue;
        }
        while !text[p..].starts_with(&content) && matches!(text.get(p), Some('\n' | ' ')) {
            p += 1;
        }
        if !text[p..].starts_with(&content) {
            return None;
        }
        let line = i + 1;
        if offset < p + content.len() {
            return Some(Pos {
                line,
                column: indent + offset.saturating_sub(p) + 1,
            });
        }
        p += content.len();
        last = Some(Pos {
            line,
            column: indent + content.len() + 1,
        });
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_identifiers_as_the_server_takes_them() {
        assert_eq!(pg_identifier("pipectl_orders_1", true), Ok(()));
        assert_eq!(pg_identifier("_p$ub", false), Ok(()));
        assert!(pg_identifier("_p$ub", true).is_err(), "slots take no `$`");
        assert!(pg_identifier("", false).is_err());
        assert!(pg_identifier("1st", false).is_err());
        assert!(pg_identifier("Orders", false).is_err());
        assert!(pg_identifier("a-b", false).is_err());
        assert_eq!(pg_identifier(&"a".repeat(63), true), Ok(()));
        assert!(pg_identifier(&"a".repeat(64), true).is_err());
    }

    #[test]
    fn key_templates() {
        assert!(check_key_template("landing/{schema}/{table}/").is_ok());
        assert_eq!(check_key_template("landing/{tabel}/").unwrap_err().0, 8);
        assert!(check_key_template("landing/{table}").is_err());
        assert!(check_key_template("/abs/").is_err());
        assert!(check_key_template("a/../b/").is_err());
        assert!(check_key_template("_pipectl/x/").is_err());
    }

    #[test]
    fn passwords_in_urls() {
        assert_eq!(url_password("postgres://u:secret@h/db"), Some("secret"));
        assert_eq!(url_password("postgres://u@h/db"), None);
        assert_eq!(url_password("sqlite://data.db"), None);
    }

    #[test]
    fn block_scalar_positions_follow_the_source_lines() {
        // `|` keeps lines; `>` folds them into one; a leading blank line shifts text lines.
        for (indicator, blank) in [("|", ""), (">-", ""), ("|", "\n"), (">", "\n")] {
            let source = format!("t: {indicator}\n{blank}  a {{{{x}}}}\n  b {{{{y}}}}\n");
            let tree = yaml::parse(&source).unwrap();
            let node = tree.get("t").unwrap();
            let text = node.scalar_text().unwrap();
            let (line, column) = text
                .lines()
                .enumerate()
                .find_map(|(i, l)| l.find("{{y").map(|c| (i + 1, c + 1)))
                .unwrap();
            let pos = text_position(&source, node, line, column);
            let expected_line = if blank.is_empty() { 3 } else { 4 };
            assert_eq!(
                pos,
                Pos {
                    line: expected_line,
                    column: 5
                },
                "{indicator} {blank:?}"
            );
        }
    }

    const TWO_STEPS: &str = "version: 1\nname: p\nconnections:\n  db: { url: \"sqlite://x.db\" }\n  lake: { url: \"file://lake\" }\nsources:\n  orders: { type: sqlite, connection: db }\n";

    fn messages(source: &str) -> Vec<String> {
        load_str("p.yaml", source)
            .unwrap_err()
            .into_iter()
            .map(|d| d.message)
            .collect()
    }

    #[test]
    fn duplicate_step_names_do_not_invent_cycles() {
        let source = format!(
            "{TWO_STEPS}transforms:\n  orders: {{ type: drop, inputs: [orders], columns: [x] }}\nsinks:\n  s: {{ type: object_store, inputs: [orders], connection: lake, key: k/, format: {{ type: csv }} }}\n"
        );
        let messages = messages(&source);
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].contains("used twice"), "{messages:?}");
    }

    #[test]
    fn a_misspelled_input_is_one_error() {
        let source = format!(
            "{TWO_STEPS}transforms:\n  paid: {{ type: filter, inputs: [orders], condition: x = 1 }}\nsinks:\n  s: {{ type: object_store, inputs: [payd], connection: lake, key: k/, format: {{ type: csv }} }}\n"
        );
        let messages = messages(&source);
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].contains("`payd`"), "{messages:?}");
    }

    #[test]
    fn a_wrong_value_or_misspelled_section_is_one_error() {
        let sink = "  s: { type: object_store, inputs: [g], connection: lake, key: k/, format: { type: csv } }\n";
        let wrong_count = format!(
            "{TWO_STEPS}  g: {{ type: generator, count: many, template: x }}\nsinks:\n{sink}"
        );
        let found =
            messages(&wrong_count.replace("  orders: { type: sqlite, connection: db }\n", ""));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("whole number"), "{found:?}");
        let misspelled = format!("{TWO_STEPS}sinkss:\n{}", sink.replace("[g]", "[orders]"));
        let found = messages(&misspelled);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("`sinkss`"), "{found:?}");
    }

    #[test]
    fn cron_errors_are_one_line() {
        let e = parse_cron("75 2 * * *").unwrap_err();
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("75"), "{e}");
    }

    #[test]
    fn cron_accepts_five_and_six_fields() {
        assert!(parse_cron("*/15 * * * *").is_ok());
        assert!(parse_cron("0 30 2 * * Mon-Fri").is_ok());
        assert!(parse_cron("* *").is_err());
        assert!(parse_cron("61 * * * *").is_err());
    }
}
