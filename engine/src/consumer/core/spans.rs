//! What one insert holds of each Kafka partition.
//!
//! Invariant: within one lane, messages of a partition arrive in offset
//! order, so an insert covers one contiguous offset range per partition and
//! the inserts of a partition never overlap. The exactly-once protocol names
//! an insert, per partition, by the offset of its first message that carries
//! rows ([`Span::insert_id`]): every row of that insert stores this id and
//! the partition's row count, so a partly stored insert can be recognised.

use std::collections::BTreeMap;

/// One partition's share of an insert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Offset of the first message of the partition in this insert (messages
    /// without rows included).
    pub first: i64,
    /// Offset of the last message.
    pub last: i64,
    /// Rows this insert writes for the partition.
    pub rows: u64,
    /// Offset of the first message that contributed rows; `None` when the
    /// insert writes nothing for this partition (dead letters, 0-row
    /// messages, rows removed by the transform or by source deduplication).
    pub insert_id: Option<i64>,
}

impl Span {
    /// The offset to commit once this insert and every earlier one are stored.
    pub fn next_offset(&self) -> i64 {
        self.last + 1
    }
}

/// The spans of one insert, by partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spans(BTreeMap<i32, Span>);

/// A partition's rows in an insert, as the exactly-once columns record them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InsertKey {
    pub partition: i32,
    /// [`Span::insert_id`].
    pub insert_id: i64,
}

impl Spans {
    /// Records a message of `rows` rows at `offset` of `partition`.
    ///
    /// Messages of one partition must come in increasing offset order.
    pub fn add(&mut self, partition: i32, offset: i64, rows: u64) {
        let span = self.0.entry(partition).or_insert(Span {
            first: offset,
            last: offset,
            rows: 0,
            insert_id: None,
        });
        debug_assert!(
            offset >= span.last,
            "partition {partition}: offset {offset} after {}",
            span.last
        );
        span.last = span.last.max(offset);
        if rows > 0 {
            span.rows += rows;
            span.insert_id.get_or_insert(offset);
        }
    }

    /// Whether no message is recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Rows over all partitions.
    pub fn rows(&self) -> u64 {
        self.0.values().map(|s| s.rows).sum()
    }

    /// The span of `partition`.
    pub fn get(&self, partition: i32) -> Option<&Span> {
        self.0.get(&partition)
    }

    /// Every (partition, span), by partition.
    pub fn iter(&self) -> impl Iterator<Item = (i32, &Span)> {
        self.0.iter().map(|(p, s)| (*p, s))
    }

    /// The partitions covered.
    pub fn partitions(&self) -> impl Iterator<Item = i32> + '_ {
        self.0.keys().copied()
    }

    /// What the table must hold after this insert: for each partition with
    /// rows, its insert key and row count. Partitions without rows are left
    /// out (nothing of them can be found or missed).
    pub fn expected(&self) -> Vec<(InsertKey, u64)> {
        self.0
            .iter()
            .filter_map(|(p, s)| {
                s.insert_id.map(|id| {
                    (
                        InsertKey {
                            partition: *p,
                            insert_id: id,
                        },
                        s.rows,
                    )
                })
            })
            .collect()
    }

    /// A short text naming the ranges, for logs, errors and query ids:
    /// `p0=10-19,p3=4-4`.
    pub fn label(&self) -> String {
        self.0
            .iter()
            .map(|(p, s)| format!("p{p}={}-{}", s.first, s.last))
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_id_is_the_first_message_with_rows() {
        let mut s = Spans::default();
        s.add(1, 10, 0); // a dead letter or 0-row message
        s.add(1, 11, 5);
        s.add(1, 12, 7);
        s.add(3, 4, 0);
        let p1 = s.get(1).unwrap();
        assert_eq!(
            (p1.first, p1.last, p1.rows, p1.insert_id),
            (10, 12, 12, Some(11))
        );
        assert_eq!(p1.next_offset(), 13);
        let p3 = s.get(3).unwrap();
        assert_eq!((p3.rows, p3.insert_id, p3.next_offset()), (0, None, 5));
        assert_eq!(s.rows(), 12);
        assert_eq!(
            s.expected(),
            vec![(
                InsertKey {
                    partition: 1,
                    insert_id: 11
                },
                12
            )],
            "a partition that only skipped messages expects nothing"
        );
        assert_eq!(s.label(), "p1=10-12,p3=4-4");
    }

    #[test]
    fn an_insert_of_only_skipped_messages_expects_nothing() {
        let mut s = Spans::default();
        s.add(0, 7, 0);
        s.add(2, 9, 0);
        assert!(s.expected().is_empty());
        assert_eq!(s.rows(), 0);
        assert!(!s.is_empty());
        assert_eq!(s.partitions().collect::<Vec<_>>(), [0, 2]);
    }
}
