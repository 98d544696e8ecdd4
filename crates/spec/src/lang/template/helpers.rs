//! The helper table (every helper's name and valid calls) and the checking of a call's
//! arguments, which compiles it into what renders.

use chrono::{DateTime, NaiveDate, NaiveDateTime};

use super::render::{Kind, NumberSpec, compile_date_format};
use super::{Problem, json};
use crate::lang::faker_data as words;

pub(super) struct HelperInfo {
    pub(super) name: &'static str,
    /// Valid calls, shown in error help; the tests check that each one parses.
    pub(super) forms: &'static [&'static str],
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
        pub(super) static HELPERS: &[HelperInfo] = &[$(HelperInfo { name: $name, forms: &[$($form),*] }),*];
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

pub(super) fn unknown_helper(name: &str, pos: usize) -> Problem {
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

/// Upper bound for counts such as `random.alphaNumeric(n)`, so a typo cannot make every record
/// gigabytes long.
const MAX_COUNT: usize = 100_000;
const MAX_YEARS: f64 = 1_000.0;
const MAX_DAYS: f64 = 365_000.0;
pub(super) const DAY_MS: f64 = 86_400_000.0;
pub(super) const YEAR_MS: f64 = 365.0 * DAY_MS;
/// Decimal places accepted for precisions and `dec` arguments (10^12 still fits an i64 scale).
pub(super) const MAX_DECIMALS: f64 = 12.0;

/// The arguments of one placeholder, with what is needed to report problems about them.
pub(super) struct Args<'a> {
    pub(super) info: &'static HelperInfo,
    pub(super) values: &'a [json::Value],
    /// Where to point when an argument is missing: the `)` or the `}}`.
    pub(super) missing_pos: usize,
    pub(super) src: &'a str,
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

    /// The argument at `index` as `read` takes it (`None` when it is absent); a value `read`
    /// refuses is a problem saying `what` was expected.
    fn read<T>(
        &self,
        index: usize,
        what: &str,
        read: impl FnOnce(&'a json::Value) -> Option<T>,
    ) -> Result<Option<T>, Problem> {
        match self.get(index) {
            None => Ok(None),
            Some(value) => read(value)
                .map(Some)
                .ok_or_else(|| self.expected(value, what)),
        }
    }

    fn number(&self, index: usize, what: &str) -> Result<Option<f64>, Problem> {
        self.read(index, what, json::Value::as_number)
    }

    fn string(&self, index: usize, what: &str) -> Result<Option<&'a str>, Problem> {
        self.read(index, what, json::Value::as_str)
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
                        crate::diag::comma_list(allowed.iter().map(|key| format!("`{key}`")))
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

pub(super) fn compile(args: &Args<'_>) -> Result<Kind, Problem> {
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
