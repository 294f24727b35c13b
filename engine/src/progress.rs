//! Progress reporting for long work: an indicatif bar with rows/s and MB/s
//! on a terminal, periodic plain lines otherwise, nothing when
//! `VELOSTREAM_QUIET=1`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often plain (non-terminal) progress lines are printed.
const PLAIN_INTERVAL: Duration = Duration::from_secs(5);

/// A thread-safe progress reporter counting rows and bytes.
#[derive(Debug)]
pub struct Progress {
    label: String,
    total_rows: Option<u64>,
    rows: AtomicU64,
    bytes: AtomicU64,
    started: Instant,
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    Bar(ProgressBar),
    Plain { last: Mutex<Instant> },
    Quiet,
}

impl Progress {
    /// A reporter for `label`; `total_rows` enables a percentage and ETA.
    pub fn new(label: &str, total_rows: Option<u64>) -> Progress {
        let quiet = std::env::var("VELOSTREAM_QUIET").is_ok_and(|v| v == "1");
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            let bar = match total_rows {
                Some(n) => ProgressBar::new(n),
                None => ProgressBar::new_spinner(),
            };
            bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
            let template = if total_rows.is_some() {
                "{prefix:>10} [{elapsed_precise}] {wide_bar:.cyan/blue} {percent:>3}% {msg} eta {eta}"
            } else {
                "{prefix:>10} [{elapsed_precise}] {spinner} {msg}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(label.to_string());
            Mode::Bar(bar)
        } else {
            Mode::Plain {
                last: Mutex::new(Instant::now()),
            }
        };
        Progress {
            label: label.to_string(),
            total_rows,
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            started: Instant::now(),
            mode,
        }
    }

    /// A reporter that never prints (library use, tests).
    pub fn hidden() -> Progress {
        Progress {
            label: String::new(),
            total_rows: None,
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            started: Instant::now(),
            mode: Mode::Quiet,
        }
    }

    /// Adds `rows` and `bytes` of completed work.
    pub fn inc(&self, rows: u64, bytes: u64) {
        let total = self.rows.fetch_add(rows, Ordering::Relaxed) + rows;
        let total_bytes = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        match &self.mode {
            Mode::Bar(bar) => {
                bar.set_position(total);
                bar.set_message(self.rate_text(total, total_bytes));
            }
            Mode::Plain { last } => {
                let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
                if last.elapsed() >= PLAIN_INTERVAL {
                    *last = Instant::now();
                    eprintln!("{}: {}", self.label, self.line(total, total_bytes));
                }
            }
            Mode::Quiet => {}
        }
    }

    /// Sets a free-form status message (e.g. lag) shown with the bar.
    pub fn set_message(&self, msg: String) {
        match &self.mode {
            Mode::Bar(bar) => {
                let rows = self.rows.load(Ordering::Relaxed);
                let bytes = self.bytes.load(Ordering::Relaxed);
                bar.set_message(format!("{} {msg}", self.rate_text(rows, bytes)));
            }
            Mode::Plain { .. } | Mode::Quiet => {}
        }
    }

    /// Rows counted so far.
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    /// Ends the bar and prints a final line.
    pub fn finish(&self) {
        let rows = self.rows.load(Ordering::Relaxed);
        let bytes = self.bytes.load(Ordering::Relaxed);
        match &self.mode {
            Mode::Bar(bar) => bar.finish_and_clear(),
            Mode::Plain { .. } => {}
            Mode::Quiet => return,
        }
        eprintln!("{}: done, {}", self.label, self.line(rows, bytes));
    }

    fn rate_text(&self, rows: u64, bytes: u64) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        format!(
            "{} rows, {:.0} rows/s, {:.1} MB/s",
            rows,
            rows as f64 / secs,
            bytes as f64 / secs / 1e6
        )
    }

    fn line(&self, rows: u64, bytes: u64) -> String {
        let pct = match self.total_rows {
            Some(t) if t > 0 => format!(" ({:.1}%)", rows as f64 * 100.0 / t as f64),
            _ => String::new(),
        };
        format!(
            "{}{pct} in {:.1}s",
            self.rate_text(rows, bytes),
            self.started.elapsed().as_secs_f64()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_rows_and_bytes_from_many_threads() {
        let p = Progress::hidden();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        p.inc(3, 10);
                    }
                });
            }
        });
        assert_eq!(p.rows(), 12_000);
        assert_eq!(p.bytes.load(Ordering::Relaxed), 40_000);
    }
}
