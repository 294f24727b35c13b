//! Consumer settings.

use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use arrow_schema::SchemaRef;

use crate::clickhouse::{ClickHouseConfig, TableRef, Topology};
use crate::kafka::KafkaArgs;
use crate::producer::MessageFormat;

/// Everything one consumer-group member needs.
#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    pub kafka: KafkaArgs,
    pub topic: String,
    pub group: String,
    /// Connection settings of every server (its URL is the first server's).
    pub clickhouse: ClickHouseConfig,
    /// The shards and replicas (one server unless several are given).
    pub topology: Topology,
    /// The cluster name of the servers' `remote_servers` (checked against
    /// the topology; `--create-table` then creates replicated local tables
    /// and a Distributed table for reads).
    pub cluster: Option<String>,
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
    /// Follow the topic's schema: a message with new columns or wider types
    /// alters the table (README "Schema evolution") instead of being a
    /// `schema_mismatch` dead letter.
    pub evolve: bool,
    /// Test hook: sleep this long after altering the table, before the
    /// pipeline restarts (lets crash tests kill the consumer there).
    pub pause_after_alter: Option<Duration>,
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
    /// Bound on the data the consumer holds (decoded messages queued,
    /// gathered and in flight, and encoded insert bodies), in bytes.
    pub max_buffered_bytes: u64,
    /// Extra ClickHouse settings sent with every insert (name, value).
    pub insert_settings: Vec<(String, String)>,
    /// How long a revocation waits for the lanes to insert what they hold
    /// before handing the partitions over without it.
    pub revoke_timeout: Duration,
    /// How long an exactly-once assignment keeps retrying to read (and
    /// repair) the stored offsets before the consumer stops.
    pub recovery_timeout: Duration,
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
            topology: Topology::single(clickhouse.url.clone()),
            cluster: None,
            clickhouse,
            table,
            transform: None,
            input_schema: None,
            create_table: false,
            order_by: Vec::new(),
            evolve: false,
            pause_after_alter: None,
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
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
            insert_settings: Vec::new(),
            revoke_timeout: Duration::from_secs(120),
            recovery_timeout: Duration::from_secs(300),
        }
    }

    /// Refuses settings that would silently break the delivery guarantee,
    /// naming them.
    pub fn validate(&self) -> crate::Result<()> {
        let refuse = |what: &str, why: &str| {
            Err(crate::Error::Config(format!(
                "{what} is not allowed: {why}"
            )))
        };
        for (key, value) in self.kafka.overrides() {
            let v = value.trim().to_ascii_lowercase();
            match key.trim() {
                "enable.auto.commit" if v == "true" => {
                    return refuse(
                        "-X enable.auto.commit=true",
                        "offsets would be committed before ClickHouse has stored the rows (loss after a crash)",
                    )
                }
                "enable.auto.offset.store" if v == "true" => {
                    return refuse(
                        "-X enable.auto.offset.store=true",
                        "offsets would be stored as messages are read, not as rows are inserted",
                    )
                }
                "partition.assignment.strategy" if v.contains("cooperative") => {
                    return refuse(
                        &format!("-X partition.assignment.strategy={value}"),
                        "incremental (cooperative) rebalancing is not supported; use range or roundrobin",
                    )
                }
                _ => {}
            }
        }
        if self.exactly_once && self.format == MessageFormat::JsonRows {
            return refuse(
                "--exactly-once with --format json-rows",
                "the per-row JSON baseline cannot store offsets with the rows",
            );
        }
        Ok(())
    }
}

/// Default [`ConsumerConfig::max_buffered_bytes`]: 512 MiB.
pub const DEFAULT_MAX_BUFFERED_BYTES: u64 = 512 << 20;

/// Default [`ConsumerConfig::max_message_bytes`]: 16 MiB, sixteen times
/// the producer's default message limit and well under the consumer's
/// per-partition fetch size (32 MiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 << 20;
/// Default [`ConsumerConfig::max_decoded_bytes`]: 256 MiB.
pub const DEFAULT_MAX_DECODED_BYTES: u64 = 256 << 20;

/// Poll timeout of the consumer thread.
pub(super) const POLL_TIMEOUT: Duration = Duration::from_millis(50);
/// How often stored offsets are committed (only when they moved) and lag
/// is refreshed. Short, so a crash replays as little as possible in
/// at-least-once mode: one asynchronous commit per acknowledged insert.
pub(super) const COMMIT_INTERVAL: Duration = Duration::from_millis(100);
/// Messages queued per lane; memory is bounded by
/// [`ConsumerConfig::max_buffered_bytes`], this only keeps the queues short.
pub(super) const LANE_DEPTH: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn config(extra: &[&str]) -> ConsumerConfig {
        #[derive(clap::Parser)]
        struct A {
            #[command(flatten)]
            k: KafkaArgs,
        }
        let mut args = vec!["x", "--brokers", "127.0.0.1:1"];
        for e in extra {
            args.extend(["-X", e]);
        }
        let a = A::try_parse_from(args).unwrap();
        ConsumerConfig::new(
            a.k,
            "t",
            "g",
            ClickHouseConfig::new("http://127.0.0.1:1"),
            TableRef::new(None, "t"),
        )
    }

    #[test]
    fn settings_that_break_the_guarantee_are_refused_by_name() {
        assert!(config(&[]).validate().is_ok());
        assert!(config(&["enable.auto.commit=false", "fetch.wait.max.ms=5"])
            .validate()
            .is_ok());
        for (x, named) in [
            ("enable.auto.commit=true", "enable.auto.commit"),
            ("enable.auto.offset.store=TRUE", "enable.auto.offset.store"),
            (
                "partition.assignment.strategy=cooperative-sticky",
                "cooperative",
            ),
        ] {
            let e = config(&[x]).validate().unwrap_err().to_string();
            assert!(e.contains(named) && e.contains("not allowed"), "{x}: {e}");
        }
        let mut c = config(&[]);
        c.exactly_once = true;
        c.format = MessageFormat::JsonRows;
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("--exactly-once") && e.contains("json-rows"),
            "{e}"
        );
    }
}
