//! Firehose sinks writing Delta tables (`format: delta`) from NATS JetStream and Direct PUT:
//! the tables read back with the Python `deltalake` package, each flush one commit whose
//! transaction (app id, version) appears once in the log, exactly once across `kill -9`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::jetstream;
use serde_json::Value;

use crate::common::pipectl;
use crate::streaming::{
    Xorshift, finish, fresh_jetstream, lines_under, nats_firehose_spec, publish, rt, signal, start,
    wait_until, write_direct_put_pipeline,
};

/// The rows of the Delta table at `root` as the Python `deltalake` package reads them (JSON
/// objects, sorted by `n`), with the table's partition columns and its Arrow types.
fn read_table(python: &Path, root: &Path) -> (Vec<Value>, Vec<String>, BTreeMap<String, String>) {
    const SCRIPT: &str = r#"
import json, sys
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1])
data = t.to_pyarrow_table()
rows = sorted(data.to_pylist(), key=lambda r: r["n"])
for r in rows:
    for k, v in r.items():
        if hasattr(v, "isoformat"):
            r[k] = v.isoformat()
print(json.dumps({
    "rows": rows,
    "partitions": t.metadata().partition_columns,
    "types": {f.name: str(f.type) for f in data.schema},
}))
"#;
    let read = crate::common::python_json(
        crate::common::python_script(python, SCRIPT).arg(root),
        &format!("deltalake reading {}", root.display()),
    );
    let partitions = read["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    let types = read["types"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    (read["rows"].as_array().unwrap().clone(), partitions, types)
}

/// Fails unless no two commits carry the same transaction, and each app id's versions grow
/// with the commits.
fn assert_txns_once(root: &Path) -> usize {
    let txns = crate::common::delta_txns(root);
    let mut seen = BTreeSet::new();
    let mut last: BTreeMap<&str, i64> = BTreeMap::new();
    for (commit, app, version) in &txns {
        assert!(
            seen.insert((app.clone(), *version)),
            "{}: transaction {app} {version} committed twice (again in commit {commit})",
            root.display()
        );
        if let Some(before) = last.insert(app, *version) {
            assert!(
                *version > before,
                "{}: {app} went from {before} to {version} in commit {commit}",
                root.display()
            );
        }
    }
    txns.len()
}

/// The `n` of every row, with how often each appears.
fn counts(rows: &[Value]) -> BTreeMap<u64, usize> {
    let mut seen = BTreeMap::new();
    for row in rows {
        *seen.entry(row["n"].as_u64().unwrap()).or_insert(0) += 1;
    }
    seen
}

/// The Delta readers' interpreter, the runtime, context, stream and subject of
/// [`fresh_jetstream`], and the test's folder.
type DeltaStreamTest = (
    PathBuf,
    tokio::runtime::Runtime,
    jetstream::Context,
    String,
    String,
    tempfile::TempDir,
);

/// What a JetStream-into-Delta test works with: the Delta readers' interpreter, a JetStream
/// stream of its own named from `prefix` (the runtime, context, stream and subject of
/// [`fresh_jetstream`]) and a folder whose `pipeline.yaml` (`delta-stream`) delivers the stream
/// into firehose sink `tables` on the `lake` folder with the sink's other `settings` (YAML
/// lines indented by 4). `None` (skip) when the Delta readers or NATS are missing.
fn delta_stream_test(prefix: &str, settings: &str) -> Option<DeltaStreamTest> {
    let python = crate::common::delta_readers_python()?;
    let (rt, js, stream, subject) = fresh_jetstream(prefix)?;
    let dir = tempfile::tempdir().unwrap();
    let spec = nats_firehose_spec(
        "delta-stream",
        "pipectl-delta",
        "tables",
        (&stream, &subject),
        settings,
    );
    std::fs::write(dir.path().join("pipeline.yaml"), spec).unwrap();
    Some((python, rt, js, stream, subject, dir))
}

/// JetStream into two Delta tables (picked by a partition key), partitioned inside by a
/// column: every record read back by Python `deltalake` with its declared types, one commit
/// per flush, bad records in error objects, everything acknowledged.
#[test]
fn jetstream_into_delta_tables_reads_back_with_deltalake_one_commit_per_flush() {
    let Some((python, rt, js, stream, subject, dir)) = delta_stream_test(
        "PIPECTL_DELTA1_",
        r#"    format: {type: delta, partition_by: [kind]}
    prefix: "tables/!{partitionKeyFromQuery:table}/"
    error_output_prefix: "errors/!{firehose:error-output-type}/"
    partition_keys: {table: .table}
    columns:
      - {name: n, type: int64}
      - {name: table, type: string}
      - {name: kind, type: string}
      - {name: at, type: timestamptz}
      - {name: note, type: string}
    max_records: 50
    interval_secs: 0.5
"#,
    ) else {
        return;
    };
    let mut payloads: Vec<String> = (1..=400u64)
        .map(|n| {
            let note = if n % 7 == 0 {
                "null".to_owned()
            } else {
                format!(r#""zoë {n}""#)
            };
            format!(
                r#"{{"n":{n},"table":"t{}","kind":"k{}","at":"2026-11-25T18:07:{:02}Z","note":{note}}}"#,
                n % 2,
                n % 3,
                n % 60
            )
        })
        .collect();
    payloads.insert(100, "not json".to_owned());
    payloads.insert(
        200,
        r#"{"n":"not a number","table":"t0","kind":"k0"}"#.to_owned(),
    );
    publish(&rt, &js, &format!("{subject}.e"), payloads);

    let child = start(dir.path());
    wait_until(Duration::from_secs(60), "every record acknowledged", || {
        acked(&rt, &js, &stream) >= 402
    });
    signal(&child, "-TERM");
    let (code, stdout, stderr) = finish(child);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");

    let lake = dir.path().join("lake");
    for table in ["t0", "t1"] {
        let root = lake.join("tables").join(table);
        let (rows, partitions, types) = read_table(&python, &root);
        assert_eq!(partitions, ["kind"]);
        assert_eq!(types["n"], "int64");
        assert_eq!(types["at"], "timestamp[us, tz=UTC]");
        let expected: Vec<u64> = (1..=400)
            .filter(|n| format!("t{}", n % 2) == table)
            .collect();
        assert_eq!(
            rows.iter()
                .map(|r| r["n"].as_u64().unwrap())
                .collect::<Vec<_>>(),
            expected,
            "{table}"
        );
        for row in &rows {
            let n = row["n"].as_u64().unwrap();
            assert_eq!(row["kind"], format!("k{}", n % 3));
            assert_eq!(row["table"], table);
            assert_eq!(row["at"], format!("2026-11-25T18:07:{:02}+00:00", n % 60));
            if n % 7 == 0 {
                assert_eq!(row["note"], Value::Null);
            } else {
                assert_eq!(row["note"], format!("zoë {n}"));
            }
        }
        // 200 records in flushes of at most 50: at least 4 commits, each with its own txn.
        let commits = assert_txns_once(&root);
        assert!(commits >= 4, "{table}: {commits} commits");
        let app_ids: BTreeSet<String> = crate::common::delta_txns(&root)
            .into_iter()
            .map(|(_, a, _)| a)
            .collect();
        assert_eq!(
            app_ids,
            BTreeSet::from([format!("delta-stream/tables/tables/{table}")])
        );
        // Data files only under partition folders; nothing of the errors in the table.
        for file in crate::common::files_under(&root) {
            assert!(
                file.starts_with("_delta_log/") || file.starts_with("kind=k"),
                "{table}: {file}"
            );
        }
    }
    let errors = lines_under(&lake.join("errors"), ".jsonl");
    let types: BTreeSet<&str> = errors
        .iter()
        .map(|(f, _)| f.split('/').next().unwrap())
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(
        types,
        BTreeSet::from(["format-conversion-failed", "processing-failed"])
    );
    let pending: Value = serde_json::from_slice(
        &std::fs::read(lake.join("_pipectl/streams/delta-stream/tables/pending.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(pending, serde_json::json!({"acked": 402, "entries": []}));
    rt.block_on(async { js.delete_stream(&stream).await.unwrap() });
}

/// Exactly once from JetStream into Delta: the pipeline is killed (SIGKILL) at 20 or more
/// random moments while a producer publishes numbered records, restarted each time, then
/// drained; every number is in the tables once, and no transaction (app id, version) is in a
/// log twice.
#[test]
fn kill_9_while_streaming_into_delta_loses_and_duplicates_nothing() {
    // Small flushes into three tables, with inferred columns: commits all the time, so kills
    // land before, between and after the two saves of the pending record and the commit.
    let Some((python, rt, js, stream, subject, dir)) = delta_stream_test(
        "PIPECTL_DELTA_SOAK_",
        r#"    format: {type: delta}
    prefix: "soak/!{partitionKeyFromQuery:kind}/"
    error_output_prefix: "errors/!{firehose:error-output-type}/"
    partition_keys: {kind: .kind}
    max_bytes: 6000
    interval_secs: 0.2
"#,
    ) else {
        return;
    };
    const TOTAL: u64 = 12_000;
    // About 1,000 records a second: the kills spread over the stream.
    let producer = crate::streaming::spawn_numbered_producer(subject.clone(), TOTAL, 50, |n| {
        if n % 1000 == 0 {
            format!("broken {n}")
        } else {
            format!(
                r#"{{"n":{n},"kind":"k{}","pad":"{}"}}"#,
                n % 3,
                "x".repeat(20)
            )
        }
    });
    let mut random = Xorshift::from_clock("delta soak");
    let (mut committed_late, mut already, mut rebuilt) = (0, 0, 0);
    let mut kills = 0;
    while !producer.is_finished() || kills < 20 {
        let stderr = crate::streaming::run_then_kill_9(dir.path(), 300 + random.next() % 900);
        kills += 1;
        committed_late += stderr
            .matches("committed a flush a stopped process prepared")
            .count();
        already += stderr
            .matches("skipping records a stopped process already committed")
            .count();
        rebuilt += stderr.matches("rebuilding an object").count();
    }
    producer.join().unwrap();
    eprintln!(
        "{kills} kills; restarts committed {committed_late} recorded commits, found {already} already in the log and rebuilt {rebuilt} unrecorded flushes"
    );
    let child = start(dir.path());
    wait_until(
        Duration::from_secs(120),
        "every record acknowledged",
        || acked(&rt, &js, &stream) >= TOTAL,
    );
    signal(&child, "-TERM");
    let (code, _, stderr) = finish(child);
    assert_eq!(code, 0, "{stderr}");

    let lake = dir.path().join("lake");
    let mut all = BTreeMap::new();
    for kind in ["k0", "k1", "k2"] {
        let root = lake.join("soak").join(kind);
        let (rows, _, _) = read_table(&python, &root);
        for row in &rows {
            assert_eq!(row["kind"], kind);
        }
        for (n, c) in counts(&rows) {
            *all.entry(n).or_insert(0) += c;
        }
        assert_txns_once(&root);
    }
    let dupes: Vec<_> = all.iter().filter(|(_, c)| **c != 1).collect();
    assert!(dupes.is_empty(), "duplicated: {dupes:?}");
    let expected: Vec<u64> = (1..=TOTAL).filter(|n| n % 1000 != 0).collect();
    let missing: Vec<u64> = expected
        .iter()
        .copied()
        .filter(|n| !all.contains_key(n))
        .collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert_eq!(all.len(), expected.len());
    let errors = lines_under(&lake.join("errors"), ".jsonl");
    assert_eq!(errors.len(), (TOTAL / 1000) as usize, "{errors:?}");
    rt.block_on(async { js.delete_stream(&stream).await.unwrap() });
}

/// The consumer's acknowledged stream sequence; 0 while pipectl has not created it yet.
fn acked(rt: &tokio::runtime::Runtime, js: &jetstream::Context, stream: &str) -> u64 {
    rt.block_on(async {
        let Ok(stream) = js.get_stream(stream).await else {
            return 0;
        };
        let consumer: Result<jetstream::consumer::PullConsumer, _> =
            stream.get_consumer("pipectl-delta").await;
        match consumer {
            Ok(mut c) => c.info().await.map_or(0, |i| i.ack_floor.stream_sequence),
            Err(_) => 0,
        }
    })
}

/// Direct PUT into a Delta table: what was answered 200 is in the table after a SIGTERM, a
/// new field becomes a column, and a second run appends to the same table.
#[test]
fn direct_put_into_delta_lands_in_the_table() {
    let Some(python) = crate::common::delta_readers_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = crate::streaming::free_port();
    write_direct_put_pipeline(
        dir.path(),
        "direct-put-delta",
        port,
        r#"    format: {type: delta, partition_by: [kind]}
    prefix: "events/"
    error_output_prefix: "errors/!{firehose:error-output-type}/"
    max_records: 40
    interval_secs: 0.5
"#,
    );
    let child = start(dir.path());
    crate::streaming::wait_for_port(port);
    for batch in 0..5u64 {
        let first = batch * 30 + 1;
        assert!(!crate::streaming::put_until_stored(
            port,
            &crate::streaming::put_record_batch(first..=first + 29)
        ));
    }
    // Records with a field the table does not have yet: `schema: evolve` (the default) adds
    // the column; the earlier rows have NULL in it.
    let later: Vec<String> = (151..=160u64)
        .map(|n| {
            format!(
                r#"{{"Data":"{}"}}"#,
                crate::streaming::b64(&format!(
                    r#"{{"n":{n},"kind":"k{}","extra":"e{n}"}}"#,
                    n % 3
                ))
            )
        })
        .collect();
    assert!(!crate::streaming::put_until_stored(
        port,
        &format!(
            r#"{{"DeliveryStreamName":"x","Records":[{}]}}"#,
            later.join(",")
        )
    ));
    let root = dir.path().join("lake/events");
    wait_until(Duration::from_secs(30), "a commit", || {
        root.join("_delta_log").exists()
    });
    signal(&child, "-TERM");
    let (code, stdout, stderr) = finish(child);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    // A second run continues the table: the write-ahead log's sequence numbers, and so the
    // transaction versions, keep growing across restarts.
    let child = start(dir.path());
    crate::streaming::wait_for_port(port);
    assert!(!crate::streaming::put_until_stored(
        port,
        &crate::streaming::put_record_batch(161..=200)
    ));
    signal(&child, "-TERM");
    let (code, stdout, stderr) = finish(child);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let (rows, partitions, _) = read_table(&python, &root);
    assert_eq!(partitions, ["kind"]);
    assert_eq!(
        rows.iter()
            .map(|r| r["n"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        (1..=200).collect::<Vec<_>>()
    );
    for row in &rows {
        let n = row["n"].as_u64().unwrap();
        assert_eq!(row["kind"], format!("k{}", n % 3));
        if (151..=160).contains(&n) {
            assert_eq!(row["extra"], format!("e{n}"));
        } else {
            assert_eq!(row["extra"], Value::Null);
        }
    }
    assert!(assert_txns_once(&root) >= 2);
}

/// A generator (sequence numbers restart with each run) into a Delta table on S3 (the local
/// S3 server), run twice: both runs' rows are in the table, read by Python `deltalake` over
/// S3, and the second run's transaction versions continue after the first's.
#[test]
fn a_generator_streams_into_a_delta_table_on_s3_across_runs() {
    let Some(python) = crate::common::delta_readers_python() else {
        return;
    };
    let Some((endpoint, bucket)) = crate::common::s3_server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix = crate::streaming::unique("firehose-delta-");
    let lake = crate::common::s3_lake(&bucket, &prefix);
    std::fs::write(
        dir.path().join("pipeline.yaml"),
        format!(
            r#"version: 1
name: gen-delta
{lake}
sources:
  rentals:
    type: generator
    template: '{{"n": {{{{random.number({{"min":1,"max":9}})}}}}, "eventType": "{{{{random.arrayElement(["rent","buy"])}}}}"}}'
    count: 300
    rate_per_sec: 3000
sinks:
  out:
    type: firehose
    inputs: [rentals]
    connection: lake
    format: {{type: delta, partition_by: [eventType]}}
    prefix: "tables/rentals/"
    error_output_prefix: "errors/!{{firehose:error-output-type}}/"
    max_records: 100
    interval_secs: 60
"#
        ),
    )
    .unwrap();
    for _ in 0..2 {
        let (out, stdout, stderr) =
            crate::common::output(pipectl(dir.path()).args(["run", "pipeline.yaml"]));
        assert!(out.status.success(), "{stdout}\n{stderr}");
    }
    const SCRIPT: &str = r#"
import json, os, sys
from deltalake import DeltaTable
options = {
    "AWS_ENDPOINT_URL": os.environ["PIPECTL_TEST_S3_ENDPOINT"],
    "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
    "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
    "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
    "AWS_ALLOW_HTTP": "true",
}
t = DeltaTable(sys.argv[1], storage_options=options)
rows = t.to_pyarrow_table().to_pylist()
print(json.dumps({"rows": rows, "partitions": t.metadata().partition_columns, "version": t.version()}))
"#;
    let read = crate::common::python_json(
        crate::common::python_script(&python, SCRIPT)
            .arg(format!("s3://{bucket}/{prefix}/tables/rentals"))
            .env("PIPECTL_TEST_S3_ENDPOINT", &endpoint),
        "deltalake reading the table",
    );
    let rows = read["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 600, "both runs' rows");
    for row in rows {
        let n = row["n"].as_u64().unwrap();
        assert!((1..=9).contains(&n), "{row}");
        assert!(["rent", "buy"].contains(&row["eventType"].as_str().unwrap()));
    }
    assert_eq!(read["partitions"], serde_json::json!(["eventType"]));
    // Three flushes of 100 records per run: six commits, versions 0 to 5.
    assert_eq!(read["version"], 5);
    // Each carries a transaction; the second run's continue after the first's.
    let store = crate::common::s3_store(&endpoint, &bucket);
    let versions: Vec<i64> = rt().block_on(async {
        use futures::TryStreamExt as _;
        use object_store::{ObjectStore as _, ObjectStoreExt as _};
        let log = object_store::path::Path::from(format!("{prefix}/tables/rentals/_delta_log"));
        let mut commits: Vec<_> = store
            .list(Some(&log))
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.location)
            .filter(|l| l.as_ref().ends_with(".json"))
            .collect();
        commits.sort();
        let mut versions = Vec::new();
        for commit in commits {
            let body = store.get(&commit).await.unwrap().bytes().await.unwrap();
            for line in String::from_utf8(body.to_vec()).unwrap().lines() {
                let action: Value = serde_json::from_str(line).unwrap();
                if let Some(v) = action["txn"]["version"].as_i64() {
                    assert_eq!(action["txn"]["appId"], "gen-delta/out/tables/rentals");
                    versions.push(v);
                }
            }
        }
        versions
    });
    assert_eq!(versions.len(), 6, "{versions:?}");
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
}
