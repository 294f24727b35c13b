//! What `velostream status` reports, computed from plain observations
//! without I/O: per-partition lag in messages and rows, whether ClickHouse's
//! stored offsets have caught up, and whether the group is drained.
//!
//! The high watermark used for lag is the one a **fetch response** carries
//! (see [`PartitionObservation::fetched_high`]): it is right on real Kafka
//! and on tansu 0.6, whose ListOffsets answer is wrong when one produce
//! batch held several records. The ListOffsets value is kept for display.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Serialize;

use super::assignment::TopicAssignment;

/// One pending message seen by the probe: its offset and the
/// `velostream.rows` header, when it has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub offset: i64,
    pub rows: Option<u64>,
}

/// Everything the Kafka side observed about one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionObservation {
    pub partition: i32,
    /// The group's committed offset (`None`: nothing committed yet).
    pub committed: Option<i64>,
    /// The first offset still in the log.
    pub log_start: i64,
    /// High watermark as ListOffsets reports it (wrong on tansu 0.6 after
    /// multi-record batches; shown, not used).
    pub listed_high: i64,
    /// High watermark from a fetch response at the group's position.
    pub fetched_high: i64,
    /// Pending messages read from the group's position (at most the probe's bound).
    pub samples: Vec<Sample>,
}

impl PartitionObservation {
    /// Where the group resumes: the committed offset, or the log start when
    /// nothing is committed (the consumer uses `auto.offset.reset=earliest`)
    /// or the committed offset was deleted by retention.
    pub fn position(&self) -> i64 {
        self.committed.unwrap_or(self.log_start).max(self.log_start)
    }

    /// Messages between the group's position and the high watermark.
    pub fn lag_messages(&self) -> u64 {
        u64::try_from(self.fetched_high - self.position()).unwrap_or(0)
    }

    /// The distinct samples inside `[position, high watermark)`, by offset.
    fn pending_samples(&self) -> Vec<Sample> {
        let (lo, hi) = (self.position(), self.fetched_high);
        let mut seen = BTreeSet::new();
        let mut out: Vec<Sample> = self
            .samples
            .iter()
            .filter(|s| s.offset >= lo && s.offset < hi && seen.insert(s.offset))
            .copied()
            .collect();
        out.sort_by_key(|s| s.offset);
        out
    }
}

/// Rows waiting in a partition (or a sum of partitions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowLag {
    /// Counted from the `velostream.rows` header of every pending message.
    Exact(u64),
    /// Rows per message of the messages read, times the pending messages.
    Estimated(u64),
    /// No pending message carrying a row count could be read.
    Unknown,
}

impl RowLag {
    /// The row lag of `lag` pending messages of which `samples` were read.
    pub fn from_samples(lag: u64, samples: &[Sample]) -> RowLag {
        if lag == 0 {
            return RowLag::Exact(0);
        }
        let counted: Vec<u64> = samples.iter().filter_map(|s| s.rows).collect();
        if counted.is_empty() {
            return RowLag::Unknown;
        }
        let sum: u64 = counted.iter().sum();
        if counted.len() == samples.len() && samples.len() as u64 == lag {
            RowLag::Exact(sum)
        } else {
            let per_message = sum as f64 / counted.len() as f64;
            RowLag::Estimated((per_message * lag as f64).round() as u64)
        }
    }

    /// The sum of two row lags: unknown wins, then estimated.
    pub fn plus(self, other: RowLag) -> RowLag {
        use RowLag::*;
        match (self, other) {
            (Unknown, _) | (_, Unknown) => Unknown,
            (Exact(a), Exact(b)) => Exact(a + b),
            (Exact(a) | Estimated(a), Exact(b) | Estimated(b)) => Estimated(a + b),
        }
    }

    /// The number, if known.
    pub fn rows(self) -> Option<u64> {
        match self {
            RowLag::Exact(n) | RowLag::Estimated(n) => Some(n),
            RowLag::Unknown => None,
        }
    }

    pub fn is_estimated(self) -> bool {
        matches!(self, RowLag::Estimated(_))
    }

    /// `123`, `~123 (estimated)` or `unknown`.
    pub fn describe(self) -> String {
        match self {
            RowLag::Exact(n) => n.to_string(),
            RowLag::Estimated(n) => format!("~{n} (estimated)"),
            RowLag::Unknown => "unknown".into(),
        }
    }
}

/// The status of one partition.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PartitionStatus {
    pub partition: i32,
    pub committed_offset: Option<i64>,
    /// The offset the group resumes from.
    pub position: i64,
    /// From a fetch response (used for lag).
    pub high_watermark: i64,
    /// From ListOffsets (informational; wrong on tansu 0.6 after multi-record batches).
    pub listed_high_watermark: i64,
    pub lag_messages: u64,
    /// `null` when unknown.
    pub lag_rows: Option<u64>,
    pub lag_rows_estimated: bool,
    /// Member id that owns the partition, if any.
    pub owner: Option<String>,
    /// Next offset according to the rows stored in ClickHouse
    /// (`max(_velostream_offset) + 1`), exactly-once tables only.
    pub stored_offset: Option<i64>,
    /// Committed messages whose rows ClickHouse does not show (exactly-once tables only).
    pub stored_behind: Option<u64>,
    pub drained: bool,
    #[serde(skip)]
    pub row_lag: RowLag,
}

/// A member of the consumer group and what it owns of the topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Member {
    pub id: String,
    pub client_id: String,
    pub host: String,
    /// Partitions of the status topic assigned to this member.
    pub partitions: Vec<i32>,
    /// The member's whole assignment (every topic; empty when not decodable).
    pub assignment: Vec<TopicAssignment>,
    /// Why the assignment could not be decoded, if it could not.
    pub assignment_error: Option<String>,
}

/// The table side: row count and, for exactly-once tables, stored offsets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TableObservation {
    pub table: String,
    pub exists: bool,
    pub rows: u64,
    /// Whether the table has the `_velostream_partition`/`_velostream_offset` columns.
    pub exactly_once: bool,
    /// Next offset per partition from the stored rows (exactly-once tables).
    #[serde(skip)]
    pub stored: Vec<(i32, i64)>,
}

/// Everything `status` reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Snapshot {
    pub topic: String,
    pub group: String,
    pub group_state: String,
    pub members: Vec<Member>,
    pub partitions: Vec<PartitionStatus>,
    pub lag_messages: u64,
    pub lag_rows: Option<u64>,
    pub lag_rows_estimated: bool,
    pub table: Option<TableObservation>,
    pub drained: bool,
}

/// One partition that is not drained, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Behind {
    pub partition: i32,
    pub lag_messages: u64,
    pub row_lag: RowLag,
    /// (stored next offset, committed offset) when ClickHouse is behind the group.
    pub stored: Option<(Option<i64>, i64)>,
}

impl std::fmt::Display for Behind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "partition {}:", self.partition)?;
        if self.lag_messages > 0 {
            write!(
                f,
                " {} message(s), {} row(s) not consumed",
                self.lag_messages,
                self.row_lag.describe()
            )?;
        }
        if let Some((stored, committed)) = self.stored {
            if self.lag_messages > 0 {
                f.write_str(";")?;
            }
            match stored {
                Some(s) => write!(
                    f,
                    " ClickHouse holds offsets up to {} but the group committed {committed}",
                    s - 1
                )?,
                None => write!(
                    f,
                    " ClickHouse holds no rows of it but the group committed {committed}"
                )?,
            }
        }
        Ok(())
    }
}

impl Snapshot {
    /// Builds the report from the observations.
    pub fn build(
        topic: &str,
        group: &str,
        group_state: &str,
        members: Vec<Member>,
        observations: &[PartitionObservation],
        table: Option<TableObservation>,
    ) -> Snapshot {
        let partitions: Vec<PartitionStatus> = observations
            .iter()
            .map(|o| partition_status(o, &members, table.as_ref()))
            .collect();
        let lag_messages = partitions.iter().map(|p| p.lag_messages).sum();
        let row_lag = partitions
            .iter()
            .fold(RowLag::Exact(0), |acc, p| acc.plus(p.row_lag));
        let drained = partitions.iter().all(|p| p.drained);
        Snapshot {
            topic: topic.to_string(),
            group: group.to_string(),
            group_state: group_state.to_string(),
            members,
            partitions,
            lag_messages,
            lag_rows: row_lag.rows(),
            lag_rows_estimated: row_lag.is_estimated(),
            table,
            drained,
        }
    }

    /// The total row lag.
    pub fn row_lag(&self) -> RowLag {
        self.partitions
            .iter()
            .fold(RowLag::Exact(0), |acc, p| acc.plus(p.row_lag))
    }

    /// The partitions that are not drained.
    pub fn behind(&self) -> Vec<Behind> {
        self.partitions
            .iter()
            .filter(|p| !p.drained)
            .map(|p| Behind {
                partition: p.partition,
                lag_messages: p.lag_messages,
                row_lag: p.row_lag,
                stored: p
                    .stored_behind
                    .filter(|&n| n > 0)
                    .and_then(|_| p.committed_offset.map(|c| (p.stored_offset, c))),
            })
            .collect()
    }

    /// The human-readable report: the partition table, then notes,
    /// members, the table and the verdict.
    pub fn render(&self) -> String {
        let mut s = self.render_partitions();
        self.render_details(&mut s);
        s
    }

    fn render_partitions(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "topic {}, group {} (state {}, {} member(s))",
            self.topic,
            self.group,
            if self.group_state.is_empty() {
                "unknown"
            } else {
                &self.group_state
            },
            self.members.len()
        );
        let _ = writeln!(
            s,
            "{:>9}  {:>12}  {:>14}  {:>12}  {:>22}  {:>13}  owner",
            "partition", "committed", "high_watermark", "lag_messages", "lag_rows", "stored_offset"
        );
        for p in &self.partitions {
            let _ = writeln!(
                s,
                "{:>9}  {:>12}  {:>14}  {:>12}  {:>22}  {:>13}  {}",
                p.partition,
                opt(p.committed_offset),
                p.high_watermark,
                p.lag_messages,
                p.row_lag.describe(),
                opt(p.stored_offset),
                p.owner.as_deref().unwrap_or("-")
            );
        }
        let _ = writeln!(
            s,
            "lag: {} message(s), {} row(s)",
            self.lag_messages,
            self.row_lag().describe()
        );
        s
    }

    fn render_details(&self, s: &mut String) {
        let differs: Vec<String> = self
            .partitions
            .iter()
            .filter(|p| p.listed_high_watermark != p.high_watermark)
            .map(|p| {
                format!(
                    "{} (listed {}, fetched {})",
                    p.partition, p.listed_high_watermark, p.high_watermark
                )
            })
            .collect();
        if !differs.is_empty() {
            let _ = writeln!(
                s,
                "note: the broker's ListOffsets high watermark differs from its fetch responses on \
                 partition(s) {}; lag uses the fetch responses",
                differs.join(", ")
            );
        }
        for m in &self.members {
            let assignment = match &m.assignment_error {
                None => format!("partitions {:?}", m.partitions),
                Some(e) => format!("assignment not decodable: {e}"),
            };
            let _ = writeln!(
                s,
                "member {} (client {}, host {}): {assignment}",
                m.id, m.client_id, m.host
            );
        }
        match &self.table {
            Some(t) if t.exists => {
                let eo = if t.exactly_once {
                    ", exactly-once (stored offsets shown)"
                } else {
                    ""
                };
                let _ = writeln!(s, "table {}: {} row(s){eo}", t.table, t.rows);
            }
            Some(t) => {
                let _ = writeln!(s, "table {}: does not exist", t.table);
            }
            None => {}
        }
        if self.drained {
            let _ = writeln!(s, "drained: yes");
        } else {
            let parts: Vec<String> = self.behind().iter().map(|b| b.to_string()).collect();
            let _ = writeln!(s, "drained: no ({})", parts.join("; "));
        }
    }
}

fn opt(v: Option<i64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

fn partition_status(
    o: &PartitionObservation,
    members: &[Member],
    table: Option<&TableObservation>,
) -> PartitionStatus {
    let lag_messages = o.lag_messages();
    let row_lag = RowLag::from_samples(lag_messages, &o.pending_samples());
    let owner = members
        .iter()
        .find(|m| m.partitions.contains(&o.partition))
        .map(|m| m.id.clone());
    let (stored_offset, stored_behind) = match table {
        Some(t) if t.exactly_once => {
            let stored = t
                .stored
                .iter()
                .find(|(p, _)| *p == o.partition)
                .map(|&(_, next)| next);
            // Without stored rows the table is at the log start; an offset
            // committed beyond it must have stored rows.
            let next = stored.unwrap_or(o.log_start);
            let behind = o
                .committed
                .map_or(0, |c| u64::try_from(c - next).unwrap_or(0));
            (stored, Some(behind))
        }
        _ => (None, None),
    };
    PartitionStatus {
        partition: o.partition,
        committed_offset: o.committed,
        position: o.position(),
        high_watermark: o.fetched_high,
        listed_high_watermark: o.listed_high,
        lag_messages,
        lag_rows: row_lag.rows(),
        lag_rows_estimated: row_lag.is_estimated(),
        owner,
        stored_offset,
        stored_behind,
        drained: lag_messages == 0 && stored_behind.unwrap_or(0) == 0,
        row_lag,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(partition: i32, committed: Option<i64>, high: i64) -> PartitionObservation {
        PartitionObservation {
            partition,
            committed,
            log_start: 0,
            listed_high: high,
            fetched_high: high,
            samples: Vec::new(),
        }
    }

    fn samples(range: std::ops::Range<i64>, rows: u64) -> Vec<Sample> {
        range
            .map(|offset| Sample {
                offset,
                rows: Some(rows),
            })
            .collect()
    }

    #[test]
    fn lag_is_fetched_high_watermark_minus_position() {
        let mut o = obs(0, Some(12), 15);
        o.listed_high = 11; // tansu's ListOffsets after a 10-record batch
        assert_eq!(o.lag_messages(), 3);
        // Nothing committed: the group starts at the log start.
        let mut o = obs(0, None, 15);
        o.log_start = 4;
        assert_eq!((o.position(), o.lag_messages()), (4, 11));
        // Committed beyond the watermark (e.g. a broker that lost data): no lag.
        assert_eq!(obs(0, Some(20), 15).lag_messages(), 0);
        // Committed below the log start (retention): resumes at the log start.
        let mut o = obs(0, Some(2), 10);
        o.log_start = 5;
        assert_eq!(o.lag_messages(), 5);
    }

    #[test]
    fn rows_are_exact_when_every_pending_message_was_read() {
        let mut o = obs(0, Some(10), 15);
        o.samples = samples(10..15, 1000);
        // Duplicates and messages outside [position, high) are ignored.
        o.samples.extend(samples(10..12, 1000));
        o.samples.extend(samples(3..5, 7));
        let s = Snapshot::build("t", "g", "Stable", vec![], &[o], None);
        assert_eq!(s.partitions[0].row_lag, RowLag::Exact(5000));
        assert_eq!((s.lag_rows, s.lag_rows_estimated), (Some(5000), false));
    }

    #[test]
    fn rows_are_estimated_from_a_bounded_sample_and_marked() {
        assert_eq!(
            RowLag::from_samples(100, &samples(0..10, 250)),
            RowLag::Estimated(25_000)
        );
        // Some messages without the header: estimated from those with it.
        let mut s = samples(0..2, 100);
        s.push(Sample {
            offset: 2,
            rows: None,
        });
        assert_eq!(RowLag::from_samples(3, &s), RowLag::Estimated(300));
        assert_eq!(RowLag::from_samples(3, &[]), RowLag::Unknown);
        assert_eq!(RowLag::from_samples(0, &[]), RowLag::Exact(0));
        assert_eq!(
            RowLag::Exact(1).plus(RowLag::Estimated(2)),
            RowLag::Estimated(3)
        );
        assert_eq!(RowLag::Exact(1).plus(RowLag::Unknown), RowLag::Unknown);
        assert_eq!(RowLag::Estimated(7).describe(), "~7 (estimated)");
    }

    #[test]
    fn drained_needs_zero_lag_on_every_partition() {
        let s = Snapshot::build(
            "t",
            "g",
            "Stable",
            vec![],
            &[obs(0, Some(5), 5), obs(1, Some(3), 9)],
            None,
        );
        assert!(!s.drained);
        let behind = s.behind();
        assert_eq!(behind.len(), 1);
        assert_eq!(behind[0].partition, 1);
        assert_eq!(
            behind[0].to_string(),
            "partition 1: 6 message(s), unknown row(s) not consumed"
        );
        let s = Snapshot::build("t", "g", "Empty", vec![], &[obs(0, Some(5), 5)], None);
        assert!(s.drained && s.behind().is_empty());
    }

    fn table(stored: Vec<(i32, i64)>) -> TableObservation {
        TableObservation {
            table: "db.t".into(),
            exists: true,
            rows: 10,
            exactly_once: true,
            stored,
        }
    }

    #[test]
    fn exactly_once_tables_must_have_caught_up_with_the_commits() {
        let parts = [obs(0, Some(5), 5), obs(1, Some(9), 9), obs(2, None, 0)];
        let s = Snapshot::build(
            "t",
            "g",
            "",
            vec![],
            &parts,
            Some(table(vec![(0, 5), (1, 7)])),
        );
        assert!(!s.drained);
        assert_eq!(s.partitions[0].stored_behind, Some(0));
        assert_eq!(s.partitions[1].stored_behind, Some(2));
        assert_eq!(s.partitions[2].stored_behind, Some(0));
        let b = s.behind();
        assert_eq!(b.len(), 1);
        assert_eq!(
            b[0].to_string(),
            "partition 1: ClickHouse holds offsets up to 6 but the group committed 9"
        );
        // No stored rows at all while the group committed.
        let s = Snapshot::build("t", "g", "", vec![], &parts[..1], Some(table(vec![])));
        assert_eq!(
            s.behind()[0].to_string(),
            "partition 0: ClickHouse holds no rows of it but the group committed 5"
        );
        // A plain (at-least-once) table only reports its row count.
        let mut plain = table(vec![]);
        plain.exactly_once = false;
        let s = Snapshot::build("t", "g", "", vec![], &parts[..1], Some(plain));
        assert!(s.drained && s.partitions[0].stored_behind.is_none());
    }

    #[test]
    fn owners_come_from_member_assignments_and_the_report_names_everything() {
        let members = vec![Member {
            id: "m-1".into(),
            client_id: "velostream".into(),
            host: "/127.0.0.1".into(),
            partitions: vec![1],
            assignment: vec![TopicAssignment {
                topic: "trips".into(),
                partitions: vec![1],
            }],
            assignment_error: None,
        }];
        let mut p1 = obs(1, Some(3), 9);
        p1.listed_high = 4;
        p1.samples = samples(3..9, 10);
        let s = Snapshot::build(
            "trips",
            "loaders",
            "Stable",
            members,
            &[obs(0, Some(5), 5), p1],
            None,
        );
        assert_eq!(s.partitions[0].owner, None);
        assert_eq!(s.partitions[1].owner.as_deref(), Some("m-1"));
        let text = s.render();
        for want in [
            "topic trips, group loaders (state Stable, 1 member(s))",
            "lag: 6 message(s), 60 row(s)",
            "partition(s) 1 (listed 4, fetched 9)",
            "member m-1 (client velostream, host /127.0.0.1): partitions [1]",
            "drained: no (partition 1: 6 message(s), 60 row(s) not consumed)",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["partitions"][1]["lag_rows"], 60);
        assert_eq!(json["partitions"][1]["listed_high_watermark"], 4);
        assert_eq!(json["drained"], false);
    }
}
