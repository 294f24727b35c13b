//! `--wait-drained`: the decision after each snapshot (drained, keep
//! waiting with a progress line, or give up naming the partitions behind),
//! kept free of I/O and clocks so it is unit-tested.

use std::time::Duration;

use super::model::Snapshot;

/// What to do after a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Every partition is drained (and ClickHouse has caught up).
    Drained,
    /// Not yet: print this progress line and look again.
    Wait(String),
    /// The timeout passed: the message names every partition still behind.
    TimedOut(String),
}

/// Tracks progress between snapshots (for the rate in the progress line).
#[derive(Clone, Debug)]
pub struct Waiter {
    timeout: Option<Duration>,
    last: Option<(Duration, u64)>,
}

impl Waiter {
    /// Waits at most `timeout` (`None`: until drained).
    pub fn new(timeout: Option<Duration>) -> Self {
        Waiter {
            timeout,
            last: None,
        }
    }

    /// Decides after `snapshot`, taken `elapsed` after the wait began.
    pub fn step(&mut self, snapshot: &Snapshot, elapsed: Duration) -> Step {
        if snapshot.drained {
            return Step::Drained;
        }
        let behind = snapshot.behind();
        if let Some(t) = self.timeout.filter(|&t| elapsed >= t) {
            let list: Vec<String> = behind.iter().map(ToString::to_string).collect();
            return Step::TimedOut(format!(
                "group {} on topic {} not drained within the {} s timeout: {}",
                snapshot.group,
                snapshot.topic,
                t.as_secs_f64(),
                list.join("; ")
            ));
        }
        let lag = snapshot.lag_messages;
        let rate = match self.last {
            Some((t, before)) if elapsed > t && before >= lag => {
                let per_s = (before - lag) as f64 / (elapsed - t).as_secs_f64();
                format!(", {per_s:.0} msg/s")
            }
            _ => String::new(),
        };
        self.last = Some((elapsed, lag));
        let lagging: Vec<i32> = behind
            .iter()
            .filter(|b| b.lag_messages > 0)
            .map(|b| b.partition)
            .collect();
        let storing: Vec<i32> = behind
            .iter()
            .filter(|b| b.stored.is_some())
            .map(|b| b.partition)
            .collect();
        let mut line = format!(
            "waiting: {lag} message(s), {} row(s) behind on partition(s) {lagging:?}{rate}",
            snapshot.row_lag().describe()
        );
        if !storing.is_empty() {
            line.push_str(&format!(
                "; ClickHouse stored offsets behind on partition(s) {storing:?}"
            ));
        }
        line.push_str(&format!("; {:.0} s elapsed", elapsed.as_secs_f64()));
        Step::Wait(line)
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::{PartitionObservation, Sample, Snapshot};
    use super::*;

    fn snapshot(committed: [i64; 2], high: [i64; 2]) -> Snapshot {
        let obs: Vec<PartitionObservation> = (0..2)
            .map(|p| PartitionObservation {
                partition: p as i32,
                committed: Some(committed[p]),
                log_start: 0,
                listed_high: 1,
                fetched_high: high[p],
                samples: (committed[p]..high[p])
                    .map(|offset| Sample {
                        offset,
                        rows: Some(100),
                    })
                    .collect(),
            })
            .collect();
        Snapshot::build("trips", "loaders", "Stable", vec![], &obs, None)
    }

    #[test]
    fn waits_with_progress_then_reports_drained() {
        let mut w = Waiter::new(Some(Duration::from_secs(60)));
        let s = w.step(&snapshot([0, 10], [20, 10]), Duration::from_secs(1));
        assert_eq!(
            s,
            Step::Wait(
                "waiting: 20 message(s), 2000 row(s) behind on partition(s) [0]; 1 s elapsed"
                    .into()
            )
        );
        let s = w.step(&snapshot([10, 10], [20, 10]), Duration::from_secs(3));
        assert_eq!(
            s,
            Step::Wait(
                "waiting: 10 message(s), 1000 row(s) behind on partition(s) [0], 5 msg/s; 3 s elapsed"
                    .into()
            )
        );
        assert_eq!(
            w.step(&snapshot([20, 10], [20, 10]), Duration::from_secs(5)),
            Step::Drained
        );
    }

    #[test]
    fn the_timeout_names_every_partition_still_behind() {
        let mut w = Waiter::new(Some(Duration::from_secs(2)));
        assert!(matches!(
            w.step(&snapshot([0, 0], [3, 4]), Duration::from_secs(1)),
            Step::Wait(_)
        ));
        assert_eq!(
            w.step(&snapshot([0, 0], [3, 4]), Duration::from_secs(2)),
            Step::TimedOut(
                "group loaders on topic trips not drained within the 2 s timeout: \
                 partition 0: 3 message(s), 300 row(s) not consumed; \
                 partition 1: 4 message(s), 400 row(s) not consumed"
                    .into()
            )
        );
        // Drained wins even at the deadline; no timeout waits forever.
        assert_eq!(
            w.step(&snapshot([3, 4], [3, 4]), Duration::from_secs(9)),
            Step::Drained
        );
        let mut forever = Waiter::new(None);
        assert!(matches!(
            forever.step(&snapshot([0, 0], [3, 4]), Duration::from_secs(1 << 20)),
            Step::Wait(_)
        ));
    }
}
