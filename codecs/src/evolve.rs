//! Schema evolution (`consume --evolve`): what a message of a new schema
//! changes, decided without I/O.
//!
//! Two levels:
//! - [`merge`]: the topic's schema so far and a message's schema give the
//!   schema the pipeline runs with from then on. It only grows: a new column
//!   is appended (nullable: earlier rows have no value for it), a column of
//!   a wider type takes that type, and a column a message lacks stays,
//!   nullable (the message's rows read NULL; a non-Nullable table column
//!   refuses them when the batch is encoded, naming the column). Types that
//!   do not widen to one another are refused with the column named;
//!   [`adapt`] turns a message's batches into the merged schema.
//! - [`table_changes`]: the table's columns and the (transformed) merged
//!   schema give the `ALTER TABLE` statements that make the table hold it:
//!   `ADD COLUMN` with the mapped type made `Nullable`, `MODIFY COLUMN` to a
//!   wider type. Narrower data into a wider column needs no change (the
//!   Native encoder converts it); anything else is refused, naming the
//!   column and both types.
//!
//! Because the merged schema only grows, messages of the old and the new
//! schema interleaved across partitions cause one evolution, not one per
//! switch.

use std::sync::Arc;

use arrow_array::{new_null_array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::chtype::ChType;
use crate::ddl::quote_ident;
use crate::mapping::{self, ServerCaps};
use crate::native::plan::IntKind;
use crate::{CodecError, Result};

/// The schema the pipeline continues with when a message of `incoming`
/// arrives while it runs with `current` (equal to `current` when the
/// message fits it as it is).
pub fn merge(current: &Schema, incoming: &Schema) -> Result<Schema> {
    let mut fields: Vec<Field> = Vec::with_capacity(current.fields().len());
    for f in current.fields() {
        match incoming.field_with_name(f.name()) {
            Ok(g) => {
                let Some(ty) = wider(f.data_type(), g.data_type()) else {
                    return Err(refused(format!(
                        "column {:?} is {} in the topic's schema and {} in this message, and \
                         neither type widens to the other",
                        f.name(),
                        f.data_type(),
                        g.data_type()
                    )));
                };
                let nullable = f.is_nullable() || g.is_nullable();
                fields.push(
                    f.as_ref()
                        .clone()
                        .with_data_type(ty)
                        .with_nullable(nullable),
                );
            }
            // Its rows read NULL: whether the table's column may hold NULL
            // is the table's to say (the encoder refuses NULL in a
            // non-Nullable column and names it; the message is a dead
            // letter then).
            Err(_) => fields.push(f.as_ref().clone().with_nullable(true)),
        }
    }
    for g in incoming.fields() {
        if current.field_with_name(g.name()).is_err() {
            fields.push(g.as_ref().clone().with_nullable(true));
        }
    }
    Ok(Schema::new_with_metadata(
        fields,
        current.metadata().clone(),
    ))
}

/// Field names, types and nullability equal, in order (metadata ignored):
/// batches of `a` need no change to be batches of `b`.
pub fn same_fields(a: &Schema, b: &Schema) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields().iter().zip(b.fields()).all(|(x, y)| {
            x.name() == y.name()
                && x.data_type() == y.data_type()
                && x.is_nullable() == y.is_nullable()
        })
}

/// `batch` in the schema `to` (a [`merge`] of its own): columns it lacks
/// are NULL, columns of a narrower type are widened.
pub fn adapt(batch: &RecordBatch, to: &SchemaRef) -> Result<RecordBatch> {
    if same_fields(&batch.schema(), to) {
        return Ok(batch.clone());
    }
    let rows = batch.num_rows();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(to.fields().len());
    for f in to.fields() {
        let column = match batch.column_by_name(f.name()) {
            None => new_null_array(f.data_type(), rows),
            Some(c) if c.data_type() == f.data_type() => Arc::clone(c),
            Some(c) => arrow_cast::cast(c, f.data_type()).map_err(|e| {
                refused(format!(
                    "column {:?}: cannot widen {} to {}: {e}",
                    f.name(),
                    c.data_type(),
                    f.data_type()
                ))
            })?,
        };
        columns.push(column);
    }
    RecordBatch::try_new(Arc::clone(to), columns)
        .map_err(|e| refused(format!("the message does not fit the merged schema: {e}")))
}

/// The Arrow type both `a` and `b` convert to without loss, if any.
pub fn wider(a: &DataType, b: &DataType) -> Option<DataType> {
    use DataType::*;
    if a == b {
        return Some(a.clone());
    }
    let (ia, ib) = (int_kind(a), int_kind(b));
    if let (Some((sa, wa)), Some((sb, wb))) = (ia, ib) {
        return match (sa, sb) {
            (x, y) if x == y => Some(if wa >= wb { a.clone() } else { b.clone() }),
            // One signed, one unsigned: a signed type wider than the unsigned.
            _ => {
                let unsigned = if sa { wb } else { wa };
                let signed = if sa { wa } else { wb };
                let width = signed.max(unsigned * 2);
                int_of(true, width)
            }
        };
    }
    match (a, b) {
        (Float16 | Float32 | Float64, Float16 | Float32 | Float64) => {
            Some(if float_width(a) >= float_width(b) {
                a.clone()
            } else {
                b.clone()
            })
        }
        (Decimal128(..) | Decimal256(..), Decimal128(..) | Decimal256(..)) => wider_decimal(a, b),
        (Utf8 | LargeUtf8 | Utf8View, Utf8 | LargeUtf8 | Utf8View) => Some(LargeUtf8),
        (Binary | LargeBinary | BinaryView, Binary | LargeBinary | BinaryView) => Some(LargeBinary),
        (Timestamp(ua, za), Timestamp(ub, zb)) if za == zb => {
            Some(if unit_rank(ua) >= unit_rank(ub) {
                a.clone()
            } else {
                b.clone()
            })
        }
        _ => None,
    }
}

/// One `ALTER TABLE` a schema change needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A column the table lacks.
    Add {
        /// The column.
        column: String,
        /// Its type (made `Nullable` where ClickHouse allows).
        ty: ChType,
    },
    /// A column whose type becomes wider.
    Widen {
        /// The column.
        column: String,
        /// Its type in the table.
        from: ChType,
        /// The wider type.
        to: ChType,
    },
}

impl Change {
    /// The column it changes.
    pub fn column(&self) -> &str {
        match self {
            Change::Add { column, .. } | Change::Widen { column, .. } => column,
        }
    }

    /// The metric label of its kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Add { .. } => "add_column",
            Change::Widen { .. } => "widen_column",
        }
    }

    /// `ALTER TABLE <table_sql> ...` (table_sql already quoted).
    pub fn sql(&self, table_sql: &str) -> Result<String> {
        Ok(match self {
            Change::Add { column, ty } => {
                format!(
                    "ALTER TABLE {table_sql} ADD COLUMN {} {ty}",
                    quote_ident(column)?
                )
            }
            Change::Widen { column, to, .. } => {
                format!(
                    "ALTER TABLE {table_sql} MODIFY COLUMN {} {to}",
                    quote_ident(column)?
                )
            }
        })
    }

    /// Whether `columns` (a table's, read back) already hold the change.
    pub fn holds_in(&self, columns: &[(String, ChType)]) -> bool {
        let ty = columns
            .iter()
            .find(|(n, _)| n == self.column())
            .map(|(_, t)| t);
        match (self, ty) {
            (Change::Add { .. }, Some(_)) => true,
            (Change::Widen { to, .. }, Some(t)) => t == to || widens(to, t),
            _ => false,
        }
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Add { column, ty } => write!(f, "add column {column:?} {ty}"),
            Change::Widen { column, from, to } => {
                write!(f, "widen column {column:?} from {from} to {to}")
            }
        }
    }
}

/// The changes that make a table of `table` columns hold batches of
/// `schema`, on a server with `caps`. Refused (naming the column and both
/// types) when a column's new type is neither narrower nor wider than the
/// table's.
pub fn table_changes(
    table: &[(String, ChType)],
    schema: &Schema,
    caps: ServerCaps,
) -> Result<Vec<Change>> {
    let mut changes = Vec::new();
    for field in schema.fields() {
        for (column, wanted) in mapping::field_columns(field, caps)? {
            let Some((_, have)) = table.iter().find(|(n, _)| *n == column) else {
                changes.push(Change::Add {
                    ty: nullable(&wanted),
                    column,
                });
                continue;
            };
            // Nullability is the table's: NULLs into a non-Nullable column
            // are refused row by row when encoding, never by altering it.
            let (have_base, wanted_base) = (base(have), base(&wanted));
            if have_base == wanted_base || widens(wanted_base, have_base) {
                continue;
            }
            if widens(have_base, wanted_base) {
                changes.push(Change::Widen {
                    from: have.clone(),
                    to: keep_nullable(have, wanted_base),
                    column,
                });
            } else if !compatible(field.data_type(), have) {
                return Err(refused(format!(
                    "column {column:?} is {have} in the table, this message needs {wanted}, \
                     and neither type widens to the other"
                )));
            }
        }
    }
    Ok(changes)
}

/// Table columns the batches of `schema` do not fill: each must be
/// nullable (its rows read NULL); a non-nullable one is refused by name.
pub fn omitted_columns(table: &[(String, ChType)], schema: &Schema) -> Result<Vec<String>> {
    let filled = |name: &str| {
        schema.field_with_name(name).is_ok()
            || name
                .split_once('.')
                .is_some_and(|(parent, _)| schema.field_with_name(parent).is_ok())
    };
    let mut omitted = Vec::new();
    for (name, ty) in table {
        if filled(name) {
            continue;
        }
        if !ty.is_nullable() {
            return Err(refused(format!(
                "table column {name:?} ({ty}) is not nullable and this data has no value for it"
            )));
        }
        omitted.push(name.clone());
    }
    Ok(omitted)
}

/// Whether a column of type `to` holds every value of `from` (ClickHouse
/// types; `Nullable` may be added, never removed).
pub fn widens(from: &ChType, to: &ChType) -> bool {
    use ChType::*;
    if from == to {
        return false;
    }
    match (from, to) {
        (Nullable(a), Nullable(b)) => widens(a, b),
        (Nullable(_), _) => false,
        (a, Nullable(b)) => a == b.as_ref() || widens(a, b),
        (Float32, Float64) => true,
        (
            Decimal {
                precision: pa,
                scale: sa,
            },
            Decimal {
                precision: pb,
                scale: sb,
            },
        ) => sb >= sa && pb - sb >= pa - sa,
        // An integer type whose range holds the other's.
        (a, b) => match (IntKind::of_ch(a), IntKind::of_ch(b)) {
            (Some(from), Some(to)) => {
                let ((flo, fhi), (tlo, thi)) = (from.range(), to.range());
                tlo <= flo && fhi <= thi
            }
            _ => false,
        },
    }
}

/// `t` without `Nullable`.
fn base(t: &ChType) -> &ChType {
    match t {
        ChType::Nullable(inner) => inner,
        t => t,
    }
}

/// `to`, nullable when `have` is.
fn keep_nullable(have: &ChType, to: &ChType) -> ChType {
    match (have, to) {
        (ChType::Nullable(_), ChType::Nullable(_)) => to.clone(),
        (ChType::Nullable(_), t) => nullable(t),
        _ => to.clone(),
    }
}

/// `ty` made `Nullable` where ClickHouse allows it (not around arrays,
/// tuples and maps, whose default is empty; inside `LowCardinality`).
fn nullable(ty: &ChType) -> ChType {
    match ty {
        ChType::Nullable(_) | ChType::Array(_) | ChType::Tuple(_) | ChType::Map(..) => ty.clone(),
        ChType::LowCardinality(inner) if !inner.is_nullable() => {
            ChType::LowCardinality(Box::new(ChType::Nullable(inner.clone())))
        }
        ChType::LowCardinality(_) => ty.clone(),
        t => ChType::Nullable(Box::new(t.clone())),
    }
}

/// The Native encoder can write Arrow `dt` into a column of type `ty`.
fn compatible(dt: &DataType, ty: &ChType) -> bool {
    crate::native::plan::plan(dt, ty, mapping::MappingOptions::default()).is_ok()
}

fn refused(why: String) -> CodecError {
    CodecError::SchemaMismatch(why)
}

/// (signed, bits) of an Arrow integer type.
fn int_kind(dt: &DataType) -> Option<(bool, u32)> {
    use DataType::*;
    Some(match dt {
        Int8 => (true, 8),
        Int16 => (true, 16),
        Int32 => (true, 32),
        Int64 => (true, 64),
        UInt8 => (false, 8),
        UInt16 => (false, 16),
        UInt32 => (false, 32),
        UInt64 => (false, 64),
        _ => return None,
    })
}

fn int_of(signed: bool, bits: u32) -> Option<DataType> {
    use DataType::*;
    Some(match (signed, bits) {
        (true, 8) => Int8,
        (true, 16) => Int16,
        (true, 32) => Int32,
        (true, 64) => Int64,
        (false, 8) => UInt8,
        (false, 16) => UInt16,
        (false, 32) => UInt32,
        (false, 64) => UInt64,
        _ => return None,
    })
}

fn float_width(dt: &DataType) -> u32 {
    match dt {
        DataType::Float16 => 16,
        DataType::Float32 => 32,
        _ => 64,
    }
}

fn unit_rank(u: &arrow_schema::TimeUnit) -> u8 {
    use arrow_schema::TimeUnit::*;
    match u {
        Second => 0,
        Millisecond => 1,
        Microsecond => 2,
        Nanosecond => 3,
    }
}

fn wider_decimal(a: &DataType, b: &DataType) -> Option<DataType> {
    let parts = |d: &DataType| match d {
        DataType::Decimal128(p, s) => Some((*p, *s, false)),
        DataType::Decimal256(p, s) => Some((*p, *s, true)),
        _ => None,
    };
    let ((pa, sa, wa), (pb, sb, wb)) = (parts(a)?, parts(b)?);
    if sa < 0 || sb < 0 {
        return None;
    }
    let scale = sa.max(sb);
    let integer = (pa as i16 - sa as i16).max(pb as i16 - sb as i16);
    let precision = u8::try_from(integer + scale as i16).ok()?;
    match precision {
        p if p <= 38 && !wa && !wb => Some(DataType::Decimal128(p, scale)),
        p if p <= 76 => Some(DataType::Decimal256(p, scale)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Float32Array, Int32Array, Int64Array, StringArray};

    fn schema(fields: &[(&str, DataType, bool)]) -> Schema {
        Schema::new(
            fields
                .iter()
                .map(|(n, t, null)| Field::new(*n, t.clone(), *null))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn a_new_column_is_appended_nullable_and_a_wider_type_wins() {
        let s1 = schema(&[
            ("id", DataType::Int64, false),
            ("fare", DataType::Float32, false),
        ]);
        let s2 = schema(&[
            ("id", DataType::Int64, false),
            ("fare", DataType::Float64, false),
            ("tip", DataType::Int32, false),
        ]);
        let merged = merge(&s1, &s2).unwrap();
        assert_eq!(
            merged,
            schema(&[
                ("id", DataType::Int64, false),
                ("fare", DataType::Float64, false),
                ("tip", DataType::Int32, true),
            ])
        );
        assert!(!same_fields(&s1, &merged));
        // The old schema fits the merged one: no second evolution.
        assert!(same_fields(&merged, &merge(&merged, &s1).unwrap()));
    }

    #[test]
    fn a_missing_column_becomes_nullable_and_unrelated_types_are_refused_by_name() {
        let s1 = schema(&[("id", DataType::Int64, false), ("z", DataType::Utf8, true)]);
        let m = merge(&s1, &schema(&[("z", DataType::Utf8, true)])).unwrap();
        let want = schema(&[("id", DataType::Int64, true), ("z", DataType::Utf8, true)]);
        assert_eq!(m, want, "a missing column reads NULL");
        let e = merge(
            &s1,
            &schema(&[("id", DataType::Utf8, false), ("z", DataType::Utf8, true)]),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("column \"id\" is Int64") && e.to_string().contains("Utf8"),
            "{e}"
        );
        // A missing nullable column changes nothing.
        let m = merge(&s1, &schema(&[("id", DataType::Int64, false)])).unwrap();
        assert!(same_fields(&s1, &m));
    }

    #[test]
    fn arrow_widening_rules() {
        use DataType::*;
        assert_eq!(wider(&Int32, &Int64), Some(Int64));
        assert_eq!(wider(&UInt32, &Int32), Some(Int64));
        assert_eq!(wider(&UInt16, &Int64), Some(Int64));
        assert_eq!(wider(&UInt64, &Int8), None);
        assert_eq!(wider(&Float32, &Float64), Some(Float64));
        assert_eq!(
            wider(&Decimal128(10, 2), &Decimal128(12, 4)),
            Some(Decimal128(12, 4))
        );
        assert_eq!(
            wider(&Decimal128(38, 0), &Decimal128(10, 5)),
            Some(Decimal256(43, 5))
        );
        assert_eq!(wider(&Utf8, &LargeUtf8), Some(LargeUtf8));
        assert_eq!(wider(&Int64, &Float64), None);
        assert_eq!(wider(&Utf8, &Int32), None);
    }

    #[test]
    fn batches_of_an_older_schema_are_adapted_with_nulls_and_casts() {
        let s1 = Arc::new(schema(&[
            ("id", DataType::Int32, false),
            ("name", DataType::Utf8, true),
        ]));
        let merged = Arc::new(schema(&[
            ("id", DataType::Int64, false),
            ("name", DataType::Utf8, true),
            ("fare", DataType::Float32, true),
        ]));
        let batch = RecordBatch::try_new(
            s1,
            vec![
                Arc::new(Int32Array::from(vec![1, -2])),
                Arc::new(StringArray::from(vec![Some("a"), None])),
            ],
        )
        .unwrap();
        let out = adapt(&batch, &merged).unwrap();
        assert_eq!(out.schema(), merged);
        let id = out.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(id.values().to_vec(), vec![1, -2]);
        let fare = out
            .column(2)
            .as_any()
            .downcast_ref::<Float32Array>()
            .unwrap();
        assert_eq!(fare.null_count(), 2);
    }

    #[test]
    fn table_changes_add_nullable_columns_and_widen_types() {
        let table = vec![
            ("id".to_string(), ChType::Int32),
            ("fare".to_string(), ChType::Float32),
            (
                "note".to_string(),
                ChType::Nullable(Box::new(ChType::String)),
            ),
        ];
        let s = schema(&[
            ("id", DataType::Int64, false),
            ("fare", DataType::Float32, false),
            ("note", DataType::Utf8, true),
            ("tip", DataType::Float64, false),
        ]);
        let changes = table_changes(&table, &s, ServerCaps::LEGACY).unwrap();
        assert_eq!(
            changes,
            vec![
                Change::Widen {
                    column: "id".into(),
                    from: ChType::Int32,
                    to: ChType::Int64
                },
                Change::Add {
                    column: "tip".into(),
                    ty: ChType::Nullable(Box::new(ChType::Float64))
                },
            ]
        );
        assert_eq!(
            changes[1].sql("`db`.`t`").unwrap(),
            "ALTER TABLE `db`.`t` ADD COLUMN `tip` Nullable(Float64)"
        );
        assert_eq!(
            changes[0].sql("`t`").unwrap(),
            "ALTER TABLE `t` MODIFY COLUMN `id` Int64"
        );
        let after = vec![
            ("id".to_string(), ChType::Int64),
            (
                "tip".to_string(),
                ChType::Nullable(Box::new(ChType::Float64)),
            ),
        ];
        assert!(changes.iter().all(|c| c.holds_in(&after)));
        assert!(!changes[0].holds_in(&table));
        // Narrower data into a wider column: nothing to change.
        let narrow = schema(&[("id", DataType::Int16, false)]);
        assert_eq!(
            table_changes(&table, &narrow, ServerCaps::LEGACY).unwrap(),
            vec![]
        );
    }

    #[test]
    fn an_incompatible_column_type_is_refused_with_both_types() {
        let table = vec![("id".to_string(), ChType::Int64)];
        let s = schema(&[("id", DataType::Utf8, false)]);
        let e = table_changes(&table, &s, ServerCaps::LEGACY)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"id\" is Int64 in the table") && e.contains("needs String"),
            "{e}"
        );
    }

    #[test]
    fn omitted_columns_must_be_nullable() {
        let table = vec![
            ("id".to_string(), ChType::Int64),
            (
                "tip".to_string(),
                ChType::Nullable(Box::new(ChType::Float64)),
            ),
        ];
        let s = schema(&[("id", DataType::Int64, false)]);
        assert_eq!(
            omitted_columns(&table, &s).unwrap(),
            vec!["tip".to_string()]
        );
        let e = omitted_columns(&table, &schema(&[("tip", DataType::Float64, true)]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("table column \"id\" (Int64) is not nullable"),
            "{e}"
        );
    }

    #[test]
    fn clickhouse_widening_rules() {
        use ChType::*;
        let n = |t: ChType| Nullable(Box::new(t));
        assert!(widens(&Int32, &Int64));
        assert!(widens(&UInt32, &Int64));
        assert!(!widens(&UInt64, &Int64));
        assert!(widens(&Int32, &n(Int64)));
        assert!(widens(&Float32, &n(Float32)));
        assert!(!widens(&n(Int32), &Int64));
        assert!(!widens(&Int64, &Int32));
        let d = |precision, scale| Decimal { precision, scale };
        assert!(widens(&d(10, 2), &d(20, 2)));
        assert!(widens(&d(10, 2), &d(12, 4)));
        assert!(!widens(&d(10, 2), &d(10, 4)));
    }
}
