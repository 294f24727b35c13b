//! Where a lane inserts: one shard (its replicas, with failover) and, in
//! exactly-once mode, the protocol's view of the table on that shard.

use std::sync::Arc;

use super::exactly_once::EoTable;
use crate::clickhouse::Shard;

/// A lane's destination.
#[derive(Clone, Debug)]
pub(super) struct Target {
    pub shard: Arc<Shard>,
    /// The exactly-once table on this shard, in exactly-once mode.
    pub eo: Option<EoTable>,
}
