//! ClickHouse killed in the middle of an exactly-once run and started again
//! 5 s later: the consumer retries instead of exiting, and in the end every
//! message is stored exactly once.

use std::time::{Duration, Instant};

use crate::harness::clickhouse::{ch_query, count, try_count};
use crate::harness::compare::compare_taxi;
use crate::harness::data::{read_files, Taxi};
use crate::harness::exactly_once::exactly_once;
use crate::harness::own_servers::OwnClickHouse;
use crate::harness::pipeline::{produce_slowly, Consume};
use crate::harness::process::vm_hwm_kib;
use crate::harness::{self};

#[test]
fn consumer_rides_out_a_clickhouse_restart() {
    const ROWS: u64 = 300_000;
    let brokers = harness::kafka_brokers();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ch = OwnClickHouse::start(&dir.path().join("clickhouse"));
    let url = ch.url();
    ch_query(&url, "CREATE DATABASE rel");
    let table = "rel.trips";
    let files = Taxi::rows(ROWS)
        .files(12)
        .row_groups(12_500)
        .seed(0x5eed_0005)
        .write(&dir.path().join("data"));
    let topic = harness::unique_name("rel_chdown");
    harness::create_topic(&brokers, &topic, 2);
    let producer = produce_slowly(&brokers, &topic, &files, 2, Duration::from_millis(700));
    let mut consume = Consume::new(&brokers, &url, &topic, table);
    consume.exactly_once = true;
    let mut member = consume.cmd().spawn(&dir.path().join("consume.log"));
    assert!(
        member.wait_for_log("partitions assigned", Duration::from_secs(60)),
        "the consumer exited before it was assigned partitions\n{}",
        member.describe()
    );
    // Let some inserts land, then take ClickHouse away for 5 s.
    let mut peak_kib = 0;
    let mut sample = |pid: u32| peak_kib = peak_kib.max(vm_hwm_kib(pid).unwrap_or(0));
    let until = Instant::now() + Duration::from_secs(60);
    while try_count(&url, table).unwrap_or(0) == 0 {
        assert!(
            Instant::now() < until,
            "nothing was inserted\n{}",
            member.describe()
        );
        sample(member.pid());
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = count(&url, table);
    ch.kill();
    let down = Instant::now();
    while down.elapsed() < Duration::from_secs(5) {
        member.assert_running("the consumer keeps running while ClickHouse is down");
        sample(member.pid());
        std::thread::sleep(Duration::from_millis(50));
    }
    ch.run();
    let messages = producer.join().expect("producer thread");
    let status = member.wait_with(Duration::from_secs(300), &mut sample);
    assert!(
        status.success(),
        "consumer failed ({status})\n{}",
        member.describe()
    );
    let out = member.log();
    let retries = out.matches("retrying").count();
    let c = compare_taxi(&url, table, &read_files(&files));
    eprintln!(
        "ClickHouse restart: {messages} messages, {before} rows stored before the stop, \
         {retries} insert retries logged, {}, consumer peak RSS {:.1} MiB",
        c.summary(),
        peak_kib as f64 / 1024.0
    );
    assert!(
        before < ROWS,
        "everything was stored before ClickHouse stopped: no fault was injected"
    );
    assert!(retries > 0, "no insert was retried:\n{out}");
    c.assert_exact("exactly-once across a ClickHouse restart");
    exactly_once(&url, table, &brokers, &topic)
        .messages(messages)
        .assert();
    assert!(peak_kib > 0, "peak RSS of the consumer could not be read");
}
