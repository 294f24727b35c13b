//! `velostream bench`: the whole pipeline, measured and validated in one
//! command, with the original design and ClickHouse's own insert measured
//! side by side on the same data and services.
//!
//! Steps: services (local ones started when no endpoints are given) →
//! input (a generated taxi data set unless given) → one pass computing the
//! expected checksum (and the Native file for `--compare native-file`) →
//! the VeloStream run → the comparisons → validation → report.

pub mod chart;
pub mod checksum;
pub mod cpu;
pub mod decode;
pub mod expected;
pub mod freshness;
pub mod latency;
pub mod native_file;
pub mod parts;
pub mod pipeline;
pub mod report;
pub mod shards;
pub mod table;
pub mod targets;
pub mod timeline;

use std::path::PathBuf;
use std::sync::Arc;

use velostream_codecs::chtype::ChType;
use velostream_codecs::ipc::IpcCompression;
use velostream_codecs::mapping::{self, ServerCaps};

use crate::clickhouse::config::redact_url;
use crate::clickhouse::{ClickHouse, ClickHouseConfig, InsertCompression, TableRef, Topology};
use crate::kafka::KafkaArgs;
use crate::local::{LocalOptions, LocalServices, Service};
use crate::producer::{MessageFormat, ProducerConfig};
use crate::source::{self, ParquetSource, SourceOptions};
use crate::{Error, Result};
use decode::DecodeResult;
use native_file::NativeFileResult;
use report::{Report, ShardRows};
use shards::Servers;

/// Which comparisons to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Compare {
    /// The original design: one JSON message per row, JSONEachRow inserts.
    JsonRows,
    /// ClickHouse inserting the same rows from pre-encoded Native data.
    NativeFile,
    /// A bare decode of the same Parquet files with the producer's parallelism.
    ParquetDecode,
}

/// Everything the bench needs.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub rows: u64,
    pub inputs: Vec<String>,
    pub kafka: Option<KafkaArgs>,
    /// Client settings of your ClickHouse (the first server's URL), or
    /// `None` for a local clickhouse-server.
    pub clickhouse: Option<ClickHouseConfig>,
    /// Your servers, by shard (with `clickhouse`).
    pub topology: Option<Topology>,
    /// The servers' cluster name (`--cluster`).
    pub cluster: Option<String>,
    pub partitions: usize,
    pub consumers: usize,
    pub insert_streams: usize,
    pub transform: Option<PathBuf>,
    pub compare: Vec<Compare>,
    pub report_json: Option<PathBuf>,
    pub chart: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub seed: u64,
    pub exactly_once: bool,
    pub keep_tables: bool,
    /// Arrow body compression of the VeloStream producer.
    pub ipc_compression: IpcCompression,
    /// With LZ4: the ratio a buffer must shrink by to be compressed.
    pub lz4_min_ratio: f64,
    /// librdkafka compression.type of the VeloStream producer.
    pub kafka_compression: String,
    /// Row groups decoded in parallel by the producer (default: CPUs).
    pub producer_parallelism: Option<usize>,
    /// Rows per insert of the consumers (and of the native-file comparison).
    pub insert_rows: usize,
    /// Compression of every insert body (pipeline and native-file).
    pub insert_compression: InsertCompression,
    /// Print the performance targets checked on the report's ratios.
    pub targets: bool,
    /// After the backlog run, stream at this steady rate for `duration` and
    /// measure end-to-end latency (`--rate`, `--duration`).
    pub freshness: Option<(freshness::Rate, std::time::Duration)>,
}

impl BenchConfig {
    /// Applies the VeloStream producer settings (the JSON baseline keeps its defaults).
    fn tune(&self, p: &mut ProducerConfig) {
        p.ipc_compression = self.ipc_compression;
        p.lz4_min_ratio = self.lz4_min_ratio;
        p.kafka_compression = self.kafka_compression.clone();
        if let Some(n) = self.producer_parallelism {
            p.parallelism = n.max(1);
        }
    }
}

/// Runs the bench; returns the report. Fails when validation fails.
/// Local services it starts are stopped on every path.
pub async fn run(cfg: BenchConfig) -> Result<Report> {
    let local = start_local_services(&cfg).await?;
    let result = run_with_services(&cfg, local.as_ref()).await;
    if let Some(l) = local {
        stop_local_services(l).await;
    }
    result
}

/// The bench's phases, on running services.
async fn run_with_services(cfg: &BenchConfig, local: Option<&LocalServices>) -> Result<Report> {
    let env = endpoints(cfg, local)?;
    let servers = Servers::new(&env.topology, &env.clickhouse)?;
    let version = servers.first().server_version().await?;
    let input = prepare_input(cfg, version.caps()).await?;
    eprintln!(
        "bench: {} rows in {} files, {} row groups; ClickHouse {version} ({} shard(s)); Kafka {}",
        input.rows_source,
        input.files,
        input.source.row_groups().len(),
        servers.shard_count(),
        env.kafka.brokers
    );
    let names = Names::new();
    let decode = bare_decode(cfg, &input.source).await?;
    let main = run_velostream(cfg, &env, &names, &input, local).await?;
    let differences = differences(&servers, &names.table("arrow"), &input).await?;
    let json_rows = compare_json_rows(cfg, &env, &names, &input, version.caps(), local).await?;
    let native = compare_native_file(cfg, servers.first(), &names, &input, local).await?;
    let fresh = stream_steadily(cfg, &env, &names, &input, local, &main).await?;
    if !cfg.keep_tables {
        drop_tables(&servers, &names).await;
    }
    let report = Report::new(
        &main,
        report::Validation {
            table: names.table("arrow").to_string(),
            rows_source: input.rows_source,
            differences,
        },
        report::Comparisons {
            json_rows: json_rows.as_ref(),
            native: native.as_ref(),
            decode: decode.as_ref(),
        },
        machine(cfg, &version.to_string(), &env),
        shard_rows(&main, &env, cfg.partitions),
    );
    let report = Report {
        freshness: fresh,
        ..report
    };
    write_outputs(cfg, &report, &main)?;
    if !report.validated {
        return Err(Error::Validation(format!(
            "ClickHouse table differs from the source: {}",
            report.differences.join("; ")
        )));
    }
    Ok(report)
}

/// Starts the services no endpoint was given for (they die with this
/// process, even if it is killed).
async fn start_local_services(cfg: &BenchConfig) -> Result<Option<LocalServices>> {
    let mut need = Vec::new();
    if cfg.kafka.is_none() {
        need.push(Service::Kafka);
    }
    if cfg.clickhouse.is_none() {
        need.push(Service::ClickHouse);
    }
    if need.is_empty() {
        return Ok(None);
    }
    eprintln!("bench: starting local services ({need:?}); pass --brokers and --clickhouse-url to use your own");
    let options = LocalOptions {
        owner_pid: Some(std::process::id()),
        ..LocalOptions::default()
    };
    let started = tokio::task::spawn_blocking(move || LocalServices::start(&need, &options))
        .await
        .map_err(|e| Error::Services(format!("start task failed: {e}")))??;
    Ok(Some(started))
}

async fn stop_local_services(l: LocalServices) {
    if let Err(e) = tokio::task::spawn_blocking(move || l.stop())
        .await
        .unwrap_or(Ok(()))
    {
        eprintln!("bench: stopping local services: {e}");
    }
}

/// Where the bench's Kafka and ClickHouse are.
struct Endpoints {
    kafka: KafkaArgs,
    /// Client settings of every server; the URL is the first server's.
    clickhouse: ClickHouseConfig,
    topology: Topology,
    cluster: Option<String>,
}

fn endpoints(cfg: &BenchConfig, local: Option<&LocalServices>) -> Result<Endpoints> {
    let given = |what: &str| Error::Services(format!("no {what}"));
    let kafka = match (
        &cfg.kafka,
        local.and_then(|l| l.endpoints().brokers.clone()),
    ) {
        (Some(k), _) => k.clone(),
        (None, Some(b)) => KafkaArgs::new(b),
        (None, None) => return Err(given("Kafka brokers")),
    };
    let mut clickhouse = match (
        &cfg.clickhouse,
        local.and_then(|l| l.endpoints().clickhouse_url.clone()),
    ) {
        (Some(c), _) => c.clone(),
        (None, Some(u)) => ClickHouseConfig::new(u),
        (None, None) => return Err(given("ClickHouse URL")),
    };
    clickhouse.compression = cfg.insert_compression;
    let topology = match (&cfg.clickhouse, &cfg.topology) {
        (Some(_), Some(t)) => t.clone(),
        _ => Topology::single(clickhouse.url.clone()),
    };
    Ok(Endpoints {
        kafka,
        clickhouse,
        topology,
        cluster: cfg.cluster.clone(),
    })
}

/// The run's topic and table names (unique per run).
struct Names {
    run_id: String,
    database: String,
}

impl Names {
    fn new() -> Names {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Names {
            run_id: format!("{t}_{}", std::process::id()),
            database: "velostream_bench".into(),
        }
    }

    /// `kind`: arrow (VeloStream), json (the baseline) or native (the file insert).
    fn table(&self, kind: &str) -> TableRef {
        TableRef {
            database: Some(self.database.clone()),
            table: format!("{kind}_{}", self.run_id),
        }
    }

    fn topic(&self, kind: &str) -> String {
        match kind {
            "arrow" => format!("velostream_bench_{}", self.run_id),
            other => format!("velostream_bench_{other}_{}", self.run_id),
        }
    }
}

/// The input and what ClickHouse must hold after the run.
struct Input {
    files: usize,
    source: Arc<ParquetSource>,
    rows_source: u64,
    /// The table's data columns (the transform's output, mapped).
    columns: Vec<(String, ChType)>,
    prepared: expected::Prepared,
    native_path: PathBuf,
    insert_rows: usize,
    _scratch: tempfile::TempDir,
}

/// Opens (or generates) the input and computes the expected checksum, and
/// the Native file for `--compare native-file`, outside the measurement.
async fn prepare_input(cfg: &BenchConfig, caps: ServerCaps) -> Result<Input> {
    let files = if cfg.inputs.is_empty() {
        generated_input(cfg).await?
    } else {
        source::discover(&cfg.inputs)?
    };
    let source = Arc::new(ParquetSource::open(&files, &SourceOptions::default())?);
    let transform = expected::plan_transform(&source, cfg.transform.as_deref())?;
    let out_schema = expected::output_schema(&source, transform.as_ref());
    let columns = mapping::table_columns(&out_schema, caps)?;
    let scratch = tempfile::tempdir().map_err(|e| Error::io("creating a scratch directory", e))?;
    let native_path = scratch.path().join("bench.native");
    let want_native = cfg.compare.contains(&Compare::NativeFile);
    let insert_rows = cfg.insert_rows.max(1);
    eprintln!(
        "bench: computing the expected checksum{}",
        if want_native {
            " and the Native file"
        } else {
            ""
        }
    );
    let prepared = expected::prepare(
        &source,
        transform.as_ref(),
        &out_schema,
        &columns,
        want_native.then_some((native_path.as_path(), insert_rows)),
    )
    .await?;
    Ok(Input {
        files: files.len(),
        rows_source: source.total_rows(),
        source,
        columns,
        prepared,
        native_path,
        insert_rows,
        _scratch: scratch,
    })
}

/// `--compare parquet-decode`: the producer's ceiling, a bare decode with
/// the same parallelism.
async fn bare_decode(
    cfg: &BenchConfig,
    source: &Arc<ParquetSource>,
) -> Result<Option<DecodeResult>> {
    if !cfg.compare.contains(&Compare::ParquetDecode) {
        return Ok(None);
    }
    let mut p = ProducerConfig::new(KafkaArgs::new(String::new()), String::new());
    cfg.tune(&mut p);
    let (src, threads, batch) = (Arc::clone(source), p.parallelism, p.read_batch_rows);
    let r = tokio::task::spawn_blocking(move || decode::run(&src, threads, batch))
        .await
        .map_err(|e| Error::Interrupted(format!("decode task failed: {e}")))??;
    eprintln!(
        "bench: bare Parquet decode: {:.0} rows/s with {} threads",
        r.rows_per_s, r.threads
    );
    Ok(Some(r))
}

/// The CPU of the local services is accounted too (unknown for your own).
fn watched(local: Option<&LocalServices>, services: &[(&str, Service)]) -> Vec<(String, u32)> {
    services
        .iter()
        .filter_map(|(name, svc)| {
            local
                .and_then(|l| l.pid(*svc))
                .map(|p| (name.to_string(), p))
        })
        .collect()
}

/// The VeloStream pipeline over every shard.
fn velostream_spec(
    cfg: &BenchConfig,
    env: &Endpoints,
    names: &Names,
    input: &Input,
    local: Option<&LocalServices>,
) -> pipeline::RunSpec {
    let mut producer = ProducerConfig::new(env.kafka.clone(), names.topic("arrow"));
    cfg.tune(&mut producer);
    pipeline::RunSpec {
        name: "velostream".into(),
        kafka: env.kafka.clone(),
        clickhouse: env.clickhouse.clone(),
        topology: env.topology.clone(),
        cluster: env.cluster.clone(),
        topic: producer.topic.clone(),
        table: names.table("arrow"),
        partitions: cfg.partitions,
        consumers: cfg.consumers,
        insert_streams: cfg.insert_streams,
        format: MessageFormat::Arrow,
        transform: cfg.transform.clone(),
        exactly_once: cfg.exactly_once,
        expected_rows: input.prepared.checksum.rows,
        precreate: None,
        insert_rows: input.insert_rows,
        producer,
        watch: watched(
            local,
            &[
                ("tansu", Service::Kafka),
                ("clickhouse", Service::ClickHouse),
            ],
        ),
    }
}

async fn run_velostream(
    cfg: &BenchConfig,
    env: &Endpoints,
    names: &Names,
    input: &Input,
    local: Option<&LocalServices>,
) -> Result<pipeline::RunResult> {
    let spec = velostream_spec(cfg, env, names, input, local);
    pipeline::run(&spec, Arc::clone(&input.source)).await
}

/// `--rate`: the freshness phase, at a rate of its own or a share of the
/// backlog's end-to-end rate measured just before.
async fn stream_steadily(
    cfg: &BenchConfig,
    env: &Endpoints,
    names: &Names,
    input: &Input,
    local: Option<&LocalServices>,
    main: &pipeline::RunResult,
) -> Result<Option<freshness::Freshness>> {
    let Some((rate, duration)) = cfg.freshness else {
        return Ok(None);
    };
    let backlog = main.rows_clickhouse as f64 / main.end_to_end_secs.max(1e-9);
    let share = match rate {
        freshness::Rate::OfBacklog(s) => Some(s),
        freshness::Rate::RowsPerS(_) => None,
    };
    let mut spec = velostream_spec(cfg, env, names, input, local);
    spec.name = "freshness".into();
    spec.topic = names.topic("fresh");
    spec.table = names.table("fresh");
    spec.transform = None;
    freshness::run(&spec, rate.rows_per_s(backlog), share, duration)
        .await
        .map(Some)
}

/// How the table differs from the source (empty when equal): count and
/// per-column checksums over the union of the shards.
async fn differences(servers: &Servers, table: &TableRef, input: &Input) -> Result<Vec<String>> {
    let table_columns = servers
        .first()
        .table_columns(table)
        .await?
        .ok_or_else(|| Error::Validation(format!("table {table} disappeared")))?;
    let data_columns: Vec<_> = input
        .columns
        .iter()
        .filter_map(|(n, _)| table_columns.iter().find(|(m, _)| m == n).cloned())
        .collect();
    let mut actual = checksum::Checksum::default();
    for part in servers.checksums(table, &data_columns).await? {
        actual.merge(&part);
    }
    Ok(checksum::differences(&input.prepared.checksum, &actual))
}

/// `--compare json-rows`: the original design on the same data, into the
/// first server.
async fn compare_json_rows(
    cfg: &BenchConfig,
    env: &Endpoints,
    names: &Names,
    input: &Input,
    caps: ServerCaps,
    local: Option<&LocalServices>,
) -> Result<Option<pipeline::RunResult>> {
    if !cfg.compare.contains(&Compare::JsonRows) {
        return Ok(None);
    }
    let mut producer = ProducerConfig::new(env.kafka.clone(), names.topic("json"));
    producer.format = MessageFormat::JsonRows;
    let spec = pipeline::RunSpec {
        name: "json-rows".into(),
        topology: Topology::single(env.clickhouse.url.clone()),
        cluster: None,
        topic: producer.topic.clone(),
        table: names.table("json"),
        format: MessageFormat::JsonRows,
        transform: None,
        exactly_once: false,
        expected_rows: input.rows_source,
        precreate: Some(mapping::table_columns(&input.source.schema(), caps)?),
        producer,
        ..velostream_spec(cfg, env, names, input, local)
    };
    Ok(Some(pipeline::run(&spec, Arc::clone(&input.source)).await?))
}

/// `--compare native-file`: ClickHouse's own insert of the same rows into
/// the first server, with as many streams as the pipeline's insert lanes.
async fn compare_native_file(
    cfg: &BenchConfig,
    ch: &ClickHouse,
    names: &Names,
    input: &Input,
    local: Option<&LocalServices>,
) -> Result<Option<NativeFileResult>> {
    if !cfg.compare.contains(&Compare::NativeFile) {
        return Ok(None);
    }
    let t = names.table("native");
    let sql = velostream_codecs::ddl::CreateTable {
        database: t.database.as_deref(),
        table: &t.table,
        columns: &input.columns,
        order_by: &[],
        if_not_exists: true,
    }
    .to_sql()?;
    ch.execute(&sql).await?;
    let streams = cfg.consumers.max(1) * cfg.insert_streams.max(1);
    eprintln!("bench: native-file insert with {streams} streams");
    let r = native_file::run(
        ch,
        &t,
        &input.native_path,
        &input.prepared.native_chunks,
        streams,
        local.and_then(|l| l.pid(Service::ClickHouse)),
    )
    .await?;
    let n = ch.count_rows(&t).await?;
    if n != input.prepared.checksum.rows {
        return Err(Error::Validation(format!(
            "native-file insert stored {n} rows, expected {}",
            input.prepared.checksum.rows
        )));
    }
    Ok(Some(r))
}

/// Drops the run's tables everywhere (best effort).
async fn drop_tables(servers: &Servers, names: &Names) {
    let distributed = |t: &TableRef| TableRef {
        database: t.database.clone(),
        table: crate::consumer::table::distributed_name(t),
    };
    let (arrow, fresh) = (names.table("arrow"), names.table("fresh"));
    let tables = [
        distributed(&arrow),
        arrow,
        distributed(&fresh),
        fresh,
        names.table("json"),
        names.table("native"),
    ];
    for ch in servers.all() {
        for t in &tables {
            if let Ok(name) = t.sql() {
                let _ = ch.execute(&format!("DROP TABLE IF EXISTS {name}")).await;
            }
        }
    }
}

/// The settings and machine of the run, for the report.
fn machine(cfg: &BenchConfig, clickhouse_version: &str, env: &Endpoints) -> report::Machine {
    report::Machine {
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        clickhouse_version: clickhouse_version.to_string(),
        partitions: cfg.partitions,
        consumers: cfg.consumers,
        insert_streams_per_consumer: cfg.insert_streams,
        transform: cfg.transform.as_ref().map(|p| p.display().to_string()),
        exactly_once: cfg.exactly_once,
        ipc_compression: format!("{:?}", cfg.ipc_compression).to_lowercase(),
        lz4_min_ratio: (cfg.ipc_compression == IpcCompression::Lz4Frame)
            .then_some(cfg.lz4_min_ratio),
        kafka_compression: cfg.kafka_compression.clone(),
        insert_compression: cfg.insert_compression.as_str().to_string(),
        insert_rows: cfg.insert_rows,
        shards: env.topology.len(),
        cluster: env.cluster.clone(),
    }
}

/// Rows per shard, with the partitions routed to it, when there are
/// several shards.
fn shard_rows(main: &pipeline::RunResult, env: &Endpoints, partitions: usize) -> Vec<ShardRows> {
    if env.topology.len() < 2 {
        return Vec::new();
    }
    env.topology
        .shards
        .iter()
        .enumerate()
        .map(|(i, replicas)| {
            let rows = main.rows_per_shard.get(i).copied().unwrap_or(0);
            ShardRows {
                shard: i + 1,
                replicas: replicas.iter().map(|u| redact_url(u)).collect(),
                partitions: (0..partitions as i32)
                    .filter(|p| env.topology.shard_of(*p) == i)
                    .collect(),
                rows,
                rows_per_s: rows as f64 / main.consumer_secs.max(1e-9),
            }
        })
        .collect()
}

/// The table on the terminal, and the JSON report and chart when asked for.
fn write_outputs(cfg: &BenchConfig, report: &Report, main: &pipeline::RunResult) -> Result<()> {
    println!("\nVeloStream bench\n{}", table::table(report));
    if cfg.targets {
        println!("{}", targets::render(report));
    }
    if let Some(p) = &cfg.report_json {
        let text = serde_json::to_string_pretty(report)
            .map_err(|e| Error::Validation(format!("encoding the report: {e}")))?;
        std::fs::write(p, text).map_err(|e| Error::io(format!("writing {}", p.display()), e))?;
        eprintln!("bench: report written to {}", p.display());
    }
    if let Some(p) = &cfg.chart {
        std::fs::write(p, chart::svg("VeloStream end to end", &main.timeline))
            .map_err(|e| Error::io(format!("writing {}", p.display()), e))?;
        eprintln!("bench: chart written to {}", p.display());
    }
    Ok(())
}

/// The generated taxi data set for `cfg.rows`, reused when already there.
async fn generated_input(cfg: &BenchConfig) -> Result<Vec<PathBuf>> {
    let dir = cfg
        .data_dir
        .join(format!("taxi-{}-seed{}", cfg.rows, cfg.seed));
    let marker = dir.join(".complete");
    if !marker.exists() {
        eprintln!(
            "bench: generating {} taxi rows into {}",
            cfg.rows,
            dir.display()
        );
        let gen = crate::gen::GenConfig {
            rows: cfg.rows,
            out: dir.clone(),
            files: ((cfg.rows / 5_000_000) as usize).clamp(1, 16),
            row_group_rows: crate::gen::DEFAULT_ROW_GROUP_ROWS,
            seed: cfg.seed,
        };
        tokio::task::spawn_blocking(move || {
            let progress = crate::progress::Progress::new("gen", Some(gen.rows));
            let r = crate::gen::generate(&gen, &progress);
            progress.finish();
            r
        })
        .await
        .map_err(|e| Error::Interrupted(format!("generator panicked: {e}")))??;
        std::fs::write(&marker, b"")
            .map_err(|e| Error::io(format!("writing {}", marker.display()), e))?;
    }
    source::discover(&[dir.display().to_string()])
}
