//! Consumer settings.

use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use arrow_schema::SchemaRef;

use crate::clickhouse::{ClickHouseConfig, TableRef};
use crate::kafka::KafkaArgs;
use crate::producer::MessageFormat;

/// Everything one consumer-group member needs.
#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    pub kafka: KafkaArgs,
    pub topic: String,
    pub group: String,
    pub clickhouse: ClickHouseConfig,
    pub table: TableRef,
    /// A `.sql` file with one SELECT over `input`.
    pub transform: Option<PathBuf>,
    /// The topic's Arrow schema when known in advance; otherwise it is
    /// taken from the first message.
    pub input_schema: Option<SchemaRef>,
    /// Create the table from the (transformed) schema when it is missing.
    pub create_table: bool,
    /// ORDER BY columns for a created table (default `tuple()`).
    pub order_by: Vec<String>,
    /// Store offsets with the data and resume from ClickHouse.
    pub exactly_once: bool,
    /// Dead-letter topic for messages that cannot be decoded or transformed.
    pub dlq_topic: Option<String>,
    /// Largest message value accepted, in bytes on the wire. A larger one is
    /// oversized: it is dead-lettered (reason `oversized`) without being
    /// decoded, or stops the consumer when there is no dead-letter topic.
    pub max_message_bytes: usize,
    /// Largest decoded size of one message (the decompressed Arrow buffers
    /// its IPC stream claims), checked before anything is allocated; a
    /// larger one is oversized like a too-large value.
    pub max_decoded_bytes: u64,
    /// Flush an insert at this many rows …
    pub insert_rows: usize,
    /// … or this many in-memory bytes …
    pub insert_bytes: usize,
    /// … or when its oldest row has waited this long.
    pub max_delay: Duration,
    /// Parallel insert streams ("lanes"); partition p uses lane p mod lanes.
    pub lanes: usize,
    /// Allow dropping sub-second precision into DateTime columns.
    pub allow_truncation: bool,
    /// Arrow IPC messages, or the per-row JSON baseline.
    pub format: MessageFormat,
    /// Exit once no message has arrived for this long and everything is inserted.
    pub exit_when_idle: Option<Duration>,
    /// Partitions currently assigned to this member are added here (and
    /// subtracted on revocation), so a caller can wait until a group of
    /// consumers owns every partition.
    pub assigned_partitions: Option<Arc<AtomicUsize>>,
}

impl ConsumerConfig {
    /// Defaults for the given endpoints.
    pub fn new(
        kafka: KafkaArgs,
        topic: impl Into<String>,
        group: impl Into<String>,
        clickhouse: ClickHouseConfig,
        table: TableRef,
    ) -> Self {
        ConsumerConfig {
            kafka,
            topic: topic.into(),
            group: group.into(),
            clickhouse,
            table,
            transform: None,
            input_schema: None,
            create_table: false,
            order_by: Vec::new(),
            exactly_once: false,
            dlq_topic: None,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_decoded_bytes: DEFAULT_MAX_DECODED_BYTES,
            insert_rows: 500_000,
            insert_bytes: 256 << 20,
            max_delay: Duration::from_millis(1000),
            lanes: 2,
            allow_truncation: false,
            format: MessageFormat::Arrow,
            exit_when_idle: None,
            assigned_partitions: None,
        }
    }
}

/// Default [`ConsumerConfig::max_message_bytes`]: 16 MiB, sixteen times
/// the producer's default message limit and well under the consumer's
/// per-partition fetch size (32 MiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 << 20;
/// Default [`ConsumerConfig::max_decoded_bytes`]: 256 MiB.
pub const DEFAULT_MAX_DECODED_BYTES: u64 = 256 << 20;

/// Names of the offset columns added to the table in exactly-once mode.
pub const PARTITION_COLUMN: &str = "_velostream_partition";
pub const OFFSET_COLUMN: &str = "_velostream_offset";

/// Poll timeout of the consumer thread.
pub(super) const POLL_TIMEOUT: Duration = Duration::from_millis(50);
/// How often stored offsets are committed (only when they moved) and lag
/// is refreshed. Short, so a crash replays as little as possible in
/// at-least-once mode: one asynchronous commit per acknowledged insert.
pub(super) const COMMIT_INTERVAL: Duration = Duration::from_millis(100);
/// Messages buffered per lane before the consumer pauses: Arrow messages
/// carry thousands of rows each, JSON-rows messages one.
pub(super) const LANE_DEPTH_ARROW: usize = 64;
pub(super) const LANE_DEPTH_JSON: usize = 65_536;
