//! THE way to start the `velostream` binary in a test.
//!
//! [`velostream()`] returns a [`Cmd`] whose environment holds nothing the
//! binary would read from the test process: every inherited `VELOSTREAM_*`
//! variable (`VELOSTREAM_CONFIG`, `VELOSTREAM_BROKERS`, the password
//! variables, …) and the few other variables it reads ([`OTHER_VARIABLES`])
//! are removed, then `VELOSTREAM_QUIET=1` and `NO_COLOR=1` are set, then
//! whatever the test asks with [`Cmd::env`]. Two ways to run it:
//!
//! - [`Cmd::run`] (or [`Cmd::expect_success`] / [`Cmd::expect_failure`])
//!   waits for the exit with a time limit and captures stdout and stderr; an
//!   unexpected outcome (or a panic of the binary, or a hang) fails the test
//!   with the command line, the exit status, stdout and stderr.
//! - [`Cmd::spawn`] starts a long-running member (consumer, producer) with
//!   stdout and stderr in a log file, and returns a [`Running`] that can be
//!   watched, signalled (SIGKILL, SIGTERM) and waited for with a time limit;
//!   failures show the command line and the log's tail. It is killed on drop,
//!   so a failing test leaves no process behind.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::process::{last_lines, logs_next_to, read_log, signal, tail};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_velostream");

/// Variables other than `VELOSTREAM_*` that the binary (through clap,
/// tracing and OpenSSL) reads; removed from its environment.
pub const OTHER_VARIABLES: &[&str] = &[
    "NO_COLOR",
    "CLICOLOR",
    "CLICOLOR_FORCE",
    "COLUMNS",
    "LINES",
    "RUST_LOG",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// Time limit of a run unless the test sets one with [`Cmd::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(180);

/// A `velostream` command with a clean environment (see the module docs).
pub fn velostream() -> Cmd {
    Cmd {
        args: Vec::new(),
        envs: vec![
            ("VELOSTREAM_QUIET".into(), "1".into()),
            ("NO_COLOR".into(), "1".into()),
        ],
        timeout: DEFAULT_TIMEOUT,
    }
}

/// The names of the inherited variables [`velostream()`] removes, out of
/// `vars` (the test process's environment).
pub fn removed_variables(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Vec<OsString> {
    vars.into_iter()
        .map(|(name, _)| name)
        .filter(|name| {
            let n = name.to_string_lossy();
            n.starts_with("VELOSTREAM_") || OTHER_VARIABLES.contains(&n.as_ref())
        })
        .collect()
}

/// A command line for the binary under test; see [`velostream()`].
#[derive(Debug, Clone)]
pub struct Cmd {
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    timeout: Duration,
}

impl Cmd {
    /// Appends one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cmd {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    /// Appends arguments.
    pub fn args<I, A>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = A>,
        A: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Sets a variable in the binary's environment (after the clean-up).
    pub fn env(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Cmd {
        self.envs
            .push((name.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    /// Sets several variables (see [`Cmd::env`]).
    pub fn envs<I, K, V>(self, vars: I) -> Cmd
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        vars.into_iter().fold(self, |cmd, (k, v)| cmd.env(k, v))
    }

    /// The time limit of [`Cmd::run`] (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, limit: Duration) -> Cmd {
        self.timeout = limit;
        self
    }

    /// `velostream ARGS…` quoted as a shell would need it, with the
    /// variables the test set (values of password variables hidden).
    pub fn command_line(&self) -> String {
        let mut words: Vec<String> = self
            .envs
            .iter()
            .map(|(k, v)| {
                let k = k.to_string_lossy();
                let v = if k.contains("PASSWORD") {
                    "***".into()
                } else {
                    v.to_string_lossy()
                };
                format!("{k}={}", shell_quote(&v))
            })
            .collect();
        words.push("velostream".into());
        words.extend(self.args.iter().map(|a| shell_quote(&a.to_string_lossy())));
        words.join(" ")
    }

    /// The `std::process::Command`: clean environment, then the test's.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(&self.args).stdin(Stdio::null());
        for name in removed_variables(std::env::vars_os()) {
            cmd.env_remove(name);
        }
        for name in OTHER_VARIABLES {
            cmd.env_remove(name);
        }
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs to the end (killed and failed after the time limit), capturing
    /// stdout and stderr. Fails the test when the binary panicked.
    pub fn run(&self) -> Output {
        let started = Instant::now();
        let mut child = self
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.command_line()));
        let stdout = read_in_background(child.stdout.take().expect("piped stdout"));
        let stderr = read_in_background(child.stderr.take().expect("piped stderr"));
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if started.elapsed() > self.timeout {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} did not finish within {:?}\nstdout:\n{}\nstderr:\n{}",
                    self.command_line(),
                    self.timeout,
                    stdout.join().unwrap_or_default(),
                    stderr.join().unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let output = Output {
            command: self.command_line(),
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
            elapsed: started.elapsed(),
        };
        assert!(
            !output.stderr.contains("panicked at"),
            "the binary panicked:\n{}",
            output.describe()
        );
        output
    }

    /// [`Cmd::run`], failing the test unless the exit status is 0.
    pub fn expect_success(&self) -> Output {
        let output = self.run();
        assert!(
            output.status.success(),
            "expected success:\n{}",
            output.describe()
        );
        output
    }

    /// [`Cmd::run`], failing the test when the exit status is 0.
    pub fn expect_failure(&self) -> Output {
        let output = self.run();
        assert!(
            !output.status.success(),
            "expected a failure:\n{}",
            output.describe()
        );
        output
    }

    /// Starts the binary with stdout and stderr in `log` (created anew).
    pub fn spawn(&self, log: &Path) -> Running {
        let out = File::create(log).unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let err = out.try_clone().expect("log file handle");
        let child = self
            .command()
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.command_line()));
        Running {
            child,
            log: log.to_path_buf(),
            command: self.command_line(),
            status: None,
        }
    }
}

fn read_in_background(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// What a finished run left: status, output, time.
#[derive(Debug)]
pub struct Output {
    /// The command line (see [`Cmd::command_line`]).
    pub command: String,
    /// Exit status.
    pub status: ExitStatus,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Output {
    /// True for exit status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// stdout, then stderr.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Command line, exit status, time, stdout and stderr, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "command: {}\nexit status: {} after {:?}\nstdout:\n{}\nstderr:\n{}",
            self.command, self.status, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// A started `velostream` process with its output in a log file; killed on
/// drop.
#[derive(Debug)]
pub struct Running {
    child: Child,
    log: PathBuf,
    command: String,
    status: Option<ExitStatus>,
}

impl Running {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything logged so far, without colour sequences.
    pub fn log(&self) -> String {
        read_log(&self.log)
    }

    /// The command line and the log's last lines, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "command: {}\nlog {} (last lines):\n{}",
            self.command,
            self.log.display(),
            tail(&self.log, 30)
        )
    }

    /// The exit status once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Fails the test, saying `what` was expected, when the process has exited.
    pub fn assert_running(&mut self, what: &str) {
        if let Some(status) = self.exited() {
            panic!("{what}: the process exited ({status})\n{}", self.describe());
        }
    }

    /// Polls `cond` every 20 ms for up to `timeout`; fails when the process
    /// exits or time runs out (showing the logs of every process of the
    /// scenario: the `*.log` files next to this one).
    pub fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut cond: impl FnMut(&Running) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while !cond(self) {
            self.assert_running(what);
            assert!(
                Instant::now() < deadline,
                "{what}: not within {timeout:?}; logs:\n{}",
                logs_next_to(&self.log)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the log contains `needle` (true) or the process exits
    /// (false); fails after `timeout`.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if self.exited().is_some() {
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} was not logged within {timeout:?}\n{}",
                self.describe()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the exit, at most `timeout` (then kills it and fails).
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        self.wait_with(timeout, |_| {})
    }

    /// [`Running::wait`], calling `tick` with the pid about every 50 ms while
    /// the process runs (to sample its memory, scrape its metrics, …).
    pub fn wait_with(&mut self, timeout: Duration, mut tick: impl FnMut(u32)) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            tick(self.pid());
            if Instant::now() > deadline {
                self.kill();
                panic!(
                    "the process did not finish within {timeout:?}\n{}",
                    self.describe()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the exit (at most `timeout`) and fails unless it is 0;
    /// returns the log.
    pub fn expect_success(&mut self, timeout: Duration) -> String {
        let status = self.wait(timeout);
        assert!(
            status.success(),
            "expected success, got {status}\n{}",
            self.describe()
        );
        self.log()
    }

    /// SIGKILL (a crash: nothing is flushed), then reaps the process.
    pub fn kill(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }

    /// SIGTERM (the graceful path of ctrl-c), then waits up to 60 s for a
    /// successful exit; returns the log.
    pub fn terminate(&mut self) -> String {
        signal(self.pid(), "-TERM");
        self.expect_success(Duration::from_secs(60))
    }

    /// The last `n` lines of the log.
    pub fn tail(&self, n: usize) -> String {
        last_lines(&self.log(), n)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}
