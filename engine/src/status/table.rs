//! The ClickHouse side of `status`: the table's row count and, for tables
//! written with `--exactly-once`, the offsets stored with the rows.

use velostream_codecs::chtype::ChType;

use super::model::TableObservation;
use crate::clickhouse::{ClickHouse, TableRef};
use crate::consumer::exactly_once::stored_offsets;
use crate::consumer::{OFFSET_COLUMN, PARTITION_COLUMN};
use crate::Result;

/// Reads the table's row count and stored offsets; a missing table is
/// reported as such (the consumer may not have created it yet).
pub async fn observe(ch: &ClickHouse, table: &TableRef) -> Result<TableObservation> {
    let Some(columns) = ch.table_columns(table).await? else {
        return Ok(TableObservation {
            table: table.to_string(),
            exists: false,
            rows: 0,
            exactly_once: false,
            stored: Vec::new(),
        });
    };
    let exactly_once = has_offset_columns(&columns);
    let rows = ch.count_rows(table).await?;
    let mut stored: Vec<(i32, i64)> = if exactly_once {
        stored_offsets(ch, table).await?.into_iter().collect()
    } else {
        Vec::new()
    };
    stored.sort_unstable();
    Ok(TableObservation {
        table: table.to_string(),
        exists: true,
        rows,
        exactly_once,
        stored,
    })
}

fn has_offset_columns(columns: &[(String, ChType)]) -> bool {
    [PARTITION_COLUMN, OFFSET_COLUMN]
        .iter()
        .all(|want| columns.iter().any(|(name, _)| name == want))
}
