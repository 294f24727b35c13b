//! `velostream bench`: run, measure and validate the whole pipeline.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::consume::ClickHouseArgs;
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
///
/// With several --clickhouse-url flags (one per shard, replicas
/// comma-separated, optionally --cluster) the pipeline inserts into every
/// shard (partition p into shard p mod shards), the validation reads the
/// union of the shards and the report gives the rows per shard; the
/// comparisons run against the first server.
///
/// Kafka and ClickHouse take the same connection, TLS, SASL and credential
/// flags (and environment variables) as produce and consume.
#[derive(Debug, clap::Args)]
#[command(
    // The shared flags require an endpoint; the bench starts local services
    // without one (an empty value means "absent").
    mut_arg("brokers", |a| a
        .required(false)
        .default_value("")
        .hide_default_value(true)
        .help("Kafka bootstrap servers, comma separated (HOST:PORT[,…]); local tansu when absent")),
    mut_arg("clickhouse_url", |a| a
        .required(false)
        .default_value("")
        .hide_default_value(true)
        .help("ClickHouse HTTP(S) endpoint (no credentials in the URL); local clickhouse-server when absent")),
)]
pub struct BenchArgs {
    /// Rows of generated taxi data (ignored with --input).
    #[arg(long, default_value_t = 2_000_000)]
    pub rows: u64,

    /// Parquet files, directories or globs to use instead of generated data.
    #[arg(long, num_args = 1.., value_name = "PATH")]
    pub input: Vec<String>,

    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,

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

    /// With lz4: compress a column only when LZ4 shrinks it at least this many times
    /// (as `produce --lz4-min-ratio`; the default, 1, compresses whatever shrinks).
    #[arg(long, default_value_t = velostream_codecs::ipc::DEFAULT_LZ4_MIN_RATIO, value_parser = super::produce::parse_min_ratio)]
    pub lz4_min_ratio: f64,

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

    /// After the report, print the performance targets (ratios of this run:
    /// end to end vs native-file and vs json-rows, bytes per row, producer vs
    /// bare decode, consumer CPU) and whether each is met.
    #[arg(long)]
    pub targets: bool,

    /// After the backlog run, stream at this steady rate and report the
    /// end-to-end latency (Kafka acknowledgement -> rows visible in
    /// ClickHouse) at p50/p99/max and the lag over time: rows per second
    /// (200000) or a share of this run's backlog end-to-end rate (25%).
    #[arg(long, value_name = "ROWS_PER_S|N%")]
    pub rate: Option<String>,

    /// How long the --rate stream lasts, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30.0, requires = "rate")]
    pub duration: f64,

    /// Serve Prometheus metrics on this address during the run.
    #[arg(long, env = "VELOSTREAM_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Serve metrics this many seconds before the run starts and after it
    /// ends, so that a scraper takes the zero values as a baseline (a short
    /// run can otherwise fall between two scrapes, leaving rate() nothing to
    /// compare) and the final values.
    #[arg(long, default_value_t = 0.0)]
    pub hold_metrics_secs: f64,
}

impl BenchArgs {
    /// The Kafka settings, or `None` for the local tansu. Connection
    /// settings without `--brokers` are refused: the local services speak
    /// plaintext without credentials, so they could only be ignored.
    pub fn kafka(&self) -> Result<Option<KafkaArgs>> {
        if !self.kafka.brokers.trim().is_empty() {
            return Ok(Some(self.kafka.clone()));
        }
        let mut set = self.kafka.security_flags_set();
        if !self.kafka.options.is_empty() {
            set.push("-X/--kafka-option");
        }
        if set.is_empty() {
            return Ok(None);
        }
        Err(Error::Config(format!(
            "{} given without --brokers: the local Kafka the bench starts takes no \
             connection settings; pass --brokers to use your own",
            set.join(", ")
        )))
    }

    /// The ClickHouse settings, or `None` for the local clickhouse-server
    /// (credentials without `--clickhouse-url` are refused, like for Kafka).
    pub fn clickhouse(&self) -> Result<Option<crate::clickhouse::ClickHouseConfig>> {
        if self
            .clickhouse
            .clickhouse_url
            .iter()
            .any(|u| !u.trim().is_empty())
        {
            return Ok(Some(self.clickhouse.config()));
        }
        let mut set = self.clickhouse.credential_flags_set();
        if self.clickhouse.cluster.is_some() {
            set.push("--cluster");
        }
        if set.is_empty() {
            return Ok(None);
        }
        Err(Error::Config(format!(
            "{} given without --clickhouse-url: the local ClickHouse the bench starts \
             takes no credentials; pass --clickhouse-url to use your own",
            set.join(", ")
        )))
    }
}

/// `--rate` and `--duration`.
fn freshness(
    args: &BenchArgs,
) -> Result<Option<(crate::bench::freshness::Rate, std::time::Duration)>> {
    let Some(rate) = &args.rate else {
        return Ok(None);
    };
    let rate = crate::bench::freshness::Rate::parse(rate).map_err(Error::Config)?;
    if !args.duration.is_finite() || args.duration <= 0.0 {
        return Err(Error::Config(format!(
            "--duration {}: must be a positive number of seconds",
            args.duration
        )));
    }
    Ok(Some((
        rate,
        std::time::Duration::from_secs_f64(args.duration),
    )))
}

/// Runs `velostream bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    let cfg = BenchConfig {
        rows: args.rows,
        inputs: args.input.clone(),
        kafka: args.kafka()?,
        clickhouse: args.clickhouse()?,
        topology: args
            .clickhouse()?
            .map(|_| args.clickhouse.topology())
            .transpose()?,
        cluster: args.clickhouse.cluster.clone(),
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
        lz4_min_ratio: args.lz4_min_ratio,
        kafka_compression: args.kafka_compression.clone(),
        producer_parallelism: args.producer_parallelism,
        insert_rows: args.insert_rows,
        insert_compression: args.clickhouse.clickhouse_compression.parse()?,
        targets: args.targets,
        freshness: freshness(&args)?,
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
    // Outside the runtime: the exporter then serves /metrics from a thread of
    // its own, so scrapes are answered while the pipeline keeps the
    // runtime's workers busy.
    crate::metrics::install(args.metrics_addr)?;
    let hold = std::time::Duration::from_secs_f64(args.hold_metrics_secs);
    rt.block_on(async {
        tokio::time::sleep(hold).await;
        let r = bench::run(cfg).await;
        tokio::time::sleep(hold).await;
        r.map(|_| ())
    })
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::super::{Cli, Command};
    use super::*;

    fn bench(args: &[&str]) -> BenchArgs {
        let argv = ["velostream", "bench"].iter().chain(args);
        match Cli::try_parse_from(argv).expect("parses").command {
            Command::Bench(b) => b,
            other => panic!("not bench: {other:?}"),
        }
    }

    fn required(sub: &str, id: &str) -> bool {
        let cmd = Cli::command();
        let sub = cmd.find_subcommand(sub).expect("subcommand");
        let arg = sub.get_arguments().find(|a| a.get_id() == id);
        arg.unwrap_or_else(|| panic!("{id} missing"))
            .is_required_set()
    }

    #[test]
    fn endpoints_are_optional_for_bench_only() {
        assert!(!required("bench", "brokers") && !required("bench", "clickhouse_url"));
        assert!(required("consume", "brokers") && required("consume", "clickhouse_url"));
        assert!(required("produce", "brokers") && required("verify", "clickhouse_url"));
        // An empty endpoint is "absent": the local services are used.
        let b = bench(&["--brokers=", "--clickhouse-url="]);
        assert!(b.kafka().expect("kafka").is_none());
        assert!(b.clickhouse().expect("clickhouse").is_none());
    }

    #[test]
    fn bench_takes_the_shared_security_and_credential_flags() {
        let b = bench(&[
            "--brokers",
            "b:9093",
            "--kafka-security-protocol",
            "SASL_SSL",
            "--ssl-ca-location",
            "/ca.pem",
            "--sasl-mechanism",
            "PLAIN",
            "--sasl-username",
            "u",
            "--sasl-password",
            "sasl-pw",
            "--ssl-key-password",
            "key-pw",
            "-X",
            "fetch.wait.max.ms=10",
            "--clickhouse-url",
            "https://ch:8443",
            "--clickhouse-user",
            "loader",
            "--clickhouse-password",
            "ch-pw",
            "--clickhouse-ca-cert",
            "/ch-ca.pem",
            "--clickhouse-compression",
            "none",
        ]);
        let k = b.kafka().expect("kafka").expect("given");
        assert_eq!(k.brokers, "b:9093");
        assert_eq!(k.security_protocol.as_deref(), Some("SASL_SSL"));
        assert_eq!(k.ssl_ca_location.as_deref(), Some("/ca.pem"));
        assert_eq!(k.sasl_username.as_deref(), Some("u"));
        assert_eq!(k.options, ["fetch.wait.max.ms=10"]);
        assert_eq!(k.secrets(), ["sasl-pw", "key-pw"]);
        let c = b.clickhouse().expect("clickhouse").expect("given");
        assert_eq!(c.url, "https://ch:8443");
        assert_eq!(c.user.as_deref(), Some("loader"));
        assert_eq!(c.password.as_ref().map(|p| p.expose()), Some("ch-pw"));
        assert_eq!(
            c.ca_cert.as_deref(),
            Some(std::path::Path::new("/ch-ca.pem"))
        );
        assert_eq!(c.compression, crate::clickhouse::InsertCompression::None);
        let shown = format!("{b:?}");
        for secret in ["sasl-pw", "key-pw", "ch-pw"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn settings_for_the_local_services_are_refused_by_name() {
        let b = bench(&["--brokers=", "--ssl-ca-location", "/ca.pem", "-X", "a=b"]);
        let e = b.kafka().unwrap_err().to_string();
        assert!(
            e.contains("--ssl-ca-location") && e.contains("-X") && e.contains("--brokers"),
            "{e}"
        );
        let b = bench(&["--clickhouse-url=", "--clickhouse-password", "pw-x"]);
        let e = b.clickhouse().unwrap_err().to_string();
        assert!(
            e.contains("--clickhouse-password") && e.contains("--clickhouse-url"),
            "{e}"
        );
        assert!(!e.contains("pw-x"), "{e}");
    }
}
