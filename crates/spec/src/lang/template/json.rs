//! A small JSON parser that works in place on the template, so errors carry exact offsets and
//! values keep their source span (numbers render exactly as written).

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
        self.pos = super::parse::skip_ws(self.bytes, self.pos);
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
            Some(_) if self.src[start..].starts_with("true") => self.literal(4, Kind::Bool(true)),
            Some(_) if self.src[start..].starts_with("false") => self.literal(5, Kind::Bool(false)),
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
                char::from_u32(code_point).ok_or_else(|| error(backslash, "invalid \\u escape"))?
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
