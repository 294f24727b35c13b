//! Reliability and security, end to end through the `velostream` binary:
//! consumers killed with SIGKILL at seeded random moments (exactly-once: no
//! row lost or duplicated; at-least-once: no row lost), planted secrets that
//! must never be printed, hostile identifiers, and ClickHouse stopped in the
//! middle of a run.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use velostream::gen::{generate, GenConfig};
use velostream::kafka::KafkaArgs;
use velostream::producer::{self, ProducerConfig};
use velostream::progress::Progress;
use velostream::source::{ParquetSource, SourceOptions};

use crate::harness::{self, ch_query, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_velostream");

// ------------------------------------------------------------------ helpers

/// Seeded pseudo-random numbers (splitmix64) for fault timing.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// Generates `rows` taxi rows in `files` files under `dir`.
fn gen_taxi(dir: &Path, rows: u64, files: usize, seed: u64) -> Vec<PathBuf> {
    let cfg = GenConfig {
        rows,
        out: dir.to_path_buf(),
        files,
        row_group_rows: 12_500,
        seed,
    };
    let summary = generate(&cfg, &Progress::hidden()).expect("generating taxi data");
    assert_eq!(summary.rows, rows);
    summary.files
}

/// Creates `topic` and produces every row of `files` to it, at most
/// `rows_per_message` rows per message. Returns the messages produced.
fn produce(
    brokers: &str,
    topic: &str,
    files: &[PathBuf],
    partitions: usize,
    rows_per_message: usize,
) -> u64 {
    harness::create_topic(brokers, topic, partitions as i32);
    let source = Arc::new(ParquetSource::open(files, &SourceOptions::default()).expect("open"));
    let total = source.total_rows();
    let mut cfg = ProducerConfig::new(KafkaArgs::new(brokers), topic);
    cfg.max_rows_per_message = rows_per_message;
    let summary = producer::run(
        &cfg,
        source,
        partitions,
        Arc::new(AtomicBool::new(false)),
        &Progress::hidden(),
    )
    .unwrap_or_else(|e| panic!("producing to {topic}: {e}"));
    assert_eq!(summary.rows, total, "producer summary: {}", summary.line());
    summary.messages
}

/// Produces `files` one after the other with `pause` between them on a
/// background thread, so that data keeps arriving while consumers are
/// killed. The topic must exist. The thread returns the messages produced.
fn produce_slowly(
    brokers: &str,
    topic: &str,
    files: &[PathBuf],
    partitions: usize,
    pause: Duration,
) -> std::thread::JoinHandle<u64> {
    let (brokers, topic, files) = (brokers.to_string(), topic.to_string(), files.to_vec());
    std::thread::spawn(move || {
        let mut messages = 0;
        for f in &files {
            messages += produce(&brokers, &topic, std::slice::from_ref(f), partitions, 4_000);
            std::thread::sleep(pause);
        }
        messages
    })
}

/// Reads every batch of `files`.
fn read_batches(files: &[PathBuf]) -> Vec<RecordBatch> {
    let source = ParquetSource::open(files, &SourceOptions::default()).expect("open source");
    let mut out = Vec::new();
    for rg in source.row_groups() {
        for b in source.read_row_group(rg, 65_536).expect("row group") {
            out.push(b.expect("batch"));
        }
    }
    out
}

/// The content key of one taxi row, spelled as ClickHouse prints
/// [`KEY_SQL`] in TSV: pickup second, zones, cents of total and distance,
/// passenger count (`\N` when null).
const KEY_SQL: &str = "toInt64(toUInt32(tpep_pickup_datetime)), PULocationID, DOLocationID, \
     toInt64(round(total_amount * 100)), toInt64(round(trip_distance * 100)), passenger_count";

/// Checksums over the whole table: row count, sums of integer-valued
/// expressions and null counts. Same order as [`source_sums`].
const SUMS_SQL: &str = "count(), sum(toInt64(VendorID)), sum(toInt64(PULocationID)), \
     sum(toInt64(DOLocationID)), sum(payment_type), sum(toInt64(round(fare_amount * 100))), \
     sum(toInt64(round(total_amount * 100))), sum(toInt64(toUInt32(tpep_dropoff_datetime))), \
     countIf(isNull(passenger_count)), countIf(isNull(RatecodeID)), \
     countIf(isNull(congestion_surcharge)), countIf(isNull(airport_fee)), \
     countIf(isNull(store_and_fwd_flag))";

fn cents(x: f64) -> i64 {
    (x * 100.0).round() as i64
}

/// Multiset of row keys of the source.
fn source_keys(batches: &[RecordBatch]) -> HashMap<String, u64> {
    let mut keys = HashMap::new();
    for b in batches {
        let col = |n: &str| {
            b.column_by_name(n)
                .unwrap_or_else(|| panic!("source has no column {n}"))
        };
        let pickup = col("tpep_pickup_datetime").as_primitive::<TimestampMicrosecondType>();
        let pu = col("PULocationID").as_primitive::<Int32Type>();
        let dol = col("DOLocationID").as_primitive::<Int32Type>();
        let total = col("total_amount").as_primitive::<Float64Type>();
        let dist = col("trip_distance").as_primitive::<Float64Type>();
        let pass = col("passenger_count").as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            let p = if pass.is_null(i) {
                "\\N".to_string()
            } else {
                pass.value(i).to_string()
            };
            let key = format!(
                "{}\t{}\t{}\t{}\t{}\t{p}",
                pickup.value(i).div_euclid(1_000_000),
                pu.value(i),
                dol.value(i),
                cents(total.value(i)),
                cents(dist.value(i)),
            );
            *keys.entry(key).or_insert(0) += 1;
        }
    }
    keys
}

/// [`SUMS_SQL`] computed from the source.
fn source_sums(batches: &[RecordBatch]) -> Vec<i64> {
    let mut s = vec![0i64; 13];
    for b in batches {
        let col = |n: &str| {
            b.column_by_name(n)
                .unwrap_or_else(|| panic!("source has no column {n}"))
        };
        let i32s = |n: &str| -> i64 {
            col(n)
                .as_primitive::<Int32Type>()
                .iter()
                .flatten()
                .map(i64::from)
                .sum()
        };
        let f64cents = |n: &str| -> i64 {
            col(n)
                .as_primitive::<Float64Type>()
                .iter()
                .flatten()
                .map(cents)
                .sum()
        };
        s[0] += b.num_rows() as i64;
        s[1] += i32s("VendorID");
        s[2] += i32s("PULocationID");
        s[3] += i32s("DOLocationID");
        s[4] += col("payment_type")
            .as_primitive::<Int64Type>()
            .iter()
            .flatten()
            .sum::<i64>();
        s[5] += f64cents("fare_amount");
        s[6] += f64cents("total_amount");
        s[7] += col("tpep_dropoff_datetime")
            .as_primitive::<TimestampMicrosecondType>()
            .iter()
            .flatten()
            .map(|v| v.div_euclid(1_000_000))
            .sum::<i64>();
        for (i, n) in [
            "passenger_count",
            "RatecodeID",
            "congestion_surcharge",
            "airport_fee",
            "store_and_fwd_flag",
        ]
        .iter()
        .enumerate()
        {
            s[8 + i] += col(n).null_count() as i64;
        }
    }
    s
}

fn table_sums(url: &str, table: &str) -> Vec<i64> {
    let text = ch_query(url, &format!("SELECT {SUMS_SQL} FROM {table} FORMAT TSV"));
    text.trim()
        .split('\t')
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("sum {v:?} from {table}: {text}"))
        })
        .collect()
}

fn table_keys(url: &str, table: &str) -> HashMap<String, u64> {
    let text = ch_query(
        url,
        &format!("SELECT {KEY_SQL}, count() FROM {table} GROUP BY {KEY_SQL} FORMAT TSV"),
    );
    let mut keys = HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let (key, n) = line.rsplit_once('\t').expect("key and count");
        keys.insert(key.to_string(), n.parse::<u64>().expect("count"));
    }
    keys
}

/// Compares the table's rows with the source's as multisets: returns
/// (rows missing, duplicate rows); rows the source never had fail the test.
fn compare_multisets(source: &HashMap<String, u64>, table: &HashMap<String, u64>) -> (u64, u64) {
    let mut missing = 0;
    let mut duplicates = 0;
    for (k, &want) in source {
        let got = table.get(k).copied().unwrap_or(0);
        missing += want.saturating_sub(got);
        duplicates += got.saturating_sub(want);
    }
    let foreign: Vec<&String> = table.keys().filter(|k| !source.contains_key(*k)).collect();
    assert!(
        foreign.is_empty(),
        "{} row keys in ClickHouse that the source does not have, e.g. {:?}",
        foreign.len(),
        foreign.iter().take(3).collect::<Vec<_>>()
    );
    (missing, duplicates)
}

fn count(url: &str, table: &str) -> u64 {
    ch_query(url, &format!("SELECT count() FROM {table}"))
        .trim()
        .parse()
        .expect("count")
}

/// Last `n` lines of a log file, for failure messages.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Starts the binary with `args`, stdout and stderr into `log`.
fn spawn(args: &[String], envs: &[(&str, &str)], log: &Path) -> Child {
    let out = File::create(log).expect("log file");
    let err = out.try_clone().expect("log file");
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("VELOSTREAM_QUIET", "1")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn()
        .unwrap_or_else(|e| panic!("starting {BIN}: {e}"))
}

/// Waits for `child` up to `timeout`; kills it and fails on timeout.
/// Calls `tick` with the child's pid about every 50 ms.
fn wait_timeout(
    child: &mut Child,
    timeout: Duration,
    log: &Path,
    mut tick: impl FnMut(u32),
) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        tick(child.id());
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{BIN} did not finish within {timeout:?}; log {}:\n{}",
                log.display(),
                tail(log, 30)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `log` contains `needle` (true) or the child exits (false).
fn wait_for_log(child: &mut Child, log: &Path, needle: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if std::fs::read_to_string(log).is_ok_and(|t| t.contains(needle)) {
            return true;
        }
        if child.try_wait().expect("try_wait").is_some() {
            return false;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} did not appear in {} within {timeout:?}:\n{}",
            log.display(),
            tail(log, 30)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The arguments of a `velostream consume` run.
fn consume_args(brokers: &str, url: &str, topic: &str, group: &str, table: &str) -> Vec<String> {
    [
        "--log",
        "info",
        "consume",
        "--brokers",
        brokers,
        "--clickhouse-url",
        url,
        "--topic",
        topic,
        "--group",
        group,
        "--table",
        table,
        "--create-table",
        "--insert-rows",
        "20000",
        "--max-delay-ms",
        "200",
        "--exit-when-idle",
        "3",
        // A killed member leaves the group after its session times out.
        "-X",
        "session.timeout.ms=2000",
        "-X",
        "heartbeat.interval.ms=500",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// What [`consume_with_kills`] did.
#[derive(Debug, Default)]
struct KillReport {
    runs: u32,
    kills: u32,
    /// Runs that ended by themselves (idle) before every row was stored.
    early_exits: u32,
}

/// Runs the consumer, killing it with SIGKILL `kills` times at seeded random
/// moments 100–1500 ms after it got its partitions, restarting it each time,
/// then lets it run until it exits by itself with `expected_rows` stored.
fn consume_with_kills(
    args: &[String],
    seed: u64,
    kills: u32,
    url: &str,
    table: &str,
    expected_rows: u64,
    logs: &Path,
) -> KillReport {
    let mut rng = Rng(seed);
    let mut report = KillReport::default();
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        assert!(Instant::now() < deadline, "gave up after 900 s: {report:?}");
        report.runs += 1;
        let log = logs.join(format!("consume-{}.log", report.runs));
        let mut child = spawn(args, &[], &log);
        if report.kills < kills {
            let started = Instant::now();
            let assigned = wait_for_log(
                &mut child,
                &log,
                "partitions assigned",
                Duration::from_secs(120),
            );
            if assigned {
                let delay = Duration::from_millis(rng.range(100, 1500));
                let until = Instant::now() + delay;
                while Instant::now() < until && child.try_wait().expect("try_wait").is_none() {
                    std::thread::sleep(Duration::from_millis(10));
                }
                if child.try_wait().expect("try_wait").is_none() {
                    child.kill().expect("SIGKILL");
                    child.wait().expect("wait");
                    report.kills += 1;
                    eprintln!(
                        "reliability: run {} assigned after {:?}, killed {delay:?} later, {} rows stored",
                        report.runs,
                        started.elapsed() - delay,
                        count(url, table)
                    );
                    continue;
                }
            }
        }
        let status = wait_timeout(&mut child, Duration::from_secs(300), &log, |_| {});
        assert!(
            status.success(),
            "consumer run {} failed ({status}); log {}:\n{}",
            report.runs,
            log.display(),
            tail(&log, 30)
        );
        let stored = count(url, table);
        if stored >= expected_rows {
            if report.kills >= kills {
                return report;
            }
            panic!(
                "the topic was drained after only {} of {kills} kills: {report:?}",
                report.kills
            );
        }
        report.early_exits += 1;
        eprintln!(
            "reliability: run {} exited idle with {stored} of {expected_rows} rows stored",
            report.runs
        );
        assert!(
            report.early_exits <= 5,
            "consumer keeps exiting idle before the topic is drained: {report:?}; log:\n{}",
            tail(&log, 30)
        );
    }
}

/// Produces a generated taxi data set and consumes it with SIGKILLs; returns
/// (source batches, report, table name, db).
fn kill_scenario(exactly_once: bool, seed: u64) -> (Vec<RecordBatch>, KillReport, String, TestDb) {
    const ROWS: u64 = 300_000;
    const KILLS: u32 = 12;
    let brokers = harness::kafka_brokers();
    let url = harness::clickhouse_url();
    let db = TestDb::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let files = gen_taxi(&dir.path().join("data"), ROWS, 24, seed);
    let topic = harness::unique_name("rel_kill");
    harness::create_topic(&brokers, &topic, 2);
    // Data arrives over about 35 s while the consumer is killed.
    let producer = produce_slowly(&brokers, &topic, &files, 2, Duration::from_millis(1200));
    let table = db.table("trips");
    let mut args = consume_args(&brokers, &url, &topic, &topic, &table);
    if exactly_once {
        args.push("--exactly-once".into());
    }
    let report = consume_with_kills(&args, seed, KILLS, &url, &table, ROWS, dir.path());
    let messages = producer.join().expect("producer thread");
    eprintln!(
        "reliability: exactly_once={exactly_once}: {messages} messages, {} runs, {} SIGKILLs, {} early idle exits",
        report.runs, report.kills, report.early_exits
    );
    (read_batches(&files), report, table, db)
}

// ------------------------------------------------------------------ 1, 2: SIGKILL

#[test]
fn exactly_once_consumer_survives_sigkills_without_loss_or_duplicates() {
    crate::require_services!(Kafka, ClickHouse);
    let (batches, report, table, db) = kill_scenario(true, 0x5eed_0001);
    let url = &db.url;
    let (missing, duplicates) = compare_multisets(&source_keys(&batches), &table_keys(url, &table));
    let want = source_sums(&batches);
    let got = table_sums(url, &table);
    eprintln!(
        "reliability: exactly-once: {} runs, {} kills, {} rows stored of {}, {missing} lost, {duplicates} duplicates",
        report.runs, report.kills, got[0], want[0]
    );
    assert_eq!((missing, duplicates), (0, 0), "lost and duplicated rows");
    assert_eq!(
        got, want,
        "checksums (count, sums, null counts) of {table} differ from the source"
    );
    // Every (partition, offset) holds the rows of exactly one message.
    let per_message = ch_query(
        url,
        &format!(
            "SELECT count(), uniqExact(_velostream_partition, _velostream_offset) FROM {table} FORMAT TSV"
        ),
    );
    assert!(
        per_message.starts_with(&format!("{}\t", want[0])),
        "{per_message}"
    );
}

#[test]
fn at_least_once_consumer_survives_sigkills_without_loss() {
    crate::require_services!(Kafka, ClickHouse);
    let (batches, report, table, db) = kill_scenario(false, 0x5eed_0002);
    let url = &db.url;
    let source = source_keys(&batches);
    let (missing, duplicates) = compare_multisets(&source, &table_keys(url, &table));
    let stored = count(url, &table);
    eprintln!(
        "reliability: at-least-once: {} runs, {} kills, {stored} rows stored of {}, {missing} lost, {duplicates} duplicates",
        report.runs,
        report.kills,
        batches.iter().map(|b| b.num_rows()).sum::<usize>()
    );
    assert_eq!(missing, 0, "rows lost");
    assert_eq!(
        stored,
        batches.iter().map(|b| b.num_rows() as u64).sum::<u64>() + duplicates,
        "row count = source rows + duplicates"
    );
}

// ------------------------------------------------------------------ 3: secrets

/// Runs the binary to completion (at most `timeout`) and returns its exit
/// status and everything it printed.
fn run_to_end(
    args: &[&str],
    envs: &[(&str, &str)],
    dir: &Path,
    name: &str,
    timeout: Duration,
) -> (ExitStatus, String) {
    let log = dir.join(format!("{name}.log"));
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let mut child = spawn(&args, envs, &log);
    let status = wait_timeout(&mut child, timeout, &log, |_| {});
    (status, std::fs::read_to_string(&log).expect("log"))
}

#[test]
fn planted_secrets_are_never_printed() {
    crate::require_services!(Kafka, ClickHouse);
    const CH_SECRET: &str = "vs-planted-CH-7f3a9c0d";
    const SASL_SECRET: &str = "vs-planted-SASL-b41e2d77";
    let brokers = harness::kafka_brokers();
    let url = harness::clickhouse_url();
    let dir = tempfile::tempdir().expect("tempdir");
    let files = gen_taxi(&dir.path().join("data"), 2_000, 1, 3);
    let topic = harness::unique_name("rel_secret");
    produce(&brokers, &topic, &files, 1, 1_000);
    let file = files[0].to_str().expect("utf-8 path");
    let secrets = [
        ("VELOSTREAM_CLICKHOUSE_PASSWORD", CH_SECRET),
        ("VELOSTREAM_KAFKA_SASL_PASSWORD", SASL_SECRET),
    ];
    let t = Duration::from_secs(120);
    let mut outputs: Vec<(String, ExitStatus, String)> = Vec::new();
    let mut run = |name: &str, args: &[&str], envs: &[(&str, &str)]| {
        let (status, out) = run_to_end(args, envs, dir.path(), name, t);
        outputs.push((name.to_string(), status, out));
    };
    // A wrong ClickHouse password (the default user has none).
    run(
        "consume-ch-password",
        &[
            "--log",
            "debug",
            "consume",
            "--brokers",
            &brokers,
            "--clickhouse-url",
            &url,
            "--clickhouse-user",
            "default",
            "--topic",
            &topic,
            "--table",
            "default.never",
            "--create-table",
            "--exit-when-idle",
            "2",
        ],
        &secrets[..1],
    );
    // SASL against a plaintext broker: the handshake fails.
    let sasl = [
        "--security-protocol",
        "sasl_plaintext",
        "--sasl-mechanism",
        "PLAIN",
        "--sasl-username",
        "velostream",
    ];
    let mut consume_sasl = vec![
        "--log",
        "debug",
        "consume",
        "--brokers",
        &brokers,
        "--clickhouse-url",
        &url,
        "--topic",
        &topic,
        "--table",
        "default.never",
        "--exit-when-idle",
        "2",
    ];
    consume_sasl.extend(sasl);
    run("consume-sasl", &consume_sasl, &secrets[1..]);
    let mut produce_sasl = vec![
        "--log",
        "debug",
        "produce",
        "--brokers",
        &brokers,
        "--topic",
        &topic,
    ];
    produce_sasl.extend(sasl);
    produce_sasl.push(file);
    run("produce-sasl", &produce_sasl, &secrets);
    // The same secret on the command line (-X) must not be echoed either.
    let x_secret = format!("sasl.password={SASL_SECRET}");
    let mut produce_x = vec![
        "--log",
        "trace",
        "produce",
        "--brokers",
        &brokers,
        "--topic",
        &topic,
    ];
    produce_x.extend([
        "-X",
        "security.protocol=sasl_plaintext",
        "-X",
        "sasl.mechanism=PLAIN",
    ]);
    produce_x.extend(["-X", "sasl.username=velostream", "-X", &x_secret]);
    // librdkafka's own debug output, configuration included.
    produce_x.extend([
        "-X",
        "log_level=7",
        "-X",
        "debug=security,conf,broker",
        file,
    ]);
    run("produce-x-option", &produce_x, &[]);
    run("consume-help", &["consume", "--help"], &secrets);
    run("produce-help", &["produce", "--help"], &secrets);
    run("help", &["--help"], &secrets);

    let mut failures = Vec::new();
    for (name, status, out) in &outputs {
        eprintln!(
            "reliability: {name}: {status}, {} lines; last: {}",
            out.lines().count(),
            out.lines().last().unwrap_or("")
        );
        for secret in [CH_SECRET, SASL_SECRET] {
            if out.contains(secret) {
                failures.push(format!("{name}: printed the planted secret:\n{out}"));
            }
        }
        let help = name.ends_with("help");
        if help != status.success() {
            failures.push(format!("{name}: unexpected exit status {status}:\n{out}"));
        }
    }
    let find = |n: &str| &outputs.iter().find(|o| o.0 == n).expect("ran").2;
    assert!(
        find("consume-help").contains("VELOSTREAM_CLICKHOUSE_PASSWORD")
            && find("consume-help").contains("VELOSTREAM_KAFKA_SASL_PASSWORD"),
        "consume --help documents the password variables:\n{}",
        find("consume-help")
    );
    let ch = find("consume-ch-password");
    assert!(
        ch.contains("193") || ch.to_lowercase().contains("password"),
        "a wrong ClickHouse password is reported as such:\n{ch}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ------------------------------------------------------------------ 4: hostile identifiers

/// Writes one Parquet file holding `batch`.
fn write_parquet(path: &Path, batch: &RecordBatch) {
    let file = File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    w.write(batch).expect("write");
    w.close().expect("close");
}

/// Undoes ClickHouse's TSV escaping of one field (`\N` is NULL).
fn tsv_field(s: &str) -> Option<String> {
    (s != "\\N").then(|| velostream::clickhouse::tsv::unescape_field(s))
}

/// Column names that break naive SQL quoting.
const HOSTILE_NAMES: &[&str] = &[
    "select",
    "a`b",
    "c\"d'e",
    "sp ace",
    "new\nline",
    "FROM",
    "ünï©ødé 名前 🚕",
    "back\\slash;--",
    "`); DROP TABLE t; --",
];

/// Values that break naive escaping.
const HOSTILE_VALUES: &[Option<&str>] = &[
    Some("'; DROP TABLE x; --"),
    Some("tab\there\nnewline"),
    Some("back\\slash \\N"),
    None,
    Some(""),
    Some("ünï©ødé 名前 🚕"),
];

#[test]
fn hostile_column_and_table_names_round_trip() {
    use arrow_array::{ArrayRef, Int32Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    crate::require_services!(Kafka, ClickHouse);
    let brokers = harness::kafka_brokers();
    let db = TestDb::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let n = HOSTILE_VALUES.len();
    let mut fields = vec![Field::new(HOSTILE_NAMES[0], DataType::Int32, false)];
    let mut cols: Vec<ArrayRef> = vec![Arc::new(Int32Array::from_iter_values(0..n as i32))];
    for (i, name) in HOSTILE_NAMES.iter().enumerate().skip(1) {
        fields.push(Field::new(*name, DataType::Utf8, true));
        // Each column holds the values rotated by its index.
        let values: Vec<Option<String>> = (0..n)
            .map(|r| HOSTILE_VALUES[(r + i) % n].map(|v| format!("{v}#{i}")))
            .collect();
        cols.push(Arc::new(StringArray::from(values)));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).expect("batch");
    let file = dir.path().join("hostile.parquet");
    write_parquet(&file, &batch);
    let topic = harness::unique_name("rel_hostile");
    produce(&brokers, &topic, &[file], 1, 1_000);

    // --table db.`we"ird ``tbl``; DROP--ü` names the table we"ird `tbl`; DROP--ü.
    let table_name = "we\"ird `tbl`; DROP--ü";
    let table_arg = format!("{}.`we\"ird ``tbl``; DROP--ü`", db.name);
    let parsed = velostream::clickhouse::TableRef::parse(&table_arg).expect("parse --table");
    assert_eq!(parsed.table, table_name);
    let mut args = consume_args(&brokers, &db.url, &topic, &topic, &table_arg);
    args.push("--exactly-once".into());
    let log = dir.path().join("consume.log");
    let mut child = spawn(&args, &[], &log);
    let status = wait_timeout(&mut child, Duration::from_secs(120), &log, |_| {});
    assert!(
        status.success(),
        "consume failed ({status}):\n{}",
        tail(&log, 30)
    );

    // The created table has exactly the hostile names.
    let q = velostream_codecs::ddl::quote_string;
    let names = db.query(&format!(
        "SELECT name FROM system.columns WHERE database = {} AND table = {} FORMAT TSV",
        q(&db.name),
        q(table_name)
    ));
    let mut got: Vec<String> = names.lines().filter_map(tsv_field).collect();
    let mut want: Vec<String> = HOSTILE_NAMES.iter().map(|s| s.to_string()).collect();
    want.extend(["_velostream_partition".into(), "_velostream_offset".into()]);
    got.sort();
    want.sort();
    assert_eq!(got, want, "column names of the created table");

    // Every value comes back unchanged.
    let quoted: Vec<String> = HOSTILE_NAMES
        .iter()
        .map(|c| velostream_codecs::ddl::quote_ident(c).expect("quote"))
        .collect();
    let text = db.query(&format!(
        "SELECT {} FROM {} ORDER BY {} FORMAT TSV",
        quoted.join(", "),
        parsed.sql().expect("table sql"),
        quoted[0]
    ));
    let rows: Vec<Vec<Option<String>>> = text
        .lines()
        .map(|l| l.split('\t').map(tsv_field).collect())
        .collect();
    assert_eq!(rows.len(), n, "rows:\n{text}");
    for (r, row) in rows.iter().enumerate() {
        assert_eq!(row[0].as_deref(), Some(r.to_string().as_str()));
        for i in 1..HOSTILE_NAMES.len() {
            let want = HOSTILE_VALUES[(r + i) % n].map(|v| format!("{v}#{i}"));
            assert_eq!(row[i], want, "row {r}, column {:?}", HOSTILE_NAMES[i]);
        }
    }
}

#[test]
fn empty_column_name_is_refused_clearly() {
    use arrow_array::{ArrayRef, Int32Array};
    use arrow_schema::{DataType, Field, Schema};
    crate::require_services!(Kafka, ClickHouse);
    let brokers = harness::kafka_brokers();
    let db = TestDb::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let schema = Schema::new(vec![
        Field::new("ok", DataType::Int32, false),
        Field::new("", DataType::Int32, false),
    ]);
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(vec![1, 2])),
        Arc::new(Int32Array::from(vec![3, 4])),
    ];
    let batch = RecordBatch::try_new(Arc::new(schema), cols).expect("batch");
    let file = dir.path().join("empty-name.parquet");
    write_parquet(&file, &batch);
    let topic = harness::unique_name("rel_empty");
    produce(&brokers, &topic, &[file], 1, 1_000);
    let table = db.table("empty_name");
    let args = consume_args(&brokers, &db.url, &topic, &topic, &table);
    let log = dir.path().join("consume.log");
    let mut child = spawn(&args, &[], &log);
    let status = wait_timeout(&mut child, Duration::from_secs(120), &log, |_| {});
    let out = std::fs::read_to_string(&log).expect("log");
    assert!(
        !status.success(),
        "an empty column name was accepted:\n{out}"
    );
    let last = out.lines().last().unwrap_or("");
    eprintln!("reliability: empty column name: {last}");
    assert!(
        last.starts_with("error:")
            && last.contains("empty_name")
            && last.contains("column 2 ")
            && last.contains("empty name"),
        "the refusal names the problem: {last:?}\n{out}"
    );
    let exists = db.query(&format!(
        "SELECT count() FROM system.tables WHERE database = '{}' AND name = 'empty_name'",
        db.name
    ));
    assert_eq!(exists.trim(), "0", "no table was created");
}

// ------------------------------------------------------------------ 5: ClickHouse stopped mid-run

/// A clickhouse-server owned by one test: it can be stopped and started
/// again on the same ports with the same data directory.
struct OwnClickHouse {
    dir: PathBuf,
    http_port: u16,
    child: Option<Child>,
}

impl OwnClickHouse {
    /// Writes the configuration (as `infra/local/services.sh` does) and starts it.
    fn start(dir: &Path) -> OwnClickHouse {
        for sub in ["data", "tmp", "user_files", "format_schemas", "logs"] {
            std::fs::create_dir_all(dir.join(sub)).expect("clickhouse dirs");
        }
        let d = dir.display();
        std::fs::write(
            dir.join("users.xml"),
            "<?xml version=\"1.0\"?>\n<yandex><profiles><default>\
             <max_memory_usage>4000000000</max_memory_usage></default></profiles>\
             <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>\
             <profile>default</profile><quota>default</quota></default></users>\
             <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>\
             <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>\
             </interval></default></quotas></yandex>\n",
        )
        .expect("users.xml");
        let http_port = harness::free_port();
        let tcp_port = harness::free_port();
        std::fs::write(
            dir.join("config.xml"),
            format!(
                "<?xml version=\"1.0\"?>\n<yandex><logger><level>information</level>\
                 <log>{d}/logs/clickhouse-server.log</log><errorlog>{d}/logs/clickhouse-server.err.log</errorlog>\
                 <size>100M</size><count>2</count></logger>\
                 <listen_host>127.0.0.1</listen_host><http_port>{http_port}</http_port><tcp_port>{tcp_port}</tcp_port>\
                 <max_connections>1024</max_connections><keep_alive_timeout>10</keep_alive_timeout>\
                 <max_concurrent_queries>100</max_concurrent_queries>\
                 <mark_cache_size>536870912</mark_cache_size>\
                 <path>{d}/data/</path><tmp_path>{d}/tmp/</tmp_path><user_files_path>{d}/user_files/</user_files_path>\
                 <format_schema_path>{d}/format_schemas/</format_schema_path>\
                 <users_config>{d}/users.xml</users_config><default_profile>default</default_profile>\
                 <default_database>default</default_database><timezone>UTC</timezone>\
                 <mlock_executable>false</mlock_executable></yandex>\n"
            ),
        )
        .expect("config.xml");
        let mut ch = OwnClickHouse {
            dir: dir.to_path_buf(),
            http_port,
            child: None,
        };
        ch.run();
        ch
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    fn binary() -> &'static str {
        ["/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or_else(|| {
                panic!(
                    "clickhouse-server is not installed: run {}",
                    harness::INSTALL_COMMAND
                )
            })
    }

    /// Starts the server and waits until it answers `/ping`.
    fn run(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = File::create(self.dir.join("stdout.log")).expect("log");
        let child = Command::new(Self::binary())
            .arg(format!("--config-file={}/config.xml", self.dir.display()))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting clickhouse-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let ping = format!("{}/ping", self.url());
        while !matches!(harness::http_request("GET", &ping, b""), Ok((200, _))) {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "clickhouse-server on port {} did not start ({exited:?}):\n{}",
                self.http_port,
                tail(&self.dir.join("logs/clickhouse-server.err.log"), 20)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the server (SIGKILL: a crash, not a graceful shutdown, which
    /// on 18.16 keeps serving requests for many seconds) and waits for it.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL clickhouse-server");
            child.wait().expect("wait for clickhouse-server");
        }
    }
}

impl Drop for OwnClickHouse {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Peak resident set size (VmHWM) of `pid` in KiB, if readable.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn consumer_rides_out_a_clickhouse_restart() {
    crate::require_services!(Kafka);
    const ROWS: u64 = 300_000;
    let brokers = harness::kafka_brokers();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ch = OwnClickHouse::start(&dir.path().join("clickhouse"));
    let url = ch.url();
    ch_query(&url, "CREATE DATABASE rel");
    let table = "rel.trips";
    let files = gen_taxi(&dir.path().join("data"), ROWS, 12, 0x5eed_0005);
    let topic = harness::unique_name("rel_chdown");
    harness::create_topic(&brokers, &topic, 2);
    let producer = produce_slowly(&brokers, &topic, &files, 2, Duration::from_millis(700));
    let mut args = consume_args(&brokers, &url, &topic, &topic, table);
    args.push("--exactly-once".into());
    let log = dir.path().join("consume.log");
    let mut child = spawn(&args, &[], &log);
    assert!(
        wait_for_log(
            &mut child,
            &log,
            "partitions assigned",
            Duration::from_secs(60)
        ),
        "the consumer exited before it was assigned partitions:\n{}",
        tail(&log, 30)
    );
    // Let some inserts land, then take ClickHouse away for 5 s.
    let mut peak_kib = 0;
    let until = Instant::now() + Duration::from_secs(60);
    let stored = |url: &str| {
        harness::ch_try_query(url, &format!("SELECT count() FROM {table}"))
            .map_or(0, |t| t.trim().parse::<u64>().unwrap_or(0))
    };
    while stored(&url) == 0 {
        assert!(
            Instant::now() < until,
            "nothing was inserted:\n{}",
            tail(&log, 30)
        );
        peak_kib = peak_kib.max(vm_hwm_kib(child.id()).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = count(&url, table);
    ch.kill();
    let down = Instant::now();
    while down.elapsed() < Duration::from_secs(5) {
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "the consumer exited while ClickHouse was down:\n{}",
            tail(&log, 30)
        );
        peak_kib = peak_kib.max(vm_hwm_kib(child.id()).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(50));
    }
    ch.run();
    let messages = producer.join().expect("producer thread");
    let status = wait_timeout(&mut child, Duration::from_secs(300), &log, |pid| {
        peak_kib = peak_kib.max(vm_hwm_kib(pid).unwrap_or(0));
    });
    let out = std::fs::read_to_string(&log).expect("log");
    assert!(
        status.success(),
        "consumer failed ({status}):\n{}",
        tail(&log, 30)
    );
    let retries = out.matches("retrying").count();
    let batches = read_batches(&files);
    let (missing, duplicates) = compare_multisets(&source_keys(&batches), &table_keys(&url, table));
    let got = table_sums(&url, table);
    eprintln!(
        "reliability: ClickHouse restart: {messages} messages, {before} rows stored before the stop, \
         {retries} insert retries logged, {} rows stored of {ROWS}, {missing} lost, {duplicates} duplicates, \
         consumer peak RSS {:.1} MiB",
        got[0],
        peak_kib as f64 / 1024.0
    );
    assert!(
        before < ROWS,
        "everything was stored before ClickHouse stopped: no fault was injected"
    );
    assert!(retries > 0, "no insert was retried:\n{out}");
    assert_eq!((missing, duplicates), (0, 0), "lost and duplicated rows");
    assert_eq!(got, source_sums(&batches), "checksums of {table}");
    assert!(peak_kib > 0, "peak RSS of the consumer could not be read");
}
