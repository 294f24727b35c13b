//! `--compare parquet-decode`: a bare decode of the same Parquet files (all
//! columns, results discarded) with the producer's parallelism: the
//! producer's ceiling on the same cores.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::source::ParquetSource;
use crate::{Error, Result};

/// Result of the bare decode.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DecodeResult {
    pub rows: u64,
    pub threads: usize,
    pub seconds: f64,
    pub rows_per_s: f64,
}

/// Decodes every row group with `threads` threads, like the producer's workers.
pub fn run(source: &Arc<ParquetSource>, threads: usize, batch_rows: usize) -> Result<DecodeResult> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let threads = threads.max(1);
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (source, next) = (Arc::clone(source), Arc::clone(&next));
            std::thread::Builder::new()
                .name(format!("velostream-decode-{i}"))
                .spawn(move || -> Result<u64> {
                    let mut rows = 0u64;
                    loop {
                        let g = next.fetch_add(1, Ordering::Relaxed);
                        let Some(rg) = source.row_groups().get(g) else {
                            return Ok(rows);
                        };
                        for b in source.read_row_group(rg, batch_rows)? {
                            rows += std::hint::black_box(b?).num_rows() as u64;
                        }
                    }
                })
                .map_err(|e| Error::io("spawning a decode thread", e))
        })
        .collect::<Result<_>>()?;
    let mut rows = 0;
    for h in handles {
        rows += h
            .join()
            .map_err(|_| Error::Interrupted("a decode thread panicked".into()))??;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(DecodeResult {
        rows,
        threads,
        seconds,
        rows_per_s: rows as f64 / seconds.max(1e-9),
    })
}
