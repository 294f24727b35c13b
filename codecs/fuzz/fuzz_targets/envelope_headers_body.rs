//! The body of the `envelope_headers` fuzz target, shared with the plain
//! test `codecs/tests/envelope_fuzz_seeds.rs` (both include this file with
//! `#[path]`), so the properties are also checked by `cargo test`.
//!
//! Input format: records separated by the byte `0xFF` (never part of UTF-8).
//! The first byte of a record is a tag; bit `0x80` set means the header has
//! no value (`None`), the low 7 bits pick the name:
//!
//! - `0..=6`: the known headers [`KNOWN`] (`velostream.v`, ...);
//! - `7`: `velostream.future`, an unknown `velostream.*` header;
//! - `8`: `traceparent`, a foreign header;
//! - anything else: the name is the bytes up to the first `0x00` (lossy
//!   UTF-8), the value the bytes after it.
//!
//! Otherwise the value is the rest of the record. An empty record is skipped.

use velostream_codecs::envelope::{
    Envelope, H_FILE, H_FILE_ID, H_ROWS, H_ROW_GROUP, H_SCHEMA, H_SLICE, H_VERSION, VERSION,
};
use velostream_codecs::{CodecError, Result};

/// The header names the envelope reads, by tag.
pub const KNOWN: [&str; 7] = [
    H_VERSION,
    H_SCHEMA,
    H_ROWS,
    H_FILE,
    H_ROW_GROUP,
    H_SLICE,
    H_FILE_ID,
];

const SEP: u8 = 0xFF;
const NO_VALUE: u8 = 0x80;
const TAG_FUTURE: u8 = 7;
const TAG_FOREIGN: u8 = 8;
const TAG_NAMED: u8 = 9;
const FUTURE: &str = "velostream.future";
const FOREIGN: &str = "traceparent";

/// One Kafka header: name and optional value.
pub type Header = (String, Option<Vec<u8>>);

/// Splits fuzz input into headers (see the module documentation).
pub fn split(data: &[u8]) -> Vec<Header> {
    data.split(|b| *b == SEP)
        .filter_map(|record| {
            let (&tag, rest) = record.split_first()?;
            let (name, value) = match tag & !NO_VALUE {
                t if (t as usize) < KNOWN.len() => (KNOWN[t as usize].to_string(), rest),
                TAG_FUTURE => (FUTURE.to_string(), rest),
                TAG_FOREIGN => (FOREIGN.to_string(), rest),
                _ => {
                    let cut = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
                    let value = rest.get(cut + 1..).unwrap_or_default();
                    (String::from_utf8_lossy(&rest[..cut]).into_owned(), value)
                }
            };
            let value = (tag & NO_VALUE == 0).then(|| value.to_vec());
            Some((name, value))
        })
        .collect()
}

/// The fuzz input that [`split`] turns into `headers` (for seeds and tests).
/// Panics on a value containing `0xFF`, which the format cannot carry, or a
/// name containing `0x00`.
pub fn join(headers: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (name, value)) in headers.iter().enumerate() {
        if i > 0 {
            out.push(SEP);
        }
        let flag = if value.is_some() { 0 } else { NO_VALUE };
        let value = value.unwrap_or_default();
        assert!(!value.contains(&SEP), "a value cannot contain 0xFF");
        if let Some(t) = KNOWN.iter().position(|k| k == name) {
            out.push(t as u8 | flag);
        } else if *name == FUTURE {
            out.push(TAG_FUTURE | flag);
        } else if *name == FOREIGN {
            out.push(TAG_FOREIGN | flag);
        } else {
            assert!(!name.as_bytes().contains(&0), "a name cannot contain 0x00");
            out.push(TAG_NAMED | flag);
            out.extend_from_slice(name.as_bytes());
            out.push(0);
        }
        out.extend_from_slice(value);
    }
    out
}

/// Runs `Envelope::from_headers` on the headers in `data` and checks what
/// the code guarantees for any input:
///
/// - no panic;
/// - `Ok(None)` exactly when no header name starts with `velostream.`;
/// - an error is a `CodecError::Envelope` naming a `velostream.*` header;
/// - `Ok(Some(env))` has the current version, and `env.to_headers()` reads
///   back to the same envelope (values are normalised: `+7`, `007`, upper
///   case hex read as the same numbers, written back canonically).
///
/// Returns the result for callers that check more.
pub fn check(data: &[u8]) -> Result<Option<Envelope>> {
    let headers = split(data);
    let ours = headers.iter().any(|(n, _)| n.starts_with("velostream."));
    let result = Envelope::from_headers(headers.iter().map(|(n, v)| (n.as_str(), v.as_deref())));
    match &result {
        Ok(None) => assert!(!ours, "velostream headers read as no envelope"),
        Err(CodecError::Envelope { header, .. }) => {
            assert!(ours, "an error without velostream headers");
            assert!(header.starts_with("velostream."), "error names {header:?}");
        }
        Err(other) => panic!("unexpected error kind: {other}"),
        Ok(Some(env)) => {
            assert!(ours);
            assert_eq!(env.version, VERSION);
            let written = env.to_headers();
            let back = Envelope::from_headers(written.iter().map(|(n, v)| (*n, Some(&v[..]))))
                .expect("headers written by to_headers must read back");
            assert_eq!(back.as_ref(), Some(env));
        }
    }
    result
}
