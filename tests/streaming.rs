//! Streaming delivery (`firehose` sinks) against the real NATS JetStream server: records read
//! back from the lake, prefixes, error envelopes, acknowledgement after publishing, shutdown.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use base64::Engine as _;

use crate::common::{files_under, pipectl, services_required};

pub(crate) fn nats_url() -> String {
    std::env::var("PIPECTL_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

pub(crate) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// A JetStream context, or `None` (skip) when NATS is not running outside CI.
fn jetstream() -> Option<(tokio::runtime::Runtime, jetstream::Context)> {
    let rt = rt();
    match rt.block_on(async { async_nats::connect(nats_url()).await.map(jetstream::new) }) {
        Ok(js) => Some((rt, js)),
        Err(e) if !services_required() => {
            crate::common::skip(&format!("NATS is not reachable at {} ({e})", nats_url()));
            None
        }
        Err(e) => panic!("NATS is not reachable at {}: {e}", nats_url()),
    }
}

/// A JetStream connection and a fresh stream of its own: the runtime, the context, the stream's
/// name (`prefix` and a unique suffix) and its subject (the name in lower case; the stream
/// captures `subject.>`). `None` (skip) as [`jetstream`].
pub(crate) fn fresh_jetstream(
    prefix: &str,
) -> Option<(tokio::runtime::Runtime, jetstream::Context, String, String)> {
    let (rt, js) = jetstream()?;
    let stream = unique(prefix);
    let subject = stream.to_lowercase();
    rt.block_on(async {
        let _ = js.delete_stream(&stream).await;
        js.create_stream(jetstream::stream::Config {
            name: stream.clone(),
            subjects: vec![format!("{subject}.>")],
            ..Default::default()
        })
        .await
        .unwrap();
    });
    Some((rt, js, stream, subject))
}

pub(crate) fn publish(
    rt: &tokio::runtime::Runtime,
    js: &jetstream::Context,
    subject: &str,
    payloads: Vec<String>,
) {
    rt.block_on(async {
        let mut acks = Vec::new();
        for p in payloads {
            acks.push(js.publish(subject.to_owned(), p.into()).await.unwrap());
        }
        for a in acks {
            a.await.unwrap();
        }
    });
}

pub(crate) fn ack_floor(
    rt: &tokio::runtime::Runtime,
    js: &jetstream::Context,
    stream: &str,
    durable: &str,
) -> u64 {
    rt.block_on(async {
        let stream = js.get_stream(stream).await.unwrap();
        let mut consumer: jetstream::consumer::PullConsumer =
            stream.get_consumer(durable).await.unwrap();
        consumer.info().await.unwrap().ack_floor.stream_sequence
    })
}

pub(crate) fn unique(tag: &str) -> String {
    format!("{tag}{}{}", std::process::id(), fastrand_suffix())
}

/// A small seeded random sequence (xorshift), its seed printed so a failure can be replayed.
pub(crate) struct Xorshift(u64);

impl Xorshift {
    pub(crate) fn from_clock(what: &str) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("{what} seed {seed}");
        Xorshift(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn fastrand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        % 100_000
}

/// Every line of every object under `dir` whose name ends in `ext` (`.gz` ones decompressed).
pub(crate) fn lines_under(dir: &Path, ext: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for f in files_under(dir) {
        if f.starts_with("_pipectl") || !f.ends_with(ext) {
            continue;
        }
        let bytes = std::fs::read(dir.join(&f)).unwrap();
        let text = if f.ends_with(".gz") {
            let mut s = String::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_string(&mut s)
                .unwrap();
            s
        } else {
            String::from_utf8(bytes).unwrap()
        };
        out.extend(text.lines().map(|l| (f.clone(), l.to_owned())));
    }
    out
}

pub(crate) fn numbers(lines: &[(String, String)]) -> BTreeMap<u64, usize> {
    let mut seen = BTreeMap::new();
    for (_, line) in lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        *seen.entry(v["n"].as_u64().unwrap()).or_insert(0) += 1;
    }
    seen
}

pub(crate) fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Counts the records a `pipectl run` at `pipectl_stream::firehose=debug` says its sink took,
/// reading its stderr on a thread (which also keeps the pipe from filling up).
fn records_received(
    stderr: std::process::ChildStderr,
) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
    use std::io::BufRead;
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = count.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if !line.contains("records received") {
                continue;
            }
            let n = line
                .split_once("records=")
                .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            counter.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
        }
    });
    count
}

pub(crate) fn start(dir: &Path) -> Child {
    pipectl(dir)
        .args(["run", "pipeline.yaml"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

pub(crate) fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The one error envelope under `lake`'s `errors/` folder, asserted to be the only error
/// record there and one of `error_type` (`context` starts the assertion messages).
pub(crate) fn only_error_envelope(
    lake: &Path,
    error_type: &str,
    context: &str,
) -> serde_json::Value {
    let errors = lines_under(&lake.join("errors"), ".jsonl");
    assert_eq!(errors.len(), 1, "{context}{errors:?}");
    assert!(
        errors[0].0.starts_with(&format!("{error_type}/")),
        "{context}{}",
        errors[0].0
    );
    serde_json::from_str(&errors[0].1).unwrap()
}

/// The record an error envelope carries (`rawData`, decoded from base64).
pub(crate) fn raw_data(envelope: &serde_json::Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(envelope["rawData"].as_str().unwrap())
        .unwrap()
}

pub(crate) fn finish(child: Child) -> (i32, String, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A pipeline `name` that delivers JetStream stream `stream` (subjects `subject.>`, consumer
/// `durable`) into firehose sink `sink` on the `lake` folder; `settings` are the sink's other
/// YAML lines, indented by 4.
pub(crate) fn nats_firehose_spec(
    name: &str,
    durable: &str,
    sink: &str,
    (stream, subject): (&str, &str),
    settings: &str,
) -> String {
    format!(
        r#"version: 1
name: {name}
{connections}sources:
  events:
    type: nats
    connection: nats
    stream: {stream}
    subject: "{subject}.>"
    durable: {durable}
sinks:
  {sink}:
    type: firehose
    inputs: [events]
    connection: lake
{settings}"#,
        connections = crate::common::connections(&[("nats", &nats_url()), ("lake", "file://lake")])
    )
}

fn nats_spec(stream: &str, subject: &str, sink_extra: &str) -> String {
    nats_firehose_spec(
        "rentals-stream",
        "pipectl-test",
        "delivered",
        (stream, subject),
        &format!("    format: {{type: jsonl}}\n{sink_extra}"),
    )
}

/// Writes `pipeline.yaml` in `dir`: [`nats_spec`] with `sink_extra`.
fn write_nats_pipeline(dir: &Path, stream: &str, subject: &str, sink_extra: &str) {
    std::fs::write(
        dir.join("pipeline.yaml"),
        nats_spec(stream, subject, sink_extra),
    )
    .unwrap();
}

#[test]
fn nats_records_land_once_under_the_prefix_and_bad_ones_in_error_envelopes() {
    let Some((rt, js, stream, subject)) = fresh_jetstream("PIPECTL_T1_") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_nats_pipeline(
        dir.path(),
        &stream,
        &subject,
        "    prefix: \"rentals/!{timestamp:yyyy/MM/dd}/\"\n    error_output_prefix: \"errors/!{firehose:error-output-type}/!{timestamp:yyyy}/\"\n    max_bytes: 2048\n    interval_secs: 1\n",
    );
    let mut payloads: Vec<String> = (1..=300)
        .map(|n| format!(r#"{{"n":{n},"eventType":"rent"}}"#))
        .collect();
    payloads.insert(100, "not json".to_owned());
    publish(&rt, &js, &format!("{subject}.rent"), payloads);

    let child = start(dir.path());
    let lake = dir.path().join("lake");
    wait_until(Duration::from_secs(30), "300 records in the lake", || {
        lines_under(&lake.join("rentals"), ".jsonl").len() >= 300
            && !lines_under(&lake.join("errors"), ".jsonl").is_empty()
    });
    signal(&child, "-TERM");
    let (code, stdout, stderr) = finish(child);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");

    let lines = lines_under(&lake.join("rentals"), ".jsonl");
    let seen = numbers(&lines);
    assert_eq!(seen.len(), 300);
    assert!(seen.values().all(|c| *c == 1), "duplicates: {seen:?}");
    let today = chrono::Utc::now().format("%Y/%m/%d").to_string();
    let objects: std::collections::BTreeSet<&String> = lines.iter().map(|(f, _)| f).collect();
    assert!(
        objects.len() > 3,
        "max_bytes splits the records: {objects:?}"
    );
    for f in &objects {
        let name = f.rsplit('/').next().unwrap();
        assert!(
            f.starts_with(&today) || f.starts_with(&format!("{}/", &today[..4])),
            "{f}"
        );
        assert!(
            name.starts_with("rentals-stream-delivered-") && name.ends_with(".jsonl"),
            "{f}"
        );
    }

    let envelope = only_error_envelope(&lake, "processing-failed", "");
    assert_eq!(envelope["attemptsMade"], 1);
    assert_eq!(envelope["errorCode"], "InvalidJson");
    assert!(envelope["arrivalTimestamp"].as_i64().unwrap() > 1_700_000_000_000);
    assert_eq!(raw_data(&envelope), b"not json");

    // Every message was acknowledged once published; nothing is left in flight.
    assert_eq!(ack_floor(&rt, &js, &stream, "pipectl-test"), 301);
    let pending: serde_json::Value = serde_json::from_slice(
        &std::fs::read(lake.join("_pipectl/streams/rentals-stream/delivered/pending.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(pending, serde_json::json!({"acked": 301, "entries": []}));
    // The run is in the history with the records it delivered.
    let (_, runs, _) =
        crate::common::output(pipectl(dir.path()).args(["runs", "--format", "json"]));
    let runs: serde_json::Value = serde_json::from_str(&runs).unwrap();
    assert_eq!(runs[0]["status"], "succeeded", "{runs}");
    assert_eq!(
        crate::common::step_where(&runs[0], "name", "delivered")["rows"],
        301
    );
    rt.block_on(async { js.delete_stream(&stream).await.unwrap() });
}

#[test]
fn unpublished_records_are_not_acknowledged_and_come_back_after_a_kill() {
    let Some((rt, js, stream, subject)) = fresh_jetstream("PIPECTL_T2_") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let spec = |interval: u32| {
        nats_spec(
            &stream,
            &subject,
            &format!("    prefix: \"raw/\"\n    interval_secs: {interval}\n"),
        )
    };
    std::fs::write(dir.path().join("pipeline.yaml"), spec(600)).unwrap();
    publish(
        &rt,
        &js,
        &format!("{subject}.x"),
        (1..=50).map(|n| format!(r#"{{"n":{n}}}"#)).collect(),
    );
    let mut child = start(dir.path());
    // The records reach the buffer, which waits for its 600 s interval.
    wait_until(Duration::from_secs(20), "the consumer to pull", || {
        rt.block_on(async {
            let s = js.get_stream(&stream).await.unwrap();
            let c: Option<jetstream::consumer::PullConsumer> =
                s.get_consumer("pipectl-test").await.ok();
            match c {
                Some(mut c) => c.info().await.unwrap().num_ack_pending == 50,
                None => false,
            }
        })
    });
    child.kill().unwrap();
    let _ = child.wait();
    let lake = dir.path().join("lake");
    assert!(
        lines_under(&lake, ".jsonl").is_empty(),
        "nothing was published"
    );
    assert_eq!(
        ack_floor(&rt, &js, &stream, "pipectl-test"),
        0,
        "nothing was acknowledged"
    );

    std::fs::write(dir.path().join("pipeline.yaml"), spec(1)).unwrap();
    let child = start(dir.path());
    wait_until(Duration::from_secs(30), "the redelivered records", || {
        lines_under(&lake, ".jsonl").len() >= 50
    });
    signal(&child, "-INT");
    let (code, _, stderr) = finish(child);
    assert_eq!(code, 0, "{stderr}");
    let seen = numbers(&lines_under(&lake, ".jsonl"));
    assert_eq!(seen.len(), 50);
    assert!(seen.values().all(|c| *c == 1));
    // Without a timestamp in the prefix, Firehose's `yyyy/MM/dd/HH/` is appended.
    let hour = chrono::Utc::now().format("%Y/%m/%d").to_string();
    assert!(
        files_under(&lake)
            .iter()
            .any(|f| f.starts_with(&format!("raw/{hour}/"))),
        "{:?}",
        files_under(&lake)
    );
    assert_eq!(ack_floor(&rt, &js, &stream, "pipectl-test"), 50);
    rt.block_on(async { js.delete_stream(&stream).await.unwrap() });
}

#[test]
fn a_generator_streams_into_gzip_json_lines_and_ends_with_its_count() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pipeline.yaml"),
        r#"version: 1
name: kdg
connections:
  lake: {url: "file://lake"}
sources:
  rentals:
    type: generator
    template: '{"n": {{random.number({"min":1,"max":9})}}, "eventType": "{{random.arrayElement(["rent","buy"])}}"}'
    count: 2000
    rate_per_sec: 4000
sinks:
  out:
    type: firehose
    inputs: [rentals]
    connection: lake
    prefix: "kdg/!{partitionKeyFromQuery:type}/"
    error_output_prefix: "errors/!{firehose:error-output-type}/"
    partition_keys: {type: .eventType}
    interval_secs: 60
    format: {type: jsonl, compression: gzip}
"#,
    )
    .unwrap();
    let (out, stdout, stderr) =
        crate::common::output(pipectl(dir.path()).args(["run", "pipeline.yaml"]));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let lake = dir.path().join("lake");
    let lines = lines_under(&lake, ".jsonl.gz");
    assert_eq!(lines.len(), 2000);
    for (file, line) in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let t = v["eventType"].as_str().unwrap();
        assert!(file.starts_with(&format!("kdg/{t}/kdg-out-")), "{file}");
    }
}

/// Exactly once from JetStream: the pipeline is killed (SIGKILL) at 20 random moments while a
/// producer publishes a numbered stream, restarted each time, then drained; every number is in
/// the lake exactly once.
#[test]
fn kill_9_at_random_moments_leaves_every_record_in_the_lake_exactly_once() {
    let Some((rt, js, stream, subject)) = fresh_jetstream("PIPECTL_SOAK_") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Small buffers, three partitions and errors: many flushes, so kills land in every phase.
    write_nats_pipeline(
        dir.path(),
        &stream,
        &subject,
        "    prefix: \"soak/!{partitionKeyFromQuery:kind}/!{firehose:random-string}/\"\n    error_output_prefix: \"errors/!{firehose:error-output-type}/\"\n    partition_keys: {kind: .kind}\n    max_bytes: 3000\n    interval_secs: 0.2\n",
    );
    const TOTAL: u64 = 30_000;
    // About 2,500 records a second: the kills spread over the whole stream.
    let producer = spawn_numbered_producer(subject.clone(), TOTAL, 20, |n| {
        if n % 1000 == 0 {
            format!("broken {n}")
        } else {
            format!(r#"{{"n":{n},"kind":"k{}"}}"#, n % 3)
        }
    });
    let mut random = Xorshift::from_clock("soak");
    let (mut skipped, mut rebuilt) = (0, 0);
    for _ in 0..20 {
        let stderr = run_then_kill_9(dir.path(), 150 + random.next() % 600);
        skipped += stderr.matches("skipping records already published").count();
        rebuilt += stderr.matches("rebuilding an object").count();
    }
    // Which crash windows the kills hit: after publishing (skipped on restart) or before (rebuilt).
    eprintln!(
        "restarts skipped {skipped} published objects and rebuilt {rebuilt} unpublished ones"
    );
    producer.join().unwrap();
    let lake = dir.path().join("lake");
    let child = start(dir.path());
    let expected_errors = (TOTAL / 1000) as usize;
    wait_until(Duration::from_secs(60), "every record in the lake", || {
        lines_under(&lake.join("soak"), ".jsonl").len() >= (TOTAL as usize - expected_errors)
            && lines_under(&lake.join("errors"), ".jsonl").len() >= expected_errors
    });
    // Past start-up (a signal before the handler is installed would just kill it).
    std::thread::sleep(Duration::from_secs(1));
    signal(&child, "-TERM");
    let (code, _, stderr) = finish(child);
    assert_eq!(code, 0, "{stderr}");
    let lines = lines_under(&lake.join("soak"), ".jsonl");
    let seen = numbers(&lines);
    let dupes: Vec<_> = seen.iter().filter(|(_, c)| **c != 1).collect();
    assert!(dupes.is_empty(), "duplicated: {dupes:?}");
    assert_eq!(
        seen.len() as u64,
        TOTAL - expected_errors as u64,
        "missing records"
    );
    for (file, line) in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            file.starts_with(&format!("{}/", v["kind"].as_str().unwrap())),
            "{file}"
        );
    }
    let errors = lines_under(&lake.join("errors"), ".jsonl");
    assert_eq!(errors.len(), expected_errors, "{errors:?}");
    assert_eq!(ack_floor(&rt, &js, &stream, "pipectl-test"), TOTAL);
    rt.block_on(async { js.delete_stream(&stream).await.unwrap() });
}

/// Publishes the records `record(1..=total)` to `<subject>.n` on JetStream from a thread,
/// pausing `pause_ms` after every 50 so that a test's kills spread over the stream; joins with
/// every publish acknowledged.
pub(crate) fn spawn_numbered_producer(
    subject: String,
    total: u64,
    pause_ms: u64,
    record: fn(u64) -> String,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        rt().block_on(async {
            let js = jetstream::new(async_nats::connect(nats_url()).await.unwrap());
            let mut acks = std::collections::VecDeque::new();
            for n in 1..=total {
                acks.push_back(
                    js.publish(format!("{subject}.n"), record(n).into())
                        .await
                        .unwrap(),
                );
                if acks.len() > 256 {
                    acks.pop_front().unwrap().await.unwrap();
                }
                if n % 50 == 0 {
                    tokio::time::sleep(Duration::from_millis(pause_ms)).await;
                }
            }
            for a in acks {
                a.await.unwrap();
            }
        });
    })
}

/// Starts `pipectl run pipeline.yaml` in `dir` (stream logs at info), kills it with SIGKILL
/// after `after_ms`, and returns what it printed on stderr.
pub(crate) fn run_then_kill_9(dir: &Path, after_ms: u64) -> String {
    let mut child = pipectl(dir)
        .args(["run", "pipeline.yaml"])
        .env("RUST_LOG", "pipectl_stream=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(after_ms));
    child.kill().unwrap();
    finish(child).2
}

/// A free loopback port (bound, then released).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 request on a fresh connection: the status, the headers and the body (status 0
/// when no answer came).
pub(crate) fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    try_http(port, method, path, headers, body).unwrap_or_default()
}

/// [`http`], or `None` when the connection failed or closed before an answer came.
fn try_http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<(u16, String, String)> {
    use std::io::Write as _;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    // A server refusing the body (413) may close before reading it: its answer still counts.
    let _ = stream.write_all(body);
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok())?;
    Some((status, head.to_owned(), body.to_owned()))
}

pub(crate) fn wait_for_port(port: u16) {
    wait_until(Duration::from_secs(20), "the endpoint to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

pub(crate) fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn direct_put_checks_the_token_and_size_and_flushes_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("pipeline.yaml"),
        format!(
            r#"version: 1
name: direct-put
connections:
  lake: {{url: "file://lake"}}
sources:
  put:
    type: http
    listen: "127.0.0.1:{port}"
    token: "${{env:PIPECTL_TEST_PUT_TOKEN}}"
    max_body_bytes: 2000
sinks:
  out:
    type: firehose
    inputs: [put]
    connection: lake
    prefix: "http/"
    interval_secs: 600
    format: {{type: jsonl}}
"#
        ),
    )
    .unwrap();
    let child = pipectl(dir.path())
        .args(["run", "pipeline.yaml"])
        .env("PIPECTL_TEST_PUT_TOKEN", "s3cret-token")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_port(port);
    let auth = ("Authorization", "Bearer s3cret-token");
    let single = ("X-Amz-Target", "Firehose_20150804.PutRecord");
    let batch = ("X-Amz-Target", "Firehose_20150804.PutRecordBatch");
    let put_one = format!(
        r#"{{"DeliveryStreamName":"x","Record":{{"Data":"{}"}}}}"#,
        b64(r#"{"n":1}"#)
    );
    assert_eq!(
        http(port, "POST", "/", &[single], put_one.as_bytes()).0,
        401
    );
    assert_eq!(
        http(
            port,
            "POST",
            "/",
            &[single, ("Authorization", "Bearer wrong")],
            put_one.as_bytes()
        )
        .0,
        401
    );
    let big = vec![b'x'; 3000];
    assert_eq!(http(port, "POST", "/records", &[auth], &big).0, 413);
    let (status, _, body) = http(port, "POST", "/", &[single, auth], put_one.as_bytes());
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("RecordId"), "{body}");
    let put_batch = format!(
        r#"{{"DeliveryStreamName":"x","Records":[{{"Data":"{}"}},{{"Data":"{}"}},{{"Data":"{}"}}]}}"#,
        b64(r#"{"n":2}"#),
        b64(r#"{"n":3}"#),
        b64(r#"{"n":4}"#)
    );
    let (status, _, body) = http(port, "POST", "/", &[batch, auth], put_batch.as_bytes());
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""FailedPutCount":0"#), "{body}");
    assert_eq!(
        http(
            port,
            "POST",
            "/records/batch",
            &[auth],
            b"{\"n\":5}\n{\"n\":6}\n"
        )
        .0,
        200
    );
    assert_eq!(http(port, "PUT", "/records", &[auth], b"not json").0, 200);
    assert_eq!(http(port, "GET", "/nothing", &[auth], b"").0, 404);

    // Nothing is flushed before the 600 s interval; SIGTERM flushes, publishes, exits 0.
    let lake = dir.path().join("lake");
    assert!(lines_under(&lake, ".jsonl").is_empty());
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "-TERM");
    let (code, _, stderr) = finish(child);
    assert_eq!(code, 0, "{stderr}");
    // Without an error prefix, failed records go under the prefix by error type.
    let (errors, delivered): (Vec<_>, Vec<_>) = lines_under(&lake.join("http"), ".jsonl")
        .into_iter()
        .partition(|(f, _)| f.starts_with("processing-failed/"));
    let seen = numbers(&delivered);
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6]
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
}

/// A streaming pipeline `name`: a Direct PUT source `put` on `port` into firehose sink `out` on
/// the `lake` folder; `settings` are the sink's other YAML lines, indented by 4.
pub(crate) fn direct_put_pipeline(name: &str, port: u16, settings: &str) -> String {
    format!(
        r#"version: 1
name: {name}
connections:
  lake: {{url: "file://lake"}}
sources:
  put: {{type: http, listen: "127.0.0.1:{port}"}}
sinks:
  out:
    type: firehose
    inputs: [put]
    connection: lake
{settings}"#
    )
}

/// A fresh folder holding [`direct_put_pipeline`] `name` (with the sink's `settings`) as
/// `pipeline.yaml`, and the free port its source listens on.
pub(crate) fn direct_put_dir(name: &str, settings: &str) -> (tempfile::TempDir, u16) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    write_direct_put_pipeline(dir.path(), name, port, settings);
    (dir, port)
}

/// Writes [`direct_put_pipeline`] as `pipeline.yaml` in `dir`.
pub(crate) fn write_direct_put_pipeline(dir: &Path, name: &str, port: u16, settings: &str) {
    std::fs::write(
        dir.join("pipeline.yaml"),
        direct_put_pipeline(name, port, settings),
    )
    .unwrap();
}

fn direct_put_spec(port: u16, sink_extra: &str) -> String {
    direct_put_pipeline(
        "direct-put",
        port,
        &format!("    format: {{type: jsonl}}\n{sink_extra}"),
    )
}

/// A `PutRecordBatch` body of records `{"n": ..., "kind": ...}` for the numbers given.
pub(crate) fn put_record_batch(numbers: std::ops::RangeInclusive<u64>) -> String {
    let records: Vec<String> = numbers
        .map(|n| {
            format!(
                r#"{{"Data":"{}"}}"#,
                b64(&format!(r#"{{"n":{n},"kind":"k{}"}}"#, n % 3))
            )
        })
        .collect();
    format!(
        r#"{{"DeliveryStreamName":"x","Records":[{}]}}"#,
        records.join(",")
    )
}

/// Sends a `PutRecordBatch` until it is answered 200, retrying 429s, 5xx answers and broken
/// connections as a Firehose producer does; returns whether some attempt was left without an
/// answer (then the batch may be stored twice).
pub(crate) fn put_until_stored(port: u16, body: &str) -> bool {
    let target = ("X-Amz-Target", "Firehose_20150804.PutRecordBatch");
    let mut unanswered = false;
    // A pipeline that stopped for good never answers: fail, rather than retry for ever.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            Instant::now() < deadline,
            "no 200 from the Direct PUT endpoint on port {port} within 120 s"
        );
        match try_http(port, "POST", "/", &[target], body.as_bytes()) {
            Some((200, _, answer)) => {
                assert!(answer.contains(r#""FailedPutCount":0"#), "{answer}");
                return unanswered;
            }
            Some((429 | 500..=599, _, _)) => {}
            Some((status, _, answer)) => panic!("answered {status}: {answer}"),
            // Refused (nothing sent) or cut off after sending (maybe stored).
            None => unanswered = true,
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A Direct PUT 200 means stored: a producer sends numbered records, retrying until each batch
/// is answered 200, while the pipeline is killed (SIGKILL) and restarted; at the end every
/// number is in the lake, and only batches that lost an answer may be there twice.
#[test]
fn direct_put_answered_200_survives_kill_9_and_lands_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Small buffers in three partitions: objects are published all the time, so kills land
    // before, during and after publishing.
    std::fs::write(
        dir.path().join("pipeline.yaml"),
        direct_put_spec(
            port,
            "    prefix: \"put/!{partitionKeyFromQuery:kind}/\"\n    error_output_prefix: \"errors/!{firehose:error-output-type}/\"\n    partition_keys: {kind: .kind}\n    max_bytes: 4000\n    interval_secs: 0.3\n",
        ),
    )
    .unwrap();
    const TOTAL: u64 = 20_000;
    const BATCH: u64 = 100;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut maybe_twice = Vec::new();
            for first in (1..=TOTAL).step_by(BATCH as usize) {
                let numbers = first..=first + BATCH - 1;
                if put_until_stored(port, &put_record_batch(numbers.clone())) {
                    maybe_twice.push(numbers);
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            maybe_twice
        })
    };
    let mut random = Xorshift::from_clock("direct put kill");
    let lake = dir.path().join("lake");
    let mut kills = 0;
    while !done.load(std::sync::atomic::Ordering::SeqCst) || kills < 3 {
        let mut child = start(dir.path());
        wait_for_port(port);
        std::thread::sleep(Duration::from_millis(300 + random.next() % 900));
        child.kill().unwrap();
        let _ = child.wait();
        kills += 1;
    }
    let maybe_twice = producer.join().unwrap();
    eprintln!(
        "{kills} kills; {} batches lost an answer",
        maybe_twice.len()
    );
    assert!(kills >= 3);
    let child = start(dir.path());
    // Listening means started: a SIGTERM before that would meet no handler.
    wait_for_port(port);
    wait_until(Duration::from_secs(60), "every record in the lake", || {
        numbers(&lines_under(&lake.join("put"), ".jsonl")).len() as u64 >= TOTAL
    });
    signal(&child, "-TERM");
    let (code, _, stderr) = finish(child);
    assert_eq!(code, 0, "{stderr}");
    let seen = numbers(&lines_under(&lake.join("put"), ".jsonl"));
    let missing: Vec<u64> = (1..=TOTAL).filter(|n| !seen.contains_key(n)).collect();
    assert!(
        missing.is_empty(),
        "lost {} records: {missing:?}",
        missing.len()
    );
    let unexplained: Vec<(&u64, &usize)> = seen
        .iter()
        .filter(|(n, c)| **c > 2 || (**c == 2 && !maybe_twice.iter().any(|r| r.contains(n))))
        .collect();
    assert!(unexplained.is_empty(), "duplicated: {unexplained:?}");
    assert_eq!(seen.len() as u64, TOTAL);
    // Everything is published: the log keeps no record, only its position.
    let log = dir.path().join(".pipectl-state/wal/direct-put/put");
    let segments: Vec<u64> = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .collect();
    assert_eq!(segments, vec![0], "{}", log.display());
}

/// A sink that fails (the store refuses the object's name) does not lose the records it was
/// given: they wait in the write-ahead log, and the next run, with the prefix fixed, delivers
/// them.
#[test]
fn direct_put_records_survive_a_failing_sink_for_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let spec = |prefix: &str| {
        direct_put_spec(
            port,
            &format!("    prefix: \"{prefix}/\"\n    max_records: 3\n    interval_secs: 600\n"),
        )
    };
    // One folder name longer than the file system allows (255 bytes).
    let too_long = "p".repeat(300);
    std::fs::write(dir.path().join("pipeline.yaml"), spec(&too_long)).unwrap();
    let child = start(dir.path());
    wait_for_port(port);
    assert!(!put_until_stored(port, &put_record_batch(1..=5)));
    let (code, stdout, stderr) = finish(child);
    assert_ne!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("failed"), "{stdout}");
    let lake = dir.path().join("lake");
    assert!(lines_under(&lake, ".jsonl").is_empty());

    std::fs::write(dir.path().join("pipeline.yaml"), spec("fixed")).unwrap();
    let child = start(dir.path());
    wait_for_port(port);
    wait_until(Duration::from_secs(20), "the first object", || {
        !lines_under(&lake.join("fixed"), ".jsonl").is_empty()
    });
    signal(&child, "-TERM");
    let (code, _, stderr) = finish(child);
    assert_eq!(code, 0, "{stderr}");
    let seen = numbers(&lines_under(&lake.join("fixed"), ".jsonl"));
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        (1..=5).map(|n| (n, 1)).collect::<Vec<_>>()
    );
}

/// Requests to a Direct PUT pipeline whose S3 store never answers a write, until the first 429:
/// the statuses and the last answer's head and body.
fn put_until_429(s3_port: u16, log_bytes: u64, record_bytes: usize) -> (Vec<u16>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("pipeline.yaml"),
        format!(
            r#"version: 1
name: slow-sink
connections:
  lake:
    url: "s3://bucket/lake"
    endpoint: "http://127.0.0.1:{s3_port}"
    allow_http: true
    region: us-east-1
    access_key_id: test
    secret_access_key: "${{env:PIPECTL_TEST_SECRET}}"
sources:
  put: {{type: http, listen: "127.0.0.1:{port}", max_buffered_bytes: {log_bytes}}}
sinks:
  out:
    type: firehose
    inputs: [put]
    connection: lake
    prefix: "http/"
    max_bytes: 10
    interval_secs: 60
    format: {{type: jsonl}}
"#
        ),
    )
    .unwrap();
    let mut child = pipectl(dir.path())
        .args(["run", "pipeline.yaml"])
        .env("PIPECTL_TEST_SECRET", "test")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_port(port);
    let pad = "x".repeat(record_bytes);
    let mut answers = Vec::new();
    let mut last = (String::new(), String::new());
    for n in 0..200 {
        let (status, head, body) = http(
            port,
            "POST",
            "/records",
            &[],
            format!(r#"{{"n":{n},"pad":"{pad}"}}"#).as_bytes(),
        );
        answers.push(status);
        last = (head, body);
        if status != 200 {
            break;
        }
    }
    child.kill().unwrap();
    let _ = child.wait();
    (answers, last.0, last.1)
}

#[test]
fn direct_put_answers_429_when_the_write_ahead_log_is_full() {
    // An S3 endpoint that answers reads with 404 (no record of objects in flight yet) and never
    // answers a write: the sink's first write hangs, and records pile up in the log on disk.
    let stuck = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let s3_port = stuck.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in stuck.incoming().flatten() {
            std::thread::spawn(move || answer_reads_hold_writes(stream));
        }
    });
    // 64 KiB of 8 KB records: the log is full after 8 requests.
    let (answers, head, body) = put_until_429(s3_port, 65536, 8000);
    assert_eq!(answers.last(), Some(&429), "{answers:?} {body}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );
    assert!(body.contains("write-ahead log is full"), "{body}");
    assert!((7..=9).contains(&answers.len()), "{answers:?}");
}

/// Serves one connection of a fake S3 endpoint: a GET is answered 404, anything else is read
/// and never answered.
fn answer_reads_hold_writes(mut stream: std::net::TcpStream) {
    use std::io::{BufRead as _, Write as _};
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            head.push(line);
        }
        if !head.first().is_some_and(|l| l.starts_with("GET ")) {
            // Hold the connection open without an answer.
            std::thread::sleep(Duration::from_secs(3600));
            return;
        }
        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    }
}

fn mqtt_publish(topic: &str, lines: &[String]) {
    use std::io::Write as _;
    let mut child = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            "1883",
            "-q",
            "1",
            "-t",
            topic,
            "-l",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .expect("mosquitto_pub (mosquitto-clients) runs");
    let mut stdin = child.stdin.take().unwrap();
    for l in lines {
        writeln!(stdin, "{l}").unwrap();
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

fn mqtt_available() -> bool {
    match std::net::TcpStream::connect("127.0.0.1:1883") {
        Ok(_) => true,
        Err(e) if !services_required() => {
            crate::common::skip(&format!(
                "Mosquitto is not reachable on 127.0.0.1:1883 ({e})"
            ));
            false
        }
        Err(e) => panic!("Mosquitto is not reachable on 127.0.0.1:1883: {e}"),
    }
}

#[test]
fn mqtt_is_at_least_once_a_killed_pipeline_gets_its_unpublished_messages_again() {
    if !mqtt_available() {
        return;
    }
    let id = unique("pipectl-mqtt-");
    let topic = format!("pipectl-test/{id}/rentals");
    let dir = tempfile::tempdir().unwrap();
    let spec = |interval: u32| {
        format!(
            r#"version: 1
name: mqtt-stream
connections:
  broker: {{url: "mqtt://127.0.0.1:1883"}}
  lake: {{url: "file://lake"}}
sources:
  events: {{type: mqtt, connection: broker, topic: "pipectl-test/{id}/#", client_id: "{id}"}}
sinks:
  out:
    type: firehose
    inputs: [events]
    connection: lake
    prefix: "mqtt/"
    interval_secs: {interval}
    format: {{type: jsonl}}
"#
        )
    };
    std::fs::write(dir.path().join("pipeline.yaml"), spec(600)).unwrap();
    let lake = dir.path().join("lake");
    // The persistent session exists (with its subscription) before anything is published, as
    // after a first start; the broker queues messages for it until pipectl resumes it.
    let status = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            "1883",
            "-c",
            "-q",
            "1",
            "-i",
            &id,
            "-t",
            &format!("pipectl-test/{id}/#"),
            "-E",
        ])
        .status()
        .expect("mosquitto_sub (mosquitto-clients) runs");
    assert!(status.success());
    // At debug level the sink logs each batch it takes (`records received records=N`), so the
    // test can see the last records reach the buffer before it kills the process.
    let mut child = pipectl(dir.path())
        .args(["run", "pipeline.yaml"])
        .env("RUST_LOG", "pipectl_stream::firehose=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let received = records_received(child.stderr.take().unwrap());
    // More than the broker's in-flight window (20): the sink flushes whenever the window is
    // full instead of waiting 600 s, since no more can arrive until those are acknowledged.
    // How the records fall into batches varies, so up to 19 may be left in the buffer.
    mqtt_publish(
        &topic,
        &(1..=100)
            .map(|n| format!(r#"{{"n":{n}}}"#))
            .collect::<Vec<_>>(),
    );
    let mut last = 0;
    wait_until(
        Duration::from_secs(30),
        "81 of 100 records, then quiet",
        || {
            std::thread::sleep(Duration::from_millis(900));
            let now = lines_under(&lake, ".jsonl").len();
            std::mem::replace(&mut last, now) == now && now >= 81
        },
    );
    let left = 100 - last;
    // Topped up to 19 waiting in the buffer, fewer than the window, unacknowledged, when the
    // process dies.
    let total = 100 + (19 - left);
    mqtt_publish(
        &topic,
        &(101..=total)
            .map(|n| format!(r#"{{"n":{n}}}"#))
            .collect::<Vec<_>>(),
    );
    wait_until(Duration::from_secs(30), "all records in the sink", || {
        received.load(std::sync::atomic::Ordering::SeqCst) >= total as u64
    });
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(
        numbers(&lines_under(&lake, ".jsonl")).len(),
        last,
        "the last 19 reached the sink but were not published"
    );
    std::fs::write(dir.path().join("pipeline.yaml"), spec(1)).unwrap();
    let child = start(dir.path());
    wait_until(
        Duration::from_secs(30),
        "the 19 redelivered records",
        || numbers(&lines_under(&lake, ".jsonl")).len() >= total,
    );
    std::thread::sleep(Duration::from_millis(500));
    signal(&child, "-TERM");
    let (code, _, stderr) = finish(child);
    assert_eq!(code, 0, "{stderr}");
    let seen = numbers(&lines_under(&lake, ".jsonl"));
    assert_eq!(seen.len(), total);
    // Nothing was published twice in this run; MQTT could duplicate only after a crash between
    // publishing and acknowledging.
    assert!(seen.values().all(|c| *c == 1), "{seen:?}");
    let objects: std::collections::BTreeSet<String> = lines_under(&lake, ".jsonl")
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    // Window flushes: the first 100 records did not wait for the 600 s interval in one object,
    // and the run said so when it started.
    assert!(objects.len() >= 3, "window flushes: {objects:?}");
    assert!(
        stderr.contains("source `events`: the broker sends at most 20 unacknowledged messages (`broker_inflight`), so sink `out` flushes an object every 20 records"),
        "{stderr}"
    );
    assert!(
        objects.iter().all(|f| f.contains("mqtt-stream-out-")),
        "{objects:?}"
    );
}

#[test]
fn generate_publishes_templates_to_jetstream_and_to_a_direct_put_endpoint() {
    let Some((rt, js, stream, subject)) = fresh_jetstream("PIPECTL_GEN_") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let template = r#"{"timestamp": "{{date.now}}", "eventType": "{{random.weightedArrayElement({"weights":[0.3,0.1,0.6],"data":["rent","buy","trailer"]})}}", "film_id": {{random.number({"min":1,"max":1000})}}, "state": "{{address.state}}"}"#;
    let (out, stdout, stderr) = crate::common::output(pipectl(dir.path()).args([
        "generate",
        "--template",
        template,
        "--count",
        "1500",
        "--rate",
        "5000",
        "--nats",
        &nats_url(),
        "--subject",
        &format!("{subject}.kdg"),
    ]));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("sent 1500 records"), "{stdout}");
    let messages = rt.block_on(async {
        js.get_stream(&stream)
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .state
            .messages
    });
    assert_eq!(messages, 1500);

    // Into a running Direct PUT pipeline, with its token.
    let port = free_port();
    std::fs::write(
        dir.path().join("pipeline.yaml"),
        format!(
            r#"version: 1
name: kdg-put
connections:
  lake: {{url: "file://lake"}}
sources:
  put: {{type: http, listen: "127.0.0.1:{port}", token: "${{env:PIPECTL_TEST_PUT_TOKEN}}"}}
sinks:
  out: {{type: firehose, inputs: [put], connection: lake, prefix: "kdg/", interval_secs: 1, format: {{type: jsonl}}}}
"#
        ),
    )
    .unwrap();
    let child = pipectl(dir.path())
        .args(["run", "pipeline.yaml"])
        .env("PIPECTL_TEST_PUT_TOKEN", "tok-123")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_port(port);
    let (out, stdout, stderr) = crate::common::output(
        pipectl(dir.path())
            .args([
                "generate",
                "--template",
                template,
                "--count",
                "1200",
                "--http",
                &format!("http://127.0.0.1:{port}"),
                "--token-env",
                "PIPECTL_TEST_PUT_TOKEN",
                "--batch",
                "100",
            ])
            .env("PIPECTL_TEST_PUT_TOKEN", "tok-123"),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let lake = dir.path().join("lake");
    wait_until(Duration::from_secs(20), "1200 records", || {
        lines_under(&lake, ".jsonl").len() >= 1200
    });
    signal(&child, "-TERM");
    assert_eq!(finish(child).0, 0);
    let lines = lines_under(&lake, ".jsonl");
    assert_eq!(lines.len(), 1200);
    for (_, line) in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            ["rent", "buy", "trailer"].contains(&v["eventType"].as_str().unwrap()),
            "{line}"
        );
        assert!(
            (1..=1000).contains(&v["film_id"].as_u64().unwrap()),
            "{line}"
        );
    }
    rt.block_on(async { js.delete_stream(&stream).await.unwrap() });
}

pub(crate) fn parquet_rows(path: &Path) -> Vec<serde_json::Value> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let file = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let mut writer = arrow::json::ArrayWriter::new(Vec::new());
        writer.write(&batch).unwrap();
        writer.finish().unwrap();
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&writer.into_inner()).unwrap();
        out.extend(rows);
    }
    out
}

#[test]
fn parquet_output_uses_the_declared_columns_and_sends_misfits_to_the_error_prefix() {
    let (dir, port) = direct_put_dir(
        "rentals-parquet",
        r#"    prefix: "parquet/!{timestamp:yyyy}/"
    error_output_prefix: "errors/!{firehose:error-output-type}/"
    interval_secs: 600
    format: {type: parquet, compression: zstd}
    columns:
      - {name: film_id, type: int64}
      - {name: eventType, type: string}
      - {name: price, type: "decimal(6,2)"}
"#,
    );
    let child = start(dir.path());
    wait_for_port(port);
    let body = "{\"film_id\": 1, \"eventType\": \"rent\", \"price\": 2.99}\n\
                {\"film_id\": \"not a number\", \"eventType\": \"buy\"}\n\
                {\"film_id\": 3, \"eventType\": \"trailer\", \"extra\": true}\n";
    assert_eq!(
        http(port, "POST", "/records/batch", &[], body.as_bytes()).0,
        200
    );
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "-TERM");
    let (code, _, stderr) = finish(child);
    assert_eq!(code, 0, "{stderr}");
    let lake = dir.path().join("lake");
    let files = files_under(&lake);
    let data: Vec<&String> = files.iter().filter(|f| f.ends_with(".parquet")).collect();
    assert_eq!(data.len(), 1, "{files:?}");
    let year = chrono::Utc::now().format("%Y").to_string();
    assert!(
        data[0].starts_with(&format!("parquet/{year}/rentals-parquet-out-")),
        "{}",
        data[0]
    );
    let rows = parquet_rows(&lake.join(data[0]));
    let schema = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(lake.join(data[0])).unwrap(),
    )
    .unwrap()
    .schema()
    .clone();
    assert_eq!(
        schema.field_with_name("price").unwrap().data_type(),
        &arrow::datatypes::DataType::Decimal128(6, 2)
    );
    assert_eq!(
        rows,
        vec![
            serde_json::json!({"film_id": 1, "eventType": "rent", "price": 2.99}),
            serde_json::json!({"film_id": 3, "eventType": "trailer"}),
        ]
    );
    let envelope = only_error_envelope(&lake, "format-conversion-failed", "");
    assert_eq!(envelope["errorCode"], "DataFormatConversion.InvalidSchema");
    let raw = raw_data(&envelope);
    assert!(String::from_utf8(raw).unwrap().contains("not a number"));
}

/// The crash window between saving the record of objects in flight and writing them: the
/// restart finds the object missing and rebuilds it from the redelivered records, named by
/// its sequence range. The record names a prefix the spec no longer has (as after fixing a
/// prefix the store refused): an object never written lands under the spec's prefix.
#[test]
fn an_object_recorded_in_flight_but_never_written_is_rebuilt_from_the_redelivered_records() {
    let Some((rt, js, stream, subject)) = fresh_jetstream("PIPECTL_T3_") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_nats_pipeline(
        dir.path(),
        &stream,
        &subject,
        "    prefix: \"raw/\"\n    interval_secs: 1\n",
    );
    publish(
        &rt,
        &js,
        &format!("{subject}.x"),
        (1..=10).map(|n| format!(r#"{{"n":{n}}}"#)).collect(),
    );
    let record_dir = dir
        .path()
        .join("lake/_pipectl/streams/rentals-stream/delivered");
    std::fs::create_dir_all(&record_dir).unwrap();
    let key = "rebuilt/rentals-stream-delivered-000000000002-000000000006.jsonl";
    std::fs::write(
        record_dir.join("pending.json"),
        format!(r#"{{"acked":1,"entries":[{{"key":"{key}","partition":"data","first":2,"last":6,"count":5}}]}}"#),
    )
    .unwrap();
    let child = start(dir.path());
    let lake = dir.path().join("lake");
    wait_until(Duration::from_secs(20), "the records", || {
        lines_under(&lake, ".jsonl").len() >= 9
    });
    std::thread::sleep(Duration::from_millis(500));
    signal(&child, "-TERM");
    assert_eq!(finish(child).0, 0);
    assert!(!lake.join(key).exists(), "the old prefix is not used");
    let rebuilt_key = files_under(&lake.join("raw"))
        .into_iter()
        .find(|f| f.ends_with("rentals-stream-delivered-000000000002-000000000006.jsonl"))
        .expect("the rebuilt object, named by its range, under the spec's prefix");
    let rebuilt: Vec<u64> = std::fs::read_to_string(lake.join("raw").join(rebuilt_key))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(rebuilt, vec![2, 3, 4, 5, 6]);
    // Record 1 was acknowledged before the "crash": it is not delivered again.
    let seen = numbers(&lines_under(&lake, ".jsonl"));
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (2..=10).collect::<Vec<_>>()
    );
    assert!(seen.values().all(|c| *c == 1));
    rt.block_on(async { js.delete_stream(&stream).await.unwrap() });
}

#[test]
fn event_time_partitions_in_the_sinks_time_zone_and_records_without_it_fail_partitioning() {
    let (dir, port) = direct_put_dir(
        "by-event-time",
        r#"    prefix: "events/!{eventTimestamp:'day='yyyy-MM-dd}/!{partitionKeyFromQuery:type}/"
    error_output_prefix: "errors/!{firehose:error-output-type}/"
    partition_keys: {type: .eventType}
    event_time: {field: .ts}
    time_zone: Asia/Tokyo
    interval_secs: 600
    format: {type: jsonl}
"#,
    );
    let child = start(dir.path());
    wait_for_port(port);
    // 2026-01-01T20:00Z is already January 2nd in Tokyo.
    let body = "{\"ts\": \"2026-01-01T20:00:00Z\", \"eventType\": \"rent\", \"n\": 1}\n\
                {\"ts\": \"2026-01-01T10:00:00Z\", \"eventType\": \"rent\", \"n\": 2}\n\
                {\"ts\": \"2026-01-01 21:00:00\", \"eventType\": \"buy\", \"n\": 3}\n\
                {\"eventType\": \"buy\", \"n\": 4}\n\
                {\"ts\": \"2026-01-01T10:00:00Z\", \"n\": 5}\n";
    assert_eq!(
        http(port, "POST", "/records/batch", &[], body.as_bytes()).0,
        200
    );
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "-TERM");
    assert_eq!(finish(child).0, 0);
    let lake = dir.path().join("lake");
    let mut placed: Vec<(String, u64)> = lines_under(&lake.join("events"), ".jsonl")
        .into_iter()
        .map(|(f, l)| {
            let dir = f.rsplit_once('/').unwrap().0.to_owned();
            (
                dir,
                serde_json::from_str::<serde_json::Value>(&l).unwrap()["n"]
                    .as_u64()
                    .unwrap(),
            )
        })
        .collect();
    placed.sort_by_key(|(_, n)| *n);
    assert_eq!(
        placed,
        vec![
            ("day=2026-01-02/rent".to_owned(), 1),
            ("day=2026-01-01/rent".to_owned(), 2),
            ("day=2026-01-02/buy".to_owned(), 3),
        ]
    );
    let errors = lines_under(&lake.join("errors"), ".jsonl");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .all(|(f, _)| f.starts_with("partitioning-failed/")),
        "{errors:?}"
    );
}

/// A streaming run killed after it published says in history what it published (objects and
/// rows), not "nothing was published"; the next run's recovery writes that.
#[test]
fn an_interrupted_streaming_run_says_what_it_had_published() {
    let Some((rt, js, stream, subject)) = fresh_jetstream("PIPECTL_T9_") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_nats_pipeline(
        dir.path(),
        &stream,
        &subject,
        "    prefix: \"rentals/\"\n    max_bytes: 2048\n    interval_secs: 0.3\n",
    );
    let payloads: Vec<String> = (1..=300)
        .map(|n| format!(r#"{{"n":{n},"eventType":"rent"}}"#))
        .collect();
    publish(&rt, &js, &format!("{subject}.rent"), payloads);
    let lake = dir.path().join("lake");
    let mut child = start(dir.path());
    wait_until(Duration::from_secs(30), "300 records in the lake", || {
        lines_under(&lake.join("rentals"), ".jsonl").len() >= 300
    });
    let objects = files_under(&lake.join("rentals")).len();
    // The save after the last publish is not awaited by anything the test can see.
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    let _ = child.wait();

    let child = start(dir.path());
    std::thread::sleep(Duration::from_secs(2));
    signal(&child, "-TERM");
    let (code, _, stderr) = finish(child);
    assert_eq!(code, 0, "{stderr}");
    let (out, stdout, stderr) =
        crate::common::output(pipectl(dir.path()).args(["runs", "--format", "json"]));
    assert!(out.status.success(), "{stderr}");
    let runs: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let interrupted: Vec<&serde_json::Value> = runs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "interrupted")
        .collect();
    assert_eq!(interrupted.len(), 1, "{stdout}");
    let run = interrupted[0];
    let error = run["error"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "the {objects} objects (300 rows) it had published stay published"
        )),
        "{error}"
    );
    let sink = crate::common::step_where(run, "kind", "sink");
    assert_eq!(sink["rows"], 300, "{run}");
    assert_eq!(sink["objects"], objects as u64, "{run}");
    rt.block_on(async { js.delete_stream(&stream).await.unwrap() });
}

/// A second process started on a durable that another process reads refuses to start (two
/// readers would split the stream); the first keeps delivering.
#[test]
fn a_second_reader_of_one_jetstream_durable_refuses_to_start() {
    let Some((rt, js, stream, subject)) = fresh_jetstream("PIPECTL_T10_") else {
        return;
    };
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let spec = nats_spec(
        &stream,
        &subject,
        "    prefix: \"rentals/\"\n    max_bytes: 2048\n    interval_secs: 0.3\n",
    );
    for dir in [&first, &second] {
        std::fs::write(dir.path().join("pipeline.yaml"), &spec).unwrap();
    }
    let batch = |range: std::ops::RangeInclusive<u64>| -> Vec<String> {
        range
            .map(|n| format!(r#"{{"n":{n},"eventType":"rent"}}"#))
            .collect()
    };
    publish(&rt, &js, &format!("{subject}.rent"), batch(1..=100));
    let lake = first.path().join("lake");
    let child = start(first.path());
    wait_until(Duration::from_secs(30), "100 records in the lake", || {
        lines_under(&lake.join("rentals"), ".jsonl").len() >= 100
    });

    let (out, stdout, stderr) =
        crate::common::output(pipectl(second.path()).args(["run", "pipeline.yaml"]));
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("JetStream consumer `pipectl-test` is being read by another process"),
        "{stdout}"
    );
    assert!(
        stdout.contains("give this source its own `durable:`"),
        "{stdout}"
    );

    publish(&rt, &js, &format!("{subject}.rent"), batch(101..=200));
    wait_until(
        Duration::from_secs(30),
        "200 records in the first lake",
        || lines_under(&lake.join("rentals"), ".jsonl").len() >= 200,
    );
    signal(&child, "-TERM");
    let (code, _, stderr) = finish(child);
    assert_eq!(code, 0, "{stderr}");
    let seen = numbers(&lines_under(&lake.join("rentals"), ".jsonl"));
    assert_eq!(seen.len(), 200);
    assert!(seen.values().all(|c| *c == 1), "duplicates: {seen:?}");
    assert!(files_under(&second.path().join("lake")).is_empty());
    rt.block_on(async { js.delete_stream(&stream).await.unwrap() });
}
