//! `--compare native-file`: ClickHouse's own insert of the same rows from
//! pre-encoded Native data over HTTP, with as many parallel insert streams
//! as the pipeline used. This is the sink's limit on this machine, the
//! yardstick for the end-to-end rate.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::cpu::{MachineCpu, ProcessCpu};
use super::expected::Chunk;
use super::parts::{self, PartActivity};
use crate::clickhouse::{ClickHouse, InsertOptions, TableRef};
use crate::{Error, Result};

/// Result of the native-file insert.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NativeFileResult {
    pub rows: u64,
    pub bytes: u64,
    pub streams: usize,
    pub seconds: f64,
    pub rows_per_s: f64,
    /// ClickHouse server CPU seconds per million rows (when its process is known).
    pub clickhouse_cpu_seconds_per_million_rows: Option<f64>,
    /// Average busy cores of the whole machine during the insert.
    pub machine_busy_cores: f64,
    /// Parts created and merges completed for its table during the insert.
    #[serde(default)]
    pub clickhouse_parts: Option<PartActivity>,
}

/// Inserts every chunk of `file` into `table` with `streams` parallel streams.
pub async fn run(
    ch: &ClickHouse,
    table: &TableRef,
    file: &Path,
    chunks: &[Chunk],
    streams: usize,
    clickhouse_pid: Option<u32>,
) -> Result<NativeFileResult> {
    let watch: Vec<(String, u32)> = clickhouse_pid
        .map(|p| ("clickhouse".to_string(), p))
        .into_iter()
        .collect();
    let server_cpu = ProcessCpu::start(&watch);
    let machine_cpu = MachineCpu::start();
    let since = parts::now_unix();
    let f = Arc::new(
        std::fs::File::open(file)
            .map_err(|e| Error::io(format!("opening {}", file.display()), e))?,
    );
    let chunks: Arc<Vec<Chunk>> = Arc::new(chunks.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..streams.max(1) {
        let (ch, table, f, chunks, next) = (
            ch.clone(),
            table.clone(),
            Arc::clone(&f),
            Arc::clone(&chunks),
            Arc::clone(&next),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(c) = chunks.get(i).copied() else {
                    return Ok::<(), Error>(());
                };
                let mut buf = vec![0u8; c.len];
                f.read_exact_at(&mut buf, c.offset)
                    .map_err(|e| Error::io("reading the Native file", e))?;
                ch.insert_native(&table, Bytes::from(buf), &InsertOptions::default())
                    .await?;
            }
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| Error::Interrupted(format!("an insert stream panicked: {e}")))??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let machine_busy_cores = machine_cpu.busy_cores();
    let rows: u64 = chunks.iter().map(|c| c.rows).sum();
    let clickhouse_parts = parts::part_activity([ch], table, since, rows).await?;
    let clickhouse_cpu_seconds_per_million_rows = server_cpu
        .seconds()
        .get("clickhouse")
        .map(|s| s / rows.max(1) as f64 * 1e6);
    Ok(NativeFileResult {
        rows,
        bytes: chunks.iter().map(|c| c.len as u64).sum(),
        streams: streams.max(1),
        seconds,
        rows_per_s: rows as f64 / seconds.max(1e-9),
        clickhouse_cpu_seconds_per_million_rows,
        machine_busy_cores,
        clickhouse_parts,
    })
}
