//! Processes and process groups: every service runs as the leader of its own
//! process group (so a stop reaches its children too, e.g. tansu behind the
//! TLS front, or the JVM behind `zkServer.sh`), with stdin closed and
//! stdout/stderr appended to its log file. Liveness comes from `/proc`.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use crate::{Error, Result};

/// What `/proc/<pid>/stat` says about a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    /// State letter (`R`, `S`, `Z`…).
    pub state: char,
    /// Process group id.
    pub pgrp: u32,
    /// Start time in clock ticks after boot (detects pid reuse).
    pub start_time: u64,
}

impl ProcStat {
    /// Parses the text of `/proc/<pid>/stat` (the command name may contain
    /// spaces and parentheses, so fields are counted after the last `)`).
    pub fn parse(text: &str) -> Option<ProcStat> {
        let (_, rest) = text.rsplit_once(") ")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        Some(ProcStat {
            state: fields.first()?.chars().next()?,
            pgrp: fields.get(2)?.parse().ok()?,
            start_time: fields.get(19)?.parse().ok()?,
        })
    }

    /// Reads the stat of `pid`, if it exists.
    pub fn of(pid: u32) -> Option<ProcStat> {
        ProcStat::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    /// A zombie has exited and only waits to be reaped.
    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }
}

/// True when `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    ProcStat::of(pid).is_some_and(|s| !s.is_zombie())
}

/// True when the command line of `pid` contains `needle` (guards against a
/// recycled pid in a stale pid file).
pub fn cmdline_contains(pid: u32, needle: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            String::from_utf8_lossy(&raw)
                .replace('\0', " ")
                .contains(needle)
        })
        .unwrap_or(false)
}

/// Inodes of the sockets listening on TCP `port`, from the text of
/// `/proc/net/tcp` or `/proc/net/tcp6` (state `0A` is LISTEN).
pub fn listening_inodes(proc_net_tcp: &str, port: u16) -> Vec<u64> {
    proc_net_tcp
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f.get(1)?.rsplit(':').next()?;
            let listening = *f.get(3)? == "0A";
            (listening && u16::from_str_radix(local_port, 16).ok()? == port)
                .then(|| f.get(9)?.parse().ok())
                .flatten()
        })
        .collect()
}

/// True when `pid` itself holds a socket listening on TCP `port` (a health
/// check on the port alone could be answered by another process that took
/// the port while the service was down).
pub fn listens_on(pid: u32, port: u16) -> bool {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            inodes.extend(listening_inodes(&text, port));
        }
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            let target = target.to_string_lossy();
            target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| inodes.contains(&n))
        })
    })
}

/// True when a live (non-zombie) process belongs to process group `pgid`.
pub fn group_alive(pgid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return alive(pgid);
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(ProcStat::of)
        .any(|s| s.pgrp == pgid && !s.is_zombie())
}

/// Spawns `cmd` as the leader of a new process group with stdin closed and
/// stdout/stderr appended to `log`; returns its pid. A thread reaps it when
/// it exits, so a service that dies never lingers as a zombie of this
/// process.
pub fn spawn_group(cmd: &mut Command, log: &Path) -> Result<u32> {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| Error::io(format!("opening log {}", log.display()), e))?;
    let err = out
        .try_clone()
        .map_err(|e| Error::io(format!("opening log {}", log.display()), e))?;
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| Error::Services(format!("starting {program}: {e}")))?;
    let pid = child.id();
    std::thread::Builder::new()
        .name(format!("reap-{pid}"))
        .spawn(move || {
            let _ = child.wait();
        })
        .map_err(|e| Error::io("starting a reaper thread", e))?;
    Ok(pid)
}

/// Sends `signal` to process group `pgid` (and to `pgid` itself, in case it
/// left its group). Errors (already gone) are ignored.
pub fn signal_group(pgid: u32, signal: Signal) {
    if let Some(pid) = Pid::from_raw(pgid as i32) {
        let _ = rustix::process::kill_process_group(pid, signal);
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// Waits until no live process is left in group `pgid`; false on timeout.
pub fn wait_group_gone(pgid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while group_alive(pgid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// Stops process group `pgid`: SIGTERM, up to `grace` to exit, then
/// SIGKILL. Returns false when something survived SIGKILL for 5 s.
pub fn stop_group(pgid: u32, grace: Duration) -> bool {
    signal_group(pgid, Signal::TERM);
    if wait_group_gone(pgid, grace) {
        return true;
    }
    tracing::warn!("process group {pgid} still alive after {grace:?}; sending SIGKILL");
    kill_group(pgid)
}

/// SIGKILLs process group `pgid` (a crash, not a shutdown) and waits up to
/// 5 s until it is gone.
pub fn kill_group(pgid: u32) -> bool {
    signal_group(pgid, Signal::KILL);
    wait_group_gone(pgid, Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_listening_sockets_of_a_port_are_found_and_ours_is_ours() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 20 4 30 10 -1\n\
   2: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 100 0 0 10 0\n";
        // Port 8080 (0x1F90): only the listening socket, not the connection.
        assert_eq!(listening_inodes(text, 8080), [4242]);
        assert_eq!(listening_inodes(text, 8082), Vec::<u64>::new());

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(listens_on(std::process::id(), port));
        drop(listener);
        assert!(!listens_on(std::process::id(), port), "closed");
        assert!(!listens_on(1, port), "another process");
    }

    use super::*;

    #[test]
    fn parses_stat_with_spaces_and_parentheses_in_the_name() {
        let text = "4242 (my (odd) name) S 1 4240 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 \
                    987654 1000 10 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let s = ProcStat::parse(text).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!(s.pgrp, 4240);
        assert_eq!(s.start_time, 987654);
        assert!(!s.is_zombie());
        assert_eq!(ProcStat::parse("garbage"), None);
    }

    #[test]
    fn this_process_is_alive_and_its_stat_is_readable() {
        let me = std::process::id();
        assert!(alive(me));
        assert!(ProcStat::of(me).unwrap().start_time > 0);
        assert!(!alive(999_999_999));
    }

    #[test]
    fn a_group_is_stopped_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        // The shell leads the group; its `sleep` child must die with it.
        let pid = spawn_group(
            Command::new("sh").args(["-c", "sleep 60 & echo started; wait"]),
            &log,
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("started")
        {
            assert!(Instant::now() < deadline, "the shell did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(group_alive(pid));
        assert!(stop_group(pid, Duration::from_secs(5)));
        assert!(!group_alive(pid));
        assert!(!alive(pid));
    }
}
