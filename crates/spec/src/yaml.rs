//! A YAML tree that remembers where every node came from.
//!
//! serde's YAML deserializers stop at the first error and lose positions inside internally
//! tagged enums, so pipectl parses YAML into this tree first (with saphyr's event parser), checks
//! the tree against the JSON schema collecting every error with its line and column, and only
//! then deserializes. Scalars keep their source text: whether `123` is a number or a string is
//! decided by the schema, not by YAML's guessing, so `on`/`no`/`1.10` never change meaning.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// Deepest nesting accepted; deeper documents are rejected instead of exhausting the stack.
pub const MAX_DEPTH: usize = 64;
/// Most nodes a document may expand to through aliases (guards against "billion laughs").
pub const MAX_NODES: usize = 1_000_000;

/// A position in a source file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub struct Pos {
    /// Line, starting at 1.
    pub line: usize,
    /// Column in characters, starting at 1.
    pub column: usize,
}

impl Pos {
    fn from_span(span: &Span) -> Pos {
        Pos {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }
}

/// How a scalar was written, which decides how its text maps to the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Unquoted: may be a number, boolean or null depending on the schema.
    Plain,
    /// Single- or double-quoted: always a string.
    Quoted,
    /// A `|` or `>` block: always a string; its text starts on the line after the indicator.
    Block,
}

/// One node of the tree.
#[derive(Debug, Clone)]
pub struct Node {
    /// What the node holds.
    pub kind: NodeKind,
    /// Where the node starts.
    pub pos: Pos,
}

/// The kinds of YAML node.
#[derive(Debug, Clone)]
pub enum NodeKind {
    /// A scalar with its text as written (after unescaping) and its style.
    Scalar {
        /// The scalar's text.
        text: String,
        /// How it was written.
        style: Style,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in document order; keys are unique (duplicates are parse errors).
    Map(Vec<(Node, Node)>),
}

/// A syntax error with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// Where it happened.
    pub pos: Pos,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
}

impl Node {
    /// True for a plain `null`, `~`, `Null`, `NULL` or empty scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { text, style: Style::Plain } if is_null_text(text))
    }

    /// A short name of the node's kind for error messages.
    pub fn describe(&self) -> String {
        match &self.kind {
            NodeKind::Scalar { .. } if self.is_null() => "null".to_owned(),
            NodeKind::Scalar { text, style } => {
                let shown = if text.chars().count() > 40 {
                    format!("{}...", text.chars().take(40).collect::<String>())
                } else {
                    text.clone()
                };
                // Messages are one line; a block scalar's newlines are shown escaped.
                let shown = shown.replace('\n', "\\n");
                match style {
                    Style::Plain => format!("`{shown}`"),
                    _ => format!("the string \"{shown}\""),
                }
            }
            NodeKind::Seq(_) => "a list".to_owned(),
            NodeKind::Map(_) => "a mapping".to_owned(),
        }
    }

    /// The value under `key` if this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The key node and value node under `key` if this is a mapping that has it.
    pub fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        match &self.kind {
            NodeKind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.scalar_text() == Some(key))
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    /// The text of a scalar node.
    pub fn scalar_text(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Follows a path of keys and indices; returns the deepest node reached (and whether all was found).
    pub fn locate(&self, path: &[PathSeg]) -> (&Node, bool) {
        let mut node = self;
        for seg in path {
            let next = match (seg, &node.kind) {
                (PathSeg::Key(k), NodeKind::Map(_)) => node.get(k),
                (PathSeg::Index(i), NodeKind::Seq(items)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => return (node, false),
            }
        }
        (node, true)
    }
}

/// One step of a path into the spec: a mapping key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    /// A mapping key.
    Key(String),
    /// A list index.
    Index(usize),
}

/// Renders a path the way users write it: `sinks.landing.format`, `include[0].table`.
pub fn path_to_string(path: &[PathSeg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            PathSeg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            PathSeg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// True for the spellings of null in YAML 1.2's core schema.
pub fn is_null_text(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

enum Frame {
    Seq {
        items: Vec<Node>,
        pos: Pos,
        anchor: usize,
    },
    Map {
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        /// Keys that came from a `<<` merge: an explicit key may override them.
        merged: Vec<String>,
        pos: Pos,
        anchor: usize,
    },
}

/// Parses one YAML document into a located tree. An empty document is a null scalar.
pub fn parse(source: &str) -> Result<Node, YamlError> {
    let parser = Parser::new_from_str(source);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut root: Option<Node> = None;
    let mut documents = 0usize;
    let mut nodes = 0usize;

    for item in parser {
        let (event, span) = match item {
            Ok(item) => item,
            Err(e) => {
                let pos = Pos {
                    line: e.marker().line(),
                    column: e.marker().col() + 1,
                };
                return Err(YamlError {
                    pos,
                    message: format!("invalid YAML: {}", e.info()),
                    help: Some(syntax_help(source, &stack, pos, e.info())),
                });
            }
        };
        let pos = Pos::from_span(&span);
        let complete = match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(YamlError {
                        pos,
                        message:
                            "a second YAML document starts here; a pipeline file holds exactly one"
                                .to_owned(),
                        help: Some("put each pipeline in its own file".to_owned()),
                    });
                }
                None
            }
            Event::Scalar(text, style, anchor, tag) => {
                let style = match style {
                    ScalarStyle::Plain if tag.is_none() => Style::Plain,
                    ScalarStyle::Literal | ScalarStyle::Folded => Style::Block,
                    _ => Style::Quoted,
                };
                let node = Node {
                    kind: NodeKind::Scalar {
                        text: text.into_owned(),
                        style,
                    },
                    pos,
                };
                if anchor > 0 {
                    anchors.insert(anchor, node.clone());
                }
                Some(node)
            }
            Event::Alias(id) => {
                let Some(node) = anchors.get(&id) else {
                    return Err(YamlError {
                        pos,
                        message: "alias refers to an anchor that is not defined before it"
                            .to_owned(),
                        help: Some("define `&name` before using `*name`".to_owned()),
                    });
                };
                nodes += count_nodes(node);
                if nodes > MAX_NODES {
                    return Err(too_large(pos));
                }
                let mut copy = node.clone();
                copy.pos = pos;
                Some(copy)
            }
            Event::SequenceStart(anchor, _) => {
                push_frame(
                    &mut stack,
                    Frame::Seq {
                        items: Vec::new(),
                        pos,
                        anchor,
                    },
                    pos,
                )?;
                None
            }
            Event::MappingStart(anchor, _) => {
                push_frame(
                    &mut stack,
                    Frame::Map {
                        entries: Vec::new(),
                        key: None,
                        merged: Vec::new(),
                        pos,
                        anchor,
                    },
                    pos,
                )?;
                None
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (kind, pos, anchor) = match stack.pop() {
                    Some(Frame::Seq { items, pos, anchor }) => (NodeKind::Seq(items), pos, anchor),
                    Some(Frame::Map {
                        entries,
                        pos,
                        anchor,
                        ..
                    }) => (NodeKind::Map(entries), pos, anchor),
                    None => continue,
                };
                let node = Node { kind, pos };
                if anchor > 0 {
                    anchors.insert(anchor, node.clone());
                }
                Some(node)
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => None,
        };
        if let Some(node) = complete {
            nodes += 1;
            if nodes > MAX_NODES {
                return Err(too_large(pos));
            }
            attach(&mut stack, &mut root, node)?;
        }
    }
    Ok(root.unwrap_or(Node {
        kind: NodeKind::Scalar {
            text: String::new(),
            style: Style::Plain,
        },
        pos: Pos { line: 1, column: 1 },
    }))
}

/// Advice for a syntax error. The parser notices an unclosed `[`, `{` or quote only where
/// the text stops making sense, often a line later, so point back at the opening character.
fn syntax_help(source: &str, stack: &[Frame], error: Pos, info: &str) -> String {
    let char_at = |pos: Pos| {
        source
            .lines()
            .nth(pos.line.checked_sub(1)?)?
            .chars()
            .nth(pos.column.checked_sub(1)?)
    };
    let open_flow = stack.iter().rev().find_map(|frame| {
        let pos = match frame {
            Frame::Seq { pos, .. } | Frame::Map { pos, .. } => *pos,
        };
        match char_at(pos) {
            Some(c @ ('[' | '{')) if pos.line < error.line => Some((c, pos)),
            _ => None,
        }
    });
    if let Some((c, pos)) = open_flow {
        let close = if c == '[' { ']' } else { '}' };
        return format!(
            "the `{c}` at line {}, column {} is still open here; if it should have ended, add `{close}`",
            pos.line, pos.column
        );
    }
    if info.contains("quoted scalar") {
        return "a quoted string starts here; if it should end on this line, add the closing \
                quote (a string continued on the next lines is indented more than its key)"
            .to_owned();
    }
    "check indentation, quotes and the `key: value` layout around here".to_owned()
}

fn too_large(pos: Pos) -> YamlError {
    YamlError {
        pos,
        message: format!("the document expands to more than {MAX_NODES} nodes through aliases"),
        help: Some("use fewer nested aliases".to_owned()),
    }
}

fn push_frame(stack: &mut Vec<Frame>, frame: Frame, pos: Pos) -> Result<(), YamlError> {
    if stack.len() >= MAX_DEPTH {
        return Err(YamlError {
            pos,
            message: format!("nesting deeper than {MAX_DEPTH} levels"),
            help: Some(
                "a pipeline spec never needs this much nesting; check for runaway brackets"
                    .to_owned(),
            ),
        });
    }
    stack.push(frame);
    Ok(())
}

fn count_nodes(node: &Node) -> usize {
    match &node.kind {
        NodeKind::Scalar { .. } => 1,
        NodeKind::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        NodeKind::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| count_nodes(k) + count_nodes(v))
                .sum::<usize>()
        }
    }
}

/// Adds a finished node to the collection being built (or makes it the root).
fn attach(stack: &mut [Frame], root: &mut Option<Node>, node: Node) -> Result<(), YamlError> {
    match stack.last_mut() {
        None => *root = Some(node),
        Some(Frame::Seq { items, .. }) => items.push(node),
        Some(Frame::Map {
            entries,
            key,
            merged,
            ..
        }) => match key.take() {
            None => {
                if !matches!(node.kind, NodeKind::Scalar { .. }) {
                    return Err(YamlError {
                        pos: node.pos,
                        message: "mapping keys must be plain text, not lists or mappings"
                            .to_owned(),
                        help: None,
                    });
                }
                *key = Some(node);
            }
            Some(k) => {
                if k.scalar_text() == Some("<<") && k.is_plain() {
                    merged.extend(merge_into(entries, node)?);
                } else {
                    let name = k.scalar_text().unwrap_or_default().to_owned();
                    if let Some(i) = merged.iter().position(|m| *m == name) {
                        merged.remove(i);
                        entries.retain(|(e, _)| e.scalar_text() != Some(name.as_str()));
                    }
                    if let Some((first, _)) = entries
                        .iter()
                        .find(|(e, _)| e.scalar_text() == k.scalar_text())
                    {
                        return Err(YamlError {
                            pos: k.pos,
                            message: format!(
                                "duplicate key `{}` (first defined at line {})",
                                k.scalar_text().unwrap_or_default(),
                                first.pos.line
                            ),
                            help: Some("remove one of them; YAML keeps only one and pipectl will not guess which".to_owned()),
                        });
                    }
                    entries.push((k, node));
                }
            }
        },
    }
    Ok(())
}

impl Node {
    fn is_plain(&self) -> bool {
        matches!(
            self.kind,
            NodeKind::Scalar {
                style: Style::Plain,
                ..
            }
        )
    }
}

/// Applies a YAML merge key (`<<: *defaults`): entries already present win. Returns the keys added.
fn merge_into(entries: &mut Vec<(Node, Node)>, value: Node) -> Result<Vec<String>, YamlError> {
    let sources = match value.kind {
        NodeKind::Map(map) => vec![map],
        NodeKind::Seq(items) => {
            let mut maps = Vec::new();
            for item in items {
                match item.kind {
                    NodeKind::Map(map) => maps.push(map),
                    _ => return Err(merge_error(item.pos)),
                }
            }
            maps
        }
        NodeKind::Scalar { .. } => return Err(merge_error(value.pos)),
    };
    let mut added = Vec::new();
    for map in sources {
        for (k, v) in map {
            if !entries
                .iter()
                .any(|(e, _)| e.scalar_text() == k.scalar_text())
            {
                added.push(k.scalar_text().unwrap_or_default().to_owned());
                entries.push((k, v));
            }
        }
    }
    Ok(added)
}

fn merge_error(pos: Pos) -> YamlError {
    YamlError {
        pos,
        message: "`<<` merges mappings; this is not a mapping".to_owned(),
        help: Some("write `<<: *anchor` where the anchor names a mapping".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positions_and_styles() {
        let node = parse("a: 1\nb:\n  - 'x'\n  - |\n    text\n").unwrap();
        let (k, v) = node.entry("a").unwrap();
        assert_eq!(k.pos, Pos { line: 1, column: 1 });
        assert_eq!(v.pos, Pos { line: 1, column: 4 });
        let b = node.get("b").unwrap();
        let NodeKind::Seq(items) = &b.kind else {
            panic!("seq")
        };
        assert!(
            matches!(&items[0].kind, NodeKind::Scalar { text, style: Style::Quoted } if text == "x")
        );
        assert!(matches!(
            &items[1].kind,
            NodeKind::Scalar {
                style: Style::Block,
                ..
            }
        ));
        assert_eq!(items[0].pos.line, 3);
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.pos, Pos { line: 3, column: 1 });
        assert!(
            err.message
                .contains("duplicate key `a` (first defined at line 1)"),
            "{}",
            err.message
        );
    }

    #[test]
    fn syntax_errors_point_back_at_unclosed_brackets_and_quotes() {
        let err = parse("a:\n  b: [x, y\n  c: 1\n").unwrap_err();
        let help = err.help.unwrap_or_default();
        assert!(help.contains("`[` at line 2, column 6"), "{help}");
        let err = parse("a:\n  b: \"x\n  c: 1\n").unwrap_err();
        let help = err.help.unwrap_or_default();
        assert!(help.contains("closing quote"), "{help}");
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let node = parse("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n").unwrap();
        let other = node.get("other").unwrap();
        assert_eq!(other.get("x").and_then(Node::scalar_text), Some("1"));
        assert_eq!(other.get("y").and_then(Node::scalar_text), Some("3"));
    }

    #[test]
    fn hostile_inputs_fail_cleanly() {
        let deep = "[".repeat(10_000);
        assert!(parse(&deep).is_err());
        let laughs = "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n";
        let err = parse(laughs).unwrap_err();
        assert!(err.message.contains("expands"), "{}", err.message);
        assert!(parse("a: 1\n---\nb: 2\n").is_err());
        assert!(parse("\u{0}\u{1}\u{2}garbage: [").is_err());
        assert!(parse("").unwrap().is_null());
    }
}
