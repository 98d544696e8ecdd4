//! The `filter` transform's condition language: a small SQL-like expression syntax.
//!
//! ```text
//! condition  := or
//! or         := and ("or" and)*
//! and        := not ("and" not)*
//! not        := "not" not | predicate
//! predicate  := sum [ ("=" | "<>" | "!=" | "<" | "<=" | ">" | ">=") sum
//!                   | "is" ["not"] "null"
//!                   | ["not"] "in" "(" sum ("," sum)* ")"
//!                   | ["not"] "between" sum "and" sum
//!                   | ["not"] "like" 'pattern' ]
//! sum        := product (("+" | "-") product)*
//! product    := unary (("*" | "/") unary)*
//! unary      := "-" unary | primary
//! primary    := number | 'string' | true | false | null | column | "quoted column" | "(" or ")"
//! ```
//!
//! Keywords are case-insensitive; a column whose name is a keyword or contains other characters
//! is written in double quotes. Decimal literals keep their text so they compare exactly.

use std::fmt;

/// Deepest nesting of parentheses, `not` and unary minus accepted; bounds the parser's recursion.
pub const MAX_NESTING: usize = 64;

/// Deepest expression tree accepted; keeps every recursive walk over an [`Expr`] (display,
/// evaluation, drop) far from the stack limit even for long operator chains.
pub const MAX_TREE_DEPTH: usize = 256;

/// Words with a meaning in the language; as column names they must be double-quoted.
const KEYWORDS: &[&str] = &[
    "and", "or", "not", "is", "null", "in", "between", "like", "true", "false",
];

/// A parsed filter condition (or a value inside one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A column of the input, by name.
    Column(String),
    /// A constant.
    Literal(Literal),
    /// `left op right`.
    Compare {
        /// Which comparison.
        op: CompareOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// All of the operands hold (a chain `a and b and c` is one node).
    And(Vec<Expr>),
    /// At least one of the operands holds (a chain `a or b or c` is one node).
    Or(Vec<Expr>),
    /// `not operand`.
    Not(Box<Expr>),
    /// `expr is null` / `expr is not null`.
    IsNull {
        /// The value tested.
        expr: Box<Expr>,
        /// `is not null`.
        negated: bool,
    },
    /// `expr in (a, b, ...)` / `expr not in (...)`.
    InList {
        /// The value tested.
        expr: Box<Expr>,
        /// The candidates; never empty when parsed.
        list: Vec<Expr>,
        /// `not in`.
        negated: bool,
    },
    /// `expr between low and high` (inclusive) / `expr not between ...`.
    Between {
        /// The value tested.
        expr: Box<Expr>,
        /// Lower bound, inclusive.
        low: Box<Expr>,
        /// Upper bound, inclusive.
        high: Box<Expr>,
        /// `not between`.
        negated: bool,
    },
    /// `expr like 'pattern'`: `%` matches any run of characters, `_` exactly one.
    Like {
        /// The text tested.
        expr: Box<Expr>,
        /// The pattern, without quotes.
        pattern: String,
        /// `not like`.
        negated: bool,
    },
    /// `left op right` on numbers.
    Arith {
        /// Which operation.
        op: ArithOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// `-operand` (a minus directly before a number is folded into the literal instead).
    Negate(Box<Expr>),
}

/// A constant in an expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A number with a fraction, or an integer too large for 64 bits, as written (e.g. `-12.50`).
    Decimal(String),
    /// A `'single-quoted'` string, unescaped.
    String(String),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `=`
    Eq,
    /// `<>` (also written `!=`)
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
}

impl CompareOp {
    /// The operator as written in canonical text.
    pub fn symbol(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::NotEq => "<>",
            CompareOp::Lt => "<",
            CompareOp::LtEq => "<=",
            CompareOp::Gt => ">",
            CompareOp::GtEq => ">=",
        }
    }
}

/// An arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArithOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
}

impl ArithOp {
    /// The operator as written in canonical text.
    pub fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
        }
    }
}

/// A problem in an expression (or a type name), located by column within its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    /// 1-based character column in the expression text.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
}

impl ExprError {
    /// An error at `column` without help.
    pub fn new(column: usize, message: impl Into<String>) -> Self {
        ExprError {
            column,
            message: message.into(),
            help: None,
        }
    }

    /// The same error with a hint on how to fix it.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at column {}", self.message, self.column)
    }
}

impl std::error::Error for ExprError {}

/// The candidate closest to `input` if it is close enough to be a plausible typo.
///
/// A case-insensitive exact match wins; otherwise the smallest edit distance (counting swapped
/// neighbours as one edit) within a third of the input's length.
pub fn closest_name<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let wanted = input.to_lowercase();
    let limit = (wanted.chars().count() / 3).max(1);
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let distance = strsim::osa_distance(&wanted, &candidate.to_lowercase());
        if distance == 0 {
            return Some(candidate);
        }
        if distance <= limit && best.is_none_or(|(best_distance, _)| distance < best_distance) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// Parses a filter condition such as `amount > 10 and state = 'CA'`.
pub fn parse_expr(text: &str) -> Result<Expr, ExprError> {
    let tokens = lex(text)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        nesting: 0,
    };
    if parser.at_end() {
        return Err(ExprError::new(1, "the condition is empty")
            .with_help("write a condition such as amount > 10 and state = 'CA'"));
    }
    let (expr, _) = parser.parse_or()?;
    if !parser.at_end() {
        return Err(parser.unexpected_after(&expr, "the end of the condition"));
    }
    Ok(expr)
}

impl Expr {
    /// The columns the expression reads, each once, in order of first mention.
    pub fn columns(&self) -> Vec<String> {
        let mut found = Vec::new();
        self.collect_columns(&mut found);
        found
    }

    fn collect_columns(&self, found: &mut Vec<String>) {
        match self {
            Expr::Column(name) => {
                if !found.contains(name) {
                    found.push(name.clone());
                }
            }
            Expr::Literal(_) => {}
            Expr::Compare { left, right, .. } | Expr::Arith { left, right, .. } => {
                left.collect_columns(found);
                right.collect_columns(found);
            }
            Expr::And(items) | Expr::Or(items) => {
                for item in items {
                    item.collect_columns(found);
                }
            }
            Expr::Not(inner) | Expr::Negate(inner) => inner.collect_columns(found),
            Expr::IsNull { expr, .. } | Expr::Like { expr, .. } => expr.collect_columns(found),
            Expr::InList { expr, list, .. } => {
                expr.collect_columns(found);
                for item in list {
                    item.collect_columns(found);
                }
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                expr.collect_columns(found);
                low.collect_columns(found);
                high.collect_columns(found);
            }
        }
    }

    /// Binding strength, used to print only the parentheses the parser needs.
    fn precedence(&self) -> u8 {
        match self {
            Expr::Or(_) => 1,
            Expr::And(_) => 2,
            Expr::Not(_) => 3,
            Expr::Compare { .. }
            | Expr::IsNull { .. }
            | Expr::InList { .. }
            | Expr::Between { .. }
            | Expr::Like { .. } => 4,
            Expr::Arith {
                op: ArithOp::Add | ArithOp::Sub,
                ..
            } => 5,
            Expr::Arith {
                op: ArithOp::Mul | ArithOp::Div,
                ..
            } => 6,
            Expr::Negate(_) => 7,
            Expr::Column(_) | Expr::Literal(_) => 8,
        }
    }
}

/// Writes `child`, parenthesised when it binds more loosely than `min_precedence`.
fn write_operand(f: &mut fmt::Formatter<'_>, child: &Expr, min_precedence: u8) -> fmt::Result {
    if child.precedence() < min_precedence {
        write!(f, "({child})")
    } else {
        write!(f, "{child}")
    }
}

/// Precedence an operand of a comparison-like predicate must have to need no parentheses.
const VALUE_PRECEDENCE: u8 = 5;

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Column(name) => write_column_name(f, name),
            Expr::Literal(literal) => write!(f, "{literal}"),
            Expr::Compare { op, left, right } => {
                write_operand(f, left, VALUE_PRECEDENCE)?;
                write!(f, " {} ", op.symbol())?;
                write_operand(f, right, VALUE_PRECEDENCE)
            }
            Expr::And(items) | Expr::Or(items) => {
                let (joiner, own) = if matches!(self, Expr::And(_)) {
                    (" and ", 2)
                } else {
                    (" or ", 1)
                };
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        f.write_str(joiner)?;
                    }
                    write_operand(f, item, own + 1)?;
                }
                Ok(())
            }
            Expr::Not(inner) => {
                f.write_str("not ")?;
                write_operand(f, inner, 3)
            }
            Expr::IsNull { expr, negated } => {
                write_operand(f, expr, VALUE_PRECEDENCE)?;
                f.write_str(if *negated { " is not null" } else { " is null" })
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                write_operand(f, expr, VALUE_PRECEDENCE)?;
                f.write_str(if *negated { " not in (" } else { " in (" })?;
                for (index, item) in list.iter().enumerate() {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    write_operand(f, item, VALUE_PRECEDENCE)?;
                }
                f.write_str(")")
            }
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => {
                write_operand(f, expr, VALUE_PRECEDENCE)?;
                f.write_str(if *negated {
                    " not between "
                } else {
                    " between "
                })?;
                write_operand(f, low, VALUE_PRECEDENCE)?;
                f.write_str(" and ")?;
                write_operand(f, high, VALUE_PRECEDENCE)
            }
            Expr::Like {
                expr,
                pattern,
                negated,
            } => {
                write_operand(f, expr, VALUE_PRECEDENCE)?;
                f.write_str(if *negated { " not like " } else { " like " })?;
                write_string_literal(f, pattern)
            }
            Expr::Arith { op, left, right } => {
                let own = self.precedence();
                write_operand(f, left, own)?;
                write!(f, " {} ", op.symbol())?;
                // Left-associative: a right operand of equal strength needs parentheses.
                write_operand(f, right, own + 1)
            }
            Expr::Negate(inner) => {
                // `-5` would re-parse as a negative literal, and `--x` reads like a comment.
                let inner_text = inner.to_string();
                let is_number = matches!(
                    **inner,
                    Expr::Literal(Literal::Int(_) | Literal::Decimal(_))
                );
                if is_number || inner.precedence() < 7 {
                    write!(f, "-({inner_text})")
                } else if inner_text.starts_with('-') {
                    write!(f, "- {inner_text}")
                } else {
                    write!(f, "-{inner_text}")
                }
            }
        }
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => f.write_str("null"),
            Literal::Bool(value) => write!(f, "{value}"),
            Literal::Int(value) => write!(f, "{value}"),
            Literal::Decimal(text) => f.write_str(text),
            Literal::String(text) => write_string_literal(f, text),
        }
    }
}

fn write_string_literal(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    write!(f, "'{}'", text.replace('\'', "''"))
}

fn write_column_name(f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
    if is_bare_identifier(name) {
        f.write_str(name)
    } else {
        write!(f, "\"{}\"", name.replace('"', "\"\""))
    }
}

/// Whether `name` can be written without quotes and still read back as the same column.
fn is_bare_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    let starts_well = chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_');
    starts_well
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !KEYWORDS.iter().any(|kw| kw.eq_ignore_ascii_case(name))
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A bare identifier or keyword.
    Word(String),
    /// A `"double-quoted"` identifier, unescaped.
    Quoted(String),
    /// A number as written, without sign.
    Number(String),
    /// A `'single-quoted'` string, unescaped.
    Str(String),
    /// An operator or punctuation.
    Sym(&'static str),
    End,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// 1-based character column of the token's first character.
    column: usize,
}

impl Token {
    /// How the token is named in error messages.
    fn describe(&self) -> String {
        match &self.tok {
            Tok::Word(word) => format!("'{word}'"),
            Tok::Quoted(name) => format!("\"{}\"", name.replace('"', "\"\"")),
            Tok::Number(text) => text.clone(),
            Tok::Str(text) => format!("'{}'", text.replace('\'', "''")),
            Tok::Sym(symbol) => format!("'{symbol}'"),
            Tok::End => "the end of the condition".to_string(),
        }
    }
}

fn lex(text: &str) -> Result<Vec<Token>, ExprError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let tok = if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            if let Some(&after) = chars.get(i)
                && is_foreign_word_char(after)
            {
                return Err(non_ascii_identifier(i + 1, after));
            }
            tokens.push(Token {
                tok: Tok::Word(chars[start..i].iter().collect()),
                column,
            });
            continue;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            if chars.get(i) == Some(&'.') {
                i += 1;
                if !chars.get(i).is_some_and(char::is_ascii_digit) {
                    return Err(ExprError::new(
                        i + 1,
                        "expected digits after the decimal point",
                    ));
                }
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if let Some(&after) = chars.get(i)
                && (after.is_alphanumeric() || after == '_' || after == '.')
            {
                let mut end = i;
                while end < chars.len() && (chars[end].is_alphanumeric() || chars[end] == '_') {
                    end += 1;
                }
                let written: String = chars[start..end.max(i + 1)].iter().collect();
                return Err(
                    ExprError::new(column, format!("invalid number '{written}'")).with_help(
                        "numbers are written like 10 or 12.5; quote column names that start \
                         with a digit: \"2nd_column\"",
                    ),
                );
            }
            tokens.push(Token {
                tok: Tok::Number(chars[start..i].iter().collect()),
                column,
            });
            continue;
        } else if c == '\'' || c == '"' {
            let (content, end) = read_quoted(&chars, i)?;
            i = end;
            let tok = if c == '\'' {
                Tok::Str(content)
            } else if content.is_empty() {
                return Err(ExprError::new(column, "empty column name \"\""));
            } else {
                Tok::Quoted(content)
            };
            tokens.push(Token { tok, column });
            continue;
        } else {
            match (c, next) {
                ('=', Some('=')) => {
                    return Err(ExprError::new(column, "unknown operator '=='")
                        .with_help("use = for equality"));
                }
                ('=', _) => Tok::Sym("="),
                ('<', Some('=')) => Tok::Sym("<="),
                ('<', Some('>')) => Tok::Sym("<>"),
                ('<', _) => Tok::Sym("<"),
                ('>', Some('=')) => Tok::Sym(">="),
                ('>', _) => Tok::Sym(">"),
                ('!', Some('=')) => Tok::Sym("!="),
                ('!', _) => {
                    return Err(ExprError::new(column, "unknown operator '!'")
                        .with_help("use not to negate a condition, <> for 'not equal'"));
                }
                ('&', _) => {
                    let written = if next == Some('&') { "&&" } else { "&" };
                    return Err(
                        ExprError::new(column, format!("unknown operator '{written}'"))
                            .with_help("use and to combine conditions"),
                    );
                }
                ('|', _) => {
                    let written = if next == Some('|') { "||" } else { "|" };
                    return Err(
                        ExprError::new(column, format!("unknown operator '{written}'"))
                            .with_help("use or to combine conditions"),
                    );
                }
                ('+', _) => Tok::Sym("+"),
                ('-', _) => Tok::Sym("-"),
                ('*', _) => Tok::Sym("*"),
                ('/', _) => Tok::Sym("/"),
                ('(', _) => Tok::Sym("("),
                (')', _) => Tok::Sym(")"),
                (',', _) => Tok::Sym(","),
                _ if is_foreign_word_char(c) => return Err(non_ascii_identifier(column, c)),
                _ => {
                    return Err(ExprError::new(
                        column,
                        format!("unexpected character '{c}'"),
                    ));
                }
            }
        };
        let width = match &tok {
            Tok::Sym(symbol) => symbol.len(),
            _ => 1,
        };
        tokens.push(Token { tok, column });
        i += width;
    }
    tokens.push(Token {
        tok: Tok::End,
        column: chars.len() + 1,
    });
    Ok(tokens)
}

/// A letter or digit outside ASCII, which bare identifiers do not allow.
fn is_foreign_word_char(c: char) -> bool {
    !c.is_ascii() && c.is_alphanumeric()
}

fn non_ascii_identifier(column: usize, c: char) -> ExprError {
    ExprError::new(column, format!("unexpected character '{c}'"))
        .with_help("write column names with other characters in double quotes: \"Straße\"")
}

/// Reads a quoted run starting at `start` (the opening quote); a doubled quote stands for one.
/// Returns the unescaped content and the index after the closing quote.
fn read_quoted(chars: &[char], start: usize) -> Result<(String, usize), ExprError> {
    let quote = chars[start];
    let mut content = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => {
                let (what, example) = if quote == '\'' {
                    ("string", "'text'")
                } else {
                    ("column name", "\"My Column\"")
                };
                return Err(ExprError::new(
                    start + 1,
                    format!("unclosed {what}: missing closing {quote}"),
                )
                .with_help(format!(
                    "close it like {example}; write {quote}{quote} for a {quote} inside"
                )));
            }
            Some(&c) if c == quote => {
                if chars.get(i + 1) == Some(&quote) {
                    content.push(quote);
                    i += 2;
                } else {
                    return Ok((content, i + 1));
                }
            }
            Some(&c) => {
                content.push(c);
                i += 1;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parser

/// An expression with the depth of its tree, tracked while building to enforce [`MAX_TREE_DEPTH`].
type Node = (Expr, usize);

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Current recursion through parentheses, `not` and unary minus.
    nesting: usize,
}

impl Parser {
    fn current(&self) -> &Token {
        // The lexer always ends the list with `End` and the parser never moves past it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn at_end(&self) -> bool {
        self.current().tok == Tok::End
    }

    fn advance(&mut self) {
        if !self.at_end() {
            self.pos += 1;
        }
    }

    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(&self.current().tok, Tok::Word(word) if word.eq_ignore_ascii_case(keyword))
    }

    fn is_sym(&self, symbol: &str) -> bool {
        matches!(&self.current().tok, Tok::Sym(s) if *s == symbol)
    }

    /// Looks at the token after the current one.
    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(
            self.tokens.get(self.pos + 1).map(|t| &t.tok),
            Some(Tok::Word(word)) if word.eq_ignore_ascii_case(keyword)
        )
    }

    /// The token just consumed, for "expected ... after X" messages.
    fn previous(&self) -> Option<&Token> {
        self.pos.checked_sub(1).and_then(|i| self.tokens.get(i))
    }

    /// "expected {what} after {previous}": points at the offending token, or at the previous
    /// token when the text simply ends there.
    fn expected(&self, what: &str) -> ExprError {
        let found = self.current();
        let after = self
            .previous()
            .map(|prev| format!(" after {}", prev.describe()))
            .unwrap_or_default();
        if found.tok == Tok::End {
            let column = self.previous().map_or(found.column, |prev| prev.column);
            ExprError::new(column, format!("expected {what}{after}"))
        } else {
            ExprError::new(
                found.column,
                format!("expected {what}{after}, found {}", found.describe()),
            )
        }
    }

    /// The error for a token that cannot continue the complete expression `expr`.
    fn unexpected_after(&self, expr: &Expr, wanted: &str) -> ExprError {
        let found = self.current();
        let is_comparison = matches!(
            found.tok,
            Tok::Sym("=" | "<>" | "!=" | "<" | "<=" | ">" | ">=")
        );
        if is_comparison && expr.precedence() == 4 {
            return ExprError::new(
                found.column,
                format!(
                    "comparisons cannot be chained: unexpected {}",
                    found.describe()
                ),
            )
            .with_help("combine comparisons with and, e.g. a < b and b < c");
        }
        if found.tok == Tok::Sym(")") {
            return ExprError::new(found.column, "unmatched ')'")
                .with_help("remove it or add the matching '('");
        }
        ExprError::new(
            found.column,
            format!("expected and, or or {wanted}, found {}", found.describe()),
        )
    }

    fn enter(&mut self) -> Result<(), ExprError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(ExprError::new(
                self.current().column,
                format!("the condition is nested too deeply (more than {MAX_NESTING} levels)"),
            )
            .with_help("simplify the condition"));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting = self.nesting.saturating_sub(1);
    }

    /// Wraps `expr` built over children of depth `child_depth`, enforcing the tree depth limit.
    fn node(&self, expr: Expr, child_depth: usize, column: usize) -> Result<Node, ExprError> {
        let depth = child_depth + 1;
        if depth > MAX_TREE_DEPTH {
            return Err(ExprError::new(
                column,
                format!("the condition is too deeply nested (more than {MAX_TREE_DEPTH} levels)"),
            )
            .with_help(
                "split long chains of arithmetic or use in (...) instead of many comparisons",
            ));
        }
        Ok((expr, depth))
    }

    fn parse_or(&mut self) -> Result<Node, ExprError> {
        let first = self.parse_and()?;
        if !self.is_keyword("or") {
            return Ok(first);
        }
        let column = self.current().column;
        let mut depth = first.1;
        let mut items = vec![first.0];
        while self.is_keyword("or") {
            self.advance();
            let (item, item_depth) = self.parse_and()?;
            depth = depth.max(item_depth);
            items.push(item);
        }
        self.node(Expr::Or(items), depth, column)
    }

    fn parse_and(&mut self) -> Result<Node, ExprError> {
        let first = self.parse_not()?;
        if !self.is_keyword("and") {
            return Ok(first);
        }
        let column = self.current().column;
        let mut depth = first.1;
        let mut items = vec![first.0];
        while self.is_keyword("and") {
            self.advance();
            let (item, item_depth) = self.parse_not()?;
            depth = depth.max(item_depth);
            items.push(item);
        }
        self.node(Expr::And(items), depth, column)
    }

    fn parse_not(&mut self) -> Result<Node, ExprError> {
        if !self.is_keyword("not") {
            return self.parse_predicate();
        }
        let column = self.current().column;
        self.advance();
        self.enter()?;
        let (inner, depth) = self.parse_not()?;
        self.leave();
        self.node(Expr::Not(Box::new(inner)), depth, column)
    }

    fn parse_predicate(&mut self) -> Result<Node, ExprError> {
        let (left, left_depth) = self.parse_sum()?;
        let column = self.current().column;
        let compare = match &self.current().tok {
            Tok::Sym("=") => Some(CompareOp::Eq),
            Tok::Sym("<>" | "!=") => Some(CompareOp::NotEq),
            Tok::Sym("<") => Some(CompareOp::Lt),
            Tok::Sym("<=") => Some(CompareOp::LtEq),
            Tok::Sym(">") => Some(CompareOp::Gt),
            Tok::Sym(">=") => Some(CompareOp::GtEq),
            _ => None,
        };
        if let Some(op) = compare {
            self.advance();
            let (right, right_depth) = self.parse_sum()?;
            let expr = Expr::Compare {
                op,
                left: Box::new(left),
                right: Box::new(right),
            };
            return self.node(expr, left_depth.max(right_depth), column);
        }
        if self.is_keyword("is") {
            self.advance();
            let negated = self.is_keyword("not");
            if negated {
                self.advance();
            }
            if !self.is_keyword("null") {
                return Err(self.expected("null or not null"));
            }
            self.advance();
            let expr = Expr::IsNull {
                expr: Box::new(left),
                negated,
            };
            return self.node(expr, left_depth, column);
        }
        let negated = self.is_keyword("not");
        if negated {
            if !(self.peek_keyword("in")
                || self.peek_keyword("between")
                || self.peek_keyword("like"))
            {
                self.advance();
                return Err(self.expected("in, between or like"));
            }
            self.advance();
        }
        if self.is_keyword("in") {
            self.advance();
            return self.parse_in_list(left, left_depth, negated, column);
        }
        if self.is_keyword("between") {
            self.advance();
            let (low, low_depth) = self.parse_sum()?;
            if !self.is_keyword("and") {
                return Err(self.expected("and (as in: between 1 and 10)"));
            }
            self.advance();
            let (high, high_depth) = self.parse_sum()?;
            let expr = Expr::Between {
                expr: Box::new(left),
                low: Box::new(low),
                high: Box::new(high),
                negated,
            };
            return self.node(expr, left_depth.max(low_depth).max(high_depth), column);
        }
        if self.is_keyword("like") {
            self.advance();
            let Tok::Str(pattern) = &self.current().tok else {
                return Err(self
                    .expected("a quoted pattern")
                    .with_help("e.g. name like 'A%' (% matches any text, _ one character)"));
            };
            let pattern = pattern.clone();
            self.advance();
            let expr = Expr::Like {
                expr: Box::new(left),
                pattern,
                negated,
            };
            return self.node(expr, left_depth, column);
        }
        Ok((left, left_depth))
    }

    fn parse_in_list(
        &mut self,
        left: Expr,
        left_depth: usize,
        negated: bool,
        column: usize,
    ) -> Result<Node, ExprError> {
        if !self.is_sym("(") {
            return Err(self
                .expected("'('")
                .with_help("list the values in parentheses: state in ('CA', 'NY')"));
        }
        let open_column = self.current().column;
        self.advance();
        if self.is_sym(")") {
            return Err(ExprError::new(
                self.current().column,
                "expected at least one value in the list",
            ));
        }
        let mut depth = left_depth;
        let mut list = Vec::new();
        loop {
            let (item, item_depth) = self.parse_sum()?;
            depth = depth.max(item_depth);
            list.push(item);
            if self.is_sym(",") {
                self.advance();
            } else if self.is_sym(")") {
                self.advance();
                break;
            } else if self.at_end() {
                return Err(ExprError::new(
                    open_column,
                    "unclosed '(': the list has no closing ')'",
                ));
            } else {
                return Err(self.expected("',' or ')'"));
            }
        }
        let expr = Expr::InList {
            expr: Box::new(left),
            list,
            negated,
        };
        self.node(expr, depth, column)
    }

    fn parse_sum(&mut self) -> Result<Node, ExprError> {
        let (mut left, mut depth) = self.parse_product()?;
        loop {
            let op = match self.current().tok {
                Tok::Sym("+") => ArithOp::Add,
                Tok::Sym("-") => ArithOp::Sub,
                _ => return Ok((left, depth)),
            };
            let column = self.current().column;
            self.advance();
            let (right, right_depth) = self.parse_product()?;
            let expr = Expr::Arith {
                op,
                left: Box::new(left),
                right: Box::new(right),
            };
            (left, depth) = self.node(expr, depth.max(right_depth), column)?;
        }
    }

    fn parse_product(&mut self) -> Result<Node, ExprError> {
        let (mut left, mut depth) = self.parse_unary()?;
        loop {
            let op = match self.current().tok {
                Tok::Sym("*") => ArithOp::Mul,
                Tok::Sym("/") => ArithOp::Div,
                _ => return Ok((left, depth)),
            };
            let column = self.current().column;
            self.advance();
            let (right, right_depth) = self.parse_unary()?;
            let expr = Expr::Arith {
                op,
                left: Box::new(left),
                right: Box::new(right),
            };
            (left, depth) = self.node(expr, depth.max(right_depth), column)?;
        }
    }

    fn parse_unary(&mut self) -> Result<Node, ExprError> {
        if !self.is_sym("-") {
            return self.parse_primary();
        }
        let column = self.current().column;
        self.advance();
        if let Tok::Number(text) = &self.current().tok {
            let literal = number_literal(&format!("-{text}"));
            self.advance();
            return Ok((Expr::Literal(literal), 1));
        }
        self.enter()?;
        let (inner, depth) = self.parse_unary()?;
        self.leave();
        self.node(Expr::Negate(Box::new(inner)), depth, column)
    }

    fn parse_primary(&mut self) -> Result<Node, ExprError> {
        let token = self.current().clone();
        let expr = match token.tok {
            Tok::Number(text) => Expr::Literal(number_literal(&text)),
            Tok::Str(text) => Expr::Literal(Literal::String(text)),
            Tok::Quoted(name) => Expr::Column(name),
            Tok::Word(word) => {
                let lower = word.to_ascii_lowercase();
                match lower.as_str() {
                    "true" => Expr::Literal(Literal::Bool(true)),
                    "false" => Expr::Literal(Literal::Bool(false)),
                    "null" => Expr::Literal(Literal::Null),
                    _ if KEYWORDS.contains(&lower.as_str()) => {
                        let error = self.expected("a value");
                        return Err(if self.previous().is_none() || lower == "not" {
                            error
                        } else {
                            error.with_help(format!(
                                "to use a column named {word}, write it in double quotes: \"{word}\""
                            ))
                        });
                    }
                    _ => Expr::Column(word),
                }
            }
            Tok::Sym("(") => {
                self.enter()?;
                self.advance();
                let (inner, depth) = self.parse_or()?;
                if self.at_end() {
                    return Err(ExprError::new(token.column, "unclosed '(': missing ')'")
                        .with_help("add the closing ')'"));
                }
                if !self.is_sym(")") {
                    return Err(self.unexpected_after(&inner, "')'"));
                }
                self.advance();
                self.leave();
                return Ok((inner, depth));
            }
            Tok::Sym(_) | Tok::End => {
                return Err(if self.previous().is_none() {
                    match token.tok {
                        Tok::End => ExprError::new(token.column, "the condition is empty"),
                        _ => ExprError::new(
                            token.column,
                            format!("expected a condition, found {}", token.describe()),
                        ),
                    }
                } else {
                    self.expected("a value")
                });
            }
        };
        self.advance();
        Ok((expr, 1))
    }
}

/// A number token (optionally with a leading minus) as a literal; integers beyond 64 bits stay
/// exact as decimal text.
fn number_literal(text: &str) -> Literal {
    if !text.contains('.')
        && let Ok(value) = text.parse::<i64>()
    {
        return Literal::Int(value);
    }
    Literal::Decimal(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str) -> Box<Expr> {
        Box::new(Expr::Column(name.to_string()))
    }

    fn lit(literal: Literal) -> Box<Expr> {
        Box::new(Expr::Literal(literal))
    }

    fn parse_ok(text: &str) -> Expr {
        match parse_expr(text) {
            Ok(expr) => expr,
            Err(error) => panic!("{text:?} failed to parse: {error}"),
        }
    }

    fn parse_err(text: &str) -> ExprError {
        match parse_expr(text) {
            Ok(expr) => panic!("{text:?} parsed unexpectedly as {expr:?}"),
            Err(error) => error,
        }
    }

    #[test]
    fn parses_comparison_with_and() {
        assert_eq!(
            parse_ok("amount > 10 and state = 'CA'"),
            Expr::And(vec![
                Expr::Compare {
                    op: CompareOp::Gt,
                    left: col("amount"),
                    right: lit(Literal::Int(10)),
                },
                Expr::Compare {
                    op: CompareOp::Eq,
                    left: col("state"),
                    right: lit(Literal::String("CA".into())),
                },
            ])
        );
    }

    #[test]
    fn and_binds_tighter_than_or() {
        assert_eq!(
            parse_ok("a or b and c"),
            Expr::Or(vec![
                Expr::Column("a".into()),
                Expr::And(vec![Expr::Column("b".into()), Expr::Column("c".into())]),
            ])
        );
    }

    #[test]
    fn parses_in_list_and_not_in() {
        assert_eq!(
            parse_ok("event_type IN ('rent', 'buy')"),
            Expr::InList {
                expr: col("event_type"),
                list: vec![
                    Expr::Literal(Literal::String("rent".into())),
                    Expr::Literal(Literal::String("buy".into())),
                ],
                negated: false,
            }
        );
        assert!(matches!(
            parse_ok("x not in (1, 2)"),
            Expr::InList { negated: true, ref list, .. } if list.len() == 2
        ));
    }

    #[test]
    fn parses_is_null_between_like() {
        assert_eq!(
            parse_ok("note is not null"),
            Expr::IsNull {
                expr: col("note"),
                negated: true
            }
        );
        assert_eq!(
            parse_ok("not (film_id between 1 and 10)"),
            Expr::Not(Box::new(Expr::Between {
                expr: col("film_id"),
                low: lit(Literal::Int(1)),
                high: lit(Literal::Int(10)),
                negated: false,
            }))
        );
        assert_eq!(
            parse_ok("name NOT LIKE 'A%'"),
            Expr::Like {
                expr: col("name"),
                pattern: "A%".into(),
                negated: true
            }
        );
    }

    #[test]
    fn between_and_does_not_swallow_the_logical_and() {
        assert_eq!(
            parse_ok("x between 1 and 5 and y"),
            Expr::And(vec![
                Expr::Between {
                    expr: col("x"),
                    low: lit(Literal::Int(1)),
                    high: lit(Literal::Int(5)),
                    negated: false,
                },
                Expr::Column("y".into()),
            ])
        );
    }

    #[test]
    fn parses_literals_and_quoting() {
        assert_eq!(
            parse_ok("\"Column With Space\" <> 3"),
            Expr::Compare {
                op: CompareOp::NotEq,
                left: col("Column With Space"),
                right: lit(Literal::Int(3)),
            }
        );
        assert_eq!(
            parse_ok("\"say \"\"hi\"\"\" = 'it''s'"),
            Expr::Compare {
                op: CompareOp::Eq,
                left: col("say \"hi\""),
                right: lit(Literal::String("it's".into())),
            }
        );
        assert_eq!(
            parse_ok("price = -12.50"),
            Expr::Compare {
                op: CompareOp::Eq,
                left: col("price"),
                right: lit(Literal::Decimal("-12.50".into())),
            }
        );
        assert_eq!(
            parse_ok("x = 99999999999999999999"),
            Expr::Compare {
                op: CompareOp::Eq,
                left: col("x"),
                right: lit(Literal::Decimal("99999999999999999999".into())),
            }
        );
        assert_eq!(
            parse_ok("x = -9223372036854775808"),
            Expr::Compare {
                op: CompareOp::Eq,
                left: col("x"),
                right: lit(Literal::Int(i64::MIN)),
            }
        );
        assert_eq!(parse_ok("flag"), Expr::Column("flag".into()));
        assert_eq!(
            parse_ok("flag = TRUE"),
            Expr::Compare {
                op: CompareOp::Eq,
                left: col("flag"),
                right: lit(Literal::Bool(true)),
            }
        );
        assert_eq!(
            parse_ok("x != null"),
            Expr::Compare {
                op: CompareOp::NotEq,
                left: col("x"),
                right: lit(Literal::Null),
            }
        );
    }

    #[test]
    fn arithmetic_precedence_and_associativity() {
        assert_eq!(
            parse_ok("a + 1 > b * 2"),
            Expr::Compare {
                op: CompareOp::Gt,
                left: Box::new(Expr::Arith {
                    op: ArithOp::Add,
                    left: col("a"),
                    right: lit(Literal::Int(1)),
                }),
                right: Box::new(Expr::Arith {
                    op: ArithOp::Mul,
                    left: col("b"),
                    right: lit(Literal::Int(2)),
                }),
            }
        );
        assert_eq!(parse_ok("a - b - c").to_string(), "a - b - c");
        assert_eq!(parse_ok("a - (b - c)").to_string(), "a - (b - c)");
        assert_eq!(parse_ok("(a + b) * c").to_string(), "(a + b) * c");
        assert_eq!(
            parse_ok("-x > 1"),
            Expr::Compare {
                op: CompareOp::Gt,
                left: Box::new(Expr::Negate(col("x"))),
                right: lit(Literal::Int(1)),
            }
        );
    }

    #[test]
    fn display_is_canonical_and_round_trips() {
        let cases = [
            (
                "amount > 10 AND state = 'CA'",
                "amount > 10 and state = 'CA'",
            ),
            ("NOT (a OR b) and c", "not (a or b) and c"),
            ("(a and b) or c", "a and b or c"),
            ("a and (b or c)", "a and (b or c)"),
            ("x != 1", "x <> 1"),
            ("\"select\" = 'it''s'", "select = 'it''s'"),
            ("\"Like\" = 1", "\"Like\" = 1"),
            ("\"my col\" is null", "\"my col\" is null"),
            ("x NOT BETWEEN 1 AND 2", "x not between 1 and 2"),
            ("x in (1,2,  3)", "x in (1, 2, 3)"),
            ("(a = 1) = true", "(a = 1) = true"),
            ("- (5)", "-(5)"),
            ("- -5", "-(-5)"),
            ("- - x", "- -x"),
            ("-(a + b) < 1.50", "-(a + b) < 1.50"),
            ("x like 'it''s%'", "x like 'it''s%'"),
            ("not not flag", "not not flag"),
            ("(a or b) or c", "(a or b) or c"),
        ];
        for (input, canonical) in cases {
            let parsed = parse_ok(input);
            assert_eq!(parsed.to_string(), canonical, "display of {input:?}");
            assert_eq!(parse_ok(canonical), parsed, "round trip of {input:?}");
        }
    }

    #[test]
    fn columns_are_listed_once_in_order() {
        let expr = parse_ok("b > a and \"c d\" in (a, 1) or b between x and 2");
        assert_eq!(expr.columns(), vec!["b", "a", "c d", "x"]);
        assert!(parse_ok("1 = 1").columns().is_empty());
    }

    #[test]
    fn missing_value_names_the_operator_and_column() {
        let error = parse_err("amount >");
        assert_eq!(error.message, "expected a value after '>'");
        assert_eq!(error.column, 8);
        assert_eq!(error.to_string(), "expected a value after '>' at column 8");

        let error = parse_err("amount > and x");
        assert_eq!(error.message, "expected a value after '>', found 'and'");
        assert_eq!(error.column, 10);
    }

    #[test]
    fn double_equals_suggests_single() {
        let error = parse_err("a == 1");
        assert_eq!(error.column, 3);
        assert_eq!(error.message, "unknown operator '=='");
        assert_eq!(error.help.as_deref(), Some("use = for equality"));
        assert_eq!(
            parse_err("a && b").help.as_deref(),
            Some("use and to combine conditions")
        );
        assert_eq!(
            parse_err("a || b").help.as_deref(),
            Some("use or to combine conditions")
        );
    }

    #[test]
    fn unclosed_quotes_and_parens_point_at_the_opening() {
        let error = parse_err("state = 'CA");
        assert_eq!(error.column, 9);
        assert!(
            error.message.starts_with("unclosed string"),
            "{}",
            error.message
        );

        let error = parse_err("\"col = 1");
        assert_eq!(error.column, 1);
        assert!(
            error.message.starts_with("unclosed column name"),
            "{}",
            error.message
        );

        let error = parse_err("x and (a = 1 or b = 2");
        assert_eq!(error.column, 7);
        assert_eq!(error.message, "unclosed '(': missing ')'");

        let error = parse_err("x in (1, 2");
        assert_eq!(error.column, 6);
    }

    #[test]
    fn trailing_garbage_is_reported() {
        let error = parse_err("a = 1 b");
        assert_eq!(error.column, 7);
        assert_eq!(
            error.message,
            "expected and, or or the end of the condition, found 'b'"
        );
        let error = parse_err("a = 1)");
        assert_eq!(error.message, "unmatched ')'");
        assert_eq!(error.column, 6);
        let error = parse_err("a < b < c");
        assert!(error.message.starts_with("comparisons cannot be chained"));
        assert_eq!(error.column, 7);
        let error = parse_err("(a = 1 b)");
        assert_eq!(error.message, "expected and, or or ')', found 'b'");
    }

    #[test]
    fn other_syntax_errors_are_explained() {
        assert_eq!(parse_err("").message, "the condition is empty");
        assert_eq!(parse_err("   ").message, "the condition is empty");
        assert_eq!(
            parse_err("x is 5").message,
            "expected null or not null after 'is', found 5"
        );
        assert_eq!(
            parse_err("x not 5").message,
            "expected in, between or like after 'not', found 5"
        );
        assert_eq!(
            parse_err("x in ()").message,
            "expected at least one value in the list"
        );
        assert_eq!(
            parse_err("x in 1").message,
            "expected '(' after 'in', found 1"
        );
        assert_eq!(
            parse_err("x between 1 or 2").message,
            "expected and (as in: between 1 and 10) after 1, found 'or'"
        );
        assert_eq!(
            parse_err("x like y").message,
            "expected a quoted pattern after 'like', found 'y'"
        );
        let error = parse_err("and = 1");
        assert_eq!(error.message, "expected a value, found 'and'");
        assert_eq!(parse_err("> 1").message, "expected a condition, found '>'");
        assert_eq!(
            parse_err("x = 1.").message,
            "expected digits after the decimal point"
        );
        assert_eq!(parse_err("x = 10abc").message, "invalid number '10abc'");
        assert_eq!(parse_err("x = 1 ; y").message, "unexpected character ';'");
        let error = parse_err("größe > 1");
        assert_eq!(error.column, 3);
        assert!(
            error
                .help
                .is_some_and(|help| help.contains("double quotes"))
        );
        assert_eq!(parse_err("\"\" = 1").message, "empty column name \"\"");
        let error = parse_err("x = or");
        assert!(error.help.is_some_and(|help| help.contains("\"or\"")));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep_parens = format!("{}x{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(
            parse_err(&deep_parens)
                .message
                .contains("nested too deeply")
        );
        let deep_not = format!("{}x", "not ".repeat(10_000));
        assert!(parse_err(&deep_not).message.contains("nested too deeply"));
        let deep_minus = format!("{}x > 1", "-".repeat(10_000));
        assert!(parse_err(&deep_minus).message.contains("nested too deeply"));
        let unclosed = "(".repeat(10_000);
        assert!(parse_expr(&unclosed).is_err());

        let long_chain = vec!["x"; 10_000].join(" + ") + " > 1";
        assert!(parse_err(&long_chain).message.contains("too deeply nested"));
        let long_or = vec!["x = 1"; 10_000].join(" or ");
        assert!(matches!(parse_ok(&long_or), Expr::Or(items) if items.len() == 10_000));

        let within_limit = format!("{}x{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
        assert_eq!(parse_ok(&within_limit), Expr::Column("x".into()));
    }

    #[test]
    fn random_input_never_panics() {
        const ALPHABET: &[u8] = b"ab1 .'\"()=<>!-+*/,_%aNdOrnotINisnullbetweenlike\n\t\xc3\xa9";
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20_000 {
            let len = rng.usize(0..40);
            let bytes: Vec<u8> = if rng.bool() {
                (0..len)
                    .map(|_| ALPHABET[rng.usize(..ALPHABET.len())])
                    .collect()
            } else {
                (0..len).map(|_| rng.u8(..)).collect()
            };
            let text = String::from_utf8_lossy(&bytes);
            if let Ok(expr) = parse_expr(&text) {
                // Whatever parses must print back to text that parses to the same tree.
                let printed = expr.to_string();
                assert_eq!(
                    parse_expr(&printed).as_ref(),
                    Ok(&expr),
                    "{text:?} -> {printed:?}"
                );
            } else if let Err(error) = parse_expr(&text) {
                assert!(error.column >= 1 && error.column <= text.chars().count() + 1);
            }
        }
    }

    #[test]
    fn closest_name_finds_typos() {
        let names = ["amount", "state", "film_id"];
        assert_eq!(closest_name("amout", names), Some("amount"));
        assert_eq!(closest_name("STATE", names), Some("state"));
        assert_eq!(closest_name("flim_id", names), Some("film_id"));
        assert_eq!(closest_name("zzz", names), None);
    }
}
