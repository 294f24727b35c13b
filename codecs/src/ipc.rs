//! One Kafka message value = one standard Arrow IPC *stream*: a schema
//! message, one or more record batches (and any dictionary batches), and the
//! end-of-stream marker. `pyarrow.ipc.open_stream(value)` reads it as-is.
//!
//! Encoding compresses the batch bodies with Arrow's own per-buffer
//! compression (LZ4_FRAME by default, ZSTD or none by option), so any Arrow
//! implementation can read the message without VeloStream.
//!
//! Decoding accepts any standard IPC stream (compressed or not, from any
//! Arrow implementation). Before a single byte reaches Arrow's decoder the
//! framing is walked and checked against the input length and the
//! [`DecodeLimits`]: no length field can make the decoder allocate more than
//! the limits allow, and malformed input yields a [`CodecError`], never a panic.

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;
use arrow_ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow_ipc::{CompressionType, MessageHeader};
use arrow_schema::{ArrowError, Schema, SchemaRef};

use crate::{CodecError, Result};

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
#[derive(Clone, Debug)]
pub struct IpcEncoder {
    options: IpcWriteOptions,
    compression: IpcCompression,
}

impl IpcEncoder {
    /// An encoder with the given body compression.
    pub fn new(compression: IpcCompression) -> Result<Self> {
        let options = IpcWriteOptions::default()
            .try_with_compression(compression.arrow())
            .map_err(|source| CodecError::Arrow {
                context: "configuring IPC compression",
                source,
            })?;
        Ok(Self {
            options,
            compression,
        })
    }

    /// The configured body compression.
    pub fn compression(&self) -> IpcCompression {
        self.compression
    }

    /// Encodes `batches` (all of `schema`) as one IPC stream and returns its bytes.
    pub fn encode(&self, schema: &Schema, batches: &[RecordBatch]) -> Result<Vec<u8>> {
        let capacity: usize = batches.iter().map(|b| b.get_array_memory_size() / 2).sum();
        let mut out = Vec::with_capacity(capacity + 1024);
        self.encode_into(schema, batches, &mut out)?;
        Ok(out)
    }

    /// Like [`IpcEncoder::encode`] but appends to `out` (buffer reuse).
    pub fn encode_into(
        &self,
        schema: &Schema,
        batches: &[RecordBatch],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let arrow = |source: ArrowError| CodecError::Arrow {
            context: "encoding an Arrow IPC stream",
            source,
        };
        let mut writer =
            StreamWriter::try_new_with_options(out, schema, self.options.clone()).map_err(arrow)?;
        for batch in batches {
            writer.write(batch).map_err(arrow)?;
        }
        writer.finish().map_err(arrow)?;
        Ok(())
    }
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

const CONTINUATION: u32 = 0xFFFF_FFFF;

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
        decode_checked(&bytes[..end])
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

fn decode_checked(bytes: &[u8]) -> Result<Decoded> {
    let mut buffer = Buffer::from(bytes.to_vec());
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

/// Walks the IPC framing without decoding bodies. Returns the length of the
/// stream including its end-of-stream marker (or the whole input when the
/// marker is absent). Every length is checked against the input and limits.
fn check_framing(bytes: &[u8], limits: &DecodeLimits) -> Result<usize> {
    let malformed = |msg: String| CodecError::MalformedIpc(msg);
    let mut pos = 0usize;
    let mut messages = 0usize;
    let mut decompressed_total = 0u64;
    let mut saw_schema = false;
    loop {
        if pos == bytes.len() {
            // Streams without an end-of-stream marker are accepted.
            break;
        }
        let mut len = read_u32(bytes, pos)
            .ok_or_else(|| malformed(format!("truncated message length at byte {pos}")))?;
        pos += 4;
        if len == CONTINUATION {
            len = read_u32(bytes, pos)
                .ok_or_else(|| malformed(format!("truncated message length at byte {pos}")))?;
            pos += 4;
        }
        if len == 0 {
            if pos != bytes.len() {
                return Err(malformed(format!(
                    "{} trailing bytes after the end-of-stream marker",
                    bytes.len() - pos
                )));
            }
            break;
        }
        messages += 1;
        if messages > limits.max_messages {
            return Err(CodecError::LimitExceeded {
                what: "message count",
                got: messages as u64,
                limit: limits.max_messages as u64,
            });
        }
        let len = len as usize;
        let meta = bytes.get(pos..pos.saturating_add(len)).ok_or_else(|| {
            malformed(format!(
                "message metadata at byte {pos} claims {len} bytes, only {} remain",
                bytes.len() - pos
            ))
        })?;
        pos += len;
        let message = arrow_ipc::root_as_message(meta)
            .map_err(|e| malformed(format!("invalid message metadata at byte {pos}: {e}")))?;
        let body_len = u64::try_from(message.bodyLength())
            .map_err(|_| malformed(format!("negative body length before byte {pos}")))?;
        let remaining = (bytes.len() - pos) as u64;
        if body_len > remaining {
            return Err(malformed(format!(
                "message body at byte {pos} claims {body_len} bytes, only {remaining} remain"
            )));
        }
        let body = &bytes[pos..pos + body_len as usize];
        let header = message.header_type();
        if header == MessageHeader::Schema {
            if saw_schema {
                return Err(malformed("more than one schema message".into()));
            }
            saw_schema = true;
            if let Some(fields) = message.header_as_schema().and_then(|s| s.fields()) {
                for f in fields.iter() {
                    check_field_types(f, 0)?;
                }
            }
        } else if !saw_schema {
            return Err(malformed("record batch before the schema message".into()));
        }
        let batch = match header {
            MessageHeader::RecordBatch => message.header_as_record_batch(),
            MessageHeader::DictionaryBatch => {
                message.header_as_dictionary_batch().and_then(|d| d.data())
            }
            MessageHeader::Schema | MessageHeader::NONE => None,
            other => {
                return Err(malformed(format!(
                    "unsupported message type {other:?} in a stream"
                )))
            }
        };
        if let Some(batch) = batch {
            let buffers = batch
                .buffers()
                .map(|b| b.iter().collect::<Vec<_>>())
                .unwrap_or_default();
            let compressed = batch.compression().is_some();
            for b in buffers {
                let (offset, length) = (b.offset(), b.length());
                if offset < 0
                    || length < 0
                    || (offset as u64).saturating_add(length as u64) > body_len
                {
                    return Err(malformed(format!(
                        "buffer [{offset}, +{length}) lies outside the {body_len}-byte body"
                    )));
                }
                if compressed && length >= 8 {
                    let start = offset as usize;
                    let prefix: [u8; 8] = body[start..start + 8]
                        .try_into()
                        .map_err(|_| malformed("short compressed buffer".into()))?;
                    let claimed = i64::from_le_bytes(prefix);
                    if claimed < -1 {
                        return Err(malformed(format!(
                            "compressed buffer claims a negative length {claimed}"
                        )));
                    }
                    decompressed_total = decompressed_total.saturating_add(if claimed == -1 {
                        length as u64
                    } else {
                        claimed as u64
                    });
                } else {
                    decompressed_total = decompressed_total.saturating_add(length as u64);
                }
                if decompressed_total > limits.max_decompressed_bytes {
                    return Err(CodecError::LimitExceeded {
                        what: "decompressed bytes",
                        got: decompressed_total,
                        limit: limits.max_decompressed_bytes,
                    });
                }
            }
        }
        pos += body_len as usize;
    }
    if !saw_schema {
        return Err(malformed("stream has no schema message".into()));
    }
    Ok(pos)
}

/// Rejects unknown type ids (and absurd nesting) anywhere in a schema field.
fn check_field_types(f: arrow_ipc::Field<'_>, depth: usize) -> Result<()> {
    if depth > 64 {
        return Err(CodecError::MalformedIpc(
            "schema nested deeper than 64 levels".into(),
        ));
    }
    let t = f.type_type();
    if t == arrow_ipc::Type::NONE || t.0 > arrow_ipc::Type::ENUM_MAX {
        return Err(CodecError::MalformedIpc(format!(
            "field {:?} has unknown type id {}",
            f.name().unwrap_or(""),
            t.0
        )));
    }
    if let Some(children) = f.children() {
        for c in children.iter() {
            check_field_types(c, depth + 1)?;
        }
    }
    Ok(())
}

fn read_u32(bytes: &[u8], pos: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(pos..pos.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}
