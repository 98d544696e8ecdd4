//! The delivery protocol on an in-memory store: routing into partition objects, acknowledging
//! only what is published, and rebuilding or skipping the objects of a stopped process.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::TryStreamExt as _;
use futures::future::BoxFuture;
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};

use super::*;

const PIPELINE: &str = "shop";
const SINK: &str = "orders";

/// A sink partitioning by `.kind` into `lake/kdg/<kind>/`, flushing a buffer at
/// `max_records` records (and never on time during a test).
fn step(store: Arc<InMemory>, max_records: u64) -> FirehoseStep {
    let spec: FirehoseSink = serde_json::from_value(serde_json::json!({
        "inputs": ["events"], "connection": "lake", "format": {"type": "jsonl"},
        "prefix": "kdg/!{partitionKeyFromQuery:kind}/",
        "error_output_prefix": "errors/!{firehose:error-output-type}/",
        "partition_keys": {"kind": ".kind"},
        "max_records": max_records,
        "interval_secs": 3600,
    }))
    .unwrap();
    sink_step(store, &spec)
}

/// The step of sink `spec` of the test pipeline, writing to `store`.
fn sink_step(store: Arc<InMemory>, spec: &FirehoseSink) -> FirehoseStep {
    FirehoseStep::new(
        PIPELINE,
        SINK,
        "run-1",
        spec,
        handle(store),
        Arc::new(StepMetrics::default()),
    )
    .unwrap()
}

fn handle(store: Arc<InMemory>) -> StoreHandle {
    StoreHandle {
        store,
        prefix: StorePath::from("lake"),
        display: "memory://lake".to_owned(),
        local_root: None,
    }
}

/// A sink's state before its first batch, for a source replaying with the same sequence
/// numbers (deterministic object keys), optionally keeping a record of objects in flight.
fn fresh_state(pending: Option<PendingStore>) -> State {
    State {
        replay: Replay::SameSequence,
        buffers: BTreeMap::new(),
        rebuilding: Vec::new(),
        published: Vec::new(),
        in_flight: Vec::new(),
        acked: 0,
        acks: VecDeque::new(),
        highest: 0,
        held: 0,
        pending,
    }
}

/// The full key of the data object of partition `kind` holding `first..=last`.
fn data_key(kind: &str, first: u64, last: u64) -> String {
    format!("lake/kdg/{kind}/{PIPELINE}-{SINK}-{first:012}-{last:012}.jsonl")
}

fn record(seq: u64, kind: &str) -> Record {
    Record {
        seq,
        arrival: Utc::now(),
        data: Bytes::from(format!(r#"{{"seq":{seq},"kind":"{kind}"}}"#)),
    }
}

/// The JSON line a record is written as.
fn line(seq: u64, kind: &str) -> String {
    format!(r#"{{"seq":{seq},"kind":"{kind}"}}"#)
}

/// Records the last sequence number of each batch it acknowledges, in order.
struct RecordingAck {
    last: u64,
    acked: Arc<Mutex<Vec<u64>>>,
}

impl Ack for RecordingAck {
    fn cumulative(&self) -> bool {
        false
    }

    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        self.acked.lock().unwrap().push(self.last);
        Box::pin(async { Ok(()) })
    }
}

fn batch(records: Vec<Record>, acked: &Arc<Mutex<Vec<u64>>>) -> Batch {
    let last = records.last().map_or(0, |r| r.seq);
    Batch {
        records,
        ack: Some(Box::new(RecordingAck {
            last,
            acked: acked.clone(),
        })),
        flush: false,
    }
}

/// Every object in the store, by full key, with its lines; the pending record left out.
async fn objects(store: &InMemory) -> BTreeMap<String, Vec<String>> {
    let metas: Vec<_> = store.list(None).try_collect().await.unwrap();
    let mut objects = BTreeMap::new();
    for meta in metas {
        let key = meta.location.to_string();
        if key.contains(pipectl_engine::sink::RESERVED_PREFIX) {
            continue;
        }
        let body = store
            .get(&meta.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let lines = String::from_utf8(body.to_vec())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        objects.insert(key, lines);
    }
    objects
}

fn pending_store(store: &Arc<InMemory>) -> PendingStore {
    PendingStore::new(handle(store.clone()), PIPELINE, SINK)
}

#[tokio::test]
async fn records_of_two_partitions_land_in_one_object_per_partition() {
    let store = Arc::new(InMemory::new());
    let step = step(store.clone(), 2);
    let mut state = fresh_state(None);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let records = vec![
        record(1, "rent"),
        record(2, "buy"),
        record(3, "rent"),
        record(4, "buy"),
    ];
    step.route_batch(&mut state, batch(records, &acked))
        .await
        .unwrap();

    // Both buffers reached `max_records` within the batch: published without a flush.
    let expected = BTreeMap::from([
        (data_key("buy", 2, 4), vec![line(2, "buy"), line(4, "buy")]),
        (
            data_key("rent", 1, 3),
            vec![line(1, "rent"), line(3, "rent")],
        ),
    ]);
    assert_eq!(objects(&store).await, expected);
    assert!(state.buffers.is_empty(), "no buffer left open");
    assert_eq!(
        *acked.lock().unwrap(),
        vec![4],
        "the batch is all published"
    );
    assert_eq!(state.acked, 4);
    assert_eq!(step.metrics.rows.load(Ordering::Relaxed), 4);
    assert_eq!(step.metrics.extra.load(Ordering::Relaxed), 2, "objects");
}

#[tokio::test]
async fn a_batch_is_acknowledged_only_once_every_record_up_to_it_is_published() {
    let store = Arc::new(InMemory::new());
    let step = step(store.clone(), 2);
    let pending = pending_store(&store);
    let mut state = fresh_state(Some(pending_store(&store)));
    let acked = Arc::new(Mutex::new(Vec::new()));

    step.route_batch(&mut state, batch(vec![record(1, "rent")], &acked))
        .await
        .unwrap();
    assert!(objects(&store).await.is_empty());
    assert!(
        acked.lock().unwrap().is_empty(),
        "record 1 is only buffered"
    );

    // `rent` fills up and is published (1, 2); `buy` stays open holding record 3, so the
    // first batch (through 1) is released and the second (through 3) is not.
    step.route_batch(
        &mut state,
        batch(vec![record(2, "rent"), record(3, "buy")], &acked),
    )
    .await
    .unwrap();
    assert_eq!(
        objects(&store).await,
        BTreeMap::from([(
            data_key("rent", 1, 2),
            vec![line(1, "rent"), line(2, "rent")]
        )])
    );
    assert_eq!(*acked.lock().unwrap(), vec![1]);
    assert_eq!(state.acked, 1);
    // Record 2 of the published object is not acknowledged yet: the object stays in flight.
    assert_eq!(
        pending.load().await.unwrap().entries,
        vec![Entry {
            key: data_key("rent", 1, 2),
            partition: "data\u{1f}rent".to_owned(),
            first: 1,
            last: 2,
            count: 2,
            delta: None,
        }]
    );

    // Publishing the open buffer releases the held batch and empties the record.
    let all: Vec<Dest> = state.buffers.keys().cloned().collect();
    step.flush(&mut state, all).await.unwrap();
    assert_eq!(
        objects(&store).await.get(&data_key("buy", 3, 3)),
        Some(&vec![line(3, "buy")])
    );
    assert_eq!(*acked.lock().unwrap(), vec![1, 3]);
    assert_eq!(
        pending.load().await.unwrap(),
        Pending {
            acked: 3,
            entries: Vec::new(),
        }
    );
}

#[tokio::test]
async fn a_restart_rebuilds_a_missing_object_and_skips_a_published_one() {
    let store = Arc::new(InMemory::new());
    let published = Entry {
        key: data_key("rent", 1, 3),
        partition: "data\u{1f}rent".to_owned(),
        first: 1,
        last: 3,
        count: 2,
        delta: None,
    };
    let missing = Entry {
        key: data_key("buy", 2, 4),
        partition: "data\u{1f}buy".to_owned(),
        first: 2,
        last: 4,
        count: 2,
        delta: None,
    };
    // The stopped process published `rent` (1, 3) but not `buy` (2, 4). Its object holds a
    // marker, so a rewrite would show.
    let marker = "written by the stopped process".to_owned();
    store
        .put(
            &StorePath::from(published.key.as_str()),
            PutPayload::from(format!("{marker}\n")),
        )
        .await
        .unwrap();
    let pending = pending_store(&store);
    let previous = Pending {
        acked: 0,
        entries: vec![published.clone(), missing.clone()],
    };
    pending.save(&previous).await.unwrap();

    // The source redelivers every unacknowledged record, then a new one, and ends.
    let redelivered = vec![
        record(1, "rent"),
        record(2, "buy"),
        record(3, "rent"),
        record(4, "buy"),
        record(5, "rent"),
    ];
    let acked = resume(step(store.clone(), 100), &store, previous, redelivered).await;

    let expected = BTreeMap::from([
        (missing.key.clone(), vec![line(2, "buy"), line(4, "buy")]),
        (published.key.clone(), vec![marker]),
        (data_key("rent", 5, 5), vec![line(5, "rent")]),
    ]);
    assert_eq!(objects(&store).await, expected);
    assert_eq!(acked, vec![5]);
    assert_eq!(
        pending.load().await.unwrap(),
        Pending {
            acked: 5,
            entries: Vec::new(),
        }
    );
}

/// A sink writing the Delta table `lake/t` (records `{"seq":..,"kind":..}`, columns inferred).
fn delta_step(store: Arc<InMemory>, max_records: u64) -> FirehoseStep {
    let spec: FirehoseSink = serde_json::from_value(serde_json::json!({
        "inputs": ["events"], "connection": "lake", "format": {"type": "delta"},
        "prefix": "t/",
        "error_output_prefix": "errors/!{firehose:error-output-type}/",
        "max_records": max_records,
        "interval_secs": 3600,
    }))
    .unwrap();
    sink_step(store, &spec)
}

/// Each commit of the table `lake/t`: its `txn` (app id, version) and the rows it added.
async fn delta_commits(store: &InMemory) -> Vec<(String, i64, u64)> {
    let metas: Vec<_> = store
        .list(Some(&StorePath::from("lake/t/_delta_log")))
        .try_collect()
        .await
        .unwrap();
    let mut logs: Vec<_> = metas
        .into_iter()
        .filter(|m| m.location.as_ref().ends_with(".json"))
        .map(|m| m.location)
        .collect();
    logs.sort();
    let mut commits = Vec::new();
    for log in logs {
        let body = store.get(&log).await.unwrap().bytes().await.unwrap();
        let (mut txn, mut rows) = (None, 0);
        for line in String::from_utf8(body.to_vec()).unwrap().lines() {
            let action: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(t) = action.get("txn") {
                txn = Some((
                    t["appId"].as_str().unwrap().to_owned(),
                    t["version"].as_i64().unwrap(),
                ));
            }
            if let Some(stats) = action["add"]["stats"].as_str() {
                let stats: serde_json::Value = serde_json::from_str(stats).unwrap();
                rows += stats["numRecords"].as_u64().unwrap();
            }
        }
        let (app, version) = txn.expect("every commit carries a txn");
        commits.push((app, version, rows));
    }
    commits
}

/// Runs `step` as restarted after a stop that left `previous` in the record of objects in
/// flight, the source (replaying with the same sequence numbers) redelivering `records` and
/// ending; returns the sequence numbers acknowledged.
async fn resume(
    step: FirehoseStep,
    store: &Arc<InMemory>,
    previous: Pending,
    records: Vec<Record>,
) -> Vec<u64> {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel(4);
    tx.send(batch(records, &acked)).await.unwrap();
    drop(tx);
    let started = Started {
        replay: Replay::SameSequence,
        acked_through: None,
    };
    step.run(
        started,
        Some((pending_store(store), previous)),
        rx,
        CancellationToken::new(),
    )
    .await
    .unwrap();
    acked.lock().unwrap().clone()
}

async fn run_delta(store: &Arc<InMemory>, previous: Pending, records: Vec<Record>) -> Vec<u64> {
    resume(delta_step(store.clone(), 2), store, previous, records).await
}

/// The crash windows of a Delta flush: a commit recorded but not applied is applied by the
/// restart; applied but not acknowledged, it is recognised by its `txn` and not made again;
/// recorded without its commit, the range is rebuilt and committed.
#[tokio::test]
async fn a_restart_applies_a_recorded_delta_commit_once_and_rebuilds_an_unrecorded_one() {
    let store = Arc::new(InMemory::new());
    let app_id = format!("{PIPELINE}/{SINK}/t");
    // What a stopped process left: records 1 and 2 prepared as a commit (files written),
    // recorded, not applied.
    let intent = {
        let mut out = delta::DeltaOutput::new(
            PIPELINE,
            SINK,
            handle(store.clone()),
            &DeltaFormat::default(),
            false,
        );
        let body = format!("{}\n{}\n", line(1, "rent"), line(2, "rent"));
        let schema = out.schema("t", None, body.as_bytes()).await.unwrap();
        let mut encoder =
            parquet::ParquetEncoder::new(SINK, &delta_parquet_format(&DeltaFormat::default()), &[])
                .unwrap();
        let decoded = encoder.decode(&schema, body.as_bytes()).unwrap();
        out.prepare("t", &decoded.batches, 2).await.unwrap()
    };
    let recorded = Entry {
        key: "lake/t".to_owned(),
        partition: "data".to_owned(),
        first: 1,
        last: 2,
        count: 2,
        delta: Some(DeltaFlush {
            root: "t".to_owned(),
            app_id: app_id.clone(),
            intent: Some(intent),
        }),
    };
    let previous = Pending {
        acked: 0,
        entries: vec![recorded.clone()],
    };
    assert!(
        delta_commits(&store).await.is_empty(),
        "nothing committed yet"
    );

    // The restart commits the recorded flush, skips its redelivered records, and commits
    // record 3 when it stops.
    let redelivered = vec![record(1, "rent"), record(2, "rent"), record(3, "buy")];
    assert_eq!(run_delta(&store, previous.clone(), redelivered).await, [3]);
    assert_eq!(
        delta_commits(&store).await,
        [(app_id.clone(), 2, 2), (app_id.clone(), 3, 1)]
    );

    // A crash after that commit and before the acknowledgement: the same record, the same
    // records again. Nothing is committed twice.
    let redelivered = vec![record(1, "rent"), record(2, "rent")];
    assert_eq!(run_delta(&store, previous, redelivered).await, [2]);
    assert_eq!(delta_commits(&store).await.len(), 2);

    // A flush recorded before its files were written (no commit): rebuilt from the records.
    let unrecorded = Entry {
        first: 4,
        last: 5,
        delta: Some(DeltaFlush {
            root: "t".to_owned(),
            app_id: app_id.clone(),
            intent: None,
        }),
        ..recorded
    };
    let previous = Pending {
        acked: 3,
        entries: vec![unrecorded],
    };
    let redelivered = vec![record(4, "rent"), record(5, "buy")];
    assert_eq!(run_delta(&store, previous, redelivered).await, [5]);
    assert_eq!(
        delta_commits(&store).await,
        [
            (app_id.clone(), 2, 2),
            (app_id.clone(), 3, 1),
            (app_id, 5, 2)
        ]
    );
    assert_eq!(
        pending_store(&store).load().await.unwrap(),
        Pending {
            acked: 5,
            entries: Vec::new(),
        }
    );
}
