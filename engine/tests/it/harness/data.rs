//! Test data: THE taxi generator (built on `velostream::gen`), THE seeded
//! random number generator, and Parquet write/read helpers.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use velostream::gen::{generate, GenConfig};
use velostream::progress::Progress;
use velostream::source::{ParquetSource, SourceOptions};

/// A synthetic NYC-taxi data set to generate: `rows` rows in `files` files
/// with row groups of at most `row_group_rows`, from `seed` (the same seed
/// gives the same bytes).
#[derive(Debug, Clone, Copy)]
pub struct Taxi {
    /// Rows in total.
    pub rows: u64,
    /// Files (rows are split evenly).
    pub files: usize,
    /// Row-group size.
    pub row_group_rows: usize,
    /// Seed of the generator.
    pub seed: u64,
}

impl Taxi {
    /// `rows` rows in one file, row groups of 20,000, seed 1.
    pub fn rows(rows: u64) -> Taxi {
        Taxi {
            rows,
            files: 1,
            row_group_rows: 20_000,
            seed: 1,
        }
    }

    /// In `files` files.
    pub fn files(self, files: usize) -> Taxi {
        Taxi { files, ..self }
    }

    /// With row groups of at most `rows` rows.
    pub fn row_groups(self, rows: usize) -> Taxi {
        Taxi {
            row_group_rows: rows,
            ..self
        }
    }

    /// From `seed`.
    pub fn seed(self, seed: u64) -> Taxi {
        Taxi { seed, ..self }
    }

    /// Writes the files into `dir` and returns their paths.
    pub fn write(&self, dir: &Path) -> Vec<PathBuf> {
        let cfg = GenConfig {
            rows: self.rows,
            out: dir.to_path_buf(),
            files: self.files,
            row_group_rows: self.row_group_rows,
            seed: self.seed,
        };
        let summary = generate(&cfg, &Progress::hidden())
            .unwrap_or_else(|e| panic!("generating {self:?} in {}: {e}", dir.display()));
        assert_eq!(summary.rows, self.rows, "{self:?}");
        assert_eq!(summary.files.len(), self.files, "{self:?}");
        summary.files
    }

    /// Writes the files into a temporary directory and reads them back.
    pub fn data(&self) -> TaxiData {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = self.write(&dir.path().join("taxi"));
        let source = Arc::new(open(&files));
        let batches = read_all(&source, 65_536).expect("reading taxi data");
        TaxiData {
            _dir: dir,
            source,
            batches,
        }
    }
}

/// Generated taxi data: its files, the opened source and all its rows.
#[derive(Debug)]
pub struct TaxiData {
    _dir: tempfile::TempDir,
    /// The files opened as a source.
    pub source: Arc<ParquetSource>,
    /// Every row, in file and row-group order.
    pub batches: Vec<RecordBatch>,
}

impl TaxiData {
    /// Rows in total.
    pub fn rows(&self) -> u64 {
        self.batches.iter().map(|b| b.num_rows() as u64).sum()
    }

    /// The schema of the files.
    pub fn schema(&self) -> SchemaRef {
        self.source.schema()
    }

    /// All rows in one batch.
    pub fn all(&self) -> RecordBatch {
        concat(&self.batches)
    }
}

/// Seeded pseudo-random numbers (splitmix64): fault timing, random bytes.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator that always gives the same sequence for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// Opens `files` as a source with default options.
pub fn open(files: &[PathBuf]) -> ParquetSource {
    ParquetSource::open(files, &SourceOptions::default())
        .unwrap_or_else(|e| panic!("opening {files:?}: {e}"))
}

/// Every row of `files`, in order.
pub fn read_files(files: &[PathBuf]) -> Vec<RecordBatch> {
    read_all(&open(files), 65_536).unwrap_or_else(|e| panic!("reading {files:?}: {e}"))
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
    arrow_select::concat::concat_batches(&batches[0].schema(), batches).expect("concat")
}

/// Writes `columns` (name, array, nullable) as one Parquet file with row
/// groups of `row_group_rows`.
pub fn write_columns(path: &Path, columns: Vec<(&str, ArrayRef, bool)>, row_group_rows: usize) {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, array, nullable)| Field::new(*name, array.data_type().clone(), *nullable))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema, columns.into_iter().map(|c| c.1).collect())
        .expect("valid test batch");
    write_batch(path, &batch, Some(row_group_rows));
}

/// Writes `batch` as one Parquet file (row groups of `row_group_rows`, or
/// the writer's default).
pub fn write_batch(path: &Path, batch: &RecordBatch, row_group_rows: Option<usize>) {
    let props = row_group_rows.map(|n| {
        WriterProperties::builder()
            .set_max_row_group_row_count(Some(n))
            .build()
    });
    let file = File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut writer = ArrowWriter::try_new(file, batch.schema(), props).expect("Parquet writer");
    writer.write(batch).expect("write");
    writer.close().expect("close");
}
