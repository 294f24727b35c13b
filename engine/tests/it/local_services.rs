//! `velostream local` and the in-binary supervisor against the real
//! programs: the command line (start, reuse, status, stop, the owner
//! watchdog), ZooKeeper, the ClickHouse cluster (replication within a shard,
//! a Distributed table across shards, a replica SIGKILLed and restarted on
//! its ports and data), and an installed binary running `velostream bench`
//! from outside the repository.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{self, ch_query, ch_try_query, unique_name};

const BIN: &str = env!("CARGO_BIN_EXE_velostream");

/// `velostream ARGS` with every `VELOSTREAM_*` variable removed; panics
/// with the output when it cannot run.
fn velostream(args: &[&str], cwd: &Path) -> Output {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("VELOSTREAM_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {BIN} {args:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The `KEY=VALUE` lines of stdout.
fn lines(out: &Output) -> HashMap<String, Vec<String>> {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("stdout line {line:?} is not KEY=VALUE"));
        map.entry(k.to_string()).or_default().push(v.to_string());
    }
    map
}

fn pid_of(state: &Path, service: &str) -> u32 {
    let file = state.join(service).join("pid");
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .trim()
        .parse()
        .expect("pid")
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

fn wait_dead(pid: u32, what: &str) {
    harness::eventually(
        &format!("{what} (pid {pid}) alive"),
        Duration::from_secs(30),
        || alive(pid),
        |a| !a,
    );
}

#[test]
fn cli_starts_reuses_reports_and_stops_services() {
    let state = tempfile::tempdir().unwrap();
    let s = state.path().to_str().unwrap();
    let me = std::process::id().to_string();
    let start = [
        "local",
        "start",
        "clickhouse",
        "--state-dir",
        s,
        "--owner-pid",
        &me,
    ];
    let first = velostream(&start, state.path());
    assert!(first.status.success(), "{}", text(&first));
    let kv = lines(&first);
    let url = kv["VELOSTREAM_CLICKHOUSE_URL"][0].clone();
    assert_eq!(kv["VELOSTREAM_STARTED"], ["clickhouse"], "{}", text(&first));
    assert_eq!(ch_query(&url, "SELECT 1"), "1\n");
    let pid = pid_of(state.path(), "clickhouse");

    // A second start reuses the healthy instance: same URL, not started.
    let second = velostream(&start, state.path());
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(lines(&second)["VELOSTREAM_CLICKHOUSE_URL"][0], url);
    assert!(
        !lines(&second).contains_key("VELOSTREAM_STARTED"),
        "{}",
        text(&second)
    );

    let status = velostream(
        &["local", "status", "clickhouse", "--state-dir", s],
        state.path(),
    );
    assert!(status.status.success(), "{}", text(&status));
    assert_eq!(lines(&status)["VELOSTREAM_CLICKHOUSE_URL"][0], url);

    let stop = velostream(
        &["local", "stop", "clickhouse", "--state-dir", s],
        state.path(),
    );
    assert!(stop.status.success(), "{}", text(&stop));
    wait_dead(pid, "clickhouse-server after stop");
    assert!(
        ch_try_query(&url, "SELECT 1").is_err(),
        "server still answers after stop"
    );
    let after = velostream(
        &["local", "status", "clickhouse", "--state-dir", s],
        state.path(),
    );
    assert_eq!(after.status.code(), Some(1), "{}", text(&after));
    assert!(
        String::from_utf8_lossy(&after.stderr).contains("not running: clickhouse"),
        "{}",
        text(&after)
    );
}

#[test]
fn cli_services_stop_when_their_owner_exits() {
    let state = tempfile::tempdir().unwrap();
    let mut owner = Command::new("sleep").arg("120").spawn().unwrap();
    let out = velostream(
        &[
            "local",
            "start",
            "prometheus",
            "--state-dir",
            state.path().to_str().unwrap(),
            "--owner-pid",
            &owner.id().to_string(),
        ],
        state.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let pid = pid_of(state.path(), "prometheus");
    assert!(alive(pid));
    owner.kill().unwrap();
    owner.wait().unwrap();
    wait_dead(pid, "prometheus after its owner exited");
    assert!(!state.path().join("prometheus/pid").exists());
}

#[test]
fn a_missing_program_exits_3_naming_it_and_the_install_command() {
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "local",
            "start",
            "zookeeper",
            "--state-dir",
            state.path().to_str().unwrap(),
        ])
        .env(
            "VELOSTREAM_ZOOKEEPER_BIN",
            state.path().join("no-zkServer.sh"),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("zkServer.sh (Debian package zookeeper) is not installed")
            && err.contains("infra/local/install.sh"),
        "{err}"
    );
}

/// Sends a ZooKeeper four-letter word and returns the answer.
fn four_letter_word(address: &str, word: &str) -> String {
    let mut s = TcpStream::connect(address).unwrap_or_else(|e| panic!("ZooKeeper {address}: {e}"));
    s.write_all(word.as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn zookeeper_answers_ruok_and_stat_on_loopback() {
    let zk = harness::zookeeper();
    assert!(zk.starts_with("127.0.0.1:"), "{zk}");
    assert_eq!(four_letter_word(&zk, "ruok"), "imok");
    let stat = four_letter_word(&zk, "stat");
    assert!(stat.contains("Mode: standalone"), "{stat}");
}

#[test]
fn cluster_replicates_within_a_shard_and_distributed_reads_across_shards() {
    let cluster = harness::clickhouse_cluster();
    assert_eq!(cluster.name, "velostream");
    assert_eq!(cluster.shard_urls.len(), 2, "{cluster:?}");
    assert!(
        cluster.shard_urls.iter().all(|s| s.len() == 2),
        "{cluster:?}"
    );
    let db = unique_name("vs_cluster");
    for url in cluster.urls() {
        ch_query(&url, &format!("CREATE DATABASE {db}"));
        ch_query(
            &url,
            &format!(
                "CREATE TABLE {db}.t (shard String, x UInt64) ENGINE = \
                 ReplicatedMergeTree('/clickhouse/tables/{{shard}}/{db}_t', '{{replica}}') ORDER BY x"
            ),
        );
        ch_query(
            &url,
            &format!(
                "CREATE TABLE {db}.d AS {db}.t ENGINE = Distributed(velostream, {db}, t, rand())"
            ),
        );
    }
    // 10 rows on shard 1 (first replica), 5 on shard 2 (second replica).
    let s1 = &cluster.shard_urls[0];
    let s2 = &cluster.shard_urls[1];
    ch_query(
        &s1[0],
        &format!("INSERT INTO {db}.t SELECT 's1', number FROM numbers(10)"),
    );
    ch_query(
        &s2[1],
        &format!("INSERT INTO {db}.t SELECT 's2', number FROM numbers(5)"),
    );
    let count =
        |url: &str, table: &str| ch_query(url, &format!("SELECT count() FROM {db}.{table}"));
    harness::eventually(
        "shard 1 replica 2",
        Duration::from_secs(30),
        || count(&s1[1], "t"),
        |c| c == "10\n",
    );
    harness::eventually(
        "shard 2 replica 1",
        Duration::from_secs(30),
        || count(&s2[0], "t"),
        |c| c == "5\n",
    );
    for url in cluster.urls() {
        assert_eq!(count(&url, "d"), "15\n", "Distributed read on {url}");
    }
    let macros = ch_query(
        &s2[1],
        "SELECT macro, substitution FROM system.macros ORDER BY macro",
    );
    assert_eq!(macros, "replica\ts2r2\nshard\ts2\n");
    let members = ch_query(
        &s1[0],
        "SELECT shard_num, replica_num, host_address FROM system.clusters \
         WHERE cluster = 'velostream' ORDER BY shard_num, replica_num",
    );
    assert_eq!(
        members,
        "1\t1\t127.0.0.1\n1\t2\t127.0.0.1\n2\t1\t127.0.0.1\n2\t2\t127.0.0.1\n"
    );
    for url in cluster.urls() {
        ch_query(&url, &format!("DROP DATABASE {db}"));
    }
}

#[test]
fn a_replica_killed_and_restarted_keeps_its_port_and_catches_up() {
    let cluster = harness::own_clickhouse_cluster(1, 2);
    let (a, b) = (cluster.server(0, 0), cluster.server(0, 1));
    for s in [a, b] {
        ch_query(
            &s.url(),
            "CREATE TABLE default.rt (x UInt64) ENGINE = \
             ReplicatedMergeTree('/clickhouse/tables/{shard}/rt', '{replica}') ORDER BY x",
        );
    }
    let b_url = b.url();
    let b_pid = b.pid().expect("replica 2 runs");
    b.kill().unwrap();
    assert!(!alive(b_pid), "SIGKILLed replica still alive");
    assert!(ch_try_query(&b_url, "SELECT 1").is_err());
    ch_query(
        &a.url(),
        "INSERT INTO default.rt SELECT number FROM numbers(1000)",
    );
    b.restart(Duration::from_secs(60)).unwrap();
    assert_eq!(b.url(), b_url, "restarted on another port");
    assert_ne!(b.pid(), Some(b_pid));
    harness::eventually(
        "restarted replica catching up",
        Duration::from_secs(60),
        || ch_query(&b_url, "SELECT count() FROM default.rt"),
        |c| c == "1000\n",
    );
}

#[test]
fn a_single_server_killed_and_restarted_keeps_its_data() {
    let server = harness::own_clickhouse();
    ch_query(
        &server.url(),
        "CREATE TABLE default.k (x UInt8) ENGINE = MergeTree ORDER BY x",
    );
    ch_query(&server.url(), "INSERT INTO default.k VALUES (1), (2), (3)");
    server.kill().unwrap();
    assert!(server.pid().is_none());
    server.restart(Duration::from_secs(60)).unwrap();
    assert_eq!(
        ch_query(&server.url(), "SELECT sum(x) FROM default.k"),
        "6\n"
    );
    assert!(
        server.restart(Duration::from_secs(5)).is_err(),
        "a running server restarted twice"
    );
}

/// An installed binary (a copy outside the build tree) runs its own main
/// job from /tmp with a fresh HOME: services from the in-binary supervisor,
/// state under the user's cache directory, everything stopped afterwards.
#[test]
fn an_installed_binary_runs_the_bench_from_outside_the_repository() {
    let root = tempfile::tempdir().unwrap();
    let bin_dir = root.path().join("bin");
    let home = root.path().join("home");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    let installed = bin_dir.join("velostream");
    std::fs::copy(BIN, &installed).unwrap();
    // tansu is a cargo-installed program: keep the real cargo bin directory
    // on PATH, since HOME changes.
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|p| p.join("bin"))
        .unwrap_or_default();
    let path = format!(
        "{}:{}:/usr/sbin:/usr/bin:/bin",
        bin_dir.display(),
        cargo_bin.display()
    );
    let t0 = Instant::now();
    let mut cmd = Command::new("velostream");
    for (key, _) in std::env::vars() {
        if key.starts_with("VELOSTREAM_") || key.starts_with("CARGO") || key == "XDG_CACHE_HOME" {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .args(["bench", "--rows", "20000", "--partitions", "2"])
        .args(["--compare", "native-file"])
        .current_dir(std::env::temp_dir())
        .env("PATH", path)
        .env("HOME", &home)
        .stdin(Stdio::null())
        .output()
        .expect("running the installed velostream");
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    eprintln!("installed bench: {} ms", t0.elapsed().as_millis());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("validated") && l.contains("true")),
        "{report}"
    );
    // The local server keeps a part log: the report says what each insert
    // path cost in parts (at least one part per run).
    for label in [
        "ClickHouse parts / merges per M rows",
        "native-file: parts / merges per M rows",
    ] {
        let line = stdout.lines().find(|l| l.contains(label));
        let created: Option<u64> = line
            .and_then(|l| l.split('(').nth(1))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok());
        assert!(
            created.is_some_and(|n| n > 0),
            "{label}: parts created in {line:?}\n{report}"
        );
    }
    let state = home.join(".cache/velostream/local");
    for service in ["kafka", "clickhouse"] {
        let dir = state.join(service);
        assert!(
            dir.join("log").is_file(),
            "no {service} state in {}",
            state.display()
        );
        assert!(
            !dir.join("pid").exists(),
            "{service} left running after the bench"
        );
    }
}
