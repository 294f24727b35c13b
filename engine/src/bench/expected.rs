//! One pass over the source, before anything is measured: the rows the
//! table must end up with (transformed like the consumer transforms them)
//! feed the expected checksum and, when asked, the pre-encoded Native file
//! that `--compare native-file` inserts.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use velostream_codecs::chtype::ChType;
use velostream_codecs::mapping::MappingOptions;
use velostream_codecs::native::NativeEncoder;
use velostream_sql::Transform;

use super::checksum::{Checksum, Expected};
use crate::source::ParquetSource;
use crate::{Error, Result};

/// One pre-encoded insert in the Native file.
#[derive(Clone, Copy, Debug)]
pub struct Chunk {
    pub offset: u64,
    pub len: usize,
    pub rows: u64,
}

/// The outcome of the pass.
#[derive(Debug)]
pub struct Prepared {
    pub checksum: Checksum,
    /// Chunks of the Native file, when one was written.
    pub native_chunks: Vec<Chunk>,
}

/// Reads every row group, applies `transform`, accumulates the checksum
/// over `columns`, and writes Native inserts of `insert_rows` rows to
/// `native_file` if given.
/// Long: one pass over every row group feeds both the checksum and the Native file; two functions would read the data twice.
pub async fn prepare(
    source: &ParquetSource,
    transform: Option<&Transform>,
    out_schema: &SchemaRef,
    columns: &[(String, ChType)],
    native_file: Option<(&Path, usize)>,
) -> Result<Prepared> {
    let mut expected = Expected::new(columns);
    let mut native = match native_file {
        Some((path, rows)) => {
            let enc = NativeEncoder::new(out_schema, columns, MappingOptions::default())?;
            let file = std::fs::File::create(path)
                .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
            Some((
                enc,
                std::io::BufWriter::new(file),
                rows,
                Vec::<RecordBatch>::new(),
                0usize,
            ))
        }
        None => None,
    };
    let mut chunks = Vec::new();
    let mut offset = 0u64;
    let mut flush = |enc: &NativeEncoder,
                     w: &mut std::io::BufWriter<std::fs::File>,
                     pending: &mut Vec<RecordBatch>|
     -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let batch =
            arrow_select::concat::concat_batches(out_schema, pending.iter()).map_err(|source| {
                Error::Arrow {
                    context: "coalescing batches for the Native file".into(),
                    source,
                }
            })?;
        pending.clear();
        let mut buf = Vec::new();
        enc.encode(&batch, &mut buf)?;
        w.write_all(&buf)
            .map_err(|e| Error::io("writing the Native file", e))?;
        chunks.push(Chunk {
            offset,
            len: buf.len(),
            rows: batch.num_rows() as u64,
        });
        offset += buf.len() as u64;
        Ok(())
    };
    for rg in source.row_groups() {
        for batch in source.read_row_group(rg, 65_536)? {
            let batch = batch?;
            let out = match transform {
                Some(t) => t.apply(batch).await?,
                None => vec![batch],
            };
            for b in out {
                expected.add(&b)?;
                if let Some((enc, w, rows, pending, pending_rows)) = native.as_mut() {
                    *pending_rows += b.num_rows();
                    pending.push(b);
                    if *pending_rows >= *rows {
                        flush(enc, w, pending)?;
                        *pending_rows = 0;
                    }
                }
            }
        }
    }
    if let Some((enc, mut w, _, mut pending, _)) = native {
        flush(&enc, &mut w, &mut pending)?;
        w.flush()
            .map_err(|e| Error::io("writing the Native file", e))?;
    }
    Ok(Prepared {
        checksum: expected.finish(),
        native_chunks: chunks,
    })
}

/// The schema the table will have: the transform's output or the source's.
pub fn output_schema(source: &ParquetSource, transform: Option<&Transform>) -> SchemaRef {
    transform.map_or_else(|| source.schema(), Transform::output_schema)
}

/// Plans the transform file (if any) against the source schema.
pub fn plan_transform(source: &ParquetSource, path: Option<&Path>) -> Result<Option<Transform>> {
    match path {
        Some(p) => Ok(Some(Transform::from_file(p, Arc::clone(&source.schema()))?)),
        None => Ok(None),
    }
}
