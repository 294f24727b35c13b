//! One shard: its replicas and which one inserts go to. An insert goes to
//! the current replica; when a replica cannot be reached, is read-only or
//! has lost ZooKeeper, the next one becomes current (a failover, logged and
//! counted per shard). In exactly-once mode the failed insert is then
//! verified like any other failure before anything is sent again.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::retry::is_replica_failure;
use super::service::ClickHouse;
use crate::metrics as m;
use crate::Error;

/// The replicas of one shard.
#[derive(Debug)]
pub struct Shard {
    /// Position of the shard in the topology.
    pub index: usize,
    replicas: Vec<ClickHouse>,
    current: AtomicUsize,
}

impl Shard {
    /// A shard of `replicas` (at least one).
    pub fn new(index: usize, replicas: Vec<ClickHouse>) -> Shard {
        assert!(!replicas.is_empty(), "a shard has at least one replica");
        Shard {
            index,
            replicas,
            current: AtomicUsize::new(0),
        }
    }

    /// Every replica, in the order given.
    pub fn replicas(&self) -> &[ClickHouse] {
        &self.replicas
    }

    /// The replica inserts go to now, with its position.
    pub fn current(&self) -> (usize, &ClickHouse) {
        let i = self.current.load(Ordering::SeqCst) % self.replicas.len();
        (i, &self.replicas[i])
    }

    /// After replica `failed` failed with `why`: when the failure is one
    /// another replica may not have, the next replica becomes current.
    /// Returns whether it did.
    pub fn fail_over(&self, failed: usize, why: &Error) -> bool {
        let n = self.replicas.len();
        if n < 2 || !is_replica_failure(why) {
            return false;
        }
        let next = (failed + 1) % n;
        let moved = self
            .current
            .compare_exchange(failed, next, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if moved {
            let shard = self.index.to_string();
            metrics::counter!(m::CONSUMER_FAILOVERS, "shard" => shard).increment(1);
            tracing::warn!(
                shard = self.index,
                from = %self.replicas[failed].config().url,
                to = %self.replicas[next].config().url,
                "failing over to another replica: {why}"
            );
        }
        moved
    }
}
