//! What a run cost ClickHouse in parts: parts created by inserts and merges
//! completed for the run's table, from `system.part_log` (kept by the local
//! servers `velostream local` starts, and by any server whose config has a
//! `<part_log>` section). Each insert writes at least one part and every part
//! is merged again later, so parts per million rows show how much
//! background work an insert policy leaves to the server.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// How long [`part_activity`] waits for the part log to show every row
/// inserted: longer than the log's flush interval (7.5 s by default), after
/// which the server writes it on its own.
const PART_LOG_WAIT: Duration = Duration::from_secs(15);

/// Parts created and merges completed for `table` since `since` (seconds
/// since the epoch) on `servers`, for `rows` rows; `None` when a server
/// keeps no part log.
///
/// `SYSTEM FLUSH LOGS` on ClickHouse 18.x writes only the entries the log's
/// thread has already taken from its queue, so right after an insert on a
/// busy machine it can miss the newest parts (a bench once reported 0 parts
/// for 20,000 rows it had just inserted). The log is complete when its new
/// parts hold at least the rows inserted (each row is written once, into one
/// part, on one server), so it is read until then, for at most
/// [`PART_LOG_WAIT`].
pub async fn part_activity<'a>(
    servers: impl IntoIterator<Item = &'a ClickHouse>,
    table: &TableRef,
    since: u64,
    rows: u64,
) -> Result<Option<PartActivity>> {
    let servers: Vec<&ClickHouse> = servers.into_iter().collect();
    let deadline = Instant::now() + PART_LOG_WAIT;
    loop {
        let Some(logged) = read_part_log(&servers, table, since).await? else {
            return Ok(None);
        };
        if logged.new_part_rows >= rows || Instant::now() >= deadline {
            if logged.new_part_rows < rows {
                tracing::warn!(
                    "system.part_log shows {} of the {rows} rows inserted into {table} after \
                     {PART_LOG_WAIT:?}: its part counts are a lower bound",
                    logged.new_part_rows
                );
            }
            return Ok(Some(PartActivity::new(logged.parts, logged.merges, rows)));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the part log shows of one table, summed over its servers.
struct Logged {
    parts: u64,
    merges: u64,
    /// Rows of the parts created by inserts.
    new_part_rows: u64,
}

/// Flushes and reads the part log of `servers`; `None` without one.
async fn read_part_log(
    servers: &[&ClickHouse],
    table: &TableRef,
    since: u64,
) -> Result<Option<Logged>> {
    let db = table.database.clone().unwrap_or_else(|| "default".into());
    let part_log = TableRef::new(Some("system"), "part_log");
    let mut sum = Logged {
        parts: 0,
        merges: 0,
        new_part_rows: 0,
    };
    for ch in servers {
        // The log is written in the background; flush it. (Event names are
        // NEW_PART / MERGE_PARTS on 18.x, NewPart / MergeParts since.)
        let _ = ch.execute("SYSTEM FLUSH LOGS").await;
        if !ch.table_exists(&part_log).await? {
            return Ok(None);
        }
        let sql = format!(
            "SELECT countIf(toString(event_type) IN ('NewPart', 'NEW_PART')), \
             countIf(toString(event_type) IN ('MergeParts', 'MERGE_PARTS')), \
             sumIf(rows, toString(event_type) IN ('NewPart', 'NEW_PART')) FROM system.part_log \
             WHERE database = {} AND table = {} AND event_time >= toDateTime({since}) FORMAT TSV",
            quote_string(&db),
            quote_string(&table.table)
        );
        let text = ch.query_tsv(&sql).await?;
        let (p, m, r) = parse_counts(&text).ok_or_else(|| {
            crate::Error::Validation(format!(
                "system.part_log on {} answered {text:?} for table {table}",
                ch.config().url
            ))
        })?;
        sum.parts += p;
        sum.merges += m;
        sum.new_part_rows += r;
    }
    Ok(Some(sum))
}

/// `parts \t merges \t rows of new parts`.
fn parse_counts(text: &str) -> Option<(u64, u64, u64)> {
    let mut it = text.trim().split('\t');
    let parts = it.next()?.parse().ok()?;
    let merges = it.next()?.parse().ok()?;
    let rows = it.next()?.parse().ok()?;
    Some((parts, merges, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_read_and_scaled_per_million_rows() {
        assert_eq!(
            parse_counts("88\t12\t44000000\n"),
            Some((88, 12, 44_000_000))
        );
        assert_eq!(parse_counts("88\t12\n"), None);
        assert_eq!(parse_counts("x"), None);
        let a = PartActivity::new(88, 11, 44_000_000);
        assert_eq!(a.parts_per_million_rows, 2.0);
        assert_eq!(a.merges_per_million_rows, 0.25);
    }
}
