//! The `envelope_headers` fuzz body (`codecs/fuzz/fuzz_targets/envelope_headers_body.rs`)
//! run over hand-made header sets, so its properties are checked by every
//! `cargo test` and not only under `cargo fuzz`: the headers a real
//! producer writes (`Envelope::new(..).to_headers()`), the same with foreign
//! and future headers mixed in, non-canonical spellings, and malformed sets.

#[path = "../fuzz/fuzz_targets/envelope_headers_body.rs"]
mod body;

use arrow_schema::{DataType, Field, Schema, TimeUnit};
use velostream_codecs::envelope::{
    Envelope, SourceId, H_FILE, H_FILE_ID, H_ROWS, H_ROW_GROUP, H_SCHEMA, H_SLICE, H_VERSION,
};
use velostream_codecs::CodecError;

/// The schema whose fingerprint the envelope's unit tests pin.
fn schema() -> Schema {
    Schema::new(vec![
        Field::new("a", DataType::Int64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ])
}

const FINGERPRINT: &str = "6f0c87dfcfe0166e";

fn source(file_id: Option<u64>) -> SourceId {
    SourceId {
        file: "data/yellow_tripdata_2023-01.parquet".into(),
        row_group: 2,
        slice: 5,
        file_id,
    }
}

/// The fuzz input for `headers`, after checking that the fuzz input format
/// carries them unchanged.
fn input(headers: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let data = body::join(headers);
    let split = body::split(&data);
    let want: Vec<body::Header> = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.map(<[u8]>::to_vec)))
        .collect();
    assert_eq!(split, want, "the fuzz input format lost a header");
    data
}

fn as_input<'a>(headers: &'a [(&'static str, Vec<u8>)]) -> Vec<(&'static str, Option<&'a [u8]>)> {
    headers.iter().map(|(n, v)| (*n, Some(&v[..]))).collect()
}

fn envelope_error(data: &[u8]) -> String {
    match body::check(data) {
        Err(CodecError::Envelope { header, .. }) => header,
        other => panic!("expected an envelope error, got {other:?}"),
    }
}

#[test]
fn producer_headers_read_back_as_written() {
    for source in [
        None,
        Some(source(None)),
        Some(source(Some(0x0123_4567_89ab_cdef))),
    ] {
        let env = Envelope::new(&schema(), 1000, source.clone());
        let headers = env.to_headers();
        // What a producer writes, byte for byte.
        assert_eq!(headers[0], (H_VERSION, b"1".to_vec()));
        assert_eq!(headers[1], (H_SCHEMA, FINGERPRINT.as_bytes().to_vec()));
        assert_eq!(headers[2], (H_ROWS, b"1000".to_vec()));
        let want_len = match &source {
            None => 3,
            Some(SourceId { file_id: None, .. }) => 6,
            Some(_) => 7,
        };
        assert_eq!(headers.len(), want_len);
        let got = body::check(&input(&as_input(&headers))).unwrap();
        assert_eq!(got, Some(env));
    }
}

#[test]
fn foreign_and_future_headers_are_ignored() {
    let env = Envelope::new(&schema(), 7, Some(source(Some(42))));
    let headers = env.to_headers();
    let mut mixed = vec![
        ("traceparent", Some(&b"00-abc-def-01"[..])),
        ("velostream.future", Some(&b"anything"[..])),
        ("content-type", None),
    ];
    mixed.extend(as_input(&headers));
    mixed.push(("x-\u{e9}t\u{e9}", Some(&b"\xc3"[..])));
    assert_eq!(body::check(&input(&mixed)).unwrap(), Some(env));
}

#[test]
fn no_velostream_headers_is_no_envelope() {
    assert_eq!(body::check(&[]).unwrap(), None);
    let foreign = [("traceparent", Some(&b"x"[..])), ("key", None)];
    assert_eq!(body::check(&input(&foreign)).unwrap(), None);
    // Names are case sensitive: these are not VeloStream headers.
    let upper = [("Velostream.v", Some(&b"1"[..]))];
    assert_eq!(body::check(&input(&upper)).unwrap(), None);
}

#[test]
fn non_canonical_values_read_as_numbers_and_write_back_canonically() {
    let headers = [
        (H_VERSION, Some(&b"+1"[..])),
        (H_SCHEMA, Some(&b"6F0C87DFCFE0166E"[..])),
        (H_ROWS, Some(&b"007"[..])),
        (H_FILE, Some(&b""[..])),
        (H_ROW_GROUP, Some(&b"0"[..])),
        (H_SLICE, Some(&b"4294967295"[..])),
        (H_FILE_ID, Some(&b"+00000000000000f"[..])),
        // A repeated header: the last one wins.
        (H_ROWS, Some(&b"8"[..])),
    ];
    let env = body::check(&input(&headers)).unwrap().unwrap();
    assert_eq!(
        env,
        Envelope {
            version: 1,
            schema_fingerprint: 0x6f0c_87df_cfe0_166e,
            rows: 8,
            source: Some(SourceId {
                file: String::new(),
                row_group: 0,
                slice: u32::MAX,
                file_id: Some(15),
            }),
        }
    );
    let written = env.to_headers();
    assert_eq!(written[1].1, FINGERPRINT.as_bytes());
    assert_eq!(written[6].1, b"000000000000000f");
}

#[test]
fn malformed_sets_name_the_header() {
    let ok = Envelope::new(&schema(), 3, Some(source(Some(1)))).to_headers();
    let with = |name: &'static str, value: Option<&'static [u8]>| {
        let mut h = as_input(&ok);
        h.retain(|(n, _)| *n != name);
        h.push((name, value));
        input(&h)
    };
    let without = |name: &'static str| {
        let mut h = as_input(&ok);
        h.retain(|(n, _)| *n != name);
        input(&h)
    };
    assert_eq!(envelope_error(&with(H_VERSION, Some(b"2"))), H_VERSION);
    assert_eq!(envelope_error(&with(H_VERSION, None)), H_VERSION);
    assert_eq!(envelope_error(&without(H_VERSION)), H_VERSION);
    assert_eq!(envelope_error(&without(H_SCHEMA)), H_SCHEMA);
    assert_eq!(envelope_error(&without(H_ROWS)), H_ROWS);
    assert_eq!(envelope_error(&with(H_ROWS, Some(b"-1"))), H_ROWS);
    assert_eq!(envelope_error(&with(H_SCHEMA, Some(b"6f0c87df"))), H_SCHEMA);
    assert_eq!(envelope_error(&with(H_FILE, Some(b"\xc3("))), H_FILE);
    assert_eq!(envelope_error(&with(H_FILE_ID, Some(b"12"))), H_FILE_ID);
    assert_eq!(
        envelope_error(&with(H_ROW_GROUP, Some(b"4294967296"))),
        H_ROW_GROUP
    );
    // Source headers come together or not at all.
    assert_eq!(envelope_error(&without(H_SLICE)), H_FILE);
    // Unknown velostream.* headers are ignored entirely, even without a value.
    let mut h = as_input(&ok);
    h.push(("velostream.future", None));
    assert!(body::check(&input(&h)).unwrap().is_some());
}

#[test]
fn raw_inputs_of_the_fuzz_format() {
    // Named-header tag (9) with a known name spelled out: read like tag 0.
    let env = body::check(b"\x09velostream.v\x001\xff\x01+6f0c87dfcfe0166\xff\x020")
        .unwrap()
        .unwrap();
    assert_eq!(env.schema_fingerprint, 0x06f0_c87d_fcfe_0166);
    assert_eq!(env.rows, 0);
    // Empty records and a record that is only a tag.
    assert_eq!(body::check(b"\xff\xff\x08").unwrap(), None);
    assert_eq!(envelope_error(b"\x80"), H_VERSION);
}
