//! File-to-table exactly-once: `velostream produce` SIGKILLed at seeded
//! random moments and run again over the same files (what a retried Airflow
//! task does) sends some slices twice as new Kafka messages; an
//! `--exactly-once` consumer recognises each slice by its file fingerprint,
//! row group and slice (the `velostream.file_id` header, stored in the
//! `_velostream_source`/`_velostream_slice` columns) and stores it once. The
//! table ends equal to the files, value for value.

use std::time::{Duration, Instant};

use crate::harness::cmd::velostream;
use crate::harness::compare::compare_taxi;
use crate::harness::data::{read_files, Rng, Taxi};
use crate::harness::pipeline::Consume;
use crate::harness::{self, TestDb};

#[test]
fn produce_killed_and_run_again_adds_no_row_twice() {
    const ROWS: u64 = 600_000;
    const KILLS: u32 = 4;
    let seed = 0x5eed_f11e;
    let brokers = harness::kafka_brokers();
    let db = TestDb::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let files = Taxi::rows(ROWS)
        .files(12)
        .row_groups(10_000)
        .seed(seed)
        .write(&dir.path().join("data"));
    let topic = harness::unique_name("f2t");
    harness::create_topic(&brokers, &topic, 3);
    let table = db.table("trips");
    let mut consume = Consume::new(&brokers, &db.url, &topic, &table);
    consume.exactly_once = true;
    consume.exit_when_idle = Some(10);
    let mut member = consume.cmd().spawn(&dir.path().join("consume.log"));

    let produce = velostream()
        .args(["produce", "--brokers", &brokers, "--topic", &topic])
        .args(["--partitions", "3", "--max-rows-per-message", "2000"])
        .args(files.iter().map(|f| f.to_str().expect("UTF-8 path")));
    let mut rng = Rng::new(seed);
    let mut cut_short = 0;
    for run in 1..=KILLS {
        let mut producer = produce.spawn(&dir.path().join(format!("produce-{run}.log")));
        // A run takes about a second here: most kills land mid-run.
        let at = Duration::from_millis(rng.range(100, 1_200));
        let started = Instant::now();
        while started.elapsed() < at && producer.exited().is_none() {
            std::thread::sleep(Duration::from_millis(10));
        }
        let killed = producer.exited().is_none();
        if killed {
            producer.kill();
            cut_short += 1;
        }
        eprintln!("file to table: produce run {run}: SIGKILL at {at:?} (mid-run: {killed})");
    }
    produce.timeout(Duration::from_secs(300)).expect_success();
    member.expect_success(Duration::from_secs(600));
    let skipped = member.log().matches("is already stored").count();
    let c = compare_taxi(&db.url, &table, &read_files(&files));
    eprintln!(
        "file to table: {cut_short} of {KILLS} produce runs killed mid-run, then one complete \
         run; {skipped} skip lines logged; {}",
        c.summary()
    );
    assert!(
        cut_short > 0,
        "no produce run was killed before it finished"
    );
    c.assert_exact("file to table after killed and repeated produce runs");
}
