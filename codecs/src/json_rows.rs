//! The per-row JSON baseline of the original design: one JSON object per
//! row, one Kafka message per row, inserted with ClickHouse `JSONEachRow`.
//! Every benchmark compares VeloStream against this codec.
//!
//! Values: integers and decimals as JSON numbers, floats as numbers (NaN and
//! infinities as `null`, which JSON cannot express), booleans as `true`/
//! `false`, strings escaped per RFC 8259, binary as lower-case hex strings,
//! dates as `"YYYY-MM-DD"`, timestamps as `"YYYY-MM-DD hh:mm:ss[.fraction]"`
//! in UTC (the form every ClickHouse version parses), lists as arrays.

use std::fmt::Write as _;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Schema, TimeUnit};

use crate::{CodecError, Result};

/// Writes rows of batches with a fixed schema as JSON objects.
#[derive(Clone, Debug)]
pub struct JsonRowEncoder {
    /// `"name":` per column, escaped once.
    keys: Vec<Vec<u8>>,
}

impl JsonRowEncoder {
    /// Checks that every column of `schema` can be written as JSON.
    pub fn new(schema: &Schema) -> Result<Self> {
        let mut keys = Vec::with_capacity(schema.fields().len());
        for f in schema.fields() {
            check_type(f.name(), f.data_type())?;
            let mut k = Vec::new();
            write_json_string(f.name(), &mut k);
            k.push(b':');
            keys.push(k);
        }
        Ok(Self { keys })
    }

    /// Appends row `row` of `batch` as one JSON object (no newline) to `out`.
    pub fn write_row(&self, batch: &RecordBatch, row: usize, out: &mut Vec<u8>) -> Result<()> {
        if batch.num_columns() != self.keys.len() {
            return Err(CodecError::SchemaMismatch(format!(
                "batch has {} columns, the JSON encoder was built for {}",
                batch.num_columns(),
                self.keys.len()
            )));
        }
        out.push(b'{');
        for (i, (key, col)) in self.keys.iter().zip(batch.columns()).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(key);
            write_value(col, row, out);
        }
        out.push(b'}');
        Ok(())
    }

    /// Every row of `batch` as its own JSON object.
    pub fn encode_rows(&self, batch: &RecordBatch) -> Result<Vec<Vec<u8>>> {
        (0..batch.num_rows())
            .map(|row| {
                let mut out = Vec::with_capacity(64 * self.keys.len());
                self.write_row(batch, row, &mut out)?;
                Ok(out)
            })
            .collect()
    }
}

fn check_type(column: &str, t: &DataType) -> Result<()> {
    use DataType::*;
    match t {
        Null
        | Boolean
        | Int8
        | Int16
        | Int32
        | Int64
        | UInt8
        | UInt16
        | UInt32
        | UInt64
        | Float16
        | Float32
        | Float64
        | Utf8
        | LargeUtf8
        | Utf8View
        | Binary
        | LargeBinary
        | BinaryView
        | FixedSizeBinary(_)
        | Date32
        | Date64
        | Timestamp(_, _)
        | Decimal128(_, _)
        | Decimal256(_, _) => Ok(()),
        Dictionary(_, v) => check_type(column, v),
        List(f) | LargeList(f) => check_type(column, f.data_type()),
        other => Err(CodecError::UnsupportedType {
            column: column.to_string(),
            arrow_type: other.to_string(),
            hint: " in the JSON row codec".into(),
        }),
    }
}

fn write_value(col: &ArrayRef, row: usize, out: &mut Vec<u8>) {
    use DataType::*;
    if col.is_null(row) {
        out.extend_from_slice(b"null");
        return;
    }
    macro_rules! num {
        ($t:ty) => {{
            let v = col.as_primitive::<$t>().value(row);
            let _ = write!(Fmt(out), "{v}");
        }};
    }
    match col.data_type() {
        Null => out.extend_from_slice(b"null"),
        Boolean => out.extend_from_slice(if col.as_boolean().value(row) {
            b"true"
        } else {
            b"false"
        }),
        Int8 => num!(Int8Type),
        Int16 => num!(Int16Type),
        Int32 => num!(Int32Type),
        Int64 => num!(Int64Type),
        UInt8 => num!(UInt8Type),
        UInt16 => num!(UInt16Type),
        UInt32 => num!(UInt32Type),
        UInt64 => num!(UInt64Type),
        Float16 => write_float(f64::from(col.as_primitive::<Float16Type>().value(row)), out),
        Float32 => write_float(f64::from(col.as_primitive::<Float32Type>().value(row)), out),
        Float64 => write_float(col.as_primitive::<Float64Type>().value(row), out),
        Utf8 => write_json_string(col.as_string::<i32>().value(row), out),
        LargeUtf8 => write_json_string(col.as_string::<i64>().value(row), out),
        Utf8View => write_json_string(col.as_string_view().value(row), out),
        Binary => write_hex(col.as_binary::<i32>().value(row), out),
        LargeBinary => write_hex(col.as_binary::<i64>().value(row), out),
        BinaryView => write_hex(col.as_binary_view().value(row), out),
        FixedSizeBinary(_) => write_hex(col.as_fixed_size_binary().value(row), out),
        Date32 => {
            out.push(b'"');
            write_date(i64::from(col.as_primitive::<Date32Type>().value(row)), out);
            out.push(b'"');
        }
        Date64 => {
            let ms = col.as_primitive::<Date64Type>().value(row);
            write_timestamp(ms, 1_000, out);
        }
        Timestamp(unit, _) => {
            let (v, per_sec) = match unit {
                TimeUnit::Second => (col.as_primitive::<TimestampSecondType>().value(row), 1),
                TimeUnit::Millisecond => (
                    col.as_primitive::<TimestampMillisecondType>().value(row),
                    1_000,
                ),
                TimeUnit::Microsecond => (
                    col.as_primitive::<TimestampMicrosecondType>().value(row),
                    1_000_000,
                ),
                TimeUnit::Nanosecond => (
                    col.as_primitive::<TimestampNanosecondType>().value(row),
                    1_000_000_000,
                ),
            };
            write_timestamp(v, per_sec, out);
        }
        Decimal128(_, _) => {
            let a = col.as_primitive::<Decimal128Type>();
            out.extend_from_slice(a.value_as_string(row).as_bytes());
        }
        Decimal256(_, _) => {
            let a = col.as_primitive::<Decimal256Type>();
            out.extend_from_slice(a.value_as_string(row).as_bytes());
        }
        Dictionary(_, _) => {
            let dict = col.as_any_dictionary();
            let key = dict.normalized_keys()[row];
            write_value(dict.values(), key, out);
        }
        List(_) => write_list(&col.as_list::<i32>().value(row), out),
        LargeList(_) => write_list(&col.as_list::<i64>().value(row), out),
        // `check_type` rejected everything else when the encoder was built.
        _ => out.extend_from_slice(b"null"),
    }
}

fn write_list(values: &ArrayRef, out: &mut Vec<u8>) {
    out.push(b'[');
    for i in 0..values.len() {
        if i > 0 {
            out.push(b',');
        }
        write_value(values, i, out);
    }
    out.push(b']');
}

fn write_float(v: f64, out: &mut Vec<u8>) {
    if v.is_finite() {
        let _ = write!(Fmt(out), "{v}");
    } else {
        out.extend_from_slice(b"null");
    }
}

fn write_hex(bytes: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 15)]);
    }
    out.push(b'"');
}

/// Writes `s` as a JSON string literal.
pub fn write_json_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        match esc {
            Some(e) => out.extend_from_slice(e),
            None => {
                let _ = write!(Fmt(out), "\\u{b:04x}");
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// `"YYYY-MM-DD hh:mm:ss[.fraction]"` for `v` units of `1/per_sec` seconds since the epoch.
fn write_timestamp(v: i64, per_sec: i64, out: &mut Vec<u8>) {
    let secs = v.div_euclid(per_sec);
    let frac = v.rem_euclid(per_sec);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    out.push(b'"');
    write_date(days, out);
    let _ = write!(
        Fmt(out),
        " {:02}:{:02}:{:02}",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    );
    if frac != 0 {
        let digits = per_sec.ilog10() as usize;
        let _ = write!(Fmt(out), ".{frac:0digits$}");
    }
    out.push(b'"');
}

/// Civil date from days since 1970-01-01 (proleptic Gregorian).
fn write_date(days: i64, out: &mut Vec<u8>) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let _ = write!(Fmt(out), "{y:04}-{m:02}-{d:02}");
}

/// `fmt::Write` adapter over a byte vector.
struct Fmt<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Fmt<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::builder::{ListBuilder, StringDictionaryBuilder};
    use arrow_array::*;
    use arrow_schema::Field;

    use super::*;

    fn rows(batch: &RecordBatch) -> Vec<String> {
        let enc = JsonRowEncoder::new(&batch.schema()).unwrap();
        enc.encode_rows(batch)
            .unwrap()
            .into_iter()
            .map(|r| String::from_utf8(r).unwrap())
            .collect()
    }

    #[test]
    fn scalars_nulls_and_escapes() {
        let batch = RecordBatch::try_from_iter([
            (
                "i",
                Arc::new(Int64Array::from(vec![Some(-1), None])) as ArrayRef,
            ),
            (
                "f",
                Arc::new(Float64Array::from(vec![1.5, f64::NAN])) as ArrayRef,
            ),
            (
                "b",
                Arc::new(BooleanArray::from(vec![true, false])) as ArrayRef,
            ),
            (
                "s\"q",
                Arc::new(StringArray::from(vec![Some("a\"b\\c\n\u{1}é"), Some("")])) as ArrayRef,
            ),
        ])
        .unwrap();
        assert_eq!(
            rows(&batch),
            vec![
                r#"{"i":-1,"f":1.5,"b":true,"s\"q":"a\"b\\c\n\u0001é"}"#,
                r#"{"i":null,"f":null,"b":false,"s\"q":""}"#
            ]
        );
        for r in rows(&batch) {
            serde_json::from_str::<serde_json::Value>(&r).unwrap();
        }
    }

    #[test]
    fn dates_and_timestamps_match_civil_calendar() {
        let ts = TimestampMicrosecondArray::from(vec![
            0,
            1_672_531_200_000_000,
            1_709_210_096_500_000,
            -1,
        ]);
        let d = Date32Array::from(vec![0, 19_358, 19_782, -719_162]);
        let batch = RecordBatch::try_from_iter([
            ("t", Arc::new(ts) as ArrayRef),
            ("d", Arc::new(d) as ArrayRef),
        ])
        .unwrap();
        assert_eq!(
            rows(&batch),
            vec![
                r#"{"t":"1970-01-01 00:00:00","d":"1970-01-01"}"#,
                r#"{"t":"2023-01-01 00:00:00","d":"2023-01-01"}"#,
                r#"{"t":"2024-02-29 12:34:56.500000","d":"2024-02-29"}"#,
                r#"{"t":"1969-12-31 23:59:59.999999","d":"0001-01-01"}"#,
            ]
        );
    }

    #[test]
    fn dictionaries_lists_and_decimals() {
        let mut dict = StringDictionaryBuilder::<Int32Type>::new();
        dict.append_value("N");
        dict.append_null();
        let mut list = ListBuilder::new(arrow_array::builder::Int32Builder::new());
        list.append_value([Some(1), None]);
        list.append_null();
        let dec = Decimal128Array::from(vec![12345, -5])
            .with_precision_and_scale(10, 2)
            .unwrap();
        let batch = RecordBatch::try_from_iter([
            ("d", Arc::new(dict.finish()) as ArrayRef),
            ("l", Arc::new(list.finish()) as ArrayRef),
            ("m", Arc::new(dec) as ArrayRef),
        ])
        .unwrap();
        assert_eq!(
            rows(&batch),
            vec![
                r#"{"d":"N","l":[1,null],"m":123.45}"#,
                r#"{"d":null,"l":null,"m":-0.05}"#
            ]
        );
    }

    #[test]
    fn unsupported_types_name_the_column() {
        let schema = Schema::new(vec![Field::new(
            "s",
            DataType::Struct(vec![Field::new("x", DataType::Int8, true)].into()),
            true,
        )]);
        let err = JsonRowEncoder::new(&schema).unwrap_err().to_string();
        assert!(err.contains("\"s\""), "{err}");
    }
}
