//! `velostream dlq list` and `dlq replay` against the real broker and
//! ClickHouse: a transform fails on some messages (dead letters), the
//! transform is fixed, the dead letters are replayed while the replay is
//! SIGKILLed between a copy's acknowledgement and its commit (seeded), and
//! the table ends equal to the source: no row lost, none twice.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Int32Array, RecordBatch};

use crate::harness::cmd::velostream;
use crate::harness::compare::compare_taxi;
use crate::harness::data::{concat, read_files, write_batch, Rng, Taxi};
use crate::harness::kafka::{create_topic, read_topic, RawProducer, Until};
use crate::harness::pipeline::{produce_files, Consume};
use crate::harness::{self, TestDb};

const ROWS_PER_MESSAGE: usize = 2_000;
/// Fails on vendor 99 (integer division by zero); the fixed one does not.
const BROKEN: &str =
    "SELECT *, CASE WHEN \"VendorID\" = 100 THEN NULL ELSE 10 / (\"VendorID\" - 99) END AS ratio FROM input\n";
const FIXED: &str =
    "SELECT *, CASE WHEN \"VendorID\" = 99 THEN NULL ELSE 10 / (\"VendorID\" - 99) END AS ratio FROM input\n";

/// Three taxi files of four 2,000-row row groups; in files 2 and 3, the
/// first row of row groups 1 and 3 gets vendor 99. Returns the files and
/// the number of poisoned rows (= poisoned messages).
fn poisoned_taxi(dir: &Path, seed: u64) -> (Vec<PathBuf>, usize) {
    let files = Taxi::rows(24_000)
        .files(3)
        .row_groups(ROWS_PER_MESSAGE)
        .seed(seed)
        .write(dir);
    let mut poisoned = 0;
    for file in &files[1..] {
        let mut batches = read_files(std::slice::from_ref(file));
        assert_eq!(
            batches.len(),
            4,
            "{}: one batch per row group",
            file.display()
        );
        for b in batches.iter_mut().skip(1).step_by(2) {
            let mut vendors: Vec<Option<i32>> =
                b.column(0).as_primitive::<Int32Type>().iter().collect();
            vendors[0] = Some(99);
            let mut columns = b.columns().to_vec();
            columns[0] = Arc::new(Int32Array::from(vendors));
            *b = RecordBatch::try_new(b.schema(), columns).expect("poisoned batch");
            poisoned += 1;
        }
        write_batch(file, &concat(&batches), Some(ROWS_PER_MESSAGE));
    }
    (files, poisoned)
}

#[test]
fn replayed_dead_letters_land_once_after_the_transform_is_fixed_even_when_the_replay_is_killed() {
    let seed = 0x05ee_dd1a;
    let (brokers, url) = (harness::kafka_brokers(), harness::clickhouse_url());
    let db = TestDb::new();
    let table = db.table("trips");
    let topic = harness::unique_name("dlq_replay");
    let dlq = harness::unique_name("dlq_replay_dead");
    let dir = tempfile::tempdir().unwrap();
    let (files, poisoned) = poisoned_taxi(&dir.path().join("taxi"), seed);
    let source = read_files(&files);
    let messages = produce_files(&brokers, &topic, &files, 4, ROWS_PER_MESSAGE);
    assert_eq!(messages, 12);
    let (broken, fixed) = (dir.path().join("broken.sql"), dir.path().join("fixed.sql"));
    std::fs::write(&broken, BROKEN).unwrap();
    std::fs::write(&fixed, FIXED).unwrap();

    // 1. The broken transform: the poisoned messages are dead letters.
    let mut consume = Consume::new(&brokers, &url, &topic, &table);
    consume.exactly_once = true;
    let with = |sql: &Path| {
        consume
            .cmd()
            .args(["--dlq-topic", &dlq])
            .arg("--transform")
            .arg(sql)
            .timeout(Duration::from_secs(300))
    };
    with(&broken).expect_success();
    let good_rows = (24_000 - poisoned * ROWS_PER_MESSAGE) as u64;
    assert_eq!(db.count("trips"), good_rows, "rows of the good messages");

    // 2. `dlq list`: one entry per dead letter, naming its source and why.
    let out = velostream()
        .args([
            "dlq",
            "list",
            "--brokers",
            &brokers,
            "--dlq-topic",
            &dlq,
            "--json",
        ])
        .expect_success();
    let letters: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(letters.len(), poisoned, "{}", out.stdout);
    let mut sources = std::collections::BTreeSet::new();
    for l in &letters {
        assert_eq!(l["reason"], "transform_failed", "{l}");
        assert_eq!(l["rows"], ROWS_PER_MESSAGE as u64, "{l}");
        assert_eq!(l["source"]["topic"], topic.as_str(), "{l}");
        assert_eq!(l["copied"], true, "{l}");
        let error = l["error"].as_str().unwrap().to_ascii_lowercase();
        assert!(error.contains("divide by zero"), "{l}");
        sources.insert((
            l["source"]["partition"].to_string(),
            l["source"]["offset"].to_string(),
        ));
    }
    assert_eq!(sources.len(), poisoned, "distinct sources: {sources:?}");
    let text = velostream()
        .args(["dlq", "list", "--brokers", &brokers, "--dlq-topic", &dlq])
        .args(["--reason", "transform_failed", "--limit", "2"])
        .expect_success();
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "--limit 2: {}", text.stdout);
    assert!(
        lines
            .iter()
            .all(|l| l.contains("transform_failed") && l.contains("rows=2000")),
        "{lines:?}"
    );
    let none = velostream()
        .args(["dlq", "list", "--brokers", &brokers, "--dlq-topic", &dlq])
        .args(["--reason", "undecodable"])
        .expect_success();
    assert_eq!(none.stdout, "", "no undecodable dead letters");

    // 3. Replay, killed (SIGKILL) in the window between a copy's
    //    acknowledgement and its commit, three times; then to the end.
    let replay = velostream()
        .args([
            "--log",
            "info",
            "dlq",
            "replay",
            "--brokers",
            &brokers,
            "--dlq-topic",
            &dlq,
        ])
        .args(["--pause-after-copy-ms", "400"])
        .timeout(Duration::from_secs(120));
    let mut rng = Rng::new(seed);
    let mut recovered = 0;
    for run in 1..=3 {
        let mut member = replay.spawn(&dir.path().join(format!("replay-{run}.log")));
        assert!(
            member.wait_for_log("copied dead letter", Duration::from_secs(60)),
            "run {run} copied nothing: {}",
            member.describe()
        );
        std::thread::sleep(Duration::from_millis(rng.range(0, 250)));
        member.kill();
        recovered += member.log().matches("recovered: dead letter").count();
    }
    let last = replay.expect_success();
    recovered += last.text().matches("recovered: dead letter").count();
    assert!(
        recovered >= 3,
        "each restart found the copy its killed run made but did not commit: {recovered} recoveries"
    );
    let again = replay.expect_success();
    assert!(
        again.stdout.contains(" 0 copied"),
        "a second replay copies nothing: {}",
        again.stdout
    );

    // Exactly one copy per dead letter in the source topic.
    let copies: Vec<String> = read_topic(
        &brokers,
        &topic,
        Until::Messages(messages as usize + poisoned),
    )
    .iter()
    .filter_map(|m| m.header(velostream::dlq::H_REPLAY_OF))
    .collect();
    let distinct: std::collections::BTreeSet<&String> = copies.iter().collect();
    assert_eq!(
        (copies.len(), distinct.len()),
        (poisoned, poisoned),
        "one copy per dead letter: {copies:?}"
    );

    // 4. The fixed transform loads the copies: the table is the source.
    with(&fixed).expect_success();
    compare_taxi(&url, &table, &source).assert_exact("after the replay");
    let nulls = db.query(&format!(
        "SELECT count() FROM {table} WHERE VendorID = 99 AND isNull(ratio)"
    ));
    assert_eq!(
        nulls.trim(),
        poisoned.to_string(),
        "poisoned rows with a NULL ratio"
    );
}

/// Exactly-once resumes after the newest insert stored in ClickHouse; a
/// dead letter after it (handled and committed, but in no insert) must not
/// be read again on restart: it would be dead-lettered twice, and a replay
/// would then load its rows twice.
#[test]
fn a_dead_letter_after_the_newest_insert_is_not_read_again_after_a_restart() {
    let (brokers, url) = (harness::kafka_brokers(), harness::clickhouse_url());
    let db = TestDb::new();
    let table = db.table("trips");
    let topic = harness::unique_name("dlq_tail");
    let dlq = harness::unique_name("dlq_tail_dead");
    let dir = tempfile::tempdir().unwrap();
    let (files, _) = poisoned_taxi(&dir.path().join("taxi"), 11);
    let broken = dir.path().join("broken.sql");
    std::fs::write(&broken, BROKEN).unwrap();
    let mut consume = Consume::new(&brokers, &url, &topic, &table);
    consume.exactly_once = true;
    let run = || {
        consume
            .cmd()
            .args(["--dlq-topic", &dlq])
            .arg("--transform")
            .arg(&broken)
            .timeout(Duration::from_secs(300))
            .expect_success()
    };
    // File 1 holds no poison; file 2's second row group does.
    produce_files(&brokers, &topic, &files[..1], 1, ROWS_PER_MESSAGE);
    run();
    assert_eq!(db.count("trips"), 8_000);
    // Only the poisoned row group after it: a dead letter in no insert.
    let poisoned_group = dir.path().join("poisoned.parquet");
    let batches = read_files(&files[1..2]);
    write_batch(&poisoned_group, &batches[1], None);
    produce_files(&brokers, &topic, &[poisoned_group], 1, ROWS_PER_MESSAGE);
    run();
    let letters = || {
        velostream()
            .args(["dlq", "list", "--brokers", &brokers, "--dlq-topic", &dlq])
            .expect_success()
            .stdout
            .lines()
            .count()
    };
    assert_eq!(letters(), 1, "the poisoned message is a dead letter");
    // A restart with nothing new: the dead letter is not read again.
    run();
    assert_eq!(
        letters(),
        1,
        "the dead letter was read again after a restart"
    );
    assert_eq!(db.count("trips"), 8_000);
}

/// A dead letter whose value was too large to copy carries only headers;
/// the replay copies the original from the source topic at the recorded
/// offset, once even when two dead letters name it. One whose original is
/// gone is named, and the replay exits non-zero after copying the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_too_large_to_copy_is_replayed_from_its_source_and_a_gone_one_is_named() {
    use velostream::consumer::{H_ERROR, H_OFFSET, H_PARTITION, H_REASON, H_TOPIC, H_VALUE_BYTES};

    let brokers = harness::kafka_brokers();
    let [topic, dest, dlq] =
        ["dlq_big_src", "dlq_big_dest", "dlq_big_dead"].map(harness::unique_name);
    for t in [&topic, &dest, &dlq] {
        create_topic(&brokers, t, 1);
    }
    let producer = RawProducer::new(&brokers);
    let original = b"the original value ".repeat(500);
    let file = ("velostream.file".to_string(), b"big.parquet".to_vec());
    let (_, offset) = producer
        .send(&topic, &original, std::slice::from_ref(&file))
        .await;
    let letter = |offset: i64| {
        let h = [
            (H_REASON, "oversized".to_string()),
            (
                H_ERROR,
                "value of 40000000 bytes over --max-message-bytes".into(),
            ),
            (H_TOPIC, topic.clone()),
            (H_PARTITION, "0".into()),
            (H_OFFSET, offset.to_string()),
            (H_VALUE_BYTES, "40000000".into()),
        ];
        let mut headers = vec![file.clone()];
        headers.extend(h.into_iter().map(|(k, v)| (k.to_string(), v.into_bytes())));
        headers
    };
    producer.send(&dlq, &[], &letter(offset)).await;
    // The same source dead-lettered twice (a consumer crash between the
    // dead-letter copy and its commit): copied once.
    producer.send(&dlq, &[], &letter(offset)).await;
    producer.send(&dlq, &[], &letter(offset + 100)).await;

    let listed = velostream()
        .args(["dlq", "list", "--brokers", &brokers, "--dlq-topic", &dlq])
        .expect_success();
    assert!(
        listed
            .stdout
            .lines()
            .all(|l| l.contains("bytes=40000000 (not copied)")),
        "{}",
        listed.stdout
    );
    let out = velostream()
        .args(["dlq", "replay", "--brokers", &brokers, "--dlq-topic", &dlq])
        .args(["--to-topic", &dest])
        .expect_failure();
    assert!(out.stdout.contains(" 1 copied"), "{}", out.describe());
    assert!(
        out.stdout.contains(" 1 second dead letter(s)"),
        "{}",
        out.describe()
    );
    assert!(
        out.stderr.contains(&format!("{dlq}/0/2")) && out.stderr.contains("is gone"),
        "the dead letter whose original is gone is named: {}",
        out.describe()
    );
    let copies = read_topic(&brokers, &dest, Until::Messages(1));
    assert_eq!(
        copies[0].payload, original,
        "the original value, from the source topic"
    );
    assert_eq!(copies[0].expect_header("velostream.file"), "big.parquet");
    assert_eq!(
        copies[0].expect_header(velostream::dlq::H_REPLAY_OF),
        format!("{dlq}/0/0")
    );
    assert!(
        copies[0]
            .headers
            .iter()
            .all(|(k, _)| !k.starts_with("velostream.dlq.")),
        "no dead-letter headers on the copy: {:?}",
        copies[0].headers
    );
}
