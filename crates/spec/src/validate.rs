//! Loading a spec file: parse -> schema check -> typed spec -> semantic checks -> DAG.
//!
//! Every phase is pure and collects all of its errors; a later phase runs only when the earlier
//! ones produced something it can work on, so one pass reports everything that can be known.

use std::collections::BTreeMap;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::dag::Dag;
use crate::diag::{Diagnostic, did_you_mean};
use crate::env::env_refs;
use crate::lang::{datatype, expr, template};
use crate::types::{
    AddColumnsTransform, Connection, Crawler, DatabaseSource, Format, GeneratorSource, Pipeline,
    Schedule, Sink, Source, Transform,
};
use crate::yaml::{self, Node, NodeKind, PathSeg, Pos, Style};

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
                    .in_file(file, ""),
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
        diags.dedup();
        diags
    };
    if source.contains('\0') {
        return Err(finish(vec![
            Diagnostic::error(
                Pos { line: 1, column: 1 },
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
            Diagnostic::error(tree.pos, "", "the file is empty")
                .with_help("a pipeline needs at least `version: 1`, `name:` and one source and sink; see examples/quickstart"),
        ]));
    }
    let value = match crate::check::check(&tree, &crate::json_schema()) {
        Ok(v) => v,
        Err(errors) => return Err(finish(errors)),
    };
    let pipeline: Pipeline = match serde_json::from_value(value) {
        Ok(p) => p,
        Err(e) => {
            return Err(finish(vec![Diagnostic::error(
                tree.pos,
                "",
                format!("the spec does not fit the schema: {e}"),
            )]));
        }
    };
    let mut v = Validator {
        tree: &tree,
        source,
        diags: Vec::new(),
    };
    v.pipeline(&pipeline);
    let dag = match Dag::build(&pipeline) {
        Ok(dag) => Some(dag),
        Err(errors) => {
            for e in errors {
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
    cron::Schedule::from_str(&normalized).map_err(|e| e.to_string())
}

/// True when `name` is usable as a step, connection or pipeline name.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
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
    diags: Vec<Diagnostic>,
}

fn key(s: &str) -> PathSeg {
    PathSeg::Key(s.to_owned())
}

impl Validator<'_> {
    /// Records a diagnostic at the node `path` leads to (or the deepest node found on the way).
    fn push(&mut self, mut diag: Diagnostic, path: &[PathSeg]) {
        let (node, _) = self.tree.locate(path);
        diag.line = node.pos.line;
        diag.column = node.pos.column;
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
                Source::Generator(g) => self.generator(name, g),
            }
        }
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
                    if s.max_file_rows == Some(0) {
                        self.error(
                            &[base[0].clone(), base[1].clone(), key("max_file_rows")],
                            "must be at least 1",
                            None,
                        );
                    }
                }
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
                }
            }
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
            None => self.error(&[base[0].clone(), base[1].clone(), key("url")], format!("`{}` is not a URL", c.url), Some("write `scheme://...`, e.g. `sqlite://data/app.db`, `file://lake`, `s3://bucket/prefix`".to_owned())),
            Some(scheme) => {
                let known: Vec<&str> = OBJECT_STORE_SCHEMES.iter().chain(DATABASE_SCHEMES).chain(POSTGRES_SCHEMES).chain(MYSQL_SCHEMES).copied().collect();
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
                {
                    self.error(&path, format!("connection `{name}` is a `{scheme}://` URL; this step needs {what} ({})", schemes.iter().map(|s| format!("{s}://")).collect::<Vec<_>>().join(", ")), None);
                }
            }
        }
    }

    fn database(&mut self, p: &Pipeline, name: &str, db: &DatabaseSource, schemes: &[&str]) {
        let base = [key("sources"), key(name)];
        self.connection_ref(p, &base, &db.connection, schemes, "a database");
        if db.batch_rows == 0 || db.batch_rows > 1_000_000 {
            self.error(
                &[base[0].clone(), base[1].clone(), key("batch_rows")],
                "must be between 1 and 1000000",
                None,
            );
        }
        if db.parallel_tables == 0 || db.parallel_tables > 64 {
            self.error(
                &[base[0].clone(), base[1].clone(), key("parallel_tables")],
                "must be between 1 and 64",
                None,
            );
        }
        for (pattern, settings) in &db.tables {
            let at = [
                base[0].clone(),
                base[1].clone(),
                key("tables"),
                key(pattern),
            ];
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
        for (list, rules) in [("include", &db.include), ("exclude", &db.exclude)] {
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

    fn generator(&mut self, name: &str, g: &GeneratorSource) {
        let base = vec![key("sources"), key(name)];
        let at = |k: &str| {
            let mut p = base.clone();
            p.push(key(k));
            p
        };
        if let Err(errors) = template::Template::parse(&g.template) {
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
        if g.count.is_none() && g.duration_secs.is_none() {
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
        if g.batch_rows == 0 || g.batch_rows > 1_000_000 {
            self.error(&at("batch_rows"), "must be between 1 and 1000000", None);
        }
        for (i, column) in g.columns.iter().enumerate() {
            let mut path = at("columns");
            path.push(PathSeg::Index(i));
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

    fn format(&mut self, base: &[PathSeg], format: &Format) {
        let mut path = base.to_vec();
        path.push(key("format"));
        match format {
            Format::Csv(csv) => {
                let ok = csv.delimiter.len() == 1
                    && csv.delimiter.is_ascii()
                    && !matches!(csv.delimiter.as_str(), "\"" | "\n" | "\r");
                if !ok {
                    path.push(key("delimiter"));
                    self.error(&path, format!("delimiter must be one ASCII character other than a quote or newline, found {:?}", csv.delimiter), Some("e.g. `\",\"`, `\";\"`, `\"|\"` or `\"\\t\"`".to_owned()));
                }
            }
            Format::Parquet(p) => {
                if p.row_group_rows == 0 {
                    path.push(key("row_group_rows"));
                    self.error(&path, "must be at least 1", None);
                }
            }
            Format::Jsonl(_) => {}
        }
    }
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
            style: Style::Block,
            ..
        } => {
            // Block text starts on the line after the `|` or `>` indicator, indented.
            let line = node.pos.line + line_in_text;
            let indent = source
                .lines()
                .nth(node.pos.line)
                .map(|l| l.chars().take_while(|c| *c == ' ').count())
                .unwrap_or(0);
            Pos {
                line,
                column: indent + column_in_text,
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn cron_accepts_five_and_six_fields() {
        assert!(parse_cron("*/15 * * * *").is_ok());
        assert!(parse_cron("0 30 2 * * Mon-Fri").is_ok());
        assert!(parse_cron("* *").is_err());
        assert!(parse_cron("61 * * * *").is_err());
    }
}
