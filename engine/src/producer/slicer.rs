//! Splits record batches into Kafka messages of a target size that never
//! exceed the broker's message size limit.
//!
//! The rows per message are estimated from the encoded bytes per row seen so
//! far (compression ratios vary per data set); a message that still comes
//! out too large is split in half and re-encoded until it fits, so nothing is
//! ever dropped. Only a single row larger than the limit is an error.

use arrow_array::RecordBatch;
use velostream_codecs::ipc::{IpcCompression, IpcEncoder};

use crate::{Error, Result};

/// Size bounds for messages.
#[derive(Clone, Copy, Debug)]
pub struct SlicerConfig {
    /// Upper bound on rows per message.
    pub max_rows: usize,
    /// Aim for messages of about this many encoded bytes.
    pub target_bytes: usize,
    /// Never emit a message larger than this.
    pub max_bytes: usize,
}

/// Stateful slicer (it learns the encoded bytes per row); one per worker.
#[derive(Debug)]
pub struct Slicer {
    cfg: SlicerConfig,
    encoder: IpcEncoder,
    /// Smoothed encoded bytes per row, `None` before the first message.
    bytes_per_row: Option<f64>,
}

impl Slicer {
    /// A slicer that encodes with `compression` (LZ4: buffers that shrink at
    /// least `lz4_min_ratio` times).
    pub fn new(cfg: SlicerConfig, compression: IpcCompression, lz4_min_ratio: f64) -> Result<Self> {
        if cfg.max_rows == 0 || cfg.target_bytes == 0 || cfg.max_bytes < 1024 {
            return Err(Error::Config(format!(
                "message limits too small: {cfg:?} (max bytes must be at least 1024)"
            )));
        }
        Ok(Slicer {
            cfg,
            encoder: IpcEncoder::new(compression)?.with_lz4_min_ratio(lz4_min_ratio),
            bytes_per_row: None,
        })
    }

    /// Encodes `batch` as one or more messages, calling `emit(payload, slice)`
    /// for each in row order. `what` names the source in errors.
    pub fn slice(
        &mut self,
        batch: &RecordBatch,
        what: &str,
        emit: &mut dyn FnMut(Vec<u8>, &RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let n = batch.num_rows();
        let mut offset = 0;
        while offset < n {
            let est = self.bytes_per_row.unwrap_or_else(|| {
                // Before the first message: half the in-memory size.
                (batch.get_array_memory_size() as f64 / n as f64 / 2.0).max(1.0)
            });
            let by_bytes = (self.cfg.target_bytes as f64 / est).floor() as usize;
            let rows = by_bytes.clamp(1, self.cfg.max_rows).min(n - offset);
            self.encode_fitting(&batch.slice(offset, rows), offset, what, emit)?;
            offset += rows;
        }
        Ok(())
    }

    fn encode_fitting(
        &mut self,
        slice: &RecordBatch,
        first_row: usize,
        what: &str,
        emit: &mut dyn FnMut(Vec<u8>, &RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let rows = slice.num_rows();
        let payload = self
            .encoder
            .encode(slice.schema_ref(), std::slice::from_ref(slice))?;
        let per_row = payload.len() as f64 / rows as f64;
        self.bytes_per_row = Some(match self.bytes_per_row {
            Some(prev) => 0.7 * prev + 0.3 * per_row,
            None => per_row,
        });
        if payload.len() <= self.cfg.max_bytes {
            return emit(payload, slice);
        }
        if rows == 1 {
            return Err(Error::Config(format!(
                "{what}: row {first_row} encodes to {} bytes, above the message limit of {} bytes \
                 (raise --max-message-bytes and the broker's message.max.bytes)",
                payload.len(),
                self.cfg.max_bytes
            )));
        }
        let half = rows / 2;
        self.encode_fitting(&slice.slice(0, half), first_row, what, emit)?;
        self.encode_fitting(
            &slice.slice(half, rows - half),
            first_row + half,
            what,
            emit,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, StringArray};
    use velostream_codecs::ipc;

    use super::*;

    fn batch(n: usize, text: usize) -> RecordBatch {
        let ids: Vec<i64> = (0..n as i64).collect();
        // Pseudo-random text (xorshift) so that LZ4 cannot shrink it much; an
        // arithmetic pattern of i and j repeats and compresses about 7x.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let s: Vec<String> = (0..n)
            .map(|_| {
                (0..text)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        char::from(b'a' + (state % 26) as u8)
                    })
                    .collect()
            })
            .collect();
        RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(ids)) as ArrayRef),
            ("s", Arc::new(StringArray::from(s)) as ArrayRef),
        ])
        .unwrap()
    }

    fn run(cfg: SlicerConfig, b: &RecordBatch) -> Result<Vec<(usize, usize)>> {
        let mut s = Slicer::new(cfg, IpcCompression::Lz4Frame, 2.0)?;
        let mut out = Vec::new();
        let mut next_id = 0i64;
        s.slice(b, "test", &mut |payload, slice| {
            let d = ipc::decode(&payload).unwrap();
            let ids = d.batches[0]
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .clone();
            // Rows come out in order, none lost or repeated.
            assert_eq!(ids.value(0), next_id);
            next_id += ids.len() as i64;
            out.push((payload.len(), slice.num_rows()));
            Ok(())
        })?;
        assert_eq!(next_id as usize, b.num_rows());
        Ok(out)
    }

    #[test]
    fn every_message_fits_and_rows_are_complete() {
        let b = batch(20_000, 200);
        let cfg = SlicerConfig {
            max_rows: 100_000,
            target_bytes: 200_000,
            max_bytes: 250_000,
        };
        let msgs = run(cfg, &b).unwrap();
        assert!(msgs.len() > 5, "{msgs:?}");
        assert!(msgs.iter().all(|(bytes, _)| *bytes <= 250_000));
    }

    #[test]
    fn max_rows_caps_messages() {
        let b = batch(1000, 1);
        let cfg = SlicerConfig {
            max_rows: 128,
            target_bytes: 1 << 20,
            max_bytes: 1 << 20,
        };
        let msgs = run(cfg, &b).unwrap();
        assert_eq!(msgs.len(), 8);
        assert!(msgs.iter().all(|(_, rows)| *rows <= 128));
    }

    #[test]
    fn a_single_oversized_row_is_an_error_naming_the_source() {
        let b = batch(3, 5000);
        let cfg = SlicerConfig {
            max_rows: 10,
            target_bytes: 2048,
            max_bytes: 2048,
        };
        let err = run(cfg, &b).unwrap_err().to_string();
        assert!(err.contains("test: row 0") && err.contains("2048"), "{err}");
    }
}
