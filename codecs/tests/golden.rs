//! Golden files written by third-party writers (`codecs/tests/golden/`, see
//! its README): no services, no Python at test time.
//!
//! - `ipc/*.arrows`: Arrow IPC streams written by pyarrow, decoded with
//!   `velostream_codecs::ipc` and compared value by value with what
//!   `generate.py` wrote (the values are repeated here, explicitly).
//! - `native/*.native`: Native blocks written by chdb (ClickHouse 26.9);
//!   the same values, as Arrow arrays, are encoded with
//!   `velostream_codecs::native` for the same column types and must give
//!   the same bytes, in one batch and split across two.
//!
//! Regenerate with `.venv/bin/python codecs/tests/golden/generate.py`.

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder, UInt8Builder};
use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::*;
use arrow_buffer::i256;
use arrow_ipc::{CompressionType, MessageHeader};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use velostream_codecs::chtype::ChType;
use velostream_codecs::ipc::{decode, decode_with_limits, DecodeLimits, Decoded};
use velostream_codecs::mapping::MappingOptions;
use velostream_codecs::native::NativeEncoder;

/// The bytes of a golden file, embedded at compile time.
macro_rules! golden {
    ($file:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/", $file)).as_slice()
    };
}

// ------------------------------------------------------------------ IPC

/// One IPC message of a stream, as the framing says.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Msg {
    Schema,
    /// A record batch and its body compression.
    Batch(Option<CompressionType>),
    /// A dictionary batch and whether it is a delta.
    Dictionary {
        delta: bool,
    },
}

/// The messages of a stream, read from its framing (independently of the
/// decoder under test), so each file is known to cover what it claims.
fn messages(mut bytes: &[u8]) -> Vec<Msg> {
    let mut out = Vec::new();
    loop {
        let mut len = u32::from_le_bytes(bytes[..4].try_into().unwrap());
        bytes = &bytes[4..];
        if len == u32::MAX {
            len = u32::from_le_bytes(bytes[..4].try_into().unwrap());
            bytes = &bytes[4..];
        }
        if len == 0 {
            assert!(bytes.is_empty(), "bytes after the end-of-stream marker");
            return out;
        }
        let m = arrow_ipc::root_as_message(&bytes[..len as usize]).unwrap();
        out.push(match m.header_type() {
            MessageHeader::Schema => Msg::Schema,
            MessageHeader::RecordBatch => Msg::Batch(
                m.header_as_record_batch()
                    .unwrap()
                    .compression()
                    .map(|c| c.codec()),
            ),
            MessageHeader::DictionaryBatch => Msg::Dictionary {
                delta: m.header_as_dictionary_batch().unwrap().isDelta(),
            },
            other => panic!("unexpected message {other:?}"),
        });
        bytes = &bytes[len as usize + m.bodyLength() as usize..];
    }
}

/// Decodes with default limits and with the tight limits of the fuzz target.
fn decoded(bytes: &[u8]) -> Decoded {
    let tight = DecodeLimits {
        max_decompressed_bytes: 64 << 20,
        max_messages: 1024,
    };
    let d = decode_with_limits(bytes, &tight).unwrap();
    assert_eq!(decode(bytes).unwrap().num_rows(), d.num_rows());
    d
}

fn rows_per_batch(d: &Decoded) -> Vec<usize> {
    d.batches.iter().map(RecordBatch::num_rows).collect()
}

/// The column `name` over all batches.
fn column(d: &Decoded, name: &str) -> ArrayRef {
    let i = d.schema.index_of(name).unwrap();
    let parts: Vec<&dyn Array> = d.batches.iter().map(|b| b.column(i).as_ref()).collect();
    arrow_select::concat::concat(&parts).unwrap()
}

/// Dictionary values of one batch's column 0, materialised as strings.
fn strings(b: &RecordBatch) -> Vec<Option<String>> {
    let s = arrow_cast::cast(b.column(0), &DataType::Utf8).unwrap();
    s.as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

fn taxi_schema() -> Schema {
    let utc = Some("UTC".into());
    Schema::new(vec![
        Field::new("VendorID", DataType::Int32, true),
        Field::new(
            "tpep_pickup_datetime",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        ),
        Field::new(
            "tpep_dropoff_datetime",
            DataType::Timestamp(TimeUnit::Microsecond, utc),
            false,
        ),
        Field::new("passenger_count", DataType::Int64, true),
        Field::new("trip_distance", DataType::Float64, false),
        Field::new("tip_ratio", DataType::Float32, true),
        Field::new("total_amount", DataType::Decimal128(10, 2), true),
        Field::new("pickup_date", DataType::Date32, true),
        Field::new("store_and_fwd_flag", DataType::Utf8, true),
        Field::new("PULocationID", DataType::Int32, false),
        Field::new("airport_fee", DataType::Float64, true),
    ])
}

/// The taxi table of `generate.py`, column by column.
fn taxi_columns() -> Vec<ArrayRef> {
    vec![
        Arc::new(Int32Array::from(vec![
            Some(1),
            Some(2),
            Some(2),
            None,
            Some(1),
            Some(2),
            Some(1),
            None,
        ])),
        Arc::new(TimestampMicrosecondArray::from(vec![
            Some(1_672_533_130_000_000),
            Some(1_672_533_300_123_456),
            Some(1_672_534_000_000_001),
            None,
            Some(1_672_617_599_999_999),
            Some(0),
            Some(-1),
            Some(1_672_531_200_000_000),
        ])),
        Arc::new(
            TimestampMicrosecondArray::from(vec![
                1_672_533_730_000_000,
                1_672_534_200_000_000,
                1_672_534_900_000_000,
                1_672_535_000_000_000,
                1_672_618_000_000_000,
                600_000_000,
                599_999_999,
                1_672_531_800_000_000,
            ])
            .with_timezone("UTC"),
        ),
        Arc::new(Int64Array::from(vec![
            Some(1),
            None,
            Some(2),
            Some(1),
            None,
            Some(5),
            Some(0),
            Some(3),
        ])),
        Arc::new(Float64Array::from(vec![
            0.97, 1.1, 2.51, 0.0, 12.3, 1.43, -0.5, 3.25,
        ])),
        Arc::new(Float32Array::from(vec![
            Some(0.0),
            Some(0.25),
            None,
            Some(1.5),
            Some(-0.0),
            Some(f32::INFINITY),
            Some(0.125),
            Some(3.75),
        ])),
        Arc::new(
            Decimal128Array::from(vec![
                Some(1430),
                Some(-550),
                None,
                Some(0),
                Some(9_999_999_999),
                Some(101),
                Some(1),
                Some(2345),
            ])
            .with_precision_and_scale(10, 2)
            .unwrap(),
        ),
        Arc::new(Date32Array::from(vec![
            Some(19358),
            Some(19358),
            Some(19359),
            None,
            Some(19358),
            Some(0),
            Some(-1),
            Some(19358),
        ])),
        Arc::new(StringArray::from(vec![
            Some("N"),
            Some("N"),
            None,
            Some("Y"),
            Some("N"),
            None,
            Some(""),
            Some("é€"),
        ])),
        Arc::new(Int32Array::from(vec![161, 43, 48, 138, 132, 1, 265, 264])),
        Arc::new(Float64Array::from(vec![None; 8])),
    ]
}

fn check_taxi(bytes: &[u8], codec: Option<CompressionType>) {
    let batch = Msg::Batch(codec);
    assert_eq!(
        messages(bytes),
        [Msg::Schema, batch, batch],
        "the file is not what generate.py writes"
    );
    let d = decoded(bytes);
    assert_eq!(*d.schema, taxi_schema());
    assert_eq!(rows_per_batch(&d), [5, 3]);
    for (f, want) in taxi_schema().fields().iter().zip(taxi_columns()) {
        let got = column(&d, f.name());
        assert_eq!(got.as_ref(), want.as_ref(), "column {}", f.name());
        assert_eq!(got.null_count(), want.null_count(), "column {}", f.name());
    }
    // Float values compared bit for bit (-0.0 is not 0.0).
    let tip = column(&d, "tip_ratio");
    assert_eq!(
        tip.as_primitive::<arrow_array::types::Float32Type>()
            .value(4)
            .to_bits(),
        (-0.0f32).to_bits()
    );
}

#[test]
fn taxi_lz4_frame_stream() {
    check_taxi(
        golden!("ipc/taxi_lz4.arrows"),
        Some(CompressionType::LZ4_FRAME),
    );
}

#[test]
fn taxi_zstd_stream() {
    check_taxi(golden!("ipc/taxi_zstd.arrows"), Some(CompressionType::ZSTD));
}

#[test]
fn taxi_uncompressed_stream() {
    check_taxi(golden!("ipc/taxi_none.arrows"), None);
}

#[test]
fn schema_only_stream_has_no_batches() {
    let bytes = golden!("ipc/empty.arrows");
    assert_eq!(messages(bytes), [Msg::Schema]);
    let d = decoded(bytes);
    assert_eq!(*d.schema, taxi_schema());
    assert!(d.batches.is_empty());
    assert_eq!(d.num_rows(), 0);
}

#[test]
fn dictionary_written_once_for_two_batches() {
    let bytes = golden!("ipc/dictionary.arrows");
    let lz4 = Some(CompressionType::LZ4_FRAME);
    assert_eq!(
        messages(bytes),
        [
            Msg::Schema,
            Msg::Dictionary { delta: false },
            Msg::Batch(lz4),
            Msg::Batch(lz4),
        ]
    );
    let d = decoded(bytes);
    let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    assert_eq!(*d.schema, Schema::new(vec![Field::new("zone", dict, true)]));
    assert_eq!(rows_per_batch(&d), [5, 4]);
    let zones = ["Manhattan", "Queens", "Brooklyn"];
    for (b, keys) in d.batches.iter().zip([
        vec![Some(0), Some(1), Some(0), None, Some(2)],
        vec![Some(2), Some(2), None, Some(1)],
    ]) {
        let a = b.column(0).as_dictionary::<Int32Type>();
        assert_eq!(a.keys(), &Int32Array::from(keys.clone()));
        assert_eq!(
            a.values().as_ref(),
            &StringArray::from(zones.to_vec()) as &dyn Array
        );
        let want: Vec<Option<String>> = keys
            .iter()
            .map(|k| k.map(|k| zones[k as usize].to_string()))
            .collect();
        assert_eq!(strings(b), want);
    }
}

#[test]
fn dictionary_delta_then_replacement() {
    let bytes = golden!("ipc/dictionary_changes.arrows");
    assert_eq!(
        messages(bytes),
        [
            Msg::Schema,
            Msg::Dictionary { delta: false },
            Msg::Batch(None),
            Msg::Dictionary { delta: true },
            Msg::Batch(None),
            Msg::Dictionary { delta: false },
            Msg::Batch(None),
        ]
    );
    let d = decoded(bytes);
    assert_eq!(rows_per_batch(&d), [3, 3, 2]);
    let s = |v: &[Option<&str>]| v.iter().map(|v| v.map(str::to_string)).collect::<Vec<_>>();
    assert_eq!(strings(&d.batches[0]), s(&[Some("b"), Some("a"), None]));
    assert_eq!(
        strings(&d.batches[1]),
        s(&[Some("c"), Some("a"), Some("c")])
    );
    assert_eq!(strings(&d.batches[2]), s(&[Some("x"), None]));
}

#[test]
fn several_batches_including_an_empty_one() {
    let bytes = golden!("ipc/multi_batch.arrows");
    let zstd = Msg::Batch(Some(CompressionType::ZSTD));
    assert_eq!(messages(bytes), [Msg::Schema, zstd, zstd, zstd, zstd]);
    let d = decoded(bytes);
    assert_eq!(
        *d.schema,
        Schema::new(vec![
            Field::new("seq", DataType::Int64, false),
            Field::new("label", DataType::Utf8, true),
        ])
    );
    assert_eq!(rows_per_batch(&d), [3, 0, 1, 2]);
    assert_eq!(
        column(&d, "seq").as_ref(),
        &Int64Array::from(vec![0, 1, 2, 3, 4, 5]) as &dyn Array
    );
    assert_eq!(
        column(&d, "label").as_ref(),
        &StringArray::from(vec![Some("a"), None, Some("c"), Some("d"), None, Some("f")])
            as &dyn Array
    );
}

#[test]
fn large_utf8_and_large_binary() {
    let bytes = golden!("ipc/large_types.arrows");
    assert_eq!(messages(bytes), [Msg::Schema, Msg::Batch(None)]);
    let d = decoded(bytes);
    assert_eq!(
        *d.schema,
        Schema::new(vec![
            Field::new("note", DataType::LargeUtf8, true),
            Field::new("blob", DataType::LargeBinary, true),
        ])
    );
    let long = "x".repeat(300);
    assert_eq!(
        column(&d, "note").as_ref(),
        &LargeStringArray::from(vec![
            Some("short"),
            None,
            Some(long.as_str()),
            Some(""),
            Some("ünï")
        ]) as &dyn Array
    );
    assert_eq!(
        column(&d, "blob").as_ref(),
        &LargeBinaryArray::from(vec![
            Some(&b"\x00\x01"[..]),
            Some(&b""[..]),
            None,
            Some(&b"\xff\xff\xff"[..]),
            Some(&b"end"[..]),
        ]) as &dyn Array
    );
}

// ------------------------------------------------------------------ Native

/// Encodes `columns` (name, ClickHouse type, values) as one Native block and
/// compares it with chdb's; then again with the rows split across two
/// batches (`encode_batches`, sliced arrays), which must give the same block.
fn assert_native(file: &str, golden: &[u8], columns: Vec<(&str, &str, ArrayRef)>) {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, _, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let target: Vec<(String, ChType)> = columns
        .iter()
        .map(|(n, t, _)| (n.to_string(), ChType::parse(t).unwrap()))
        .collect();
    let batch =
        RecordBatch::try_new(schema.clone(), columns.into_iter().map(|c| c.2).collect()).unwrap();
    let enc = NativeEncoder::new(&schema, &target, MappingOptions::default()).unwrap();
    let mut one = Vec::new();
    enc.encode(&batch, &mut one).unwrap();
    assert_same_bytes(file, &one, golden);
    let rows = batch.num_rows();
    let mut two = Vec::new();
    enc.encode_batches(&[batch.slice(0, 1), batch.slice(1, rows - 1)], &mut two)
        .unwrap();
    assert_same_bytes(&format!("{file} (two batches)"), &two, golden);
}

fn assert_same_bytes(what: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let around = |b: &[u8]| format!("{:02x?}", &b[at.saturating_sub(8)..(at + 16).min(b.len())]);
    panic!(
        "{what}: {} bytes encoded, chdb wrote {}; first difference at byte {at}\n encoded: {}\n    chdb: {}",
        got.len(),
        want.len(),
        around(got),
        around(want)
    );
}

#[test]
fn native_integers() {
    assert_native(
        "ints.native",
        golden!("native/ints.native"),
        vec![
            (
                "u8",
                "UInt8",
                Arc::new(UInt8Array::from(vec![0, 1, u8::MAX])),
            ),
            (
                "u16",
                "UInt16",
                Arc::new(UInt16Array::from(vec![0, 258, u16::MAX])),
            ),
            (
                "u32",
                "UInt32",
                Arc::new(UInt32Array::from(vec![0, 16_909_060, u32::MAX])),
            ),
            (
                "u64",
                "UInt64",
                Arc::new(UInt64Array::from(vec![0, 72_623_859_790_382_856, u64::MAX])),
            ),
            (
                "i8",
                "Int8",
                Arc::new(Int8Array::from(vec![i8::MIN, -1, i8::MAX])),
            ),
            (
                "i16",
                "Int16",
                Arc::new(Int16Array::from(vec![i16::MIN, -2, i16::MAX])),
            ),
            (
                "i32",
                "Int32",
                Arc::new(Int32Array::from(vec![i32::MIN, -3, i32::MAX])),
            ),
            (
                "i64",
                "Int64",
                Arc::new(Int64Array::from(vec![i64::MIN, -4, i64::MAX])),
            ),
        ],
    );
}

#[test]
fn native_floats() {
    assert_native(
        "floats.native",
        golden!("native/floats.native"),
        vec![
            (
                "f32",
                "Float32",
                Arc::new(Float32Array::from(vec![1.5, -0.0, f32::INFINITY, -3.25])),
            ),
            (
                "f64",
                "Float64",
                Arc::new(Float64Array::from(vec![
                    0.1,
                    -1e300,
                    f64::NEG_INFINITY,
                    2.5e-308,
                ])),
            ),
        ],
    );
}

#[test]
fn native_strings_and_nullable_strings() {
    let long = "y".repeat(200);
    assert_native(
        "strings.native",
        golden!("native/strings.native"),
        vec![
            (
                "s",
                "String",
                Arc::new(StringArray::from(vec![
                    "",
                    "abc",
                    "é€ unicode",
                    long.as_str(),
                ])),
            ),
            (
                "ns",
                "Nullable(String)",
                Arc::new(StringArray::from(vec![Some("x"), None, Some(""), None])),
            ),
        ],
    );
}

#[test]
fn native_nullable_int32_with_nulls() {
    // Arrow arrays built from `Option`s hold 0 under NULL, the value
    // ClickHouse writes there; the encoder copies whatever the buffer holds.
    assert_native(
        "nullable_int.native",
        golden!("native/nullable_int.native"),
        vec![(
            "n",
            "Nullable(Int32)",
            Arc::new(Int32Array::from(vec![
                Some(1),
                None,
                Some(-3),
                None,
                Some(i32::MAX),
            ])),
        )],
    );
}

#[test]
fn native_dates_and_times() {
    assert_native(
        "dates.native",
        golden!("native/dates.native"),
        vec![
            // ClickHouse 26.9 writes the type of a DateTime('UTC') column as
            // plain `DateTime` in Native output (see generate.py), so that
            // is the target here; the values are the same UInt32 seconds.
            (
                "dt",
                "DateTime",
                Arc::new(
                    TimestampSecondArray::from(vec![0, 1_700_000_000, i64::from(u32::MAX)])
                        .with_timezone("UTC"),
                ),
            ),
            (
                "d",
                "Date",
                Arc::new(Date32Array::from(vec![0, 19358, 65535])),
            ),
            (
                "d32",
                "Date32",
                Arc::new(Date32Array::from(vec![-25567, 0, 120_529])),
            ),
            (
                "dt64",
                "DateTime64(6, 'UTC')",
                Arc::new(
                    TimestampMicrosecondArray::from(vec![0, 1_700_000_000_123_456, -1_000_001])
                        .with_timezone("UTC"),
                ),
            ),
        ],
    );
}

#[test]
fn native_decimals() {
    let dec = |v: Vec<i128>, p: u8, s: i8| -> ArrayRef {
        Arc::new(
            Decimal128Array::from(v)
                .with_precision_and_scale(p, s)
                .unwrap(),
        )
    };
    let e20 = i256::from_i128(10).wrapping_pow(20);
    assert_native(
        "decimals.native",
        golden!("native/decimals.native"),
        vec![
            ("d9", "Decimal(9, 2)", dec(vec![123_456_789, -1, 0], 9, 2)),
            (
                "d18",
                "Decimal(18, 4)",
                dec(vec![123_456_789_012_345_678, -1, 0], 18, 4),
            ),
            (
                "d38",
                "Decimal(38, 10)",
                dec(
                    vec![12_345_678_901_234_567_890_123_456_789_012_345_678, -1, 0],
                    38,
                    10,
                ),
            ),
            (
                "d76",
                "Decimal(76, 20)",
                Arc::new(
                    Decimal256Array::from(vec![e20, i256::MINUS_ONE, i256::ZERO])
                        .with_precision_and_scale(76, 20)
                        .unwrap(),
                ),
            ),
        ],
    );
}

#[test]
fn native_arrays() {
    let mut ai = ListBuilder::new(arrow_array::builder::Int32Builder::new());
    for row in [vec![1, 2], vec![], vec![-3]] {
        ai.values().append_slice(&row);
        ai.append(true);
    }
    let mut ans = ListBuilder::new(StringBuilder::new());
    for row in [
        vec![Some("a"), None],
        vec![],
        vec![None, Some("b"), Some("")],
    ] {
        for v in row {
            ans.values().append_option(v);
        }
        ans.append(true);
    }
    let mut aai = ListBuilder::new(ListBuilder::new(UInt8Builder::new()));
    for row in [vec![vec![1u8], vec![], vec![2, 3]], vec![], vec![vec![]]] {
        for inner in row {
            aai.values().values().append_slice(&inner);
            aai.values().append(true);
        }
        aai.append(true);
    }
    assert_native(
        "arrays.native",
        golden!("native/arrays.native"),
        vec![
            ("ai", "Array(Int32)", Arc::new(ai.finish())),
            ("ans", "Array(Nullable(String))", Arc::new(ans.finish())),
            ("aai", "Array(Array(UInt8))", Arc::new(aai.finish())),
        ],
    );
}

#[test]
fn native_low_cardinality_strings() {
    // ClickHouse always starts a LowCardinality dictionary with the default
    // value ('' and, when nullable, NULL before it); the encoder adds only
    // the values it meets. Both are valid but differ in bytes unless the
    // data starts with '' (after a NULL), as these rows do: then both build
    // the same dictionary and the whole layout (version prefix, flags,
    // dictionary, keys) compares byte for byte.
    assert_native(
        "low_cardinality.native",
        golden!("native/low_cardinality.native"),
        vec![
            (
                "lc",
                "LowCardinality(String)",
                Arc::new(StringArray::from(vec!["", "b", "a", "b", ""])),
            ),
            (
                "lcn",
                "LowCardinality(Nullable(String))",
                Arc::new(StringArray::from(vec![
                    None,
                    Some(""),
                    Some("x"),
                    None,
                    Some("x"),
                ])),
            ),
        ],
    );
}

#[test]
fn native_bool_fixed_string_uuid() {
    let uuids: [[u8; 16]; 2] = [
        [
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ],
        [0; 16],
    ];
    assert_native(
        "misc.native",
        golden!("native/misc.native"),
        vec![
            ("b", "Bool", Arc::new(BooleanArray::from(vec![true, false]))),
            // Shorter values are zero padded, as ClickHouse pads them.
            (
                "fs",
                "FixedString(3)",
                Arc::new(StringArray::from(vec!["ab", "xyz"])),
            ),
            (
                "id",
                "UUID",
                Arc::new(FixedSizeBinaryArray::try_from_iter(uuids.iter()).unwrap()),
            ),
        ],
    );
}
