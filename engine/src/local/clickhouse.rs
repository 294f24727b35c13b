//! clickhouse-server: the configuration of one local server (rendered from
//! `infra/clickhouse/local/*.xml`, plus the shared
//! `infra/clickhouse/config.d/velostream.xml`, HTTPS with TLS, and the
//! replica settings for a cluster), the single-server service, and
//! [`ClickHouseServer`], a handle that tests use to SIGKILL a server and
//! restart it on the same ports with the same data.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::health::{self, Waited};
use super::output::Endpoints;
use super::state::{create_dir, Ports, ServiceDir};
use super::supervisor::{self, Ctx, Spec};
use super::{binaries, ports, process, templates, Service, TlsFiles};
use crate::{Error, Result};

/// The single-server ClickHouse service.
#[derive(Clone, Copy, Debug)]
pub struct ClickHouse;

/// What a cluster member adds to its configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaConfig {
    /// `{shard}` macro.
    pub shard: String,
    /// `{replica}` macro.
    pub replica: String,
    /// ZooKeeper client port on 127.0.0.1.
    pub zookeeper_port: u16,
    /// The `<remote_servers>` document of the cluster.
    pub remote_servers: String,
}

/// Writes the whole configuration of a server into `dir`: `config.xml`,
/// `users.xml` and `config.d/` (shared settings, HTTPS, replica, cluster).
/// Ports: `http`, `tcp`, and `https` (TLS) / `interserver` (cluster).
pub fn write_config(
    dir: &ServiceDir,
    ports: &Ports,
    tls: Option<&TlsFiles>,
    replica: Option<&ReplicaConfig>,
) -> Result<()> {
    for sub in [
        "data",
        "tmp",
        "user_files",
        "format_schemas",
        "logs",
        "config.d",
        "users.d",
    ] {
        create_dir(&dir.file(sub))?;
    }
    let port = |name: &str| {
        ports.get(name).map(|p| p.to_string()).ok_or_else(|| {
            Error::Services(format!("{}: no {name} port recorded", dir.path().display()))
        })
    };
    let d = dir.path().display().to_string();
    dir.write(
        "config.xml",
        &templates::CLICKHOUSE_CONFIG.render(&[
            ("DIR", d),
            ("HTTP_PORT", port("http")?),
            ("TCP_PORT", port("tcp")?),
        ])?,
    )?;
    dir.write("users.xml", &templates::CLICKHOUSE_USERS.render(&[])?)?;
    let conf_d = |name: &str| format!("config.d/{name}");
    dir.write(
        &conf_d("velostream.xml"),
        &templates::CLICKHOUSE_SHARED.render(&[])?,
    )?;
    dir.remove(&conf_d("https.xml"));
    if let Some(tls) = tls {
        let https = templates::CLICKHOUSE_HTTPS.render(&[
            ("HTTPS_PORT", port("https")?),
            ("CERT", absolute(&tls.cert).display().to_string()),
            ("KEY", absolute(&tls.key).display().to_string()),
        ])?;
        dir.write(&conf_d("https.xml"), &https)?;
    }
    if let Some(r) = replica {
        let xml = templates::CLICKHOUSE_REPLICA.render(&[
            ("VELOSTREAM_SHARD", r.shard.clone()),
            ("VELOSTREAM_REPLICA", r.replica.clone()),
            ("VELOSTREAM_INTERSERVER_HOST", "127.0.0.1".into()),
            ("VELOSTREAM_INTERSERVER_PORT", port("interserver")?),
            ("VELOSTREAM_ZOOKEEPER_HOST", "127.0.0.1".into()),
            ("VELOSTREAM_ZOOKEEPER_PORT", r.zookeeper_port.to_string()),
        ])?;
        dir.write(&conf_d("replica.xml"), &xml)?;
        dir.write(&conf_d("remote_servers.xml"), &r.remote_servers)?;
    }
    Ok(())
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Spawns `bin` on the configuration in `dir` (the `clickhouse` multi-call
/// binary gets `server` first).
pub fn spawn(bin: &Path, dir: &ServiceDir) -> Result<u32> {
    let mut cmd = Command::new(bin);
    if bin.file_name().is_some_and(|n| n == "clickhouse") {
        cmd.arg("server");
    }
    cmd.arg(format!(
        "--config-file={}",
        dir.file("config.xml").display()
    ))
    .current_dir(dir.path());
    process::spawn_group(&mut cmd, &dir.log())
}

/// The end of a server's error log (for messages).
pub fn error_log_tail(dir: &ServiceDir) -> String {
    supervisor::tail(&dir.file("logs/clickhouse-server.err.log"), 15)
}

impl Spec for ClickHouse {
    fn service(&self) -> Service {
        Service::ClickHouse
    }

    fn proc_name(&self) -> &'static str {
        "clickhouse"
    }

    fn launch(&self, dir: &ServiceDir, ctx: &Ctx) -> Result<u32> {
        let bin = binaries::clickhouse_server(Service::ClickHouse)?;
        let picked = ports::free_ports(3)?;
        let mut recorded = Ports::default();
        recorded.set("http", picked[0]);
        recorded.set("tcp", picked[1]);
        if ctx.opts.tls.is_some() {
            recorded.set("https", picked[2]);
        }
        dir.set_ports(&recorded)?;
        write_config(dir, &recorded, ctx.opts.tls.as_ref(), None)?;
        spawn(&bin, dir)
    }

    fn healthy(&self, dir: &ServiceDir) -> bool {
        dir.ports().get("http").is_some_and(health::clickhouse_ping)
    }

    fn endpoints(&self, dir: &ServiceDir) -> Endpoints {
        let ports = dir.ports();
        Endpoints {
            clickhouse_url: ports.get("http").map(|p| format!("http://127.0.0.1:{p}")),
            clickhouse_https_url: ports
                .get("https")
                .filter(|_| dir.is_tls())
                .map(|p| format!("https://127.0.0.1:{p}")),
            ..Endpoints::default()
        }
    }
}

/// One local clickhouse-server (the single service, or a cluster member):
/// its URL, and SIGKILL / restart on the same ports and data for fault tests.
#[derive(Clone, Debug)]
pub struct ClickHouseServer {
    name: String,
    dir: ServiceDir,
    bin: PathBuf,
    http_port: u16,
    tcp_port: u16,
}

impl ClickHouseServer {
    /// The server whose state is in `dir` (`name` is used in messages).
    pub fn from_dir(name: &str, dir: ServiceDir, service: Service) -> Result<ClickHouseServer> {
        let ports = dir.ports();
        let (Some(http_port), Some(tcp_port)) = (ports.get("http"), ports.get("tcp")) else {
            return Err(Error::Services(format!(
                "{name}: no ports recorded in {}; start it first",
                dir.path().display()
            )));
        };
        Ok(ClickHouseServer {
            name: name.to_string(),
            dir,
            bin: binaries::clickhouse_server(service)?,
            http_port,
            tcp_port,
        })
    }

    /// Name: `clickhouse`, or the cluster member's `s<shard>r<replica>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// HTTP URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Native TCP port (what `remote_servers` lists).
    pub fn tcp_port(&self) -> u16 {
        self.tcp_port
    }

    /// The server's state directory (configuration, data, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Pid of the running server, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.dir
            .pid()
            .filter(|&p| process::alive(p) && process::cmdline_contains(p, "clickhouse"))
    }

    /// True when the server answers `/ping`.
    pub fn is_healthy(&self) -> bool {
        health::clickhouse_ping(self.http_port)
    }

    /// SIGKILLs the server (a crash, not a shutdown) and waits until it is
    /// gone. Nothing happens when it is not running.
    pub fn kill(&self) -> Result<()> {
        if let Some(pid) = self.pid() {
            if !process::kill_group(pid) {
                return Err(Error::Services(format!(
                    "{}: pid {pid} survived SIGKILL",
                    self.name
                )));
            }
        }
        self.dir.remove("pid");
        Ok(())
    }

    /// Starts the server again with the same configuration, ports and data,
    /// and waits up to `timeout` until it answers `/ping`.
    pub fn restart(&self, timeout: Duration) -> Result<()> {
        if let Some(pid) = self.pid() {
            return Err(Error::Services(format!(
                "{}: still running (pid {pid}); kill it first",
                self.name
            )));
        }
        let pid = spawn(&self.bin, &self.dir)?;
        self.dir.set_pid(pid)?;
        // The server that answers must be the one just started: while this
        // one was down, another process may have taken its port.
        let ours = || self.is_healthy() && process::listens_on(pid, self.http_port);
        match health::wait_healthy(timeout, ours, || process::alive(pid)) {
            Waited::Healthy => Ok(()),
            outcome => {
                process::kill_group(pid);
                self.dir.remove("pid");
                Err(Error::Services(format!(
                    "{}: restart on port {} failed ({outcome:?}):\n{}",
                    self.name,
                    self.http_port,
                    error_log_tail(&self.dir)
                )))
            }
        }
    }
}
