//! The broker restarted in the middle of a produce run: the producer never
//! claims rows that were not acknowledged.

use std::collections::HashMap;
use std::time::Duration;

use velostream_codecs::envelope::{H_FILE, H_ROWS, H_ROW_GROUP, H_SLICE};

use crate::harness::cmd::velostream;
use crate::harness::data::Taxi;
use crate::harness::kafka::{read_topic, Until};
use crate::harness::own_servers::OwnTansu;
use crate::harness::paths::path_str;
use crate::harness::prometheus::metric_value;
use crate::harness::{self};

/// Rows acknowledged, as the producer's metrics endpoint counts them in
/// its delivery callback.
fn acked_rows(metrics: &str) -> Option<u64> {
    metric_value(metrics, "velostream_producer_rows_total").map(|v| v as u64)
}

/// Every message in `topic`: (messages, distinct messages by their
/// envelope source id, rows of the distinct messages).
fn topic_contents(brokers: &str, topic: &str) -> (u64, u64, u64) {
    let messages = read_topic(brokers, topic, Until::Quiet(Duration::from_secs(5)));
    let mut seen: HashMap<String, u64> = HashMap::new();
    for m in &messages {
        let id = format!(
            "{}/{}/{}",
            m.expect_header(H_FILE),
            m.expect_header(H_ROW_GROUP),
            m.expect_header(H_SLICE)
        );
        let rows = m.expect_header(H_ROWS).parse().expect("rows header");
        seen.insert(id, rows);
    }
    (
        messages.len() as u64,
        seen.len() as u64,
        seen.values().sum(),
    )
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
    let files = Taxi::rows(ROWS)
        .row_groups(12_500)
        .seed(0x5eed_0201)
        .write(&dir.path().join("data"));
    let metrics = format!("127.0.0.1:{}", harness::free_port());
    let mut producer = velostream()
        .args(["--log", "warn", "produce", "--brokers", &brokers])
        .args(["--topic", &topic, "--partitions", "2"])
        .args(["--max-rows-per-message", "50", "--metrics-addr", &metrics])
        // Paced by acknowledgements; lost messages fail within 30 s.
        .args(["-X", "queue.buffering.max.messages=200"])
        .args(["-X", "message.timeout.ms=30000"])
        .arg(path_str(&files[0]))
        .spawn(&dir.path().join("produce.log"));
    producer.wait_until("rows are acknowledged", Duration::from_secs(60), |_| {
        acked_rows(&metrics).is_some_and(|r| r > 0)
    });
    // Freeze the broker: no acknowledgement can arrive any more. Once the
    // counter is stable it is exactly what the first broker acknowledged.
    broker.signal("-STOP");
    let mut acked_before = acked_rows(&metrics).expect("metrics");
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = acked_rows(&metrics).expect("metrics");
        if now == acked_before {
            break;
        }
        acked_before = now;
    }
    drop(broker); // SIGKILL
    let restarted = OwnTansu::start(port, &dir.path().join("tansu-2.log"));
    harness::create_topic(&brokers, &topic, 2);
    let status = producer.wait(Duration::from_secs(180));
    let out = producer.log();
    let (messages, distinct, rows_after) = topic_contents(&brokers, &topic);
    drop(restarted);
    eprintln!(
        "broker restart mid-produce: {acked_before} of {ROWS} rows acknowledged by the first \
         broker; the restarted one holds {rows_after} rows in {distinct} distinct messages \
         ({} duplicate messages); producer {status}:\n{}",
        messages - distinct,
        producer.tail(5)
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
