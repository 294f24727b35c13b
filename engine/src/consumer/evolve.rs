//! `--evolve`: makes the table hold a new schema on every server of the
//! topology, the I/O shell around
//! [`velostream_codecs::evolve::table_changes`].
//!
//! Invariants:
//! - a change is applied once per table: on each shard's first replica
//!   (ZooKeeper carries it to the other replicas of a `ReplicatedMergeTree`,
//!   which are then awaited) or on every server of non-replicated tables;
//!   the `<table>_distributed` table of `--cluster` follows;
//! - consumers racing to apply the same change all succeed: an ALTER that
//!   fails is read back, and a change another member made counts as done;
//! - a change the server refuses (a key column, an unsupported type) is
//!   [`Error::SchemaChange`]: the message that needed it is a dead letter
//!   naming the column and both types, and the table stays as it was.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_schema::Schema;
use velostream_codecs::chtype::ChType;
use velostream_codecs::evolve::{self, Change};
use velostream_codecs::mapping::ServerCaps;

use super::config::ConsumerConfig;
use super::table::distributed_name;
use crate::clickhouse::{ClickHouse, Shard, TableRef};
use crate::metrics as m;
use crate::{Error, Result};

/// How long the other replicas of a shard may take to show a change.
const REPLICA_WAIT: Duration = Duration::from_secs(60);

/// Alters the table (where it exists) so that it holds `batch_schema`.
/// Returns how many changes this member applied.
pub(super) async fn apply(
    shards: &[Arc<Shard>],
    cfg: &ConsumerConfig,
    batch_schema: &Schema,
    caps: ServerCaps,
) -> Result<usize> {
    let mut applied = 0;
    let mut all_changes: Vec<Change> = Vec::new();
    for shard in shards {
        let replicas = shard.replicas();
        let replicated = replicas.len() > 1
            && replicas[0]
                .table_engine(&cfg.table)
                .await?
                .is_some_and(|e| e.starts_with("Replicated"));
        for (i, ch) in replicas.iter().enumerate() {
            let Some(columns) = ch.table_columns(&cfg.table).await? else {
                continue; // created from the new schema by table::prepare
            };
            let changes = evolve::table_changes(&columns, batch_schema, caps)
                .map_err(|e| refusal(&cfg.table, ch, &e.to_string()))?;
            if replicated && i > 0 {
                await_replica(ch, &cfg.table, &changes).await?;
                continue;
            }
            for change in &changes {
                applied += usize::from(alter(ch, &cfg.table, change).await?);
                if !all_changes.contains(change) {
                    all_changes.push(change.clone());
                }
            }
        }
    }
    if cfg.cluster.is_some() && !all_changes.is_empty() {
        follow_distributed(shards, cfg, batch_schema, caps).await?;
    }
    Ok(applied)
}

/// Runs one change; `true` when this member applied it, `false` when
/// another one had (the ALTER failed and the table holds the change).
async fn alter(ch: &ClickHouse, table: &TableRef, change: &Change) -> Result<bool> {
    let sql = change.sql(&table.sql()?)?;
    match ch.execute(&sql).await {
        Ok(()) => {
            metrics::counter!(m::CONSUMER_SCHEMA_CHANGES, "change" => change.kind()).increment(1);
            tracing::info!(%table, server = %ch.config().url, %change, "schema evolution: altered the table");
            Ok(true)
        }
        Err(e) => {
            let now = ch.table_columns(table).await?.unwrap_or_default();
            if change.holds_in(&now) {
                tracing::info!(%table, server = %ch.config().url, %change, "schema evolution: another member altered the table first");
                return Ok(false);
            }
            match e {
                Error::ClickHouse {
                    transient: false,
                    message,
                    ..
                } => Err(refusal(
                    table,
                    ch,
                    &format!("the server refused to {change}: {message}"),
                )),
                e => Err(e),
            }
        }
    }
}

/// Waits until a replica shows `changes` made on another replica.
async fn await_replica(ch: &ClickHouse, table: &TableRef, changes: &[Change]) -> Result<()> {
    let deadline = Instant::now() + REPLICA_WAIT;
    loop {
        let columns: Vec<(String, ChType)> = ch.table_columns(table).await?.unwrap_or_default();
        if changes.iter().all(|c| c.holds_in(&columns)) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Config(format!(
                "table {table} on replica {}: the schema change ({}) made on another replica did \
                 not arrive within {REPLICA_WAIT:?}; is ZooKeeper reachable from it?",
                ch.config().url,
                changes
                    .iter()
                    .map(Change::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The Distributed table over the cluster gets the same columns (it is not
/// replicated: every server has its own).
async fn follow_distributed(
    shards: &[Arc<Shard>],
    cfg: &ConsumerConfig,
    batch_schema: &Schema,
    caps: ServerCaps,
) -> Result<()> {
    let dist = TableRef::new(cfg.table.database.as_deref(), &distributed_name(&cfg.table));
    for shard in shards {
        for ch in shard.replicas() {
            let Some(columns) = ch.table_columns(&dist).await? else {
                continue;
            };
            let changes = evolve::table_changes(&columns, batch_schema, caps)
                .map_err(|e| refusal(&dist, ch, &e.to_string()))?;
            for change in &changes {
                alter(ch, &dist, change).await?;
            }
        }
    }
    Ok(())
}

fn refusal(table: &TableRef, ch: &ClickHouse, why: &str) -> Error {
    Error::SchemaChange(format!(
        "table {table} on {} cannot follow this message's schema: {why}",
        ch.config().url
    ))
}
