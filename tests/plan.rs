//! `pipectl plan`: a snapshot of the quickstart's plan, and the JSON form.

use crate::common::{copy_quickstart, output, pipectl, snapshot};

#[test]
fn quickstart_plan_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let spec = copy_quickstart(dir.path());
    let (out, stdout, stderr) = output(pipectl(dir.path()).arg("plan").arg(&spec));
    assert!(out.status.success(), "{stderr}");
    // The only values that change between days and checkouts: today's date and the temp folder.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let text = stdout
        .replace(&today, "<today>")
        .replace(&dir.path().display().to_string(), "<dir>");
    let text = regex_free_hash(&text);
    snapshot("plan_quickstart.txt", &text);
}

/// Replaces the spec hash (16 hex digits after `spec `) so editing the example's comments does
/// not churn the snapshot.
fn regex_free_hash(text: &str) -> String {
    match text.find(", spec ") {
        Some(i) => format!("{}, spec <hash>{}", &text[..i], &text[i + 7 + 16..]),
        None => text.to_owned(),
    }
}

#[test]
fn plan_json_lists_tables_sql_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let spec = copy_quickstart(dir.path());
    let plan = crate::common::plan_json(dir.path(), &spec);
    let steps = plan["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    // Topological: every step after its inputs.
    for (i, step) in steps.iter().enumerate() {
        for input in step["inputs"].as_array().into_iter().flatten() {
            let at = names
                .iter()
                .position(|n| *n == input.as_str().unwrap())
                .unwrap();
            assert!(at < i, "{} runs before its input {input}", names[i]);
        }
    }
    let sakila = steps.iter().find(|s| s["name"] == "sakila").unwrap();
    let reads = crate::common::strings(&sakila["reads"], "table");
    assert_eq!(
        reads,
        [
            "main.actor",
            "main.category",
            "main.customer",
            "main.film",
            "main.language",
            "main.payment",
            "main.staff"
        ]
    );
    let film = &sakila["reads"][3];
    assert_eq!(
        film["query"],
        "select \"film_id\", \"title\", \"description\", \"release_year\", \"language_id\", \"original_language_id\", \"rental_duration\", \"rental_rate\", \"length\", \"replacement_cost\", \"rating\", \"special_features\", \"last_update\" from \"main\".\"film\""
    );
    let landing = steps.iter().find(|s| s["name"] == "landing").unwrap();
    assert_eq!(
        landing["writes"][0]["key"],
        "file://lake/landing/sakila-db/main/actor/part-{run_id}-0001.csv"
    );
}
