//! `velostream status`: where a consumer group stands on a topic (and,
//! optionally, what its ClickHouse table holds), and `--wait-drained`.
//!
//! [`model`] and [`wait`] decide (lag, rows, drained, progress) from plain
//! observations; [`kafka`] and [`table`] only observe. [`assignment`]
//! decodes the consumer-protocol assignment of each group member.

pub mod assignment;
pub mod kafka;
pub mod model;
pub mod table;
pub mod wait;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use model::{Behind, PartitionStatus, RowLag, Snapshot};
pub use wait::{Step, Waiter};

use crate::clickhouse::{ClickHouse, ClickHouseConfig, TableRef};
use crate::kafka::KafkaArgs;
use crate::{Error, Result};

/// What to look at.
#[derive(Clone, Debug)]
pub struct StatusOptions {
    pub kafka: KafkaArgs,
    pub topic: String,
    pub group: String,
    /// The table the group loads, with its server.
    pub clickhouse: Option<(ClickHouseConfig, TableRef)>,
    /// Pending messages read per partition to count rows (beyond it rows are estimated).
    pub sample_limit: usize,
}

/// One look at the group (and table).
pub async fn snapshot(opts: &StatusOptions) -> Result<Snapshot> {
    let table = match &opts.clickhouse {
        Some((cfg, table)) => Some((ClickHouse::new(cfg.clone())?, table.clone())),
        None => None,
    };
    snapshot_with(opts, table.as_ref()).await
}

async fn snapshot_with(
    opts: &StatusOptions,
    table: Option<&(ClickHouse, TableRef)>,
) -> Result<Snapshot> {
    let (kafka, topic, group) = (opts.kafka.clone(), opts.topic.clone(), opts.group.clone());
    let limit = opts.sample_limit;
    let view = tokio::task::spawn_blocking(move || kafka::observe(&kafka, &topic, &group, limit))
        .await
        .map_err(|e| Error::Config(format!("status task failed: {e}")))??;
    // Read the table after the offsets: rows stored before a commit are
    // then visible, so the stored offsets never look behind by a race.
    let table = match table {
        Some((ch, t)) => Some(table::observe(ch, t).await?),
        None => None,
    };
    Ok(Snapshot::build(
        &opts.topic,
        &opts.group,
        &view.group_state,
        view.members,
        &view.partitions,
        table,
    ))
}

/// Looks every `interval` until the group is drained (returns the last
/// snapshot), calling `progress` with a line after each look that is not.
/// At `timeout` the error names every partition still behind.
pub async fn wait_drained(
    opts: &StatusOptions,
    timeout: Option<Duration>,
    interval: Duration,
    stop: Arc<AtomicBool>,
    mut progress: impl FnMut(&str),
) -> Result<Snapshot> {
    let table = match &opts.clickhouse {
        Some((cfg, table)) => Some((ClickHouse::new(cfg.clone())?, table.clone())),
        None => None,
    };
    let mut waiter = Waiter::new(timeout);
    let start = Instant::now();
    loop {
        let snap = snapshot_with(opts, table.as_ref()).await?;
        match waiter.step(&snap, start.elapsed()) {
            Step::Drained => return Ok(snap),
            Step::TimedOut(why) => return Err(Error::Validation(why)),
            Step::Wait(line) => progress(&line),
        }
        let mut next = Instant::now() + interval;
        if let Some(t) = timeout {
            // Take the last look at the deadline, not an interval after it.
            next = next.min(start + t);
        }
        while Instant::now() < next {
            if stop.load(Ordering::Relaxed) {
                return Err(Error::Interrupted(format!(
                    "waiting for group {} on topic {} to drain",
                    opts.group, opts.topic
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
