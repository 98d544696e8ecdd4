//! The quickstart end to end: run the real binary, then read back every file it published and
//! compare values with the SQLite source.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Decimal128Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sqlx::{Connection, Row};

use crate::common::{copy_quickstart, files_under, output, pipectl};

/// Every batch of every Parquet file under `dir`.
pub fn read_parquet_dir(dir: &Path) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    for f in files_under(dir) {
        assert!(f.ends_with(".parquet"), "unexpected file {f}");
        let file = std::fs::File::open(dir.join(&f)).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        batches.extend(reader.map(|b| b.unwrap()));
    }
    batches
}

fn sqlite_rows(db: &Path, sql: &str) -> Vec<sqlx::sqlite::SqliteRow> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query(sql).fetch_all(&mut conn).await.unwrap()
    })
}

#[test]
fn quickstart_lands_exact_copies_of_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let spec = copy_quickstart(dir.path());
    let (out, stdout, stderr) = output(pipectl(dir.path()).arg("run").arg(&spec));
    assert!(
        out.status.success(),
        "run failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("succeeded"), "{stdout}");

    let lake = dir.path().join("lake");
    let files = files_under(&lake);
    assert!(
        !files.iter().any(|f| f.starts_with("_pipectl")),
        "staging left behind: {files:?}"
    );
    let db = dir.path().join("sakila.db");

    // Tables selected by the rules: everything but film_actor / film_category.
    let tables: Vec<String> = sqlite_rows(&db, "select name from sqlite_schema where type = 'table' and name not like 'film\\_%' escape '\\' order by name")
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
    assert_eq!(
        tables,
        [
            "actor", "category", "customer", "film", "language", "payment", "staff"
        ]
    );
    assert!(
        !files.iter().any(|f| f.contains("film_actor")),
        "excluded table landed: {files:?}"
    );

    for table in &tables {
        let expected: i64 = sqlite_rows(&db, &format!("select count(*) from {table}"))[0].get(0);
        // Parquet in the clean zone.
        let batches = read_parquet_dir(&lake.join(format!("clean/sakila/{table}")));
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows as i64, expected, "parquet rows of {table}");
        // CSV in the landing zone: a header plus one line per row (no value here spans lines).
        let csv_files = files_under(&lake.join(format!("landing/sakila-db/main/{table}")));
        assert_eq!(csv_files.len(), 1, "{csv_files:?}");
        assert!(csv_files[0].starts_with("part-") && csv_files[0].ends_with(".csv"));
        let text = std::fs::read_to_string(
            lake.join(format!("landing/sakila-db/main/{table}"))
                .join(&csv_files[0]),
        )
        .unwrap();
        assert_eq!(
            text.lines().count() as i64,
            expected + 1,
            "csv lines of {table}"
        );
        let columns: Vec<String> = sqlite_rows(
            &db,
            &format!("select name from pragma_table_info('{table}') order by cid"),
        )
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
        assert_eq!(
            text.lines().next().unwrap(),
            columns.join(","),
            "csv header of {table}"
        );
    }

    // Types survive: exact decimals, NULLs, JSON text, zoned timestamps, booleans, binary.
    let film = arrow::compute::concat_batches(
        &read_parquet_dir(&lake.join("clean/sakila/film"))[0].schema(),
        &read_parquet_dir(&lake.join("clean/sakila/film")),
    )
    .unwrap();
    let schema = film.schema();
    assert_eq!(
        schema.field_with_name("rental_rate").unwrap().data_type(),
        &DataType::Decimal128(4, 2)
    );
    assert_eq!(
        schema.field_with_name("last_update").unwrap().data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, None)
    );
    let ids = film
        .column_by_name("film_id")
        .unwrap()
        .as_primitive::<Int64Type>();
    let rates = film
        .column_by_name("rental_rate")
        .unwrap()
        .as_primitive::<Decimal128Type>();
    let original = film.column_by_name("original_language_id").unwrap();
    let features = film
        .column_by_name("special_features")
        .unwrap()
        .as_string::<i32>();
    let source: BTreeMap<i64, (String, Option<i64>, String)> = sqlite_rows(&db, "select film_id, cast(rental_rate as text), original_language_id, special_features from film")
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
        .collect();
    for i in 0..film.num_rows() {
        let (rate, orig, feat) = &source[&ids.value(i)];
        let cents: i128 = (rate.parse::<f64>().unwrap() * 100.0).round() as i128;
        assert_eq!(rates.value(i), cents, "film {} rental_rate", ids.value(i));
        assert_eq!(
            original.is_null(i),
            orig.is_none(),
            "film {} original_language_id",
            ids.value(i)
        );
        assert_eq!(features.value(i), feat);
    }
    let nulls_in_source: i64 = sqlite_rows(
        &db,
        "select count(*) from film where original_language_id is null",
    )[0]
    .get(0);
    assert_eq!(original.null_count() as i64, nulls_in_source);

    let payment = &read_parquet_dir(&lake.join("clean/sakila/payment"))[0];
    let dates = payment
        .column_by_name("payment_date")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    assert_eq!(dates.timezone(), Some("UTC"));
    let first: String =
        sqlite_rows(&db, "select payment_date from payment where payment_id = 1")[0].get(0);
    let expected = chrono::DateTime::parse_from_str(&first, "%Y-%m-%d %H:%M:%S%:z")
        .unwrap()
        .timestamp_micros();
    assert_eq!(dates.value(0), expected);

    let staff = &read_parquet_dir(&lake.join("clean/sakila/staff"))[0];
    let pictures = staff.column_by_name("picture").unwrap().as_binary::<i32>();
    let picture: Vec<u8> =
        sqlite_rows(&db, "select picture from staff where staff_id = 1")[0].get(0);
    assert_eq!(pictures.value(0), picture.as_slice());
    assert!(pictures.is_null(1));
    let customer = arrow::compute::concat_batches(
        &read_parquet_dir(&lake.join("clean/sakila/customer"))[0].schema(),
        &read_parquet_dir(&lake.join("clean/sakila/customer")),
    )
    .unwrap();
    let active = customer.column_by_name("active").unwrap().as_boolean();
    let inactive: i64 =
        sqlite_rows(&db, "select count(*) from customer where not active")[0].get(0);
    assert_eq!(active.false_count() as i64, inactive);
    assert_eq!(
        customer.column_by_name("create_date").unwrap().data_type(),
        &DataType::Date32
    );

    // CSV keeps decimals as written and NULL as an empty field.
    let csv_dir = lake.join("landing/sakila-db/main/film");
    let text = std::fs::read_to_string(csv_dir.join(&files_under(&csv_dir)[0])).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let rate_col = header.iter().position(|h| *h == "rental_rate").unwrap();
    for line in text.lines().skip(1).take(50) {
        let value = line.split(',').nth(rate_col).unwrap();
        assert!(
            ["0.99", "2.99", "4.99"].contains(&value),
            "rental_rate written as {value:?}"
        );
    }

    // The generated stream: cast, filtered to rents and buys, stamped with load time and run id.
    let runs_json = output(pipectl(dir.path()).args(["runs", "--format", "json"])).1;
    let runs: serde_json::Value = serde_json::from_str(&runs_json).unwrap();
    let run_id = runs[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(runs[0]["status"], "succeeded");
    let day = files_under(&lake.join("streaming/rentals"));
    assert_eq!(day.len(), 1, "{day:?}");
    let events = read_parquet_dir(
        &lake
            .join("streaming/rentals")
            .join(Path::new(&day[0]).parent().unwrap()),
    );
    let total: usize = events.iter().map(RecordBatch::num_rows).sum();
    // 40% of 100,000 records are rents or buys; the seed makes the count fixed, the bounds make the intent clear.
    assert!((38_000..42_000).contains(&total), "{total} events");
    let steps = runs[0]["steps"].as_array().unwrap();
    let events_step = steps.iter().find(|s| s["name"] == "events").unwrap();
    assert_eq!(events_step["rows"].as_u64().unwrap() as usize, total);
    let rentals_step = steps.iter().find(|s| s["name"] == "rentals").unwrap();
    assert_eq!(rentals_step["rows"], 100_000);
    for batch in &events {
        let kinds = batch
            .column_by_name("eventType")
            .unwrap()
            .as_string::<i32>();
        assert!(
            kinds
                .iter()
                .all(|k| matches!(k, Some("rent") | Some("buy")))
        );
        assert_eq!(
            batch.column_by_name("timestamp").unwrap().data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        let stamped = batch.column_by_name("run_id").unwrap().as_string::<i32>();
        assert!(stamped.iter().all(|r| r == Some(run_id.as_str())));
        let loaded = batch
            .column_by_name("loaded_at")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        assert_eq!(loaded.null_count(), 0);
        assert!(loaded.values().iter().all(|v| *v == loaded.value(0)));
    }
}
