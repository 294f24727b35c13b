//! [`LocalServices`]: the handle that `velostream bench`, the command line
//! and the test harness hold on started (or reused) services.

use std::path::Path;

use super::clickhouse::ClickHouseServer;
use super::cluster::ClickHouseCluster;
use super::output::Endpoints;
use super::state::StateDir;
use super::supervisor::{self, Ctx};
use super::watchdog::{self, Owner};
use super::{binaries, LocalOptions, Service, TlsFiles};
use crate::{Error, Result};

/// Handle to services started (or reused) in one state directory.
///
/// Dropping the handle stops the services it started, like
/// [`stop`](Self::stop) but ignoring errors; [`detach`](Self::detach)
/// leaves them running (their watchdog, if any, still stops them when the
/// owner exits).
#[derive(Debug)]
pub struct LocalServices {
    ctx: Ctx,
    endpoints: Endpoints,
    started: Vec<Service>,
    stopped: bool,
}

impl LocalServices {
    /// Starts `services` (or reuses healthy running instances in the same
    /// state directory) and waits until each passes its health check.
    /// Every program is checked first, so a missing one fails before
    /// anything starts.
    pub fn start(services: &[Service], opts: &LocalOptions) -> Result<LocalServices> {
        Self::start_verbose(services, opts, false)
    }

    /// Like [`start`](Self::start) with TLS (see [`LocalOptions::tls`]).
    pub fn start_with_tls(
        services: &[Service],
        opts: &LocalOptions,
        tls: &TlsFiles,
    ) -> Result<LocalServices> {
        let opts = LocalOptions {
            tls: Some(tls.clone()),
            ..opts.clone()
        };
        Self::start(services, &opts)
    }

    /// [`start`](Self::start), noting progress on stderr when `verbose`.
    pub fn start_verbose(
        services: &[Service],
        opts: &LocalOptions,
        verbose: bool,
    ) -> Result<LocalServices> {
        let mut wanted: Vec<Service> = Vec::new();
        for &s in services {
            if !wanted.contains(&s) {
                wanted.push(s);
            }
        }
        check_tls_files(opts.tls.as_ref())?;
        let ctx = Ctx::new(opts.clone(), verbose)?;
        let owner = opts.owner_pid.map(Owner::of).transpose()?;
        let needs_exe = owner.is_some() || (opts.tls.is_some() && wanted.contains(&Service::Kafka));
        if needs_exe {
            ctx.exe()?;
        }
        for &s in &wanted {
            binaries::check(s)?;
        }
        let mut handle = LocalServices {
            ctx,
            endpoints: Endpoints::default(),
            started: Vec::new(),
            stopped: false,
        };
        for service in wanted {
            // On error the handle drops and stops what was started so far.
            let mut got = supervisor::start_service(service, &handle.ctx)?;
            for &s in &got.started {
                handle.started.push(s);
                if let Some(owner) = owner {
                    let dir = handle.ctx.state.service(s.name());
                    watchdog::spawn(&handle.ctx, s, &dir, owner)?;
                }
            }
            got.started.clear();
            handle.endpoints.merge(got);
        }
        Ok(handle)
    }

    /// Endpoints of the requested services.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        self.ctx.state.root()
    }

    /// The Prometheus file_sd target file when Prometheus was requested;
    /// see [`super::write_scrape_targets`].
    pub fn prometheus_targets(&self) -> Option<&Path> {
        self.endpoints.prometheus_targets.as_deref()
    }

    /// Process id of a running single-process `service` (from its pid file),
    /// e.g. to account its CPU time. `None` for the cluster.
    pub fn pid(&self, service: Service) -> Option<u32> {
        if service == Service::ClickHouseCluster {
            return None;
        }
        self.ctx.state.service(service.name()).pid()
    }

    /// Services this handle started itself (the others were already running).
    pub fn started(&self) -> &[Service] {
        &self.started
    }

    /// The single ClickHouse server (to kill and restart it in a test).
    pub fn clickhouse_server(&self) -> Result<ClickHouseServer> {
        let dir = self.ctx.state.service(Service::ClickHouse.name());
        ClickHouseServer::from_dir("clickhouse", dir, Service::ClickHouse)
    }

    /// The cluster's servers (to kill and restart replicas in a test).
    pub fn clickhouse_cluster(&self) -> Result<ClickHouseCluster> {
        ClickHouseCluster::from_state(&self.ctx.state)
    }

    /// Stops the services this handle started; reused instances keep running.
    pub fn stop(mut self) -> Result<()> {
        self.stop_started()
    }

    /// Leaves every service running and returns the endpoints.
    pub fn detach(mut self) -> Endpoints {
        self.stopped = true;
        let mut endpoints = std::mem::take(&mut self.endpoints);
        endpoints.started = std::mem::take(&mut self.started);
        endpoints
    }

    fn stop_started(&mut self) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let mut errors = Vec::new();
        for service in std::mem::take(&mut self.started).into_iter().rev() {
            if let Err(e) = supervisor::stop_service(service, &self.ctx.state, false, &self.ctx) {
                errors.push(e.to_string());
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Services(errors.join("; ")))
        }
    }
}

impl Drop for LocalServices {
    fn drop(&mut self) {
        if let Err(e) = self.stop_started() {
            tracing::warn!("stopping local services: {e}");
        }
    }
}

/// Stops `services` in the state directory `root` (default when `None`),
/// whoever started them.
pub fn stop(services: &[Service], root: Option<&Path>, verbose: bool) -> Result<()> {
    let opts = LocalOptions {
        state_dir: root.map(Path::to_path_buf),
        ..LocalOptions::default()
    };
    let ctx = Ctx::new(opts, verbose)?;
    let state: &StateDir = &ctx.state;
    for &s in services.iter().rev() {
        supervisor::stop_service(s, state, false, &ctx)?;
    }
    Ok(())
}

/// The endpoints of those `services` that run healthy, and the names of
/// those that do not.
pub fn status(
    services: &[Service],
    root: Option<&Path>,
    verbose: bool,
) -> Result<(Endpoints, Vec<Service>)> {
    let opts = LocalOptions {
        state_dir: root.map(Path::to_path_buf),
        ..LocalOptions::default()
    };
    let ctx = Ctx::new(opts, verbose)?;
    let mut endpoints = Endpoints::default();
    let mut down = Vec::new();
    for &s in services {
        match supervisor::status_service(s, &ctx)? {
            Some(e) => endpoints.merge(e),
            None => down.push(s),
        }
    }
    Ok((endpoints, down))
}

fn check_tls_files(tls: Option<&TlsFiles>) -> Result<()> {
    let Some(tls) = tls else { return Ok(()) };
    for f in [Some(&tls.cert), Some(&tls.key), tls.client_ca.as_ref()]
        .into_iter()
        .flatten()
    {
        std::fs::File::open(f).map_err(|e| Error::io(format!("TLS file {}", f.display()), e))?;
    }
    Ok(())
}
