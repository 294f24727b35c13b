//! `velostream verify` against a table loaded through the real pipeline:
//! equal when it is, and every difference named when a row is added.

use std::path::Path;
use std::process::{Command, Output};

use crate::harness::{self, TestDb};

fn velostream(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_velostream"))
        .args(args)
        .env("VELOSTREAM_QUIET", "1")
        .output()
        .expect("running velostream")
}

fn ok(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Generates, produces and consumes `rows` taxi rows into `table`.
fn load(dir: &Path, table: &str, rows: u64) {
    let (brokers, ch) = (harness::kafka_brokers(), harness::clickhouse_url());
    let data = dir.join("taxi");
    let data = data.to_str().unwrap();
    ok(
        "gen",
        &velostream(&["gen", "--rows", &rows.to_string(), "--out", data]),
    );
    let topic = harness::unique_name("verify");
    ok(
        "produce",
        &velostream(&[
            "produce",
            "--brokers",
            &brokers,
            "--topic",
            &topic,
            "--partitions",
            "2",
            data,
        ]),
    );
    ok(
        "consume",
        &velostream(&[
            "consume",
            "--brokers",
            &brokers,
            "--topic",
            &topic,
            "--group",
            &topic,
            "--clickhouse-url",
            &ch,
            "--table",
            table,
            "--create-table",
            "--exactly-once",
            "--exit-when-idle",
            "2",
        ]),
    );
}

#[test]
fn verify_accepts_the_loaded_table_and_names_every_difference_after_a_change() {
    let db = TestDb::new();
    let table = db.table("trips");
    let dir = tempfile::tempdir().unwrap();
    load(dir.path(), &table, 30_000);
    let data = dir.path().join("taxi");
    let data = data.to_str().unwrap();
    let ch = harness::clickhouse_url();
    let verify =
        |table: &str| velostream(&["verify", "--clickhouse-url", &ch, "--table", table, data]);

    let out = ok("verify", &verify(&table));
    assert!(
        out.contains("30000 rows") && out.contains("all equal"),
        "{out}"
    );

    // One duplicated row: the count and the sums must say so, by column.
    db.query(&format!(
        "INSERT INTO {table} SELECT * FROM {table} WHERE fare_amount > 0 LIMIT 1"
    ));
    let out = verify(&table);
    assert!(!out.status.success(), "a changed table must fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("row count: expected 30000, ClickHouse has 30001"),
        "{err}"
    );
    assert!(err.contains("\"fare_amount\""), "{err}");

    // A table that does not exist is named.
    let missing = db.table("nope");
    let out = verify(&missing);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nope") && err.contains("does not exist"),
        "{err}"
    );
}
