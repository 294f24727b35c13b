//! The shared parquet-testing files: every corrupt file in `bad_data/` must
//! give an error naming the file (no panic, no hang); every file in `data/`
//! must read with the footer's row count or be rejected naming the file.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use velostream::source::{ParquetSource, SourceOptions};

use crate::harness::paths::parquet_files;
use crate::harness::shared_testdata;

/// How long one file may take before the test calls it a hang.
const PER_FILE_LIMIT: Duration = Duration::from_secs(120);

/// Files of `data/` the source rejects, with fragments of the expected error.
/// Anything else in `data/` must read completely. `nation.dict-malformed`
/// has a dictionary page whose header is wrong (pyarrow tolerates it; the
/// Rust decoder does not): the error names the file and the column.
const EXPECTED_REJECTS: &[(&str, &[&str])] = &[(
    "nation.dict-malformed.parquet",
    &["row group 0", "column \"name\"", "Invalid page header"],
)];

/// Files of `bad_data/` that are readable after all: they crashed some other
/// reader, but the Parquet spec gives them a meaning that pyarrow and the Rust
/// decoder agree on. (file, rows)
const READABLE_BAD_DATA: &[(&str, u64)] = &[
    // Dictionary indices with RLE bit width 0: every index is 0.
    ("ARROW-GH-43605.parquet", 21_186),
];

#[derive(Debug)]
enum Outcome {
    /// Opened and read: (rows read, rows the footers declare).
    Read(u64, u64),
    /// Failed with this error message.
    Failed(String),
    /// Panicked (a bug: the source must turn panics into errors).
    Panicked(String),
}

/// Opens and reads `path` on a separate thread, with a time limit.
fn read_file(path: &Path) -> Outcome {
    let (tx, rx) = mpsc::channel();
    let owned = path.to_path_buf();
    std::thread::spawn(move || {
        let result = catch_unwind(AssertUnwindSafe(|| -> velostream::Result<(u64, u64)> {
            let source =
                ParquetSource::open(std::slice::from_ref(&owned), &SourceOptions::default())?;
            let mut rows = 0u64;
            for rg in source.row_groups() {
                for batch in source.read_row_group(rg, 1024)? {
                    rows += batch?.num_rows() as u64;
                }
            }
            Ok((rows, source.total_rows()))
        }));
        let outcome = match result {
            Ok(Ok((rows, total))) => Outcome::Read(rows, total),
            Ok(Err(e)) => Outcome::Failed(e.to_string()),
            Err(panic) => Outcome::Panicked(
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default(),
            ),
        };
        let _ = tx.send(outcome);
    });
    rx.recv_timeout(PER_FILE_LIMIT).unwrap_or_else(|_| {
        panic!(
            "{}: no result within {PER_FILE_LIMIT:?} (hang?)",
            path.display()
        )
    })
}

#[test]
fn every_bad_data_file_fails_with_an_error_naming_it() {
    let mut problems = Vec::new();
    for path in parquet_files(&shared_testdata().join("bad_data")) {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        match read_file(&path) {
            Outcome::Failed(msg) if msg.contains(&name) => eprintln!("{name}: rejected: {msg}"),
            Outcome::Failed(msg) => {
                problems.push(format!("{name}: error does not name the file: {msg}"))
            }
            Outcome::Panicked(msg) => problems.push(format!("{name}: panicked: {msg}")),
            Outcome::Read(rows, total) => {
                let readable = READABLE_BAD_DATA
                    .iter()
                    .any(|(n, r)| *n == name && *r == rows && *r == total);
                if !readable {
                    problems.push(format!(
                        "{name}: corrupt file read without error ({rows} of {total} rows)"
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "bad_data problems:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_data_file_reads_fully_or_is_rejected_naming_it() {
    let mut problems = Vec::new();
    let mut read = 0;
    for path in parquet_files(&shared_testdata().join("data")) {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let expected_reject = EXPECTED_REJECTS.iter().find(|(n, _)| *n == name);
        match (read_file(&path), expected_reject) {
            (Outcome::Read(rows, total), None) if rows == total && total > 0 => read += 1,
            (Outcome::Read(rows, total), None) => {
                problems.push(format!("{name}: read {rows} rows, footer declares {total}"))
            }
            (Outcome::Read(..), Some(_)) => problems.push(format!("{name}: expected a rejection")),
            (Outcome::Failed(msg), Some((_, fragments)))
                if msg.contains(&name) && fragments.iter().all(|f| msg.contains(f)) =>
            {
                eprintln!("{name}: rejected as expected: {msg}")
            }
            (Outcome::Failed(msg), _) => problems.push(format!("{name}: unexpected error: {msg}")),
            (Outcome::Panicked(msg), _) => problems.push(format!("{name}: panicked: {msg}")),
        }
    }
    assert!(
        problems.is_empty(),
        "data problems:\n{}",
        problems.join("\n")
    );
    assert!(read >= 20, "only {read} files read");
}

#[test]
fn well_known_files_have_their_documented_row_counts() {
    let data = shared_testdata().join("data");
    for (name, rows) in [
        ("alltypes_plain.parquet", 8u64),
        ("alltypes_plain.snappy.parquet", 2),
        ("alltypes_dictionary.parquet", 2),
        ("alltypes_tiny_pages.parquet", 7300),
        ("nulls.snappy.parquet", 8),
    ] {
        match read_file(&data.join(name)) {
            Outcome::Read(read, total) => assert_eq!((read, total), (rows, rows), "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn zero_bit_width_dictionary_indices_decode_like_pyarrow() {
    // pyarrow reads 21186 rows of column min_fl (uint16), all 0.
    let path = shared_testdata().join("bad_data/ARROW-GH-43605.parquet");
    let source =
        ParquetSource::open(std::slice::from_ref(&path), &SourceOptions::default()).expect("open");
    let mut rows = 0;
    for rg in source.row_groups() {
        for batch in source.read_row_group(rg, 4096).expect("row group") {
            let batch = batch.expect("batch");
            let col = batch
                .column(0)
                .as_primitive::<arrow_array::types::UInt16Type>();
            assert!(col.iter().all(|v| v == Some(0)), "all values decode to 0");
            rows += batch.num_rows();
        }
    }
    assert_eq!(rows, 21_186);
}
