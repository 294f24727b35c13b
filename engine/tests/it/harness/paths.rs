//! Where things are (the repository, the shared test data, the project
//! venv) and names and ports that no other test uses.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::services::INSTALL_COMMAND;

/// The repository root (the workspace directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("engine crate has a parent directory")
        .to_path_buf()
}

/// The Parquet test corpus (read-only, with `data/` and `bad_data/`):
/// `VELOSTREAM_TEST_DATA`, else where the install step recorded it
/// (`<repo>/.velostream/testdata.path`, written by `infra/local/testdata.sh`,
/// which is run here once when the record is missing).
pub fn shared_testdata() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("VELOSTREAM_TEST_DATA") {
            return PathBuf::from(dir);
        }
        let record = repo_root().join(".velostream/testdata.path");
        if !record.is_file() {
            let script = repo_root().join("infra/local/testdata.sh");
            let out = std::process::Command::new("bash")
                .arg(&script)
                .output()
                .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
            assert!(
                out.status.success(),
                "no Parquet test corpus ({}):\n{}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = std::fs::read_to_string(&record).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run {}",
                record.display(),
                super::services::INSTALL_COMMAND
            )
        });
        PathBuf::from(text.trim())
    })
    .clone()
}

/// `<repo>/.venv/bin/python`; panics with the install command if missing.
pub fn venv_python() -> PathBuf {
    let py = repo_root().join(".venv/bin/python");
    assert!(
        py.exists(),
        "{} not found: run {INSTALL_COMMAND} (creates the venv from infra/local/requirements.txt)",
        py.display()
    );
    py
}

/// Runs the venv's Python with `args` and returns its stdout; a failure
/// panics with both outputs.
pub fn python_stdout<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> String {
    let mut cmd = std::process::Command::new(venv_python());
    cmd.args(args);
    let out = cmd.output().expect("running the venv's python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}\n{stdout}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A name made of `[a-z0-9_]`, unique per call, test process and run:
/// `<prefix>_<pid>_<counter>_<time>`.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() % 100_000_000)
        .unwrap_or(0);
    let prefix: String = prefix
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_') => c,
            _ => '_',
        })
        .collect();
    format!("{prefix}_{}_{n}_{t}", std::process::id())
}

/// A free TCP port on 127.0.0.1 (for example for `--metrics-addr`).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

/// The `*.parquet` files directly in `dir`, sorted; fails when there are none.
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no Parquet files in {}", dir.display());
    files
}

/// `p` as UTF-8 text, for command-line arguments.
pub fn path_str(p: &Path) -> &str {
    p.to_str()
        .unwrap_or_else(|| panic!("{} is not UTF-8", p.display()))
}
