//! One measured pipeline run: topic and table provisioning, consumers,
//! the producer, the sampler, and waiting until every row is in ClickHouse.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use velostream_codecs::chtype::ChType;
use velostream_codecs::ddl::{self, CreateTable};

use super::cpu::{CpuSampler, CpuSplit, MachineCpu, ProcessCpu};
use super::timeline::{Sample, Timeline};
use crate::clickhouse::{ClickHouse, ClickHouseConfig, TableRef};
use crate::consumer::{self, ConsumeSummary, ConsumerConfig};
use crate::kafka::{admin, KafkaArgs};
use crate::metrics as m;
use crate::producer::{self, MessageFormat, ProduceSummary, ProducerConfig};
use crate::progress::Progress;
use crate::source::ParquetSource;
use crate::{Error, Result};

/// How long the row count may stand still before the run is declared stuck.
const STALL_TIMEOUT: Duration = Duration::from_secs(180);
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// Inputs of one run.
#[derive(Clone, Debug)]
pub struct RunSpec {
    pub name: String,
    pub kafka: KafkaArgs,
    pub clickhouse: ClickHouseConfig,
    pub topic: String,
    pub table: TableRef,
    pub partitions: usize,
    pub consumers: usize,
    pub insert_streams: usize,
    pub format: MessageFormat,
    pub transform: Option<std::path::PathBuf>,
    pub exactly_once: bool,
    /// Rows the table must reach.
    pub expected_rows: u64,
    /// For the JSON baseline: the table to create up front.
    pub precreate: Option<Vec<(String, ChType)>>,
    /// Rows per insert of each consumer lane.
    pub insert_rows: usize,
    pub producer: ProducerConfig,
    /// Service processes whose CPU time is accounted (name, pid).
    pub watch: Vec<(String, u32)>,
}

/// What one run measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RunResult {
    pub name: String,
    pub produce: ProduceSummary,
    pub consumers: Vec<ConsumeSummary>,
    pub rows_clickhouse: u64,
    /// Producer start → last row counted in ClickHouse.
    pub end_to_end_secs: f64,
    /// First row counted in ClickHouse → last row counted.
    pub consumer_secs: f64,
    pub timeline: Timeline,
    pub cpu: CpuSplit,
    /// CPU seconds of each watched service process during the run.
    pub services_cpu: BTreeMap<String, f64>,
    /// Average busy cores of the whole machine during the run.
    pub machine_busy_cores: f64,
}

/// Runs the pipeline once.
pub async fn run(spec: &RunSpec, source: Arc<ParquetSource>) -> Result<RunResult> {
    let ch = ClickHouse::new(spec.clickhouse.clone())?;
    let partitions = admin::ensure_topic(&spec.kafka, &spec.topic, Some(spec.partitions)).await?;
    if let Some(db) = &spec.table.database {
        ch.execute(&format!(
            "CREATE DATABASE IF NOT EXISTS {}",
            ddl::quote_ident(db)?
        ))
        .await?;
    }
    if let Some(cols) = &spec.precreate {
        let sql = CreateTable {
            database: spec.table.database.as_deref(),
            table: &spec.table.table,
            columns: cols,
            order_by: &[],
            if_not_exists: true,
        }
        .to_sql()?;
        ch.execute(&sql).await?;
    }

    // Consumers first: they join the group while the producer starts.
    let stop_consumers = Arc::new(AtomicBool::new(false));
    let assigned = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..spec.consumers.max(1) {
        let mut cfg = ConsumerConfig::new(
            spec.kafka.clone(),
            &spec.topic,
            format!("{}-group", spec.topic),
            spec.clickhouse.clone(),
            spec.table.clone(),
        );
        cfg.input_schema = Some(source.schema());
        cfg.transform = spec.transform.clone();
        cfg.create_table = true;
        cfg.exactly_once = spec.exactly_once;
        cfg.format = spec.format;
        cfg.lanes = spec.insert_streams.max(1);
        cfg.insert_rows = spec.insert_rows;
        cfg.assigned_partitions = Some(Arc::clone(&assigned));
        let stop = Arc::clone(&stop_consumers);
        tracing::info!(consumer = i, "starting consumer");
        tasks.push(tokio::spawn(consumer::run(cfg, stop)));
    }

    // Measure from the moment the group owns every partition.
    let join_deadline = Instant::now() + Duration::from_secs(60);
    while assigned.load(Ordering::SeqCst) < partitions {
        if Instant::now() > join_deadline || tasks.iter().any(|t| t.is_finished()) {
            tracing::warn!("consumers did not take every partition in time; starting anyway");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The sampler: rows produced vs rows in ClickHouse, CPU per thread.
    let produced = Arc::new(AtomicU64::new(0));
    let done_sampling = Arc::new(AtomicBool::new(false));
    let timeline = Arc::new(Mutex::new(Timeline::default()));
    let cpu = Arc::new(Mutex::new(CpuSampler::start()));
    let services_cpu = ProcessCpu::start(&spec.watch);
    let machine_cpu = MachineCpu::start();
    let started = Instant::now();
    let sampler = {
        let (ch, table) = (ch.clone(), spec.table.clone());
        let (produced, done, timeline, cpu) = (
            Arc::clone(&produced),
            Arc::clone(&done_sampling),
            Arc::clone(&timeline),
            Arc::clone(&cpu),
        );
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let rows = ch.count_rows(&table).await.unwrap_or(0);
                metrics::gauge!(m::CLICKHOUSE_ROWS).set(rows as f64);
                timeline
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .samples
                    .push(Sample {
                        t: started.elapsed().as_secs_f64(),
                        produced_rows: produced.load(Ordering::Relaxed),
                        clickhouse_rows: rows,
                    });
                cpu.lock().unwrap_or_else(|e| e.into_inner()).sample();
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
        })
    };

    // The producer, on its own named thread (for CPU accounting).
    let progress = Arc::new(Progress::new(
        &format!("{} produce", spec.name),
        Some(source.total_rows()),
    ));
    let produce = {
        let (cfg, source, progress_t) = (
            spec.producer.clone(),
            Arc::clone(&source),
            Arc::clone(&progress),
        );
        let produced_t = Arc::clone(&produced);
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("velostream-send".into())
            .spawn(move || {
                let r = producer::run(&cfg, source, partitions, stop, &progress_t);
                produced_t.store(progress_t.rows(), Ordering::Relaxed);
                let _ = tx.send(r);
            })
            .map_err(|e| Error::io("spawning the producer thread", e))?;
        // Mirror the producer's progress into the sampler while it runs.
        let (progress2, produced2) = (Arc::clone(&progress), Arc::clone(&produced));
        let mirror = tokio::spawn(async move {
            loop {
                produced2.store(progress2.rows(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let r = rx
            .await
            .map_err(|_| Error::Interrupted("the producer thread panicked".into()));
        mirror.abort();
        r?
    };
    progress.finish();
    let produce = match produce {
        Ok(p) => p,
        Err(e) => {
            stop_consumers.store(true, Ordering::Relaxed);
            done_sampling.store(true, Ordering::Relaxed);
            return Err(e);
        }
    };
    produced.store(produce.rows, Ordering::Relaxed);

    // Wait for every row, failing on a consumer error or a stall.
    let wait = Progress::new(&format!("{} insert", spec.name), Some(spec.expected_rows));
    let mut last = (0u64, Instant::now());
    let mut shown = 0u64;
    let end_to_end = loop {
        let rows = ch.count_rows(&spec.table).await?;
        wait.inc(rows.saturating_sub(shown), 0);
        shown = shown.max(rows);
        if rows >= spec.expected_rows {
            break started.elapsed().as_secs_f64();
        }
        if let Some(i) = tasks.iter().position(|t| t.is_finished()) {
            let t = tasks.swap_remove(i);
            stop_consumers.store(true, Ordering::Relaxed);
            done_sampling.store(true, Ordering::Relaxed);
            let why = match t.await {
                Ok(Err(e)) => e.to_string(),
                Ok(Ok(_)) => "it exited early".into(),
                Err(e) => format!("it panicked: {e}"),
            };
            return Err(Error::Validation(format!(
                "{}: consumer failed with {rows} of {} rows in ClickHouse: {why}",
                spec.name, spec.expected_rows
            )));
        }
        if rows != last.0 {
            last = (rows, Instant::now());
        } else if last.1.elapsed() > STALL_TIMEOUT {
            stop_consumers.store(true, Ordering::Relaxed);
            done_sampling.store(true, Ordering::Relaxed);
            return Err(Error::Validation(format!(
                "{}: no progress for {}s with {rows} of {} rows in ClickHouse",
                spec.name,
                STALL_TIMEOUT.as_secs(),
                spec.expected_rows
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    wait.finish();
    // One last sample at the finish line, then stop everything.
    let rows_clickhouse = ch.count_rows(&spec.table).await?;
    metrics::gauge!(m::CLICKHOUSE_ROWS).set(rows_clickhouse as f64);
    timeline
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .samples
        .push(Sample {
            t: end_to_end,
            produced_rows: produce.rows,
            clickhouse_rows: rows_clickhouse,
        });
    cpu.lock().unwrap_or_else(|e| e.into_inner()).sample();
    let services_cpu = services_cpu.seconds();
    let machine_busy_cores = machine_cpu.busy_cores();
    done_sampling.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    stop_consumers.store(true, Ordering::Relaxed);
    let mut consumers = Vec::new();
    for t in tasks {
        consumers.push(
            t.await
                .map_err(|e| Error::Interrupted(format!("a consumer panicked: {e}")))??,
        );
    }
    let timeline = timeline.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let first = timeline.first_insert_t().unwrap_or(0.0);
    let cpu = cpu.lock().unwrap_or_else(|e| e.into_inner()).split();
    Ok(RunResult {
        name: spec.name.clone(),
        produce,
        consumers,
        rows_clickhouse,
        end_to_end_secs: end_to_end,
        // The first sample with rows is at most one interval after the first insert.
        consumer_secs: (end_to_end - first + SAMPLE_EVERY.as_secs_f64())
            .max(SAMPLE_EVERY.as_secs_f64()),
        timeline,
        cpu,
        services_cpu,
        machine_busy_cores,
    })
}
