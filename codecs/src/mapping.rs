//! Arrow → ClickHouse type mapping, depending on what the target server
//! supports ([`ServerCaps`]).
//!
//! The full matrix (every Arrow type, ClickHouse 18.x and 23+, and how each
//! row is tested) is published in the README, section "ClickHouse versions";
//! this module is its implementation. In short:
//!
//! - scalars map to the same-width ClickHouse type; `Boolean` is `Bool`
//!   (`UInt8` before 21.12), dates are `Date32` (`Date` before 21.9);
//! - `Timestamp(unit, tz)` is `DateTime64(0/3/6/9, tz)` (20.1+), else
//!   `DateTime(tz)` whose whole seconds are checked when encoding;
//! - `Decimal32/64/128/256(p, s)` is `Decimal(p, s)`, p > 38 only on 21.8+;
//! - `FixedSizeBinary(16)` with the `arrow.uuid` extension is `UUID`;
//! - `Time32`/`Time64`/`Duration` are `Int32`/`Int64` holding the Arrow value,
//!   the unit is written into the column comment ([`column_comment`]);
//! - `Dictionary(int, string)` is `LowCardinality(String)`; a dictionary of
//!   any other value type is that value type;
//! - `Struct` is `Tuple` with named elements (names are dropped inside arrays
//!   on servers before 24.1, whose parser refuses them there); a nullable
//!   struct makes its elements `Nullable` and a NULL struct is written as
//!   NULL in every element;
//! - `Map(K, V)` is `Map(K, V)` (21.8+) and refused before;
//! - `List`/`LargeList`/`FixedSizeList(T)` is `Array(T)`; before 24.1 a
//!   top-level `Array(Tuple(...))` column is stored by the server as one
//!   `Array` column per element (`col.a`, `col.b`), so [`table_columns`]
//!   returns those columns and the encoder fills them from the list.
//!
//! ClickHouse has no `Nullable(Array)`, `Nullable(Tuple)` or `Nullable(Map)`:
//! a nullable list or map field maps to the non-nullable type and a NULL
//! list or map is refused when encoding.
//! Time zones: IANA names pass through, `Z`/`+00:00` become `UTC`, whole-hour
//! offsets become `Etc/GMT∓h`; other offsets are refused.

use arrow_schema::{DataType, Field, Schema, TimeUnit};

use crate::chtype::{ChType, TupleElement};
use crate::{CodecError, Result};

/// The Arrow extension type name of UUIDs (`pa.uuid()` in pyarrow).
pub const UUID_EXTENSION: &str = "arrow.uuid";
/// The field metadata key that names an Arrow extension type.
pub const EXTENSION_NAME_KEY: &str = "ARROW:extension:name";

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
    /// `Map(K, V)` exists without experimental settings (21.8+).
    pub map_type: bool,
    /// `Decimal(P, S)` with P up to 76 exists without experimental settings (21.8+).
    pub decimal256: bool,
    /// `Array(Tuple(...))` columns are stored as declared, and tuple element
    /// names are accepted at any depth (24.1+; older servers flatten such a
    /// column into one `Array` column per element and refuse names inside
    /// `Array`).
    pub nested_tuples: bool,
}

impl ServerCaps {
    /// A current ClickHouse (24.1+).
    pub const MODERN: ServerCaps = ServerCaps {
        datetime64: true,
        bool_type: true,
        low_cardinality: true,
        date32: true,
        map_type: true,
        decimal256: true,
        nested_tuples: true,
    };
    /// ClickHouse 18.x (Debian's 18.16).
    pub const LEGACY: ServerCaps = ServerCaps {
        datetime64: false,
        bool_type: false,
        low_cardinality: false,
        date32: false,
        map_type: false,
        decimal256: false,
        nested_tuples: false,
    };

    /// Capabilities of server version `major.minor`.
    pub fn for_version(major: u32, minor: u32) -> ServerCaps {
        let at_least = |ma: u32, mi: u32| (major, minor) >= (ma, mi);
        ServerCaps {
            datetime64: at_least(20, 1),
            bool_type: at_least(21, 12),
            low_cardinality: at_least(19, 0),
            date32: at_least(21, 9),
            map_type: at_least(21, 8),
            decimal256: at_least(21, 8),
            nested_tuples: at_least(24, 1),
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

fn unsupported(field: &Field, dt: &DataType, hint: &str) -> CodecError {
    CodecError::UnsupportedType {
        column: field.name().clone(),
        arrow_type: dt.to_string(),
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
                "time zone offset {tz:?} has no ClickHouse equivalent (only whole hours map to Etc/GMT zones); \
                 create the table yourself with the DateTime64 time zone you want: the values are UTC instants and are written unchanged"
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

/// Whether `field` carries the `arrow.uuid` extension (and 16-byte values).
pub fn is_uuid_field(field: &Field) -> bool {
    matches!(field.data_type(), DataType::FixedSizeBinary(16))
        && field.metadata().get(EXTENSION_NAME_KEY).map(String::as_str) == Some(UUID_EXTENSION)
}

/// Where in a column a type is mapped: inside an `Array`/`Map` (where old
/// servers refuse tuple element names) or not.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    top: &'a Field,
    caps: ServerCaps,
    in_array: bool,
}

impl Ctx<'_> {
    fn nested(self) -> Self {
        Ctx {
            in_array: true,
            ..self
        }
    }
}

const TRANSFORM_HINT: &str = "convert it in a SQL transform (--transform)";

/// The non-nullable ClickHouse type for an Arrow field's data type (`field`
/// is the field itself, or a list element / struct child inside `ctx.top`).
fn base_type(field: &Field, ctx: Ctx<'_>) -> Result<ChType> {
    let caps = ctx.caps;
    let dt = field.data_type();
    let refuse = |hint: &str| Err(unsupported(ctx.top, dt, hint));
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
        DataType::FixedSizeBinary(16) if is_uuid_field(field) => ChType::Uuid,
        DataType::FixedSizeBinary(n) if *n > 0 => ChType::FixedString(*n as usize),
        DataType::Date32 | DataType::Date64 if caps.date32 => ChType::Date32,
        DataType::Date32 | DataType::Date64 => ChType::Date,
        DataType::Timestamp(unit, tz) => {
            let tz = match tz {
                Some(tz) => Some(
                    clickhouse_time_zone(tz).map_err(|e| unsupported(ctx.top, dt, &e))?,
                ),
                None => None,
            };
            if caps.datetime64 {
                ChType::DateTime64(unit_digits(*unit), tz)
            } else {
                ChType::DateTime(tz)
            }
        }
        DataType::Time32(_) => ChType::Int32,
        DataType::Time64(_) | DataType::Duration(_) => ChType::Int64,
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => {
            if *s < 0 {
                return refuse(&format!(
                    "negative decimal scales have no ClickHouse equivalent; {TRANSFORM_HINT}"
                ));
            }
            if !caps.decimal256 && *p > 38 {
                return refuse(&format!(
                    "this server has no Decimal wider than 38 digits (ClickHouse 21.8+ has up to 76); \
                     {TRANSFORM_HINT}, e.g. to a narrower decimal or a string"
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
        DataType::Dictionary(key, value) if key.is_integer() => {
            let values = Field::new(field.name(), (**value).clone(), false)
                .with_metadata(field.metadata().clone());
            match value.as_ref() {
                DataType::Dictionary(..) => return refuse("nested dictionaries are not supported"),
                _ => base_type(&values, ctx)?,
            }
        }
        DataType::List(inner) | DataType::LargeList(inner) | DataType::FixedSizeList(inner, _) => {
            ChType::Array(Box::new(field_type(inner, ctx.nested())?))
        }
        DataType::Struct(children) => struct_type(field, children, ctx)?,
        DataType::Map(entries, _) => map_type(field, entries, ctx)?,
        DataType::Null => {
            return refuse(
                "a column of the Arrow Null type has no value type: create the table yourself with a \
                 Nullable column of the type you want (VeloStream fills it with NULL), or cast it in a SQL \
                 transform (--transform)",
            )
        }
        DataType::Interval(_) => {
            return refuse(&format!(
                "ClickHouse cannot store intervals; {TRANSFORM_HINT}, e.g. to a number of seconds"
            ))
        }
        _ => return refuse(TRANSFORM_HINT),
    })
}

/// `Struct` → `Tuple`, element names kept where the server accepts them; a
/// nullable struct makes its elements nullable.
fn struct_type(field: &Field, children: &arrow_schema::Fields, ctx: Ctx<'_>) -> Result<ChType> {
    let refuse = |hint: &str| Err(unsupported(ctx.top, field.data_type(), hint));
    if children.is_empty() {
        return refuse("a struct without fields has no ClickHouse equivalent");
    }
    let named = ctx.caps.nested_tuples || !ctx.in_array;
    let mut elements = Vec::with_capacity(children.len());
    for (i, child) in children.iter().enumerate() {
        if children[..i].iter().any(|c| c.name() == child.name()) {
            return refuse(&format!("duplicate struct field name {:?}", child.name()));
        }
        let mut ty = field_type(child, ctx)?;
        if field.is_nullable() {
            ty = make_nullable(ty);
        }
        elements.push(TupleElement {
            name: (named && !child.name().is_empty()).then(|| child.name().clone()),
            ty,
        });
    }
    if named && elements.iter().any(|e| e.name.is_none()) {
        elements.iter_mut().for_each(|e| e.name = None);
    }
    Ok(ChType::Tuple(elements))
}

/// `Map` → `Map(K, V)` where the server has it and the key type is allowed.
fn map_type(field: &Field, entries: &Field, ctx: Ctx<'_>) -> Result<ChType> {
    let refuse = |hint: &str| Err(unsupported(ctx.top, field.data_type(), hint));
    if !ctx.caps.map_type {
        return refuse(
            "this server has no Map type (ClickHouse 21.8+ has): split it with \
             map_keys()/map_values() in a SQL transform (--transform), or create the table \
             yourself with the columns <name>.key Array(K) and <name>.value Array(V), \
             which VeloStream fills",
        );
    }
    let kv = match entries.data_type() {
        DataType::Struct(kv) if kv.len() == 2 => kv,
        _ => return refuse("malformed map type"),
    };
    let key = base_type(&kv[0], ctx.nested())?;
    if !map_key_allowed(&key) {
        return refuse(&format!(
            "ClickHouse Map keys cannot be {key}; {TRANSFORM_HINT}, e.g. cast the keys to strings"
        ));
    }
    let value = field_type(&kv[1], ctx.nested())?;
    Ok(ChType::Map(Box::new(key), Box::new(value)))
}

/// Key types ClickHouse accepts in `Map(K, V)`.
fn map_key_allowed(key: &ChType) -> bool {
    match key {
        ChType::LowCardinality(inner) => map_key_allowed(inner),
        ChType::String
        | ChType::FixedString(_)
        | ChType::Uuid
        | ChType::Date
        | ChType::Date32
        | ChType::DateTime(_)
        | ChType::Int8
        | ChType::Int16
        | ChType::Int32
        | ChType::Int64
        | ChType::UInt8
        | ChType::UInt16
        | ChType::UInt32
        | ChType::UInt64
        | ChType::Bool => true,
        _ => false,
    }
}

/// `Nullable(T)` where ClickHouse allows it; types that cannot be inside
/// `Nullable` are returned as they are (a tuple's elements become nullable
/// instead).
fn make_nullable(t: ChType) -> ChType {
    match t {
        ChType::Nullable(_) | ChType::Array(_) | ChType::Map(..) => t,
        ChType::LowCardinality(inner) => match *inner {
            ChType::Nullable(_) => ChType::LowCardinality(inner),
            other => ChType::LowCardinality(Box::new(ChType::Nullable(Box::new(other)))),
        },
        ChType::Tuple(elements) => ChType::Tuple(
            elements
                .into_iter()
                .map(|e| TupleElement {
                    name: e.name,
                    ty: make_nullable(e.ty),
                })
                .collect(),
        ),
        t => ChType::Nullable(Box::new(t)),
    }
}

/// Type of a (possibly nested) field, with nullability applied.
fn field_type(field: &Field, ctx: Ctx<'_>) -> Result<ChType> {
    let base = base_type(field, ctx)?;
    Ok(if field.is_nullable() {
        make_nullable(base)
    } else {
        base
    })
}

/// The ClickHouse column type for an Arrow field on a server with `caps`.
/// Unsupported Arrow types yield [`CodecError::UnsupportedType`] naming the
/// column, the Arrow type and the way out.
pub fn clickhouse_type(field: &Field, caps: ServerCaps) -> Result<ChType> {
    field_type(
        field,
        Ctx {
            top: field,
            caps,
            in_array: false,
        },
    )
}

/// The columns one Arrow field becomes: one, or, for a list of structs on a
/// server that flattens `Array(Tuple(...))` columns, one `name.element`
/// `Array` column per struct field.
pub fn field_columns(field: &Field, caps: ServerCaps) -> Result<Vec<(String, ChType)>> {
    let ty = clickhouse_type(field, caps)?;
    if caps.nested_tuples {
        return Ok(vec![(field.name().clone(), ty)]);
    }
    let ChType::Array(inner) = &ty else {
        return Ok(vec![(field.name().clone(), ty)]);
    };
    let ChType::Tuple(elements) = inner.as_ref() else {
        return Ok(vec![(field.name().clone(), ty)]);
    };
    let names = struct_of_list(field.data_type())
        .map(|children| {
            children
                .iter()
                .map(|c| c.name().clone())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    Ok(elements
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let element = names
                .get(i)
                .filter(|n| !n.is_empty())
                .cloned()
                .unwrap_or_else(|| (i + 1).to_string());
            (
                format!("{}.{element}", field.name()),
                ChType::Array(Box::new(e.ty.clone())),
            )
        })
        .collect())
}

/// The struct fields of a `List`/`LargeList`/`FixedSizeList` of `Struct`.
pub fn struct_of_list(dt: &DataType) -> Option<&arrow_schema::Fields> {
    match dt {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            match f.data_type() {
                DataType::Struct(children) => Some(children),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The column comment VeloStream writes for `field`: the Arrow unit of
/// `Time32`/`Time64`/`Duration` values stored as integers (also inside
/// lists, structs and maps), `None` for every other type.
pub fn column_comment(field: &Field) -> Option<String> {
    let mut notes = Vec::new();
    time_notes(field.data_type(), "", &mut notes);
    (!notes.is_empty()).then(|| notes.join("; "))
}

fn time_notes(dt: &DataType, path: &str, notes: &mut Vec<String>) {
    let unit_name = |u: &TimeUnit| match u {
        TimeUnit::Second => "seconds",
        TimeUnit::Millisecond => "milliseconds",
        TimeUnit::Microsecond => "microseconds",
        TimeUnit::Nanosecond => "nanoseconds",
    };
    let at = |what: String| {
        if path.is_empty() {
            what
        } else {
            format!("{path}: {what}")
        }
    };
    match dt {
        DataType::Time32(u) | DataType::Time64(u) => {
            notes.push(at(format!("Arrow {dt}: {} since midnight", unit_name(u))))
        }
        DataType::Duration(u) => notes.push(at(format!("Arrow {dt}: {}", unit_name(u)))),
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            time_notes(f.data_type(), path, notes)
        }
        DataType::Dictionary(_, v) => time_notes(v, path, notes),
        DataType::Struct(children) => {
            for c in children {
                let p = if path.is_empty() {
                    c.name().clone()
                } else {
                    format!("{path}.{}", c.name())
                };
                time_notes(c.data_type(), &p, notes);
            }
        }
        DataType::Map(entries, _) => time_notes(entries.data_type(), path, notes),
        _ => {}
    }
}

/// `(name, type)` for every column the table gets from `schema`, in order
/// (see [`field_columns`]). Reports all unsupported columns at once.
pub fn table_columns(schema: &Schema, caps: ServerCaps) -> Result<Vec<(String, ChType)>> {
    let mut cols = Vec::with_capacity(schema.fields().len());
    let mut errors = Vec::new();
    for f in schema.fields() {
        match field_columns(f, caps) {
            Ok(c) => cols.extend(c),
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

/// `(column name, comment)` for the columns of `schema` that get one
/// ([`column_comment`]), for `CREATE TABLE`.
pub fn table_comments(schema: &Schema) -> Vec<(String, String)> {
    schema
        .fields()
        .iter()
        .filter_map(|f| column_comment(f).map(|c| (f.name().clone(), c)))
        .collect()
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
        assert_eq!(ServerCaps::for_version(24, 8), ServerCaps::MODERN);
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

    fn strukt(nullable: bool) -> Field {
        Field::new(
            "s",
            DataType::Struct(
                vec![
                    Field::new("a", DataType::Int32, false),
                    Field::new("b", DataType::Utf8, true),
                    Field::new(
                        "l",
                        DataType::List(Arc::new(Field::new("item", DataType::Int8, true))),
                        false,
                    ),
                ]
                .into(),
            ),
            nullable,
        )
    }

    #[test]
    fn structs_become_tuples() {
        let m = ServerCaps::MODERN;
        let l = ServerCaps::LEGACY;
        assert_eq!(
            clickhouse_type(&strukt(false), m).unwrap().to_string(),
            "Tuple(a Int32, b Nullable(String), l Array(Nullable(Int8)))"
        );
        // A nullable struct: every element that can be is Nullable.
        assert_eq!(
            clickhouse_type(&strukt(true), l).unwrap().to_string(),
            "Tuple(a Nullable(Int32), b Nullable(String), l Array(Nullable(Int8)))"
        );
        // A list of structs: named inside arrays on modern servers only.
        let list = Field::new(
            "ls",
            DataType::List(Arc::new(strukt(true).with_name("item"))),
            false,
        );
        assert_eq!(
            clickhouse_type(&list, m).unwrap().to_string(),
            "Array(Tuple(a Nullable(Int32), b Nullable(String), l Array(Nullable(Int8))))"
        );
        assert_eq!(
            clickhouse_type(&list, l).unwrap().to_string(),
            "Array(Tuple(Nullable(Int32), Nullable(String), Array(Nullable(Int8))))"
        );
        // Old servers store such a column as one array per element.
        let schema = Schema::new(vec![list.clone()]);
        let cols: Vec<String> = table_columns(&schema, l)
            .unwrap()
            .iter()
            .map(|(n, t)| format!("{n} {t}"))
            .collect();
        assert_eq!(
            cols,
            [
                "ls.a Array(Nullable(Int32))",
                "ls.b Array(Nullable(String))",
                "ls.l Array(Array(Nullable(Int8)))"
            ]
        );
        assert_eq!(table_columns(&schema, m).unwrap().len(), 1);
        assert!(ServerCaps::for_version(23, 8).map_type);
        assert!(!ServerCaps::for_version(23, 8).nested_tuples);
        assert!(ServerCaps::for_version(24, 1).nested_tuples);
    }

    #[test]
    fn maps_uuids_times_dictionaries() {
        let m = ServerCaps::MODERN;
        let l = ServerCaps::LEGACY;
        let map = DataType::Map(
            Arc::new(Field::new(
                "entries",
                DataType::Struct(
                    vec![
                        Field::new("key", DataType::Utf8, false),
                        Field::new("value", DataType::Int64, true),
                    ]
                    .into(),
                ),
                false,
            )),
            false,
        );
        assert_eq!(t(map.clone(), true, m), "Map(String, Nullable(Int64))");
        let e = clickhouse_type(&Field::new("attrs", map, true), l)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"attrs\"") && e.contains("Map(") && e.contains("map_keys()"),
            "{e}"
        );
        let uuid = Field::new("u", DataType::FixedSizeBinary(16), true)
            .with_metadata([(EXTENSION_NAME_KEY.to_string(), UUID_EXTENSION.to_string())].into());
        assert_eq!(
            clickhouse_type(&uuid, l).unwrap().to_string(),
            "Nullable(UUID)"
        );
        assert_eq!(
            t(DataType::FixedSizeBinary(16), false, m),
            "FixedString(16)"
        );
        assert_eq!(t(DataType::Time32(TimeUnit::Second), false, l), "Int32");
        assert_eq!(
            t(DataType::Time64(TimeUnit::Nanosecond), true, m),
            "Nullable(Int64)"
        );
        assert_eq!(
            t(DataType::Duration(TimeUnit::Millisecond), false, m),
            "Int64"
        );
        let f = Field::new(
            "s",
            DataType::Struct(
                vec![
                    Field::new("t", DataType::Time64(TimeUnit::Microsecond), false),
                    Field::new("d", DataType::Duration(TimeUnit::Second), false),
                ]
                .into(),
            ),
            false,
        );
        assert_eq!(
            column_comment(&f).unwrap(),
            "t: Arrow Time64(µs): microseconds since midnight; d: Arrow Duration(s): seconds"
        );
        assert_eq!(
            column_comment(&Field::new("i", DataType::Int8, false)),
            None
        );
        let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Int64));
        assert_eq!(t(dict.clone(), true, m), "Nullable(Int64)");
        assert_eq!(t(dict, false, l), "Int64");
        assert_eq!(t(DataType::Decimal256(76, 20), false, m), "Decimal(76, 20)");
    }

    #[test]
    fn unsupported_types_name_the_column_and_the_way_out() {
        let schema = Schema::new(vec![
            Field::new("ok", DataType::Int8, false),
            Field::new("nothing", DataType::Null, true),
            Field::new(
                "iv",
                DataType::Interval(arrow_schema::IntervalUnit::DayTime),
                false,
            ),
        ]);
        let e = table_columns(&schema, ServerCaps::MODERN)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"nothing\"") && e.contains("Nullable column of the type you want"),
            "{e}"
        );
        assert!(
            e.contains("\"iv\"") && e.contains("Interval") && e.contains("--transform"),
            "{e}"
        );
        let e = clickhouse_type(
            &Field::new("d", DataType::Decimal256(60, 2), false),
            ServerCaps::LEGACY,
        )
        .unwrap_err();
        assert!(matches!(e, CodecError::UnsupportedType { .. }), "{e}");
        let e = e.to_string();
        assert!(
            e.contains("\"d\"") && e.contains("Decimal256(60, 2)") && e.contains("38 digits"),
            "{e}"
        );
        let ok = Schema::new(vec![Field::new("a", DataType::Int8, false)]);
        assert_eq!(
            table_columns(&ok, ServerCaps::LEGACY).unwrap(),
            vec![("a".to_string(), ChType::Int8)]
        );
    }
}
