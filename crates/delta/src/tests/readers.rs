//! Independent readers: a table this crate writes, read with the Python `deltalake` package
//! and with DuckDB's delta extension (`scripts/delta-readers.sh` installs both); their values
//! must equal the source's: types, decimals, zoned timestamps, NULLs, partitions.

use std::process::Command;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Int32Array, Int64Array,
    RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use serde_json::{Value, json};

use super::*;

/// The interpreter of the readers' virtualenv, or why there is none.
fn readers_python() -> Result<std::path::PathBuf, String> {
    let python = std::env::var_os("PIPECTL_DELTA_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            std::path::Path::new(&home).join(".cache/pipectl-tools/delta-readers-venv/bin/python")
        });
    if python.exists() {
        Ok(python)
    } else {
        Err(format!(
            "{} is missing: run `bash scripts/delta-readers.sh install` (scripts/test.sh does)",
            python.display()
        ))
    }
}

fn source() -> RecordBatch {
    let mut fields = row_fields();
    fields.extend([
        Field::new("flag", DataType::Boolean, true),
        Field::new("day", DataType::Date32, true),
        Field::new("small", DataType::Int32, true),
        Field::new("bytes", DataType::Binary, true),
        Field::new("dt", DataType::Utf8, false),
    ]);
    let schema = Arc::new(Schema::new(fields));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![1, 2, 3])),
        Arc::new(StringArray::from(vec![Some("zoë"), None, Some("")])),
        Arc::new(
            Decimal128Array::from(vec![Some(-1_234_567), Some(999_999_999_999), None])
                .with_precision_and_scale(12, 3)
                .unwrap(),
        ),
        Arc::new(
            TimestampMicrosecondArray::from(vec![Some(1_767_225_600_123_456), None, Some(0)])
                .with_timezone("UTC"),
        ),
        Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
        Arc::new(Date32Array::from(vec![Some(20_454), None, Some(0)])),
        Arc::new(Int32Array::from(vec![Some(i32::MIN), Some(7), None])),
        Arc::new(BinaryArray::from(vec![
            Some(&b"\x00\xff"[..]),
            None,
            Some(&b""[..]),
        ])),
        Arc::new(StringArray::from(vec![
            "2026-01-01",
            "2026-01-02",
            "2026-01-01",
        ])),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

/// The source's rows as the reader script prints them.
fn expected_rows() -> Value {
    json!([
        {"id": 1, "name": "zoë", "amount": "-1234.567", "ts": "2026-01-01T00:00:00.123456+00:00",
         "flag": true, "day": "2026-01-01", "small": i32::MIN, "bytes": "00ff", "dt": "2026-01-01"},
        {"id": 2, "name": null, "amount": "999999999.999", "ts": null,
         "flag": false, "day": null, "small": 7, "bytes": null, "dt": "2026-01-02"},
        {"id": 3, "name": "", "amount": null, "ts": "1970-01-01T00:00:00+00:00",
         "flag": null, "day": "1970-01-01", "small": null, "bytes": "", "dt": "2026-01-01"},
    ])
}

#[tokio::test]
async fn python_deltalake_and_duckdb_read_what_this_crate_writes() {
    let python = match readers_python() {
        Ok(p) => p,
        Err(why) if services_required() => panic!("the Delta readers are required here: {why}"),
        Err(why) => {
            skip(&why);
            return;
        }
    };
    let (dir, location) = local_table();
    let mut opts = options(WriteMode::Append, 1);
    opts.partition_by = vec!["dt".into()];
    write_and_apply(&location, opts, &[source()]).await;
    // A second version, so the readers must follow the log rather than list files.
    let mut empty = options(WriteMode::Append, 2);
    empty.partition_by = vec!["dt".into()];
    write_and_apply(&location, empty, &[source().slice(0, 0)]).await;

    let root = dir.path().join("lake/t");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/read_delta.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Value = serde_json::from_slice(&out.stdout).unwrap();
    for reader in ["deltalake", "duckdb"] {
        assert_eq!(read[reader]["rows"], expected_rows(), "{reader} rows");
    }
    assert_eq!(read["deltalake"]["version"], json!(1));
    assert_eq!(
        read["deltalake"]["types"],
        json!({"id": "int64", "name": "string", "amount": "decimal128(12, 3)",
               "ts": "timestamp[us, tz=UTC]", "flag": "bool", "day": "date32[day]",
               "small": "int32", "bytes": "binary", "dt": "string"})
    );
    assert_eq!(
        read["duckdb"]["types"],
        json!({"id": "BIGINT", "name": "VARCHAR", "amount": "DECIMAL(12,3)",
               "ts": "TIMESTAMP WITH TIME ZONE", "flag": "BOOLEAN", "day": "DATE",
               "small": "INTEGER", "bytes": "BLOB", "dt": "VARCHAR"})
    );
}
