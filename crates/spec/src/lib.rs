//! pipectl's pipeline spec: types, YAML parsing with locations, pure validation and DAG planning.
//!
//! Nothing here does I/O beyond reading the spec files it is given, so `validate`, `plan` and
//! `schema` build and run without the runtime's heavy dependencies.
//!
//! Phases: [`yaml::parse`] builds a located tree; [`check::check`] checks it against the JSON
//! schema generated from [`types`]; [`validate`] deserializes and runs the semantic checks and
//! [`dag::Dag::build`]. Each phase collects every error it can find.
#![warn(missing_docs, unreachable_pub)]

pub mod check;
pub mod dag;
pub mod diag;
pub mod duration;
pub mod env;
pub mod lang;
pub mod types;
pub mod validate;
pub mod yaml;

pub use diag::{Diagnostic, Severity};
pub use validate::{LoadedSpec, load_bytes, load_str};

/// The JSON Schema of a pipeline file, generated from [`types::Pipeline`].
///
/// schemars leaves the `type` tag of each variant without a description; it is filled in here
/// from the variant's own description so that editors explain every key.
pub fn json_schema() -> serde_json::Value {
    let mut schema =
        serde_json::to_value(schemars::schema_for!(types::Pipeline)).unwrap_or_default();
    describe_tags(&mut schema);
    schema
}

fn describe_tags(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            let variant = map
                .get("description")
                .and_then(|d| d.as_str())
                .map(str::to_owned);
            if let Some(tag) = map.get_mut("properties").and_then(|p| p.get_mut("type"))
                && let (Some(constant), None) = (
                    tag.get("const").and_then(|c| c.as_str()).map(str::to_owned),
                    tag.get("description"),
                )
            {
                let text = match &variant {
                    Some(v) => format!("`{constant}`: {v}"),
                    None => format!("`{constant}`"),
                };
                tag["description"] = serde_json::Value::String(text);
            }
            for v in map.values_mut() {
                describe_tags(v);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(describe_tags),
        _ => {}
    }
}
