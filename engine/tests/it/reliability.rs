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
        while harness::http::get_ok(&ping).is_err() {
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

// ------------------------------------------------------------------ rebalance: join, then leave

/// How the second member leaves the group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Leave {
    /// SIGTERM: the graceful path of ctrl-c (flush, commit, leave group).
    Clean,
    /// SIGKILL: nothing is flushed or committed; the group notices only
    /// when the member's session (10 s here) expires. tansu 0.6 then keeps
    /// the dead member and assigns it partitions again, so the killed member
    /// is restarted (as a supervisor would) and the new process takes them.
    Killed,
}

/// A consumer process, killed on drop so a failing test leaves none behind.
struct Member {
    child: Child,
    log: PathBuf,
}

impl Member {
    fn start(args: &[String], log: PathBuf) -> Member {
        Member {
            child: spawn(args, &[], &log),
            log,
        }
    }

    fn text(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// The partition sets of every "partitions assigned" line so far.
    fn assignments(&self) -> Vec<Vec<i32>> {
        self.text()
            .lines()
            .filter(|l| l.contains("partitions assigned"))
            .map(|l| {
                let set = l
                    .split("partitions={")
                    .nth(1)
                    .and_then(|r| r.split('}').next())
                    .unwrap_or_else(|| panic!("no partition set in {l:?}"));
                set.split(',')
                    .filter(|p| !p.trim().is_empty())
                    .map(|p| p.trim().parse().expect("partition number"))
                    .collect()
            })
            .collect()
    }

    /// Fails the test when the process has exited.
    fn assert_running(&mut self, what: &str) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!(
                "{what}: the member exited ({status}); log {}:\n{}",
                self.log.display(),
                tail(&self.log, 30)
            );
        }
    }

    /// Polls `cond` every 20 ms for up to `timeout`, failing when the member exits.
    fn wait_until(&mut self, what: &str, timeout: Duration, mut cond: impl FnMut(&Member) -> bool) {
        let deadline = Instant::now() + timeout;
        while !cond(self) {
            self.assert_running(what);
            assert!(
                Instant::now() < deadline,
                "{what}: not within {timeout:?}; logs:\n{}",
                all_logs(&self.log)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then waits for a successful exit; returns the log.
    fn terminate(&mut self) -> String {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid}");
        let status = wait_timeout(&mut self.child, Duration::from_secs(60), &self.log, |_| {});
        assert!(
            status.success(),
            "the member did not stop cleanly on SIGTERM ({status}):\n{}",
            tail(&self.log, 30)
        );
        self.text()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last lines of every log next to `log` (all members of a scenario).
fn all_logs(log: &Path) -> String {
    let dir = log.parent().expect("log directory");
    let mut out = String::new();
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    logs.sort();
    for l in logs
        .iter()
        .filter(|l| l.extension().is_some_and(|e| e == "log"))
    {
        out.push_str(&format!(
            "--- {}\n{}\n",
            l.display(),
            strip_ansi(&tail(l, 25))
        ));
    }
    out
}

/// Removes ANSI colour sequences (tracing colours field names).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `N` from the "inserted N rows" of a consume summary line.
fn inserted_rows(log: &str) -> u64 {
    let line = log
        .lines()
        .find(|l| l.starts_with("consumed "))
        .unwrap_or_else(|| panic!("no summary line in:\n{log}"));
    line.split("inserted ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no inserted count in {line:?}"))
}

/// What one rebalance run measured.
struct RebalanceReport {
    batches: Vec<RecordBatch>,
    table: String,
    db: TestDb,
    messages: u64,
    b_partitions: Vec<i32>,
}

/// A member A runs alone on a 4-partition topic; member B joins and gets
/// partitions (A's are revoked: flush + commit, then a new assignment);
/// data keeps arriving while B owns partitions and B inserts some of it;
/// then B leaves (`leave`) and A takes every partition back (after a
/// SIGKILL: the session expires, and a restarted B takes what tansu still
/// assigns to the dead one); more data arrives afterwards. Ends when the
/// table holds at least every source row and every member has been stopped
/// with SIGTERM.
fn rebalance_scenario(leave: Leave, exactly_once: bool, seed: u64) -> RebalanceReport {
    const FILES: usize = 12;
    const ROWS: u64 = 120_000;
    let brokers = harness::kafka_brokers();
    let url = harness::clickhouse_url();
    let db = TestDb::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let files = gen_taxi(&dir.path().join("data"), ROWS, FILES, seed);
    let topic = harness::unique_name("rel_rebalance");
    let table = db.table("trips");
    harness::create_topic(&brokers, &topic, 4);
    let stored = |url: &str| {
        harness::ch_try_query(url, &format!("SELECT count() FROM {table}"))
            .map_or(0, |t| t.trim().parse::<u64>().unwrap_or(0))
    };
    // Small messages (1,000 rows): every partition gets many, so hand-overs
    // happen between messages that are still to come.
    let mut messages = produce(&brokers, &topic, &files[..3], 4, 1_000);

    let mut args = consume_args(&brokers, &url, &topic, &topic, &table);
    // Members run until stopped: no idle exit while a rebalance is pending.
    let idle = args
        .iter()
        .position(|a| a == "--exit-when-idle")
        .expect("idle flag");
    args.drain(idle..idle + 2);
    // Lane debug lines say when a member has inserted.
    args[1] = "info,velostream::consumer::lane=debug".into();
    let insert_rows = args
        .iter()
        .position(|a| a == "--insert-rows")
        .expect("insert-rows flag");
    args[insert_rows + 1] = "2000".into();
    // tansu 0.6 never settles a two-member group with a 2 s session
    // (the joining member's session expires while it waits for the join
    // to complete, forever): 10 s, which a SIGKILLed member also needs to
    // be noticed.
    for a in args.iter_mut() {
        if a == "session.timeout.ms=2000" {
            *a = "session.timeout.ms=10000".into();
        } else if a == "heartbeat.interval.ms=500" {
            *a = "heartbeat.interval.ms=1000".into();
        }
    }
    if exactly_once {
        args.push("--exactly-once".into());
    }
    let mut a = Member::start(&args, dir.path().join("a.log"));
    a.wait_until("A stores its first rows", Duration::from_secs(60), |_| {
        stored(&url) > 0
    });

    let mut b = Member::start(&args, dir.path().join("b.log"));
    b.wait_until("B gets partitions", Duration::from_secs(60), |m| {
        m.assignments().iter().any(|p| !p.is_empty())
    });
    let b_partitions = b
        .assignments()
        .into_iter()
        .find(|p| !p.is_empty())
        .expect("B's partitions");
    a.wait_until("A is assigned the rest", Duration::from_secs(60), |m| {
        m.assignments().len() >= 2
    });
    assert!(
        b_partitions.len() < 4,
        "B took every partition: {b_partitions:?}"
    );
    // Data arrives while B is a member; B inserts some of it.
    // Data keeps arriving while B is a member (one file every 400 ms);
    // B leaves as soon as it has inserted some of it.
    let inserts_before = b.text().matches("inserted").count();
    let middle = {
        let (brokers, topic, files) = (brokers.clone(), topic.clone(), files[3..8].to_vec());
        std::thread::spawn(move || {
            let mut messages = 0;
            for f in &files {
                messages += produce(&brokers, &topic, std::slice::from_ref(f), 4, 1_000);
                std::thread::sleep(Duration::from_millis(400));
            }
            messages
        })
    };
    b.wait_until("B inserts rows", Duration::from_secs(60), |m| {
        m.text().matches("inserted").count() > inserts_before
    });
    let at_leave = stored(&url);
    let b_rows = match leave {
        Leave::Clean => Some(inserted_rows(&b.terminate())),
        Leave::Killed => {
            b.child.kill().expect("SIGKILL B");
            b.child.wait().expect("wait B");
            None
        }
    };
    let a_assignments = a.assignments().len();
    let mut replacement = None;
    match leave {
        Leave::Clean => a.wait_until(
            "A takes every partition back",
            Duration::from_secs(60),
            |m| {
                let all = m.assignments();
                all.len() > a_assignments && all.last().is_some_and(|p| p.len() == 4)
            },
        ),
        Leave::Killed => {
            a.wait_until(
                "the group notices the killed member (session expiry)",
                Duration::from_secs(60),
                |m| m.assignments().len() > a_assignments,
            );
            let now = a.assignments().last().cloned().unwrap_or_default();
            if now.len() < 4 {
                // tansu 0.6 keeps the dead member in the group after its
                // session expired and assigns it partitions again; like an
                // operator (or systemd), restart the killed member.
                eprintln!(
                    "reliability: after B's session expired A owns {now:?} only; restarting B"
                );
                let mut b2 = Member::start(&args, dir.path().join("b2.log"));
                b2.wait_until(
                    "the restarted B gets partitions",
                    Duration::from_secs(60),
                    |m| m.assignments().iter().any(|p| !p.is_empty()),
                );
                replacement = Some(b2);
            }
        }
    }
    messages += middle.join().expect("producer thread");
    // More data after the leave, for A alone.
    messages += produce(&brokers, &topic, &files[8..], 4, 1_000);
    a.wait_until("every row is stored", Duration::from_secs(180), |_| {
        stored(&url) >= ROWS
    });
    // Late duplicates would show up in this grace period.
    std::thread::sleep(Duration::from_secs(2));
    if let Some(mut b2) = replacement {
        b2.terminate();
    }
    let a_log = a.terminate();
    eprintln!(
        "reliability: rebalance ({leave:?} leave, exactly_once={exactly_once}): {messages} messages, \
         B owned partitions {b_partitions:?}, {at_leave} rows stored when B left, B inserted {}, \
         A inserted {}, A assignments {}",
        b_rows.map_or("? (killed)".into(), |r| r.to_string()),
        inserted_rows(&a_log),
        a.assignments().len()
    );
    if let Some(rows) = b_rows {
        assert!(rows > 0, "B inserted nothing before leaving");
    }
    assert!(at_leave < ROWS, "everything was stored before B left");
    RebalanceReport {
        batches: read_batches(&files),
        table,
        db,
        messages,
        b_partitions,
    }
}

/// Exactly-once: the table equals the source (no loss, no duplicates).
fn assert_exact(r: &RebalanceReport, what: &str) {
    let url = &r.db.url;
    let (missing, duplicates) =
        compare_multisets(&source_keys(&r.batches), &table_keys(url, &r.table));
    let want = source_sums(&r.batches);
    let got = table_sums(url, &r.table);
    eprintln!(
        "reliability: {what}: {} messages, {} rows stored of {}, {missing} lost, {duplicates} duplicates \
         (B had {:?})",
        r.messages, got[0], want[0], r.b_partitions
    );
    assert_eq!(
        (missing, duplicates),
        (0, 0),
        "{what}: lost and duplicated rows"
    );
    assert_eq!(
        got, want,
        "{what}: checksums (count, sums, null counts) differ from the source"
    );
    let per_message = ch_query(
        url,
        &format!(
            "SELECT uniqExact(_velostream_partition, _velostream_offset) FROM {} FORMAT TSV",
            r.table
        ),
    );
    assert_eq!(
        per_message.trim(),
        r.messages.to_string(),
        "{what}: every message stored once"
    );
}

/// At-least-once: nothing missing; duplicates are reported.
fn assert_nothing_missing(r: &RebalanceReport, what: &str) -> u64 {
    let url = &r.db.url;
    let source_rows: u64 = r.batches.iter().map(|b| b.num_rows() as u64).sum();
    let (missing, duplicates) =
        compare_multisets(&source_keys(&r.batches), &table_keys(url, &r.table));
    let stored = count(url, &r.table);
    eprintln!(
        "reliability: {what}: {} messages, {stored} rows stored of {source_rows}, {missing} lost, \
         {duplicates} duplicates (B had {:?})",
        r.messages, r.b_partitions
    );
    assert_eq!(missing, 0, "{what}: rows lost");
    assert_eq!(
        stored,
        source_rows + duplicates,
        "{what}: row count = source rows + duplicates"
    );
    duplicates
}

#[test]
fn rebalance_member_joins_then_leaves_cleanly_exactly_once() {
    let r = rebalance_scenario(Leave::Clean, true, 0x5eed_0101);
    assert_exact(&r, "exactly-once, clean leave");
}

#[test]
fn rebalance_member_joins_then_leaves_cleanly_at_least_once() {
    let r = rebalance_scenario(Leave::Clean, false, 0x5eed_0102);
    let duplicates = assert_nothing_missing(&r, "at-least-once, clean leave");
    // A clean leave flushes and commits before handing over: no replay.
    assert_eq!(duplicates, 0, "a clean hand-over duplicated rows");
}

#[test]
fn rebalance_member_joins_then_is_killed_exactly_once() {
    let r = rebalance_scenario(Leave::Killed, true, 0x5eed_0103);
    assert_exact(&r, "exactly-once, SIGKILL leave");
}

#[test]
fn rebalance_member_joins_then_is_killed_at_least_once() {
    let r = rebalance_scenario(Leave::Killed, false, 0x5eed_0104);
    assert_nothing_missing(&r, "at-least-once, SIGKILL leave");
}

// ------------------------------------------------------------------ broker restarted mid-produce

/// The tansu binary, as `infra/local/services.sh` finds it.
fn tansu_bin() -> PathBuf {
    if let Ok(b) = std::env::var("VELOSTREAM_TANSU_BIN") {
        return PathBuf::from(b);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("tansu"))
        .find(|p| p.is_file());
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/tansu"));
    on_path
        .or(home.filter(|p| p.is_file()))
        .unwrap_or_else(|| panic!("tansu is not installed: run {}", harness::INSTALL_COMMAND))
}

/// A private tansu on a fixed port (memory storage), killed on drop.
struct OwnTansu {
    child: Child,
}

impl OwnTansu {
    fn start(port: u16, log: &Path) -> OwnTansu {
        let out = File::create(log).expect("tansu log");
        let err = out.try_clone().expect("tansu log");
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(tansu_bin())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("starting tansu");
        OwnTansu { child }
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("run kill");
        assert!(ok.success(), "kill {sig} {pid} (tansu)");
    }
}

impl Drop for OwnTansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `velostream_producer_rows_total` (rows acknowledged, counted in the
/// delivery callback) from a producer's metrics endpoint.
fn acked_rows_metric(addr: &str) -> Option<u64> {
    let body = harness::prometheus::metrics_page(addr)?;
    body.lines()
        .find(|l| l.starts_with("velostream_producer_rows_total "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
}

/// Every message in `topic` (all partitions, from the start): returns
/// (messages, distinct messages by their envelope source id, rows of the
/// distinct messages).
fn topic_contents(brokers: &str, topic: &str) -> (u64, u64, u64) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Headers;
    use rdkafka::Message;
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", harness::unique_name("restart_reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("topic reader");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut messages = 0;
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut last = Instant::now();
    // The high watermark cannot be trusted on tansu: read until 5 s pass
    // without a message (after the group join).
    while last.elapsed() < Duration::from_secs(5) {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                last = Instant::now();
                messages += 1;
                let h: HashMap<String, String> = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_string(),
                                    String::from_utf8_lossy(h.value.unwrap_or(&[])).into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let id = format!(
                    "{}/{}/{}",
                    h["velostream.file"], h["velostream.row_group"], h["velostream.slice"]
                );
                let rows: u64 = h["velostream.rows"].parse().expect("rows header");
                seen.insert(id, rows);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    (messages, seen.len() as u64, seen.values().sum())
}

/// The numbers of the producer's delivery error: "X of Y messages (R of S
/// rows) were not acknowledged … ; A messages with B rows were acknowledged".
fn delivery_error_counts(out: &str) -> [u64; 6] {
    let line = out
        .lines()
        .find(|l| l.contains("were not acknowledged"))
        .unwrap_or_else(|| panic!("no delivery error in:\n{out}"));
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|t| !t.is_empty())
        .filter_map(|t| t.parse().ok())
        .collect();
    let at = |word: &str| {
        let i = line.find(word).expect("marker");
        line[..i]
            .split(|c: char| !c.is_ascii_digit())
            .filter(|t| !t.is_empty())
            .count()
    };
    let (x, y, r, s) = (nums[0], nums[1], nums[2], nums[3]);
    let acked = at("messages with");
    let (a, b) = (nums[acked - 1], nums[acked]);
    [x, y, r, s, a, b]
}

/// The broker is restarted in the middle of a produce run. tansu keeps its
/// data in memory, so the restarted broker has lost the topic (the test
/// creates it again, as an operator would) and every message it had
/// acknowledged: that loss is the broker's, and not what is tested. What is
/// asserted is the producer's accounting:
/// - the broker is frozen (SIGSTOP) before it is killed, so the rows it
///   acknowledged are counted exactly (`acked_before`, from the delivery
///   callback counter of the producer's metrics endpoint);
/// - the run either succeeds, and then it claims every row, and every row not
///   acknowledged by the first broker is in the restarted one (no silent
///   loss); or it fails with an error naming the broker whose counts add up
///   (not acknowledged + acknowledged = sent), and every row acknowledged
///   after the restart is in the restarted broker;
/// - it never hangs (time limit) and never reports success for fewer rows.
#[test]
fn producer_across_a_broker_restart_never_claims_unacknowledged_rows() {
    const ROWS: u64 = 300_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = harness::free_port();
    let brokers = format!("127.0.0.1:{port}");
    let broker = OwnTansu::start(port, &dir.path().join("tansu-1.log"));
    let topic = harness::unique_name("rel_restart");
    harness::create_topic(&brokers, &topic, 2);
    let files = gen_taxi(&dir.path().join("data"), ROWS, 1, 0x5eed_0201);
    let metrics = format!("127.0.0.1:{}", harness::free_port());
    let log = dir.path().join("produce.log");
    let file = files[0].display().to_string();
    let args: Vec<String> = [
        "--log",
        "warn",
        "produce",
        "--brokers",
        &brokers,
        "--topic",
        &topic,
        "--partitions",
        "2",
        "--max-rows-per-message",
        "50",
        "--metrics-addr",
        &metrics,
        // Paced by acknowledgements; lost messages fail within 30 s.
        "-X",
        "queue.buffering.max.messages=200",
        "-X",
        "message.timeout.ms=30000",
        &file,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut producer = Member::start(&args, log.clone());
    producer.wait_until("rows are acknowledged", Duration::from_secs(60), |_| {
        acked_rows_metric(&metrics).is_some_and(|r| r > 0)
    });
    // Freeze the broker: no acknowledgement can arrive any more. Once the
    // counter is stable it is exactly what the first broker acknowledged.
    broker.signal("-STOP");
    let mut acked_before = acked_rows_metric(&metrics).expect("metrics");
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = acked_rows_metric(&metrics).expect("metrics");
        if now == acked_before {
            break;
        }
        acked_before = now;
    }
    drop(broker); // SIGKILL
    let restarted = OwnTansu::start(port, &dir.path().join("tansu-2.log"));
    harness::create_topic(&brokers, &topic, 2);
    let status = wait_timeout(&mut producer.child, Duration::from_secs(180), &log, |_| {});
    let out = strip_ansi(&std::fs::read_to_string(&log).expect("log"));
    let (messages, distinct, rows_after) = topic_contents(&brokers, &topic);
    drop(restarted);
    eprintln!(
        "reliability: broker restart mid-produce: {acked_before} of {ROWS} rows acknowledged by the \
         first broker; the restarted one holds {rows_after} rows in {distinct} distinct messages \
         ({} duplicate messages); producer {status}:\n{}",
        messages - distinct,
        tail(&log, 5)
    );
    assert!(
        acked_before > 0 && acked_before < ROWS,
        "the restart must happen mid-run: {acked_before} of {ROWS} acknowledged before it"
    );
    if status.success() {
        let line = out
            .lines()
            .find(|l| l.starts_with("produced "))
            .unwrap_or_else(|| panic!("no summary in:\n{out}"));
        let claimed: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .expect("produced N rows");
        assert_eq!(claimed, ROWS, "a successful run claims every row: {line}");
        assert!(
            rows_after + acked_before >= ROWS,
            "silent loss: {} rows acknowledged after the restart are not in the broker",
            ROWS - acked_before - rows_after
        );
    } else {
        assert!(out.contains(&brokers), "the error names {brokers}:\n{out}");
        let [x, y, r, s, a, b] = delivery_error_counts(&out);
        assert_eq!(
            x + a,
            y,
            "messages: not acknowledged + acknowledged = sent:\n{out}"
        );
        assert_eq!(
            r + b,
            s,
            "rows: not acknowledged + acknowledged = sent:\n{out}"
        );
        assert!(s <= ROWS && b < ROWS, "{out}");
        assert!(
            b >= acked_before,
            "acknowledged rows went down: {b} < {acked_before}"
        );
        assert!(
            rows_after >= b - acked_before,
            "silent loss: {b} rows acknowledged, {acked_before} by the first broker, but only \
             {rows_after} in the restarted one"
        );
    }
}
