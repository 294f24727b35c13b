//! Interoperability of the Kafka message format with pyarrow, a real
//! third-party Arrow implementation: the decoder reads IPC streams pyarrow
//! writes (LZ4, ZSTD, uncompressed), and pyarrow reads what the encoder writes.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use velostream_codecs::ipc::{decode, IpcCompression, IpcEncoder};

use crate::harness;

const WRITE: &str = r#"
import sys, pyarrow as pa
out = sys.argv[1]
t = pa.table({
    "id": pa.array(range(5000), pa.int64()),
    "name": pa.array([None if i % 7 == 0 else f"row-{i}-é" for i in range(5000)]),
    "x": pa.array([i * 0.5 for i in range(5000)], pa.float64()),
})
for codec in ["lz4", "zstd", None]:
    opts = pa.ipc.IpcWriteOptions(compression=codec)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, t.schema, options=opts) as w:
        for b in t.to_batches(max_chunksize=1500):
            w.write_batch(b)
    open(f"{out}/{codec or 'none'}.arrows", "wb").write(sink.getvalue().to_pybytes())
"#;

const READ: &str = r#"
import sys, pyarrow as pa
for path in sys.argv[1:]:
    t = pa.ipc.open_stream(open(path, "rb").read()).read_all()
    print(path.rsplit("/", 1)[-1], t.num_rows, t.column("id").to_pylist()[-1],
          t.column("name").null_count, sum(t.column("x").to_pylist()))
"#;

/// Writes each `(name, stream)` to `<dir>/<name>.arrows` and runs `script`
/// with the paths as arguments; returns what it printed.
fn read_with_pyarrow(script: &str, dir: &Path, streams: &[(&str, Vec<u8>)]) -> String {
    let mut args = vec!["-c".to_string(), script.to_string()];
    for (name, bytes) in streams {
        let p = dir.join(format!("{name}.arrows"));
        std::fs::write(&p, bytes).unwrap();
        args.push(p.display().to_string());
    }
    harness::python_stdout(args)
}

#[test]
fn decoder_reads_pyarrow_streams_with_every_compression() {
    let dir = tempfile::tempdir().unwrap();
    harness::python_stdout(["-c", WRITE, dir.path().to_str().unwrap()]);
    for codec in ["lz4", "zstd", "none"] {
        let bytes = std::fs::read(dir.path().join(format!("{codec}.arrows"))).unwrap();
        let d = decode(&bytes).unwrap_or_else(|e| panic!("{codec}: {e}"));
        assert_eq!(d.num_rows(), 5000, "{codec}");
        assert_eq!(d.batches.len(), 4, "{codec}: pyarrow wrote 4 batches");
        let ids: i64 = d
            .batches
            .iter()
            .map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .iter()
                    .flatten()
                    .sum::<i64>()
            })
            .sum();
        assert_eq!(ids, (0..5000).sum::<i64>(), "{codec}");
        let nulls: usize = d.batches.iter().map(|b| b.column(1).null_count()).sum();
        assert_eq!(nulls, (0..5000).filter(|i| i % 7 == 0).count(), "{codec}");
    }
}

#[test]
fn pyarrow_reads_what_the_encoder_writes() {
    let dir = tempfile::tempdir().unwrap();
    let n = 3000i64;
    let batch = RecordBatch::try_from_iter([
        (
            "id",
            Arc::new(Int64Array::from_iter_values(0..n)) as ArrayRef,
        ),
        (
            "name",
            Arc::new(StringArray::from_iter(
                (0..n).map(|i| (i % 5 != 0).then(|| format!("n{i}"))),
            )) as ArrayRef,
        ),
        (
            "x",
            Arc::new(Float64Array::from_iter_values(
                (0..n).map(|i| i as f64 * 0.5),
            )) as ArrayRef,
        ),
    ])
    .unwrap();
    let mut streams = Vec::new();
    for c in [
        IpcCompression::Lz4Frame,
        IpcCompression::Zstd,
        IpcCompression::None,
    ] {
        let bytes = IpcEncoder::new(c)
            .unwrap()
            .encode(&batch.schema(), std::slice::from_ref(&batch))
            .unwrap();
        streams.push((c.name(), bytes));
    }
    let text = read_with_pyarrow(READ, dir.path(), &streams);
    let want_sum: f64 = (0..n).map(|i| i as f64 * 0.5).sum();
    for c in ["lz4", "zstd", "none"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{c}.arrows")))
            .unwrap_or_else(|| panic!("no line for {c} in {text}"));
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f[1], n.to_string(), "{line}");
        assert_eq!(f[2], (n - 1).to_string(), "{line}");
        assert_eq!(
            f[3],
            (0..n).filter(|i| i % 5 == 0).count().to_string(),
            "{line}"
        );
        assert_eq!(f[4].parse::<f64>().unwrap(), want_sum, "{line}");
    }
}

const SAME_TABLE: &str = r#"
import sys, pyarrow as pa
read = lambda p: pa.ipc.open_stream(open(p, "rb").read()).read_all()
reference = read(sys.argv[1])
for path in sys.argv[2:]:
    t = read(path)
    print(path.rsplit("/", 1)[-1], t.num_rows, t.equals(reference))
"#;

/// The producer stores the buffers LZ4 does not shrink enough (Arrow's `-1`
/// length prefix inside a compressed batch): pyarrow reads such streams,
/// partly and wholly stored, as the same table as an uncompressed one.
#[test]
fn pyarrow_reads_lz4_streams_whose_buffers_are_partly_or_wholly_stored() {
    let dir = tempfile::tempdir().unwrap();
    let batch = velostream::gen::sample_batch(20_000, 7).unwrap();
    let schema = batch.schema();
    let one = std::slice::from_ref(&batch);
    let none = IpcEncoder::new(IpcCompression::None)
        .unwrap()
        .encode(&schema, one)
        .unwrap();
    // The first message of an encoder measures every buffer; the second
    // is written as measured.
    let second = |mut enc: IpcEncoder| {
        enc.encode(&schema, one).unwrap();
        enc.encode(&schema, one).unwrap()
    };
    let mixed = second(
        IpcEncoder::new(IpcCompression::Lz4Frame)
            .unwrap()
            .with_lz4_min_ratio(2.0),
    );
    let every = second(
        IpcEncoder::new(IpcCompression::Lz4Frame)
            .unwrap()
            .with_lz4_min_ratio(1.0),
    );
    let stored = second(
        IpcEncoder::new(IpcCompression::Lz4Frame)
            .unwrap()
            .with_lz4_min_ratio(1e9),
    );
    // Wholly stored: the plain buffers plus a length prefix each.
    assert!(stored.len() > none.len(), "{} {}", stored.len(), none.len());
    // Partly stored (the columns LZ4 shrinks less than twice): smaller than
    // that, larger than compressing everything.
    assert!(every.len() < mixed.len() && mixed.len() < stored.len());
    let streams = [("none", none), ("mixed", mixed), ("stored", stored)];
    for (name, bytes) in &streams {
        assert_eq!(decode(bytes).unwrap().batches, one, "{name}");
    }
    let text = read_with_pyarrow(SAME_TABLE, dir.path(), &streams);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["mixed.arrows 20000 True", "stored.arrows 20000 True"],
        "{text}"
    );
}
