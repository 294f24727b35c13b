//! One Kafka message value = one standard Arrow IPC *stream*: a schema
//! message, one or more record batches (and any dictionary batches), and the
//! end-of-stream marker. `pyarrow.ipc.open_stream(value)` reads it as-is.
//!
//! Encoding compresses the batch bodies with Arrow's own per-buffer
//! compression (LZ4_FRAME by default, ZSTD or none by option), so any Arrow
//! implementation can read the message without VeloStream.
//!
//! Decoding accepts any standard IPC stream (compressed or not, from any
//! Arrow implementation); LZ4 batches are decompressed into one allocation
//! first ([`lz4_stream`]), everything else is Arrow's decoder. Before a single byte reaches Arrow's decoder the
//! framing is walked and checked against the input length and the
//! [`DecodeLimits`]: no length field can make the decoder allocate more than
//! the limits allow, and malformed input yields a [`CodecError`], never a panic.

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;
use arrow_ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow_ipc::CompressionType;
use arrow_schema::{ArrowError, Schema, SchemaRef};

use crate::{CodecError, Result};

mod check;
mod framing;
mod lz4_policy;
mod lz4_stream;
mod lz4_write;
mod rewrite;

use check::check_framing;
use lz4_policy::Lz4Policy;

/// The default of [`IpcEncoder::with_lz4_min_ratio`]: a buffer is
/// LZ4-compressed when compression shrinks it at all (the bytes of Arrow's
/// own writer; a buffer that does not shrink is not compressed again until
/// the next sample).
pub const DEFAULT_LZ4_MIN_RATIO: f64 = 1.0;

/// Body compression of the Arrow IPC record batches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IpcCompression {
    /// No body compression.
    None,
    /// LZ4 frame per buffer (fast; the default).
    #[default]
    Lz4Frame,
    /// Zstandard per buffer (smaller, slower).
    Zstd,
}

impl IpcCompression {
    /// Parses `none`, `lz4` (or `lz4_frame`) and `zstd`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "none" | "uncompressed" => Some(Self::None),
            "lz4" | "lz4_frame" => Some(Self::Lz4Frame),
            "zstd" => Some(Self::Zstd),
            _ => None,
        }
    }

    /// The name accepted by [`IpcCompression::parse`].
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Lz4Frame => "lz4",
            Self::Zstd => "zstd",
        }
    }

    fn arrow(self) -> Option<CompressionType> {
        match self {
            Self::None => None,
            Self::Lz4Frame => Some(CompressionType::LZ4_FRAME),
            Self::Zstd => Some(CompressionType::ZSTD),
        }
    }
}

/// Encodes record batches into self-contained Arrow IPC stream messages.
///
/// With LZ4 the encoder learns, per buffer of the schema, whether
/// compression pays (see [`IpcEncoder::with_lz4_min_ratio`]), so it keeps
/// state: one encoder per producing thread.
#[derive(Clone, Debug)]
pub struct IpcEncoder {
    options: IpcWriteOptions,
    compression: IpcCompression,
    lz4: Option<Lz4Writer>,
}

/// LZ4 streams are written by Arrow uncompressed into `plain`, then
/// compressed buffer by buffer as `policy` decides into `body`, one batch
/// at a time. Both buffers live as long as the encoder.
#[derive(Clone, Debug)]
struct Lz4Writer {
    policy: Lz4Policy,
    plain: Vec<u8>,
    body: Vec<u8>,
    schema: Option<Schema>,
}

impl IpcEncoder {
    /// An encoder with the given body compression.
    pub fn new(compression: IpcCompression) -> Result<Self> {
        let lz4 = (compression == IpcCompression::Lz4Frame).then(|| Lz4Writer {
            policy: Lz4Policy::new(DEFAULT_LZ4_MIN_RATIO),
            plain: Vec::new(),
            body: Vec::new(),
            schema: None,
        });
        let arrow = if lz4.is_some() {
            None
        } else {
            compression.arrow()
        };
        let options = IpcWriteOptions::default()
            .try_with_compression(arrow)
            .map_err(|source| CodecError::Arrow {
                context: "configuring IPC compression",
                source,
            })?;
        Ok(Self {
            options,
            compression,
            lz4,
        })
    }

    /// With LZ4, compresses a buffer only where compression shrank it at
    /// least `ratio` times when last measured (every buffer of a batch is
    /// measured on the first batch of a schema and then once in 32 batches);
    /// the others are stored uncompressed. `1.0` compresses whatever
    /// shrinks. Without LZ4 this changes nothing.
    pub fn with_lz4_min_ratio(mut self, ratio: f64) -> Self {
        if let Some(lz4) = &mut self.lz4 {
            lz4.policy = Lz4Policy::new(ratio);
        }
        self
    }

    /// The configured body compression.
    pub fn compression(&self) -> IpcCompression {
        self.compression
    }

    /// Encodes `batches` (all of `schema`) as one IPC stream and returns its bytes.
    pub fn encode(&mut self, schema: &Schema, batches: &[RecordBatch]) -> Result<Vec<u8>> {
        let capacity: usize = batches.iter().map(|b| b.get_array_memory_size() / 2).sum();
        let mut out = Vec::with_capacity(capacity + 1024);
        self.encode_into(schema, batches, &mut out)?;
        Ok(out)
    }

    /// Like [`IpcEncoder::encode`] but appends to `out` (buffer reuse).
    pub fn encode_into(
        &mut self,
        schema: &Schema,
        batches: &[RecordBatch],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let Some(lz4) = &mut self.lz4 else {
            return write_stream(&self.options, schema, batches, out);
        };
        if lz4.schema.as_ref() != Some(schema) {
            lz4.policy.reset();
            lz4.schema = Some(schema.clone());
        }
        lz4.plain.clear();
        write_stream(&self.options, schema, batches, &mut lz4.plain)?;
        lz4_write::compress_stream(&lz4.plain, &mut lz4.policy, &mut lz4.body, out)
    }
}

/// Arrow's stream writer: schema, `batches`, end-of-stream marker.
fn write_stream(
    options: &IpcWriteOptions,
    schema: &Schema,
    batches: &[RecordBatch],
    out: &mut Vec<u8>,
) -> Result<()> {
    let arrow = |source: ArrowError| CodecError::Arrow {
        context: "encoding an Arrow IPC stream",
        source,
    };
    let mut writer =
        StreamWriter::try_new_with_options(out, schema, options.clone()).map_err(arrow)?;
    for batch in batches {
        writer.write(batch).map_err(arrow)?;
    }
    writer.finish().map_err(arrow)?;
    Ok(())
}

/// Bounds applied while decoding untrusted bytes.
#[derive(Clone, Copy, Debug)]
pub struct DecodeLimits {
    /// Largest total of decompressed buffer bytes one message may claim.
    pub max_decompressed_bytes: u64,
    /// Largest number of IPC messages (schema, batches, dictionaries) in one stream.
    pub max_messages: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_decompressed_bytes: 1 << 30,
            max_messages: 100_000,
        }
    }
}

/// A decoded Kafka message: its schema and record batches.
#[derive(Clone, Debug)]
pub struct Decoded {
    /// The stream's schema.
    pub schema: SchemaRef,
    /// The record batches, in stream order (possibly none).
    pub batches: Vec<RecordBatch>,
}

impl Decoded {
    /// Total rows over all batches.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Decodes one message value (an Arrow IPC stream) with default limits.
pub fn decode(bytes: &[u8]) -> Result<Decoded> {
    decode_with_limits(bytes, &DecodeLimits::default())
}

/// Decodes one message value (an Arrow IPC stream) within `limits`.
pub fn decode_with_limits(bytes: &[u8], limits: &DecodeLimits) -> Result<Decoded> {
    let end = check_framing(bytes, limits)?;
    // arrow-ipc 59 still has `unimplemented!` paths for some malformed
    // inputs (e.g. unknown type ids deep in a schema); a panic there is
    // turned into an error, never propagated.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let bytes = &bytes[..end];
        let buffer = match lz4_stream::decompress_stream(bytes)? {
            Some(plain) => Buffer::from_vec(plain),
            None => Buffer::from(bytes.to_vec()),
        };
        decode_checked(buffer)
    }))
    .unwrap_or_else(|p| {
        let what = p
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| p.downcast_ref::<&str>().copied())
            .unwrap_or("decoder panic");
        Err(CodecError::MalformedIpc(format!(
            "Arrow rejected the stream: {what}"
        )))
    })
}

fn decode_checked(mut buffer: Buffer) -> Result<Decoded> {
    let mut decoder = StreamDecoder::new();
    let mut batches = Vec::new();
    let arrow = |source: ArrowError| CodecError::Arrow {
        context: "decoding an Arrow IPC stream",
        source,
    };
    while !buffer.is_empty() {
        match decoder.decode(&mut buffer).map_err(arrow)? {
            Some(batch) => batches.push(batch),
            None => break,
        }
    }
    decoder.finish().map_err(arrow)?;
    let schema = decoder
        .schema()
        .ok_or_else(|| CodecError::MalformedIpc("stream has no schema message".into()))?;
    Ok(Decoded { schema, batches })
}
