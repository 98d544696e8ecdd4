//! Parquet conversion in firehose sinks: the schema from a catalog table (as Firehose takes a
//! Glue table) or inferred, ISO timestamps as timestamp columns, and fields the schema lacks
//! counted and reported instead of dropped without a word. Read back with the parquet crate.

use std::path::Path;
use std::process::Stdio;

use arrow::datatypes::DataType;

use crate::common::{files_under, output, pipectl};
use crate::streaming::{
    direct_put_dir, finish, free_port, http, lines_under, only_error_envelope, parquet_rows,
    raw_data, signal, wait_for_port, write_direct_put_pipeline,
};

/// A fresh folder holding a streaming pipeline `name` (a Direct PUT source into firehose sink
/// `out` on the `lake` folder, see [`direct_put_dir`]) flushed only when the run stops, and the
/// port its source listens on; `settings` are YAML lines for the sink, indented by 4 (its
/// prefixes and format).
pub(crate) fn direct_put_spec_dir(name: &str, settings: &str) -> (tempfile::TempDir, u16) {
    direct_put_dir(name, &format!("    interval_secs: 600\n{settings}"))
}

/// The sink settings of a Direct PUT pipeline into a Parquet sink with `schema` (YAML lines
/// for the sink, indented by 4), flushed only when the run stops.
fn parquet_settings(schema: &str) -> String {
    format!(
        "    interval_secs: 600\n    prefix: \"parquet/\"\n    error_output_prefix: \"errors/!{{firehose:error-output-type}}/\"\n    format: {{type: parquet}}\n{schema}"
    )
}

/// A Direct PUT pipeline into a Parquet sink with `schema` (see [`parquet_settings`]).
fn write_spec(dir: &Path, port: u16, schema: &str) {
    write_direct_put_pipeline(dir, "rentals-parquet", port, &parquet_settings(schema));
}

/// Runs `dir/pipeline.yaml` (a Direct PUT source on `port`), posts `body` (JSON lines) and
/// stops it with SIGTERM: its stderr.
fn run_with(dir: &Path, port: u16, body: &str) -> String {
    run_posting(dir, port, "/records/batch", &[], body.as_bytes())
}

/// Runs `dir/pipeline.yaml` (a Direct PUT source on `port`), posts `body` to `path` with
/// `headers`, expects a 200 and stops the run with SIGTERM: its stderr.
pub(crate) fn run_posting(
    dir: &Path,
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> String {
    let child = pipectl(dir)
        .args(["run", "pipeline.yaml"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_port(port);
    let (status, _, answer) = http(port, "POST", path, headers, body);
    assert_eq!(status, 200, "{answer}");
    signal(&child, "-TERM");
    let (code, _, stderr) = finish(child);
    assert_eq!(code, 0, "{stderr}");
    stderr
}

/// The schema and rows (as JSON) of the one Parquet object under `lake/parquet/`.
fn read_back(dir: &Path) -> (arrow::datatypes::SchemaRef, Vec<serde_json::Value>) {
    let lake = dir.join("lake");
    let objects: Vec<String> = files_under(&lake)
        .into_iter()
        .filter(|f| f.ends_with(".parquet"))
        .collect();
    assert_eq!(objects.len(), 1, "{objects:?}");
    let path = lake.join(&objects[0]);
    let schema = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&path).unwrap(),
    )
    .unwrap()
    .schema()
    .clone();
    (schema, parquet_rows(&path))
}

const RECORDS: &str = "{\"film_id\": 1, \"ts\": \"2026-11-25T18:07:09Z\", \"price\": 2.5}\n\
                       {\"film_id\": 2, \"ts\": \"2026-11-25T18:07:10.250Z\", \"price\": 3.5, \"coupon\": \"X1\"}\n\
                       {\"film_id\": 3, \"ts\": \"2026-11-25T19:07:09+01:00\", \"price\": 1.0, \"coupon\": \"X2\", \"promo\": true}\n";

#[test]
fn a_sink_takes_its_schema_from_a_catalog_table_and_reports_fields_it_lacks() {
    let dir = tempfile::tempdir().unwrap();
    // A table catalogued by a crawler from a sample file, as a Glue table would be.
    std::fs::create_dir_all(dir.path().join("ref/rentals")).unwrap();
    std::fs::write(
        dir.path().join("ref/rentals/sample.csv"),
        "film_id,ts,price\n7,2026-01-01T00:00:00Z,9.5\n",
    )
    .unwrap();
    let (out, _, stderr) = output(pipectl(dir.path()).args([
        "crawl",
        "--path",
        "file://ref",
        "--database",
        "shop",
        "--table-level",
        "1",
    ]));
    assert!(out.status.success(), "{stderr}");
    let port = free_port();
    write_spec(
        dir.path(),
        port,
        "    catalog_table: {database: shop, table: rentals}\n",
    );
    let stderr = run_with(dir.path(), port, RECORDS);
    let (schema, rows) = read_back(dir.path());
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    // The catalog's columns and types (`int` for `film_id`), in its order; `coupon` and
    // `promo` are not among them.
    assert_eq!(names, ["film_id", "ts", "price"]);
    assert_eq!(schema.field(0).data_type(), &DataType::Int32);
    assert!(
        matches!(schema.field(1).data_type(), DataType::Timestamp(..)),
        "{schema:?}"
    );
    let ts: Vec<&str> = rows.iter().map(|r| r["ts"].as_str().unwrap()).collect();
    assert_eq!(
        ts,
        [
            "2026-11-25T18:07:09",
            "2026-11-25T18:07:10.250",
            "2026-11-25T18:07:09"
        ]
    );
    assert!(
        stderr.contains("fields not in the Parquet schema were left out: `coupon` (2 records), `promo` (1 record)"),
        "{stderr}"
    );
}

#[test]
fn an_inferred_schema_reads_iso_times_as_timestamps() {
    let (dir, port) = direct_put_dir("rentals-parquet", &parquet_settings(""));
    let body = "{\"film_id\": 1, \"ts\": \"2026-11-25T18:07:09Z\", \"note\": \"2026-11-25\"}\n\
                {\"film_id\": 2, \"ts\": \"2026-11-25T18:07:10Z\", \"note\": \"later\"}\n";
    run_with(dir.path(), port, body);
    let (schema, rows) = read_back(dir.path());
    assert!(
        matches!(
            schema.field_with_name("ts").unwrap().data_type(),
            DataType::Timestamp(_, Some(_))
        ),
        "{schema:?}"
    );
    assert_eq!(
        schema.field_with_name("note").unwrap().data_type(),
        &DataType::Utf8
    );
    assert_eq!(rows.len(), 2);
}

#[test]
fn a_missing_catalog_table_fails_the_run_with_what_to_do() {
    let (dir, _port) = direct_put_dir(
        "rentals-parquet",
        &parquet_settings("    catalog_table: {database: shop, table: nowhere}\n"),
    );
    let (out, stdout, _) = output(pipectl(dir.path()).args(["run", "pipeline.yaml"]));
    assert!(!out.status.success());
    assert!(
        stdout.contains(
            "catalog table `shop.nowhere` does not exist; catalogue it with a crawler first"
        ),
        "{stdout}"
    );
}

#[test]
fn invalid_utf8_is_never_data_in_parquet_or_gzip_json_lines() {
    let invalid: &[u8] = b"{\"film_id\": 2, \"city\": \"Montr\xe9al\"}";
    let mut body = b"{\"film_id\": 1, \"city\": \"Montr\xc3\xa9al\"}\n".to_vec();
    body.extend_from_slice(invalid);
    body.push(b'\n');
    for format in ["{type: parquet}", "{type: jsonl, compression: gzip}"] {
        let (dir, port) = direct_put_spec_dir(
            "utf8",
            &format!(
                "    prefix: \"data/\"\n    error_output_prefix: \"errors/!{{firehose:error-output-type}}/\"\n    format: {format}\n"
            ),
        );
        run_posting(dir.path(), port, "/records/batch", &[], &body);
        let lake = dir.path().join("lake");
        let rows: Vec<serde_json::Value> = if format.contains("parquet") {
            let objects: Vec<String> = files_under(&lake.join("data"))
                .into_iter()
                .filter(|f| f.ends_with(".parquet"))
                .collect();
            assert_eq!(objects.len(), 1, "{format}: {objects:?}");
            parquet_rows(&lake.join("data").join(&objects[0]))
        } else {
            // Reading panics on invalid UTF-8.
            lines_under(&lake.join("data"), ".jsonl.gz")
                .iter()
                .map(|(_, line)| serde_json::from_str(line).unwrap())
                .collect()
        };
        assert_eq!(
            rows,
            [serde_json::json!({"film_id": 1, "city": "Montréal"})],
            "{format}"
        );
        let envelope = only_error_envelope(&lake, "processing-failed", &format!("{format}: "));
        assert_eq!(raw_data(&envelope), invalid, "{format}");
    }
}
