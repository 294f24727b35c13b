//! ClickHouse column types as values: a small recursive-descent parser for the
//! type names `system.columns.type` prints (18.16 and 23+), and a canonical
//! printer (`Display`) whose output the parser reads back unchanged.
//!
//! ```
//! use velostream_codecs::chtype::ChType;
//! let t = ChType::parse("LowCardinality(Nullable(String))").unwrap();
//! assert_eq!(t.to_string(), "LowCardinality(Nullable(String))");
//! assert_eq!(ChType::parse("Decimal64(3)").unwrap().to_string(), "Decimal(18, 3)");
//! ```

use std::fmt;

use crate::{CodecError, Result};

/// A ClickHouse column type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChType {
    /// `Int8`
    Int8,
    /// `Int16`
    Int16,
    /// `Int32`
    Int32,
    /// `Int64`
    Int64,
    /// `UInt8`
    UInt8,
    /// `UInt16`
    UInt16,
    /// `UInt32`
    UInt32,
    /// `UInt64`
    UInt64,
    /// `Float32`
    Float32,
    /// `Float64`
    Float64,
    /// `Bool` (21.12+; one byte, 0 or 1)
    Bool,
    /// `String` (arbitrary bytes)
    String,
    /// `FixedString(N)`: exactly N bytes per value
    FixedString(usize),
    /// `Date`: days since 1970-01-01 as UInt16
    Date,
    /// `Date32`: days since 1970-01-01 as Int32 (21.9+)
    Date32,
    /// `DateTime` or `DateTime('tz')`: seconds since the epoch as UInt32
    DateTime(Option<String>),
    /// `DateTime64(p)` or `DateTime64(p, 'tz')`: 10^-p second ticks as Int64
    DateTime64(u8, Option<String>),
    /// `Decimal(P, S)`, also spelled `Decimal32(S)`, `Decimal64(S)`, ...
    Decimal {
        /// Total number of decimal digits, 1..=76.
        precision: u8,
        /// Digits after the decimal point, 0..=precision.
        scale: u8,
    },
    /// `Nullable(T)`
    Nullable(Box<ChType>),
    /// `Array(T)`
    Array(Box<ChType>),
    /// `LowCardinality(T)`
    LowCardinality(Box<ChType>),
    /// `UUID`: 16 bytes, each 8-byte half stored as a little-endian UInt64
    Uuid,
    /// `Tuple(T1, T2)` or `Tuple(a T1, b T2)`: element names are optional
    /// (all named or all unnamed)
    Tuple(Vec<TupleElement>),
    /// `Map(K, V)` (21.x+): stored as `Array(Tuple(K, V))`
    Map(Box<ChType>, Box<ChType>),
}

/// One element of a `Tuple`: an optional name and a type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TupleElement {
    /// The element name (`None` in unnamed tuples).
    pub name: Option<String>,
    /// The element type.
    pub ty: ChType,
}

impl TupleElement {
    /// An element named `name` (or unnamed when `None`) of type `ty`.
    pub fn new(name: Option<&str>, ty: ChType) -> TupleElement {
        TupleElement {
            name: name.map(str::to_string),
            ty,
        }
    }
}

/// Largest precision of a ClickHouse `Decimal`.
pub const MAX_DECIMAL_PRECISION: u8 = 76;
/// Largest precision of a `DateTime64`.
pub const MAX_DATETIME64_PRECISION: u8 = 9;

impl ChType {
    /// Parses a ClickHouse type name such as `Array(Nullable(Int32))`,
    /// `DateTime64(6, 'Europe/Paris')` or `Decimal64(3)`.
    pub fn parse(s: &str) -> Result<ChType> {
        let mut p = Parser { input: s, pos: 0 };
        let t = p.parse_type().map_err(|reason| CodecError::TypeParse {
            input: s.to_string(),
            reason,
        })?;
        p.skip_ws();
        if p.pos != s.len() {
            return Err(CodecError::TypeParse {
                input: s.to_string(),
                reason: format!("unexpected trailing input at byte {}", p.pos),
            });
        }
        Ok(t)
    }

    /// True for `Nullable(T)`, and for `LowCardinality(Nullable(T))`.
    pub fn is_nullable(&self) -> bool {
        match self {
            ChType::Nullable(_) => true,
            ChType::LowCardinality(inner) => inner.is_nullable(),
            _ => false,
        }
    }

    /// Byte width of one value in the Native format, for fixed-width types.
    pub fn fixed_width(&self) -> Option<usize> {
        Some(match self {
            ChType::Int8 | ChType::UInt8 | ChType::Bool => 1,
            ChType::Int16 | ChType::UInt16 | ChType::Date => 2,
            ChType::Int32 | ChType::UInt32 | ChType::Float32 | ChType::Date32 => 4,
            ChType::DateTime(_) => 4,
            ChType::Int64 | ChType::UInt64 | ChType::Float64 | ChType::DateTime64(..) => 8,
            ChType::FixedString(n) => *n,
            ChType::Uuid => 16,
            ChType::Decimal { precision, .. } => decimal_width(*precision),
            _ => return None,
        })
    }

    /// Checks the nesting rules ClickHouse enforces: no `Nullable` around
    /// `Nullable`, `Array`, `LowCardinality`, `Tuple` or `Map`;
    /// `LowCardinality` only around scalars or `Nullable` scalars; `Map` keys
    /// not `Nullable`; tuple elements all named or all unnamed, names unique;
    /// precisions within range.
    pub fn validate(&self) -> std::result::Result<(), String> {
        match self {
            ChType::Nullable(inner) => match **inner {
                ChType::Nullable(_)
                | ChType::Array(_)
                | ChType::LowCardinality(_)
                | ChType::Tuple(_)
                | ChType::Map(..) => Err(format!("Nullable cannot contain {inner}")),
                _ => inner.validate(),
            },
            ChType::LowCardinality(inner) => match &**inner {
                ChType::Array(_)
                | ChType::LowCardinality(_)
                | ChType::Tuple(_)
                | ChType::Map(..) => Err(format!("LowCardinality cannot contain {inner}")),
                _ => inner.validate(),
            },
            ChType::Array(inner) => inner.validate(),
            ChType::Map(k, v) => {
                if k.is_nullable() {
                    return Err(format!("Map keys cannot be {k}"));
                }
                k.validate()?;
                v.validate()
            }
            ChType::Tuple(elements) => {
                if elements.is_empty() {
                    return Err("Tuple needs at least one element".into());
                }
                let named = elements.iter().filter(|e| e.name.is_some()).count();
                if named != 0 && named != elements.len() {
                    return Err("Tuple elements must be all named or all unnamed".into());
                }
                for (i, e) in elements.iter().enumerate() {
                    if let Some(n) = &e.name {
                        if n.is_empty() {
                            return Err("Tuple element names must not be empty".into());
                        }
                        if elements[..i].iter().any(|o| o.name.as_ref() == Some(n)) {
                            return Err(format!("duplicate Tuple element name {n:?}"));
                        }
                    }
                    e.ty.validate()?;
                }
                Ok(())
            }
            ChType::FixedString(0) => Err("FixedString length must be at least 1".into()),
            ChType::DateTime64(p, _) if *p > MAX_DATETIME64_PRECISION => Err(format!(
                "DateTime64 precision {p} exceeds {MAX_DATETIME64_PRECISION}"
            )),
            ChType::Decimal { precision, scale } => {
                if *precision == 0 || *precision > MAX_DECIMAL_PRECISION {
                    Err(format!(
                        "Decimal precision {precision} is outside 1..={MAX_DECIMAL_PRECISION}"
                    ))
                } else if scale > precision {
                    Err(format!(
                        "Decimal scale {scale} exceeds precision {precision}"
                    ))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }
}

/// Byte width of a `Decimal(P, _)` value: 4, 8, 16 or 32.
pub fn decimal_width(precision: u8) -> usize {
    match precision {
        0..=9 => 4,
        10..=18 => 8,
        19..=38 => 16,
        _ => 32,
    }
}

impl fmt::Display for ChType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChType::Int8 => f.write_str("Int8"),
            ChType::Int16 => f.write_str("Int16"),
            ChType::Int32 => f.write_str("Int32"),
            ChType::Int64 => f.write_str("Int64"),
            ChType::UInt8 => f.write_str("UInt8"),
            ChType::UInt16 => f.write_str("UInt16"),
            ChType::UInt32 => f.write_str("UInt32"),
            ChType::UInt64 => f.write_str("UInt64"),
            ChType::Float32 => f.write_str("Float32"),
            ChType::Float64 => f.write_str("Float64"),
            ChType::Bool => f.write_str("Bool"),
            ChType::String => f.write_str("String"),
            ChType::FixedString(n) => write!(f, "FixedString({n})"),
            ChType::Date => f.write_str("Date"),
            ChType::Date32 => f.write_str("Date32"),
            ChType::DateTime(None) => f.write_str("DateTime"),
            ChType::DateTime(Some(tz)) => write!(f, "DateTime({})", crate::ddl::quote_string(tz)),
            ChType::DateTime64(p, None) => write!(f, "DateTime64({p})"),
            ChType::DateTime64(p, Some(tz)) => {
                write!(f, "DateTime64({p}, {})", crate::ddl::quote_string(tz))
            }
            ChType::Decimal { precision, scale } => write!(f, "Decimal({precision}, {scale})"),
            ChType::Nullable(t) => write!(f, "Nullable({t})"),
            ChType::Array(t) => write!(f, "Array({t})"),
            ChType::LowCardinality(t) => write!(f, "LowCardinality({t})"),
            ChType::Uuid => f.write_str("UUID"),
            ChType::Map(k, v) => write!(f, "Map({k}, {v})"),
            ChType::Tuple(elements) => {
                f.write_str("Tuple(")?;
                for (i, e) in elements.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    if let Some(n) = &e.name {
                        write_element_name(f, n)?;
                        f.write_str(" ")?;
                    }
                    write!(f, "{}", e.ty)?;
                }
                f.write_str(")")
            }
        }
    }
}

/// A tuple element name: bare when it is a plain identifier, else quoted
/// with backticks (as modern servers print it).
fn write_element_name(f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        f.write_str(name)
    } else {
        match crate::ddl::quote_ident(name) {
            Ok(q) => f.write_str(&q),
            Err(_) => f.write_str("``"),
        }
    }
}

struct Parser<'a> {
    input: &'a str,
    pos: usize,
}

type PResult<T> = std::result::Result<T, String>;

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.input[self.pos..]
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.rest().chars().next()
    }

    fn expect(&mut self, c: char) -> PResult<()> {
        match self.peek() {
            Some(got) if got == c => {
                self.pos += c.len_utf8();
                Ok(())
            }
            Some(got) => Err(format!(
                "expected '{c}' at byte {}, found '{got}'",
                self.pos
            )),
            None => Err(format!(
                "expected '{c}' at byte {}, found end of input",
                self.pos
            )),
        }
    }

    fn ident(&mut self) -> PResult<&str> {
        self.skip_ws();
        let rest = self.rest();
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if len == 0 {
            return Err(match rest.chars().next() {
                Some(c) => format!("expected a type name at byte {}, found '{c}'", self.pos),
                None => format!(
                    "expected a type name at byte {}, found end of input",
                    self.pos
                ),
            });
        }
        let start = self.pos;
        self.pos += len;
        Ok(&self.input[start..self.pos])
    }

    fn number(&mut self) -> PResult<u64> {
        self.skip_ws();
        let rest = self.rest();
        let len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if len == 0 {
            return Err(format!("expected a number at byte {}", self.pos));
        }
        let n = rest[..len]
            .parse::<u64>()
            .map_err(|e| format!("bad number at byte {}: {e}", self.pos))?;
        self.pos += len;
        Ok(n)
    }

    fn small(&mut self, what: &str, max: u64) -> PResult<u8> {
        let at = self.pos;
        let n = self.number()?;
        if n > max {
            return Err(format!("{what} {n} at byte {at} exceeds {max}"));
        }
        Ok(n as u8)
    }

    /// A single-quoted string literal with backslash escapes (and `''`).
    fn string_literal(&mut self) -> PResult<String> {
        self.expect('\'')?;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\'' => {
                    if self.rest()[i + 1..].starts_with('\'') {
                        chars.next();
                        out.push('\'');
                        continue;
                    }
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\\' => {
                    let Some((_, e)) = chars.next() else { break };
                    match e {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        '0' => out.push('\0'),
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        'a' => out.push('\u{7}'),
                        'v' => out.push('\u{b}'),
                        'x' => {
                            let hex: String = chars.by_ref().take(2).map(|(_, c)| c).collect();
                            let v = u8::from_str_radix(&hex, 16).map_err(|_| {
                                format!("bad \\x escape in string literal: {hex:?}")
                            })?;
                            if v >= 0x80 {
                                return Err("non-ASCII \\x escape in a type string".into());
                            }
                            out.push(v as char);
                        }
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
        Err(format!(
            "unterminated string literal starting at byte {}",
            self.pos - 1
        ))
    }

    fn inner_type(&mut self) -> PResult<ChType> {
        self.expect('(')?;
        let t = self.parse_type()?;
        self.expect(')')?;
        Ok(t)
    }

    /// A backquoted identifier (backslash escapes, as `quote_ident` writes).
    fn backquoted(&mut self) -> PResult<String> {
        self.expect('`')?;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '`' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, 'r')) => out.push('\r'),
                    Some((_, '0')) => out.push('\0'),
                    Some((_, 'x')) => {
                        let hex: String = chars.by_ref().take(2).map(|(_, c)| c).collect();
                        let v = u8::from_str_radix(&hex, 16)
                            .map_err(|_| format!("bad \\x escape in identifier: {hex:?}"))?;
                        out.push(char::from(v));
                    }
                    Some((_, e)) => out.push(e),
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err(format!(
            "unterminated identifier starting at byte {}",
            self.pos - 1
        ))
    }

    /// A tuple element: `Type`, `name Type` or `` `name` Type ``.
    fn tuple_element(&mut self) -> PResult<TupleElement> {
        if self.peek() == Some('`') {
            let name = self.backquoted()?;
            return Ok(TupleElement {
                name: Some(name),
                ty: self.parse_type()?,
            });
        }
        let start = self.pos;
        let word = self.ident()?.to_string();
        // `Int32,` / `Int32)` / `Nullable(`: the word was the type itself.
        if matches!(self.peek(), Some(',') | Some(')') | Some('(') | None) {
            self.pos = start;
            return Ok(TupleElement {
                name: None,
                ty: self.parse_type()?,
            });
        }
        Ok(TupleElement {
            name: Some(word),
            ty: self.parse_type()?,
        })
    }

    fn parse_type(&mut self) -> PResult<ChType> {
        let start = self.pos;
        let name = self.ident()?;
        let simple = match name {
            "Int8" => Some(ChType::Int8),
            "Int16" => Some(ChType::Int16),
            "Int32" => Some(ChType::Int32),
            "Int64" => Some(ChType::Int64),
            "UInt8" => Some(ChType::UInt8),
            "UInt16" => Some(ChType::UInt16),
            "UInt32" => Some(ChType::UInt32),
            "UInt64" => Some(ChType::UInt64),
            "Float32" => Some(ChType::Float32),
            "Float64" => Some(ChType::Float64),
            "Bool" | "Boolean" => Some(ChType::Bool),
            "String" => Some(ChType::String),
            "Date" => Some(ChType::Date),
            "Date32" => Some(ChType::Date32),
            "UUID" => Some(ChType::Uuid),
            _ => None,
        };
        if let Some(t) = simple {
            return Ok(t);
        }
        let t = match name {
            "FixedString" => {
                self.expect('(')?;
                let at = self.pos;
                let n = self.number()?;
                if n == 0 || n > u32::MAX as u64 {
                    return Err(format!(
                        "FixedString length {n} at byte {at} is out of range"
                    ));
                }
                self.expect(')')?;
                ChType::FixedString(n as usize)
            }
            "DateTime" => {
                if self.peek() == Some('(') {
                    self.expect('(')?;
                    let tz = self.string_literal()?;
                    self.expect(')')?;
                    ChType::DateTime(Some(tz))
                } else {
                    ChType::DateTime(None)
                }
            }
            "DateTime64" => {
                self.expect('(')?;
                let p = self.small("DateTime64 precision", MAX_DATETIME64_PRECISION as u64)?;
                let tz = if self.peek() == Some(',') {
                    self.expect(',')?;
                    Some(self.string_literal()?)
                } else {
                    None
                };
                self.expect(')')?;
                ChType::DateTime64(p, tz)
            }
            "Decimal" => {
                self.expect('(')?;
                let precision = self.small("Decimal precision", MAX_DECIMAL_PRECISION as u64)?;
                let scale = if self.peek() == Some(',') {
                    self.expect(',')?;
                    self.small("Decimal scale", MAX_DECIMAL_PRECISION as u64)?
                } else {
                    0
                };
                self.expect(')')?;
                ChType::Decimal { precision, scale }
            }
            "Decimal32" | "Decimal64" | "Decimal128" | "Decimal256" => {
                let precision = match name {
                    "Decimal32" => 9,
                    "Decimal64" => 18,
                    "Decimal128" => 38,
                    _ => 76,
                };
                self.expect('(')?;
                let scale = self.small("Decimal scale", MAX_DECIMAL_PRECISION as u64)?;
                self.expect(')')?;
                ChType::Decimal { precision, scale }
            }
            "Nullable" => ChType::Nullable(Box::new(self.inner_type()?)),
            "Array" => ChType::Array(Box::new(self.inner_type()?)),
            "LowCardinality" => ChType::LowCardinality(Box::new(self.inner_type()?)),
            "Map" => {
                self.expect('(')?;
                let k = self.parse_type()?;
                self.expect(',')?;
                let v = self.parse_type()?;
                self.expect(')')?;
                ChType::Map(Box::new(k), Box::new(v))
            }
            "Tuple" => {
                self.expect('(')?;
                let mut elements = vec![self.tuple_element()?];
                while self.peek() == Some(',') {
                    self.expect(',')?;
                    elements.push(self.tuple_element()?);
                }
                self.expect(')')?;
                ChType::Tuple(elements)
            }
            other => {
                return Err(format!(
                    "unknown or unsupported type {other:?} at byte {start}"
                ))
            }
        };
        t.validate().map_err(|e| format!("{e} (at byte {start})"))?;
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::ChType::*;
    use super::*;

    fn p(s: &str) -> ChType {
        ChType::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> std::string::String {
        match ChType::parse(s) {
            Ok(t) => panic!("{s:?} parsed as {t:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn scalars() {
        for (s, t) in [
            ("Int8", Int8),
            ("Int16", Int16),
            ("Int32", Int32),
            ("Int64", Int64),
            ("UInt8", UInt8),
            ("UInt16", UInt16),
            ("UInt32", UInt32),
            ("UInt64", UInt64),
            ("Float32", Float32),
            ("Float64", Float64),
            ("Bool", Bool),
            ("String", String),
            ("Date", Date),
            ("Date32", Date32),
            ("DateTime", DateTime(None)),
        ] {
            assert_eq!(p(s), t);
            assert_eq!(t.to_string(), s);
        }
        assert_eq!(p("Boolean"), Bool);
    }

    #[test]
    fn fixed_string() {
        assert_eq!(p("FixedString(16)"), FixedString(16));
        assert_eq!(p("FixedString( 3 )"), FixedString(3));
        assert!(err("FixedString(0)").contains("out of range"));
        assert!(err("FixedString()").contains("expected a number"));
        assert!(err("FixedString(x)").contains("expected a number"));
    }

    #[test]
    fn datetime_with_time_zones() {
        assert_eq!(p("DateTime('UTC')"), DateTime(Some("UTC".into())));
        assert_eq!(
            p("DateTime64(6, 'Europe/Paris')"),
            DateTime64(6, Some("Europe/Paris".into()))
        );
        assert_eq!(p("DateTime64(3)"), DateTime64(3, None));
        assert_eq!(p("DateTime64(9,'UTC')"), DateTime64(9, Some("UTC".into())));
        assert_eq!(p("DateTime('it''s')"), DateTime(Some("it's".into())));
        assert_eq!(p(r"DateTime('a\'b\\c')"), DateTime(Some(r"a'b\c".into())));
        assert_eq!(p(r"DateTime('\x41\n')"), DateTime(Some("A\n".into())));
        assert!(err("DateTime64(10)").contains("exceeds 9"));
        assert!(err("DateTime64()").contains("expected a number"));
        assert!(err("DateTime('UTC'").contains("expected ')'"));
        assert!(err("DateTime('UTC)").contains("unterminated"));
        assert!(err("DateTime(UTC)").contains("expected '''"));
        assert_eq!(
            DateTime64(3, Some("Asia/Kolkata".into())).to_string(),
            "DateTime64(3, 'Asia/Kolkata')"
        );
        assert_eq!(
            DateTime(Some("a'b".into())).to_string(),
            r"DateTime('a\'b')"
        );
    }

    #[test]
    fn decimals() {
        let d = |precision, scale| Decimal { precision, scale };
        assert_eq!(p("Decimal(9, 2)"), d(9, 2));
        assert_eq!(p("Decimal(38,10)"), d(38, 10));
        assert_eq!(p("Decimal(5)"), d(5, 0));
        assert_eq!(p("Decimal32(3)"), d(9, 3));
        assert_eq!(p("Decimal64(3)"), d(18, 3));
        assert_eq!(p("Decimal128(20)"), d(38, 20));
        assert_eq!(p("Decimal256(40)"), d(76, 40));
        assert_eq!(d(18, 3).to_string(), "Decimal(18, 3)");
        assert!(err("Decimal(77, 2)").contains("exceeds 76"));
        assert!(err("Decimal(0, 0)").contains("outside"));
        assert!(err("Decimal(5, 6)").contains("scale 6 exceeds precision 5"));
        assert!(err("Decimal32(10)").contains("scale 10 exceeds precision 9"));
        assert_eq!(decimal_width(9), 4);
        assert_eq!(decimal_width(10), 8);
        assert_eq!(decimal_width(38), 16);
        assert_eq!(decimal_width(39), 32);
    }

    #[test]
    fn nested() {
        assert_eq!(
            p("LowCardinality(Nullable(String))"),
            LowCardinality(Box::new(Nullable(Box::new(String))))
        );
        assert_eq!(
            p("Array(Nullable(Int32))"),
            Array(Box::new(Nullable(Box::new(Int32))))
        );
        assert_eq!(
            p("Nullable(FixedString(16))"),
            Nullable(Box::new(FixedString(16)))
        );
        assert_eq!(
            p(" Array ( Array( LowCardinality(String) ) ) "),
            Array(Box::new(Array(Box::new(LowCardinality(Box::new(String))))))
        );
        let t = p("Array(Nullable(DateTime64(3, 'UTC')))");
        assert_eq!(t.to_string(), "Array(Nullable(DateTime64(3, 'UTC')))");
    }

    #[test]
    fn invalid_nesting_is_refused() {
        assert!(err("Nullable(Nullable(Int8))").contains("Nullable cannot contain"));
        assert!(err("Nullable(Array(Int8))").contains("Nullable cannot contain"));
        assert!(err("Nullable(LowCardinality(String))").contains("Nullable cannot contain"));
        assert!(err("LowCardinality(Array(String))").contains("LowCardinality cannot contain"));
    }

    #[test]
    fn malformed_inputs() {
        assert!(err("").contains("end of input"));
        assert!(err("Int32 x").contains("trailing"));
        assert!(err("Int").contains("unknown or unsupported type \"Int\""));
        assert!(err("int32").contains("unknown"));
        assert!(err("Enum8('a' = 1)").contains("unknown or unsupported type \"Enum8\""));
        assert!(err("Array(").contains("end of input"));
        assert!(err("Array()").contains("expected a type name"));
        assert!(err("Array(Int8").contains("expected ')'"));
        assert!(err("Array(Int8))").contains("trailing"));
        assert!(err("Nullable").contains("expected '('"));
        assert!(err("(Int8)").contains("expected a type name"));
        assert!(err("Decimal(99999999999999999999999, 1)").contains("bad number"));
        assert!(err("DateTime('\\x')").contains("\\x escape"));
    }

    #[test]
    fn tuples_maps_uuids() {
        let named = p("Tuple(a Int32, b Nullable(String))");
        assert_eq!(
            named,
            Tuple(vec![
                TupleElement::new(Some("a"), Int32),
                TupleElement::new(Some("b"), Nullable(Box::new(String))),
            ])
        );
        assert_eq!(named.to_string(), "Tuple(a Int32, b Nullable(String))");
        let unnamed = p("Tuple(Int32, Array(Tuple(Int8, String)))");
        assert_eq!(
            unnamed.to_string(),
            "Tuple(Int32, Array(Tuple(Int8, String)))"
        );
        // Names that are not plain identifiers are backquoted and read back.
        let odd = Tuple(vec![
            TupleElement::new(Some("a b`c"), UInt8),
            TupleElement::new(Some("String"), String),
        ]);
        assert_eq!(odd.to_string(), "Tuple(`a b\\`c` UInt8, String String)");
        assert_eq!(p(&odd.to_string()), odd);
        // Modern servers print long tuples over several lines.
        assert_eq!(
            p("Tuple(\n    a Int32,\n    b String)").to_string(),
            "Tuple(a Int32, b String)"
        );
        let m = p("Map(String, Nullable(Int64))");
        assert_eq!(
            m,
            Map(Box::new(String), Box::new(Nullable(Box::new(Int64))))
        );
        assert_eq!(m.to_string(), "Map(String, Nullable(Int64))");
        assert_eq!(p("UUID"), Uuid);
        assert_eq!(Uuid.fixed_width(), Some(16));
        assert!(err("Tuple()").contains("expected a type name"));
        assert!(err("Tuple(a Int8, Int8)").contains("all named or all unnamed"));
        assert!(err("Tuple(a Int8, a Int8)").contains("duplicate Tuple element name"));
        assert!(err("Nullable(Tuple(Int8))").contains("Nullable cannot contain"));
        assert!(err("Map(Nullable(String), Int8)").contains("Map keys cannot be"));
        assert!(err("Map(String)").contains("expected ','"));
    }

    #[test]
    fn helpers() {
        assert!(p("Nullable(Int8)").is_nullable());
        assert!(p("LowCardinality(Nullable(String))").is_nullable());
        assert!(!p("Array(Nullable(Int8))").is_nullable());
        assert_eq!(p("DateTime('UTC')").fixed_width(), Some(4));
        assert_eq!(p("FixedString(7)").fixed_width(), Some(7));
        assert_eq!(p("Decimal(20, 2)").fixed_width(), Some(16));
        assert_eq!(p("String").fixed_width(), None);
    }
}
