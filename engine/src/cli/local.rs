//! `velostream local`: start, stop and inspect the local services (see
//! [`crate::local`]). stdout carries only the `VELOSTREAM_*=` endpoint lines
//! (for scripts); progress goes to stderr.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use crate::local::tls_proxy::{self, ProxyConfig};
use crate::local::watchdog::{self, Owner};
use crate::local::{
    handle, supervisor, ClusterLayout, LocalOptions, LocalServices, Service, TlsFiles,
};
use crate::{Error, Result};

const LONG_ABOUT: &str = "\
Local services without Docker, each on free 127.0.0.1 ports with its data under a
state directory: a tansu Kafka broker, a ClickHouse server, a standalone ZooKeeper,
a ClickHouse cluster (shards x replicas with ZooKeeper) and Prometheus.

stdout carries only KEY=VALUE lines, for scripts:
  VELOSTREAM_BROKERS=127.0.0.1:PORT
  VELOSTREAM_CLICKHOUSE_URL=http://127.0.0.1:PORT
  VELOSTREAM_CLICKHOUSE_HTTPS_URL=https://127.0.0.1:PORT        (--tls-cert)
  VELOSTREAM_ZOOKEEPER=127.0.0.1:PORT
  VELOSTREAM_CLICKHOUSE_CLUSTER=velostream                     (remote_servers name)
  VELOSTREAM_CLICKHOUSE_CLUSTER_URLS=http://s1r1,http://s1r2 http://s2r1,http://s2r2
  VELOSTREAM_PROMETHEUS_URL=http://127.0.0.1:PORT
  VELOSTREAM_PROMETHEUS_TARGETS=DIR/prometheus/targets.json    (file_sd target file)
  VELOSTREAM_STARTED=SERVICE          (only when this call started it; absent on reuse)
Cluster URLs: shards separated by spaces, the replicas of a shard by commas (one
--clickhouse-url value per shard).

start is idempotent (a healthy instance in the state directory is reused); stop stops
the service's whole process group. Exit status: 0 ok, 1 failure, 2 usage, 3 a program
is not installed (run infra/local/install.sh).";

/// `velostream local …`
#[derive(Debug, Args)]
#[command(long_about = LONG_ABOUT)]
pub struct LocalArgs {
    #[command(subcommand)]
    pub action: Action,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Start services (or reuse healthy running ones) and print their endpoints.
    Start(StartArgs),
    /// Stop services (their whole process groups) in the state directory.
    Stop(TargetArgs),
    /// Print the endpoints of running services; exit 1 when one is not running.
    Status(TargetArgs),
    /// Start services, run COMMAND with their endpoints in its environment,
    /// then stop what was started; exits with COMMAND's status.
    Run(RunArgs),
    /// (internal) Stop SERVICE once the owner process exits.
    #[command(hide = true)]
    Watchdog(WatchdogArgs),
    /// (internal) TLS front of the local Kafka broker.
    #[command(hide = true)]
    TlsProxy(TlsProxyArgs),
}

/// A service name on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Target {
    Kafka,
    Clickhouse,
    Zookeeper,
    ClickhouseCluster,
    Prometheus,
    /// Every service.
    All,
}

impl Target {
    fn services(self) -> Vec<Service> {
        match self {
            Target::Kafka => vec![Service::Kafka],
            Target::Clickhouse => vec![Service::ClickHouse],
            Target::Zookeeper => vec![Service::ZooKeeper],
            Target::ClickhouseCluster => vec![Service::ClickHouseCluster],
            Target::Prometheus => vec![Service::Prometheus],
            Target::All => Service::ALL.to_vec(),
        }
    }
}

/// The service and the state directory.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Which service.
    #[arg(value_enum, default_value = "all")]
    pub service: Target,
    /// State directory (data, logs, pid files).
    /// Default: $XDG_CACHE_HOME/velostream/local (~/.cache/velostream/local).
    #[arg(long, env = "VELOSTREAM_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// `local start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Stop the services this call starts once process PID exits (a watchdog).
    #[arg(long, value_name = "PID")]
    pub owner_pid: Option<u32>,
    /// Seconds a service may take to become healthy.
    #[arg(
        long,
        env = "VELOSTREAM_SERVICES_TIMEOUT",
        default_value_t = 60,
        value_name = "S"
    )]
    pub timeout: u64,
    /// Server certificate (PEM): Kafka then serves TLS only, ClickHouse also HTTPS.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key of --tls-cert (PEM, unencrypted).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Kafka checks presented client certificates against this CA (clients
    /// without one are still accepted).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Shards of clickhouse-cluster.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub shards: usize,
    /// Replicas per shard of clickhouse-cluster.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub replicas: usize,
}

/// `local run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub start: StartArgs,
    /// Prefix of the environment variables COMMAND gets: each endpoint line
    /// `VELOSTREAM_X=v` becomes `<PREFIX>X=v` (e.g. VELOSTREAM_TEST_ for the tests).
    #[arg(long, default_value = "VELOSTREAM_", value_name = "PREFIX")]
    pub env_prefix: String,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `local watchdog` (internal).
#[derive(Debug, Args)]
pub struct WatchdogArgs {
    #[arg(value_enum)]
    pub service: Target,
    #[arg(long)]
    pub state_dir: PathBuf,
    #[arg(long)]
    pub owner_pid: u32,
    #[arg(long)]
    pub owner_start: u64,
}

/// `local tls-proxy` (internal).
#[derive(Debug, Args)]
pub struct TlsProxyArgs {
    #[arg(long)]
    pub listen: String,
    #[arg(long)]
    pub upstream: String,
    #[arg(long)]
    pub cert: PathBuf,
    #[arg(long)]
    pub key: PathBuf,
    #[arg(long)]
    pub client_ca: Option<PathBuf>,
    /// The broker command, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// Runs `velostream local …`.
pub fn run(args: LocalArgs) -> Result<()> {
    match args.action {
        Action::Start(a) => start(a),
        Action::Stop(a) => handle::stop(&a.service.services(), a.state_dir.as_deref(), true),
        Action::Status(a) => status(a),
        Action::Run(a) => run_command(a),
        Action::Watchdog(a) => run_watchdog(a),
        Action::TlsProxy(a) => run_tls_proxy(a),
    }
}

fn options(a: StartArgs) -> LocalOptions {
    let tls = a.tls_cert.map(|cert| TlsFiles {
        cert,
        key: a.tls_key.unwrap_or_default(),
        client_ca: a.tls_client_ca,
    });
    LocalOptions {
        state_dir: a.target.state_dir,
        owner_pid: a.owner_pid,
        exe: None,
        timeout: Some(Duration::from_secs(a.timeout)),
        tls,
        cluster: Some(ClusterLayout {
            shards: a.shards,
            replicas: a.replicas,
        }),
    }
}

fn start(a: StartArgs) -> Result<()> {
    let services_wanted = a.target.service.services();
    let services = LocalServices::start_verbose(&services_wanted, &options(a), true)?;
    let endpoints = services.detach();
    print!("{}", endpoints.lines());
    for s in &endpoints.started {
        println!("VELOSTREAM_STARTED={s}");
    }
    Ok(())
}

/// `local run`: the services die with this process (watchdog), and are
/// stopped when COMMAND ends; the process exits with COMMAND's status.
fn run_command(a: RunArgs) -> Result<()> {
    let services_wanted = a.start.target.service.services();
    let opts = LocalOptions {
        owner_pid: Some(std::process::id()),
        ..options(a.start)
    };
    let services = LocalServices::start_verbose(&services_wanted, &opts, true)?;
    let (program, args) = a.command.split_first().expect("clap requires a command");
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    for line in services.endpoints().lines().lines() {
        if let Some((key, value)) = line.split_once('=') {
            let name = key.strip_prefix("VELOSTREAM_").unwrap_or(key);
            cmd.env(format!("{}{name}", a.env_prefix), value);
        }
    }
    let status = cmd
        .status()
        .map_err(|e| Error::Services(format!("running {program}: {e}")))?;
    services.stop()?;
    std::process::exit(status.code().unwrap_or(1))
}

fn status(a: TargetArgs) -> Result<()> {
    let (endpoints, down) = handle::status(&a.service.services(), a.state_dir.as_deref(), true)?;
    print!("{}", endpoints.lines());
    if down.is_empty() {
        Ok(())
    } else {
        let names: Vec<&str> = down.iter().map(|s| s.name()).collect();
        Err(Error::Services(format!(
            "not running: {}",
            names.join(", ")
        )))
    }
}

fn run_watchdog(a: WatchdogArgs) -> Result<()> {
    let service = match a.service.services().as_slice() {
        [one] => *one,
        _ => return Err(Error::Config("watchdog: name one service".into())),
    };
    let opts = LocalOptions {
        state_dir: Some(a.state_dir),
        ..LocalOptions::default()
    };
    let ctx = supervisor::Ctx::new(opts, true)?;
    let owner = Owner {
        pid: a.owner_pid,
        start_time: a.owner_start,
    };
    watchdog::run(service, owner, &ctx)
}

fn run_tls_proxy(a: TlsProxyArgs) -> Result<()> {
    let cfg = ProxyConfig {
        listen: a.listen,
        upstream: a.upstream,
        cert: a.cert,
        key: a.key,
        client_ca: a.client_ca,
        command: a.command,
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the TLS front's runtime", e))?
        .block_on(tls_proxy::run(cfg))
}
