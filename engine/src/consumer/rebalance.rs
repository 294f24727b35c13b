//! The rdkafka callbacks: rebalances, commit answers, statistics. They run
//! on the consumer thread, inside `poll`, and only update [`Shared`].
//!
//! - Assignment: in exactly-once mode the start offsets come from the table
//!   ([`super::recovery`]), not from Kafka's committed offsets; the offset
//!   book starts a new generation for the partitions.
//! - Revocation: the lanes insert what they hold (bounded by
//!   `revoke_timeout`), the stored offsets are committed synchronously, and
//!   only then are the partitions handed over, so the next owner starts
//!   exactly where this member's data ends.
//! - Lost assignment (session timeout, `max.poll.interval.ms`): someone else
//!   may own the partitions already, so nothing more is inserted or
//!   committed for them: the lanes drop their rows.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::recovery;
use super::shared::{lock, Shared};
use crate::Error;

/// The group's committed offsets of the partitions in `tpl`.
fn committed_offsets(
    s: &Shared,
    consumer: &BaseConsumer<Ctx>,
    tpl: &TopicPartitionList,
) -> crate::Result<HashMap<i32, i64>> {
    let got = consumer
        .committed_offsets(tpl.clone(), Duration::from_secs(30))
        .map_err(|e| Error::kafka("reading the group's committed offsets", e))?;
    Ok(got
        .elements_for_topic(&s.cfg.topic)
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect())
}

/// The rdkafka context carrying [`Shared`].
pub(super) struct Ctx(pub Arc<Shared>);

impl ClientContext for Ctx {
    fn stats(&self, statistics: rdkafka::Statistics) {
        let Some(topic) = statistics.topics.get(&self.0.cfg.topic) else {
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
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.assign(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS if consumer.assignment_lost() => {
                self.lost(consumer)
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.revoke(consumer),
            other => tracing::warn!("rebalance error: {other:?}"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        let mut book = lock(&self.0.book);
        for e in offsets.elements() {
            if let Offset::Offset(o) = e.offset() {
                let ok = result.is_ok() && e.error().is_ok();
                if !ok {
                    tracing::warn!(
                        partition = e.partition(),
                        offset = o,
                        "commit failed; it is sent again"
                    );
                }
                book.commit_done(e.partition(), o, ok);
            }
        }
    }

    fn main_queue_min_poll_interval(&self) -> rdkafka::util::Timeout {
        rdkafka::util::Timeout::After(Duration::from_millis(100))
    }
}

impl Ctx {
    fn assign(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let s = &self.0;
        let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        if s.eo.is_some() {
            let resume = committed_offsets(s, consumer, tpl).and_then(|committed| {
                s.rt.block_on(recovery::resume_offsets(s, &parts, &committed))
            });
            match resume {
                Ok(offsets) => {
                    for (p, o) in offsets {
                        let _ = tpl.set_partition_offset(&s.cfg.topic, p, o);
                    }
                }
                Err(e) => {
                    // The consumer stops; take nothing.
                    s.fail(e);
                    let _ = consumer.assign(&TopicPartitionList::new());
                    return;
                }
            }
        }
        let set: std::collections::BTreeSet<i32> = parts.iter().copied().collect();
        tracing::info!(partitions = ?set, "partitions assigned");
        if let Err(e) = consumer.assign(tpl) {
            s.fail(Error::kafka("assigning partitions", e));
        }
        let mut book = lock(&s.book);
        book.assign(parts.iter().copied());
        s.publish_ownership(&book);
        drop(book);
        if let Some(g) = &s.assigned_gauge {
            g.fetch_add(parts.len(), Ordering::SeqCst);
        }
        *lock(&s.assigned_at) = Some(Instant::now());
        s.queues_dirty.store(true, Ordering::SeqCst);
    }

    fn revoke(&self, consumer: &BaseConsumer<Self>) {
        let s = &self.0;
        let parts = lock(&s.book).owned();
        tracing::info!(partitions = ?parts, "partitions revoked: inserting what is buffered");
        match s.flush_lanes(s.cfg.revoke_timeout) {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                "the lanes did not finish their inserts within {:?} (ClickHouse slow or away); \
                 handing the partitions over without them: their next owner consumes those \
                 messages again",
                s.cfg.revoke_timeout
            ),
            Err(e) => s.fail(e),
        }
        commit_sync(s, consumer);
        self.release(consumer);
    }

    fn lost(&self, consumer: &BaseConsumer<Self>) {
        let parts = lock(&self.0.book).owned();
        tracing::warn!(
            partitions = ?parts,
            "assignment lost (session or poll interval expired): dropping the rows held for \
             these partitions, committing nothing; their next owner consumes them again"
        );
        self.release(consumer);
    }

    /// Forgets the assignment and tells the lanes.
    fn release(&self, consumer: &BaseConsumer<Self>) {
        let s = &self.0;
        let mut book = lock(&s.book);
        let had = book.revoke_all().len();
        s.publish_ownership(&book);
        drop(book);
        if let Some(g) = &s.assigned_gauge {
            g.fetch_sub(had, Ordering::SeqCst);
        }
        *lock(&s.assigned_at) = None;
        s.queues_dirty.store(true, Ordering::SeqCst);
        if let Err(e) = consumer.unassign() {
            s.fail(Error::kafka("unassigning partitions", e));
        }
    }
}

/// Commits every stored offset the broker has not confirmed, and waits.
pub(super) fn commit_sync<C: ConsumerContext>(s: &Shared, consumer: &BaseConsumer<C>) {
    let offsets = lock(&s.book).unconfirmed();
    if offsets.is_empty() {
        return;
    }
    match commit(s, consumer, &offsets, CommitMode::Sync) {
        Ok(()) => lock(&s.book).confirmed(&offsets),
        Err(e) => tracing::warn!(
            ?offsets,
            "synchronous commit failed: {e} (the next owner may consume these messages again)"
        ),
    }
}

/// Sends a commit of `offsets` for the topic.
pub(super) fn commit<C: ConsumerContext>(
    s: &Shared,
    consumer: &BaseConsumer<C>,
    offsets: &[(i32, i64)],
    mode: CommitMode,
) -> crate::Result<()> {
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        tpl.add_partition_offset(&s.cfg.topic, *p, Offset::Offset(*o))
            .map_err(|e| Error::kafka("building a commit", e))?;
    }
    consumer
        .commit(&tpl, mode)
        .map_err(|e| Error::kafka(format!("committing offsets of {}", s.cfg.topic), e))
}
