//! Tests of filters and casts on record batches.

use super::*;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow::array::{Decimal128Array, Int32Array, TimestampMicrosecondArray};
use arrow::datatypes::Int32Type;
use arrow::datatypes::{DataType, Field, Schema, TimeUnit as ArrowTimeUnit};
use pipectl_spec::lang::datatype::parse_column_type;
use pipectl_spec::lang::expr::parse_expr;

fn sample() -> RecordBatch {
    // row:              0          1          2          3        4         5
    let id = Int64Array::from(vec![1, 2, 3, 4, 5, 6]);
    let score = Float64Array::from(vec![
        Some(1.5),
        Some(-2.0),
        None,
        Some(10.0),
        Some(0.0),
        Some(7.25),
    ]);
    let amount = Decimal128Array::from(vec![
        Some(1234),
        Some(1000),
        Some(99),
        None,
        Some(123450),
        Some(1235),
    ])
    .with_precision_and_scale(8, 2)
    .expect("valid decimal type");
    let state = StringArray::from(vec![
        Some("CA"),
        Some("NY"),
        None,
        Some("it's"),
        Some("Alabama"),
        Some("CA"),
    ]);
    let flag = BooleanArray::from(vec![
        Some(true),
        Some(false),
        None,
        Some(true),
        Some(false),
        None,
    ]);
    let ts = TimestampMicrosecondArray::from(vec![
        Some(1_767_225_599_000_000), // 2025-12-31T23:59:59Z
        Some(1_767_225_600_000_000), // 2026-01-01T00:00:00Z
        Some(1_767_225_601_000_000),
        None,
        Some(1_700_000_000_000_000),
        Some(1_800_000_000_000_000),
    ])
    .with_timezone("UTC");
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("score", DataType::Float64, true),
        Field::new("amount", DataType::Decimal128(8, 2), true),
        Field::new("state", DataType::Utf8, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new(
            "ts",
            DataType::Timestamp(ArrowTimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("Column With Space", DataType::Int64, false),
    ]));
    let spaced = Int64Array::from(vec![3, 3, 4, 3, 5, 3]);
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(id),
            Arc::new(score),
            Arc::new(amount),
            Arc::new(state),
            Arc::new(flag),
            Arc::new(ts),
            Arc::new(spaced),
        ],
    )
    .expect("valid batch")
}

fn compile(text: &str, batch: &RecordBatch) -> Result<CompiledFilter, EvalError> {
    let expr = parse_expr(text).unwrap_or_else(|error| panic!("{text}: {error}"));
    CompiledFilter::new(&expr, &batch.schema())
}

fn selected(text: &str) -> Vec<usize> {
    let batch = sample();
    let filter = compile(text, &batch).unwrap_or_else(|error| panic!("{text}: {error:?}"));
    let mask = filter
        .evaluate(&batch)
        .unwrap_or_else(|error| panic!("{text}: {error:?}"));
    assert_eq!(mask.len(), batch.num_rows());
    assert_eq!(mask.null_count(), 0, "{text}: result must have no nulls");
    (0..mask.len()).filter(|&row| mask.value(row)).collect()
}

fn compile_error(text: &str) -> EvalError {
    match compile(text, &sample()) {
        Ok(filter) => panic!("{text} compiled unexpectedly: {filter:?}"),
        Err(error) => error,
    }
}

#[test]
fn selects_exact_rows() {
    let cases: &[(&str, &[usize])] = &[
        ("id > 3", &[3, 4, 5]),
        ("id >= 2 and id <= 4", &[1, 2, 3]),
        ("score > 1", &[0, 3, 5]),
        ("score <= 0", &[1, 4]),
        ("amount = 12.34", &[0]),
        ("amount > 10", &[0, 4, 5]),
        ("amount = 12.345", &[]),
        ("amount < 12.345", &[0, 1, 2]),
        ("state = 'CA'", &[0, 5]),
        ("state <> 'CA'", &[1, 3, 4]),
        ("state = 'it''s'", &[3]),
        ("state is null", &[2]),
        ("state is not null and flag", &[0, 3]),
        ("flag", &[0, 3]),
        ("flag = false", &[1, 4]),
        ("not flag", &[1, 4]),
        ("state in ('CA', 'NY')", &[0, 1, 5]),
        ("state not in ('CA', 'NY')", &[3, 4]),
        ("id between 2 and 4", &[1, 2, 3]),
        ("not (id between 2 and 4)", &[0, 4, 5]),
        ("id not between 2 and 4", &[0, 4, 5]),
        ("state like 'A%'", &[4]),
        ("state like '_A'", &[0, 5]),
        ("state like '_'", &[]),
        ("state like '_Y'", &[1]),
        ("state not like 'C%'", &[1, 3, 4]),
        ("ts >= '2026-01-01T00:00:00Z'", &[1, 2, 5]),
        ("ts < '2026-01-01 00:00:00'", &[0, 4]),
        ("\"Column With Space\" <> 3", &[2, 4]),
        ("id + 1 > score * 2", &[1, 4]),
        ("-id < -4", &[4, 5]),
        ("amount * 2 > 24.68", &[4, 5]),
        ("amount * 2 >= 24.68", &[0, 4, 5]),
        ("id / 2 = 1", &[1, 2]),
        ("id = 1 or state = 'NY' or flag", &[0, 1, 3]),
        ("score > 0 or flag", &[0, 3, 5]),
        ("not (score > 0)", &[1, 4]),
        ("1 = 1", &[0, 1, 2, 3, 4, 5]),
        ("1 > 2 or id = 6", &[5]),
        ("true", &[0, 1, 2, 3, 4, 5]),
        ("null", &[]),
        ("(id > 3) = flag", &[1, 3]),
        ("id in (1, 2.5, 3)", &[0, 2]),
        ("score = 1.5", &[0]),
        ("score > 1.25", &[0, 3, 5]),
        ("id > 2.5", &[2, 3, 4, 5]),
        ("id = 99999999999999999999", &[]),
        ("amount = 1000000000", &[]),
    ];
    for (text, expected) in cases {
        assert_eq!(selected(text), *expected, "{text}");
    }
}

#[test]
fn unknown_column_names_the_column_and_suggests() {
    let error = compile_error("amout > 10");
    assert_eq!(
        error.message,
        "unknown column `amout` in the filter condition"
    );
    assert_eq!(
        error.help.as_deref(),
        Some(
            "did you mean `amount`? available columns: id, score, amount, state, flag, ts, \
             Column With Space"
        )
    );
    let error = compile_error("zzzzzz = 1");
    assert!(
        error
            .help
            .is_some_and(|help| help.starts_with("available columns: id"))
    );
}

#[test]
fn type_errors_name_both_sides() {
    let error = compile_error("state = id");
    assert_eq!(
        error.message,
        "cannot compare column `state` (Utf8) and column `id` (Int64)"
    );
    let error = compile_error("state = 5");
    assert_eq!(
        error.message,
        "cannot compare column `state` (Utf8) with the number 5"
    );
    assert_eq!(
        error.help.as_deref(),
        Some("quote the number to compare as text: '5'")
    );
    let error = compile_error("ts > 'yesterday'");
    assert!(
        error.message.starts_with("cannot compare column `ts`"),
        "{}",
        error.message
    );
    assert!(
        error
            .help
            .is_some_and(|help| help.contains("2026-01-31T12:00:00Z"))
    );
    let error = compile_error("id = null");
    assert!(error.message.contains("never true"), "{}", error.message);
    assert!(compile_error("id").message.contains("not a condition"));
    assert!(compile_error("5").message.contains("not a condition"));
    assert!(
        compile_error("id like 'A%'")
            .message
            .contains("like needs text")
    );
    assert!(
        compile_error("state + 1 > 2")
            .message
            .contains("needs numbers")
    );
    assert!(compile_error("flag = 1").message.contains("cannot compare"));
    assert!(
        compile_error("id in (1, null)")
            .message
            .contains("never matches")
    );
    assert!(
        compile_error("1 / 0 = 1")
            .message
            .contains("division by zero")
    );
}

#[test]
fn evaluate_rejects_a_changed_schema() {
    let batch = sample();
    let filter = compile("id > 1", &batch).expect("compiles");
    let other = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)])),
        vec![Arc::new(StringArray::from(vec!["1"]))],
    )
    .expect("valid batch");
    let error = filter.evaluate(&other).expect_err("schema differs");
    assert!(
        error.message.contains("schema changed"),
        "{}",
        error.message
    );
}

#[test]
fn dictionary_columns_compare_through_their_values() {
    let keys = Int32Array::from(vec![0, 1, 0, 1]);
    let values: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
    let dictionary = arrow::array::DictionaryArray::<Int32Type>::try_new(keys, values)
        .expect("valid dictionary");
    let schema = Arc::new(Schema::new(vec![Field::new(
        "d",
        dictionary.data_type().clone(),
        false,
    )]));
    let batch = RecordBatch::try_new(schema, vec![Arc::new(dictionary)]).expect("batch");
    let filter = compile("d = 'b' or d like 'x%'", &batch).expect("compiles");
    let mask = filter.evaluate(&batch).expect("evaluates");
    assert_eq!(mask, BooleanArray::from(vec![false, true, false, true]));
}

#[test]
fn deepest_accepted_expression_compiles_and_runs() {
    // Just under the parser's tree depth limit: recursion in compile and evaluate must cope.
    let text = vec!["id"; 250].join(" + ") + " > 500";
    assert_eq!(selected(&text), vec![2, 3, 4, 5]);
}

#[test]
fn empty_batch_gives_empty_mask() {
    let batch = sample().slice(0, 0);
    let filter = compile("id > 1 and 1 = 1", &batch).expect("compiles");
    assert_eq!(filter.evaluate(&batch).expect("evaluates").len(), 0);
}

#[test]
fn arrow_types_follow_spec_types() {
    let cases = [
        ("bool", DataType::Boolean),
        ("bigint", DataType::Int64),
        ("uint16", DataType::UInt16),
        ("double", DataType::Float64),
        ("decimal(10,2)", DataType::Decimal128(10, 2)),
        ("text", DataType::Utf8),
        ("json", DataType::Utf8),
        ("blob", DataType::Binary),
        ("date", DataType::Date32),
        ("time", DataType::Time64(ArrowTimeUnit::Microsecond)),
        (
            "timestamp",
            DataType::Timestamp(ArrowTimeUnit::Microsecond, None),
        ),
        (
            "timestamptz(ms)",
            DataType::Timestamp(ArrowTimeUnit::Millisecond, Some("UTC".into())),
        ),
        (
            "timestamp(ns, 'Europe/Berlin')",
            DataType::Timestamp(ArrowTimeUnit::Nanosecond, Some("Europe/Berlin".into())),
        ),
    ];
    for (name, expected) in cases {
        let parsed = parse_column_type(name).expect("valid type name");
        assert_eq!(arrow_type(&parsed), expected, "{name}");
    }
}

#[test]
fn strict_cast_reports_first_bad_row_and_value() {
    let array: ArrayRef = Arc::new(StringArray::from(vec![
        Some("1"),
        None,
        Some("x2"),
        Some("oops"),
    ]));
    let failure = cast_column(&array, &DataType::Int64, false).expect_err("x2 is not a number");
    assert_eq!(failure.row, 2);
    assert_eq!(failure.value, "x2");
    assert!(failure.message.contains("x2"), "{}", failure.message);
    assert!(failure.to_string().starts_with("row 2 (value 'x2'): "));

    let good: ArrayRef = Arc::new(StringArray::from(vec![Some("1"), None, Some("-3")]));
    let (cast, nulled) = cast_column(&good, &DataType::Int64, false).expect("all numbers");
    assert_eq!(nulled, 0);
    assert_eq!(
        cast.as_any().downcast_ref::<Int64Array>(),
        Some(&Int64Array::from(vec![Some(1), None, Some(-3)]))
    );
}

#[test]
fn lenient_cast_counts_only_values_it_nulled() {
    let array: ArrayRef = Arc::new(StringArray::from(vec![
        Some("1"),
        None,
        Some("x2"),
        Some("oops"),
        Some("5"),
    ]));
    let (cast, nulled) = cast_column(&array, &DataType::Int64, true).expect("lenient");
    assert_eq!(nulled, 2);
    assert_eq!(
        cast.as_any().downcast_ref::<Int64Array>(),
        Some(&Int64Array::from(vec![Some(1), None, None, None, Some(5)]))
    );
}

#[test]
fn decimal_cast_keeps_exact_values() {
    let array: ArrayRef = Arc::new(StringArray::from(vec!["12.34", "0.10", "-7"]));
    let (cast, nulled) =
        cast_column(&array, &DataType::Decimal128(10, 2), false).expect("decimals");
    assert_eq!(nulled, 0);
    let decimals = cast
        .as_any()
        .downcast_ref::<Decimal128Array>()
        .expect("decimal array");
    assert_eq!(decimals.values().to_vec(), vec![1234, 10, -700]);
    assert_eq!(decimals.scale(), 2);
}

#[test]
fn unsupported_cast_is_reported_without_a_row() {
    let array: ArrayRef = Arc::new(BooleanArray::from(vec![true]));
    let target = DataType::Date32;
    assert!(!cast_supported(array.data_type(), &target));
    let failure = cast_column(&array, &target, false).expect_err("unsupported");
    assert_eq!(failure.message, "cannot cast Boolean to Date32");
    assert_eq!(failure.to_string(), "cannot cast Boolean to Date32");
}

#[test]
fn same_type_cast_is_free() {
    let array: ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
    let (cast, nulled) = cast_column(&array, &DataType::Int64, false).expect("no-op");
    assert!(Arc::ptr_eq(&cast, &array));
    assert_eq!(nulled, 0);
}
