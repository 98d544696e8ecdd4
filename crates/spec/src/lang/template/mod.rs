//! The record template language of the `generator` source, compatible with the AWS Kinesis
//! Data Generator (KDG): literal text with `{{helper}}` or `{{helper(args)}}` placeholders,
//! where helpers are the faker.js / moment.js names KDG users know (`random.number`,
//! `name.firstName`, `date.now("YYYY-MM-DD")`, ...).
//!
//! A template is parsed once into segments; every helper and its arguments are checked and
//! pre-compiled then, so rendering a record is a loop of string appends driven by a seeded
//! random generator.
//!
//! Syntax notes:
//! - Arguments are JSON values separated by commas: `random.number({"min":1,"max":10})`.
//! - There is no escape for braces: `{{{{` does not mean a literal `{{`. In a run of three or
//!   more `{`, the placeholder opens at the last `{{` and the braces before it are literal
//!   text, so `{"a":{{{random.boolean}}}}` renders `{"a":{true}}`. Text outside placeholders,
//!   including lone `}}`, is copied verbatim.
//! - Strings from arguments render as their JSON-unescaped content (no quotes), so they fit
//!   inside a quoted JSON string of the template; other JSON values render as written.

mod helpers;
mod json;
mod parse;
mod render;
#[cfg(test)]
mod tests;

use std::fmt;

use chrono::{DateTime, Utc};

use parse::TemplateParser;
use render::Kind;

/// A problem found in a template, located in the template text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// 1-based line within the template text.
    pub line: usize,
    /// 1-based column, counted in characters, within the template text.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when there is something useful to say.
    pub help: Option<String>,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )?;
        if let Some(help) = &self.help {
            write!(f, " (help: {help})")?;
        }
        Ok(())
    }
}

impl std::error::Error for TemplateError {}

/// A parsed record template, ready to render many records.
#[derive(Debug, Clone)]
pub struct Template {
    segments: Vec<Segment>,
}

/// Random source and clock that a [`Template`] renders against.
#[derive(Debug, Clone)]
pub struct RenderContext {
    rng: fastrand::Rng,
    now: DateTime<Utc>,
    now_ms: i64,
}

impl RenderContext {
    /// `seed`: `Some` gives reproducible random values; `None` seeds from the OS.
    ///
    /// The clock starts at the current time; generators that need reproducible dates set it
    /// with [`RenderContext::set_now`].
    pub fn new(seed: Option<u64>) -> Self {
        let rng = match seed {
            Some(seed) => fastrand::Rng::with_seed(seed),
            None => fastrand::Rng::new(),
        };
        let now = Utc::now();
        RenderContext {
            rng,
            now,
            now_ms: now.timestamp_millis(),
        }
    }

    /// The instant `date.now` and friends render; the generator sets it per record (or per batch).
    pub fn set_now(&mut self, now: DateTime<Utc>) {
        self.now = now;
        self.now_ms = now.timestamp_millis();
    }

    /// The instant `date.now` currently renders.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }
}

impl Template {
    /// Parses the template; every problem is reported (collect all errors, do not stop at the first).
    ///
    /// A template copied out of a JSON document (the Kinesis Data Generator saves them so) has
    /// `\"` for its quotes: when the template does not parse as it is, it is read again with
    /// `\"` and `\\` unescaped, and taken if that parses. Otherwise the first reading's problems
    /// are reported, the first one saying what the unescaped reading found.
    pub fn parse(source: &str) -> Result<Template, Vec<TemplateError>> {
        let mut problems = match Template::parse_as_is(source) {
            Ok(template) => return Ok(template),
            Err(problems) => problems,
        };
        if !source.contains("\\\"") {
            return Err(problems);
        }
        let unescaped = match Template::parse_as_is(&unescape_quotes(source)) {
            Ok(template) => return Ok(template),
            Err(unescaped) => unescaped,
        };
        if let (Some(first), Some(other)) = (problems.first_mut(), unescaped.first()) {
            let escaped = format!(
                "the template has `\\\"` (JSON's escape of a quote), so it was also read with `\\\"` as `\"`, and that reading fails at line {}, column {}: {}",
                other.line, other.column, other.message
            );
            first.help = Some(match first.help.take() {
                Some(help) => format!("{help}; {escaped}"),
                None => escaped,
            });
        }
        Err(problems)
    }

    fn parse_as_is(source: &str) -> Result<Template, Vec<TemplateError>> {
        let mut parser = TemplateParser {
            src: source,
            segments: Vec::new(),
            problems: Vec::new(),
        };
        parser.run();
        if parser.problems.is_empty() {
            Ok(Template {
                segments: parser.segments,
            })
        } else {
            Err(parser
                .problems
                .into_iter()
                .map(|problem| problem.locate(source))
                .collect())
        }
    }

    /// Appends one rendered record to `out`.
    pub fn render(&self, ctx: &mut RenderContext, out: &mut String) {
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Helper(helper) => helper.kind.render(ctx, out),
            }
        }
    }

    /// Names of the helpers used (for `pipectl plan`), each once, in order of first use.
    pub fn helpers(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for segment in &self.segments {
            if let Segment::Helper(helper) = segment
                && !names.iter().any(|known| known == helper.name)
            {
                names.push(helper.name.to_owned());
            }
        }
        names
    }
}

/// `\"` as `"` and `\\` as `\`, the escapes a template inside a JSON string has.
fn unescape_quotes(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some('"' | '\\')) => out.extend(chars.next()),
            _ => out.push(c),
        }
    }
    out
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(Box<str>),
    Helper(Helper),
}

#[derive(Debug, Clone)]
struct Helper {
    name: &'static str,
    kind: Kind,
}

/// A problem positioned by byte offset; converted to line/column once parsing is over.
#[derive(Debug)]
struct Problem {
    pos: usize,
    message: String,
    help: Option<String>,
}

impl Problem {
    fn new(pos: usize, message: impl Into<String>) -> Self {
        Problem {
            pos,
            message: message.into(),
            help: None,
        }
    }

    fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    fn locate(self, src: &str) -> TemplateError {
        let before = src.get(..self.pos).unwrap_or(src);
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        TemplateError {
            line: before.bytes().filter(|&b| b == b'\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
            message: self.message,
            help: self.help,
        }
    }
}
