//! Self-tests of the harness and of `velostream::local`: services start, a
//! second start reuses the running instance, ClickHouse queries and errors,
//! topic creation, Prometheus scraping a registered target, the command
//! builder's environment and failure messages, the exactly-once decision.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use velostream::local::{LocalOptions, LocalServices, Service};

use crate::harness::cmd::{removed_variables, velostream, OTHER_VARIABLES};
use crate::harness::data::Rng;
use crate::harness::exactly_once::{differences, Difference};
use crate::harness::process::process_alive;
use crate::harness::{self, ch_query, ch_try_query, TestDb};

#[test]
fn local_services_second_start_reuses_and_stop_stops() {
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

#[test]
fn stale_pid_file_is_replaced() {
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
    assert_eq!(harness::clickhouse_url(), harness::clickhouse_url());
    assert_eq!(harness::kafka_brokers(), harness::kafka_brokers());
}

#[test]
fn ch_query_returns_tsv_and_panics_with_the_server_message() {
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
    let db = TestDb::new();
    db.query(&format!(
        "CREATE TABLE {} (s LowCardinality(String)) ENGINE = MergeTree ORDER BY tuple()",
        db.table("lc")
    ));
}

#[test]
fn create_topic_creates_all_partitions_and_is_idempotent() {
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
    assert!(harness::http::get_ok(&format!("{url}/-/ready")).is_ok());
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
    assert!(harness::http::get(&format!("{url}/-/ready")).is_err());
}

#[test]
fn the_command_builder_removes_what_the_binary_would_read() {
    let inherited = [
        ("VELOSTREAM_CONFIG", "/etc/velostream.toml"),
        ("VELOSTREAM_CLICKHOUSE_PASSWORD", "x"),
        ("VELOSTREAM_TEST_BROKERS", "127.0.0.1:1"),
        ("NO_COLOR", "1"),
        ("HOME", "/home/tester"),
        ("PATH", "/usr/bin"),
    ]
    .map(|(k, v)| (k.into(), v.into()));
    let removed = removed_variables(inherited);
    assert_eq!(
        removed,
        [
            "VELOSTREAM_CONFIG",
            "VELOSTREAM_CLICKHOUSE_PASSWORD",
            "VELOSTREAM_TEST_BROKERS",
            "NO_COLOR"
        ]
        .map(std::ffi::OsString::from)
    );
    // Set by the test after the clean-up: the binary reads this one.
    let cmd = velostream().env("VELOSTREAM_LOG", "debug").command();
    let envs: Vec<(String, Option<String>)> = cmd
        .get_envs()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.map(|v| v.to_string_lossy().into_owned()),
            )
        })
        .collect();
    for name in OTHER_VARIABLES.iter().filter(|n| **n != "NO_COLOR") {
        assert!(envs.contains(&(name.to_string(), None)), "{name}: {envs:?}");
    }
    for set in [
        ("VELOSTREAM_QUIET", "1"),
        ("NO_COLOR", "1"),
        ("VELOSTREAM_LOG", "debug"),
    ] {
        assert!(
            envs.contains(&(set.0.to_string(), Some(set.1.to_string()))),
            "{set:?}: {envs:?}"
        );
    }
}

#[test]
fn a_config_file_reaches_the_binary_only_when_the_test_sets_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("typo.toml");
    std::fs::write(&config, "brokres = \"x:1\"\n").unwrap();
    let out = velostream()
        .args(["consume", "--help"])
        .env("VELOSTREAM_CONFIG", &config)
        .expect_failure();
    assert!(
        out.stderr.contains("typo.toml") && out.stderr.contains("brokres"),
        "{}",
        out.describe()
    );
    velostream().args(["consume", "--help"]).expect_success();
}

#[test]
fn an_unexpected_outcome_shows_command_status_stdout_and_stderr() {
    let panic = std::panic::catch_unwind(|| {
        velostream()
            .args(["--log", "warn", "no-such-subcommand"])
            .expect_success()
    })
    .unwrap_err();
    let msg = panic.downcast_ref::<String>().unwrap();
    for part in [
        "command: VELOSTREAM_QUIET=1 NO_COLOR=1 velostream --log warn no-such-subcommand",
        "exit status: exit status: 2",
        "stdout:",
        "stderr:",
        "no-such-subcommand",
    ] {
        assert!(msg.contains(part), "{part:?} in {msg}");
    }
    let panic =
        std::panic::catch_unwind(|| velostream().arg("--help").expect_failure()).unwrap_err();
    let msg = panic.downcast_ref::<String>().unwrap();
    assert!(
        msg.contains("expected a failure") && msg.contains("Usage"),
        "{msg}"
    );
}

#[test]
fn exactly_once_differences_name_every_kind_of_fault() {
    let expected: std::collections::BTreeMap<(i32, i64), u64> = [
        ((0, 0), 10),
        ((0, 1), 10),
        ((0, 2), 10),
        ((0, 3), 0),
        ((1, 0), 5),
        ((1, 1), 7),
    ]
    .into();
    let stored: std::collections::BTreeMap<(i32, i64), u64> = [
        ((0, 0), 10),
        ((0, 2), 4),
        ((1, 0), 10),
        ((1, 1), 7),
        ((1, 2), 3),
    ]
    .into();
    assert_eq!(
        differences(&expected, &stored),
        vec![
            Difference::Missing {
                at: (0, 1),
                rows: 10
            },
            Difference::Partial {
                at: (0, 2),
                rows: 10,
                stored: 4
            },
            Difference::Duplicated {
                at: (1, 0),
                rows: 5,
                stored: 10
            },
            Difference::NoSuchMessage {
                at: (1, 2),
                stored: 3
            },
        ]
    );
    assert!(differences(&expected, &expected).is_empty());
    // A message that must store nothing (a dead letter) but did.
    let dead: std::collections::BTreeMap<(i32, i64), u64> = [((0, 3), 2)].into();
    assert_eq!(
        differences(&[((0, 3), 0)].into(), &dead)[0].to_string(),
        "partition 0 offset 3: duplicated (2 rows stored, the message has 0)"
    );
}

#[test]
fn the_rng_repeats_for_a_seed() {
    let (mut a, mut b, mut c) = (Rng::new(7), Rng::new(7), Rng::new(8));
    let xs: Vec<u64> = (0..5).map(|_| a.range(100, 1500)).collect();
    let ys: Vec<u64> = (0..5).map(|_| b.range(100, 1500)).collect();
    assert_eq!(xs, ys);
    assert!(xs.iter().all(|x| (100..=1500).contains(x)));
    assert_ne!(a.bytes(16), c.bytes(16));
}
