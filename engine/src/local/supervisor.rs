//! Start, reuse, stop and status of one service in a state directory, under
//! the service's lock: a healthy running instance is reused; a stale pid
//! file or an unhealthy instance is replaced; a start whose process dies
//! while coming up (its port taken between the probe and the bind) is
//! retried on fresh ports; a start that does not become healthy in time is
//! stopped and reported with the end of its log.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::health::{self, Waited};
use super::state::{ServiceDir, StateDir};
use super::{clickhouse, cluster, kafka, process, prometheus, zookeeper};
use super::{Endpoints, LocalOptions, Service};
use crate::{Error, Result};

/// How long a stopped service may take to exit after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(15);

/// What the supervisor needs to know about a single-process service.
pub trait Spec {
    /// Which service this is.
    fn service(&self) -> Service;
    /// A fragment of a running instance's command line (guards against a
    /// recycled pid in a stale pid file).
    fn proc_name(&self) -> &'static str;
    /// Picks ports, writes the configuration into `dir` and spawns the
    /// process group; returns the leader's pid.
    fn launch(&self, dir: &ServiceDir, ctx: &Ctx) -> Result<u32>;
    /// Health check of the instance recorded in `dir`.
    fn healthy(&self, dir: &ServiceDir) -> bool;
    /// Endpoints of the instance recorded in `dir`.
    fn endpoints(&self, dir: &ServiceDir) -> Endpoints;
}

/// The options and state directory of one supervisor call.
#[derive(Debug)]
pub struct Ctx {
    /// The caller's options.
    pub opts: LocalOptions,
    /// The state directory.
    pub state: StateDir,
    /// Print progress to stderr (the command line) instead of tracing.
    pub verbose: bool,
}

impl Ctx {
    /// Opens the state directory of `opts`.
    pub fn new(opts: LocalOptions, verbose: bool) -> Result<Ctx> {
        let state = StateDir::open(opts.state_dir.as_deref())?;
        Ok(Ctx {
            opts,
            state,
            verbose,
        })
    }

    /// A progress message: stderr for the command line, tracing otherwise.
    pub fn note(&self, msg: &str) {
        if self.verbose {
            eprintln!("[velostream local] {msg}");
        } else {
            tracing::info!(target: "velostream::local", "{msg}");
        }
    }

    /// The `velostream` executable that runs the side processes (watchdog,
    /// Kafka TLS front): [`LocalOptions::exe`], else this process's
    /// executable when it is `velostream`.
    pub fn exe(&self) -> Result<PathBuf> {
        if let Some(exe) = &self.opts.exe {
            return Ok(exe.clone());
        }
        let me = std::env::current_exe()
            .map_err(|e| Error::io("finding the velostream executable", e))?;
        if me.file_stem().is_some_and(|n| n == "velostream") {
            Ok(me)
        } else {
            Err(Error::Services(format!(
                "the watchdog and the Kafka TLS front run in the velostream executable, and this \
                 process is {}: set LocalOptions::exe (tests: env!(\"CARGO_BIN_EXE_velostream\"))",
                me.display()
            )))
        }
    }
}

/// Starts `service` (or reuses it); the returned endpoints list in
/// `started` what this call started (the cluster may start ZooKeeper too).
pub fn start_service(service: Service, ctx: &Ctx) -> Result<Endpoints> {
    match service {
        Service::Kafka => start(&kafka::Kafka, ctx),
        Service::ClickHouse => start(&clickhouse::ClickHouse, ctx),
        Service::ZooKeeper => start(&zookeeper::ZooKeeper, ctx),
        Service::Prometheus => start(&prometheus::Prometheus, ctx),
        Service::ClickHouseCluster => cluster::start(ctx),
    }
}

/// Stops `service` in `state`. `by_watchdog`: the caller is the service's
/// own watchdog, which must not signal itself.
pub fn stop_service(
    service: Service,
    state: &StateDir,
    by_watchdog: bool,
    ctx: &Ctx,
) -> Result<()> {
    let dir = state.service(service.name());
    match service {
        Service::Kafka => stop(&kafka::Kafka, &dir, by_watchdog, ctx),
        Service::ClickHouse => stop(&clickhouse::ClickHouse, &dir, by_watchdog, ctx),
        Service::ZooKeeper => stop(&zookeeper::ZooKeeper, &dir, by_watchdog, ctx),
        Service::Prometheus => stop(&prometheus::Prometheus, &dir, by_watchdog, ctx),
        Service::ClickHouseCluster => cluster::stop(state, by_watchdog, ctx),
    }
}

/// The endpoints of `service` when it runs and is healthy; `None` otherwise
/// (the reason is noted).
pub fn status_service(service: Service, ctx: &Ctx) -> Result<Option<Endpoints>> {
    let dir = ctx.state.service(service.name());
    let spec: &dyn Spec = match service {
        Service::Kafka => &kafka::Kafka,
        Service::ClickHouse => &clickhouse::ClickHouse,
        Service::ZooKeeper => &zookeeper::ZooKeeper,
        Service::Prometheus => &prometheus::Prometheus,
        Service::ClickHouseCluster => return cluster::status(ctx),
    };
    match running_pid(spec, &dir) {
        Some(pid) if spec.healthy(&dir) => {
            ctx.note(&format!("{service}: running, pid {pid}"));
            Ok(Some(spec.endpoints(&dir)))
        }
        Some(pid) => {
            ctx.note(&format!("{service}: pid {pid} running but not healthy"));
            Ok(None)
        }
        None if dir.pid().is_some() => {
            ctx.note(&format!("{service}: stopped (stale pid file)"));
            Ok(None)
        }
        None => {
            ctx.note(&format!("{service}: stopped"));
            Ok(None)
        }
    }
}

/// The recorded pid of `spec` when that process is alive and is the service.
pub fn running_pid(spec: &dyn Spec, dir: &ServiceDir) -> Option<u32> {
    dir.pid()
        .filter(|&pid| process::alive(pid) && process::cmdline_contains(pid, spec.proc_name()))
}

/// Starts a single-process service under its lock, or reuses it.
pub fn start(spec: &dyn Spec, ctx: &Ctx) -> Result<Endpoints> {
    let service = spec.service();
    let dir = ctx.state.service(service.name());
    let _lock = dir.lock()?;
    if let Some(endpoints) = reuse(spec, &dir, ctx)? {
        return Ok(endpoints);
    }
    let t0 = Instant::now();
    for attempt in 1..=3 {
        match attempt_start(spec, &dir, ctx)? {
            Waited::Healthy => {
                let mut endpoints = spec.endpoints(&dir);
                dir.write("endpoints", &endpoints.lines())?;
                ctx.note(&format!(
                    "{service}: started pid {} in {} ms ({})",
                    dir.pid().unwrap_or(0),
                    t0.elapsed().as_millis(),
                    endpoints.lines().trim_end().replace('\n', " ")
                ));
                endpoints.started.push(service);
                return Ok(endpoints);
            }
            Waited::Exited => ctx.note(&format!(
                "{service}: start attempt {attempt} failed (the process exited); log:\n{}",
                tail(&dir.log(), 15)
            )),
            Waited::TimedOut => {
                return Err(Error::Services(format!(
                    "{service} did not become healthy within {:?}; see {}:\n{}",
                    ctx.opts.timeout(),
                    dir.log().display(),
                    tail(&dir.log(), 15)
                )))
            }
        }
    }
    Err(Error::Services(format!(
        "{service}: could not start in 3 attempts; see {}:\n{}",
        dir.log().display(),
        tail(&dir.log(), 15)
    )))
}

/// The endpoints of a healthy running instance; replaces a stale or
/// unhealthy one (returns `None` then).
fn reuse(spec: &dyn Spec, dir: &ServiceDir, ctx: &Ctx) -> Result<Option<Endpoints>> {
    let service = spec.service();
    let Some(pid) = running_pid(spec, dir) else {
        if let Some(pid) = dir.pid() {
            ctx.note(&format!(
                "{service}: stale pid file (pid {pid} is not running); replacing it"
            ));
            dir.remove("pid");
            dir.remove("endpoints");
        }
        return Ok(None);
    };
    let (running, wanted) = (dir.is_tls(), ctx.opts.tls.is_some());
    if running != wanted && tls_matters(service) {
        let mode = |tls: bool| if tls { "with TLS" } else { "without TLS" };
        return Err(Error::Services(format!(
            "{service}: the instance running in {} (pid {pid}) was started {}, not {} as requested; \
             stop it first or use another state directory",
            ctx.state.root().display(),
            mode(running),
            mode(wanted)
        )));
    }
    if dir.endpoints().is_some() && spec.healthy(dir) {
        ctx.note(&format!(
            "{service}: already running (pid {pid}), reusing it"
        ));
        return Ok(Some(spec.endpoints(dir)));
    }
    ctx.note(&format!(
        "{service}: pid {pid} is running but not healthy; restarting it"
    ));
    process::stop_group(pid, STOP_GRACE);
    dir.remove("pid");
    Ok(None)
}

fn tls_matters(service: Service) -> bool {
    matches!(service, Service::Kafka | Service::ClickHouse)
}

/// One launch and wait. An instance that does not become healthy in time is
/// stopped.
fn attempt_start(spec: &dyn Spec, dir: &ServiceDir, ctx: &Ctx) -> Result<Waited> {
    dir.remove("tls");
    if ctx.opts.tls.is_some() && tls_matters(spec.service()) {
        dir.write("tls", "tls\n")?;
    }
    let pid = spec.launch(dir, ctx)?;
    dir.set_pid(pid)?;
    let waited = health::wait_healthy(
        ctx.opts.timeout(),
        || spec.healthy(dir),
        || process::alive(pid),
    );
    match waited {
        Waited::Healthy => {}
        Waited::Exited => {
            process::stop_group(pid, STOP_GRACE); // children it may have left
            dir.remove("pid");
        }
        Waited::TimedOut => {
            process::stop_group(pid, STOP_GRACE);
            dir.remove("pid");
        }
    }
    Ok(waited)
}

/// Stops a single-process service (and its watchdog, unless called by it).
pub fn stop(spec: &dyn Spec, dir: &ServiceDir, by_watchdog: bool, ctx: &Ctx) -> Result<()> {
    let service = spec.service();
    if !dir.exists() {
        ctx.note(&format!(
            "{service}: not running (no state in {})",
            dir.path().display()
        ));
        return Ok(());
    }
    let _lock = dir.lock()?;
    stop_watchdog(dir, by_watchdog);
    match running_pid(spec, dir) {
        Some(pid) => {
            if !process::stop_group(pid, STOP_GRACE) {
                return Err(Error::Services(format!(
                    "{service}: process group {pid} survived SIGKILL"
                )));
            }
            ctx.note(&format!("{service}: stopped pid {pid}"));
        }
        None if dir.pid().is_some() => ctx.note(&format!("{service}: stale pid file removed")),
        None => ctx.note(&format!("{service}: not running")),
    }
    dir.remove("pid");
    dir.remove("endpoints");
    Ok(())
}

/// Ends the watchdog of `dir` (unless the caller is that watchdog).
pub fn stop_watchdog(dir: &ServiceDir, by_watchdog: bool) {
    if !by_watchdog {
        if let Some(w) = dir.watchdog_pid() {
            if process::alive(w) && process::cmdline_contains(w, "watchdog") {
                process::signal_group(w, rustix::process::Signal::TERM);
            }
        }
    }
    dir.remove("watchdog.pid");
}

/// The last `lines` lines of a log file (for error messages).
pub fn tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
