//! Content checksums computed twice, independently: from the Arrow batches
//! that should be in the table (the Parquet source, transformed like the
//! consumer transforms it) and from ClickHouse with SQL. Equal checksums and
//! an equal row count validate a run.
//!
//! Per column: the null count and a sum that both sides compute the same way:
//! integers wrap like ClickHouse's `sum` (Int64/UInt64), floats and decimals
//! compare within a relative tolerance, strings by total byte length, dates
//! by day numbers, timestamps by whole seconds, arrays by element count.

use std::collections::BTreeMap;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use velostream_codecs::chtype::ChType;
use velostream_codecs::ddl::quote_ident;

use crate::clickhouse::{ClickHouse, TableRef};
use crate::{Error, Result};

/// The checksum value of one column.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub enum Sum {
    Int(i64),
    UInt(u64),
    Float(f64),
}

impl Sum {
    fn matches(&self, other: &Sum) -> bool {
        match (self, other) {
            (Sum::Float(a), Sum::Float(b)) => {
                let scale = a.abs().max(b.abs()).max(1.0);
                (a - b).abs() <= scale * 1e-9
            }
            _ => self == other,
        }
    }
}

/// Checksum of one column.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct ColumnSum {
    pub nulls: u64,
    pub sum: Sum,
}

/// Row count and per-column checksums.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Checksum {
    pub rows: u64,
    pub columns: BTreeMap<String, ColumnSum>,
}

impl Checksum {
    /// Adds `other` (the same columns over other rows, e.g. another shard).
    pub fn merge(&mut self, other: &Checksum) {
        self.rows += other.rows;
        for (name, o) in &other.columns {
            match self.columns.get_mut(name) {
                Some(c) => {
                    c.nulls += o.nulls;
                    c.sum = match (c.sum, o.sum) {
                        (Sum::Int(a), Sum::Int(b)) => Sum::Int(a.wrapping_add(b)),
                        (Sum::UInt(a), Sum::UInt(b)) => Sum::UInt(a.wrapping_add(b)),
                        (Sum::Float(a), Sum::Float(b)) => Sum::Float(a + b),
                        (a, _) => a,
                    };
                }
                None => {
                    self.columns.insert(name.clone(), *o);
                }
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Int,
    UInt,
    Float,
    Length,
    Seconds,
    Days,
    Elements,
}

fn kind_of(t: &ChType) -> Option<Kind> {
    use ChType::*;
    Some(match t {
        Nullable(inner) | LowCardinality(inner) => return kind_of(inner),
        Int8 | Int16 | Int32 | Int64 => Kind::Int,
        UInt8 | UInt16 | UInt32 | UInt64 | Bool => Kind::UInt,
        Float32 | Float64 | Decimal { .. } => Kind::Float,
        String | FixedString(_) => Kind::Length,
        DateTime(_) | DateTime64(_, _) => Kind::Seconds,
        Date | Date32 => Kind::Days,
        Array(_) => Kind::Elements,
        Uuid | Tuple(_) | Map(..) => return None,
    })
}

/// Accumulates the expected checksum from Arrow batches, for the table's
/// columns (name → ClickHouse type).
#[derive(Debug)]
pub struct Expected {
    columns: Vec<(String, Kind)>,
    out: Checksum,
}

impl Expected {
    /// A checksum over `columns` (columns of other types are skipped).
    pub fn new(columns: &[(String, ChType)]) -> Self {
        let columns: Vec<(String, Kind)> = columns
            .iter()
            .filter_map(|(n, t)| kind_of(t).map(|k| (n.clone(), k)))
            .collect();
        let mut out = Checksum::default();
        for (n, k) in &columns {
            let sum = match k {
                Kind::Int => Sum::Int(0),
                Kind::Float => Sum::Float(0.0),
                _ => Sum::UInt(0),
            };
            out.columns.insert(n.clone(), ColumnSum { nulls: 0, sum });
        }
        Expected { columns, out }
    }

    /// Adds one batch (columns are found by name).
    pub fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        self.out.rows += batch.num_rows() as u64;
        for (name, kind) in &self.columns {
            let Some(col) = batch.column_by_name(name) else {
                return Err(Error::Validation(format!(
                    "column {name:?} missing from the expected data"
                )));
            };
            let cs = self.out.columns.get_mut(name).expect("initialised in new");
            cs.nulls += col.null_count() as u64;
            accumulate(col.as_ref(), *kind, &mut cs.sum).map_err(|t| {
                Error::Validation(format!("column {name:?}: cannot checksum Arrow type {t}"))
            })?;
        }
        Ok(())
    }

    /// The checksum so far.
    pub fn finish(self) -> Checksum {
        self.out
    }
}

/// Long: a type dispatch, one short arm per Arrow type.
fn accumulate(col: &dyn Array, kind: Kind, sum: &mut Sum) -> std::result::Result<(), DataType> {
    macro_rules! each {
        ($t:ty, $f:expr) => {{
            let a = col.as_primitive::<$t>();
            for v in a.iter().flatten() {
                $f(v);
            }
        }};
    }
    match (kind, sum) {
        (Kind::Int, Sum::Int(s)) => match col.data_type() {
            DataType::Int8 => each!(Int8Type, |v: i8| *s = s.wrapping_add(i64::from(v))),
            DataType::Int16 => each!(Int16Type, |v: i16| *s = s.wrapping_add(i64::from(v))),
            DataType::Int32 => each!(Int32Type, |v: i32| *s = s.wrapping_add(i64::from(v))),
            DataType::Int64 => each!(Int64Type, |v: i64| *s = s.wrapping_add(v)),
            t => return Err(t.clone()),
        },
        (Kind::UInt, Sum::UInt(s)) => match col.data_type() {
            DataType::UInt8 => each!(UInt8Type, |v: u8| *s = s.wrapping_add(u64::from(v))),
            DataType::UInt16 => each!(UInt16Type, |v: u16| *s = s.wrapping_add(u64::from(v))),
            DataType::UInt32 => each!(UInt32Type, |v: u32| *s = s.wrapping_add(u64::from(v))),
            DataType::UInt64 => each!(UInt64Type, |v: u64| *s = s.wrapping_add(v)),
            DataType::Boolean => {
                *s = s.wrapping_add(col.as_boolean().true_count() as u64);
            }
            t => return Err(t.clone()),
        },
        (Kind::Float, Sum::Float(s)) => match col.data_type() {
            DataType::Float32 => each!(Float32Type, |v: f32| *s += f64::from(v)),
            DataType::Float64 => each!(Float64Type, |v: f64| *s += v),
            DataType::Decimal128(_, scale) => {
                let div = 10f64.powi(i32::from(*scale));
                each!(Decimal128Type, |v: i128| *s += v as f64 / div)
            }
            t => return Err(t.clone()),
        },
        (Kind::Length, Sum::UInt(s)) => {
            let add = |s: &mut u64, n: usize| *s = s.wrapping_add(n as u64);
            match col.data_type() {
                DataType::Utf8 => col
                    .as_string::<i32>()
                    .iter()
                    .flatten()
                    .for_each(|v| add(s, v.len())),
                DataType::LargeUtf8 => col
                    .as_string::<i64>()
                    .iter()
                    .flatten()
                    .for_each(|v| add(s, v.len())),
                DataType::Utf8View => col
                    .as_string_view()
                    .iter()
                    .flatten()
                    .for_each(|v| add(s, v.len())),
                DataType::Binary => col
                    .as_binary::<i32>()
                    .iter()
                    .flatten()
                    .for_each(|v| add(s, v.len())),
                DataType::FixedSizeBinary(n) => {
                    add(s, (col.len() - col.null_count()) * *n as usize);
                }
                DataType::Dictionary(_, _) => {
                    let d = col.as_any_dictionary();
                    let values = arrow_cast::cast(d.values(), &DataType::Utf8)
                        .map_err(|_| col.data_type().clone())?;
                    let values = values.as_string::<i32>();
                    let keys = d.normalized_keys();
                    for (i, k) in keys.iter().enumerate() {
                        if col.is_valid(i) && values.is_valid(*k) {
                            add(s, values.value(*k).len());
                        }
                    }
                }
                t => return Err(t.clone()),
            }
        }
        (Kind::Seconds, Sum::UInt(s)) => {
            let per_sec: i64 = match col.data_type() {
                DataType::Timestamp(TimeUnit::Second, _) => 1,
                DataType::Timestamp(TimeUnit::Millisecond, _) => 1_000,
                DataType::Timestamp(TimeUnit::Microsecond, _) => 1_000_000,
                DataType::Timestamp(TimeUnit::Nanosecond, _) => 1_000_000_000,
                t => return Err(t.clone()),
            };
            let a = arrow_cast::cast(col, &DataType::Int64).map_err(|_| col.data_type().clone())?;
            for v in a.as_primitive::<Int64Type>().iter().flatten() {
                *s = s.wrapping_add(v.div_euclid(per_sec) as u64);
            }
        }
        (Kind::Days, Sum::UInt(s)) => match col.data_type() {
            DataType::Date32 => each!(Date32Type, |v: i32| *s = s.wrapping_add(v as i64 as u64)),
            t => return Err(t.clone()),
        },
        (Kind::Elements, Sum::UInt(s)) => match col.data_type() {
            DataType::List(_) => {
                let l = col.as_list::<i32>();
                for i in 0..l.len() {
                    if l.is_valid(i) {
                        *s = s.wrapping_add(l.value_length(i) as u64);
                    }
                }
            }
            DataType::LargeList(_) => {
                let l = col.as_list::<i64>();
                for i in 0..l.len() {
                    if l.is_valid(i) {
                        *s = s.wrapping_add(l.value_length(i) as u64);
                    }
                }
            }
            t => return Err(t.clone()),
        },
        _ => return Err(col.data_type().clone()),
    }
    Ok(())
}

/// The same checksum computed by ClickHouse over `table`.
pub async fn from_clickhouse(
    ch: &ClickHouse,
    table: &TableRef,
    columns: &[(String, ChType)],
) -> Result<Checksum> {
    let mut exprs = vec!["count()".to_string()];
    let mut kinds = Vec::new();
    for (name, t) in columns {
        let Some(kind) = kind_of(t) else { continue };
        let c = quote_ident(name)?;
        let sum = match kind {
            Kind::Int => format!("toInt64(sum({c}))"),
            Kind::UInt => format!("toUInt64(sum({c}))"),
            Kind::Float => format!("toFloat64(sum(toFloat64({c})))"),
            Kind::Length => format!("toUInt64(sum(length({c})))"),
            Kind::Seconds => format!("toUInt64(sum(toUInt64(toUnixTimestamp({c}))))"),
            Kind::Days => {
                if matches!(strip(t), ChType::Date) {
                    format!("toUInt64(sum(toUInt64(toUInt16({c}))))")
                } else {
                    format!("toUInt64(sum(toInt64(toInt32({c}))))")
                }
            }
            Kind::Elements => format!("toUInt64(sum(length({c})))"),
        };
        exprs.push(format!("toUInt64(countIf(isNull({c})))"));
        exprs.push(sum);
        kinds.push((name.clone(), kind));
    }
    let sql = format!(
        "SELECT {} FROM {} FORMAT TSV",
        exprs.join(", "),
        table.sql()?
    );
    let text = ch.query_tsv(&sql).await?;
    let fields: Vec<&str> = text.trim_end_matches('\n').split('\t').collect();
    let bad = |what: &str| {
        Error::Validation(format!(
            "checksum query on {table}: cannot parse {what} in {text:?}"
        ))
    };
    if fields.len() != 1 + 2 * kinds.len() {
        return Err(bad("the row"));
    }
    let mut out = Checksum {
        rows: fields[0].parse().map_err(|_| bad("count()"))?,
        columns: BTreeMap::new(),
    };
    for (i, (name, kind)) in kinds.into_iter().enumerate() {
        let nulls = fields[1 + 2 * i].parse().map_err(|_| bad(&name))?;
        let v = fields[2 + 2 * i];
        let sum = match kind {
            Kind::Int => Sum::Int(v.parse().map_err(|_| bad(&name))?),
            Kind::Float => Sum::Float(v.parse().map_err(|_| bad(&name))?),
            _ => Sum::UInt(v.parse().map_err(|_| bad(&name))?),
        };
        out.columns.insert(name, ColumnSum { nulls, sum });
    }
    Ok(out)
}

fn strip(t: &ChType) -> &ChType {
    match t {
        ChType::Nullable(inner) | ChType::LowCardinality(inner) => strip(inner),
        other => other,
    }
}

/// Differences between two checksums, one line each (empty when equal).
pub fn differences(expected: &Checksum, actual: &Checksum) -> Vec<String> {
    let mut out = Vec::new();
    if expected.rows != actual.rows {
        out.push(format!(
            "row count: expected {}, ClickHouse has {}",
            expected.rows, actual.rows
        ));
    }
    for (name, e) in &expected.columns {
        match actual.columns.get(name) {
            None => out.push(format!("column {name:?}: missing in ClickHouse")),
            Some(a) => {
                if e.nulls != a.nulls {
                    out.push(format!(
                        "column {name:?}: expected {} nulls, ClickHouse has {}",
                        e.nulls, a.nulls
                    ));
                }
                if !e.sum.matches(&a.sum) {
                    out.push(format!(
                        "column {name:?}: expected checksum {:?}, ClickHouse has {:?}",
                        e.sum, a.sum
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};

    use super::*;

    #[test]
    fn sums_nulls_lengths_and_seconds() {
        let cols = vec![
            ("i".to_string(), ChType::Nullable(Box::new(ChType::Int64))),
            ("f".to_string(), ChType::Float64),
            ("s".to_string(), ChType::String),
            ("t".to_string(), ChType::DateTime(None)),
        ];
        let mut e = Expected::new(&cols);
        let b = RecordBatch::try_from_iter([
            (
                "i",
                Arc::new(Int64Array::from(vec![Some(5), None, Some(-7)])) as ArrayRef,
            ),
            (
                "f",
                Arc::new(Float64Array::from(vec![0.5, 0.25, 1.0])) as ArrayRef,
            ),
            (
                "s",
                Arc::new(StringArray::from(vec!["ab", "", "été"])) as ArrayRef,
            ),
            (
                "t",
                Arc::new(TimestampMicrosecondArray::from(vec![
                    1_500_000, 2_000_000, -1,
                ])) as ArrayRef,
            ),
        ])
        .unwrap();
        e.add(&b).unwrap();
        let c = e.finish();
        assert_eq!(c.rows, 3);
        assert_eq!(
            c.columns["i"],
            ColumnSum {
                nulls: 1,
                sum: Sum::Int(-2)
            }
        );
        assert_eq!(c.columns["f"].sum, Sum::Float(1.75));
        assert_eq!(c.columns["s"].sum, Sum::UInt(7));
        // 1 + 2 + (-1 wraps as u64): floor seconds like toUnixTimestamp
        assert_eq!(c.columns["t"].sum, Sum::UInt(2));
        let mut other = c.clone();
        other.columns.get_mut("s").unwrap().sum = Sum::UInt(8);
        assert_eq!(differences(&c, &other).len(), 1);
        assert!(differences(&c, &c).is_empty());
    }
}
