//! Type-level classification of file type → target type conversions.
//! The rules are documented in the parent module.

use arrow_schema::{DataType, TimeUnit};

/// How a column of one type becomes a column of the target type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conversion {
    /// Same type: no work.
    Identity,
    /// Always exact: cast without checks (still `safe = false`).
    Safe,
    /// May overflow: cast with `safe = false`, which errors on overflow.
    CheckedOverflow,
    /// May silently round: cast, then cast back and compare with the input.
    CheckedRoundTrip,
    /// Loses information by construction: only with `allow_lossy`.
    Lossy,
}

impl Conversion {
    /// A short description for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Conversion::Identity => "identity",
            Conversion::Safe => "safe",
            Conversion::CheckedOverflow => "checked for overflow",
            Conversion::CheckedRoundTrip => "checked for exactness",
            Conversion::Lossy => "lossy",
        }
    }
}

/// Classifies `from` → `to`; `None` when no cast exists.
pub fn classify(from: &DataType, to: &DataType) -> Option<Conversion> {
    use Conversion::*;
    use DataType::*;
    if from == to {
        return Some(Identity);
    }
    if from.equals_datatype(to) {
        // Nested types that differ only in child field names or nullability.
        return arrow_cast::can_cast_types(from, to).then_some(Safe);
    }
    let class = match (from, to) {
        (Null, _) => Safe,
        (Dictionary(_, value), _) => match classify(value, to)? {
            Identity => Safe,
            other => other,
        },
        (_, Dictionary(_, value)) => match classify(from, value)? {
            Identity | Safe | CheckedOverflow => CheckedOverflow,
            other => other,
        },
        _ if from.is_integer() && to.is_integer() => int_to_int(from, to),
        _ if from.is_integer() && to.is_floating() => {
            if int_value_bits(from) <= mantissa_bits(to) {
                Safe
            } else {
                CheckedRoundTrip
            }
        }
        _ if from.is_floating() && to.is_floating() => {
            if mantissa_bits(from) <= mantissa_bits(to) {
                Safe
            } else {
                Lossy
            }
        }
        (Timestamp(fu, ftz), Timestamp(tu, ttz)) => {
            if ftz != ttz {
                Lossy
            } else if unit_rank(fu) < unit_rank(tu) {
                CheckedOverflow
            } else {
                CheckedRoundTrip
            }
        }
        (Date32, Date64) => Safe,
        (Date64, Date32) => CheckedRoundTrip,
        (Utf8 | LargeUtf8 | Utf8View, Utf8 | LargeUtf8 | Utf8View) => large_to_small(from, to),
        (Binary | LargeBinary | BinaryView, Binary | LargeBinary | BinaryView) => {
            large_to_small(from, to)
        }
        (Utf8 | LargeUtf8 | Utf8View, Binary | LargeBinary | BinaryView) => {
            large_to_small(from, to)
        }
        (Binary | LargeBinary | BinaryView, Utf8 | LargeUtf8 | Utf8View) => CheckedOverflow,
        _ if is_decimal(from) && is_decimal(to) => {
            let (fp, fs) = decimal_ps(from);
            let (tp, ts) = decimal_ps(to);
            if ts < fs {
                Lossy
            } else if tp - ts >= fp - fs {
                Safe
            } else {
                CheckedOverflow
            }
        }
        _ if from.is_integer() && is_decimal(to) => CheckedOverflow,
        _ => Lossy,
    };
    arrow_cast::can_cast_types(from, to).then_some(class)
}

/// Integer → integer: widening is safe, anything else may overflow.
fn int_to_int(from: &DataType, to: &DataType) -> Conversion {
    let fw = from.primitive_width().unwrap_or(8);
    let tw = to.primitive_width().unwrap_or(0);
    let widening = match (from.is_signed_integer(), to.is_signed_integer()) {
        (true, true) | (false, false) => tw > fw,
        (false, true) => tw > fw,
        (true, false) => false,
    };
    if widening {
        Conversion::Safe
    } else {
        Conversion::CheckedOverflow
    }
}

/// Bits of magnitude an integer type carries.
fn int_value_bits(t: &DataType) -> u32 {
    let bits = t.primitive_width().unwrap_or(8) as u32 * 8;
    if t.is_signed_integer() {
        bits - 1
    } else {
        bits
    }
}

/// Significand bits (including the implicit bit) of a float type.
fn mantissa_bits(t: &DataType) -> u32 {
    match t {
        DataType::Float16 => 11,
        DataType::Float32 => 24,
        _ => 53,
    }
}

fn unit_rank(u: &TimeUnit) -> u8 {
    match u {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 1,
        TimeUnit::Microsecond => 2,
        TimeUnit::Nanosecond => 3,
    }
}

/// 64-bit offsets → 32-bit offsets can overflow on huge arrays; the rest is safe.
fn large_to_small(from: &DataType, to: &DataType) -> Conversion {
    use DataType::*;
    let from_large = matches!(from, LargeUtf8 | LargeBinary | Utf8View | BinaryView);
    let to_small = matches!(to, Utf8 | Binary);
    if from_large && to_small {
        Conversion::CheckedOverflow
    } else {
        Conversion::Safe
    }
}

fn is_decimal(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..)
    )
}

fn decimal_ps(t: &DataType) -> (i16, i16) {
    match t {
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => (*p as i16, *s as i16),
        _ => (0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Conversion::*;
    use DataType::*;

    #[test]
    fn integers() {
        assert_eq!(classify(&Int32, &Int64), Some(Safe));
        assert_eq!(classify(&UInt32, &Int64), Some(Safe));
        assert_eq!(classify(&UInt32, &Int32), Some(CheckedOverflow));
        assert_eq!(classify(&Int64, &Int32), Some(CheckedOverflow));
        assert_eq!(classify(&Int8, &UInt64), Some(CheckedOverflow));
    }

    #[test]
    fn int_float() {
        assert_eq!(classify(&Int32, &Float64), Some(Safe));
        assert_eq!(classify(&Int64, &Float64), Some(CheckedRoundTrip));
        assert_eq!(classify(&Int32, &Float32), Some(CheckedRoundTrip));
        assert_eq!(classify(&Int16, &Float32), Some(Safe));
        assert_eq!(classify(&Float64, &Int64), Some(Lossy));
        assert_eq!(classify(&Float32, &Float64), Some(Safe));
        assert_eq!(classify(&Float64, &Float32), Some(Lossy));
    }

    #[test]
    fn temporal_and_strings() {
        let ns = Timestamp(TimeUnit::Nanosecond, None);
        let us = Timestamp(TimeUnit::Microsecond, None);
        let us_utc = Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        assert_eq!(classify(&ns, &us), Some(CheckedRoundTrip));
        assert_eq!(classify(&us, &ns), Some(CheckedOverflow));
        assert_eq!(classify(&us, &us_utc), Some(Lossy));
        assert_eq!(classify(&Utf8, &LargeUtf8), Some(Safe));
        assert_eq!(classify(&LargeUtf8, &Utf8), Some(CheckedOverflow));
        let dict = Dictionary(Box::new(Int32), Box::new(Utf8));
        assert_eq!(classify(&dict, &Utf8), Some(Safe));
        assert_eq!(classify(&Utf8, &Int64), Some(Lossy));
        assert_eq!(classify(&Int64, &Struct(Default::default())), None);
    }

    #[test]
    fn decimals() {
        assert_eq!(classify(&Decimal128(9, 2), &Decimal128(12, 2)), Some(Safe));
        assert_eq!(
            classify(&Decimal128(12, 2), &Decimal128(9, 2)),
            Some(CheckedOverflow)
        );
        assert_eq!(classify(&Decimal128(9, 3), &Decimal128(9, 2)), Some(Lossy));
    }
}
