//! Firehose's prefix rules end to end: the examples of AWS's "Custom Prefixes for Amazon S3
//! Objects" page as `pipectl plan --at` evaluates them, and where a running sink puts records
//! (delivered, failed, invalid UTF-8), read back from the lake.

use std::path::Path;

use base64::Engine as _;
use chrono::TimeZone as _;

use crate::common::{files_under, output, pipectl};
use crate::firehose_parquet::{direct_put_spec_dir, run_posting};
use crate::streaming::raw_data;

/// A streaming pipeline named `name` with one NATS source per sink (never connected: `plan
/// --offline` only reads the spec); `sinks` is YAML for the `sinks:` mapping, indented by 2.
fn write_spec(dir: &Path, name: &str, sinks: &str) {
    let sources: String = sinks
        .lines()
        .filter_map(|l| l.trim().strip_prefix("inputs: ["))
        .map(|rest| rest.trim_end_matches(']'))
        .map(|s| format!("  {s}: {{type: nats, connection: nats, stream: S{s}}}\n"))
        .collect();
    std::fs::write(
        dir.join("pipeline.yaml"),
        format!(
            "version: 1\nname: {name}\nconnections:\n  nats: {{url: \"nats://127.0.0.1:4222\"}}\n  lake: {{url: \"file://lake\"}}\nsources:\n{sources}sinks:\n{sinks}"
        ),
    )
    .unwrap();
}

/// `pipectl plan --offline --format json` with `args`: the `keys` of the plan, by sink.
fn plan_keys(dir: &Path, args: &[&str]) -> serde_json::Map<String, serde_json::Value> {
    let (out, stdout, stderr) = output(
        pipectl(dir)
            .args(["plan", "pipeline.yaml", "--offline", "--format", "json"])
            .args(args),
    );
    assert!(out.status.success(), "{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    plan["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["sink"].as_str().unwrap().to_owned(), k.clone()))
        .collect()
}

fn is_random(text: &str) -> bool {
    text.len() == 11
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

const AWS_SINKS: &str = r#"  unspecified:
    type: firehose
    inputs: [a]
    connection: lake
    error_output_prefix: "myFirehoseFailures/!{firehose:error-output-type}/"
    format: {type: jsonl}
  random:
    type: firehose
    inputs: [b]
    connection: lake
    prefix: "myFirehose/DeliveredYear=!{timestamp:yyyy}/anyMonth/rand=!{firehose:random-string}/!{firehose:random-string}/"
    error_output_prefix: "myFirehoseFailures/!{firehose:error-output-type}/!{timestamp:yyyy}/anyMonth/!{timestamp:dd}/"
    format: {type: jsonl}
  hive:
    type: firehose
    inputs: [c]
    connection: lake
    prefix: "myPrefix/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/"
    error_output_prefix: "myErrorPrefix/!{timestamp:'year='yyyy'/month='MM'/day='dd'/hour='HH}/!{firehose:error-output-type}/"
    format: {type: parquet}
  literal:
    type: firehose
    inputs: [d]
    connection: lake
    prefix: "myFirehosePrefix"
    format: {type: jsonl, compression: gzip}
"#;

#[test]
fn plan_at_shows_the_keys_of_the_aws_examples() {
    let dir = tempfile::tempdir().unwrap();
    write_spec(dir.path(), "aws", AWS_SINKS);
    let keys = plan_keys(dir.path(), &["--at", "2018-08-27T10:30:00Z"]);
    let data = |sink: &str| keys[sink]["object_key"].as_str().unwrap().to_owned();
    let error =
        |sink: &str, kind: &str| keys[sink]["error_keys"][kind].as_str().unwrap().to_owned();
    let name = |sink: &str, ext: &str| format!("aws-{sink}-000000000001-000000000001.{ext}");

    assert_eq!(
        data("unspecified"),
        format!("2018/08/27/10/{}", name("unspecified", "jsonl"))
    );
    assert_eq!(
        error("unspecified", "processing-failed"),
        format!(
            "myFirehoseFailures/processing-failed/{}",
            name("unspecified", "jsonl")
        )
    );

    let random = data("random");
    let rest = random
        .strip_prefix("myFirehose/DeliveredYear=2018/anyMonth/rand=")
        .unwrap_or_else(|| panic!("{random}"));
    let parts: Vec<&str> = rest.split('/').collect();
    assert!(is_random(parts[0]) && is_random(parts[1]), "{random}");
    assert_ne!(parts[0], parts[1], "each occurrence is a new string");
    assert_eq!(
        error("random", "processing-failed"),
        format!(
            "myFirehoseFailures/processing-failed/2018/anyMonth/27/{}",
            name("random", "jsonl")
        )
    );

    let hive = plan_keys(dir.path(), &["--at", "2018-07-06T23:30:00Z"]);
    assert_eq!(
        hive["hive"]["object_key"],
        format!(
            "myPrefix/year=2018/month=07/day=06/hour=23/{}",
            name("hive", "parquet")
        )
    );
    assert_eq!(
        hive["hive"]["error_keys"]["format-conversion-failed"],
        format!(
            "myErrorPrefix/year=2018/month=07/day=06/hour=23/format-conversion-failed/{}",
            name("hive", "jsonl")
        )
    );

    assert_eq!(
        data("literal"),
        format!(
            "myFirehosePrefix/2018/08/27/10/{}",
            name("literal", "jsonl.gz")
        )
    );
    assert_eq!(
        error("literal", "processing-failed"),
        format!(
            "myFirehosePrefix/processing-failed/2018/08/27/10/{}",
            name("literal", "jsonl")
        )
    );

    // Random strings are reproducible for the same object and differ between pipelines.
    assert_eq!(
        plan_keys(dir.path(), &["--at", "2018-08-27T10:30:00Z"])["random"]["object_key"],
        random
    );
    write_spec(dir.path(), "aws2", AWS_SINKS);
    let other = plan_keys(dir.path(), &["--at", "2018-08-27T10:30:00Z"]);
    let other_random = other["random"]["object_key"].as_str().unwrap();
    assert_ne!(other_random.split('/').nth(3), random.split('/').nth(3));
}

#[test]
fn plan_at_with_a_record_shows_its_partition_values_and_text_form() {
    let dir = tempfile::tempdir().unwrap();
    write_spec(
        dir.path(),
        "shop",
        r#"  orders:
    type: firehose
    inputs: [a]
    connection: lake
    prefix: "orders/customer=!{partitionKeyFromQuery:customer}/!{eventTimestamp:yyyy/MM}/"
    error_output_prefix: "errors/!{firehose:error-output-type}/"
    partition_keys: {customer: .customer.id}
    event_time: {field: .ts}
    format: {type: jsonl}
"#,
    );
    let record = r#"{"customer":{"id":"acme"},"ts":"2025-03-04T05:06:07Z"}"#;
    let keys = plan_keys(
        dir.path(),
        &["--at", "2026-11-25T18:07:09Z", "--record", record],
    );
    let orders = &keys["orders"];
    assert_eq!(
        orders["object_key"],
        "orders/customer=acme/2025/03/shop-orders-000000000001-000000000001.jsonl"
    );
    assert_eq!(orders["partition_values"]["customer"], "acme");
    assert_eq!(
        orders["error_keys"]["partitioning-failed"],
        "errors/partitioning-failed/shop-orders-000000000001-000000000001.jsonl"
    );

    let (out, stdout, stderr) = output(pipectl(dir.path()).args([
        "plan",
        "pipeline.yaml",
        "--offline",
        "--at",
        "2026-11-25T18:07:09Z",
        "--record",
        r#"{"ts":"2025-03-04T05:06:07Z"}"#,
    ]));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("object keys at 2026-11-25T18:07:09Z"),
        "{stdout}"
    );
    assert!(
        stdout.contains("the sample record goes to the error output (partitioning-failed: partition key `customer` (.customer.id) is missing"),
        "{stdout}"
    );
    assert!(
        stdout.contains("processing-failed    errors/processing-failed/shop-orders-000000000001-000000000001.jsonl"),
        "{stdout}"
    );
}

#[test]
fn failed_and_invalid_utf8_records_go_where_firehose_puts_them_without_an_error_prefix() {
    let (dir, port) = direct_put_spec_dir(
        "literal",
        "    prefix: \"myFirehosePrefix\"\n    format: {type: jsonl}\n",
    );
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let invalid_utf8: &[u8] = b"{\"n\":2,\"city\":\"Montr\xe9al\"}";
    let batch = format!(
        r#"{{"DeliveryStreamName":"x","Records":[{{"Data":"{}"}},{{"Data":"{}"}},{{"Data":"{}"}}]}}"#,
        b64(r#"{"n":1,"city":"Montréal"}"#.as_bytes()),
        b64(invalid_utf8),
        b64(b"not json"),
    );
    run_posting(
        dir.path(),
        port,
        "/",
        &[("X-Amz-Target", "Firehose_20150804.PutRecordBatch")],
        batch.as_bytes(),
    );

    let lake = dir.path().join("lake");
    let mut data = Vec::new();
    let mut errors = Vec::new();
    for f in files_under(&lake) {
        if f.starts_with("_pipectl") {
            continue;
        }
        let bytes = std::fs::read(lake.join(&f)).unwrap();
        let text = String::from_utf8(bytes).unwrap_or_else(|_| panic!("{f} holds invalid UTF-8"));
        let rest = f
            .strip_prefix("myFirehosePrefix/")
            .unwrap_or_else(|| panic!("{f}"));
        for line in text.lines() {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            match rest.strip_prefix("processing-failed/") {
                Some(folder) => errors.push((folder.to_owned(), value)),
                None => data.push((rest.to_owned(), value)),
            }
        }
    }
    assert_eq!(data.len(), 1, "{data:?}");
    assert_eq!(data[0].1["city"], "Montréal");
    assert_eq!(errors.len(), 2, "{errors:?}");
    let raw: Vec<Vec<u8>> = errors.iter().map(|(_, e)| raw_data(e)).collect();
    assert!(raw.contains(&invalid_utf8.to_vec()), "{errors:?}");
    assert!(raw.contains(&b"not json".to_vec()), "{errors:?}");
    // Data and errors are in `yyyy/MM/dd/HH/` folders of the records' arrival.
    for (folder, envelope) in &errors {
        let arrival = chrono::Utc
            .timestamp_millis_opt(envelope["arrivalTimestamp"].as_i64().unwrap())
            .unwrap();
        let hour = arrival.format("%Y/%m/%d/%H/").to_string();
        assert!(folder.starts_with(&hour), "{folder} is not under {hour}");
        assert!(
            data[0].0.starts_with(&hour),
            "{} is not under {hour}",
            data[0].0
        );
    }
}
