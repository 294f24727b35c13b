//! Consumers killed with SIGKILL at seeded random moments while data keeps
//! arriving, restarted each time: with `--exactly-once` every message is
//! stored exactly once (per message and per row); at-least-once loses no
//! row and duplicates only whole source rows.

use std::path::Path;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;

use crate::harness::clickhouse::try_count;
use crate::harness::cmd::Cmd;
use crate::harness::compare::compare_taxi;
use crate::harness::data::{read_files, Rng, Taxi};
use crate::harness::exactly_once::exactly_once;
use crate::harness::pipeline::{day_partitioned_table, produce_slowly, Consume};
use crate::harness::{self, TestDb};

/// What [`consume_with_kills`] did.
#[derive(Debug, Default)]
struct KillReport {
    runs: u32,
    kills: u32,
    /// Runs that ended by themselves (idle) before every row was stored.
    early_exits: u32,
}

/// Runs `consume`, killing it with SIGKILL `kills` times at seeded random
/// moments 100–1500 ms after it got its partitions, restarting it each time,
/// then lets it run until it exits by itself with `expected_rows` stored.
fn consume_with_kills(
    consume: &Cmd,
    seed: u64,
    kills: u32,
    (url, table): (&str, &str),
    expected_rows: u64,
    logs: &Path,
) -> KillReport {
    let mut rng = Rng::new(seed);
    let mut report = KillReport::default();
    let stored = || try_count(url, table).unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        assert!(Instant::now() < deadline, "gave up after 900 s: {report:?}");
        report.runs += 1;
        let mut member = consume.spawn(&logs.join(format!("consume-{}.log", report.runs)));
        if report.kills < kills
            && member.wait_for_log("partitions assigned", Duration::from_secs(120))
        {
            let assigned = Instant::now();
            let delay = Duration::from_millis(rng.range(100, 1500));
            while assigned.elapsed() < delay && member.exited().is_none() {
                std::thread::sleep(Duration::from_millis(10));
            }
            if member.exited().is_none() {
                member.kill();
                report.kills += 1;
                eprintln!(
                    "consumer kills: run {} killed {delay:?} after its assignment, {} rows stored",
                    report.runs,
                    stored()
                );
                continue;
            }
        }
        let status = member.wait(Duration::from_secs(300));
        assert!(
            status.success(),
            "consumer run {} failed ({status})\n{}",
            report.runs,
            member.describe()
        );
        let rows = stored();
        if rows >= expected_rows {
            assert!(
                report.kills >= kills,
                "the topic was drained after only {} of {kills} kills: {report:?}",
                report.kills
            );
            return report;
        }
        report.early_exits += 1;
        eprintln!(
            "consumer kills: run {} exited idle with {rows} of {expected_rows} rows stored",
            report.runs
        );
        assert!(
            report.early_exits <= 5,
            "consumer keeps exiting idle before the topic is drained: {report:?}\n{}",
            member.describe()
        );
    }
}

/// One kill scenario's outcome.
struct Killed {
    batches: Vec<RecordBatch>,
    db: TestDb,
    table: String,
    brokers: String,
    topic: String,
    messages: u64,
}

/// Where the scenario inserts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Table {
    /// Created by the consumer (`--create-table`), unpartitioned.
    Created,
    /// `PARTITION BY toYYYYMMDD(tpep_pickup_datetime)`, created beforehand:
    /// inserts span days and are written as several parts.
    ByDay,
}

/// Produces 300,000 generated taxi rows over about 35 s while a consumer is
/// killed 12 times.
fn kill_scenario(exactly_once: bool, table_kind: Table, seed: u64) -> Killed {
    const ROWS: u64 = 300_000;
    const KILLS: u32 = 12;
    let brokers = harness::kafka_brokers();
    let db = TestDb::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let files = Taxi::rows(ROWS)
        .files(24)
        .row_groups(12_500)
        .seed(seed)
        .write(&dir.path().join("data"));
    let topic = harness::unique_name("rel_kill");
    let table = db.table("trips");
    match table_kind {
        Table::Created => harness::create_topic(&brokers, &topic, 2),
        Table::ByDay => day_partitioned_table((&brokers, &topic, 2), &[&db.url], &table, &files[0]),
    }
    let producer = produce_slowly(&brokers, &topic, &files, 2, Duration::from_millis(1200));
    let mut consume = Consume::new(&brokers, &db.url, &topic, &table);
    consume.exactly_once = exactly_once;
    let report = consume_with_kills(
        &consume.cmd(),
        seed,
        KILLS,
        (&db.url, &table),
        ROWS,
        dir.path(),
    );
    let messages = producer.join().expect("producer thread");
    eprintln!(
        "consumer kills: exactly_once={exactly_once} {table_kind:?}: {messages} messages, {} runs, {} SIGKILLs, \
         {} early idle exits",
        report.runs, report.kills, report.early_exits
    );
    Killed {
        batches: read_files(&files),
        db,
        table,
        brokers,
        topic,
        messages,
    }
}

#[test]
fn exactly_once_consumer_survives_sigkills_without_loss_or_duplicates() {
    let k = kill_scenario(true, Table::Created, 0x5eed_0001);
    let c = compare_taxi(&k.db.url, &k.table, &k.batches);
    eprintln!("consumer kills: exactly-once: {}", c.summary());
    c.assert_exact("exactly-once after SIGKILLs");
    exactly_once(&k.db.url, &k.table, &k.brokers, &k.topic)
        .messages(k.messages)
        .assert();
}

#[test]
fn at_least_once_consumer_survives_sigkills_without_loss() {
    let k = kill_scenario(false, Table::Created, 0x5eed_0002);
    let c = compare_taxi(&k.db.url, &k.table, &k.batches);
    eprintln!("consumer kills: at-least-once: {}", c.summary());
    c.assert_nothing_lost("at-least-once after SIGKILLs");
}

#[test]
fn exactly_once_into_a_day_partitioned_table_survives_sigkills() {
    let k = kill_scenario(true, Table::ByDay, 0x5eed_0003);
    let c = compare_taxi(&k.db.url, &k.table, &k.batches);
    eprintln!(
        "consumer kills: exactly-once, day-partitioned: {}",
        c.summary()
    );
    c.assert_exact("exactly-once into a day-partitioned table after SIGKILLs");
    exactly_once(&k.db.url, &k.table, &k.brokers, &k.topic)
        .messages(k.messages)
        .assert();
}
