//! RecordBatch → ClickHouse Native block, column by column.
//!
//! The output is the body of `INSERT INTO t FORMAT Native` over HTTP: no
//! BlockInfo; `varint columns, varint rows`, then per column its name, its
//! type name and its data. ClickHouse 18.16 converts nothing on Native input,
//! so [`NativeEncoder::new`] plans, once, how every Arrow column becomes
//! exactly the target table's column type (widening integers, rescaling
//! timestamps, building LowCardinality dictionaries, adding null maps, ...).
//!
//! Wire layout per type (all little-endian):
//! - Int/UInt/Float/Date/Date32/DateTime/DateTime64/Decimal/Bool: the values,
//!   fixed width;
//! - String: varint length + bytes per value; FixedString(N): N bytes;
//! - Nullable(T): one byte per row (1 = NULL), then T for all rows;
//! - Array(T): UInt64 end offset per row, then T for all elements;
//! - Tuple(T1, T2, ...): T1 for all rows, then T2 for all rows, ...;
//! - Map(K, V): exactly Array(Tuple(K, V));
//! - UUID: two UInt64, the first and second 8 bytes of the RFC 4122 form
//!   each reversed;
//! - LowCardinality(String): a UInt64 version (1) in the state prefix (before
//!   any array offsets), then UInt64 flags (key width | HasAdditionalKeys |
//!   NeedUpdateDictionary), UInt64 dictionary size, the dictionary as
//!   String values, UInt64 row count and one key per row. For
//!   LowCardinality(Nullable(String)) dictionary entry 0 means NULL.

pub(crate) mod plan;
pub mod varint;
mod write;

use std::sync::Arc;

use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Fields, Schema};

use crate::chtype::ChType;
use crate::mapping::{table_columns, MappingOptions, ServerCaps};
use crate::{CodecError, Result};

use plan::Writer;
use varint::{put_str, put_varint};
use write::Ctx;

#[derive(Clone, Debug)]
struct ColumnPlan {
    name: String,
    type_name: String,
    source: usize,
    writer: Writer,
}

/// Encodes record batches of one schema into Native blocks for one table.
#[derive(Clone, Debug)]
pub struct NativeEncoder {
    source_names: Arc<[String]>,
    source_types: Arc<[DataType]>,
    columns: Vec<ColumnPlan>,
}

/// The struct fields of a list-of-struct or map column (none for others).
fn nested_fields(dt: &DataType) -> Fields {
    match dt {
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(children) => children.clone(),
            _ => Fields::empty(),
        },
        other => crate::mapping::struct_of_list(other)
            .cloned()
            .unwrap_or_else(Fields::empty),
    }
}

/// Input columns (or struct fields of flattened list columns) that no table
/// column takes: their values would be lost, so each is a problem.
fn unused_inputs(schema: &Schema, used: &[bool], elements: &[Vec<usize>]) -> Vec<String> {
    let mut problems = Vec::new();
    let extra: Vec<&str> = schema
        .fields()
        .iter()
        .zip(used)
        .filter(|(_, used)| !**used)
        .map(|(f, _)| f.name().as_str())
        .collect();
    if !extra.is_empty() {
        problems.push(format!(
            "input columns that the table does not have: {extra:?}"
        ));
    }
    for (f, filled) in schema.fields().iter().zip(elements) {
        if filled.is_empty() {
            continue;
        }
        for (i, child) in nested_fields(f.data_type()).iter().enumerate() {
            if !filled.contains(&i) {
                problems.push(format!(
                    "input column {:?}: struct field {:?} has no table column {:?}",
                    f.name(),
                    child.name(),
                    format!("{}.{}", f.name(), child.name())
                ));
            }
        }
    }
    problems
}

/// `(input column, struct field index)` for a flattened table column
/// `col.field` (or `col.N`, 1-based), when the input has a list-of-struct
/// or map column `col` with that field. Column names may contain dots
/// themselves, so every split point is tried.
fn nested_element(schema: &Schema, name: &str) -> Option<(usize, usize)> {
    name.match_indices('.').find_map(|(dot, _)| {
        let (col, field) = (&name[..dot], &name[dot + 1..]);
        let source = schema.index_of(col).ok()?;
        let children = nested_fields(schema.field(source).data_type());
        let index = children
            .iter()
            .position(|c| c.name() == field)
            .or_else(|| {
                field
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=children.len()).contains(n))
                    .map(|n| n - 1)
            })?;
        Some((source, index))
    })
}

impl NativeEncoder {
    /// Plans the encoding of batches with `schema` into the target table
    /// columns (matched by name); reports every missing, extra or
    /// incompatible column by name in one error.
    ///
    /// A table column `col.field` that the input does not have is filled
    /// from field `field` (or the 1-based field number) of the structs in
    /// the list (or map) column `col`: old servers store an
    /// `Array(Tuple(...))` column that way. Every field of such a column
    /// must then have its table column.
    pub fn new(schema: &Schema, target: &[(String, ChType)], opts: MappingOptions) -> Result<Self> {
        let mut problems = Vec::new();
        for (i, f) in schema.fields().iter().enumerate() {
            if schema.fields()[..i].iter().any(|g| g.name() == f.name()) {
                problems.push(format!("duplicate input column {:?}", f.name()));
            }
        }
        for (i, (name, _)) in target.iter().enumerate() {
            if target[..i].iter().any(|(n, _)| n == name) {
                problems.push(format!("duplicate target column {name:?}"));
            }
        }
        let mut used = vec![false; schema.fields().len()];
        // Struct fields filled through `col.field` columns, per input column.
        let mut elements: Vec<Vec<usize>> = vec![Vec::new(); schema.fields().len()];
        let mut missing = Vec::new();
        let mut columns = Vec::with_capacity(target.len());
        for (name, ty) in target {
            let planned = if let Ok(source) = schema.index_of(name) {
                used[source] = true;
                let dt = schema.field(source).data_type();
                Some((source, plan::plan(dt, ty, opts)))
            } else if let Some((source, index)) = nested_element(schema, name) {
                used[source] = true;
                elements[source].push(index);
                let dt = schema.field(source).data_type();
                Some((source, plan::plan_element(dt, index, ty, opts)))
            } else {
                missing.push(name.as_str());
                None
            };
            match planned {
                Some((source, Ok(writer))) => columns.push(ColumnPlan {
                    name: name.clone(),
                    type_name: ty.to_string(),
                    source,
                    writer,
                }),
                Some((_, Err(reason))) => problems.push(format!("column {name:?}: {reason}")),
                None => {}
            }
        }
        if !missing.is_empty() {
            problems.push(format!("table columns missing from the input: {missing:?}"));
        }
        problems.extend(unused_inputs(schema, &used, &elements));
        if !problems.is_empty() {
            return Err(CodecError::SchemaMismatch(problems.join("; ")));
        }
        Ok(NativeEncoder {
            source_names: schema.fields().iter().map(|f| f.name().clone()).collect(),
            source_types: schema
                .fields()
                .iter()
                .map(|f| f.data_type().clone())
                .collect(),
            columns,
        })
    }

    /// An encoder for a table created from `schema` by
    /// [`table_columns`] on a server with `caps`.
    pub fn for_schema(schema: &Schema, caps: ServerCaps, opts: MappingOptions) -> Result<Self> {
        Self::new(schema, &table_columns(schema, caps)?, opts)
    }

    /// The target columns, in block order, as `(name, type name)`.
    pub fn columns(&self) -> impl Iterator<Item = (&str, &str)> {
        self.columns
            .iter()
            .map(|c| (c.name.as_str(), c.type_name.as_str()))
    }

    /// Appends one Native block (the body of `INSERT INTO t FORMAT Native`
    /// over HTTP) for `batch` to `out`. On error `out` is left as it was.
    ///
    /// A batch without rows appends nothing: a zero-row block carries no
    /// data, and modern servers' Native file reader rejects streams that
    /// contain one when it prunes columns (seen with ClickHouse 26.9).
    pub fn encode(&self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<()> {
        self.check_batch(batch)?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let start = out.len();
        let result = self.encode_unchecked(batch, out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    /// Appends ONE Native block holding the rows of all `batches` in order:
    /// the same bytes as [`NativeEncoder::encode`] of their concatenation,
    /// without building the concatenated batch first. ClickHouse stores a
    /// block atomically, so one block per insert keeps an insert all or
    /// nothing. On error `out` is left as it was.
    pub fn encode_batches(&self, batches: &[RecordBatch], out: &mut Vec<u8>) -> Result<()> {
        for b in batches {
            self.check_batch(b)?;
        }
        let batches: Vec<&RecordBatch> = batches.iter().filter(|b| b.num_rows() > 0).collect();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        if rows == 0 {
            return Ok(());
        }
        let start = out.len();
        let result = self.encode_parts_unchecked(&batches, rows, out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn check_batch(&self, batch: &RecordBatch) -> Result<()> {
        let schema = batch.schema();
        let fields = schema.fields();
        if fields.len() != self.source_types.len() {
            return Err(CodecError::SchemaMismatch(format!(
                "the batch has {} columns, the encoder was planned for {}",
                fields.len(),
                self.source_types.len()
            )));
        }
        for (f, (planned_name, planned)) in fields
            .iter()
            .zip(self.source_names.iter().zip(self.source_types.iter()))
        {
            if f.name() != planned_name {
                return Err(CodecError::SchemaMismatch(format!(
                    "the batch has column {:?} where the encoder was planned for {planned_name:?}",
                    f.name()
                )));
            }
            if f.data_type() != planned {
                return Err(CodecError::SchemaMismatch(format!(
                    "column {:?} has Arrow type {} in this batch, the encoder was planned for {planned}",
                    f.name(),
                    f.data_type()
                )));
            }
        }
        Ok(())
    }

    fn encode_unchecked(&self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<()> {
        self.encode_parts_unchecked(&[batch], batch.num_rows(), out)
    }

    fn encode_parts_unchecked(
        &self,
        batches: &[&RecordBatch],
        rows: usize,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        put_varint(out, self.columns.len() as u64);
        put_varint(out, rows as u64);
        let mut parts: Vec<&dyn Array> = Vec::with_capacity(batches.len());
        for c in &self.columns {
            put_str(out, c.name.as_bytes());
            put_str(out, c.type_name.as_bytes());
            c.writer.prefix(out);
            let ctx = Ctx {
                column: &c.name,
                nested: false,
                base: 0,
            };
            parts.clear();
            parts.extend(batches.iter().map(|b| b.column(c.source).as_ref()));
            c.writer.write_parts(&parts, ctx, out)?;
        }
        Ok(())
    }
}
