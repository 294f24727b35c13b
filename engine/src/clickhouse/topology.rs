//! Shards and replicas as the user gives them: `--clickhouse-url` once per
//! shard, the replicas of a shard comma-separated in one value
//! (`--clickhouse-url http://a1:8123,http://a2:8123 --clickhouse-url
//! http://b1:8123`); in `VELOSTREAM_CLICKHOUSE_URL` or a config file the
//! shards are separated by spaces. One URL is one shard with one replica.
//!
//! Routing is by Kafka partition: partition `p` is inserted into shard
//! `p mod shards`, so a partition's rows (and, in exactly-once mode, its
//! offsets) live on one shard only, whatever member consumes it and however
//! often the group rebalances.

use super::config::{redact_url, ClickHouseConfig};
use crate::{Error, Result};

/// The ClickHouse servers to insert into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    /// Per shard, its replicas' URLs, in the order given.
    pub shards: Vec<Vec<String>>,
}

impl Topology {
    /// Parses the `--clickhouse-url` values (each: one shard, replicas
    /// separated by commas; whitespace also separates shards).
    pub fn parse(values: &[String]) -> Result<Topology> {
        let mut shards = Vec::new();
        for value in values {
            for shard in value.split_whitespace() {
                let replicas: Vec<String> = shard
                    .split(',')
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .map(str::to_string)
                    .collect();
                if !replicas.is_empty() {
                    shards.push(replicas);
                }
            }
        }
        if shards.is_empty() {
            return Err(Error::Config(
                "no ClickHouse URL given (--clickhouse-url, VELOSTREAM_CLICKHOUSE_URL)".into(),
            ));
        }
        let t = Topology { shards };
        t.check_distinct()?;
        Ok(t)
    }

    /// One server.
    pub fn single(url: impl Into<String>) -> Topology {
        Topology {
            shards: vec![vec![url.into()]],
        }
    }

    fn check_distinct(&self) -> Result<()> {
        let all: Vec<&String> = self.shards.iter().flatten().collect();
        for (i, u) in all.iter().enumerate() {
            let norm = |s: &str| s.trim().trim_end_matches('/').to_ascii_lowercase();
            if all[..i].iter().any(|v| norm(v) == norm(u)) {
                return Err(Error::Config(format!(
                    "ClickHouse URL {:?} is given twice; every shard and replica needs its own server",
                    redact_url(u)
                )));
            }
        }
        Ok(())
    }

    /// Number of shards.
    pub fn len(&self) -> usize {
        self.shards.len()
    }

    /// Always false: a topology has at least one shard.
    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// The shard that stores `partition`.
    pub fn shard_of(&self, partition: i32) -> usize {
        partition.unsigned_abs() as usize % self.shards.len()
    }

    /// Insert lanes for `wanted`: rounded up to a multiple of the shard
    /// count, so that lane `p mod lanes` always belongs to shard
    /// `p mod shards` (lane `l` serves shard `l mod shards`).
    pub fn lanes_for(&self, wanted: usize) -> usize {
        let s = self.shards.len();
        wanted.max(1).div_ceil(s) * s
    }

    /// A configuration per server: `template` with each URL.
    pub fn configs(&self, template: &ClickHouseConfig) -> Vec<Vec<ClickHouseConfig>> {
        self.shards
            .iter()
            .map(|replicas| {
                replicas
                    .iter()
                    .map(|url| {
                        let mut c = template.clone();
                        c.url = url.clone();
                        c
                    })
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn shards_by_flag_replicas_by_comma_and_spaces_from_the_environment() {
        let t = Topology::parse(&s(&["http://a1:1,http://a2:1", "http://b1:1"])).unwrap();
        assert_eq!(
            t.shards,
            vec![s(&["http://a1:1", "http://a2:1"]), s(&["http://b1:1"])]
        );
        let env = Topology::parse(&s(&["http://a1:1,http://a2:1 http://b1:1"])).unwrap();
        assert_eq!(env, t);
        assert_eq!(
            Topology::parse(&s(&["http://x:1"])).unwrap(),
            Topology::single("http://x:1")
        );
        assert!(Topology::parse(&s(&[" , "])).is_err());
        let e = Topology::parse(&s(&["http://a:1,http://A:1/"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("given twice"), "{e}");
    }

    #[test]
    fn partitions_map_to_shards_and_lanes_stay_within_one_shard() {
        let t = Topology::parse(&s(&["http://a:1", "http://b:1"])).unwrap();
        assert_eq!(
            (0..6).map(|p| t.shard_of(p)).collect::<Vec<_>>(),
            [0, 1, 0, 1, 0, 1]
        );
        assert_eq!(t.lanes_for(1), 2);
        assert_eq!(t.lanes_for(2), 2);
        assert_eq!(t.lanes_for(3), 4);
        // Lane p mod lanes serves shard (p mod lanes) mod shards = p mod shards.
        for wanted in 1..6 {
            let lanes = t.lanes_for(wanted);
            for p in 0..64 {
                assert_eq!((p as usize % lanes) % t.len(), t.shard_of(p));
            }
        }
        assert_eq!(Topology::single("http://x:1").lanes_for(3), 3);
    }

    #[test]
    fn configs_keep_the_credentials_of_the_template() {
        let mut template = ClickHouseConfig::new("http://ignored:1");
        template.user = Some("loader".into());
        let t = Topology::parse(&s(&["http://a:1,http://a2:1", "http://b:1"])).unwrap();
        let c = t.configs(&template);
        assert_eq!(c[0][1].url, "http://a2:1");
        assert_eq!(c[1][0].user.as_deref(), Some("loader"));
    }
}
