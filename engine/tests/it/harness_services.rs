//! Harness accessors for ZooKeeper and ClickHouse clusters, and for services
//! a test owns (because it will SIGKILL and restart them). Re-exported from
//! `harness`, so tests call `harness::zookeeper()`, `harness::clickhouse_cluster()`,
//! `harness::own_clickhouse()`, `harness::own_clickhouse_cluster(..)`.
//!
//! Shared ones come from the environment (`VELOSTREAM_TEST_ZOOKEEPER`,
//! `VELOSTREAM_TEST_CLICKHOUSE_CLUSTER_URLS` as exported by
//! `infra/local/test.sh`) or are started once per test process in the
//! harness's state directory, with this process as the watchdog's owner.
//! A missing program fails the test with the install command.
#![allow(dead_code)] // each test module uses a different subset

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use velostream::local::{
    ClickHouseCluster, ClickHouseServer, ClusterLayout, LocalOptions, LocalServices, Service,
    CLUSTER_NAME,
};

use crate::harness::services::state_dir;
use crate::harness::INSTALL_COMMAND;

/// Options for services started by this test process: its own pid as the
/// watchdog's owner, and the `velostream` binary of this build running the
/// watchdog and the Kafka TLS front (this process is the test binary).
pub fn local_options(state_dir: PathBuf) -> LocalOptions {
    LocalOptions {
        state_dir: Some(state_dir),
        owner_pid: Some(std::process::id()),
        exe: Some(PathBuf::from(env!("CARGO_BIN_EXE_velostream"))),
        ..LocalOptions::default()
    }
}

fn start_or_panic(services: &[Service], opts: &LocalOptions) -> LocalServices {
    let t0 = Instant::now();
    let started = LocalServices::start(services, opts).unwrap_or_else(|e| {
        let hint = if matches!(e, velostream::Error::NotInstalled { .. }) {
            format!(" (run {INSTALL_COMMAND})")
        } else {
            String::new()
        };
        panic!("starting {services:?}: {e}{hint}")
    });
    eprintln!(
        "harness: {services:?} ready in {} ms (state {})",
        t0.elapsed().as_millis(),
        started.state_dir().display()
    );
    started
}

fn env_value(var: &str) -> Option<String> {
    std::env::var(var)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// ZooKeeper's address (`127.0.0.1:PORT`): `VELOSTREAM_TEST_ZOOKEEPER`, or
/// a ZooKeeper started once per test process.
pub fn zookeeper() -> String {
    static ZK: OnceLock<String> = OnceLock::new();
    ZK.get_or_init(|| {
        if let Some(zk) = env_value("VELOSTREAM_TEST_ZOOKEEPER") {
            return zk;
        }
        let started = start_or_panic(&[Service::ZooKeeper], &local_options(state_dir()));
        let endpoints = started.detach(); // the watchdog stops it with this process
        endpoints.zookeeper.expect("ZooKeeper endpoint")
    })
    .clone()
}

/// The cluster shared by the tests of this process.
#[derive(Debug, Clone)]
pub struct SharedCluster {
    /// Its name in `remote_servers` (`velostream`).
    pub name: String,
    /// The replica URLs of each shard.
    pub shard_urls: Vec<Vec<String>>,
    /// ZooKeeper's address.
    pub zookeeper: String,
}

impl SharedCluster {
    /// Every server's URL.
    pub fn urls(&self) -> Vec<String> {
        self.shard_urls.iter().flatten().cloned().collect()
    }

    /// One `--clickhouse-url` value per shard (replicas comma-separated).
    pub fn clickhouse_url_args(&self) -> Vec<String> {
        self.shard_urls.iter().map(|s| s.join(",")).collect()
    }
}

/// A 2 × 2 ClickHouse cluster with ZooKeeper:
/// `VELOSTREAM_TEST_CLICKHOUSE_CLUSTER_URLS` (shards separated by spaces,
/// replicas by commas) with `VELOSTREAM_TEST_ZOOKEEPER`, or a cluster started
/// once per test process. Do not kill its servers: use
/// [`own_clickhouse_cluster`] for that.
pub fn clickhouse_cluster() -> &'static SharedCluster {
    static CLUSTER: OnceLock<SharedCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        if let Some(urls) = env_value("VELOSTREAM_TEST_CLICKHOUSE_CLUSTER_URLS") {
            return SharedCluster {
                name: CLUSTER_NAME.to_string(),
                shard_urls: velostream::local::output::parse_shard_urls(&urls),
                zookeeper: zookeeper(),
            };
        }
        let started = start_or_panic(&[Service::ClickHouseCluster], &local_options(state_dir()));
        let endpoints = started.detach();
        SharedCluster {
            name: endpoints.clickhouse_cluster.expect("cluster name"),
            shard_urls: endpoints.clickhouse_cluster_urls.expect("cluster URLs"),
            zookeeper: endpoints.zookeeper.expect("ZooKeeper endpoint"),
        }
    })
}

/// A clickhouse-server owned by one test (it may kill and restart it),
/// stopped when dropped.
#[derive(Debug)]
pub struct OwnClickHouse {
    server: ClickHouseServer,
    _services: LocalServices,
    _dir: tempfile::TempDir,
}

impl Deref for OwnClickHouse {
    type Target = ClickHouseServer;
    fn deref(&self) -> &ClickHouseServer {
        &self.server
    }
}

/// Starts a clickhouse-server for the calling test alone.
pub fn own_clickhouse() -> OwnClickHouse {
    let dir = tempfile::tempdir().expect("tempdir");
    let services = start_or_panic(&[Service::ClickHouse], &local_options(dir.path().into()));
    let server = services.clickhouse_server().expect("the started server");
    OwnClickHouse {
        server,
        _services: services,
        _dir: dir,
    }
}

/// A cluster (with its own ZooKeeper) owned by one test, stopped when dropped.
#[derive(Debug)]
pub struct OwnCluster {
    cluster: ClickHouseCluster,
    _services: LocalServices,
    _dir: tempfile::TempDir,
}

impl Deref for OwnCluster {
    type Target = ClickHouseCluster;
    fn deref(&self) -> &ClickHouseCluster {
        &self.cluster
    }
}

/// Starts a `shards` × `replicas` cluster for the calling test alone.
pub fn own_clickhouse_cluster(shards: usize, replicas: usize) -> OwnCluster {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = LocalOptions {
        cluster: Some(ClusterLayout { shards, replicas }),
        ..local_options(dir.path().into())
    };
    let services = start_or_panic(&[Service::ClickHouseCluster], &opts);
    let cluster = services.clickhouse_cluster().expect("the started cluster");
    OwnCluster {
        cluster,
        _services: services,
        _dir: dir,
    }
}

/// Waits until `check` passes (up to `timeout`), panicking with `what` and
/// the last value seen.
pub fn eventually<T: std::fmt::Debug>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> T,
    check: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let value = probe();
        if check(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still {value:?} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
