//! `--exactly-once` into a day-partitioned `ReplicatedMergeTree` on two
//! replicas of one shard (two clickhouse-server processes and a ZooKeeper,
//! owned by the test), given to the consumer as one `--clickhouse-url` with
//! both replica URLs. The replica running an INSERT is SIGKILLed (six
//! times) and restarted seconds later: inserts fail over to the other
//! replica, unknown outcomes wait for the replica that holds the answer, and
//! both replicas end with every produced row exactly once.

use std::time::{Duration, Instant};

use crate::harness::clickhouse::{ch_query, insert_running, try_count};
use crate::harness::compare::compare_taxi;
use crate::harness::data::{read_files, Rng, Taxi};
use crate::harness::exactly_once::exactly_once;
use crate::harness::http::get_ok;
use crate::harness::pipeline::{day_partitioned_table, produce_slowly, Consume};
use crate::harness::{self};

const TABLE: &str = "eo.trips";

/// Waits (up to 20 s) until an INSERT runs on one of `urls`; which one
/// (the first replica when none did).
fn wait_for_insert(urls: &[String]) -> (usize, bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        for (i, url) in urls.iter().enumerate() {
            if insert_running(url) {
                return (i, true);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (0, false)
}

#[test]
fn replicated_partitioned_table_survives_replica_sigkills_with_failover() {
    const ROWS: u64 = 480_000;
    const KILLS: usize = 6;
    let seed = 0x5eed_7e91;
    let cluster = harness::own_clickhouse_cluster(1, 2);
    let urls: Vec<String> = cluster.shard_urls()[0].clone();
    for url in &urls {
        ch_query(url, "CREATE DATABASE eo");
    }
    let brokers = harness::kafka_brokers();
    let dir = tempfile::tempdir().expect("tempdir");
    let files = Taxi::rows(ROWS)
        .files(24)
        .row_groups(10_000)
        .seed(seed)
        .write(&dir.path().join("data"));
    let topic = harness::unique_name("eo_replicas");
    let url_refs: Vec<&str> = urls.iter().map(String::as_str).collect();
    day_partitioned_table((&brokers, &topic, 2), &url_refs, TABLE, &files[0]);
    let producer = produce_slowly(&brokers, &topic, &files, 2, Duration::from_millis(1_500));
    let mut consume = Consume::new(&brokers, &urls.join(","), &topic, TABLE);
    consume.exactly_once = true;
    consume.insert_rows = 40_000;
    consume.exit_when_idle = Some(10);
    let metrics = format!("127.0.0.1:{}", harness::free_port());
    let mut member = consume
        .cmd()
        .args(["--metrics-addr", &metrics])
        .spawn(&dir.path().join("consume.log"));
    // The failover counter, as the consumer's /metrics shows it now.
    let failovers_metric = || {
        let text = get_ok(&format!("http://{metrics}/metrics")).unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with("velostream_consumer_failovers_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let mut counted = 0.0f64;
    assert!(
        member.wait_for_log("partitions assigned", Duration::from_secs(60)),
        "no assignment\n{}",
        member.describe()
    );

    let mut rng = Rng::new(seed);
    let mut during_insert = 0;
    for kill in 0..KILLS {
        let (victim, running) = wait_for_insert(&urls);
        let replica = cluster.server(0, victim);
        std::thread::sleep(Duration::from_millis(rng.range(0, 40)));
        replica.kill().expect("SIGKILL replica");
        during_insert += usize::from(running);
        let down = Duration::from_millis(rng.range(2_000, 6_000));
        eprintln!(
            "replica kills: kill {} of replica {} (insert running: {running}), down {down:?}, \
             {} rows on the other replica",
            kill + 1,
            victim + 1,
            try_count(&urls[1 - victim], TABLE).unwrap_or(0)
        );
        std::thread::sleep(down);
        member.assert_running("the consumer keeps running while a replica is down");
        replica
            .restart(Duration::from_secs(60))
            .expect("restarting the replica");
        counted = counted.max(failovers_metric());
    }
    let messages = producer.join().expect("producer thread");
    member.expect_success(Duration::from_secs(600));
    let log = member.log();
    let failovers = log.matches("failing over to another replica").count();
    let batches = read_files(&files);
    for url in &urls {
        ch_query(url, &format!("SYSTEM SYNC REPLICA {TABLE}"));
        let c = compare_taxi(url, TABLE, &batches);
        eprintln!(
            "replica kills: {KILLS} SIGKILLs ({during_insert} during an INSERT), {failovers} \
             failovers, {messages} messages; {url}: {}",
            c.summary()
        );
        c.assert_exact(&format!("replica {url} after replica SIGKILLs"));
        exactly_once(url, TABLE, &brokers, &topic)
            .messages(messages)
            .assert();
    }
    assert!(during_insert > 0, "no kill hit a running INSERT");
    assert!(failovers > 0, "no insert failed over:\n{log}");
    eprintln!("replica kills: velostream_consumer_failovers_total read {counted} during the run");
    assert!(
        counted >= 1.0 && counted <= failovers as f64,
        "the failover metric ({counted}) disagrees with the {failovers} failovers logged"
    );
}
