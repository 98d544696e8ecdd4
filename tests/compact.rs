//! `pipectl compact` on plain Parquet and JSON lines tables: the small files pipectl wrote in a
//! partition are rewritten into fewer, the rows read back equal (types, decimals, time zones,
//! NULLs; JSON lines byte for byte), a second compaction changes nothing, a compaction killed
//! before or after saving its intent is discarded or finished by the next run or compaction,
//! and `pipectl query` answers the same before and after.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::util::display::{ArrayFormatter, FormatOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

use crate::common::{assert_contains_all, files_under, output, pipectl};
use crate::lake::{catalog_json, ok, query};
use crate::serve::{maintained_every_second, serve_dir};

/// Orders with a decimal, a timestamp with time zone and a column that is NULL in about half
/// the rows, 10 rows a file, into Parquet (`clean/`) and JSON lines (`raw/`), both catalogued.
const SHOP: &str = r#"version: 1
name: shop
connections:
  lake: { url: file://lake }
sources:
  orders:
    type: generator
    count: 60
    batch_rows: 7
    template: '{"id": {{random.number(1000000)}}, "amount": "{{random.number(99999)}}.25", "at": "{{date.now}}", "note": {{random.arrayElement(["\"gift\"", "null"])}}}'
    columns:
      - { name: id, type: int64 }
      - { name: amount, type: "decimal(10,2)" }
      - { name: at, type: timestamptz }
      - { name: note, type: string }
sinks:
  clean:
    type: object_store
    inputs: [orders]
    connection: lake
    key: clean/{table}/{date}/
    max_file_rows: 10
    format: { type: parquet }
  raw:
    type: object_store
    inputs: [orders]
    connection: lake
    key: raw/{table}/{date}/
    max_file_rows: 10
    format: { type: jsonl }
crawlers:
  clean_catalog:
    type: catalog
    inputs: [clean]
    database: shop
    table_prefix: clean_
  raw_catalog:
    type: catalog
    inputs: [raw]
    database: shop
    table_prefix: raw_
"#;

fn shop(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("shop.yaml");
    std::fs::write(&path, format!("{SHOP}{extra}")).unwrap();
    path
}

/// A temp dir where the [`SHOP`] pipeline has run once.
fn shop_run() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    shop(tmp.path(), "");
    ok(tmp.path(), &["run", "shop.yaml"]);
    tmp
}

/// The data files readers see under `root` (no `_` folder on the way), relative, sorted.
fn visible(root: &Path) -> Vec<String> {
    files_under(root)
        .into_iter()
        .filter(|f| !f.split('/').any(|part| part.starts_with('_')))
        .collect()
}

/// Every partition folder under `root` with its visible files.
fn partitions(root: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in visible(root) {
        let (folder, name) = file.rsplit_once('/').unwrap_or(("", &file));
        out.entry(folder.to_owned())
            .or_default()
            .push(name.to_owned());
    }
    out
}

/// The schemas (as text: types, nullability, time zones) and rows (each value as text, NULL
/// as `NULL`) of Parquet files, rows sorted.
fn parquet_rows(files: &[PathBuf]) -> (Vec<String>, Vec<String>) {
    let mut schemas = Vec::new();
    let mut rows = Vec::new();
    let options = FormatOptions::default().with_null("NULL");
    for file in files {
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(file).unwrap()).unwrap();
        schemas.push(format!("{:?}", builder.schema().fields()));
        for batch in builder.build().unwrap() {
            let batch = batch.unwrap();
            let columns: Vec<ArrayFormatter> = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
                .collect();
            for row in 0..batch.num_rows() {
                let values: Vec<String> =
                    columns.iter().map(|c| c.value(row).to_string()).collect();
                rows.push(values.join("|"));
            }
        }
    }
    schemas.sort();
    schemas.dedup();
    rows.sort();
    (schemas, rows)
}

/// The lines of JSON lines files, sorted.
fn jsonl_lines(files: &[PathBuf]) -> Vec<String> {
    let mut lines: Vec<String> = files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    lines
}

/// Per partition folder of `root`: the Parquet schemas and rows of pipectl's files there.
fn parquet_by_partition(root: &Path) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
    partitions(root)
        .into_iter()
        .map(|(folder, names)| {
            let files: Vec<PathBuf> = names
                .iter()
                .filter(|n| n.starts_with("part-"))
                .map(|n| root.join(&folder).join(n))
                .collect();
            (folder, parquet_rows(&files))
        })
        .collect()
}

/// Per partition folder of `root`: the lines of its files.
fn jsonl_by_partition(root: &Path) -> BTreeMap<String, Vec<String>> {
    partitions(root)
        .into_iter()
        .map(|(folder, names)| {
            let files: Vec<PathBuf> = names.iter().map(|n| root.join(&folder).join(n)).collect();
            (folder, jsonl_lines(&files))
        })
        .collect()
}

/// Moves the first `n` files of the only partition of `root` into a partition `2026-01-01`,
/// so the table has two partitions of pipectl's files.
fn split_partition(root: &Path, n: usize) {
    let parts = partitions(root);
    let (folder, names) = parts.iter().next().expect("a partition");
    let other = root.join("2026-01-01");
    std::fs::create_dir_all(&other).unwrap();
    for name in names.iter().take(n) {
        std::fs::rename(root.join(folder).join(name), other.join(name)).unwrap();
    }
}

/// What `pipectl query` says about both tables.
fn answers(dir: &Path) -> Vec<Value> {
    ["clean_orders", "raw_orders"]
        .iter()
        .flat_map(|t| {
            query(
                dir,
                "shop",
                &format!(
                    "select count(*) as n, count(distinct id) as ids, sum(amount) as total, count(note) as notes, min(at) as first, max(at) as last from {t}"
                ),
            )
        })
        .collect()
}

fn runs(dir: &Path) -> Vec<Value> {
    let stdout = ok(dir, &["runs", "shop", "--format", "json"]);
    match serde_json::from_str(&stdout).expect("runs prints JSON") {
        Value::Array(runs) => runs,
        other => panic!("not an array: {other}"),
    }
}

#[test]
fn small_parquet_and_jsonl_files_are_compacted_per_partition_with_equal_rows() {
    let tmp = shop_run();
    let dir = tmp.path();
    ok(dir, &["run", "shop.yaml"]);
    let clean = dir.join("lake/clean/orders");
    let raw = dir.join("lake/raw/orders");
    split_partition(&clean, 5);
    split_partition(&raw, 5);
    // A file pipectl did not write stays as it is.
    let theirs = clean.join("2026-01-01/export.parquet");
    let first = partitions(&clean)["2026-01-01"][0].clone();
    std::fs::copy(clean.join("2026-01-01").join(&first), &theirs).unwrap();
    ok(dir, &["crawl", "shop.yaml"]);
    assert_eq!(visible(&clean).len(), 13, "{:?}", visible(&clean));
    assert_eq!(visible(&raw).len(), 12);
    let parquet_before = parquet_by_partition(&clean);
    let jsonl_before = jsonl_by_partition(&raw);
    for (folder, (schemas, rows)) in &parquet_before {
        assert_eq!(schemas.len(), 1, "{folder}: {schemas:?}");
        assert!(
            schemas[0].contains("Decimal128(10, 2)") && schemas[0].contains("Some(\"UTC\")"),
            "{}",
            schemas[0]
        );
        assert!(rows.iter().any(|r| r.ends_with("|NULL")), "{folder}: NULLs");
        assert!(rows.iter().any(|r| r.ends_with("|gift")), "{folder}: text");
    }
    let answers_before = answers(dir);
    assert_eq!(answers_before[0]["n"], 120 + 10, "{answers_before:?}");

    // A dry run shows the rewrite and changes nothing.
    let plan = ok(dir, &["compact", "shop.yaml", "--dry-run"]);
    assert_contains_all(
        &plan,
        &[
            "sink clean, table orders (12 files, ",
            "would rewrite 12 files into 2:",
            "\n  file://lake/clean/orders/2026-01-01/: 5 files (",
        ],
    );
    assert_eq!(visible(&clean).len(), 13);

    let text = ok(dir, &["compact", "shop.yaml"]);
    assert_contains_all(
        &text,
        &[
            "sink clean, table orders: compacted 12 files (",
            ") into 2 (",
            "in 2 partitions, 120 rows; run ",
        ],
    );
    assert!(
        text.contains("sink raw, table orders: compacted 12 files ("),
        "{text}"
    );
    for (root, expected) in [(&clean, 3), (&raw, 2)] {
        let parts = partitions(root);
        assert_eq!(
            parts.values().map(Vec::len).sum::<usize>(),
            expected,
            "{parts:?}"
        );
        assert!(
            files_under(root).iter().all(|f| !f.contains("_pipectl")),
            "staging is gone"
        );
    }
    assert!(theirs.exists(), "a file pipectl did not write is kept");
    assert_eq!(parquet_by_partition(&clean), parquet_before);
    assert_eq!(jsonl_by_partition(&raw), jsonl_before);
    // JSON lines are concatenated exactly: the compacted file is the old files, in key order.
    assert_eq!(answers(dir), answers_before);
    let table = catalog_json(dir, &["show", "shop.raw_orders"]);
    let files: Vec<u64> = table["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["files"].as_u64().unwrap())
        .collect();
    assert_eq!(files, [1, 1], "the catalog lists the new files: {table:#}");
    let compactions: Vec<Value> = runs(dir)
        .into_iter()
        .filter(|r| r["trigger"] == "compact")
        .collect();
    assert_eq!(compactions.len(), 2, "one run per table");
    assert!(compactions.iter().all(|r| r["status"] == "succeeded"));

    // A second compaction is a no-op.
    let names = (visible(&clean), visible(&raw));
    let again = ok(dir, &["compact", "shop.yaml"]);
    assert_contains_all(
        &again,
        &[
            "sink clean, table orders: nothing to compact (2 files, ",
            "sink raw, table orders: nothing to compact (2 files, ",
        ],
    );
    assert_eq!((visible(&clean), visible(&raw)), names);
}

#[test]
fn compacted_jsonl_is_the_old_files_concatenated_byte_for_byte() {
    let tmp = shop_run();
    let dir = tmp.path();
    let raw = dir.join("lake/raw/orders");
    let (folder, names) = partitions(&raw).into_iter().next().unwrap();
    let mut expected = Vec::new();
    for name in &names {
        expected.extend(std::fs::read(raw.join(&folder).join(name)).unwrap());
    }
    ok(dir, &["compact", "shop.yaml", "--sink", "raw"]);
    let after = partitions(&raw);
    assert_eq!(after[&folder].len(), 1, "{after:?}");
    let compacted = std::fs::read_to_string(raw.join(&folder).join(&after[&folder][0])).unwrap();
    assert!(
        compacted == String::from_utf8(expected).unwrap(),
        "the compacted file is not the old files concatenated in key order:\n{compacted}"
    );
    assert!(
        after[&folder][0].starts_with("part-") && after[&folder][0].ends_with("-0001.jsonl"),
        "{after:?}"
    );
}

/// `pipectl compact` stopped as by `kill -9` at `stage`.
fn killed_compaction(dir: &Path, stage: &str) {
    let (out, stdout, stderr) = output(
        pipectl(dir)
            .args(["compact", "shop.yaml"])
            .env("PIPECTL_TEST_COMPACT_KILL_AT", stage),
    );
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("stopping here"), "{stderr}");
}

#[test]
fn a_killed_compaction_is_discarded_or_finished_by_the_next_run_or_compaction() {
    for (stage, next) in [
        ("staged", "run"),
        ("staged", "compact"),
        ("intent_saved", "run"),
        ("intent_saved", "compact"),
    ] {
        killed_then(stage, next);
    }
}

/// Kills a compaction at `stage`, then runs `next` (`run` or `compact`) and checks that the
/// compaction was discarded (killed before its intent was saved) or finished (after), with
/// every row once.
fn killed_then(stage: &str, next: &str) {
    let tmp = shop_run();
    let dir = tmp.path();
    let clean = dir.join("lake/clean/orders");
    let raw = dir.join("lake/raw/orders");
    let before = (visible(&clean), visible(&raw));
    let parquet_before = parquet_by_partition(&clean);
    let jsonl_before = jsonl_by_partition(&raw);
    let answers_before = answers(dir);
    let case = format!("killed at {stage}, then {next}");

    killed_compaction(dir, stage);
    // Nothing was applied yet: readers see the old files; the new ones wait in staging.
    assert_eq!((visible(&clean), visible(&raw)), before, "{case}");
    assert!(
        files_under(&dir.join("lake"))
            .iter()
            .any(|f| f.starts_with("_pipectl/staging/")),
        "{case}: staged files"
    );
    let killed = runs(dir)
        .into_iter()
        .find(|r| r["trigger"] == "compact")
        .unwrap_or_else(|| panic!("{case}: the compaction is recorded"));
    let expected_status = if stage == "staged" {
        "running"
    } else {
        "committing"
    };
    assert_eq!(killed["status"], expected_status, "{case}: {killed:#}");

    match next {
        "run" => {
            ok(dir, &["run", "shop.yaml"]);
        }
        _ => {
            ok(dir, &["compact", "shop.yaml"]);
        }
    }
    let recovered = runs(dir)
        .into_iter()
        .find(|r| r["id"] == killed["id"])
        .unwrap();
    let expected_status = if stage == "staged" {
        "interrupted"
    } else {
        "succeeded"
    };
    assert_eq!(
        recovered["status"], expected_status,
        "{case}: {recovered:#}"
    );
    assert!(
        !files_under(&dir.join("lake"))
            .iter()
            .any(|f| f.starts_with("_pipectl/")),
        "{case}: no staging is left"
    );

    // No row lost or duplicated: the first run's rows are all there once, plus a second run's.
    let parquet_after = parquet_by_partition(&clean);
    let jsonl_after = jsonl_by_partition(&raw);
    let (folder, (schemas, rows)) = parquet_before.iter().next().unwrap();
    let (after_schemas, after_rows) = &parquet_after[folder];
    assert_eq!(after_schemas, schemas, "{case}");
    let lines = &jsonl_before[jsonl_before.keys().next().unwrap()];
    let after_lines = &jsonl_after[jsonl_after.keys().next().unwrap()];
    let file_count = visible(&clean).len();
    match next {
        "run" => {
            // The run added 60 rows (6 files) to the old or the compacted files.
            assert_eq!(after_rows.len(), rows.len() + 60, "{case}");
            assert!(
                contains_all(after_rows, rows),
                "{case}: the old rows are all there"
            );
            assert_eq!(after_lines.len(), lines.len() + 60, "{case}");
            assert!(contains_all(after_lines, lines), "{case}");
            let expected_files = if stage == "staged" { 12 } else { 7 };
            assert_eq!(file_count, expected_files, "{case}: {:?}", visible(&clean));
            ok(dir, &["compact", "shop.yaml"]);
            assert_eq!(visible(&clean).len(), 1, "{case}");
            assert_eq!(
                parquet_by_partition(&clean)[folder].1,
                *after_rows,
                "{case}"
            );
        }
        _ => {
            assert_eq!(after_rows, rows, "{case}");
            assert_eq!(after_lines, lines, "{case}");
            assert_eq!(file_count, 1, "{case}: {:?}", visible(&clean));
            assert_eq!(answers(dir), answers_before, "{case}");
        }
    }
}

/// Whether every value of `part` is in `all` at least as often (both sorted).
fn contains_all(all: &[String], part: &[String]) -> bool {
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for v in all {
        *counts.entry(v).or_default() += 1;
    }
    for v in part {
        let c = counts.entry(v).or_default();
        *c -= 1;
        if *c < 0 {
            return false;
        }
    }
    true
}

#[test]
fn serve_compacts_plain_tables_in_its_maintenance_section() {
    let spec = maintained_every_second(SHOP, "  compact: { target_file_size: 100000000 }\n");
    let tmp = serve_dir("shop", &spec);
    let dir = tmp.path();
    ok(dir, &["run", "pipelines/shop.yaml"]);
    let clean = dir.join("lake/clean/orders");
    let raw = dir.join("lake/raw/orders");
    let parquet_before = parquet_by_partition(&clean);
    let jsonl_before = jsonl_by_partition(&raw);
    assert_eq!(visible(&clean).len(), 6);

    let daemon = crate::serve::Daemon::start(dir, &[]);
    let pass = crate::serve::wait_for(
        std::time::Duration::from_secs(60),
        "a maintenance pass that compacted both plain tables",
        || {
            crate::serve::runs(dir, "shop").into_iter().find(|r| {
                r["trigger"] == "maintenance"
                    && r["status"] == "succeeded"
                    && r["steps"].as_array().is_some_and(|steps| {
                        steps
                            .iter()
                            .filter(|s| s["rows"].as_u64() == Some(60))
                            .count()
                            == 2
                    })
            })
        },
    );
    let status = daemon.terminate();
    assert!(status.success());
    let steps: Vec<&str> = pass["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["compact clean/orders", "compact raw/orders"],
        "{pass:#}"
    );
    assert_eq!(visible(&clean).len(), 1);
    assert_eq!(visible(&raw).len(), 1);
    assert_eq!(parquet_by_partition(&clean), parquet_before);
    assert_eq!(jsonl_by_partition(&raw), jsonl_before);
}

/// The names of the files in `folder`, or `None` when it cannot be listed.
fn listing(folder: &Path) -> Option<std::collections::BTreeSet<String>> {
    let entries = std::fs::read_dir(folder).ok()?;
    entries
        .map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect()
}

#[test]
fn a_reader_listing_a_partition_during_a_local_compaction_sees_the_old_or_the_new_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let text = SHOP
        .replace("count: 60", "count: 300")
        .replace("max_file_rows: 10", "max_file_rows: 1");
    std::fs::write(dir.join("shop.yaml"), text).unwrap();
    ok(dir, &["run", "shop.yaml"]);
    let raw = dir.join("lake/raw/orders");
    let (folder, names) = partitions(&raw).into_iter().next().unwrap();
    let folder = raw.join(folder);
    let old: std::collections::BTreeSet<String> = names.into_iter().collect();
    assert_eq!(old.len(), 300);

    let mut child = pipectl(dir)
        .args(["compact", "shop.yaml"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        let names = listing(&folder);
        if !seen.contains(&names) {
            seen.push(names);
        }
    };
    assert!(status.success());
    let new = listing(&folder).expect("the partition is there");
    assert_eq!(new.len(), 1, "{new:?}");
    for names in &seen {
        let names = names
            .as_ref()
            .expect("the partition folder is always there");
        assert!(
            *names == old || *names == new,
            "a reader saw {} files: {:?}",
            names.len(),
            names.iter().take(5).collect::<Vec<_>>()
        );
    }
    let lines = jsonl_lines(&[folder.join(new.iter().next().unwrap())]);
    assert_eq!(lines.len(), 300);
}

#[test]
fn files_of_different_columns_are_compacted_apart_and_every_row_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The first run's orders have no `note` column; the second run's have it.
    let without_note = SHOP
        .replace(
            r#", "note": {{random.arrayElement(["\"gift\"", "null"])}}"#,
            "",
        )
        .replace("      - { name: note, type: string }\n", "");
    assert_ne!(without_note, SHOP);
    std::fs::write(dir.join("shop.yaml"), &without_note).unwrap();
    ok(dir, &["run", "shop.yaml"]);
    shop(dir, "");
    ok(dir, &["run", "shop.yaml"]);
    let clean = dir.join("lake/clean/orders");
    let (folder, names) = partitions(&clean).into_iter().next().unwrap();
    assert_eq!(names.len(), 12);
    let files = |names: &[String]| -> Vec<PathBuf> {
        names.iter().map(|n| clean.join(&folder).join(n)).collect()
    };
    let (schemas, rows) = parquet_rows(&files(&names));
    assert_eq!(schemas.len(), 2, "{schemas:?}");

    // Each compaction packs the files of one set of columns; it stops when nothing is left.
    let mut passes = 0;
    while !ok(dir, &["compact", "shop.yaml", "--sink", "clean"]).contains("nothing to compact") {
        passes += 1;
        assert!(passes <= 3, "compaction does not settle");
    }
    let after = partitions(&clean).remove(&folder).unwrap();
    assert_eq!(after.len(), 2, "one file per set of columns: {after:?}");
    for name in &after {
        assert_eq!(parquet_rows(&files(std::slice::from_ref(name))).0.len(), 1);
    }
    let (after_schemas, after_rows) = parquet_rows(&files(&after));
    assert_eq!(after_schemas, schemas);
    assert_eq!(after_rows, rows);
}
