//! The consumer against a real broker (tansu) and ClickHouse 18.16: value
//! equality with the Parquet source, transforms, consumer groups, start-up
//! refusals, dead letters, foreign producers and exactly-once resumption.
//!
//! Values are compared exactly: every row is rendered as a TSV line on both
//! sides (floats as their IEEE bit patterns, timestamps as Unix seconds,
//! dates as day numbers), and the sorted lines must be equal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::{Int32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use velostream::consumer::{self, ConsumeSummary, ConsumerConfig};
use velostream::producer::{ProduceSummary, ProducerConfig};
use velostream_codecs::envelope::{Envelope, SourceId};
use velostream_codecs::ipc::{IpcCompression, IpcEncoder};

use crate::harness::cmd::velostream;
use crate::harness::data::{Rng, Taxi, TaxiData};
use crate::harness::exactly_once::exactly_once;
use crate::harness::kafka::{committed_offset, read_topic, Msg, RawProducer, Until};
use crate::harness::pipeline::{self, consumer_config, ONE_RECORD_PER_BATCH};
use crate::harness::values::assert_table_equals;
use crate::harness::{self, TestDb};

/// Longest a consumer run may take in these tests.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// Generated taxi data: 2 files, row groups of 20,000.
fn taxi(rows: u64, seed: u64) -> TaxiData {
    Taxi::rows(rows)
        .files(2)
        .row_groups(20_000)
        .seed(seed)
        .data()
}

/// Produces every row of `data` to `topic` (which must exist), two workers.
fn produce(
    brokers: &str,
    topic: &str,
    partitions: usize,
    data: &TaxiData,
    tweak: impl FnOnce(&mut ProducerConfig),
) -> ProduceSummary {
    pipeline::produce(brokers, topic, &data.source, partitions, |c| {
        c.parallelism = 2;
        tweak(c);
    })
}

/// A topic with `partitions` partitions on the test broker.
fn topic(prefix: &str, partitions: i32) -> String {
    let brokers = harness::kafka_brokers();
    let name = harness::unique_name(prefix);
    tokio::task::block_in_place(|| harness::create_topic(&brokers, &name, partitions));
    name
}

async fn consume(cfg: ConsumerConfig) -> velostream::Result<ConsumeSummary> {
    consume_until(cfg, Arc::new(AtomicBool::new(false))).await
}

async fn consume_until(
    cfg: ConsumerConfig,
    stop: Arc<AtomicBool>,
) -> velostream::Result<ConsumeSummary> {
    let topic = cfg.topic.clone();
    tokio::time::timeout(RUN_TIMEOUT, consumer::run(cfg, stop))
        .await
        .unwrap_or_else(|_| panic!("consumer of {topic} still running after {RUN_TIMEOUT:?}"))
}

// ------------------------------------------------------------------ 1. plain end to end

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_table_equals_parquet_source_value_for_value() {
    let data = taxi(150_000, 11);
    let db = TestDb::new();
    let topic = topic("cons_e2e", 3);
    let produced = produce(&harness::kafka_brokers(), &topic, 3, &data, |_| {});
    assert!(produced.messages >= 3, "several messages: {produced:?}");

    let mut cfg = consumer_config(&topic, &db.table("trips"));
    cfg.order_by = vec!["tpep_pickup_datetime".into()];
    let summary = consume(cfg).await.expect("consumer run");

    assert_eq!(summary.messages, produced.messages, "{summary:?}");
    assert_eq!(summary.rows_consumed, data.rows(), "{summary:?}");
    assert_eq!(summary.rows_inserted, data.rows(), "{summary:?}");
    assert_eq!(summary.dead_letters, 0);
    let types = db.query(&format!(
        "SELECT name, type FROM system.columns WHERE database = '{}' AND table = 'trips' FORMAT TSV",
        db.name
    ));
    assert!(
        types.contains("tpep_pickup_datetime\tDateTime\n")
            && types.contains("passenger_count\tNullable(Int64)\n")
            && types.contains("store_and_fwd_flag\tNullable(String)\n"),
        "created table types: {types}"
    );
    assert_table_equals(&db, "trips", &data.batches);
}

// ------------------------------------------------------------------ 2. transform

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_transform_gives_what_it_gives_locally() {
    let data = taxi(100_000, 12);
    let db = TestDb::new();
    let topic = topic("cons_xform", 2);
    produce(&harness::kafka_brokers(), &topic, 2, &data, |_| {});

    let path = harness::repo_root().join("sql/transforms/taxi_enrich.sql");
    let transform =
        velostream_sql::Transform::from_file(&path, data.schema()).expect("planning taxi_enrich");
    let mut expected = Vec::new();
    for b in &data.batches {
        expected.extend(transform.apply(b.clone()).await.expect("local transform"));
    }
    let out_schema = transform.output_schema();
    assert!(
        out_schema.fields().len() > data.schema().fields().len(),
        "taxi_enrich adds columns"
    );

    let mut cfg = consumer_config(&topic, &db.table("enriched"));
    cfg.transform = Some(path);
    let summary = consume(cfg).await.expect("consumer run with taxi_enrich");
    let expected_rows: usize = expected.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(summary.rows_inserted, expected_rows as u64, "{summary:?}");
    assert_eq!(db.count("enriched"), expected_rows as u64);
    assert_table_equals(&db, "enriched", &expected);
    // The derived columns really hold values (not all NULL or zero).
    let derived = db.query(&format!(
        "SELECT countIf(trip_duration_s > 0), countIf(avg_speed_mph > 0), uniqExact(pickup_hour) FROM {} FORMAT TSV",
        db.table("enriched")
    ));
    let parts: Vec<u64> = derived
        .split_whitespace()
        .map(|p| p.parse().expect("number"))
        .collect();
    assert!(
        parts[0] > 0 && parts[1] > 0 && parts[2] > 12,
        "derived columns: {derived}"
    );
}

// ------------------------------------------------------------------ 3. consumer group

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_of_one_group_share_partitions_without_loss_or_duplicates() {
    let data = taxi(120_000, 13);
    let db = TestDb::new();
    let topic = topic("cons_group", 4);
    // The table exists before the members start, so they can wait for data.
    let mut first = consumer_config(&topic, &db.table("trips"));
    first.exit_when_idle = None;
    first.input_schema = Some(data.schema());
    let group = first.group.clone();
    let mut second = first.clone();
    second.group = group;

    let stop = Arc::new(AtomicBool::new(false));
    let a = tokio::spawn(consume_until(first, Arc::clone(&stop)));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let b = tokio::spawn(consume_until(second, Arc::clone(&stop)));
    // Let the group settle with both members before data arrives.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(
        !a.is_finished() && !b.is_finished(),
        "a member ended before data was produced"
    );
    // Smaller messages: every partition gets several.
    let produced = produce(&harness::kafka_brokers(), &topic, 4, &data, |c| {
        c.max_rows_per_message = 5_000;
        c.kafka.options.push(ONE_RECORD_PER_BATCH.into());
    });
    assert!(produced.messages >= 8, "{produced:?}");

    let deadline = Instant::now() + Duration::from_secs(90);
    while db.count("trips") < data.rows() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Anything duplicated late would show up in this grace period.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let a = a.await.expect("member a task").expect("member a");
    let b = b.await.expect("member b task").expect("member b");

    assert!(
        a.rows_inserted > 0 && b.rows_inserted > 0,
        "both members must get partitions: a {a:?}, b {b:?}"
    );
    assert_eq!(
        a.rows_inserted + b.rows_inserted,
        data.rows(),
        "a {a:?}, b {b:?}"
    );
    assert_eq!(a.messages + b.messages, produced.messages);
    assert_table_equals(&db, "trips", &data.batches);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_joining_mid_stream_takes_over_without_loss_or_duplicates() {
    // Two halves: the second is produced only once the second member owns
    // partitions, so the hand-over happens mid-stream whatever the timing.
    let first_half = taxi(75_000, 18);
    let second_half = taxi(75_000, 19);
    let db = TestDb::new();
    let topic = topic("cons_join", 4);
    let tweak = |c: &mut ProducerConfig| {
        c.max_rows_per_message = 250;
        c.kafka.options.push(ONE_RECORD_PER_BATCH.into());
    };
    let produced_first = produce(&harness::kafka_brokers(), &topic, 4, &first_half, tweak);
    // Small, frequent inserts: the revocation has buffered rows to hand over.
    let mut first = consumer_config(&topic, &db.table("trips"));
    first.exit_when_idle = None;
    first.insert_rows = 1_000;
    first.max_delay = Duration::from_millis(50);
    let mut second = first.clone();
    second.create_table = false;
    second.input_schema = Some(first_half.schema());
    let b_assigned = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    second.assigned_partitions = Some(Arc::clone(&b_assigned));

    let stop = Arc::new(AtomicBool::new(false));
    let a = tokio::spawn(consume_until(first, Arc::clone(&stop)));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if db.has_table("trips") && db.count("trips") > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no rows after 60 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let at_join = db.count("trips");
    let b = tokio::spawn(consume_until(second, Arc::clone(&stop)));
    let deadline = Instant::now() + Duration::from_secs(60);
    while b_assigned.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the second member got no partition in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let produced_second = produce(&harness::kafka_brokers(), &topic, 4, &second_half, tweak);
    let total = first_half.rows() + second_half.rows();

    let deadline = Instant::now() + Duration::from_secs(120);
    while db.count("trips") < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let a = a.await.expect("member a task").expect("member a");
    let b = b.await.expect("member b task").expect("member b");
    assert!(
        at_join < total && b.rows_inserted > 0,
        "the second member must take over partitions mid-stream: {at_join} rows stored at \
         its start; a {a:?}, b {b:?}"
    );
    assert_eq!(a.rows_inserted + b.rows_inserted, total, "a {a:?}, b {b:?}");
    assert_eq!(
        a.messages + b.messages,
        produced_first.messages + produced_second.messages
    );
    let mut all = first_half.batches.clone();
    all.extend(second_half.batches.iter().cloned());
    assert_table_equals(&db, "trips", &all);
}

// ------------------------------------------------------------------ 4. bad transforms

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_transforms_are_refused_at_start_naming_file_and_position() {
    let db = TestDb::new();
    let topic = topic("cons_badsql", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let brokers = harness::kafka_brokers();
    let url = harness::clickhouse_url();
    let table = db.table("never");
    let cases = [
        (
            "syntax.sql",
            "SELECT VendorID,\n       trip_distance +* 2 AS x\nFROM input\n",
            ":2:",
        ),
        ("drop.sql", "-- not a transform\nDROP TABLE input\n", ":2:1"),
    ];
    for (name, sql, position) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, sql).expect("writing transform");
        let path_s = path.to_str().expect("utf-8 path");
        let started = Instant::now();
        let out = velostream().args([
            "consume",
            "--brokers",
            &brokers,
            "--clickhouse-url",
            &url,
            "--topic",
            &topic,
            "--table",
            &table,
            "--create-table",
            "--transform",
            path_s,
            "--exit-when-idle",
            "30",
        ]);
        let stderr = out.expect_failure().stderr;
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{name}: refused only after {:?} (must fail at start-up)",
            started.elapsed()
        );
        assert!(
            stderr.contains(&format!("{path_s}{position}")),
            "{name}: stderr must name {path_s} and position {position}: {stderr}"
        );
        if name == "drop.sql" {
            assert!(
                stderr.to_ascii_uppercase().contains("DROP") || stderr.contains("SELECT"),
                "{name}: stderr must say what is forbidden: {stderr}"
            );
        }
    }
    let tables = db.query(&format!(
        "SELECT count() FROM system.tables WHERE database = '{}' FORMAT TSV",
        db.name
    ));
    assert_eq!(tables.trim(), "0", "no table created by a refused run");
}

// ------------------------------------------------------------------ 5. dead letters

/// Kafka headers as (key, value) pairs.
type HeaderList = Vec<(String, Vec<u8>)>;

/// A poison message sent: ((partition, offset), value, headers, expected reason).
type SentPoison = ((i32, i64), Vec<u8>, HeaderList, &'static str);

/// The envelope headers the producer would send for `batches` of `schema`,
/// naming a made-up source, plus a foreign header.
fn envelope_headers(schema: &Schema, rows: u64, tag: &str) -> Vec<(String, Vec<u8>)> {
    let envelope = Envelope::new(
        schema,
        rows,
        Some(SourceId {
            file: format!("{tag}.parquet"),
            row_group: 3,
            slice: 1,
            file_id: None,
        }),
    );
    let mut h: Vec<(String, Vec<u8>)> = envelope
        .to_headers()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    h.push(("trace-id".into(), format!("trace-{tag}").into_bytes()));
    h
}

/// Asserts that a dead letter carries every original header unchanged.
fn assert_carries(letter: &Msg, original: &[(String, Vec<u8>)]) {
    for (k, v) in original {
        assert_eq!(
            letter.expect_header(k),
            String::from_utf8_lossy(v),
            "original header {k} in the dead letter at {}",
            letter.at()
        );
    }
}

/// The rows of `data` in `n` consecutive chunks.
fn chunks(data: &TaxiData, n: usize) -> Vec<RecordBatch> {
    let all = data.all();
    let rows = all.num_rows();
    (0..n)
        .map(|i| all.slice(i * rows / n, (i + 1) * rows / n - i * rows / n))
        .collect()
}

/// A readable message of another schema (one Int32 column `a`).
fn foreign_message(encoder: &mut IpcEncoder) -> Vec<u8> {
    let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, false)]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![Arc::new(Int32Array::from(vec![1, 2, 3]))],
    )
    .expect("foreign batch");
    encoder.encode(&schema, &[batch]).expect("encode foreign")
}

/// The `n` dead letters of `dlq` (fails if it holds more).
fn dead_letters(brokers: &str, dlq: &str, n: usize) -> Vec<Msg> {
    read_topic(brokers, dlq, Until::Messages(n))
}

/// A topic holding only undecodable messages: no message brings a schema,
/// so the insert side never starts; each message is still dead-lettered,
/// its offset committed, and `exit_when_idle` ends the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_of_only_undecodable_messages_is_dead_lettered_committed_and_idles_out() {
    let brokers = harness::kafka_brokers();
    let db = TestDb::new();
    let topic = topic("cons_only_poison", 1);
    let dlq = harness::unique_name("cons_only_poison_dead");
    let producer = RawProducer::new(&brokers);
    for i in 0..3 {
        producer
            .send(&topic, format!("not arrow {i}").as_bytes(), &[])
            .await;
    }
    let mut cfg = consumer_config(&topic, &db.table("never"));
    cfg.dlq_topic = Some(dlq.clone());
    let group = cfg.group.clone();
    let run = tokio::time::timeout(Duration::from_secs(60), consumer::run(cfg, Arc::default()));
    let summary = run
        .await
        .expect("the consumer exits when idle within 60 s")
        .expect("consumer run");
    assert_eq!(summary.dead_letters, 3, "{summary:?}");
    let committed = tokio::task::block_in_place(|| committed_offset(&brokers, &group, &topic, 0));
    assert_eq!(committed, 3, "the dead letters' offsets are committed");
    let letters = tokio::task::block_in_place(|| dead_letters(&brokers, &dlq, 3));
    assert!(letters
        .iter()
        .all(|l| l.expect_header(consumer::H_REASON) == "undecodable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_go_to_the_dead_letter_topic_and_good_rows_arrive() {
    let data = taxi(30_000, 14);
    let brokers = harness::kafka_brokers();
    let db = TestDb::new();
    let topic = topic("cons_dlq", 1);
    let dlq = harness::unique_name("cons_dlq_dead");
    let producer = RawProducer::new(&brokers);
    let mut encoder = IpcEncoder::new(IpcCompression::Lz4Frame).expect("encoder");
    let schema = data.schema();

    // Good messages: the source split into four chunks of rows.
    let n = data.rows() as usize;
    let chunks = chunks(&data, 4);
    let good: Vec<Vec<u8>> = chunks
        .iter()
        .map(|c| {
            encoder
                .encode(&schema, std::slice::from_ref(c))
                .expect("encode")
        })
        .collect();
    let garbage = Rng::new(0x5eed_dead).bytes(5_000);
    let truncated = good[1][..good[1].len() / 2].to_vec();
    let other = foreign_message(&mut encoder);

    producer.send(&topic, &good[0], &[]).await;
    let poison = vec![
        (producer.send(&topic, &garbage, &[]).await, garbage.clone()),
        (
            producer.send(&topic, &truncated, &[]).await,
            truncated.clone(),
        ),
    ];
    producer.send(&topic, &good[1], &[]).await;
    producer.send(&topic, &good[2], &[]).await;
    let mut poison = poison;
    poison.push((producer.send(&topic, &other, &[]).await, other.clone()));
    producer.send(&topic, &good[3], &[]).await;

    // Without a dead-letter topic the consumer stops at the first poison message.
    let cfg = consumer_config(&topic, &db.table("strict"));
    let err = consume(cfg)
        .await
        .expect_err("poison without --dlq-topic must stop the consumer")
        .to_string();
    let (p, o) = poison[0].0;
    assert!(
        err.contains(&format!("partition {p} offset {o}")) && err.contains(&topic),
        "error must name topic, partition and offset: {err}"
    );

    let mut cfg = consumer_config(&topic, &db.table("trips"));
    cfg.dlq_topic = Some(dlq.clone());
    let summary = consume(cfg)
        .await
        .expect("consumer run with a dead-letter topic");
    assert_eq!(summary.dead_letters, 3, "{summary:?}");
    assert_eq!(summary.rows_inserted, n as u64, "{summary:?}");
    assert_table_equals(&db, "trips", &data.batches);

    let letters = dead_letters(&brokers, &dlq, 3);
    assert_eq!(letters.len(), 3, "dead letters in {dlq}");
    for (((p, o), value), letter) in poison.iter().zip(&letters) {
        assert!(
            &letter.payload == value,
            "dead letter of offset {o}: payload differs"
        );
        assert_eq!(letter.expect_header(consumer::H_TOPIC), topic);
        assert_eq!(letter.expect_header(consumer::H_PARTITION), p.to_string());
        assert_eq!(letter.expect_header(consumer::H_OFFSET), o.to_string());
        assert!(
            !letter.expect_header(consumer::H_ERROR).trim().is_empty(),
            "empty error header: {:?}",
            letter.headers
        );
    }
    let schema_error = letters[2].expect_header(consumer::H_ERROR);
    assert!(
        schema_error.contains("schema"),
        "the foreign schema is named as the reason: {schema_error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_transform_fails_on_goes_to_the_dead_letter_topic() {
    let data = taxi(20_000, 17);
    let brokers = harness::kafka_brokers();
    let db = TestDb::new();
    let topic = topic("cons_xdlq", 1);
    let dlq = harness::unique_name("cons_xdlq_dead");
    let dir = tempfile::tempdir().expect("tempdir");
    let sql = dir.path().join("divide.sql");
    // Integer division by zero fails at execution, for rows of vendor 99 only.
    std::fs::write(
        &sql,
        "SELECT *, 10 / (\"VendorID\" - 99) AS ratio FROM input\n",
    )
    .expect("writing transform");

    let schema = data.schema();
    let mut chunks = chunks(&data, 4);
    // One row of chunk 2 gets vendor 99.
    let bad = &chunks[2];
    let mut vendors: Vec<i32> = bad
        .column(0)
        .as_primitive::<arrow_array::types::Int32Type>()
        .values()
        .to_vec();
    vendors[7] = 99;
    let mut columns = bad.columns().to_vec();
    columns[0] = Arc::new(Int32Array::from(vendors));
    chunks[2] = RecordBatch::try_new(Arc::clone(&schema), columns).expect("bad chunk");
    let mut encoder = IpcEncoder::new(IpcCompression::Lz4Frame).expect("encoder");
    let producer = RawProducer::new(&brokers);
    let mut sent = Vec::new();
    let mut originals = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        let value = encoder
            .encode(&schema, std::slice::from_ref(c))
            .expect("encode");
        let headers = envelope_headers(&schema, c.num_rows() as u64, &format!("chunk{i}"));
        sent.push((producer.send(&topic, &value, &headers).await, value));
        originals.push(headers);
    }

    let transform = velostream_sql::Transform::from_file(&sql, Arc::clone(&schema))
        .expect("planning divide.sql");
    assert!(
        transform.apply(chunks[2].clone()).await.is_err(),
        "the transform fails on the bad chunk locally too"
    );
    let mut expected = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        if i != 2 {
            expected.extend(transform.apply(c.clone()).await.expect("local transform"));
        }
    }

    let mut cfg = consumer_config(&topic, &db.table("ratios"));
    cfg.transform = Some(sql);
    cfg.dlq_topic = Some(dlq.clone());
    let summary = consume(cfg).await.expect("consumer run");
    assert_table_equals(&db, "ratios", &expected);
    assert_eq!(summary.dead_letters, 1, "{summary:?}");

    let letters = dead_letters(&brokers, &dlq, 1);
    assert_eq!(letters.len(), 1, "dead letters in {dlq}");
    let letter = &letters[0];
    let ((p, o), value) = &sent[2];
    assert!(
        &letter.payload == value,
        "the dead letter carries the original message"
    );
    assert_eq!(letter.expect_header(consumer::H_TOPIC), topic);
    assert_eq!(letter.expect_header(consumer::H_PARTITION), p.to_string());
    assert_eq!(letter.expect_header(consumer::H_OFFSET), o.to_string());
    let why = letter.expect_header(consumer::H_ERROR);
    assert!(
        why.to_ascii_lowercase().contains("divide by zero"),
        "the error header says why: {why}"
    );
    assert_eq!(letter.expect_header(consumer::H_REASON), "transform_failed");
    // The original velostream.* envelope and foreign headers travel along.
    assert_carries(letter, &originals[2]);
    assert_eq!(letter.expect_header("velostream.file"), "chunk2.parquet");
}

/// Every kind of poison in one interleaved stream of one partition, each
/// followed by good data: random bytes, truncated IPC, a foreign schema, a
/// value over `max_message_bytes`, a stream claiming more than
/// `max_decoded_bytes` decoded, and 0-row messages (no batch, an empty
/// batch) — the stream ends with one. Asserted: the five bad messages are in
/// the dead-letter topic in order, whole, with their original headers, the
/// reason, source topic, partition and offset; the 0-row messages are not
/// dead letters and their offsets are committed (the group's committed
/// offset is the end of the partition); every good row lands exactly once
/// (exactly-once mode, value-for-value comparison).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_poison_in_one_stream_is_handled_and_good_rows_land_once() {
    const MAX_MESSAGE_BYTES: usize = 512 << 10;
    const MAX_DECODED_BYTES: u64 = 4 << 20;
    let data = taxi(20_000, 23);
    let brokers = harness::kafka_brokers();
    let db = TestDb::new();
    let topic = topic("cons_poison", 1);
    let dlq = harness::unique_name("cons_poison_dead");
    let producer = RawProducer::new(&brokers);
    let mut lz4 = IpcEncoder::new(IpcCompression::Lz4Frame).expect("encoder");
    let mut plain = IpcEncoder::new(IpcCompression::None).expect("encoder");
    let schema = data.schema();
    let n = data.rows() as usize;
    let all = data.all();
    let good = chunks(&data, 8);
    let encode_good = |lz4: &mut IpcEncoder, b: &RecordBatch| {
        lz4.encode(&schema, std::slice::from_ref(b))
            .expect("encode")
    };

    // The poison.
    let garbage = Rng::new(0x5eed_dead).bytes(5_000);
    let whole = encode_good(&mut lz4, &good[1]);
    let truncated = whole[..whole.len() * 2 / 3].to_vec();
    let foreign = foreign_message(&mut lz4);
    // Valid rows of the right schema, uncompressed: too large on the wire.
    let too_large = plain
        .encode(&schema, std::slice::from_ref(&all))
        .expect("encode all");
    assert!(too_large.len() > MAX_MESSAGE_BYTES, "{}", too_large.len());
    // One row 200,000 times: small compressed, far over the decoded limit.
    let same_row = arrow_select::take::take_record_batch(
        &all,
        &arrow_array::UInt32Array::from(vec![0u32; 200_000]),
    )
    .expect("repeat a row");
    let bomb = lz4.encode(&schema, &[same_row]).expect("encode bomb");
    assert!(
        bomb.len() < MAX_MESSAGE_BYTES && decoded_bytes(&bomb) > MAX_DECODED_BYTES,
        "the bomb must pass the wire limit and fail the decoded one: {} bytes",
        bomb.len()
    );
    // 0-row messages: a stream with no batch, and one with an empty batch.
    let no_batch = lz4.encode(&schema, &[]).expect("encode no batch");
    let empty_batch = lz4
        .encode(&schema, &[all.slice(0, 0)])
        .expect("encode empty");

    // The interleaved stream. Every message has headers: the envelope for
    // the readable ones, a tag for all.
    let tagged = |tag: &str| vec![("trace-id".to_string(), format!("trace-{tag}").into_bytes())];
    let mut poison: Vec<SentPoison> = Vec::new();
    let mut zero_rows = Vec::new();
    let mut sent = 0u64;
    for (i, g) in good.iter().enumerate() {
        let h = envelope_headers(&schema, g.num_rows() as u64, &format!("good{i}"));
        producer.send(&topic, &encode_good(&mut lz4, g), &h).await;
        sent += 1;
        let bad: Option<(&Vec<u8>, HeaderList, &'static str)> = match i {
            0 => Some((&garbage, tagged("garbage"), "undecodable")),
            1 => Some((&truncated, tagged("truncated"), "undecodable")),
            2 => Some((&foreign, tagged("foreign"), "schema_mismatch")),
            3 => Some((
                &too_large,
                envelope_headers(&schema, n as u64, "too_large"),
                "oversized",
            )),
            4 => Some((&bomb, tagged("bomb"), "oversized")),
            _ => None,
        };
        if let Some((value, h, reason)) = bad {
            let at = producer.send(&topic, value, &h).await;
            poison.push((at, value.clone(), h, reason));
            sent += 1;
        }
        let zero = match i {
            5 => Some((&no_batch, envelope_headers(&schema, 0, "no_batch"))),
            7 => Some((&empty_batch, envelope_headers(&schema, 0, "empty_batch"))),
            _ => None,
        };
        if let Some((value, h)) = zero {
            zero_rows.push(producer.send(&topic, value, &h).await);
            sent += 1;
        }
    }
    let last = *zero_rows.last().expect("a 0-row message");

    let mut cfg = consumer_config(&topic, &db.table("trips"));
    cfg.dlq_topic = Some(dlq.clone());
    cfg.exactly_once = true;
    cfg.max_message_bytes = MAX_MESSAGE_BYTES;
    cfg.max_decoded_bytes = MAX_DECODED_BYTES;
    // Small inserts: good rows before and after each poison message land
    // in separate inserts.
    cfg.insert_rows = 2_000;
    let group = cfg.group.clone();
    let summary = consume(cfg).await.expect("consumer run");
    eprintln!("poison stream: {sent} messages, {summary:?}");
    assert_eq!(summary.messages, sent, "{summary:?}");
    assert_eq!(summary.dead_letters, poison.len() as u64, "{summary:?}");
    assert_eq!(summary.rows_inserted, n as u64, "{summary:?}");
    assert_table_equals(&db, "trips", &data.batches);
    // Each of the 8 good messages stored once and whole; the dead letters
    // and the 0-row messages store nothing.
    let checked = tokio::task::block_in_place(|| {
        exactly_once(&db.url, &db.table("trips"), &brokers, &topic)
            .messages(sent)
            .dead_letters(poison.iter().map(|p| p.0))
            .assert()
    });
    assert_eq!(checked, (sent, n as u64), "messages and rows checked");

    let letters = dead_letters(&brokers, &dlq, poison.len());
    assert_eq!(letters.len(), poison.len(), "dead letters in {dlq}");
    for (((p, o), value, original, reason), letter) in poison.iter().zip(&letters) {
        assert!(
            &letter.payload == value,
            "dead letter of offset {o} ({reason}): payload differs ({} vs {} bytes)",
            letter.payload.len(),
            value.len()
        );
        assert_eq!(letter.expect_header(consumer::H_REASON), *reason);
        assert_eq!(letter.expect_header(consumer::H_TOPIC), topic);
        assert_eq!(letter.expect_header(consumer::H_PARTITION), p.to_string());
        assert_eq!(letter.expect_header(consumer::H_OFFSET), o.to_string());
        assert!(!letter.expect_header(consumer::H_ERROR).trim().is_empty());
        assert!(
            letter.header(consumer::H_VALUE_BYTES).is_none(),
            "a copied value has no {} header: {:?}",
            consumer::H_VALUE_BYTES,
            letter.headers
        );
        assert_carries(letter, original);
    }
    let why = |i: usize| letters[i].expect_header(consumer::H_ERROR);
    assert!(
        why(3).contains(&format!("{} bytes", too_large.len())),
        "{}",
        why(3)
    );
    assert!(why(3).contains("--max-message-bytes"), "{}", why(3));
    assert!(why(4).contains("decompressed bytes"), "{}", why(4));
    assert!(why(4).contains("--max-decoded-bytes"), "{}", why(4));

    // The 0-row message at the end was acknowledged: the group committed
    // the offset after it.
    let committed =
        tokio::task::block_in_place(|| committed_offset(&brokers, &group, &topic, last.0));
    assert_eq!(
        committed,
        last.1 + 1,
        "committed offset of partition {}",
        last.0
    );
}

/// Decoded bytes an IPC stream claims (what the decoded-size limit checks).
fn decoded_bytes(value: &[u8]) -> u64 {
    let decoded = velostream_codecs::ipc::decode(value).expect("decodable");
    decoded
        .batches
        .iter()
        .map(|b| b.get_array_memory_size() as u64)
        .sum()
}

// ------------------------------------------------------------------ 6. mismatched table

/// The DDL of one column (name, type) in a test table, or `None` to omit it.
type ColumnDef = fn(&str, &str) -> Option<String>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mismatched_existing_table_is_refused_naming_the_column() {
    let data = taxi(20_000, 15);
    let db = TestDb::new();
    let topic = topic("cons_mismatch", 1);
    produce(&harness::kafka_brokers(), &topic, 1, &data, |_| {});

    // The right DDL, as the consumer itself would create it.
    let mut probe = consumer_config(&topic, &db.table("probe"));
    probe.exit_when_idle = Some(Duration::from_secs(2));
    consume(probe).await.expect("creating the reference table");
    let columns = db.query(&format!(
        "SELECT name, type FROM system.columns WHERE database = '{}' AND table = 'probe' FORMAT TSV",
        db.name
    ));
    let columns: Vec<(String, String)> = columns
        .lines()
        .map(|l| {
            let (n, t) = l.split_once('\t').expect("name\ttype");
            (n.to_string(), t.to_string())
        })
        .collect();
    assert_eq!(columns.len(), data.schema().fields().len());

    let cases: [(&str, ColumnDef); 2] = [
        ("trip_distance", |n, t| {
            Some(if n == "trip_distance" {
                format!("`{n}` String")
            } else {
                format!("`{n}` {t}")
            })
        }),
        ("airport_fee", |n, t| {
            (n != "airport_fee").then(|| format!("`{n}` {t}"))
        }),
    ];
    for (column, def) in cases {
        let table = format!("bad_{column}");
        let defs: Vec<String> = columns.iter().filter_map(|(n, t)| def(n, t)).collect();
        db.query(&format!(
            "CREATE TABLE {} ({}) ENGINE = MergeTree ORDER BY tuple()",
            db.table(&table),
            defs.join(", ")
        ));
        let mut cfg = consumer_config(&topic, &db.table(&table));
        cfg.create_table = false;
        let started = Instant::now();
        let err = consume(cfg)
            .await
            .expect_err("a mismatched table must be refused")
            .to_string();
        assert!(
            err.contains(column) && err.contains(&table),
            "error must name table and column {column}: {err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "refused only after {:?}",
            started.elapsed()
        );
        assert_eq!(db.count(&table), 0, "nothing inserted into {table}");
    }
}

// ------------------------------------------------------------------ 7. foreign producer

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_message_without_velostream_headers_is_loaded() {
    let db = TestDb::new();
    let topic = topic("cons_pyarrow", 1);
    let rows = 2_500usize;
    let script = harness::repo_root().join("engine/tests/py/produce_pyarrow.py");
    let out = std::process::Command::new(harness::venv_python())
        .arg(&script)
        .args([harness::kafka_brokers(), topic.clone(), rows.to_string()])
        .output()
        .expect("running produce_pyarrow.py");
    assert!(
        out.status.success(),
        "produce_pyarrow.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let summary = consume(consumer_config(&topic, &db.table("py")))
        .await
        .expect("consuming the pyarrow message");
    assert_eq!(summary.messages, 1, "{summary:?}");
    assert_eq!(summary.rows_inserted, rows as u64, "{summary:?}");

    // The same rows, built here as the script describes them.
    let ids: Vec<i64> = (0..rows as i64).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("day", DataType::Date32, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
    ]));
    let expected = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(arrow_array::Int64Array::from(ids.clone())),
            Arc::new(arrow_array::StringArray::from(
                ids.iter()
                    .map(|i| (i % 7 != 3).then(|| format!("row-{i}")))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(arrow_array::Float64Array::from(
                ids.iter().map(|&i| i as f64 * 0.25).collect::<Vec<_>>(),
            )),
            Arc::new(arrow_array::Date32Array::from(
                ids.iter().map(|&i| (i % 1000) as i32).collect::<Vec<_>>(),
            )),
            Arc::new(arrow_array::TimestampMicrosecondArray::from(
                ids.iter()
                    .map(|&i| (1_700_000_000 + i) * 1_000_000)
                    .collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("expected batch");
    assert_table_equals(&db, "py", &[expected]);
}

// ------------------------------------------------------------------ 8. exactly-once

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_resumes_from_offsets_stored_in_clickhouse() {
    let data = taxi(150_000, 16);
    let db = TestDb::new();
    let topic = topic("cons_eo", 2);
    let produced = produce(&harness::kafka_brokers(), &topic, 2, &data, |c| {
        c.max_rows_per_message = 500;
        c.kafka.options.push(ONE_RECORD_PER_BATCH.into());
    });
    assert!(produced.messages >= 300, "{produced:?}");

    let config = || {
        let mut c = consumer_config(&topic, &db.table("trips"));
        c.exactly_once = true;
        c.insert_rows = 1_000;
        c.max_delay = Duration::from_millis(50);
        // A stopped member inserts what it holds: hold little, so that the
        // first run really stops midway.
        c.max_buffered_bytes = 1 << 20;
        c
    };
    // First run: stopped as soon as the first rows are in ClickHouse.
    let stop = Arc::new(AtomicBool::new(false));
    let first = tokio::spawn(consume_until(config(), Arc::clone(&stop)));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if db.has_table("trips") && db.count("trips") > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no rows after 60 s");
        assert!(
            !first.is_finished(),
            "first run ended before any row was stored"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let first = first.await.expect("first run task").expect("first run");
    let after_first = db.count("trips");
    assert!(
        after_first > 0 && after_first < data.rows(),
        "the first run must stop midway: {after_first} of {} rows ({first:?})",
        data.rows()
    );

    // Second run in a NEW group: Kafka has no committed offsets for it, so
    // only the offsets stored in ClickHouse can prevent duplicates.
    let second = consume(config()).await.expect("second run");
    assert_eq!(
        after_first + second.rows_inserted,
        data.rows(),
        "first {first:?}, second {second:?}"
    );
    assert!(
        second.rows_consumed < data.rows(),
        "the second run must not re-read what is stored: {second:?}"
    );
    assert_table_equals(&db, "trips", &data.batches);
    tokio::task::block_in_place(|| {
        exactly_once(
            &db.url,
            &db.table("trips"),
            &harness::kafka_brokers(),
            &topic,
        )
        .messages(produced.messages)
        .assert()
    });
}

// ------------------------------------------------------------------ insert size under a backlog

/// A consumer started on a topic that already holds many inserts' worth
/// fills whole inserts (`--insert-rows`) although its delay (20 ms) is far
/// shorter than a lane takes to gather one; the remainder leaves once less
/// than an insert is left. Parts are counted from `system.part_log` (one
/// part per insert: the table has no partition key). In a debug build the
/// intake (decoding) is the slower side: messages reach the lane one by one,
/// further apart than its 5 ms quiet period, so only the behind signal
/// (`core::backlog`) keeps it filling whole inserts, and the signal must stay
/// fresh while the consumer thread takes messages (this failed when it was
/// refreshed only between turns of up to 64 messages). Where the intake is
/// the faster side and the backlog waits in the consumer's own queues, the
/// unit tests of `core::backlog` and the bench's parts per million rows
/// cover it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_fills_whole_inserts_whatever_the_delay() {
    const INSERT_ROWS: u64 = 50_000;
    // Messages of 5,000 rows: ten to an insert.
    let data = Taxi::rows(400_000)
        .files(2)
        .row_groups(5_000)
        .seed(31)
        .data();
    let db = TestDb::new();
    let topic = topic("cons_backlog", 2);
    produce(&harness::kafka_brokers(), &topic, 2, &data, |_| {});

    let mut cfg = consumer_config(&topic, &db.table("trips"));
    cfg.lanes = 1;
    cfg.insert_rows = INSERT_ROWS as usize;
    cfg.max_delay = Duration::from_millis(20);
    // High watermarks from the first fetches, not after a second.
    cfg.kafka.options.push("statistics.interval.ms=50".into());
    let summary = consume(cfg).await.expect("consumer run");
    assert_eq!(summary.rows_inserted, data.rows(), "{summary:?}");
    assert_table_equals(&db, "trips", &data.batches);

    let parts = db.new_parts("trips", data.rows());
    assert_eq!(parts.iter().sum::<u64>(), data.rows(), "parts {parts:?}");
    let whole = parts.iter().filter(|r| **r >= INSERT_ROWS).count();
    // Eight inserts' worth: all but the first (before the first statistics)
    // and the last (the tail, once less than an insert remains) are whole.
    assert!(
        whole >= 6,
        "{whole} of {} parts hold a whole insert ({INSERT_ROWS} rows): {parts:?}",
        parts.len()
    );
}
