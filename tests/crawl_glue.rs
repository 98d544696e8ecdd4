//! The crawler and `pipectl query` tried as a Glue / Athena user would (issue 21): lakes laid
//! out in a temp folder with bad files, schema changes and deleted folders, crawled, queried,
//! and compared with what the files hold (and with DuckDB reading the same files).

use std::path::Path;

use serde_json::{Value, json};

use crate::common::{output, pipectl};
use crate::lake::{catalog_json, columns_of, crawl, ok, query, table_names, write, write_parquet};

/// `len` bytes that are not text, the same on every run: a date cut by an invalid byte at
/// byte 9 (read as text, the replacement character spans byte 10), then pseudo-random bytes.
fn binary(len: usize) -> Vec<u8> {
    let mut bytes = b"2026-01-0\xffzzzz".to_vec();
    let mut state: u32 = 0x2545_f491;
    while bytes.len() < len {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        bytes.push((state >> 24) as u8);
    }
    bytes
}

fn write_bytes(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Runs pipectl, asserts it fails with exit code 1 and did not panic, returns stderr.
fn fails(dir: &Path, args: &[&str]) -> String {
    let (out, stdout, stderr) = output(pipectl(dir).args(args));
    assert_eq!(
        out.status.code(),
        Some(1),
        "pipectl {args:?} should fail with 1\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// `rows` as `pipectl query --format json` prints them: NULL columns are left out.
fn printed(rows: Vec<Value>) -> Vec<Value> {
    rows.into_iter()
        .map(|mut row| {
            if let Some(object) = row.as_object_mut() {
                object.retain(|_, v| !v.is_null());
            }
            row
        })
        .collect()
}

fn warnings(report: &Value) -> String {
    report[0]["warnings"].to_string()
}

/// Rows of `sql` run by DuckDB (the PyPI package `scripts/delta-readers.sh` installs) as JSON
/// arrays, or `None` when it is not installed (outside CI).
fn duckdb(sql: &str) -> Option<Vec<Value>> {
    let python = crate::common::delta_readers_python()?;
    let rows = crate::common::python_json(
        crate::common::python_script(
            &python,
            "import duckdb, json, sys; print(json.dumps(duckdb.sql(sys.argv[1]).fetchall(), default=str))",
        )
        .arg(sql),
        "duckdb",
    );
    Some(serde_json::from_value(rows).expect("DuckDB prints JSON rows"))
}

#[test]
fn binary_and_nul_filled_csv_files_are_reported_by_key_and_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(&d.join("lake/t/dt=1/a.csv"), "id,name\n1,ann\n2,bob\n");
    write_bytes(&d.join("lake/t/dt=1/junk.csv"), &binary(5000));
    write(&d.join("lake/t/dt=2/c.csv"), "id,name\n3,cy\n");
    write_bytes(&d.join("lake/t/dt=3/b.csv"), &binary(5000));
    write_bytes(&d.join("lake/t/dt=4/zeros.csv"), &[0u8; 262_144]);

    // Before: "end byte index 10 is not a char boundary", exit 101, nothing catalogued.
    let report = crawl(d, "file://lake/t", "g", &[]);
    let warned = warnings(&report);
    for key in ["t/dt=1/junk.csv", "t/dt=3/b.csv", "t/dt=4/zeros.csv"] {
        assert!(
            warned.contains(&format!(
                "{key}: no classifier recognises it (Glue: UNKNOWN)"
            )),
            "{key} not reported: {warned}"
        );
    }
    assert!(warned.contains("control byte 0x00"), "{warned}");
    let table = catalog_json(d, &["show", "g.t"]);
    assert_eq!(columns_of(&table), ["id int", "name string"]);
    let partitions = crate::common::strings(&table["partitions"], "location");
    assert_eq!(partitions, ["dt=1/", "dt=2/"]);
    assert_eq!(table["partitions"][0]["files"], 1);
    let skipped = crate::common::strings(&table["skipped_files"], "key");
    assert_eq!(skipped, ["dt=1/junk.csv", "dt=3/b.csv", "dt=4/zeros.csv"]);
    // The rest reads back as the files hold it; the skipped files are not read.
    let rows = query(d, "g", "select id, name, dt from t order by id");
    assert_eq!(
        rows,
        [
            json!({"id": 1, "name": "ann", "dt": 1}),
            json!({"id": 2, "name": "bob", "dt": 1}),
            json!({"id": 3, "name": "cy", "dt": 2}),
        ]
    );
    let text = ok(d, &["catalog", "show", "g.t"]);
    assert!(
        text.contains("3 files left out") && text.contains("dt=3/b.csv"),
        "{text}"
    );

    // A folder holding only a NUL-filled file is no table (before: one column named by
    // 262,144 NUL bytes).
    write_bytes(&d.join("lake/n/z.csv"), &[0u8; 262_144]);
    let report = crawl(d, "file://lake/n", "nul", &[]);
    assert!(
        warnings(&report).contains("n/z.csv: no classifier"),
        "{report}"
    );
    assert_eq!(report[0]["tables"], json!([]), "{report}");
    let (out, _, stderr) = output(pipectl(d).args(["catalog", "show", "nul.n"]));
    assert!(!out.status.success(), "{stderr}");
}

#[test]
fn a_corrupt_parquet_file_is_named_and_can_be_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_parquet(&d.join("lake/p/dt=1/good.parquet"), 0, 100);
    write_parquet(&d.join("lake/p/dt=2/bad.parquet"), 100, 150);
    write_parquet(&d.join("lake/p/dt=3/worse.parquet"), 150, 160);
    crawl(d, "file://lake/p", "pq", &[]);
    // Corrupted after the crawl: a footer length beyond the file's size (the reader panicked on
    // it, exit 101), and a footer that does not decode.
    let bad = d.join("lake/p/dt=2/bad.parquet");
    let mut bytes = std::fs::read(&bad).unwrap();
    let n = bytes.len();
    bytes[n - 8..n - 4].copy_from_slice(&((n * 3) as u32).to_le_bytes());
    std::fs::write(&bad, &bytes).unwrap();
    let worse = d.join("lake/p/dt=3/worse.parquet");
    let mut garbage = b"PAR1".to_vec();
    garbage.extend(std::iter::repeat_n(0u8, 3000));
    garbage.extend(200u32.to_le_bytes());
    garbage.extend(b"PAR1");
    std::fs::write(&worse, &garbage).unwrap();

    let sql = "select count(*) as n, sum(id) as s from p";
    let stderr = fails(d, &["query", sql, "-d", "pq"]);
    let bad_url = format!("file://{}", bad.display());
    assert!(
        stderr.contains(&format!("cannot read {bad_url} (table pq.p)"))
            && stderr.contains("footer length exceeds its size")
            && stderr.contains("(and 1 more unreadable files)")
            && stderr.contains("--skip-unreadable"),
        "{stderr}"
    );
    // A query pruned to the good partition reads only it and succeeds.
    let rows = query(d, "pq", "select count(*) as n from p where dt = 1");
    assert_eq!(rows, [json!({"n": 100})]);

    let (out, stdout, stderr) = output(pipectl(d).args([
        "query",
        sql,
        "-d",
        "pq",
        "--skip-unreadable",
        "--format",
        "json",
    ]));
    assert!(out.status.success(), "{stderr}");
    let rows: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(rows, json!([{"n": 100, "s": (0..100).sum::<i64>()}]));
    let worse_url = format!("file://{}", worse.display());
    for url in [&bad_url, &worse_url] {
        assert!(
            stderr.contains(&format!("warning: left out {url} (table pq.p)")),
            "{stderr}"
        );
    }
    if let Some(duck) = duckdb(&format!(
        "select count(*), sum(id) from read_parquet('{}')",
        d.join("lake/p/dt=1/good.parquet").display()
    )) {
        assert_eq!(duck, [json!([100, (0..100).sum::<i64>()])]);
    }
}

#[test]
fn csv_files_with_fewer_columns_read_the_new_ones_as_null() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A column added between crawls (schema_change: update).
    write(&d.join("lake/ev/dt=1/a.csv"), "id,name\n1,ann\n2,bob\n");
    crawl(d, "file://lake/ev", "c", &[]);
    write(&d.join("lake/ev/dt=2/b.csv"), "id,name,score\n3,cy,4.5\n");
    let report = crawl(d, "file://lake/ev", "c", &[]);
    assert!(
        report[0]["tables"][0]["changes"]
            .to_string()
            .contains("added column score double"),
        "{report}"
    );
    // Before: "incorrect number of fields" for every query, even one pruned to dt=1.
    let old = query(
        d,
        "c",
        "select id, name, score from ev where dt = 1 order by id",
    );
    assert_eq!(
        old,
        printed(vec![
            json!({"id": 1, "name": "ann", "score": null}),
            json!({"id": 2, "name": "bob", "score": null}),
        ])
    );
    let all = query(d, "c", "select id, score from ev order by id");
    assert_eq!(
        all,
        printed(vec![
            json!({"id": 1, "score": null}),
            json!({"id": 2, "score": null}),
            json!({"id": 3, "score": 4.5}),
        ])
    );
    if let Some(duck) = duckdb(&format!(
        "select id, score from read_csv('{}/lake/ev/*/*.csv', union_by_name = true) order by id",
        d.display()
    )) {
        let ours: Vec<Value> = all.iter().map(|r| json!([r["id"], r["score"]])).collect();
        assert_eq!(duck, ours);
    }

    // Sibling folders merged by the similarity rule, one with a column more at the end; one
    // whose header puts the columns in another order is left out, since CSV is read by
    // position.
    let cols: Vec<String> = (0..8).map(|i| format!("c{i}")).collect();
    let header = cols.join(",");
    let values = |row: i32| {
        (0..8)
            .map(|i| (row * 10 + i).to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    write(
        &d.join("lake/m/eu/x.csv"),
        &format!("{header}\n{}\n", values(1)),
    );
    write(
        &d.join("lake/m/us/y.csv"),
        &format!("{header},extra\n{},e\n", values(2)),
    );
    let mut swapped = cols.clone();
    swapped.swap(0, 1);
    write(
        &d.join("lake/m/asia/z.csv"),
        &format!("{}\n{}\n", swapped.join(","), values(3)),
    );
    let report = crawl(d, "file://lake/m", "c", &[]);
    let changes = report[0]["tables"][0]["changes"].to_string();
    assert!(
        changes.contains("asia/z.csv: left out: its header (c1, c0, c2"),
        "{report}"
    );
    let rows = query(
        d,
        "c",
        "select partition_0 as p, c0, c7, extra from m order by p",
    );
    assert_eq!(
        rows,
        printed(vec![
            json!({"p": "eu", "c0": 10, "c7": 17, "extra": null}),
            json!({"p": "us", "c0": 20, "c7": 27, "extra": "e"}),
        ])
    );
}

#[test]
fn sibling_folders_sharing_more_than_70_percent_of_their_columns_are_one_table() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let object = |names: &[&str], value: i32| {
        let fields: Vec<String> = names.iter().map(|n| format!("\"{n}\":{value}")).collect();
        format!("{{{}}}\n", fields.join(","))
    };
    let shared = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let eu: Vec<&str> = shared.iter().copied().chain(["i", "j"]).collect();
    let us: Vec<&str> = shared.iter().copied().chain(["k", "l"]).collect();
    // 8 of each folder's 10 columns shared: 80% in Glue's measure (the union's 8 of 12 is 67%,
    // which split them before).
    write(&d.join("lake/s/eu/1.jsonl"), &object(&eu, 1));
    write(&d.join("lake/s/us/2.jsonl"), &object(&us, 2));
    crawl(d, "file://lake/s", "sim", &[]);
    assert_eq!(table_names(d, "sim"), ["s"]);
    let rows = query(
        d,
        "sim",
        "select partition_0 as p, a, i, k from s order by p",
    );
    assert_eq!(
        rows,
        printed(vec![
            json!({"p": "eu", "a": 1, "i": 1, "k": null}),
            json!({"p": "us", "a": 2, "i": null, "k": 2}),
        ])
    );
    // 7 of 10 is 70%, not more: two tables.
    let seven: Vec<&str> = shared[..7].iter().copied().chain(["x", "y", "z"]).collect();
    write(&d.join("lake/t/eu/1.jsonl"), &object(&eu, 1));
    write(&d.join("lake/t/us/2.jsonl"), &object(&seven, 2));
    crawl(d, "file://lake/t", "sim7", &[]);
    assert_eq!(table_names(d, "sim7"), ["eu", "us"]);
}

#[test]
fn every_file_of_a_folder_is_read_and_their_columns_unioned() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(&d.join("lake/w/dt=1/a.jsonl"), "{\"id\":1}\n");
    write(
        &d.join("lake/w/dt=1/b.jsonl"),
        "{\"id\":2,\"late\":\"x\"}\n",
    );
    write(&d.join("lake/v/dt=1/a.csv"), "id,name\n1,ann\n");
    write(&d.join("lake/v/dt=1/b.csv"), "id,name,score\n2,bob,7\n");
    let report = crawl(d, "file://lake/w", "u", &[]);
    assert_eq!(report[0]["files_read"], 2, "{report}");
    crawl(d, "file://lake/v", "u", &[]);
    // Before: only a.* was read, so `late` and `score` were never catalogued.
    assert_eq!(
        columns_of(&catalog_json(d, &["show", "u.w"])),
        ["id int", "late string"]
    );
    assert_eq!(
        columns_of(&catalog_json(d, &["show", "u.v"])),
        ["id int", "name string", "score int"]
    );
    assert_eq!(
        query(d, "u", "select id, late from w order by id"),
        printed(vec![
            json!({"id": 1, "late": null}),
            json!({"id": 2, "late": "x"})
        ])
    );
    assert_eq!(
        query(d, "u", "select id, score from v order by id"),
        printed(vec![
            json!({"id": 1, "score": null}),
            json!({"id": 2, "score": 7})
        ])
    );
}

#[test]
fn new_folders_crawls_only_log_schema_changes_as_glue_forces_log() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(&d.join("lake/ev/dt=1/a.csv"), "id,name\n1,ann\n");
    crawl(d, "file://lake/ev", "inc", &[]);
    // A new partition whose `id` is text, and a compatible one.
    write(&d.join("lake/ev/dt=2/b.csv"), "id,name\nx7,bob\n");
    write(&d.join("lake/ev/dt=3/c.csv"), "id,name\n3,cy\n");
    let report = crawl(d, "file://lake/ev", "inc", &["--recrawl", "new-folders"]);
    let changes = report[0]["tables"][0]["changes"].to_string();
    assert!(
        changes.contains(
            "not applied (schema_change: log, forced by recrawl: new_folders): column id changed type int -> string"
        ) && changes.contains("folder dt=2/ not added: column id is string where the table has int"),
        "{changes}"
    );
    // Before: `id` became a string for the whole table.
    let table = catalog_json(d, &["show", "inc.ev"]);
    assert_eq!(columns_of(&table), ["id int", "name string"]);
    assert_eq!(table["schema_version"], 1);
    assert_eq!(table["skipped_files"][0]["key"], "dt=2/b.csv");
    assert_eq!(
        query(d, "inc", "select id, name from ev order by id"),
        [
            json!({"id": 1, "name": "ann"}),
            json!({"id": 3, "name": "cy"})
        ]
    );
    // A full crawl applies it.
    crawl(d, "file://lake/ev", "inc", &[]);
    let table = catalog_json(d, &["show", "inc.ev"]);
    assert_eq!(columns_of(&table), ["id string", "name string"]);
    assert_eq!(
        query(d, "inc", "select count(*) as n from ev"),
        [json!({"n": 3})]
    );
}

#[test]
fn a_table_whose_folder_was_deleted_is_deprecated_and_queries_say_since_when() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(&d.join("lake/zoo/film/f.csv"), "film_id,title\n1,Alien\n");
    write(
        &d.join("lake/zoo/actor/a.jsonl"),
        "{\"actor_id\":1,\"first\":\"Sigourney\"}\n",
    );
    crawl(d, "file://lake/zoo", "z", &[]);
    std::fs::remove_dir_all(d.join("lake/zoo/actor")).unwrap();
    // schema_change: update (the default), as Glue's default DEPRECATE_IN_DATABASE.
    let report = crawl(d, "file://lake/zoo", "z", &[]);
    let actor = report[0]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "actor")
        .cloned()
        .unwrap_or_default();
    assert_eq!(actor["action"], "deprecated", "{report}");
    assert_eq!(
        catalog_json(d, &["show", "z.actor"])["status"],
        "deprecated"
    );
    // Before: "table 'actor' not found".
    let stderr = fails(d, &["query", "select * from actor", "-d", "z"]);
    assert!(
        stderr.contains("table z.actor is deprecated since the crawl of")
            && stderr.contains("by pipectl crawl file://lake/zoo")
            && stderr.contains("was no longer found"),
        "{stderr}"
    );
    assert_eq!(
        query(d, "z", "select title from film"),
        [json!({"title": "Alien"})]
    );
    // Data back: active again.
    write(
        &d.join("lake/zoo/actor/a.jsonl"),
        "{\"actor_id\":2,\"first\":\"Ian\"}\n",
    );
    crawl(d, "file://lake/zoo", "z", &[]);
    assert_eq!(
        query(d, "z", "select first from actor"),
        [json!({"first": "Ian"})]
    );
    // Under `log` a vanished table is kept, and says so.
    std::fs::remove_dir_all(d.join("lake/zoo/actor")).unwrap();
    let report = crawl(d, "file://lake/zoo", "z", &["--schema-change", "log"]);
    assert!(
        report[0]["tables"]
            .to_string()
            .contains("data no longer found; kept (schema_change: log)"),
        "{report}"
    );
    assert_eq!(catalog_json(d, &["show", "z.actor"])["status"], "active");
}

#[test]
fn a_folder_holding_only_an_empty_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(&d.join("lake/e/dt=1/a.csv"), "id\n1\n");
    write(&d.join("lake/e/dt=2/empty.csv"), "");
    let report = crawl(d, "file://lake/e", "em", &[]);
    assert!(
        warnings(&report)
            .contains("e/dt=2/ holds only empty files (empty.csv); no table or partition"),
        "{report}"
    );
    assert_eq!(report[0]["tables"][0]["partitions"], 1, "{report}");
    // A crawl of just such a folder makes no table, and says why.
    write(&d.join("lake/only/empty.csv"), "");
    let report = crawl(d, "file://lake/only", "em", &[]);
    assert!(
        warnings(&report).contains("only/ holds only empty files (empty.csv)"),
        "{report}"
    );
    assert_eq!(report[0]["tables"], json!([]), "{report}");
}
