//! `consume --evolve` against the real broker and ClickHouse: taxi file A
//! (schema S1), then file B (S1 with `VendorID` widened from Int32 to Int64
//! and a new `trip_id` column) produced into the same topic and consumed
//! into one table. The table follows (VendorID becomes Int64, trip_id is
//! added as Nullable(Int64)), every value equals its source, A's rows read
//! NULL for trip_id, and every message is stored exactly once:
//! - in one run, and without `--evolve` the run stops naming the flag;
//! - with the consumer SIGKILLed between the ALTER and the first insert of
//!   the new schema (two seeds), then run again;
//! - with two members of one group evolving the table at the same time
//!   (and on the 2x2 cluster, in `cluster.rs`).
//!
//! And the refusals: a widening the server refuses (a sorting-key column)
//! and a message lacking a non-Nullable column are dead letters naming the
//! column, the rest is inserted.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};

use crate::harness::clickhouse::try_count;
use crate::harness::compare::compare_taxi;
use crate::harness::data::{concat, open, read_files, write_batch, Taxi};
use crate::harness::exactly_once::exactly_once;
use crate::harness::kafka::{create_topic, read_topic, Until};
use crate::harness::pipeline::{produce, Consume, ONE_RECORD_PER_BATCH};
use crate::harness::{self, TestDb};

const ROWS_PER_MESSAGE: usize = 2_000;
/// trip_id of B's row i.
pub(crate) const TRIP_ID_BASE: i64 = 1_000_000;

/// File A (S1) and file B (VendorID Int64, plus trip_id), 8,000 rows each
/// in 2,000-row groups; returns them with their batches.
pub(crate) fn files_a_and_b(dir: &Path, seed: u64) -> (PathBuf, PathBuf, Vec<RecordBatch>) {
    let files = Taxi::rows(16_000)
        .files(2)
        .row_groups(ROWS_PER_MESSAGE)
        .seed(seed)
        .write(dir);
    let b = concat(&read_files(&files[1..]));
    let mut fields: Vec<Field> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut columns = b.columns().to_vec();
    let vendor = b.schema().index_of("VendorID").unwrap();
    let widened: Int64Array = b
        .column(vendor)
        .as_primitive::<Int32Type>()
        .iter()
        .map(|v| v.map(i64::from))
        .collect();
    fields[vendor] = Field::new("VendorID", DataType::Int64, false);
    columns[vendor] = Arc::new(widened);
    fields.push(Field::new("trip_id", DataType::Int64, false));
    columns.push(Arc::new(Int64Array::from_iter_values(
        (0..b.num_rows() as i64).map(|i| TRIP_ID_BASE + i),
    )));
    let b = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    write_batch(&files[1], &b, Some(ROWS_PER_MESSAGE));
    let mut source = read_files(&files[..1]);
    source.push(b);
    (files[0].clone(), files[1].clone(), source)
}

/// Produces A, then B, into a new topic of `partitions` (one record per
/// batch: consumers resume mid-stream after a kill). Returns the topic.
pub(crate) fn produce_a_then_b(brokers: &str, a: &Path, b: &Path, partitions: usize) -> String {
    let topic = harness::unique_name("evolve");
    create_topic(brokers, &topic, partitions as i32);
    for file in [a, b] {
        let source = Arc::new(open(&[file.to_path_buf()]));
        produce(brokers, &topic, &source, partitions, |c| {
            c.max_rows_per_message = ROWS_PER_MESSAGE;
            c.kafka.options.push(ONE_RECORD_PER_BATCH.into());
        });
    }
    topic
}

/// The services, a new database with its `trips` table name, and files A
/// and B written for `seed`.
struct Scenario {
    brokers: String,
    url: String,
    db: TestDb,
    table: String,
    a: PathBuf,
    b: PathBuf,
    source: Vec<RecordBatch>,
    dir: tempfile::TempDir,
}

impl Scenario {
    fn new(seed: u64) -> Scenario {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, source) = files_a_and_b(dir.path(), seed);
        let db = TestDb::new();
        Scenario {
            brokers: harness::kafka_brokers(),
            url: harness::clickhouse_url(),
            table: db.table("trips"),
            db,
            a,
            b,
            source,
            dir,
        }
    }

    /// A, then B, in a new topic of `partitions`.
    fn produced(&self, partitions: usize) -> String {
        produce_a_then_b(&self.brokers, &self.a, &self.b, partitions)
    }
}

/// The type of `column` in `table` of `db` ("" when it has no such column).
fn column_type(db: &TestDb, table: &str, column: &str) -> String {
    db.query(&format!(
        "SELECT type FROM system.columns WHERE database = '{}' AND table = '{table}' \
         AND name = '{column}' FORMAT TSV",
        db.name
    ))
    .trim()
    .to_string()
}

/// The table holds the sources exactly, in the evolved schema.
fn assert_followed(
    url: &str,
    db: &TestDb,
    table: &str,
    brokers: &str,
    topic: &str,
    source: &[RecordBatch],
) {
    compare_taxi(url, table, source).assert_exact("the evolved table against files A and B");
    assert_eq!(
        (
            column_type(db, "trips", "VendorID"),
            column_type(db, "trips", "trip_id")
        ),
        ("Int64".to_string(), "Nullable(Int64)".to_string()),
        "the table's evolved columns"
    );
    let rows = 8_000i64;
    let expected_sum = rows * TRIP_ID_BASE + rows * (rows - 1) / 2;
    let trip_ids = db.query(&format!(
        "SELECT countIf(isNull(trip_id)), countIf(isNotNull(trip_id)), sum(trip_id), \
         uniqExact(trip_id) FROM {table} FORMAT TSV"
    ));
    assert_eq!(
        trip_ids,
        format!("{rows}\t{rows}\t{expected_sum}\t{rows}\n"),
        "A's rows read NULL, B's rows hold their trip_id once each"
    );
    exactly_once(url, table, brokers, topic).assert();
}

#[test]
fn the_table_follows_a_new_column_and_a_widened_type_and_without_evolve_the_error_names_the_flag() {
    let sc = Scenario::new(0xe7_01);
    let topic = sc.produced(2);
    let (brokers, url, db, table, source) = (&sc.brokers, &sc.url, &sc.db, &sc.table, &sc.source);

    // Without --evolve: the first B message stops the run, naming the flag.
    let mut plain = Consume::new(brokers, url, &topic, &db.table("plain"));
    plain.exactly_once = true;
    plain.group = format!("{topic}.plain");
    let out = plain
        .cmd()
        .timeout(Duration::from_secs(300))
        .expect_failure();
    let stderr = &out.stderr;
    assert!(
        stderr.contains("schema does not match")
            && stderr.contains("trip_id")
            && stderr.contains("--evolve"),
        "the error names the new column and --evolve:\n{stderr}"
    );

    let mut consume = Consume::new(brokers, url, &topic, table);
    consume.exactly_once = true;
    let out = consume
        .cmd()
        .arg("--evolve")
        .timeout(Duration::from_secs(300))
        .expect_success();
    let stderr = &out.stderr;
    assert!(
        stderr.contains("schema evolution: altered the table"),
        "the log says what was altered:\n{stderr}"
    );
    assert_followed(url, db, table, brokers, &topic, source);
}

#[test]
fn a_consumer_killed_between_the_alter_and_the_first_insert_resumes_exactly_once() {
    for seed in [0xe7_02_u64, 0xe7_03] {
        let sc = Scenario::new(seed);
        let (brokers, url, db, table, source) =
            (&sc.brokers, &sc.url, &sc.db, &sc.table, &sc.source);
        let dir = &sc.dir;
        // One or two partitions, from the seed.
        let partitions = 1 + (seed % 2) as usize;
        let topic = sc.produced(partitions);
        let mut consume = Consume::new(brokers, url, &topic, table);
        consume.exactly_once = true;
        let log = dir.path().join("killed.log");
        let mut member = consume
            .cmd()
            .args(["--evolve", "--pause-after-alter-ms", "60000"])
            .spawn(&log);
        assert!(
            member.wait_for_log("pausing after the ALTER", Duration::from_secs(120)),
            "seed {seed:#x}: the consumer reached the ALTER:\n{}",
            member.tail(40)
        );
        member.kill();
        assert_eq!(
            column_type(db, "trips", "trip_id"),
            "Nullable(Int64)",
            "seed {seed:#x}: the ALTER ran before the kill"
        );
        let stored = db.count("trips");
        assert!(
            stored < 16_000,
            "seed {seed:#x}: killed before B was inserted ({stored} rows)"
        );
        eprintln!("seed {seed:#x}: killed after the ALTER with {stored} rows stored");

        consume
            .cmd()
            .arg("--evolve")
            .timeout(Duration::from_secs(300))
            .expect_success();
        assert_followed(url, db, table, brokers, &topic, source);
    }
}

#[test]
fn two_members_evolving_the_table_at_once_both_succeed_and_store_everything_once() {
    let sc = Scenario::new(0xe7_04);
    let (brokers, url, db, table, source) = (&sc.brokers, &sc.url, &sc.db, &sc.table, &sc.source);
    let (a, b, dir) = (&sc.a, &sc.b, &sc.dir);
    let topic = harness::unique_name("evolve_pair");
    create_topic(brokers, &topic, 2);
    let send = |file: &Path| {
        let source = Arc::new(open(&[file.to_path_buf()]));
        produce(brokers, &topic, &source, 2, |c| {
            c.max_rows_per_message = ROWS_PER_MESSAGE;
            c.kafka.options.push(ONE_RECORD_PER_BATCH.into());
        });
    };
    send(a);
    let mut consume = Consume::new(brokers, url, &topic, table);
    consume.exactly_once = true;
    // Members run until stopped; tansu 0.6 settles a two-member group only
    // with a session longer than a join takes (see rebalance.rs).
    consume.exit_when_idle = None;
    consume.session_ms = (10_000, 1_000);
    let cmd = consume.cmd().arg("--evolve");
    let mut first = cmd.spawn(&dir.path().join("member0.log"));
    first.wait_until(
        "the first member stores rows of A",
        Duration::from_secs(60),
        |_| try_count(url, table).unwrap_or(0) > 0,
    );
    let mut second = cmd.spawn(&dir.path().join("member1.log"));
    let owns_one = |m: &crate::harness::cmd::Running| {
        let log = m.log();
        log.contains("partitions assigned partitions={0}")
            || log.contains("partitions assigned partitions={1}")
    };
    second.wait_until(
        "the second member owns a partition",
        Duration::from_secs(90),
        owns_one,
    );
    first.wait_until(
        "the first member owns the other",
        Duration::from_secs(90),
        owns_one,
    );
    first.wait_until("A is stored", Duration::from_secs(90), |_| {
        try_count(url, table).unwrap_or(0) >= 8_000
    });
    // Both meet B's schema in their own partition at about the same time.
    send(b);
    first.wait_until("B is stored", Duration::from_secs(120), |_| {
        try_count(url, table).unwrap_or(0) >= 16_000
    });
    let logs: Vec<String> = [first, second].iter_mut().map(|m| m.terminate()).collect();
    let count = |needle: &str| {
        logs.iter()
            .map(|l| l.matches(needle).count())
            .sum::<usize>()
    };
    let story: Vec<String> = logs
        .iter()
        .map(|l| {
            l.lines()
                .filter(|l| l.contains("schema evolution") || l.contains("partitions"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    let story = story.join("\n---\n");
    // ADD COLUMN is not idempotent: across both members it ran once, and a
    // member that lost the race saw the column and went on.
    assert_eq!(
        count("altered the table table") - count("change=widen column"),
        1,
        "the new column was added exactly once:\n{story}"
    );
    assert!(
        count("change=widen column \"VendorID\"") >= 1,
        "VendorID was widened:\n{story}"
    );
    eprintln!(
        "two members: {} ALTERs lost to the other member",
        count("another member altered the table first")
    );
    assert_followed(url, db, table, brokers, &topic, source);
}

#[test]
fn a_widening_the_server_refuses_dead_letters_the_message_naming_the_column_and_both_types() {
    let sc = Scenario::new(0xe7_05);
    let topic = sc.produced(2);
    let (brokers, url, db, table, source) = (&sc.brokers, &sc.url, &sc.db, &sc.table, &sc.source);
    let dlq = harness::unique_name("evolve_dead");
    create_topic(brokers, &dlq, 1);
    // VendorID is in the sorting key: ClickHouse refuses to change its type.
    let consume = Consume::new(brokers, url, &topic, table);
    consume
        .cmd()
        .args(["--evolve", "--order-by", "VendorID", "--dlq-topic", &dlq])
        .timeout(Duration::from_secs(300))
        .expect_success();
    assert_eq!(db.count("trips"), 8_000, "A is stored, B is not");
    let letters = read_topic(brokers, &dlq, Until::Messages(4));
    assert_eq!(letters.len(), 4, "B's four messages are dead letters");
    for letter in &letters {
        let why = letter.expect_header("velostream.dlq.error");
        assert!(
            why.contains("VendorID") && why.contains("Int32") && why.contains("Int64"),
            "the dead letter names the column and both types: {why}"
        );
        assert_eq!(
            letter.expect_header("velostream.dlq.reason"),
            "schema_mismatch"
        );
    }
    compare_taxi(url, table, &source[..source.len() - 1]).assert_exact("file A alone");
}

#[test]
fn a_message_missing_a_non_nullable_column_is_a_dead_letter_naming_it_and_the_rest_is_inserted() {
    let (brokers, url) = (harness::kafka_brokers(), harness::clickhouse_url());
    let db = TestDb::new();
    let table = db.table("trips");
    let dir = tempfile::tempdir().unwrap();
    let files = Taxi::rows(12_000)
        .files(3)
        .row_groups(ROWS_PER_MESSAGE)
        .seed(0xe7_06)
        .write(dir.path());
    // The middle file lacks VendorID, which the table has as non-Nullable.
    let middle = concat(&read_files(&files[1..2]));
    let vendor = middle.schema().index_of("VendorID").unwrap();
    let mut without = middle.clone();
    without.remove_column(vendor);
    write_batch(&files[1], &without, Some(ROWS_PER_MESSAGE));
    let topic = harness::unique_name("evolve_missing");
    create_topic(&brokers, &topic, 1);
    for file in &files {
        let source = Arc::new(open(std::slice::from_ref(file)));
        produce(&brokers, &topic, &source, 1, |c| {
            c.max_rows_per_message = ROWS_PER_MESSAGE;
        });
    }
    let dlq = harness::unique_name("evolve_missing_dead");
    create_topic(&brokers, &dlq, 1);
    Consume::new(&brokers, &url, &topic, &table)
        .cmd()
        .args(["--evolve", "--dlq-topic", &dlq])
        .timeout(Duration::from_secs(300))
        .expect_success();
    let letters = read_topic(&brokers, &dlq, Until::Messages(2));
    for letter in &letters {
        let why = letter.expect_header("velostream.dlq.error");
        assert!(
            why.contains("VendorID") && why.contains("NULL"),
            "the dead letter names the column: {why}"
        );
        assert_eq!(
            letter.expect_header("velostream.dlq.reason"),
            "encode_failed"
        );
    }
    let mut kept = read_files(&files[..1]);
    kept.extend(read_files(&files[2..]));
    compare_taxi(&url, &table, &kept).assert_exact("the first and last files");
    assert_eq!(
        column_type(&db, "trips", "VendorID"),
        "Int32",
        "nullability is never altered"
    );
}

#[test]
fn the_transform_is_planned_again_for_the_new_schema_and_one_that_no_longer_plans_stops_naming_its_file(
) {
    let sc = Scenario::new(0xe7_07);
    let topic = sc.produced(2);
    let (brokers, url, db, source, dir) = (&sc.brokers, &sc.url, &sc.db, &sc.source, &sc.dir);

    // Planned for A, the doubled vendor is Int32; for B it is Int64, and
    // the new column passes through `*`.
    let doubled = dir.path().join("doubled.sql");
    std::fs::write(
        &doubled,
        "SELECT *, \"VendorID\" * 2 AS vendor2 FROM input\n",
    )
    .unwrap();
    let table = db.table("trips");
    let mut consume = Consume::new(brokers, url, &topic, &table);
    consume.exactly_once = true;
    consume
        .cmd()
        .args(["--evolve", "--transform"])
        .arg(&doubled)
        .timeout(Duration::from_secs(300))
        .expect_success();
    compare_taxi(url, &table, source).assert_exact("the transformed, evolved table");
    let check = db.query(&format!(
        "SELECT toTypeName(vendor2), countIf(vendor2 = VendorID * 2), countIf(isNotNull(trip_id)) \
         FROM {table} GROUP BY toTypeName(vendor2) FORMAT TSV"
    ));
    assert_eq!(
        check, "Int64\t16000\t8000\n",
        "vendor2 widened with VendorID, B's trip_id kept"
    );

    // A transform that adds a column named like B's new one no longer plans.
    let clashing = dir.path().join("clashing.sql");
    std::fs::write(&clashing, "SELECT *, 0 AS trip_id FROM input\n").unwrap();
    let mut consume = Consume::new(brokers, url, &topic, &db.table("clash"));
    consume.group = format!("{topic}.clash");
    let out = consume
        .cmd()
        .args(["--evolve", "--transform"])
        .arg(&clashing)
        .timeout(Duration::from_secs(300))
        .expect_failure();
    assert!(
        out.stderr.contains("clashing.sql") && out.stderr.contains("trip_id"),
        "the error names the transform file and the column:\n{}",
        out.stderr
    );
    assert_eq!(
        column_type(db, "clash", "trip_id"),
        "Int64",
        "the transform's own trip_id column, nothing added"
    );
    let stored = db.count("clash");
    assert!(
        stored > 0 && stored < 16_000,
        "what was taken before B is inserted, B is not: {stored} rows"
    );
}
