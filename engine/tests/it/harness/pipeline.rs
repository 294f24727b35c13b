//! Moving data through the pipeline in tests: producing Parquet files to a
//! topic with the library's producer, and the `velostream consume` command
//! line the scenarios run.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use velostream::clickhouse::{ClickHouseConfig, TableRef};
use velostream::consumer::ConsumerConfig;
use velostream::kafka::KafkaArgs;
use velostream::producer::{self, ProduceSummary, ProducerConfig};
use velostream::progress::Progress;
use velostream::source::ParquetSource;

use super::cmd::{velostream, Cmd};
use super::data::open;
use super::kafka::create_topic;

/// librdkafka producer setting that puts every message in its own record
/// batch. tansu 0.6.0 answers a fetch that starts inside a multi-record
/// batch with the *next* batch, silently skipping the rest of the batch, so
/// any consumer that resumes mid-batch (a rebalance handing over committed
/// offsets, exactly-once resumption from ClickHouse, pause/resume) loses
/// messages there. Real Kafka returns the whole batch and the client skips
/// the records before the requested offset. Tests that resume mid-stream
/// therefore produce one record per batch.
pub const ONE_RECORD_PER_BATCH: &str = "batch.num.messages=1";

/// Produces every row of `source` to `topic` (which must exist) over
/// `partitions` partitions, with the producer settings `tweak` makes; fails
/// unless every row was acknowledged. Usable inside async tests.
pub fn produce(
    brokers: &str,
    topic: &str,
    source: &Arc<ParquetSource>,
    partitions: usize,
    tweak: impl FnOnce(&mut ProducerConfig),
) -> ProduceSummary {
    let mut cfg = ProducerConfig::new(KafkaArgs::new(brokers), topic);
    tweak(&mut cfg);
    let run = || {
        producer::run(
            &cfg,
            Arc::clone(source),
            partitions,
            Arc::new(AtomicBool::new(false)),
            &Progress::hidden(),
        )
    };
    let summary = if tokio::runtime::Handle::try_current().is_ok() {
        tokio::task::block_in_place(run)
    } else {
        run()
    }
    .unwrap_or_else(|e| panic!("producing to {topic}: {e}"));
    assert_eq!(
        summary.rows,
        source.total_rows(),
        "rows acknowledged by {topic}: {}",
        summary.line()
    );
    summary
}

/// Creates `topic` and produces every row of `files` to it, at most
/// `rows_per_message` rows per message. Returns the messages produced.
pub fn produce_files(
    brokers: &str,
    topic: &str,
    files: &[PathBuf],
    partitions: usize,
    rows_per_message: usize,
) -> u64 {
    create_topic(brokers, topic, partitions as i32);
    let source = Arc::new(open(files));
    produce(brokers, topic, &source, partitions, |c| {
        c.max_rows_per_message = rows_per_message;
    })
    .messages
}

/// Produces `files` one after the other (4,000 rows per message) with
/// `pause` between them on a background thread, so that data keeps
/// arriving while consumers are disturbed. The thread returns the messages
/// produced.
pub fn produce_slowly(
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
            messages += produce_files(&brokers, &topic, std::slice::from_ref(f), partitions, 4_000);
            std::thread::sleep(pause);
        }
        messages
    })
}

/// A `velostream consume` run of the scenarios: creates the table, small
/// inserts, and a short Kafka session so that a killed member leaves the
/// group soon. Fields are public: a scenario changes what it needs, then
/// calls [`Consume::cmd`].
#[derive(Debug, Clone)]
pub struct Consume {
    /// Bootstrap servers.
    pub brokers: String,
    /// ClickHouse URL.
    pub url: String,
    /// Source topic.
    pub topic: String,
    /// Consumer group (default: the topic's name).
    pub group: String,
    /// Target table (`db.table`), created if missing.
    pub table: String,
    /// `--log` filter.
    pub log: String,
    /// `--insert-rows`.
    pub insert_rows: u64,
    /// `--exit-when-idle` seconds; `None` runs until stopped.
    pub exit_when_idle: Option<u64>,
    /// `session.timeout.ms` and `heartbeat.interval.ms`.
    pub session_ms: (u64, u64),
    /// `--exactly-once`.
    pub exactly_once: bool,
}

impl Consume {
    /// Consumes `topic` into `table`: info logs, 20,000-row inserts, idle
    /// exit after 3 s, a 2 s session, at-least-once.
    pub fn new(brokers: &str, url: &str, topic: &str, table: &str) -> Consume {
        Consume {
            brokers: brokers.to_string(),
            url: url.to_string(),
            topic: topic.to_string(),
            group: topic.to_string(),
            table: table.to_string(),
            log: "info".into(),
            insert_rows: 20_000,
            exit_when_idle: Some(3),
            session_ms: (2_000, 500),
            exactly_once: false,
        }
    }

    /// The command line.
    pub fn cmd(&self) -> Cmd {
        let mut cmd = velostream()
            .args(["--log", &self.log, "consume", "--brokers", &self.brokers])
            .args(["--clickhouse-url", &self.url, "--topic", &self.topic])
            .args([
                "--group",
                &self.group,
                "--table",
                &self.table,
                "--create-table",
            ])
            .args(["--insert-rows", &self.insert_rows.to_string()])
            .args(["--max-delay-ms", "200"])
            .args(["-X", &format!("session.timeout.ms={}", self.session_ms.0)])
            .args([
                "-X",
                &format!("heartbeat.interval.ms={}", self.session_ms.1),
            ]);
        if let Some(secs) = self.exit_when_idle {
            cmd = cmd.args(["--exit-when-idle", &secs.to_string()]);
        }
        if self.exactly_once {
            cmd = cmd.arg("--exactly-once");
        }
        cmd
    }
}

/// Creates `topic` (`partitions`) and an exactly-once `table` with the schema
/// of `file` on every server of `urls` (replicas of one shard), partitioned
/// by day of pickup (`PARTITION BY toYYYYMMDD(tpep_pickup_datetime)`):
/// ClickHouse writes an insert that spans several days as several parts,
/// one after the other, so a crash can leave part of it stored. With more
/// than one URL the table is a `ReplicatedMergeTree` (the servers' `{shard}`
/// and `{replica}` macros). `velostream provision --exactly-once` makes a
/// template with the offset columns; the table is created `AS` it.
pub fn day_partitioned_table(
    (brokers, topic, partitions): (&str, &str, usize),
    urls: &[&str],
    table: &str,
    file: &std::path::Path,
) {
    let template = format!("{table}_template");
    // A plain template on each server (provision is idempotent).
    for url in urls {
        velostream()
            .args(["provision", "--brokers", brokers, "--topic", topic])
            .args(["--partitions", &partitions.to_string()])
            .args(["--clickhouse-url", url])
            .args(["--table", &template, "--exactly-once"])
            .arg("--schema-from")
            .arg(file)
            .expect_success();
    }
    let engine = if urls.len() > 1 {
        let path = table.replace('.', "_");
        format!("ReplicatedMergeTree('/clickhouse/tables/{{shard}}/{path}', '{{replica}}')")
    } else {
        "MergeTree".to_string()
    };
    for url in urls {
        super::clickhouse::ch_query(
            url,
            &format!(
                "CREATE TABLE {table} AS {template} ENGINE = {engine} \
                 PARTITION BY toYYYYMMDD(tpep_pickup_datetime) ORDER BY tuple()"
            ),
        );
    }
}

/// A library consumer of `topic` on the test broker into `table` on the
/// test server, in a group of its own, that creates the table and exits
/// after 3 s without messages.
pub fn consumer_config(topic: &str, table: &str) -> ConsumerConfig {
    let mut c = ConsumerConfig::new(
        KafkaArgs::new(super::kafka_brokers()),
        topic,
        super::unique_name("group"),
        ClickHouseConfig::new(super::clickhouse_url()),
        TableRef::parse(table).expect("table name"),
    );
    c.create_table = true;
    c.exit_when_idle = Some(Duration::from_secs(3));
    c.max_delay = Duration::from_millis(200);
    c
}

/// `velostream --log info consume` of `topic` on the test broker into
/// `table`; the caller adds the ClickHouse URL(s) and the mode.
pub fn consume_cli(topic: &str, table: &str) -> Cmd {
    velostream()
        .args(["--log", "info", "consume"])
        .args(["--brokers", &super::kafka_brokers()])
        .args(["--topic", topic, "--table", table])
}
