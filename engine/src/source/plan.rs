//! Per-file plans: which file columns feed which target columns, and how
//! each batch read from the file is converted to the target schema.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{new_null_array, Array, ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_cast::{cast_with_options, CastOptions};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ProjectionMask;
use parquet::schema::types::SchemaDescriptor;

use super::cast::{classify, Conversion};
use crate::{Error, Result};

/// How one target column is produced from a file.
#[derive(Debug)]
pub(crate) enum ColumnPlan {
    /// Read from the projected batch at `index`, converting `from` → target.
    Read {
        index: usize,
        /// Root column index in the file (for per-column re-reads).
        root: usize,
        file_name: String,
        from: DataType,
        conversion: Conversion,
    },
    /// The file lacks the column; the (nullable) target column is all nulls.
    Nulls,
}

/// Everything needed to turn one file's batches into target batches.
#[derive(Debug)]
pub(crate) struct FilePlan {
    pub path: Arc<Path>,
    pub mask: ProjectionMask,
    /// Number of columns the projected file batch has.
    pub projected_len: usize,
    pub columns: Vec<ColumnPlan>,
    pub target: SchemaRef,
    pub allow_lossy: bool,
}

/// Finds a top-level field: exact name first, then ASCII case-insensitive.
/// `Err` when several fields match case-insensitively and none exactly.
pub(crate) fn find_field(
    schema: &Schema,
    name: &str,
) -> std::result::Result<Option<usize>, String> {
    if let Some(i) = schema.fields().iter().position(|f| f.name() == name) {
        return Ok(Some(i));
    }
    let matches: Vec<usize> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| f.name().eq_ignore_ascii_case(name))
        .map(|(i, _)| i)
        .collect();
    match matches.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        many => Err(format!(
            "ambiguous: matches columns {:?} case-insensitively",
            many.iter()
                .map(|i| schema.field(*i).name().as_str())
                .collect::<Vec<_>>()
        )),
    }
}

/// The target schema: `opts.target_schema` or the first file's schema without
/// schema-level metadata, projected to `columns` when given.
pub(crate) fn target_schema(
    first_path: &Path,
    first_schema: &Schema,
    given: Option<&SchemaRef>,
    columns: Option<&[String]>,
) -> Result<SchemaRef> {
    let base: Schema = match given {
        Some(s) => s.as_ref().clone(),
        None => Schema::new(first_schema.fields().clone()),
    };
    let Some(columns) = columns else {
        return Ok(Arc::new(base));
    };
    let mut fields: Vec<Field> = Vec::with_capacity(columns.len());
    for name in columns {
        let idx = find_field(&base, name)
            .map_err(|message| schema_error(first_path, name, message))?
            .ok_or_else(|| {
                let what = if given.is_some() {
                    "the target schema"
                } else {
                    "this file (the first input, which defines the schema)"
                };
                schema_error(
                    first_path,
                    name,
                    format!(
                        "unknown column: not in {what}; available: {}",
                        field_names(&base)
                    ),
                )
            })?;
        let field = base.field(idx).clone();
        if fields.iter().any(|f| f.name() == field.name()) {
            return Err(schema_error(
                first_path,
                name,
                "column selected twice".into(),
            ));
        }
        fields.push(field);
    }
    Ok(Arc::new(Schema::new_with_metadata(
        fields,
        base.metadata().clone(),
    )))
}

/// Plans reading `path` (Arrow schema `file_schema`) into `target`.
/// Long: one case per way a target field can meet the file (present, missing and nullable, lossy), side by side, then the projection.
pub(crate) fn plan_file(
    path: &Arc<Path>,
    file_schema: &Schema,
    parquet_schema: &SchemaDescriptor,
    target: &SchemaRef,
    allow_lossy: bool,
) -> Result<FilePlan> {
    // Resolve each target field to a file root column.
    let mut sources: Vec<Option<usize>> = Vec::with_capacity(target.fields().len());
    for field in target.fields() {
        let found = find_field(file_schema, field.name())
            .map_err(|message| schema_error(path, field.name(), message))?;
        if let Some(i) = found {
            if sources.contains(&Some(i)) {
                return Err(schema_error(
                    path,
                    field.name(),
                    format!(
                        "file column {:?} already feeds another target column",
                        file_schema.field(i).name()
                    ),
                ));
            }
        } else if !field.is_nullable() {
            return Err(schema_error(
                path,
                field.name(),
                format!(
                    "missing from this file and the target column is not nullable; file columns: {}",
                    field_names(file_schema)
                ),
            ));
        }
        sources.push(found);
    }
    // The projected batch holds the selected roots in file order.
    let mut roots: Vec<usize> = sources.iter().flatten().copied().collect();
    roots.sort_unstable();
    let mut columns = Vec::with_capacity(sources.len());
    for (field, source) in target.fields().iter().zip(&sources) {
        let Some(root) = *source else {
            columns.push(ColumnPlan::Nulls);
            continue;
        };
        let file_field = file_schema.field(root);
        let from = file_field.data_type().clone();
        let to = field.data_type();
        let conversion = classify(&from, to).ok_or_else(|| {
            schema_error(
                path,
                field.name(),
                format!(
                    "file column {:?} has type {from}, which cannot be converted to the target type {to}",
                    file_field.name()
                ),
            )
        })?;
        if conversion == Conversion::Lossy && !allow_lossy {
            return Err(schema_error(
                path,
                field.name(),
                format!(
                    "file column {:?} has type {from}; converting it to the target type {to} is lossy \
                     (allow lossy conversions to accept it)",
                    file_field.name()
                ),
            ));
        }
        let index = roots.binary_search(&root).unwrap_or_default();
        columns.push(ColumnPlan::Read {
            index,
            root,
            file_name: file_field.name().clone(),
            from,
            conversion,
        });
    }
    Ok(FilePlan {
        path: path.clone(),
        mask: ProjectionMask::roots(parquet_schema, roots.iter().copied()),
        projected_len: roots.len(),
        columns,
        target: target.clone(),
        allow_lossy,
    })
}

impl FilePlan {
    /// File columns read by this plan: (root column index, file column name).
    pub fn read_columns(&self) -> impl Iterator<Item = (usize, &str)> {
        self.columns.iter().filter_map(|c| match c {
            ColumnPlan::Read {
                root, file_name, ..
            } => Some((*root, file_name.as_str())),
            ColumnPlan::Nulls => None,
        })
    }

    /// Converts a batch read with [`FilePlan::mask`] to the target schema.
    /// `first_row` is the batch's first row within `row_group`.
    pub fn apply(
        &self,
        batch: &RecordBatch,
        row_group: usize,
        first_row: u64,
    ) -> Result<RecordBatch> {
        if batch.num_columns() != self.projected_len {
            return Err(Error::Input {
                path: self.path.to_path_buf(),
                message: format!(
                    "row group {row_group}: reader returned {} columns, expected {}",
                    batch.num_columns(),
                    self.projected_len
                ),
            });
        }
        let rows = batch.num_rows();
        let mut out: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for (field, plan) in self.target.fields().iter().zip(&self.columns) {
            let array = match plan {
                ColumnPlan::Nulls => new_null_array(field.data_type(), rows),
                ColumnPlan::Read {
                    index,
                    file_name,
                    from,
                    conversion,
                    ..
                } => {
                    let ctx = ValueCtx {
                        plan: self,
                        field,
                        file_name,
                        row_group,
                        first_row,
                    };
                    ctx.convert(batch.column(*index), from, *conversion)?
                }
            };
            if !field.is_nullable() && array.null_count() > 0 {
                let row = (0..array.len()).find(|i| array.is_null(*i)).unwrap_or(0);
                return Err(schema_error(
                    &self.path,
                    field.name(),
                    format!(
                        "row group {row_group}, row {}: null in a column the target declares not nullable",
                        first_row + row as u64
                    ),
                ));
            }
            out.push(array);
        }
        RecordBatch::try_new_with_options(
            self.target.clone(),
            out,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|e| Error::Input {
            path: self.path.to_path_buf(),
            message: format!("row group {row_group}: cannot assemble the target batch: {e}"),
        })
    }
}

/// Context for converting one column of one batch, for error messages.
struct ValueCtx<'a> {
    plan: &'a FilePlan,
    field: &'a Field,
    file_name: &'a str,
    row_group: usize,
    first_row: u64,
}

impl ValueCtx<'_> {
    fn convert(
        &self,
        array: &ArrayRef,
        from: &DataType,
        conversion: Conversion,
    ) -> Result<ArrayRef> {
        let to = self.field.data_type();
        if conversion == Conversion::Identity {
            return Ok(array.clone());
        }
        let cast = match cast_with_options(array, to, &STRICT) {
            Ok(cast) => cast,
            Err(e) => {
                let row = first_bad_row(array, |one| cast_with_options(one, to, &STRICT).is_err());
                return Err(self.value_error(row, format!("cannot convert {from} to {to}: {e}")));
            }
        };
        if conversion == Conversion::CheckedRoundTrip && !self.plan.allow_lossy {
            let exact = cast_with_options(&cast, from, &STRICT)
                .is_ok_and(|back| back.as_ref() == array.as_ref());
            if !exact {
                let row = first_bad_row(array, |one| !round_trips(one, from, to));
                return Err(self.value_error(
                    row,
                    format!(
                        "value is not exactly representable as {to} \
                         (allow lossy conversions to accept rounding)"
                    ),
                ));
            }
        }
        Ok(cast)
    }

    fn value_error(&self, row: Option<usize>, message: String) -> Error {
        let at = match row {
            Some(r) => format!(
                "row group {}, row {}",
                self.row_group,
                self.first_row + r as u64
            ),
            None => format!("row group {}, rows from {}", self.row_group, self.first_row),
        };
        let column = if self.file_name == self.field.name() {
            String::new()
        } else {
            format!(" (file column {:?})", self.file_name)
        };
        schema_error(
            &self.plan.path,
            self.field.name(),
            format!("{at}{column}: {message}"),
        )
    }
}

const STRICT: CastOptions<'static> = CastOptions {
    safe: false,
    format_options: arrow_cast::display::FormatOptions::new(),
};

fn round_trips(one: &ArrayRef, from: &DataType, to: &DataType) -> bool {
    cast_with_options(one, to, &STRICT)
        .and_then(|c| cast_with_options(&c, from, &STRICT))
        .is_ok_and(|back| back.as_ref() == one.as_ref())
}

/// The first row for which `bad` holds on the one-row slice (error path only).
fn first_bad_row(array: &ArrayRef, bad: impl Fn(&ArrayRef) -> bool) -> Option<usize> {
    (0..array.len()).find(|i| bad(&array.slice(*i, 1)))
}

pub(crate) fn schema_error(path: &Path, column: &str, message: String) -> Error {
    Error::Schema {
        path: path.to_path_buf(),
        column: column.to_string(),
        message,
    }
}

fn field_names(schema: &Schema) -> String {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    names.join(", ")
}
