//! Turning command-line input paths into a sorted list of Parquet files.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Expands `paths` into Parquet files.
///
/// * a file is taken as is, whatever its extension;
/// * a directory is walked recursively for `*.parquet` files (extension
///   matched case-insensitively), skipping entries whose name starts with
///   `.` or `_` (hidden files, Spark's `_SUCCESS` and `_temporary`);
/// * an argument with `*`, `?` or `[` is a glob; each match is a file or a
///   directory as above.
///
/// The result is sorted by path and de-duplicated (two spellings of one file
/// count once). A missing path, a glob or directory without Parquet files,
/// or an unreadable directory is an [`Error::Input`] naming it.
pub fn discover(paths: &[String]) -> Result<Vec<PathBuf>> {
    if paths.is_empty() {
        return Err(Error::Config("no input paths given".into()));
    }
    let mut found = Vec::new();
    for arg in paths {
        let before = found.len();
        if is_glob(arg) {
            let entries = glob::glob(arg).map_err(|e| Error::Input {
                path: PathBuf::from(arg),
                message: format!("invalid glob pattern: {e}"),
            })?;
            for entry in entries {
                let path = entry.map_err(|e| Error::Input {
                    path: e.path().to_path_buf(),
                    message: format!("cannot read while expanding glob {arg:?}: {}", e.error()),
                })?;
                add_path(&path, &mut found)?;
            }
            if found.len() == before {
                return Err(Error::Input {
                    path: PathBuf::from(arg),
                    message: "glob pattern matches no Parquet files".into(),
                });
            }
        } else {
            let path = PathBuf::from(arg);
            std::fs::metadata(&path).map_err(|e| Error::Input {
                path: path.clone(),
                message: format!("cannot access input path: {e}"),
            })?;
            add_path(&path, &mut found)?;
            if found.len() == before {
                return Err(Error::Input {
                    path,
                    message: "directory contains no *.parquet files".into(),
                });
            }
        }
    }
    // Sort by path; de-duplicate by canonical path, keeping the first spelling.
    found.sort();
    let mut seen = HashSet::new();
    found.retain(|path| {
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
        seen.insert(key)
    });
    Ok(found)
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Adds a file, or the Parquet files under a directory.
fn add_path(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::Input {
        path: path.to_path_buf(),
        message: format!("cannot access input path: {e}"),
    })?;
    if meta.is_dir() {
        let mut visited = HashSet::new();
        walk(path, out, &mut visited)
    } else {
        out.push(path.to_path_buf());
        Ok(())
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, visited: &mut HashSet<PathBuf>) -> Result<()> {
    // Guard against symlink loops.
    let canonical = std::fs::canonicalize(dir).map_err(|e| Error::Input {
        path: dir.to_path_buf(),
        message: format!("cannot resolve directory: {e}"),
    })?;
    if !visited.insert(canonical) {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Input {
        path: dir.to_path_buf(),
        message: format!("cannot read directory: {e}"),
    })?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::Input {
            path: dir.to_path_buf(),
            message: format!("cannot read directory entry: {e}"),
        })?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let path = entry.path();
        let meta = std::fs::metadata(&path).map_err(|e| Error::Input {
            path: path.clone(),
            message: format!("cannot access: {e}"),
        })?;
        if meta.is_dir() {
            walk(&path, out, visited)?;
        } else if path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("parquet"))
        {
            out.push(path);
        }
    }
    Ok(())
}
