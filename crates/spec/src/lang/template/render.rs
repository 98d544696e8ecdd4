//! Compiled helpers and rendering: what each helper appends to a record, drawn from the
//! render context's random generator and clock.

use chrono::{DateTime, Datelike, Timelike, Utc};

use super::RenderContext;
use super::helpers::MAX_DECIMALS;
use crate::lang::faker_data as words;

#[derive(Debug, Clone)]
pub(super) enum Kind {
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
    pub(super) fn render(&self, ctx: &mut RenderContext, out: &mut String) {
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
            Kind::FullName => push_picks(rng, out, " ", &[words::FIRST_NAMES, words::LAST_NAMES]),
            Kind::JobTitle => push_picks(
                rng,
                out,
                " ",
                &[words::JOB_DESCRIPTORS, words::JOB_AREAS, words::JOB_TYPES],
            ),
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
                0 => push_picks(rng, out, " ", &[words::LAST_NAMES, words::COMPANY_SUFFIXES]),
                1 => push_picks(rng, out, "-", &[words::LAST_NAMES, words::LAST_NAMES]),
                _ => {
                    out.push_str(pick(rng, words::LAST_NAMES));
                    out.push_str(", ");
                    out.push_str(pick(rng, words::LAST_NAMES));
                    out.push_str(" and ");
                    out.push_str(pick(rng, words::LAST_NAMES));
                }
            },
            Kind::ProductName => push_picks(
                rng,
                out,
                " ",
                &[
                    words::PRODUCT_ADJECTIVES,
                    words::PRODUCT_MATERIALS,
                    words::PRODUCTS,
                ],
            ),
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
/// A word picked from each of `lists` in turn, joined by `sep`.
fn push_picks(
    rng: &mut fastrand::Rng,
    out: &mut String,
    sep: &str,
    lists: &[&'static [&'static str]],
) {
    for (i, list) in lists.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(pick(rng, list));
    }
}

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
pub(super) struct NumberSpec {
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
    pub(super) fn new(
        min: f64,
        max: f64,
        precision: f64,
        trim_zeros: bool,
    ) -> Result<NumberSpec, String> {
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
pub(super) enum DatePart {
    Text(Box<str>),
    Field(DateField),
}

#[derive(Debug, Clone, Copy)]
pub(super) enum DateField {
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

pub(super) fn compile_date_format(format: &str) -> Result<Vec<DatePart>, String> {
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
