//! Checks a located YAML tree against the generated JSON schema, collecting every error.
//!
//! This supports the subset of JSON Schema that schemars emits for pipectl's types: `$ref`,
//! `type` (single or list), `properties`/`required`/`additionalProperties`, `items`, `const`,
//! `enum`, `oneOf`/`anyOf` (unit enums, `type`-tagged variants, optional values) and `minimum`.
//! While checking, it converts the tree to JSON, reading each scalar as the type the schema wants.

use serde_json::{Map, Value};

use crate::diag::{Diagnostic, did_you_mean};
use crate::yaml::{Node, NodeKind, PathSeg, Style, is_null_text, path_to_string};

/// Checks `node` against `schema` (a root schema with `$defs`). Returns the JSON value built
/// from the parts that passed (a part with an error is left out) and every error found.
pub fn check(node: &Node, schema: &Value) -> (Option<Value>, Vec<Diagnostic>) {
    let mut checker = Checker {
        root: schema,
        errors: Vec::new(),
        keys: Vec::new(),
    };
    let mut path = Vec::new();
    let value = checker.check(node, schema, &mut path);
    (value, checker.errors)
}

struct Checker<'s> {
    root: &'s Value,
    errors: Vec<Diagnostic>,
    /// Positions of the keys leading to the node being checked: a problem with a whole
    /// mapping (a missing key) is shown at the key that names it, e.g. the step name.
    keys: Vec<crate::yaml::Pos>,
}

impl<'s> Checker<'s> {
    fn resolve(&self, schema: &'s Value) -> &'s Value {
        let mut schema = schema;
        // A ref chain is at most a few links; the bound guards against a self-referencing schema.
        for _ in 0..16 {
            let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
                break;
            };
            let target = reference
                .strip_prefix("#/$defs/")
                .and_then(|name| self.root.get("$defs")?.get(name));
            match target {
                Some(t) => schema = t,
                None => break,
            }
        }
        schema
    }

    /// An error about a whole mapping, shown at the key that names it.
    fn mapping_error(
        &mut self,
        node: &Node,
        path: &[PathSeg],
        message: String,
        help: Option<String>,
    ) {
        let pos = self.keys.last().copied().unwrap_or(node.pos);
        self.errors
            .push(Diagnostic::error(pos, path_to_string(path), message).with_help_opt(help));
    }

    fn error(&mut self, node: &Node, path: &[PathSeg], message: String, help: Option<String>) {
        self.errors
            .push(Diagnostic::error(node.pos, path_to_string(path), message).with_help_opt(help));
    }

    /// Reports a node whose YAML type is none of the schema's `types`.
    fn wrong_type(&mut self, node: &Node, path: &[PathSeg], types: &[&str], help: Option<String>) {
        let message = format!(
            "expected {}, found {}",
            describe_types(types),
            node.describe()
        );
        self.error(node, path, message, help);
    }

    fn check(&mut self, node: &Node, schema: &'s Value, path: &mut Vec<PathSeg>) -> Option<Value> {
        let schema = self.resolve(schema);
        if let Some(branches) = schema
            .get("oneOf")
            .or_else(|| schema.get("anyOf"))
            .and_then(Value::as_array)
        {
            return self.check_union(node, branches, path);
        }
        if let Some(constant) = schema.get("const") {
            return self.check_choice(node, std::slice::from_ref(constant), path);
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array) {
            return self.check_choice(node, options, path);
        }
        let types: Vec<&str> = match schema.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if types.is_empty() {
            return Some(any_value(node));
        }
        if node.is_null() && types.contains(&"null") {
            return Some(Value::Null);
        }
        match &node.kind {
            NodeKind::Map(entries) if types.contains(&"object") => {
                Some(self.check_object(node, entries, schema, path))
            }
            NodeKind::Seq(items) if types.contains(&"array") => {
                let item_schema = schema.get("items").unwrap_or(&Value::Bool(true));
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    path.push(PathSeg::Index(i));
                    if let Some(v) = self.check(item, item_schema, path) {
                        out.push(v);
                    }
                    path.pop();
                }
                Some(Value::Array(out))
            }
            NodeKind::Scalar { text, style } => match scalar_as(text, *style, &types) {
                Some(value) => {
                    self.check_range(node, &value, schema, path);
                    Some(value)
                }
                None => {
                    let help = if types.contains(&"boolean")
                        && matches!(text.as_str(), "yes" | "no" | "on" | "off" | "y" | "n")
                    {
                        Some("write `true` or `false` (YAML 1.2 booleans)".to_owned())
                    } else if types.contains(&"integer") && *style == Style::Quoted {
                        Some("remove the quotes".to_owned())
                    } else if types.contains(&"array") && !node.is_null() {
                        Some(format!("write a list: `[{text}]`"))
                    } else {
                        None
                    };
                    self.wrong_type(node, path, &types, help);
                    None
                }
            },
            _ => {
                let help = (path.is_empty() && types.contains(&"object")).then(|| {
                    "a pipeline file is a mapping of keys: `version: 1`, `name: ...`, `sources: ...`; \
                     see examples/quickstart"
                        .to_owned()
                });
                self.wrong_type(node, path, &types, help);
                None
            }
        }
    }

    fn check_range(&mut self, node: &Node, value: &Value, schema: &Value, path: &[PathSeg]) {
        let Some(n) = value.as_f64() else { return };
        let min = schema.get("minimum").and_then(Value::as_f64);
        let max = schema.get("maximum").and_then(Value::as_f64);
        let out_of_range = min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m);
        if !out_of_range {
            return;
        }
        let message = match (min, max) {
            (Some(lo), Some(hi)) => format!("must be between {lo} and {hi}, found {n}"),
            (Some(lo), None) => format!("must be at least {lo}, found {n}"),
            (None, Some(hi)) => format!("must be at most {hi}, found {n}"),
            (None, None) => return,
        };
        self.error(node, path, message, None);
    }

    fn check_object(
        &mut self,
        node: &Node,
        entries: &[(Node, Node)],
        schema: &'s Value,
        path: &mut Vec<PathSeg>,
    ) -> Value {
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        let mut out = Map::new();
        for (key, value) in entries {
            let name = key.scalar_text().unwrap_or_default();
            path.push(PathSeg::Key(name.to_owned()));
            self.keys.push(key.pos);
            let property = properties.and_then(|p| p.get(name));
            match (property, additional) {
                (Some(prop), _) => {
                    if let Some(v) = self.check(value, prop, path) {
                        out.insert(name.to_owned(), v);
                    }
                }
                (None, Some(Value::Bool(false))) => {
                    path.pop();
                    self.keys.pop();
                    let allowed: Vec<&str> = properties
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    let help = match did_you_mean(name, allowed.iter().copied()) {
                        Some(guess) => format!(
                            "did you mean `{guess}`? Allowed keys: {}",
                            allowed.join(", ")
                        ),
                        None => format!("allowed keys: {}", allowed.join(", ")),
                    };
                    self.error(key, path, format!("unknown key `{name}`"), Some(help));
                    continue;
                }
                (None, Some(extra)) if extra.is_object() => {
                    if let Some(v) = self.check(value, extra, path) {
                        out.insert(name.to_owned(), v);
                    }
                }
                (None, _) => {
                    out.insert(name.to_owned(), any_value(value));
                }
            }
            path.pop();
            self.keys.pop();
        }
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !entries.iter().any(|(k, _)| k.scalar_text() == Some(name)) {
                    let help = properties
                        .and_then(|p| p.get(name))
                        .map(|p| self.resolve(p))
                        .and_then(|p| p.get("description"))
                        .and_then(Value::as_str)
                        .map(|d| format!("`{name}`: {}", first_sentence(d)));
                    self.mapping_error(node, path, format!("missing required key `{name}`"), help);
                }
            }
        }
        Value::Object(out)
    }

    /// A value that must be one of a fixed set of constants (a unit enum).
    fn check_choice(&mut self, node: &Node, options: &[Value], path: &[PathSeg]) -> Option<Value> {
        let text = node.scalar_text().filter(|_| !node.is_null());
        if let Some(text) = text
            && let Some(hit) = options
                .iter()
                .find(|o| o.as_str() == Some(text) || *o == text)
        {
            return Some(hit.clone());
        }
        let names: Vec<String> = options
            .iter()
            .map(|o| {
                o.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| o.to_string())
            })
            .collect();
        let guess = text.and_then(|t| did_you_mean(t, names.iter().map(String::as_str)));
        // The message already lists the choices; help only adds a likely correction.
        let help = guess.map(|g| format!("did you mean `{g}`?"));
        let message = if names.len() == 1 {
            format!("expected `{}`, found {}", names[0], node.describe())
        } else {
            format!("{} is not one of: {}", node.describe(), names.join(", "))
        };
        self.error(node, path, message, help);
        None
    }

    fn check_union(
        &mut self,
        node: &Node,
        branches: &'s [Value],
        path: &mut Vec<PathSeg>,
    ) -> Option<Value> {
        let resolved: Vec<&'s Value> = branches.iter().map(|b| self.resolve(b)).collect();
        let is_null_branch = |b: &&Value| b.get("type").and_then(Value::as_str) == Some("null");
        if node.is_null() && resolved.iter().any(is_null_branch) {
            return Some(Value::Null);
        }
        let rest: Vec<&'s Value> = resolved
            .into_iter()
            .filter(|b| !is_null_branch(b))
            .collect();
        if rest.len() == 1 {
            return self.check(node, rest[0], path);
        }
        if rest.iter().all(|b| b.get("const").is_some()) {
            let options: Vec<Value> = rest
                .iter()
                .filter_map(|b| b.get("const").cloned())
                .collect();
            return self.check_choice(node, &options, path);
        }
        let tags: Vec<&str> = rest
            .iter()
            .filter_map(|b| b.pointer("/properties/type/const").and_then(Value::as_str))
            .collect();
        if tags.len() == rest.len() {
            return self.check_tagged(node, &rest, &tags, path);
        }
        // General case: the first branch that fits, else the errors of the closest branch.
        let mut best: Option<Vec<Diagnostic>> = None;
        for branch in rest {
            let saved = std::mem::take(&mut self.errors);
            let value = self.check(node, branch, path);
            let errors = std::mem::replace(&mut self.errors, saved);
            if errors.is_empty() {
                return value;
            }
            if best.as_ref().is_none_or(|b| errors.len() < b.len()) {
                best = Some(errors);
            }
        }
        self.errors.extend(best.unwrap_or_default());
        None
    }

    /// A mapping whose `type` key picks the variant (`type: sqlite`).
    fn check_tagged(
        &mut self,
        node: &Node,
        branches: &[&'s Value],
        tags: &[&str],
        path: &mut Vec<PathSeg>,
    ) -> Option<Value> {
        let kind = if path.len() >= 2 {
            match &path[0] {
                PathSeg::Key(section) => section.trim_end_matches('s').to_owned(),
                PathSeg::Index(_) => "value".to_owned(),
            }
        } else {
            "value".to_owned()
        };
        let kind = match path.last() {
            Some(PathSeg::Key(k)) if k == "format" => "format".to_owned(),
            _ => kind,
        };
        if !matches!(node.kind, NodeKind::Map(_)) {
            self.error(
                node,
                path,
                format!(
                    "expected a mapping with a `type` key, found {}",
                    node.describe()
                ),
                Some(format!("`type` is one of: {}", tags.join(", "))),
            );
            return None;
        }
        let Some(type_node) = node.get("type") else {
            self.mapping_error(
                node,
                path,
                format!("missing required key `type`: say which kind of {kind} this is"),
                Some(format!("`type` is one of: {}", tags.join(", "))),
            );
            return None;
        };
        let wanted = type_node.scalar_text().unwrap_or_default();
        match tags.iter().position(|t| *t == wanted) {
            Some(i) => self.check(node, branches[i], path),
            None => {
                let help = match did_you_mean(wanted, tags.iter().copied()) {
                    Some(g) => format!(
                        "did you mean `{g}`? Known {kind} types: {}",
                        tags.join(", ")
                    ),
                    None => format!("known {kind} types: {}", tags.join(", ")),
                };
                path.push(PathSeg::Key("type".to_owned()));
                self.error(
                    type_node,
                    path,
                    format!("unknown {kind} type {}", type_node.describe()),
                    Some(help),
                );
                path.pop();
                None
            }
        }
    }
}

fn first_sentence(text: &str) -> &str {
    let line = text.lines().next().unwrap_or(text);
    match line.find(". ") {
        Some(i) => &line[..=i],
        None => line,
    }
}

fn describe_types(types: &[&str]) -> String {
    let names: Vec<&str> = types
        .iter()
        .filter(|t| **t != "null")
        .map(|t| match *t {
            "object" => "a mapping",
            "array" => "a list",
            "string" => "a string",
            "integer" => "a whole number",
            "number" => "a number",
            "boolean" => "true or false",
            other => other,
        })
        .collect();
    names.join(" or ")
}

/// Reads a scalar as one of the wanted JSON types, the first that fits in a fixed order.
fn scalar_as(text: &str, style: Style, types: &[&str]) -> Option<Value> {
    let plain = style == Style::Plain;
    if plain && types.contains(&"null") && is_null_text(text) {
        return Some(Value::Null);
    }
    if plain && types.contains(&"boolean") {
        match text {
            "true" | "True" | "TRUE" => return Some(Value::Bool(true)),
            "false" | "False" | "FALSE" => return Some(Value::Bool(false)),
            _ => {}
        }
    }
    if plain && types.contains(&"integer") {
        if let Ok(i) = text.parse::<i64>() {
            return Some(Value::from(i));
        }
        if let Ok(u) = text.parse::<u64>() {
            return Some(Value::from(u));
        }
    }
    if plain
        && types.contains(&"number")
        && let Some(n) = text
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .and_then(serde_json::Number::from_f64)
    {
        return Some(Value::Number(n));
    }
    if types.contains(&"string") && !(plain && is_null_text(text)) {
        return Some(Value::String(text.to_owned()));
    }
    None
}

/// Converts a node to JSON by YAML 1.2's core schema, for values the schema leaves open.
fn any_value(node: &Node) -> Value {
    match &node.kind {
        NodeKind::Scalar { text, style } => scalar_as(
            text,
            *style,
            &["null", "boolean", "integer", "number", "string"],
        )
        .unwrap_or(Value::Null),
        NodeKind::Seq(items) => Value::Array(items.iter().map(any_value).collect()),
        NodeKind::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.scalar_text().unwrap_or_default().to_owned(), any_value(v)))
                .collect(),
        ),
    }
}
