//! The consumer: Kafka → (DataFusion SQL) → ClickHouse Native inserts.
//!
//! ```text
//!  consumer thread (rdkafka BaseConsumer)          tokio tasks
//!  poll → decode IPC → route by partition ──► lane 0: transform → coalesce → encode → insert (retry)
//!      ▲   poison → dead-letter topic      ──► lane 1: …
//!      └── stored offsets ◄── events ─────────────┘
//!  commit stored offsets; rebalance: flush lanes, commit, hand over
//! ```
//!
//! Delivery: an offset is committed only after ClickHouse has acknowledged
//! every row before it (at-least-once). With `exactly_once`, each row also
//! carries its partition and offset, inserts of a partition are sequential
//! and atomic (one Native block), and on every assignment the consumer
//! resumes from `max(offset) + 1` stored in ClickHouse; see the README's
//! "Delivery guarantees".

mod config;
mod context;
mod dlq;
mod lane;
mod pipeline;
mod poll;
pub mod table;

pub use config::{ConsumerConfig, OFFSET_COLUMN, PARTITION_COLUMN};
pub use dlq::{H_ERROR, H_OFFSET, H_PARTITION, H_REASON, H_TOPIC, H_VALUE_BYTES};

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::clickhouse::ClickHouse;
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
}

/// Runs one consumer-group member until `stop` is set, it has been idle
/// for `exit_when_idle`, or a permanent error occurs.
pub async fn run(cfg: ConsumerConfig, stop: Arc<AtomicBool>) -> Result<ConsumeSummary> {
    let ch = ClickHouse::new(cfg.clickhouse.clone())?;
    // Fail fast on an unreachable or misconfigured server.
    ch.server_version().await?;
    if let Some(path) = &cfg.transform {
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
        })?;
    }
    let dead_letters = match &cfg.dlq_topic {
        Some(t) => {
            crate::kafka::admin::ensure_topic(&cfg.kafka, t, Some(1)).await?;
            Some(Arc::new(dlq::DeadLetters::new(&cfg.kafka, t, &cfg.topic)?))
        }
        None => None,
    };
    crate::kafka::admin::ensure_topic(&cfg.kafka, &cfg.topic, None).await?;
    let (events_tx, events_rx) = std::sync::mpsc::channel();
    let shared = Arc::new(context::Shared {
        topic: cfg.topic.clone(),
        exactly_once: cfg.exactly_once,
        ch: ch.clone(),
        table: cfg.table.clone(),
        rt: tokio::runtime::Handle::current(),
        lanes: Mutex::new(Vec::new()),
        events: Mutex::new(events_rx),
        assignment: Mutex::new(BTreeSet::new()),
        assigned_at: Mutex::new(None),
        stored: Mutex::new(HashMap::new()),
        committed: Mutex::new(HashMap::new()),
        high_watermarks: Mutex::new(HashMap::new()),
        assigned_gauge: cfg.assigned_partitions.clone(),
        rows_stored: Mutex::new(0),
        error: Mutex::new(None),
    });
    let consumer = create_consumer(&cfg, Arc::clone(&shared))?;
    let poller = poll::Poller {
        cfg,
        consumer,
        shared,
        dead_letters,
        events_tx,
        stop,
    };
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

fn create_consumer(
    cfg: &ConsumerConfig,
    shared: Arc<context::Shared>,
) -> Result<BaseConsumer<context::Ctx>> {
    let mut c = cfg.kafka.client_config()?;
    c.set("group.id", &cfg.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // tansu (and small topics) answer slowly with the 500 ms default.
        .set("fetch.wait.max.ms", "10")
        .set("fetch.max.bytes", "104857600")
        .set("max.partition.fetch.bytes", "33554432")
        .set("queued.max.messages.kbytes", "262144")
        .set("session.timeout.ms", "30000")
        .set("max.poll.interval.ms", "600000")
        // Lag comes from these statistics instead of blocking watermark queries.
        .set("statistics.interval.ms", "1000");
    cfg.kafka.apply_overrides(&mut c)?;
    let consumer: BaseConsumer<context::Ctx> = c
        .create_with_context(context::Ctx(shared))
        .map_err(|e| Error::kafka(format!("creating a consumer for {}", cfg.kafka.brokers), e))?;
    consumer
        .subscribe(&[&cfg.topic])
        .map_err(|e| Error::kafka(format!("subscribing to {:?}", cfg.topic), e))?;
    Ok(consumer)
}
