//! Local services without Docker: starts a tansu Kafka broker, a ClickHouse
//! server and a Prometheus server on free 127.0.0.1 ports by shelling out to
//! `infra/local/services.sh`, and parses the `KEY=VALUE` endpoint lines it
//! prints.
//!
//! The script reuses a healthy instance that is already running in the same
//! state directory; a [`LocalServices`] handle only stops what it started
//! itself. With [`LocalOptions::owner_pid`] the script also spawns a watchdog
//! that stops the services once that process exits, so services started for a
//! test or a benchmark never outlive it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Error, Result};

/// How to install the service binaries; part of every error message.
pub const INSTALL_HINT: &str = "install the services with `infra/local/install.sh` (as root)";

/// Path of the launcher script relative to the repository root.
const SCRIPT: &str = "infra/local/services.sh";

/// Exit status of `services.sh` when a service binary is missing.
const EXIT_NOT_INSTALLED: i32 = 3;

/// A service the launcher can start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    /// tansu 0.6.0, a Kafka-protocol broker with in-memory storage.
    Kafka,
    /// clickhouse-server with a generated config.
    ClickHouse,
    /// Prometheus scraping the targets in a file_sd file.
    Prometheus,
}

impl Service {
    /// Every service, in start order.
    pub const ALL: [Service; 3] = [Service::Kafka, Service::ClickHouse, Service::Prometheus];

    /// The name `services.sh` uses.
    pub fn name(self) -> &'static str {
        match self {
            Service::Kafka => "kafka",
            Service::ClickHouse => "clickhouse",
            Service::Prometheus => "prometheus",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the services listen. A field is `None` when that service was not
/// requested.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoints {
    /// Kafka bootstrap servers, `127.0.0.1:PORT`.
    pub brokers: Option<String>,
    /// ClickHouse HTTP URL, `http://127.0.0.1:PORT`.
    pub clickhouse_url: Option<String>,
    /// Prometheus URL, `http://127.0.0.1:PORT`.
    pub prometheus_url: Option<String>,
    /// ClickHouse HTTPS URL, `https://127.0.0.1:PORT`, when started with
    /// [`LocalServices::start_with_tls`].
    pub clickhouse_https_url: Option<String>,
}

/// Server certificate and private key (PEM files) for
/// [`LocalServices::start_with_tls`].
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

/// Options for [`LocalServices::start`].
#[derive(Clone, Debug, Default)]
pub struct LocalOptions {
    /// State directory (data, logs, pid files). Default: `<repo>/.velostream/local`.
    pub state_dir: Option<PathBuf>,
    /// Stop the services started here when this process exits.
    pub owner_pid: Option<u32>,
}

/// Handle to services started (or reused) through `services.sh`.
///
/// Dropping the handle stops the services it started, like [`stop`](Self::stop)
/// but ignoring errors; [`detach`](Self::detach) leaves them running.
#[derive(Debug)]
pub struct LocalServices {
    script: PathBuf,
    state_dir: Option<PathBuf>,
    endpoints: Endpoints,
    prometheus_targets: Option<PathBuf>,
    started: Vec<Service>,
    stopped: bool,
}

impl LocalServices {
    /// Starts `services` (or reuses healthy running instances in the same
    /// state directory) and waits until each passes its health check.
    pub fn start(services: &[Service], opts: &LocalOptions) -> Result<LocalServices> {
        Self::start_inner(services, opts, None)
    }

    /// Like [`start`](Self::start), with TLS: Kafka then accepts only TLS
    /// clients (`security.protocol=ssl`) at [`Endpoints::brokers`], and
    /// ClickHouse serves HTTPS at [`Endpoints::clickhouse_https_url`] besides
    /// plain HTTP. Use a state directory of its own: an instance running
    /// without TLS in the same directory is not reused (an error says so).
    pub fn start_with_tls(
        services: &[Service],
        opts: &LocalOptions,
        tls: &TlsFiles,
    ) -> Result<LocalServices> {
        Self::start_inner(services, opts, Some(tls))
    }

    fn start_inner(
        services: &[Service],
        opts: &LocalOptions,
        tls: Option<&TlsFiles>,
    ) -> Result<LocalServices> {
        let script = infra_dir()?.join("local").join("services.sh");
        let mut handle = LocalServices {
            script,
            state_dir: opts.state_dir.clone(),
            endpoints: Endpoints::default(),
            prometheus_targets: None,
            started: Vec::new(),
            stopped: false,
        };
        let mut seen = Vec::new();
        for &service in services {
            if seen.contains(&service) {
                continue;
            }
            seen.push(service);
            let mut args = vec!["start".to_string(), service.name().to_string()];
            if let Some(pid) = opts.owner_pid {
                args.push("--owner-pid".into());
                args.push(pid.to_string());
            }
            if let Some(tls) = tls {
                args.push("--tls-cert".into());
                args.push(tls.cert.display().to_string());
                args.push("--tls-key".into());
                args.push(tls.key.display().to_string());
                if let Some(ca) = &tls.client_ca {
                    args.push("--tls-client-ca".into());
                    args.push(ca.display().to_string());
                }
            }
            // On error the handle drops and stops what was started so far.
            let stdout = handle.run(&args)?;
            let parsed = parse_output(&stdout);
            handle.merge(parsed, service)?;
        }
        Ok(handle)
    }

    /// Endpoints of the requested services.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The Prometheus file_sd target file (`[{"targets": ["127.0.0.1:PORT"], "labels": {..}}]`)
    /// when Prometheus was requested; see [`write_scrape_targets`].
    pub fn prometheus_targets(&self) -> Option<&Path> {
        self.prometheus_targets.as_deref()
    }

    /// Process id of a running `service` (from its pid file in the state
    /// directory), e.g. to account its CPU time.
    pub fn pid(&self, service: Service) -> Option<u32> {
        let dir = match &self.state_dir {
            Some(d) => d.clone(),
            None => infra_dir()
                .ok()?
                .parent()?
                .join(".velostream")
                .join("local"),
        };
        let text = std::fs::read_to_string(dir.join(service.name()).join("pid")).ok()?;
        text.trim().parse().ok()
    }

    /// Services this handle started itself (the others were already running).
    pub fn started(&self) -> &[Service] {
        &self.started
    }

    /// Stops the services this handle started; reused instances keep running.
    pub fn stop(mut self) -> Result<()> {
        self.stop_started()
    }

    /// Leaves every service running and returns the endpoints.
    pub fn detach(mut self) -> Endpoints {
        self.stopped = true;
        std::mem::take(&mut self.endpoints)
    }

    fn stop_started(&mut self) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let mut errors = Vec::new();
        for service in std::mem::take(&mut self.started).into_iter().rev() {
            if let Err(e) = self.run(&["stop".to_string(), service.name().to_string()]) {
                errors.push(e.to_string());
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Services(errors.join("; ")))
        }
    }

    fn merge(&mut self, parsed: ScriptOutput, service: Service) -> Result<()> {
        let missing = |key: &str| {
            Error::Services(format!(
                "{} start {service}: no {key}= line in its output",
                self.script.display()
            ))
        };
        match service {
            Service::Kafka => {
                self.endpoints.brokers = Some(
                    parsed
                        .brokers
                        .ok_or_else(|| missing("VELOSTREAM_BROKERS"))?,
                )
            }
            Service::ClickHouse => {
                self.endpoints.clickhouse_url = Some(
                    parsed
                        .clickhouse_url
                        .ok_or_else(|| missing("VELOSTREAM_CLICKHOUSE_URL"))?,
                );
                self.endpoints.clickhouse_https_url = parsed.clickhouse_https_url;
            }
            Service::Prometheus => {
                self.endpoints.prometheus_url = Some(
                    parsed
                        .prometheus_url
                        .ok_or_else(|| missing("VELOSTREAM_PROMETHEUS_URL"))?,
                );
                self.prometheus_targets = parsed.prometheus_targets;
            }
        }
        if parsed.started.contains(&service) {
            self.started.push(service);
        }
        Ok(())
    }

    /// Runs `bash services.sh ARGS [--state-dir DIR]`; returns stdout.
    fn run(&self, args: &[String]) -> Result<String> {
        let mut cmd = Command::new("bash");
        cmd.arg(&self.script).args(args);
        if let Some(dir) = &self.state_dir {
            cmd.arg("--state-dir").arg(dir);
        }
        let what = format!("{} {}", self.script.display(), args.join(" "));
        let out = cmd.output().map_err(|e| {
            Error::Services(format!("{what}: cannot run bash: {e}; {INSTALL_HINT}"))
        })?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            let reason = if out.status.code() == Some(EXIT_NOT_INSTALLED) {
                "a service binary is not installed"
            } else {
                "failed"
            };
            return Err(Error::Services(format!(
                "{what}: {reason} ({}):\n{}\n{INSTALL_HINT}",
                out.status,
                stderr.trim_end()
            )));
        }
        for line in stderr.lines() {
            tracing::debug!(target: "velostream::local", "{line}");
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for LocalServices {
    fn drop(&mut self) {
        if let Err(e) = self.stop_started() {
            tracing::warn!("stopping local services: {e}");
        }
    }
}

/// What `services.sh start` printed on stdout.
#[derive(Debug, Default, PartialEq, Eq)]
struct ScriptOutput {
    brokers: Option<String>,
    clickhouse_url: Option<String>,
    clickhouse_https_url: Option<String>,
    prometheus_url: Option<String>,
    prometheus_targets: Option<PathBuf>,
    started: Vec<Service>,
}

/// Parses `KEY=VALUE` lines; unknown keys and other lines are ignored.
fn parse_output(stdout: &str) -> ScriptOutput {
    let mut out = ScriptOutput::default();
    for line in stdout.lines() {
        let Some((key, value)) = line.trim().split_once('=') else {
            continue;
        };
        let value = value.trim().to_string();
        match key.trim() {
            "VELOSTREAM_BROKERS" => out.brokers = Some(value),
            "VELOSTREAM_CLICKHOUSE_URL" => out.clickhouse_url = Some(value),
            "VELOSTREAM_CLICKHOUSE_HTTPS_URL" => out.clickhouse_https_url = Some(value),
            "VELOSTREAM_PROMETHEUS_URL" => out.prometheus_url = Some(value),
            "VELOSTREAM_PROMETHEUS_TARGETS" => out.prometheus_targets = Some(PathBuf::from(value)),
            "VELOSTREAM_STARTED" => {
                if let Some(s) = Service::ALL.into_iter().find(|s| s.name() == value) {
                    out.started.push(s);
                }
            }
            _ => {}
        }
    }
    out
}

/// Writes a Prometheus file_sd target file atomically (write + rename), so
/// Prometheus never reads a half-written file. `targets` are `host:port`
/// addresses serving `/metrics`; `labels` are attached to every series.
pub fn write_scrape_targets(
    path: &Path,
    targets: &[String],
    labels: &[(&str, &str)],
) -> Result<()> {
    let labels: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|(k, v)| {
            (
                (*k).to_string(),
                serde_json::Value::String((*v).to_string()),
            )
        })
        .collect();
    let doc = serde_json::json!([{ "targets": targets, "labels": labels }]);
    let tmp = path.with_extension("json.tmp");
    let ctx = |op: &str, p: &Path| format!("{op} Prometheus targets {}", p.display());
    std::fs::write(&tmp, doc.to_string()).map_err(|e| Error::io(ctx("writing", &tmp), e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(ctx("renaming to", path), e))
}

/// The repository's `infra` directory: `VELOSTREAM_INFRA_DIR` if set, else
/// the first `infra/local/services.sh` found searching upward from the current
/// directory, then from the executable, then from this crate's source tree.
pub fn infra_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("VELOSTREAM_INFRA_DIR") {
        let dir = PathBuf::from(dir);
        if dir.join("local").join("services.sh").is_file() {
            return Ok(dir);
        }
        return Err(Error::Services(format!(
            "VELOSTREAM_INFRA_DIR={} has no local/services.sh",
            dir.display()
        )));
    }
    let mut starts = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        starts.push(cwd);
    }
    if let Ok(exe) = std::env::current_exe() {
        starts.extend(exe.parent().map(Path::to_path_buf));
    }
    starts.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    for start in &starts {
        for dir in start.ancestors() {
            if dir.join(SCRIPT).is_file() {
                return Ok(dir.join("infra"));
            }
        }
    }
    Err(Error::Services(format!(
        "{SCRIPT} not found above {}; run from the VeloStream repository or set VELOSTREAM_INFRA_DIR",
        starts
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoint_lines_and_ignores_noise() {
        let out = parse_output(
            "VELOSTREAM_BROKERS=127.0.0.1:9092\nnoise\nVELOSTREAM_STARTED=kafka\n\
             VELOSTREAM_CLICKHOUSE_URL=http://127.0.0.1:8123\n\
             VELOSTREAM_PROMETHEUS_URL=http://127.0.0.1:9090\n\
             VELOSTREAM_PROMETHEUS_TARGETS=/tmp/x/targets.json\nOTHER=1\n\
             VELOSTREAM_CLICKHOUSE_HTTPS_URL=https://127.0.0.1:8443\n",
        );
        assert_eq!(
            out.clickhouse_https_url.as_deref(),
            Some("https://127.0.0.1:8443")
        );
        assert_eq!(out.brokers.as_deref(), Some("127.0.0.1:9092"));
        assert_eq!(out.clickhouse_url.as_deref(), Some("http://127.0.0.1:8123"));
        assert_eq!(out.prometheus_url.as_deref(), Some("http://127.0.0.1:9090"));
        assert_eq!(
            out.prometheus_targets,
            Some(PathBuf::from("/tmp/x/targets.json"))
        );
        assert_eq!(out.started, vec![Service::Kafka]);
    }

    #[test]
    fn reused_service_is_not_marked_started() {
        let out = parse_output("VELOSTREAM_CLICKHOUSE_URL=http://127.0.0.1:1\n");
        assert!(out.started.is_empty());
    }

    #[test]
    fn finds_the_infra_dir_of_this_repository() {
        let dir = infra_dir().unwrap();
        assert!(dir.join("local/services.sh").is_file(), "{}", dir.display());
    }

    #[test]
    fn scrape_target_file_is_valid_file_sd_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("targets.json");
        write_scrape_targets(&path, &["127.0.0.1:9464".into()], &[("run", "r1")]).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v[0]["targets"][0], "127.0.0.1:9464");
        assert_eq!(v[0]["labels"]["run"], "r1");
        assert!(!dir.path().join("targets.json.tmp").exists());
    }
}
