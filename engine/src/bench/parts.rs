//! What a run cost ClickHouse in parts: parts created by inserts and merges
//! completed for the run's table, from `system.part_log` (kept by the local
//! servers `velostream local` starts, and by any server whose config has a
//! `<part_log>` section). Each insert writes at least one part and every part
//! is merged again later, so parts per million rows show how much
//! background work an insert policy leaves to the server.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use velostream_codecs::ddl::quote_string;

use crate::clickhouse::{ClickHouse, TableRef};
use crate::Result;

/// Parts and merges of one table during a run (summed over its servers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PartActivity {
    /// Parts written by inserts (`NewPart`).
    pub parts_created: u64,
    /// Merges completed by the time the run was measured (`MergeParts`).
    pub merges: u64,
    /// Parts created per million rows.
    pub parts_per_million_rows: f64,
    /// Merges per million rows.
    pub merges_per_million_rows: f64,
}

impl PartActivity {
    /// The counts with their per-million-rows figures for `rows`.
    pub fn new(parts_created: u64, merges: u64, rows: u64) -> PartActivity {
        let per_million = |n: u64| n as f64 / rows.max(1) as f64 * 1e6;
        PartActivity {
            parts_created,
            merges,
            parts_per_million_rows: per_million(parts_created),
            merges_per_million_rows: per_million(merges),
        }
    }
}

/// Seconds since the epoch, for [`part_activity`]'s `since`.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Parts created and merges completed for `table` since `since` (seconds
/// since the epoch) on `servers`, for `rows` rows; `None` when a server
/// keeps no part log.
pub async fn part_activity<'a>(
    servers: impl IntoIterator<Item = &'a ClickHouse>,
    table: &TableRef,
    since: u64,
    rows: u64,
) -> Result<Option<PartActivity>> {
    let db = table.database.clone().unwrap_or_else(|| "default".into());
    let part_log = TableRef::new(Some("system"), "part_log");
    let (mut parts, mut merges) = (0, 0);
    for ch in servers {
        // The log is written in the background; flush it. (Event names are
        // NEW_PART / MERGE_PARTS on 18.x, NewPart / MergeParts since.)
        let _ = ch.execute("SYSTEM FLUSH LOGS").await;
        if !ch.table_exists(&part_log).await? {
            return Ok(None);
        }
        let sql = format!(
            "SELECT countIf(toString(event_type) IN ('NewPart', 'NEW_PART')), \
             countIf(toString(event_type) IN ('MergeParts', 'MERGE_PARTS')) FROM system.part_log \
             WHERE database = {} AND table = {} AND event_time >= toDateTime({since}) FORMAT TSV",
            quote_string(&db),
            quote_string(&table.table)
        );
        let text = ch.query_tsv(&sql).await?;
        let (p, m) = parse_counts(&text).ok_or_else(|| {
            crate::Error::Validation(format!(
                "system.part_log on {} answered {text:?} for table {table}",
                ch.config().url
            ))
        })?;
        parts += p;
        merges += m;
    }
    Ok(Some(PartActivity::new(parts, merges, rows)))
}

fn parse_counts(text: &str) -> Option<(u64, u64)> {
    let mut it = text.trim().split('\t');
    let parts = it.next()?.parse().ok()?;
    let merges = it.next()?.parse().ok()?;
    Some((parts, merges))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_read_and_scaled_per_million_rows() {
        assert_eq!(parse_counts("88\t12\n"), Some((88, 12)));
        assert_eq!(parse_counts("x"), None);
        let a = PartActivity::new(88, 11, 44_000_000);
        assert_eq!(a.parts_per_million_rows, 2.0);
        assert_eq!(a.merges_per_million_rows, 0.25);
    }
}
