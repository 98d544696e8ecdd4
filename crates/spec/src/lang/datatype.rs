//! Column type names, as written in the `cast` transform and in declared column lists.
//!
//! Names are case-insensitive and accept the usual SQL spellings (`bigint`, `varchar`, ...);
//! [`ColumnType`]'s `Display` prints one canonical spelling that parses back to the same type.

use std::fmt;
use std::str::FromStr;

use super::expr::{ExprError, closest_name};

/// A column's type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// `bool` / `boolean`.
    Bool,
    /// `int8` / `tinyint`.
    Int8,
    /// `int16` / `smallint`.
    Int16,
    /// `int32` / `int` / `integer`.
    Int32,
    /// `int64` / `bigint` / `long`.
    Int64,
    /// `uint8`.
    UInt8,
    /// `uint16`.
    UInt16,
    /// `uint32`.
    UInt32,
    /// `uint64`.
    UInt64,
    /// `float32` / `float` / `real`.
    Float32,
    /// `float64` / `double`.
    Float64,
    /// `decimal(p,s)` / `numeric(p,s)`: exact, `precision` digits of which `scale` after the point.
    Decimal {
        /// Total significant digits, 1..=38.
        precision: u8,
        /// Digits after the decimal point, 0..=precision.
        scale: i8,
    },
    /// `string` / `text` / `varchar` / `utf8`.
    String,
    /// `binary` / `bytes` / `blob`.
    Binary,
    /// `date`: a calendar day.
    Date,
    /// `time`: a time of day, microsecond precision.
    Time,
    /// `timestamp`, `timestamp(ms)`, `timestamptz`, `timestamp(us, 'Europe/Berlin')`.
    Timestamp {
        /// Stored resolution.
        unit: TimeUnit,
        /// IANA zone name or `±HH:MM` offset; `None` for zone-less (local) timestamps.
        timezone: Option<String>,
    },
    /// `json`: JSON text.
    Json,
}

/// Resolution of a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeUnit {
    /// `s`
    Second,
    /// `ms`
    Millisecond,
    /// `us`
    Microsecond,
    /// `ns`
    Nanosecond,
}

impl TimeUnit {
    /// The short name used in type names (`s`, `ms`, `us`, `ns`).
    pub fn short_name(self) -> &'static str {
        match self {
            TimeUnit::Second => "s",
            TimeUnit::Millisecond => "ms",
            TimeUnit::Microsecond => "us",
            TimeUnit::Nanosecond => "ns",
        }
    }

    fn parse(word: &str) -> Option<TimeUnit> {
        match word.to_ascii_lowercase().as_str() {
            "s" | "second" | "seconds" => Some(TimeUnit::Second),
            "ms" | "millisecond" | "milliseconds" => Some(TimeUnit::Millisecond),
            "us" | "microsecond" | "microseconds" => Some(TimeUnit::Microsecond),
            "ns" | "nanosecond" | "nanoseconds" => Some(TimeUnit::Nanosecond),
            _ => None,
        }
    }
}

/// Every accepted type name (without parameters), for "did you mean" suggestions.
pub const TYPE_NAMES: &[&str] = &[
    "bool",
    "boolean",
    "int8",
    "tinyint",
    "int16",
    "smallint",
    "int32",
    "int",
    "integer",
    "int64",
    "bigint",
    "long",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float32",
    "float",
    "real",
    "float64",
    "double",
    "decimal",
    "numeric",
    "string",
    "text",
    "varchar",
    "utf8",
    "binary",
    "bytes",
    "blob",
    "date",
    "time",
    "timestamp",
    "timestamptz",
    "json",
];

/// Highest decimal precision (what a 128-bit decimal holds).
const MAX_DECIMAL_PRECISION: u64 = 38;

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::Bool => f.write_str("bool"),
            ColumnType::Int8 => f.write_str("int8"),
            ColumnType::Int16 => f.write_str("int16"),
            ColumnType::Int32 => f.write_str("int32"),
            ColumnType::Int64 => f.write_str("int64"),
            ColumnType::UInt8 => f.write_str("uint8"),
            ColumnType::UInt16 => f.write_str("uint16"),
            ColumnType::UInt32 => f.write_str("uint32"),
            ColumnType::UInt64 => f.write_str("uint64"),
            ColumnType::Float32 => f.write_str("float32"),
            ColumnType::Float64 => f.write_str("float64"),
            ColumnType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            ColumnType::String => f.write_str("string"),
            ColumnType::Binary => f.write_str("binary"),
            ColumnType::Date => f.write_str("date"),
            ColumnType::Time => f.write_str("time"),
            ColumnType::Timestamp {
                unit: TimeUnit::Microsecond,
                timezone: None,
            } => f.write_str("timestamp"),
            ColumnType::Timestamp {
                unit,
                timezone: None,
            } => write!(f, "timestamp({})", unit.short_name()),
            ColumnType::Timestamp {
                unit,
                timezone: Some(zone),
            } => write!(
                f,
                "timestamp({}, '{}')",
                unit.short_name(),
                zone.replace('\'', "''")
            ),
            ColumnType::Json => f.write_str("json"),
        }
    }
}

impl FromStr for ColumnType {
    type Err = ExprError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_column_type(text)
    }
}

/// One parameter inside `name(...)`.
#[derive(Debug)]
enum Arg {
    Number(String),
    Word(String),
    Quoted(String),
}

#[derive(Debug)]
struct LocatedArg {
    arg: Arg,
    column: usize,
}

impl LocatedArg {
    fn describe(&self) -> String {
        match &self.arg {
            Arg::Number(text) => text.clone(),
            Arg::Word(word) => word.clone(),
            Arg::Quoted(text) => format!("'{text}'"),
        }
    }
}

/// Parses a type name such as `int64`, `decimal(10,2)` or `timestamp(ms, 'UTC')`.
pub fn parse_column_type(text: &str) -> Result<ColumnType, ExprError> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = skip_whitespace(&chars, 0);
    let name_column = i + 1;
    let name_start = i;
    while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
        i += 1;
    }
    let name: String = chars[name_start..i].iter().collect();
    if name.is_empty() {
        let message = match chars.get(i) {
            None => "expected a type name".to_string(),
            Some(c) => format!("expected a type name, found '{c}'"),
        };
        return Err(ExprError::new(name_column, message)
            .with_help("e.g. int64, string, decimal(10,2), timestamp(ms)"));
    }
    i = skip_whitespace(&chars, i);
    let open_column = i + 1;
    let args = if chars.get(i) == Some(&'(') {
        let (args, end) = parse_args(&chars, i)?;
        i = end;
        Some(args)
    } else {
        None
    };
    i = skip_whitespace(&chars, i);
    if let Some(c) = chars.get(i) {
        return Err(ExprError::new(
            i + 1,
            format!("unexpected '{c}' after the type name"),
        ));
    }
    let lower = name.to_ascii_lowercase();
    let simple = match lower.as_str() {
        "bool" | "boolean" => Some(ColumnType::Bool),
        "int8" | "tinyint" => Some(ColumnType::Int8),
        "int16" | "smallint" => Some(ColumnType::Int16),
        "int32" | "int" | "integer" => Some(ColumnType::Int32),
        "int64" | "bigint" | "long" => Some(ColumnType::Int64),
        "uint8" => Some(ColumnType::UInt8),
        "uint16" => Some(ColumnType::UInt16),
        "uint32" => Some(ColumnType::UInt32),
        "uint64" => Some(ColumnType::UInt64),
        "float32" | "float" | "real" => Some(ColumnType::Float32),
        "float64" | "double" => Some(ColumnType::Float64),
        "string" | "text" | "varchar" | "utf8" => Some(ColumnType::String),
        "binary" | "bytes" | "blob" => Some(ColumnType::Binary),
        "date" => Some(ColumnType::Date),
        "time" => Some(ColumnType::Time),
        "json" => Some(ColumnType::Json),
        _ => None,
    };
    if let Some(simple) = simple {
        if args.is_some() {
            let error = ExprError::new(open_column, format!("type {name} takes no parameters"));
            return Err(if simple == ColumnType::String {
                error.with_help(format!("strings have no length limit; write just {name}"))
            } else {
                error
            });
        }
        return Ok(simple);
    }
    let args = args.unwrap_or_default();
    match lower.as_str() {
        "decimal" | "numeric" => decimal_type(&name, name_column, &args),
        "timestamp" | "timestamptz" => timestamp_type(&name, lower == "timestamptz", &args),
        _ => {
            let error = ExprError::new(name_column, format!("unknown type '{name}'"));
            Err(match closest_name(&name, TYPE_NAMES.iter().copied()) {
                Some(suggestion) => error.with_help(format!("did you mean '{suggestion}'?")),
                None => error.with_help(format!("known types: {}", TYPE_NAMES.join(", "))),
            })
        }
    }
}

fn skip_whitespace(chars: &[char], mut i: usize) -> usize {
    while chars.get(i).is_some_and(|c| c.is_whitespace()) {
        i += 1;
    }
    i
}

/// Parses `(arg, arg, ...)` starting at the `(`; returns the arguments and the index after `)`.
fn parse_args(chars: &[char], open: usize) -> Result<(Vec<LocatedArg>, usize), ExprError> {
    let mut args = Vec::new();
    let mut i = skip_whitespace(chars, open + 1);
    if chars.get(i) == Some(&')') {
        return Err(ExprError::new(i + 1, "expected a parameter inside '()'"));
    }
    loop {
        i = skip_whitespace(chars, i);
        let column = i + 1;
        let arg = match chars.get(i) {
            None => {
                return Err(ExprError::new(open + 1, "unclosed '(': missing ')'"));
            }
            Some(c) if c.is_ascii_digit() => {
                let start = i;
                while chars.get(i).is_some_and(char::is_ascii_digit) {
                    i += 1;
                }
                Arg::Number(chars[start..i].iter().collect())
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
                {
                    i += 1;
                }
                Arg::Word(chars[start..i].iter().collect())
            }
            Some('\'') => {
                let mut content = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(ExprError::new(
                                column,
                                "unclosed string: missing closing '",
                            ));
                        }
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            content.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(&c) => {
                            content.push(c);
                            i += 1;
                        }
                    }
                }
                Arg::Quoted(content)
            }
            Some(c) => {
                return Err(ExprError::new(
                    column,
                    format!("expected a parameter, found '{c}'"),
                ));
            }
        };
        args.push(LocatedArg { arg, column });
        i = skip_whitespace(chars, i);
        match chars.get(i) {
            Some(',') => i += 1,
            Some(')') => return Ok((args, i + 1)),
            None => return Err(ExprError::new(open + 1, "unclosed '(': missing ')'")),
            Some(c) => {
                return Err(ExprError::new(
                    i + 1,
                    format!("expected ',' or ')', found '{c}'"),
                ));
            }
        }
    }
}

fn number_arg(arg: &LocatedArg, what: &str) -> Result<u64, ExprError> {
    match &arg.arg {
        Arg::Number(text) => text
            .parse::<u64>()
            .map_err(|_| ExprError::new(arg.column, format!("{what} {text} is too large"))),
        _ => Err(ExprError::new(
            arg.column,
            format!("expected a number for the {what}, found {}", arg.describe()),
        )),
    }
}

fn decimal_type(
    name: &str,
    name_column: usize,
    args: &[LocatedArg],
) -> Result<ColumnType, ExprError> {
    let help = format!("give precision and scale, e.g. {name}(10,2)");
    let (precision_arg, scale_arg) = match args {
        [] => {
            return Err(
                ExprError::new(name_column, format!("{name} needs a precision and scale"))
                    .with_help(help),
            );
        }
        [precision] => (precision, None),
        [precision, scale] => (precision, Some(scale)),
        [_, _, extra, ..] => {
            return Err(ExprError::new(
                extra.column,
                format!("{name} takes at most two parameters (precision, scale)"),
            )
            .with_help(help));
        }
    };
    let precision = number_arg(precision_arg, "precision")?;
    if !(1..=MAX_DECIMAL_PRECISION).contains(&precision) {
        return Err(ExprError::new(
            precision_arg.column,
            format!("precision must be between 1 and {MAX_DECIMAL_PRECISION}, got {precision}"),
        ));
    }
    let scale = match scale_arg {
        None => 0,
        Some(arg) => {
            let scale = number_arg(arg, "scale")?;
            if scale > precision {
                return Err(ExprError::new(
                    arg.column,
                    format!("scale must be between 0 and the precision ({precision}), got {scale}"),
                ));
            }
            scale
        }
    };
    // Both bounded by 38 above, so the narrowing cannot lose anything.
    Ok(ColumnType::Decimal {
        precision: precision as u8,
        scale: scale as i8,
    })
}

fn timestamp_type(name: &str, is_tz: bool, args: &[LocatedArg]) -> Result<ColumnType, ExprError> {
    let unit = match args.first() {
        None => TimeUnit::Microsecond,
        Some(arg) => {
            let unit = match &arg.arg {
                Arg::Word(word) => TimeUnit::parse(word),
                _ => None,
            };
            unit.ok_or_else(|| {
                ExprError::new(arg.column, format!("unknown time unit {}", arg.describe()))
                    .with_help("use s, ms, us or ns, e.g. timestamp(ms)")
            })?
        }
    };
    let timezone = match args {
        [] | [_] => is_tz.then(|| "UTC".to_string()),
        [_, zone] if !is_tz => Some(time_zone(zone)?),
        [_, zone] => {
            return Err(ExprError::new(
                zone.column,
                "timestamptz is always UTC and takes only a unit",
            )
            .with_help(format!(
                "for another zone write timestamp({}, {})",
                unit.short_name(),
                zone.describe()
            )));
        }
        [_, _, extra, ..] => {
            return Err(ExprError::new(
                extra.column,
                format!("{name} takes at most two parameters (unit, time zone)"),
            ));
        }
    };
    Ok(ColumnType::Timestamp { unit, timezone })
}

/// Validates a zone parameter: an IANA name known to chrono-tz or a `±HH:MM` offset.
fn time_zone(arg: &LocatedArg) -> Result<String, ExprError> {
    let zone = match &arg.arg {
        Arg::Quoted(zone) => zone,
        _ => {
            return Err(ExprError::new(
                arg.column,
                format!("expected a quoted time zone, found {}", arg.describe()),
            )
            .with_help("e.g. timestamp(us, 'Europe/Berlin')"));
        }
    };
    if chrono_tz::Tz::from_str(zone).is_ok() || is_fixed_offset(zone) {
        return Ok(zone.clone());
    }
    let error = ExprError::new(arg.column, format!("unknown time zone '{zone}'"));
    let names = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name());
    Err(match closest_name(zone, names) {
        Some(suggestion) => error.with_help(format!("did you mean '{suggestion}'?")),
        None => error.with_help(
            "use an IANA zone name such as 'Europe/Berlin' or an offset such as '+02:00'",
        ),
    })
}

/// `+HH:MM` / `-HH:MM` with hours up to 23 and minutes up to 59.
fn is_fixed_offset(zone: &str) -> bool {
    let bytes = zone.as_bytes();
    if bytes.len() != 6 || !matches!(bytes[0], b'+' | b'-') || bytes[3] != b':' {
        return false;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        zone.get(range)
            .filter(|part| part.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|part| part.parse().ok())
    };
    matches!((digits(1..3), digits(4..6)), (Some(hours), Some(minutes)) if hours <= 23 && minutes <= 59)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> ColumnType {
        match parse_column_type(text) {
            Ok(parsed) => parsed,
            Err(error) => panic!("{text:?} failed: {error}"),
        }
    }

    fn parse_err(text: &str) -> ExprError {
        match parse_column_type(text) {
            Ok(parsed) => panic!("{text:?} parsed unexpectedly as {parsed:?}"),
            Err(error) => error,
        }
    }

    #[test]
    fn accepts_all_spellings() {
        let cases = [
            ("bool", ColumnType::Bool),
            ("BOOLEAN", ColumnType::Bool),
            ("tinyint", ColumnType::Int8),
            ("smallint", ColumnType::Int16),
            ("int", ColumnType::Int32),
            ("Integer", ColumnType::Int32),
            ("bigint", ColumnType::Int64),
            ("long", ColumnType::Int64),
            ("uint8", ColumnType::UInt8),
            ("uint64", ColumnType::UInt64),
            ("float", ColumnType::Float32),
            ("real", ColumnType::Float32),
            ("double", ColumnType::Float64),
            ("text", ColumnType::String),
            ("VARCHAR", ColumnType::String),
            ("utf8", ColumnType::String),
            ("blob", ColumnType::Binary),
            ("bytes", ColumnType::Binary),
            ("date", ColumnType::Date),
            ("time", ColumnType::Time),
            ("json", ColumnType::Json),
            ("  int64  ", ColumnType::Int64),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_ok(text), expected, "{text}");
        }
        for name in TYPE_NAMES {
            if !matches!(*name, "decimal" | "numeric") {
                assert!(
                    parse_column_type(name).is_ok(),
                    "{name} is listed but rejected"
                );
            }
        }
    }

    #[test]
    fn parses_decimals() {
        assert_eq!(
            parse_ok("decimal(10,2)"),
            ColumnType::Decimal {
                precision: 10,
                scale: 2
            }
        );
        assert_eq!(
            parse_ok("NUMERIC( 38 , 38 )"),
            ColumnType::Decimal {
                precision: 38,
                scale: 38
            }
        );
        assert_eq!(
            parse_ok("decimal(5)"),
            ColumnType::Decimal {
                precision: 5,
                scale: 0
            }
        );
        let error = parse_err("decimal");
        assert_eq!(error.message, "decimal needs a precision and scale");
        assert_eq!(
            error.help.as_deref(),
            Some("give precision and scale, e.g. decimal(10,2)")
        );
        let error = parse_err("decimal(39,2)");
        assert_eq!(error.message, "precision must be between 1 and 38, got 39");
        assert_eq!(error.column, 9);
        assert_eq!(
            parse_err("decimal(0)").message,
            "precision must be between 1 and 38, got 0"
        );
        let error = parse_err("decimal(10,11)");
        assert_eq!(
            error.message,
            "scale must be between 0 and the precision (10), got 11"
        );
        assert_eq!(error.column, 12);
        assert!(parse_err("decimal(10,2,1)").message.contains("at most two"));
        assert!(
            parse_err("decimal(x,2)")
                .message
                .contains("expected a number")
        );
        assert!(
            parse_err("decimal(99999999999999999999999)")
                .message
                .contains("too large")
        );
    }

    #[test]
    fn parses_timestamps() {
        let ts = |unit, zone: Option<&str>| ColumnType::Timestamp {
            unit,
            timezone: zone.map(str::to_string),
        };
        assert_eq!(parse_ok("timestamp"), ts(TimeUnit::Microsecond, None));
        assert_eq!(parse_ok("timestamp(ms)"), ts(TimeUnit::Millisecond, None));
        assert_eq!(parse_ok("timestamp(NS)"), ts(TimeUnit::Nanosecond, None));
        assert_eq!(parse_ok("timestamp(s)"), ts(TimeUnit::Second, None));
        assert_eq!(
            parse_ok("timestamptz"),
            ts(TimeUnit::Microsecond, Some("UTC"))
        );
        assert_eq!(
            parse_ok("timestamptz(ms)"),
            ts(TimeUnit::Millisecond, Some("UTC"))
        );
        assert_eq!(
            parse_ok("timestamp(us, 'Europe/Berlin')"),
            ts(TimeUnit::Microsecond, Some("Europe/Berlin"))
        );
        assert_eq!(
            parse_ok("timestamp(ms,'+05:30')"),
            ts(TimeUnit::Millisecond, Some("+05:30"))
        );
        let error = parse_err("timestamp(us, 'Europe/Berln')");
        assert_eq!(error.message, "unknown time zone 'Europe/Berln'");
        assert_eq!(error.column, 15);
        assert_eq!(error.help.as_deref(), Some("did you mean 'Europe/Berlin'?"));
        let error = parse_err("timestamp(us, 'europe/berlin')");
        assert_eq!(error.help.as_deref(), Some("did you mean 'Europe/Berlin'?"));
        let error = parse_err("timestamp(xs)");
        assert_eq!(error.message, "unknown time unit xs");
        assert_eq!(error.column, 11);
        assert!(
            parse_err("timestamp(us, UTC)")
                .message
                .contains("quoted time zone")
        );
        assert!(
            parse_err("timestamp(us, '+25:00')")
                .message
                .contains("unknown time zone")
        );
        assert!(
            parse_err("timestamptz(us, 'UTC')")
                .message
                .contains("always UTC")
        );
        assert!(
            parse_err("timestamp(us, 'UTC'")
                .message
                .contains("unclosed '('")
        );
        assert!(
            parse_err("timestamp(us, 'UTC)")
                .message
                .contains("unclosed string")
        );
    }

    #[test]
    fn display_round_trips() {
        let types = [
            ColumnType::Bool,
            ColumnType::Int8,
            ColumnType::Int16,
            ColumnType::Int32,
            ColumnType::Int64,
            ColumnType::UInt8,
            ColumnType::UInt16,
            ColumnType::UInt32,
            ColumnType::UInt64,
            ColumnType::Float32,
            ColumnType::Float64,
            ColumnType::Decimal {
                precision: 12,
                scale: 3,
            },
            ColumnType::String,
            ColumnType::Binary,
            ColumnType::Date,
            ColumnType::Time,
            ColumnType::Timestamp {
                unit: TimeUnit::Microsecond,
                timezone: None,
            },
            ColumnType::Timestamp {
                unit: TimeUnit::Nanosecond,
                timezone: None,
            },
            ColumnType::Timestamp {
                unit: TimeUnit::Millisecond,
                timezone: Some("America/New_York".into()),
            },
            ColumnType::Json,
        ];
        for column_type in types {
            let text = column_type.to_string();
            assert_eq!(parse_ok(&text), column_type, "{text}");
        }
        assert_eq!(parse_ok("NUMERIC(10, 2)").to_string(), "decimal(10,2)");
        assert_eq!(parse_ok("timestamptz").to_string(), "timestamp(us, 'UTC')");
        assert_eq!("bigint".parse::<ColumnType>(), Ok(ColumnType::Int64));
    }

    #[test]
    fn unknown_names_and_syntax_errors() {
        let error = parse_err("strng");
        assert_eq!(error.message, "unknown type 'strng'");
        assert_eq!(error.column, 1);
        assert_eq!(error.help.as_deref(), Some("did you mean 'string'?"));
        assert_eq!(
            parse_err("flaot").help.as_deref(),
            Some("did you mean 'float'?")
        );
        assert!(
            parse_err("qqqqqqqq")
                .help
                .is_some_and(|help| help.starts_with("known types"))
        );
        assert_eq!(parse_err("").message, "expected a type name");
        assert_eq!(parse_err("(10)").message, "expected a type name, found '('");
        let error = parse_err("varchar(255)");
        assert_eq!(error.message, "type varchar takes no parameters");
        assert_eq!(error.column, 8);
        assert!(error.help.is_some());
        let error = parse_err("int64 extra");
        assert_eq!(error.message, "unexpected 'e' after the type name");
        assert_eq!(error.column, 7);
        assert!(
            parse_err("decimal()")
                .message
                .contains("expected a parameter")
        );
        assert!(
            parse_err("decimal(10;2)")
                .message
                .contains("expected ',' or ')'")
        );
    }

    #[test]
    fn random_input_never_panics() {
        let mut rng = fastrand::Rng::with_seed(11);
        const ALPHABET: &[u8] = b"decimaltsmpzu(),' 0123456789/\xc3\xa9";
        for _ in 0..10_000 {
            let len = rng.usize(0..24);
            let bytes: Vec<u8> = (0..len)
                .map(|_| ALPHABET[rng.usize(..ALPHABET.len())])
                .collect();
            let text = String::from_utf8_lossy(&bytes);
            if let Ok(parsed) = parse_column_type(&text) {
                assert_eq!(parse_column_type(&parsed.to_string()), Ok(parsed));
            }
        }
    }
}
