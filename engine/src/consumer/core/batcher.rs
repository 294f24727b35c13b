//! A lane's buffer and its flush policy.
//!
//! A lane gathers messages until one of the thresholds is reached (rows,
//! bytes) or a deadline passes. The deadlines depend on what the consumer
//! knows of its input ([`Feed`]):
//! - behind (at least a whole insert waits for the lane, in Kafka or queued
//!   in the consumer, see [`super::backlog`]): only `backlog_delay` (five times the delay, at
//!   least 5 s) ends
//!   an insert early, so a backlog fills whole inserts — few parts for
//!   ClickHouse to write and merge — even when the consumer's fetch queues
//!   run dry for a moment or the consumer is slow;
//! - flowing (messages still wait in the fetch queues): `max_delay` or
//!   quiet input (`quiet`, a quarter of the delay);
//! - caught up (nothing fetched waits, less than an insert in Kafka): also
//!   once the oldest row has waited `caught_up` (half the delay), so a live
//!   stream, even a steady one that is never quiet, is inserted within
//!   about `caught_up` of its arrival; unless the stream is fast enough to
//!   fill a whole insert by `max_delay` at the rate the buffer filled so
//!   far: then the lane waits for the whole insert (every row still leaves
//!   within `max_delay`) and makes half the parts.
//!
//! The caller drives it with the current time and the feed; nothing here
//! sleeps.

use std::time::{Duration, Instant};

use super::spans::Spans;

/// How often a lane past a deadline that its feed suspends looks at the
/// feed again.
pub const RECHECK: Duration = Duration::from_millis(20);

/// `backlog_delay` is this many times `max_delay`, and at least
/// [`BACKLOG_DELAY_MIN`].
pub const BACKLOG_DELAY_FACTOR: u32 = 5;
/// The shortest `backlog_delay`: a short delay is a latency wish for a
/// live stream, and rows behind a backlog are late anyway.
pub const BACKLOG_DELAY_MIN: Duration = Duration::from_secs(5);

/// What the consumer knows of a lane's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feed {
    /// At least a whole insert of rows waits for the lane: in Kafka beyond
    /// what the consumer took, or taken and queued for the lane.
    Behind,
    /// Messages wait in the consumer's fetch queues.
    Flowing,
    /// Every fetch queue was found empty and the lane is not behind.
    CaughtUp,
}

/// When an insert is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushPolicy {
    pub max_rows: usize,
    pub max_bytes: usize,
    pub max_delay: Duration,
    /// Flush when no message has arrived for this long.
    pub quiet: Duration,
    /// Flush when the oldest row has waited this long and the consumer has
    /// caught up (half of `max_delay`: inside a 1 s latency budget, and half
    /// the parts of flushing at `quiet`, measured in benches/RESULTS.md).
    pub caught_up: Duration,
    /// The longest a row waits while the lane is behind.
    pub backlog_delay: Duration,
}

impl FlushPolicy {
    /// Thresholds with the quiet period at a quarter of `max_delay`.
    pub fn new(max_rows: usize, max_bytes: usize, max_delay: Duration) -> Self {
        FlushPolicy {
            max_rows: max_rows.max(1),
            max_bytes: max_bytes.max(1),
            max_delay,
            quiet: (max_delay / 4).max(Duration::from_millis(1)),
            caught_up: (max_delay / 2).max(Duration::from_millis(1)),
            backlog_delay: (max_delay * BACKLOG_DELAY_FACTOR).max(BACKLOG_DELAY_MIN),
        }
    }
}

/// Why a flush happens (for logs and metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushReason {
    Rows,
    Bytes,
    MaxDelay,
    Quiet,
    /// The consumer has caught up and the oldest row waited `quiet`.
    CaughtUp,
    /// Asked for: rebalance, shutdown, memory pressure.
    Requested,
}

impl FlushReason {
    /// Every reason, in the order of their `as usize` values.
    pub const ALL: [FlushReason; 6] = [
        FlushReason::Rows,
        FlushReason::Bytes,
        FlushReason::MaxDelay,
        FlushReason::Quiet,
        FlushReason::CaughtUp,
        FlushReason::Requested,
    ];

    /// The `reason` label of `velostream_consumer_flushes_total`.
    pub fn label(self) -> &'static str {
        match self {
            FlushReason::Rows => "rows",
            FlushReason::Bytes => "bytes",
            FlushReason::MaxDelay => "max_delay",
            FlushReason::Quiet => "quiet",
            FlushReason::CaughtUp => "caught_up",
            FlushReason::Requested => "requested",
        }
    }
}

/// One buffered message.
#[derive(Debug)]
pub struct Entry<T> {
    pub partition: i32,
    pub offset: i64,
    /// The assignment generation the message was consumed under.
    pub generation: u64,
    /// Rows it contributes to the insert (0 for skipped messages).
    pub rows: usize,
    /// In-memory bytes of its rows.
    pub bytes: usize,
    pub payload: T,
}

/// Messages taken out of a [`Batcher`] to be inserted together.
#[derive(Debug)]
pub struct Batch<T> {
    pub entries: Vec<Entry<T>>,
}

impl<T> Batch<T> {
    /// Rows over all entries.
    pub fn rows(&self) -> usize {
        self.entries.iter().map(|e| e.rows).sum()
    }

    /// In-memory bytes over all entries.
    pub fn bytes(&self) -> usize {
        self.entries.iter().map(|e| e.bytes).sum()
    }

    /// The per-partition spans of this batch.
    pub fn spans(&self) -> Spans {
        let mut s = Spans::default();
        for e in &self.entries {
            s.add(e.partition, e.offset, e.rows as u64);
        }
        s
    }

    /// Splits into two halves by message count, keeping order: the first
    /// half holds the earlier messages of every partition. `None` for a
    /// batch of one message.
    pub fn split(mut self) -> Result<(Batch<T>, Batch<T>), Batch<T>> {
        if self.entries.len() < 2 {
            return Err(self);
        }
        let second = self.entries.split_off(self.entries.len() / 2);
        Ok((self, Batch { entries: second }))
    }

    /// Removes the entries `keep` rejects and returns them.
    pub fn remove_unless(&mut self, keep: impl Fn(&Entry<T>) -> bool) -> Vec<Entry<T>> {
        let (kept, removed) = std::mem::take(&mut self.entries)
            .into_iter()
            .partition(|e| keep(e));
        self.entries = kept;
        removed
    }
}

/// Gathers messages for the next insert.
#[derive(Debug)]
pub struct Batcher<T> {
    policy: FlushPolicy,
    entries: Vec<Entry<T>>,
    rows: usize,
    bytes: usize,
    /// When the oldest buffered message arrived.
    since: Option<Instant>,
    /// When the newest buffered message arrived.
    last: Option<Instant>,
}

impl<T> Batcher<T> {
    pub fn new(policy: FlushPolicy) -> Self {
        Batcher {
            policy,
            entries: Vec::new(),
            rows: 0,
            bytes: 0,
            since: None,
            last: None,
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &FlushPolicy {
        &self.policy
    }

    /// Adds a message; says whether a size threshold is now reached.
    pub fn push(&mut self, entry: Entry<T>, now: Instant) -> Option<FlushReason> {
        self.rows += entry.rows;
        self.bytes += entry.bytes;
        self.since.get_or_insert(now);
        self.last = Some(now);
        self.entries.push(entry);
        if self.rows >= self.policy.max_rows {
            Some(FlushReason::Rows)
        } else if self.bytes >= self.policy.max_bytes {
            Some(FlushReason::Bytes)
        } else {
            None
        }
    }

    /// Whether the buffer is due at `now` given the lane's `feed`.
    pub fn due(&self, now: Instant, feed: Feed) -> Option<FlushReason> {
        let since = self.since?;
        let max_delay = match feed {
            Feed::Behind => self.policy.backlog_delay,
            Feed::Flowing | Feed::CaughtUp => self.policy.max_delay,
        };
        if now >= since + max_delay {
            Some(FlushReason::MaxDelay)
        } else if feed != Feed::Behind && self.last.is_some_and(|t| now >= t + self.policy.quiet) {
            Some(FlushReason::Quiet)
        } else if feed == Feed::CaughtUp
            && now >= since + self.policy.caught_up
            && !self.fills_by_max_delay(since, now)
        {
            Some(FlushReason::CaughtUp)
        } else {
            None
        }
    }

    /// Whether, at the rate this buffer has filled since its oldest row, it
    /// reaches a whole insert (rows or bytes) by `max_delay`: then a caught-up
    /// lane waits for it, since every row still leaves within `max_delay`,
    /// the latency asked for, and a fast live stream makes half the parts.
    fn fills_by_max_delay(&self, since: Instant, now: Instant) -> bool {
        let age = now.saturating_duration_since(since).as_secs_f64();
        if age <= 0.0 {
            return false;
        }
        let scale = self.policy.max_delay.as_secs_f64() / age;
        self.rows as f64 * scale >= self.policy.max_rows as f64
            || self.bytes as f64 * scale >= self.policy.max_bytes as f64
    }

    /// When to look at [`due`](Self::due) next, if nothing else arrives:
    /// the backlog deadline, and the deadlines a feed may suspend (quiet,
    /// `max_delay`, `caught_up`), rechecked every [`RECHECK`] once passed,
    /// since the feed changes.
    pub fn wake_at(&self, now: Instant) -> Option<Instant> {
        let since = self.since?;
        let at = since + self.policy.backlog_delay;
        let quiet = self.last.map(|t| t + self.policy.quiet);
        let suspended = [
            Some(since + self.policy.max_delay),
            Some(since + self.policy.caught_up),
            quiet,
        ];
        Some(suspended.into_iter().flatten().fold(at, |at, deadline| {
            at.min(if deadline > now {
                deadline
            } else {
                now + RECHECK
            })
        }))
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Rows buffered.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Takes everything buffered.
    pub fn take(&mut self) -> Batch<T> {
        self.rows = 0;
        self.bytes = 0;
        self.since = None;
        self.last = None;
        Batch {
            entries: std::mem::take(&mut self.entries),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(partition: i32, offset: i64, rows: usize) -> Entry<()> {
        Entry {
            partition,
            offset,
            generation: 1,
            rows,
            bytes: rows * 10,
            payload: (),
        }
    }

    fn policy() -> FlushPolicy {
        FlushPolicy::new(100, 5_000, Duration::from_millis(1000))
    }

    /// Pushes messages `offsets` of partition 0, `rows` each, the message
    /// at offset `i` arriving at `t0 + 50 ms × i`.
    fn every_50_ms(b: &mut Batcher<()>, t0: Instant, offsets: std::ops::Range<i64>, rows: usize) {
        for i in offsets {
            b.push(entry(0, i, rows), t0 + Duration::from_millis(50 * i as u64));
        }
    }

    /// A batcher with `policy` that received ten messages of `rows` rows,
    /// one every 50 ms from `t0` (the last at 450 ms).
    fn ten_messages(policy: FlushPolicy, t0: Instant, rows: usize) -> Batcher<()> {
        let mut b = Batcher::new(policy);
        every_50_ms(&mut b, t0, 0..10, rows);
        b
    }

    #[test]
    fn flushes_at_the_row_and_byte_thresholds() {
        let t0 = Instant::now();
        let mut b = Batcher::new(policy());
        assert_eq!(b.push(entry(0, 0, 60), t0), None);
        assert_eq!(b.push(entry(0, 1, 40), t0), Some(FlushReason::Rows));
        let batch = b.take();
        assert_eq!((batch.rows(), batch.bytes()), (100, 1000));
        assert!(b.is_empty() && b.due(t0 + Duration::from_secs(9), Feed::CaughtUp).is_none());

        let mut b = Batcher::new(FlushPolicy::new(1_000, 500, Duration::from_secs(1)));
        assert_eq!(b.push(entry(0, 0, 60), t0), Some(FlushReason::Bytes));
    }

    #[test]
    fn flushes_by_age_and_by_quiet_input() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut b = Batcher::new(policy()); // quiet = 250 ms
        b.push(entry(0, 0, 1), t0);
        assert_eq!(b.wake_at(t0), Some(t0 + ms(250)));
        assert_eq!(b.due(t0 + ms(249), Feed::Flowing), None);
        assert_eq!(b.due(t0 + ms(250), Feed::Flowing), Some(FlushReason::Quiet));
        // A steady stream never goes quiet, but the oldest row still leaves on time.
        for i in 1..10 {
            b.push(entry(0, i, 1), t0 + ms(100 * i as u64));
        }
        assert_eq!(b.due(t0 + ms(950), Feed::Flowing), None);
        assert_eq!(
            b.wake_at(t0 + ms(950)),
            Some(t0 + ms(970)),
            "rechecks the signal"
        );
        assert_eq!(
            b.due(t0 + ms(1000), Feed::Flowing),
            Some(FlushReason::MaxDelay)
        );
    }

    #[test]
    fn a_steady_stream_is_inserted_within_quiet_once_caught_up_and_a_backlog_fills_inserts() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // A message every 50 ms: never quiet.
        let b = ten_messages(policy(), t0, 1);
        assert_eq!(b.due(t0 + ms(499), Feed::CaughtUp), None);
        assert_eq!(
            b.due(t0 + ms(500), Feed::CaughtUp),
            Some(FlushReason::CaughtUp)
        );
        // The same while messages wait in Kafka's queues: gather on.
        assert_eq!(b.due(t0 + ms(500), Feed::Flowing), None);
        assert_eq!(b.due(t0 + ms(549), Feed::Flowing), None);
        // A backlog fills the insert before any deadline.
        let mut b = Batcher::new(policy());
        assert_eq!(b.push(entry(0, 0, 100), t0), Some(FlushReason::Rows));
    }

    #[test]
    fn a_caught_up_stream_fast_enough_to_fill_an_insert_by_the_delay_waits_for_it() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // 100-row inserts, delay 1 s: 6 rows every 50 ms fill one in 850 ms.
        let mut b = ten_messages(policy(), t0, 6);
        assert_eq!(
            b.due(t0 + ms(500), Feed::CaughtUp),
            None,
            "60 rows by 500 ms"
        );
        assert_eq!(
            b.wake_at(t0 + ms(500)),
            Some(t0 + ms(520)),
            "rechecks the rate"
        );
        every_50_ms(&mut b, t0, 10..16, 6);
        assert_eq!(
            b.push(entry(0, 16, 6), t0 + ms(800)),
            Some(FlushReason::Rows),
            "a whole insert at 800 ms"
        );
        // 4 rows every 50 ms would not: 40 rows by 500 ms, 80 by the delay.
        let b = ten_messages(policy(), t0, 4);
        assert_eq!(
            b.due(t0 + ms(500), Feed::CaughtUp),
            Some(FlushReason::CaughtUp)
        );
        // A stream that stops is measured over its whole age: it flushes.
        let b = ten_messages(policy(), t0, 6);
        assert_eq!(
            b.due(t0 + ms(650), Feed::CaughtUp),
            Some(FlushReason::CaughtUp),
            "60 rows in 650 ms"
        );
        // Bytes count the same way (10 bytes a row, 5,000-byte inserts).
        let b = ten_messages(FlushPolicy::new(1_000_000, 5_000, ms(1000)), t0, 30);
        assert_eq!(
            b.due(t0 + ms(500), Feed::CaughtUp),
            None,
            "3,000 bytes by 500 ms"
        );
        // And whatever the rate, no row waits past the delay.
        assert_eq!(
            b.due(t0 + ms(1000), Feed::CaughtUp),
            Some(FlushReason::MaxDelay)
        );
    }

    #[test]
    fn a_lane_behind_waits_past_the_delay_for_a_whole_insert() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut b = Batcher::new(policy()); // delay 1 s, backlog delay 5 s
        every_50_ms(&mut b, t0, 0..40, 2);
        let now = t0 + ms(1950);
        assert_eq!(b.due(now, Feed::Flowing), Some(FlushReason::MaxDelay));
        assert_eq!(b.due(now, Feed::CaughtUp), Some(FlushReason::MaxDelay));
        assert_eq!(b.due(now, Feed::Behind), None, "gathers on");
        // Past its deadlines the lane rechecks the feed, which may change.
        assert_eq!(b.wake_at(now), Some(now + RECHECK));
        // Input that pauses while Kafka holds more is a slow fetch or a slow
        // consumer, not the end of a stream: no quiet flush behind.
        assert_eq!(b.due(now + ms(250), Feed::Behind), None);
        let mut paused = Batcher::new(policy());
        paused.push(entry(0, 0, 1), t0);
        assert_eq!(paused.due(t0 + ms(250), Feed::Behind), None);
        assert_eq!(
            paused.due(t0 + ms(250), Feed::Flowing),
            Some(FlushReason::Quiet)
        );
        // Still arriving: at most the backlog delay.
        every_50_ms(&mut b, t0, 40..99, 1);
        assert_eq!(b.due(t0 + ms(4999), Feed::Behind), None);
        assert_eq!(
            b.due(t0 + ms(5000), Feed::Behind),
            Some(FlushReason::MaxDelay)
        );
        assert_eq!(
            b.push(entry(0, 99, 1), t0 + ms(5000)),
            Some(FlushReason::Rows)
        );
    }

    #[test]
    fn an_empty_batcher_never_wakes() {
        let b: Batcher<()> = Batcher::new(policy());
        assert_eq!(b.wake_at(Instant::now()), None);
        assert_eq!(
            b.due(Instant::now() + Duration::from_secs(3600), Feed::CaughtUp),
            None
        );
    }

    #[test]
    fn split_keeps_offset_order_per_partition() {
        let mut b = Batcher::new(policy());
        let t0 = Instant::now();
        for (p, o) in [(0, 1), (1, 1), (0, 2), (1, 2), (0, 3)] {
            b.push(entry(p, o, 1), t0);
        }
        let (a, c) = b.take().split().unwrap();
        let offs = |x: &Batch<()>| {
            x.entries
                .iter()
                .map(|e| (e.partition, e.offset))
                .collect::<Vec<_>>()
        };
        assert_eq!(offs(&a), [(0, 1), (1, 1)]);
        assert_eq!(offs(&c), [(0, 2), (1, 2), (0, 3)]);
        assert_eq!(a.spans().get(0).unwrap().last, 1);
        assert_eq!(c.spans().get(0).unwrap().insert_id, Some(2));
        let one = Batch {
            entries: vec![entry(0, 9, 1)],
        };
        assert!(one.split().is_err(), "one message cannot be split");
    }

    #[test]
    fn removing_entries_of_lost_partitions() {
        let mut batch = Batch {
            entries: vec![entry(0, 1, 1), entry(1, 1, 1), entry(0, 2, 1)],
        };
        let removed = batch.remove_unless(|e| e.partition != 0);
        assert_eq!(removed.len(), 2);
        assert_eq!(batch.entries.len(), 1);
        assert_eq!(batch.spans().partitions().collect::<Vec<_>>(), [1]);
    }
}
