//! Native encoder for the nested and extension types: Tuple (struct), Map,
//! UUID, list of structs (also flattened into `col.field` columns as old
//! servers store them), dictionaries of non-string values, times and
//! durations as integers, and the Arrow Null type. Expected bytes of
//! Tuple, UUID and Array(Tuple) were captured from ClickHouse 18.16's own
//! `FORMAT Native` output for the same values.

use std::sync::Arc;

use arrow_array::builder::{
    Int32Builder, Int64Builder, ListBuilder, MapBuilder, StringBuilder, StructBuilder,
};
use arrow_array::*;
use arrow_buffer::NullBuffer;
use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use velostream_codecs::chtype::ChType;
use velostream_codecs::mapping::{
    table_columns, MappingOptions, ServerCaps, EXTENSION_NAME_KEY, UUID_EXTENSION,
};
use velostream_codecs::native::NativeEncoder;

fn encode(schema: &Schema, target: &[(&str, &str)], columns: Vec<ArrayRef>) -> Vec<u8> {
    try_encode(schema, target, columns).unwrap_or_else(|e| panic!("{e}"))
}

fn try_encode(
    schema: &Schema,
    target: &[(&str, &str)],
    columns: Vec<ArrayRef>,
) -> Result<Vec<u8>, String> {
    let target: Vec<(String, ChType)> = target
        .iter()
        .map(|(n, t)| (n.to_string(), ChType::parse(t).unwrap()))
        .collect();
    let enc = NativeEncoder::new(schema, &target, MappingOptions::default())
        .map_err(|e| e.to_string())?;
    let batch = RecordBatch::try_new(Arc::new(schema.clone()), columns).unwrap();
    let mut out = Vec::new();
    enc.encode(&batch, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Column header: name and type, length-prefixed.
fn col(name: &str, ty: &str) -> Vec<u8> {
    let mut h = vec![name.len() as u8];
    h.extend_from_slice(name.as_bytes());
    h.push(ty.len() as u8);
    h.extend_from_slice(ty.as_bytes());
    h
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn struct_field(name: &str, nullable: bool) -> Field {
    Field::new(
        name,
        DataType::Struct(Fields::from(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("b", DataType::Utf8, true),
        ])),
        nullable,
    )
}

fn struct_array(rows: &[(Option<i32>, Option<&str>)], nulls: Option<Vec<bool>>) -> StructArray {
    let a: ArrayRef = Arc::new(Int32Array::from(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
    ));
    let b: ArrayRef = Arc::new(StringArray::from(
        rows.iter().map(|r| r.1).collect::<Vec<_>>(),
    ));
    let DataType::Struct(fields) = struct_field("s", true).data_type().clone() else {
        unreachable!()
    };
    StructArray::new(fields, vec![a, b], nulls.map(NullBuffer::from))
}

#[test]
fn tuple_bytes_match_clickhouse() {
    // 18.16: CAST((5, NULL) AS Tuple(Int32, Nullable(String))) → 05000000 01 00
    let schema = Schema::new(vec![struct_field("t", false)]);
    let s = struct_array(&[(Some(5), None)], None);
    let ty = "Tuple(Int32, Nullable(String))";
    let out = encode(
        &schema,
        &[("t", "Tuple(Nullable(Int32), Nullable(String))")],
        vec![Arc::new(s.clone())],
    );
    let mut want = vec![1, 1];
    want.extend(col("t", "Tuple(Nullable(Int32), Nullable(String))"));
    want.extend(hex("00 05000000 01 00"));
    assert_eq!(out, want);
    // Non-nullable element with a value: plain bytes.
    let schema = Schema::new(vec![struct_field("t", false)]);
    let out = encode(&schema, &[("t", ty)], vec![Arc::new(s)]);
    let mut want = vec![1, 1];
    want.extend(col("t", ty));
    want.extend(hex("05000000 01 00"));
    assert_eq!(out, want);
}

#[test]
fn named_tuples_match_by_name() {
    let schema = Schema::new(vec![struct_field("t", false)]);
    let s = struct_array(&[(Some(7), Some("x"))], None);
    // Elements in another order than the struct's fields, matched by name.
    let ty = "Tuple(b String, a Int32)";
    let out = encode(&schema, &[("t", ty)], vec![Arc::new(s)]);
    let mut want = vec![1, 1];
    want.extend(col("t", ty));
    want.extend(hex("01 78 07000000"));
    assert_eq!(out, want);
}

#[test]
fn null_structs_are_null_in_every_element() {
    let schema = Schema::new(vec![struct_field("s", true)]);
    let s = struct_array(
        &[(Some(1), Some("a")), (Some(2), Some("b"))],
        Some(vec![true, false]),
    );
    let ty = "Tuple(a Nullable(Int32), b Nullable(String))";
    let out = encode(&schema, &[("s", ty)], vec![Arc::new(s.clone())]);
    let mut want = vec![1, 2];
    want.extend(col("s", ty));
    // a: null map 0 1, values 1 and (hidden) 2; b: null map 0 1, "a", "b".
    want.extend(hex("00 01 01000000 02000000 00 01 01 61 01 62"));
    assert_eq!(out, want);
    // A non-Nullable element cannot hold the NULL struct: refused, named.
    let e = try_encode(
        &schema,
        &[("s", "Tuple(a Int32, b Nullable(String))")],
        vec![Arc::new(s)],
    )
    .unwrap_err();
    assert!(e.contains("\"s.a\"") && e.contains("row 1"), "{e}");
}

#[test]
fn uuid_halves_are_byte_swapped() {
    // 18.16: toUUID('61f0c404-5cb3-11e7-907b-a6006ad3dba0') in Native.
    let field = Field::new("u", DataType::FixedSizeBinary(16), true)
        .with_metadata([(EXTENSION_NAME_KEY.to_string(), UUID_EXTENSION.to_string())].into());
    let schema = Schema::new(vec![field]);
    let cols = table_columns(&schema, ServerCaps::LEGACY).unwrap();
    assert_eq!(cols[0].1.to_string(), "Nullable(UUID)");
    let bytes = hex("61f0c4045cb311e7907ba6006ad3dba0");
    let arr = FixedSizeBinaryArray::try_from_sparse_iter_with_size(
        vec![Some(bytes.as_slice()), None].into_iter(),
        16,
    )
    .unwrap();
    let out = encode(&schema, &[("u", "Nullable(UUID)")], vec![Arc::new(arr)]);
    let mut want = vec![1, 2];
    want.extend(col("u", "Nullable(UUID)"));
    want.extend(hex("00 01 e711b35c04c4f061 a0dbd36a00a67b90"));
    want.extend([0; 16]);
    assert_eq!(out, want);
}

fn list_of_structs() -> (Field, ArrayRef) {
    // [(1, ['a', NULL])] per row, as List<Struct<x: Int32, y: List<Utf8>>>.
    let inner = Fields::from(vec![
        Field::new("x", DataType::Int32, false),
        Field::new(
            "y",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            false,
        ),
    ]);
    let mut b = ListBuilder::new(StructBuilder::new(
        inner.clone(),
        vec![
            Box::new(Int32Builder::new()),
            Box::new(ListBuilder::new(StringBuilder::new())),
        ],
    ))
    .with_field(Field::new("item", DataType::Struct(inner.clone()), false));
    {
        let s = b.values();
        s.field_builder::<Int32Builder>(0).unwrap().append_value(1);
        let y = s.field_builder::<ListBuilder<StringBuilder>>(1).unwrap();
        y.values().append_value("a");
        y.values().append_null();
        y.append(true);
        s.append(true);
    }
    b.append(true);
    let arr = b.finish();
    (
        Field::new("arr", arr.data_type().clone(), false),
        Arc::new(arr),
    )
}

#[test]
fn array_of_tuples_bytes_match_clickhouse() {
    // 18.16: CAST([(1, ['a', NULL])] AS Array(Tuple(Int32, Array(Nullable(String))))).
    let (field, arr) = list_of_structs();
    let schema = Schema::new(vec![field]);
    let ty = "Array(Tuple(Int32, Array(Nullable(String))))";
    let out = encode(&schema, &[("arr", ty)], vec![arr]);
    let mut want = vec![1, 1];
    want.extend(col("arr", ty));
    want.extend(hex(
        "0100000000000000 01000000 0200000000000000 0001 0161 00",
    ));
    assert_eq!(out, want);
}

#[test]
fn flattened_columns_are_filled_from_the_list() {
    // What 18.16 stores for arr Array(Tuple(...)): arr.x and arr.y (or arr.1, arr.2).
    let (field, arr) = list_of_structs();
    let schema = Schema::new(vec![field]);
    let cols = table_columns(&schema, ServerCaps::LEGACY).unwrap();
    let names: Vec<String> = cols.iter().map(|(n, t)| format!("{n} {t}")).collect();
    assert_eq!(
        names,
        ["arr.x Array(Int32)", "arr.y Array(Array(Nullable(String)))"]
    );
    let out = encode(
        &schema,
        &[
            ("arr.1", "Array(Int32)"),
            ("arr.y", "Array(Array(Nullable(String)))"),
        ],
        vec![arr.clone()],
    );
    let mut want = vec![2, 1];
    want.extend(col("arr.1", "Array(Int32)"));
    want.extend(hex("0100000000000000 01000000"));
    want.extend(col("arr.y", "Array(Array(Nullable(String)))"));
    want.extend(hex("0100000000000000 0200000000000000 0001 0161 00"));
    assert_eq!(out, want);
    // A struct field without its column would be lost: refused, named.
    let e = try_encode(&schema, &[("arr.x", "Array(Int32)")], vec![arr]).unwrap_err();
    assert!(
        e.contains("\"arr\"") && e.contains("\"y\"") && e.contains("\"arr.y\""),
        "{e}"
    );
}

#[test]
fn maps_are_arrays_of_key_value_tuples() {
    let mut b = MapBuilder::new(None, StringBuilder::new(), Int64Builder::new());
    b.keys().append_value("k");
    b.values().append_value(1);
    b.keys().append_value("z");
    b.values().append_null();
    b.append(true).unwrap();
    b.append(true).unwrap(); // empty map
    let m = b.finish();
    let schema = Schema::new(vec![Field::new("m", m.data_type().clone(), false)]);
    let cols = table_columns(&schema, ServerCaps::MODERN).unwrap();
    assert_eq!(cols[0].1.to_string(), "Map(String, Nullable(Int64))");
    let ty = "Map(String, Nullable(Int64))";
    let out = encode(&schema, &[("m", ty)], vec![Arc::new(m.clone())]);
    let mut want = vec![1, 2];
    want.extend(col("m", ty));
    want.extend(hex(
        "0200000000000000 0200000000000000 016b 017a 0001 0100000000000000 0000000000000000",
    ));
    assert_eq!(out, want);
    // The same bytes go to Array(Tuple(K, V)) and to flattened m.key / m.value.
    let out = encode(
        &schema,
        &[("m", "Array(Tuple(String, Nullable(Int64)))")],
        vec![Arc::new(m.clone())],
    );
    assert_eq!(out[out.len() - 38..], want[want.len() - 38..]);
    let out = encode(
        &schema,
        &[
            ("m.keys", "Array(String)"),
            ("m.values", "Array(Nullable(Int64))"),
        ],
        vec![Arc::new(m)],
    );
    assert!(out.ends_with(&hex("0001 0100000000000000 0000000000000000")));
}

#[test]
fn non_string_dictionaries_times_durations_and_nulls() {
    let dict: DictionaryArray<arrow_array::types::Int8Type> = DictionaryArray::new(
        Int8Array::from(vec![Some(1), None, Some(0)]),
        Arc::new(Int64Array::from(vec![10, -20])),
    );
    let t64 = Time64NanosecondArray::from(vec![1, 86_399_999_999_999, 0]);
    let t32 = Time32SecondArray::from(vec![0, 1, 86_399]);
    let dur = DurationMillisecondArray::from(vec![-5, 0, i64::MAX]);
    let nothing = NullArray::new(3);
    let schema = Schema::new(vec![
        Field::new("d", dict.data_type().clone(), true),
        Field::new("t64", DataType::Time64(TimeUnit::Nanosecond), false),
        Field::new("t32", DataType::Time32(TimeUnit::Second), false),
        Field::new("dur", DataType::Duration(TimeUnit::Millisecond), false),
        Field::new("n", DataType::Null, true),
    ]);
    let cols = table_columns(&schema.project(&[0, 1, 2, 3]).unwrap(), ServerCaps::LEGACY).unwrap();
    let types: Vec<String> = cols.iter().map(|(_, t)| t.to_string()).collect();
    assert_eq!(types, ["Nullable(Int64)", "Int64", "Int32", "Int64"]);
    let out = encode(
        &schema,
        &[
            ("d", "Nullable(Int64)"),
            ("t64", "Int64"),
            ("t32", "Int64"),
            ("dur", "Int64"),
            ("n", "Nullable(Int32)"),
        ],
        vec![
            Arc::new(dict),
            Arc::new(t64),
            Arc::new(t32),
            Arc::new(dur),
            Arc::new(nothing),
        ],
    );
    let mut want = vec![5, 3];
    want.extend(col("d", "Nullable(Int64)"));
    want.extend([0, 1, 0]);
    // Decoded values; the NULL row's slot is not checked.
    let tail_d = &out[want.len()..want.len() + 24];
    assert_eq!(&tail_d[..8], &(-20i64).to_le_bytes());
    assert_eq!(&tail_d[16..], &10i64.to_le_bytes());
    let rest = &out[want.len() + 24..];
    let mut want_rest = col("t64", "Int64");
    for v in [1i64, 86_399_999_999_999, 0] {
        want_rest.extend(v.to_le_bytes());
    }
    want_rest.extend(col("t32", "Int64"));
    for v in [0i64, 1, 86_399] {
        want_rest.extend(v.to_le_bytes());
    }
    want_rest.extend(col("dur", "Int64"));
    for v in [-5i64, 0, i64::MAX] {
        want_rest.extend(v.to_le_bytes());
    }
    want_rest.extend(col("n", "Nullable(Int32)"));
    want_rest.extend([1, 1, 1]);
    want_rest.extend([0; 12]);
    assert_eq!(rest, want_rest.as_slice());
    assert_eq!(&out[..want.len()], want.as_slice());
}
