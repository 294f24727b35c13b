//! Architecture invariants, checked on the real dependency graph:
//! `codecs` depends on no async runtime, Kafka client, HTTP stack or
//! DataFusion; `sql` depends on no Kafka client or HTTP stack.

use std::process::Command;

fn normal_deps(package: &str) -> Vec<String> {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            package,
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(&workspace)
        .output()
        .expect("running cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {package} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn assert_free_of(package: &str, forbidden: &[&str]) {
    let deps = normal_deps(package);
    assert!(
        deps.len() > 3,
        "cargo tree printed too little for {package}: {deps:?}"
    );
    let found: Vec<&String> = deps
        .iter()
        .filter(|d| {
            forbidden
                .iter()
                .any(|f| d == f || d.starts_with(&format!("{f}-")))
        })
        .collect();
    assert!(found.is_empty(), "{package} must not depend on {found:?}");
}

#[test]
fn codecs_has_no_io_runtime_kafka_http_or_datafusion() {
    assert_free_of(
        "velostream-codecs",
        &[
            "tokio",
            "rdkafka",
            "hyper",
            "reqwest",
            "clickhouse",
            "datafusion",
            "mio",
            "h2",
        ],
    );
}

#[test]
fn sql_has_no_kafka_or_http() {
    assert_free_of(
        "velostream-sql",
        &["rdkafka", "hyper", "reqwest", "clickhouse", "h2", "rustls"],
    );
}
