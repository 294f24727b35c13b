//! `source::discover`: files, directories, globs, order and errors.

use std::fs;
use std::path::{Path, PathBuf};

use velostream::source::discover;
use velostream::Error;

fn touch(path: &Path) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("mkdir");
    }
    fs::write(path, b"x").expect("write");
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[test]
fn directories_are_walked_recursively_and_sorted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    for name in [
        "b.parquet",
        "a.parquet",
        "sub/c.PARQUET",
        "sub/deeper/d.parquet",
        "notes.txt",
        ".hidden.parquet",
        "_SUCCESS",
        "_temporary/e.parquet",
    ] {
        touch(&root.join(name));
    }
    let found = discover(&[s(root)]).expect("discover");
    let expected: Vec<PathBuf> = [
        "a.parquet",
        "b.parquet",
        "sub/c.PARQUET",
        "sub/deeper/d.parquet",
    ]
    .iter()
    .map(|n| root.join(n))
    .collect();
    assert_eq!(found, expected);
}

#[test]
fn globs_files_and_duplicates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    for name in ["x/1.parquet", "x/2.parquet", "y/3.parquet", "data.bin"] {
        touch(&root.join(name));
    }
    let found = discover(&[
        s(&root.join("y/3.parquet")),
        format!("{}/*/*.parquet", root.display()),
        s(&root.join("x")),
        // An explicit file is taken whatever its extension.
        s(&root.join("data.bin")),
        // A second spelling of the same file counts once.
        s(&root.join("x/../x/1.parquet")),
    ])
    .expect("discover");
    // Sorted by path; of two spellings of x/1.parquet the first in order stays.
    let expected: Vec<PathBuf> = ["data.bin", "x/../x/1.parquet", "x/2.parquet", "y/3.parquet"]
        .iter()
        .map(|n| root.join(n))
        .collect();
    assert_eq!(found, expected);
}

#[test]
fn missing_paths_and_empty_matches_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.parquet");
    let err = discover(&[s(&missing)]).expect_err("missing file");
    assert!(
        matches!(err, Error::Input { ref path, .. } if *path == missing),
        "{err}"
    );
    assert!(err.to_string().contains("nope.parquet"), "{err}");

    let pattern = format!("{}/*.parquet", dir.path().display());
    let err = discover(std::slice::from_ref(&pattern)).expect_err("empty glob");
    assert!(err.to_string().contains(&pattern), "{err}");

    let empty = dir.path().join("empty");
    fs::create_dir(&empty).expect("mkdir");
    let err = discover(&[s(&empty)]).expect_err("empty dir");
    assert!(err.to_string().contains("empty"), "{err}");
    assert!(err.to_string().contains("no *.parquet"), "{err}");

    assert!(discover(&[]).is_err());
}
