//! `velostream produce`: Parquet files → Kafka.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use velostream_codecs::ipc::IpcCompression;

use crate::kafka::{admin, KafkaArgs};
use crate::producer::{self, MessageFormat, Partitioning, ProduceSummary, ProducerConfig};
use crate::progress::Progress;
use crate::source::{self, ParquetSource, SourceOptions};
use crate::{Error, Result};

/// Send Parquet row groups to Kafka as compressed Arrow IPC messages.
///
/// Inputs are files, directories (searched recursively for *.parquet) and
/// globs, read in sorted order. Schemas that drift between files (int64 vs
/// double, column-name case) are unified to the first file's schema (or
/// --schema-from) with safe casts; anything lossy stops the run with the
/// file and column named, unless --allow-lossy.
#[derive(Debug, clap::Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Topic to produce to.
    #[arg(long, env = "VELOSTREAM_TOPIC")]
    pub topic: String,

    /// Create the topic with N partitions when it does not exist.
    #[arg(long, value_name = "N")]
    pub partitions: Option<usize>,

    /// Parquet files, directories or globs.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,

    /// Only these columns (comma separated), in this order.
    #[arg(long, value_delimiter = ',')]
    pub columns: Option<Vec<String>>,

    /// Take the target schema from this Parquet file instead of the first input.
    #[arg(long, value_name = "FILE")]
    pub schema_from: Option<PathBuf>,

    /// Allow lossy casts when unifying schemas (e.g. double → int64).
    #[arg(long)]
    pub allow_lossy: bool,

    /// Message format: arrow (VeloStream) or json-rows (one JSON message per row, the old design).
    #[arg(long, value_enum, default_value = "arrow")]
    pub format: MessageFormat,

    /// Arrow IPC body compression: lz4, zstd or none.
    #[arg(long, default_value = "lz4", value_parser = parse_ipc_compression)]
    pub compression: IpcCompression,

    /// With lz4: compress a column's buffer only when LZ4 shrinks it at least this many
    /// times (measured on the first message and then one in 32); the others travel
    /// uncompressed. The default, 1, compresses whatever shrinks. 2 spares the producer
    /// the slowest, least useful compression (taxi data: encoding 1.2–1.7 times as fast)
    /// for about a third more bytes in Kafka: worth it when the producer's CPU, not the
    /// network or the broker, is what runs out.
    #[arg(long, default_value_t = velostream_codecs::ipc::DEFAULT_LZ4_MIN_RATIO, value_parser = parse_min_ratio)]
    pub lz4_min_ratio: f64,

    /// Kafka record-batch compression (librdkafka compression.type): none, lz4, zstd, gzip, snappy.
    #[arg(long, default_value = "none")]
    pub kafka_compression: String,

    /// Upper bound on rows per message.
    #[arg(long, default_value_t = 65_536)]
    pub max_rows_per_message: usize,

    /// Target encoded message size in bytes.
    #[arg(long, default_value_t = 768 * 1024)]
    pub target_message_bytes: usize,

    /// Hard message size limit; keep it under the broker's message.max.bytes (1 MB by default).
    #[arg(long, default_value_t = 1_000_000)]
    pub max_message_bytes: usize,

    /// Partition by a hash of this column instead of round-robin per message.
    #[arg(long, value_name = "COLUMN")]
    pub key_column: Option<String>,

    /// Row groups read and encoded in parallel (default: number of CPUs).
    #[arg(long)]
    pub parallelism: Option<usize>,

    /// librdkafka linger.ms.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u32,

    /// Serve Prometheus metrics on this address, e.g. 127.0.0.1:9464.
    #[arg(long, env = "VELOSTREAM_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
}

pub(crate) fn parse_ipc_compression(s: &str) -> std::result::Result<IpcCompression, String> {
    IpcCompression::parse(s)
        .ok_or_else(|| format!("unknown compression {s:?}: use lz4, zstd or none"))
}

pub(crate) fn parse_min_ratio(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r >= 1.0 && r.is_finite() => Ok(r),
        _ => Err(format!(
            "{s:?} is not a ratio of at least 1 (e.g. 2 or 1.5)"
        )),
    }
}

impl ProduceArgs {
    /// The producer configuration these arguments describe.
    pub fn producer_config(&self) -> ProducerConfig {
        let mut c = ProducerConfig::new(self.kafka.clone(), &self.topic);
        c.format = self.format;
        c.ipc_compression = self.compression;
        c.lz4_min_ratio = self.lz4_min_ratio;
        c.kafka_compression = self.kafka_compression.clone();
        c.max_rows_per_message = self.max_rows_per_message;
        c.target_message_bytes = self.target_message_bytes.min(self.max_message_bytes);
        c.max_message_bytes = self.max_message_bytes;
        if let Some(k) = &self.key_column {
            c.partitioning = Partitioning::KeyColumn(k.clone());
        }
        if let Some(p) = self.parallelism {
            c.parallelism = p.max(1);
        }
        c.linger_ms = self.linger_ms;
        c
    }

    /// Source options from the arguments (reads the --schema-from footer).
    pub fn source_options(&self) -> Result<SourceOptions> {
        let target_schema = match &self.schema_from {
            Some(p) => Some(
                ParquetSource::open(std::slice::from_ref(p), &SourceOptions::default())?.schema(),
            ),
            None => None,
        };
        Ok(SourceOptions {
            columns: self.columns.clone(),
            target_schema,
            allow_lossy: self.allow_lossy,
        })
    }
}

/// Runs `velostream produce`.
pub fn run(args: ProduceArgs) -> Result<()> {
    crate::metrics::install(args.metrics_addr)?;
    let files = source::discover(&args.paths)?;
    if files.is_empty() {
        return Err(Error::Config(format!(
            "no Parquet files found in {}",
            args.paths.join(", ")
        )));
    }
    let source = Arc::new(ParquetSource::open(&files, &args.source_options()?)?);
    let partitions = runtime()?.block_on(admin::ensure_topic(
        &args.kafka,
        &args.topic,
        args.partitions,
    ))?;
    let stop = super::stop_flag()?;
    let progress = Progress::new("produce", Some(source.total_rows()));
    let summary = producer::run(&args.producer_config(), source, partitions, stop, &progress);
    progress.finish();
    let summary: ProduceSummary = summary?;
    println!("{}", summary.line());
    Ok(())
}

/// A small tokio runtime for the async parts of synchronous commands.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("velostream-rt")
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", e))
}
