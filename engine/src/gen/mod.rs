//! Synthetic NYC yellow-taxi trips written as Parquet (`velostream gen`).
//!
//! The files have the schema and types of the TLC yellow-taxi files from 2023
//! on ([`taxi_schema`]) and realistic, correlated values:
//!
//! * pickup times increase through January 2024 following an hourly demand
//!   curve (quiet nights, rush hours, weekend late nights); data sets larger
//!   than a real month (~3 M trips) continue into the following days at the
//!   real daily volume (about 96 000 trips a day); drop-off follows
//!   pickup by a duration derived from the distance and a traffic-dependent
//!   speed;
//! * pickup and drop-off zones (1..=265) are skewed toward Manhattan, with
//!   JFK/LaGuardia trips being long, mostly to Manhattan, with the flat JFK
//!   fare (rate code 2), the airport fee and tolls;
//! * `fare_amount ≈ 3.0 + 2.5·distance + 0.25·minutes + noise` (ten-cent
//!   steps), tips for card payments only (percent presets or whole dollars),
//!   `total_amount` the sum of the parts, all money rounded to cents;
//! * about 4 % of rows have the driver-entered fields missing, as in the real
//!   files: `passenger_count`, `RatecodeID`, `store_and_fwd_flag`,
//!   `congestion_surcharge` and `airport_fee` are null together and
//!   `payment_type` is 0.
//!
//! Output: `OUT/taxi-00000.parquet`, `taxi-00001.parquet`, … (rows split
//! evenly across files, each in row groups of `row_group_rows`), ZSTD level 1
//! with dictionaries: about 17 bytes per row from a million rows up (real
//! January 2024 file: 16.8), more for small data sets whose month is sparse
//! (about 22 at 200 000 rows). Files are written to a
//! `.tmp` name and renamed when complete; leftover `taxi-NNNNN.parquet` files
//! from an earlier run with more files are removed so the directory holds
//! exactly one data set.
//!
//! The output is a pure function of (seed, rows, files, row_group_rows): row
//! groups are generated and encoded in parallel, each from its own random
//! stream, and appended in order, so files are byte-identical for a seed.

mod clock;
mod rng;
mod taxi;
mod writer;
mod zones;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

pub use taxi::MISSING_SHARE;
pub use writer::generate_with_threads;

use crate::progress::Progress;
use crate::Result;

/// Default rows per row group.
pub const DEFAULT_ROW_GROUP_ROWS: usize = 1_048_576;

/// The NYC TLC yellow-taxi schema (2023+ files). The columns the generator
/// leaves null on some rows are nullable; the real files mark every column
/// optional.
pub fn taxi_schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
    Arc::new(Schema::new(vec![
        Field::new("VendorID", DataType::Int32, false),
        Field::new("tpep_pickup_datetime", ts.clone(), false),
        Field::new("tpep_dropoff_datetime", ts, false),
        Field::new("passenger_count", DataType::Int64, true),
        Field::new("trip_distance", DataType::Float64, false),
        Field::new("RatecodeID", DataType::Int64, true),
        Field::new("store_and_fwd_flag", DataType::Utf8, true),
        Field::new("PULocationID", DataType::Int32, false),
        Field::new("DOLocationID", DataType::Int32, false),
        Field::new("payment_type", DataType::Int64, false),
        Field::new("fare_amount", DataType::Float64, false),
        Field::new("extra", DataType::Float64, false),
        Field::new("mta_tax", DataType::Float64, false),
        Field::new("tip_amount", DataType::Float64, false),
        Field::new("tolls_amount", DataType::Float64, false),
        Field::new("improvement_surcharge", DataType::Float64, false),
        Field::new("total_amount", DataType::Float64, false),
        Field::new("congestion_surcharge", DataType::Float64, true),
        Field::new("airport_fee", DataType::Float64, true),
    ]))
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenConfig {
    /// Total rows over all files.
    pub rows: u64,
    /// Output directory (created if missing).
    pub out: PathBuf,
    /// Number of files; rows are split evenly.
    pub files: usize,
    /// Rows per row group.
    pub row_group_rows: usize,
    /// Random seed; the same seed gives byte-identical files.
    pub seed: u64,
}

/// What was generated.
#[derive(Clone, Debug)]
pub struct GenSummary {
    /// The files written, in order.
    pub files: Vec<PathBuf>,
    /// Rows written.
    pub rows: u64,
    /// Total size of the files in bytes.
    pub bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// Generates the data set described by `cfg`, reporting to `progress`, on
/// as many threads as the machine has cores.
pub fn generate(cfg: &GenConfig, progress: &Progress) -> Result<GenSummary> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    generate_with_threads(cfg, progress, threads)
}

/// One in-memory batch of `rows` synthetic taxi trips from the same model
/// as [`generate`] (for benchmarks and tests that need no files).
pub fn sample_batch(rows: usize, seed: u64) -> Result<arrow_array::RecordBatch> {
    let model = taxi::TaxiModel::new(taxi_schema(), rows as u64);
    model.batch(
        seed,
        &taxi::Chunk {
            index: 0,
            first_row: 0,
            rows,
            total_rows: rows as u64,
        },
    )
}
