//! What the consumer does at the limits of the server and of memory:
//! values the table cannot take (dead letter `encode_failed`, or an error
//! naming topic, partition, offset, column and value), inserts the server
//! refuses as too large (split down to one message, then dead-lettered),
//! "too many parts" (backed off, nothing lost), and a backlog of messages
//! that decode to 120 MiB each consumed with the default byte budget (peak
//! RSS under the bound the README states).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{Int64Array, RecordBatch, StringArray, TimestampSecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use velostream::consumer::{self, ConsumerConfig};
use velostream_codecs::ipc::{IpcCompression, IpcEncoder};

use crate::harness::clickhouse::ch_query;
use crate::harness::cmd::Cmd;
use crate::harness::exactly_once::{exactly_once, At};
use crate::harness::kafka::{read_topic, RawProducer, Until};
use crate::harness::pipeline::{consume_cli, consumer_config};
use crate::harness::process::vm_hwm_kib;
use crate::harness::{self, TestDb};

/// A topic of `partitions` on the test broker.
fn topic(prefix: &str, partitions: i32) -> String {
    let name = harness::unique_name(prefix);
    harness::create_topic(&harness::kafka_brokers(), &name, partitions);
    name
}

/// `(id, pickup_ts)` rows: ids `first..first+n`, one timestamp each.
fn id_ts(first: i64, ts: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(
            "pickup_ts",
            DataType::Timestamp(TimeUnit::Second, None),
            false,
        ),
    ]));
    let ids: Vec<i64> = (first..first + ts.len() as i64).collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(TimestampSecondArray::from(ts.to_vec())),
        ],
    )
    .expect("batch")
}

/// Sends each batch as one Arrow message to partition 0; their positions.
fn send_batches(topic: &str, batches: &[RecordBatch]) -> Vec<At> {
    let mut encoder = IpcEncoder::new(IpcCompression::Zstd).expect("encoder");
    let producer = RawProducer::new(&harness::kafka_brokers());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut at = Vec::new();
        for b in batches {
            let value = encoder
                .encode(&b.schema(), std::slice::from_ref(b))
                .expect("encode");
            at.push(producer.send_to(topic, Some(0), &value, &[]).await);
        }
        at
    })
}

fn consume(cfg: ConsumerConfig) -> velostream::Result<consumer::ConsumeSummary> {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(180),
            consumer::run(cfg, Arc::new(AtomicBool::new(false))),
        )
        .await
        .expect("consumer still running after 180 s")
    })
}

/// 2024-01-01 00:00:00 UTC and 1960-01-01 00:00:00 UTC.
const IN_2024: i64 = 1_704_067_200;
const IN_1960: i64 = -315_619_200;

/// A timestamp before 1970 cannot be stored in ClickHouse 18.16's
/// `DateTime`: without a dead-letter topic the consumer stops naming the
/// topic, partition, offset, column and value; with one, that message goes
/// there (reason `encode_failed`) and every other row is stored once.
#[test]
fn a_value_the_table_cannot_take_is_named_or_dead_lettered() {
    let db = TestDb::new();
    let topic = topic("lim_encode", 1);
    let good = |first: i64| id_ts(first, &[IN_2024, IN_2024 + 60, IN_2024 + 120]);
    let batches = [
        good(0),
        good(3),
        id_ts(6, &[IN_2024, IN_1960, IN_2024]),
        good(9),
    ];
    let at = send_batches(&topic, &batches);
    let (p, bad) = at[2];

    let err = consume(consumer_config(&topic, &db.table("strict")))
        .expect_err("a value out of range without --dlq-topic must stop the consumer")
        .to_string();
    for needle in [
        topic.as_str(),
        &format!("partition {p} offset {bad}"),
        "pickup_ts",
        &IN_1960.to_string(),
        "--dlq-topic",
    ] {
        assert!(err.contains(needle), "error must name {needle:?}: {err}");
    }

    let dlq = topic.clone() + "_dlq";
    harness::create_topic(&harness::kafka_brokers(), &dlq, 1);
    let table = db.table("trips");
    let mut cfg = consumer_config(&topic, &table);
    cfg.dlq_topic = Some(dlq.clone());
    cfg.exactly_once = true;
    let summary = consume(cfg).expect("consume with a dead-letter topic");
    eprintln!("encode failure: {summary:?}");
    let ids = ch_query(
        &db.url,
        &format!("SELECT groupArray(id) FROM (SELECT id FROM {table} ORDER BY id)"),
    );
    assert_eq!(ids.trim(), "[0,1,2,3,4,5,9,10,11]", "stored ids");
    let letters = read_topic(&harness::kafka_brokers(), &dlq, Until::Messages(1));
    let letter = &letters[0];
    assert_eq!(
        letter.expect_header("velostream.dlq.reason"),
        "encode_failed"
    );
    assert_eq!(
        letter.expect_header("velostream.dlq.offset"),
        bad.to_string()
    );
    assert!(
        letter
            .expect_header("velostream.dlq.error")
            .contains("pickup_ts"),
        "the dead letter's error names the column"
    );
    exactly_once(&db.url, &table, &harness::kafka_brokers(), &topic)
        .messages(4)
        .dead_letters([(p, bad)])
        .assert();
}

/// `velostream --log info consume` of `topic` on the test broker into
/// `table` at `url`.
fn consume_cmd(url: &str, topic: &str, table: &str) -> Cmd {
    consume_cli(topic, table).args(["--clickhouse-url", url])
}

/// Messages of `rows` strings of 1 KiB each (highly compressible: a few KiB
/// on the wire, about `rows` KiB decoded).
fn big_strings(rows: usize, tag: usize) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("payload", DataType::Utf8, false),
    ]));
    let text = format!("{tag:04}").repeat(256);
    let payload: Vec<&str> = (0..rows).map(|_| text.as_str()).collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(0..rows as i64)),
            Arc::new(StringArray::from(payload)),
        ],
    )
    .expect("batch")
}

/// The consumer's memory bound, as the README states it: the byte budget
/// (`--max-buffered-bytes`, default 512 MiB) plus 512 MiB for librdkafka's
/// prefetch (64 MiB, overshot by one fetch of up to 100 MiB), one message
/// being decoded (up to 256 MiB), the runtime and the allocator.
const DEFAULT_BUDGET_MIB: u64 = 512;
const OVERHEAD_MIB: u64 = 512;

/// A backlog of 12 messages that each decode to 120 MiB (1.4 GiB in all),
/// consumed with the default settings: every row is stored and the peak
/// RSS stays under the stated bound.
#[test]
fn a_backlog_of_huge_decoded_messages_stays_within_the_memory_bound() {
    const MESSAGES: usize = 12;
    const ROWS: usize = 120 * 1024;
    let db = TestDb::new();
    let topic = topic("lim_memory", 1);
    let batches: Vec<RecordBatch> = (0..MESSAGES).map(|i| big_strings(ROWS, i)).collect();
    let decoded: usize = batches.iter().map(|b| b.get_array_memory_size()).sum();
    send_batches(&topic, &batches);
    drop(batches);
    let table = db.table("big");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut member = consume_cmd(&db.url, &topic, &table)
        .args(["--create-table", "--exit-when-idle", "5"])
        .spawn(&dir.path().join("consume.log"));
    let mut peak_kib = 0;
    let status = member.wait_with(Duration::from_secs(600), |pid| {
        peak_kib = peak_kib.max(vm_hwm_kib(pid).unwrap_or(0));
    });
    assert!(
        status.success(),
        "consumer failed ({status})\n{}",
        member.describe()
    );
    let stored: u64 = ch_query(&db.url, &format!("SELECT count() FROM {table}"))
        .trim()
        .parse()
        .expect("count");
    let peak_mib = peak_kib / 1024;
    eprintln!(
        "memory bound: {MESSAGES} messages decoding to {} MiB in all, {stored} rows stored, \
         consumer peak RSS {peak_mib} MiB (bound {} MiB)",
        decoded >> 20,
        DEFAULT_BUDGET_MIB + OVERHEAD_MIB
    );
    assert_eq!(stored, (MESSAGES * ROWS) as u64, "rows stored");
    assert!(peak_kib > 0, "peak RSS could not be read");
    assert!(
        peak_mib <= DEFAULT_BUDGET_MIB + OVERHEAD_MIB,
        "peak RSS {peak_mib} MiB over the bound {DEFAULT_BUDGET_MIB} + {OVERHEAD_MIB} MiB"
    );
}

/// Sends `batches` to partition 0 of a new topic; (topic, positions).
fn topic_with(prefix: &str, batches: &[RecordBatch]) -> (String, Vec<At>) {
    let topic = topic(prefix, 1);
    let at = send_batches(&topic, batches);
    (topic, at)
}

/// With a per-query memory limit (`--clickhouse-setting
/// max_memory_usage=…`), inserts of many messages are refused (code 241,
/// "for query") and split in two until they fit; the one message too large
/// on its own goes to the dead-letter topic (reason `insert_failed`) and
/// everything else is stored exactly once.
#[test]
fn too_large_inserts_are_split_and_a_single_oversized_message_dead_lettered() {
    let db = TestDb::new();
    let mut batches: Vec<RecordBatch> = (0..16).map(|i| big_strings(2_000, i)).collect();
    batches.insert(9, big_strings(48_000, 99));
    let (topic, at) = topic_with("lim_split", &batches);
    let oversized = at[9];
    let dlq = topic.clone() + "_dlq";
    harness::create_topic(&harness::kafka_brokers(), &dlq, 1);
    let table = db.table("split");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = consume_cmd(&db.url, &topic, &table)
        .args(["--create-table", "--exactly-once"])
        .args(["--dlq-topic", &dlq, "--exit-when-idle", "5"])
        .args(["--insert-rows", "1000000", "--max-delay-ms", "2000"])
        // 48 MiB: an insert costs ClickHouse 18.16 about 21 MiB plus its
        // rows, so a 2 MB message (or eight) fits and the 48 MB one does not.
        .args(["--clickhouse-setting", "max_memory_usage=50000000"])
        .timeout(Duration::from_secs(300))
        .expect_success();
    let log = out.text();
    let splits = log.matches("splitting it in two").count();
    let letters = read_topic(&harness::kafka_brokers(), &dlq, Until::Messages(1));
    eprintln!(
        "split: {splits} splits, dead letter at {:?}; {}",
        oversized,
        dir.path().display()
    );
    assert!(splits > 0, "no insert was split:\n{log}");
    assert_eq!(
        letters[0].expect_header("velostream.dlq.reason"),
        "insert_failed"
    );
    assert_eq!(
        letters[0].expect_header("velostream.dlq.offset"),
        oversized.1.to_string()
    );
    assert!(
        letters[0]
            .expect_header("velostream.dlq.error")
            .contains("241")
            || letters[0]
                .expect_header("velostream.dlq.error")
                .contains("MEMORY_LIMIT_EXCEEDED"),
        "the dead letter carries the server's error"
    );
    exactly_once(&db.url, &table, &harness::kafka_brokers(), &topic)
        .messages(batches.len() as u64)
        .dead_letters([oversized])
        .assert();
}

/// A table whose partitions take at most 3 parts (`parts_to_throw_insert`;
/// 18.x checks it only above `parts_to_delay_insert`) and whose merges run
/// only when the test lets them (every 3 s, `SYSTEM START MERGES` and
/// `OPTIMIZE`):
/// inserts meet "Too many parts" (code 252) again and again; the consumer
/// backs off and slows down instead of stopping, and every row is stored
/// exactly once.
#[test]
fn too_many_parts_is_waited_out_and_nothing_is_lost() {
    let db = TestDb::new();
    let table = db.table("parts");
    ch_query(
        &db.url,
        &format!(
            "CREATE TABLE {table} (id Int64, payload String, \
             _velostream_partition UInt32, _velostream_offset UInt64, _velostream_insert UInt64, \
             _velostream_insert_rows UInt32, _velostream_source UInt64, _velostream_slice UInt64) \
             ENGINE = MergeTree PARTITION BY tuple() ORDER BY id \
             SETTINGS parts_to_throw_insert = 3, parts_to_delay_insert = 2"
        ),
    );
    // Merges run only when the test lets them (below).
    ch_query(&db.url, &format!("SYSTEM STOP MERGES {table}"));
    let batches: Vec<RecordBatch> = (0..24).map(|i| big_strings(500, i)).collect();
    let (topic, _) = topic_with("lim_parts", &batches);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut member = consume_cmd(&db.url, &topic, &table)
        .args(["--exactly-once", "--exit-when-idle", "8"])
        .args(["--insert-rows", "1000", "--max-delay-ms", "100"])
        .spawn(&dir.path().join("consume.log"));
    let status = member.wait_with(Duration::from_secs(300), |_| {
        std::thread::sleep(Duration::from_secs(3));
        for sql in [
            "SYSTEM START MERGES",
            "OPTIMIZE TABLE",
            "SYSTEM STOP MERGES",
        ] {
            let _ = crate::harness::clickhouse::ch_try_query(&db.url, &format!("{sql} {table}"));
        }
    });
    assert!(
        status.success(),
        "consumer failed ({status})\n{}",
        member.describe()
    );
    let log = member.log();
    let refused = log.matches("TooManyParts").count();
    eprintln!("too many parts: {refused} inserts refused and retried");
    assert!(refused > 0, "no insert met \"Too many parts\":\n{log}");
    exactly_once(&db.url, &table, &harness::kafka_brokers(), &topic)
        .messages(batches.len() as u64)
        .assert();
}
