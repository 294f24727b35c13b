//! Keyed partitioning: rows with equal key values go to the same partition.
//!
//! The key is hashed from its display text (FNV-1a), which is stable across
//! processes and Arrow versions; null keys go to partition 0.

use arrow_array::{RecordBatch, UInt32Array};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use std::fmt::Write as _;

use crate::{Error, Result};

/// Splits `batch` into one batch per partition (in partition order, empty
/// partitions omitted), keeping the row order within each.
pub(super) fn split(
    batch: &RecordBatch,
    key: usize,
    partitions: usize,
) -> Result<Vec<(Option<i32>, RecordBatch)>> {
    let col = batch.column(key);
    let name = batch.schema().field(key).name().clone();
    let arrow = |source| Error::Arrow {
        context: format!("hashing key column {name:?}"),
        source,
    };
    let fmt = ArrayFormatter::try_new(col.as_ref(), &FormatOptions::default()).map_err(arrow)?;
    let mut indices: Vec<Vec<u32>> = vec![Vec::new(); partitions];
    let mut text = String::new();
    for row in 0..batch.num_rows() {
        let p = if col.is_null(row) {
            0
        } else {
            text.clear();
            let _ = write!(text, "{}", fmt.value(row));
            (fnv1a(text.as_bytes()) % partitions as u64) as usize
        };
        indices[p].push(row as u32);
    }
    let mut out = Vec::new();
    for (p, idx) in indices.into_iter().enumerate() {
        if idx.is_empty() {
            continue;
        }
        let part =
            arrow_select::take::take_record_batch(batch, &UInt32Array::from(idx)).map_err(arrow)?;
        out.push((Some(p as i32), part));
    }
    Ok(out)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int32Array, StringArray};

    use super::*;

    #[test]
    fn equal_keys_share_a_partition_and_no_row_is_lost() {
        let keys = StringArray::from(vec![Some("a"), Some("b"), None, Some("a"), Some("c")]);
        let ids = Int32Array::from(vec![0, 1, 2, 3, 4]);
        let b = RecordBatch::try_from_iter([
            ("k", Arc::new(keys) as ArrayRef),
            ("id", Arc::new(ids) as ArrayRef),
        ])
        .unwrap();
        let parts = split(&b, 0, 3).unwrap();
        let total: usize = parts.iter().map(|(_, b)| b.num_rows()).sum();
        assert_eq!(total, 5);
        let where_is = |id: i32| {
            parts
                .iter()
                .find(|(_, b)| {
                    let c = b.column(1).as_any().downcast_ref::<Int32Array>().unwrap();
                    c.iter().any(|v| v == Some(id))
                })
                .unwrap()
                .0
        };
        assert_eq!(where_is(0), where_is(3));
        assert_eq!(where_is(2), Some(0));
    }
}
