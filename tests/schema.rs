//! The committed JSON Schema matches the code, and documents every property.

use crate::common::{golden, repo};

#[test]
fn committed_schema_matches_the_code() {
    let generated = serde_json::to_string_pretty(&pipectl_spec::json_schema()).unwrap() + "\n";
    golden(&repo().join("schemas/pipeline.schema.json"), &generated);
}

#[test]
fn every_property_has_a_description() {
    fn walk(value: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::Object(props)) = map.get("properties") {
                    for (name, prop) in props {
                        if prop
                            .get("description")
                            .and_then(|d| d.as_str())
                            .is_none_or(str::is_empty)
                        {
                            missing.push(format!("{path}.{name}"));
                        }
                    }
                }
                for (k, v) in map {
                    walk(v, &format!("{path}/{k}"), missing);
                }
            }
            serde_json::Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, &format!("{path}[{i}]"), missing);
                }
            }
            _ => {}
        }
    }
    let mut missing = Vec::new();
    walk(&pipectl_spec::json_schema(), "#", &mut missing);
    assert!(
        missing.is_empty(),
        "properties without a description: {missing:#?}"
    );
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let dir = tempfile::tempdir().unwrap();
    let (out, stdout, _) = crate::common::output(crate::common::pipectl(dir.path()).arg("schema"));
    assert!(out.status.success());
    let committed = std::fs::read_to_string(repo().join("schemas/pipeline.schema.json")).unwrap();
    assert_eq!(stdout, committed);
}

#[test]
fn every_example_and_pipeline_validates_and_names_the_schema() {
    let mut files = Vec::new();
    for dir in ["examples", "pipelines"] {
        for f in crate::common::files_under(&repo().join(dir)) {
            if f.ends_with(".yaml") {
                files.push(repo().join(dir).join(f));
            }
        }
    }
    assert!(files.len() >= 2, "{files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let first = text.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("# yaml-language-server: $schema="),
            "{} lacks the schema line",
            file.display()
        );
        let schema_rel = first.trim_start_matches("# yaml-language-server: $schema=");
        assert!(
            file.parent().unwrap().join(schema_rel).exists(),
            "{}: {schema_rel} does not exist",
            file.display()
        );
        if let Err(diags) = pipectl_spec::load_str(&file.display().to_string(), &text) {
            panic!("{} does not validate: {diags:#?}", file.display());
        }
    }
}
