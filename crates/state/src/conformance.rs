//! The [`StateStore`] contract as executable checks, shared by every backend's tests.
//!
//! A backend's tests call [`run_all`] on an empty store, and [`write_durability_fixture`] then
//! [`check_durability_fixture`] across a close and reopen (or reconnect, or process kill).
//! The checks panic with a message naming the broken rule, like any test assertion.
//!
//! Times used here have microsecond precision, the least the contract promises.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use crate::{Bookmark, PublishEntry, RunRecord, RunStatus, StateError, StateStore, StepRecord};

/// Runs every contract check against `store`, which must start empty.
///
/// # Panics
/// On the first contract violation, naming it.
pub fn run_all(store: &dyn StateStore) {
    begin_save_commit_round_trip(store);
    duplicate_begin_is_rejected(store);
    save_and_commit_need_a_begun_run(store);
    commit_applies_run_and_bookmarks_together(store);
    invalid_names_are_rejected(store);
    unfinished_runs_are_listed_oldest_first(store);
    runs_are_listed_newest_first(store);
    find_run_by_exact_id_or_unique_prefix(store);
    bookmark_history_records_each_change(store);
    bookmark_values_round_trip_exactly(store);
    bookmarks_are_listed_by_pipeline_then_stream(store);
    delete_bookmark_resets_but_keeps_history(store);
    prune_keeps_newest_and_unfinished_runs(store);
}

/// Writes the records [`check_durability_fixture`] expects, using only writes the contract
/// promises are durable when they return.
///
/// # Panics
/// If a write fails.
pub fn write_durability_fixture(store: &dyn StateStore) {
    let mut committed = durable_committed_run();
    committed.status = RunStatus::Running;
    committed.ended_at = None;
    committed.steps.clear();
    committed.publish.clear();
    store.begin_run(&committed).expect("begin_run");
    store
        .commit_run(&durable_committed_run(), &[durable_committed_bookmark()])
        .expect("commit_run");

    let mut committing = durable_committing_run();
    committing.status = RunStatus::Running;
    committing.publish.clear();
    store.begin_run(&committing).expect("begin_run");
    store
        .save_run(&durable_committing_run())
        .expect("save_run (committing)");

    store
        .set_bookmark(&durable_manual_bookmark())
        .expect("set_bookmark");
}

/// Checks that everything [`write_durability_fixture`] wrote is there.
///
/// # Panics
/// If a record is missing or differs.
pub fn check_durability_fixture(store: &dyn StateStore) {
    let committed = durable_committed_run();
    assert_stored(store, &committed, "a committed run survives");
    let bookmark = durable_committed_bookmark();
    assert_eq!(
        store
            .bookmark(&bookmark.pipeline, &bookmark.stream)
            .expect("bookmark"),
        Some(bookmark.clone()),
        "a committed bookmark survives"
    );
    assert_eq!(
        store
            .bookmark_history(&bookmark.pipeline, &bookmark.stream)
            .expect("bookmark_history"),
        vec![bookmark],
        "bookmark history survives"
    );
    let committing = durable_committing_run();
    assert_eq!(
        store.unfinished_runs().expect("unfinished_runs"),
        vec![committing],
        "a run saved as Committing, with its publish manifest, survives as unfinished"
    );
    let manual = durable_manual_bookmark();
    assert_eq!(
        store.bookmarks(Some(&manual.pipeline)).expect("bookmarks"),
        vec![durable_committed_bookmark(), manual],
        "a hand-set bookmark survives"
    );
    assert_eq!(
        store
            .runs(Some(&committed.pipeline), 10)
            .expect("runs")
            .len(),
        2,
        "both runs survive"
    );
}

/// 2030-01-01T00:00:00.123456Z plus `seconds`.
fn time(seconds: i64) -> DateTime<Utc> {
    const BASE_MICROS: i64 = 1_893_456_000_000_000 + 123_456;
    DateTime::from_timestamp_micros(BASE_MICROS).expect("base time is in range")
        + TimeDelta::seconds(seconds)
}

fn running(id: &str, pipeline: &str, started_at: DateTime<Utc>) -> RunRecord {
    RunRecord::new(id, pipeline, "spec-hash-1", started_at, "manual")
}

fn finished(mut run: RunRecord, status: RunStatus) -> RunRecord {
    run.ended_at = Some(run.started_at + TimeDelta::milliseconds(1500));
    run.status = status;
    run
}

fn bookmark(pipeline: &str, stream: &str, value: i64, run_id: &str) -> Bookmark {
    Bookmark {
        pipeline: pipeline.to_owned(),
        stream: stream.to_owned(),
        keys: vec!["last_update".to_owned(), "film_id".to_owned()],
        values: vec![json!("2006-02-15T05:03:42.000001Z"), json!(value)],
        key_types: vec!["timestamp with time zone".to_owned(), "integer".to_owned()],
        run_id: run_id.to_owned(),
        updated_at: time(value),
    }
}

/// Asserts that `store` holds `run` exactly as given (`what` names the check).
fn assert_stored(store: &dyn StateStore, run: &RunRecord, what: &str) {
    assert_eq!(
        store.run(&run.id).expect("run"),
        Some(run.clone()),
        "{what}"
    );
}

fn step(name: &str, kind: &str, status: RunStatus) -> StepRecord {
    StepRecord {
        name: name.to_owned(),
        kind: kind.to_owned(),
        rows: 1000,
        bytes: 65_536,
        objects: 3,
        duration_ms: 250,
        error: None,
        status,
        replication_lag: None,
    }
}

fn ids(runs: &[RunRecord]) -> Vec<&str> {
    runs.iter().map(|run| run.id.as_str()).collect()
}

fn positions(bookmarks: &[Bookmark]) -> Vec<(&str, &serde_json::Value)> {
    bookmarks
        .iter()
        .map(|bookmark| (bookmark.run_id.as_str(), &bookmark.values[1]))
        .collect()
}

fn begin_save_commit_round_trip(store: &dyn StateStore) {
    let mut run = running("conf-trip-1", "conf-trip", time(0));
    run.trigger = "schedule".to_owned();
    store.begin_run(&run).expect("begin_run");
    assert_stored(store, &run, "begin_run round trip");

    run.steps = vec![
        StepRecord {
            replication_lag: Some(crate::ReplicationLag {
                bytes: 4096,
                seconds: 1.5,
            }),
            ..step("extract", "source", RunStatus::Succeeded)
        },
        StepRecord {
            error: Some("row 7: bad date".to_owned()),
            ..step("clean", "transform", RunStatus::Failed)
        },
    ];
    store.save_run(&run).expect("save_run (running)");
    assert_stored(store, &run, "save_run round trip");

    run.status = RunStatus::Committing;
    run.publish = vec![publish_entry(
        "s3://lake/raw",
        "_staging/conf-trip-1/films.parquet",
        "films/2030/01/01/films.parquet",
    )];
    store.save_run(&run).expect("save_run (committing)");
    assert_stored(store, &run, "publish manifest round trip");

    let run = finished(run, RunStatus::Succeeded);
    store.commit_run(&run, &[]).expect("commit_run");
    assert_stored(store, &run, "commit_run round trip");
    assert_eq!(
        store.run("conf-trip-").expect("run"),
        None,
        "run() takes exact ids only"
    );
}

fn duplicate_begin_is_rejected(store: &dyn StateStore) {
    let run = running("conf-dup-1", "conf-dup", time(10));
    store.begin_run(&run).expect("begin_run");
    let impostor = running("conf-dup-1", "conf-dup-other", time(11));
    let err = store
        .begin_run(&impostor)
        .expect_err("begin_run with a stored id must fail");
    assert!(
        matches!(&err, StateError::DuplicateRun { id } if id == "conf-dup-1"),
        "duplicate begin_run error: {err:?}"
    );
    assert_stored(
        store,
        &run,
        "a rejected begin_run leaves the stored run alone",
    );
    assert!(
        store
            .runs(Some("conf-dup-other"), 10)
            .expect("runs")
            .is_empty(),
        "a rejected begin_run is not listed"
    );
    store
        .save_run(&finished(run, RunStatus::Failed))
        .expect("save_run");
}

fn save_and_commit_need_a_begun_run(store: &dyn StateStore) {
    let ghost = finished(
        running("conf-ghost-1", "conf-ghost", time(20)),
        RunStatus::Succeeded,
    );
    let err = store
        .save_run(&ghost)
        .expect_err("save_run of an unknown run must fail");
    assert!(
        matches!(&err, StateError::RunNotFound { id } if id == "conf-ghost-1"),
        "save_run error: {err:?}"
    );
    let ghost_bookmark = bookmark("conf-ghost", "public.film", 1, "conf-ghost-1");
    let err = store
        .commit_run(&ghost, &[ghost_bookmark])
        .expect_err("commit_run of an unknown run must fail");
    assert!(
        matches!(&err, StateError::RunNotFound { .. }),
        "commit_run error: {err:?}"
    );
    assert_eq!(
        store.run("conf-ghost-1").expect("run"),
        None,
        "nothing stored"
    );
    assert_eq!(
        store
            .bookmark("conf-ghost", "public.film")
            .expect("bookmark"),
        None,
        "a failed commit_run applies no bookmark"
    );
    assert!(
        store
            .bookmark_history("conf-ghost", "public.film")
            .expect("bookmark_history")
            .is_empty(),
        "a failed commit_run records no bookmark history"
    );
}

fn commit_applies_run_and_bookmarks_together(store: &dyn StateStore) {
    let run = running("conf-atomic-1", "conf-atomic", time(30));
    store.begin_run(&run).expect("begin_run");
    let film = bookmark("conf-atomic", "public.film", 100, &run.id);
    let actor = bookmark("conf-atomic", "public.actor", 7, &run.id);

    // One bad bookmark fails the whole commit: neither the run nor the good bookmark changes.
    let mut bad = actor.clone();
    bad.stream = "public.actor\0".to_owned();
    let done = finished(run.clone(), RunStatus::Succeeded);
    let err = store
        .commit_run(&done, &[film.clone(), bad])
        .expect_err("commit_run with an invalid bookmark must fail");
    assert!(matches!(&err, StateError::InvalidName { .. }), "{err:?}");
    assert_stored(store, &run, "a failed commit_run leaves the run as it was");
    assert_eq!(
        store
            .bookmark("conf-atomic", "public.film")
            .expect("bookmark"),
        None,
        "a failed commit_run applies none of its bookmarks"
    );

    store
        .commit_run(&done, &[film.clone(), actor.clone()])
        .expect("commit_run");
    assert_eq!(
        store.run(&run.id).expect("run"),
        Some(done),
        "committed run"
    );
    assert_eq!(
        store
            .bookmark("conf-atomic", "public.film")
            .expect("bookmark"),
        Some(film),
        "first committed bookmark"
    );
    assert_eq!(
        store
            .bookmark("conf-atomic", "public.actor")
            .expect("bookmark"),
        Some(actor),
        "second committed bookmark"
    );
    assert!(
        !ids(&store.unfinished_runs().expect("unfinished_runs")).contains(&run.id.as_str()),
        "a committed run is not unfinished"
    );
}

fn invalid_names_are_rejected(store: &dyn StateStore) {
    let assert_invalid = |result: Result<(), StateError>, case: &str| {
        let err = result.expect_err(case);
        assert!(
            matches!(err, StateError::InvalidName { .. }),
            "{case}: expected InvalidName, got {err:?}"
        );
    };
    assert_invalid(
        store.begin_run(&running("conf-bad-1", "conf\0bad", time(40))),
        "begin_run with a NUL in the pipeline name",
    );
    assert_invalid(
        store.begin_run(&running("conf-bad\0-2", "conf-bad", time(40))),
        "begin_run with a NUL in the run id",
    );
    assert_invalid(
        store.begin_run(&running("", "conf-bad", time(40))),
        "begin_run with an empty run id",
    );
    assert_invalid(
        store.set_bookmark(&bookmark("conf-bad", "s\0", 1, "manual")),
        "set_bookmark with a NUL in the stream name",
    );
    assert!(
        store.runs(Some("conf-bad"), 10).expect("runs").is_empty(),
        "rejected runs are not stored"
    );
}

fn unfinished_runs_are_listed_oldest_first(store: &dyn StateStore) {
    let newer = running("conf-unfinished-a", "conf-unfinished", time(52));
    let older = running("conf-unfinished-b", "conf-unfinished", time(51));
    let done = running("conf-unfinished-c", "conf-unfinished", time(50));
    for run in [&newer, &older, &done] {
        store.begin_run(run).expect("begin_run");
    }
    let mut committing = older.clone();
    committing.status = RunStatus::Committing;
    store.save_run(&committing).expect("save_run");
    store
        .commit_run(&finished(done, RunStatus::Succeeded), &[])
        .expect("commit_run");

    let unfinished = store.unfinished_runs().expect("unfinished_runs");
    assert_eq!(
        unfinished,
        vec![committing.clone(), newer.clone()],
        "unfinished runs (Running and Committing), oldest first, on a store whose other runs \
         are finished"
    );

    for run in [committing, newer] {
        store
            .save_run(&finished(run, RunStatus::Interrupted))
            .expect("save_run");
    }
    assert_eq!(
        store.unfinished_runs().expect("unfinished_runs"),
        Vec::new(),
        "runs saved as Interrupted are no longer unfinished"
    );
}

fn runs_are_listed_newest_first(store: &dyn StateStore) {
    // Ten years after the other checks' runs, so these are the newest of all.
    const LATER: i64 = 10 * 366 * 24 * 3600;
    // Listing follows started_at, not id order; equal start times fall back to the id.
    let plan = [
        ("conf-list-z", "conf-list-a", LATER),
        ("conf-list-y", "conf-list-a", LATER + 1),
        ("conf-list-b", "conf-list-a", LATER + 2),
        ("conf-list-c", "conf-list-a", LATER + 2),
        ("conf-list-x", "conf-list-ab", LATER + 3),
    ];
    for (id, pipeline, seconds) in plan {
        let run = running(id, pipeline, time(seconds));
        store.begin_run(&run).expect("begin_run");
        store
            .commit_run(&finished(run, RunStatus::Succeeded), &[])
            .expect("commit_run");
    }

    let listed = store.runs(Some("conf-list-a"), 10).expect("runs");
    assert_eq!(
        ids(&listed),
        ["conf-list-c", "conf-list-b", "conf-list-y", "conf-list-z"],
        "one pipeline's runs, newest first (a pipeline whose name extends it is not included)"
    );
    assert_eq!(
        ids(&store.runs(Some("conf-list-a"), 2).expect("runs")),
        ["conf-list-c", "conf-list-b"],
        "limit keeps the newest"
    );
    assert_eq!(
        ids(&store.runs(None, 3).expect("runs")),
        ["conf-list-x", "conf-list-c", "conf-list-b"],
        "all pipelines' runs, newest first"
    );
    assert!(store.runs(None, 0).expect("runs").is_empty(), "limit 0");
    assert!(
        store.runs(Some("conf-list"), 10).expect("runs").is_empty(),
        "a pipeline name prefix matches nothing"
    );

    let all = store.runs(None, usize::MAX).expect("runs");
    assert!(
        all.windows(2)
            .all(|pair| (pair[0].started_at, &pair[0].id) >= (pair[1].started_at, &pair[1].id)),
        "the full listing is ordered newest first"
    );
}

fn find_run_by_exact_id_or_unique_prefix(store: &dyn StateStore) {
    for (id, seconds) in [
        ("conf-find-aa11", 60),
        ("conf-find-aa22", 61),
        ("conf-find-bb33", 62),
        ("conf-find-bb33x", 63),
    ] {
        let run = running(id, "conf-find", time(seconds));
        store.begin_run(&run).expect("begin_run");
        store
            .commit_run(&finished(run, RunStatus::Succeeded), &[])
            .expect("commit_run");
    }
    let found = |prefix: &str| store.find_run(prefix).expect("find_run").map(|run| run.id);
    assert_eq!(
        found("conf-find-aa22").as_deref(),
        Some("conf-find-aa22"),
        "exact id"
    );
    assert_eq!(
        found("conf-find-aa1").as_deref(),
        Some("conf-find-aa11"),
        "unique prefix"
    );
    assert_eq!(
        found("conf-find-bb33").as_deref(),
        Some("conf-find-bb33"),
        "an exact id wins over longer ids it prefixes"
    );
    assert_eq!(found("conf-find-zz"), None, "no match");
    assert_eq!(found(""), None, "an empty prefix finds nothing");

    let err = store
        .find_run("conf-find-aa")
        .expect_err("an ambiguous prefix must fail");
    match &err {
        StateError::AmbiguousRunId {
            prefix, matches, ..
        } => {
            assert_eq!(prefix, "conf-find-aa");
            assert_eq!(
                matches,
                &["conf-find-aa11", "conf-find-aa22"],
                "matching ids"
            );
        }
        other => panic!("expected AmbiguousRunId, got {other:?}"),
    }
    assert!(err.to_string().contains("conf-find-aa11"), "{err}");
}

fn bookmark_history_records_each_change(store: &dyn StateStore) {
    let (pipeline, stream) = ("conf-history", "public.film");
    let history = || {
        store
            .bookmark_history(pipeline, stream)
            .expect("bookmark_history")
    };
    let commit = |run_id: &str, seconds: i64, value: i64| {
        let run = running(run_id, pipeline, time(seconds));
        store.begin_run(&run).expect("begin_run");
        store
            .commit_run(
                &finished(run, RunStatus::Succeeded),
                &[bookmark(pipeline, stream, value, run_id)],
            )
            .expect("commit_run");
    };
    commit("conf-history-1", 70, 10);
    commit("conf-history-2", 71, 20);
    commit("conf-history-3", 72, 20);

    let current = store.bookmark(pipeline, stream).expect("bookmark");
    assert_eq!(
        current,
        Some(bookmark(pipeline, stream, 20, "conf-history-2")),
        "a commit that does not move the bookmark leaves it naming the commit that did"
    );
    let recorded = history();
    assert_eq!(
        positions(&recorded),
        [
            ("conf-history-1", &json!(10)),
            ("conf-history-2", &json!(20))
        ],
        "one history entry per change, oldest first"
    );

    // Rewind by hand to the first position.
    let rewound = Bookmark {
        run_id: "manual".to_owned(),
        updated_at: time(73),
        ..recorded[0].clone()
    };
    store.set_bookmark(&rewound).expect("set_bookmark");
    store.set_bookmark(&rewound).expect("set_bookmark (again)");
    assert_eq!(
        store.bookmark(pipeline, stream).expect("bookmark"),
        Some(rewound.clone()),
        "set_bookmark rewinds"
    );
    let recorded = history();
    assert_eq!(
        positions(&recorded),
        [
            ("conf-history-1", &json!(10)),
            ("conf-history-2", &json!(20)),
            ("manual", &json!(10)),
        ],
        "a rewind is recorded once; repeating it changes nothing"
    );
    assert_eq!(
        recorded.last(),
        Some(&rewound),
        "history keeps whole bookmarks"
    );
    assert!(
        store
            .bookmark_history(pipeline, "public")
            .expect("bookmark_history")
            .is_empty(),
        "a stream name prefix has no history"
    );
}

fn bookmark_values_round_trip_exactly(store: &dyn StateStore) {
    let exotic = Bookmark {
        pipeline: "conf-values".to_owned(),
        stream: "warehouse.\"Odd Schema\".fact_sales ünïcode".to_owned(),
        keys: (1..=7).map(|n| format!("k{n}")).collect(),
        values: vec![
            json!(u64::MAX),
            json!(i64::MIN),
            json!(0.1),
            json!("12345678901234567890.123456789"),
            json!({"nested": [1, null, true], "b": "x"}),
            json!(null),
            json!("2030-01-01T00:00:00.123456789Z"),
        ],
        key_types: Vec::new(),
        run_id: "manual".to_owned(),
        updated_at: time(80),
    };
    store.set_bookmark(&exotic).expect("set_bookmark");
    let stored = store
        .bookmark(&exotic.pipeline, &exotic.stream)
        .expect("bookmark")
        .expect("bookmark is stored");
    assert_eq!(stored, exotic, "bookmark values round-trip exactly");
    assert_eq!(
        stored.values[0].as_u64(),
        Some(u64::MAX),
        "u64::MAX stays an integer"
    );
    assert_eq!(
        stored.values[1].as_i64(),
        Some(i64::MIN),
        "i64::MIN stays an integer"
    );
}

fn bookmarks_are_listed_by_pipeline_then_stream(store: &dyn StateStore) {
    let wanted = [
        bookmark("conf-order-a", "s1", 1, "manual"),
        bookmark("conf-order-a", "s2", 2, "manual"),
        bookmark("conf-order-ab", "s0", 3, "manual"),
        bookmark("conf-order-b", "s1", 4, "manual"),
    ];
    for bookmark in wanted.iter().rev() {
        store.set_bookmark(bookmark).expect("set_bookmark");
    }
    assert_eq!(
        store.bookmarks(Some("conf-order-a")).expect("bookmarks"),
        wanted[..2].to_vec(),
        "one pipeline's bookmarks by stream (a pipeline whose name extends it is not included)"
    );
    let all = store.bookmarks(None).expect("bookmarks");
    let ours: Vec<_> = all
        .iter()
        .filter(|bookmark| bookmark.pipeline.starts_with("conf-order-"))
        .cloned()
        .collect();
    assert_eq!(
        ours,
        wanted.to_vec(),
        "all bookmarks by pipeline, then stream"
    );
    assert!(
        all.windows(2).all(|pair| {
            (pair[0].pipeline.as_bytes(), pair[0].stream.as_bytes())
                < (pair[1].pipeline.as_bytes(), pair[1].stream.as_bytes())
        }),
        "the full listing is ordered by pipeline, then stream"
    );
    assert!(
        store
            .bookmarks(Some("conf-order"))
            .expect("bookmarks")
            .is_empty(),
        "a pipeline name prefix matches nothing"
    );
}

fn delete_bookmark_resets_but_keeps_history(store: &dyn StateStore) {
    let (pipeline, stream) = ("conf-delete", "public.film");
    let first = bookmark(pipeline, stream, 5, "manual");
    store.set_bookmark(&first).expect("set_bookmark");
    let kept = bookmark(pipeline, "public.actor", 6, "manual");
    store.set_bookmark(&kept).expect("set_bookmark");

    assert!(
        store
            .delete_bookmark(pipeline, stream)
            .expect("delete_bookmark"),
        "deleted"
    );
    assert_eq!(
        store.bookmark(pipeline, stream).expect("bookmark"),
        None,
        "gone"
    );
    assert!(
        !store
            .delete_bookmark(pipeline, stream)
            .expect("delete_bookmark"),
        "deleting again reports nothing deleted"
    );
    assert_eq!(
        store.bookmarks(Some(pipeline)).expect("bookmarks"),
        vec![kept],
        "other streams keep their bookmarks"
    );
    assert_eq!(
        store
            .bookmark_history(pipeline, stream)
            .expect("bookmark_history"),
        vec![first.clone()],
        "history survives a delete"
    );

    // Setting the last position again after a reset is a change (from nothing).
    store.set_bookmark(&first).expect("set_bookmark");
    assert_eq!(
        store
            .bookmark_history(pipeline, stream)
            .expect("bookmark_history")
            .len(),
        2,
        "restoring after a delete is recorded"
    );
}

fn prune_keeps_newest_and_unfinished_runs(store: &dyn StateStore) {
    let pipeline = "conf-prune";
    // The oldest run is still unfinished: pruning must not touch it.
    let stuck = running("conf-prune-0", pipeline, time(90));
    store.begin_run(&stuck).expect("begin_run");
    for n in 1..=5 {
        let run = running(&format!("conf-prune-{n}"), pipeline, time(90 + n));
        store.begin_run(&run).expect("begin_run");
        store
            .commit_run(&finished(run, RunStatus::Succeeded), &[])
            .expect("commit_run");
    }
    let neighbour = running("conf-prune-other-1", "conf-prune-other", time(89));
    store.begin_run(&neighbour).expect("begin_run");
    let neighbour = finished(neighbour, RunStatus::Failed);
    store.save_run(&neighbour).expect("save_run");

    assert_eq!(
        store.prune_runs(pipeline, 2).expect("prune_runs"),
        3,
        "pruned count"
    );
    assert_eq!(
        ids(&store.runs(Some(pipeline), 10).expect("runs")),
        ["conf-prune-5", "conf-prune-4", "conf-prune-0"],
        "the newest `keep` runs and unfinished ones remain"
    );
    for gone in ["conf-prune-1", "conf-prune-2", "conf-prune-3"] {
        assert_eq!(store.run(gone).expect("run"), None, "{gone} is deleted");
        assert!(
            !ids(&store.runs(None, usize::MAX).expect("runs")).contains(&gone),
            "{gone} is not listed"
        );
    }
    assert_eq!(
        store.run(&neighbour.id).expect("run"),
        Some(neighbour),
        "other pipelines are untouched"
    );
    assert_eq!(
        ids(&store.unfinished_runs().expect("unfinished_runs")),
        ["conf-prune-0"],
        "the unfinished run is still unfinished"
    );

    store
        .save_run(&finished(stuck, RunStatus::Interrupted))
        .expect("save_run");
    assert_eq!(
        store.prune_runs(pipeline, 2).expect("prune_runs"),
        1,
        "a run is pruned once it is finished"
    );
    assert_eq!(
        store.prune_runs(pipeline, 2).expect("prune_runs"),
        0,
        "nothing left to prune"
    );
    assert_eq!(
        store.prune_runs("conf-prune-none", 0).expect("prune_runs"),
        0,
        "no such pipeline"
    );
    assert_eq!(
        store.prune_runs(pipeline, 0).expect("prune_runs"),
        2,
        "keep 0 deletes all"
    );
    assert!(
        store.runs(Some(pipeline), 10).expect("runs").is_empty(),
        "all deleted"
    );
}

fn durable_committed_run() -> RunRecord {
    let mut run = finished(
        running("conf-durable-1", "conf-durable", time(100)),
        RunStatus::Succeeded,
    );
    run.steps = vec![
        step("extract", "source", RunStatus::Succeeded),
        step("load", "sink", RunStatus::Succeeded),
    ];
    run.publish = vec![publish_entry(
        "lake",
        "_staging/conf-durable-1/part-0.parquet",
        "films/part-0.parquet",
    )];
    run
}

/// An object staged at `staged` to be published as `final_key` on `connection`.
fn publish_entry(connection: &str, staged: &str, final_key: &str) -> PublishEntry {
    PublishEntry {
        connection: connection.to_owned(),
        staged: staged.to_owned(),
        final_key: final_key.to_owned(),
    }
}

fn durable_committed_bookmark() -> Bookmark {
    bookmark("conf-durable", "public.film", 42, "conf-durable-1")
}

fn durable_committing_run() -> RunRecord {
    let mut run = running("conf-durable-2", "conf-durable", time(101));
    run.status = RunStatus::Committing;
    run.steps = vec![step("extract", "source", RunStatus::Succeeded)];
    run.publish = vec![publish_entry(
        "lake",
        "_staging/conf-durable-2/part-0.parquet",
        "films/part-1.parquet",
    )];
    run
}

fn durable_manual_bookmark() -> Bookmark {
    bookmark("conf-durable", "public.rental", 7, "manual")
}
