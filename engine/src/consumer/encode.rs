//! Insert bodies: one Native block for all messages of an insert (with the
//! exactly-once columns appended per message), or JSON lines for the
//! per-row baseline.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, UInt32Array, UInt64Array};
use bytes::Bytes;

use super::core::batcher::{Batch, Entry};
use super::core::sources::SourceSlice;
use super::core::spans::Spans;
use super::item::Original;
use super::table::TablePlan;
use crate::{Error, Result};

/// What a lane holds of one message.
#[derive(Debug)]
pub(super) struct Held {
    pub data: Data,
    /// For its dead letter (when a dead-letter topic is configured).
    pub original: Option<Original>,
}

/// The rows of a held message.
#[derive(Debug)]
pub(super) enum Data {
    Arrow {
        batches: Vec<RecordBatch>,
        source: Option<SourceSlice>,
    },
    Json(Vec<u8>),
    /// Nothing to insert; only its offset counts.
    Skip,
}

/// The body format of an insert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Format {
    Native,
    JsonEachRow,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Native => "Native",
            Format::JsonEachRow => "JSONEachRow",
        }
    }
}

/// Encodes every message of `batch` into one body (`out`'s allocation is
/// reused). `plan` is `None` for the JSON baseline.
pub(super) fn body(
    plan: Option<&TablePlan>,
    batch: &Batch<Held>,
    out: Vec<u8>,
) -> Result<(Bytes, Format)> {
    match plan {
        Some(plan) => {
            native(plan, &batch.entries, &batch.spans(), out).map(|b| (b, Format::Native))
        }
        None => Ok((json(&batch.entries, out), Format::JsonEachRow)),
    }
}

/// The entries whose rows cannot be encoded on their own, with the error.
pub(super) fn culprits(plan: &TablePlan, batch: &Batch<Held>) -> Vec<(usize, Error)> {
    let mut out = Vec::new();
    for (i, e) in batch.entries.iter().enumerate() {
        if e.rows == 0 {
            continue;
        }
        let mut spans = Spans::default();
        spans.add(e.partition, e.offset, e.rows as u64);
        if let Err(err) = native(plan, std::slice::from_ref(e), &spans, Vec::new()) {
            out.push((i, err));
        }
    }
    out
}

fn native(
    plan: &TablePlan,
    entries: &[Entry<Held>],
    spans: &Spans,
    mut out: Vec<u8>,
) -> Result<Bytes> {
    let mut batches = Vec::new();
    for e in entries {
        let Data::Arrow {
            batches: bs,
            source,
        } = &e.payload.data
        else {
            continue;
        };
        for b in bs.iter().filter(|b| b.num_rows() > 0) {
            batches.push(if plan.exactly_once {
                with_bookkeeping(plan, b, e, spans, *source)?
            } else {
                b.clone()
            });
        }
    }
    let size = velostream_codecs::memory::held_bytes(&batches);
    out.clear();
    out.reserve(size + 4096);
    plan.encoder.encode_batches(&batches, &mut out)?;
    Ok(Bytes::from(out))
}

/// Appends the exactly-once columns (see `exactly_once::COLUMNS`).
fn with_bookkeeping(
    plan: &TablePlan,
    b: &RecordBatch,
    e: &Entry<Held>,
    spans: &Spans,
    source: Option<SourceSlice>,
) -> Result<RecordBatch> {
    let n = b.num_rows();
    // The spans are computed from the same entries: every partition is there.
    let span = spans.get(e.partition).copied().ok_or_else(|| {
        Error::Config(format!(
            "no span for partition {} in its own insert",
            e.partition
        ))
    })?;
    let insert_rows = u32::try_from(span.rows).map_err(|_| {
        Error::Config(format!(
            "an insert of {} rows of one partition exceeds the exactly-once row count column",
            span.rows
        ))
    })?;
    let u64s = |v: u64| Arc::new(UInt64Array::from(vec![v; n])) as ArrayRef;
    let mut cols: Vec<ArrayRef> = b.columns().to_vec();
    cols.push(Arc::new(UInt32Array::from(vec![e.partition as u32; n])));
    cols.push(u64s(e.offset as u64));
    cols.push(u64s(span.insert_id.unwrap_or(e.offset) as u64));
    cols.push(Arc::new(UInt32Array::from(vec![insert_rows; n])));
    cols.push(u64s(source.map_or(0, |s| s.file)));
    cols.push(u64s(source.map_or(0, |s| s.slice)));
    RecordBatch::try_new(Arc::clone(&plan.batch_schema), cols).map_err(|source| Error::Arrow {
        context: format!(
            "adding the exactly-once columns (partition {}, offset {})",
            e.partition, e.offset
        ),
        source,
    })
}

fn json(entries: &[Entry<Held>], mut out: Vec<u8>) -> Bytes {
    out.clear();
    for e in entries {
        if let Data::Json(row) = &e.payload.data {
            out.extend_from_slice(row);
            out.push(b'\n');
        }
    }
    Bytes::from(out)
}
