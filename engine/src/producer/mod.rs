//! The producer: Parquet row groups → Arrow IPC messages → Kafka.
//!
//! ```text
//!  ParquetSource ──► workers (decode row group, slice, encode IPC) ──► sender ──► librdkafka
//!                    worker w owns row groups w, w+N, w+2N …           (ordered)   delivery callbacks
//! ```
//!
//! Worker `w` handles row groups `w, w+N, …` and sends its messages over its
//! own bounded channel; the sender takes them round-robin from the workers,
//! so the message order is deterministic and memory stays bounded without a
//! reorder buffer. Every message sent is counted, and the run ends only when
//! librdkafka has reported every delivery: acknowledged = sent, or an error
//! that says how many messages and rows were not acknowledged.

mod config;
mod keys;
mod sink;
mod slicer;
mod workers;

pub use config::{MessageFormat, Partitioning, ProducerConfig};
pub use sink::ProduceSummary;
pub use slicer::{Slicer, SlicerConfig};

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::progress::Progress;
use crate::source::ParquetSource;
use crate::Result;

/// Produces every row of `source` to the configured topic. The topic must
/// exist (see [`crate::kafka::admin::ensure_topic`]). `stop` is polled: when
/// it becomes true, reading stops, in-flight messages are flushed and the
/// run ends with [`crate::Error::Interrupted`].
pub fn run(
    config: &ProducerConfig,
    source: Arc<ParquetSource>,
    partitions: usize,
    stop: Arc<AtomicBool>,
    progress: &Progress,
) -> Result<ProduceSummary> {
    let rx = workers::spawn(config, Arc::clone(&source), partitions, Arc::clone(&stop))?;
    sink::send_all(config, partitions, rx, &stop, progress)
}
