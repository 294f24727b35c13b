//! Offset bookkeeping across assignments, acknowledged inserts and commits.
//!
//! Invariants (README, "Delivery guarantees"):
//! - an offset is committed only after every row before it is stored (the
//!   lanes report [`OffsetBook::stored`] only for acknowledged inserts);
//! - nothing known about a partition survives its revocation: when it comes
//!   back (to this member or after a restart) its offsets start from what
//!   the broker or ClickHouse says, never from a stale local value, so a
//!   committed offset never moves backwards;
//! - a commit counts as done only when the broker confirmed it; a failed
//!   commit is sent again;
//! - work done under an earlier assignment of a partition (an older
//!   generation) is not accounted to the current one.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct PartBook {
    /// Assignment generation this partition belongs to.
    generation: u64,
    /// Everything before this offset is stored.
    stored: Option<i64>,
    /// Last offset the broker confirmed.
    committed: Option<i64>,
    /// Offset of a commit sent and not yet confirmed.
    committing: Option<i64>,
}

/// The consumer thread's view of its partitions' offsets.
#[derive(Debug, Default)]
pub struct OffsetBook {
    generation: u64,
    parts: BTreeMap<i32, PartBook>,
}

impl OffsetBook {
    /// Partitions `parts` are assigned (again). Whatever was known about
    /// them is forgotten. Returns the generation their messages carry.
    pub fn assign(&mut self, parts: impl IntoIterator<Item = i32>) -> u64 {
        self.generation += 1;
        for p in parts {
            self.parts.insert(
                p,
                PartBook {
                    generation: self.generation,
                    ..PartBook::default()
                },
            );
        }
        self.generation
    }

    /// Partitions `parts` are gone (revoked or lost).
    pub fn revoke(&mut self, parts: impl IntoIterator<Item = i32>) {
        for p in parts {
            self.parts.remove(&p);
        }
    }

    /// Every partition is gone; returns them.
    pub fn revoke_all(&mut self) -> Vec<i32> {
        let parts = self.owned();
        self.parts.clear();
        parts
    }

    /// The partitions currently owned.
    pub fn owned(&self) -> Vec<i32> {
        self.parts.keys().copied().collect()
    }

    /// Owned partitions with their generations.
    pub fn generations(&self) -> HashMap<i32, u64> {
        self.parts.iter().map(|(p, b)| (*p, b.generation)).collect()
    }

    /// The generation of an owned partition.
    pub fn generation_of(&self, partition: i32) -> Option<u64> {
        self.parts.get(&partition).map(|b| b.generation)
    }

    /// Everything of `partition` before `next` is stored, by work done
    /// under `generation`. Ignored (returns `false`) when the partition is
    /// not owned under that generation any more.
    pub fn stored(&mut self, partition: i32, generation: u64, next: i64) -> bool {
        match self.parts.get_mut(&partition) {
            Some(b) if b.generation == generation => {
                b.stored = Some(b.stored.map_or(next, |s| s.max(next)));
                true
            }
            _ => false,
        }
    }

    /// The stored offset of an owned partition.
    pub fn stored_offset(&self, partition: i32) -> Option<i64> {
        self.parts.get(&partition).and_then(|b| b.stored)
    }

    /// Offsets to commit asynchronously now: stored, not confirmed, and not
    /// already on their way. They are marked as on their way.
    pub fn commit_now(&mut self) -> Vec<(i32, i64)> {
        let mut out = Vec::new();
        for (p, b) in &mut self.parts {
            if let Some(s) = b.stored {
                if b.committed != Some(s) && b.committing != Some(s) {
                    b.committing = Some(s);
                    out.push((*p, s));
                }
            }
        }
        out
    }

    /// The broker answered a commit of `offset` for `partition`.
    pub fn commit_done(&mut self, partition: i32, offset: i64, ok: bool) {
        if let Some(b) = self.parts.get_mut(&partition) {
            if b.committing == Some(offset) {
                b.committing = None;
                if ok {
                    b.committed = Some(b.committed.map_or(offset, |c| c.max(offset)));
                }
            }
        }
    }

    /// Stored offsets the broker has not confirmed (whether or not a commit
    /// is on its way): what a synchronous commit must write before the
    /// partitions are handed over.
    pub fn unconfirmed(&self) -> Vec<(i32, i64)> {
        self.parts
            .iter()
            .filter_map(|(p, b)| match b.stored {
                Some(s) if b.committed != Some(s) => Some((*p, s)),
                _ => None,
            })
            .collect()
    }

    /// A synchronous commit of `offsets` succeeded.
    pub fn confirmed(&mut self, offsets: &[(i32, i64)]) {
        for (p, o) in offsets {
            if let Some(b) = self.parts.get_mut(p) {
                b.committed = Some(*o);
                if b.committing.is_some_and(|c| c <= *o) {
                    b.committing = None;
                }
            }
        }
    }
}

/// Which partitions (and generations) this member owns right now, shared
/// with the insert lanes: a lane never inserts or acknowledges rows of a
/// partition it does not own under the generation they were consumed in.
#[derive(Debug, Default)]
pub struct Ownership(Mutex<HashMap<i32, u64>>);

impl Ownership {
    /// Replaces the owned set.
    pub fn set(&self, owned: HashMap<i32, u64>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = owned;
    }

    /// Whether `partition` is owned under `generation`.
    pub fn owns(&self, partition: i32, generation: u64) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&partition)
            == Some(&generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_confirmed_progress_and_retries_failures() {
        let mut b = OffsetBook::default();
        let g = b.assign([0, 1]);
        assert!(b.commit_now().is_empty(), "nothing stored yet");
        assert!(b.stored(0, g, 10));
        assert_eq!(b.commit_now(), [(0, 10)]);
        assert!(b.commit_now().is_empty(), "already on its way");
        b.commit_done(0, 10, false);
        assert_eq!(b.commit_now(), [(0, 10)], "a failed commit is sent again");
        b.commit_done(0, 10, true);
        assert!(b.commit_now().is_empty());
        assert!(b.unconfirmed().is_empty());
        b.stored(0, g, 15);
        assert_eq!(b.unconfirmed(), [(0, 15)]);
        b.confirmed(&[(0, 15)]);
        assert!(b.unconfirmed().is_empty() && b.commit_now().is_empty());
    }

    #[test]
    fn a_commit_on_its_way_is_still_unconfirmed_at_revocation() {
        let mut b = OffsetBook::default();
        let g = b.assign([3]);
        b.stored(3, g, 7);
        assert_eq!(b.commit_now(), [(3, 7)]);
        // The revoke handler must not skip it: the broker has not answered.
        assert_eq!(b.unconfirmed(), [(3, 7)]);
    }

    #[test]
    fn a_partition_returning_to_its_former_owner_starts_clean() {
        // A drains p1 up to X = 100 and commits it; p1 moves to B, which
        // commits Y = 250; p1 comes back to A. A must not commit 100 again.
        let mut a = OffsetBook::default();
        let g1 = a.assign([1]);
        a.stored(1, g1, 100);
        a.confirmed(&a.unconfirmed());
        a.revoke([1]);
        assert!(a.unconfirmed().is_empty());
        let g2 = a.assign([1]);
        assert!(g2 > g1);
        assert_eq!(a.stored_offset(1), None);
        assert!(a.commit_now().is_empty(), "no stale offset is committed");
        // A late acknowledgement from the first ownership is ignored.
        assert!(!a.stored(1, g1, 120));
        assert!(a.commit_now().is_empty());
        // New progress under the new generation commits normally.
        assert!(a.stored(1, g2, 300));
        assert_eq!(a.commit_now(), [(1, 300)]);
    }

    #[test]
    fn a_late_commit_answer_after_reassignment_is_ignored() {
        let mut b = OffsetBook::default();
        let g = b.assign([0]);
        b.stored(0, g, 5);
        assert_eq!(b.commit_now(), [(0, 5)]);
        b.revoke([0]);
        let g2 = b.assign([0]);
        b.commit_done(0, 5, true); // answer to the first generation's commit
        b.stored(0, g2, 5);
        assert_eq!(
            b.commit_now(),
            [(0, 5)],
            "still committed by this generation"
        );
    }

    #[test]
    fn lost_partitions_take_their_progress_with_them() {
        let mut b = OffsetBook::default();
        let g = b.assign([0, 1]);
        b.stored(0, g, 9);
        assert_eq!(b.revoke_all(), [0, 1]);
        assert!(b.unconfirmed().is_empty());
        assert!(!b.stored(1, g, 4), "no acknowledgement after loss");
        assert!(b.owned().is_empty());
    }

    #[test]
    fn ownership_is_by_partition_and_generation() {
        let o = Ownership::default();
        o.set(HashMap::from([(0, 2), (1, 2)]));
        assert!(o.owns(0, 2));
        assert!(!o.owns(0, 1), "an older generation is not owned");
        assert!(!o.owns(5, 2));
        o.set(HashMap::new());
        assert!(!o.owns(0, 2));
    }
}
