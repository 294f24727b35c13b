//! The consumer's memory bound, in bytes.
//!
//! Every decoded message is charged when the consumer thread takes it from
//! Kafka and released when its insert is acknowledged (or it is dropped);
//! an encoded insert body is charged while it exists. The consumer thread
//! takes no new message while the budget is used up (it keeps serving
//! rebalances and commits), so the data held by the consumer stays within
//! the limit plus one message.

/// A byte budget: `used` against `limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    limit: u64,
    used: u64,
}

impl Budget {
    pub fn new(limit: u64) -> Self {
        Budget {
            limit: limit.max(1),
            used: 0,
        }
    }

    /// Whether another message may be taken. A message larger than the
    /// whole budget is still taken when nothing else is held, so progress
    /// never stops.
    pub fn has_room(&self) -> bool {
        self.used < self.limit
    }

    /// Bytes held now.
    pub fn used(&self) -> u64 {
        self.used
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn charge(&mut self, bytes: u64) {
        self.used = self.used.saturating_add(bytes);
    }

    pub fn release(&mut self, bytes: u64) {
        debug_assert!(bytes <= self.used, "releasing {bytes} of {}", self.used);
        self.used = self.used.saturating_sub(bytes);
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
        b.charge(60);
        assert!(b.has_room());
        b.charge(60); // one message may go over
        assert!(!b.has_room());
        assert_eq!(b.used(), 120);
        b.release(60);
        assert!(b.has_room());
        b.release(60);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn a_message_larger_than_the_budget_still_passes_alone() {
        let mut b = Budget::new(10);
        assert!(b.has_room());
        b.charge(1_000);
        assert!(!b.has_room());
        b.release(1_000);
        assert!(b.has_room());
    }

    #[test]
    fn insert_share_leaves_room_for_gathering_and_in_flight() {
        let b = Budget::new(512 << 20);
        assert_eq!(b.insert_bytes_per_lane(2), (512 << 20) / 6);
        assert_eq!(Budget::new(3).insert_bytes_per_lane(4), 1);
    }
}
