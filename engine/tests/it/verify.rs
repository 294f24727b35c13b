//! `velostream verify` against a table loaded through the real pipeline:
//! equal when it is, and every difference named when a row is added.

use std::path::Path;

use crate::harness::cmd::velostream;
use crate::harness::exactly_once::exactly_once;
use crate::harness::paths::path_str;
use crate::harness::{self, TestDb};

/// Generates, produces and consumes (exactly once) `rows` taxi rows into
/// `table`; returns the topic.
fn load(dir: &Path, table: &str, rows: u64) -> String {
    let (brokers, ch) = (harness::kafka_brokers(), harness::clickhouse_url());
    let data = dir.join("taxi");
    let data = path_str(&data);
    velostream()
        .args(["gen", "--rows", &rows.to_string(), "--out", data])
        .expect_success();
    let topic = harness::unique_name("verify");
    velostream()
        .args(["produce", "--brokers", &brokers, "--topic", &topic])
        .args(["--partitions", "2", data])
        .expect_success();
    velostream()
        .args(["consume", "--brokers", &brokers, "--topic", &topic])
        .args(["--group", &topic, "--clickhouse-url", &ch, "--table", table])
        .args(["--create-table", "--exactly-once", "--exit-when-idle", "2"])
        .expect_success();
    exactly_once(&ch, table, &brokers, &topic).assert();
    topic
}

#[test]
fn verify_accepts_the_loaded_table_and_names_every_difference_after_a_change() {
    let db = TestDb::new();
    let table = db.table("trips");
    let dir = tempfile::tempdir().unwrap();
    load(dir.path(), &table, 30_000);
    let data = dir.path().join("taxi");
    let data = path_str(&data);
    let ch = harness::clickhouse_url();
    let verify = |table: &str| {
        velostream().args(["verify", "--clickhouse-url", &ch, "--table", table, data])
    };

    let out = verify(&table).expect_success().stdout;
    assert!(
        out.contains("30000 rows") && out.contains("all equal"),
        "{out}"
    );

    // One duplicated row: the count and the sums must say so, by column.
    db.query(&format!(
        "INSERT INTO {table} SELECT * FROM {table} WHERE fare_amount > 0 LIMIT 1"
    ));
    let err = verify(&table).expect_failure().stderr;
    assert!(
        err.contains("row count: expected 30000, ClickHouse has 30001"),
        "{err}"
    );
    assert!(err.contains("\"fare_amount\""), "{err}");

    // A table that does not exist is named.
    let missing = db.table("nope");
    let err = verify(&missing).expect_failure().stderr;
    assert!(
        err.contains("nope") && err.contains("does not exist"),
        "{err}"
    );
}
