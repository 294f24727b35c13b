//! Helpers for the source and generator tests: writing small Parquet files
//! and reading a whole source back.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use velostream::source::ParquetSource;

/// Writes `columns` (name, array, nullable) as one Parquet file with row
/// groups of `row_group_rows`.
pub fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef, bool)>, row_group_rows: usize) {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, array, nullable)| Field::new(*name, array.data_type().clone(), *nullable))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns.into_iter().map(|c| c.1).collect())
        .expect("valid test batch");
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group_rows))
        .build();
    let file = File::create(path).expect("create test file");
    let mut writer = ArrowWriter::try_new(file, schema, Some(props)).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
}

/// Reads every row group of `source` in order into batches.
pub fn read_all(source: &ParquetSource, batch_rows: usize) -> velostream::Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for rg in source.row_groups() {
        for batch in source.read_row_group(rg, batch_rows)? {
            out.push(batch?);
        }
    }
    Ok(out)
}

/// Concatenates `batches` (which share a schema) into one.
pub fn concat(batches: &[RecordBatch]) -> RecordBatch {
    datafusion::arrow::compute::concat_batches(&batches[0].schema(), batches).expect("concat")
}
