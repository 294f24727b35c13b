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
pub mod native_file;
pub mod pipeline;
pub mod report;
pub mod timeline;

use std::path::PathBuf;
use std::sync::Arc;

use velostream_codecs::ipc::IpcCompression;
use velostream_codecs::mapping;

use crate::clickhouse::{ClickHouse, ClickHouseConfig, InsertCompression, TableRef};
use crate::kafka::KafkaArgs;
use crate::local::{LocalOptions, LocalServices, Service};
use crate::producer::{MessageFormat, ProducerConfig};
use crate::source::{self, ParquetSource, SourceOptions};
use crate::{Error, Result};

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
    pub clickhouse: Option<ClickHouseConfig>,
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
    /// librdkafka compression.type of the VeloStream producer.
    pub kafka_compression: String,
    /// Row groups decoded in parallel by the producer (default: CPUs).
    pub producer_parallelism: Option<usize>,
    /// Rows per insert of the consumers (and of the native-file comparison).
    pub insert_rows: usize,
    /// Compression of every insert body (pipeline and native-file).
    pub insert_compression: InsertCompression,
}

impl BenchConfig {
    /// Applies the VeloStream producer settings (the JSON baseline keeps its defaults).
    fn tune(&self, p: &mut ProducerConfig) {
        p.ipc_compression = self.ipc_compression;
        p.kafka_compression = self.kafka_compression.clone();
        if let Some(n) = self.producer_parallelism {
            p.parallelism = n.max(1);
        }
    }
}

/// Runs the bench; returns the JSON report. Fails when validation fails.
pub async fn run(cfg: BenchConfig) -> Result<serde_json::Value> {
    // Services.
    let mut need = Vec::new();
    if cfg.kafka.is_none() {
        need.push(Service::Kafka);
    }
    if cfg.clickhouse.is_none() {
        need.push(Service::ClickHouse);
    }
    let local = if need.is_empty() {
        None
    } else {
        eprintln!("bench: starting local services ({need:?}); pass --brokers and --clickhouse-url to use your own");
        let need2 = need.clone();
        Some(
            tokio::task::spawn_blocking(move || {
                LocalServices::start(
                    &need2,
                    &LocalOptions {
                        // Services this run starts die with it, even if it is killed.
                        owner_pid: Some(std::process::id()),
                        ..LocalOptions::default()
                    },
                )
            })
            .await
            .map_err(|e| Error::Services(format!("start task failed: {e}")))??,
        )
    };
    let result = run_with_services(&cfg, local.as_ref()).await;
    if let Some(l) = local {
        if let Err(e) = tokio::task::spawn_blocking(move || l.stop())
            .await
            .unwrap_or(Ok(()))
        {
            eprintln!("bench: stopping local services: {e}");
        }
    }
    result
}

async fn run_with_services(
    cfg: &BenchConfig,
    local: Option<&LocalServices>,
) -> Result<serde_json::Value> {
    let kafka = match (
        &cfg.kafka,
        local.and_then(|l| l.endpoints().brokers.clone()),
    ) {
        (Some(k), _) => k.clone(),
        (None, Some(b)) => KafkaArgs::new(b),
        (None, None) => return Err(Error::Services("no Kafka brokers".into())),
    };
    let mut clickhouse = match (
        &cfg.clickhouse,
        local.and_then(|l| l.endpoints().clickhouse_url.clone()),
    ) {
        (Some(c), _) => c.clone(),
        (None, Some(u)) => ClickHouseConfig::new(u),
        (None, None) => return Err(Error::Services("no ClickHouse URL".into())),
    };
    clickhouse.compression = cfg.insert_compression;
    let ch = ClickHouse::new(clickhouse.clone())?;
    let version = ch.server_version().await?;
    let caps = version.caps();

    // Input.
    let files = if cfg.inputs.is_empty() {
        generated_input(cfg).await?
    } else {
        source::discover(&cfg.inputs)?
    };
    let source = Arc::new(ParquetSource::open(&files, &SourceOptions::default())?);
    let rows_source = source.total_rows();
    eprintln!(
        "bench: {} rows in {} files, {} row groups; ClickHouse {version}; Kafka {}",
        rows_source,
        files.len(),
        source.row_groups().len(),
        kafka.brokers
    );

    // Expected data (outside the measurement).
    let transform = expected::plan_transform(&source, cfg.transform.as_deref())?;
    let out_schema = expected::output_schema(&source, transform.as_ref());
    let columns = mapping::table_columns(&out_schema, caps)?;
    let run_id = run_id();
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
    let database = "velostream_bench".to_string();
    let table = |kind: &str| TableRef {
        database: Some(database.clone()),
        table: format!("{kind}_{run_id}"),
    };

    // The producer's ceiling: a bare decode with the same parallelism.
    let mut producer_defaults = ProducerConfig::new(kafka.clone(), String::new());
    cfg.tune(&mut producer_defaults);
    let parquet_decode = if cfg.compare.contains(&Compare::ParquetDecode) {
        let (src, threads, batch) = (
            Arc::clone(&source),
            producer_defaults.parallelism,
            producer_defaults.read_batch_rows,
        );
        let r = tokio::task::spawn_blocking(move || decode::run(&src, threads, batch))
            .await
            .map_err(|e| Error::Interrupted(format!("decode task failed: {e}")))??;
        eprintln!(
            "bench: bare Parquet decode: {:.0} rows/s with {} threads",
            r.rows_per_s, r.threads
        );
        Some(r)
    } else {
        None
    };

    // VeloStream.
    // CPU of the local services is accounted too (unknown for your own services).
    let pid_of = |svc: Service| local.and_then(|l| l.pid(svc));
    let watch: Vec<(String, u32)> = [
        ("tansu", Service::Kafka),
        ("clickhouse", Service::ClickHouse),
    ]
    .into_iter()
    .filter_map(|(name, svc)| pid_of(svc).map(|p| (name.to_string(), p)))
    .collect();
    let mut producer = ProducerConfig::new(kafka.clone(), format!("velostream_bench_{run_id}"));
    cfg.tune(&mut producer);
    let spec = pipeline::RunSpec {
        name: "velostream".into(),
        kafka: kafka.clone(),
        clickhouse: clickhouse.clone(),
        topic: producer.topic.clone(),
        table: table("arrow"),
        partitions: cfg.partitions,
        consumers: cfg.consumers,
        insert_streams: cfg.insert_streams,
        format: MessageFormat::Arrow,
        transform: cfg.transform.clone(),
        exactly_once: cfg.exactly_once,
        expected_rows: prepared.checksum.rows,
        precreate: None,
        insert_rows,
        producer,
        watch,
    };
    let main = pipeline::run(&spec, Arc::clone(&source)).await?;
    let table_columns = ch
        .table_columns(&spec.table)
        .await?
        .ok_or_else(|| Error::Validation(format!("table {} disappeared", spec.table)))?;
    let data_columns: Vec<_> = columns
        .iter()
        .filter_map(|(n, _)| table_columns.iter().find(|(m, _)| m == n).cloned())
        .collect();
    let actual = checksum::from_clickhouse(&ch, &spec.table, &data_columns).await?;
    let differences = checksum::differences(&prepared.checksum, &actual);

    // The original design on the same data and services.
    let json_rows = if cfg.compare.contains(&Compare::JsonRows) {
        let mut producer =
            ProducerConfig::new(kafka.clone(), format!("velostream_bench_json_{run_id}"));
        producer.format = MessageFormat::JsonRows;
        let spec = pipeline::RunSpec {
            name: "json-rows".into(),
            topic: producer.topic.clone(),
            table: table("json"),
            format: MessageFormat::JsonRows,
            transform: None,
            exactly_once: false,
            expected_rows: rows_source,
            precreate: Some(mapping::table_columns(&source.schema(), caps)?),
            producer,
            ..spec.clone()
        };
        Some(pipeline::run(&spec, Arc::clone(&source)).await?)
    } else {
        None
    };

    // ClickHouse's own insert of the same rows.
    let native = if want_native {
        let t = table("native");
        let sql = velostream_codecs::ddl::CreateTable {
            database: t.database.as_deref(),
            table: &t.table,
            columns: &columns,
            order_by: &[],
            if_not_exists: true,
        }
        .to_sql()?;
        ch.execute(&sql).await?;
        let streams = cfg.consumers.max(1) * cfg.insert_streams.max(1);
        eprintln!("bench: native-file insert with {streams} streams");
        let r = native_file::run(
            &ch,
            &t,
            &native_path,
            &prepared.native_chunks,
            streams,
            pid_of(Service::ClickHouse),
        )
        .await?;
        let n = ch.count_rows(&t).await?;
        if n != prepared.checksum.rows {
            return Err(Error::Validation(format!(
                "native-file insert stored {n} rows, expected {}",
                prepared.checksum.rows
            )));
        }
        Some(r)
    } else {
        None
    };

    if !cfg.keep_tables {
        for kind in ["arrow", "json", "native"] {
            let _ = ch
                .execute(&format!("DROP TABLE IF EXISTS {}", table(kind).sql()?))
                .await;
        }
    }

    let validated = differences.is_empty();
    let machine = serde_json::json!({
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "clickhouse_version": version.to_string(),
        "partitions": cfg.partitions,
        "consumers": cfg.consumers,
        "insert_streams_per_consumer": cfg.insert_streams,
        "transform": cfg.transform.as_ref().map(|p| p.display().to_string()),
        "exactly_once": cfg.exactly_once,
        "ipc_compression": format!("{:?}", cfg.ipc_compression).to_lowercase(),
        "kafka_compression": cfg.kafka_compression,
        "insert_compression": cfg.insert_compression.as_str(),
        "insert_rows": cfg.insert_rows,
    });
    let doc = report::document(
        rows_source,
        &main,
        validated,
        &differences,
        report::Comparisons {
            json_rows: json_rows.as_ref(),
            native: native.as_ref(),
            decode: parquet_decode.as_ref(),
        },
        machine,
    );
    println!("\nVeloStream bench\n{}", report::table(&doc));
    if let Some(p) = &cfg.report_json {
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        std::fs::write(p, text).map_err(|e| Error::io(format!("writing {}", p.display()), e))?;
        eprintln!("bench: report written to {}", p.display());
    }
    if let Some(p) = &cfg.chart {
        std::fs::write(p, chart::svg("VeloStream end to end", &main.timeline))
            .map_err(|e| Error::io(format!("writing {}", p.display()), e))?;
        eprintln!("bench: chart written to {}", p.display());
    }
    if !validated {
        return Err(Error::Validation(format!(
            "ClickHouse table differs from the source: {}",
            differences.join("; ")
        )));
    }
    Ok(doc)
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

fn run_id() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{t}_{}", std::process::id())
}
