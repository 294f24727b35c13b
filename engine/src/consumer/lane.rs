//! An insert lane: one sequential stream of inserts into ClickHouse.
//!
//! Invariant: partition `p` is always handled by lane `p mod lanes`, and a
//! lane runs one insert at a time, so within a partition inserts happen in
//! offset order and a failed insert is never followed by a later one of the
//! same partition. The stored offsets are therefore gap-free, and in
//! exactly-once mode only a partition's newest insert can be partly stored.
//!
//! The lane is pipelined: while insert N is in flight it keeps receiving,
//! transforming and encoding insert N+1, and starts N+1 only once N is done.
//! When to flush is [`Batcher`]'s decision; what to do after a failed insert
//! is [`super::insert`]'s.

use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use tokio::sync::mpsc;
use velostream_sql::Transform;

use super::core::attempts::{Backoff, Pacer};
use super::core::batcher::{Batch, Batcher, Entry, Feed, FlushPolicy, FlushReason};
use super::core::offsets::Ownership;
use super::core::sources::{SourceIndex, SourceSlice};
use super::dlq::{DeadLetters, Reason};
use super::encode::{self, Data, Format, Held};
use super::insert;
use super::item::{Event, Item, LaneMsg, Original, Rows};
use super::shared::{Inserts, Memory};
use super::table::TablePlan;
use super::target::Target;
use crate::clickhouse::TableRef;
use crate::metrics as m;
use crate::{Error, Result};

/// What every lane needs.
#[derive(Debug)]
pub(super) struct LaneShared {
    pub table: TableRef,
    pub topic: String,
    /// `None` in the JSON baseline mode (JSONEachRow inserts).
    pub plan: Option<TablePlan>,
    pub transform: Option<Transform>,
    pub dead_letters: Option<Arc<DeadLetters>>,
    pub policy: FlushPolicy,
    pub ownership: Arc<Ownership>,
    pub memory: Arc<Memory>,
    /// Extra settings of every insert.
    pub insert_settings: Vec<(String, String)>,
    /// The consumer has nothing fetched waiting (see `Shared::caught_up`).
    pub caught_up: Arc<std::sync::atomic::AtomicBool>,
    /// Per lane: a whole insert waits for it (see `Shared::behind`).
    pub behind: Arc<Vec<std::sync::atomic::AtomicBool>>,
    /// Inserts sent, by what ended them (for the consumer's summary).
    pub inserts: Arc<Inserts>,
}

impl LaneShared {
    /// What the consumer knows of lane `id`'s input.
    pub fn feed(&self, id: usize) -> Feed {
        use std::sync::atomic::Ordering::Relaxed;
        if self.behind.get(id).is_some_and(|b| b.load(Relaxed)) {
            Feed::Behind
        } else if self.caught_up.load(Relaxed) {
            Feed::CaughtUp
        } else {
            Feed::Flowing
        }
    }

    /// Copies a message a lane cannot insert to the dead-letter topic, or
    /// stops naming it when there is none.
    pub async fn dead_letter(
        &self,
        partition: i32,
        offset: i64,
        original: Option<Original>,
        reason: Reason,
        why: &str,
    ) -> Result<()> {
        let topic = &self.topic;
        let Some(dlq) = &self.dead_letters else {
            return Err(Error::Validation(format!(
                "topic {topic} partition {partition} offset {offset}: {why} (pass --dlq-topic to divert such messages)"
            )));
        };
        // Whenever a dead-letter topic is configured the consumer thread
        // keeps the original; never send a copy without it.
        let Some(original) = original else {
            return Err(Error::Validation(format!(
                "topic {topic} partition {partition} offset {offset}: {why} (the message was not kept for its dead letter)"
            )));
        };
        dlq.send_with_reason(
            partition,
            offset,
            &original.value,
            &original.headers,
            reason,
            why,
        )
        .await
    }
}

/// Where a message stands: partition, offset, generation, source slice.
#[derive(Clone, Copy, Debug)]
struct At {
    partition: i32,
    offset: i64,
    generation: u64,
    source: Option<SourceSlice>,
}

/// An insert running while the lane gathers the next one.
struct InFlight {
    task: tokio::task::JoinHandle<Result<insert::Done>>,
}

pub(super) struct Lane {
    id: usize,
    shared: Arc<LaneShared>,
    target: Target,
    data: mpsc::Receiver<LaneMsg>,
    events: std_mpsc::Sender<Event>,
    batcher: Batcher<Held>,
    in_flight: Option<InFlight>,
    pacer: Pacer,
    /// The last insert body's allocation, reused for the next one: bodies
    /// are tens of MB, and a fresh allocation that size page-faults again
    /// (measured: about a third of the lane's CPU time).
    spare: Option<Vec<u8>>,
    sources: SourceIndex,
}

impl Lane {
    pub fn new(
        id: usize,
        shared: Arc<LaneShared>,
        target: Target,
        data: mpsc::Receiver<LaneMsg>,
        events: std_mpsc::Sender<Event>,
    ) -> Self {
        let batcher = Batcher::new(shared.policy);
        Lane {
            id,
            shared,
            target,
            data,
            events,
            batcher,
            in_flight: None,
            pacer: Pacer::default(),
            spare: None,
            sources: SourceIndex::default(),
        }
    }

    /// Runs until the data channel closes (after a final flush) or a
    /// permanent error, which is reported as [`Event::Failed`].
    pub async fn run(mut self) {
        if let Err(e) = self.run_inner().await {
            let _ = self.events.send(Event::Failed(e));
        }
    }

    async fn run_inner(&mut self) -> Result<()> {
        loop {
            let far = Instant::now() + Duration::from_secs(3600);
            let wake = self.batcher.wake_at(Instant::now()).unwrap_or(far);
            tokio::select! {
                // An insert finishing is reported at once (and a permanent
                // failure stops the lane at once).
                done = async { (&mut self.in_flight.as_mut().expect("guarded").task).await },
                    if self.in_flight.is_some() =>
                {
                    self.in_flight = None;
                    self.finished(done)?;
                }
                msg = self.data.recv() => match msg {
                    Some(LaneMsg::Item(item)) => {
                        if let Some(reason) = self.accept(item).await? {
                            self.flush(reason).await?;
                        }
                    }
                    Some(LaneMsg::Flush(ack)) => {
                        self.flush(FlushReason::Requested).await?;
                        self.drain().await?;
                        let _ = ack.send(());
                    }
                    None => {
                        self.flush(FlushReason::Requested).await?;
                        return self.drain().await;
                    }
                },
                _ = tokio::time::sleep_until(wake.into()) => {
                    if let Some(reason) = self.batcher.due(Instant::now(), self.shared.feed(self.id)) {
                        self.flush(reason).await?;
                    }
                }
            }
        }
    }

    /// Takes one message into the buffer; says which threshold it reached.
    async fn accept(&mut self, item: Item) -> Result<Option<FlushReason>> {
        if !self.shared.ownership.owns(item.partition, item.generation) {
            self.shared.memory.release(self.id, item.charged);
            return Ok(None);
        }
        tracing::trace!(
            lane = self.id,
            partition = item.partition,
            offset = item.offset,
            "received"
        );
        let at = At {
            partition: item.partition,
            offset: item.offset,
            generation: item.generation,
            source: item.source,
        };
        let data = match item.rows {
            Rows::Skip => Data::Skip,
            Rows::Json(row) => Data::Json(row),
            Rows::Arrow(batches) => self.arrow_data(&item.original, at, batches).await?,
        };
        let rows = match &data {
            Data::Skip => 0,
            Data::Json(_) => 1,
            Data::Arrow { batches, .. } => batches.iter().map(|b| b.num_rows()).sum(),
        };
        let entry = Entry {
            partition: item.partition,
            offset: item.offset,
            generation: item.generation,
            rows,
            bytes: item.charged as usize,
            payload: Held {
                data,
                original: item.original,
            },
        };
        Ok(self.batcher.push(entry, Instant::now()))
    }

    /// The rows of an Arrow message after source deduplication and the
    /// transform (a transform failure dead-letters the message).
    async fn arrow_data(
        &mut self,
        original: &Option<Original>,
        item: At,
        batches: Vec<RecordBatch>,
    ) -> Result<Data> {
        if let Some(source) = item.source {
            if !self.claim(item.partition, item.generation, source).await? {
                tracing::info!(
                    partition = item.partition,
                    offset = item.offset,
                    row_group = source.slice >> 32,
                    slice = source.slice & 0xffff_ffff,
                    "this slice of the source file is already stored (sent again by a repeated \
                     produce run): skipped"
                );
                return Ok(Data::Skip);
            }
        }
        let batches = match &self.shared.transform {
            None => batches,
            Some(t) => match apply_all(t, batches).await {
                Ok(out) => out,
                Err(e) => {
                    let why = format!("transform failed: {e}");
                    let copy = original.as_ref().map(|o| Original {
                        value: Arc::clone(&o.value),
                        headers: o.headers.clone(),
                    });
                    self.shared
                        .dead_letter(
                            item.partition,
                            item.offset,
                            copy,
                            Reason::TransformFailed,
                            &why,
                        )
                        .await?;
                    if let Some(source) = item.source {
                        self.sources.unclaim(item.partition, source);
                    }
                    return Ok(Data::Skip);
                }
            },
        };
        Ok(Data::Arrow {
            batches,
            source: item.source,
        })
    }

    /// File-to-table exactly-once: whether `source` is new to `partition`
    /// (reading the table's slices of its file on first sight).
    async fn claim(
        &mut self,
        partition: i32,
        generation: u64,
        source: SourceSlice,
    ) -> Result<bool> {
        let Some(eo) = &self.target.eo else {
            return Ok(true);
        };
        if self.sources.needs_load(partition, generation, source.file) {
            let mut backoff = Backoff::default();
            let slices = loop {
                let (replica, ch) = self.target.shard.current();
                match eo.stored_slices(ch, partition, source.file).await {
                    Ok(s) => break s,
                    Err(
                        e @ Error::ClickHouse {
                            transient: true, ..
                        },
                    ) => {
                        self.target.shard.fail_over(replica, &e);
                        let wait = backoff.next_delay();
                        tracing::warn!(
                            lane = self.id,
                            "reading stored source slices failed, retrying in {wait:?}: {e}"
                        );
                        tokio::time::sleep(wait).await;
                    }
                    Err(e) => return Err(e),
                }
            };
            self.sources
                .load(partition, generation, source.file, slices);
        }
        Ok(self.sources.claim(partition, source))
    }

    /// Ends the buffer: encodes it (while the previous insert may still run),
    /// waits for the previous insert, then starts this one.
    async fn flush(&mut self, reason: FlushReason) -> Result<()> {
        if self.batcher.is_empty() {
            return Ok(());
        }
        metrics::counter!(m::CONSUMER_FLUSHES, "reason" => reason.label()).increment(1);
        let mut batch = self.batcher.take();
        let owned = Arc::clone(&self.shared.ownership);
        for e in batch.remove_unless(|e| owned.owns(e.partition, e.generation)) {
            self.shared.memory.release(self.id, e.bytes as u64);
        }
        if batch.entries.is_empty() {
            return Ok(());
        }
        let (batch, body) = self.encode(batch).await?;
        self.drain().await?;
        let pause = self.pacer.delay();
        if !pause.is_zero() {
            tracing::info!(
                lane = self.id,
                "server reports too many parts: waiting {pause:?} before the next insert"
            );
            tokio::time::sleep(pause).await;
        }
        match body {
            Some((body, format)) => {
                self.shared.inserts.sent(reason);
                self.shared.memory.charge(self.id, body.len() as u64);
                let job = insert::Job {
                    lane: self.id,
                    batch,
                    body,
                    format,
                };
                let task = tokio::spawn(insert::run(
                    Arc::clone(&self.shared),
                    self.target.clone(),
                    job,
                ));
                self.in_flight = Some(InFlight { task });
            }
            // Only skipped messages: their offsets are done as soon as
            // everything before them is (the previous insert just finished).
            None => {
                let charged = batch.entries.iter().map(|e| e.bytes as u64).sum();
                let done = insert::Done {
                    stored: insert::stored_events(&batch),
                    body: None,
                    too_many_parts: 0,
                };
                self.shared.memory.release(self.id, charged);
                self.finished(Ok(Ok(done)))?;
            }
        }
        Ok(())
    }

    /// The insert body; messages whose rows cannot be encoded are
    /// dead-lettered (reason `encode_failed`) and the rest encoded again.
    async fn encode(
        &mut self,
        mut batch: Batch<Held>,
    ) -> Result<(Batch<Held>, Option<(bytes::Bytes, Format)>)> {
        loop {
            if batch.rows() == 0 {
                return Ok((batch, None));
            }
            let plan = self.shared.plan.clone();
            let out = self.spare.take().unwrap_or_default();
            let (back, result) = tokio::task::spawn_blocking(move || {
                let r = encode::body(plan.as_ref(), &batch, out);
                (batch, r)
            })
            .await
            .map_err(|e| {
                Error::Interrupted(format!("encoder task of lane {} failed: {e}", self.id))
            })?;
            batch = back;
            let err = match result {
                Ok(body) => return Ok((batch, Some(body))),
                Err(e) => e,
            };
            let Some(plan) = &self.shared.plan else {
                return Err(err);
            };
            let culprits = encode::culprits(plan, &batch);
            if culprits.is_empty() {
                return Err(err);
            }
            for (i, e) in culprits {
                let entry = &mut batch.entries[i];
                let why = format!("cannot encode for table {}: {e}", self.shared.table);
                if let Some(source) = source_of(&entry.payload) {
                    self.sources.unclaim(entry.partition, source);
                }
                let original = entry.payload.original.take();
                entry.payload.data = Data::Skip;
                entry.rows = 0;
                self.shared
                    .dead_letter(
                        entry.partition,
                        entry.offset,
                        original,
                        Reason::EncodeFailed,
                        &why,
                    )
                    .await?;
            }
        }
    }

    /// Waits for the insert in flight, if any.
    async fn drain(&mut self) -> Result<()> {
        match self.in_flight.take() {
            Some(f) => {
                let done = f.task.await;
                self.finished(done)
            }
            None => Ok(()),
        }
    }

    fn finished(
        &mut self,
        done: std::result::Result<Result<insert::Done>, tokio::task::JoinError>,
    ) -> Result<()> {
        let done = done.map_err(|e| {
            Error::Interrupted(format!("insert task of lane {} failed: {e}", self.id))
        })??;
        if done.too_many_parts > 0 {
            for _ in 0..done.too_many_parts {
                self.pacer.too_many_parts();
            }
        } else {
            self.pacer.succeeded();
        }
        if let Some(Ok(b)) = done.body.map(|b| b.try_into_mut()) {
            let mut v = Vec::from(b);
            v.clear();
            self.spare = Some(v);
        }
        for e in done.stored {
            let _ = self.events.send(e);
        }
        Ok(())
    }
}

fn source_of(held: &Held) -> Option<SourceSlice> {
    match &held.data {
        Data::Arrow { source, .. } => *source,
        _ => None,
    }
}

async fn apply_all(t: &Transform, batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for b in batches {
        out.extend(t.apply(b).await?);
    }
    Ok(out)
}
