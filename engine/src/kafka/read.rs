//! Reading partitions of a topic from given offsets up to the high watermark
//! each had when the read began. A bounded read: messages appended meanwhile
//! (a replayed dead letter failing again, say) are left for the next read.
//!
//! [`Bounds`] decides (which messages are inside, when the read is over) and
//! is tested without a broker; [`BoundedReader`] is the librdkafka shell.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::watermarks::FetchedWatermarks;
use super::KafkaArgs;
use crate::{Error, Result};

/// Longest wait for the first fetch response of a partition, and for the
/// next message while a partition is short of its end.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Where the consumer starts fetching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seek {
    /// At each start offset.
    At,
    /// At the log start, skipping what precedes each start offset: right
    /// also on brokers that return nothing for a fetch from inside a
    /// multi-record batch (tansu 0.6), at the cost of reading from the
    /// start (for small topics, such as dead-letter topics).
    FromLogStart,
    /// At the end (to learn the high watermark).
    End,
}

/// Per partition: the next offset to read and, once a fetch response told
/// it, the end of the read (the high watermark at that moment, fixed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounds {
    parts: BTreeMap<i32, (i64, Option<i64>)>,
}

impl Bounds {
    /// Reading each `(partition, offset)` from `offset`.
    pub fn new(starts: impl IntoIterator<Item = (i32, i64)>) -> Bounds {
        Bounds {
            parts: starts.into_iter().map(|(p, o)| (p, (o, None))).collect(),
        }
    }

    /// Fixes the end of every partition that has none yet and a watermark in
    /// `high`; later watermarks do not move an end.
    pub fn learn_ends(&mut self, high: &HashMap<i32, i64>) {
        for (p, (_, end)) in self.parts.iter_mut() {
            if end.is_none() {
                *end = high.get(p).copied();
            }
        }
    }

    /// Takes a message at `offset` of `partition`: `true` when it is inside
    /// the read (not before the next offset to read, and before the end or
    /// the end is not known yet: it was there when the read began), `false`
    /// when it was read already, precedes the start or was appended later.
    pub fn take(&mut self, partition: i32, offset: i64) -> bool {
        let Some((next, end)) = self.parts.get_mut(&partition) else {
            return false;
        };
        if offset < *next || end.is_some_and(|e| offset >= e) {
            return false;
        }
        *next = (*next).max(offset + 1);
        true
    }

    /// The consumer's position on `partition` is `next`: records before it
    /// are read or were never handed out (transaction markers). The
    /// position never counts past the end.
    pub fn reached(&mut self, partition: i32, next: i64) {
        if let Some((n, end)) = self.parts.get_mut(&partition) {
            let next = end.map_or(next, |e| next.min(e));
            *n = (*n).max(next);
        }
    }

    /// Every partition has reached its end.
    pub fn done(&self) -> bool {
        self.parts
            .values()
            .all(|(next, end)| end.is_some_and(|e| *next >= e))
    }
}

/// A consumer outside any group (never subscribing nor committing) reading
/// a topic within [`Bounds`].
pub struct BoundedReader {
    consumer: BaseConsumer<FetchedWatermarks>,
    topic: String,
    bounds: Bounds,
    /// The last message taken (or the opening).
    progress: Instant,
}

impl std::fmt::Debug for BoundedReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundedReader")
            .field("topic", &self.topic)
            .field("bounds", &self.bounds)
            .finish()
    }
}

impl BoundedReader {
    /// Reads `topic` from each `(partition, offset)` of `starts` to the end
    /// the partition has now. An offset before the log start reads from the
    /// log start.
    pub fn open(kafka: &KafkaArgs, topic: &str, starts: &[(i32, i64)], seek: Seek) -> Result<Self> {
        let mut c = kafka.client_config()?;
        c.set("group.id", "velostream-bounded-reader")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("statistics.interval.ms", "100")
            .set("fetch.wait.max.ms", "50");
        kafka.apply_overrides(&mut c)?;
        let consumer: BaseConsumer<FetchedWatermarks> = c
            .create_with_context(FetchedWatermarks::new(topic))
            .map_err(|e| Error::kafka(format!("creating a reader of {topic:?}"), e))?;
        let mut tpl = TopicPartitionList::new();
        for &(p, o) in starts {
            let at = match seek {
                Seek::At => Offset::Offset(o),
                Seek::FromLogStart => Offset::Beginning,
                Seek::End => Offset::End,
            };
            tpl.add_partition_offset(topic, p, at)
                .map_err(|e| Error::kafka(format!("assigning {topic:?} partition {p}"), e))?;
        }
        consumer
            .assign(&tpl)
            .map_err(|e| Error::kafka(format!("assigning topic {topic:?}"), e))?;
        Ok(BoundedReader {
            consumer,
            topic: topic.to_string(),
            bounds: Bounds::new(starts.iter().copied()),
            progress: Instant::now(),
        })
    }

    /// The next message inside the read, or `None` once every partition
    /// reached its end. Fails, naming the partitions, when one gives no
    /// fetch response or no message short of its end for 30 s.
    pub fn next_message(&mut self) -> Result<Option<OwnedMessage>> {
        loop {
            self.bounds.learn_ends(&self.consumer.context().snapshot());
            tracing::trace!(topic = %self.topic, bounds = ?self.bounds, "bounded read");
            if self.bounds.done() {
                return Ok(None);
            }
            if self.progress.elapsed() > TIMEOUT {
                return Err(Error::Config(format!(
                    "topic {:?}: nothing read for {}s short of the end ({:?}: partition → \
                     (next offset, end)); a fetch from inside a multi-record batch returns \
                     nothing on some brokers (tansu 0.6)",
                    self.topic,
                    TIMEOUT.as_secs(),
                    self.bounds
                )));
            }
            match self.consumer.poll(Duration::from_millis(50)) {
                Some(Ok(m)) if self.bounds.take(m.partition(), m.offset()) => {
                    self.progress = Instant::now();
                    return Ok(Some(m.detach()));
                }
                Some(Ok(_)) => {}
                // Quiet: the position may have passed records never handed
                // out (transaction markers), up to the end.
                None => self.learn_positions()?,
                Some(Err(e)) => {
                    return Err(Error::kafka(format!("reading topic {:?}", self.topic), e))
                }
            }
        }
    }
}

/// The high watermark of `topic` `partition` as a fetch response reports
/// it: the offset the next message will get, always the start of a record
/// batch (ListOffsets can be too low on tansu 0.6).
pub fn high_watermark(kafka: &KafkaArgs, topic: &str, partition: i32) -> Result<i64> {
    let reader = BoundedReader::open(kafka, topic, &[(partition, 0)], Seek::End)?;
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        if let Some(&high) = reader.consumer.context().snapshot().get(&partition) {
            return Ok(high);
        }
        // Polling serves the statistics callback.
        let _ = reader.consumer.poll(Duration::from_millis(50));
    }
    Err(Error::Config(format!(
        "topic {topic:?} partition {partition}: no fetch response within {}s",
        TIMEOUT.as_secs()
    )))
}

impl BoundedReader {
    fn learn_positions(&mut self) -> Result<()> {
        let positions = self
            .consumer
            .position()
            .map_err(|e| Error::kafka(format!("positions on topic {:?}", self.topic), e))?;
        for e in positions.elements_for_topic(&self.topic) {
            if let Offset::Offset(next) = e.offset() {
                self.bounds.reached(e.partition(), next);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_ends_at_the_first_watermark_each_partition_reports() {
        let mut b = Bounds::new([(0, 3), (1, 0)]);
        assert!(!b.done(), "ends unknown");
        // A message before any watermark is inside: it was there at the start.
        assert!(b.take(0, 3));
        b.learn_ends(&HashMap::from([(0, 5), (1, 0)]));
        assert!(!b.done(), "partition 0 still has offset 4");
        // A later, higher watermark does not move the end.
        b.learn_ends(&HashMap::from([(0, 9), (1, 2)]));
        assert!(!b.take(0, 3), "read already");
        assert!(b.take(0, 4));
        assert!(b.done(), "partition 1 was empty at the start");
        assert!(!b.take(0, 5), "appended after the read began");
        assert!(!b.take(1, 0), "appended after the read began");
        assert!(!b.take(7, 0), "not a partition of the read");
    }

    #[test]
    fn a_position_past_transaction_markers_ends_the_read() {
        let mut b = Bounds::new([(0, 0)]);
        b.learn_ends(&HashMap::from([(0, 4)]));
        assert!(b.take(0, 2));
        assert!(!b.done(), "offset 3 is a commit marker never handed out");
        b.reached(0, 9);
        assert!(b.done());
        assert_eq!(
            b,
            {
                let mut want = Bounds::new([(0, 4)]);
                want.learn_ends(&HashMap::from([(0, 4)]));
                want
            },
            "the position is capped at the end"
        );
    }

    #[test]
    fn messages_before_the_start_are_skipped() {
        let mut b = Bounds::new([(0, 2)]);
        b.learn_ends(&HashMap::from([(0, 3)]));
        assert!(!b.take(0, 0));
        assert!(!b.take(0, 1));
        assert!(!b.done());
        assert!(b.take(0, 2));
        assert!(b.done());
    }

    #[test]
    fn a_start_past_the_end_is_done_once_the_end_is_known() {
        let mut b = Bounds::new([(0, 10)]);
        assert!(!b.done());
        b.learn_ends(&HashMap::from([(0, 4)]));
        assert!(b.done());
    }
}
