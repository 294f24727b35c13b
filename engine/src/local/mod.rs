//! Local services without Docker, supervised by the engine itself: a tansu
//! Kafka broker (optionally behind a TLS front), a ClickHouse server, a
//! standalone ZooKeeper, a ClickHouse cluster (shards × replicas with
//! ZooKeeper) and a Prometheus server, each on free 127.0.0.1 ports with its
//! data under a state directory. `velostream local start|stop|status` is the
//! command-line face of this module; `velostream bench` and the test harness
//! use [`LocalServices`] directly.
//!
//! Behaviour (the same as the shell launcher it replaces):
//! - start is idempotent: a healthy instance already running in the same
//!   state directory is reused and its endpoints are returned again; a stale
//!   pid file (process gone) is replaced. A [`LocalServices`] handle stops
//!   only what it started itself.
//! - stop stops the whole process group of a service (SIGTERM, wait, then
//!   SIGKILL) and removes its pid file.
//! - with an owner ([`LocalOptions::owner_pid`]) a watchdog process stops the
//!   services once the owner exits, however it exits.
//! - configuration is rendered from the templates under `infra/` embedded in
//!   the binary ([`templates`]), so an installed binary needs no checkout.
//!
//! One job per file: [`state`] (directories, pid files, locks), [`ports`],
//! [`process`] (process groups), [`health`] (health checks), [`watchdog`],
//! [`binaries`] (finding the installed programs), [`templates`], [`output`]
//! (the `VELOSTREAM_*=` lines), [`supervisor`] (start/reuse/stop of one
//! service), and one file per service.

pub mod binaries;
pub mod clickhouse;
pub mod cluster;
pub mod handle;
pub mod health;
pub mod kafka;
pub mod output;
pub mod ports;
pub mod process;
pub mod prometheus;
pub mod state;
pub mod supervisor;
pub mod templates;
pub mod tls_proxy;
pub mod watchdog;
pub mod zookeeper;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use clickhouse::ClickHouseServer;
pub use cluster::{ClickHouseCluster, ClusterLayout, CLUSTER_NAME};
pub use handle::LocalServices;
pub use output::Endpoints;
pub use prometheus::write_scrape_targets;

/// How to install the service binaries; part of every "not installed" error.
pub const INSTALL_HINT: &str = "install the services with `infra/local/install.sh` (as root)";

/// Default health-check timeout of a start.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A service the supervisor can start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// tansu 0.6.0, a Kafka-protocol broker with in-memory storage.
    Kafka,
    /// One clickhouse-server.
    ClickHouse,
    /// A standalone ZooKeeper (Debian `zookeeper`), the cluster's coordinator.
    ZooKeeper,
    /// Shards × replicas of clickhouse-server with ZooKeeper, named
    /// [`CLUSTER_NAME`] in every server's `remote_servers`.
    ClickHouseCluster,
    /// Prometheus scraping the targets in a file_sd file.
    Prometheus,
}

impl Service {
    /// Every service, in start order (`all`).
    pub const ALL: [Service; 5] = [
        Service::Kafka,
        Service::ClickHouse,
        Service::ZooKeeper,
        Service::ClickHouseCluster,
        Service::Prometheus,
    ];

    /// The name on the command line and in the state directory.
    pub fn name(self) -> &'static str {
        match self {
            Service::Kafka => "kafka",
            Service::ClickHouse => "clickhouse",
            Service::ZooKeeper => "zookeeper",
            Service::ClickHouseCluster => "clickhouse-cluster",
            Service::Prometheus => "prometheus",
        }
    }

    /// The service called `name`, if any.
    pub fn from_name(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Server certificate and private key (PEM files) for TLS services.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate (chain) presented by the servers.
    pub cert: PathBuf,
    /// Its private key, unencrypted.
    pub key: PathBuf,
    /// Kafka only: a client that presents a certificate must present one
    /// signed by this CA (clients without a certificate are still accepted).
    pub client_ca: Option<PathBuf>,
}

/// Options for [`LocalServices::start`]. Build with `..Default::default()`.
#[derive(Clone, Debug, Default)]
pub struct LocalOptions {
    /// State directory (data, logs, pid files). Default:
    /// [`state::default_root`] (the user's cache directory).
    pub state_dir: Option<PathBuf>,
    /// Stop the services started here when this process exits (a watchdog).
    pub owner_pid: Option<u32>,
    /// The `velostream` executable that runs the watchdog and the Kafka TLS
    /// front. Default: this process's executable when it is `velostream`;
    /// a test process passes `env!("CARGO_BIN_EXE_velostream")`.
    pub exe: Option<PathBuf>,
    /// How long a service may take to become healthy (default 60 s).
    pub timeout: Option<Duration>,
    /// TLS for Kafka (TLS only) and ClickHouse (HTTPS besides HTTP); other
    /// services ignore it. An instance started without TLS is not reused.
    pub tls: Option<TlsFiles>,
    /// Shards × replicas of [`Service::ClickHouseCluster`] (default 2 × 2).
    pub cluster: Option<ClusterLayout>,
}

impl LocalOptions {
    /// The health-check timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_TIMEOUT)
    }
}
