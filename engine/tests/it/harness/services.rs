//! The services of the integration tests: Kafka (tansu), ClickHouse and
//! Prometheus, from the environment (`VELOSTREAM_TEST_BROKERS`,
//! `VELOSTREAM_TEST_CLICKHOUSE_URL`, `VELOSTREAM_TEST_PROMETHEUS_URL` plus
//! `VELOSTREAM_TEST_PROMETHEUS_TARGETS`, as exported by `infra/local/test.sh`)
//! or started once per test process through `velostream::local` in a
//! per-process state directory, with this process as owner: a watchdog stops
//! them when the test process exits, however it exits.
//!
//! One rule for every test: an accessor whose service is missing fails the
//! test with the install command. Nothing skips.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use velostream::local::{LocalServices, Service};

/// The command that installs every service binary.
pub const INSTALL_COMMAND: &str = "infra/local/install.sh";

/// A started (or environment-provided) service, or why it is unavailable.
#[derive(Debug)]
struct Started {
    /// Main endpoint: brokers or base URL.
    endpoint: String,
    /// Prometheus only: the file_sd target file the server watches.
    targets: Option<PathBuf>,
}

#[derive(Debug)]
struct Unavailable {
    not_installed: bool,
    message: String,
}

type Slot = OnceLock<Result<Started, Unavailable>>;

static KAFKA: Slot = OnceLock::new();
static CLICKHOUSE: Slot = OnceLock::new();
static PROMETHEUS: Slot = OnceLock::new();
static ZOOKEEPER: Slot = OnceLock::new();
static CLICKHOUSE_CLUSTER: Slot = OnceLock::new();

fn slot(service: Service) -> &'static Slot {
    match service {
        Service::Kafka => &KAFKA,
        Service::ClickHouse => &CLICKHOUSE,
        Service::Prometheus => &PROMETHEUS,
        Service::ZooKeeper => &ZOOKEEPER,
        Service::ClickHouseCluster => &CLICKHOUSE_CLUSTER,
    }
}

fn env_var(service: Service) -> &'static str {
    match service {
        Service::Kafka => "VELOSTREAM_TEST_BROKERS",
        Service::ClickHouse => "VELOSTREAM_TEST_CLICKHOUSE_URL",
        Service::Prometheus => "VELOSTREAM_TEST_PROMETHEUS_URL",
        Service::ZooKeeper => "VELOSTREAM_TEST_ZOOKEEPER",
        Service::ClickHouseCluster => "VELOSTREAM_TEST_CLICKHOUSE_CLUSTER_URLS",
    }
}

/// Per-process state directory of the services this process starts.
pub fn state_dir() -> PathBuf {
    std::env::temp_dir().join(format!("velostream-test-{}", std::process::id()))
}

fn service(service: Service) -> Result<&'static Started, &'static Unavailable> {
    slot(service).get_or_init(|| init(service)).as_ref()
}

fn init(service: Service) -> Result<Started, Unavailable> {
    let var = env_var(service);
    if let Some(value) = std::env::var(var).ok().filter(|v| !v.trim().is_empty()) {
        let targets = if service == Service::Prometheus {
            let targets = std::env::var_os("VELOSTREAM_TEST_PROMETHEUS_TARGETS").map(PathBuf::from);
            if targets.is_none() {
                return Err(Unavailable {
                    not_installed: false,
                    message: format!(
                        "{var} is set but VELOSTREAM_TEST_PROMETHEUS_TARGETS (the file_sd target file \
                         that Prometheus watches) is not"
                    ),
                });
            }
            targets
        } else {
            None
        };
        return Ok(Started {
            endpoint: value.trim().trim_end_matches('/').to_string(),
            targets,
        });
    }
    remove_stale_state_dirs();
    let opts = crate::harness_services::local_options(state_dir());
    let t0 = Instant::now();
    match LocalServices::start(&[service], &opts) {
        Ok(handle) => {
            let targets = handle.prometheus_targets().map(Path::to_path_buf);
            let endpoints = handle.detach(); // the watchdog stops it with this process
            let endpoint = match service {
                Service::Kafka => endpoints.brokers,
                Service::ClickHouse => endpoints.clickhouse_url,
                Service::Prometheus => endpoints.prometheus_url,
                Service::ZooKeeper => endpoints.zookeeper,
                Service::ClickHouseCluster => endpoints
                    .clickhouse_cluster_urls
                    .map(|u| velostream::local::output::format_shard_urls(&u)),
            }
            .expect("velostream::local returns the endpoint of a started service");
            eprintln!(
                "harness: started {service} at {endpoint} in {} ms (state {})",
                t0.elapsed().as_millis(),
                state_dir().display()
            );
            Ok(Started { endpoint, targets })
        }
        Err(e) => {
            let message = e.to_string();
            Err(Unavailable {
                not_installed: matches!(e, velostream::Error::NotInstalled { .. }),
                message,
            })
        }
    }
}

/// Deletes the state directories of earlier test processes that have exited
/// and whose services were stopped (no pid file left).
pub(super) fn remove_stale_state_dirs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix("velostream-test-"))
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            let dir = entry.path();
            let owner_alive = Path::new(&format!("/proc/{pid}")).exists();
            let running = Service::ALL.iter().any(|s| {
                dir.join(s.name()).join("pid").exists()
                    || dir.join("tls").join(s.name()).join("pid").exists()
            });
            if !owner_alive && !running {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    });
}

fn endpoint_or_panic(svc: Service) -> &'static Started {
    match service(svc) {
        Ok(s) => s,
        Err(u) if u.not_installed => panic!(
            "{svc} is not installed: run {INSTALL_COMMAND}\n{}",
            u.message
        ),
        Err(u) => panic!("{svc} could not be started: {}", u.message),
    }
}

/// Kafka bootstrap servers: `VELOSTREAM_TEST_BROKERS`, or a tansu broker
/// started once per test process.
pub fn kafka_brokers() -> String {
    endpoint_or_panic(Service::Kafka).endpoint.clone()
}

/// ClickHouse HTTP URL: `VELOSTREAM_TEST_CLICKHOUSE_URL`, or a
/// clickhouse-server started once per test process.
pub fn clickhouse_url() -> String {
    endpoint_or_panic(Service::ClickHouse).endpoint.clone()
}

/// Prometheus URL: `VELOSTREAM_TEST_PROMETHEUS_URL` (with
/// `VELOSTREAM_TEST_PROMETHEUS_TARGETS`), or a Prometheus started once per
/// test process. It scrapes every second whatever
/// [`super::prometheus::scrape`] registers.
pub fn prometheus_url() -> String {
    endpoint_or_panic(Service::Prometheus).endpoint.clone()
}

/// The file_sd target file the test Prometheus watches (see
/// [`super::prometheus::scrape`]).
pub(super) fn prometheus_targets() -> PathBuf {
    endpoint_or_panic(Service::Prometheus)
        .targets
        .clone()
        .expect("Prometheus endpoint has a target file")
}
