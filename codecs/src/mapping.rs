//! Arrow → ClickHouse type mapping, depending on what the target server
//! supports ([`ServerCaps`]).
//!
//! | Arrow | modern | legacy (18.x) |
//! |---|---|---|
//! | Int8..Int64, UInt8..UInt64, Float32/64 | same | same |
//! | Float16 | Float32 | Float32 |
//! | Boolean | Bool | UInt8 |
//! | Utf8, LargeUtf8, Utf8View, Binary, LargeBinary, BinaryView | String | String |
//! | FixedSizeBinary(n) | FixedString(n) | FixedString(n) |
//! | Date32, Date64 | Date32 | Date (values checked against its range) |
//! | Timestamp(unit, tz) | DateTime64(0/3/6/9, tz) | DateTime(tz) (sub-seconds refused unless truncation is allowed) |
//! | Decimal32/64/128/256(p, s) | Decimal(p, s) | Decimal(p, s), p ≤ 38 |
//! | Dictionary(int, string) | LowCardinality(String) | LowCardinality(String) if allowed, else String |
//! | List/LargeList/FixedSizeList(T) | Array(T) | Array(T) |
//! | nullable scalar field | Nullable(T) (LowCardinality(Nullable(T)) for dictionaries) | same |
//!
//! A nullable list field maps to `Array(T)` (ClickHouse has no
//! `Nullable(Array)`); a null list is then refused when encoding.
//! Time zones: IANA names pass through, `Z`/`+00:00` become `UTC`, whole-hour
//! offsets become `Etc/GMT∓h`; other offsets are refused.

use arrow_schema::{DataType, Field, Schema, TimeUnit};

use crate::chtype::ChType;
use crate::{CodecError, Result};

/// What the target ClickHouse server supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerCaps {
    /// `DateTime64(p, tz)` exists (20.1+).
    pub datetime64: bool,
    /// The `Bool` type exists (21.12+).
    pub bool_type: bool,
    /// `LowCardinality` may be used without experimental settings (19.x+).
    pub low_cardinality: bool,
    /// `Date32` exists (21.9+).
    pub date32: bool,
}

impl ServerCaps {
    /// A current ClickHouse (23+).
    pub const MODERN: ServerCaps = ServerCaps {
        datetime64: true,
        bool_type: true,
        low_cardinality: true,
        date32: true,
    };
    /// ClickHouse 18.x (Debian's 18.16).
    pub const LEGACY: ServerCaps = ServerCaps {
        datetime64: false,
        bool_type: false,
        low_cardinality: false,
        date32: false,
    };

    /// Capabilities of server version `major.minor`.
    pub fn for_version(major: u32, minor: u32) -> ServerCaps {
        let at_least = |ma: u32, mi: u32| (major, minor) >= (ma, mi);
        ServerCaps {
            datetime64: at_least(20, 1),
            bool_type: at_least(21, 12),
            low_cardinality: at_least(19, 0),
            date32: at_least(21, 9),
        }
    }
}

/// Options for lossy conversions while encoding.
#[derive(Clone, Copy, Debug, Default)]
pub struct MappingOptions {
    /// Drop sub-second (or sub-precision) parts of timestamps that the
    /// target type cannot hold instead of failing. Nothing else is truncated.
    pub allow_truncation: bool,
}

fn unsupported(field: &Field, hint: &str) -> CodecError {
    CodecError::UnsupportedType {
        column: field.name().clone(),
        arrow_type: field.data_type().to_string(),
        hint: if hint.is_empty() {
            String::new()
        } else {
            format!(" ({hint})")
        },
    }
}

/// ClickHouse time zone name for an Arrow timestamp time zone.
pub fn clickhouse_time_zone(tz: &str) -> std::result::Result<String, String> {
    let t = tz.trim();
    if matches!(
        t,
        "Z" | "z" | "UTC" | "utc" | "+00:00" | "-00:00" | "+0000" | "+00"
    ) {
        return Ok("UTC".to_string());
    }
    let bytes = t.as_bytes();
    if matches!(bytes.first(), Some(b'+') | Some(b'-')) {
        let sign = bytes[0];
        let rest = &t[1..];
        let (h, m) = match rest.split_once(':') {
            Some((h, m)) => (h, m),
            None if rest.len() == 4 => rest.split_at(2),
            None => (rest, "00"),
        };
        let (Ok(h), Ok(m)) = (h.parse::<u32>(), m.parse::<u32>()) else {
            return Err(format!("unrecognised time zone offset {tz:?}"));
        };
        if m != 0 || h > 14 {
            return Err(format!(
                "time zone offset {tz:?} has no ClickHouse equivalent (only whole hours map to Etc/GMT zones)"
            ));
        }
        if h == 0 {
            return Ok("UTC".to_string());
        }
        // POSIX-style Etc zones have the inverted sign: UTC+3 is Etc/GMT-3.
        let inv = if sign == b'+' { '-' } else { '+' };
        return Ok(format!("Etc/GMT{inv}{h}"));
    }
    if t.is_empty() {
        return Err("empty time zone".into());
    }
    Ok(t.to_string())
}

fn unit_digits(unit: TimeUnit) -> u8 {
    match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    }
}

fn is_string_like(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
    )
}

/// The non-nullable ClickHouse type for an Arrow data type.
fn base_type(field: &Field, dt: &DataType, caps: ServerCaps) -> Result<ChType> {
    Ok(match dt {
        DataType::Int8 => ChType::Int8,
        DataType::Int16 => ChType::Int16,
        DataType::Int32 => ChType::Int32,
        DataType::Int64 => ChType::Int64,
        DataType::UInt8 => ChType::UInt8,
        DataType::UInt16 => ChType::UInt16,
        DataType::UInt32 => ChType::UInt32,
        DataType::UInt64 => ChType::UInt64,
        DataType::Float16 | DataType::Float32 => ChType::Float32,
        DataType::Float64 => ChType::Float64,
        DataType::Boolean if caps.bool_type => ChType::Bool,
        DataType::Boolean => ChType::UInt8,
        dt if is_string_like(dt) => ChType::String,
        DataType::FixedSizeBinary(n) if *n > 0 => ChType::FixedString(*n as usize),
        DataType::Date32 | DataType::Date64 if caps.date32 => ChType::Date32,
        DataType::Date32 | DataType::Date64 => ChType::Date,
        DataType::Timestamp(unit, tz) => {
            let tz = match tz {
                Some(tz) => Some(clickhouse_time_zone(tz).map_err(|e| unsupported(field, &e))?),
                None => None,
            };
            if caps.datetime64 {
                ChType::DateTime64(unit_digits(*unit), tz)
            } else {
                ChType::DateTime(tz)
            }
        }
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => {
            if *s < 0 {
                return Err(unsupported(
                    field,
                    "negative decimal scales have no ClickHouse equivalent",
                ));
            }
            if !caps.datetime64 && *p > 38 {
                return Err(unsupported(
                    field,
                    "this server has no Decimal wider than 38 digits",
                ));
            }
            ChType::Decimal {
                precision: *p,
                scale: *s as u8,
            }
        }
        DataType::Dictionary(key, value) if key.is_integer() && is_string_like(value) => {
            if caps.low_cardinality {
                ChType::LowCardinality(Box::new(ChType::String))
            } else {
                ChType::String
            }
        }
        DataType::List(inner) | DataType::LargeList(inner) | DataType::FixedSizeList(inner, _) => {
            ChType::Array(Box::new(field_type(field, inner, caps)?))
        }
        DataType::Struct(_) => {
            return Err(unsupported(field, "flatten structs in a SQL transform"))
        }
        DataType::Map(..) => {
            return Err(unsupported(
                field,
                "Map is not supported; convert it in a SQL transform",
            ))
        }
        _ => return Err(unsupported(field, "")),
    })
}

/// Type of a (possibly nested) field, with nullability applied.
fn field_type(top: &Field, inner: &Field, caps: ServerCaps) -> Result<ChType> {
    let base = base_type(top, inner.data_type(), caps)?;
    if !inner.is_nullable() {
        return Ok(base);
    }
    Ok(match base {
        // ClickHouse has no Nullable(Array): null lists are refused when encoding.
        ChType::Array(_) => base,
        ChType::LowCardinality(t) => ChType::LowCardinality(Box::new(ChType::Nullable(t))),
        t => ChType::Nullable(Box::new(t)),
    })
}

/// The ClickHouse column type for an Arrow field on a server with `caps`.
/// Unsupported Arrow types yield [`CodecError::UnsupportedType`] naming the column.
pub fn clickhouse_type(field: &Field, caps: ServerCaps) -> Result<ChType> {
    field_type(field, field, caps)
}

/// `(name, type)` for every field of `schema`, in order. Reports all
/// unsupported columns at once.
pub fn table_columns(schema: &Schema, caps: ServerCaps) -> Result<Vec<(String, ChType)>> {
    let mut cols = Vec::with_capacity(schema.fields().len());
    let mut errors = Vec::new();
    for f in schema.fields() {
        match clickhouse_type(f, caps) {
            Ok(t) => cols.push((f.name().clone(), t)),
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(cols),
        1 => Err(errors.remove(0)),
        _ => Err(CodecError::SchemaMismatch(
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn t(dt: DataType, nullable: bool, caps: ServerCaps) -> String {
        clickhouse_type(&Field::new("c", dt, nullable), caps)
            .unwrap()
            .to_string()
    }

    #[test]
    fn versions() {
        assert_eq!(ServerCaps::for_version(18, 16), ServerCaps::LEGACY);
        assert_eq!(ServerCaps::for_version(23, 8), ServerCaps::MODERN);
        assert_eq!(ServerCaps::for_version(26, 9), ServerCaps::MODERN);
        let c = ServerCaps::for_version(21, 9);
        assert!(c.date32 && c.datetime64 && c.low_cardinality && !c.bool_type);
    }

    #[test]
    fn scalars_modern_and_legacy() {
        let m = ServerCaps::MODERN;
        let l = ServerCaps::LEGACY;
        assert_eq!(t(DataType::Int32, false, m), "Int32");
        assert_eq!(t(DataType::UInt64, true, m), "Nullable(UInt64)");
        assert_eq!(t(DataType::Boolean, false, m), "Bool");
        assert_eq!(t(DataType::Boolean, true, l), "Nullable(UInt8)");
        assert_eq!(t(DataType::Utf8View, false, l), "String");
        assert_eq!(t(DataType::LargeBinary, true, l), "Nullable(String)");
        assert_eq!(
            t(DataType::FixedSizeBinary(16), false, l),
            "FixedString(16)"
        );
        assert_eq!(t(DataType::Date32, false, m), "Date32");
        assert_eq!(t(DataType::Date32, false, l), "Date");
        assert_eq!(t(DataType::Float16, false, l), "Float32");
        assert_eq!(
            t(DataType::Decimal128(20, 4), true, l),
            "Nullable(Decimal(20, 4))"
        );
        assert_eq!(t(DataType::Decimal256(50, 4), false, m), "Decimal(50, 4)");
    }

    #[test]
    fn timestamps() {
        let m = ServerCaps::MODERN;
        let l = ServerCaps::LEGACY;
        let ts = |u, tz: Option<&str>| DataType::Timestamp(u, tz.map(Arc::from));
        assert_eq!(
            t(ts(TimeUnit::Microsecond, None), false, m),
            "DateTime64(6)"
        );
        assert_eq!(
            t(ts(TimeUnit::Nanosecond, Some("Europe/Paris")), true, m),
            "Nullable(DateTime64(9, 'Europe/Paris'))"
        );
        assert_eq!(
            t(ts(TimeUnit::Millisecond, Some("+00:00")), false, m),
            "DateTime64(3, 'UTC')"
        );
        assert_eq!(
            t(ts(TimeUnit::Second, Some("+03:00")), false, l),
            "DateTime('Etc/GMT-3')"
        );
        assert_eq!(
            t(ts(TimeUnit::Second, Some("-0500")), false, l),
            "DateTime('Etc/GMT+5')"
        );
        assert_eq!(t(ts(TimeUnit::Microsecond, None), false, l), "DateTime");
        let e = clickhouse_type(
            &Field::new("when", ts(TimeUnit::Second, Some("+05:30")), false),
            m,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("\"when\"") && e.contains("+05:30"), "{e}");
    }

    #[test]
    fn dictionaries_and_lists() {
        let m = ServerCaps::MODERN;
        let l = ServerCaps::LEGACY;
        let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        assert_eq!(t(dict.clone(), false, m), "LowCardinality(String)");
        assert_eq!(t(dict.clone(), true, m), "LowCardinality(Nullable(String))");
        assert_eq!(t(dict.clone(), true, l), "Nullable(String)");
        let list = DataType::List(Arc::new(Field::new("item", DataType::Int32, true)));
        assert_eq!(t(list.clone(), true, m), "Array(Nullable(Int32))");
        let ll = DataType::LargeList(Arc::new(Field::new("item", list, false)));
        assert_eq!(t(ll, false, l), "Array(Array(Nullable(Int32)))");
        let ld = DataType::List(Arc::new(Field::new("item", dict, true)));
        assert_eq!(
            t(ld.clone(), false, m),
            "Array(LowCardinality(Nullable(String)))"
        );
        assert_eq!(t(ld, false, l), "Array(Nullable(String))");
    }

    #[test]
    fn unsupported_types_name_the_column() {
        let schema = Schema::new(vec![
            Field::new("ok", DataType::Int8, false),
            Field::new(
                "s",
                DataType::Struct(vec![Field::new("x", DataType::Int8, false)].into()),
                false,
            ),
            Field::new(
                "iv",
                DataType::Interval(arrow_schema::IntervalUnit::DayTime),
                false,
            ),
        ]);
        let e = table_columns(&schema, ServerCaps::MODERN)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"s\"") && e.contains("Struct"), "{e}");
        assert!(e.contains("\"iv\"") && e.contains("Interval"), "{e}");
        let e = clickhouse_type(
            &Field::new("d", DataType::Decimal256(60, 2), false),
            ServerCaps::LEGACY,
        )
        .unwrap_err();
        assert!(matches!(e, CodecError::UnsupportedType { .. }), "{e}");
        let ok = Schema::new(vec![Field::new("a", DataType::Int8, false)]);
        assert_eq!(
            table_columns(&ok, ServerCaps::LEGACY).unwrap(),
            vec![("a".to_string(), ChType::Int8)]
        );
    }
}
