//! The consumer thread: serves Kafka's events, takes messages from the
//! partitions' own queues as memory allows, decodes them, routes them to
//! the lanes, commits stored offsets and publishes lag.
//!
//! Each assigned partition's messages are split into a queue of their own,
//! so that the main queue carries only events (rebalances, commit answers,
//! statistics): the thread keeps serving those while the memory budget is
//! used up or a lane is busy, and takes no message it has no room for.
//! Nothing is paused or resumed (tansu answers a fetch that starts inside a
//! record batch by skipping the rest of the batch), and librdkafka's own
//! prefetch is bounded by `queued.max.messages.kbytes`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_schema::SchemaRef;
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::BorrowedMessage;
use tokio::sync::mpsc::error::TrySendError;

use super::config::{COMMIT_INTERVAL, POLL_TIMEOUT};
use super::core::backlog::Backlog;
use super::intake::{self, Intake, SchemaVerdict};
use super::item::{Event, Item, LaneMsg, Rows};
use super::pipeline::Pipeline;
use super::rebalance::{self, Ctx};
use super::shared::{lock, Shared};
use super::ConsumeSummary;
use crate::metrics as m;
use crate::producer::MessageFormat;
use crate::Result;
use velostream_codecs::evolve;

/// Messages taken from the partition queues per turn of the loop.
const PULL_PER_TURN: usize = 64;
/// The longest a turn takes messages: then the thread serves Kafka's events
/// (statistics with the high watermarks, rebalances) and tells the lanes
/// whether they are behind, however slowly messages decode.
const PULL_SLICE: Duration = Duration::from_millis(20);

pub(super) struct Poller {
    consumer: Arc<BaseConsumer<Ctx>>,
    shared: Arc<Shared>,
    intake: Intake,
    events_tx: std_mpsc::Sender<Event>,
    stop: Arc<AtomicBool>,
    queues: Vec<(i32, PartitionQueue<Ctx>)>,
    next_queue: usize,
    pipeline: Option<Pipeline>,
    /// Items waiting for their lane (one queue per lane); before the
    /// pipeline starts everything waits in `stash[0]`.
    stash: Vec<VecDeque<Item>>,
    last_commit: Instant,
    last_message: Instant,
    /// Offsets taken, against the high watermarks: which lanes are behind.
    backlog: Backlog,
}

impl Poller {
    pub fn new(
        consumer: Arc<BaseConsumer<Ctx>>,
        shared: Arc<Shared>,
        intake: Intake,
        events_tx: std_mpsc::Sender<Event>,
        stop: Arc<AtomicBool>,
    ) -> Self {
        Poller {
            consumer,
            shared,
            intake,
            events_tx,
            stop,
            queues: Vec::new(),
            next_queue: 0,
            pipeline: None,
            stash: vec![VecDeque::new()],
            last_commit: Instant::now(),
            last_message: Instant::now(),
            backlog: Backlog::default(),
        }
    }

    /// Runs until stopped, idle (if configured) or a permanent failure.
    pub fn run(mut self) -> Result<ConsumeSummary> {
        let started = Instant::now();
        let cfg = &self.shared.cfg;
        if cfg.format == MessageFormat::JsonRows || cfg.input_schema.is_some() {
            let schema = cfg.input_schema.clone();
            self.start_pipeline(schema)?;
        }
        let result = loop {
            match self.turn() {
                Ok(true) => {}
                Ok(false) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        let result = result.and(self.shutdown());
        let stats = self.intake.stats;
        result.map(|()| ConsumeSummary {
            messages: stats.messages,
            rows_consumed: stats.rows,
            bytes_consumed: stats.bytes,
            rows_inserted: self.shared.rows_stored.load(Ordering::Relaxed),
            // Also those dead-lettered by the lanes.
            dead_letters: self.intake.dead_letters.as_ref().map_or(0, |d| d.sent()),
            elapsed_secs: started.elapsed().as_secs_f64(),
            inserts_by_reason: self.shared.inserts.by_reason(),
        })
    }

    /// One turn of the loop; `false` ends it.
    fn turn(&mut self) -> Result<bool> {
        if self.stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        if let Some(e) = self.shared.take_error() {
            return Err(e);
        }
        self.shared.apply_events()?;
        if self.last_commit.elapsed() >= COMMIT_INTERVAL {
            self.last_commit = Instant::now();
            self.commit_async();
            self.publish_lag();
        }
        if self.shared.queues_dirty.swap(false, Ordering::SeqCst) {
            self.split_queues();
        }
        self.hand_over();
        let busy = self.serve_main(Duration::ZERO)? | self.pull()?;
        self.publish_backlog();
        if busy {
            self.last_message = Instant::now();
            return Ok(true);
        }
        if self.idle_expired() {
            return Ok(false);
        }
        if self.serve_main(POLL_TIMEOUT)? {
            self.last_message = Instant::now();
        }
        Ok(true)
    }

    /// Serves the main queue's events; handles any message still delivered
    /// there (fetched before its partition's queue was split). `true` when
    /// a message came.
    fn serve_main(&mut self, wait: Duration) -> Result<bool> {
        let consumer = Arc::clone(&self.consumer);
        let mut any = false;
        let mut wait = wait;
        while let Some(r) = consumer.poll(wait) {
            any |= self.handle(r)?;
            wait = Duration::ZERO;
        }
        Ok(any)
    }

    /// Takes messages from the partition queues, round-robin, while memory
    /// and the lanes have room.
    fn pull(&mut self) -> Result<bool> {
        let queues = std::mem::take(&mut self.queues);
        let mut taken = 0;
        let mut scanned = 0;
        // Every queue was polled and none held a message.
        let mut empty = 0;
        let until = Instant::now() + PULL_SLICE;
        while scanned < queues.len() && taken < PULL_PER_TURN && Instant::now() < until {
            let (p, q) = &queues[(self.next_queue + scanned) % queues.len()];
            let lane = self.lane_of(*p);
            // Before the insert side exists every item waits in stash[0];
            // taking on until a message brings the schema that starts it is
            // the only way forward (a stash holding only dead letters used to
            // stop the intake for good).
            let lane_full = self.pipeline.is_some() && !self.stash[lane].is_empty();
            if lane_full || !self.shared.memory.has_room_for(lane) {
                scanned += 1;
                continue;
            }
            match q.poll(Duration::ZERO) {
                Some(r) => {
                    taken += usize::from(self.handle(r)?);
                    self.hand_over();
                }
                None => {
                    scanned += 1;
                    empty += 1;
                }
            }
        }
        let caught_up = taken == 0 && !queues.is_empty() && empty == queues.len();
        self.shared.caught_up.store(caught_up, Ordering::Relaxed);
        if !queues.is_empty() {
            self.next_queue = (self.next_queue + 1) % queues.len();
        }
        self.queues = queues;
        Ok(taken > 0)
    }

    /// Decodes one message into an item for its lane; `true` for a message.
    fn handle(&mut self, r: KafkaResult<BorrowedMessage<'_>>) -> Result<bool> {
        let msg = match r {
            Ok(msg) => msg,
            Err(e) => {
                tracing::warn!("Kafka: {e}");
                return Ok(false);
            }
        };
        let partition = rdkafka::Message::partition(&msg);
        let Some(generation) = lock(&self.shared.book).generation_of(partition) else {
            return Ok(false); // from a partition given up since it was fetched
        };
        let mut insert_side = InsertSide {
            shared: Arc::clone(&self.shared),
            pipeline: self.pipeline.take(),
            stash: &mut self.stash,
            dead_letters: self.intake.dead_letters.clone(),
            events: self.events_tx.clone(),
        };
        let item = {
            let mut verdict = |schema: &SchemaRef| insert_side.verdict(schema);
            self.intake.item(&msg, generation, &mut verdict)
        };
        let pipeline = insert_side.pipeline;
        if let Some(p) = pipeline {
            self.install_pipeline(p);
        }
        let item = item?;
        self.backlog.taken(item.partition, item.offset);
        let lane = self.lane_of(item.partition);
        self.shared.memory.charge(lane, item.charged);
        self.stash[lane].push_back(item);
        if self.pipeline.is_none() {
            self.settle_before_pipeline();
        }
        Ok(true)
    }

    /// Before the insert side exists nothing with rows has been taken (the
    /// first message with a schema starts it), so every waiting item is a
    /// dead letter (already acknowledged by the dead-letter topic) or
    /// carries no rows, and nothing before it is unstored: it is stored at
    /// once. Its offset can then be committed, and the empty stash lets
    /// `exit_when_idle` end a run that only saw undecodable messages.
    fn settle_before_pipeline(&mut self) {
        let mut book = lock(&self.shared.book);
        for item in self.stash[0].drain(..) {
            debug_assert!(matches!(item.rows, Rows::Skip), "rows before the pipeline");
            book.stored(item.partition, item.generation, item.offset + 1);
            self.shared.memory.release(0, item.charged);
        }
    }

    /// Hands waiting items to their lanes, in order, as far as they accept.
    fn hand_over(&mut self) {
        let Some(p) = &self.pipeline else {
            return;
        };
        for (lane, stash) in self.stash.iter_mut().enumerate() {
            while let Some(item) = stash.pop_front() {
                match p.lanes[lane].try_send(LaneMsg::Item(item)) {
                    Ok(()) => {}
                    Err(TrySendError::Full(LaneMsg::Item(item))) => {
                        stash.push_front(item);
                        break;
                    }
                    // The lane ended; its failure arrives as an event.
                    Err(_) => break,
                }
            }
        }
    }

    fn lane_of(&self, partition: i32) -> usize {
        self.pipeline.as_ref().map_or(0, |p| p.lane_of(partition))
    }

    fn start_pipeline(&mut self, schema: Option<SchemaRef>) -> Result<()> {
        let dead_letters = self.intake.dead_letters.clone();
        let p = start(&self.shared, schema, dead_letters, &self.events_tx)?;
        self.install_pipeline(p);
        Ok(())
    }

    /// Makes `p` the pipeline and spreads the items that waited for it.
    fn install_pipeline(&mut self, p: Pipeline) {
        if self.pipeline.is_none() {
            let memory = &self.shared.memory;
            memory.set_lanes(p.lanes.len());
            let waiting: Vec<Item> = self.stash.drain(..).flatten().collect();
            self.stash = (0..p.lanes.len()).map(|_| VecDeque::new()).collect();
            for item in waiting {
                let lane = p.lane_of(item.partition);
                memory.release(0, item.charged);
                memory.charge(lane, item.charged);
                self.stash[lane].push_back(item);
            }
        }
        self.pipeline = Some(p);
    }

    /// Gives every owned partition a queue of its own (after each
    /// assignment change; `assign` undoes earlier splits) and drops items
    /// of partitions no longer owned.
    fn split_queues(&mut self) {
        self.queues.clear();
        let generations = lock(&self.shared.book).generations();
        for (p, _) in generations.iter() {
            match self
                .consumer
                .split_partition_queue(&self.shared.cfg.topic, *p)
            {
                Some(q) => self.queues.push((*p, q)),
                None => tracing::warn!(partition = p, "cannot split the partition's queue"),
            }
        }
        self.queues.sort_by_key(|(p, _)| *p);
        self.backlog.retain(|p| generations.contains_key(&p));
        for (lane, stash) in self.stash.iter_mut().enumerate() {
            let memory = &self.shared.memory;
            stash.retain(|i| {
                let keep = generations.get(&i.partition) == Some(&i.generation);
                if !keep {
                    memory.release(lane, i.charged);
                }
                keep
            });
        }
    }

    fn idle_expired(&self) -> bool {
        let Some(idle) = self.shared.cfg.exit_when_idle else {
            return false;
        };
        // Idle only counts once the group has assigned this member its
        // partitions (a member waiting for a rebalance has not seen the
        // topic yet).
        let assigned_at = *lock(&self.shared.assigned_at);
        let idle_since = assigned_at.map(|t| t.max(self.last_message));
        self.stash.iter().all(VecDeque::is_empty) && idle_since.is_some_and(|t| t.elapsed() >= idle)
    }

    fn commit_async(&self) {
        let offsets = lock(&self.shared.book).commit_now();
        if offsets.is_empty() {
            return;
        }
        if let Err(e) = rebalance::commit(&self.shared, &self.consumer, &offsets, CommitMode::Async)
        {
            tracing::warn!("commit failed (will retry): {e}");
            let mut book = lock(&self.shared.book);
            for (p, o) in offsets {
                book.commit_done(p, o, false);
            }
        }
    }

    /// Lag per partition: messages between the stored offset and the high
    /// watermark from librdkafka's statistics, and rows estimated from the
    /// observed rows per message. (tansu reports wrong high watermarks for
    /// multi-record batches; the bench counts rows in ClickHouse instead.)
    fn publish_lag(&self) {
        let book = lock(&self.shared.book);
        let high = lock(&self.shared.high_watermarks).clone();
        for p in book.owned() {
            let Some(high) = high.get(&p) else { continue };
            let from = book.stored_offset(p).unwrap_or(0);
            let lag = (high - from).max(0);
            let label = p.to_string();
            metrics::gauge!(m::CONSUMER_LAG_MESSAGES, "partition" => label.clone()).set(lag as f64);
            metrics::gauge!(m::CONSUMER_LAG_ROWS, "partition" => label)
                .set(lag as f64 * self.intake.stats.rows_per_message);
        }
    }

    /// Tells each lane whether a whole insert waits for it, in Kafka or
    /// queued in the consumer (see `core::backlog`): a lane behind fills
    /// whole inserts. Every turn, since the queues change every turn.
    fn publish_backlog(&self) {
        let behind = {
            let high = lock(&self.shared.high_watermarks);
            self.backlog.lanes_behind(
                &high,
                &self.queued(),
                self.intake.stats.rows_per_message,
                self.shared.cfg.insert_rows,
            )
        };
        for (flag, b) in self.shared.behind.iter().zip(&behind) {
            flag.store(*b, Ordering::Relaxed);
        }
        let count = behind.iter().filter(|b| **b).count();
        metrics::gauge!(m::CONSUMER_LANES_BEHIND).set(count as f64);
    }

    /// Per lane, the messages taken but not yet in its buffer: in the stash
    /// and in its channel.
    fn queued(&self) -> Vec<usize> {
        let lanes = self.pipeline.as_ref().map_or(&[][..], |p| &p.lanes[..]);
        (0..self.shared.behind.len())
            .map(|lane| {
                let stashed = self.stash.get(lane).map_or(0, VecDeque::len);
                let sent = lanes
                    .get(lane)
                    .map_or(0, |tx| tx.max_capacity() - tx.capacity());
                stashed + sent
            })
            .collect()
    }

    fn shutdown(&mut self) -> Result<()> {
        let stashed: usize = self.stash.iter().map(VecDeque::len).sum();
        if stashed > 0 {
            tracing::info!(
                stashed,
                "stopping: messages not yet handed to a lane will be read again"
            );
        }
        self.queues.clear();
        let mut result = Ok(());
        if let Some(p) = self.pipeline.take() {
            result = p.stop(&self.shared);
        }
        rebalance::commit_sync(&self.shared, &self.consumer);
        self.consumer.unsubscribe();
        result
    }
}

/// What a message's schema may change: the insert side, and the items
/// waiting for it.
struct InsertSide<'a> {
    shared: Arc<Shared>,
    pipeline: Option<Pipeline>,
    stash: &'a mut Vec<VecDeque<Item>>,
    dead_letters: Option<Arc<super::dlq::DeadLetters>>,
    events: std_mpsc::Sender<Event>,
}

impl InsertSide<'_> {
    /// The schema a message's rows are inserted in: the first schema starts
    /// the insert side; another one is refused, or with `--evolve` merged
    /// into the running schema ([`evolve::merge`]), which restarts the
    /// insert side at this message boundary when the merge grows it.
    fn verdict(&mut self, schema: &SchemaRef) -> Result<SchemaVerdict> {
        let Some(running) = self.pipeline.as_ref() else {
            self.pipeline = Some(self.start(Arc::clone(schema))?);
            return Ok(SchemaVerdict::Use(Arc::clone(schema)));
        };
        let Some(current) = running.input_schema.clone() else {
            return Ok(SchemaVerdict::Use(Arc::clone(schema)));
        };
        if evolve::same_fields(&current, schema) {
            return Ok(SchemaVerdict::Use(current));
        }
        if !self.shared.cfg.evolve {
            return Ok(SchemaVerdict::Refuse(intake::mismatch(&current, schema)));
        }
        let merged = match evolve::merge(&current, schema) {
            Ok(m) if evolve::same_fields(&current, &m) => return Ok(SchemaVerdict::Use(current)),
            Ok(m) => Arc::new(m),
            Err(e) => return Ok(SchemaVerdict::Refuse(e.to_string())),
        };
        self.restart(current, merged)
    }

    /// Inserts everything taken so far with the old schema, then starts the
    /// insert side for `merged` (altering the table); when the table cannot
    /// follow, the old schema runs on and the message is refused.
    fn restart(&mut self, current: SchemaRef, merged: SchemaRef) -> Result<SchemaVerdict> {
        tracing::info!(from = %intake::describe(&current), to = %intake::describe(&merged), "schema evolution: inserting what was taken with the old schema");
        self.drain()?;
        match self.start(Arc::clone(&merged)) {
            Ok(p) => {
                self.pipeline = Some(p);
                if let Some(pause) = self.shared.cfg.pause_after_alter {
                    tracing::info!(
                        ?pause,
                        "schema evolution: pausing after the ALTER (test hook)"
                    );
                    std::thread::sleep(pause);
                }
                metrics::counter!(m::CONSUMER_SCHEMA_REPLANS).increment(1);
                Ok(SchemaVerdict::Use(merged))
            }
            Err(crate::Error::SchemaChange(why)) => {
                self.pipeline = Some(self.start(current)?);
                Ok(SchemaVerdict::Refuse(why))
            }
            Err(e) => Err(e),
        }
    }

    /// Hands every waiting item to the running lanes and stops them once
    /// all is inserted.
    fn drain(&mut self) -> Result<()> {
        let Some(p) = self.pipeline.take() else {
            return Ok(());
        };
        for (lane, items) in self.stash.iter_mut().enumerate() {
            for item in items.drain(..) {
                // A lane that ended reports its failure as an event.
                if p.lanes[lane].blocking_send(LaneMsg::Item(item)).is_err() {
                    break;
                }
            }
        }
        p.stop(&self.shared)?;
        match self.shared.take_error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn start(&self, schema: SchemaRef) -> Result<Pipeline> {
        start(
            &self.shared,
            Some(schema),
            self.dead_letters.clone(),
            &self.events,
        )
    }
}

/// Starts the insert side and lets the rebalance callbacks reach its lanes.
fn start(
    shared: &Shared,
    schema: Option<SchemaRef>,
    dead_letters: Option<Arc<super::dlq::DeadLetters>>,
    events: &std_mpsc::Sender<Event>,
) -> Result<Pipeline> {
    let p = shared
        .rt
        .block_on(Pipeline::start(shared, schema, dead_letters, events))?;
    *lock(&shared.lanes) = p.lanes.clone();
    Ok(p)
}
