//! A stream's batch messages written again with new buffers: what the LZ4
//! decoder ([`super::lz4_stream`]) and the LZ4 encoder ([`super::lz4_write`])
//! share. A batch message is its flatbuffer metadata (field nodes, buffer
//! spans, optional body compression) and a body of buffers, each starting on
//! an [`ALIGNMENT`] boundary; with body compression every non-empty buffer
//! is an 8-byte little-endian uncompressed length ([`PREFIX`]; `-1` for a
//! buffer stored as-is) followed by its compressed bytes.

use arrow_ipc::{
    BodyCompressionBuilder, BodyCompressionMethod, CompressionType, DictionaryBatchBuilder,
    FieldNode, Message, MessageBuilder, MessageHeader, RecordBatch, RecordBatchBuilder,
};
use flatbuffers::FlatBufferBuilder;

/// Buffers start on 64-byte boundaries, as Arrow writes them.
pub(super) const ALIGNMENT: usize = 64;
const CONTINUATION: [u8; 4] = [0xFF; 4];
/// The end-of-stream marker.
pub(super) const EOS: [u8; 8] = [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0];
/// Bytes of a compressed buffer's length prefix.
pub(super) const PREFIX: usize = 8;
/// The prefix of a buffer stored uncompressed in a compressed batch.
pub(super) const STORED: i64 = -1;

/// The batch a record-batch or dictionary-batch message carries.
pub(super) fn batch_of<'a>(message: &Message<'a>) -> Option<RecordBatch<'a>> {
    match message.header_type() {
        MessageHeader::RecordBatch => message.header_as_record_batch(),
        MessageHeader::DictionaryBatch => {
            message.header_as_dictionary_batch().and_then(|d| d.data())
        }
        _ => None,
    }
}

/// Each buffer's index and bytes (checked to lie in the body already).
pub(super) fn buffers<'a>(batch: &RecordBatch<'_>, body: &'a [u8]) -> Vec<(usize, &'a [u8])> {
    batch
        .buffers()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, b)| {
            let at = b.offset() as usize;
            (i, &body[at..at + b.length() as usize])
        })
        .collect()
}

/// The buffer's length prefix (`None` for an empty buffer).
pub(super) fn prefix(data: &[u8]) -> Option<i64> {
    let p: [u8; PREFIX] = data.get(..PREFIX)?.try_into().ok()?;
    Some(i64::from_le_bytes(p))
}

/// `batch`'s message with new buffer spans, compression and body length.
pub(super) fn metadata(
    message: &Message<'_>,
    batch: &RecordBatch<'_>,
    spans: &[arrow_ipc::Buffer],
    body_len: usize,
    compression: Option<CompressionType>,
) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let nodes: Vec<FieldNode> = batch.nodes().into_iter().flatten().copied().collect();
    let nodes = fbb.create_vector(&nodes);
    let spans = fbb.create_vector(spans);
    let variadic = batch
        .variadicBufferCounts()
        .map(|v| fbb.create_vector(&v.iter().collect::<Vec<i64>>()));
    let compression = compression.map(|codec| {
        let mut c = BodyCompressionBuilder::new(&mut fbb);
        c.add_codec(codec);
        c.add_method(BodyCompressionMethod::BUFFER);
        c.finish()
    });
    let mut b = RecordBatchBuilder::new(&mut fbb);
    b.add_length(batch.length());
    b.add_nodes(nodes);
    b.add_buffers(spans);
    if let Some(c) = compression {
        b.add_compression(c);
    }
    if let Some(v) = variadic {
        b.add_variadicBufferCounts(v);
    }
    let plain = b.finish();
    let header = match message.header_as_dictionary_batch() {
        Some(dict) => {
            let mut d = DictionaryBatchBuilder::new(&mut fbb);
            d.add_id(dict.id());
            d.add_data(plain);
            d.add_isDelta(dict.isDelta());
            d.finish().as_union_value()
        }
        None => plain.as_union_value(),
    };
    let mut m = MessageBuilder::new(&mut fbb);
    m.add_version(message.version());
    m.add_header_type(message.header_type());
    m.add_header(header);
    m.add_bodyLength(body_len as i64);
    let root = m.finish();
    fbb.finish(root, None);
    fbb.finished_data().to_vec()
}

/// `[continuation][metadata length][metadata, padded]`: the body that
/// follows starts on an [`ALIGNMENT`] boundary of the stream.
pub(super) fn write_head(out: &mut Vec<u8>, meta: &[u8]) {
    let start = out.len();
    let padded = (start + 8 + meta.len()).div_ceil(ALIGNMENT) * ALIGNMENT - start - 8;
    out.extend_from_slice(&CONTINUATION);
    out.extend_from_slice(&(padded as i32).to_le_bytes());
    out.extend_from_slice(meta);
    out.resize(start + 8 + padded, 0);
}

pub(super) fn write_framed(out: &mut Vec<u8>, meta: &[u8], body: &[u8]) {
    write_head(out, meta);
    out.extend_from_slice(body);
}
