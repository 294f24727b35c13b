//! `velostream bench --rate N% --duration D` against the real broker and
//! ClickHouse: after the backlog run, a steady stream at a share of the
//! backlog's end-to-end rate, every message's latency from Kafka's
//! acknowledgement to its rows being visible, and every row in the table.
//! Latency figures are checked for consistency, never against a time
//! limit (benches/RESULTS.md records them).

use std::time::Duration;

use velostream::bench::report::Report;

use crate::harness::cmd::velostream;
use crate::harness::paths::path_str;
use crate::harness::{self};

#[test]
fn a_steady_stream_at_a_share_of_the_backlog_rate_is_measured_message_by_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report_path = dir.path().join("report.json");
    velostream()
        .args(["bench", "--rows", "40000", "--partitions", "2"])
        .args(["--brokers", &harness::kafka_brokers()])
        .args(["--clickhouse-url", &harness::clickhouse_url()])
        .args(["--rate", "25%", "--duration", "4"])
        .args(["--data-dir", path_str(&dir.path().join("data"))])
        .args(["--report-json", path_str(&report_path)])
        .timeout(Duration::from_secs(300))
        .expect_success();
    let text = std::fs::read_to_string(&report_path).expect("report");
    let report: Report = serde_json::from_str(&text).expect("a typed report");
    assert!(report.validated, "{:?}", report.differences);
    // Each insert of the backlog run wrote one part (the bench's table has
    // no partition key, inserts are far below a block), and the report says
    // what ended each one.
    let inserts: u64 = report.run.consumer.inserts_by_reason.values().sum();
    let parts = report
        .run
        .clickhouse_parts
        .expect("the local server keeps a part log");
    assert_eq!(
        inserts, parts.parts_created,
        "inserts by reason {:?}",
        report.run.consumer.inserts_by_reason
    );
    let f = report
        .freshness
        .expect("the report has the freshness phase");
    assert_eq!(f.share_of_backlog, Some(0.25));
    let expected_rate = 0.25 * report.run.end_to_end_rows_per_s;
    assert!(
        (f.rate_rows_per_s - expected_rate).abs() <= 1e-6 * expected_rate + 1.0,
        "rate {} is 25% of the backlog's {}",
        f.rate_rows_per_s,
        report.run.end_to_end_rows_per_s
    );
    // 20 messages a second for 4 s.
    assert!((79..=81).contains(&f.messages), "{f:?}");
    assert_eq!(
        f.rows, f.rows_clickhouse,
        "every streamed row is in the table"
    );
    assert!(f.rows >= f.messages, "{f:?}");
    assert!(
        0.0 <= f.latency_p50_s
            && f.latency_p50_s <= f.latency_p99_s
            && f.latency_p99_s <= f.latency_max_s,
        "{f:?}"
    );
    assert!(
        f.latency_max_s < 60.0,
        "every message became visible: {f:?}"
    );
    assert!(f.seconds >= 4.0, "the stream lasted its duration: {f:?}");
    assert!(
        f.lag.len() as f64 >= f.seconds / 0.5 && f.lag.windows(2).all(|w| w[0].0 < w[1].0),
        "lag sampled about every 250 ms: {:?}",
        f.lag
    );
    assert_eq!(f.peak_lag_rows, f.lag.iter().map(|l| l.1).max().unwrap());
}
