//! Column writers: Arrow arrays to Native column bytes.
//!
//! Every writer appends the data of all `array.len()` values at once. Fixed
//! width columns whose Arrow buffer already has the target layout are copied
//! as one slice; conversions run as tight loops over the value slices;
//! nothing allocates per row.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrowPrimitiveType};
use arrow_buffer::{i256, NullBuffer};
use arrow_schema::DataType;

use super::plan::{Element, IntKind, TimeTarget, Writer};
use super::varint::{put_str, put_u64, put_varint};
use crate::{CodecError, Result};

#[cfg(target_endian = "big")]
compile_error!("the Native encoder copies little-endian Arrow buffers as-is; big-endian hosts are not supported");

/// Where errors happen: the column, and whether positions are rows or
/// flattened array elements.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub column: &'a str,
    pub nested: bool,
    /// Position of this array's first value in the block (when a block is
    /// written from several arrays).
    pub base: usize,
}

impl Ctx<'_> {
    fn err(&self, index: usize, msg: impl std::fmt::Display) -> CodecError {
        let what = if self.nested { "array element" } else { "row" };
        CodecError::Column {
            column: self.column.to_string(),
            reason: format!("{what} {}: {msg}", self.base + index),
        }
    }

    fn internal(&self, dt: &DataType) -> CodecError {
        CodecError::Column {
            column: self.column.to_string(),
            reason: format!(
                "internal error: unexpected Arrow array type {dt} for the planned writer"
            ),
        }
    }
}

/// LowCardinality key serialization version (`SharedDictionariesWithAdditionalKeys`).
const LC_VERSION: u64 = 1;
/// `HasAdditionalKeysBit | NeedUpdateDictionary`.
const LC_FLAGS: u64 = (1 << 9) | (1 << 10);

impl Writer {
    /// Writes the serialization state prefix (only LowCardinality has one).
    pub(crate) fn prefix(&self, out: &mut Vec<u8>) {
        match self {
            Writer::LowCard { .. } => put_u64(out, LC_VERSION),
            Writer::Nullable(inner) | Writer::Array(inner) | Writer::Unpack(inner) => {
                inner.prefix(out)
            }
            Writer::Tuple(elements) => elements.iter().for_each(|e| e.writer.prefix(out)),
            Writer::Element(e) => e.writer.prefix(out),
            _ => {}
        }
    }

    /// Writes the values of `parts`, in order, as one column: the bytes are
    /// those of writing the concatenated array. Writers whose layout is one
    /// value after another append part by part; `Nullable` of those writes
    /// every part's null map, then every part's values; offsets and
    /// dictionaries (`Array`, `LowCardinality`) span the whole column, so
    /// only that column is concatenated first.
    pub(crate) fn write_parts(
        &self,
        parts: &[&dyn Array],
        ctx: Ctx<'_>,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        if let [one] = parts {
            return self.write(*one, false, ctx, out);
        }
        match self {
            Writer::Nullable(inner) if inner.is_flat() => {
                out.reserve(parts.iter().map(|p| p.len()).sum());
                for p in parts {
                    match p.logical_nulls().filter(|n| n.null_count() > 0) {
                        Some(n) => out.extend(n.iter().map(|valid| u8::from(!valid))),
                        None => out.resize(out.len() + p.len(), 0),
                    }
                }
                let mut base = ctx.base;
                for p in parts {
                    inner.write(*p, true, Ctx { base, ..ctx }, out)?;
                    base += p.len();
                }
                Ok(())
            }
            w if w.is_flat() => {
                let mut base = ctx.base;
                for p in parts {
                    w.write(*p, false, Ctx { base, ..ctx }, out)?;
                    base += p.len();
                }
                Ok(())
            }
            _ => {
                let whole =
                    arrow_select::concat::concat(parts).map_err(|e| CodecError::Column {
                        column: ctx.column.to_string(),
                        reason: format!("joining the batches of one block: {e}"),
                    })?;
                self.write(whole.as_ref(), false, ctx, out)
            }
        }
    }

    /// Whether the column bytes are one value after another with no state
    /// spanning values (offsets, dictionaries, null maps).
    fn is_flat(&self) -> bool {
        match self {
            Writer::Nullable(_)
            | Writer::Array(_)
            | Writer::LowCard { .. }
            | Writer::Tuple(_)
            | Writer::Element(_) => false,
            Writer::Unpack(inner) => inner.is_flat(),
            _ => true,
        }
    }

    /// Writes all values of `arr`. `nulls_ok` is true inside a `Nullable`
    /// (a null map was already written; null slots may hold anything).
    pub(crate) fn write(
        &self,
        arr: &dyn Array,
        nulls_ok: bool,
        ctx: Ctx<'_>,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let nulls = arr.logical_nulls();
        // Arrays report null lists themselves, with a clearer message.
        if !nulls_ok && !self.accepts_nulls() && !matches!(self, Writer::Array(_)) {
            if let Some(n) = &nulls {
                if let Some(row) = (0..n.len()).find(|i| n.is_null(*i)) {
                    return Err(ctx.err(
                        row,
                        "NULL cannot be written to a non-Nullable ClickHouse column",
                    ));
                }
            }
        }
        let nulls = nulls.as_ref().filter(|n| n.null_count() > 0);
        match self {
            Writer::Copy { width } => copy_fixed(arr, *width, ctx, out),
            Writer::Int { to, checked } => write_ints(arr, *to, *checked, nulls, ctx, out),
            Writer::F16ToF32 => {
                let a = arr
                    .as_primitive_opt::<Float16Type>()
                    .ok_or_else(|| ctx.internal(arr.data_type()))?;
                out.reserve(a.len() * 4);
                for v in a.values().iter() {
                    out.extend_from_slice(&v.to_f32().to_le_bytes());
                }
                Ok(())
            }
            Writer::F32ToF64 => {
                let a = arr
                    .as_primitive_opt::<Float32Type>()
                    .ok_or_else(|| ctx.internal(arr.data_type()))?;
                out.reserve(a.len() * 8);
                for v in a.values().iter() {
                    out.extend_from_slice(&f64::from(*v).to_le_bytes());
                }
                Ok(())
            }
            Writer::Bool => {
                let a = arr
                    .as_boolean_opt()
                    .ok_or_else(|| ctx.internal(arr.data_type()))?;
                out.extend(a.values().iter().map(u8::from));
                Ok(())
            }
            Writer::Days {
                to_date32,
                truncate,
            } => write_days(arr, *to_date32, *truncate, nulls, ctx, out),
            Writer::Time {
                from_digits,
                to_digits,
                to,
                truncate,
            } => write_time(
                arr,
                *from_digits,
                *to_digits,
                *to,
                *truncate,
                nulls,
                ctx,
                out,
            ),
            Writer::Decimal {
                precision,
                width,
                scale_up,
            } => write_decimal(arr, *precision, *width, *scale_up, nulls, ctx, out),
            Writer::Str => write_strings(arr, ctx, out),
            Writer::FixedStr { n } => write_fixed_strings(arr, *n, nulls, ctx, out),
            Writer::Nullable(inner) => {
                out.reserve(arr.len());
                match nulls {
                    Some(n) => out.extend(n.iter().map(|valid| u8::from(!valid))),
                    None => out.resize(out.len() + arr.len(), 0),
                }
                inner.write(arr, true, ctx, out)
            }
            Writer::Array(inner) => write_array(arr, inner, ctx, out),
            Writer::LowCard { nullable } => write_low_cardinality(arr, *nullable, nulls, ctx, out),
            Writer::Uuid => write_uuids(arr, ctx, out),
            Writer::Tuple(elements) => {
                let s = arr
                    .as_struct_opt()
                    .ok_or_else(|| ctx.internal(arr.data_type()))?;
                for e in elements {
                    write_element(s, e, ctx, out)?;
                }
                Ok(())
            }
            Writer::Element(e) => {
                let s = arr
                    .as_struct_opt()
                    .ok_or_else(|| ctx.internal(arr.data_type()))?;
                write_element(s, e, ctx, out)
            }
            Writer::Unpack(inner) => {
                let DataType::Dictionary(_, value) = arr.data_type() else {
                    return Err(ctx.internal(arr.data_type()));
                };
                let values = arrow_cast::cast(arr, value).map_err(|e| CodecError::Column {
                    column: ctx.column.to_string(),
                    reason: format!("decoding the dictionary: {e}"),
                })?;
                inner.write(values.as_ref(), nulls_ok, ctx, out)
            }
            Writer::Zeros { per_row } => {
                out.resize(out.len() + arr.len() * per_row, 0);
                Ok(())
            }
        }
    }
}

/// Writes field `e.index` of the structs `s`: a NULL struct makes the field
/// NULL (which a non-Nullable element type refuses, naming `column.field`).
fn write_element(
    s: &arrow_array::StructArray,
    e: &Element,
    ctx: Ctx<'_>,
    out: &mut Vec<u8>,
) -> Result<()> {
    let label = format!("{}.{}", ctx.column, e.name);
    let ectx = Ctx {
        column: &label,
        ..ctx
    };
    let child = s
        .columns()
        .get(e.index)
        .ok_or_else(|| ectx.internal(s.data_type()))?;
    let child = match s.nulls().filter(|n| n.null_count() > 0) {
        None => child.clone(),
        Some(parent) => {
            let merged = NullBuffer::union(Some(parent), child.nulls());
            let data = child
                .to_data()
                .into_builder()
                .nulls(merged)
                .build()
                .map_err(|err| ectx.err(0, format!("merging the struct's NULLs: {err}")))?;
            arrow_array::make_array(data)
        }
    };
    e.writer.write(child.as_ref(), false, ectx, out)
}

/// UUIDs: RFC 4122 bytes to ClickHouse's two little-endian UInt64 halves.
fn write_uuids(arr: &dyn Array, ctx: Ctx<'_>, out: &mut Vec<u8>) -> Result<()> {
    let a = arr
        .as_fixed_size_binary_opt()
        .filter(|a| a.value_length() == 16)
        .ok_or_else(|| ctx.internal(arr.data_type()))?;
    out.reserve(a.len() * 16);
    for v in a.value_data()[..a.len() * 16].chunks_exact(16) {
        out.extend(v[..8].iter().rev());
        out.extend(v[8..].iter().rev());
    }
    Ok(())
}

/// Copies `len * width` bytes straight from the first Arrow buffer.
fn copy_fixed(arr: &dyn Array, width: usize, ctx: Ctx<'_>, out: &mut Vec<u8>) -> Result<()> {
    let data = arr.to_data();
    let buf = data
        .buffers()
        .first()
        .ok_or_else(|| ctx.internal(arr.data_type()))?;
    let start = data.offset() * width;
    let end = start + data.len() * width;
    let bytes = buf
        .as_slice()
        .get(start..end)
        .ok_or_else(|| ctx.internal(arr.data_type()))?;
    out.extend_from_slice(bytes);
    Ok(())
}

trait Le: Copy + Default {
    fn put(self, out: &mut Vec<u8>);
}

macro_rules! impl_le {
    ($($t:ty),*) => {$(
        impl Le for $t {
            #[inline(always)]
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
impl_le!(i8, i16, i32, i64, u8, u16, u32, u64);

fn is_null(nulls: Option<&NullBuffer>, i: usize) -> bool {
    nulls.is_some_and(|n| n.is_null(i))
}

fn convert_ints<S, D>(
    vals: &[S],
    checked: bool,
    nulls: Option<&NullBuffer>,
    ctx: Ctx<'_>,
    out: &mut Vec<u8>,
) -> Result<()>
where
    S: Copy + Into<i128> + std::fmt::Display,
    D: Le + TryFrom<i128>,
{
    out.reserve(vals.len() * std::mem::size_of::<D>());
    if !checked {
        for v in vals {
            D::try_from((*v).into()).unwrap_or_default().put(out);
        }
        return Ok(());
    }
    for (i, v) in vals.iter().enumerate() {
        match D::try_from((*v).into()) {
            Ok(d) => d.put(out),
            Err(_) if is_null(nulls, i) => D::default().put(out),
            Err(_) => {
                return Err(ctx.err(
                    i,
                    format!("value {v} is out of range of the target integer type"),
                ))
            }
        }
    }
    Ok(())
}

fn ints_from<S>(
    vals: &[S],
    to: IntKind,
    checked: bool,
    nulls: Option<&NullBuffer>,
    ctx: Ctx<'_>,
    out: &mut Vec<u8>,
) -> Result<()>
where
    S: Copy + Into<i128> + std::fmt::Display,
{
    match to {
        IntKind::I8 => convert_ints::<S, i8>(vals, checked, nulls, ctx, out),
        IntKind::I16 => convert_ints::<S, i16>(vals, checked, nulls, ctx, out),
        IntKind::I32 => convert_ints::<S, i32>(vals, checked, nulls, ctx, out),
        IntKind::I64 => convert_ints::<S, i64>(vals, checked, nulls, ctx, out),
        IntKind::U8 => convert_ints::<S, u8>(vals, checked, nulls, ctx, out),
        IntKind::U16 => convert_ints::<S, u16>(vals, checked, nulls, ctx, out),
        IntKind::U32 => convert_ints::<S, u32>(vals, checked, nulls, ctx, out),
        IntKind::U64 => convert_ints::<S, u64>(vals, checked, nulls, ctx, out),
    }
}

fn prim<'a, T: ArrowPrimitiveType>(arr: &'a dyn Array, ctx: Ctx<'_>) -> Result<&'a [T::Native]> {
    Ok(arr
        .as_primitive_opt::<T>()
        .ok_or_else(|| ctx.internal(arr.data_type()))?
        .values())
}

fn write_ints(
    arr: &dyn Array,
    to: IntKind,
    checked: bool,
    nulls: Option<&NullBuffer>,
    ctx: Ctx<'_>,
    out: &mut Vec<u8>,
) -> Result<()> {
    match arr.data_type() {
        DataType::Int8 => ints_from(prim::<Int8Type>(arr, ctx)?, to, checked, nulls, ctx, out),
        DataType::Int16 => ints_from(prim::<Int16Type>(arr, ctx)?, to, checked, nulls, ctx, out),
        DataType::Int32 => ints_from(prim::<Int32Type>(arr, ctx)?, to, checked, nulls, ctx, out),
        DataType::Int64 => ints_from(prim::<Int64Type>(arr, ctx)?, to, checked, nulls, ctx, out),
        DataType::UInt8 => ints_from(prim::<UInt8Type>(arr, ctx)?, to, checked, nulls, ctx, out),
        DataType::UInt16 => ints_from(prim::<UInt16Type>(arr, ctx)?, to, checked, nulls, ctx, out),
        DataType::UInt32 => ints_from(prim::<UInt32Type>(arr, ctx)?, to, checked, nulls, ctx, out),
        DataType::UInt64 => ints_from(prim::<UInt64Type>(arr, ctx)?, to, checked, nulls, ctx, out),
        DataType::Time32(_) | DataType::Time64(_) | DataType::Duration(_) => ints_from(
            raw_time_values(arr, ctx)?.as_slice(),
            to,
            checked,
            nulls,
            ctx,
            out,
        ),
        dt => Err(ctx.internal(dt)),
    }
}

/// The raw integer values of a `Time32`/`Time64`/`Duration` array.
fn raw_time_values(arr: &dyn Array, ctx: Ctx<'_>) -> Result<Vec<i64>> {
    use arrow_schema::TimeUnit as U;
    Ok(match arr.data_type() {
        DataType::Time32(U::Second) => widen(prim::<Time32SecondType>(arr, ctx)?),
        DataType::Time32(U::Millisecond) => widen(prim::<Time32MillisecondType>(arr, ctx)?),
        DataType::Time64(U::Microsecond) => prim::<Time64MicrosecondType>(arr, ctx)?.to_vec(),
        DataType::Time64(U::Nanosecond) => prim::<Time64NanosecondType>(arr, ctx)?.to_vec(),
        DataType::Duration(U::Second) => prim::<DurationSecondType>(arr, ctx)?.to_vec(),
        DataType::Duration(U::Millisecond) => prim::<DurationMillisecondType>(arr, ctx)?.to_vec(),
        DataType::Duration(U::Microsecond) => prim::<DurationMicrosecondType>(arr, ctx)?.to_vec(),
        DataType::Duration(U::Nanosecond) => prim::<DurationNanosecondType>(arr, ctx)?.to_vec(),
        dt => return Err(ctx.internal(dt)),
    })
}

fn widen(v: &[i32]) -> Vec<i64> {
    v.iter().map(|x| i64::from(*x)).collect()
}

const MS_PER_DAY: i64 = 86_400_000;

fn write_days(
    arr: &dyn Array,
    to_date32: bool,
    truncate: bool,
    nulls: Option<&NullBuffer>,
    ctx: Ctx<'_>,
    out: &mut Vec<u8>,
) -> Result<()> {
    let (lo, hi) = if to_date32 {
        (i64::from(i32::MIN), i64::from(i32::MAX))
    } else {
        (0, i64::from(u16::MAX))
    };
    let target = if to_date32 {
        "Date32"
    } else {
        "Date (1970-01-01 to 2149-06-06)"
    };
    let emit = |i: usize, days: i64, out: &mut Vec<u8>| -> Result<()> {
        let days = if (lo..=hi).contains(&days) {
            days
        } else if is_null(nulls, i) {
            0
        } else {
            return Err(ctx.err(
                i,
                format!("day {days} since 1970-01-01 is outside the range of {target}"),
            ));
        };
        if to_date32 {
            out.extend_from_slice(&(days as i32).to_le_bytes());
        } else {
            out.extend_from_slice(&(days as u16).to_le_bytes());
        }
        Ok(())
    };
    out.reserve(arr.len() * if to_date32 { 4 } else { 2 });
    match arr.data_type() {
        DataType::Date32 => {
            for (i, d) in prim::<Date32Type>(arr, ctx)?.iter().enumerate() {
                emit(i, i64::from(*d), out)?;
            }
        }
        DataType::Date64 => {
            for (i, ms) in prim::<Date64Type>(arr, ctx)?.iter().enumerate() {
                if !truncate && ms.rem_euclid(MS_PER_DAY) != 0 && !is_null(nulls, i) {
                    return Err(ctx.err(i, format!("Date64 value {ms} ms is not a whole day (allow truncation to drop the time of day)")));
                }
                emit(i, ms.div_euclid(MS_PER_DAY), out)?;
            }
        }
        dt => return Err(ctx.internal(dt)),
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn write_time(
    arr: &dyn Array,
    from_digits: u8,
    to_digits: u8,
    to: TimeTarget,
    truncate: bool,
    nulls: Option<&NullBuffer>,
    ctx: Ctx<'_>,
    out: &mut Vec<u8>,
) -> Result<()> {
    let vals: &[i64] = match arr.data_type() {
        DataType::Timestamp(arrow_schema::TimeUnit::Second, _) => {
            prim::<TimestampSecondType>(arr, ctx)?
        }
        DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, _) => {
            prim::<TimestampMillisecondType>(arr, ctx)?
        }
        DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, _) => {
            prim::<TimestampMicrosecondType>(arr, ctx)?
        }
        DataType::Timestamp(arrow_schema::TimeUnit::Nanosecond, _) => {
            prim::<TimestampNanosecondType>(arr, ctx)?
        }
        dt => return Err(ctx.internal(dt)),
    };
    let mul = 10i64.pow(u32::from(to_digits.saturating_sub(from_digits)));
    let div = 10i64.pow(u32::from(from_digits.saturating_sub(to_digits)));
    let width = if to == TimeTarget::DateTime { 4 } else { 8 };
    out.reserve(vals.len() * width);
    for (i, v) in vals.iter().enumerate() {
        let scaled = if div > 1 {
            if !truncate && v.rem_euclid(div) != 0 && !is_null(nulls, i) {
                return Err(ctx.err(
                    i,
                    format!(
                        "timestamp {v} (10^-{from_digits} s) has a sub-second part that the target type (10^-{to_digits} s) cannot hold; allow truncation to drop it"
                    ),
                ));
            }
            Some(v.div_euclid(div))
        } else {
            v.checked_mul(mul)
        };
        match to {
            TimeTarget::DateTime => match scaled.and_then(|s| u32::try_from(s).ok()) {
                Some(s) => out.extend_from_slice(&s.to_le_bytes()),
                None if is_null(nulls, i) => out.extend_from_slice(&0u32.to_le_bytes()),
                None => {
                    return Err(ctx.err(
                        i,
                        format!("timestamp {v} (10^-{from_digits} s) is outside the DateTime range 1970-01-01 00:00:00 to 2106-02-07 06:28:15 UTC"),
                    ))
                }
            },
            TimeTarget::DateTime64 => match scaled {
                Some(s) => out.extend_from_slice(&s.to_le_bytes()),
                None if is_null(nulls, i) => out.extend_from_slice(&0i64.to_le_bytes()),
                None => {
                    return Err(ctx.err(i, format!("timestamp {v} overflows DateTime64({to_digits})")))
                }
            },
        }
    }
    Ok(())
}

fn write_decimal(
    arr: &dyn Array,
    precision: u8,
    width: usize,
    scale_up: u8,
    nulls: Option<&NullBuffer>,
    ctx: Ctx<'_>,
    out: &mut Vec<u8>,
) -> Result<()> {
    let factor = i256::from_i128(10).wrapping_pow(u32::from(scale_up));
    let bound = i256::from_i128(10).wrapping_pow(u32::from(precision));
    out.reserve(arr.len() * width);
    let emit = |i: usize, v: i256, out: &mut Vec<u8>| -> Result<()> {
        let scaled = v.checked_mul(factor).filter(|s| {
            let neg_bound = bound.wrapping_neg();
            *s < bound && *s > neg_bound
        });
        let s = match scaled {
            Some(s) => s,
            None if is_null(nulls, i) => i256::ZERO,
            None => {
                return Err(ctx.err(
                    i,
                    format!("decimal value {v} (unscaled) does not fit Decimal({precision}, _) after scaling by 10^{scale_up}"),
                ))
            }
        };
        out.extend_from_slice(&s.to_le_bytes()[..width]);
        Ok(())
    };
    match arr.data_type() {
        DataType::Decimal32(..) => {
            for (i, v) in prim::<Decimal32Type>(arr, ctx)?.iter().enumerate() {
                emit(i, i256::from_i128(i128::from(*v)), out)?;
            }
        }
        DataType::Decimal64(..) => {
            for (i, v) in prim::<Decimal64Type>(arr, ctx)?.iter().enumerate() {
                emit(i, i256::from_i128(i128::from(*v)), out)?;
            }
        }
        DataType::Decimal128(..) => {
            for (i, v) in prim::<Decimal128Type>(arr, ctx)?.iter().enumerate() {
                emit(i, i256::from_i128(*v), out)?;
            }
        }
        DataType::Decimal256(..) => {
            for (i, v) in prim::<Decimal256Type>(arr, ctx)?.iter().enumerate() {
                emit(i, *v, out)?;
            }
        }
        dt => return Err(ctx.internal(dt)),
    }
    Ok(())
}

/// Uniform access to binary-like arrays.
enum Bytes<'a> {
    Offsets32(&'a [i32], &'a [u8]),
    Offsets64(&'a [i64], &'a [u8]),
    Utf8View(&'a arrow_array::StringViewArray),
    BinaryView(&'a arrow_array::BinaryViewArray),
    Fixed(&'a [u8], usize, usize),
}

impl<'a> Bytes<'a> {
    fn of(arr: &'a dyn Array) -> Option<Bytes<'a>> {
        Some(match arr.data_type() {
            DataType::Utf8 => {
                let a = arr.as_string::<i32>();
                Bytes::Offsets32(a.value_offsets(), a.values().as_slice())
            }
            DataType::LargeUtf8 => {
                let a = arr.as_string::<i64>();
                Bytes::Offsets64(a.value_offsets(), a.values().as_slice())
            }
            DataType::Binary => {
                let a = arr.as_binary::<i32>();
                Bytes::Offsets32(a.value_offsets(), a.values().as_slice())
            }
            DataType::LargeBinary => {
                let a = arr.as_binary::<i64>();
                Bytes::Offsets64(a.value_offsets(), a.values().as_slice())
            }
            DataType::Utf8View => Bytes::Utf8View(arr.as_string_view()),
            DataType::BinaryView => Bytes::BinaryView(arr.as_binary_view()),
            DataType::FixedSizeBinary(n) => {
                let a = arr.as_fixed_size_binary();
                Bytes::Fixed(a.value_data(), *n as usize, a.len())
            }
            _ => return None,
        })
    }

    fn len(&self) -> usize {
        match self {
            Bytes::Offsets32(o, _) => o.len().saturating_sub(1),
            Bytes::Offsets64(o, _) => o.len().saturating_sub(1),
            Bytes::Utf8View(a) => a.len(),
            Bytes::BinaryView(a) => a.len(),
            Bytes::Fixed(_, _, len) => *len,
        }
    }

    #[inline]
    fn get(&self, i: usize) -> &'a [u8] {
        match self {
            Bytes::Offsets32(o, v) => &v[o[i] as usize..o[i + 1] as usize],
            Bytes::Offsets64(o, v) => &v[o[i] as usize..o[i + 1] as usize],
            Bytes::Utf8View(a) => a.value(i).as_bytes(),
            Bytes::BinaryView(a) => a.value(i),
            Bytes::Fixed(d, n, _) => &d[i * n..(i + 1) * n],
        }
    }

    /// Approximate payload size, for reserving.
    fn data_len(&self) -> usize {
        match self {
            Bytes::Offsets32(o, _) => o.last().map_or(0, |l| (*l - o[0]) as usize),
            Bytes::Offsets64(o, _) => o.last().map_or(0, |l| (*l - o[0]) as usize),
            Bytes::Utf8View(a) => a.len() * 8,
            Bytes::BinaryView(a) => a.len() * 8,
            Bytes::Fixed(_, n, len) => n * len,
        }
    }

    fn write_all(&self, out: &mut Vec<u8>) {
        out.reserve(self.data_len() + self.len());
        match self {
            Bytes::Offsets32(o, v) => {
                for w in o.windows(2) {
                    put_str(out, &v[w[0] as usize..w[1] as usize]);
                }
            }
            Bytes::Offsets64(o, v) => {
                for w in o.windows(2) {
                    put_str(out, &v[w[0] as usize..w[1] as usize]);
                }
            }
            _ => {
                for i in 0..self.len() {
                    put_str(out, self.get(i));
                }
            }
        }
    }
}

fn write_strings(arr: &dyn Array, ctx: Ctx<'_>, out: &mut Vec<u8>) -> Result<()> {
    if let Some(b) = Bytes::of(arr) {
        b.write_all(out);
        return Ok(());
    }
    let dict = arr
        .as_any_dictionary_opt()
        .ok_or_else(|| ctx.internal(arr.data_type()))?;
    let values = Bytes::of(dict.values().as_ref()).ok_or_else(|| ctx.internal(arr.data_type()))?;
    if values.len() == 0 {
        // Every row is null (checked by the caller when it matters).
        out.resize(out.len() + arr.len(), 0);
        return Ok(());
    }
    out.reserve(arr.len() * 2);
    for k in dict.normalized_keys() {
        put_str(out, values.get(k));
    }
    Ok(())
}

fn write_fixed_strings(
    arr: &dyn Array,
    n: usize,
    nulls: Option<&NullBuffer>,
    ctx: Ctx<'_>,
    out: &mut Vec<u8>,
) -> Result<()> {
    let b = Bytes::of(arr).ok_or_else(|| ctx.internal(arr.data_type()))?;
    out.reserve(b.len() * n);
    for i in 0..b.len() {
        let v = b.get(i);
        if v.len() > n {
            if is_null(nulls, i) {
                out.resize(out.len() + n, 0);
                continue;
            }
            return Err(ctx.err(
                i,
                format!("value of {} bytes does not fit FixedString({n})", v.len()),
            ));
        }
        out.extend_from_slice(v);
        out.resize(out.len() + (n - v.len()), 0);
    }
    Ok(())
}

fn write_array(arr: &dyn Array, inner: &Writer, ctx: Ctx<'_>, out: &mut Vec<u8>) -> Result<()> {
    let inner_ctx = Ctx {
        column: ctx.column,
        nested: true,
        base: 0,
    };
    if let Some(n) = arr.nulls().filter(|n| n.null_count() > 0) {
        let row = (0..n.len()).find(|i| n.is_null(*i)).unwrap_or(0);
        return Err(ctx.err(
            row,
            "a NULL list cannot be written to ClickHouse Array (which cannot be Nullable)",
        ));
    }
    out.reserve(arr.len() * 8);
    let values = match arr.data_type() {
        DataType::List(_) => list_offsets(arr.as_list::<i32>(), out),
        DataType::LargeList(_) => list_offsets(arr.as_list::<i64>(), out),
        DataType::Map(..) => {
            let m = arr.as_map();
            let o = m.value_offsets();
            let base = o[0] as usize;
            for end in &o[1..] {
                put_u64(out, (*end as usize - base) as u64);
            }
            let entries: arrow_array::ArrayRef = Arc::new(m.entries().clone());
            entries.slice(base, o[o.len() - 1] as usize - base)
        }
        DataType::FixedSizeList(_, size) => {
            let l = arr.as_fixed_size_list();
            let size = *size as u64;
            for i in 1..=l.len() as u64 {
                put_u64(out, i * size);
            }
            l.values().slice(0, l.len() * size as usize)
        }
        dt => return Err(ctx.internal(dt)),
    };
    if values.is_empty() && matches!(inner, Writer::LowCard { .. }) {
        // ClickHouse writes nothing at all for an empty LowCardinality column.
        return Ok(());
    }
    inner.write(values.as_ref(), false, inner_ctx, out)
}

/// A small fast hasher for dictionary building (FxHash-style).
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let v = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(K);
        }
        for b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(K);
        }
    }
}

/// Writes the LowCardinality body: flags, dictionary, keys. For nullable
/// columns dictionary entry 0 stands for NULL (written as an empty string).
fn write_low_cardinality(
    arr: &dyn Array,
    nullable: bool,
    nulls: Option<&NullBuffer>,
    ctx: Ctx<'_>,
    out: &mut Vec<u8>,
) -> Result<()> {
    let rows = arr.len();
    if rows == 0 {
        return Ok(());
    }
    // Dictionary entries (as byte slices) and one key per row.
    let mut dict: Vec<&[u8]> = Vec::new();
    let mut keys: Vec<u64> = Vec::with_capacity(rows);
    if nullable {
        dict.push(b"");
    }
    let base = dict.len();
    if let Some(b) = Bytes::of(arr) {
        let mut seen: HashMap<&[u8], u64, BuildHasherDefault<FxHasher>> = HashMap::default();
        for i in 0..rows {
            if is_null(nulls, i) {
                keys.push(0);
                continue;
            }
            let v = b.get(i);
            let next = dict.len() as u64;
            let k = *seen.entry(v).or_insert(next);
            if k == next {
                dict.push(v);
            }
            keys.push(k);
        }
    } else {
        let d = arr
            .as_any_dictionary_opt()
            .ok_or_else(|| ctx.internal(arr.data_type()))?;
        let values = Bytes::of(d.values().as_ref()).ok_or_else(|| ctx.internal(arr.data_type()))?;
        if values.len() == 0 {
            keys.resize(rows, 0);
            if !nullable {
                dict.push(b"");
            }
        } else {
            let raw = d.normalized_keys();
            if values.len() <= rows {
                dict.extend((0..values.len()).map(|i| values.get(i)));
                for (i, k) in raw.iter().enumerate() {
                    keys.push(if is_null(nulls, i) {
                        0
                    } else {
                        (base + k) as u64
                    });
                }
            } else {
                // A large dictionary behind a small batch: keep only the used entries.
                let mut remap = vec![u64::MAX; values.len()];
                for (i, k) in raw.iter().enumerate() {
                    if is_null(nulls, i) {
                        keys.push(0);
                        continue;
                    }
                    if remap[*k] == u64::MAX {
                        remap[*k] = dict.len() as u64;
                        dict.push(values.get(*k));
                    }
                    keys.push(remap[*k]);
                }
            }
        }
    }
    if dict.is_empty() {
        dict.push(b"");
    }
    let key_type: u64 = match dict.len() {
        0..=0x100 => 0,
        0x101..=0x1_0000 => 1,
        0x1_0001..=0xFFFF_FFFF => 2,
        _ => 3,
    };
    put_u64(out, key_type | LC_FLAGS);
    put_u64(out, dict.len() as u64);
    let dict_bytes: usize = dict.iter().map(|d| d.len() + 1).sum();
    out.reserve(dict_bytes + 8 + rows * (1 << key_type));
    for d in &dict {
        put_varint(out, d.len() as u64);
        out.extend_from_slice(d);
    }
    put_u64(out, rows as u64);
    match key_type {
        0 => out.extend(keys.iter().map(|k| *k as u8)),
        1 => keys
            .iter()
            .for_each(|k| out.extend_from_slice(&(*k as u16).to_le_bytes())),
        2 => keys
            .iter()
            .for_each(|k| out.extend_from_slice(&(*k as u32).to_le_bytes())),
        _ => keys
            .iter()
            .for_each(|k| out.extend_from_slice(&k.to_le_bytes())),
    }
    Ok(())
}

/// Writes a list's offsets as ClickHouse's cumulative UInt64 sizes (rebased
/// to the first element, so sliced arrays work) and returns the elements.
fn list_offsets<O: arrow_array::OffsetSizeTrait>(
    l: &arrow_array::GenericListArray<O>,
    out: &mut Vec<u8>,
) -> arrow_array::ArrayRef {
    let o = l.value_offsets();
    let base = o[0].as_usize();
    for end in &o[1..] {
        put_u64(out, (end.as_usize() - base) as u64);
    }
    l.values().slice(base, o[o.len() - 1].as_usize() - base)
}
