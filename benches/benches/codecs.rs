//! Codec micro-benchmarks on NYC-taxi batches (the generator's model) of
//! 8k, 64k and 1M rows: Arrow IPC encode/decode (none, LZ4, LZ4 of the
//! buffers it at least halves, ZSTD; LZ4 also through Arrow's own writer and
//! decoder alone, the baselines of VeloStream's), ClickHouse
//! Native encode (modern and legacy type mappings) and the per-row JSON
//! baseline. Throughput is reported per row ("elements") so the cases compare
//! directly; `cargo bench -p velostream-benches` prints rows/s, and the
//! encoded sizes are printed once per case as bytes/row.
//!
//! Reproduce: `cargo bench -p velostream-benches --bench codecs`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use velostream_codecs::ipc::{decode, IpcCompression, IpcEncoder};
use velostream_codecs::json_rows::JsonRowEncoder;
use velostream_codecs::mapping::{table_columns, MappingOptions, ServerCaps};
use velostream_codecs::native::NativeEncoder;

const SIZES: &[usize] = &[8_192, 65_536, 1_048_576];

fn taxi(rows: usize) -> arrow_array::RecordBatch {
    velostream::gen::sample_batch(rows, 42).expect("taxi batch")
}

/// An IPC stream decoded by Arrow's `StreamDecoder` alone (every LZ4
/// buffer through its frame decoder).
fn arrow_decode(bytes: &[u8]) -> Vec<arrow_array::RecordBatch> {
    let mut buffer = arrow_buffer::Buffer::from(bytes.to_vec());
    let mut decoder = arrow_ipc::reader::StreamDecoder::new();
    let mut batches = Vec::new();
    while let Some(batch) = decoder.decode(&mut buffer).unwrap() {
        batches.push(batch);
    }
    batches
}

/// One IPC stream written by Arrow's `StreamWriter` with LZ4_FRAME (every
/// buffer through its frame encoder).
fn arrow_lz4_encode(batch: &arrow_array::RecordBatch) -> Vec<u8> {
    let options = arrow_ipc::writer::IpcWriteOptions::default()
        .try_with_compression(Some(arrow_ipc::CompressionType::LZ4_FRAME))
        .unwrap();
    let mut out = Vec::new();
    let mut w =
        arrow_ipc::writer::StreamWriter::try_new_with_options(&mut out, &batch.schema(), options)
            .unwrap();
    w.write(batch).unwrap();
    w.finish().unwrap();
    drop(w);
    out
}

fn ipc(c: &mut Criterion) {
    for &rows in SIZES {
        let batch = taxi(rows);
        let schema = batch.schema();
        let mut g = c.benchmark_group(format!("ipc/{rows}"));
        g.throughput(Throughput::Elements(rows as u64));
        if rows >= 1_000_000 {
            g.sample_size(10);
        }
        // LZ4 as the producer writes it by default (every buffer that
        // shrinks) and with `--lz4-min-ratio 2` (only what at least halves).
        let encoders = [
            ("none", IpcEncoder::new(IpcCompression::None).unwrap()),
            ("lz4", IpcEncoder::new(IpcCompression::Lz4Frame).unwrap()),
            (
                "lz4_min_ratio_2",
                IpcEncoder::new(IpcCompression::Lz4Frame)
                    .unwrap()
                    .with_lz4_min_ratio(2.0),
            ),
            ("zstd", IpcEncoder::new(IpcCompression::Zstd).unwrap()),
        ];
        for (name, mut enc) in encoders {
            // The first message of an encoder measures every buffer (LZ4);
            // the second is written as measured, like most messages.
            enc.encode(&schema, std::slice::from_ref(&batch)).unwrap();
            let bytes = enc.encode(&schema, std::slice::from_ref(&batch)).unwrap();
            eprintln!(
                "ipc/{rows}/{name}: {:.1} bytes/row",
                bytes.len() as f64 / rows as f64
            );
            g.bench_function(BenchmarkId::new("encode", name), |b| {
                b.iter(|| {
                    enc.encode(&schema, std::slice::from_ref(black_box(&batch)))
                        .unwrap()
                })
            });
            g.bench_function(BenchmarkId::new("decode", name), |b| {
                b.iter(|| decode(black_box(&bytes)).unwrap())
            });
            if name == "lz4" {
                // Arrow's own LZ4 writer (what the producer used before it
                // wrote the buffers itself), side by side.
                g.bench_function(BenchmarkId::new("encode", "lz4_arrow_writer"), |b| {
                    b.iter(|| arrow_lz4_encode(black_box(&batch)))
                });
                // The same message through Arrow's decoder alone, side by side.
                g.bench_function(BenchmarkId::new("decode", "lz4_arrow_decoder"), |b| {
                    b.iter(|| arrow_decode(black_box(&bytes)))
                });
            }
        }
        g.finish();
    }
}

fn native(c: &mut Criterion) {
    for &rows in SIZES {
        let batch = taxi(rows);
        let schema = batch.schema();
        let mut g = c.benchmark_group(format!("native/{rows}"));
        g.throughput(Throughput::Elements(rows as u64));
        if rows >= 1_000_000 {
            g.sample_size(10);
        }
        for (name, caps) in [
            ("modern", ServerCaps::MODERN),
            ("legacy", ServerCaps::LEGACY),
        ] {
            let cols = table_columns(&schema, caps).unwrap();
            let enc = NativeEncoder::new(&schema, &cols, MappingOptions::default()).unwrap();
            let mut out = Vec::new();
            enc.encode(&batch, &mut out).unwrap();
            eprintln!(
                "native/{rows}/{name}: {:.1} bytes/row",
                out.len() as f64 / rows as f64
            );
            g.bench_function(BenchmarkId::new("encode", name), |b| {
                b.iter(|| {
                    out.clear();
                    enc.encode(black_box(&batch), &mut out).unwrap();
                })
            });
        }
        // One insert block from the many message batches a consumer lane
        // gathers: concatenating first (the old way) vs writing the parts.
        let cols = table_columns(&schema, ServerCaps::MODERN).unwrap();
        let enc = NativeEncoder::new(&schema, &cols, MappingOptions::default()).unwrap();
        let parts: Vec<_> = (0..rows)
            .step_by(16_384)
            .map(|at| batch.slice(at, 16_384.min(rows - at)))
            .collect();
        let mut out = Vec::new();
        g.bench_function(
            BenchmarkId::new("block_of_parts", "concat_then_encode"),
            |b| {
                b.iter(|| {
                    out.clear();
                    let whole =
                        arrow_select::concat::concat_batches(&schema, black_box(&parts)).unwrap();
                    enc.encode(&whole, &mut out).unwrap();
                })
            },
        );
        g.bench_function(BenchmarkId::new("block_of_parts", "encode_batches"), |b| {
            b.iter(|| {
                out.clear();
                enc.encode_batches(black_box(&parts), &mut out).unwrap();
            })
        });
        g.finish();
    }
}

fn json_rows(c: &mut Criterion) {
    for &rows in &SIZES[..2] {
        let batch = taxi(rows);
        let enc = JsonRowEncoder::new(&batch.schema()).unwrap();
        let mut g = c.benchmark_group(format!("json_rows/{rows}"));
        g.throughput(Throughput::Elements(rows as u64));
        let mut buf = Vec::new();
        g.bench_function("encode", |b| {
            b.iter(|| {
                let mut total = 0;
                for row in 0..batch.num_rows() {
                    buf.clear();
                    enc.write_row(black_box(&batch), row, &mut buf).unwrap();
                    total += buf.len();
                }
                total
            })
        });
        g.finish();
    }
}

criterion_group!(benches, ipc, native, json_rows);
criterion_main!(benches);
