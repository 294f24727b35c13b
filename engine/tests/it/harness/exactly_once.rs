//! The exactly-once check: every message of the topic is stored once, whole.
//!
//! Reads every message of the topic (partition, offset, and its rows: the
//! `velostream.rows` header, or the decoded value), counts the rows the
//! table stored per `(_velostream_partition, _velostream_offset)`, and fails
//! listing the first differences when a message's rows are missing, partly
//! stored or stored more than once, or when rows are stored for an offset
//! that holds no message. Messages expected to store nothing (dead letters)
//! are named by the test.
//!
//! [`differences`] is the decision, without I/O; [`ExactlyOnce::assert`]
//! the shell around it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::clickhouse::ch_query;
use super::kafka::{read_topic, Until};

/// A message's place: (partition, offset).
pub type At = (i32, i64);

/// How many differences a failure lists.
const SHOWN: usize = 20;

/// One way a table differs from its topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// None of the message's rows is stored.
    Missing {
        /// The message.
        at: At,
        /// Its rows.
        rows: u64,
    },
    /// Some of the message's rows are stored, not all.
    Partial {
        /// The message.
        at: At,
        /// Its rows.
        rows: u64,
        /// Rows stored for it.
        stored: u64,
    },
    /// More rows stored than the message holds (stored twice or more).
    Duplicated {
        /// The message.
        at: At,
        /// Its rows (0 for a message that must store nothing).
        rows: u64,
        /// Rows stored for it.
        stored: u64,
    },
    /// Rows stored for a (partition, offset) that holds no message.
    NoSuchMessage {
        /// The (partition, offset) the rows name.
        at: At,
        /// Rows stored for it.
        stored: u64,
    },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = |(p, o): &At| format!("partition {p} offset {o}");
        match self {
            Difference::Missing { at, rows } => {
                write!(
                    f,
                    "{}: missing (the message has {rows} rows, none stored)",
                    place(at)
                )
            }
            Difference::Partial { at, rows, stored } => write!(
                f,
                "{}: partial ({stored} of the message's {rows} rows stored)",
                place(at)
            ),
            Difference::Duplicated { at, rows, stored } => write!(
                f,
                "{}: duplicated ({stored} rows stored, the message has {rows})",
                place(at)
            ),
            Difference::NoSuchMessage { at, stored } => write!(
                f,
                "{}: {stored} rows stored, but the topic has no such message",
                place(at)
            ),
        }
    }
}

/// Every difference between the rows each message holds (`expected`) and
/// the rows stored per (partition, offset) (`stored`), in (partition,
/// offset) order. A message of 0 rows may be absent from `stored`.
pub fn differences(expected: &BTreeMap<At, u64>, stored: &BTreeMap<At, u64>) -> Vec<Difference> {
    let places: BTreeSet<&At> = expected.keys().chain(stored.keys()).collect();
    places
        .into_iter()
        .filter_map(|&at| {
            let got = stored.get(&at).copied().unwrap_or(0);
            match expected.get(&at).copied() {
                None => Some(Difference::NoSuchMessage { at, stored: got }),
                Some(rows) if got == rows => None,
                Some(rows) if got == 0 => Some(Difference::Missing { at, rows }),
                Some(rows) if got < rows => Some(Difference::Partial {
                    at,
                    rows,
                    stored: got,
                }),
                Some(rows) => Some(Difference::Duplicated {
                    at,
                    rows,
                    stored: got,
                }),
            }
        })
        .collect()
}

/// The exactly-once check of one table against its topic; see the module
/// docs. Built by [`exactly_once`].
#[derive(Debug)]
pub struct ExactlyOnce {
    url: String,
    table: String,
    brokers: String,
    topic: String,
    messages: Option<u64>,
    dead_letters: BTreeSet<At>,
}

/// Checks `table` (on the ClickHouse at `url`) against `topic` (at `brokers`).
pub fn exactly_once(url: &str, table: &str, brokers: &str, topic: &str) -> ExactlyOnce {
    ExactlyOnce {
        url: url.to_string(),
        table: table.to_string(),
        brokers: brokers.to_string(),
        topic: topic.to_string(),
        messages: None,
        dead_letters: BTreeSet::new(),
    }
}

impl ExactlyOnce {
    /// The topic holds `n` messages: read until then (and fail if it holds
    /// more). Without it, the topic is read until it stays quiet for 3 s.
    pub fn messages(mut self, n: u64) -> ExactlyOnce {
        self.messages = Some(n);
        self
    }

    /// Messages that must store nothing (they went to the dead-letter topic).
    pub fn dead_letters(mut self, at: impl IntoIterator<Item = At>) -> ExactlyOnce {
        self.dead_letters.extend(at);
        self
    }

    /// Fails listing the first differences; returns (messages, rows) checked.
    pub fn assert(&self) -> (u64, u64) {
        let expected = self.expected();
        let stored = self.stored();
        let diffs = differences(&expected, &stored);
        let rows: u64 = expected.values().sum();
        assert!(
            diffs.is_empty(),
            "exactly-once: {} differs from topic {} ({} messages, {rows} rows) at {} places; first:\n{}",
            self.table,
            self.topic,
            expected.len(),
            diffs.len(),
            diffs
                .iter()
                .take(SHOWN)
                .map(|d| format!("  {d}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        (expected.len() as u64, rows)
    }

    /// Rows per message of the topic (0 for the dead letters).
    fn expected(&self) -> BTreeMap<At, u64> {
        let until = match self.messages {
            Some(n) => Until::Messages(n as usize),
            None => Until::Quiet(std::time::Duration::from_secs(3)),
        };
        let messages = read_topic(&self.brokers, &self.topic, until);
        if let Some(n) = self.messages {
            assert_eq!(messages.len() as u64, n, "messages in {}", self.topic);
        }
        messages
            .iter()
            .map(|m| {
                let at = (m.partition, m.offset);
                let rows = if self.dead_letters.contains(&at) {
                    0
                } else {
                    m.rows()
                        .unwrap_or_else(|e| panic!("exactly-once check: {e}"))
                };
                (at, rows)
            })
            .collect()
    }

    /// Rows stored per (partition, offset).
    fn stored(&self) -> BTreeMap<At, u64> {
        // Column names, not positions: 18.16 groups `BY 1, 2` by constants.
        let text = ch_query(
            &self.url,
            &format!(
                "SELECT _velostream_partition, _velostream_offset, count() FROM {} \
                 GROUP BY _velostream_partition, _velostream_offset FORMAT TSV",
                self.table
            ),
        );
        text.lines()
            .map(|line| {
                let f: Vec<&str> = line.split('\t').collect();
                let n = |i: usize| -> i64 {
                    f.get(i)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or_else(|| panic!("{}: bad line {line:?}", self.table))
                };
                ((n(0) as i32, n(1)), n(2) as u64)
            })
            .collect()
    }
}
