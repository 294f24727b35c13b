//! Parquet input: file discovery, schema unification and row-group reads.
//!
//! [`discover`] turns command-line paths (files, directories, globs) into a
//! sorted, de-duplicated list of files. [`ParquetSource::open`] reads every
//! footer once, unifies the file schemas into one *target schema* and plans,
//! per file, how each target column is produced. The producer then calls
//! [`ParquetSource::read_row_group`] for each [`RowGroupRef`] (possibly from
//! many threads); every batch it yields already has the target schema.
//!
//! # Target schema
//!
//! The target schema is [`SourceOptions::target_schema`] when given, else the
//! first file's Arrow schema without its schema-level metadata (pandas and
//! Spark metadata can be kilobytes and would otherwise travel with every
//! message). [`SourceOptions::columns`] projects it to the named columns, in
//! the order given; an unknown name is an [`Error::Schema`] naming the column
//! and the file.
//!
//! Field metadata is kept: a Parquet `UUID` column (DuckDB, pyarrow's
//! `pa.uuid()`) is read as `FixedSizeBinary(16)` with the `arrow.uuid`
//! extension (`ARROW:extension:name`), which the consumer maps to ClickHouse
//! `UUID`.
//!
//! # Matching columns
//!
//! Top-level columns are matched by exact name first, then ASCII
//! case-insensitively (`airport_fee` vs `Airport_fee` in the NYC TLC files).
//! Two case-insensitive candidates and no exact match is an error (ambiguous).
//! Columns of a file that the target does not have are not read. A target
//! column missing from a file is read as nulls when the target field is
//! nullable and is an error naming the file and column otherwise.
//!
//! # Casts
//!
//! Each (file type → target type) pair falls in one class, decided from the
//! types alone when the source is opened:
//!
//! * **identity** – same type (or nested types equal up to field names).
//! * **safe** – every value is representable: integer widening (signed→wider
//!   signed, unsigned→wider signed or unsigned), integer→float when the
//!   integer fits the mantissa (≤ 32-bit integers → `Float64`, ≤ 16-bit →
//!   `Float32`), `Float16`/`Float32`→wider float, `Date32`→`Date64`, string
//!   and binary representation changes (`Utf8`/`LargeUtf8`/`Utf8View`),
//!   dictionary unpacking, decimal widening (no fewer integer or fraction
//!   digits), `Null`→anything.
//! * **checked** – the cast is exact for some values only, so every batch is
//!   verified: integer narrowing and signedness changes, `Int64`/`UInt64`→
//!   `Float64` (exact only up to 2^53), finer→coarser timestamp units (e.g.
//!   ns→µs, exact when the sub-unit digits are zero), coarser→finer units
//!   (may overflow), `Date64`→`Date32`, integer→decimal, decimal narrowing of
//!   integer digits, `Binary`→`Utf8` (UTF-8 validity). Casts run with
//!   `safe = false` so an overflow is an error, and casts that silently round
//!   are verified by casting back and comparing. A value that does not survive
//!   is an [`Error::Schema`] naming the file, column, row group and row
//!   (unless `allow_lossy`).
//! * **lossy** – values lose information by construction: float→integer
//!   (fractions truncated toward zero), wider→narrower float, decimal scale
//!   reduction, timestamp time-zone changes, and every other conversion
//!   `arrow_cast` supports (e.g. number↔string). Refused when the source is
//!   opened with an [`Error::Schema`] naming file and column, unless
//!   [`SourceOptions::allow_lossy`]; then the cast runs with `safe = false`, so
//!   values that cannot be represented at all (overflow, NaN→integer) still
//!   fail with the file, column and row group named.
//! * **incompatible** – no cast exists: always an error.
//!
//! A target field that is not nullable rejects a batch with nulls in that
//! column (error naming file, column, row group and row).
//!
//! # Errors
//!
//! Read failures, including corrupt files, are [`Error::Input`] naming the
//! file and row group; nothing in here panics on bad input.
//!
//! [`Error::Schema`]: crate::Error::Schema
//! [`Error::Input`]: crate::Error::Input

mod cast;
mod discover;
pub mod fingerprint;
mod plan;
mod reader;

use std::path::Path;
use std::sync::Arc;

use arrow_schema::SchemaRef;

pub use cast::Conversion;
pub use discover::discover;
pub use reader::{ParquetSource, RowGroupReader};

/// How [`ParquetSource::open`] builds and enforces the target schema.
#[derive(Clone, Debug, Default)]
pub struct SourceOptions {
    /// Read only these columns, in this order (matched like file columns:
    /// exact name first, then case-insensitively). `None` reads all columns
    /// of the target schema.
    pub columns: Option<Vec<String>>,
    /// The schema every batch is cast to; `None` uses the first file's.
    pub target_schema: Option<SchemaRef>,
    /// Accept lossy conversions (see the module documentation).
    pub allow_lossy: bool,
}

/// One row group of one input file: the unit of parallel reading.
#[derive(Clone, Debug)]
pub struct RowGroupRef {
    /// Index of the file in the list given to [`ParquetSource::open`].
    pub file_index: usize,
    /// Path of the file.
    pub path: Arc<Path>,
    /// Row group index within the file.
    pub row_group: usize,
    /// Rows in the row group (from the footer).
    pub rows: u64,
    /// Compressed size of the row group's column chunks in bytes.
    pub compressed_bytes: u64,
    /// [`fingerprint::file_fingerprint`] of the file.
    pub file_id: u64,
}
