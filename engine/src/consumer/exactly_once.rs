//! Exactly-once: the rows' bookkeeping columns and the ClickHouse queries of
//! the protocol (README, "Delivery guarantees"). The decisions are in
//! [`super::core::verdict`] and [`super::core::attempts`]; this file only
//! asks the server and acts on the answer.
//!
//! Every insert carries a query id `velostream-<table hash>-<ranges>-<nonce>`
//! so that a member can see, in `system.processes`, whether an insert of a
//! partition is still running on a server (its own after an unknown outcome,
//! or a former owner's after a rebalance) and wait for it — or kill it —
//! before judging what the table holds.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use arrow_schema::{DataType, Field};
use velostream_codecs::chtype::ChType;
use velostream_codecs::ddl;

use super::core::spans::{InsertKey, Spans};
use super::core::verdict::LastInsert;
use crate::clickhouse::{tsv, ClickHouse, TableRef};
use crate::{Error, Result};

/// Kafka partition of the row.
pub const PARTITION_COLUMN: &str = "_velostream_partition";
/// Kafka offset of the row's message.
pub const OFFSET_COLUMN: &str = "_velostream_offset";
/// Id of the insert the row came with: the offset of that insert's first
/// message with rows in this partition.
pub const INSERT_COLUMN: &str = "_velostream_insert";
/// Rows of this partition in that insert.
pub const INSERT_ROWS_COLUMN: &str = "_velostream_insert_rows";
/// Fingerprint of the Parquet file the row came from (0: unknown).
pub const SOURCE_COLUMN: &str = "_velostream_source";
/// Slice of that file: `row_group << 32 | slice` (0 when unknown).
pub const SLICE_COLUMN: &str = "_velostream_slice";

/// The bookkeeping columns, in table order, with their ClickHouse types.
pub const COLUMNS: [(&str, ChType); 6] = [
    (PARTITION_COLUMN, ChType::UInt32),
    (OFFSET_COLUMN, ChType::UInt64),
    (INSERT_COLUMN, ChType::UInt64),
    (INSERT_ROWS_COLUMN, ChType::UInt32),
    (SOURCE_COLUMN, ChType::UInt64),
    (SLICE_COLUMN, ChType::UInt64),
];

/// The Arrow fields of [`COLUMNS`], appended to every batch.
pub fn fields() -> Vec<Field> {
    COLUMNS
        .iter()
        .map(|(name, t)| {
            let dt = match t {
                ChType::UInt32 => DataType::UInt32,
                _ => DataType::UInt64,
            };
            Field::new(*name, dt, false)
        })
        .collect()
}

/// How long a server is given to finish an insert still running before it
/// is killed.
pub const RUNNING_INSERT_WAIT: Duration = Duration::from_secs(120);
/// `SYSTEM SYNC REPLICA` waits at most this long per call.
const SYNC_REPLICA_TIMEOUT_SECS: u64 = 30;

/// One exactly-once table on one server.
#[derive(Clone, Debug)]
pub struct EoTable {
    pub table: TableRef,
    /// A `Replicated*MergeTree`: counts are only trusted after the replica
    /// has fetched every part its peers committed.
    pub replicated: bool,
    /// `velostream-<16 hex digits>`: the query id prefix of this table's inserts.
    prefix: String,
}

impl EoTable {
    pub fn new(table: TableRef, replicated: bool) -> Self {
        let prefix = format!(
            "velostream-{:016x}",
            velostream_codecs::envelope::fnv1a64(table.to_string().as_bytes())
        );
        EoTable {
            table,
            replicated,
            prefix,
        }
    }

    /// A fresh query id for an insert of `spans`.
    pub fn query_id(&self, spans: &Spans) -> String {
        let ranges: Vec<String> = spans
            .iter()
            .map(|(p, s)| format!("p{p}.{}.{}", s.first, s.last))
            .collect();
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()) << 40;
        format!("{}-{}-{nonce:x}", self.prefix, ranges.join("_"))
    }

    /// Query ids of this table's inserts running on `ch` that touch any of
    /// `partitions` (all of them when `None`).
    async fn running(&self, ch: &ClickHouse, partitions: Option<&[i32]>) -> Result<Vec<String>> {
        let sql = format!(
            "SELECT query_id FROM system.processes WHERE startsWith(query_id, {}) FORMAT TSV",
            ddl::quote_string(&format!("{}-", self.prefix))
        );
        let text = ch.query_tsv(&sql).await?;
        Ok(tsv::parse_rows(&text)
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .filter(|id| partitions.is_none_or(|ps| ps.iter().any(|p| touches(id, *p))))
            .collect())
    }

    /// Waits until no insert of this table touching `partitions` runs on
    /// `ch`; after `max_wait` the remaining ones are killed (and waited for).
    pub async fn fence(
        &self,
        ch: &ClickHouse,
        partitions: Option<&[i32]>,
        max_wait: Duration,
    ) -> Result<()> {
        let started = Instant::now();
        loop {
            let ids = self.running(ch, partitions).await?;
            if ids.is_empty() {
                return Ok(());
            }
            if started.elapsed() >= max_wait {
                tracing::warn!(table = %self.table, ?ids, "inserts still running after {max_wait:?}: killing them");
                let list: Vec<String> = ids.iter().map(|i| ddl::quote_string(i)).collect();
                ch.execute(&format!(
                    "KILL QUERY WHERE query_id IN ({}) SYNC",
                    list.join(", ")
                ))
                .await?;
                continue;
            }
            tracing::info!(table = %self.table, running = ids.len(), "waiting for running inserts to end");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// On a replicated table: waits until `ch` has fetched every part its
    /// replicas committed, so counts read there are complete. An error when
    /// that cannot happen yet (a replica holding parts is down).
    pub async fn sync(&self, ch: &ClickHouse) -> Result<()> {
        if !self.replicated {
            return Ok(());
        }
        ch.execute_with_settings(
            &format!("SYSTEM SYNC REPLICA {}", self.table.sql()?),
            &[("receive_timeout", SYNC_REPLICA_TIMEOUT_SECS.to_string())],
        )
        .await
    }

    /// Rows stored per insert key (keys without rows are absent).
    pub async fn counts(
        &self,
        ch: &ClickHouse,
        keys: &[InsertKey],
    ) -> Result<HashMap<InsertKey, u64>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "SELECT {p}, {i}, count() FROM {t} WHERE ({p}, {i}) IN ({keys}) GROUP BY {p}, {i} FORMAT TSV",
            p = ddl::quote_ident(PARTITION_COLUMN)?,
            i = ddl::quote_ident(INSERT_COLUMN)?,
            t = self.table.sql()?,
            keys = key_list(keys),
        );
        let text = ch.query_tsv(&sql).await?;
        let mut out = HashMap::new();
        for row in tsv::parse_rows(&text) {
            let [p, i, n] = three(&self.table, row)?;
            out.insert(
                InsertKey {
                    partition: p as i32,
                    insert_id: i as i64,
                },
                n,
            );
        }
        Ok(out)
    }

    /// Deletes the rows of `keys` (a mutation) and waits until `ch` no
    /// longer shows any of them.
    pub async fn delete(&self, ch: &ClickHouse, keys: &[InsertKey]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        tracing::warn!(table = %self.table, ?keys, "deleting the stored part of a partly stored insert");
        ch.execute(&format!(
            "ALTER TABLE {} DELETE WHERE ({}, {}) IN ({})",
            self.table.sql()?,
            ddl::quote_ident(PARTITION_COLUMN)?,
            ddl::quote_ident(INSERT_COLUMN)?,
            key_list(keys)
        ))
        .await?;
        let started = Instant::now();
        let mut delay = Duration::from_millis(50);
        loop {
            let left: u64 = self.counts(ch, keys).await?.values().sum();
            if left == 0 {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(600) {
                return Err(Error::ClickHouse {
                    context: format!("deleting a partly stored insert from {}", self.table),
                    message: format!("{left} rows of {keys:?} still present after 10 minutes (see system.mutations)"),
                    code: None,
                    transient: true,
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// The newest insert of each of `partitions` that has rows in the table.
    pub async fn last_inserts(
        &self,
        ch: &ClickHouse,
        partitions: &[i32],
    ) -> Result<HashMap<i32, LastInsert>> {
        if partitions.is_empty() {
            return Ok(HashMap::new());
        }
        let list: Vec<String> = partitions.iter().map(|p| p.to_string()).collect();
        let sql = format!(
            "SELECT {p}, max({i}), argMax({n}, {i}), max({o}) FROM {t} WHERE {p} IN ({list}) GROUP BY {p} FORMAT TSV",
            p = ddl::quote_ident(PARTITION_COLUMN)?,
            i = ddl::quote_ident(INSERT_COLUMN)?,
            n = ddl::quote_ident(INSERT_ROWS_COLUMN)?,
            o = ddl::quote_ident(OFFSET_COLUMN)?,
            t = self.table.sql()?,
            list = list.join(", "),
        );
        let text = ch.query_tsv(&sql).await?;
        let mut newest = Vec::new();
        for row in tsv::parse_rows(&text) {
            let [p, i, n, o] = four(&self.table, row)?;
            newest.push((p as i32, i as i64, n, o as i64));
        }
        let keys: Vec<InsertKey> = newest
            .iter()
            .map(|(p, i, _, _)| InsertKey {
                partition: *p,
                insert_id: *i,
            })
            .collect();
        let found = self.counts(ch, &keys).await?;
        Ok(newest
            .into_iter()
            .zip(keys)
            .map(|((p, i, n, o), key)| {
                (
                    p,
                    LastInsert {
                        insert_id: i,
                        expected_rows: n,
                        found_rows: found.get(&key).copied().unwrap_or(0),
                        max_offset: o,
                    },
                )
            })
            .collect())
    }

    /// The slices of source file `file` stored for `partition`.
    pub async fn stored_slices(
        &self,
        ch: &ClickHouse,
        partition: i32,
        file: u64,
    ) -> Result<Vec<u64>> {
        let sql = format!(
            "SELECT DISTINCT {s} FROM {t} WHERE {p} = {partition} AND {src} = {file} FORMAT TSV",
            s = ddl::quote_ident(SLICE_COLUMN)?,
            t = self.table.sql()?,
            p = ddl::quote_ident(PARTITION_COLUMN)?,
            src = ddl::quote_ident(SOURCE_COLUMN)?,
        );
        let text = ch.query_tsv(&sql).await?;
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.trim().parse::<u64>().map_err(|_| bad_row(&self.table, l)))
            .collect()
    }
}

/// Next offset to consume per partition according to the rows stored
/// (`max(_velostream_offset) + 1`); partitions without rows are absent. For
/// monitoring (`velostream status`): the consumer's own resume points also
/// check the newest insert for completeness (see `recovery`).
pub async fn stored_offsets(ch: &ClickHouse, table: &TableRef) -> Result<HashMap<i32, i64>> {
    let sql = format!(
        "SELECT {p}, max({o}) FROM {t} GROUP BY {p} FORMAT TSV",
        p = ddl::quote_ident(PARTITION_COLUMN)?,
        o = ddl::quote_ident(OFFSET_COLUMN)?,
        t = table.sql()?
    );
    let text = ch.query_tsv(&sql).await?;
    let mut out = HashMap::new();
    for row in tsv::parse_rows(&text) {
        let [p, o] = numbers::<2>(table, row)?;
        out.insert(p as i32, o as i64 + 1);
    }
    Ok(out)
}

/// Whether an insert query id of this protocol touches `partition`.
fn touches(query_id: &str, partition: i32) -> bool {
    let marker = format!("p{partition}.");
    query_id
        .split(['-', '_'])
        .any(|part| part.starts_with(&marker))
}

/// `(p, i), (p, i)` for a tuple `IN` list.
fn key_list(keys: &[InsertKey]) -> String {
    keys.iter()
        .map(|k| format!("({}, {})", k.partition, k.insert_id))
        .collect::<Vec<_>>()
        .join(", ")
}

fn bad_row(table: &TableRef, line: &str) -> Error {
    Error::ClickHouse {
        context: format!("reading the exactly-once columns of {table}"),
        message: format!("unexpected row {line:?}"),
        code: None,
        transient: false,
    }
}

fn numbers<const N: usize>(table: &TableRef, row: Vec<String>) -> Result<[u64; N]> {
    let line = row.join("\t");
    let nums: Vec<u64> = row
        .iter()
        .map(|f| f.parse::<u64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad_row(table, &line))?;
    nums.try_into().map_err(|_| bad_row(table, &line))
}

fn three(table: &TableRef, row: Vec<String>) -> Result<[u64; 3]> {
    numbers(table, row)
}

fn four(table: &TableRef, row: Vec<String>) -> Result<[u64; 4]> {
    numbers(table, row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_ids_name_their_partitions() {
        let t = EoTable::new(TableRef::new(Some("db"), "trips"), false);
        let mut spans = Spans::default();
        spans.add(3, 100, 5);
        spans.add(11, 7, 0);
        let id = t.query_id(&spans);
        assert!(id.starts_with("velostream-"), "{id}");
        assert!(id.contains("-p3.100.100_p11.7.7-"), "{id}");
        assert!(touches(&id, 3) && touches(&id, 11));
        assert!(!touches(&id, 1), "p1 is not p11");
        assert_ne!(id, t.query_id(&spans), "ids are unique");
        let other = EoTable::new(TableRef::new(Some("db"), "other"), false);
        assert!(!other.query_id(&spans).starts_with(&t.prefix));
    }

    #[test]
    fn key_lists_are_sql_tuples() {
        let keys = [
            InsertKey {
                partition: 0,
                insert_id: 10,
            },
            InsertKey {
                partition: 2,
                insert_id: 7,
            },
        ];
        assert_eq!(key_list(&keys), "(0, 10), (2, 7)");
    }

    #[test]
    fn rows_of_numbers_or_a_named_error() {
        let t = TableRef::new(None, "t");
        assert_eq!(
            three(&t, vec!["1".into(), "2".into(), "3".into()]).unwrap(),
            [1, 2, 3]
        );
        let e = three(&t, vec!["1".into(), "x".into(), "3".into()]).unwrap_err();
        assert!(e.to_string().contains("unexpected row"), "{e}");
        assert!(four(&t, vec!["1".into()]).is_err());
    }
}
