//! Self-tests of the harness and of `velostream::local`: services start, a
//! second start reuses the running instance, ClickHouse queries and errors,
//! topic creation, Prometheus scraping a registered target.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use velostream::local::{LocalOptions, LocalServices, Service};

use crate::harness::{self, ch_query, ch_try_query, TestDb};

#[test]
fn local_services_second_start_reuses_and_stop_stops() {
    crate::require_services!(ClickHouse);
    let dir = tempfile::tempdir().unwrap();
    let opts = harness::local_options(dir.path().to_path_buf());
    let first = LocalServices::start(&[Service::ClickHouse], &opts).unwrap();
    assert_eq!(first.started(), &[Service::ClickHouse]);
    let url = first.endpoints().clickhouse_url.clone().unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert_eq!(ch_query(&url, "SELECT 1"), "1\n");

    let second = LocalServices::start(&[Service::ClickHouse], &opts).unwrap();
    assert!(
        second.started().is_empty(),
        "second start must reuse the running server"
    );
    assert_eq!(
        second.endpoints().clickhouse_url.as_deref(),
        Some(url.as_str())
    );
    // Stopping the reusing handle leaves the server running.
    second.stop().unwrap();
    assert_eq!(ch_query(&url, "SELECT 2"), "2\n");

    let pid: u32 = std::fs::read_to_string(dir.path().join("clickhouse/pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    first.stop().unwrap();
    assert!(
        ch_try_query(&url, "SELECT 1").is_err(),
        "server still answers after stop"
    );
    assert!(!process_alive(pid), "pid {pid} survived stop");
    assert!(!dir.path().join("clickhouse/pid").exists());
}

/// True when `pid` exists and is not a zombie (an orphaned service is
/// reparented to PID 1, which may not reap it).
fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(") ")
                .map(|(_, rest)| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

#[test]
fn stale_pid_file_is_replaced() {
    crate::require_services!(ClickHouse);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("clickhouse")).unwrap();
    // A pid that cannot be a live clickhouse-server: beyond pid_max.
    std::fs::write(dir.path().join("clickhouse/pid"), "999999999\n").unwrap();
    let opts = harness::local_options(dir.path().to_path_buf());
    let services = LocalServices::start(&[Service::ClickHouse], &opts).unwrap();
    assert_eq!(services.started(), &[Service::ClickHouse]);
    let url = services.endpoints().clickhouse_url.clone().unwrap();
    assert_eq!(ch_query(&url, "SELECT 1"), "1\n");
    services.stop().unwrap();
}

#[test]
fn harness_services_are_started_once_per_process() {
    crate::require_services!(ClickHouse, Kafka);
    assert_eq!(harness::clickhouse_url(), harness::clickhouse_url());
    assert_eq!(harness::kafka_brokers(), harness::kafka_brokers());
}

#[test]
fn ch_query_returns_tsv_and_panics_with_the_server_message() {
    crate::require_services!(ClickHouse);
    let url = harness::clickhouse_url();
    assert_eq!(ch_query(&url, "SELECT 1 + 1, 'a\\tb'"), "2\ta\\tb\n");
    let err = ch_try_query(&url, "SELECT no_such_column").unwrap_err();
    assert!(
        err.contains("no_such_column") && err.contains("HTTP 404"),
        "{err}"
    );
    let panic = std::panic::catch_unwind(|| ch_query(&url, "SELEC 1")).unwrap_err();
    let msg = panic.downcast_ref::<String>().unwrap();
    assert!(msg.contains("Syntax error"), "{msg}");
}

#[test]
fn test_db_is_created_and_dropped() {
    crate::require_services!(ClickHouse);
    let url = harness::clickhouse_url();
    let exists = |name: &str| {
        ch_query(
            &url,
            &format!("SELECT count() FROM system.databases WHERE name = '{name}'"),
        )
    };
    let name = {
        let db = TestDb::new();
        db.query(&format!(
            "CREATE TABLE {} (x UInt32) ENGINE = MergeTree ORDER BY x",
            db.table("t")
        ));
        db.query(&format!("INSERT INTO {} VALUES (1), (2)", db.table("t")));
        assert_eq!(
            db.query(&format!("SELECT sum(x) FROM {}", db.table("t"))),
            "3\n"
        );
        assert_eq!(exists(&db.name), "1\n");
        db.name.clone()
    };
    assert_eq!(exists(&name), "0\n");
}

#[test]
fn low_cardinality_is_allowed_by_the_test_server() {
    crate::require_services!(ClickHouse);
    let db = TestDb::new();
    db.query(&format!(
        "CREATE TABLE {} (s LowCardinality(String)) ENGINE = MergeTree ORDER BY tuple()",
        db.table("lc")
    ));
}

#[test]
fn create_topic_creates_all_partitions_and_is_idempotent() {
    crate::require_services!(Kafka);
    let brokers = harness::kafka_brokers();
    let topic = harness::unique_name("selftest");
    harness::create_topic(&brokers, &topic, 3);
    harness::create_topic(&brokers, &topic, 3);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .unwrap();
    let t = md.topics().iter().find(|t| t.name() == topic).unwrap();
    assert_eq!(t.partitions().len(), 3);
}

#[test]
fn unique_names_are_distinct_and_sql_safe() {
    let a = harness::unique_name("My-Topic");
    let b = harness::unique_name("My-Topic");
    assert_ne!(a, b);
    assert!(a.starts_with("my_topic_"), "{a}");
    assert!(
        a.chars().all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_')),
        "{a}"
    );
}

#[test]
fn paths_point_into_the_repository() {
    assert!(harness::repo_root()
        .join("infra/local/install.sh")
        .is_file());
    assert!(harness::venv_python().exists());
    assert!(harness::shared_testdata().join("data").is_dir());
}

#[test]
fn prometheus_scrapes_a_registered_target() {
    crate::require_services!(Prometheus);
    // A tiny /metrics endpoint with a counter.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = "# TYPE harness_selftest_total counter\nharness_selftest_total 42\n";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let target = harness::scrape(&addr);
    harness::wait_for_scrape(&target, Duration::from_secs(30));
    let expr = format!("harness_selftest_total{{test=\"{}\"}}", target.label);
    let mut result = Vec::new();
    for _ in 0..50 {
        result = harness::prom_query(&expr);
        if !result.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(result.len(), 1, "{expr}: {result:?}");
    assert_eq!(result[0]["value"][1], "42");
}

#[test]
fn services_stop_when_their_owner_process_exits() {
    crate::require_services!(Prometheus);
    let dir = tempfile::tempdir().unwrap();
    let mut owner = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let opts = LocalOptions {
        owner_pid: Some(owner.id()),
        ..harness::local_options(dir.path().to_path_buf())
    };
    let services = LocalServices::start(&[Service::Prometheus], &opts).unwrap();
    let url = services.endpoints().prometheus_url.clone().unwrap();
    let pid: u32 = std::fs::read_to_string(dir.path().join("prometheus/pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    services.detach();
    assert!(harness::http_request("GET", &format!("{url}/-/ready"), b"").is_ok());
    owner.kill().unwrap();
    owner.wait().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while process_alive(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !process_alive(pid),
        "prometheus pid {pid} still running 20 s after its owner exited"
    );
    assert!(harness::http_request("GET", &format!("{url}/-/ready"), b"").is_err());
}
