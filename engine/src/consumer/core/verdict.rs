//! Exactly-once decisions from what the table holds.
//!
//! Every row written in exactly-once mode carries its Kafka partition and
//! offset, the id of the insert it came with (per partition: the offset of
//! the insert's first message with rows, [`super::spans::Span::insert_id`])
//! and that insert's row count for the partition. ClickHouse stores an
//! insert atomically only per table partition (a block spanning several
//! days of a `PARTITION BY toYYYYMMDD(..)` table is written as several
//! parts), so after a crash or an unknown outcome an insert may be stored
//! completely, not at all, or in part. Counting the rows of an insert id and
//! comparing with the count they carry tells which.

use std::collections::HashMap;

use super::spans::InsertKey;

/// What the table holds of one insert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every row of every partition of the insert is stored.
    Complete,
    /// No row of it is stored.
    Absent,
    /// Some rows are stored and some are missing: the stored ones must be
    /// deleted before the insert is sent again.
    Partial {
        /// (insert, rows expected, rows found) of the partitions found short.
        short: Vec<(InsertKey, u64, u64)>,
    },
    /// More rows than were sent: something else wrote rows with these ids
    /// (two writers on one table, or a bug). Never repaired automatically.
    Excess {
        /// (insert, rows expected, rows found).
        over: Vec<(InsertKey, u64, u64)>,
    },
}

/// Judges an insert from the rows found per insert key. Keys missing from
/// `found` count as 0 rows.
pub fn verdict(expected: &[(InsertKey, u64)], found: &HashMap<InsertKey, u64>) -> Verdict {
    let mut over = Vec::new();
    let mut short = Vec::new();
    let mut complete = 0;
    let mut absent = 0;
    for (key, want) in expected {
        let got = found.get(key).copied().unwrap_or(0);
        if got > *want {
            over.push((*key, *want, got));
        } else if got == *want {
            complete += 1;
        } else {
            if got == 0 {
                absent += 1;
            }
            short.push((*key, *want, got));
        }
    }
    if !over.is_empty() {
        Verdict::Excess { over }
    } else if complete == expected.len() {
        Verdict::Complete
    } else if absent == expected.len() {
        Verdict::Absent
    } else {
        Verdict::Partial { short }
    }
}

/// The newest insert of one partition as found in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastInsert {
    /// Its insert id (`max(_velostream_insert)` of the partition).
    pub insert_id: i64,
    /// The row count its rows carry (`_velostream_insert_rows`); 0 for rows
    /// written before insert ids existed.
    pub expected_rows: u64,
    /// Rows of that insert id found.
    pub found_rows: u64,
    /// Highest offset stored for the partition.
    pub max_offset: i64,
}

/// Where a newly assigned partition resumes in exactly-once mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resume {
    /// Nothing of the partition is stored: from the beginning.
    Beginning,
    /// After the last stored message.
    At(i64),
    /// The newest insert is stored in part: delete its rows, then consume
    /// again from its first message with rows.
    Repair { insert_id: i64 },
    /// The newest insert holds more rows than it says: stop, naming it.
    Conflict(LastInsert),
}

/// Decides where to resume from the newest insert of a partition.
pub fn resume(last: Option<LastInsert>) -> Resume {
    let Some(l) = last else {
        return Resume::Beginning;
    };
    if l.expected_rows == 0 || l.found_rows == l.expected_rows {
        Resume::At(l.max_offset + 1)
    } else if l.found_rows < l.expected_rows {
        Resume::Repair {
            insert_id: l.insert_id,
        }
    } else {
        Resume::Conflict(l)
    }
}

/// The offset a partition resumes at when the table says "after `stored`"
/// (`None`: from the beginning): never before the group's `committed`
/// offset. Offsets are committed only once every message before them is
/// handled, so messages between the table's newest insert and the
/// committed offset were handled without rows (dead letters, 0-row
/// messages, rows the transform removed): read again, a dead letter would
/// be sent twice. Not for a repair: its insert was never acknowledged, so
/// no commit covers it.
pub fn floor_at_committed(stored: Option<i64>, committed: Option<i64>) -> Option<i64> {
    match (stored, committed) {
        (Some(s), Some(c)) => Some(s.max(c)),
        (s, c) => s.or(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(partition: i32, insert_id: i64) -> InsertKey {
        InsertKey {
            partition,
            insert_id,
        }
    }

    #[test]
    fn resuming_never_goes_back_before_the_committed_offset() {
        assert_eq!(
            floor_at_committed(Some(10), Some(12)),
            Some(12),
            "dead letters 10, 11"
        );
        assert_eq!(
            floor_at_committed(Some(10), Some(7)),
            Some(10),
            "commit behind the table"
        );
        assert_eq!(
            floor_at_committed(None, Some(3)),
            Some(3),
            "only dead letters so far"
        );
        assert_eq!(floor_at_committed(Some(4), None), Some(4));
        assert_eq!(floor_at_committed(None, None), None);
    }

    #[test]
    fn complete_absent_partial_and_excess() {
        let expected = [(key(0, 10), 100), (key(2, 40), 50)];
        let found = |pairs: &[(InsertKey, u64)]| pairs.iter().copied().collect::<HashMap<_, _>>();
        assert_eq!(
            verdict(&expected, &found(&[(key(0, 10), 100), (key(2, 40), 50)])),
            Verdict::Complete
        );
        assert_eq!(verdict(&expected, &found(&[])), Verdict::Absent);
        // One partition complete, the other missing: a partial insert.
        assert_eq!(
            verdict(&expected, &found(&[(key(0, 10), 100)])),
            Verdict::Partial {
                short: vec![(key(2, 40), 50, 0)]
            }
        );
        // Rows of a partition split over table partitions, one part missing.
        assert_eq!(
            verdict(&expected, &found(&[(key(0, 10), 60), (key(2, 40), 50)])),
            Verdict::Partial {
                short: vec![(key(0, 10), 100, 60)]
            }
        );
        assert_eq!(
            verdict(&expected, &found(&[(key(0, 10), 200), (key(2, 40), 50)])),
            Verdict::Excess {
                over: vec![(key(0, 10), 100, 200)]
            }
        );
    }

    #[test]
    fn an_insert_without_rows_is_complete() {
        assert_eq!(verdict(&[], &HashMap::new()), Verdict::Complete);
    }

    #[test]
    fn resume_points() {
        assert_eq!(resume(None), Resume::Beginning);
        let last = LastInsert {
            insert_id: 500,
            expected_rows: 30,
            found_rows: 30,
            max_offset: 520,
        };
        assert_eq!(resume(Some(last)), Resume::At(521));
        let partial = LastInsert {
            found_rows: 12,
            ..last
        };
        assert_eq!(resume(Some(partial)), Resume::Repair { insert_id: 500 });
        let legacy = LastInsert {
            expected_rows: 0,
            found_rows: 7,
            ..last
        };
        assert_eq!(
            resume(Some(legacy)),
            Resume::At(521),
            "rows from before insert ids"
        );
        let over = LastInsert {
            found_rows: 31,
            ..last
        };
        assert_eq!(resume(Some(over)), Resume::Conflict(over));
    }
}
