//! What travels from the consumer thread to the insert lanes, and back.

use std::sync::mpsc as std_mpsc;
use std::sync::Arc;

use arrow_array::RecordBatch;

use super::core::sources::SourceSlice;
use super::dlq::OriginalHeaders;
use crate::Error;

/// The rows of one Kafka message.
#[derive(Debug)]
pub(super) enum Rows {
    Arrow(Vec<RecordBatch>),
    /// One JSON object (the per-row baseline format).
    Json(Vec<u8>),
    /// Nothing to insert (a 0-row or dead-lettered message); only its offset counts.
    Skip,
}

/// The value and headers of a consumed message, kept for its dead letter.
#[derive(Debug)]
pub(super) struct Original {
    pub value: Arc<[u8]>,
    pub headers: OriginalHeaders,
}

/// One consumed message.
#[derive(Debug)]
pub(super) struct Item {
    pub partition: i32,
    pub offset: i64,
    /// The assignment generation of the partition when it was consumed.
    pub generation: u64,
    pub rows: Rows,
    /// Bytes charged to the consumer's memory budget for it, released when
    /// its insert is acknowledged or it is dropped.
    pub charged: u64,
    /// Kept when a dead-letter topic is configured: a lane may still have
    /// to dead-letter it (transform, encoding or insert failure).
    pub original: Option<Original>,
    /// Its source slice (file-to-table exactly-once), when the producer
    /// named one.
    pub source: Option<SourceSlice>,
}

/// What the consumer thread sends a lane, in order.
#[derive(Debug)]
pub(super) enum LaneMsg {
    Item(Item),
    /// Insert everything received so far, then acknowledge. Travelling in
    /// the same channel as the items, it cannot overtake them.
    Flush(std_mpsc::Sender<()>),
}

/// Reports of the lanes to the consumer thread.
#[derive(Debug)]
pub(super) enum Event {
    /// Everything of `partition` before `next_offset` is stored, by work
    /// done under assignment `generation`.
    Stored {
        partition: i32,
        generation: u64,
        next_offset: i64,
        rows: u64,
    },
    /// A lane stopped on a permanent error.
    Failed(Error),
}
