//! Parallel generation and encoding of row groups, appended in order.
//!
//! Worker threads take row groups in global order, generate them and encode
//! every column chunk; the calling thread appends finished row groups to the
//! current file in order. Workers stay within a small window ahead of the
//! writer, bounding memory to a few encoded row groups.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, SchemaRef};
use parquet::arrow::arrow_writer::{
    compute_leaves, ArrowColumnChunk, ArrowRowGroupWriterFactory, ArrowWriter, ArrowWriterOptions,
};
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;

use super::taxi::{Chunk, TaxiModel};
use super::{taxi_schema, GenConfig, GenSummary};
use crate::progress::Progress;
use crate::{Error, Result};

/// One row group to produce.
#[derive(Clone, Copy, Debug)]
struct Job {
    file: usize,
    row_group: usize,
    last_in_file: bool,
    chunk: Chunk,
}

/// An encoded row group.
struct Encoded {
    rows: usize,
    bytes: u64,
    chunks: Vec<ArrowColumnChunk>,
}

/// [`super::generate`] with an explicit number of worker threads (the output
/// does not depend on it).
pub fn generate_with_threads(
    cfg: &GenConfig,
    progress: &Progress,
    threads: usize,
) -> Result<GenSummary> {
    let started = Instant::now();
    let (paths, jobs) = plan(cfg)?;
    std::fs::create_dir_all(&cfg.out).map_err(|e| {
        Error::io(
            format!("creating output directory {}", cfg.out.display()),
            e,
        )
    })?;
    let schema = taxi_schema();
    let props = writer_properties();
    let options = ArrowWriterOptions::new().with_properties(props);
    let (_, factory) =
        ArrowWriter::try_new_with_options(Vec::new(), schema.clone(), options.clone())
            .and_then(|w| w.into_serialized_writer())
            .map_err(|e| parquet_error("gen: Parquet writer setup".into(), e))?;
    let model = TaxiModel::new(schema.clone(), cfg.rows);

    let threads = threads.clamp(1, jobs.len().max(1));
    let window = threads * 2;
    let next_job = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let written = (Mutex::new(0usize), Condvar::new());
    let (tx, rx) = mpsc::channel::<(usize, Result<Encoded>)>();

    let outcome = std::thread::scope(|s| {
        for _ in 0..threads {
            let tx = tx.clone();
            let ctx = WorkerCtx {
                jobs: &jobs,
                next_job: &next_job,
                stop: &stop,
                written: &written,
                window,
                model: &model,
                factory: &factory,
                schema: &schema,
                seed: cfg.seed,
            };
            s.spawn(move || ctx.run(tx));
        }
        drop(tx);
        let result = write_in_order(&paths, &jobs, &schema, &options, progress, &rx, &written);
        if result.is_err() {
            stop.store(true, Ordering::SeqCst);
            written.1.notify_all();
        }
        drop(rx);
        result
    });
    if outcome.is_err() {
        for path in &paths {
            let _ = std::fs::remove_file(tmp_path(path));
        }
    }
    outcome?;
    remove_stale(&cfg.out, paths.len())?;
    let mut bytes = 0;
    for path in &paths {
        bytes += std::fs::metadata(path)
            .map_err(|e| Error::io(format!("reading size of {}", path.display()), e))?
            .len();
    }
    Ok(GenSummary {
        files: paths,
        rows: cfg.rows,
        bytes,
        elapsed: started.elapsed(),
    })
}

/// Writer settings: ZSTD level 1, dictionaries on (parquet defaults otherwise).
fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_dictionary_enabled(true)
        .build()
}

/// Output paths and the row groups of every file, in global order.
fn plan(cfg: &GenConfig) -> Result<(Vec<PathBuf>, Vec<Job>)> {
    if cfg.rows == 0 {
        return Err(Error::Config("gen: --rows must be at least 1".into()));
    }
    if cfg.files == 0 || cfg.files as u64 > cfg.rows {
        return Err(Error::Config(format!(
            "gen: --files must be between 1 and the number of rows ({}), got {}",
            cfg.rows, cfg.files
        )));
    }
    if cfg.row_group_rows == 0 {
        return Err(Error::Config(
            "gen: --row-group-rows must be at least 1".into(),
        ));
    }
    let files = cfg.files as u64;
    let mut paths = Vec::with_capacity(cfg.files);
    let mut jobs = Vec::new();
    let mut first_row = 0u64;
    for file in 0..cfg.files {
        paths.push(cfg.out.join(format!("taxi-{file:05}.parquet")));
        let rows = cfg.rows / files + u64::from((file as u64) < cfg.rows % files);
        let rg_rows = cfg.row_group_rows as u64;
        let groups = rows.div_ceil(rg_rows);
        for row_group in 0..groups {
            let n = rg_rows.min(rows - row_group * rg_rows);
            jobs.push(Job {
                file,
                row_group: row_group as usize,
                last_in_file: row_group + 1 == groups,
                chunk: Chunk {
                    index: jobs.len() as u64,
                    first_row,
                    rows: n as usize,
                    total_rows: cfg.rows,
                },
            });
            first_row += n;
        }
    }
    Ok((paths, jobs))
}

struct WorkerCtx<'a> {
    jobs: &'a [Job],
    next_job: &'a AtomicUsize,
    stop: &'a AtomicBool,
    written: &'a (Mutex<usize>, Condvar),
    window: usize,
    model: &'a TaxiModel,
    factory: &'a ArrowRowGroupWriterFactory,
    schema: &'a SchemaRef,
    seed: u64,
}

impl WorkerCtx<'_> {
    fn run(&self, tx: mpsc::Sender<(usize, Result<Encoded>)>) {
        loop {
            let idx = self.next_job.fetch_add(1, Ordering::SeqCst);
            if idx >= self.jobs.len() {
                return;
            }
            // Stay within `window` row groups of the writer.
            {
                let (lock, cvar) = self.written;
                let mut done = lock.lock().unwrap_or_else(|e| e.into_inner());
                while idx >= *done + self.window && !self.stop.load(Ordering::SeqCst) {
                    done = cvar.wait(done).unwrap_or_else(|e| e.into_inner());
                }
            }
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            let job = &self.jobs[idx];
            let result = catch_unwind(AssertUnwindSafe(|| {
                self.model
                    .batch(self.seed, &job.chunk)
                    .and_then(|batch| self.encode(job, &batch))
            }))
            .unwrap_or_else(|_| {
                Err(Error::Config(format!(
                    "gen: worker panicked on row group {}",
                    job.chunk.index
                )))
            });
            let failed = result.is_err();
            if tx.send((idx, result)).is_err() || failed {
                return;
            }
        }
    }

    fn encode(&self, job: &Job, batch: &RecordBatch) -> Result<Encoded> {
        let err = |e: ParquetError| {
            parquet_error(format!("gen: encoding row group {}", job.chunk.index), e)
        };
        let mut writers = self
            .factory
            .create_column_writers(job.row_group)
            .map_err(err)?;
        let mut next = writers.iter_mut();
        for (field, column) in self.schema.fields().iter().zip(batch.columns()) {
            for leaf in compute_leaves(field, column).map_err(err)? {
                let writer = next.next().ok_or_else(|| {
                    Error::Config(format!(
                        "no Parquet column writer left for {}",
                        field.name()
                    ))
                })?;
                writer.write(&leaf).map_err(err)?;
            }
        }
        let chunks = writers
            .into_iter()
            .map(|w| w.close())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(err)?;
        let bytes = chunks.iter().map(|c| c.close().bytes_written).sum();
        Ok(Encoded {
            rows: batch.num_rows(),
            bytes,
            chunks,
        })
    }
}

/// Receives encoded row groups and appends them to the files in order.
fn write_in_order(
    paths: &[PathBuf],
    jobs: &[Job],
    schema: &SchemaRef,
    options: &ArrowWriterOptions,
    progress: &Progress,
    rx: &mpsc::Receiver<(usize, Result<Encoded>)>,
    written: &(Mutex<usize>, Condvar),
) -> Result<()> {
    let mut pending: BTreeMap<usize, Encoded> = BTreeMap::new();
    let mut current: Option<SerializedFileWriter<BufWriter<File>>> = None;
    let mut next = 0usize;
    while next < jobs.len() {
        let Some(encoded) = pending.remove(&next) else {
            let (idx, result) = rx.recv().map_err(|_| {
                Error::Config(
                    "gen: worker threads stopped before all row groups were written".into(),
                )
            })?;
            pending.insert(idx, result?);
            continue;
        };
        let job = &jobs[next];
        let path = &paths[job.file];
        let tmp = tmp_path(path);
        let write_err = |e: ParquetError| {
            parquet_error(
                format!(
                    "gen: writing row group {} of {}",
                    job.row_group,
                    tmp.display()
                ),
                e,
            )
        };
        if job.row_group == 0 {
            let file = File::create(&tmp)
                .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
            let writer = ArrowWriter::try_new_with_options(
                BufWriter::with_capacity(1 << 20, file),
                schema.clone(),
                options.clone(),
            )
            .and_then(|w| w.into_serialized_writer())
            .map_err(write_err)?;
            current = Some(writer.0);
        }
        let writer = current.as_mut().ok_or_else(|| {
            Error::Config(format!(
                "gen: no open file for row group {} of {}",
                job.row_group,
                path.display()
            ))
        })?;
        let mut rg = writer.next_row_group().map_err(write_err)?;
        for chunk in encoded.chunks {
            chunk.append_to_row_group(&mut rg).map_err(write_err)?;
        }
        rg.close().map_err(write_err)?;
        if job.last_in_file {
            if let Some(writer) = current.take() {
                writer.close().map_err(write_err)?;
            }
            std::fs::rename(&tmp, path).map_err(|e| {
                Error::io(
                    format!("renaming {} to {}", tmp.display(), path.display()),
                    e,
                )
            })?;
        }
        progress.inc(encoded.rows as u64, encoded.bytes);
        next += 1;
        let (lock, cvar) = written;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = next;
        cvar.notify_all();
    }
    Ok(())
}

fn parquet_error(context: String, e: ParquetError) -> Error {
    Error::Arrow {
        context,
        source: ArrowError::ParquetError(e.to_string()),
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Removes `taxi-NNNNN.parquet` files with an index of `files` or more.
fn remove_stale(out: &Path, files: usize) -> Result<()> {
    let entries =
        std::fs::read_dir(out).map_err(|e| Error::io(format!("listing {}", out.display()), e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let index = name
            .strip_prefix("taxi-")
            .and_then(|rest| rest.strip_suffix(".parquet"))
            .filter(|digits| digits.len() == 5 && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<usize>().ok());
        if index.is_some_and(|i| i >= files) {
            std::fs::remove_file(entry.path())
                .map_err(|e| Error::io(format!("removing stale {}", entry.path().display()), e))?;
        }
    }
    Ok(())
}
