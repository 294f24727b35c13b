//! One measured pipeline run, in phases: provision the topic and database,
//! start the consumers, start the sampler, produce, wait until every row is
//! in ClickHouse, stop. The consumers and the sampler are guards: whatever
//! phase fails, they are stopped (and awaited) before the run returns, so
//! nothing keeps running while the caller stops the services under it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use velostream_codecs::chtype::ChType;
use velostream_codecs::ddl::{self, CreateTable};

use super::cpu::{CpuSampler, CpuSplit, MachineCpu, ProcessCpu};
use super::parts::{self, PartActivity};
use super::shards::Servers;
use super::timeline::{Sample, Timeline};
use crate::clickhouse::{ClickHouseConfig, TableRef, Topology};
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
    /// Client settings of every server (the URL is the topology's).
    pub clickhouse: ClickHouseConfig,
    /// The shards and replicas inserted into.
    pub topology: Topology,
    /// The servers' cluster name (`--cluster`).
    pub cluster: Option<String>,
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
    /// Rows on each shard at the end.
    pub rows_per_shard: Vec<u64>,
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
    /// Parts and merges of the table during the run (when the server logs them).
    pub parts: Option<PartActivity>,
}

/// Runs the pipeline once.
pub async fn run(spec: &RunSpec, source: Arc<ParquetSource>) -> Result<RunResult> {
    let servers = Servers::new(&spec.topology, &spec.clickhouse)?;
    let partitions = provision(spec, &servers).await?;
    let mut consumers = Consumers::start(spec, source.schema());
    consumers.wait_until_assigned(partitions).await;
    let sampler = Sampler::start(&servers, spec);
    let started = parts::now_unix();
    let measured = measure(spec, &servers, &mut consumers, &sampler, source, partitions).await;
    let sampled = sampler.stop().await;
    let summaries = consumers.stop().await;
    let (produce, end_to_end) = measured?;
    let consumers = summaries?;
    let rows_per_shard = servers.rows_per_shard(&spec.table).await?;
    let rows_clickhouse = rows_per_shard.iter().sum();
    let parts = parts::part_activity(servers.all(), &spec.table, started, rows_clickhouse).await?;
    let first = sampled.timeline.first_insert_t().unwrap_or(0.0);
    Ok(RunResult {
        name: spec.name.clone(),
        produce,
        consumers,
        rows_clickhouse,
        rows_per_shard,
        end_to_end_secs: end_to_end,
        // The first sample with rows is at most one interval after the first insert.
        consumer_secs: (end_to_end - first + SAMPLE_EVERY.as_secs_f64())
            .max(SAMPLE_EVERY.as_secs_f64()),
        timeline: sampled.timeline,
        cpu: sampled.cpu,
        services_cpu: sampled.services_cpu,
        machine_busy_cores: sampled.machine_busy_cores,
        parts,
    })
}

/// The topic, the database on every server and, for the JSON baseline, the
/// table. Returns the topic's partition count.
pub(super) async fn provision(spec: &RunSpec, servers: &Servers) -> Result<usize> {
    let partitions = admin::ensure_topic(&spec.kafka, &spec.topic, Some(spec.partitions)).await?;
    for ch in servers.all() {
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
    }
    Ok(partitions)
}

/// Produces the input and waits for every row; returns the producer's
/// summary and the end-to-end seconds.
async fn measure(
    spec: &RunSpec,
    servers: &Servers,
    consumers: &mut Consumers,
    sampler: &Sampler,
    source: Arc<ParquetSource>,
    partitions: usize,
) -> Result<(ProduceSummary, f64)> {
    let produce = produce(spec, source, partitions, &sampler.produced).await?;
    sampler.produced.store(produce.rows, Ordering::Relaxed);
    let end_to_end = wait_for_rows(spec, servers, consumers, sampler.started).await?;
    sampler
        .finish_line(end_to_end, produce.rows, servers, &spec.table)
        .await?;
    Ok((produce, end_to_end))
}

/// The producer, on its own named thread (for CPU accounting), its
/// progress mirrored into `produced` while it runs.
async fn produce(
    spec: &RunSpec,
    source: Arc<ParquetSource>,
    partitions: usize,
    produced: &Arc<AtomicU64>,
) -> Result<ProduceSummary> {
    let progress = Arc::new(Progress::new(
        &format!("{} produce", spec.name),
        Some(source.total_rows()),
    ));
    let (cfg, progress_t) = (spec.producer.clone(), Arc::clone(&progress));
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("velostream-send".into())
        .spawn(move || {
            let stop = Arc::new(AtomicBool::new(false));
            let _ = tx.send(producer::run(&cfg, source, partitions, stop, &progress_t));
        })
        .map_err(|e| Error::io("spawning the producer thread", e))?;
    let (progress_m, produced_m) = (Arc::clone(&progress), Arc::clone(produced));
    let mirror = tokio::spawn(async move {
        loop {
            produced_m.store(progress_m.rows(), Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let r = rx.await;
    mirror.abort();
    progress.finish();
    r.map_err(|_| Error::Interrupted("the producer thread panicked".into()))?
}

/// Waits until the table holds the expected rows; fails on a consumer
/// error or when the count stands still for [`STALL_TIMEOUT`].
async fn wait_for_rows(
    spec: &RunSpec,
    servers: &Servers,
    consumers: &mut Consumers,
    started: Instant,
) -> Result<f64> {
    let wait = Progress::new(&format!("{} insert", spec.name), Some(spec.expected_rows));
    let mut last = (0u64, Instant::now());
    let mut shown = 0u64;
    loop {
        // A member that ended explains a missing table better than the count.
        if let Some(why) = consumers.failure().await {
            return Err(Error::Validation(format!(
                "{}: consumer failed with {shown} of {} rows in ClickHouse: {why}",
                spec.name, spec.expected_rows
            )));
        }
        // Polled every 50 ms, so from `system.parts` (free); `count()`, which
        // reads a column on ClickHouse before 20.x, only confirms the end.
        let rows = servers.active_rows(&spec.table).await?;
        wait.inc(rows.saturating_sub(shown), 0);
        shown = shown.max(rows);
        if rows >= spec.expected_rows
            && servers.count_rows(&spec.table).await? >= spec.expected_rows
        {
            wait.finish();
            return Ok(started.elapsed().as_secs_f64());
        }
        if rows != last.0 {
            last = (rows, Instant::now());
        } else if last.1.elapsed() > STALL_TIMEOUT {
            return Err(Error::Validation(format!(
                "{}: no progress for {}s with {rows} of {} rows in ClickHouse",
                spec.name,
                STALL_TIMEOUT.as_secs(),
                spec.expected_rows
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The consumer group of a run, in this process. Dropping it asks every
/// member to stop; [`Consumers::stop`] also waits for them.
pub(super) struct Consumers {
    stop: Arc<AtomicBool>,
    assigned: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<Result<ConsumeSummary>>>,
}

impl Consumers {
    /// Starts the members: they join the group while the producer starts.
    pub(super) fn start(spec: &RunSpec, schema: arrow_schema::SchemaRef) -> Consumers {
        let stop = Arc::new(AtomicBool::new(false));
        let assigned = Arc::new(AtomicUsize::new(0));
        let tasks = (0..spec.consumers.max(1))
            .map(|i| {
                let mut cfg = ConsumerConfig::new(
                    spec.kafka.clone(),
                    &spec.topic,
                    format!("{}-group", spec.topic),
                    spec.clickhouse.clone(),
                    spec.table.clone(),
                );
                cfg.topology = spec.topology.clone();
                cfg.cluster = spec.cluster.clone();
                cfg.input_schema = Some(Arc::clone(&schema));
                cfg.transform = spec.transform.clone();
                cfg.create_table = true;
                cfg.exactly_once = spec.exactly_once;
                cfg.format = spec.format;
                cfg.lanes = spec.insert_streams.max(1);
                cfg.insert_rows = spec.insert_rows;
                cfg.assigned_partitions = Some(Arc::clone(&assigned));
                tracing::info!(consumer = i, "starting consumer");
                tokio::spawn(consumer::run(cfg, Arc::clone(&stop)))
            })
            .collect();
        Consumers {
            stop,
            assigned,
            tasks,
        }
    }

    /// Measure from the moment the group owns every partition (at most 60 s).
    pub(super) async fn wait_until_assigned(&self, partitions: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.assigned.load(Ordering::SeqCst) < partitions {
            if Instant::now() > deadline || self.tasks.iter().any(|t| t.is_finished()) {
                tracing::warn!("consumers did not take every partition in time; starting anyway");
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Why a member ended early, if one did.
    pub(super) async fn failure(&mut self) -> Option<String> {
        let i = self.tasks.iter().position(|t| t.is_finished())?;
        Some(match self.tasks.swap_remove(i).await {
            Ok(Err(e)) => e.to_string(),
            Ok(Ok(_)) => "it exited early".into(),
            Err(e) => format!("it panicked: {e}"),
        })
    }

    /// Stops every member and waits for it; the first failure wins.
    pub(super) async fn stop(mut self) -> Result<Vec<ConsumeSummary>> {
        self.stop.store(true, Ordering::Relaxed);
        let mut summaries = Vec::new();
        let mut first_error = None;
        for t in std::mem::take(&mut self.tasks) {
            match t.await {
                Ok(Ok(s)) => summaries.push(s),
                Ok(Err(e)) => first_error = first_error.or(Some(e)),
                Err(e) => {
                    first_error = first_error
                        .or_else(|| Some(Error::Interrupted(format!("a consumer panicked: {e}"))))
                }
            }
        }
        first_error.map_or(Ok(summaries), Err)
    }
}

impl Drop for Consumers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Rows produced vs rows in ClickHouse over time, CPU per thread, the
/// services' and the machine's CPU. Dropping it stops the sampling task.
struct Sampler {
    produced: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    timeline: Arc<Mutex<Timeline>>,
    cpu: Arc<Mutex<CpuSampler>>,
    services_cpu: ProcessCpu,
    machine_cpu: MachineCpu,
    started: Instant,
    task: Option<JoinHandle<()>>,
}

/// What the sampler measured.
struct Sampled {
    timeline: Timeline,
    cpu: CpuSplit,
    services_cpu: BTreeMap<String, f64>,
    machine_busy_cores: f64,
}

impl Sampler {
    fn start(servers: &Servers, spec: &RunSpec) -> Sampler {
        let produced = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let timeline = Arc::new(Mutex::new(Timeline::default()));
        let cpu = Arc::new(Mutex::new(CpuSampler::start()));
        let services_cpu = ProcessCpu::start(&spec.watch);
        let machine_cpu = MachineCpu::start();
        let started = Instant::now();
        let (servers, table) = (servers.clone(), spec.table.clone());
        let (produced_t, done_t, timeline_t, cpu_t) = (
            Arc::clone(&produced),
            Arc::clone(&done),
            Arc::clone(&timeline),
            Arc::clone(&cpu),
        );
        let task = tokio::spawn(async move {
            while !done_t.load(Ordering::Relaxed) {
                // Never `count()`: on ClickHouse before 20.x it reads a whole
                // column every time, and the sampler would add its own cost to
                // the ClickHouse CPU it measures.
                let rows = servers.active_rows(&table).await.unwrap_or(0);
                record(&timeline_t, &cpu_t, started, &produced_t, rows);
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
        });
        Sampler {
            produced,
            done,
            timeline,
            cpu,
            services_cpu,
            machine_cpu,
            started,
            task: Some(task),
        }
    }

    /// One last sample at the finish line.
    async fn finish_line(
        &self,
        t: f64,
        produced: u64,
        servers: &Servers,
        table: &TableRef,
    ) -> Result<()> {
        let rows = servers.count_rows(table).await?;
        metrics::gauge!(m::CLICKHOUSE_ROWS).set(rows as f64);
        lock(&self.timeline).samples.push(Sample {
            t,
            produced_rows: produced,
            clickhouse_rows: rows,
        });
        lock(&self.cpu).sample();
        Ok(())
    }

    /// Stops sampling and returns what was measured.
    async fn stop(mut self) -> Sampled {
        let services_cpu = self.services_cpu.seconds();
        let machine_busy_cores = self.machine_cpu.busy_cores();
        self.done.store(true, Ordering::Relaxed);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let cpu = lock(&self.cpu).split();
        Sampled {
            timeline: lock(&self.timeline).clone(),
            cpu,
            services_cpu,
            machine_busy_cores,
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn record(
    timeline: &Mutex<Timeline>,
    cpu: &Mutex<CpuSampler>,
    started: Instant,
    produced: &AtomicU64,
    rows: u64,
) {
    metrics::gauge!(m::CLICKHOUSE_ROWS).set(rows as f64);
    lock(timeline).samples.push(Sample {
        t: started.elapsed().as_secs_f64(),
        produced_rows: produced.load(Ordering::Relaxed),
        clickhouse_rows: rows,
    });
    lock(cpu).sample();
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
