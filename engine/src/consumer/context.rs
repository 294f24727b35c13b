//! Rebalance handling.
//!
//! On revocation every lane inserts what it holds (in order, through its
//! data channel) and the stored offsets are committed before the partitions
//! are given up, so the next owner starts exactly where this member's data
//! ends. On assignment in exactly-once mode the start offsets come from the
//! offsets stored in ClickHouse, not from Kafka's committed offsets.

use std::collections::{BTreeSet, HashMap};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::lane::{Event, LaneMsg};
use super::table;
use crate::clickhouse::{ClickHouse, TableRef};
use crate::{Error, Result};

/// State shared by the consumer thread and the rebalance callback (which
/// runs on the consumer thread, inside `poll`).
#[derive(Debug)]
pub(super) struct Shared {
    pub topic: String,
    pub exactly_once: bool,
    pub ch: ClickHouse,
    pub table: TableRef,
    pub rt: tokio::runtime::Handle,
    /// Senders of the running lanes (empty before the pipeline starts).
    pub lanes: Mutex<Vec<mpsc::Sender<LaneMsg>>>,
    pub events: Mutex<std_mpsc::Receiver<Event>>,
    pub assignment: Mutex<BTreeSet<i32>>,
    /// When the current (possibly empty) assignment was received; `None`
    /// before the first one and while partitions are revoked. Idleness is
    /// only measured from here, so a member waiting to join is not idle.
    pub assigned_at: Mutex<Option<std::time::Instant>>,
    /// Next offset to commit per partition (everything before it is stored).
    pub stored: Mutex<HashMap<i32, i64>>,
    /// Offsets already committed.
    pub committed: Mutex<HashMap<i32, i64>>,
    /// High watermark per partition, from librdkafka's statistics (no
    /// blocking broker round trip on the consumer thread).
    pub high_watermarks: Mutex<HashMap<i32, i64>>,
    /// Rows stored in ClickHouse by this member.
    pub rows_stored: Mutex<u64>,
    /// Mirrors the assignment size for the caller (see `ConsumerConfig`).
    pub assigned_gauge: Option<Arc<std::sync::atomic::AtomicUsize>>,
    /// A failure inside a callback, picked up by the consumer loop.
    pub error: Mutex<Option<Error>>,
}

/// Locks a mutex, recovering the data of a poisoned one.
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Applies lane reports; returns the first lane failure.
    pub fn drain_events(&self) -> Result<()> {
        let events = lock(&self.events);
        while let Ok(ev) = events.try_recv() {
            match ev {
                Event::Stored {
                    partition,
                    next_offset,
                    rows,
                } => {
                    let mut stored = lock(&self.stored);
                    let e = stored.entry(partition).or_insert(next_offset);
                    *e = (*e).max(next_offset);
                    *lock(&self.rows_stored) += rows;
                }
                Event::Failed(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Asks every lane to insert what it holds and waits until they have.
    pub fn flush_lanes(&self) -> Result<()> {
        let lanes = lock(&self.lanes).clone();
        let mut acks = Vec::new();
        for lane in lanes {
            let (tx, rx) = std_mpsc::channel();
            if lane.blocking_send(LaneMsg::Flush(tx)).is_ok() {
                acks.push(rx);
            }
        }
        for rx in acks {
            // A lane that failed drops the ack; its error arrives as an event.
            let _ = rx.recv();
        }
        self.drain_events()
    }

    /// Commits stored offsets of assigned partitions that moved.
    pub fn commit<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        mode: CommitMode,
    ) -> Result<()> {
        let assignment = lock(&self.assignment).clone();
        let stored = lock(&self.stored).clone();
        let mut committed = lock(&self.committed);
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &stored {
            if assignment.contains(p) && committed.get(p) != Some(o) {
                tpl.add_partition_offset(&self.topic, *p, Offset::Offset(*o))
                    .map_err(|e| Error::kafka("building a commit", e))?;
            }
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        consumer
            .commit(&tpl, mode)
            .map_err(|e| Error::kafka(format!("committing offsets of {}", self.topic), e))?;
        for (p, o) in stored {
            if assignment.contains(&p) {
                committed.insert(p, o);
            }
        }
        Ok(())
    }

    fn fail(&self, e: Error) {
        let mut slot = lock(&self.error);
        if slot.is_none() {
            *slot = Some(e);
        }
    }
}

/// The rdkafka context carrying [`Shared`].
pub(super) struct Ctx(pub Arc<Shared>);

impl ClientContext for Ctx {
    fn stats(&self, statistics: rdkafka::Statistics) {
        let Some(topic) = statistics.topics.get(&self.0.topic) else {
            return;
        };
        let mut high = lock(&self.0.high_watermarks);
        for (p, part) in &topic.partitions {
            if *p >= 0 && part.hi_offset >= 0 {
                high.insert(*p, part.hi_offset);
            }
        }
    }
}

impl ConsumerContext for Ctx {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let s = &self.0;
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if s.exactly_once {
                    match s.rt.block_on(table::stored_offsets(&s.ch, &s.table)) {
                        Ok(offsets) => {
                            let parts: Vec<i32> =
                                tpl.elements().iter().map(|e| e.partition()).collect();
                            for p in parts {
                                let o = offsets
                                    .get(&p)
                                    .map_or(Offset::Beginning, |o| Offset::Offset(*o));
                                let _ = tpl.set_partition_offset(&s.topic, p, o);
                            }
                            tracing::info!(
                                ?offsets,
                                "exactly-once: resuming from offsets stored in ClickHouse"
                            );
                        }
                        Err(e) => s.fail(e),
                    }
                }
                let parts: BTreeSet<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                tracing::info!(partitions = ?parts, "partitions assigned");
                if let Err(e) = consumer.assign(tpl) {
                    s.fail(Error::kafka("assigning partitions", e));
                }
                if let Some(g) = &s.assigned_gauge {
                    g.fetch_add(parts.len(), std::sync::atomic::Ordering::SeqCst);
                }
                *lock(&s.assignment) = parts;
                *lock(&s.assigned_at) = Some(std::time::Instant::now());
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                tracing::info!(partitions = ?parts, "partitions revoked: inserting what is buffered");
                if let Err(e) = s
                    .flush_lanes()
                    .and_then(|()| s.commit(consumer, CommitMode::Sync))
                {
                    s.fail(e);
                }
                let had = std::mem::take(&mut *lock(&s.assignment)).len();
                if let Some(g) = &s.assigned_gauge {
                    g.fetch_sub(had, std::sync::atomic::Ordering::SeqCst);
                }
                lock(&s.committed).clear();
                if let Err(e) = consumer.unassign() {
                    s.fail(Error::kafka("unassigning partitions", e));
                }
            }
            other => {
                tracing::warn!("rebalance error: {other:?}");
            }
        }
    }

    fn main_queue_min_poll_interval(&self) -> rdkafka::util::Timeout {
        rdkafka::util::Timeout::After(Duration::from_millis(100))
    }
}
