//! State shared by the consumer thread, its rdkafka callbacks (which run on
//! the consumer thread, inside `poll`) and the insert lanes.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::config::ConsumerConfig;
use super::core::batcher::FlushReason;
use super::core::budget::Budget;
use super::core::offsets::{OffsetBook, Ownership};
use super::exactly_once::EoTable;
use super::item::{Event, LaneMsg};
use crate::clickhouse::Shard;
use crate::metrics as m;
use crate::{Error, Result};

/// Inserts sent by a consumer, by what ended their batch, for its summary
/// (`velostream_consumer_flushes_total` counts the same flushes, also those
/// left with nothing to send).
#[derive(Debug, Default)]
pub(super) struct Inserts([AtomicU64; FlushReason::ALL.len()]);

impl Inserts {
    pub fn sent(&self, reason: FlushReason) {
        self.0[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The non-zero counts by reason label.
    pub fn by_reason(&self) -> BTreeMap<String, u64> {
        FlushReason::ALL
            .iter()
            .map(|r| {
                (
                    r.label().to_string(),
                    self.0[*r as usize].load(Ordering::Relaxed),
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// Locks a mutex, recovering the data of a poisoned one.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The consumer's memory budget ([`Budget`]) behind a lock, mirrored in the
/// `velostream_consumer_buffered_bytes` gauge.
#[derive(Debug)]
pub(super) struct Memory(Mutex<Budget>);

impl Memory {
    pub fn new(limit: u64) -> Self {
        metrics::gauge!(m::CONSUMER_BUFFERED_BYTES).set(0.0);
        Memory(Mutex::new(Budget::new(limit)))
    }

    /// Whether a message for `lane` may be taken (see [`Budget::has_room_for`]).
    pub fn has_room_for(&self, lane: usize) -> bool {
        lock(&self.0).has_room_for(lane)
    }

    pub fn set_lanes(&self, lanes: usize) {
        lock(&self.0).set_lanes(lanes);
    }

    pub fn charge(&self, lane: usize, bytes: u64) {
        let mut b = lock(&self.0);
        b.charge(lane, bytes);
        metrics::gauge!(m::CONSUMER_BUFFERED_BYTES).set(b.used() as f64);
    }

    pub fn release(&self, lane: usize, bytes: u64) {
        let mut b = lock(&self.0);
        b.release(lane, bytes);
        metrics::gauge!(m::CONSUMER_BUFFERED_BYTES).set(b.used() as f64);
    }

    pub fn budget(&self) -> Budget {
        lock(&self.0).clone()
    }
}

#[derive(Debug)]
pub(super) struct Shared {
    pub cfg: ConsumerConfig,
    /// The shards, in topology order (partition p goes to shard p mod len).
    pub shards: Vec<Arc<Shard>>,
    /// The exactly-once table per shard, in exactly-once mode.
    pub eo: Option<Vec<EoTable>>,
    pub rt: tokio::runtime::Handle,
    pub book: Mutex<OffsetBook>,
    pub ownership: Arc<Ownership>,
    pub memory: Arc<Memory>,
    /// Senders of the running lanes (empty before the pipeline starts).
    pub lanes: Mutex<Vec<mpsc::Sender<LaneMsg>>>,
    pub events: Mutex<std_mpsc::Receiver<Event>>,
    /// When the current (possibly empty) assignment was received; `None`
    /// before the first one and while partitions are revoked. Idleness is
    /// only measured from here, so a member waiting to join is not idle.
    pub assigned_at: Mutex<Option<Instant>>,
    /// The assignment changed: partition queues must be split again.
    pub queues_dirty: AtomicBool,
    /// High watermark per partition, from librdkafka's statistics.
    pub high_watermarks: Mutex<HashMap<i32, i64>>,
    /// Rows stored in ClickHouse by this member.
    pub rows_stored: AtomicU64,
    /// Mirrors the assignment size for the caller (see `ConsumerConfig`).
    pub assigned_gauge: Option<Arc<AtomicUsize>>,
    /// A failure inside a callback, picked up by the consumer loop.
    pub error: Mutex<Option<Error>>,
    /// The consumer thread's last look found every partition's queue empty
    /// (nothing fetched waits): the lanes insert what they hold promptly
    /// instead of waiting for a full insert (see `Batcher::due`).
    pub caught_up: Arc<AtomicBool>,
    /// Per lane: at least a whole insert of rows waits for it, in Kafka or
    /// queued in the consumer (see `core::backlog`); set by the consumer
    /// thread every turn of its loop.
    pub behind: Arc<Vec<AtomicBool>>,
    /// Inserts sent by the lanes, by what ended them.
    pub inserts: Arc<Inserts>,
}

impl Shared {
    /// Records a failure of a callback (the first one wins).
    pub fn fail(&self, e: Error) {
        let mut slot = lock(&self.error);
        if slot.is_none() {
            *slot = Some(e);
        }
    }

    pub fn take_error(&self) -> Option<Error> {
        lock(&self.error).take()
    }

    /// Publishes the book's owned partitions to the lanes.
    pub fn publish_ownership(&self, book: &OffsetBook) {
        self.ownership.set(book.generations());
    }

    /// Applies lane reports; returns the first lane failure.
    pub fn apply_events(&self) -> Result<()> {
        let events = lock(&self.events);
        while let Ok(ev) = events.try_recv() {
            match ev {
                Event::Stored {
                    partition,
                    generation,
                    next_offset,
                    rows,
                } => {
                    lock(&self.book).stored(partition, generation, next_offset);
                    self.rows_stored.fetch_add(rows, Ordering::Relaxed);
                }
                Event::Failed(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Asks every lane to insert what it holds and waits until they have,
    /// at most `timeout`. Returns whether every lane finished in time.
    pub fn flush_lanes(&self, timeout: Duration) -> Result<bool> {
        let lanes = lock(&self.lanes).clone();
        let mut acks = Vec::new();
        for lane in lanes {
            let (tx, rx) = std_mpsc::channel();
            if lane.blocking_send(LaneMsg::Flush(tx)).is_ok() {
                acks.push(rx);
            }
        }
        let deadline = Instant::now() + timeout;
        let mut all = true;
        for rx in acks {
            let left = deadline.saturating_duration_since(Instant::now());
            // A lane that failed drops the ack; its error arrives as an event.
            if let Err(std_mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(left) {
                all = false;
            }
        }
        self.apply_events()?;
        Ok(all)
    }
}
