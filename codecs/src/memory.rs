//! The memory record batches hold.
//!
//! `RecordBatch::get_array_memory_size` counts each buffer's whole
//! allocation, once per array that refers to it. A batch decoded from an
//! uncompressed Arrow IPC message is zero-copy: every column is a slice of
//! the one message buffer, so that figure is the message size times the
//! number of buffers (a 1 MiB message of 19 columns "held" about 40 MiB).
//! [`held_bytes`] counts every allocation once.

use std::collections::HashSet;

use arrow_array::{Array, RecordBatch};
use arrow_data::ArrayData;

/// Bytes of the distinct allocations `batches` refer to.
pub fn held_bytes(batches: &[RecordBatch]) -> usize {
    let mut seen = HashSet::new();
    let mut total = 0;
    for batch in batches {
        for column in batch.columns() {
            add(&column.to_data(), &mut seen, &mut total);
        }
    }
    total
}

fn add(data: &ArrayData, seen: &mut HashSet<usize>, total: &mut usize) {
    let nulls = data.nulls().map(|n| n.buffer());
    for buffer in data.buffers().iter().chain(nulls) {
        if seen.insert(buffer.data_ptr().as_ptr() as usize) {
            *total += buffer.capacity();
        }
    }
    for child in data.child_data() {
        add(child, seen, total);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;
    use crate::ipc::{decode, IpcCompression, IpcEncoder};

    fn batch(rows: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        let a = Int64Array::from_iter((0..rows).map(|i| (i % 3 != 0).then_some(i)));
        let b = Int64Array::from_iter_values(0..rows);
        let s = StringArray::from_iter((0..rows).map(|i| (i % 5 != 0).then(|| format!("v{i}"))));
        RecordBatch::try_new(schema, vec![Arc::new(a), Arc::new(b), Arc::new(s)]).unwrap()
    }

    #[test]
    fn a_zero_copy_decoded_message_holds_its_buffer_once() {
        let b = batch(10_000);
        let mut encoder = IpcEncoder::new(IpcCompression::None).unwrap();
        let message = encoder
            .encode(&b.schema(), std::slice::from_ref(&b))
            .unwrap();
        let decoded = decode(&message).unwrap().batches;
        let held = held_bytes(&decoded);
        let naive: usize = decoded.iter().map(|b| b.get_array_memory_size()).sum();
        assert!(
            held <= message.len() + 4096,
            "{held} vs message {}",
            message.len()
        );
        assert!(
            held >= message.len() / 2,
            "{held} vs message {}",
            message.len()
        );
        assert!(
            naive >= 4 * message.len(),
            "the per-array figure overcounts: {naive}"
        );
    }

    #[test]
    fn owned_columns_count_every_buffer_and_shared_ones_once() {
        let b = batch(1_000);
        let own = held_bytes(std::slice::from_ref(&b));
        // The per-array figure adds the arrays' own structs, nothing more.
        let naive = b.get_array_memory_size();
        assert!(own <= naive && own + 1024 > naive, "{own} vs {naive}");
        // The same batch twice, or sliced, refers to the same allocations.
        assert_eq!(held_bytes(&[b.clone(), b.slice(10, 100)]), own);
    }
}
