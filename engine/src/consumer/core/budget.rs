//! The consumer's memory bound, in bytes.
//!
//! Every decoded message is charged when the consumer thread takes it from
//! Kafka and released when its insert is acknowledged (or it is dropped);
//! an encoded insert body is charged while it exists. The consumer thread
//! takes no new message while the budget is used up (it keeps serving
//! rebalances and commits), so the data held by the consumer stays within
//! the limit plus one message.
//!
//! Each lane may hold at most its share of the budget (`limit / lanes`): a
//! lane that cannot insert (its shard is down, say) stops the intake of its
//! own partitions only, and the other lanes keep flowing.

/// A byte budget: `used` against `limit`, with per-lane accounting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budget {
    limit: u64,
    used: u64,
    lanes: Vec<u64>,
}

impl Budget {
    pub fn new(limit: u64) -> Self {
        Budget {
            limit: limit.max(1),
            used: 0,
            lanes: vec![0],
        }
    }

    /// Sets the number of lanes (when the insert side starts).
    pub fn set_lanes(&mut self, lanes: usize) {
        self.lanes.resize(lanes.max(1), 0);
    }

    /// Whether another message may be taken. A message larger than the
    /// whole budget is still taken when nothing else is held, so progress
    /// never stops.
    pub fn has_room(&self) -> bool {
        self.used < self.limit
    }

    /// Whether another message for `lane` may be taken: the budget has room
    /// and the lane holds less than its share (or nothing).
    pub fn has_room_for(&self, lane: usize) -> bool {
        let share = self.limit / self.lanes.len() as u64;
        let held = self.lanes.get(lane).copied().unwrap_or(0);
        self.has_room() && (held == 0 || held < share)
    }

    /// Bytes held for `lane`.
    pub fn held_by(&self, lane: usize) -> u64 {
        self.lanes.get(lane).copied().unwrap_or(0)
    }

    /// Bytes held now.
    pub fn used(&self) -> u64 {
        self.used
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn charge(&mut self, lane: usize, bytes: u64) {
        self.used = self.used.saturating_add(bytes);
        if lane >= self.lanes.len() {
            self.lanes.resize(lane + 1, 0);
        }
        self.lanes[lane] = self.lanes[lane].saturating_add(bytes);
    }

    pub fn release(&mut self, lane: usize, bytes: u64) {
        debug_assert!(bytes <= self.used, "releasing {bytes} of {}", self.used);
        self.used = self.used.saturating_sub(bytes);
        if let Some(l) = self.lanes.get_mut(lane) {
            *l = l.saturating_sub(bytes);
        }
    }

    /// The largest insert (in-memory bytes) a lane may gather so that every
    /// lane can hold one insert in flight (its rows and its encoded body)
    /// and gather the next one without exhausting the budget.
    pub fn insert_bytes_per_lane(&self, lanes: usize) -> usize {
        let share = self.limit / (3 * lanes.max(1) as u64);
        usize::try_from(share).unwrap_or(usize::MAX).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_until_the_limit_then_none_until_released() {
        let mut b = Budget::new(100);
        assert!(b.has_room());
        b.charge(0, 60);
        assert!(b.has_room());
        b.charge(0, 60); // one message may go over
        assert!(!b.has_room());
        assert_eq!(b.used(), 120);
        b.release(0, 60);
        assert!(b.has_room());
        b.release(0, 60);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn a_message_larger_than_the_budget_still_passes_alone() {
        let mut b = Budget::new(10);
        assert!(b.has_room_for(0));
        b.charge(0, 1_000);
        assert!(!b.has_room());
        b.release(0, 1_000);
        assert!(b.has_room_for(0));
    }

    #[test]
    fn a_stuck_lane_cannot_take_the_whole_budget() {
        let mut b = Budget::new(1_000);
        b.set_lanes(4); // share 250 each
        b.charge(2, 240);
        assert!(b.has_room_for(2));
        b.charge(2, 20);
        assert!(!b.has_room_for(2), "lane 2 is over its share");
        assert!(
            b.has_room_for(0) && b.has_room_for(3),
            "the others still flow"
        );
        assert_eq!(b.held_by(2), 260);
        b.release(2, 260);
        assert!(b.has_room_for(2));
    }

    #[test]
    fn insert_share_leaves_room_for_gathering_and_in_flight() {
        let b = Budget::new(512 << 20);
        assert_eq!(b.insert_bytes_per_lane(2), (512 << 20) / 6);
        assert_eq!(Budget::new(3).insert_bytes_per_lane(4), 1);
    }
}
