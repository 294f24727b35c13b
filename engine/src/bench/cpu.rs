//! CPU time per thread group, read from /proc/self/task/*/stat.
//!
//! Threads are grouped by name: the producer's `velostream-read-*` and
//! `velostream-send` threads, the consumer's `velostream-consumer` thread and
//! the `velostream-rt*` runtime threads (decode, transform, encode, insert),
//! and librdkafka's `rdk:*` threads (shared by all Kafka clients of the
//! process, reported on their own). Threads that end are remembered at
//! their last sample, so sample often.

use std::collections::HashMap;

/// Clock ticks per second used by /proc (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// Remembers the latest CPU time seen per thread, relative to a baseline.
#[derive(Debug, Default)]
pub struct CpuSampler {
    threads: HashMap<u32, (String, u64)>,
    baseline: HashMap<u32, u64>,
}

/// CPU seconds by group.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct CpuSplit {
    pub producer: f64,
    pub consumer: f64,
    pub kafka_client: f64,
    pub other: f64,
}

impl CpuSampler {
    /// A sampler counting only CPU time used from now on.
    pub fn start() -> Self {
        let mut s = CpuSampler::default();
        s.sample();
        s.baseline = s.threads.iter().map(|(tid, (_, t))| (*tid, *t)).collect();
        s
    }

    /// Reads every thread of this process once.
    pub fn sample(&mut self) {
        let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
            return;
        };
        for entry in dir.flatten() {
            let Some(tid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            if let Some((name, ticks)) = parse_stat(&stat) {
                self.threads.insert(tid, (name, ticks));
            }
        }
    }

    /// Totals per group so far.
    pub fn split(&self) -> CpuSplit {
        let mut s = CpuSplit::default();
        for (tid, (name, ticks)) in &self.threads {
            let ticks = ticks.saturating_sub(self.baseline.get(tid).copied().unwrap_or(0));
            let secs = ticks as f64 / TICKS_PER_SEC;
            if name.starts_with("velostream-read") || name.starts_with("velostream-send") {
                s.producer += secs;
            } else if name.starts_with("velostream-con") || name.starts_with("velostream-rt") {
                s.consumer += secs;
            } else if name.starts_with("rdk:") {
                s.kafka_client += secs;
            } else {
                s.other += secs;
            }
        }
        s
    }
}

/// (thread name, utime + stime ticks) from a /proc stat line.
fn parse_stat(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat[open + 1..close].to_string();
    let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // After ")": state is field 3; utime is field 14, stime field 15.
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_spaces_and_parentheses() {
        let line = "42 (rdk:broker (1)) S 1 1 1 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 1 0";
        assert_eq!(parse_stat(line), Some(("rdk:broker (1)".into(), 280)));
    }

    #[test]
    fn sees_this_threads_cpu() {
        let mut s = CpuSampler::default();
        std::thread::Builder::new()
            .name("velostream-read-t".into())
            .spawn(|| {
                let mut x = 0u64;
                let t = std::time::Instant::now();
                while t.elapsed().as_millis() < 300 {
                    x = x.wrapping_mul(31).wrapping_add(7);
                }
                std::hint::black_box(x);
                let mut s = CpuSampler::default();
                s.sample();
                assert!(s.split().producer > 0.1, "{:?}", s.split());
            })
            .unwrap()
            .join()
            .unwrap();
        s.sample();
    }
}
