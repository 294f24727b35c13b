//! `velostream consume`: a consumer-group member loading a topic into ClickHouse.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::clickhouse::{ClickHouseConfig, InsertCompression, Secret, TableRef, Topology};
use crate::consumer::{self, ConsumerConfig};
use crate::kafka::KafkaArgs;
use crate::producer::MessageFormat;
use crate::source::{ParquetSource, SourceOptions};
use crate::{Error, Result};

/// ClickHouse connection flags (shared by consume, verify and bench). The
/// password is redacted in `Debug`.
#[derive(Clone, clap::Args)]
pub struct ClickHouseArgs {
    /// ClickHouse HTTP(S) endpoint, e.g. http://127.0.0.1:8123 or https://HOST:8443 (no
    /// credentials in the URL). For a cluster, repeat it once per shard and give a shard's
    /// replicas comma-separated: --clickhouse-url http://a1:8123,http://a2:8123
    /// --clickhouse-url http://b1:8123 (in the environment variable: shards separated by
    /// spaces). Kafka partition p is inserted into shard p mod shards.
    #[arg(
        long,
        env = "VELOSTREAM_CLICKHOUSE_URL",
        value_delimiter = ' ',
        required = true
    )]
    pub clickhouse_url: Vec<String>,

    /// The servers' cluster (`remote_servers`) name: checked against the URLs at start, and
    /// --create-table then creates the table on every server (ReplicatedMergeTree where a
    /// shard has replicas) plus `<table>_distributed` (Distributed) for reads.
    #[arg(long, env = "VELOSTREAM_CLICKHOUSE_CLUSTER", value_name = "NAME")]
    pub cluster: Option<String>,

    /// ClickHouse user.
    #[arg(long, env = "VELOSTREAM_CLICKHOUSE_USER")]
    pub clickhouse_user: Option<String>,

    /// ClickHouse password (prefer the environment variable; never printed).
    #[arg(long, env = "VELOSTREAM_CLICKHOUSE_PASSWORD", hide_env_values = true)]
    pub clickhouse_password: Option<String>,

    /// Extra CA certificate (PEM) trusted for an https:// URL, besides the system trust store.
    #[arg(long, env = "VELOSTREAM_CLICKHOUSE_CA_CERT", value_name = "PEM")]
    pub clickhouse_ca_cert: Option<PathBuf>,

    /// Compression of insert bodies: lz4 or none. On a loopback link `none`
    /// saves the CPU of compressing and decompressing on the same cores.
    #[arg(long, default_value = "lz4", value_parser = ["lz4", "none"])]
    pub clickhouse_compression: String,

    /// Time limit of every ClickHouse request, in seconds. An insert that
    /// has no answer by then has an unknown outcome (with --exactly-once the
    /// table is asked before anything is sent again).
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub clickhouse_timeout: f64,
}

impl std::fmt::Debug for ClickHouseArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseArgs")
            .field("clickhouse_url", &self.clickhouse_url)
            .field("cluster", &self.cluster)
            .field("clickhouse_user", &self.clickhouse_user)
            .field(
                "clickhouse_password",
                &self.clickhouse_password.as_ref().map(|_| "***"),
            )
            .field("clickhouse_ca_cert", &self.clickhouse_ca_cert)
            .field("clickhouse_compression", &self.clickhouse_compression)
            .field("clickhouse_timeout", &self.clickhouse_timeout)
            .finish()
    }
}

impl ClickHouseArgs {
    /// The shards and replicas given.
    pub fn topology(&self) -> Result<Topology> {
        Topology::parse(&self.clickhouse_url)
    }

    /// The client configuration of the first server (the others differ only
    /// by URL: see [`Topology::configs`]).
    pub fn config(&self) -> ClickHouseConfig {
        let first = self
            .topology()
            .ok()
            .map(|t| t.shards[0][0].clone())
            .unwrap_or_default();
        let mut c = ClickHouseConfig::new(first);
        c.user = self.clickhouse_user.clone();
        c.password = self.clickhouse_password.clone().map(Secret::new);
        c.ca_cert = self.clickhouse_ca_cert.clone();
        c.compression = if self.clickhouse_compression == "none" {
            InsertCompression::None
        } else {
            InsertCompression::Lz4
        };
        if self.clickhouse_timeout.is_finite() && self.clickhouse_timeout > 0.0 {
            c.timeout = std::time::Duration::from_secs_f64(self.clickhouse_timeout);
        } else {
            // Refused by ClickHouseConfig::validate with a clear message.
            c.timeout = std::time::Duration::ZERO;
        }
        c
    }

    /// Long names of the credential and TLS flags that are set.
    pub fn credential_flags_set(&self) -> Vec<&'static str> {
        [
            ("--clickhouse-user", self.clickhouse_user.is_some()),
            ("--clickhouse-password", self.clickhouse_password.is_some()),
            ("--clickhouse-ca-cert", self.clickhouse_ca_cert.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, set)| set.then_some(flag))
        .collect()
    }
}

/// Consume a topic into a ClickHouse table as a member of a consumer group.
///
/// Each message (an Arrow IPC stream) is decoded, optionally transformed by
/// one SQL SELECT over the table `input`, coalesced into large inserts and
/// written as ClickHouse Native blocks. Offsets are committed only after
/// ClickHouse has acknowledged the rows before them; --exactly-once also
/// stores them with the data and resumes from ClickHouse. Messages that
/// cannot be decoded or transformed go to --dlq-topic.
#[derive(Debug, clap::Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,

    /// Topic to consume.
    #[arg(long, env = "VELOSTREAM_TOPIC")]
    pub topic: String,

    /// Consumer group id; processes with the same group share the partitions.
    #[arg(long, default_value = "velostream")]
    pub group: String,

    /// Target table, [DATABASE.]TABLE.
    #[arg(long)]
    pub table: String,

    /// SQL transform file: one SELECT over the table `input` (see sql/transforms/).
    #[arg(long, value_name = "FILE")]
    pub transform: Option<PathBuf>,

    /// Take the topic's schema from this Parquet file (otherwise from the first message).
    #[arg(long, value_name = "FILE")]
    pub schema_from: Option<PathBuf>,

    /// Create the table when it does not exist.
    #[arg(long)]
    pub create_table: bool,

    /// ORDER BY columns of a created table (comma separated; default tuple()).
    #[arg(long, value_delimiter = ',')]
    pub order_by: Vec<String>,

    /// Follow the topic's schema: a message with a new column adds it to the
    /// table (Nullable; earlier rows read NULL), a wider type (Int32 to
    /// Int64, Float32 to Float64, a longer decimal) widens the column, a
    /// missing nullable column reads NULL, on every server of the topology.
    /// The transform is planned again for the new schema. Without it such a
    /// message is a schema_mismatch dead letter.
    #[arg(long)]
    pub evolve: bool,

    /// Test hook: milliseconds to pause after an --evolve ALTER, before the
    /// first insert of the new schema.
    #[arg(long, hide = true, value_name = "MS")]
    pub pause_after_alter_ms: Option<u64>,

    /// Store offsets with the data and resume from ClickHouse (no duplicates after crashes).
    #[arg(long)]
    pub exactly_once: bool,

    /// Dead-letter topic for messages that cannot be decoded or transformed.
    #[arg(long)]
    pub dlq_topic: Option<String>,

    /// Largest message value accepted, in bytes; a larger one is oversized
    /// and goes to --dlq-topic (or stops the consumer without one).
    #[arg(long, default_value_t = 16 << 20)]
    pub max_message_bytes: usize,

    /// Largest decoded (decompressed) size of one message, in bytes; a
    /// larger one is oversized like a too-large value.
    #[arg(long, default_value_t = 256 << 20)]
    pub max_decoded_bytes: u64,

    /// Rows per insert (ClickHouse prefers few large inserts).
    #[arg(long, default_value_t = 500_000)]
    pub insert_rows: usize,

    /// In-memory bytes per insert.
    #[arg(long, default_value_t = 256 << 20)]
    pub insert_bytes: usize,

    /// Longest time a row waits before its insert is sent, in milliseconds,
    /// while the consumer keeps up (half of it once every fetched queue is
    /// empty, unless the stream fills a whole insert within this delay).
    /// While a whole insert waits for a lane (in Kafka or in the consumer),
    /// the lane fills whole inserts, waiting at most 5 times this (at least
    /// 5 s).
    #[arg(long, default_value_t = 1000)]
    pub max_delay_ms: u64,

    /// Parallel insert streams (partition p uses stream p mod N).
    #[arg(long, default_value_t = 2)]
    pub insert_streams: usize,

    /// Most bytes the consumer holds at once: decoded messages waiting,
    /// being gathered and in flight, plus encoded insert bodies. It stops
    /// taking messages from Kafka (still serving rebalances) when reached.
    #[arg(long, default_value_t = crate::consumer::DEFAULT_MAX_BUFFERED_BYTES)]
    pub max_buffered_bytes: u64,

    /// A ClickHouse setting sent with every insert, KEY=VALUE (repeatable),
    /// e.g. `--clickhouse-setting max_memory_usage=2000000000`.
    #[arg(long = "clickhouse-setting", value_name = "KEY=VALUE")]
    pub clickhouse_settings: Vec<String>,

    /// Allow dropping sub-second precision when the table has DateTime columns.
    #[arg(long)]
    pub allow_truncation: bool,

    /// Message format: arrow, or json-rows for the old per-row JSON design.
    #[arg(long, value_enum, default_value = "arrow")]
    pub format: MessageFormat,

    /// Exit after this many seconds without messages (once everything is inserted).
    #[arg(long, value_name = "SECS")]
    pub exit_when_idle: Option<f64>,

    /// Serve Prometheus metrics on this address, e.g. 127.0.0.1:9465.
    #[arg(long, env = "VELOSTREAM_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
}

impl ConsumeArgs {
    /// The consumer configuration these arguments describe.
    pub fn consumer_config(&self) -> Result<ConsumerConfig> {
        let mut c = ConsumerConfig::new(
            self.kafka.clone(),
            &self.topic,
            &self.group,
            self.clickhouse.config(),
            TableRef::parse(&self.table)?,
        );
        c.topology = self.clickhouse.topology()?;
        c.cluster = self.clickhouse.cluster.clone();
        c.transform = self.transform.clone();
        if let Some(p) = &self.schema_from {
            let src = ParquetSource::open(std::slice::from_ref(p), &SourceOptions::default())?;
            c.input_schema = Some(src.schema());
        }
        c.create_table = self.create_table;
        c.order_by = self.order_by.clone();
        c.exactly_once = self.exactly_once;
        c.evolve = self.evolve;
        c.pause_after_alter = self.pause_after_alter_ms.map(Duration::from_millis);
        c.dlq_topic = self.dlq_topic.clone();
        c.max_message_bytes = self.max_message_bytes;
        c.max_decoded_bytes = self.max_decoded_bytes;
        c.insert_rows = self.insert_rows;
        c.insert_bytes = self.insert_bytes;
        c.max_delay = Duration::from_millis(self.max_delay_ms);
        c.lanes = self.insert_streams.max(1);
        c.max_buffered_bytes = self.max_buffered_bytes;
        c.insert_settings = parse_settings(&self.clickhouse_settings)?;
        c.allow_truncation = self.allow_truncation;
        c.format = self.format;
        c.exit_when_idle = match self.exit_when_idle {
            Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
            Some(s) => {
                return Err(Error::Config(format!(
                    "--exit-when-idle {s}: must be a positive number"
                )))
            }
            None => None,
        };
        Ok(c)
    }
}

/// `KEY=VALUE` pairs; the key must look like a ClickHouse setting name.
fn parse_settings(raw: &[String]) -> Result<Vec<(String, String)>> {
    raw.iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                Error::Config(format!("--clickhouse-setting {kv:?}: expected KEY=VALUE"))
            })?;
            let k = k.trim();
            if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(Error::Config(format!(
                    "--clickhouse-setting {kv:?}: {k:?} is not a setting name"
                )));
            }
            Ok((k.to_string(), v.trim().to_string()))
        })
        .collect()
}

/// Runs `velostream consume`.
pub fn run(args: ConsumeArgs) -> Result<()> {
    let cfg = args.consumer_config()?;
    let rt = super::produce::runtime()?;
    let stop = super::stop_flag()?;
    // Outside the runtime: /metrics is served from the exporter's own thread.
    crate::metrics::install(args.metrics_addr)?;
    let summary = rt.block_on(consumer::run(cfg, stop))?;
    println!(
        "consumed {} messages ({} rows, {:.1} MB), inserted {} rows, dead-lettered {} messages in {:.2}s",
        summary.messages,
        summary.rows_consumed,
        summary.bytes_consumed as f64 / 1e6,
        summary.rows_inserted,
        summary.dead_letters,
        summary.elapsed_secs
    );
    if !summary.inserts_by_reason.is_empty() {
        let by: Vec<String> = summary
            .inserts_by_reason
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        println!("inserts, by what ended them: {}", by.join(", "));
    }
    Ok(())
}
