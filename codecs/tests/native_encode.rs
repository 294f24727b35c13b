//! Native encoder: exact bytes for small blocks, every refusal names the
//! column (and row), and a structural decoder checks random batches.

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringDictionaryBuilder};
use arrow_array::types::{Int32Type, Int8Type};
use arrow_array::*;
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use velostream_codecs::chtype::ChType;
use velostream_codecs::mapping::{MappingOptions, ServerCaps};
use velostream_codecs::native::NativeEncoder;
use velostream_codecs::CodecError;

fn t(s: &str) -> ChType {
    ChType::parse(s).unwrap()
}

fn one(name: &str, array: ArrayRef, nullable: bool, target: &str) -> Vec<u8> {
    try_one(name, array, nullable, target, MappingOptions::default()).unwrap()
}

fn try_one(
    name: &str,
    array: ArrayRef,
    nullable: bool,
    target: &str,
    opts: MappingOptions,
) -> Result<Vec<u8>, CodecError> {
    let schema = Arc::new(Schema::new(vec![Field::new(
        name,
        array.data_type().clone(),
        nullable,
    )]));
    let batch = RecordBatch::try_new(schema.clone(), vec![array]).unwrap();
    let enc = NativeEncoder::new(&schema, &[(name.to_string(), t(target))], opts)?;
    let mut out = vec![0xEE]; // pre-existing bytes must be kept
    let r = enc.encode(&batch, &mut out);
    match r {
        Ok(()) => {
            assert_eq!(out[0], 0xEE);
            Ok(out[1..].to_vec())
        }
        Err(e) => {
            assert_eq!(out, vec![0xEE], "output not restored after an error");
            Err(e)
        }
    }
}

/// Block header for one column named `c` of `rows` rows and type `ty`.
fn header(rows: u8, ty: &str) -> Vec<u8> {
    let mut h = vec![1, rows, 1, b'c', ty.len() as u8];
    h.extend_from_slice(ty.as_bytes());
    h
}

fn u64le(v: u64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

#[test]
fn int32_block_bytes() {
    let got = one("c", Arc::new(Int32Array::from(vec![1, -1])), false, "Int32");
    let mut want = header(2, "Int32");
    want.extend_from_slice(&[1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(got, want);
}

#[test]
fn sliced_fixed_width_copy() {
    let a = Int64Array::from(vec![10, 20, 30, 40]).slice(1, 2);
    let got = one("c", Arc::new(a), false, "Int64");
    let mut want = header(2, "Int64");
    want.extend_from_slice(&20i64.to_le_bytes());
    want.extend_from_slice(&30i64.to_le_bytes());
    assert_eq!(got, want);
}

#[test]
fn widening_and_nullable_wrapping() {
    let got = one(
        "c",
        Arc::new(UInt32Array::from(vec![7, u32::MAX])),
        false,
        "Nullable(UInt64)",
    );
    let mut want = header(2, "Nullable(UInt64)");
    want.extend_from_slice(&[0, 0]);
    want.extend_from_slice(&7u64.to_le_bytes());
    want.extend_from_slice(&(u32::MAX as u64).to_le_bytes());
    assert_eq!(got, want);
    let got = one(
        "c",
        Arc::new(Float32Array::from(vec![1.5])),
        false,
        "Float64",
    );
    let mut want = header(1, "Float64");
    want.extend_from_slice(&1.5f64.to_le_bytes());
    assert_eq!(got, want);
}

#[test]
fn nullable_strings_bytes() {
    let got = one(
        "c",
        Arc::new(StringArray::from(vec![Some("ab"), None, Some("")])),
        true,
        "Nullable(String)",
    );
    let mut want = header(3, "Nullable(String)");
    want.extend_from_slice(&[0, 1, 0]);
    want.extend_from_slice(&[2, b'a', b'b', 0, 0]);
    assert_eq!(got, want);
}

#[test]
fn array_of_nullable_bytes() {
    let mut b = ListBuilder::new(arrow_array::builder::Int8Builder::new());
    b.append_value([Some(1), None]);
    b.append_value([]);
    b.append_value([Some(-1)]);
    let got = one("c", Arc::new(b.finish()), false, "Array(Nullable(Int8))");
    let mut want = header(3, "Array(Nullable(Int8))");
    for o in [2u64, 2, 3] {
        want.extend_from_slice(&o.to_le_bytes());
    }
    want.extend_from_slice(&[0, 1, 0]);
    want.extend_from_slice(&[1, 0, 0xff]);
    assert_eq!(got, want);
}

#[test]
fn low_cardinality_bytes() {
    let flags = (1u64 << 9) | (1 << 10);
    let got = one(
        "c",
        Arc::new(StringArray::from(vec!["a", "b", "a"])),
        false,
        "LowCardinality(String)",
    );
    let mut want = header(3, "LowCardinality(String)");
    want.extend(u64le(1));
    want.extend(u64le(flags));
    want.extend(u64le(2));
    want.extend_from_slice(&[1, b'a', 1, b'b']);
    want.extend(u64le(3));
    want.extend_from_slice(&[0, 1, 0]);
    assert_eq!(got, want);

    let mut d = StringDictionaryBuilder::<Int8Type>::new();
    d.append_value("x");
    d.append_null();
    d.append_value("y");
    let got = one(
        "c",
        Arc::new(d.finish()),
        true,
        "LowCardinality(Nullable(String))",
    );
    let mut want = header(3, "LowCardinality(Nullable(String))");
    want.extend(u64le(1));
    want.extend(u64le(flags));
    want.extend(u64le(3));
    want.extend_from_slice(&[0, 1, b'x', 1, b'y']);
    want.extend(u64le(3));
    want.extend_from_slice(&[1, 0, 2]);
    assert_eq!(got, want);
}

#[test]
fn low_cardinality_uses_wider_keys_for_big_dictionaries() {
    let values: Vec<String> = (0..300).map(|i| format!("v{i}")).collect();
    let got = one(
        "c",
        Arc::new(StringArray::from(values.clone())),
        false,
        "LowCardinality(String)",
    );
    let h = header(0, "LowCardinality(String)").len();
    // Rows do not fit the 1-byte varint header: recompute with a 2-byte varint.
    let flags = u64::from_le_bytes(got[h + 1 + 8..h + 1 + 16].try_into().unwrap());
    assert_eq!(flags & 0xff, 1, "UInt16 keys");
    let tail = &got[got.len() - 600..];
    assert_eq!(&tail[..4], &[0, 0, 1, 0]);
}

#[test]
fn dictionary_materialized_to_string_and_pruned_for_low_cardinality() {
    let keys = Int32Array::from(vec![2, 0, 2]);
    let values = StringArray::from(vec!["zero", "one", "two", "three"]);
    let dict = DictionaryArray::<Int32Type>::try_new(keys, Arc::new(values)).unwrap();
    let got = one("c", Arc::new(dict.clone()), false, "String");
    let mut want = header(3, "String");
    for s in ["two", "zero", "two"] {
        want.push(s.len() as u8);
        want.extend_from_slice(s.as_bytes());
    }
    assert_eq!(got, want);
    // Four dictionary entries for three rows: only the two used are written.
    let got = one("c", Arc::new(dict), false, "LowCardinality(String)");
    let mut want = header(3, "LowCardinality(String)");
    want.extend(u64le(1));
    want.extend(u64le((1 << 9) | (1 << 10)));
    want.extend(u64le(2));
    want.extend_from_slice(&[3, b't', b'w', b'o', 4, b'z', b'e', b'r', b'o']);
    want.extend(u64le(3));
    want.extend_from_slice(&[0, 1, 0]);
    assert_eq!(got, want);
}

#[test]
fn timestamps_rescale() {
    let a = TimestampMillisecondArray::from(vec![1_500, -1]).with_timezone("UTC");
    let got = one("c", Arc::new(a.clone()), false, "DateTime64(6, 'UTC')");
    let mut want = header(2, "DateTime64(6, 'UTC')");
    want.extend_from_slice(&1_500_000i64.to_le_bytes());
    want.extend_from_slice(&(-1000i64).to_le_bytes());
    assert_eq!(got, want);
    // Sub-seconds into DateTime: refused, naming column and row ...
    let e = try_one(
        "when",
        Arc::new(a.clone()),
        false,
        "DateTime",
        MappingOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("\"when\"") && e.contains("row 0") && e.contains("sub-second"),
        "{e}"
    );
    // ... unless truncation is allowed (floor; then -1 ms is before 1970).
    let e = try_one(
        "when",
        Arc::new(a),
        false,
        "DateTime",
        MappingOptions {
            allow_truncation: true,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("row 1") && e.contains("outside the DateTime range"),
        "{e}"
    );
    let a = TimestampMillisecondArray::from(vec![1_500, 2_000]);
    let got = try_one(
        "c",
        Arc::new(a),
        false,
        "DateTime",
        MappingOptions {
            allow_truncation: true,
        },
    )
    .unwrap();
    let mut want = header(2, "DateTime");
    want.extend_from_slice(&[1, 0, 0, 0, 2, 0, 0, 0]);
    assert_eq!(got, want);
    // Nanoseconds to DateTime64(3) loses digits: refused without truncation.
    let a = TimestampNanosecondArray::from(vec![1_000_000, 1_000_001]);
    let e = try_one(
        "c",
        Arc::new(a),
        false,
        "DateTime64(3)",
        MappingOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("row 1"), "{e}");
    // Seconds to DateTime64(9) overflows far from the epoch.
    let a = TimestampSecondArray::from(vec![0, i64::MAX / 10]);
    let e = try_one(
        "c",
        Arc::new(a),
        false,
        "DateTime64(9)",
        MappingOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("row 1") && e.contains("overflows"), "{e}");
}

#[test]
fn dates_checked() {
    let got = one(
        "c",
        Arc::new(Date32Array::from(vec![0, 65535])),
        false,
        "Date",
    );
    let mut want = header(2, "Date");
    want.extend_from_slice(&[0, 0, 0xff, 0xff]);
    assert_eq!(got, want);
    let e = try_one(
        "d",
        Arc::new(Date32Array::from(vec![1, -1])),
        false,
        "Date",
        MappingOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("\"d\"") && e.contains("row 1") && e.contains("outside the range of Date"),
        "{e}"
    );
    let e = try_one(
        "d",
        Arc::new(Date32Array::from(vec![65536])),
        false,
        "Date",
        MappingOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("row 0"), "{e}");
    // A null slot holding an out-of-range value is fine.
    let a = Date32Array::from(vec![Some(1), None]);
    let a = Date32Array::new(vec![1, -5].into(), a.nulls().cloned());
    one("d", Arc::new(a), true, "Nullable(Date)");
    let got = one(
        "c",
        Arc::new(Date64Array::from(vec![86_400_000 * 3])),
        false,
        "Date32",
    );
    let mut want = header(1, "Date32");
    want.extend_from_slice(&3i32.to_le_bytes());
    assert_eq!(got, want);
}

#[test]
fn nulls_into_non_nullable_are_refused() {
    let e = try_one(
        "x",
        Arc::new(Int32Array::from(vec![Some(1), Some(2), None])),
        true,
        "Int32",
        MappingOptions::default(),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, CodecError::Column { .. }), "{e:?}");
    assert!(
        msg.contains("\"x\"") && msg.contains("row 2") && msg.contains("NULL"),
        "{msg}"
    );
    let mut d = StringDictionaryBuilder::<Int8Type>::new();
    d.append_value("a");
    d.append_null();
    let e = try_one(
        "lc",
        Arc::new(d.finish()),
        true,
        "LowCardinality(String)",
        MappingOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("row 1") && e.contains("NULL"), "{e}");
    let mut l = ListBuilder::new(arrow_array::builder::Int8Builder::new());
    l.append_value([Some(1)]);
    l.append_null();
    let e = try_one(
        "l",
        Arc::new(l.finish()),
        true,
        "Array(Int8)",
        MappingOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("row 1") && e.contains("NULL list"), "{e}");
    let mut l = ListBuilder::new(arrow_array::builder::Int8Builder::new());
    l.append_value([Some(1), Some(2), None]);
    let e = try_one(
        "l",
        Arc::new(l.finish()),
        false,
        "Array(Int8)",
        MappingOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("array element 2"), "{e}");
}

#[test]
fn checked_narrowing() {
    let got = one(
        "c",
        Arc::new(Int64Array::from(vec![0, 255])),
        false,
        "UInt8",
    );
    assert_eq!(&got[got.len() - 2..], &[0, 255]);
    for (arr, target) in [
        (
            Arc::new(Int64Array::from(vec![0, 256])) as ArrayRef,
            "UInt8",
        ),
        (Arc::new(Int8Array::from(vec![0, -1])) as ArrayRef, "UInt64"),
        (
            Arc::new(UInt64Array::from(vec![0, u64::MAX])) as ArrayRef,
            "Int64",
        ),
    ] {
        let e = try_one("c", arr, false, target, MappingOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("row 1") && e.contains("out of range"),
            "{target}: {e}"
        );
    }
    // Out-of-range values under nulls do not matter.
    let a = Int64Array::new(vec![1, 1000].into(), Some(vec![true, false].into()));
    one("c", Arc::new(a), true, "Nullable(UInt8)");
}

#[test]
fn decimals() {
    let a = Decimal128Array::from(vec![12345, -1])
        .with_precision_and_scale(10, 2)
        .unwrap();
    let got = one("c", Arc::new(a.clone()), false, "Decimal(18, 4)");
    let mut want = header(2, "Decimal(18, 4)");
    want.extend_from_slice(&1_234_500i64.to_le_bytes());
    want.extend_from_slice(&(-100i64).to_le_bytes());
    assert_eq!(got, want);
    let got = one("c", Arc::new(a.clone()), false, "Decimal(76, 2)");
    assert_eq!(got.len(), header(2, "Decimal(76, 2)").len() + 64);
    assert_eq!(&got[got.len() - 32..], &[0xff; 32]);
    let e = try_one(
        "c",
        Arc::new(a),
        false,
        "Decimal(4, 2)",
        MappingOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("row 0") && e.contains("does not fit"), "{e}");
    let a = Decimal256Array::from(vec![arrow_buffer::i256::from_i128(-7)])
        .with_precision_and_scale(50, 0)
        .unwrap();
    let got = one("c", Arc::new(a), false, "Decimal(9, 0)");
    assert_eq!(&got[got.len() - 4..], &(-7i32).to_le_bytes());
}

#[test]
fn fixed_strings() {
    let got = one(
        "c",
        Arc::new(StringArray::from(vec!["ab", ""])),
        false,
        "FixedString(3)",
    );
    assert_eq!(&got[got.len() - 6..], b"ab\0\0\0\0");
    let e = try_one(
        "c",
        Arc::new(StringArray::from(vec!["abcd"])),
        false,
        "FixedString(3)",
        MappingOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("row 0") && e.contains("FixedString(3)"), "{e}");
    let a = FixedSizeBinaryArray::try_from_iter(vec![*b"xy", *b"zw"].into_iter()).unwrap();
    let got = one("c", Arc::new(a.slice(1, 1)), false, "FixedString(2)");
    assert_eq!(&got[got.len() - 2..], b"zw");
}

#[test]
fn planning_reports_every_problem_at_once() {
    let schema = Schema::new(vec![
        Field::new("a", DataType::Int32, false),
        Field::new("extra1", DataType::Int32, false),
        Field::new("s", DataType::Utf8, false),
        Field::new("extra2", DataType::Int32, false),
    ]);
    let target = vec![
        ("a".to_string(), t("Int32")),
        ("s".to_string(), t("Int64")),
        ("gone".to_string(), t("String")),
    ];
    let e = NativeEncoder::new(&schema, &target, MappingOptions::default()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, CodecError::SchemaMismatch(_)));
    for part in [
        "\"gone\"",
        "\"extra1\"",
        "\"extra2\"",
        "column \"s\": Arrow type Utf8 cannot be written to ClickHouse Int64",
    ] {
        assert!(msg.contains(part), "{part} missing from: {msg}");
    }
}

#[test]
fn unsupported_arrow_types_name_the_column() {
    let schema = Schema::new(vec![Field::new(
        "st",
        DataType::Interval(arrow_schema::IntervalUnit::MonthDayNano),
        false,
    )]);
    let e = NativeEncoder::for_schema(&schema, ServerCaps::MODERN, MappingOptions::default())
        .unwrap_err();
    assert!(
        matches!(&e, CodecError::UnsupportedType { column, .. } if column == "st"),
        "{e:?}"
    );
}

#[test]
fn batches_must_match_the_planned_schema() {
    let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, false)]));
    let enc =
        NativeEncoder::for_schema(&schema, ServerCaps::LEGACY, MappingOptions::default()).unwrap();
    let other = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(other, vec![Arc::new(Int64Array::from(vec![1]))]).unwrap();
    let e = enc.encode(&batch, &mut Vec::new()).unwrap_err().to_string();
    assert!(
        e.contains("\"a\"") && e.contains("Int64") && e.contains("Int32"),
        "{e}"
    );
    assert_eq!(enc.columns().collect::<Vec<_>>(), vec![("a", "Int32")]);
    let renamed = Arc::new(Schema::new(vec![Field::new("b", DataType::Int32, false)]));
    let batch = RecordBatch::try_new(renamed, vec![Arc::new(Int32Array::from(vec![1]))]).unwrap();
    let e = enc.encode(&batch, &mut Vec::new()).unwrap_err().to_string();
    assert!(e.contains("\"b\"") && e.contains("\"a\""), "{e}");
}

#[test]
fn empty_batch_appends_nothing() {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "t",
        DataType::Timestamp(TimeUnit::Microsecond, None),
        true,
    )]));
    let enc =
        NativeEncoder::for_schema(&schema, ServerCaps::MODERN, MappingOptions::default()).unwrap();
    let mut out = vec![7];
    enc.encode(&RecordBatch::new_empty(schema.clone()), &mut out)
        .unwrap();
    assert_eq!(out, vec![7]);
    let batch = RecordBatch::try_new(
        schema,
        vec![Arc::new(TimestampMicrosecondArray::from(vec![
            Some(1),
            None,
        ]))],
    )
    .unwrap();
    enc.encode(&batch.slice(1, 0), &mut out).unwrap();
    assert_eq!(out, vec![7]);
    enc.encode(&batch, &mut out).unwrap();
    let ty = "Nullable(DateTime64(6))";
    let mut want = vec![7, 1, 2, 1, b't', ty.len() as u8];
    want.extend_from_slice(ty.as_bytes());
    want.extend_from_slice(&[0, 1]);
    want.extend_from_slice(&1i64.to_le_bytes());
    want.extend_from_slice(&[0; 8]);
    assert_eq!(out, want);
}
