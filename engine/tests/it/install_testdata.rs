//! The install step's choice of the Parquet test corpus
//! (`infra/local/testdata.sh`, run by `infra/local/install.sh`), on
//! temporary directory layouts: a shared copy beside the repository, no
//! shared copy with a stubbed `git` that clones, one that clones the wrong
//! commit, one that is offline, and `VELOSTREAM_TEST_DATA`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::harness;

const COMMIT: &str = "1a2a75127be06fc0123f03ebd36c966f7beda27d";

/// `<tmp>/checkout/repo` holding a copy of the script, `<tmp>/checkout/shared`
/// beside it (empty), and `<tmp>/bin` for a stubbed `git`.
struct Layout {
    tmp: tempfile::TempDir,
}

impl Layout {
    fn new() -> Layout {
        let tmp = tempfile::tempdir().unwrap();
        let scripts = tmp.path().join("checkout/repo/infra/local");
        std::fs::create_dir_all(&scripts).unwrap();
        std::fs::create_dir_all(tmp.path().join("bin")).unwrap();
        std::fs::copy(
            harness::repo_root().join("infra/local/testdata.sh"),
            scripts.join("testdata.sh"),
        )
        .unwrap();
        Layout { tmp }
    }

    fn repo(&self) -> PathBuf {
        self.tmp.path().join("checkout/repo")
    }

    fn shared_copy(&self) -> PathBuf {
        let dir = self
            .tmp
            .path()
            .join("checkout/shared/testdata/parquet-testing");
        std::fs::create_dir_all(dir.join("data")).unwrap();
        dir
    }

    fn git_log(&self) -> String {
        std::fs::read_to_string(self.tmp.path().join("git.log")).unwrap_or_default()
    }

    /// A `git` on PATH that logs its arguments and behaves as `mode` says:
    /// `clone` (fetch works, HEAD is `head`), or `offline` (fetch fails).
    fn stub_git(&self, mode: &str, head: &str) {
        let script = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{log}'\n\
             [ \"$1\" = -C ] && {{ dir=\"$2\"; shift 2; }}\n\
             case \"$1\" in\n\
               init|remote) exit 0 ;;\n\
               fetch) [ '{mode}' = clone ] || {{ echo 'fatal: unable to access' >&2; exit 128; }}; exit 0 ;;\n\
               checkout) mkdir -p \"$dir/data\"; echo '{head}' > \"$dir/.head\"; exit 0 ;;\n\
               rev-parse) cat \"$dir/.head\" 2>/dev/null || exit 128 ;;\n\
               *) exit 1 ;;\n\
             esac\n",
            log = self.tmp.path().join("git.log").display(),
        );
        let git = self.tmp.path().join("bin/git");
        std::fs::write(&git, script).unwrap();
        std::fs::set_permissions(&git, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Runs the script with only the stub directory and the system on PATH.
    fn run(&self, test_data: Option<&Path>) -> Output {
        let mut cmd = Command::new("bash");
        cmd.arg(self.repo().join("infra/local/testdata.sh"))
            .env_remove("VELOSTREAM_TEST_DATA")
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", self.tmp.path().join("bin").display()),
            );
        if let Some(dir) = test_data {
            cmd.env("VELOSTREAM_TEST_DATA", dir);
        }
        cmd.output().unwrap()
    }

    fn recorded(&self) -> PathBuf {
        let record = self.repo().join(".velostream/testdata.path");
        PathBuf::from(
            std::fs::read_to_string(&record)
                .unwrap_or_else(|e| panic!("{}: {e}", record.display()))
                .trim(),
        )
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_shared_copy_beside_the_repository_is_used_without_cloning() {
    let layout = Layout::new();
    let shared = layout.shared_copy();
    layout.stub_git("clone", COMMIT);
    let out = layout.run(None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(layout.recorded(), shared.canonicalize().unwrap());
    assert_eq!(
        layout.git_log(),
        "",
        "git ran although a shared copy exists"
    );
}

#[test]
fn without_a_shared_copy_the_pinned_commit_is_cloned_once_into_the_cache() {
    let layout = Layout::new();
    layout.stub_git("clone", COMMIT);
    let out = layout.run(None);
    assert!(out.status.success(), "{}", stderr(&out));
    let cache = layout.repo().join(".velostream/testdata/parquet-testing");
    assert_eq!(layout.recorded(), cache);
    assert!(cache.join("data").is_dir());
    let log = layout.git_log();
    assert!(
        log.contains("remote add origin https://github.com/apache/parquet-testing")
            && log.contains(&format!("fetch -q --depth 1 origin {COMMIT}")),
        "{log}"
    );
    // A second run finds the clone at the pinned commit and fetches nothing.
    let again = layout.run(None);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(
        layout.git_log().matches("fetch").count(),
        1,
        "{}",
        layout.git_log()
    );
}

#[test]
fn a_clone_at_another_commit_is_refused() {
    let layout = Layout::new();
    layout.stub_git("clone", "0000000000000000000000000000000000000000");
    let out = layout.run(None);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("is at '0000000000000000000000000000000000000000', not 1a2a7512"),
        "{err}"
    );
    assert!(!layout.repo().join(".velostream/testdata.path").exists());
    assert!(!layout
        .repo()
        .join(".velostream/testdata/parquet-testing")
        .exists());
}

#[test]
fn offline_without_a_shared_copy_fails_at_once_naming_the_three_ways() {
    let layout = Layout::new();
    layout.stub_git("offline", COMMIT);
    let out = layout.run(None);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for needle in [
        "no Parquet test corpus",
        "cloning https://github.com/apache/parquet-testing failed (offline?)",
        "1. set VELOSTREAM_TEST_DATA",
        "2. place a copy at",
        "shared/testdata/parquet-testing",
        "3. allow this machine to reach https://github.com/apache/parquet-testing",
        COMMIT,
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(!layout.repo().join(".velostream/testdata.path").is_file());
}

#[test]
fn velostream_test_data_wins_and_must_hold_data() {
    let layout = Layout::new();
    layout.shared_copy();
    layout.stub_git("offline", COMMIT);
    let mine = layout.tmp.path().join("mine");
    let out = layout.run(Some(&mine));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("has no data/ directory"),
        "{}",
        stderr(&out)
    );
    std::fs::create_dir_all(mine.join("data")).unwrap();
    let out = layout.run(Some(&mine));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(layout.recorded(), mine.canonicalize().unwrap());
}

#[test]
fn install_sh_provides_the_corpus_before_the_long_steps() {
    let install =
        std::fs::read_to_string(harness::repo_root().join("infra/local/install.sh")).unwrap();
    let corpus = install
        .find("infra/local/testdata.sh\"")
        .expect("install.sh runs testdata.sh");
    let tansu = install
        .find("cargo \"${args[@]}\"")
        .expect("install.sh builds tansu");
    assert!(
        corpus < tansu,
        "the corpus step must come before the tansu build"
    );
}
