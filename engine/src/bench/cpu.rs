//! CPU time per thread group, read from /proc/self/task/*/stat.
//!
//! Threads are grouped by name: the producer's `velostream-read-*` and
//! `velostream-send` threads, the consumer's `velostream-consumer` thread and
//! the `velostream-rt*` runtime threads (decode, transform, encode, insert),
//! and librdkafka's `rdk:*` threads (shared by all Kafka clients of the
//! process, reported on their own). Threads that end are remembered at
//! their last sample, so sample often.

use std::collections::{BTreeMap, HashMap};

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

/// CPU time of whole processes (the local services: tansu, ClickHouse),
/// counted from [`ProcessCpu::start`].
#[derive(Clone, Debug, Default)]
pub struct ProcessCpu {
    start: Vec<(String, u32, u64)>,
}

impl ProcessCpu {
    /// Starts counting for `(name, pid)`; processes that cannot be read are left out.
    pub fn start(pids: &[(String, u32)]) -> Self {
        let start = pids
            .iter()
            .filter_map(|(name, pid)| Some((name.clone(), *pid, process_ticks(*pid)?)))
            .collect();
        ProcessCpu { start }
    }

    /// CPU seconds per process since the start (a process that has gone is left out).
    pub fn seconds(&self) -> BTreeMap<String, f64> {
        self.start
            .iter()
            .filter_map(|(name, pid, t0)| {
                let t = process_ticks(*pid)?;
                Some((name.clone(), t.saturating_sub(*t0) as f64 / TICKS_PER_SEC))
            })
            .collect()
    }
}

fn process_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat).map(|(_, t)| t)
}

/// Busy CPU time of the whole machine (every process, ours or not), from
/// /proc/stat: tells how loaded the cores were during a measurement.
#[derive(Clone, Copy, Debug)]
pub struct MachineCpu {
    busy: u64,
    at: std::time::Instant,
}

impl MachineCpu {
    /// Starts counting.
    pub fn start() -> Self {
        MachineCpu {
            busy: machine_busy_ticks().unwrap_or(0),
            at: std::time::Instant::now(),
        }
    }

    /// Average number of busy cores since the start (0 when unreadable).
    pub fn busy_cores(&self) -> f64 {
        let Some(now) = machine_busy_ticks() else {
            return 0.0;
        };
        let secs = self.at.elapsed().as_secs_f64().max(1e-9);
        now.saturating_sub(self.busy) as f64 / TICKS_PER_SEC / secs
    }
}

/// user + nice + system + irq + softirq + steal ticks of the `cpu` line.
fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_machine_busy(stat.lines().next()?)
}

fn parse_machine_busy(line: &str) -> Option<u64> {
    let mut it = line.split_whitespace();
    if it.next()? != "cpu" {
        return None;
    }
    let v: Vec<u64> = it.filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal ...
    if v.len() < 8 {
        return None;
    }
    Some(v[0] + v[1] + v[2] + v[5] + v[6] + v[7])
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
    fn machine_busy_counts_everything_but_idle_and_iowait() {
        let line = "cpu  100 5 50 1000 20 3 2 1 0 0";
        assert_eq!(parse_machine_busy(line), Some(161));
        assert_eq!(parse_machine_busy("cpu0 1 2 3 4 5 6 7 8"), None);
        assert_eq!(parse_machine_busy("cpu 1 2"), None);
    }

    #[test]
    fn counts_a_busy_child_process() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done"])
            .spawn()
            .unwrap();
        let cpu = ProcessCpu::start(&[("sh".into(), child.id())]);
        let machine = MachineCpu::start();
        std::thread::sleep(std::time::Duration::from_millis(400));
        let secs = cpu.seconds();
        let busy = machine.busy_cores();
        let _ = child.kill();
        let _ = child.wait();
        assert!(secs.get("sh").copied().unwrap_or(0.0) > 0.1, "{secs:?}");
        assert!(busy > 0.2, "{busy}");
    }

    #[test]
    fn sees_this_threads_cpu() {
        let mut s = CpuSampler::default();
        std::thread::Builder::new()
            .name("velostream-read-t".into())
            .spawn(|| {
                // Spin until this thread has used 0.2 CPU s (however busy
                // the machine is), then the sampler must see at least half.
                let spin_until = |cpu: f64| {
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
                    let mut x = 0u64;
                    loop {
                        for _ in 0..1_000_000 {
                            x = x.wrapping_mul(31).wrapping_add(7);
                        }
                        let mut s = CpuSampler::default();
                        s.sample();
                        if s.split().producer >= cpu || std::time::Instant::now() > deadline {
                            std::hint::black_box(x);
                            return s.split();
                        }
                    }
                };
                let split = spin_until(0.2);
                assert!(split.producer > 0.1, "{split:?}");
            })
            .unwrap()
            .join()
            .unwrap();
        s.sample();
    }
}
