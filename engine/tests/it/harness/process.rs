//! Processes and their logs: signals, liveness, peak memory, log tails.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Sends `signal` (`"-TERM"`, `"-KILL"`, `"-STOP"`, …) to `pid` with kill(1).
pub fn signal(pid: u32, signal: &str) {
    let pid = pid.to_string();
    let status = Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap_or_else(|e| panic!("running kill {signal} {pid}: {e}"));
    assert!(status.success(), "kill {signal} {pid}: {status}");
}

/// True when `pid` exists and is not a zombie (an orphaned service is
/// reparented to PID 1, which may not reap it).
pub fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(") ")
                .map(|(_, rest)| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Peak resident set size (VmHWM) of `pid` in KiB, if readable.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The text of a log file without ANSI colour sequences ("" if unreadable).
pub fn read_log(path: &Path) -> String {
    strip_ansi(&std::fs::read_to_string(path).unwrap_or_default())
}

/// The last `n` lines of a log file, for failure messages.
pub fn tail(path: &Path, n: usize) -> String {
    last_lines(&read_log(path), n)
}

/// The last `n` lines of `text`.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The last lines of every `*.log` file in the directory of `log` (all
/// processes of one scenario), for failure messages.
pub fn logs_next_to(log: &Path) -> String {
    let dir = log.parent().expect("log directory");
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    logs.retain(|l| l.extension().is_some_and(|e| e == "log"));
    logs.sort();
    logs.iter()
        .map(|l| format!("--- {}\n{}\n", l.display(), tail(l, 25)))
        .collect()
}

/// Removes ANSI colour sequences (tracing colours field names).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
