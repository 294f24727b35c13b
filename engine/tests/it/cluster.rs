//! The consumer against a real ClickHouse cluster (clickhouse-server
//! processes with `remote_servers`, `macros` and ZooKeeper): one
//! `--clickhouse-url` per shard (replicas comma-separated), `--cluster` to
//! create the table on every server. Kafka partition p goes to shard
//! p mod shards; the union of the shards (read through the `Distributed`
//! table `--create-table` makes) equals the source, each Kafka message once.

use std::time::{Duration, Instant};

use velostream::bench::report::Report;

use crate::harness::clickhouse::{ch_query, try_count};
use crate::harness::cmd::{velostream, Cmd};
use crate::harness::compare::compare_taxi;
use crate::harness::data::{read_files, Taxi};
use crate::harness::exactly_once::exactly_once;
use crate::harness::paths::path_str;
use crate::harness::pipeline::{consume_cli, produce_files, produce_slowly};
use crate::harness::{self};

/// `velostream consume --exactly-once` of `topic` into `table` on the
/// shards `shards` (one URL list per shard) of cluster `cluster`.
fn consume_into(shards: &[Vec<String>], cluster: &str, topic: &str, table: &str) -> Cmd {
    let mut cmd = consume_cli(topic, table)
        .args(["--group", topic])
        .args(["--cluster", cluster, "--create-table", "--exactly-once"])
        .args(["--insert-rows", "20000", "--max-delay-ms", "200"])
        .args([
            "-X",
            "session.timeout.ms=2000",
            "-X",
            "heartbeat.interval.ms=500",
        ]);
    for shard in shards {
        cmd = cmd.args(["--clickhouse-url", &shard.join(",")]);
    }
    cmd
}

/// Creates database `db` on every server of `shards`.
fn create_database(shards: &[Vec<String>], db: &str) {
    for url in shards.iter().flatten() {
        ch_query(url, &format!("CREATE DATABASE IF NOT EXISTS {db}"));
    }
}

/// The Kafka partitions whose rows the local table holds at `url`.
fn partitions_on(url: &str, table: &str) -> Vec<u32> {
    let text = ch_query(
        url,
        &format!("SELECT DISTINCT _velostream_partition FROM {table}"),
    );
    let mut held: Vec<u32> = text
        .lines()
        .map(|l| l.trim().parse().expect("partition"))
        .collect();
    held.sort_unstable();
    held
}

/// Replicas of each shard in sync; panics naming the shard otherwise.
fn assert_replicas_agree(shards: &[Vec<String>], table: &str) {
    for (i, shard) in shards.iter().enumerate() {
        let counts: Vec<u64> = shard
            .iter()
            .map(|url| {
                ch_query(url, &format!("SYSTEM SYNC REPLICA {table}"));
                try_count(url, table).expect("count")
            })
            .collect();
        assert!(
            counts.windows(2).all(|w| w[0] == w[1]),
            "replicas of shard {} disagree: {counts:?} rows",
            i + 1
        );
    }
}

/// 4 Kafka partitions into the 2 × 2 cluster: each partition's rows on
/// exactly one shard (p mod 2), both replicas of a shard equal, and the
/// union (the Distributed table) equal to the source with every message
/// stored once.
#[test]
fn four_partitions_into_two_shards_exactly_once_with_partition_affinity() {
    let cluster = harness::clickhouse_cluster();
    let shards = &cluster.shard_urls;
    let db = harness::unique_name("cl");
    create_database(shards, &db);
    let table = format!("{db}.trips");
    let dir = tempfile::tempdir().expect("tempdir");
    let files = Taxi::rows(120_000)
        .files(6)
        .row_groups(10_000)
        .seed(0x5eed_c1a5)
        .write(dir.path());
    let brokers = harness::kafka_brokers();
    let topic = harness::unique_name("cluster");
    let messages = produce_files(&brokers, &topic, &files, 4, 4_000);
    consume_into(shards, &cluster.name, &topic, &table)
        .args(["--exit-when-idle", "5"])
        .timeout(Duration::from_secs(300))
        .expect_success();

    assert_replicas_agree(shards, &table);
    for (i, shard) in shards.iter().enumerate() {
        let held = partitions_on(&shard[0], &table);
        let expected: Vec<u32> = (0..4).filter(|p| *p as usize % shards.len() == i).collect();
        assert_eq!(held, expected, "Kafka partitions on shard {}", i + 1);
    }
    let distributed = format!("{table}_distributed");
    let url = &shards[0][0];
    let c = compare_taxi(url, &distributed, &read_files(&files));
    eprintln!(
        "cluster: {messages} messages into {} shards: {}",
        shards.len(),
        c.summary()
    );
    c.assert_exact("the union of the shards");
    // `verify` given the shards compares the source with their union.
    let mut verify = velostream().args(["verify", "--table", &table]);
    for shard in shards {
        verify = verify.args(["--clickhouse-url", &shard.join(",")]);
    }
    verify.arg(dir.path()).expect_success();
    exactly_once(url, &distributed, &brokers, &topic)
        .messages(messages)
        .assert();
}

/// `--cluster` with URLs that put a server of shard 2 into shard 1 is
/// refused at start, naming the server and both shards.
#[test]
fn cluster_urls_that_disagree_with_system_clusters_are_refused_naming_the_server() {
    let cluster = harness::clickhouse_cluster();
    let shards = &cluster.shard_urls;
    let wrong = vec![
        vec![shards[0][0].clone(), shards[1][0].clone()],
        vec![shards[1][1].clone()],
    ];
    let topic = harness::unique_name("cluster_wrong");
    harness::create_topic(&harness::kafka_brokers(), &topic, 2);
    let out = consume_into(&wrong, &cluster.name, &topic, "default.never_created")
        .args(["--exit-when-idle", "2"])
        .timeout(Duration::from_secs(60))
        .expect_failure();
    let err = out.stderr;
    for needle in [
        shards[1][0].as_str(),
        "given as a replica of shard 1",
        "puts it in shard 2",
        cluster.name.as_str(),
    ] {
        assert!(
            err.contains(needle),
            "the error must name {needle:?}: {err}"
        );
    }
    for url in shards.iter().flatten() {
        let n = ch_query(
            url,
            "SELECT count() FROM system.tables WHERE database = 'default' AND name = 'never_created'",
        );
        assert_eq!(n.trim(), "0", "a refused run created a table on {url}");
    }
}

/// A whole shard (its one server) down for 10 s while data arrives: the
/// other shard keeps inserting, the down shard's partitions wait and retry,
/// and once it is back every row is stored once.
#[test]
fn a_shard_down_for_ten_seconds_delays_only_its_partitions() {
    let cluster = harness::own_clickhouse_cluster(2, 1);
    let shards = cluster.shard_urls();
    let db = "eo";
    create_database(&shards, db);
    let table = format!("{db}.trips");
    let dir = tempfile::tempdir().expect("tempdir");
    let files = Taxi::rows(240_000)
        .files(12)
        .row_groups(10_000)
        .seed(0x5eed_5a2d)
        .write(&dir.path().join("data"));
    let brokers = harness::kafka_brokers();
    let topic = harness::unique_name("cluster_shard_down");
    harness::create_topic(&brokers, &topic, 4);
    let producer = produce_slowly(&brokers, &topic, &files, 4, Duration::from_millis(1_000));
    let mut member = consume_into(&shards, cluster.name(), &topic, &table)
        .args(["--exit-when-idle", "10"])
        .spawn(&dir.path().join("consume.log"));
    let (up, down) = (&shards[0][0], &shards[1][0]);
    harness::eventually(
        "both shards insert",
        Duration::from_secs(60),
        || {
            (
                try_count(up, &table).unwrap_or(0),
                try_count(down, &table).unwrap_or(0),
            )
        },
        |(a, b)| *a > 0 && *b > 0,
    );
    let server = cluster.server(1, 0);
    server.kill().expect("SIGKILL shard 2");
    let before = try_count(up, &table).expect("count on shard 1");
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_secs(10) {
        member.assert_running("the consumer keeps running while a shard is down");
        std::thread::sleep(Duration::from_millis(100));
    }
    let during = try_count(up, &table).expect("count on shard 1") - before;
    server
        .restart(Duration::from_secs(60))
        .expect("restarting shard 2");
    let messages = producer.join().expect("producer thread");
    member.expect_success(Duration::from_secs(600));
    let c = compare_taxi(up, &format!("{table}_distributed"), &read_files(&files));
    eprintln!(
        "shard down 10 s: shard 1 stored {during} rows meanwhile; {messages} messages: {}",
        c.summary()
    );
    assert!(
        during > 0,
        "shard 1 stopped inserting while shard 2 was down"
    );
    c.assert_exact("the union of the shards after a shard outage");
    exactly_once(up, &format!("{table}_distributed"), &brokers, &topic)
        .messages(messages)
        .assert();
}

/// `velostream bench` given the two shards (replicas comma-separated) and
/// `--cluster`: the whole pipeline runs against the cluster, the
/// validation reads the union of the shards, and the report's rows per
/// shard are the rows each shard holds, from the partitions `p mod 2`.
#[test]
fn bench_over_two_shards_validates_the_union_and_reports_rows_per_shard() {
    let cluster = harness::clickhouse_cluster();
    let shards = &cluster.shard_urls;
    let dir = tempfile::tempdir().expect("tempdir");
    let report_path = dir.path().join("report.json");
    let rows = 60_000u64;
    let mut bench = velostream()
        .args(["bench", "--rows", &rows.to_string(), "--partitions", "4"])
        .args(["--brokers", &harness::kafka_brokers()])
        .args([
            "--cluster",
            &cluster.name,
            "--exactly-once",
            "--keep-tables",
        ])
        .args(["--insert-rows", "10000", "--targets"])
        .args(["--data-dir", path_str(&dir.path().join("data"))])
        .args(["--report-json", path_str(&report_path)]);
    for shard in shards {
        bench = bench.args(["--clickhouse-url", &shard.join(",")]);
    }
    let out = bench.timeout(Duration::from_secs(300)).expect_success();
    let text = std::fs::read_to_string(&report_path).expect("report");
    let report: Report = serde_json::from_str(&text).expect("a typed report");
    assert!(report.validated, "{:?}", report.differences);
    assert_eq!((report.rows_source, report.rows_clickhouse), (rows, rows));
    assert_eq!(report.machine.shards, 2);
    assert_eq!(
        report.machine.cluster.as_deref(),
        Some(cluster.name.as_str())
    );
    assert_eq!(report.shards.len(), 2, "{text}");
    assert_replicas_agree(shards, &report.table);
    for (i, shard) in report.shards.iter().enumerate() {
        let expected: Vec<i32> = (0..4).filter(|p| *p as usize % 2 == i).collect();
        assert_eq!(shard.partitions, expected, "shard {}", i + 1);
        let held: Vec<i32> = partitions_on(&shards[i][0], &report.table)
            .into_iter()
            .map(|p| p as i32)
            .collect();
        assert_eq!(held, expected, "Kafka partitions stored on shard {}", i + 1);
        let stored = try_count(&shards[i][0], &report.table).expect("count");
        assert_eq!(shard.rows, stored, "rows of shard {} in the report", i + 1);
        assert!(shard.rows > 0 && shard.rows_per_s > 0.0, "{shard:?}");
    }
    assert!(
        out.stdout.contains("shard 2 (partitions [1, 3])"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Targets (ratios measured in this run)"),
        "{}",
        out.stdout
    );
    for url in shards.iter().flatten() {
        ch_query(url, &format!("DROP TABLE IF EXISTS {}", report.table));
    }
    eprintln!(
        "cluster bench: {rows} rows, per shard {:?}, {:.0} rows/s end to end",
        report.shards.iter().map(|s| s.rows).collect::<Vec<_>>(),
        report.run.end_to_end_rows_per_s
    );
}

/// `--evolve` on the 2x2 cluster: file A, then file B with a new column and
/// a widened one; the ALTERs reach both replicas of both shards and the
/// Distributed table, and the union equals the sources, exactly once.
#[test]
fn evolve_alters_every_replica_of_every_shard_and_the_distributed_table() {
    use crate::schema_evolution::{files_a_and_b, produce_a_then_b};
    let cluster = harness::clickhouse_cluster();
    let shards = &cluster.shard_urls;
    let db = harness::unique_name("cl_evolve");
    create_database(shards, &db);
    let table = format!("{db}.trips");
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b, source) = files_a_and_b(dir.path(), 0x5eed_e701);
    let brokers = harness::kafka_brokers();
    let topic = produce_a_then_b(&brokers, &a, &b, 4);
    consume_into(shards, &cluster.name, &topic, &table)
        .args(["--evolve", "--exit-when-idle", "5"])
        .timeout(Duration::from_secs(300))
        .expect_success();

    assert_replicas_agree(shards, &table);
    for url in shards.iter().flatten() {
        for t in ["trips", "trips_distributed"] {
            let types = ch_query(
                url,
                &format!(
                    "SELECT name, type FROM system.columns WHERE database = '{db}' AND table = '{t}' \
                     AND name IN ('VendorID', 'trip_id') ORDER BY name FORMAT TSV"
                ),
            );
            assert_eq!(
                types, "VendorID\tInt64\ntrip_id\tNullable(Int64)\n",
                "{t} on {url} follows the new schema"
            );
        }
    }
    let distributed = format!("{table}_distributed");
    let url = &shards[0][0];
    compare_taxi(url, &distributed, &source).assert_exact("the union of the evolved shards");
    let nulls = ch_query(
        url,
        &format!("SELECT countIf(isNull(trip_id)), countIf(isNotNull(trip_id)) FROM {distributed} FORMAT TSV"),
    );
    assert_eq!(
        nulls, "8000\t8000\n",
        "A's rows read NULL, B's hold their trip_id"
    );
    exactly_once(url, &distributed, &brokers, &topic).assert();
}
