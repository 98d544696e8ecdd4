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

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};

use super::faker_data as words;

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

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

enum TagFailure {
    /// The placeholder's structure is broken, so where it ends is a guess.
    Syntax(Problem),
    /// The placeholder is well-formed up to `end`, but its helper or arguments are not valid.
    Helper(Problem, usize),
}

impl From<json::Error> for TagFailure {
    fn from(error: json::Error) -> Self {
        let problem = Problem {
            pos: error.pos,
            message: error.message,
            help: error.help,
        };
        TagFailure::Syntax(problem)
    }
}

struct TemplateParser<'a> {
    src: &'a str,
    segments: Vec<Segment>,
    problems: Vec<Problem>,
}

impl TemplateParser<'_> {
    fn run(&mut self) {
        let src = self.src;
        let bytes = src.as_bytes();
        let mut literal_start = 0;
        let mut search_from = 0;
        while let Some(found) = find(src, "{{", search_from) {
            let mut open = found;
            while bytes.get(open + 2) == Some(&b'{') {
                open += 1;
            }
            self.push_literal(&src[literal_start..open]);
            let resume = match self.tag(open) {
                Ok((helper, end)) => {
                    self.segments.push(Segment::Helper(helper));
                    end
                }
                Err(TagFailure::Helper(problem, end)) => {
                    self.problems.push(problem);
                    end
                }
                Err(TagFailure::Syntax(problem)) => self.recover(open, problem),
            };
            literal_start = resume;
            search_from = resume;
        }
        self.push_literal(&src[literal_start..]);
    }

    fn push_literal(&mut self, text: &str) {
        if !text.is_empty() {
            self.segments.push(Segment::Literal(text.into()));
        }
    }

    /// Records a syntax problem and picks where parsing resumes.
    ///
    /// When no `}}` follows, or another `{{` comes first, the real mistake is almost always a
    /// missing `}}`, so that is reported at the opening braces instead of the symptom.
    fn recover(&mut self, open: usize, problem: Problem) -> usize {
        let next_close = find(self.src, "}}", open + 2);
        let next_open = find(self.src, "{{", open + 2);
        let unclosed = match (next_close, next_open) {
            (None, _) => true,
            (Some(close), Some(reopen)) => reopen < close,
            (Some(_), None) => false,
        };
        if unclosed {
            self.problems.push(
                Problem::new(open, "`{{` is never closed with `}}`").with_help(
                    "close the placeholder, e.g. `{{random.number}}`; there is no escape for `{{`",
                ),
            );
            return next_open.unwrap_or(self.src.len());
        }
        // Skip to the end of the broken placeholder, but never past the start of the next one.
        let from = problem.pos.max(open + 2);
        let close = find(self.src, "}}", from).map_or(self.src.len(), |close| close + 2);
        let resume = find(self.src, "{{", from).map_or(close, |reopen| reopen.min(close));
        self.problems.push(problem);
        resume
    }

    /// Parses the placeholder opening at `open` and returns the helper and the offset after `}}`.
    fn tag(&self, open: usize) -> Result<(Helper, usize), TagFailure> {
        let src = self.src;
        let bytes = src.as_bytes();
        let name_start = skip_ws(bytes, open + 2);
        let mut pos = name_start;
        while bytes
            .get(pos)
            .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        {
            pos += 1;
        }
        let name = &src[name_start..pos];
        if name.is_empty() {
            return Err(TagFailure::Syntax(
                Problem::new(name_start, "expected a helper name after `{{`").with_help(
                    "placeholders look like `{{random.number}}` or `{{date.now(\"YYYY-MM-DD\")}}`",
                ),
            ));
        }
        pos = skip_ws(bytes, pos);
        let mut args = Vec::new();
        let mut args_end = pos;
        if bytes.get(pos) == Some(&b'(') {
            pos = skip_ws(bytes, pos + 1);
            if bytes.get(pos) != Some(&b')') {
                loop {
                    let value = json::parse(src, pos)?;
                    pos = skip_ws(bytes, value.end);
                    args.push(value);
                    match bytes.get(pos) {
                        Some(b',') => pos += 1,
                        Some(b')') => break,
                        _ => {
                            return Err(TagFailure::Syntax(
                                Problem::new(pos, "expected `,` or `)` after an argument")
                                    .with_help("arguments are JSON values separated by commas"),
                            ));
                        }
                    }
                }
            }
            args_end = pos;
            pos = skip_ws(bytes, pos + 1);
            if !src[pos..].starts_with("}}") {
                return Err(TagFailure::Syntax(Problem::new(
                    pos,
                    format!("expected `}}}}` to close `{{{{{name}(...)`"),
                )));
            }
        } else if !src[pos..].starts_with("}}") {
            return Err(TagFailure::Syntax(Problem::new(
                pos,
                format!("expected `(` or `}}}}` after `{name}`"),
            )));
        }
        let end = pos + 2;
        let Some(info) = HELPERS.iter().find(|info| info.name == name) else {
            return Err(TagFailure::Helper(unknown_helper(name, name_start), end));
        };
        let args = Args {
            info,
            values: &args,
            missing_pos: args_end,
            src,
        };
        let kind = compile(&args).map_err(|problem| TagFailure::Helper(problem, end))?;
        Ok((
            Helper {
                name: info.name,
                kind,
            },
            end,
        ))
    }
}

fn find(haystack: &str, needle: &str, from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .find(needle)
        .map(|offset| from + offset)
}

fn skip_ws(bytes: &[u8], mut pos: usize) -> usize {
    while bytes.get(pos).is_some_and(|b| b.is_ascii_whitespace()) {
        pos += 1;
    }
    pos
}

fn unknown_helper(name: &str, pos: usize) -> Problem {
    let problem = Problem::new(pos, format!("unknown helper `{name}`"));
    if let Some(rest) = name.strip_prefix("faker.")
        && HELPERS.iter().any(|info| info.name == rest)
    {
        return problem.with_help(format!("drop the `faker.` prefix: `{{{{{rest}}}}}`"));
    }
    let lowered = name.to_ascii_lowercase();
    let best = HELPERS
        .iter()
        .map(|info| {
            (
                strsim::jaro_winkler(&lowered, &info.name.to_ascii_lowercase()),
                info.name,
            )
        })
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((score, suggestion)) if score >= 0.8 => {
            problem.with_help(format!("did you mean `{suggestion}`?"))
        }
        _ => problem.with_help(
            "helpers are faker.js names in the namespaces date, random, name, internet, address, \
             company, commerce, lorem, phone, finance and system, e.g. `random.number`",
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Helper table and argument checking
// ---------------------------------------------------------------------------------------------

struct HelperInfo {
    name: &'static str,
    /// Valid calls, shown in error help; the tests check that each one parses.
    forms: &'static [&'static str],
}

impl HelperInfo {
    fn usage(&self) -> String {
        let forms: Vec<String> = self
            .forms
            .iter()
            .map(|form| format!("`{{{{{form}}}}}`"))
            .collect();
        match forms.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("use {} or {last}", rest.join(", ")),
            _ => format!("use {}", forms.join("")),
        }
    }
}

macro_rules! helper_table {
    ($($name:literal => [$($form:literal),* $(,)?]),* $(,)?) => {
        static HELPERS: &[HelperInfo] = &[$(HelperInfo { name: $name, forms: &[$($form),*] }),*];
    };
}

helper_table! {
    "date.now" => ["date.now", r#"date.now("YYYY-MM-DD HH:mm:ss")"#],
    "date.utc" => ["date.utc", r#"date.utc("YYYY-MM-DD")"#],
    "date.past" => ["date.past", "date.past(2)", r#"date.past(1, "2020-01-01")"#],
    "date.recent" => ["date.recent", "date.recent(7)", r#"date.recent(7, "2020-01-01T00:00:00Z")"#],
    "date.future" => ["date.future", "date.future(2)", r#"date.future(1, "2020-01-01")"#],
    "date.between" => [r#"date.between("2020-01-01","2021-01-01")"#],
    "date.weekday" => ["date.weekday", r#"date.weekday({"abbr":true})"#],
    "date.month" => ["date.month", r#"date.month({"abbr":true})"#],
    "random.number" => [
        "random.number",
        "random.number(100)",
        r#"random.number({"min":1,"max":1000})"#,
        r#"random.number({"min":0,"max":10,"precision":0.01})"#,
    ],
    "random.float" => ["random.float", "random.float(0.1)", r#"random.float({"min":0,"max":10,"precision":0.01})"#],
    "random.arrayElement" => [r#"random.arrayElement(["a","b","c"])"#],
    "random.weightedArrayElement" => [r#"random.weightedArrayElement({"weights":[0.7,0.3],"data":["a","b"]})"#],
    "random.objectElement" => [r#"random.objectElement({"a":1,"b":2})"#, r#"random.objectElement({"a":1,"b":2},"key")"#],
    "random.boolean" => ["random.boolean"],
    "random.uuid" => ["random.uuid"],
    "random.word" => ["random.word"],
    "random.words" => ["random.words", "random.words(3)"],
    "random.alphaNumeric" => ["random.alphaNumeric", "random.alphaNumeric(8)"],
    "name.firstName" => ["name.firstName"],
    "name.lastName" => ["name.lastName"],
    "name.findName" => ["name.findName"],
    "name.jobTitle" => ["name.jobTitle"],
    "internet.email" => ["internet.email"],
    "internet.userName" => ["internet.userName"],
    "internet.ip" => ["internet.ip"],
    "internet.url" => ["internet.url"],
    "internet.domainName" => ["internet.domainName"],
    "internet.userAgent" => ["internet.userAgent"],
    "address.state" => ["address.state"],
    "address.stateAbbr" => ["address.stateAbbr"],
    "address.city" => ["address.city"],
    "address.country" => ["address.country"],
    "address.countryCode" => ["address.countryCode"],
    "address.zipCode" => ["address.zipCode", "address.zipCode(\"#####\")"],
    "address.streetAddress" => ["address.streetAddress"],
    "address.latitude" => ["address.latitude", "address.latitude(50, 40)", "address.latitude(50, 40, 2)"],
    "address.longitude" => ["address.longitude", "address.longitude(10, -10)", "address.longitude(10, -10, 2)"],
    "company.companyName" => ["company.companyName"],
    "commerce.productName" => ["commerce.productName"],
    "commerce.price" => ["commerce.price", "commerce.price(1, 100)", r#"commerce.price(1, 100, 2, "$")"#],
    "commerce.department" => ["commerce.department"],
    "commerce.color" => ["commerce.color"],
    "lorem.word" => ["lorem.word"],
    "lorem.words" => ["lorem.words", "lorem.words(5)"],
    "lorem.sentence" => ["lorem.sentence", "lorem.sentence(8)"],
    "phone.phoneNumber" => ["phone.phoneNumber", "phone.phoneNumber(\"###-###-####\")"],
    "finance.amount" => ["finance.amount", "finance.amount(10, 500)", r#"finance.amount(10, 500, 2, "$")"#],
    "finance.currencyCode" => ["finance.currencyCode"],
    "system.fileName" => ["system.fileName"],
}

/// Upper bound for counts such as `random.alphaNumeric(n)`, so a typo cannot make every record
/// gigabytes long.
const MAX_COUNT: usize = 100_000;
const MAX_YEARS: f64 = 1_000.0;
const MAX_DAYS: f64 = 365_000.0;
const DAY_MS: f64 = 86_400_000.0;
const YEAR_MS: f64 = 365.0 * DAY_MS;
/// Decimal places accepted for precisions and `dec` arguments (10^12 still fits an i64 scale).
const MAX_DECIMALS: f64 = 12.0;

/// The arguments of one placeholder, with what is needed to report problems about them.
struct Args<'a> {
    info: &'static HelperInfo,
    values: &'a [json::Value],
    /// Where to point when an argument is missing: the `)` or the `}}`.
    missing_pos: usize,
    src: &'a str,
}

impl<'a> Args<'a> {
    fn problem(&self, pos: usize, message: impl Into<String>) -> Problem {
        Problem::new(pos, message).with_help(self.info.usage())
    }

    fn at_most(&self, count: usize) -> Result<(), Problem> {
        let Some(extra) = self.values.get(count) else {
            return Ok(());
        };
        let name = self.info.name;
        let message = match count {
            0 => format!("`{name}` takes no arguments"),
            1 => format!("`{name}` takes at most 1 argument"),
            _ => format!("`{name}` takes at most {count} arguments"),
        };
        Err(self.problem(extra.start, message))
    }

    fn get(&self, index: usize) -> Option<&'a json::Value> {
        self.values.get(index)
    }

    fn expected(&self, value: &json::Value, what: &str) -> Problem {
        self.problem(
            value.start,
            format!("expected {what}, found {}", value.kind.describe()),
        )
    }

    fn missing(&self, what: &str) -> Problem {
        self.problem(
            self.missing_pos,
            format!("`{}` needs {what}", self.info.name),
        )
    }

    fn number(&self, index: usize, what: &str) -> Result<Option<f64>, Problem> {
        match self.get(index) {
            None => Ok(None),
            Some(value) => value
                .as_number()
                .map(Some)
                .ok_or_else(|| self.expected(value, what)),
        }
    }

    fn string(&self, index: usize, what: &str) -> Result<Option<&'a str>, Problem> {
        match self.get(index) {
            None => Ok(None),
            Some(value) => value
                .as_str()
                .map(Some)
                .ok_or_else(|| self.expected(value, what)),
        }
    }

    /// A whole number in `0..=max` (faker counts and decimal places).
    fn whole(&self, index: usize, what: &str, max: f64) -> Result<Option<usize>, Problem> {
        let Some(value) = self.get(index) else {
            return Ok(None);
        };
        match value.as_number() {
            Some(n) if n >= 0.0 && n <= max && n.fract() == 0.0 => Ok(Some(n as usize)),
            Some(_) => Err(self.problem(
                value.start,
                format!("expected {what} (a whole number from 0 to {max})"),
            )),
            None => Err(self.expected(value, what)),
        }
    }

    fn positive(&self, index: usize, what: &str, max: f64) -> Result<Option<f64>, Problem> {
        let Some(value) = self.get(index) else {
            return Ok(None);
        };
        match value.as_number() {
            Some(n) if n > 0.0 && n <= max => Ok(Some(n)),
            Some(_) => Err(self.problem(
                value.start,
                format!("expected {what} greater than 0 and at most {max}"),
            )),
            None => Err(self.expected(value, what)),
        }
    }

    fn date(&self, index: usize) -> Result<Option<i64>, Problem> {
        let Some(value) = self.get(index) else {
            return Ok(None);
        };
        let millis = match &value.kind {
            json::Kind::String(text) => parse_date_text(text),
            json::Kind::Number(n) if n.fract() == 0.0 && n.abs() < 8.0e15 => Some(*n as i64),
            _ => None,
        };
        match millis.filter(|&ms| DateTime::from_timestamp_millis(ms).is_some()) {
            Some(ms) => Ok(Some(ms)),
            None => Err(self.problem(
                value.start,
                "expected a date such as \"2020-01-01\", \"2020-01-01T12:00:00Z\" or milliseconds since 1970",
            )),
        }
    }

    /// Text as it renders: strings without quotes, anything else exactly as written.
    fn render_text(&self, value: &json::Value) -> Box<str> {
        match &value.kind {
            json::Kind::String(text) => text.as_str().into(),
            _ => self.src[value.start..value.end].into(),
        }
    }

    /// The members of an object argument, rejecting keys that are not in `allowed`.
    fn object(
        &self,
        value: &'a json::Value,
        allowed: &[&str],
        what: &str,
    ) -> Result<&'a [json::Member], Problem> {
        let json::Kind::Object(members) = &value.kind else {
            return Err(self.expected(value, what));
        };
        for member in members {
            if !allowed.contains(&member.key.as_str()) {
                let mut problem =
                    Problem::new(member.key_start, format!("unknown key `{}`", member.key));
                // Keys are short, where an edit distance says more than Jaro-Winkler.
                let best = allowed
                    .iter()
                    .map(|key| (strsim::damerau_levenshtein(&member.key, key), *key))
                    .min_by_key(|(distance, _)| *distance);
                problem = match best {
                    Some((distance, key)) if distance <= 2 && distance < key.len() => {
                        problem.with_help(format!("did you mean `{key}`?"))
                    }
                    _ => problem.with_help(format!(
                        "`{}` accepts the keys {}",
                        self.info.name,
                        allowed
                            .iter()
                            .map(|key| format!("`{key}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                };
                return Err(problem);
            }
        }
        Ok(members)
    }

    fn member_number(&self, member: &json::Member) -> Result<f64, Problem> {
        member
            .value
            .as_number()
            .ok_or_else(|| self.expected(&member.value, &format!("a number for `{}`", member.key)))
    }
}

fn member<'a>(members: &'a [json::Member], key: &str) -> Option<&'a json::Member> {
    members.iter().find(|member| member.key == key)
}

fn compile(args: &Args<'_>) -> Result<Kind, Problem> {
    use Kind::Pick;
    let name = args.info.name;
    let word_list = |list: &'static [&'static str]| args.at_most(0).map(|()| Pick(list));
    match name {
        "date.now" | "date.utc" => {
            args.at_most(1)?;
            match args.string(
                0,
                "a moment.js format string such as \"YYYY-MM-DD HH:mm:ss\"",
            )? {
                None => Ok(Kind::NowIso),
                Some(format) => match compile_date_format(format) {
                    Ok(parts) => Ok(Kind::NowFormatted(parts)),
                    Err(message) => Err(args.problem(args.values[0].start, message)),
                },
            }
        }
        "date.past" | "date.future" | "date.recent" => {
            args.at_most(2)?;
            let (amount, unit_ms) = if name == "date.recent" {
                (
                    args.positive(0, "a number of days", MAX_DAYS)?
                        .unwrap_or(1.0),
                    DAY_MS,
                )
            } else {
                (
                    args.positive(0, "a number of years", MAX_YEARS)?
                        .unwrap_or(1.0),
                    YEAR_MS,
                )
            };
            let max_ms = ((amount * unit_ms) as i64).max(1);
            Ok(Kind::DateOffset {
                // faker keeps past and future dates at least a second away from the reference.
                min_ms: max_ms.min(1000),
                max_ms,
                sign: if name == "date.future" { 1 } else { -1 },
                anchor_ms: args.date(1)?,
            })
        }
        "date.between" => {
            args.at_most(2)?;
            let from = args
                .date(0)?
                .ok_or_else(|| args.missing("a start and an end date"))?;
            let to = args.date(1)?.ok_or_else(|| args.missing("an end date"))?;
            if to < from {
                return Err(args.problem(
                    args.values[1].start,
                    "the end date is before the start date",
                ));
            }
            Ok(Kind::DateBetween {
                from_ms: from,
                to_ms: to,
            })
        }
        "date.weekday" | "date.month" => {
            args.at_most(1)?;
            let mut abbreviated = false;
            if let Some(value) = args.get(0) {
                let members = args.object(value, &["abbr"], "an object such as {\"abbr\":true}")?;
                if let Some(abbr) = member(members, "abbr") {
                    abbreviated = match abbr.value.kind {
                        json::Kind::Bool(flag) => flag,
                        _ => return Err(args.expected(&abbr.value, "true or false for `abbr`")),
                    };
                }
            }
            Ok(Pick(match (name, abbreviated) {
                ("date.weekday", false) => words::WEEKDAYS,
                ("date.weekday", true) => words::WEEKDAYS_ABBR,
                (_, false) => words::MONTHS,
                (_, true) => words::MONTHS_ABBR,
            }))
        }
        "random.number" | "random.float" => compile_random_number(args, name == "random.float"),
        "random.arrayElement" => {
            args.at_most(1)?;
            let value = args
                .get(0)
                .ok_or_else(|| args.missing("an array of choices"))?;
            let json::Kind::Array(items) = &value.kind else {
                return Err(args.expected(value, "an array of choices such as [\"a\",\"b\"]"));
            };
            if items.is_empty() {
                return Err(args.problem(value.start, "the array of choices is empty"));
            }
            Ok(Kind::Choice(
                items.iter().map(|item| args.render_text(item)).collect(),
            ))
        }
        "random.weightedArrayElement" => compile_weighted(args),
        "random.objectElement" => {
            args.at_most(2)?;
            let value = args.get(0).ok_or_else(|| args.missing("an object"))?;
            let json::Kind::Object(members) = &value.kind else {
                return Err(args.expected(value, "an object such as {\"a\":1,\"b\":2}"));
            };
            if members.is_empty() {
                return Err(args.problem(value.start, "the object is empty"));
            }
            let keys = match args.string(1, "\"key\" or \"value\"")? {
                None | Some("value") => false,
                Some("key") => true,
                Some(_) => {
                    return Err(args.problem(args.values[1].start, "expected \"key\" or \"value\""));
                }
            };
            Ok(Kind::Choice(
                members
                    .iter()
                    .map(|m| {
                        if keys {
                            m.key.as_str().into()
                        } else {
                            args.render_text(&m.value)
                        }
                    })
                    .collect(),
            ))
        }
        "random.boolean" => args.at_most(0).map(|()| Kind::Boolean),
        "random.uuid" => args.at_most(0).map(|()| Kind::Uuid),
        "random.word" => word_list(words::RANDOM_WORDS),
        "random.words" | "lorem.words" | "lorem.sentence" => {
            args.at_most(1)?;
            let count = args.whole(0, "a number of words", MAX_COUNT as f64)?;
            let (list, default_range) = match name {
                "random.words" => (words::RANDOM_WORDS, (1, 3)),
                "lorem.words" => (words::LOREM_WORDS, (3, 3)),
                _ => (words::LOREM_WORDS, (3, 10)),
            };
            let (min, max) = count.map_or(default_range, |n| (n, n));
            if name == "lorem.sentence" {
                Ok(Kind::Sentence {
                    min: min.max(1),
                    max: max.max(1),
                })
            } else {
                Ok(Kind::Words { list, min, max })
            }
        }
        "random.alphaNumeric" => {
            args.at_most(1)?;
            Ok(Kind::AlphaNumeric(
                args.whole(0, "a number of characters", MAX_COUNT as f64)?
                    .unwrap_or(1),
            ))
        }
        "name.firstName" => word_list(words::FIRST_NAMES),
        "name.lastName" => word_list(words::LAST_NAMES),
        "name.findName" => args.at_most(0).map(|()| Kind::FullName),
        "name.jobTitle" => args.at_most(0).map(|()| Kind::JobTitle),
        "internet.email" => args.at_most(0).map(|()| Kind::Email),
        "internet.userName" => args.at_most(0).map(|()| Kind::UserName),
        "internet.ip" => args.at_most(0).map(|()| Kind::Ip),
        "internet.url" => args.at_most(0).map(|()| Kind::Url),
        "internet.domainName" => args.at_most(0).map(|()| Kind::DomainName),
        "internet.userAgent" => word_list(words::USER_AGENTS),
        "address.state" => word_list(words::US_STATES),
        "address.stateAbbr" => word_list(words::US_STATE_ABBRS),
        "address.city" => word_list(words::CITIES),
        "address.country" => word_list(words::COUNTRIES),
        "address.countryCode" => word_list(words::COUNTRY_CODES),
        "address.zipCode" | "phone.phoneNumber" => {
            args.at_most(1)?;
            match args.string(0, "a format string where `#` stands for a digit")? {
                Some(format) => Ok(Kind::Digits(format.into())),
                None if name == "address.zipCode" => Ok(Kind::DigitsOneOf(words::ZIP_FORMATS)),
                None => Ok(Kind::DigitsOneOf(words::PHONE_FORMATS)),
            }
        }
        "address.streetAddress" => args.at_most(0).map(|()| Kind::StreetAddress),
        "address.latitude" | "address.longitude" => {
            args.at_most(3)?;
            let bound = if name == "address.latitude" {
                90.0
            } else {
                180.0
            };
            let max = args.number(0, "the maximum (a number)")?.unwrap_or(bound);
            let min = args.number(1, "the minimum (a number)")?.unwrap_or(-bound);
            let decimals = args
                .whole(2, "the number of decimals", MAX_DECIMALS)?
                .unwrap_or(4);
            let spec = NumberSpec::new(min, max, 10f64.powi(-(decimals as i32)), false).map_err(
                |message| {
                    args.problem(
                        args.values.first().map_or(args.missing_pos, |v| v.start),
                        message,
                    )
                },
            )?;
            Ok(Kind::Number {
                prefix: "".into(),
                spec,
            })
        }
        "company.companyName" => args.at_most(0).map(|()| Kind::CompanyName),
        "commerce.productName" => args.at_most(0).map(|()| Kind::ProductName),
        "commerce.price" | "finance.amount" => {
            args.at_most(4)?;
            let is_price = name == "commerce.price";
            let min = args
                .number(0, "the minimum (a number)")?
                .unwrap_or(if is_price { 1.0 } else { 0.0 });
            let max = args.number(1, "the maximum (a number)")?.unwrap_or(1000.0);
            let decimals = args
                .whole(2, "the number of decimals", MAX_DECIMALS)?
                .unwrap_or(2);
            let symbol: Box<str> = args
                .string(3, "a currency symbol (a string)")?
                .unwrap_or("")
                .into();
            // faker's price draws whole amounts and pads the decimals; amount draws real cents.
            let precision = if is_price {
                1.0
            } else {
                10f64.powi(-(decimals as i32))
            };
            let spec = NumberSpec::new(min, max, precision, false).map_err(|message| {
                args.problem(
                    args.values.first().map_or(args.missing_pos, |v| v.start),
                    message,
                )
            })?;
            if is_price {
                Ok(Kind::Price {
                    spec,
                    decimals,
                    symbol,
                })
            } else {
                Ok(Kind::Number {
                    prefix: symbol,
                    spec,
                })
            }
        }
        "commerce.department" => word_list(words::DEPARTMENTS),
        "commerce.color" => word_list(words::COLORS),
        "lorem.word" => word_list(words::LOREM_WORDS),
        "finance.currencyCode" => word_list(words::CURRENCY_CODES),
        "system.fileName" => args.at_most(0).map(|()| Kind::FileName),
        _ => Err(unknown_helper(name, args.missing_pos)),
    }
}

/// `random.number` and `random.float`: no argument, a bare number, or `{min, max, precision}`.
fn compile_random_number(args: &Args<'_>, is_float: bool) -> Result<Kind, Problem> {
    args.at_most(1)?;
    let mut min = 0.0;
    let mut max = 99_999.0;
    let mut precision = if is_float { 0.01 } else { 1.0 };
    let mut problem_pos = args.missing_pos;
    if let Some(value) = args.get(0) {
        problem_pos = value.start;
        match &value.kind {
            // faker reads a bare number as the maximum for `number` but as the precision for `float`.
            json::Kind::Number(n) if is_float => precision = *n,
            json::Kind::Number(n) => max = *n,
            json::Kind::Object(_) => {
                let what = "an object such as {\"min\":1,\"max\":10}";
                for member in args.object(value, &["min", "max", "precision"], what)? {
                    let number = args.member_number(member)?;
                    match member.key.as_str() {
                        "min" => min = number,
                        "max" => max = number,
                        _ => precision = number,
                    }
                }
            }
            _ => {
                let what = if is_float {
                    "a precision or an object such as {\"min\":1,\"max\":10}"
                } else {
                    "a maximum or an object such as {\"min\":1,\"max\":10}"
                };
                return Err(args.expected(value, what));
            }
        }
    }
    let spec = NumberSpec::new(min, max, precision, true)
        .map_err(|message| args.problem(problem_pos, message))?;
    Ok(Kind::Number {
        prefix: "".into(),
        spec,
    })
}

fn compile_weighted(args: &Args<'_>) -> Result<Kind, Problem> {
    args.at_most(1)?;
    let what = "an object such as {\"weights\":[0.7,0.3],\"data\":[\"a\",\"b\"]}";
    let value = args.get(0).ok_or_else(|| args.missing(what))?;
    let members = args.object(value, &["weights", "data"], what)?;
    let weights =
        member(members, "weights").ok_or_else(|| args.problem(value.start, "missing `weights`"))?;
    let data =
        member(members, "data").ok_or_else(|| args.problem(value.start, "missing `data`"))?;
    let json::Kind::Array(weight_values) = &weights.value.kind else {
        return Err(args.expected(&weights.value, "an array of numbers for `weights`"));
    };
    let json::Kind::Array(data_values) = &data.value.kind else {
        return Err(args.expected(&data.value, "an array of choices for `data`"));
    };
    if data_values.is_empty() {
        return Err(args.problem(data.value.start, "`data` is empty"));
    }
    if weight_values.len() != data_values.len() {
        return Err(args.problem(
            weights.value.start,
            format!(
                "`weights` has {} entries but `data` has {}; they must match",
                weight_values.len(),
                data_values.len()
            ),
        ));
    }
    let mut cumulative = Vec::with_capacity(weight_values.len());
    let mut total = 0.0;
    for weight in weight_values {
        match weight.as_number() {
            Some(w) if w >= 0.0 => total += w,
            _ => return Err(args.problem(weight.start, "weights must be non-negative numbers")),
        }
        cumulative.push(total);
    }
    if !(total > 0.0 && total.is_finite()) {
        return Err(args.problem(
            weights.value.start,
            "the weights must add up to more than 0",
        ));
    }
    Ok(Kind::Weighted {
        cumulative,
        data: data_values
            .iter()
            .map(|item| args.render_text(item))
            .collect(),
    })
}

fn parse_date_text(text: &str) -> Option<i64> {
    if let Ok(datetime) = DateTime::parse_from_rfc3339(text) {
        return Some(datetime.timestamp_millis());
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Some(naive.and_utc().timestamp_millis());
        }
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

// ---------------------------------------------------------------------------------------------
// Compiled helpers and rendering
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Kind {
    NowIso,
    NowFormatted(Vec<DatePart>),
    /// A random instant `sign * [min_ms, max_ms]` away from `anchor_ms` (default: now).
    DateOffset {
        min_ms: i64,
        max_ms: i64,
        sign: i64,
        anchor_ms: Option<i64>,
    },
    DateBetween {
        from_ms: i64,
        to_ms: i64,
    },
    Pick(&'static [&'static str]),
    Number {
        prefix: Box<str>,
        spec: NumberSpec,
    },
    /// faker's `commerce.price`: a whole amount followed by `decimals` zeros.
    Price {
        spec: NumberSpec,
        decimals: usize,
        symbol: Box<str>,
    },
    Choice(Vec<Box<str>>),
    Weighted {
        cumulative: Vec<f64>,
        data: Vec<Box<str>>,
    },
    Boolean,
    Uuid,
    Words {
        list: &'static [&'static str],
        min: usize,
        max: usize,
    },
    Sentence {
        min: usize,
        max: usize,
    },
    AlphaNumeric(usize),
    /// A layout where each `#` becomes a random digit.
    Digits(Box<str>),
    DigitsOneOf(&'static [&'static str]),
    FullName,
    JobTitle,
    Email,
    UserName,
    Ip,
    Url,
    DomainName,
    StreetAddress,
    CompanyName,
    ProductName,
    FileName,
}

impl Kind {
    fn render(&self, ctx: &mut RenderContext, out: &mut String) {
        let rng = &mut ctx.rng;
        match self {
            Kind::NowIso => push_iso(out, &ctx.now),
            Kind::NowFormatted(parts) => push_formatted_date(out, parts, &ctx.now),
            Kind::DateOffset {
                min_ms,
                max_ms,
                sign,
                anchor_ms,
            } => {
                let base = anchor_ms.unwrap_or(ctx.now_ms);
                let millis = base.saturating_add(sign * rng.i64(*min_ms..=*max_ms));
                push_iso_millis(out, millis, base);
            }
            Kind::DateBetween { from_ms, to_ms } => {
                push_iso_millis(out, rng.i64(*from_ms..=*to_ms), *from_ms)
            }
            Kind::Pick(list) => out.push_str(pick(rng, list)),
            Kind::Number { prefix, spec } => {
                out.push_str(prefix);
                spec.render(rng, out);
            }
            Kind::Price {
                spec,
                decimals,
                symbol,
            } => {
                out.push_str(symbol);
                spec.render(rng, out);
                if *decimals > 0 {
                    out.push('.');
                    for _ in 0..*decimals {
                        out.push('0');
                    }
                }
            }
            Kind::Choice(items) => out.push_str(&items[rng.usize(..items.len())]),
            Kind::Weighted { cumulative, data } => {
                let total = cumulative.last().copied().unwrap_or(0.0);
                let target = rng.f64() * total;
                let index = cumulative
                    .partition_point(|&sum| sum <= target)
                    .min(data.len() - 1);
                out.push_str(&data[index]);
            }
            Kind::Boolean => out.push_str(if rng.bool() { "true" } else { "false" }),
            Kind::Uuid => push_uuid(out, rng.u128(..)),
            Kind::Words { list, min, max } => {
                let count = rng.usize(*min..=*max);
                for index in 0..count {
                    if index > 0 {
                        out.push(' ');
                    }
                    out.push_str(pick(rng, list));
                }
            }
            Kind::Sentence { min, max } => {
                let count = rng.usize(*min..=*max);
                for index in 0..count {
                    let word = pick(rng, words::LOREM_WORDS);
                    if index == 0 {
                        push_capitalized(out, word);
                    } else {
                        out.push(' ');
                        out.push_str(word);
                    }
                }
                out.push('.');
            }
            Kind::AlphaNumeric(count) => {
                const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
                for _ in 0..*count {
                    out.push(ALPHABET[rng.usize(..ALPHABET.len())] as char);
                }
            }
            Kind::Digits(layout) => push_digits(rng, out, layout),
            Kind::DigitsOneOf(layouts) => {
                let layout = pick(rng, layouts);
                push_digits(rng, out, layout);
            }
            Kind::FullName => {
                out.push_str(pick(rng, words::FIRST_NAMES));
                out.push(' ');
                out.push_str(pick(rng, words::LAST_NAMES));
            }
            Kind::JobTitle => {
                out.push_str(pick(rng, words::JOB_DESCRIPTORS));
                out.push(' ');
                out.push_str(pick(rng, words::JOB_AREAS));
                out.push(' ');
                out.push_str(pick(rng, words::JOB_TYPES));
            }
            Kind::Email => {
                push_user_name(rng, out);
                out.push('@');
                out.push_str(pick(rng, words::EMAIL_PROVIDERS));
            }
            Kind::UserName => push_user_name(rng, out),
            Kind::Ip => {
                for octet in 0..4 {
                    if octet > 0 {
                        out.push('.');
                    }
                    push_u64(out, u64::from(rng.u8(..)));
                }
            }
            Kind::Url => {
                out.push_str(if rng.bool() { "https://" } else { "http://" });
                push_domain_name(rng, out);
            }
            Kind::DomainName => push_domain_name(rng, out),
            Kind::StreetAddress => {
                let layout = pick(rng, words::BUILDING_NUMBER_FORMATS);
                push_digits(rng, out, layout);
                out.push(' ');
                let names = if rng.bool() {
                    words::FIRST_NAMES
                } else {
                    words::LAST_NAMES
                };
                out.push_str(pick(rng, names));
                out.push(' ');
                out.push_str(pick(rng, words::STREET_SUFFIXES));
            }
            Kind::CompanyName => match rng.u8(..3) {
                0 => {
                    out.push_str(pick(rng, words::LAST_NAMES));
                    out.push(' ');
                    out.push_str(pick(rng, words::COMPANY_SUFFIXES));
                }
                1 => {
                    out.push_str(pick(rng, words::LAST_NAMES));
                    out.push('-');
                    out.push_str(pick(rng, words::LAST_NAMES));
                }
                _ => {
                    out.push_str(pick(rng, words::LAST_NAMES));
                    out.push_str(", ");
                    out.push_str(pick(rng, words::LAST_NAMES));
                    out.push_str(" and ");
                    out.push_str(pick(rng, words::LAST_NAMES));
                }
            },
            Kind::ProductName => {
                out.push_str(pick(rng, words::PRODUCT_ADJECTIVES));
                out.push(' ');
                out.push_str(pick(rng, words::PRODUCT_MATERIALS));
                out.push(' ');
                out.push_str(pick(rng, words::PRODUCTS));
            }
            Kind::FileName => {
                let count = rng.usize(1..=3);
                for index in 0..count {
                    if index > 0 {
                        out.push('_');
                    }
                    out.push_str(pick(rng, words::LOREM_WORDS));
                }
                out.push('.');
                out.push_str(pick(rng, words::FILE_EXTENSIONS));
            }
        }
    }
}

fn pick(rng: &mut fastrand::Rng, list: &'static [&'static str]) -> &'static str {
    list.get(rng.usize(..list.len().max(1)))
        .copied()
        .unwrap_or("")
}

fn push_capitalized(out: &mut String, word: &str) {
    let mut chars = word.chars();
    if let Some(first) = chars.next() {
        out.extend(first.to_uppercase());
        out.push_str(chars.as_str());
    }
}

fn push_digits(rng: &mut fastrand::Rng, out: &mut String, layout: &str) {
    for c in layout.chars() {
        if c == '#' {
            out.push(char::from(b'0' + rng.u8(..10)));
        } else {
            out.push(c);
        }
    }
}

/// faker's three user-name shapes: `Anna42`, `Anna.Smith`, `Anna_Smith7`.
fn push_user_name(rng: &mut fastrand::Rng, out: &mut String) {
    out.push_str(pick(rng, words::FIRST_NAMES));
    let shape = rng.u8(..3);
    if shape == 0 {
        push_u64(out, rng.u64(..100));
        return;
    }
    out.push(if rng.bool() { '.' } else { '_' });
    out.push_str(pick(rng, words::LAST_NAMES));
    if shape == 2 {
        push_u64(out, rng.u64(..100));
    }
}

fn push_domain_name(rng: &mut fastrand::Rng, out: &mut String) {
    for c in pick(rng, words::FIRST_NAMES).chars() {
        out.push(c.to_ascii_lowercase());
    }
    out.push('.');
    out.push_str(pick(rng, words::DOMAIN_SUFFIXES));
}

fn push_uuid(out: &mut String, random: u128) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bytes = random.to_be_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    for (index, byte) in bytes.iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(HEX[usize::from(byte >> 4)] as char);
        out.push(HEX[usize::from(byte & 0x0f)] as char);
    }
}

fn push_u64(out: &mut String, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    for &digit in &digits[start..] {
        out.push(char::from(digit));
    }
}

fn push_i64(out: &mut String, value: i64) {
    if value < 0 {
        out.push('-');
    }
    push_u64(out, value.unsigned_abs());
}

fn push_padded(out: &mut String, value: u64, width: usize) {
    let mut length = 1;
    let mut rest = value / 10;
    while rest > 0 {
        length += 1;
        rest /= 10;
    }
    for _ in length..width {
        out.push('0');
    }
    push_u64(out, value);
}

// --- numbers ---

/// A uniform draw of `k` in `k_min..=k_max`, rendered as `k * step`.
#[derive(Debug, Clone)]
struct NumberSpec {
    k_min: i64,
    k_max: i64,
    step: Step,
    /// Drop trailing fractional zeros, as JavaScript prints numbers (`random.number`).
    trim_zeros: bool,
}

#[derive(Debug, Clone)]
enum Step {
    /// `step = 10^-decimals`: rendered exactly from the integer `k`.
    Decimal(u32),
    /// Any other step, rendered through floating point with `decimals` places if finite.
    Multiple { step: f64, decimals: Option<usize> },
}

impl NumberSpec {
    fn new(min: f64, max: f64, precision: f64, trim_zeros: bool) -> Result<NumberSpec, String> {
        if !(precision > 0.0 && precision.is_finite()) {
            return Err(format!(
                "the precision must be a positive number, not {precision}"
            ));
        }
        if min > max {
            return Err(format!(
                "the minimum ({min}) is greater than the maximum ({max})"
            ));
        }
        let decimals = (0..=MAX_DECIMALS as i32).find(|&places| {
            let scaled = precision * 10f64.powi(places);
            (scaled - scaled.round()).abs() <= 1e-9 * scaled.max(1.0)
        });
        let step = match decimals {
            Some(places) if (precision * 10f64.powi(places)).round() == 1.0 => {
                Step::Decimal(places as u32)
            }
            _ => Step::Multiple {
                step: precision,
                decimals: decimals.map(|places| places as usize),
            },
        };
        let tolerance = |x: f64| 1e-9 * x.abs().max(1.0);
        let k_min = min / precision;
        let k_max = max / precision;
        let (k_min, k_max) = (
            (k_min - tolerance(k_min)).ceil(),
            (k_max + tolerance(k_max)).floor(),
        );
        // Beyond 2^53 consecutive integers are no longer representable in f64.
        const LIMIT: f64 = 9.0e15;
        if k_min.abs() > LIMIT || k_max.abs() > LIMIT {
            return Err(format!(
                "the range {min}..{max} is too large for precision {precision}"
            ));
        }
        if k_min > k_max {
            return Err(format!(
                "no multiple of the precision {precision} lies between {min} and {max}"
            ));
        }
        Ok(NumberSpec {
            k_min: k_min as i64,
            k_max: k_max as i64,
            step,
            trim_zeros,
        })
    }

    fn render(&self, rng: &mut fastrand::Rng, out: &mut String) {
        let k = rng.i64(self.k_min..=self.k_max);
        match self.step {
            Step::Decimal(0) => push_i64(out, k),
            Step::Decimal(places) => {
                let scale = 10u64.pow(places);
                let magnitude = k.unsigned_abs();
                let mut fraction = magnitude % scale;
                let mut width = places as usize;
                if self.trim_zeros {
                    while width > 0 && fraction.is_multiple_of(10) {
                        fraction /= 10;
                        width -= 1;
                    }
                }
                if k < 0 {
                    out.push('-');
                }
                push_u64(out, magnitude / scale);
                if width > 0 {
                    out.push('.');
                    push_padded(out, fraction, width);
                }
            }
            Step::Multiple { step, decimals } => {
                use std::fmt::Write as _;
                let value = k as f64 * step;
                let start = out.len();
                // Writing into a String cannot fail.
                let _ = match decimals {
                    Some(places) => write!(out, "{value:.places$}"),
                    None => write!(out, "{value}"),
                };
                if self.trim_zeros && out[start..].contains('.') {
                    let trimmed = out.trim_end_matches('0').trim_end_matches('.').len();
                    out.truncate(trimmed);
                }
            }
        }
    }
}

// --- dates ---

#[derive(Debug, Clone)]
enum DatePart {
    Text(Box<str>),
    Field(DateField),
}

#[derive(Debug, Clone, Copy)]
enum DateField {
    Year4,
    Year2,
    MonthLong,
    MonthShort,
    Month2,
    Month1,
    Day2,
    Day1,
    WeekdayLong,
    WeekdayShort,
    Hour24Padded,
    Hour24,
    Hour12Padded,
    Hour12,
    Minute2,
    Minute1,
    Second2,
    Second1,
    Millis,
    Hundredths,
    Tenths,
    MeridiemUpper,
    MeridiemLower,
    OffsetCompact,
    Offset,
    UnixSeconds,
    UnixMillis,
}

/// moment.js tokens, longest first among those sharing a letter so `MMMM` wins over `MM`.
const DATE_TOKENS: &[(&str, DateField)] = &[
    ("YYYY", DateField::Year4),
    ("YY", DateField::Year2),
    ("MMMM", DateField::MonthLong),
    ("MMM", DateField::MonthShort),
    ("MM", DateField::Month2),
    ("M", DateField::Month1),
    ("DD", DateField::Day2),
    ("D", DateField::Day1),
    ("dddd", DateField::WeekdayLong),
    ("ddd", DateField::WeekdayShort),
    ("HH", DateField::Hour24Padded),
    ("H", DateField::Hour24),
    ("hh", DateField::Hour12Padded),
    ("h", DateField::Hour12),
    ("mm", DateField::Minute2),
    ("m", DateField::Minute1),
    ("ss", DateField::Second2),
    ("s", DateField::Second1),
    ("SSS", DateField::Millis),
    ("SS", DateField::Hundredths),
    ("S", DateField::Tenths),
    ("A", DateField::MeridiemUpper),
    ("a", DateField::MeridiemLower),
    ("ZZ", DateField::OffsetCompact),
    ("Z", DateField::Offset),
    ("X", DateField::UnixSeconds),
    ("x", DateField::UnixMillis),
];

fn compile_date_format(format: &str) -> Result<Vec<DatePart>, String> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut rest = format;
    while let Some(c) = rest.chars().next() {
        if c == '[' {
            let Some(close) = rest.find(']') else {
                return Err("`[` in the date format is never closed with `]`".to_owned());
            };
            text.push_str(&rest[1..close]);
            rest = &rest[close + 1..];
            continue;
        }
        if let Some((token, field)) = DATE_TOKENS
            .iter()
            .find(|(token, _)| rest.starts_with(token))
        {
            if !text.is_empty() {
                parts.push(DatePart::Text(std::mem::take(&mut text).into()));
            }
            parts.push(DatePart::Field(*field));
            rest = &rest[token.len()..];
            continue;
        }
        text.push(c);
        rest = &rest[c.len_utf8()..];
    }
    if !text.is_empty() {
        parts.push(DatePart::Text(text.into()));
    }
    Ok(parts)
}

fn push_year(out: &mut String, year: i32) {
    if year < 0 {
        out.push('-');
    }
    push_padded(out, u64::from(year.unsigned_abs()), 4);
}

fn millis_of(datetime: &DateTime<Utc>) -> u64 {
    // A leap second reports 1000+ ms; clamp so the field keeps three digits.
    u64::from(datetime.timestamp_subsec_millis().min(999))
}

/// `2026-11-25T20:34:06.123Z`, what `new Date().toISOString()` prints.
fn push_iso(out: &mut String, datetime: &DateTime<Utc>) {
    push_year(out, datetime.year());
    out.push('-');
    push_padded(out, u64::from(datetime.month()), 2);
    out.push('-');
    push_padded(out, u64::from(datetime.day()), 2);
    out.push('T');
    push_padded(out, u64::from(datetime.hour()), 2);
    out.push(':');
    push_padded(out, u64::from(datetime.minute()), 2);
    out.push(':');
    push_padded(out, u64::from(datetime.second()), 2);
    out.push('.');
    push_padded(out, millis_of(datetime), 3);
    out.push('Z');
}

/// Renders `millis` as ISO-8601, or `fallback_millis` when `millis` is outside chrono's range.
fn push_iso_millis(out: &mut String, millis: i64, fallback_millis: i64) {
    let datetime = DateTime::from_timestamp_millis(millis)
        .or_else(|| DateTime::from_timestamp_millis(fallback_millis))
        .unwrap_or_default();
    push_iso(out, &datetime);
}

fn push_formatted_date(out: &mut String, parts: &[DatePart], datetime: &DateTime<Utc>) {
    for part in parts {
        let field = match part {
            DatePart::Text(text) => {
                out.push_str(text);
                continue;
            }
            DatePart::Field(field) => *field,
        };
        let hour12 = match datetime.hour() % 12 {
            0 => 12,
            hour => hour,
        };
        match field {
            DateField::Year4 => push_year(out, datetime.year()),
            DateField::Year2 => push_padded(
                out,
                u64::from(datetime.year().rem_euclid(100).unsigned_abs()),
                2,
            ),
            DateField::MonthLong => out.push_str(words::MONTHS[datetime.month0() as usize % 12]),
            DateField::MonthShort => {
                out.push_str(words::MONTHS_ABBR[datetime.month0() as usize % 12])
            }
            DateField::Month2 => push_padded(out, u64::from(datetime.month()), 2),
            DateField::Month1 => push_u64(out, u64::from(datetime.month())),
            DateField::Day2 => push_padded(out, u64::from(datetime.day()), 2),
            DateField::Day1 => push_u64(out, u64::from(datetime.day())),
            DateField::WeekdayLong => {
                out.push_str(
                    words::WEEKDAYS[datetime.weekday().num_days_from_monday() as usize % 7],
                );
            }
            DateField::WeekdayShort => {
                out.push_str(
                    words::WEEKDAYS_ABBR[datetime.weekday().num_days_from_monday() as usize % 7],
                );
            }
            DateField::Hour24Padded => push_padded(out, u64::from(datetime.hour()), 2),
            DateField::Hour24 => push_u64(out, u64::from(datetime.hour())),
            DateField::Hour12Padded => push_padded(out, u64::from(hour12), 2),
            DateField::Hour12 => push_u64(out, u64::from(hour12)),
            DateField::Minute2 => push_padded(out, u64::from(datetime.minute()), 2),
            DateField::Minute1 => push_u64(out, u64::from(datetime.minute())),
            DateField::Second2 => push_padded(out, u64::from(datetime.second()), 2),
            DateField::Second1 => push_u64(out, u64::from(datetime.second())),
            DateField::Millis => push_padded(out, millis_of(datetime), 3),
            DateField::Hundredths => push_padded(out, millis_of(datetime) / 10, 2),
            DateField::Tenths => push_u64(out, millis_of(datetime) / 100),
            DateField::MeridiemUpper => {
                out.push_str(if datetime.hour() < 12 { "AM" } else { "PM" })
            }
            DateField::MeridiemLower => {
                out.push_str(if datetime.hour() < 12 { "am" } else { "pm" })
            }
            DateField::OffsetCompact => out.push_str("+0000"),
            DateField::Offset => out.push_str("+00:00"),
            DateField::UnixSeconds => push_i64(out, datetime.timestamp()),
            DateField::UnixMillis => push_i64(out, datetime.timestamp_millis()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSON arguments
// ---------------------------------------------------------------------------------------------

/// A small JSON parser that works in place on the template, so errors carry exact offsets and
/// values keep their source span (numbers render exactly as written).
mod json {
    /// Deeper nesting is refused so hostile input cannot overflow the stack.
    const MAX_DEPTH: usize = 64;

    #[derive(Debug)]
    pub(super) struct Value {
        pub(super) kind: Kind,
        pub(super) start: usize,
        pub(super) end: usize,
    }

    #[derive(Debug)]
    pub(super) enum Kind {
        Null,
        Bool(bool),
        Number(f64),
        String(String),
        Array(Vec<Value>),
        Object(Vec<Member>),
    }

    #[derive(Debug)]
    pub(super) struct Member {
        pub(super) key: String,
        pub(super) key_start: usize,
        pub(super) value: Value,
    }

    #[derive(Debug)]
    pub(super) struct Error {
        pub(super) pos: usize,
        pub(super) message: String,
        pub(super) help: Option<String>,
    }

    impl Value {
        pub(super) fn as_number(&self) -> Option<f64> {
            match self.kind {
                Kind::Number(n) => Some(n),
                _ => None,
            }
        }

        pub(super) fn as_str(&self) -> Option<&str> {
            match &self.kind {
                Kind::String(text) => Some(text),
                _ => None,
            }
        }
    }

    impl Kind {
        pub(super) fn describe(&self) -> &'static str {
            match self {
                Kind::Null => "null",
                Kind::Bool(_) => "a boolean",
                Kind::Number(_) => "a number",
                Kind::String(_) => "a string",
                Kind::Array(_) => "an array",
                Kind::Object(_) => "an object",
            }
        }
    }

    /// Parses one JSON value starting at `pos` (leading whitespace allowed).
    pub(super) fn parse(src: &str, pos: usize) -> Result<Value, Error> {
        Parser {
            src,
            bytes: src.as_bytes(),
            pos,
        }
        .value(0)
    }

    fn error(pos: usize, message: impl Into<String>) -> Error {
        Error {
            pos,
            message: message.into(),
            help: None,
        }
    }

    struct Parser<'a> {
        src: &'a str,
        bytes: &'a [u8],
        pos: usize,
    }

    impl Parser<'_> {
        fn skip_ws(&mut self) {
            self.pos = super::skip_ws(self.bytes, self.pos);
        }

        fn peek(&self) -> Option<u8> {
            self.bytes.get(self.pos).copied()
        }

        fn value(&mut self, depth: usize) -> Result<Value, Error> {
            self.skip_ws();
            let start = self.pos;
            if depth > MAX_DEPTH {
                return Err(error(
                    start,
                    format!("arguments are nested more than {MAX_DEPTH} levels deep"),
                ));
            }
            let kind = match self.peek() {
                None => {
                    return Err(error(
                        start,
                        "expected a JSON value, found the end of the template",
                    ));
                }
                Some(b'"') => Kind::String(self.string()?),
                Some(b'[') => self.array(depth)?,
                Some(b'{') => self.object(depth)?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(_) if self.src[start..].starts_with("true") => {
                    self.literal(4, Kind::Bool(true))
                }
                Some(_) if self.src[start..].starts_with("false") => {
                    self.literal(5, Kind::Bool(false))
                }
                Some(_) if self.src[start..].starts_with("null") => self.literal(4, Kind::Null),
                Some(b'\'') => {
                    return Err(Error {
                        pos: start,
                        message: "expected a JSON value".to_owned(),
                        help: Some("JSON strings use double quotes: \"text\"".to_owned()),
                    });
                }
                Some(b) if b.is_ascii_alphabetic() => {
                    return Err(Error {
                        pos: start,
                        message: "expected a JSON value".to_owned(),
                        help: Some("put text in double quotes: \"text\"".to_owned()),
                    });
                }
                Some(_) => {
                    return Err(error(
                        start,
                        "expected a JSON value (string, number, array, object, true, false or null)",
                    ));
                }
            };
            Ok(Value {
                kind,
                start,
                end: self.pos,
            })
        }

        fn literal(&mut self, length: usize, kind: Kind) -> Kind {
            self.pos += length;
            kind
        }

        /// Parses a string at the opening quote and returns its unescaped content.
        fn string(&mut self) -> Result<String, Error> {
            let open = self.pos;
            self.pos += 1;
            let mut content = String::new();
            let mut run_start = self.pos;
            loop {
                let Some(byte) = self.peek() else {
                    return Err(error(open, "this string is never closed with `\"`"));
                };
                match byte {
                    b'"' => {
                        content.push_str(&self.src[run_start..self.pos]);
                        self.pos += 1;
                        return Ok(content);
                    }
                    b'\\' => {
                        content.push_str(&self.src[run_start..self.pos]);
                        self.escape(&mut content)?;
                        run_start = self.pos;
                    }
                    b'\n' | b'\r' => {
                        return Err(error(
                            open,
                            "this string is not closed before the end of the line",
                        ));
                    }
                    0..0x20 => {
                        return Err(error(
                            self.pos,
                            "control characters must be escaped inside strings",
                        ));
                    }
                    _ => self.pos += 1,
                }
            }
        }

        fn escape(&mut self, content: &mut String) -> Result<(), Error> {
            let backslash = self.pos;
            self.pos += 1;
            let Some(code) = self.peek() else {
                return Err(error(backslash, "unfinished escape sequence"));
            };
            self.pos += 1;
            let unescaped = match code {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => {
                    let high = self.hex4(backslash)?;
                    let code_point = if (0xD800..0xDC00).contains(&high) {
                        if !self.src[self.pos..].starts_with("\\u") {
                            return Err(error(backslash, "unpaired surrogate in \\u escape"));
                        }
                        self.pos += 2;
                        let low = self.hex4(backslash)?;
                        if !(0xDC00..0xE000).contains(&low) {
                            return Err(error(backslash, "unpaired surrogate in \\u escape"));
                        }
                        0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                    } else {
                        high
                    };
                    char::from_u32(code_point)
                        .ok_or_else(|| error(backslash, "invalid \\u escape"))?
                }
                _ => {
                    return Err(error(
                        backslash,
                        "invalid escape sequence; use \\\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX",
                    ));
                }
            };
            content.push(unescaped);
            Ok(())
        }

        fn hex4(&mut self, backslash: usize) -> Result<u32, Error> {
            let digits = self
                .src
                .get(self.pos..self.pos + 4)
                .filter(|digits| digits.bytes().all(|b| b.is_ascii_hexdigit()));
            let value = digits
                .and_then(|digits| u32::from_str_radix(digits, 16).ok())
                .ok_or_else(|| error(backslash, "\\u must be followed by four hex digits"))?;
            self.pos += 4;
            Ok(value)
        }

        fn digits(&mut self) -> usize {
            let start = self.pos;
            while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                self.pos += 1;
            }
            self.pos - start
        }

        fn number(&mut self) -> Result<Kind, Error> {
            let start = self.pos;
            if self.peek() == Some(b'-') {
                self.pos += 1;
            }
            let integer_start = self.pos;
            match self.digits() {
                0 => return Err(error(self.pos, "expected a digit")),
                1 => {}
                _ if self.bytes[integer_start] == b'0' => {
                    return Err(error(integer_start, "numbers cannot start with 0"));
                }
                _ => {}
            }
            if self.peek() == Some(b'.') {
                self.pos += 1;
                if self.digits() == 0 {
                    return Err(error(self.pos, "expected a digit after `.`"));
                }
            }
            if matches!(self.peek(), Some(b'e' | b'E')) {
                self.pos += 1;
                if matches!(self.peek(), Some(b'+' | b'-')) {
                    self.pos += 1;
                }
                if self.digits() == 0 {
                    return Err(error(self.pos, "expected a digit in the exponent"));
                }
            }
            match self.src[start..self.pos].parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(Kind::Number(n)),
                _ => Err(error(start, "number out of range")),
            }
        }

        fn array(&mut self, depth: usize) -> Result<Kind, Error> {
            self.pos += 1;
            let mut items = Vec::new();
            self.skip_ws();
            if self.peek() == Some(b']') {
                self.pos += 1;
                return Ok(Kind::Array(items));
            }
            loop {
                items.push(self.value(depth + 1)?);
                self.skip_ws();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b']') => {
                        self.pos += 1;
                        return Ok(Kind::Array(items));
                    }
                    _ => return Err(error(self.pos, "expected `,` or `]` in the array")),
                }
            }
        }

        fn object(&mut self, depth: usize) -> Result<Kind, Error> {
            self.pos += 1;
            let mut members: Vec<Member> = Vec::new();
            self.skip_ws();
            if self.peek() == Some(b'}') {
                self.pos += 1;
                return Ok(Kind::Object(members));
            }
            loop {
                self.skip_ws();
                let key_start = self.pos;
                if self.peek() != Some(b'"') {
                    return Err(Error {
                        pos: key_start,
                        message: "expected a double-quoted key".to_owned(),
                        help: Some("JSON object keys are quoted: {\"min\": 1}".to_owned()),
                    });
                }
                let key = self.string()?;
                if members.iter().any(|member| member.key == key) {
                    return Err(error(key_start, format!("duplicate key `{key}`")));
                }
                self.skip_ws();
                if self.peek() != Some(b':') {
                    return Err(error(self.pos, "expected `:` after the key"));
                }
                self.pos += 1;
                let value = self.value(depth + 1)?;
                members.push(Member {
                    key,
                    key_start,
                    value,
                });
                self.skip_ws();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        return Ok(Kind::Object(members));
                    }
                    _ => return Err(error(self.pos, "expected `,` or `}` in the object")),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const KDG_EXAMPLE: &str = r#"{"timestamp": "{{date.now}}", "eventType": "{{random.weightedArrayElement({"weights":[0.3,0.1,0.6],"data":["rent","buy","trailer"]})}}", "film_id": {{random.number({"min":1,"max":1000})}}, "distributor": "{{random.arrayElement(["sony","warner","disney"])}}", "platform": "{{random.arrayElement(["web","ios","android"])}}", "state": "{{address.state}}"}"#;

    fn fixed_now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 20, 34, 6)
            .single()
            .expect("valid date")
            + chrono::Duration::milliseconds(123)
    }

    fn render_once(source: &str, seed: u64) -> String {
        let template =
            Template::parse(source).unwrap_or_else(|errors| panic!("{source}: {errors:?}"));
        let mut ctx = RenderContext::new(Some(seed));
        ctx.set_now(fixed_now());
        let mut out = String::new();
        template.render(&mut ctx, &mut out);
        out
    }

    fn render_many(source: &str, seed: u64, count: usize) -> Vec<String> {
        let template =
            Template::parse(source).unwrap_or_else(|errors| panic!("{source}: {errors:?}"));
        let mut ctx = RenderContext::new(Some(seed));
        ctx.set_now(fixed_now());
        (0..count)
            .map(|_| {
                let mut out = String::new();
                template.render(&mut ctx, &mut out);
                out
            })
            .collect()
    }

    fn errors(source: &str) -> Vec<TemplateError> {
        match Template::parse(source) {
            Ok(_) => panic!("{source} should not parse"),
            Err(errors) => errors,
        }
    }

    fn single_error(source: &str) -> TemplateError {
        let mut errors = errors(source);
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors.remove(0)
    }

    #[test]
    fn same_seed_same_output_and_different_seeds_differ() {
        let first = render_many(KDG_EXAMPLE, 7, 50);
        let again = render_many(KDG_EXAMPLE, 7, 50);
        let other = render_many(KDG_EXAMPLE, 8, 50);
        assert_eq!(first, again);
        assert_ne!(first, other);
    }

    #[test]
    fn kdg_example_renders_valid_json() {
        for record in render_many(KDG_EXAMPLE, 1, 1000) {
            let value: serde_json::Value =
                serde_json::from_str(&record).unwrap_or_else(|error| panic!("{record}: {error}"));
            let film_id = value["film_id"].as_i64().expect("film_id is an integer");
            assert!((1..=1000).contains(&film_id), "{film_id}");
            assert!(
                ["rent", "buy", "trailer"].contains(&value["eventType"].as_str().expect("string"))
            );
            assert!(
                ["sony", "warner", "disney"]
                    .contains(&value["distributor"].as_str().expect("string"))
            );
            assert!(
                ["web", "ios", "android"].contains(&value["platform"].as_str().expect("string"))
            );
            assert!(words::US_STATES.contains(&value["state"].as_str().expect("string")));
            assert_eq!(value["timestamp"], "2026-11-25T20:34:06.123Z");
        }
    }

    #[test]
    fn kdg_example_copied_out_of_a_json_document_renders_the_same() {
        // The whole template as a JSON string's content, and only the helper arguments escaped.
        let escaped = KDG_EXAMPLE.replace('"', "\\\"");
        let arguments_only = KDG_EXAMPLE
            .replace("({\"", "({\\\"")
            .replace("\":", "\\\":");
        assert!(
            arguments_only.contains("{\\\"weights\\\":"),
            "{arguments_only}"
        );
        for source in [escaped, arguments_only] {
            assert_eq!(
                render_many(&source, 1, 100),
                render_many(KDG_EXAMPLE, 1, 100),
                "{source}"
            );
        }
        // Still broken after unescaping: the problems of the text as given, and what the
        // unescaped reading found.
        let error = single_error("{{random.number({\\\"min\\\":})}}");
        assert_eq!(error.message, "expected a double-quoted key");
        let help = error.help.unwrap();
        assert!(
            help.ends_with("the template has `\\\"` (JSON's escape of a quote), so it was also read with `\\\"` as `\"`, and that reading fails at line 1, column 24: expected a JSON value (string, number, array, object, true, false or null)"),
            "{help}"
        );
    }

    #[test]
    fn weighted_choice_follows_the_weights() {
        let records = render_many(KDG_EXAMPLE, 3, 10_000);
        let mut counts = [0usize; 3];
        let mut film_ids = std::collections::HashSet::new();
        for record in &records {
            let value: serde_json::Value = serde_json::from_str(record).expect("valid JSON");
            let index = ["rent", "buy", "trailer"]
                .iter()
                .position(|kind| value["eventType"] == *kind)
                .expect("known event type");
            counts[index] += 1;
            film_ids.insert(value["film_id"].as_i64().expect("integer"));
        }
        for (count, expected) in counts.iter().zip([0.3, 0.1, 0.6]) {
            let share = *count as f64 / records.len() as f64;
            assert!(
                (share - expected).abs() < 0.02,
                "share {share} expected {expected}: {counts:?}"
            );
        }
        // 10,000 draws from 1..=1000 should hit nearly every value.
        assert!(film_ids.len() > 990, "{}", film_ids.len());
    }

    #[test]
    fn zero_weights_are_never_chosen() {
        let source = r#"{{random.weightedArrayElement({"weights":[0,1,0],"data":["a","b","c"]})}}"#;
        assert!(render_many(source, 5, 500).iter().all(|value| value == "b"));
    }

    #[test]
    fn date_now_formats() {
        assert_eq!(
            render_once(r#"{{date.now("YYYY/MM/DD")}}"#, 1),
            "2026/11/25"
        );
        assert_eq!(
            render_once("{{date.now}}|{{date.utc}}", 1),
            "2026-11-25T20:34:06.123Z|2026-11-25T20:34:06.123Z"
        );
        assert_eq!(
            render_once(r#"{{date.now("YY M D H h hh mm ss SSS A a Z ZZ")}}"#, 1),
            "26 11 25 20 8 08 34 06 123 PM pm +00:00 +0000"
        );
        assert_eq!(
            render_once(r#"{{date.now("dddd ddd MMMM MMM [YYYY at] X x")}}"#, 1),
            "Wednesday Wed November Nov YYYY at 1795638846 1795638846123"
        );
        assert_eq!(
            render_once(r#"{{date.now("YYYY-MM-DDTHH:mm:ss")}}"#, 1),
            "2026-11-25T20:34:06"
        );
    }

    #[test]
    fn relative_dates_stay_in_range() {
        let now = fixed_now().timestamp_millis();
        let parse = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .expect("ISO date")
                .timestamp_millis()
        };
        for value in render_many("{{date.past}}", 1, 200) {
            let millis = parse(&value);
            assert!(millis < now && millis >= now - YEAR_MS as i64, "{value}");
        }
        for value in render_many("{{date.future(2)}}", 1, 200) {
            let millis = parse(&value);
            assert!(
                millis > now && millis <= now + 2 * YEAR_MS as i64,
                "{value}"
            );
        }
        for value in render_many("{{date.recent}}", 1, 200) {
            let millis = parse(&value);
            assert!(millis < now && millis >= now - DAY_MS as i64, "{value}");
        }
        let from = parse("2020-01-01T00:00:00Z");
        let to = parse("2021-01-01T00:00:00Z");
        for value in render_many(
            r#"{{date.between("2020-01-01","2021-01-01T00:00:00Z")}}"#,
            1,
            200,
        ) {
            let millis = parse(&value);
            assert!((from..=to).contains(&millis), "{value}");
        }
        for value in render_many(r#"{{date.past(1, "2000-06-01")}}"#, 1, 50) {
            assert!(
                value.starts_with("1999-") || value.starts_with("2000-"),
                "{value}"
            );
        }
    }

    #[test]
    fn numbers_respect_range_and_precision() {
        for value in render_many(r#"{{random.number({"min":-5,"max":5})}}"#, 1, 500) {
            let n: i64 = value.parse().expect("integer");
            assert!((-5..=5).contains(&n));
        }
        for value in render_many("{{random.number(3)}}", 1, 200) {
            assert!(["0", "1", "2", "3"].contains(&value.as_str()), "{value}");
        }
        for value in render_many("{{random.number}}", 1, 200) {
            assert!((0..=99_999).contains(&value.parse::<i64>().expect("integer")));
        }
        let mut saw_fraction = false;
        for value in render_many(
            r#"{{random.number({"min":1,"max":2,"precision":0.01})}}"#,
            1,
            500,
        ) {
            let n: f64 = value.parse().expect("number");
            assert!((1.0..=2.0).contains(&n), "{value}");
            let decimals = value
                .split_once('.')
                .map_or(0, |(_, fraction)| fraction.len());
            assert!(
                (decimals <= 2 && !value.ends_with('0')) || !value.contains('.'),
                "{value}"
            );
            saw_fraction |= decimals > 0;
        }
        assert!(saw_fraction);
        for value in render_many(r#"{{random.float({"min":-1,"max":1})}}"#, 1, 500) {
            let n: f64 = value.parse().expect("number");
            assert!((-1.0..=1.0).contains(&n), "{value}");
        }
        for value in render_many(
            r#"{{random.number({"min":0,"max":10,"precision":2.5})}}"#,
            1,
            200,
        ) {
            assert!(
                ["0", "2.5", "5", "7.5", "10"].contains(&value.as_str()),
                "{value}"
            );
        }
        for value in render_many(
            "{{address.latitude}},{{address.longitude(10, -10, 2)}}",
            1,
            200,
        ) {
            let (lat, lon) = value.split_once(',').expect("two numbers");
            assert_eq!(lat.split_once('.').expect("decimals").1.len(), 4, "{lat}");
            assert!((-90.0..=90.0).contains(&lat.parse::<f64>().expect("number")));
            assert_eq!(lon.split_once('.').expect("decimals").1.len(), 2, "{lon}");
            assert!((-10.0..=10.0).contains(&lon.parse::<f64>().expect("number")));
        }
        for value in render_many(
            r#"{{commerce.price(5, 9, 2, "$")}} {{finance.amount(0, 1)}}"#,
            1,
            200,
        ) {
            let (price, amount) = value.split_once(' ').expect("two values");
            assert!(
                ["$5.00", "$6.00", "$7.00", "$8.00", "$9.00"].contains(&price),
                "{price}"
            );
            assert_eq!(amount.len(), 4, "{amount}");
            assert!((0.0..=1.0).contains(&amount.parse::<f64>().expect("number")));
        }
    }

    #[test]
    fn array_elements_render_as_written() {
        let source = r#"{{random.arrayElement(["say \"hi\"\\", 1.50, true, {"a": 1}])}}"#;
        let mut seen: Vec<String> = render_many(source, 1, 200);
        seen.sort();
        seen.dedup();
        assert_eq!(seen, vec!["1.50", "say \"hi\"\\", "true", "{\"a\": 1}"]);
        let keys = render_many(r#"{{random.objectElement({"x":1,"y":2},"key")}}"#, 1, 100);
        assert!(keys.iter().all(|key| key == "x" || key == "y"));
        let values = render_many(r#"{{random.objectElement({"x":"one","y":2})}}"#, 1, 100);
        assert!(values.iter().all(|value| value == "one" || value == "2"));
    }

    #[test]
    fn braces_and_literals() {
        assert_eq!(render_once("plain } text {", 1), "plain } text {");
        let value = render_once(r#"{"a":{{{random.boolean}}}}"#, 1);
        assert!(
            value == r#"{"a":{true}}"# || value == r#"{"a":{false}}"#,
            "{value}"
        );
        let value = render_once(r#"[{{ random.arrayElement(["}}", "{{"]) }}]"#, 1);
        assert!(value == "[}}]" || value == "[{{]", "{value}");
        assert_eq!(
            render_once("{{random.number( 0 )}}x{{random.number()}}", 1)
                .chars()
                .next(),
            Some('0')
        );
        assert_eq!(
            render_once("caf\u{e9} {{date.now(\"[\u{e9}t\u{e9}] YYYY\")}}", 1),
            "caf\u{e9} \u{e9}t\u{e9} 2026"
        );
    }

    #[test]
    fn every_documented_form_parses_and_renders() {
        for info in HELPERS {
            for form in info.forms {
                let source = format!("{{{{{form}}}}}");
                let template =
                    Template::parse(&source).unwrap_or_else(|errors| panic!("{form}: {errors:?}"));
                assert_eq!(template.helpers(), vec![info.name.to_owned()]);
                let mut ctx = RenderContext::new(Some(11));
                let mut out = String::new();
                for _ in 0..20 {
                    out.clear();
                    template.render(&mut ctx, &mut out);
                    assert!(!out.is_empty(), "{form}");
                    // Anything a helper renders by itself must be safe inside a JSON string.
                    let quoted = format!("\"{out}\"");
                    assert!(
                        serde_json::from_str::<String>(&quoted).is_ok(),
                        "{form}: {out}"
                    );
                }
            }
        }
    }

    #[test]
    fn faker_shapes() {
        for uuid in render_many("{{random.uuid}}", 1, 50) {
            let groups: Vec<&str> = uuid.split('-').collect();
            assert_eq!(
                groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
                vec![8, 4, 4, 4, 12],
                "{uuid}"
            );
            assert!(groups[2].starts_with('4'), "{uuid}");
            assert!(
                matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
                "{uuid}"
            );
            assert!(
                uuid.bytes()
                    .all(|b| b == b'-' || b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
        }
        for ip in render_many("{{internet.ip}}", 1, 50) {
            assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{ip}");
        }
        for email in render_many("{{internet.email}}", 1, 50) {
            let (user, domain) = email.split_once('@').expect("an @");
            assert!(
                !user.is_empty() && words::EMAIL_PROVIDERS.contains(&domain),
                "{email}"
            );
        }
        for code in render_many("{{random.alphaNumeric(12)}}", 1, 50) {
            assert_eq!(code.len(), 12);
            assert!(
                code.bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
            );
        }
        for zip in render_many("{{address.zipCode(\"##-#\")}}", 1, 20) {
            assert!(zip.len() == 4 && zip.as_bytes()[2] == b'-', "{zip}");
        }
        for sentence in render_many("{{lorem.sentence(4)}}", 1, 20) {
            assert_eq!(sentence.split(' ').count(), 4, "{sentence}");
            assert!(
                sentence.ends_with('.') && sentence.starts_with(|c: char| c.is_ascii_uppercase())
            );
        }
        assert_eq!(render_once("{{lorem.words(0)}}", 1), "");
        assert!(render_once("{{random.words(5)}}", 1).split(' ').count() >= 5);
        let state = render_once("{{address.stateAbbr}}", 1);
        assert!(words::US_STATE_ABBRS.contains(&state.as_str()));
    }

    #[test]
    fn helpers_lists_each_name_once() {
        let template = Template::parse(KDG_EXAMPLE).expect("parses");
        assert_eq!(
            template.helpers(),
            vec![
                "date.now",
                "random.weightedArrayElement",
                "random.number",
                "random.arrayElement",
                "address.state"
            ]
        );
    }

    #[test]
    fn unknown_helper_suggests_the_closest_name() {
        let error = single_error("{\"a\": \"{{name.firstname}}\"}").to_string();
        assert!(
            error
                == "line 1, column 10: unknown helper `name.firstname` \
                     (help: did you mean `name.firstName`?)",
            "{error}"
        );
        let errors = errors("{\"a\": 1,\n \"b\": {{random.numbr({\"max\":3})}}}");
        assert_eq!((errors[0].line, errors[0].column), (2, 9));
        assert_eq!(errors[0].message, "unknown helper `random.numbr`");
        assert_eq!(
            errors[0].help.as_deref(),
            Some("did you mean `random.number`?")
        );
        let error = single_error("{{faker.name.firstName}}");
        assert_eq!(
            error.help.as_deref(),
            Some("drop the `faker.` prefix: `{{name.firstName}}`")
        );
        let error = single_error("{{zzz.qqq}}");
        assert!(
            error
                .help
                .as_deref()
                .is_some_and(|help| help.contains("namespaces")),
            "{error:?}"
        );
    }

    #[test]
    fn bad_json_argument_is_reported_where_it_is() {
        let error = single_error("x {{random.arrayElement(['a','b'])}}");
        assert_eq!((error.line, error.column), (1, 26));
        assert_eq!(
            error.help.as_deref(),
            Some("JSON strings use double quotes: \"text\"")
        );
        let error = single_error("{{random.number({min:1})}}");
        assert_eq!(
            (error.column, error.message.as_str()),
            (18, "expected a double-quoted key")
        );
        let error = single_error("{{random.number({\"min\":1,\"max\":})}}");
        assert_eq!(error.column, 32);
        let error = single_error("{{random.arrayElement([\"a\" \"b\"])}}");
        assert_eq!(
            (error.column, error.message.as_str()),
            (28, "expected `,` or `]` in the array")
        );
        let error = single_error("{{random.number(\"ten\")}}");
        assert_eq!(error.column, 17);
        assert_eq!(
            error.message,
            "expected a maximum or an object such as {\"min\":1,\"max\":10}, found a string"
        );
        let error = single_error("{{random.number({\"min\":1,\"mx\":3})}}");
        assert_eq!(
            (error.column, error.help.as_deref()),
            (26, Some("did you mean `max`?"))
        );
        let error = single_error("{{random.number({\"min\":10,\"max\":1})}}");
        assert_eq!(
            error.message,
            "the minimum (10) is greater than the maximum (1)"
        );
        let error = single_error("{{random.boolean(1)}}");
        assert_eq!(
            (error.column, error.message.as_str()),
            (18, "`random.boolean` takes no arguments")
        );
        let error = single_error("{{date.between(\"2020-01-01\")}}");
        assert_eq!(
            (error.column, error.message.as_str()),
            (28, "`date.between` needs an end date")
        );
        let error = single_error("{{date.between(\"2020-01-01\", \"soon\")}}");
        assert_eq!(error.column, 30);
        let error = single_error("{{random.arrayElement([])}}");
        assert_eq!(error.message, "the array of choices is empty");
        let error = single_error("{{date.now(\"[YYYY\")}}");
        assert!(error.message.contains("never closed with `]`"), "{error:?}");
    }

    #[test]
    fn unclosed_placeholder_is_reported_at_its_braces() {
        let error = single_error("{\"a\": 1,\n  \"b\": {{random.number");
        assert_eq!((error.line, error.column), (2, 8));
        assert_eq!(error.message, "`{{` is never closed with `}}`");
        // The next placeholder is still checked.
        let found = errors("\"{{date.now\", \"{{nope}}\"");
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(
            (found[0].column, found[0].message.as_str()),
            (2, "`{{` is never closed with `}}`")
        );
        assert_eq!(
            (found[1].column, found[1].message.as_str()),
            (18, "unknown helper `nope`")
        );
        // A runaway string must not hide the next placeholder's problem.
        let runaway = errors("\"{{date.now(\"YYYY)}}\"} {{random.number(x)}}");
        assert_eq!(runaway.len(), 2, "{runaway:?}");
        assert_eq!(runaway[0].column, 22);
        assert_eq!(
            (runaway[1].column, runaway[1].message.as_str()),
            (40, "expected a JSON value")
        );
        let error = single_error("{{date.now(\"YYYY)}}");
        assert_eq!(error.column, 12);
        assert!(
            error.message.contains("never closed with `\"`"),
            "{error:?}"
        );
        let error = single_error("{{}}");
        assert_eq!(
            (error.column, error.message.as_str()),
            (3, "expected a helper name after `{{`")
        );
    }

    #[test]
    fn bad_weights_are_rejected() {
        let error = single_error(
            r#"{{random.weightedArrayElement({"weights":[0.5,-0.1],"data":["a","b"]})}}"#,
        );
        assert_eq!(
            (error.column, error.message.as_str()),
            (47, "weights must be non-negative numbers")
        );
        let error =
            single_error(r#"{{random.weightedArrayElement({"weights":[1,2],"data":["a"]})}}"#);
        assert_eq!(error.column, 42);
        assert_eq!(
            error.message,
            "`weights` has 2 entries but `data` has 1; they must match"
        );
        let error =
            single_error(r#"{{random.weightedArrayElement({"weights":[0,0],"data":["a","b"]})}}"#);
        assert_eq!(
            (error.column, error.message.as_str()),
            (42, "the weights must add up to more than 0")
        );
        let error = single_error(r#"{{random.weightedArrayElement({"data":["a"]})}}"#);
        assert_eq!(
            (error.column, error.message.as_str()),
            (31, "missing `weights`")
        );
        let error =
            single_error(r#"{{random.weightedArrayElement({"weights":["1"],"data":["a"]})}}"#);
        assert_eq!(error.column, 43);
    }

    #[test]
    fn all_errors_are_collected() {
        let source = "{{random.nubmer}} {{random.number(-)}}\n{{random.uuid(1)}} {{date.between(\"2021-01-01\",\"2020-01-01\")}}";
        let found: Vec<(usize, usize)> = errors(source)
            .iter()
            .map(|error| (error.line, error.column))
            .collect();
        // `-` without digits is reported where the digits should start.
        assert_eq!(found, vec![(1, 3), (1, 36), (2, 15), (2, 48)]);
    }

    #[test]
    fn hostile_input_does_not_panic() {
        let deep = format!(
            "{{{{random.arrayElement({}1{})}}}}",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert!(errors(&deep)[0].message.contains("nested"));
        for source in [
            "{{",
            "{{random",
            "{{random.number(",
            "{{random.number(\"",
            "{{random.number(\"\\u12",
            "{{random.number(1e999)}}",
            "{{random.alphaNumeric(1e9)}}",
            "{{date.past(-1)}}",
            "{{random.number({\"precision\":0})}}",
            "{{random.number({\"min\":0,\"max\":1e300,\"precision\":1e-10})}}",
            "{{address.latitude(1,2)}}",
            "\u{e9}{{\u{e9}}}",
        ] {
            assert!(Template::parse(source).is_err(), "{source}");
        }
    }

    #[test]
    #[ignore = "micro-benchmark; run with --ignored --nocapture"]
    fn render_throughput() {
        let template = Template::parse(KDG_EXAMPLE).expect("parses");
        let mut ctx = RenderContext::new(Some(1));
        let mut out = String::with_capacity(256);
        let records = 1_000_000;
        let started = std::time::Instant::now();
        let mut bytes = 0;
        for _ in 0..records {
            out.clear();
            template.render(&mut ctx, &mut out);
            bytes += out.len();
        }
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "{records} records ({bytes} bytes) in {elapsed:.3}s: {:.0} records/s",
            records as f64 / elapsed
        );
    }
}
