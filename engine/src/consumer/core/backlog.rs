//! Whether a lane has a backlog: at least a whole insert of rows waiting
//! for it, in Kafka or inside the consumer.
//!
//! Two places hold rows a lane has not buffered yet:
//! - Kafka: the consumer thread records the offset of every message it
//!   takes; the high watermarks come from librdkafka's statistics, whose
//!   `hi_offset` is read from fetch responses (right on tansu too, unlike
//!   ListOffsets). A partition's lag is `high watermark − next offset to
//!   take`: messages the broker holds (or librdkafka has prefetched) that
//!   the consumer has not taken yet.
//! - the consumer: messages taken and decoded but still queued for the lane
//!   (the consumer thread's stash and the lane's channel). librdkafka
//!   prefetches a whole topic when memory allows, and the consumer takes it
//!   faster than a lane inserts, so Kafka's lag can be 0 while a backlog
//!   waits here.
//!
//! A lane is *behind* when those messages of its partitions, in rows (at the
//! observed rows per message), make at least one whole insert: then it fills
//! whole inserts — few, large parts for ClickHouse to write and merge —
//! instead of inserting on its latency deadlines (see
//! [`super::batcher::Feed`]).
//!
//! Stale figures only err towards latency: the statistics arrive once a
//! second, so a watermark is at most that old and under-states the lag; a
//! partition without a watermark yet, or not taken from yet, has no lag.

use std::collections::HashMap;

/// The next offset to take, per partition.
#[derive(Debug, Default)]
pub struct Backlog {
    next: HashMap<i32, i64>,
}

impl Backlog {
    /// The consumer took the message at `offset` of `partition`.
    pub fn taken(&mut self, partition: i32, offset: i64) {
        self.next.insert(partition, offset + 1);
    }

    /// Forgets the partitions `owned` rejects (revoked or lost): a partition
    /// assigned again resumes at its committed offset.
    pub fn retain(&mut self, owned: impl Fn(i32) -> bool) {
        self.next.retain(|p, _| owned(*p));
    }

    /// Messages not taken yet of each partition with both figures.
    pub fn lag<'a>(&'a self, high: &'a HashMap<i32, i64>) -> impl Iterator<Item = (i32, i64)> + 'a {
        self.next
            .iter()
            .filter_map(|(p, next)| high.get(p).map(|h| (*p, (h - next).max(0))))
    }

    /// For each lane (partition `p` goes to lane `p mod lanes`, with one
    /// lane per entry of `queued`, the messages taken but not yet in that
    /// lane's buffer): whether its Kafka lag and queued messages hold at
    /// least `whole_insert` rows.
    pub fn lanes_behind(
        &self,
        high: &HashMap<i32, i64>,
        queued: &[usize],
        rows_per_message: f64,
        whole_insert: usize,
    ) -> Vec<bool> {
        let mut messages: Vec<i64> = queued.iter().map(|q| *q as i64).collect();
        if messages.is_empty() {
            messages.push(0);
        }
        let lanes = messages.len();
        for (p, lag) in self.lag(high) {
            messages[p.unsigned_abs() as usize % lanes] += lag;
        }
        messages
            .into_iter()
            .map(|m| m > 0 && m as f64 * rows_per_message >= whole_insert as f64)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn high(pairs: &[(i32, i64)]) -> HashMap<i32, i64> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn lag_is_the_watermark_past_the_next_offset_to_take() {
        let mut b = Backlog::default();
        b.taken(0, 9);
        b.taken(1, 4);
        b.taken(2, 7);
        let mut lag: Vec<_> = b.lag(&high(&[(0, 30), (1, 5), (3, 99)])).collect();
        lag.sort();
        // Partition 2 has no watermark yet, partition 3 was never taken from.
        assert_eq!(lag, [(0, 20), (1, 0)]);
        // A stale watermark behind what was taken is no lag, never negative.
        assert_eq!(b.lag(&high(&[(0, 3)])).collect::<Vec<_>>(), [(0, 0)]);
    }

    #[test]
    fn a_lane_is_behind_from_one_whole_insert_of_rows() {
        let mut b = Backlog::default();
        for p in 0..4 {
            b.taken(p, 99);
        }
        // 1,000 rows per message, inserts of 50,000 rows, 2 lanes with
        // nothing queued: lane 0 has partitions 0 and 2, lane 1 has 1 and 3.
        let w = high(&[(0, 130), (2, 120), (1, 110), (3, 139)]);
        assert_eq!(b.lanes_behind(&w, &[0, 0], 1_000.0, 50_000), [true, false]);
        // Exactly one whole insert counts.
        let w = high(&[(1, 125), (3, 125)]);
        assert_eq!(b.lanes_behind(&w, &[0, 0], 1_000.0, 50_000), [false, true]);
        // No rows seen yet per message: never behind.
        assert_eq!(b.lanes_behind(&w, &[0, 0], 0.0, 50_000), [false, false]);
        // No lanes is one lane.
        assert_eq!(b.lanes_behind(&w, &[], 1_000.0, 50_000), [true]);
    }

    #[test]
    fn messages_queued_inside_the_consumer_are_a_backlog_too() {
        let mut b = Backlog::default();
        b.taken(0, 99);
        b.taken(1, 99);
        // Everything fetched was taken: Kafka's lag is 0 on both lanes.
        let w = high(&[(0, 100), (1, 100)]);
        assert_eq!(b.lanes_behind(&w, &[0, 0], 1_000.0, 50_000), [false, false]);
        // 50 messages wait for lane 1, 49 for lane 0.
        assert_eq!(
            b.lanes_behind(&w, &[49, 50], 1_000.0, 50_000),
            [false, true]
        );
        // Queued and lagging messages add up.
        let w = high(&[(0, 101), (1, 100)]);
        assert_eq!(b.lanes_behind(&w, &[49, 0], 1_000.0, 50_000), [true, false]);
        // Without any watermark yet, the queue alone decides.
        assert_eq!(
            b.lanes_behind(&high(&[]), &[50, 0], 1_000.0, 50_000),
            [true, false]
        );
    }

    #[test]
    fn revoked_partitions_are_forgotten_and_resume_where_taken_again() {
        let mut b = Backlog::default();
        b.taken(0, 500);
        b.taken(1, 500);
        b.retain(|p| p == 1);
        assert_eq!(b.lag(&high(&[(0, 900)])).count(), 0);
        // Assigned again from an earlier committed offset: lag from there.
        b.taken(0, 100);
        assert_eq!(b.lag(&high(&[(0, 900)])).collect::<Vec<_>>(), [(0, 799)]);
    }
}
