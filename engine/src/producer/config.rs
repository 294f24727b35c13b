//! Producer settings. Defaults were chosen by measurement (benches/RESULTS.md).

use velostream_codecs::ipc::IpcCompression;

use crate::kafka::KafkaArgs;

/// What one Kafka message carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MessageFormat {
    /// One Arrow IPC stream (many rows) per message: VeloStream's format.
    Arrow,
    /// One JSON object per row and per message: the original design, kept as a baseline.
    JsonRows,
}

/// How messages are spread over partitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Partitioning {
    /// Arrow messages: the slices of a row group go round-robin over the
    /// partitions, starting at a partition derived from the file's
    /// fingerprint and the row group, so a re-run over the same files sends
    /// every slice to the same partition (file-to-table exactly-once relies
    /// on it). JSON rows: message i goes to partition i mod P.
    RoundRobin,
    /// Rows are grouped by a hash of this column, so equal keys share a partition.
    KeyColumn(String),
}

/// Everything the producer needs besides the input.
#[derive(Clone, Debug)]
pub struct ProducerConfig {
    pub kafka: KafkaArgs,
    pub topic: String,
    pub format: MessageFormat,
    /// Arrow body compression.
    pub ipc_compression: IpcCompression,
    /// With LZ4: compress a buffer only when LZ4 shrinks it this many times
    /// ([`velostream_codecs::ipc::IpcEncoder::with_lz4_min_ratio`]).
    pub lz4_min_ratio: f64,
    /// librdkafka `compression.type` (none, lz4, zstd, gzip, snappy).
    pub kafka_compression: String,
    /// Upper bound on rows per message.
    pub max_rows_per_message: usize,
    /// Target encoded size of a message.
    pub target_message_bytes: usize,
    /// Hard limit: no message is larger (the broker's `message.max.bytes`).
    pub max_message_bytes: usize,
    pub partitioning: Partitioning,
    /// Row groups decoded and encoded in parallel.
    pub parallelism: usize,
    /// Rows per Parquet read batch.
    pub read_batch_rows: usize,
    /// librdkafka `linger.ms`.
    pub linger_ms: u32,
}

impl ProducerConfig {
    /// Defaults for `topic` on `kafka`.
    pub fn new(kafka: KafkaArgs, topic: impl Into<String>) -> Self {
        ProducerConfig {
            kafka,
            topic: topic.into(),
            format: MessageFormat::Arrow,
            ipc_compression: IpcCompression::Lz4Frame,
            lz4_min_ratio: velostream_codecs::ipc::DEFAULT_LZ4_MIN_RATIO,
            kafka_compression: "none".into(),
            max_rows_per_message: 65_536,
            target_message_bytes: 768 * 1024,
            max_message_bytes: 1_000_000,
            partitioning: Partitioning::RoundRobin,
            parallelism: std::thread::available_parallelism().map_or(2, |n| n.get()),
            read_batch_rows: 65_536,
            linger_ms: 5,
        }
    }
}
