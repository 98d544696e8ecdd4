//! PostgreSQL and MariaDB sources against the real servers: type matrices read back from
//! Parquet and CSV, selection rules, identifier quoting, bookmarks, `pipectl state`, kill -9.
//!
//! Servers come from `PIPECTL_TEST_POSTGRES_URL` and `PIPECTL_TEST_MYSQL_URL` (defaults: this
//! machine's). A missing server skips with a message, or fails when services are required (CI).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sqlx::Connection;

use crate::common::{db_spec, files_under, lake_sink, output, pipectl, services_required};

/// A database for one test: its URL and a connection to set it up, on a private runtime.
struct Db {
    rt: tokio::runtime::Runtime,
    url: String,
    pg: Option<sqlx::PgConnection>,
    my: Option<sqlx::MySqlConnection>,
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{:x}",
        std::process::id(),
        fastrand_u32() & 0xffffff
    )
}

fn fastrand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish() as u32
}

impl Db {
    fn postgres() -> Option<Db> {
        let url = std::env::var("PIPECTL_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let rt = tokio::runtime::Runtime::new().unwrap();
        match rt.block_on(sqlx::PgConnection::connect(&url)) {
            Ok(conn) => Some(Db {
                rt,
                url,
                pg: Some(conn),
                my: None,
            }),
            Err(e) => skip_or_fail("PostgreSQL", &url, e),
        }
    }

    fn mysql() -> Option<Db> {
        let url = std::env::var("PIPECTL_TEST_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned());
        let rt = tokio::runtime::Runtime::new().unwrap();
        match rt.block_on(sqlx::MySqlConnection::connect(&url)) {
            Ok(conn) => Some(Db {
                rt,
                url,
                pg: None,
                my: Some(conn),
            }),
            Err(e) => skip_or_fail("MariaDB", &url, e),
        }
    }

    /// Runs a script of `;`-separated statements.
    fn exec(&mut self, sql: &str) {
        let result = match (&mut self.pg, &mut self.my) {
            (Some(c), _) => self.rt.block_on(sqlx::raw_sql(sql).execute(c)).map(|_| ()),
            (_, Some(c)) => self.rt.block_on(sqlx::raw_sql(sql).execute(c)).map(|_| ()),
            _ => unreachable!(),
        };
        result.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The ids of a table's rows, sorted.
    fn ids(&mut self, from: &str) -> Vec<i64> {
        let sql = format!("select cast(id as signed) from {from} order by id");
        let sql_pg = format!("select id::int8 from {from} order by id");
        match (&mut self.pg, &mut self.my) {
            (Some(c), _) => self
                .rt
                .block_on(sqlx::query_scalar(&sql_pg).fetch_all(c))
                .unwrap(),
            (_, Some(c)) => self
                .rt
                .block_on(sqlx::query_scalar(&sql).fetch_all(c))
                .unwrap(),
            _ => unreachable!(),
        }
    }
}

fn skip_or_fail(what: &str, url: &str, e: sqlx::Error) -> Option<Db> {
    if services_required() {
        panic!("{what} at {url} is required but unreachable: {e}");
    }
    crate::common::skip(&format!("{what} at {url} is unreachable ({e})"));
    None
}

fn write_spec(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("pipeline.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run_ok(dir: &Path, spec: &Path) -> String {
    let (out, stdout, stderr) = output(pipectl(dir).args(["run", "-q"]).arg(spec));
    assert!(
        out.status.success(),
        "run failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

fn published(dir: &Path, ext: &str) -> Vec<PathBuf> {
    files_under(&dir.join("lake"))
        .into_iter()
        .filter(|f| !f.starts_with("_pipectl") && f.ends_with(ext))
        .map(|f| dir.join("lake").join(f))
        .collect()
}

fn read_parquet(path: &Path) -> RecordBatch {
    let file = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

/// The spec of a full load of one schema to Parquet and CSV.
fn matrix_spec(kind: &str, url: &str, schema: &str, extra: &str) -> String {
    let sinks = lake_sink(
        "parquet",
        "parquet/{table}/",
        "    format: { type: parquet }\n",
    ) + &lake_sink("csv", "csv/{table}/", "    format: { type: csv }\n");
    db_spec(
        "matrix",
        kind,
        &format!("url: \"{url}\""),
        &format!("    include: [{{ schema: \"{schema}\", table: \"%\" }}]\n{extra}"),
        &sinks,
    )
}

/// Column name -> (Arrow type, value in row 1 as CSV text); row 2 is all NULL.
fn check_matrix(dir: &Path, expected: &[(&str, DataType, &str)]) {
    let parquet = published(dir, ".parquet");
    assert_eq!(parquet.len(), 1, "{parquet:?}");
    let batch = read_parquet(&parquet[0]);
    assert_eq!(batch.num_rows(), 2);
    for (name, data_type, _) in expected {
        let column = batch
            .column_by_name(name)
            .unwrap_or_else(|| panic!("column {name} missing from {:?}", batch.schema()));
        assert_eq!(column.data_type(), data_type, "type of {name}");
        assert!(column.is_valid(0), "{name} row 1 is not NULL");
        if *name != "id" {
            assert!(column.is_null(1), "{name} row 2 is NULL");
        }
    }
    let csv = published(dir, ".csv");
    assert_eq!(csv.len(), 1, "{csv:?}");
    let text = std::fs::read_to_string(&csv[0]).unwrap();
    let as_text = arrow::datatypes::Schema::new(
        batch
            .schema()
            .fields()
            .iter()
            .map(|f| arrow::datatypes::Field::new(f.name(), DataType::Utf8, true))
            .collect::<Vec<_>>(),
    );
    let from_csv = arrow::csv::ReaderBuilder::new(std::sync::Arc::new(as_text))
        .with_header(true)
        .build(text.as_bytes())
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    // The same value from Parquet (typed) and CSV (text); NULL is an empty CSV field.
    for (name, _, expected_text) in expected {
        let p = batch.column_by_name(name).unwrap();
        let shown = arrow::util::display::array_value_to_string(p, 0).unwrap();
        assert_eq!(&shown, expected_text, "Parquet value of {name}");
        let c = from_csv.column_by_name(name).unwrap().as_string::<i32>();
        assert_eq!(c.value(0), *expected_text, "CSV value of {name}");
        if *name != "id" {
            assert!(c.is_null(1) || c.value(1).is_empty(), "CSV NULL of {name}");
        }
    }
}

#[test]
fn postgres_types_land_faithfully_in_parquet_and_csv() {
    let Some(mut db) = Db::postgres() else { return };
    let schema = unique("pipectl_pgtypes");
    db.exec(&format!(
        r#"create schema "{schema}";
        create type "{schema}".mood as enum ('sad', 'happy');
        create table "{schema}"."Types ""Ä"" `x`; drop" (
          id int primary key, i2 smallint, i4 int, i8 bigint, n numeric(8,2), n38 numeric(38,10),
          nu numeric, f4 real, f8 double precision, ok bool, t text, vc varchar(10), c char(3),
          d date, tm time, ts timestamp, tz timestamptz, iv interval, u uuid, j json, jb jsonb,
          by bytea, m "{schema}".mood, bt bit(4), arr int[]);
        insert into "{schema}"."Types ""Ä"" `x`; drop" values
          (1, -32768, 2147483647, -9223372036854775808, -123456.78, 1234567890123456789012345678.0123456789,
           0.1000000000000000000000001, 1.5, 0.1, true, 'héllo, "q"', 'v', 'ab', '1999-12-31',
           '13:14:15.123456', '2026-11-25 13:14:15.654321', '2026-11-25 13:14:15.5+02', '1 day 2 hours',
           'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{{"a": 1}}', '{{"b": [1, 2]}}', '\xdeadbeef', 'happy',
           B'1010', '{{1,NULL,3}}'),
          (2, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null,
           null, null, null, null, null, null, null, null, null);"#
    ));
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), &matrix_spec("postgres", &db.url, &schema, ""));
    run_ok(dir.path(), &spec);
    let utc = Some("UTC".into());
    check_matrix(
        dir.path(),
        &[
            ("id", DataType::Int32, "1"),
            ("i2", DataType::Int16, "-32768"),
            ("i4", DataType::Int32, "2147483647"),
            ("i8", DataType::Int64, "-9223372036854775808"),
            ("n", DataType::Decimal128(8, 2), "-123456.78"),
            (
                "n38",
                DataType::Decimal128(38, 10),
                "1234567890123456789012345678.0123456789",
            ),
            ("nu", DataType::Utf8, "0.1000000000000000000000001"),
            ("f4", DataType::Float32, "1.5"),
            ("f8", DataType::Float64, "0.1"),
            ("ok", DataType::Boolean, "true"),
            ("t", DataType::Utf8, "héllo, \"q\""),
            ("vc", DataType::Utf8, "v"),
            ("c", DataType::Utf8, "ab "),
            ("d", DataType::Date32, "1999-12-31"),
            (
                "tm",
                DataType::Time64(TimeUnit::Microsecond),
                "13:14:15.123456",
            ),
            (
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                "2026-11-25T13:14:15.654321",
            ),
            (
                "tz",
                DataType::Timestamp(TimeUnit::Microsecond, utc),
                "2026-11-25T11:14:15.500Z",
            ),
            ("iv", DataType::Utf8, "P1DT2H"),
            ("u", DataType::Utf8, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            ("j", DataType::Utf8, "{\"a\": 1}"),
            ("jb", DataType::Utf8, "{\"b\": [1, 2]}"),
            ("by", DataType::Binary, "deadbeef"),
            ("m", DataType::Utf8, "happy"),
            ("bt", DataType::Utf8, "1010"),
            ("arr", DataType::Utf8, "[1,null,3]"),
        ],
    );
    db.exec(&format!(r#"drop schema "{schema}" cascade"#));
}

/// The CSV published under `csv/<table>/`, as lines.
fn csv_lines(dir: &Path, table: &str) -> Vec<String> {
    let files: Vec<PathBuf> = published(dir, ".csv")
        .into_iter()
        .filter(|p| p.parent().unwrap().ends_with(table))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    std::fs::read_to_string(&files[0])
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A load by `spec` (given the source's extra settings) fails by default, naming `at` and the
/// `setting` that lands the value, publishing nothing; with `setting` it succeeds.
fn fails_until_set(dir: &Path, spec: &dyn Fn(&str) -> PathBuf, at: &str, setting: &str) {
    let (stdout, _) = run_failing(dir, &spec(""));
    assert!(stdout.contains(at), "{stdout}");
    assert!(stdout.contains(&format!("set `{setting}`")), "{stdout}");
    assert!(published(dir, "").is_empty());
    run_ok(dir, &spec(&format!("    {setting}\n")));
}

#[test]
fn postgres_infinity_lands_by_the_stated_setting_and_inet_as_postgres_prints_it() {
    let Some(mut db) = Db::postgres() else { return };
    let schema = unique("pipectl_pginf");
    db.exec(&format!(
        "create schema \"{schema}\"; create table \"{schema}\".v (id int, d date, ts timestamp, tz timestamptz, ip inet, net cidr);
         insert into \"{schema}\".v values
           (1, 'infinity', 'infinity', 'infinity', '::1', '10.1.0.0/16'),
           (2, '-infinity', '-infinity', '-infinity', '10.0.0.0/8', '::/0'),
           (3, '2026-01-31', '2026-01-31 10:00', '2026-01-31 10:00+00', '192.168.1.5', '192.168.1.0/24');"
    ));
    let dir = tempfile::tempdir().unwrap();
    let spec = |setting: &str| {
        write_spec(
            dir.path(),
            &matrix_spec("postgres", &db.url, &schema, setting),
        )
    };
    fails_until_set(dir.path(), &spec, "row 1, column `d`", "infinity: clamp");
    assert_eq!(
        csv_lines(dir.path(), "v"),
        [
            "id,d,ts,tz,ip,net",
            "1,9999-12-31,9999-12-31T23:59:59.999999,9999-12-31T23:59:59.999999Z,::1,10.1.0.0/16",
            "2,0001-01-01,0001-01-01T00:00:00,0001-01-01T00:00:00Z,10.0.0.0/8,::/0",
            "3,2026-01-31,2026-01-31T10:00:00,2026-01-31T10:00:00Z,192.168.1.5,192.168.1.0/24",
        ]
    );
    let batch = read_parquet(&published(dir.path(), ".parquet")[0]);
    let d = batch
        .column_by_name("d")
        .unwrap()
        .as_primitive::<arrow::datatypes::Date32Type>();
    assert_eq!(d.value_as_date(0).unwrap().to_string(), "9999-12-31");

    std::fs::remove_dir_all(dir.path().join("lake")).unwrap();
    run_ok(dir.path(), &spec("    infinity: set_null\n"));
    let batch = read_parquet(&published(dir.path(), ".parquet")[0]);
    for column in ["d", "ts", "tz"] {
        let c = batch.column_by_name(column).unwrap();
        assert!(c.is_null(0) && c.is_null(1) && c.is_valid(2), "{column}");
    }
    db.exec(&format!("drop schema \"{schema}\" cascade"));
}

#[test]
fn json_lines_keep_nan_and_infinities_as_strings() {
    let Some(mut db) = Db::postgres() else { return };
    let schema = unique("pipectl_pgnan");
    db.exec(&format!(
        "create schema \"{schema}\"; create table \"{schema}\".m (id int, f8 double precision, f4 real);
         insert into \"{schema}\".m values (1, 'NaN', 'Infinity'), (2, 'Infinity', '-Infinity'), (3, '-Infinity', 'NaN'), (4, 0.25, null);"
    ));
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        &bookmark_spec("postgres", &db.url, &schema, "m", "").replace(
            "    tables:\n      \"m\": { bookmark: { keys: [ts, id] } }\n",
            "",
        ),
    );
    run_ok(dir.path(), &spec);
    let files = published(dir.path(), ".jsonl");
    let mut rows: Vec<serde_json::Value> = std::fs::read_to_string(&files[0])
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    rows.sort_by_key(|r| r["id"].as_i64());
    assert_eq!(
        rows,
        [
            serde_json::json!({"id": 1, "f8": "NaN", "f4": "Infinity"}),
            serde_json::json!({"id": 2, "f8": "Infinity", "f4": "-Infinity"}),
            serde_json::json!({"id": 3, "f8": "-Infinity", "f4": "NaN"}),
            serde_json::json!({"id": 4, "f8": 0.25}),
        ]
    );
    db.exec(&format!("drop schema \"{schema}\" cascade"));
}

#[test]
fn mysql_time_durations_land_as_text_by_the_stated_setting() {
    let Some(mut db) = Db::mysql() else { return };
    let schema = unique("pipectl_mytime");
    db.exec(&format!(
        "create database `{schema}`; create table `{schema}`.durations (id int, t time, t6 time(6));
         insert into `{schema}`.durations values (1, '-838:59:59', '100:00:00.5'), (2, '10:30:00', '00:00:01'), (3, null, null);"
    ));
    let dir = tempfile::tempdir().unwrap();
    let spec =
        |setting: &str| write_spec(dir.path(), &matrix_spec("mysql", &db.url, &schema, setting));
    fails_until_set(dir.path(), &spec, "row 1, column `t`", "mysql_time: text");
    assert_eq!(
        csv_lines(dir.path(), "durations"),
        [
            "id,t,t6",
            "1,-838:59:59,100:00:00.500000",
            "2,10:30:00,00:00:01.000000",
            "3,,",
        ]
    );
    let batch = read_parquet(&published(dir.path(), ".parquet")[0]);
    assert_eq!(
        batch.column_by_name("t").unwrap().data_type(),
        &DataType::Utf8
    );
    db.exec(&format!("drop database `{schema}`"));
}

/// Lands `schema`'s table `e` as CSV (NULL written as `null_value`), crawls the landing zone,
/// then reads it back with a files source into Parquet, `columns:` declaring `amount` and
/// `nothing` (a column only ever NULL). Returns the clean batch, sorted by id, and the landing
/// CSV's lines.
fn land_and_clean(
    db: &Db,
    kind: &str,
    schema: &str,
    null_value: &str,
) -> (RecordBatch, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let url = &db.url;
    let land = db_spec(
        "land",
        kind,
        &format!("url: \"{url}\""),
        &format!("    include: [{{ schema: \"{schema}\", table: e }}]\n"),
        &(lake_sink(
            "landing",
            "landing/{table}/",
            &format!("    format: {{ type: csv, null_value: '{null_value}' }}\n"),
        ) + &lake_sink("typed", "typed/{table}/", "    format: { type: parquet }\n")
            + "crawlers:
  raw:
    type: catalog
    inputs: [landing]
    database: raw
  typed_catalog:
    type: catalog
    inputs: [typed]
    database: typed
"),
    );
    let clean = format!(
        r#"version: 1
name: clean
connections:
  lake: {{ url: "file://lake" }}
sources:
  landed:
    type: files
    connection: lake
    prefix: landing/
    null_value: '{null_value}'
    columns:
      - {{ name: amount, type: "decimal(5,2)" }}
      - {{ name: nothing, type: int64 }}
sinks:
  clean:
    type: object_store
    inputs: [landed]
    connection: lake
    key: "clean/{{table}}/"
    format: {{ type: parquet }}
"#
    );
    // The same, typed by the catalog table a crawler made from the Parquet copy.
    let from_catalog = clean
        .replace("name: clean\n", "name: clean-catalog\n")
        .replace(
            "    columns:\n      - { name: amount, type: \"decimal(5,2)\" }\n      - { name: nothing, type: int64 }\n",
            "    types_from_catalog: typed\n",
        )
        .replace("clean/{table}/", "catalog/{table}/");
    std::fs::write(dir.path().join("land.yaml"), land).unwrap();
    std::fs::write(dir.path().join("clean.yaml"), clean).unwrap();
    std::fs::write(dir.path().join("catalog.yaml"), &from_catalog).unwrap();
    run_ok(dir.path(), &dir.path().join("land.yaml"));
    let lines = csv_lines(dir.path(), "e");
    let (out, stdout, stderr) =
        output(pipectl(dir.path()).args(["catalog", "show", "raw.e", "--format", "json"]));
    assert!(out.status.success(), "{stderr}");
    let table: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let n_type = table["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "n")
        .map(|c| c["type"].clone());
    assert_eq!(
        n_type,
        Some(serde_json::json!("int")),
        "the crawler reads NULL as NULL: {table}"
    );
    run_ok(dir.path(), &dir.path().join("clean.yaml"));
    run_ok(dir.path(), &dir.path().join("catalog.yaml"));
    let read = |folder: &str| {
        let parquet: Vec<PathBuf> = published(dir.path(), ".parquet")
            .into_iter()
            .filter(|p| p.starts_with(dir.path().join("lake").join(folder)))
            .collect();
        assert_eq!(parquet.len(), 1, "{parquet:?}");
        let batch = read_parquet(&parquet[0]);
        let order =
            arrow::compute::sort_to_indices(batch.column_by_name("id").unwrap(), None, None)
                .unwrap();
        arrow::compute::take_record_batch(&batch, &order).unwrap()
    };
    let catalog_typed = read("catalog");
    let amount = catalog_typed.column_by_name("amount").unwrap();
    assert_eq!(
        amount.data_type(),
        &DataType::Decimal128(5, 2),
        "typed by the catalog"
    );
    let nothing = catalog_typed.column_by_name("nothing").unwrap();
    assert_eq!(
        nothing.data_type(),
        &DataType::Int32,
        "typed by the catalog"
    );
    (read("clean"), lines)
}

/// Row 1 holds empty values, row 2 NULLs: the clean zone has them apart.
fn assert_empty_and_null_apart(batch: &RecordBatch, text_columns: &[&str]) {
    for name in text_columns {
        let column = batch
            .column_by_name(name)
            .unwrap_or_else(|| panic!("{name}"));
        let text = arrow::compute::cast(column, &DataType::Utf8).unwrap();
        let text = text.as_string::<i32>();
        assert!(
            text.is_valid(0) && text.value(0).is_empty(),
            "{name}: row 1 is ''"
        );
        assert!(text.is_null(1), "{name}: row 2 is NULL");
    }
    let amount = batch.column_by_name("amount").unwrap();
    assert_eq!(amount.data_type(), &DataType::Decimal128(5, 2));
    let amount = amount.as_primitive::<arrow::datatypes::Decimal128Type>();
    assert_eq!(amount.value(0), 99_999);
    assert_eq!(amount.value(1), -10);
    let nothing = batch.column_by_name("nothing").unwrap();
    assert_eq!(nothing.data_type(), &DataType::Int64);
    assert_eq!(nothing.null_count(), 2);
}

#[test]
fn postgres_empty_strings_and_nulls_stay_apart_from_csv_landing_to_the_clean_zone() {
    let Some(mut db) = Db::postgres() else { return };
    let schema = unique("pipectl_pgempty");
    db.exec(&format!(
        "create schema \"{schema}\"; create table \"{schema}\".e (id int, t text, vc varchar(5), by bytea, n int, amount numeric(5,2), nothing int);
         insert into \"{schema}\".e values (1, '', '', '', 5, 999.99, null), (2, null, null, null, null, -0.10, null);"
    ));
    let (batch, lines) = land_and_clean(&db, "postgres", &schema, "");
    assert_eq!(
        lines,
        [
            "id,t,vc,by,n,amount,nothing",
            "1,\"\",\"\",\"\",5,999.99,",
            "2,,,,,-0.10,"
        ]
    );
    assert_empty_and_null_apart(&batch, &["t", "vc", "by"]);
    let (batch, lines) = land_and_clean(&db, "postgres", &schema, "NULL");
    assert_eq!(lines[2], "2,NULL,NULL,NULL,NULL,-0.10,NULL");
    assert_empty_and_null_apart(&batch, &["t", "vc", "by"]);
    db.exec(&format!("drop schema \"{schema}\" cascade"));
}

#[test]
fn mysql_empty_strings_and_nulls_stay_apart_from_csv_landing_to_the_clean_zone() {
    let Some(mut db) = Db::mysql() else { return };
    let schema = unique("pipectl_myempty");
    db.exec(&format!(
        "create database `{schema}`; create table `{schema}`.e (id int, t text, c char(3), b blob, vb varbinary(4), s set('a','b'), n int, amount decimal(5,2), nothing int);
         insert into `{schema}`.e values (1, '', '', '', '', '', 5, 999.99, null), (2, null, null, null, null, null, null, -0.10, null);"
    ));
    let (batch, lines) = land_and_clean(&db, "mysql", &schema, "\\N");
    assert_eq!(
        lines,
        [
            "id,t,c,b,vb,s,n,amount,nothing",
            "1,\"\",\"\",\"\",\"\",\"\",5,999.99,\\N",
            "2,\\N,\\N,\\N,\\N,\\N,\\N,-0.10,\\N"
        ]
    );
    assert_empty_and_null_apart(&batch, &["t", "c", "b", "vb", "s"]);
    db.exec(&format!("drop database `{schema}`"));
}

#[test]
fn mysql_types_land_faithfully_in_parquet_and_csv() {
    let Some(mut db) = Db::mysql() else { return };
    let schema = unique("pipectl_mytypes");
    db.exec(&format!(
        r#"create database `{schema}`;
        create table `{schema}`.`Types "Ä" ``x``; drop` (
          id int primary key, ti tinyint, tu tinyint unsigned, s smallint, su smallint unsigned,
          mi mediumint, i int, iu int unsigned, b bigint, bu bigint unsigned, n decimal(8,2),
          n38 decimal(38,10), n65 decimal(65,2), f float, d double, t text, vc varchar(10), c char(3),
          dt date, tm time(6), ts datetime(6), tz timestamp(6) null, j json, bl blob, vb varbinary(8),
          e enum('sad','happy'), bt bit(4), y year, u uuid);
        set time_zone = '+02:00';
        insert into `{schema}`.`Types "Ä" ``x``; drop` values
          (1, -128, 255, -32768, 65535, -8388608, 2147483647, 4294967295, -9223372036854775808,
           18446744073709551615, -123456.78, 1234567890123456789012345678.0123456789,
           123456789012345678901234567890123456789012345678901234567890123.45, 1.5, 0.1, 'héllo, "q"',
           'v', 'ab', '1999-12-31', '13:14:15.123456', '2026-11-25 13:14:15.654321',
           '2026-11-25 13:14:15.5', '{{"a": 1}}', x'deadbeef', x'00ff', 'happy', b'1010', 2026,
           'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
          (2, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null,
           null, null, null, null, null, null, null, null, null, null, null, null, null);"#
    ));
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), &matrix_spec("mysql", &db.url, &schema, ""));
    run_ok(dir.path(), &spec);
    check_matrix(
        dir.path(),
        &[
            ("id", DataType::Int32, "1"),
            ("ti", DataType::Int8, "-128"),
            ("tu", DataType::UInt8, "255"),
            ("s", DataType::Int16, "-32768"),
            ("su", DataType::UInt16, "65535"),
            ("mi", DataType::Int32, "-8388608"),
            ("i", DataType::Int32, "2147483647"),
            ("iu", DataType::UInt32, "4294967295"),
            ("b", DataType::Int64, "-9223372036854775808"),
            ("bu", DataType::UInt64, "18446744073709551615"),
            ("n", DataType::Decimal128(8, 2), "-123456.78"),
            (
                "n38",
                DataType::Decimal128(38, 10),
                "1234567890123456789012345678.0123456789",
            ),
            (
                "n65",
                DataType::Utf8,
                "123456789012345678901234567890123456789012345678901234567890123.45",
            ),
            ("f", DataType::Float32, "1.5"),
            ("d", DataType::Float64, "0.1"),
            ("t", DataType::Utf8, "héllo, \"q\""),
            ("vc", DataType::Utf8, "v"),
            ("c", DataType::Utf8, "ab"),
            ("dt", DataType::Date32, "1999-12-31"),
            (
                "tm",
                DataType::Time64(TimeUnit::Microsecond),
                "13:14:15.123456",
            ),
            (
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                "2026-11-25T13:14:15.654321",
            ),
            // Inserted at +02:00, read in UTC.
            (
                "tz",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                "2026-11-25T11:14:15.500Z",
            ),
            ("j", DataType::Utf8, "{\"a\": 1}"),
            ("bl", DataType::Binary, "deadbeef"),
            ("vb", DataType::Binary, "00ff"),
            ("e", DataType::Utf8, "happy"),
            ("bt", DataType::Utf8, "1010"),
            ("y", DataType::Int16, "2026"),
            ("u", DataType::Utf8, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        ],
    );
    db.exec(&format!("drop database `{schema}`"));
}

#[test]
fn an_unmappable_type_fails_naming_table_and_column_or_lands_as_text() {
    let Some(mut db) = Db::postgres() else { return };
    let schema = unique("pipectl_pgunmapped");
    db.exec(&format!(
        r#"create schema "{schema}"; create table "{schema}".shapes (id int, p point);
        insert into "{schema}".shapes values (1, '(1,2)');"#
    ));
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), &matrix_spec("postgres", &db.url, &schema, ""));
    let (out, stdout, stderr) = output(pipectl(dir.path()).args(["run", "-q"]).arg(&spec));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "table {schema}.shapes, column `p`: type `point` cannot be mapped"
        )),
        "{stdout}"
    );
    let spec = write_spec(
        dir.path(),
        &matrix_spec("postgres", &db.url, &schema, "    unmapped_types: text\n"),
    );
    run_ok(dir.path(), &spec);
    let batch = read_parquet(&published(dir.path(), ".parquet")[0]);
    let p = batch.column_by_name("p").unwrap().as_string::<i32>();
    assert_eq!(p.value(0), "(1,2)");
    db.exec(&format!(r#"drop schema "{schema}" cascade"#));
}

#[test]
fn plan_lists_the_tables_the_rules_select_on_the_live_database() {
    let Some(mut db) = Db::mysql() else { return };
    let schema = unique("pipectl_myrules");
    db.exec(&format!(
        "create database `{schema}`; create table `{schema}`.film (id int); create table `{schema}`.film_actor (id int);
         create table `{schema}`.film_text (id int); create table `{schema}`.actor (id int);"
    ));
    let dir = tempfile::tempdir().unwrap();
    let spec = db_spec(
        "rules",
        "mysql",
        &format!("url: \"{}\"", db.url),
        &format!(
            "    include: [{{ schema: \"%{}%\", table: \"film%\" }}]\n    exclude: [{{ table: \"film_t%\" }}]\n",
            &schema["pipectl_".len()..]
        ),
        &lake_sink("out", "{schema}/{table}/", "    format: { type: csv }\n"),
    );
    let spec = write_spec(dir.path(), &spec);
    let plan = crate::common::plan_json(dir.path(), &spec);
    let reads: Vec<String> = plan["steps"][0]["reads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["table"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        reads,
        [format!("{schema}.film"), format!("{schema}.film_actor")]
    );
    db.exec(&format!("drop database `{schema}`"));
}

fn bookmark_spec(kind: &str, url: &str, schema: &str, table: &str, extra: &str) -> String {
    db_spec(
        "incr",
        kind,
        &format!("url: \"{url}\""),
        &format!(
            "    batch_rows: 500
    include: [{{ schema: \"{schema}\", table: \"{table}\" }}]
    tables:
      \"{table}\": {{ bookmark: {{ keys: [ts, id] }} }}
{extra}"
        ),
        &lake_sink("out", "events/", "    format: { type: jsonl }\n"),
    )
}

/// Fails with a short summary (counts, duplicates, missing ids) unless `actual == expected`.
fn assert_same_ids(actual: &[i64], expected: &[i64], context: &str) {
    if actual == expected {
        return;
    }
    let duplicates: Vec<i64> = actual
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    let missing: Vec<i64> = expected
        .iter()
        .filter(|id| actual.binary_search(id).is_err())
        .copied()
        .collect();
    panic!(
        "{context}: {} rows published, {} expected; duplicates (first 20): {:?}; missing (first 20): {:?}",
        actual.len(),
        expected.len(),
        &duplicates[..duplicates.len().min(20)],
        &missing[..missing.len().min(20)]
    );
}

/// Every id in the published JSON-lines files, sorted, duplicates kept.
fn published_ids(dir: &Path) -> Vec<i64> {
    let mut ids = Vec::new();
    for f in published(dir, ".jsonl") {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            ids.push(v["id"].as_i64().unwrap());
        }
    }
    ids.sort();
    ids
}

fn state_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let (out, stdout, stderr) = output(
        pipectl(dir)
            .arg("state")
            .args(args)
            .args(["--format", "json"]),
    );
    assert!(out.status.success(), "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

fn incremental_loads(mut db: Db, kind: &str, table_sql: &str, from: &str, schema: &str) {
    let insert = |db: &mut Db, from: &str, first: i64, n: i64, ts: &str| {
        let ts = if kind == "postgres" {
            format!("'{ts}'::timestamptz")
        } else {
            format!("'{ts}'")
        };
        db.exec(&format!(
            "insert into {from} (id, ts, note) select g, {ts}, 'n' from ({}) s",
            series(kind, first, n)
        ));
    };
    db.exec(table_sql);
    // Rows 1..=100 share one timestamp: only the tuple (ts, id) tells them apart.
    insert(&mut db, from, 1, 100, "2026-01-01 00:00:00.000001");
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        &bookmark_spec(kind, &db.url, schema, "events", ""),
    );
    run_ok(dir.path(), &spec);
    assert_same_ids(
        &published_ids(dir.path()),
        &(1..=100).collect::<Vec<_>>(),
        "published ids",
    );
    let stream = format!("src.{schema}.events");
    let shown = state_json(dir.path(), &["show", "incr", &stream]);
    assert_eq!(shown["current"]["values"][1], "100");

    // Same timestamp, higher ids, then later timestamps: all new, nothing twice.
    insert(&mut db, from, 101, 50, "2026-01-01 00:00:00.000001");
    insert(&mut db, from, 151, 50, "2026-01-02 00:00:00");
    let (out, stdout, _) = output(pipectl(dir.path()).arg("plan").arg(&spec));
    assert!(out.status.success());
    assert!(stdout.contains("$2 = \"100\""), "{stdout}");
    run_ok(dir.path(), &spec);
    assert_same_ids(
        &published_ids(dir.path()),
        &(1..=200).collect::<Vec<_>>(),
        "published ids",
    );

    // No new rows: the run succeeds, writes no file and leaves the bookmark.
    let files = published(dir.path(), ".jsonl").len();
    run_ok(dir.path(), &spec);
    assert_eq!(published(dir.path(), ".jsonl").len(), files);
    let shown = state_json(dir.path(), &["show", "incr", &stream]);
    assert_eq!(shown["history"].as_array().unwrap().len(), 2);
    assert_eq!(shown["current"]["values"][1], "200");

    // Rewinding to before the second run re-reads exactly its rows.
    let second = shown["history"][1]["run_id"].as_str().unwrap().to_owned();
    let (out, _, stderr) = output(
        pipectl(dir.path())
            .args(["state", "rewind", "incr", &stream, "--before"])
            .arg(&second),
    );
    assert!(out.status.success(), "{stderr}");
    let shown = state_json(dir.path(), &["show", "incr", &stream]);
    assert_eq!(shown["current"]["values"][1], "100");
    std::fs::remove_dir_all(dir.path().join("lake")).unwrap();
    run_ok(dir.path(), &spec);
    assert_same_ids(
        &published_ids(dir.path()),
        &(101..=200).collect::<Vec<_>>(),
        "published ids",
    );

    // Reset: everything again.
    let (out, _, stderr) = output(pipectl(dir.path()).args(["state", "reset", "incr", &stream]));
    assert!(out.status.success(), "{stderr}");
    std::fs::remove_dir_all(dir.path().join("lake")).unwrap();
    run_ok(dir.path(), &spec);
    assert_same_ids(
        &published_ids(dir.path()),
        &(1..=200).collect::<Vec<_>>(),
        "published ids",
    );
}

/// A `select g` producing `first..first+n` in the dialect.
fn series(kind: &str, first: i64, n: i64) -> String {
    match kind {
        "postgres" => format!("select generate_series({first}, {}) as g", first + n - 1),
        _ => format!("select seq as g from seq_{first}_to_{}", first + n - 1),
    }
}

#[test]
fn postgres_bookmarks_read_only_new_rows_and_can_be_rewound() {
    let Some(db) = Db::postgres() else { return };
    let schema = unique("pipectl_pgincr");
    let from = format!("\"{schema}\".events");
    let table = format!(
        "create schema \"{schema}\"; create table {from} (id bigint primary key, ts timestamptz not null, note text)"
    );
    incremental_loads(db, "postgres", &table, &from, &schema);
    let mut db = Db::postgres().unwrap();
    db.exec(&format!("drop schema \"{schema}\" cascade"));
}

#[test]
fn mysql_bookmarks_read_only_new_rows_and_can_be_rewound() {
    let Some(db) = Db::mysql() else { return };
    let schema = unique("pipectl_myincr");
    let from = format!("`{schema}`.events");
    let table = format!(
        "create database `{schema}`; create table {from} (id bigint primary key, ts datetime(6) not null, note text)"
    );
    incremental_loads(db, "mysql", &table, &from, &schema);
    let mut db = Db::mysql().unwrap();
    db.exec(&format!("drop database `{schema}`"));
}

#[test]
fn a_failed_run_leaves_the_bookmark_where_it_was() {
    let Some(mut db) = Db::postgres() else { return };
    let schema = unique("pipectl_pgfail");
    let from = format!("\"{schema}\".events");
    db.exec(&format!(
        "create schema \"{schema}\"; create table {from} (id bigint primary key, ts timestamptz not null, note text);
         insert into {from} select g, '2026-01-01'::timestamptz, g::text from generate_series(1, 10) g;"
    ));
    let dir = tempfile::tempdir().unwrap();
    // Casting `note` to an integer fails on the first row whose note is not a number.
    let cast =
        "transforms:\n  strict:\n    type: cast\n    inputs: [src]\n    columns: { note: int64 }\n";
    let text = bookmark_spec("postgres", &db.url, &schema, "events", cast).replace(
        "    inputs: [src]\n    connection: lake",
        "    inputs: [strict]\n    connection: lake",
    );
    let spec = write_spec(dir.path(), &text);
    run_ok(dir.path(), &spec);
    let stream = format!("src.{schema}.events");
    let before = state_json(dir.path(), &["show", "incr", &stream]);
    db.exec(&format!(
        "insert into {from} select g, '2026-01-02'::timestamptz, 'x' || g from generate_series(11, 20) g"
    ));
    let (out, stdout, stderr) = output(pipectl(dir.path()).args(["run", "-q"]).arg(&spec));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let after = state_json(dir.path(), &["show", "incr", &stream]);
    assert_eq!(before, after, "a failed run moved the bookmark");
    db.exec(&format!("update {from} set note = id::text"));
    run_ok(dir.path(), &spec);
    assert_same_ids(
        &published_ids(dir.path()),
        &(1..=20).collect::<Vec<_>>(),
        "published ids",
    );
    db.exec(&format!("drop schema \"{schema}\" cascade"));
}

#[test]
fn kill_9_during_full_and_incremental_loads_then_rerun_publishes_every_row_once() {
    let Some(mut db) = Db::postgres() else { return };
    let schema = unique("pipectl_pgkill");
    let from = format!("\"{schema}\".events");
    db.exec(&format!(
        "create schema \"{schema}\"; create table {from} (id bigint primary key, ts timestamptz not null, note text)"
    ));
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        &bookmark_spec("postgres", &db.url, &schema, "events", ""),
    );
    let mut next = 1i64;
    let mut kills: BTreeMap<&str, u32> = BTreeMap::new();
    // The first round is the full load; later rounds are incremental.
    for round in 0..6u64 {
        db.exec(&format!(
            "insert into {from} select g, now(), repeat('x', 50) from generate_series({next}, {}) g",
            next + 14_999
        ));
        next += 15_000;
        // Spread the kills over connecting, reading, staging and publishing.
        let delay = Duration::from_millis(40 + (round * 97 + fastrand_u32() as u64) % 400);
        let finished = !crate::common::run_and_kill(dir.path(), &spec, delay);
        *kills
            .entry(if finished { "finished" } else { "killed" })
            .or_default() += 1;
        run_ok(dir.path(), &spec);
        let expected = db.ids(&from);
        assert_same_ids(
            &published_ids(dir.path()),
            &expected,
            &format!("round {round}: the lake does not hold exactly the source rows"),
        );
    }
    eprintln!("kill rounds: {kills:?}");
    db.exec(&format!("drop schema \"{schema}\" cascade"));
}

impl Db {
    /// Terminates the backends whose `application_name` is `app`; returns how many.
    fn terminate(&mut self, app: &str) -> i64 {
        self.terminate_where(app, "true")
    }

    /// Terminates the backends of `app` that are running a `COPY` (reading rows) right now.
    fn terminate_copying(&mut self, app: &str) -> i64 {
        self.terminate_where(app, "state = 'active' and query ilike 'copy%'")
    }

    fn terminate_where(&mut self, app: &str, condition: &str) -> i64 {
        let c = self.pg.as_mut().expect("PostgreSQL");
        self.rt
            .block_on(
                sqlx::query_scalar(&format!(
                    "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1 and {condition}) t"
                ))
                .bind(app)
                .fetch_one(c),
            )
            .unwrap()
    }
}

#[test]
fn a_dropped_connection_is_retried_then_fails_clearly_leaving_the_bookmark() {
    let Some(mut db) = Db::postgres() else { return };
    let schema = unique("pipectl_pgdrop");
    let from = format!("\"{schema}\".events");
    db.exec(&format!(
        "create schema \"{schema}\"; create table {from} (id bigint primary key, ts timestamptz not null, note text);
         insert into {from} select g, now(), repeat('x', 100) from generate_series(1, 150000) g;"
    ));
    let app = unique("pipectl_drop");
    let url = format!("{}?application_name={app}", db.url);
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        &bookmark_spec("postgres", &url, &schema, "events", ""),
    );
    let run = |dir: &Path| {
        pipectl(dir)
            .arg("run")
            .arg(&spec)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };

    // Dropped once mid-read (during the COPY, not while the session is merely open): the run is
    // tried again and publishes every row once.
    let child = run(dir.path());
    let mut terminated = 0;
    for _ in 0..2000 {
        terminated = db.terminate_copying(&app);
        if terminated > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(terminated > 0, "the COPY was never seen running");
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("attempt 1 of 3 failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_ids(
        &published_ids(dir.path()),
        &(1..=150_000).collect::<Vec<_>>(),
        "after a retried read",
    );
    let stream = format!("src.{schema}.events");
    let before = state_json(dir.path(), &["show", "incr", &stream]);

    // Dropped on every attempt: a clear failure, nothing new published, bookmark unchanged.
    db.exec(&format!(
        "insert into {from} select g, now(), repeat('y', 100) from generate_series(150001, 300000) g"
    ));
    let files = published(dir.path(), ".jsonl");
    let child = run(dir.path());
    let pid = child.id();
    let killer = std::thread::spawn({
        let app = app.clone();
        move || {
            let mut db = Db::postgres().unwrap();
            let mut killed = 0;
            while std::path::Path::new(&format!("/proc/{pid}")).exists() {
                killed += db.terminate(&app);
                std::thread::sleep(Duration::from_millis(2));
            }
            killed
        }
    });
    let out = child.wait_with_output().unwrap();
    let killed = killer.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout} (killed {killed})");
    assert!(stdout.contains("gave up after 3 attempts"), "{stdout}");
    assert_eq!(published(dir.path(), ".jsonl"), files);
    assert_eq!(state_json(dir.path(), &["show", "incr", &stream]), before);
    db.exec(&format!("drop schema \"{schema}\" cascade"));
}

/// Runs `spec`, expecting a failure; returns (stdout, stderr).
fn run_failing(dir: &Path, spec: &Path) -> (String, String) {
    let (out, stdout, stderr) = output(pipectl(dir).arg("run").arg(spec));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    (stdout, stderr)
}

/// A refusal fails on the first attempt, and its message holds each cause once.
fn assert_refused_once(stdout: &str, stderr: &str, cause: &str) {
    let error = stdout
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in {stdout}"));
    assert_eq!(error.matches(cause).count(), 1, "{error}");
    assert!(!error.contains("gave up after"), "{error}");
    assert!(!stderr.contains("attempt 1 of"), "retried: {stderr}");
    assert!(
        !stderr.contains(cause),
        "the cause is printed again on stderr: {stderr}"
    );
}

#[test]
fn permission_denied_and_failed_logins_are_not_retried_and_say_why_once() {
    let Some(mut pg) = Db::postgres() else { return };
    let schema = unique("pipectl_pgdenied");
    let role = unique("pipectl_reader");
    pg.exec(&format!(
        "create schema \"{schema}\"; create table \"{schema}\".t (id int); insert into \"{schema}\".t values (1);
         create role {role} login; grant usage on schema \"{schema}\" to {role};"
    ));
    let dir = tempfile::tempdir().unwrap();
    let url = pg.url.replacen("postgres@", &format!("{role}@"), 1);
    let spec = write_spec(dir.path(), &matrix_spec("postgres", &url, &schema, ""));
    let (stdout, stderr) = run_failing(dir.path(), &spec);
    assert_refused_once(&stdout, &stderr, "permission denied for table t");
    pg.exec(&format!(
        "drop schema \"{schema}\" cascade; drop owned by {role}; drop role {role}"
    ));

    let Some(my) = Db::mysql() else { return };
    let url = my.url.replacen("root@", "pipectl_nobody@", 1);
    let spec = write_spec(dir.path(), &matrix_spec("mysql", &url, "test", ""));
    let (stdout, stderr) = run_failing(dir.path(), &spec);
    assert_refused_once(&stdout, &stderr, "Access denied for user 'pipectl_nobody'");
    assert!(published(dir.path(), "").is_empty());
}

#[test]
fn a_slow_view_read_logs_no_warning_at_the_default_level() {
    let Some(mut db) = Db::mysql() else { return };
    let schema = unique("pipectl_myslow");
    db.exec(&format!(
        "create database `{schema}`; create view `{schema}`.slow as select 1 as id, sleep(1.2) as slept;"
    ));
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        &matrix_spec("mysql", &db.url, &schema, "")
            .replace("table: \"%\" }", "table: slow, table_type: view }"),
    );
    let (out, stdout, stderr) = output(pipectl(dir.path()).arg("run").arg(&spec));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(!stderr.contains("slow statement"), "{stderr}");
    assert!(!stderr.contains("WARN"), "{stderr}");
    assert_eq!(published(dir.path(), ".csv").len(), 1);
    db.exec(&format!("drop database `{schema}`"));
}

/// `schema` holds table `t` and view `v`: `%` lands the table only, `table_type: view` the
/// view, and a rule that matches nothing warns, or fails `run --strict` and `plan --strict`.
fn rules_by_table_type(mut db: Db, kind: &str, schema: &str) {
    let dir = tempfile::tempdir().unwrap();
    let tables = |dir: &Path| {
        let mut names: Vec<String> = published(dir, ".csv")
            .iter()
            .map(|p| {
                p.parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    };
    let spec = write_spec(dir.path(), &matrix_spec(kind, &db.url, schema, ""));
    let (out, stdout, stderr) = output(pipectl(dir.path()).arg("run").arg(&spec));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(tables(dir.path()), ["t"], "views are not loaded by default");
    assert!(!stderr.contains("matches no"), "{stderr}");

    std::fs::remove_dir_all(dir.path().join("lake")).unwrap();
    let rules = format!(
        "include: [{{ schema: \"{schema}\", table: \"%\", table_type: view }}, {{ schema: \"{schema}\", table: v }}, {{ schema: \"{schema}\", table: nosuch }}]"
    );
    let text = matrix_spec(kind, &db.url, schema, "").replace(
        &format!("include: [{{ schema: \"{schema}\", table: \"%\" }}]"),
        &rules,
    );
    let spec = write_spec(dir.path(), &text);
    let (out, stdout, stderr) = output(pipectl(dir.path()).arg("run").arg(&spec));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(tables(dir.path()), ["v"]);
    assert!(
        stderr.contains(&format!(
            "source `src`: include rule 2 (schema `{schema}`, table `v`) matches no table; it names 1 view: add `table_type: view` (or `all`) to the rule"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "source `src`: include rule 3 (schema `{schema}`, table `nosuch`) matches no table"
        )),
        "{stderr}"
    );

    std::fs::remove_dir_all(dir.path().join("lake")).unwrap();
    let (out, stdout, stderr) = output(pipectl(dir.path()).args(["run", "--strict"]).arg(&spec));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("table `nosuch`) matches no table"),
        "{stdout}"
    );
    assert!(published(dir.path(), "").is_empty());

    let (out, stdout, stderr) = output(pipectl(dir.path()).args(["plan", "--strict"]).arg(&spec));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("warning: include rule 3"), "{stdout}");
    assert!(
        stderr.contains("table `nosuch`) matches no table"),
        "{stderr}"
    );
    let (out, _, _) = output(pipectl(dir.path()).arg("plan").arg(&spec));
    assert!(out.status.success(), "plan warns without --strict");
    db.exec(&format!("drop view {}", qualified(kind, schema, "v")));
}

fn qualified(kind: &str, schema: &str, name: &str) -> String {
    match kind {
        "postgres" => format!("\"{schema}\".{name}"),
        _ => format!("`{schema}`.{name}"),
    }
}

#[test]
fn postgres_rules_select_tables_by_default_views_by_table_type_and_report_empty_rules() {
    let Some(mut db) = Db::postgres() else { return };
    let schema = unique("pipectl_pgrules");
    db.exec(&format!(
        "create schema \"{schema}\"; create table \"{schema}\".t (id int); insert into \"{schema}\".t values (1);
         create view \"{schema}\".v as select id from \"{schema}\".t;"
    ));
    rules_by_table_type(Db::postgres().unwrap(), "postgres", &schema);
    db.exec(&format!("drop schema \"{schema}\" cascade"));
}

#[test]
fn mysql_rules_select_tables_by_default_views_by_table_type_and_report_empty_rules() {
    let Some(mut db) = Db::mysql() else { return };
    let schema = unique("pipectl_myrules");
    db.exec(&format!(
        "create database `{schema}`; create table `{schema}`.t (id int); insert into `{schema}`.t values (1);
         create view `{schema}`.v as select id from `{schema}`.t;"
    ));
    rules_by_table_type(Db::mysql().unwrap(), "mysql", &schema);
    db.exec(&format!("drop database `{schema}`"));
}

#[test]
fn a_whole_url_from_the_environment_is_used_and_never_printed() {
    let Some(mut db) = Db::postgres() else { return };
    let schema = unique("pipectl_pgenvurl");
    db.exec(&format!(
        "create schema \"{schema}\"; create table \"{schema}\".t (id int); insert into \"{schema}\".t select generate_series(1, 5);"
    ));
    let dir = tempfile::tempdir().unwrap();
    // Trust authentication ignores the password, which must still never be shown.
    let secret = "pw-9f3e1c-secret";
    let url = db
        .url
        .replacen("postgres@", &format!("postgres:{secret}@"), 1);
    let spec = write_spec(
        dir.path(),
        &matrix_spec("postgres", "${env:PIPECTL_TEST_DATABASE_URL}", &schema, ""),
    );
    let with_url = |cmd: &mut std::process::Command| {
        cmd.env("PIPECTL_TEST_DATABASE_URL", &url);
    };
    let mut outputs = String::new();
    for args in [
        &["validate"][..],
        &["plan"],
        &["run"],
        &["runs", "--format", "json"],
    ] {
        let mut cmd = pipectl(dir.path());
        cmd.args(args);
        if args[0] != "runs" {
            cmd.arg(&spec);
        }
        with_url(&mut cmd);
        let (out, stdout, stderr) = output(&mut cmd);
        assert!(out.status.success(), "{args:?}: {stdout}{stderr}");
        outputs.push_str(&stdout);
        outputs.push_str(&stderr);
    }
    assert!(!outputs.contains(secret), "{outputs}");
    assert!(!outputs.contains("127.0.0.1:5432"), "{outputs}");
    let ids = published_ids_csv(dir.path());
    assert_eq!(ids, [1, 2, 3, 4, 5]);

    // A value that is not a URL fails at run time without showing it.
    let mut cmd = pipectl(dir.path());
    cmd.arg("run")
        .arg(&spec)
        .env("PIPECTL_TEST_DATABASE_URL", secret);
    let (out, stdout, stderr) = output(&mut cmd);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout
            .contains("(${env:PIPECTL_TEST_DATABASE_URL}) is not a URL a `postgres` source reads"),
        "{stdout}"
    );
    assert!(!format!("{stdout}{stderr}").contains(secret));

    // A password written into the spec is still refused.
    let literal = write_spec(dir.path(), &matrix_spec("postgres", &url, &schema, ""));
    let (out, _, stderr) = output(pipectl(dir.path()).arg("validate").arg(&literal));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("the URL contains a password written into the spec"),
        "{stderr}"
    );
    db.exec(&format!("drop schema \"{schema}\" cascade"));
}

/// The `id` column of every published CSV file, sorted.
fn published_ids_csv(dir: &Path) -> Vec<i64> {
    let mut ids: Vec<i64> = published(dir, ".csv")
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .skip(1)
                .map(|l| l.split(',').next().unwrap().parse::<i64>().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    ids.sort();
    ids
}

#[test]
fn a_settle_window_leaves_recent_rows_for_a_later_run() {
    let Some(mut db) = Db::postgres() else { return };
    let schema = unique("pipectl_pgsettle");
    let from = format!("\"{schema}\".events");
    db.exec(&format!(
        "create schema \"{schema}\"; create table {from} (id bigint primary key, ts timestamptz not null, note text);
         insert into {from} values (1, now() - interval '1 hour', 'old'), (2, now() - interval '5 seconds', 'recent');"
    ));
    let dir = tempfile::tempdir().unwrap();
    let spec = bookmark_spec("postgres", &db.url, &schema, "events", "").replace(
        "bookmark: { keys: [ts, id] }",
        "bookmark: { keys: [ts, id], settle_secs: 600 }",
    );
    let spec = write_spec(dir.path(), &spec);
    run_ok(dir.path(), &spec);
    assert_same_ids(&published_ids(dir.path()), &[1], "first run");
    // Time passes: the recent row settles.
    db.exec(&format!(
        "update {from} set ts = now() - interval '20 minutes' where id = 2"
    ));
    run_ok(dir.path(), &spec);
    assert_same_ids(&published_ids(dir.path()), &[1, 2], "after settling");
    db.exec(&format!("drop schema \"{schema}\" cascade"));
}

#[test]
fn null_keys_are_skipped_or_fail_the_run() {
    let Some(mut db) = Db::mysql() else { return };
    let schema = unique("pipectl_mynull");
    let from = format!("`{schema}`.events");
    db.exec(&format!(
        "create database `{schema}`; create table {from} (id bigint primary key, ts datetime(6) null, note text);
         insert into {from} values (1, '2026-01-01', 'a'), (2, null, 'b'), (3, '2026-01-02', 'c');"
    ));
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        &bookmark_spec("mysql", &db.url, &schema, "events", ""),
    );
    run_ok(dir.path(), &spec);
    assert_same_ids(&published_ids(dir.path()), &[1, 3], "NULL keys skipped");
    let strict = bookmark_spec("mysql", &db.url, &schema, "events", "").replace(
        "bookmark: { keys: [ts, id] }",
        "bookmark: { keys: [ts, id], null_keys: fail }",
    );
    let spec = write_spec(dir.path(), &strict);
    let (out, stdout, stderr) = output(pipectl(dir.path()).args(["run", "-q"]).arg(&spec));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "table {schema}.events: 1 rows have a NULL bookmark key and `null_keys: fail` is set"
        )),
        "{stdout}"
    );
    db.exec(&format!("drop database `{schema}`"));
}

#[test]
fn a_backfill_rereads_a_date_range_and_leaves_the_bookmark() {
    let Some(mut db) = Db::postgres() else { return };
    let schema = unique("pipectl_pgbackfill");
    let from = format!("\"{schema}\".events");
    db.exec(&format!(
        "create schema \"{schema}\"; create table {from} (id bigint primary key, ts timestamptz not null, note text);
         insert into {from} select g, timestamptz '2026-01-01' + (g - 1) * interval '1 day', 'n' from generate_series(1, 31) g;"
    ));
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        &bookmark_spec("postgres", &db.url, &schema, "events", ""),
    );
    run_ok(dir.path(), &spec);
    let stream = format!("src.{schema}.events");
    let before = state_json(dir.path(), &["show", "incr", &stream]);
    std::fs::remove_dir_all(dir.path().join("lake")).unwrap();
    let (out, stdout, stderr) = output(
        pipectl(dir.path())
            .args([
                "run",
                "-q",
                "--backfill-from",
                "2026-01-10",
                "--backfill-to",
                "2026-01-20",
            ])
            .arg(&spec),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_same_ids(
        &published_ids(dir.path()),
        &(10..20).collect::<Vec<_>>(),
        "backfill of 2026-01-10 .. 2026-01-20",
    );
    assert_eq!(state_json(dir.path(), &["show", "incr", &stream]), before);
    db.exec(&format!("drop schema \"{schema}\" cascade"));
}

/// Two bookmarked tables whose keys have different types: `orders` on an integer `id`, `logs`
/// on a timestamp `ts`; 31 rows each (ids 1..=31, one day apart from 2026-01-01).
fn two_key_types_spec(kind: &str, url: &str, schema: &str) -> String {
    db_spec(
        "mixed",
        kind,
        &format!("url: \"{url}\""),
        &format!(
            "    include: [{{ schema: \"{schema}\", table: \"%\" }}]
    tables:
      orders: {{ bookmark: {{ keys: [id] }} }}
      logs: {{ bookmark: {{ keys: [ts] }} }}
"
        ),
        &lake_sink("out", "{table}/", "    format: { type: jsonl }\n"),
    )
}

/// `(table folder, id)` of every published row, sorted.
fn published_rows(dir: &Path) -> Vec<(String, i64)> {
    let mut rows = Vec::new();
    for f in published(dir, ".jsonl") {
        let table = f
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            rows.push((table.clone(), v["id"].as_i64().unwrap()));
        }
    }
    rows.sort();
    rows
}

#[test]
fn a_backfill_names_its_tables_and_checks_bounds_against_each_key_type() {
    let Some(mut db) = Db::postgres() else { return };
    let schema = unique("pipectl_pgbackfill2");
    db.exec(&format!(
        "create schema \"{schema}\";
         create table \"{schema}\".orders (id bigint primary key);
         create table \"{schema}\".logs (id int, ts timestamptz not null);
         insert into \"{schema}\".orders select generate_series(1, 31);
         insert into \"{schema}\".logs select g, timestamptz '2026-01-01' + (g - 1) * interval '1 day' from generate_series(1, 31) g;"
    ));
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        &two_key_types_spec("postgres", &db.url, &schema),
    );
    run_ok(dir.path(), &spec);
    let bookmarks = state_json(dir.path(), &["mixed"]);
    std::fs::remove_dir_all(dir.path().join("lake")).unwrap();
    let backfill = |args: &[&str]| {
        output(
            pipectl(dir.path())
                .args(["run", "-q"])
                .args(args)
                .arg(&spec),
        )
    };

    // Dates do not fit the integer key: refused before connecting, naming the table and key.
    let (out, stdout, stderr) = backfill(&[
        "--backfill-from",
        "2026-01-10",
        "--backfill-to",
        "2026-01-20",
    ]);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!(
            "table {schema}.orders, key `id` is `bigint`: --backfill-from `2026-01-10` is not an integer"
        )) && stderr.contains("--table"),
        "{stderr}"
    );
    assert_eq!(runs_of(dir.path()), 1, "nothing ran");

    // Named, only the timestamp table is read, in the range.
    let (out, stdout, stderr) = backfill(&[
        "--backfill-from",
        "2026-01-10",
        "--backfill-to",
        "2026-01-20",
        "--table",
        "logs",
    ]);
    assert!(out.status.success(), "{stdout}{stderr}");
    let expected: Vec<(String, i64)> = (10..20).map(|id| ("logs".to_owned(), id)).collect();
    assert_eq!(published_rows(dir.path()), expected);

    // An inverted or empty range, and a table name that matches no bookmark, are refused.
    std::fs::remove_dir_all(dir.path().join("lake")).unwrap();
    for (args, message) in [
        (
            &[
                "--backfill-from",
                "20",
                "--backfill-to",
                "10",
                "--table",
                "orders",
            ][..],
            "the range from 20 to 10 is empty",
        ),
        (
            &[
                "--backfill-from",
                "5",
                "--backfill-to",
                "5",
                "--table",
                "orders",
            ],
            "the range from 5 to 5 is empty",
        ),
        (
            &[
                "--backfill-from",
                "1",
                "--backfill-to",
                "5",
                "--table",
                "order",
            ],
            "--table `order` names no bookmarked table",
        ),
    ] {
        let (out, stdout, stderr) = backfill(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    assert!(published(dir.path(), "").is_empty());
    assert_eq!(
        state_json(dir.path(), &["mixed"]),
        bookmarks,
        "bookmarks stay"
    );
    db.exec(&format!("drop schema \"{schema}\" cascade"));
}

fn runs_of(dir: &Path) -> usize {
    let (out, stdout, stderr) = output(pipectl(dir).args(["runs", "--format", "json"]));
    assert!(out.status.success(), "{stderr}");
    serde_json::from_str::<serde_json::Value>(&stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .len()
}

/// `state set` refuses a value of the wrong type for the key's column, leaving the bookmark.
fn state_set_is_type_checked(mut db: Db, kind: &str, schema: &str) {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), &two_key_types_spec(kind, &db.url, schema));
    run_ok(dir.path(), &spec);
    let stream = format!("src.{schema}.orders");
    let before = state_json(dir.path(), &["show", "mixed", &stream]);
    let (out, stdout, stderr) = output(pipectl(dir.path()).args([
        "state",
        "set",
        "mixed",
        &stream,
        "--value",
        "notanumber",
    ]));
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("key `id` of"), "{stderr}");
    assert!(
        stderr.contains("`notanumber` is not an integer"),
        "{stderr}"
    );
    assert_eq!(state_json(dir.path(), &["show", "mixed", &stream]), before);
    let logs = format!("src.{schema}.logs");
    let (out, _, stderr) =
        output(pipectl(dir.path()).args(["state", "set", "mixed", &logs, "--value", "42"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("`42` is not a timestamp"), "{stderr}");

    // A value of the right type is taken and the next run reads past it.
    let (out, stdout, stderr) =
        output(pipectl(dir.path()).args(["state", "set", "mixed", &stream, "--value", "28"]));
    assert!(out.status.success(), "{stdout}{stderr}");
    std::fs::remove_dir_all(dir.path().join("lake")).unwrap();
    run_ok(dir.path(), &spec);
    let orders: Vec<i64> = published_rows(dir.path())
        .into_iter()
        .filter(|(t, _)| t == "orders")
        .map(|(_, id)| id)
        .collect();
    assert_eq!(orders, [29, 30, 31]);
    let _ = &mut db;
}

#[test]
fn postgres_state_set_is_checked_against_the_key_type() {
    let Some(mut db) = Db::postgres() else { return };
    let schema = unique("pipectl_pgstateset");
    db.exec(&format!(
        "create schema \"{schema}\";
         create table \"{schema}\".orders (id bigint primary key);
         create table \"{schema}\".logs (id int, ts timestamptz not null);
         insert into \"{schema}\".orders select generate_series(1, 31);
         insert into \"{schema}\".logs values (1, '2026-01-01');"
    ));
    state_set_is_type_checked(Db::postgres().unwrap(), "postgres", &schema);
    db.exec(&format!("drop schema \"{schema}\" cascade"));
}

#[test]
fn mysql_state_set_is_checked_against_the_key_type() {
    let Some(mut db) = Db::mysql() else { return };
    let schema = unique("pipectl_mystateset");
    db.exec(&format!(
        "create database `{schema}`;
         create table `{schema}`.orders (id bigint primary key);
         create table `{schema}`.logs (id int, ts datetime(6) not null);
         insert into `{schema}`.orders select seq from seq_1_to_31;
         insert into `{schema}`.logs values (1, '2026-01-01');"
    ));
    state_set_is_type_checked(Db::mysql().unwrap(), "mysql", &schema);
    db.exec(&format!("drop database `{schema}`"));
}

#[test]
fn transformation_rules_rename_remove_prefix_and_lowercase() {
    let Some(mut db) = Db::mysql() else { return };
    let schema = unique("pipectl_myrules2");
    db.exec(&format!(
        "create database `{schema}`; create table `{schema}`.`Film` (`Film_ID` int, `Title` text, `Secret` text);
         insert into `{schema}`.`Film` values (1, 'Alien', 'x'), (2, 'Heat', 'y');"
    ));
    let dir = tempfile::tempdir().unwrap();
    let extra = r#"    transformations:
      - tables: Film
        remove_columns: [Secret]
        rename_columns: { Title: name }
        add_prefix: dms_
        lowercase: true
transforms:
  op:
    type: add_columns
    inputs: [src]
    columns:
      - { name: Op, literal: I }
"#;
    let spec = matrix_spec("mysql", &db.url, &schema, extra).replace(
        "inputs: [src]\n    connection: lake",
        "inputs: [op]\n    connection: lake",
    );
    let spec = write_spec(dir.path(), &spec);
    run_ok(dir.path(), &spec);
    let csv = published(dir.path(), ".csv");
    assert_eq!(csv.len(), 1);
    assert!(
        csv[0].to_string_lossy().contains("/csv/dms_film/"),
        "{csv:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&csv[0]).unwrap(),
        "film_id,name,Op\n1,Alien,I\n2,Heat,I\n"
    );
    db.exec(&format!("drop database `{schema}`"));
}

/// A table split on a nullable integer column lands every row exactly once.
fn split_load(mut db: Db, kind: &str, schema: &str, from: &str) {
    let rows = series(kind, 1, 10_000);
    db.exec(&format!(
        "insert into {from} (id, n, note) select g, case when g % 1000 = 0 then null else g * 3 end, 'x' from ({rows}) s"
    ));
    let dir = tempfile::tempdir().unwrap();
    let spec = db_spec(
        "split",
        kind,
        &format!("url: \"{}\"", db.url),
        &format!(
            "    include: [{{ schema: \"{schema}\", table: \"events\" }}]
    parallel_tables: 1
    tables:
      events: {{ split: {{ column: n, parts: 4 }} }}
"
        ),
        &lake_sink("out", "events/", "    format: { type: jsonl }\n"),
    );
    let spec = write_spec(dir.path(), &spec);
    let (out, stdout, stderr) = output(pipectl(dir.path()).arg("plan").arg(&spec));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("read in 4 ranges of `n` over 4 connections"),
        "{stdout}"
    );
    run_ok(dir.path(), &spec);
    let expected: Vec<i64> = (1..=10_000).collect();
    assert_same_ids(&published_ids(dir.path()), &expected, "split load");
    // Ranges share the table's open file until one of them ends, so at most one file a range.
    let files = published(dir.path(), ".jsonl").len();
    assert!((1..=4).contains(&files), "{files} files");

    // Splitting a text column is a clear error naming table and column.
    let text = std::fs::read_to_string(&spec)
        .unwrap()
        .replace("column: n,", "column: note,");
    std::fs::write(&spec, text).unwrap();
    let (out, stdout, stderr) = output(pipectl(dir.path()).args(["run", "-q"]).arg(&spec));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("split column `note`") && stdout.contains("not an integer"),
        "{stdout}"
    );
}

#[test]
fn postgres_tables_split_into_ranges_land_every_row_once() {
    let Some(mut db) = Db::postgres() else { return };
    let schema = unique("pipectl_pgsplit");
    let from = format!("\"{schema}\".events");
    db.exec(&format!(
        "create schema \"{schema}\"; create table {from} (id bigint primary key, n int null, note text)"
    ));
    split_load(db, "postgres", &schema, &from);
    let mut db = Db::postgres().unwrap();
    db.exec(&format!("drop schema \"{schema}\" cascade"));
}

#[test]
fn mysql_tables_split_into_ranges_land_every_row_once() {
    let Some(mut db) = Db::mysql() else { return };
    let schema = unique("pipectl_mysplit");
    let from = format!("`{schema}`.events");
    db.exec(&format!(
        "create database `{schema}`; create table {from} (id bigint primary key, n int null, note text)"
    ));
    split_load(db, "mysql", &schema, &from);
    let mut db = Db::mysql().unwrap();
    db.exec(&format!("drop database `{schema}`"));
}

/// A pipeline landing whether its own PostgreSQL session uses TLS, with `tls` settings `tls`
/// on a connection to `url`.
fn tls_spec(url: &str, tls: &str) -> String {
    db_spec(
        "tls",
        "postgres",
        &format!("url: \"{url}\", tls: {tls}"),
        "    queries:
      - table: session
        sql: select ssl::text as ssl from pg_stat_ssl where pid = pg_backend_pid()
",
        &lake_sink(
            "out",
            "{table}/",
            "    mode: full_refresh\n    format: { type: csv, header: false }\n",
        ),
    )
}

#[test]
fn tls_settings_reach_postgres_and_mysql() {
    let Some(mut db) = Db::postgres() else { return };
    let cert: String = db.rt.block_on(async {
        sqlx::query_scalar("select setting from pg_settings where name = 'ssl_cert_file'")
            .fetch_one(db.pg.as_mut().unwrap())
            .await
            .unwrap()
    });
    let ssl: String = db.rt.block_on(async {
        sqlx::query_scalar("show ssl")
            .fetch_one(db.pg.as_mut().unwrap())
            .await
            .unwrap()
    });
    assert_eq!(
        ssl, "on",
        "this test needs PostgreSQL with ssl = on (the machine's default)"
    );
    let dir = tempfile::tempdir().unwrap();
    let landed = |dir: &Path| {
        let files = published(dir, ".csv");
        assert_eq!(files.len(), 1, "{files:?}");
        std::fs::read_to_string(&files[0])
            .unwrap()
            .trim()
            .to_owned()
    };
    for (tls, expected) in [
        ("{ mode: require }", "true"),
        ("{ mode: disable }", "false"),
        ("{ mode: prefer }", "true"),
    ] {
        let spec = write_spec(dir.path(), &tls_spec(&db.url, tls));
        run_ok(dir.path(), &spec);
        assert_eq!(landed(dir.path()), expected, "tls: {tls}");
    }
    // The server's certificate is self-signed for `localhost`: trusted as its own CA it
    // verifies for that name, and fails for another.
    let localhost = db.url.replace("127.0.0.1", "localhost");
    let trusted = format!("{{ mode: verify_full, ca_file: \"{cert}\" }}");
    let spec = write_spec(dir.path(), &tls_spec(&localhost, &trusted));
    run_ok(dir.path(), &spec);
    assert_eq!(landed(dir.path()), "true");
    let spec = write_spec(dir.path(), &tls_spec(&db.url, "{ mode: verify_full }"));
    let (out, stdout, stderr) = output(pipectl(dir.path()).args(["run", "-q"]).arg(&spec));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("cannot connect to PostgreSQL"), "{stdout}");

    // This machine's MariaDB has TLS disabled: `require` is refused with the reason.
    let Some(my) = Db::mysql() else { return };
    let spec = db_spec(
        "tls-my",
        "mysql",
        &format!("url: \"{}\", tls: {{ mode: require }}", my.url),
        "    queries: [{ table: one, sql: \"select 1 as x\" }]\n",
        &lake_sink("out", "one/", "    format: { type: csv }\n"),
    );
    let spec = write_spec(dir.path(), &spec);
    let (out, stdout, stderr) = output(pipectl(dir.path()).args(["run", "-q"]).arg(&spec));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("cannot connect to MySQL"), "{stdout}");
    assert!(stdout.to_lowercase().contains("tls"), "{stdout}");
}
