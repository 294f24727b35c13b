//! End-to-end latency of a live stream, decided without I/O: when each
//! message was acknowledged by Kafka and when its rows were first seen in
//! ClickHouse. The freshness phase feeds it; percentiles come out.

use std::collections::BTreeMap;

/// Acknowledgements and sightings of numbered messages, in seconds since
/// the phase started.
#[derive(Debug, Default)]
pub struct Visibility {
    /// seq → (rows, acknowledged at).
    acked: BTreeMap<u64, (u64, f64)>,
    /// seq → first seen at.
    seen: BTreeMap<u64, f64>,
}

impl Visibility {
    /// Kafka acknowledged message `seq` of `rows` rows at `at`.
    pub fn acked(&mut self, seq: u64, rows: u64, at: f64) {
        self.acked.insert(seq, (rows, at));
    }

    /// A poll at `at` found the rows of `seq` in ClickHouse (only the first
    /// sighting counts).
    pub fn seen(&mut self, seq: u64, at: f64) {
        self.seen.entry(seq).or_insert(at);
    }

    /// The smallest sequence number not yet seen (polls ask from there).
    pub fn lowest_unseen(&self) -> u64 {
        (0..).find(|s| !self.seen.contains_key(s)).unwrap_or(0)
    }

    /// Rows acknowledged by Kafka and not yet visible in ClickHouse.
    pub fn lag_rows(&self) -> u64 {
        self.acked
            .iter()
            .filter(|(s, _)| !self.seen.contains_key(s))
            .map(|(_, (rows, _))| rows)
            .sum()
    }

    /// Whether every acknowledged message has been seen.
    pub fn all_seen(&self) -> bool {
        self.acked.keys().all(|s| self.seen.contains_key(s))
    }

    /// Acknowledged messages never seen.
    pub fn unseen(&self) -> Vec<u64> {
        self.acked
            .keys()
            .filter(|s| !self.seen.contains_key(s))
            .copied()
            .collect()
    }

    /// Latency of every acknowledged and seen message, sorted. A message
    /// seen before its acknowledgement arrived counts 0.
    pub fn latencies(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self
            .acked
            .iter()
            .filter_map(|(s, (_, ack))| self.seen.get(s).map(|seen| (seen - ack).max(0.0)))
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }
}

/// The `q` quantile (0..=1) of sorted `values` (nearest rank); 0 when empty.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_from_acknowledgement_to_first_sighting() {
        let mut v = Visibility::default();
        v.acked(0, 100, 1.0);
        v.acked(1, 100, 1.5);
        v.acked(2, 50, 2.0);
        assert_eq!(v.lag_rows(), 250);
        v.seen(1, 1.8);
        v.seen(0, 1.8);
        v.seen(0, 9.0); // seen again: the first sighting counts
        assert_eq!(v.lowest_unseen(), 2);
        assert_eq!(v.lag_rows(), 50);
        assert!(!v.all_seen());
        assert_eq!(v.unseen(), vec![2]);
        // Seen before its acknowledgement was recorded: 0.
        v.seen(3, 2.1);
        v.acked(3, 10, 2.2);
        v.seen(2, 2.6);
        assert!(v.all_seen());
        let l = v.latencies();
        assert_eq!(l.len(), 4);
        assert_eq!(l[0], 0.0);
        assert!((l[3] - 0.8).abs() < 1e-9, "{l:?}");
    }

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[3.0], 0.99), 3.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
