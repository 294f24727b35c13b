//! Per-column planning: which writer turns an Arrow array of a given type
//! into exactly the bytes of the target ClickHouse type.

use arrow_schema::{DataType, Fields, TimeUnit};

use crate::chtype::{decimal_width, ChType, TupleElement};
use crate::mapping::MappingOptions;

/// Integer targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IntKind {
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
}

impl IntKind {
    pub(crate) fn of_ch(t: &ChType) -> Option<IntKind> {
        Some(match t {
            ChType::Int8 => IntKind::I8,
            ChType::Int16 => IntKind::I16,
            ChType::Int32 => IntKind::I32,
            ChType::Int64 => IntKind::I64,
            ChType::UInt8 => IntKind::U8,
            ChType::UInt16 => IntKind::U16,
            ChType::UInt32 => IntKind::U32,
            ChType::UInt64 => IntKind::U64,
            _ => return None,
        })
    }

    fn of_arrow(dt: &DataType) -> Option<IntKind> {
        Some(match dt {
            DataType::Int8 => IntKind::I8,
            DataType::Int16 => IntKind::I16,
            DataType::Int32 => IntKind::I32,
            DataType::Int64 => IntKind::I64,
            DataType::UInt8 => IntKind::U8,
            DataType::UInt16 => IntKind::U16,
            DataType::UInt32 => IntKind::U32,
            DataType::UInt64 => IntKind::U64,
            // Times of day and durations are written as their raw integer value.
            DataType::Time32(_) => IntKind::I32,
            DataType::Time64(_) | DataType::Duration(_) => IntKind::I64,
            _ => return None,
        })
    }

    pub(crate) fn range(self) -> (i128, i128) {
        match self {
            IntKind::I8 => (i8::MIN.into(), i8::MAX.into()),
            IntKind::I16 => (i16::MIN.into(), i16::MAX.into()),
            IntKind::I32 => (i32::MIN.into(), i32::MAX.into()),
            IntKind::I64 => (i64::MIN.into(), i64::MAX.into()),
            IntKind::U8 => (0, u8::MAX.into()),
            IntKind::U16 => (0, u16::MAX.into()),
            IntKind::U32 => (0, u32::MAX.into()),
            IntKind::U64 => (0, u64::MAX.into()),
        }
    }

    fn width(self) -> usize {
        match self {
            IntKind::I8 | IntKind::U8 => 1,
            IntKind::I16 | IntKind::U16 => 2,
            IntKind::I32 | IntKind::U32 => 4,
            IntKind::I64 | IntKind::U64 => 8,
        }
    }
}

/// Timestamp targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimeTarget {
    /// `DateTime`: UInt32 seconds.
    DateTime,
    /// `DateTime64(p)`: Int64 ticks.
    DateTime64,
}

/// How one column (or nested element) is written. Planned once per encoder.
#[derive(Clone, Debug)]
pub(crate) enum Writer {
    /// Fixed-width values whose Arrow buffer already has the target layout:
    /// copied as one little-endian slice.
    Copy { width: usize },
    /// Integer to integer; `checked` when some source values may not fit.
    Int { to: IntKind, checked: bool },
    /// Float16 to Float32.
    F16ToF32,
    /// Float32 to Float64.
    F32ToF64,
    /// Arrow boolean bitmap to one byte per value (`Bool` or `UInt8`).
    Bool,
    /// Date32/Date64 to `Date` (UInt16 days) or `Date32` (Int32 days).
    Days { to_date32: bool, truncate: bool },
    /// Timestamps rescaled from `from_digits` to `to_digits` sub-second digits.
    Time {
        from_digits: u8,
        to_digits: u8,
        to: TimeTarget,
        truncate: bool,
    },
    /// Decimal to `Decimal(precision, _)`, multiplied by 10^`scale_up`.
    Decimal {
        precision: u8,
        width: usize,
        scale_up: u8,
    },
    /// Any binary-like array or dictionary of them to `String`.
    Str,
    /// Binary-like values to `FixedString(n)`, zero padded.
    FixedStr { n: usize },
    /// Null map, then the inner values.
    Nullable(Box<Writer>),
    /// Offsets, then the flattened elements.
    Array(Box<Writer>),
    /// `LowCardinality(String)` or `LowCardinality(Nullable(String))`.
    LowCard { nullable: bool },
    /// `FixedSizeBinary(16)` (RFC 4122 byte order) to `UUID`: each 8-byte
    /// half reversed (ClickHouse stores a UUID as two little-endian UInt64).
    Uuid,
    /// A struct to `Tuple`: each element column in turn, with the struct's
    /// NULLs written as NULL in every element.
    Tuple(Vec<Element>),
    /// One field of the structs of a list (a flattened `col.element`
    /// column of an old server), with the struct's NULLs merged in.
    Element(Box<Element>),
    /// A dictionary of non-string values: decoded, then written as its values.
    Unpack(Box<Writer>),
    /// Values of the Arrow `Null` type inside `Nullable`: `per_row` zero
    /// bytes each (the default value of the inner type).
    Zeros { per_row: usize },
}

/// How one struct field is written.
#[derive(Clone, Debug)]
pub(crate) struct Element {
    /// Index of the field in the struct.
    pub index: usize,
    /// Its name, for error messages (`column.name`).
    pub name: String,
    pub writer: Writer,
}

impl Writer {
    /// Whether this writer accepts null slots itself (structs turn theirs
    /// into NULL elements).
    pub(crate) fn accepts_nulls(&self) -> bool {
        matches!(
            self,
            Writer::Nullable(_)
                | Writer::LowCard { nullable: true }
                | Writer::Tuple(_)
                | Writer::Element(_)
        )
    }
}

pub(crate) fn is_binary_like(dt: &DataType) -> bool {
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

fn is_string_dictionary(dt: &DataType) -> bool {
    matches!(dt, DataType::Dictionary(k, v) if k.is_integer() && is_binary_like(v))
}

fn digits(unit: &TimeUnit) -> u8 {
    match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    }
}

/// Plans writing the struct fields `children` into the tuple `elements`:
/// by name when every element is named after a field, else by position.
fn plan_tuple(
    children: &Fields,
    elements: &[TupleElement],
    opts: MappingOptions,
) -> std::result::Result<Writer, String> {
    let by_name = elements.iter().all(|e| {
        e.name
            .as_ref()
            .is_some_and(|n| children.iter().any(|c| c.name() == n))
    });
    if children.len() != elements.len() {
        return Err(format!(
            "the struct has {} fields, the Tuple {} elements",
            children.len(),
            elements.len()
        ));
    }
    let mut out = Vec::with_capacity(elements.len());
    for (i, e) in elements.iter().enumerate() {
        let index = match (&e.name, by_name) {
            (Some(n), true) => children.iter().position(|c| c.name() == n).unwrap_or(i),
            _ => i,
        };
        let child = &children[index];
        let writer = plan(child.data_type(), &e.ty, opts)
            .map_err(|r| format!("struct field {:?}: {r}", child.name()))?;
        out.push(Element {
            index,
            name: child.name().clone(),
            writer,
        });
    }
    Ok(Writer::Tuple(out))
}

/// Plans one field of the structs in a list (or map) column `dt` into the
/// flattened column type `target` (`Array(T)`), for old servers that store
/// an `Array(Tuple(...))` column as one array per element.
pub(crate) fn plan_element(
    dt: &DataType,
    index: usize,
    target: &ChType,
    opts: MappingOptions,
) -> std::result::Result<Writer, String> {
    let children = match dt {
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(c) => c,
            _ => return Err(format!("malformed map type {dt}")),
        },
        other => crate::mapping::struct_of_list(other)
            .ok_or_else(|| format!("Arrow type {dt} is not a list of structs"))?,
    };
    let ChType::Array(inner) = target else {
        return Err(format!(
            "a field of the structs in Arrow type {dt} can only be written to an Array column, not {target}"
        ));
    };
    let child = children
        .get(index)
        .ok_or_else(|| format!("Arrow type {dt} has no struct field {}", index + 1))?;
    let writer = plan(child.data_type(), inner, opts)
        .map_err(|r| format!("struct field {:?}: {r}", child.name()))?;
    Ok(Writer::Array(Box::new(Writer::Element(Box::new(
        Element {
            index,
            name: child.name().clone(),
            writer,
        },
    )))))
}

/// Plans writing Arrow `dt` values into ClickHouse `target`. The error is a
/// human-readable reason (the caller adds the column name).
pub(crate) fn plan(
    dt: &DataType,
    target: &ChType,
    opts: MappingOptions,
) -> std::result::Result<Writer, String> {
    let incompatible = || format!("Arrow type {dt} cannot be written to ClickHouse {target}");
    let truncate = opts.allow_truncation;
    if let DataType::Dictionary(_, value) = dt {
        // String dictionaries are written directly to String/LowCardinality;
        // any other dictionary is decoded into its values first.
        let direct =
            is_binary_like(value) && matches!(target, ChType::String | ChType::LowCardinality(_));
        if !direct && !matches!(target, ChType::Nullable(_)) {
            return Ok(Writer::Unpack(Box::new(plan(value, target, opts)?)));
        }
    }
    Ok(match target {
        ChType::Nullable(inner) if *dt == DataType::Null => {
            let per_row = match inner.as_ref() {
                ChType::String => 1,
                t => t.fixed_width().ok_or_else(incompatible)?,
            };
            Writer::Nullable(Box::new(Writer::Zeros { per_row }))
        }
        ChType::Nullable(inner) => Writer::Nullable(Box::new(plan(dt, inner, opts)?)),
        ChType::Uuid => match dt {
            DataType::FixedSizeBinary(16) => Writer::Uuid,
            _ => return Err(incompatible()),
        },
        ChType::Tuple(elements) => match dt {
            DataType::Struct(children) => plan_tuple(children, elements, opts)?,
            _ => return Err(incompatible()),
        },
        ChType::Map(k, v) => match dt {
            DataType::Map(entries, _) => match entries.data_type() {
                DataType::Struct(children) => Writer::Array(Box::new(plan_tuple(
                    children,
                    &[
                        TupleElement::new(None, (**k).clone()),
                        TupleElement::new(None, (**v).clone()),
                    ],
                    opts,
                )?)),
                _ => return Err(incompatible()),
            },
            _ => return Err(incompatible()),
        },
        ChType::LowCardinality(inner) => {
            let (nullable, base) = match &**inner {
                ChType::Nullable(b) => (true, &**b),
                b => (false, b),
            };
            if *base != ChType::String {
                return Err(format!(
                    "{target} is not supported (only LowCardinality(String) and LowCardinality(Nullable(String)))"
                ));
            }
            if !(is_binary_like(dt) || is_string_dictionary(dt)) {
                return Err(incompatible());
            }
            Writer::LowCard { nullable }
        }
        ChType::Array(inner) => match dt {
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                Writer::Array(Box::new(plan(f.data_type(), inner, opts)?))
            }
            // A map is stored as Array(Tuple(K, V)): the same bytes.
            DataType::Map(entries, _) => {
                Writer::Array(Box::new(plan(entries.data_type(), inner, opts)?))
            }
            _ => return Err(incompatible()),
        },
        ChType::Int8
        | ChType::Int16
        | ChType::Int32
        | ChType::Int64
        | ChType::UInt8
        | ChType::UInt16
        | ChType::UInt32
        | ChType::UInt64 => {
            let Some(to) = IntKind::of_ch(target) else {
                return Err(incompatible());
            };
            match (dt, IntKind::of_arrow(dt)) {
                (_, Some(from)) if from == to => Writer::Copy { width: to.width() },
                (_, Some(from)) => {
                    let (flo, fhi) = from.range();
                    let (tlo, thi) = to.range();
                    Writer::Int {
                        to,
                        checked: flo < tlo || fhi > thi,
                    }
                }
                (DataType::Boolean, None) if matches!(to, IntKind::U8) => Writer::Bool,
                _ => return Err(incompatible()),
            }
        }
        ChType::Float32 => match dt {
            DataType::Float32 => Writer::Copy { width: 4 },
            DataType::Float16 => Writer::F16ToF32,
            _ => return Err(incompatible()),
        },
        ChType::Float64 => match dt {
            DataType::Float64 => Writer::Copy { width: 8 },
            DataType::Float32 => Writer::F32ToF64,
            _ => return Err(incompatible()),
        },
        ChType::Bool => match dt {
            DataType::Boolean => Writer::Bool,
            _ => return Err(incompatible()),
        },
        ChType::String => {
            if is_binary_like(dt)
                || is_string_dictionary(dt)
                || matches!(dt, DataType::FixedSizeBinary(_))
            {
                Writer::Str
            } else {
                return Err(incompatible());
            }
        }
        ChType::FixedString(n) => match dt {
            DataType::FixedSizeBinary(m) if *m as usize == *n => Writer::Copy { width: *n },
            DataType::FixedSizeBinary(m) if (*m as usize) < *n => Writer::FixedStr { n: *n },
            dt if is_binary_like(dt) => Writer::FixedStr { n: *n },
            _ => return Err(incompatible()),
        },
        ChType::Date => match dt {
            DataType::Date32 | DataType::Date64 => Writer::Days {
                to_date32: false,
                truncate,
            },
            _ => return Err(incompatible()),
        },
        ChType::Date32 => match dt {
            DataType::Date32 => Writer::Copy { width: 4 },
            DataType::Date64 => Writer::Days {
                to_date32: true,
                truncate,
            },
            _ => return Err(incompatible()),
        },
        ChType::DateTime(_) => match dt {
            DataType::Timestamp(unit, _) => Writer::Time {
                from_digits: digits(unit),
                to_digits: 0,
                to: TimeTarget::DateTime,
                truncate,
            },
            _ => return Err(incompatible()),
        },
        ChType::DateTime64(p, _) => match dt {
            DataType::Timestamp(unit, _) if digits(unit) == *p => Writer::Copy { width: 8 },
            DataType::Timestamp(unit, _) => Writer::Time {
                from_digits: digits(unit),
                to_digits: *p,
                to: TimeTarget::DateTime64,
                truncate,
            },
            _ => return Err(incompatible()),
        },
        ChType::Decimal { precision, scale } => {
            let (src_width, p, s) = match dt {
                DataType::Decimal32(p, s) => (4, *p, *s),
                DataType::Decimal64(p, s) => (8, *p, *s),
                DataType::Decimal128(p, s) => (16, *p, *s),
                DataType::Decimal256(p, s) => (32, *p, *s),
                _ => return Err(incompatible()),
            };
            if s < 0 || (s as u8) > *scale {
                return Err(format!(
                    "{}: the scale would shrink from {s} to {scale}",
                    incompatible()
                ));
            }
            let width = decimal_width(*precision);
            let scale_up = *scale - s as u8;
            if scale_up == 0 && width == src_width && *precision >= p {
                Writer::Copy { width }
            } else {
                Writer::Decimal {
                    precision: *precision,
                    width,
                    scale_up,
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn ok(dt: DataType, t: &str) -> Writer {
        plan(&dt, &ChType::parse(t).unwrap(), MappingOptions::default()).unwrap()
    }

    fn bad(dt: DataType, t: &str) -> String {
        plan(&dt, &ChType::parse(t).unwrap(), MappingOptions::default()).unwrap_err()
    }

    #[test]
    fn plans() {
        assert!(matches!(
            ok(DataType::Int32, "Int32"),
            Writer::Copy { width: 4 }
        ));
        assert!(matches!(
            ok(DataType::UInt32, "UInt64"),
            Writer::Int {
                to: IntKind::U64,
                checked: false
            }
        ));
        assert!(matches!(
            ok(DataType::UInt32, "Int64"),
            Writer::Int {
                to: IntKind::I64,
                checked: false
            }
        ));
        assert!(matches!(
            ok(DataType::Int32, "UInt64"),
            Writer::Int {
                to: IntKind::U64,
                checked: true
            }
        ));
        assert!(matches!(
            ok(DataType::Int64, "Int16"),
            Writer::Int {
                to: IntKind::I16,
                checked: true
            }
        ));
        assert!(matches!(ok(DataType::Boolean, "UInt8"), Writer::Bool));
        assert!(matches!(ok(DataType::Float32, "Float64"), Writer::F32ToF64));
        assert!(matches!(
            ok(
                DataType::Timestamp(TimeUnit::Microsecond, None),
                "DateTime64(6, 'UTC')"
            ),
            Writer::Copy { width: 8 }
        ));
        assert!(matches!(
            ok(DataType::Decimal128(10, 2), "Decimal(38, 2)"),
            Writer::Copy { width: 16 }
        ));
        assert!(matches!(
            ok(DataType::Decimal128(10, 2), "Decimal(18, 4)"),
            Writer::Decimal {
                precision: 18,
                width: 8,
                scale_up: 2
            }
        ));
        assert!(matches!(
            ok(
                DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8)),
                "String"
            ),
            Writer::Str
        ));
        let list = DataType::List(Arc::new(arrow_schema::Field::new(
            "i",
            DataType::Int8,
            true,
        )));
        match ok(list, "Array(Nullable(Int16))") {
            Writer::Array(inner) => assert!(matches!(*inner, Writer::Nullable(_))),
            w => panic!("{w:?}"),
        }
    }

    #[test]
    fn refusals_explain() {
        assert!(bad(DataType::Utf8, "Int32")
            .contains("Arrow type Utf8 cannot be written to ClickHouse Int32"));
        assert!(bad(DataType::Float64, "Float32").contains("cannot be written"));
        assert!(bad(DataType::Decimal128(10, 4), "Decimal(18, 2)").contains("scale would shrink"));
        assert!(
            bad(DataType::Int32, "LowCardinality(Int32)").contains("only LowCardinality(String)")
        );
        assert!(bad(DataType::Int32, "Array(Int32)").contains("cannot be written"));
        assert!(bad(DataType::FixedSizeBinary(4), "FixedString(3)").contains("cannot be written"));
    }
}
