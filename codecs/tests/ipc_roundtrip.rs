//! Property tests of the Kafka message format: random schemas and batches
//! (nulls, empty batches, long strings) survive encode → decode with every
//! compression, and arbitrary or damaged bytes never panic the decoder.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array,
    StringArray, TimestampMicrosecondArray, UInt8Array,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use proptest::prelude::*;
use velostream_codecs::ipc::{decode, IpcCompression, IpcEncoder};

#[derive(Clone, Debug)]
enum Col {
    I32(Vec<Option<i32>>),
    I64(Vec<Option<i64>>),
    U8(Vec<Option<u8>>),
    F64(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Str(Vec<Option<String>>),
    Bin(Vec<Option<Vec<u8>>>),
    Date(Vec<Option<i32>>),
    Ts(Vec<Option<i64>>),
}

fn col(n: usize) -> impl Strategy<Value = Col> {
    prop_oneof![
        proptest::collection::vec(any::<Option<i32>>(), n).prop_map(Col::I32),
        proptest::collection::vec(any::<Option<i64>>(), n).prop_map(Col::I64),
        proptest::collection::vec(any::<Option<u8>>(), n).prop_map(Col::U8),
        proptest::collection::vec(any::<Option<f64>>(), n).prop_map(Col::F64),
        proptest::collection::vec(any::<Option<bool>>(), n).prop_map(Col::Bool),
        proptest::collection::vec(proptest::option::of(".{0,300}"), n).prop_map(Col::Str),
        proptest::collection::vec(
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            n
        )
        .prop_map(Col::Bin),
        proptest::collection::vec(any::<Option<i32>>(), n).prop_map(Col::Date),
        proptest::collection::vec(any::<Option<i64>>(), n).prop_map(Col::Ts),
    ]
}

fn to_array(c: &Col) -> (DataType, ArrayRef) {
    match c {
        Col::I32(v) => (DataType::Int32, Arc::new(Int32Array::from(v.clone()))),
        Col::I64(v) => (DataType::Int64, Arc::new(Int64Array::from(v.clone()))),
        Col::U8(v) => (DataType::UInt8, Arc::new(UInt8Array::from(v.clone()))),
        Col::F64(v) => (DataType::Float64, Arc::new(Float64Array::from(v.clone()))),
        Col::Bool(v) => (DataType::Boolean, Arc::new(BooleanArray::from(v.clone()))),
        Col::Str(v) => (
            DataType::Utf8,
            Arc::new(StringArray::from(
                v.iter().map(|s| s.as_deref()).collect::<Vec<_>>(),
            )),
        ),
        Col::Bin(v) => (
            DataType::Binary,
            Arc::new(BinaryArray::from(
                v.iter().map(|s| s.as_deref()).collect::<Vec<_>>(),
            )),
        ),
        Col::Date(v) => (DataType::Date32, Arc::new(Date32Array::from(v.clone()))),
        Col::Ts(v) => (
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Arc::new(TimestampMicrosecondArray::from(v.clone()).with_timezone("UTC")),
        ),
    }
}

fn batches() -> impl Strategy<Value = Vec<RecordBatch>> {
    (1usize..6, 0usize..3, 0usize..200).prop_flat_map(|(ncols, nbatches, rows)| {
        proptest::collection::vec(
            proptest::collection::vec(col(rows), ncols..=ncols).prop_map(|cols| cols),
            nbatches + 1,
        )
        .prop_map(move |sets| {
            // Every batch shares the first batch's column types: re-derive them
            // by keeping each column's variant from the first set.
            let first: Vec<(DataType, ArrayRef)> = sets[0].iter().map(to_array).collect();
            let schema = Arc::new(Schema::new(
                first
                    .iter()
                    .enumerate()
                    .map(|(i, (t, _))| Field::new(format!("c{i} ü`\"x"), t.clone(), true))
                    .collect::<Vec<_>>(),
            ));
            sets.iter()
                .map(|set| {
                    let arrays: Vec<ArrayRef> = set
                        .iter()
                        .zip(&first)
                        .map(|(c, (t, a0))| {
                            let (t2, a) = to_array(c);
                            if &t2 == t {
                                a
                            } else {
                                a0.clone()
                            }
                        })
                        .collect();
                    RecordBatch::try_new(Arc::clone(&schema), arrays).unwrap()
                })
                .collect()
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trips_with_every_compression(bs in batches()) {
        for c in [IpcCompression::None, IpcCompression::Lz4Frame, IpcCompression::Zstd] {
            let mut enc = IpcEncoder::new(c).unwrap();
            let bytes = enc.encode(&bs[0].schema(), &bs).unwrap();
            let d = decode(&bytes).unwrap();
            let expected_schema = bs[0].schema();
            prop_assert_eq!(d.schema.as_ref(), expected_schema.as_ref());
            prop_assert_eq!(d.batches.len(), bs.len());
            for (a, b) in d.batches.iter().zip(&bs) {
                prop_assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn damaged_messages_never_panic(bs in batches(), cut in any::<prop::sample::Index>(), flip in any::<(prop::sample::Index, u8)>()) {
        let bytes = IpcEncoder::new(IpcCompression::Lz4Frame).unwrap().encode(&bs[0].schema(), &bs).unwrap();
        let truncated = &bytes[..cut.index(bytes.len())];
        let _ = decode(truncated);
        let mut flipped = bytes.clone();
        let i = flip.0.index(flipped.len());
        flipped[i] ^= flip.1 | 1;
        let _ = decode(&flipped);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode(&bytes);
        // Also behind a plausible stream header.
        let mut framed = vec![0xff, 0xff, 0xff, 0xff];
        framed.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        framed.extend_from_slice(&bytes);
        let _ = decode(&framed);
    }
}

#[test]
fn a_huge_claimed_decompressed_length_is_refused_before_allocating() {
    let b = RecordBatch::try_from_iter([(
        "x",
        Arc::new(Int64Array::from((0..1000).collect::<Vec<i64>>())) as ArrayRef,
    )])
    .unwrap();
    let mut bytes = IpcEncoder::new(IpcCompression::Lz4Frame)
        .unwrap()
        .encode(&b.schema(), &[b])
        .unwrap();
    // Find the body's first compressed buffer: its 8-byte length prefix
    // equals the uncompressed size of the values (8000) or the validity.
    let needle = 8000i64.to_le_bytes();
    let pos = bytes
        .windows(8)
        .position(|w| w == needle)
        .expect("length prefix present");
    bytes[pos..pos + 8].copy_from_slice(&(1i64 << 50).to_le_bytes());
    let err = decode(&bytes).unwrap_err().to_string();
    assert!(err.contains("decompressed bytes"), "{err}");
}

#[test]
fn reads_streams_without_end_marker_and_rejects_trailing_garbage() {
    let b =
        RecordBatch::try_from_iter([("x", Arc::new(Int32Array::from(vec![1, 2, 3])) as ArrayRef)])
            .unwrap();
    let bytes = IpcEncoder::new(IpcCompression::None)
        .unwrap()
        .encode(&b.schema(), std::slice::from_ref(&b))
        .unwrap();
    // The end-of-stream marker is 0xFFFFFFFF 0x00000000.
    let without_eos = &bytes[..bytes.len() - 8];
    assert_eq!(decode(without_eos).unwrap().batches, vec![b]);
    let mut trailing = bytes.clone();
    trailing.extend_from_slice(b"junk");
    assert!(decode(&trailing)
        .unwrap_err()
        .to_string()
        .contains("trailing"));
    assert!(decode(&[]).is_err());
}
