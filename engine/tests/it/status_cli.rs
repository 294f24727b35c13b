//! `velostream status` against real tansu and ClickHouse, on topics produced
//! in multi-record batches, where tansu's ListOffsets high watermark is
//! wrong: lag, rows, members, stored offsets, and `--wait-drained`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::harness;

const BIN: &str = env!("CARGO_BIN_EXE_velostream");

fn velostream(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("VELOSTREAM_CLICKHOUSE_URL")
        .output()
        .expect("running velostream")
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Generates `rows` taxi rows and produces them in messages of at most 500
/// rows, many messages per produce batch (linger, batch.num.messages).
fn produce_batched(dir: &Path, brokers: &str, topic: &str, rows: u64) {
    let data = dir.join("taxi");
    let rows_arg = rows.to_string();
    ok(
        &velostream(&["gen", "--rows", &rows_arg, "--out", data.to_str().unwrap()]),
        "gen",
    );
    ok(
        &velostream(&[
            "produce",
            "--brokers",
            brokers,
            "--topic",
            topic,
            "--max-rows-per-message",
            "500",
            "--linger-ms",
            "200",
            "-X",
            "batch.num.messages=1000",
            data.to_str().unwrap(),
        ]),
        "produce",
    );
}

/// Per partition: (message count, total rows from headers, listed high
/// watermark), read back from offset 0 (a fetch from a batch's first offset
/// is right on tansu).
fn ground_truth(brokers: &str, topic: &str, partitions: i32) -> BTreeMap<i32, (i64, u64, i64)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", harness::unique_name("truth"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Offset(0))
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out: BTreeMap<i32, (i64, u64, i64)> = (0..partitions)
        .map(|p| {
            let (_, high) = c
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap();
            (p, (0, 0, high))
        })
        .collect();
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_secs(3) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            last = Instant::now();
            let e = out.get_mut(&m.partition()).unwrap();
            assert_eq!(m.offset(), e.0, "offsets are dense from 0");
            e.0 += 1;
            let h = m.headers().expect("velostream headers");
            let rows = h.iter().find(|h| h.key == "velostream.rows").unwrap();
            e.1 += std::str::from_utf8(rows.value.unwrap())
                .unwrap()
                .parse::<u64>()
                .unwrap();
        }
    }
    out
}

fn commit(brokers: &str, group: &str, topic: &str, offsets: &[(i32, i64)]) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for &(p, o) in offsets {
        tpl.add_partition_offset(topic, p, Offset::Offset(o))
            .unwrap();
    }
    c.commit(&tpl, CommitMode::Sync).unwrap();
}

fn status_json(args: &[&str]) -> serde_json::Value {
    let out = ok(&velostream(args), "status --json");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn lag_and_rows_are_right_where_tansus_listed_watermark_is_wrong() {
    let brokers = harness::kafka_brokers();
    let topic = harness::unique_name("status_wm");
    let group = harness::unique_name("status_g");
    harness::create_topic(&brokers, &topic, 2);
    let dir = tempfile::tempdir().unwrap();
    produce_batched(dir.path(), &brokers, &topic, 12_000);
    let truth = ground_truth(&brokers, &topic, 2);
    let total_msgs: i64 = truth.values().map(|t| t.0).sum();
    let total_rows: u64 = truth.values().map(|t| t.1).sum();
    assert_eq!(total_rows, 12_000);
    // The premise: ListOffsets is wrong on this topic (multi-record batches).
    assert!(
        truth.values().any(|&(msgs, _, listed)| listed < msgs),
        "the listed watermark is right here ({truth:?}); the test needs multi-record batches"
    );

    // Nothing committed: everything is pending, counted exactly.
    let base = [
        "status",
        "--brokers",
        &brokers,
        "--topic",
        &topic,
        "--group",
        &group,
    ];
    let mut args = base.to_vec();
    args.extend(["--json", "--sample-messages", "1000"]);
    let s = status_json(&args);
    assert_eq!(s["lag_messages"], total_msgs, "{s:#}");
    assert_eq!(s["lag_rows"], total_rows, "{s:#}");
    assert_eq!(s["lag_rows_estimated"], false);
    assert_eq!(s["drained"], false);
    for p in s["partitions"].as_array().unwrap() {
        let (msgs, _, listed) = truth[&(p["partition"].as_i64().unwrap() as i32)];
        assert_eq!(p["high_watermark"], msgs, "{p:#}");
        assert_eq!(p["listed_high_watermark"], listed, "{p:#}");
        assert_eq!(p["committed_offset"], serde_json::Value::Null);
    }

    // A bound below the backlog: rows are estimated, and marked so.
    let mut args = base.to_vec();
    args.extend(["--json", "--sample-messages", "2"]);
    let s = status_json(&args);
    assert_eq!(s["lag_messages"], total_msgs);
    assert_eq!(s["lag_rows_estimated"], true, "{s:#}");
    let est = s["lag_rows"].as_u64().unwrap() as f64;
    assert!(
        (est - total_rows as f64).abs() <= 0.2 * total_rows as f64,
        "estimate {est} vs {total_rows}"
    );

    // Partition 0 committed in the middle of a batch, partition 1 at its end.
    let (m0, _, _) = truth[&0];
    let (m1, _, _) = truth[&1];
    commit(&brokers, &group, &topic, &[(0, 3), (1, m1)]);
    let mut args = base.to_vec();
    args.push("--json");
    let s = status_json(&args);
    assert_eq!(s["partitions"][0]["lag_messages"], m0 - 3, "{s:#}");
    assert_eq!(s["partitions"][1]["lag_messages"], 0, "{s:#}");
    assert_eq!(s["partitions"][1]["drained"], true);

    // --wait-drained gives up at the timeout and names the partition behind.
    let mut args = base.to_vec();
    args.extend(["--wait-drained", "--timeout", "3s", "--interval", "1s"]);
    let t0 = Instant::now();
    let out = velostream(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    assert!(stderr.contains("waiting: "), "no progress line: {stderr}");
    let want = format!("partition 0: {} message(s)", m0 - 3);
    assert!(
        stderr.contains("not drained within the 3 s timeout") && stderr.contains(&want),
        "{stderr}"
    );
    assert!(!stderr.contains("partition 1:"), "{stderr}");

    // Everything committed: drained at once, exit 0, human report.
    commit(&brokers, &group, &topic, &[(0, m0), (1, m1)]);
    let mut args = base.to_vec();
    args.extend(["--wait-drained", "--timeout", "10s"]);
    let text = ok(&velostream(&args), "status --wait-drained");
    assert!(text.contains("drained: yes"), "{text}");
    assert!(
        text.contains("ListOffsets high watermark differs"),
        "{text}"
    );
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn wait_drained_follows_a_running_consumer_into_clickhouse() {
    let brokers = harness::kafka_brokers();
    let url = harness::clickhouse_url();
    let db = harness::TestDb::new();
    let table = db.table("trips");
    let topic = harness::unique_name("status_run");
    let group = harness::unique_name("status_loaders");
    harness::create_topic(&brokers, &topic, 2);
    let consumer = Running(
        Command::new(BIN)
            .args([
                "consume",
                "--brokers",
                &brokers,
                "--topic",
                &topic,
                "--group",
                &group,
                "--clickhouse-url",
                &url,
                "--table",
                &table,
                "--create-table",
                "--exactly-once",
                "--max-delay-ms",
                "200",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    produce_batched(dir.path(), &brokers, &topic, 30_000);
    let truth = ground_truth(&brokers, &topic, 2);

    let out = velostream(&[
        "status",
        "--brokers",
        &brokers,
        "--topic",
        &topic,
        "--group",
        &group,
        "--clickhouse-url",
        &url,
        "--table",
        &table,
        "--wait-drained",
        "--timeout",
        "120s",
        "--interval",
        "500ms",
        "--json",
    ]);
    let s: serde_json::Value =
        serde_json::from_str(&ok(&out, "status --wait-drained")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s["drained"], true, "{s:#}");
    assert_eq!(s["lag_messages"], 0);
    assert_eq!(s["table"]["rows"], 30_000, "{s:#}");
    assert_eq!(s["table"]["exactly_once"], true);
    assert_eq!(
        db.query(&format!("SELECT count() FROM {table}")).trim(),
        "30000"
    );
    for p in s["partitions"].as_array().unwrap() {
        let (msgs, _, _) = truth[&(p["partition"].as_i64().unwrap() as i32)];
        assert_eq!(p["committed_offset"], msgs, "{p:#}");
        assert_eq!(p["stored_offset"], msgs, "{p:#}");
        assert_eq!(p["stored_behind"], 0, "{p:#}");
    }
    // The running member. tansu 0.6 describes members without client id,
    // host or assignment (checked: also with confluent-kafka's
    // describe_consumer_groups), so owners are shown on real Kafka only; the
    // assignment decoder is unit-tested on the protocol's bytes.
    let members = s["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{s:#}");
    assert!(
        members[0]["id"].as_str().unwrap().starts_with("rdkafka-"),
        "{s:#}"
    );
    assert_eq!(s["group_state"], "Stable");
    drop(consumer);
}
