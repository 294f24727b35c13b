//! The owner-process watchdog: a `velostream local watchdog` process, one
//! per started service, that stops the service once its owner (a test
//! process, a bench run, a shell script) exits, however it exits. The
//! owner is identified by pid *and* start time, so a recycled pid does not
//! keep services alive.

use std::process::Command;
use std::time::Duration;

use super::process::{self, ProcStat};
use super::state::ServiceDir;
use super::supervisor::{self, Ctx};
use super::Service;
use crate::{Error, Result};

/// How often the watchdog looks at its owner.
const POLL: Duration = Duration::from_millis(500);

/// The process that owns services.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Its pid.
    pub pid: u32,
    /// Its start time (clock ticks after boot), from `/proc/<pid>/stat`.
    pub start_time: u64,
}

impl Owner {
    /// The running process `pid`.
    pub fn of(pid: u32) -> Result<Owner> {
        match ProcStat::of(pid) {
            Some(s) if !s.is_zombie() => Ok(Owner {
                pid,
                start_time: s.start_time,
            }),
            _ => Err(Error::Config(format!("--owner-pid {pid}: no such process"))),
        }
    }

    /// True while the owner runs: same pid, same start time, not a zombie.
    pub fn is_alive_given(&self, seen: Option<ProcStat>) -> bool {
        seen.is_some_and(|s| !s.is_zombie() && s.start_time == self.start_time)
    }

    /// [`is_alive_given`](Self::is_alive_given) the process table now.
    pub fn is_alive(&self) -> bool {
        self.is_alive_given(ProcStat::of(self.pid))
    }
}

/// Starts the watchdog of `service` (whose directory is `dir`) for `owner`
/// and records its pid in `watchdog.pid`.
pub fn spawn(ctx: &Ctx, service: Service, dir: &ServiceDir, owner: Owner) -> Result<u32> {
    let mut cmd = Command::new(ctx.exe()?);
    cmd.args(["local", "watchdog", service.name()])
        .arg("--state-dir")
        .arg(ctx.state.root())
        .arg("--owner-pid")
        .arg(owner.pid.to_string())
        .arg("--owner-start")
        .arg(owner.start_time.to_string())
        .env_remove("VELOSTREAM_CONFIG");
    let pid = process::spawn_group(&mut cmd, &dir.file("watchdog.log"))?;
    dir.write("watchdog.pid", &format!("{pid}\n"))?;
    ctx.note(&format!(
        "{service}: watchdog pid {pid} stops it when pid {} exits",
        owner.pid
    ));
    Ok(pid)
}

/// The watchdog's body: waits until `owner` is gone, then stops `service`.
pub fn run(service: Service, owner: Owner, ctx: &Ctx) -> Result<()> {
    while owner.is_alive() {
        std::thread::sleep(POLL);
    }
    ctx.note(&format!(
        "owner pid {} exited; stopping {service}",
        owner.pid
    ));
    supervisor::stop_service(service, &ctx.state, true, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(state: char, start_time: u64) -> Option<ProcStat> {
        Some(ProcStat {
            state,
            pgrp: 1,
            start_time,
        })
    }

    #[test]
    fn owner_is_gone_when_missing_zombie_or_recycled() {
        let owner = Owner {
            pid: 42,
            start_time: 1000,
        };
        assert!(owner.is_alive_given(stat('S', 1000)));
        assert!(!owner.is_alive_given(None), "exited");
        assert!(!owner.is_alive_given(stat('Z', 1000)), "zombie");
        assert!(!owner.is_alive_given(stat('S', 2000)), "pid recycled");
    }

    #[test]
    fn this_process_is_a_live_owner_and_a_bogus_pid_is_refused() {
        assert!(Owner::of(std::process::id()).unwrap().is_alive());
        assert!(Owner::of(999_999_999)
            .unwrap_err()
            .to_string()
            .contains("999999999"));
    }
}
