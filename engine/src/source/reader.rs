//! [`ParquetSource`]: cached footers and per-row-group readers.

use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{new_null_array, RecordBatch, RecordBatchOptions};
use arrow_schema::SchemaRef;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;

use super::plan::{plan_file, target_schema, FilePlan};
use super::{RowGroupRef, SourceOptions};
use crate::{Error, Result};

/// A set of Parquet files read as one stream of target-schema batches.
///
/// Opening reads and caches every footer; [`ParquetSource::read_row_group`]
/// re-opens the file and decodes one row group, so calls for different row
/// groups can run on different threads.
#[derive(Debug)]
pub struct ParquetSource {
    schema: SchemaRef,
    files: Vec<FileEntry>,
    row_groups: Vec<RowGroupRef>,
    total_rows: u64,
}

#[derive(Debug)]
struct FileEntry {
    metadata: ArrowReaderMetadata,
    plan: Arc<FilePlan>,
}

impl ParquetSource {
    /// Reads the footers of `paths`, unifies their schemas into the target
    /// schema (see the module docs) and lists their row groups.
    pub fn open(paths: &[PathBuf], opts: &SourceOptions) -> Result<Self> {
        let Some(first) = paths.first() else {
            return Err(Error::Config("no input files".into()));
        };
        let mut metas = Vec::with_capacity(paths.len());
        for path in paths {
            metas.push(load_metadata(path)?);
        }
        let schema = target_schema(
            first,
            metas[0].schema(),
            opts.target_schema.as_ref(),
            opts.columns.as_deref(),
        )?;
        let mut files = Vec::with_capacity(paths.len());
        let mut row_groups = Vec::new();
        let mut total_rows = 0u64;
        for (file_index, (path, metadata)) in paths.iter().zip(metas).enumerate() {
            let path: Arc<Path> = Arc::from(path.as_path());
            let file_id = super::fingerprint::file_fingerprint(&path)?;
            let plan = plan_file(
                &path,
                metadata.schema(),
                metadata.parquet_schema(),
                &schema,
                opts.allow_lossy,
            )?;
            for (row_group, rg) in metadata.metadata().row_groups().iter().enumerate() {
                let rows = u64::try_from(rg.num_rows()).map_err(|_| Error::Input {
                    path: path.to_path_buf(),
                    message: format!(
                        "row group {row_group}: negative row count {}",
                        rg.num_rows()
                    ),
                })?;
                total_rows += rows;
                row_groups.push(RowGroupRef {
                    file_index,
                    path: path.clone(),
                    row_group,
                    rows,
                    compressed_bytes: u64::try_from(rg.compressed_size()).unwrap_or(0),
                    file_id,
                });
            }
            files.push(FileEntry {
                metadata,
                plan: Arc::new(plan),
            });
        }
        Ok(ParquetSource {
            schema,
            files,
            row_groups,
            total_rows,
        })
    }

    /// The target schema every batch has.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Rows in all row groups, from the footers.
    pub fn total_rows(&self) -> u64 {
        self.total_rows
    }

    /// All row groups: files in the given order, row groups ascending.
    pub fn row_groups(&self) -> &[RowGroupRef] {
        &self.row_groups
    }

    /// Starts reading one row group in batches of at most `batch_rows` rows.
    pub fn read_row_group(&self, rg: &RowGroupRef, batch_rows: usize) -> Result<RowGroupReader> {
        let entry = self.files.get(rg.file_index).ok_or_else(|| Error::Input {
            path: rg.path.to_path_buf(),
            message: format!("file index {} is not part of this source", rg.file_index),
        })?;
        let plan = entry.plan.clone();
        let num_row_groups = entry.metadata.metadata().num_row_groups();
        if rg.row_group >= num_row_groups {
            return Err(Error::Input {
                path: plan.path.to_path_buf(),
                message: format!(
                    "row group {} does not exist (the file has {num_row_groups})",
                    rg.row_group
                ),
            });
        }
        let batch_rows = batch_rows.max(1);
        let inner = if plan.projected_len == 0 {
            // Nothing to decode: every target column is nulls.
            Inner::NullsOnly {
                remaining: rg.rows as usize,
                batch_rows,
            }
        } else {
            let file = File::open(&plan.path).map_err(|e| Error::Input {
                path: plan.path.to_path_buf(),
                message: format!("row group {}: cannot open: {e}", rg.row_group),
            })?;
            let built = catch_unwind(AssertUnwindSafe(|| {
                ParquetRecordBatchReaderBuilder::new_with_metadata(file, entry.metadata.clone())
                    .with_row_groups(vec![rg.row_group])
                    .with_projection(plan.mask.clone())
                    .with_batch_size(batch_rows)
                    .build()
            }));
            let reader = match built {
                Ok(Ok(reader)) => reader,
                Ok(Err(e)) => {
                    return Err(Error::Input {
                        path: plan.path.to_path_buf(),
                        message: format!("row group {}: {e}", rg.row_group),
                    })
                }
                Err(panic) => {
                    return Err(Error::Input {
                        path: plan.path.to_path_buf(),
                        message: format!(
                            "row group {}: the Parquet decoder panicked: {}",
                            rg.row_group,
                            panic_message(&panic)
                        ),
                    })
                }
            };
            Inner::Parquet(Box::new(reader))
        };
        Ok(RowGroupReader {
            plan,
            metadata: entry.metadata.clone(),
            batch_rows,
            row_group: rg.row_group,
            expected_rows: rg.rows,
            rows_read: 0,
            inner,
            done: false,
        })
    }
}

/// Reads a file's footer (and its Arrow schema) with errors naming the file.
fn load_metadata(path: &Path) -> Result<ArrowReaderMetadata> {
    let file = File::open(path).map_err(|e| Error::Input {
        path: path.to_path_buf(),
        message: format!("cannot open: {e}"),
    })?;
    let loaded = catch_unwind(AssertUnwindSafe(|| {
        ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())
    }));
    match loaded {
        Ok(Ok(meta)) => Ok(meta),
        Ok(Err(e)) => Err(Error::Input {
            path: path.to_path_buf(),
            message: format!("cannot read the Parquet footer: {e}"),
        }),
        Err(panic) => Err(Error::Input {
            path: path.to_path_buf(),
            message: format!(
                "cannot read the Parquet footer: the decoder panicked: {}",
                panic_message(&panic)
            ),
        }),
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Batches of one row group, already converted to the target schema.
/// Errors name the file and row group; after an error the reader is done.
#[derive(Debug)]
pub struct RowGroupReader {
    plan: Arc<FilePlan>,
    metadata: ArrowReaderMetadata,
    batch_rows: usize,
    row_group: usize,
    expected_rows: u64,
    rows_read: u64,
    inner: Inner,
    done: bool,
}

#[derive(Debug)]
enum Inner {
    Parquet(Box<ParquetRecordBatchReader>),
    NullsOnly { remaining: usize, batch_rows: usize },
}

impl RowGroupReader {
    fn input_error(&self, message: String) -> Error {
        Error::Input {
            path: self.plan.path.to_path_buf(),
            message: format!("row group {}: {message}", self.row_group),
        }
    }

    /// A decode error, naming the failing column when a per-column re-read
    /// finds it.
    fn decode_error(&self, message: String) -> Error {
        match self.failing_column() {
            Some(column) => self.input_error(format!("column {column:?}: {message}")),
            None => self.input_error(message),
        }
    }

    /// Re-reads the row group one column at a time (error path only) and
    /// returns the first column that fails to decode.
    fn failing_column(&self) -> Option<String> {
        for (root, name) in self.plan.read_columns() {
            let failed = catch_unwind(AssertUnwindSafe(|| -> bool {
                let Ok(file) = File::open(&self.plan.path) else {
                    return false;
                };
                let mask = ProjectionMask::roots(self.metadata.parquet_schema(), [root]);
                let reader =
                    ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.metadata.clone())
                        .with_row_groups(vec![self.row_group])
                        .with_projection(mask)
                        .with_batch_size(self.batch_rows)
                        .build();
                match reader {
                    Ok(mut reader) => reader.any(|batch| batch.is_err()),
                    Err(_) => true,
                }
            }))
            .unwrap_or(true);
            if failed {
                return Some(name.to_string());
            }
        }
        None
    }

    fn next_raw(&mut self) -> Option<Result<RecordBatch>> {
        match &mut self.inner {
            Inner::NullsOnly {
                remaining,
                batch_rows,
            } => {
                if *remaining == 0 {
                    return None;
                }
                let n = (*remaining).min(*batch_rows);
                *remaining -= n;
                let schema = &self.plan.target;
                let columns = schema
                    .fields()
                    .iter()
                    .map(|f| new_null_array(f.data_type(), n))
                    .collect();
                let options = RecordBatchOptions::new().with_row_count(Some(n));
                Some(
                    RecordBatch::try_new_with_options(schema.clone(), columns, &options)
                        .map_err(|e| self.input_error(format!("cannot build null batch: {e}"))),
                )
            }
            Inner::Parquet(reader) => {
                let next = catch_unwind(AssertUnwindSafe(|| reader.next()));
                match next {
                    Ok(None) => None,
                    Ok(Some(Ok(batch))) => {
                        let converted = self.plan.apply(&batch, self.row_group, self.rows_read);
                        Some(converted)
                    }
                    Ok(Some(Err(e))) => Some(Err(self.decode_error(e.to_string()))),
                    Err(panic) => Some(Err(self.decode_error(format!(
                        "the Parquet decoder panicked: {}",
                        panic_message(&panic)
                    )))),
                }
            }
        }
    }
}

impl Iterator for RowGroupReader {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_raw() {
            Some(Ok(batch)) => {
                self.rows_read += batch.num_rows() as u64;
                if self.rows_read > self.expected_rows {
                    self.done = true;
                    return Some(Err(self.input_error(format!(
                        "decoded more rows ({}) than the footer declares ({})",
                        self.rows_read, self.expected_rows
                    ))));
                }
                Some(Ok(batch))
            }
            Some(Err(e)) => {
                self.done = true;
                Some(Err(e))
            }
            None => {
                self.done = true;
                if self.rows_read != self.expected_rows {
                    return Some(Err(self.input_error(format!(
                        "decoded {} rows but the footer declares {}",
                        self.rows_read, self.expected_rows
                    ))));
                }
                None
            }
        }
    }
}
