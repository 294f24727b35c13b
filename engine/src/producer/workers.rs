//! Parallel, ordered decode + encode of row groups.
//!
//! Worker `w` of `N` reads row groups `w, w+N, w+2N, …` (in the source's
//! deterministic order), slices and encodes them, and sends the messages on
//! its own bounded channel followed by [`Item::RowGroupDone`]. The consumer
//! of these channels ([`Ordered`]) reads row group `g` from worker `g mod N`,
//! which restores the global order with bounded memory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use arrow_array::RecordBatch;
use velostream_codecs::envelope::{Envelope, SourceId};
use velostream_codecs::json_rows::JsonRowEncoder;
use velostream_codecs::CodecError;

use super::config::{MessageFormat, Partitioning, ProducerConfig};
use super::slicer::{Slicer, SlicerConfig};
use crate::source::{ParquetSource, RowGroupRef};
use crate::{Error, Result};

/// Messages buffered per worker before it blocks.
const CHANNEL_DEPTH: usize = 8;

/// The encoded payload of one work item.
#[derive(Debug)]
pub(super) enum Payload {
    /// One Arrow IPC stream = one Kafka message.
    Arrow(Vec<u8>),
    /// Many JSON rows, one Kafka message each: `data[ends[i-1]..ends[i]]`.
    JsonRows { data: Vec<u8>, ends: Vec<usize> },
}

/// One encoded unit ready to send.
#[derive(Debug)]
pub(super) struct Message {
    pub payload: Payload,
    pub rows: u64,
    /// In-memory Arrow size of the rows (for the compression ratio).
    pub raw_bytes: u64,
    pub envelope: Option<Envelope>,
    /// Partition chosen by key, or `None` for round-robin.
    pub partition: Option<i32>,
}

#[derive(Debug)]
pub(super) enum Item {
    Message(Message),
    RowGroupDone,
    Failed(Error),
}

/// The ordered output of all workers.
#[derive(Debug)]
pub(super) struct Ordered {
    receivers: Vec<Receiver<Item>>,
    handles: Vec<JoinHandle<()>>,
    row_groups: usize,
    next_group: usize,
}

impl Ordered {
    /// The next item in global order; `None` after the last row group.
    pub fn next(&mut self) -> Option<Item> {
        while self.next_group < self.row_groups {
            let w = self.next_group % self.receivers.len();
            match self.receivers[w].recv() {
                Ok(Item::RowGroupDone) => self.next_group += 1,
                Ok(item) => return Some(item),
                Err(_) => {
                    // The worker ended early: it was stopped or panicked.
                    self.next_group = self.row_groups;
                    return Some(Item::Failed(Error::Interrupted(format!(
                        "reader thread {w} ended before row group {} was read",
                        self.next_group
                    ))));
                }
            }
        }
        None
    }

    /// Total number of row groups.
    pub fn row_groups(&self) -> usize {
        self.row_groups
    }
}

impl Drop for Ordered {
    fn drop(&mut self) {
        // Unblock workers (their sends fail) and wait for them.
        self.receivers.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// Starts the workers.
pub(super) fn spawn(
    config: &ProducerConfig,
    source: Arc<ParquetSource>,
    partitions: usize,
    stop: Arc<AtomicBool>,
) -> Result<Ordered> {
    let groups: Vec<RowGroupRef> = source.row_groups().to_vec();
    let n = config.parallelism.clamp(1, groups.len().max(1));
    let json = match config.format {
        MessageFormat::JsonRows => {
            Some(JsonRowEncoder::new(&source.schema()).map_err(|e| json_refusal(&groups, e))?)
        }
        MessageFormat::Arrow => None,
    };
    let key_index = match &config.partitioning {
        Partitioning::RoundRobin => None,
        Partitioning::KeyColumn(name) => Some(source.schema().index_of(name).map_err(|_| {
            Error::Config(format!(
                "--key-column {name:?} is not a column of the input"
            ))
        })?),
    };
    let mut receivers = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);
    for w in 0..n {
        let (tx, rx) = sync_channel(CHANNEL_DEPTH);
        receivers.push(rx);
        let mine: Vec<RowGroupRef> = groups.iter().skip(w).step_by(n).cloned().collect();
        let worker = Worker {
            source: Arc::clone(&source),
            slicer: Slicer::new(
                SlicerConfig {
                    max_rows: config.max_rows_per_message,
                    target_bytes: config.target_message_bytes,
                    max_bytes: config.max_message_bytes,
                },
                config.ipc_compression,
                config.lz4_min_ratio,
            )?,
            json: json.clone(),
            key_index,
            partitions,
            read_batch_rows: config.read_batch_rows,
            stop: Arc::clone(&stop),
            tx,
        };
        let h = std::thread::Builder::new()
            .name(format!("velostream-read-{w}"))
            .spawn(move || worker.run(mine))
            .map_err(|e| Error::io("spawning a reader thread", e))?;
        handles.push(h);
    }
    Ok(Ordered {
        receivers,
        handles,
        row_groups: groups.len(),
        next_group: 0,
    })
}

/// A schema the JSON row format cannot carry, with the input named (every
/// file is cast to this schema, so the first file has the column too).
fn json_refusal(groups: &[RowGroupRef], e: CodecError) -> Error {
    match groups.first() {
        Some(rg) => Error::Input {
            path: rg.path.to_path_buf(),
            message: format!("--format json-rows: {e}"),
        },
        None => Error::Codec(e),
    }
}

struct Worker {
    source: Arc<ParquetSource>,
    slicer: Slicer,
    json: Option<JsonRowEncoder>,
    key_index: Option<usize>,
    /// Partition count of the topic (for keyed partitioning).
    partitions: usize,
    read_batch_rows: usize,
    stop: Arc<AtomicBool>,
    tx: SyncSender<Item>,
}

impl Worker {
    fn run(mut self, groups: Vec<RowGroupRef>) {
        for rg in groups {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let result = self.row_group(&rg);
            let last = match result {
                Ok(()) => Item::RowGroupDone,
                Err(e) => Item::Failed(e),
            };
            let failed = matches!(last, Item::Failed(_));
            if self.tx.send(last).is_err() || failed {
                return;
            }
        }
    }

    fn row_group(&mut self, rg: &RowGroupRef) -> Result<()> {
        let what = format!("{} row group {}", rg.path.display(), rg.row_group);
        let file = rg.path.display().to_string();
        let mut slice_no = 0u32;
        for batch in self.source.read_row_group(rg, self.read_batch_rows)? {
            if self.stop.load(Ordering::Relaxed) {
                return Err(Error::Interrupted("stopped while reading".into()));
            }
            let batch = batch?;
            if batch.num_rows() == 0 {
                continue;
            }
            let raw_per_row = batch.get_array_memory_size() as f64 / batch.num_rows() as f64;
            for (partition, part) in self.split_by_key(batch)? {
                if let Some(json) = &self.json {
                    let msg = json_message(json, &part, partition)?;
                    self.send(msg)?;
                    continue;
                }
                let mut out = Vec::new();
                let stable = partition.is_none() && self.partitions > 0;
                self.slicer.slice(&part, &what, &mut |payload, slice| {
                    let source = SourceId {
                        file: file.clone(),
                        row_group: rg.row_group as u32,
                        slice: slice_no,
                        file_id: Some(rg.file_id),
                    };
                    let partition = if stable {
                        Some(source_partition(&source, self.partitions))
                    } else {
                        partition
                    };
                    slice_no += 1;
                    let rows = slice.num_rows() as u64;
                    out.push(Message {
                        payload: Payload::Arrow(payload),
                        rows,
                        raw_bytes: (raw_per_row * rows as f64) as u64,
                        envelope: Some(Envelope::new(slice.schema_ref(), rows, Some(source))),
                        partition,
                    });
                    Ok(())
                })?;
                for m in out {
                    self.send(m)?;
                }
            }
        }
        Ok(())
    }

    fn send(&self, m: Message) -> Result<()> {
        self.tx
            .send(Item::Message(m))
            .map_err(|_| Error::Interrupted("sender stopped".into()))
    }

    /// Groups rows by the key column's hash when keyed partitioning is on.
    fn split_by_key(&mut self, batch: RecordBatch) -> Result<Vec<(Option<i32>, RecordBatch)>> {
        let (Some(k), true) = (self.key_index, self.partitions > 0) else {
            return Ok(vec![(None, batch)]);
        };
        super::keys::split(&batch, k, self.partitions)
    }
}

fn json_message(
    json: &JsonRowEncoder,
    batch: &RecordBatch,
    partition: Option<i32>,
) -> Result<Message> {
    let mut data = Vec::with_capacity(batch.num_rows() * 256);
    let mut ends = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        json.write_row(batch, row, &mut data)?;
        ends.push(data.len());
    }
    Ok(Message {
        rows: batch.num_rows() as u64,
        raw_bytes: batch.get_array_memory_size() as u64,
        payload: Payload::JsonRows { data, ends },
        envelope: None,
        partition,
    })
}

/// The partition of an unkeyed Arrow message: round-robin over the slices of
/// its row group, from a start that depends on the file and row group only.
/// The same slice of the same file always lands in the same partition (for a
/// given partition count), whatever else is produced with it.
fn source_partition(source: &SourceId, partitions: usize) -> i32 {
    let mut key = source.file_id.unwrap_or(0).to_le_bytes().to_vec();
    key.extend_from_slice(&source.row_group.to_le_bytes());
    let start = velostream_codecs::envelope::fnv1a64(&key);
    let p = start.wrapping_add(u64::from(source.slice)) % partitions.max(1) as u64;
    p as i32
}
