//! File-to-table exactly-once: which source slices a partition holds.
//!
//! The producer marks every message with the fingerprint of the Parquet
//! file it came from and its slice (row group and slice within it), and
//! sends a given slice to the same partition on every run. In exactly-once
//! mode each row stores both, so when `produce` is run again over the same
//! files (a retried orchestration task), a lane skips every message whose
//! slice its partition already holds or is about to insert. The stored
//! slices of a file are read from the table once per partition and
//! assignment, the first time the file is seen.

use std::collections::{HashMap, HashSet};

/// The source of a message: file fingerprint and slice id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SourceSlice {
    pub file: u64,
    pub slice: u64,
}

#[derive(Debug)]
struct Known {
    generation: u64,
    slices: HashSet<u64>,
    /// Last use, for eviction.
    tick: u64,
}

/// Known slices per (partition, file), for one lane.
#[derive(Debug, Default)]
pub struct SourceIndex {
    known: HashMap<(i32, u64), Known>,
    tick: u64,
}

/// Files remembered per lane before the least recently used is forgotten
/// (and read again from the table when it shows up again).
const MAX_FILES: usize = 4096;

impl SourceIndex {
    /// Whether the stored slices of `file` in `partition` must be read from
    /// the table before a message of it can be judged.
    pub fn needs_load(&self, partition: i32, generation: u64, file: u64) -> bool {
        self.known
            .get(&(partition, file))
            .is_none_or(|k| k.generation != generation)
    }

    /// Records what the table holds of `file` in `partition`.
    pub fn load(
        &mut self,
        partition: i32,
        generation: u64,
        file: u64,
        slices: impl IntoIterator<Item = u64>,
    ) {
        self.tick += 1;
        if self.known.len() >= MAX_FILES {
            if let Some(oldest) = self
                .known
                .iter()
                .min_by_key(|(_, k)| k.tick)
                .map(|(key, _)| *key)
            {
                self.known.remove(&oldest);
            }
        }
        self.known.insert(
            (partition, file),
            Known {
                generation,
                slices: slices.into_iter().collect(),
                tick: self.tick,
            },
        );
    }

    /// Claims `source` for an insert of `partition`: `false` when the
    /// partition holds it already (stored or claimed by an earlier
    /// message). Must follow a [`load`](Self::load) of its file.
    pub fn claim(&mut self, partition: i32, source: SourceSlice) -> bool {
        self.tick += 1;
        match self.known.get_mut(&(partition, source.file)) {
            Some(k) => {
                k.tick = self.tick;
                k.slices.insert(source.slice)
            }
            None => {
                debug_assert!(false, "claim before load");
                true
            }
        }
    }

    /// A claimed slice was not stored after all (its message went to the
    /// dead-letter topic).
    pub fn unclaim(&mut self, partition: i32, source: SourceSlice) {
        if let Some(k) = self.known.get_mut(&(partition, source.file)) {
            k.slices.remove(&source.slice);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(file: u64, slice: u64) -> SourceSlice {
        SourceSlice { file, slice }
    }

    #[test]
    fn a_slice_is_inserted_once_per_partition() {
        let mut ix = SourceIndex::default();
        assert!(ix.needs_load(0, 1, 7));
        ix.load(0, 1, 7, [1, 2]); // slices 1 and 2 of file 7 are stored
        assert!(!ix.needs_load(0, 1, 7));
        assert!(!ix.claim(0, s(7, 1)), "stored already");
        assert!(ix.claim(0, s(7, 3)), "new slice");
        assert!(!ix.claim(0, s(7, 3)), "a second copy in the same run");
        ix.unclaim(0, s(7, 3));
        assert!(ix.claim(0, s(7, 3)), "a dead-lettered slice may come again");
    }

    #[test]
    fn a_new_assignment_reads_the_table_again() {
        let mut ix = SourceIndex::default();
        ix.load(0, 1, 7, []);
        assert!(ix.claim(0, s(7, 1)));
        assert!(
            ix.needs_load(0, 2, 7),
            "another member may have written meanwhile"
        );
        assert!(ix.needs_load(1, 1, 7), "partitions are independent");
    }

    #[test]
    fn forgets_the_least_recently_used_file_beyond_the_limit() {
        let mut ix = SourceIndex::default();
        for f in 0..MAX_FILES as u64 {
            ix.load(0, 1, f, []);
        }
        ix.claim(0, s(0, 1)); // file 0 is used again
        ix.load(0, 1, 999_999, []);
        assert!(!ix.needs_load(0, 1, 0));
        assert!(ix.needs_load(0, 1, 1), "file 1 was the oldest");
    }
}
