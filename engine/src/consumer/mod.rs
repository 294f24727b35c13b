//! The consumer: Kafka → (DataFusion SQL) → ClickHouse Native inserts.
//!
//! ```text
//!  consumer thread (rdkafka BaseConsumer)            tokio tasks
//!  events ◄─ main queue (rebalance, commits, stats)
//!  partition queues → intake (decode, poison → DLQ) ─► lane p mod N: dedup → transform → batch → encode ─► insert task
//!      ▲   memory budget                                                       (retry / verify / repair / split)
//!      └── offset book ◄── stored events ─────────────────────────────────────────────────┘
//!  commit confirmed progress; rebalance: flush lanes, commit, hand over
//! ```
//!
//! The decisions live in [`core`] (pure, unit-tested); the files here are
//! the shell around them: [`poll`] (the consumer thread), [`rebalance`]
//! (rdkafka callbacks), [`intake`] (message → item), [`lane`] and
//! [`insert`] (gathering and inserting), [`exactly_once`] and [`recovery`]
//! (the protocol's ClickHouse side), [`table`], [`dlq`].
//!
//! Delivery: an offset is committed only after ClickHouse has acknowledged
//! every row before it (at-least-once). With `exactly_once` every row also
//! carries its partition, offset and insert id, and the table decides where
//! a partition resumes and whether a failed insert landed; see the README's
//! "Delivery guarantees".

mod config;
pub mod core;
pub(crate) mod dlq;
mod encode;
mod evolve;
pub mod exactly_once;
mod insert;
mod intake;
mod item;
mod lane;
mod pipeline;
mod poll;
mod rebalance;
mod recovery;
mod shared;
pub mod table;
mod target;

pub use config::{ConsumerConfig, DEFAULT_MAX_BUFFERED_BYTES};
pub use dlq::{H_ERROR, H_OFFSET, H_PARTITION, H_REASON, H_TOPIC, H_VALUE_BYTES};
pub use exactly_once::{OFFSET_COLUMN, PARTITION_COLUMN};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::clickhouse::{ClickHouse, Shard};
use crate::{Error, Result};

/// What one consumer run did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ConsumeSummary {
    pub messages: u64,
    pub rows_consumed: u64,
    pub bytes_consumed: u64,
    pub rows_inserted: u64,
    pub dead_letters: u64,
    pub elapsed_secs: f64,
    /// Inserts sent, by what ended their batch (`rows`, `bytes`,
    /// `max_delay`, `quiet`, `caught_up`, `requested`); zero counts left out.
    pub inserts_by_reason: std::collections::BTreeMap<String, u64>,
}

/// Runs one consumer-group member until `stop` is set, it has been idle
/// for `exit_when_idle`, or a permanent error occurs.
pub async fn run(cfg: ConsumerConfig, stop: Arc<AtomicBool>) -> Result<ConsumeSummary> {
    cfg.validate()?;
    let shards = connect(&cfg).await?;
    check_transform(&cfg)?;
    let dead_letters = match &cfg.dlq_topic {
        Some(t) => {
            crate::kafka::admin::ensure_topic(&cfg.kafka, t, Some(1)).await?;
            Some(Arc::new(dlq::DeadLetters::new(&cfg.kafka, t, &cfg.topic)?))
        }
        None => None,
    };
    crate::kafka::admin::ensure_topic(&cfg.kafka, &cfg.topic, None).await?;
    let eo = match cfg.exactly_once {
        true => Some(exactly_once_tables(&shards, &cfg).await?),
        false => None,
    };
    let (events_tx, events_rx) = std::sync::mpsc::channel();
    let shared = Arc::new(shared::Shared {
        shards,
        eo,
        rt: tokio::runtime::Handle::current(),
        book: Mutex::new(core::offsets::OffsetBook::default()),
        ownership: Arc::new(core::offsets::Ownership::default()),
        memory: Arc::new(shared::Memory::new(cfg.max_buffered_bytes)),
        lanes: Mutex::new(Vec::new()),
        events: Mutex::new(events_rx),
        assigned_at: Mutex::new(None),
        queues_dirty: AtomicBool::new(false),
        high_watermarks: Mutex::new(HashMap::new()),
        rows_stored: AtomicU64::new(0),
        assigned_gauge: cfg.assigned_partitions.clone(),
        error: Mutex::new(None),
        caught_up: Arc::new(AtomicBool::new(false)),
        behind: Arc::new(
            (0..cfg.topology.lanes_for(cfg.lanes))
                .map(|_| AtomicBool::new(false))
                .collect(),
        ),
        inserts: Arc::new(shared::Inserts::default()),
        cfg: cfg.clone(),
    });
    let consumer = Arc::new(create_consumer(&cfg, Arc::clone(&shared))?);
    let intake = intake::Intake {
        cfg,
        dead_letters,
        rt: tokio::runtime::Handle::current(),
        stats: intake::Stats::default(),
    };
    let poller = poll::Poller::new(consumer, shared, intake, events_tx, stop);
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("velostream-consumer".into())
        .spawn(move || {
            let _ = tx.send(poller.run());
        })
        .map_err(|e| Error::io("spawning the consumer thread", e))?;
    rx.await
        .map_err(|_| Error::Interrupted("the consumer thread panicked".into()))?
}

/// A bad transform is refused before anything is consumed, with its
/// position in the file.
fn check_transform(cfg: &ConsumerConfig) -> Result<()> {
    let Some(path) = &cfg.transform else {
        return Ok(());
    };
    let sql = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading transform {}", path.display()), e))?;
    velostream_sql::validate_single_select(&sql).map_err(|mut e| {
        // Report the position in the file, not in "<inline sql>".
        if let velostream_sql::Error::Syntax { origin, .. }
        | velostream_sql::Error::Rejected { origin, .. } = &mut e
        {
            *origin = path.display().to_string();
        }
        Error::Config(format!("transform {e}"))
    })
}

/// A client per server, grouped by shard; every server must answer (its
/// version is read), and with `--cluster` the servers must be that cluster.
pub async fn connect(cfg: &ConsumerConfig) -> Result<Vec<Arc<Shard>>> {
    let mut shards = Vec::new();
    for (i, replicas) in cfg
        .topology
        .configs(&cfg.clickhouse)
        .into_iter()
        .enumerate()
    {
        let mut clients = Vec::new();
        for c in replicas {
            let ch = ClickHouse::new(c)?;
            // Fail fast on an unreachable or misconfigured server.
            ch.server_version().await?;
            clients.push(ch);
        }
        shards.push(Arc::new(Shard::new(i, clients)));
    }
    if let Some(name) = &cfg.cluster {
        crate::clickhouse::cluster::check(&shards, name).await?;
    }
    Ok(shards)
}

/// The exactly-once table of each shard: on every server its engine must
/// be covered by the protocol and, when it exists, it must have the
/// bookkeeping columns (checked before any assignment reads them).
async fn exactly_once_tables(
    shards: &[Arc<Shard>],
    cfg: &ConsumerConfig,
) -> Result<Vec<exactly_once::EoTable>> {
    let mut out = Vec::new();
    for shard in shards {
        let mut replicated = false;
        for ch in shard.replicas() {
            let engine = ch.table_engine(&cfg.table).await?;
            let Some(engine) = engine else { continue };
            if let Some(why) = table::engine_refusal(&engine) {
                return Err(Error::Config(format!(
                    "--exactly-once cannot cover table {} on {} (engine {engine}): {why}",
                    cfg.table,
                    ch.config().url
                )));
            }
            if let Some(columns) = ch.table_columns(&cfg.table).await? {
                table::check_exactly_once_columns(&cfg.table, &columns)?;
            }
            replicated |= engine.starts_with("Replicated");
        }
        // A table still to be created is replicated where the shard has replicas.
        replicated |= shard.replicas().len() > 1;
        out.push(exactly_once::EoTable::new(cfg.table.clone(), replicated));
    }
    Ok(out)
}

fn create_consumer(
    cfg: &ConsumerConfig,
    shared: Arc<shared::Shared>,
) -> Result<BaseConsumer<rebalance::Ctx>> {
    let mut c = cfg.kafka.client_config()?;
    c.set("group.id", &cfg.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // tansu (and small topics) answer slowly with the 500 ms default.
        .set("fetch.wait.max.ms", "10")
        .set("fetch.max.bytes", "104857600")
        .set("max.partition.fetch.bytes", "33554432")
        // librdkafka's prefetch (wire bytes), part of the memory bound.
        .set("queued.max.messages.kbytes", "65536")
        .set("session.timeout.ms", "30000")
        .set("max.poll.interval.ms", "600000")
        // Lag comes from these statistics instead of blocking watermark queries.
        .set("statistics.interval.ms", "1000");
    cfg.kafka.apply_overrides(&mut c)?;
    let consumer: BaseConsumer<rebalance::Ctx> = c
        .create_with_context(rebalance::Ctx(shared))
        .map_err(|e| Error::kafka(format!("creating a consumer for {}", cfg.kafka.brokers), e))?;
    consumer
        .subscribe(&[&cfg.topic])
        .map_err(|e| Error::kafka(format!("subscribing to {:?}", cfg.topic), e))?;
    tracing::info!(topic = %cfg.topic, group = %cfg.group, "joining the consumer group");
    Ok(consumer)
}
