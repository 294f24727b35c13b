//! Reading one table spread over shards (`bench`, `verify`): every shard
//! is read from the replica of it that holds the most rows (a replica that
//! is down or behind is passed over), and the shards add up to the table.

use velostream_codecs::chtype::ChType;

use super::checksum::{self, Checksum};
use crate::clickhouse::{ClickHouse, ClickHouseConfig, TableRef, Topology};
use crate::{Error, Result};

/// A client per server, by shard.
#[derive(Clone, Debug)]
pub struct Servers {
    shards: Vec<Vec<ClickHouse>>,
}

impl Servers {
    /// Clients for every server of `topology`, configured like `template`.
    pub fn new(topology: &Topology, template: &ClickHouseConfig) -> Result<Servers> {
        let shards = topology
            .configs(template)
            .into_iter()
            .map(|replicas| replicas.into_iter().map(ClickHouse::new).collect())
            .collect::<Result<Vec<Vec<ClickHouse>>>>()?;
        Ok(Servers { shards })
    }

    /// The first server given (first replica of the first shard).
    pub fn first(&self) -> &ClickHouse {
        &self.shards[0][0]
    }

    /// Every server, shard by shard.
    pub fn all(&self) -> impl Iterator<Item = &ClickHouse> {
        self.shards.iter().flatten()
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Rows of `table` on each shard.
    pub async fn rows_per_shard(&self, table: &TableRef) -> Result<Vec<u64>> {
        let mut rows = Vec::with_capacity(self.shards.len());
        for (i, replicas) in self.shards.iter().enumerate() {
            rows.push(fullest_replica(i, replicas, table, Count::Exact).await?.1);
        }
        Ok(rows)
    }

    /// Rows of `table` over all shards as their active parts count them:
    /// what a sampler asks while the table grows, because it reads no
    /// column (see [`ClickHouse::active_rows`]).
    pub async fn active_rows(&self, table: &TableRef) -> Result<u64> {
        let mut rows = 0;
        for (i, replicas) in self.shards.iter().enumerate() {
            rows += fullest_replica(i, replicas, table, Count::ActiveParts)
                .await?
                .1;
        }
        Ok(rows)
    }

    /// Rows of `table` over all shards.
    pub async fn count_rows(&self, table: &TableRef) -> Result<u64> {
        Ok(self.rows_per_shard(table).await?.iter().sum())
    }

    /// The checksum of each shard's part of `table`.
    pub async fn checksums(
        &self,
        table: &TableRef,
        columns: &[(String, ChType)],
    ) -> Result<Vec<Checksum>> {
        let mut sums = Vec::with_capacity(self.shards.len());
        for (i, replicas) in self.shards.iter().enumerate() {
            let (ch, _) = fullest_replica(i, replicas, table, Count::Exact).await?;
            sums.push(checksum::from_clickhouse(ch, table, columns).await?);
        }
        Ok(sums)
    }
}

/// How a replica's rows are counted.
#[derive(Clone, Copy, Debug)]
enum Count {
    /// `SELECT count()`: what a query sees.
    Exact,
    /// `system.parts`: free, for sampling.
    ActiveParts,
}

/// The replica of shard `index` holding the most rows of `table`, and its
/// row count; an error only when no replica answers.
async fn fullest_replica<'a>(
    index: usize,
    replicas: &'a [ClickHouse],
    table: &TableRef,
    count: Count,
) -> Result<(&'a ClickHouse, u64)> {
    let mut best: Option<(&ClickHouse, u64)> = None;
    let mut last = None;
    for ch in replicas {
        let rows = match count {
            Count::Exact => ch.count_rows(table).await,
            Count::ActiveParts => ch.active_rows(table).await,
        };
        match rows {
            Ok(n) if best.is_none_or(|(_, b)| n > b) => best = Some((ch, n)),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(shard = index + 1, replica = %ch.config().url, "not read: {e}");
                last = Some(e);
            }
        }
    }
    best.ok_or_else(|| match last {
        Some(e) => e,
        None => Error::Config(format!("shard {} has no replica", index + 1)),
    })
}
