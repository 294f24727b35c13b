//! `velostream bench`: run, measure and validate the whole pipeline.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::bench::{self, BenchConfig, Compare};
use crate::kafka::KafkaArgs;
use crate::{Error, Result};

/// Run the whole pipeline end to end, measure it and validate the result.
///
/// Without --input a synthetic NYC taxi data set of --rows rows is generated
/// (and cached under --data-dir). Without --brokers / --clickhouse-url the
/// local services of infra/local are used, started when needed. The bench
/// creates a topic with --partitions partitions and a fresh table, starts
/// --consumers consumers in this process, produces the input, waits until
/// every row is counted in ClickHouse, and validates row count and per-column
/// checksums against the source. --compare json-rows runs the original
/// per-row JSON design on the same data; --compare native-file measures
/// ClickHouse inserting the same rows from pre-encoded Native data.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Rows of generated taxi data (ignored with --input).
    #[arg(long, default_value_t = 2_000_000)]
    pub rows: u64,

    /// Parquet files, directories or globs to use instead of generated data.
    #[arg(long, num_args = 1.., value_name = "PATH")]
    pub input: Vec<String>,

    /// Kafka brokers; local tansu when absent.
    #[arg(long, env = "VELOSTREAM_BROKERS")]
    pub brokers: Option<String>,

    /// Any librdkafka property for every client, repeatable: -X key=value.
    #[arg(short = 'X', long = "kafka-option", value_name = "KEY=VALUE")]
    pub kafka_options: Vec<String>,

    /// ClickHouse HTTP URL; local clickhouse-server when absent.
    #[arg(long, env = "VELOSTREAM_CLICKHOUSE_URL")]
    pub clickhouse_url: Option<String>,

    /// Topic partitions.
    #[arg(long, default_value_t = 4)]
    pub partitions: usize,

    /// Consumers (group members) in this process.
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,

    /// Parallel insert streams per consumer.
    #[arg(long, default_value_t = 2)]
    pub insert_streams: usize,

    /// SQL transform applied by the consumers.
    #[arg(long, value_name = "FILE")]
    pub transform: Option<PathBuf>,

    /// Also run json-rows and/or native-file for side-by-side ratios (repeatable).
    #[arg(long, value_enum)]
    pub compare: Vec<Compare>,

    /// Write the JSON report here.
    #[arg(long, value_name = "PATH")]
    pub report_json: Option<PathBuf>,

    /// Write an SVG chart of throughput and lag over time here.
    #[arg(long, value_name = "PATH")]
    pub chart: Option<PathBuf>,

    /// Where generated data sets are cached.
    #[arg(long, default_value = ".velostream/data")]
    pub data_dir: PathBuf,

    /// Seed of the generated data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Run the consumers in exactly-once mode.
    #[arg(long)]
    pub exactly_once: bool,

    /// Arrow IPC body compression of the VeloStream producer: lz4, zstd or none.
    #[arg(long, default_value = "lz4", value_parser = super::produce::parse_ipc_compression)]
    pub compression: velostream_codecs::ipc::IpcCompression,

    /// Kafka record-batch compression of the VeloStream producer.
    #[arg(long, default_value = "none")]
    pub kafka_compression: String,

    /// Row groups decoded in parallel by the producer (default: number of CPUs).
    #[arg(long)]
    pub producer_parallelism: Option<usize>,

    /// Rows per insert.
    #[arg(long, default_value_t = 500_000)]
    pub insert_rows: usize,

    /// Keep the bench tables instead of dropping them.
    #[arg(long)]
    pub keep_tables: bool,

    /// Compression of the insert bodies sent to ClickHouse (VeloStream and
    /// native-file alike): lz4 or none. On a loopback link `none` saves the
    /// CPU of compressing and decompressing on the same cores.
    #[arg(long, default_value = "lz4", value_parser = ["lz4", "none"])]
    pub clickhouse_compression: String,

    /// Serve Prometheus metrics on this address during the run.
    #[arg(long, env = "VELOSTREAM_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Keep serving metrics this many seconds after the run (for scrapers).
    #[arg(long, default_value_t = 0.0)]
    pub hold_metrics_secs: f64,
}

/// Runs `velostream bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    let kafka = args.brokers.as_ref().map(|b| {
        let mut k = KafkaArgs::new(b.clone());
        k.options = args.kafka_options.clone();
        k
    });
    let cfg = BenchConfig {
        rows: args.rows,
        inputs: args.input.clone(),
        kafka,
        clickhouse: args
            .clickhouse_url
            .clone()
            .map(crate::clickhouse::ClickHouseConfig::new),
        partitions: args.partitions.max(1),
        consumers: args.consumers.max(1),
        insert_streams: args.insert_streams.max(1),
        transform: args.transform.clone(),
        compare: args.compare.clone(),
        report_json: args.report_json.clone(),
        chart: args.chart.clone(),
        data_dir: args.data_dir.clone(),
        seed: args.seed,
        exactly_once: args.exactly_once,
        keep_tables: args.keep_tables,
        ipc_compression: args.compression,
        kafka_compression: args.kafka_compression.clone(),
        producer_parallelism: args.producer_parallelism,
        insert_rows: args.insert_rows,
        insert_compression: args.clickhouse_compression.parse()?,
    };
    if !args.hold_metrics_secs.is_finite() || args.hold_metrics_secs < 0.0 {
        return Err(Error::Config("--hold-metrics-secs must be >= 0".into()));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("velostream-rt")
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", e))?;
    rt.block_on(async {
        crate::metrics::install(args.metrics_addr)?;
        let r = bench::run(cfg).await;
        if args.hold_metrics_secs > 0.0 {
            tokio::time::sleep(std::time::Duration::from_secs_f64(args.hold_metrics_secs)).await;
        }
        r.map(|_| ())
    })
}
