//! Shared harness of the integration tests: real services, unique names,
//! blocking std-only HTTP helpers.
//!
//! Services come from the environment (`VELOSTREAM_TEST_BROKERS`,
//! `VELOSTREAM_TEST_CLICKHOUSE_URL`, `VELOSTREAM_TEST_PROMETHEUS_URL` plus
//! `VELOSTREAM_TEST_PROMETHEUS_TARGETS`, as exported by `infra/local/test.sh`)
//! or are started once per test process through `velostream::local` in a
//! per-process state directory, with this process as owner: a watchdog stops
//! them when the test process exits, however it exits.
//!
//! A missing service binary fails the test with the install command. With
//! `VELOSTREAM_TEST_ALLOW_SKIP=1`, tests that begin with
//! `require_services!(Kafka, ClickHouse)` return early instead (printing
//! `SKIPPED`); the accessors themselves always panic.
#![allow(dead_code)] // each test module uses a different subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use velostream::local::{LocalServices, Service, TlsFiles};

pub use crate::harness_services::*;

/// The command that installs every service binary.
pub const INSTALL_COMMAND: &str = "infra/local/install.sh";

/// Returns early from the calling test when `VELOSTREAM_TEST_ALLOW_SKIP=1`
/// and one of the named services (`Kafka`, `ClickHouse`, `Prometheus`) is not
/// installed. Without that variable a missing service fails the test.
#[macro_export]
macro_rules! require_services {
    ($($svc:ident),+ $(,)?) => {
        if $crate::harness::skip_missing(&[$(velostream::local::Service::$svc),+]) {
            return;
        }
    };
}

// ------------------------------------------------------------------ paths

/// The repository root (the workspace directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("engine crate has a parent directory")
        .to_path_buf()
}

/// The Parquet test corpus (read-only, with `data/` and `bad_data/`):
/// `VELOSTREAM_TEST_DATA`, else where the install step recorded it
/// (`<repo>/.velostream/testdata.path`, written by `infra/local/testdata.sh`,
/// which is run here once when the record is missing).
pub fn shared_testdata() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("VELOSTREAM_TEST_DATA") {
            return PathBuf::from(dir);
        }
        let record = repo_root().join(".velostream/testdata.path");
        if !record.is_file() {
            let script = repo_root().join("infra/local/testdata.sh");
            let out = std::process::Command::new("bash")
                .arg(&script)
                .output()
                .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
            assert!(
                out.status.success(),
                "no Parquet test corpus ({}):\n{}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = std::fs::read_to_string(&record)
            .unwrap_or_else(|e| panic!("{}: {e}; run {INSTALL_COMMAND}", record.display()));
        PathBuf::from(text.trim())
    })
    .clone()
}

/// `<repo>/.venv/bin/python`; panics with the install command if missing.
pub fn venv_python() -> PathBuf {
    let py = repo_root().join(".venv/bin/python");
    assert!(
        py.exists(),
        "{} not found: run {INSTALL_COMMAND} (creates the venv from infra/local/requirements.txt)",
        py.display()
    );
    py
}

// ------------------------------------------------------------------ names

/// A name made of `[a-z0-9_]`, unique per call, test process and run:
/// `<prefix>_<pid>_<counter>_<time>`.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() % 100_000_000)
        .unwrap_or(0);
    let prefix: String = prefix
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_') => c,
            _ => '_',
        })
        .collect();
    format!("{prefix}_{}_{n}_{t}", std::process::id())
}

/// A free TCP port on 127.0.0.1 (for example for `--metrics-addr`).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

// ------------------------------------------------------------------ services

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
    let opts = local_options(state_dir());
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
fn remove_stale_state_dirs() {
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
            "{svc} is not installed: run {INSTALL_COMMAND} \
             (or set VELOSTREAM_TEST_ALLOW_SKIP=1 to skip tests that use require_services!)\n{}",
            u.message
        ),
        Err(u) => panic!("{svc} could not be started: {}", u.message),
    }
}

/// True when the caller should skip: `VELOSTREAM_TEST_ALLOW_SKIP=1` and one
/// of `services` is not installed. Prints why. Starts the services otherwise.
pub fn skip_missing(services: &[Service]) -> bool {
    let allow = std::env::var("VELOSTREAM_TEST_ALLOW_SKIP").as_deref() == Ok("1");
    for &svc in services {
        match service(svc) {
            Ok(_) => {}
            Err(u) if u.not_installed && allow => {
                let thread = std::thread::current();
                eprintln!(
                    "SKIPPED {}: {svc} not installed (VELOSTREAM_TEST_ALLOW_SKIP=1); run {INSTALL_COMMAND}",
                    thread.name().unwrap_or("test")
                );
                return true;
            }
            Err(_) => {
                endpoint_or_panic(svc);
            }
        }
    }
    false
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
/// test process. It scrapes every second whatever [`scrape`] registers.
pub fn prometheus_url() -> String {
    endpoint_or_panic(Service::Prometheus).endpoint.clone()
}

// ------------------------------------------------------------------ TLS

/// Kafka and ClickHouse with TLS, started once per test process (in
/// `<state_dir>/tls`) with a throwaway CA made by the `openssl` CLI.
#[derive(Debug)]
pub struct TlsServices {
    /// Kafka bootstrap servers that accept only TLS (`security.protocol=ssl`).
    pub brokers: String,
    /// ClickHouse HTTPS URL (`https://127.0.0.1:PORT`).
    pub clickhouse_https_url: String,
    /// The same ClickHouse server over plain HTTP (for checks).
    pub clickhouse_url: String,
    /// PEM of the CA that signed both servers' certificate (CN and SAN 127.0.0.1).
    pub ca: PathBuf,
    /// PEM of another CA that signed nothing the servers present.
    pub other_ca: PathBuf,
    /// A ClickHouse user with a password (defined in `users.d/` before start).
    pub clickhouse_user: String,
    /// Its password, unique per process; tests treat it as a planted secret.
    pub clickhouse_password: String,
    /// Client certificate signed by [`TlsServices::ca`] (Kafka checks
    /// presented client certificates against that CA).
    pub client_cert: PathBuf,
    /// Its private key, encrypted with [`TlsServices::client_key_password`].
    pub client_key: PathBuf,
    /// Passphrase of `client_key`, unique per process (a planted secret).
    pub client_key_password: String,
    /// Client certificate and unencrypted key signed by `other_ca` (refused).
    pub other_client_cert: PathBuf,
    /// Key of `other_client_cert`.
    pub other_client_key: PathBuf,
}

/// The TLS services of this test process; see [`TlsServices`]. Panics with
/// the install command when a binary (tansu, clickhouse-server, openssl) is
/// missing.
pub fn tls_services() -> &'static TlsServices {
    static TLS: OnceLock<Result<TlsServices, String>> = OnceLock::new();
    TLS.get_or_init(start_tls_services)
        .as_ref()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn start_tls_services() -> Result<TlsServices, String> {
    remove_stale_state_dirs();
    let pki = state_dir().join("tls-pki");
    std::fs::create_dir_all(&pki).map_err(|e| format!("creating {}: {e}", pki.display()))?;
    let ca = make_ca(&pki, "ca")?;
    let other_ca = make_ca(&pki, "other-ca")?;
    let cert = pki.join("server.pem");
    let key = pki.join("server.key");
    let csr = pki.join("server.csr");
    let ext = pki.join("server.ext");
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|e| format!("writing {}: {e}", ext.display()))?;
    let p = |p: &Path| p.display().to_string();
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &p(&key),
        "-out",
        &p(&csr),
        "-subj",
        "/CN=127.0.0.1",
    ])?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p(&csr),
        "-CA",
        &p(&ca),
        "-CAkey",
        &p(&pki.join("ca.key")),
        "-CAcreateserial",
        "-out",
        &p(&cert),
        "-days",
        "2",
        "-extfile",
        &p(&ext),
    ])?;
    // ClickHouse merges users.d/*.xml into the users.xml that `velostream local` writes.
    let clickhouse_user = "vs_secure".to_string();
    let clickhouse_password = format!("vs-planted-CHTLS-{}", std::process::id());
    let users_d = state_dir().join("tls/clickhouse/users.d");
    std::fs::create_dir_all(&users_d)
        .map_err(|e| format!("creating {}: {e}", users_d.display()))?;
    std::fs::write(
        users_d.join("vs_secure.xml"),
        format!(
            "<?xml version=\"1.0\"?>\n<yandex><users><{clickhouse_user}>\
             <password>{clickhouse_password}</password>\
             <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>\
             <profile>default</profile><quota>default</quota>\
             </{clickhouse_user}></users></yandex>\n"
        ),
    )
    .map_err(|e| format!("writing {}: {e}", users_d.display()))?;
    let client_key_password = format!("vs-planted-CLIENTKEY-{}", std::process::id());
    let (client_cert, client_key) =
        make_client_cert(&pki, "client", "ca", Some(&client_key_password))?;
    let (other_client_cert, other_client_key) =
        make_client_cert(&pki, "other-client", "other-ca", None)?;
    let opts = local_options(state_dir().join("tls"));
    let t0 = Instant::now();
    let handle = LocalServices::start_with_tls(
        &[Service::Kafka, Service::ClickHouse],
        &opts,
        &TlsFiles {
            cert,
            key,
            client_ca: Some(ca.clone()),
        },
    )
    .map_err(|e| {
        let hint = if matches!(e, velostream::Error::NotInstalled { .. }) {
            format!("; run {INSTALL_COMMAND}")
        } else {
            String::new()
        };
        format!("starting Kafka and ClickHouse with TLS: {e}{hint}")
    })?;
    let endpoints = handle.detach(); // the watchdog stops them with this process
    let services = TlsServices {
        brokers: endpoints.brokers.ok_or("no TLS brokers endpoint")?,
        clickhouse_https_url: endpoints
            .clickhouse_https_url
            .ok_or("no ClickHouse HTTPS endpoint")?,
        clickhouse_url: endpoints.clickhouse_url.ok_or("no ClickHouse endpoint")?,
        ca,
        other_ca,
        clickhouse_user,
        clickhouse_password,
        client_cert,
        client_key,
        client_key_password,
        other_client_cert,
        other_client_key,
    };
    eprintln!(
        "harness: started TLS Kafka at {} and ClickHouse at {} in {} ms",
        services.brokers,
        services.clickhouse_https_url,
        t0.elapsed().as_millis()
    );
    Ok(services)
}

/// A self-signed CA `<name>.pem` (key `<name>.key`) in `dir`.
fn make_ca(dir: &Path, name: &str) -> Result<PathBuf, String> {
    let pem = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &key.display().to_string(),
        "-out",
        &pem.display().to_string(),
        "-days",
        "2",
        "-subj",
        &format!("/CN=velostream-test-{name}"),
    ])?;
    Ok(pem)
}

/// A client certificate `<name>.pem` signed by the CA `<ca>.pem` in `dir`,
/// with its key `<name>.key` (encrypted with `password` when given).
fn make_client_cert(
    dir: &Path,
    name: &str,
    ca: &str,
    password: Option<&str>,
) -> Result<(PathBuf, PathBuf), String> {
    let p = |f: String| dir.join(f).display().to_string();
    let (pem, key, csr, ext) = (
        p(format!("{name}.pem")),
        p(format!("{name}.key")),
        p(format!("{name}.csr")),
        p(format!("{name}.ext")),
    );
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .map_err(|e| format!("writing {ext}: {e}"))?;
    let pass = password.map(|pw| format!("pass:{pw}"));
    let mut genkey = vec!["genpkey", "-algorithm", "RSA", "-out", &key];
    if let Some(pass) = &pass {
        genkey.extend(["-aes256", "-pass", pass]);
    }
    openssl(&genkey)?;
    let subj = format!("/CN=velostream-test-{name}");
    let mut req = vec!["req", "-new", "-key", &key, "-out", &csr, "-subj", &subj];
    if let Some(pass) = &pass {
        req.extend(["-passin", pass]);
    }
    openssl(&req)?;
    let (ca_pem, ca_key) = (p(format!("{ca}.pem")), p(format!("{ca}.key")));
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca_pem,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        &pem,
        "-days",
        "2",
        "-extfile",
        &ext,
    ])?;
    Ok((PathBuf::from(pem), PathBuf::from(key)))
}

fn openssl(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .map_err(|e| {
            format!(
                "running openssl: {e}; install it with {INSTALL_COMMAND} (Debian package openssl)"
            )
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {}: {}: {}",
            args.iter()
                .map(|a| if a.starts_with("pass:") {
                    "pass:***"
                } else {
                    a
                })
                .collect::<Vec<_>>()
                .join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        ))
    }
}

// ------------------------------------------------------------------ Kafka

/// Creates `topic` with `partitions` partitions (replication 1) and waits
/// until the broker's metadata shows all of them. Retries for up to 30 s
/// while the broker warms up; an existing topic is accepted.
pub fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("socket.timeout.ms", "5000")
        .create()
        .unwrap_or_else(|e| panic!("Kafka admin client for {brokers}: {e}"));
    let opts = AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(5)))
        .operation_timeout(Some(Duration::from_secs(5)));
    let deadline = Instant::now() + Duration::from_secs(30);
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    loop {
        let outcome = futures::executor::block_on(admin.create_topics([&new_topic], &opts));
        let error = match outcome {
            Ok(results) => match results.into_iter().next() {
                Some(Ok(_)) | Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => None,
                Some(Err((name, code))) => Some(format!("creating topic {name}: {code}")),
                None => Some(format!("creating topic {topic}: empty response")),
            },
            Err(e) => Some(format!("creating topic {topic}: {e}")),
        };
        let error = match error {
            None => {
                match admin
                    .inner()
                    .fetch_metadata(Some(topic), Duration::from_secs(5))
                {
                    Ok(md) => {
                        let seen = md
                            .topics()
                            .iter()
                            .find(|t| t.name() == topic)
                            .map(|t| (t.partitions().len(), t.error()));
                        match seen {
                        Some((n, None)) if n == partitions as usize => return,
                        other => Some(format!("metadata for {topic} shows {other:?}, want {partitions} partitions")),
                    }
                    }
                    Err(e) => Some(format!("metadata for {topic}: {e}")),
                }
            }
            Some(e) => Some(e),
        };
        let error = error.expect("an error when not returned");
        if Instant::now() > deadline {
            panic!("Kafka at {brokers}: {error} (gave up after 30 s)");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

// ------------------------------------------------------------------ ClickHouse

/// A database created for one test and dropped when the value is dropped.
#[derive(Debug)]
pub struct TestDb {
    /// Database name (`[a-z0-9_]`).
    pub name: String,
    /// ClickHouse HTTP URL it lives on.
    pub url: String,
}

impl TestDb {
    /// Creates a uniquely named database on [`clickhouse_url`].
    pub fn new() -> TestDb {
        TestDb::on(&clickhouse_url())
    }

    /// Creates a uniquely named database on `url`.
    pub fn on(url: &str) -> TestDb {
        let name = unique_name("vs_test");
        ch_query(url, &format!("CREATE DATABASE {name}"));
        TestDb {
            name,
            url: url.to_string(),
        }
    }

    /// `"<db>.<table>"`.
    pub fn table(&self, table: &str) -> String {
        format!("{}.{table}", self.name)
    }

    /// Runs `sql` against this database's server (see [`ch_query`]).
    pub fn query(&self, sql: &str) -> String {
        ch_query(&self.url, sql)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Never panic in drop (the test may already be unwinding).
        if let Err(e) = ch_try_query(&self.url, &format!("DROP DATABASE IF EXISTS {}", self.name)) {
            eprintln!("harness: dropping database {}: {e}", self.name);
        }
    }
}

/// Runs `sql` on ClickHouse over HTTP (blocking, std only, usable inside
/// async tests) and returns the response body (TSV by default). Panics with
/// the server's message on error.
pub fn ch_query(url: &str, sql: &str) -> String {
    ch_try_query(url, sql).unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`ch_query`] but returns the error message.
pub fn ch_try_query(url: &str, sql: &str) -> Result<String, String> {
    let (status, body) = http_request(
        "POST",
        &format!("{}/", url.trim_end_matches('/')),
        sql.as_bytes(),
    )
    .map_err(|e| format!("ClickHouse {url}: {e}; query: {sql}"))?;
    if status == 200 {
        Ok(body)
    } else {
        Err(format!(
            "ClickHouse {url}: HTTP {status}: {}; query: {sql}",
            body.trim_end()
        ))
    }
}

// ------------------------------------------------------------------ Prometheus

/// A scrape target registered with the test Prometheus; removed on drop.
#[derive(Debug)]
pub struct ScrapeTarget {
    /// The file_sd file holding this target.
    pub file: PathBuf,
    /// `host:port` scraped.
    pub address: String,
    /// Value of the `test` label on every scraped series.
    pub label: String,
}

impl Drop for ScrapeTarget {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Registers `address` (`host:port` serving `/metrics`) with the test
/// Prometheus. Every series scraped from it carries the label
/// `test="<label>"`, where `label` is unique, so queries can select it.
pub fn scrape(address: &str) -> ScrapeTarget {
    let started = endpoint_or_panic(Service::Prometheus);
    let targets = started
        .targets
        .as_ref()
        .expect("Prometheus endpoint has a target file");
    let dir = targets
        .parent()
        .expect("target file has a parent directory")
        .join("targets.d");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let label = unique_name("scrape");
    let file = dir.join(format!("{label}.json"));
    velostream::local::write_scrape_targets(&file, &[address.to_string()], &[("test", &label)])
        .unwrap_or_else(|e| panic!("{e}"));
    ScrapeTarget {
        file,
        address: address.to_string(),
        label,
    }
}

/// Waits until Prometheus reports `target` as scraped successfully.
pub fn wait_for_scrape(target: &ScrapeTarget, timeout: Duration) {
    let url = format!("{}/api/v1/targets?state=active", prometheus_url());
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok((200, body)) = http_request("GET", &url, b"") {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let up = v["data"]["activeTargets"].as_array().is_some_and(|ts| {
                ts.iter()
                    .any(|t| t["labels"]["test"] == target.label.as_str() && t["health"] == "up")
            });
            if up {
                return;
            }
            last = body;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "Prometheus {} did not scrape {} within {timeout:?}; targets: {last}",
        prometheus_url(),
        target.address
    );
}

/// Runs a PromQL range query and returns `data.result` (one entry per series).
pub fn prom_query_range(expr: &str, start: f64, end: f64, step: f64) -> Vec<serde_json::Value> {
    let url = format!(
        "{}/api/v1/query_range?query={}&start={start:.3}&end={end:.3}&step={step}",
        prometheus_url(),
        url_encode(expr)
    );
    let (status, body) = http_request("GET", &url, b"").unwrap_or_else(|e| panic!("{url}: {e}"));
    let v: serde_json::Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{url}: HTTP {status}: not JSON ({e}): {body}"));
    assert!(
        status == 200 && v["status"] == "success",
        "Prometheus query {expr:?}: HTTP {status}: {body}"
    );
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// Runs an instant PromQL query and returns `data.result`.
pub fn prom_query(expr: &str) -> Vec<serde_json::Value> {
    let url = format!(
        "{}/api/v1/query?query={}",
        prometheus_url(),
        url_encode(expr)
    );
    let (status, body) = http_request("GET", &url, b"").unwrap_or_else(|e| panic!("{url}: {e}"));
    let v: serde_json::Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{url}: HTTP {status}: not JSON ({e}): {body}"));
    assert!(
        status == 200 && v["status"] == "success",
        "Prometheus query {expr:?}: HTTP {status}: {body}"
    );
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

// ------------------------------------------------------------------ HTTP

/// Minimal blocking HTTP/1.1 client over `std::net` (no runtime, so it works
/// inside async tests): `http://host:port/path` only; `Connection: close`;
/// chunked responses are decoded. Returns the status and the body.
pub fn http_request(method: &str, url: &str, body: &[u8]) -> Result<(u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = host
        .to_socket_addrs()
        .map_err(|e| format!("{url}: resolving {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: {host} resolves to nothing"))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("{url}: connecting: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| format!("{url}: {e}"))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|_| stream.write_all(body))
        .map_err(|e| format!("{url}: sending request: {e}"))?;
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader
        .read_line(&mut status_line)
        .map_err(|e| format!("{url}: reading status: {e}"))?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{url}: bad status line {status_line:?}"))?;
    let mut chunked = false;
    let mut length: Option<usize> = None;
    loop {
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .map_err(|e| format!("{url}: reading headers: {e}"))?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else if k == "content-length" {
                length = v.parse().ok();
            }
        }
    }
    let mut data = Vec::new();
    let read_err = |e: std::io::Error| format!("{url}: reading body: {e}");
    if chunked {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line).map_err(read_err)?;
            let size_hex = size_line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|_| format!("{url}: bad chunk size {size_line:?}"))?;
            if size == 0 {
                break;
            }
            let start = data.len();
            data.resize(start + size, 0);
            reader.read_exact(&mut data[start..]).map_err(read_err)?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf).map_err(read_err)?;
        }
    } else if let Some(n) = length {
        data.resize(n, 0);
        reader.read_exact(&mut data).map_err(read_err)?;
    } else {
        reader.read_to_end(&mut data).map_err(read_err)?;
    }
    Ok((status, String::from_utf8_lossy(&data).into_owned()))
}
