//! The shape rules of `engine/src` that reviews would otherwise have to
//! remember: no function over [`MAX_LINES`] lines without a reason written
//! next to it (a `/// Long: …` line in its doc comment). Test modules are
//! not counted.

use std::path::{Path, PathBuf};

use crate::harness::paths::repo_root;

const MAX_LINES: usize = 80;

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(
                std::fs::read_dir(&p)
                    .expect("read_dir")
                    .flatten()
                    .map(|e| e.path()),
            );
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The name of the function declared on `line`, if one is.
fn fn_name(line: &str) -> Option<&str> {
    let t = line.trim_start();
    let t = t
        .strip_prefix("pub(crate) ")
        .or(t.strip_prefix("pub(super) "))
        .or(t.strip_prefix("pub "))
        .unwrap_or(t);
    let t = t.strip_prefix("async ").unwrap_or(t);
    let rest = t.strip_prefix("fn ")?;
    rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .next()
}

/// Functions over the limit without a reason: `file:line name (n lines)`.
fn long_functions_without_reason(text: &str, file: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("mod tests") {
            break;
        }
        let Some(name) = fn_name(line) else { continue };
        if line.trim_end().ends_with(';') {
            continue; // a declaration without a body
        }
        let indent = line.len() - line.trim_start().len();
        let close = format!("{}}}", " ".repeat(indent));
        let Some(len) = lines[i + 1..].iter().position(|l| *l == close) else {
            continue;
        };
        if len + 2 <= MAX_LINES {
            continue;
        }
        let reason = lines[..i]
            .iter()
            .rev()
            .take_while(|l| {
                let t = l.trim_start();
                t.starts_with("///") || t.starts_with("#[") || t.starts_with("//")
            })
            .any(|l| l.trim_start().starts_with("/// Long: "));
        if !reason {
            found.push(format!("{file}:{} {name} ({} lines)", i + 1, len + 2));
        }
    }
    found
}

#[test]
fn no_function_in_engine_src_is_over_80_lines_without_a_reason() {
    let src = repo_root().join("engine/src");
    let mut found = Vec::new();
    for f in rust_files(&src) {
        let text = std::fs::read_to_string(&f).expect("source");
        let rel = f
            .strip_prefix(repo_root())
            .unwrap_or(&f)
            .display()
            .to_string();
        found.extend(long_functions_without_reason(&text, &rel));
    }
    assert!(
        found.is_empty(),
        "split these, or write why they are long in a `/// Long: …` line:\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn the_rule_counts_lines_and_accepts_a_written_reason() {
    let body = "    x();\n".repeat(MAX_LINES);
    let plain = format!("/// Does x.\nfn big() {{\n{body}}}\n");
    assert_eq!(long_functions_without_reason(&plain, "a.rs").len(), 1);
    let reasoned =
        format!("/// Does x.\n/// Long: a table of cases.\n#[inline]\npub fn big() {{\n{body}}}\n");
    assert!(long_functions_without_reason(&reasoned, "a.rs").is_empty());
    let short = "fn small() {\n    x();\n}\n";
    assert!(long_functions_without_reason(short, "a.rs").is_empty());
}
