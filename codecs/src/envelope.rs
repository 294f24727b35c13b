//! The VeloStream envelope: per-message metadata carried in Kafka headers.
//!
//! | header                  | value (UTF-8)                         |
//! |-------------------------|---------------------------------------|
//! | `velostream.v`          | envelope format version, `1`          |
//! | `velostream.schema`     | schema fingerprint, 16 hex digits     |
//! | `velostream.rows`       | rows in the message, decimal          |
//! | `velostream.file`       | source file (optional)                |
//! | `velostream.row_group`  | source row group, decimal (optional)  |
//! | `velostream.slice`      | slice within the row group (optional) |
//! | `velostream.file_id`    | fingerprint of the source file, 16 hex digits (optional) |
//!
//! Headers are optional on input: a message without any `velostream.*`
//! header (for example one written by pyarrow and confluent-kafka) is valid
//! and decodes to `None`. A message with a version this code does not know,
//! or with malformed values, is an error naming the header.

use arrow_schema::{DataType, Field, Schema};

use crate::{CodecError, Result};

/// The envelope format version this code writes and reads.
pub const VERSION: u32 = 1;

pub const H_VERSION: &str = "velostream.v";
pub const H_SCHEMA: &str = "velostream.schema";
pub const H_ROWS: &str = "velostream.rows";
pub const H_FILE: &str = "velostream.file";
pub const H_ROW_GROUP: &str = "velostream.row_group";
pub const H_SLICE: &str = "velostream.slice";
pub const H_FILE_ID: &str = "velostream.file_id";

/// Where a message's rows came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceId {
    /// Source file path as given to the producer.
    pub file: String,
    /// Row group index within the file.
    pub row_group: u32,
    /// Slice index within the row group.
    pub slice: u32,
    /// Fingerprint of the file's contents ([`fnv1a64`] of its length and
    /// footer), stable across paths and runs; `None` when not known.
    pub file_id: Option<u64>,
}

impl SourceId {
    /// The slice as one number: `row_group << 32 | slice`.
    pub fn slice_key(&self) -> u64 {
        (u64::from(self.row_group) << 32) | u64::from(self.slice)
    }
}

/// Metadata of one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// Envelope format version.
    pub version: u32,
    /// [`schema_fingerprint`] of the message's Arrow schema.
    pub schema_fingerprint: u64,
    /// Number of rows in the message.
    pub rows: u64,
    /// Origin of the rows, when known.
    pub source: Option<SourceId>,
}

impl Envelope {
    /// An envelope of the current version.
    pub fn new(schema: &Schema, rows: u64, source: Option<SourceId>) -> Self {
        Self {
            version: VERSION,
            schema_fingerprint: schema_fingerprint(schema),
            rows,
            source,
        }
    }

    /// The Kafka headers (name, value) for this envelope.
    pub fn to_headers(&self) -> Vec<(&'static str, Vec<u8>)> {
        let mut h = vec![
            (H_VERSION, self.version.to_string().into_bytes()),
            (
                H_SCHEMA,
                format!("{:016x}", self.schema_fingerprint).into_bytes(),
            ),
            (H_ROWS, self.rows.to_string().into_bytes()),
        ];
        if let Some(s) = &self.source {
            h.push((H_FILE, s.file.clone().into_bytes()));
            h.push((H_ROW_GROUP, s.row_group.to_string().into_bytes()));
            h.push((H_SLICE, s.slice.to_string().into_bytes()));
            if let Some(id) = s.file_id {
                h.push((H_FILE_ID, format!("{id:016x}").into_bytes()));
            }
        }
        h
    }

    /// Reads an envelope from Kafka headers. `Ok(None)` when the message
    /// carries no VeloStream headers at all.
    pub fn from_headers<'a, I>(headers: I) -> Result<Option<Envelope>>
    where
        I: IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
    {
        let mut version = None;
        let mut schema = None;
        let mut rows = None;
        let mut file = None;
        let mut row_group = None;
        let mut slice = None;
        let mut file_id = None;
        let mut any = false;
        for (name, value) in headers {
            if !name.starts_with("velostream.") {
                continue;
            }
            any = true;
            let text = || -> Result<&'a str> {
                let v = value.ok_or_else(|| bad(name, "has no value"))?;
                std::str::from_utf8(v).map_err(|_| bad(name, "is not UTF-8"))
            };
            match name {
                H_VERSION => version = Some(parse_num::<u32>(name, text()?)?),
                H_SCHEMA => schema = Some(parse_hex16(name, text()?)?),
                H_FILE_ID => file_id = Some(parse_hex16(name, text()?)?),
                H_ROWS => rows = Some(parse_num::<u64>(name, text()?)?),
                H_FILE => file = Some(text()?.to_string()),
                H_ROW_GROUP => row_group = Some(parse_num::<u32>(name, text()?)?),
                H_SLICE => slice = Some(parse_num::<u32>(name, text()?)?),
                // Unknown velostream.* headers from newer minor additions are ignored.
                _ => {}
            }
        }
        if !any {
            return Ok(None);
        }
        let version = version.ok_or_else(|| bad(H_VERSION, "is missing"))?;
        if version != VERSION {
            return Err(bad(
                H_VERSION,
                &format!("version {version} is not supported (this build reads {VERSION})"),
            ));
        }
        let source = match (file, row_group, slice) {
            (Some(file), Some(row_group), Some(slice)) => Some(SourceId {
                file,
                row_group,
                slice,
                file_id,
            }),
            (None, None, None) => None,
            _ => return Err(bad(H_FILE, "source headers must come together")),
        };
        Ok(Some(Envelope {
            version,
            schema_fingerprint: schema.ok_or_else(|| bad(H_SCHEMA, "is missing"))?,
            rows: rows.ok_or_else(|| bad(H_ROWS, "is missing"))?,
            source,
        }))
    }
}

/// A 64-bit value written as exactly 16 hex digits.
fn parse_hex16(name: &str, t: &str) -> Result<u64> {
    if t.len() != 16 {
        return Err(bad(name, "must be 16 hex digits"));
    }
    u64::from_str_radix(t, 16).map_err(|_| bad(name, "is not hexadecimal"))
}

fn bad(header: &str, reason: &str) -> CodecError {
    CodecError::Envelope {
        header: header.to_string(),
        reason: reason.to_string(),
    }
}

fn parse_num<T: std::str::FromStr>(header: &str, text: &str) -> Result<T> {
    text.parse()
        .map_err(|_| bad(header, &format!("{text:?} is not a valid number")))
}

/// A stable 64-bit fingerprint of an Arrow schema: FNV-1a over a canonical
/// text of field names, types (recursively) and nullability. Metadata is
/// ignored. The text is built here, not from `Debug`, so it does not change
/// with the Arrow version.
pub fn schema_fingerprint(schema: &Schema) -> u64 {
    let mut text = String::new();
    for f in schema.fields() {
        canonical_field(f, &mut text);
        text.push(';');
    }
    fnv1a(text.as_bytes())
}

fn canonical_field(f: &Field, out: &mut String) {
    out.push_str(&f.name().len().to_string());
    out.push(':');
    out.push_str(f.name());
    out.push(':');
    canonical_type(f.data_type(), out);
    out.push_str(if f.is_nullable() { "?" } else { "!" });
}

fn canonical_type(t: &DataType, out: &mut String) {
    use DataType::*;
    match t {
        List(f) | LargeList(f) | ListView(f) | LargeListView(f) => {
            out.push_str(if matches!(t, List(_) | ListView(_)) {
                "list<"
            } else {
                "largelist<"
            });
            canonical_field(f, out);
            out.push('>');
        }
        FixedSizeList(f, n) => {
            out.push_str(&format!("fixedlist{n}<"));
            canonical_field(f, out);
            out.push('>');
        }
        Struct(fields) => {
            out.push_str("struct<");
            for f in fields {
                canonical_field(f, out);
                out.push(',');
            }
            out.push('>');
        }
        Map(f, sorted) => {
            out.push_str(&format!("map{sorted}<"));
            canonical_field(f, out);
            out.push('>');
        }
        Dictionary(k, v) => {
            out.push_str("dict<");
            canonical_type(k, out);
            out.push(',');
            canonical_type(v, out);
            out.push('>');
        }
        Timestamp(unit, tz) => {
            out.push_str(&format!(
                "timestamp({unit:?},{})",
                tz.as_deref().unwrap_or("")
            ));
        }
        other => out.push_str(&format!("{other:?}")),
    }
}

/// FNV-1a, 64 bits: the project's stable, dependency-free fingerprint.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv1a(bytes)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::TimeUnit;

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

    #[test]
    fn headers_round_trip_with_and_without_source() {
        for source in [
            None,
            Some(SourceId {
                file: "data/yellow 2023-01.parquet".into(),
                row_group: 3,
                slice: 7,
                file_id: None,
            }),
            Some(SourceId {
                file: "b.parquet".into(),
                row_group: 0,
                slice: 1,
                file_id: Some(0x0123_4567_89ab_cdef),
            }),
        ] {
            let e = Envelope::new(&schema(), 12345, source);
            let hs = e.to_headers();
            let back =
                Envelope::from_headers(hs.iter().map(|(k, v)| (*k, Some(v.as_slice())))).unwrap();
            assert_eq!(back, Some(e));
        }
    }

    #[test]
    fn no_headers_means_no_envelope() {
        let hs = [("traceparent", Some(&b"x"[..]))];
        assert_eq!(Envelope::from_headers(hs).unwrap(), None);
    }

    #[test]
    fn unknown_version_and_bad_values_name_the_header() {
        let hs = [(H_VERSION, Some(&b"2"[..]))];
        let err = Envelope::from_headers(hs).unwrap_err().to_string();
        assert!(
            err.contains("velostream.v") && err.contains("version 2"),
            "{err}"
        );
        let hs = [
            (H_VERSION, Some(&b"1"[..])),
            (H_SCHEMA, Some(&b"00000000000000zz"[..])),
        ];
        let err = Envelope::from_headers(hs).unwrap_err().to_string();
        assert!(err.contains("velostream.schema"), "{err}");
        let hs = [
            (H_VERSION, Some(&b"1"[..])),
            (H_SCHEMA, Some(&b"0000000000000001"[..])),
            (H_ROWS, Some(&b"-5"[..])),
        ];
        let err = Envelope::from_headers(hs).unwrap_err().to_string();
        assert!(err.contains("velostream.rows"), "{err}");
        let hs = [
            (H_VERSION, Some(&b"1"[..])),
            (H_SCHEMA, Some(&b"0000000000000001"[..])),
            (H_ROWS, Some(&b"5"[..])),
            (H_FILE_ID, Some(&b"12"[..])),
        ];
        let err = Envelope::from_headers(hs).unwrap_err().to_string();
        assert!(err.contains("velostream.file_id"), "{err}");
    }

    #[test]
    fn slice_key_orders_row_group_before_slice() {
        let s = |row_group, slice| SourceId {
            file: String::new(),
            row_group,
            slice,
            file_id: None,
        };
        assert_eq!(s(0, 0).slice_key(), 0);
        assert_eq!(s(1, 2).slice_key(), (1 << 32) | 2);
        assert!(s(1, 0).slice_key() > s(0, u32::MAX).slice_key());
    }

    #[test]
    fn fingerprint_is_stable_and_sensitive() {
        let a = schema_fingerprint(&schema());
        // Pinned: changing the canonical text breaks compatibility with data in flight.
        // (FNV-1a of "1:a:Int64!;2:ts:timestamp(Microsecond,UTC)?;")
        assert_eq!(a, 0x6f0c_87df_cfe0_166e);
        let renamed = Schema::new(vec![
            Field::new("A", DataType::Int64, false),
            schema().field(1).clone(),
        ]);
        assert_ne!(a, schema_fingerprint(&renamed));
        let nullable = Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            schema().field(1).clone(),
        ]);
        assert_ne!(a, schema_fingerprint(&nullable));
        let with_meta = schema().with_metadata([("k".to_string(), "v".to_string())].into());
        assert_eq!(a, schema_fingerprint(&with_meta));
    }
}
