//! Schema unification across drifting files (int64/double, column-name case,
//! missing columns), lossy refusals, value checks and projection.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type};
use arrow_array::{ArrayRef, Float64Array, Int32Array, Int64Array, StringArray};
use arrow_schema::{DataType, Field, Schema};
use velostream::source::{ParquetSource, SourceOptions};
use velostream::Error;

use crate::harness::data::{concat, read_all, write_columns as write_parquet};

fn int64(v: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(Int64Array::from(v))
}
fn f64s(v: Vec<Option<f64>>) -> ArrayRef {
    Arc::new(Float64Array::from(v))
}

/// A 2023-style file: passenger_count int64, airport_fee double.
fn file_2023(path: &Path) {
    write_parquet(
        path,
        vec![
            ("VendorID", Arc::new(Int32Array::from(vec![1, 2, 2])), false),
            ("passenger_count", int64(vec![Some(1), None, Some(3)]), true),
            (
                "fare_amount",
                f64s(vec![Some(10.5), Some(7.0), Some(52.25)]),
                false,
            ),
            (
                "congestion_surcharge",
                f64s(vec![Some(2.5), None, Some(0.0)]),
                true,
            ),
            ("airport_fee", f64s(vec![Some(0.0), None, Some(1.75)]), true),
        ],
        2,
    );
}

/// An older-style file: VendorID int64, fare_amount int64 (whole dollars),
/// `Airport_fee` capitalised, no congestion_surcharge, one extra column.
fn file_drifted(path: &Path) {
    write_parquet(
        path,
        vec![
            ("VendorID", int64(vec![Some(2), Some(1)]), false),
            ("passenger_count", int64(vec![Some(2), Some(5)]), true),
            ("fare_amount", int64(vec![Some(12), Some(70)]), false),
            ("Airport_fee", f64s(vec![Some(1.25), None]), true),
            (
                "store_and_fwd_flag",
                Arc::new(StringArray::from(vec!["N", "Y"])),
                true,
            ),
        ],
        10,
    );
}

fn schema_error(err: &Error) -> (PathBuf, String, String) {
    match err {
        Error::Schema {
            path,
            column,
            message,
        } => (path.clone(), column.clone(), message.clone()),
        other => panic!("expected a schema error, got {other:?}"),
    }
}

#[test]
fn drifting_files_are_unified_to_the_first_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("2023-01.parquet");
    let b = dir.path().join("2019-01.parquet");
    file_2023(&a);
    file_drifted(&b);
    let source =
        ParquetSource::open(&[a.clone(), b.clone()], &SourceOptions::default()).expect("open");
    assert_eq!(source.total_rows(), 5);
    let groups: Vec<(usize, usize, u64)> = source
        .row_groups()
        .iter()
        .map(|rg| (rg.file_index, rg.row_group, rg.rows))
        .collect();
    assert_eq!(groups, vec![(0, 0, 2), (0, 1, 1), (1, 0, 2)]);
    let schema = source.schema();
    assert!(
        schema.metadata().is_empty(),
        "schema-level metadata is dropped"
    );
    assert_eq!(schema.field(0).data_type(), &DataType::Int32);
    assert_eq!(schema.field(4).name(), "airport_fee");

    let batches = read_all(&source, 1024).expect("read");
    for batch in &batches {
        assert_eq!(batch.schema(), schema, "every batch has the target schema");
    }
    let all = concat(&batches);
    assert_eq!(all.num_rows(), 5);
    let vendor: Vec<i32> = all.column(0).as_primitive::<Int32Type>().values().to_vec();
    assert_eq!(vendor, vec![1, 2, 2, 2, 1]);
    let passengers: Vec<Option<i64>> = all.column(1).as_primitive::<Int64Type>().iter().collect();
    assert_eq!(passengers, vec![Some(1), None, Some(3), Some(2), Some(5)]);
    let fare: Vec<f64> = all
        .column(2)
        .as_primitive::<Float64Type>()
        .values()
        .to_vec();
    assert_eq!(fare, vec![10.5, 7.0, 52.25, 12.0, 70.0]);
    let congestion: Vec<Option<f64>> = all.column(3).as_primitive::<Float64Type>().iter().collect();
    assert_eq!(congestion, vec![Some(2.5), None, Some(0.0), None, None]);
    let airport: Vec<Option<f64>> = all.column(4).as_primitive::<Float64Type>().iter().collect();
    assert_eq!(airport, vec![Some(0.0), None, Some(1.75), Some(1.25), None]);
}

#[test]
fn lossy_double_to_int_is_refused_naming_file_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a.parquet");
    let b = dir.path().join("b.parquet");
    file_2023(&a);
    write_parquet(
        &b,
        vec![
            ("VendorID", Arc::new(Int32Array::from(vec![1, 2])), false),
            ("passenger_count", f64s(vec![Some(1.0), Some(2.5)]), true),
            ("fare_amount", f64s(vec![Some(3.0), Some(4.0)]), false),
        ],
        10,
    );
    let err = ParquetSource::open(&[a.clone(), b.clone()], &SourceOptions::default())
        .expect_err("double -> int64 is lossy");
    let (path, column, message) = schema_error(&err);
    assert_eq!(path, b);
    assert_eq!(column, "passenger_count");
    assert!(message.contains("lossy"), "{message}");
    assert!(err.to_string().contains("b.parquet"), "{err}");

    // With allow_lossy the fraction is truncated toward zero.
    let opts = SourceOptions {
        allow_lossy: true,
        ..Default::default()
    };
    let source = ParquetSource::open(&[a, b], &opts).expect("open lossy");
    let all = concat(&read_all(&source, 1024).expect("read"));
    let passengers: Vec<Option<i64>> = all.column(1).as_primitive::<Int64Type>().iter().collect();
    assert_eq!(&passengers[3..], &[Some(1), Some(2)]);
}

#[test]
fn inexact_int64_to_double_fails_naming_row_group_and_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a.parquet");
    let b = dir.path().join("b.parquet");
    file_2023(&a);
    let big = (1i64 << 53) + 1;
    write_parquet(
        &b,
        vec![
            (
                "VendorID",
                Arc::new(Int32Array::from(vec![1, 1, 1, 1])),
                false,
            ),
            (
                "fare_amount",
                int64(vec![Some(1), Some(2), Some(3), Some(big)]),
                false,
            ),
        ],
        2,
    );
    // Type level: int64 -> double is allowed (exact up to 2^53) ...
    let source = ParquetSource::open(&[a, b.clone()], &SourceOptions::default()).expect("open");
    // ... and checked per value: row group 1 of b, row 1 holds 2^53 + 1.
    let err = read_all(&source, 1024).expect_err("2^53+1 is not a double");
    let (path, column, message) = schema_error(&err);
    assert_eq!(path, b);
    assert_eq!(column, "fare_amount");
    assert!(message.contains("row group 1, row 1"), "{message}");
    assert!(message.contains("not exactly representable"), "{message}");
}

#[test]
fn narrowing_overflow_and_nulls_in_required_columns_are_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a.parquet");
    let b = dir.path().join("b.parquet");
    file_2023(&a);
    // VendorID int64 -> int32 overflows on the second row.
    write_parquet(
        &b,
        vec![
            ("VendorID", int64(vec![Some(1), Some(1 << 40)]), false),
            ("fare_amount", f64s(vec![Some(1.0), Some(2.0)]), false),
        ],
        10,
    );
    let source =
        ParquetSource::open(&[a.clone(), b.clone()], &SourceOptions::default()).expect("open");
    let err = read_all(&source, 1024).expect_err("overflow");
    let (path, column, message) = schema_error(&err);
    assert_eq!((path, column.as_str()), (b.clone(), "VendorID"));
    assert!(message.contains("row group 0, row 1"), "{message}");

    // A nullable file column feeding a non-nullable target column.
    write_parquet(
        &b,
        vec![
            (
                "VendorID",
                Arc::new(Int32Array::from(vec![Some(1), None])),
                true,
            ),
            ("fare_amount", f64s(vec![Some(1.0), Some(2.0)]), false),
        ],
        10,
    );
    let source = ParquetSource::open(&[a, b.clone()], &SourceOptions::default()).expect("open");
    let err = read_all(&source, 1024).expect_err("null in required column");
    let (path, column, message) = schema_error(&err);
    assert_eq!((path, column.as_str()), (b, "VendorID"));
    assert!(
        message.contains("row 1") && message.contains("not nullable"),
        "{message}"
    );
}

#[test]
fn missing_required_column_and_unknown_projection_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a.parquet");
    let b = dir.path().join("b.parquet");
    file_2023(&a);
    write_parquet(
        &b,
        vec![("VendorID", Arc::new(Int32Array::from(vec![1])), false)],
        10,
    );
    let err = ParquetSource::open(&[a.clone(), b.clone()], &SourceOptions::default())
        .expect_err("fare_amount is required");
    let (path, column, _) = schema_error(&err);
    assert_eq!((path, column.as_str()), (b.clone(), "fare_amount"));

    let opts = SourceOptions {
        columns: Some(vec!["fare_amount".into(), "nope".into()]),
        ..Default::default()
    };
    let err = ParquetSource::open(std::slice::from_ref(&a), &opts).expect_err("unknown column");
    let (path, column, message) = schema_error(&err);
    assert_eq!((path, column.as_str()), (a.clone(), "nope"));
    assert!(message.contains("unknown column"), "{message}");
}

#[test]
fn projection_and_explicit_target_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a.parquet");
    let b = dir.path().join("b.parquet");
    file_2023(&a);
    file_drifted(&b);
    // Projection: order as given, names matched case-insensitively.
    let opts = SourceOptions {
        columns: Some(vec!["AIRPORT_FEE".into(), "VendorID".into()]),
        ..Default::default()
    };
    let source = ParquetSource::open(&[a.clone(), b.clone()], &opts).expect("open");
    let names: Vec<String> = source
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, vec!["airport_fee", "VendorID"]);
    let all = concat(&read_all(&source, 2).expect("read"));
    assert_eq!(all.num_rows(), 5);
    assert_eq!(all.num_columns(), 2);

    // An explicit target: VendorID widened to int64, a nullable extra column.
    let target = Arc::new(Schema::new(vec![
        Field::new("vendorid", DataType::Int64, false),
        Field::new("fare_amount", DataType::Float64, false),
        Field::new("extra", DataType::Float64, true),
    ]));
    let opts = SourceOptions {
        target_schema: Some(target.clone()),
        ..Default::default()
    };
    let source = ParquetSource::open(&[a, b], &opts).expect("open with target");
    assert_eq!(source.schema(), target);
    let all = concat(&read_all(&source, 1024).expect("read"));
    let vendor: Vec<i64> = all.column(0).as_primitive::<Int64Type>().values().to_vec();
    assert_eq!(vendor, vec![1, 2, 2, 2, 1]);
    assert_eq!(all.column(2).null_count(), 5);
}
