//! Exactly-once: where newly assigned partitions resume.
//!
//! Run on every assignment (start-up and each rebalance), before the
//! partitions are consumed:
//! 1. fence: wait until no insert of these partitions is still running on
//!    the server (a former owner's, or this member's own from before a
//!    lost assignment), killing it after a while;
//! 2. on a replicated table, sync the replica so that it holds every part
//!    its peers committed;
//! 3. read each partition's newest insert; resume after it when it is
//!    complete (or at the group's committed offset when that is further:
//!    dead letters after the newest insert are not read again), or delete
//!    it and resume at its first message when it is stored in part (a
//!    crash between the parts of a multi-partition insert).
//!
//! A ClickHouse outage during a rebalance is waited out with backoff, up to
//! `recovery_timeout`; then the consumer stops naming the table, the
//! partitions and the last error.

use std::collections::HashMap;
use std::time::Instant;

use rdkafka::Offset;

use super::core::attempts::Backoff;
use super::core::spans::InsertKey;
use super::core::verdict::{floor_at_committed, resume, Resume};
use super::exactly_once::{EoTable, RUNNING_INSERT_WAIT};
use super::shared::Shared;
use crate::clickhouse::Shard;
use crate::metrics as m;
use crate::{Error, Result};

/// The start offset of each of `partitions`, each read from its shard,
/// never before the group's `committed` offset (see
/// [`floor_at_committed`]).
pub(super) async fn resume_offsets(
    shared: &Shared,
    partitions: &[i32],
    committed: &HashMap<i32, i64>,
) -> Result<HashMap<i32, Offset>> {
    let Some(eo) = &shared.eo else {
        return Ok(HashMap::new());
    };
    let mut out = HashMap::new();
    for (i, shard) in shared.shards.iter().enumerate() {
        let mine: Vec<i32> = partitions
            .iter()
            .copied()
            .filter(|p| shared.cfg.topology.shard_of(*p) == i)
            .collect();
        if !mine.is_empty() {
            out.extend(resume_on_shard(shared, shard, &eo[i], &mine, committed).await?);
        }
    }
    Ok(out)
}

/// [`attempt`] on the shard's current replica, failing over and retrying
/// with backoff until `recovery_timeout`.
async fn resume_on_shard(
    shared: &Shared,
    shard: &Shard,
    eo: &EoTable,
    partitions: &[i32],
    committed: &HashMap<i32, i64>,
) -> Result<HashMap<i32, Offset>> {
    let deadline = Instant::now() + shared.cfg.recovery_timeout;
    let mut backoff = Backoff::default();
    loop {
        let (replica, _) = shard.current();
        match attempt(shard, replica, eo, partitions, committed).await {
            Ok(offsets) => return Ok(offsets),
            Err(
                e @ Error::ClickHouse {
                    transient: true, ..
                },
            ) if Instant::now() < deadline => {
                shard.fail_over(replica, &e);
                let wait = backoff.next_delay();
                tracing::warn!(
                    table = %eo.table,
                    shard = shard.index,
                    ?partitions,
                    "reading the stored offsets failed, retrying in {wait:?}: {e}"
                );
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                return Err(Error::Interrupted(format!(
                    "exactly-once: could not read the offsets stored in {} (shard {}) for \
                     partitions {partitions:?} within {:?}: {e}",
                    eo.table,
                    shard.index + 1,
                    shared.cfg.recovery_timeout
                )))
            }
        }
    }
}

async fn attempt(
    shard: &Shard,
    replica: usize,
    eo: &EoTable,
    partitions: &[i32],
    committed: &HashMap<i32, i64>,
) -> Result<HashMap<i32, Offset>> {
    let ch = &shard.replicas()[replica];
    let floored = |p: &i32, stored: Option<i64>| match floor_at_committed(
        stored,
        committed.get(p).copied(),
    ) {
        Some(o) => Offset::Offset(o),
        None => Offset::Beginning,
    };
    if !ch.table_exists(&eo.table).await? {
        return Ok(partitions.iter().map(|p| (*p, floored(p, None))).collect());
    }
    fence_everywhere(shard, replica, eo, partitions).await?;
    eo.sync(ch).await?;
    let last = eo.last_inserts(ch, partitions).await?;
    let mut out = HashMap::new();
    for p in partitions {
        let offset = match resume(last.get(p).copied()) {
            Resume::Beginning => floored(p, None),
            Resume::At(o) => floored(p, Some(o)),
            Resume::Repair { insert_id } => {
                let key = InsertKey {
                    partition: *p,
                    insert_id,
                };
                tracing::warn!(
                    table = %eo.table,
                    partition = p,
                    insert_id,
                    "the newest insert is stored in part: deleting it and consuming it again"
                );
                eo.delete(ch, &[key]).await?;
                metrics::counter!(m::CONSUMER_REPAIRS).increment(1);
                Offset::Offset(insert_id)
            }
            Resume::Conflict(l) => {
                return Err(Error::Validation(format!(
                    "table {}: partition {p} insert {} holds {} rows but its rows say {}: \
                     something else writes rows with these exactly-once columns",
                    eo.table, l.insert_id, l.found_rows, l.expected_rows
                )))
            }
        };
        out.insert(*p, offset);
    }
    tracing::info!(table = %eo.table, ?out, "exactly-once: resuming from the offsets stored in ClickHouse");
    Ok(out)
}

/// Fences on every replica of the shard: a former owner may have inserted
/// through any of them. An unreachable replica other than `replica` (the
/// one read from) is passed over: it runs nothing that can still commit
/// while it is down.
async fn fence_everywhere(
    shard: &Shard,
    replica: usize,
    eo: &EoTable,
    partitions: &[i32],
) -> Result<()> {
    for (i, ch) in shard.replicas().iter().enumerate() {
        match eo.fence(ch, Some(partitions), RUNNING_INSERT_WAIT).await {
            Ok(()) => {}
            Err(e) if i != replica => {
                tracing::warn!(replica = %ch.config().url, "cannot check running inserts there: {e}")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
