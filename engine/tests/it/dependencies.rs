//! Every dependency a crate of the workspace declares is used by its code:
//! a normal dependency in `src/`, a dev-dependency in `src/`, `tests/` or
//! `benches/`, and every workspace dependency by some crate. A dependency
//! nothing uses costs build time and audit surface; this keeps the list
//! honest (like `cargo machete`, without installing it).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::harness::paths::repo_root;

/// Dependencies declared only for their Cargo features (no path in code).
const FEATURE_ONLY: &[(&str, &str)] = &[];

/// Rust sources under `dirs` of `krate`, concatenated.
fn sources(krate: &Path, dirs: &[&str]) -> String {
    let mut text = String::new();
    let mut stack: Vec<PathBuf> = dirs.iter().map(|d| krate.join(d)).collect();
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).expect("read_dir").flatten() {
                stack.push(e.path());
            }
        } else if p.is_file() && p.extension().is_some_and(|e| e == "rs") {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            text.push_str(&String::from_utf8_lossy(&bytes));
            text.push('\n');
        }
    }
    text
}

/// Whether `code` names the crate `dep` (as `dep::`, `use dep`, or a macro path).
fn uses(code: &str, dep: &str) -> bool {
    let name = dep.replace('-', "_");
    code.match_indices(&name).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        let after = &code[i + name.len()..];
        let starts_word = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        starts_word
            && (after.starts_with("::") || after.starts_with(';') || after.starts_with(" as "))
    })
}

fn table_keys(doc: &toml::Table, key: &str) -> Vec<String> {
    doc.get(key)
        .and_then(|t| t.as_table())
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn every_declared_dependency_is_used_by_the_code_of_its_crate() {
    let root = repo_root();
    let workspace: toml::Table = std::fs::read_to_string(root.join("Cargo.toml"))
        .expect("Cargo.toml")
        .parse()
        .expect("toml");
    let members: Vec<String> = workspace["workspace"]["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m.as_str().expect("member").to_string())
        .collect();
    let mut unused = Vec::new();
    let mut used_anywhere = BTreeSet::new();
    for member in &members {
        let krate = root.join(member);
        let manifest: toml::Table = std::fs::read_to_string(krate.join("Cargo.toml"))
            .expect("member Cargo.toml")
            .parse()
            .expect("toml");
        let src = sources(&krate, &["src", "build.rs"]);
        let all = sources(&krate, &["src", "tests", "benches", "build.rs"]);
        for (kind, code) in [("dependencies", &src), ("dev-dependencies", &all)] {
            for dep in table_keys(&manifest, kind) {
                let exempt = FEATURE_ONLY.iter().any(|(d, _)| *d == dep);
                if uses(code, &dep) || exempt {
                    used_anywhere.insert(dep);
                } else {
                    unused.push(format!("{member}: [{kind}] {dep}"));
                }
            }
        }
    }
    let declared = workspace["workspace"]["dependencies"]
        .as_table()
        .expect("[workspace.dependencies]");
    for dep in declared.keys() {
        if !used_anywhere.contains(dep) {
            unused.push(format!("workspace: [workspace.dependencies] {dep}"));
        }
    }
    assert!(
        unused.is_empty(),
        "declared but not used (remove them, or move a test-only one to \
         [dev-dependencies]):\n  {}",
        unused.join("\n  ")
    );
}

#[test]
fn the_usage_check_sees_paths_and_use_lines_not_substrings() {
    assert!(uses("use rdkafka::consumer::Consumer;", "rdkafka"));
    assert!(uses("let x = arrow_cast::cast(a, t);", "arrow-cast"));
    assert!(uses("extern crate libc;", "libc"));
    assert!(!uses("ENGINE = Distributed(c, db, t, rand())", "rand"));
    assert!(!uses("let operand::x = 1;", "rand"));
    assert!(!uses("\"libc.so\"", "libc"));
}
