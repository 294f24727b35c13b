//! LZ4_FRAME-compressed batches decompressed before Arrow's decoder sees
//! them: the stream is rewritten as an uncompressed one whose batch bodies
//! all live in one allocation, each buffer decompressed by the LZ4 block
//! decoder straight into its place. Arrow then slices that allocation
//! without copying.
//!
//! Arrow's own path runs every buffer through an `lz4_flex` frame decoder
//! that allocates, decompresses into its own block buffer and copies into a
//! fresh `Vec`: about 600 MB/s on taxi data, against 2.3 GB/s for the block
//! decoder into place (one run side by side on this machine). The frames
//! taken here are what Arrow's writers produce (arrow-rs, pyarrow, Arrow
//! C++): independent blocks, no checksums, no dictionary id. A stream with
//! anything else (or ZSTD) is left to Arrow's decoder, unchanged.
//!
//! Runs on streams `check_framing` accepted: every buffer lies in its body
//! and the claimed lengths are within the limits.

use arrow_ipc::{CompressionType, Message, RecordBatch};

use super::framing::MessageReader;
use super::rewrite::{
    batch_of, buffers, metadata, prefix, write_framed, write_head, ALIGNMENT, EOS, PREFIX, STORED,
};
use crate::{CodecError, Result};

const MAGIC: u32 = 0x184D_2204;

/// The uncompressed form of `bytes`, or `None` when it has no LZ4 batch or
/// uses something this path leaves to Arrow.
pub(super) fn decompress_stream(bytes: &[u8]) -> Result<Option<Vec<u8>>> {
    let Some(size) = plan(bytes)? else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(size);
    let mut reader = MessageReader::new(bytes);
    let mut index = 0;
    while let Some(m) = reader.next_message()? {
        index += 1;
        match batch_of(&m.message).filter(|b| b.compression().is_some()) {
            Some(batch) => decompress_message(&m.message, &batch, m.body, &mut out)
                .map_err(|e| in_message(e, index))?,
            None => write_framed(&mut out, m.meta, m.body),
        }
    }
    out.extend_from_slice(&EOS);
    Ok(Some(out))
}

/// The output size when every compressed batch is LZ4 in frames this path
/// takes; `None` otherwise.
fn plan(bytes: &[u8]) -> Result<Option<usize>> {
    let mut reader = MessageReader::new(bytes);
    let mut size = EOS.len();
    let mut any = false;
    while let Some(m) = reader.next_message()? {
        size += 8 + m.meta.len() + ALIGNMENT;
        let Some(batch) = batch_of(&m.message) else {
            size += m.body.len();
            continue;
        };
        let Some(compression) = batch.compression() else {
            size += m.body.len();
            continue;
        };
        if compression.codec() != CompressionType::LZ4_FRAME {
            return Ok(None);
        }
        any = true;
        for (_, data) in buffers(&batch, m.body) {
            if !takes_frame(data) {
                return Ok(None);
            }
            size += decompressed_len(data)? + ALIGNMENT;
        }
        // The new metadata: the old one plus room for the changes.
        size += 2 * ALIGNMENT;
    }
    Ok(any.then_some(size))
}

/// An empty buffer, a stored one (`-1`), or one LZ4 frame with
/// independent blocks and no checksums or dictionary.
fn takes_frame(data: &[u8]) -> bool {
    match prefix(data) {
        None | Some(STORED) | Some(0) => true,
        Some(_) => {
            let frame = &data[PREFIX..];
            let flg = frame.get(4).copied().unwrap_or(0);
            read_u32(frame, 0) == Some(MAGIC)
                && flg >> 6 == 0b01
                && flg & 0b0010_0000 != 0
                && flg & 0b0001_0111 == 0
        }
    }
}

fn decompressed_len(data: &[u8]) -> Result<usize> {
    match prefix(data) {
        None => Ok(0),
        Some(STORED) => Ok(data.len() - PREFIX),
        Some(n) => usize::try_from(n)
            .map_err(|_| CodecError::MalformedIpc(format!("buffer claims {n} bytes"))),
    }
}

/// Writes `message` with its buffers decompressed and its compression
/// field gone.
fn decompress_message(
    message: &Message<'_>,
    batch: &RecordBatch<'_>,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    let mut spans = Vec::new();
    let mut body_len = 0usize;
    for (_, data) in buffers(batch, body) {
        let len = decompressed_len(data)?;
        spans.push(arrow_ipc::Buffer::new(body_len as i64, len as i64));
        body_len += len.div_ceil(ALIGNMENT) * ALIGNMENT;
    }
    let meta = metadata(message, batch, &spans, body_len, None);
    write_head(out, &meta);
    let body_at = out.len();
    out.resize(body_at + body_len, 0);
    for ((i, data), span) in buffers(batch, body).into_iter().zip(&spans) {
        let at = body_at + span.offset() as usize;
        let dst = &mut out[at..at + span.length() as usize];
        decompress_buffer(data, dst).map_err(|e| in_buffer(e, i))?;
    }
    Ok(())
}

fn decompress_buffer(data: &[u8], dst: &mut [u8]) -> Result<()> {
    match prefix(data) {
        None | Some(0) => Ok(()),
        Some(STORED) => {
            dst.copy_from_slice(&data[PREFIX..]);
            Ok(())
        }
        Some(_) => decompress_frame(&data[PREFIX..], dst),
    }
}

/// One frame's blocks into `dst`, which they must fill exactly.
fn decompress_frame(frame: &[u8], dst: &mut [u8]) -> Result<()> {
    let malformed = |what: String| CodecError::MalformedIpc(format!("LZ4 frame: {what}"));
    let content_size = frame.get(4).is_some_and(|flg| flg & 0b0000_1000 != 0);
    // Magic, FLG, BD, [content size], header checksum.
    let mut pos = 4 + 2 + if content_size { 8 } else { 0 } + 1;
    let mut filled = 0usize;
    loop {
        let size = read_u32(frame, pos).ok_or_else(|| malformed("truncated".into()))?;
        pos += 4;
        if size == 0 {
            break;
        }
        let stored = size & 0x8000_0000 != 0;
        let n = (size & 0x7FFF_FFFF) as usize;
        let block = frame
            .get(pos..pos.saturating_add(n))
            .ok_or_else(|| malformed(format!("a {n}-byte block runs past the frame")))?;
        pos += n;
        let room = &mut dst[filled..];
        filled += if stored {
            room.get_mut(..n)
                .ok_or_else(|| malformed("more bytes than the buffer claims".into()))?
                .copy_from_slice(block);
            n
        } else {
            lz4_flex::block::decompress_into(block, room)
                .map_err(|e| malformed(format!("{e} (or more bytes than the buffer claims)")))?
        };
    }
    if filled != dst.len() {
        return Err(malformed(format!(
            "decompressed to {filled} bytes, the buffer claims {}",
            dst.len()
        )));
    }
    Ok(())
}

fn read_u32(bytes: &[u8], pos: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(pos..pos.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

fn in_buffer(e: CodecError, i: usize) -> CodecError {
    match e {
        CodecError::MalformedIpc(m) => CodecError::MalformedIpc(format!("buffer {i}: {m}")),
        e => e,
    }
}

fn in_message(e: CodecError, i: usize) -> CodecError {
    match e {
        CodecError::MalformedIpc(m) => CodecError::MalformedIpc(format!("message {i}: {m}")),
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch as Batch, StringArray};
    use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};

    use super::*;
    use crate::ipc::{decode, IpcCompression, IpcEncoder};

    fn batch(rows: usize) -> Batch {
        let ints: ArrayRef = Arc::new(Int64Array::from_iter(
            (0..rows).map(|i| (i % 7 != 0).then_some(i as i64 * 3)),
        ));
        let floats: ArrayRef = Arc::new(Float64Array::from_iter_values(
            (0..rows).map(|i| (i % 100) as f64 / 4.0),
        ));
        let strings: ArrayRef = Arc::new(StringArray::from_iter(
            (0..rows).map(|i| (i % 5 != 0).then(|| format!("zone {}", i % 40))),
        ));
        Batch::try_from_iter_with_nullable([
            ("i", ints, true),
            ("f", floats, true),
            ("s", strings, true),
        ])
        .unwrap()
    }

    fn lz4(batches: &[Batch]) -> Vec<u8> {
        let mut enc = IpcEncoder::new(IpcCompression::Lz4Frame).unwrap();
        enc.encode(&batches[0].schema(), batches).unwrap()
    }

    /// An LZ4_FRAME stream of `batches` whose frames are written with
    /// `info(buffer length)` (Arrow's writers write independent blocks
    /// without checksums).
    fn lz4_with(batches: &[Batch], info: impl Fn(usize) -> FrameInfo) -> Vec<u8> {
        let mut enc = IpcEncoder::new(IpcCompression::None).unwrap();
        let plain = enc.encode(&batches[0].schema(), batches).unwrap();
        let mut out = Vec::new();
        let mut reader = MessageReader::new(&plain);
        while let Some(m) = reader.next_message().unwrap() {
            let Some(b) = batch_of(&m.message) else {
                write_framed(&mut out, m.meta, m.body);
                continue;
            };
            let (mut body, mut spans) = (Vec::new(), Vec::new());
            for (_, data) in buffers(&b, m.body) {
                let at = body.len();
                if !data.is_empty() {
                    body.extend_from_slice(&(data.len() as i64).to_le_bytes());
                    let mut enc = FrameEncoder::with_frame_info(info(data.len()), &mut body);
                    enc.write_all(data).unwrap();
                    enc.finish().unwrap();
                }
                spans.push(arrow_ipc::Buffer::new(at as i64, (body.len() - at) as i64));
                body.resize(body.len().div_ceil(ALIGNMENT) * ALIGNMENT, 0);
            }
            let lz4 = Some(CompressionType::LZ4_FRAME);
            let meta = metadata(&m.message, &b, &spans, body.len(), lz4);
            write_framed(&mut out, &meta, &body);
        }
        out.extend_from_slice(&EOS);
        out
    }

    fn independent(size: BlockSize) -> FrameInfo {
        FrameInfo::new()
            .block_size(size)
            .block_mode(BlockMode::Independent)
    }

    #[test]
    fn lz4_streams_are_decompressed_here_and_decode_equal() {
        let bs = vec![batch(10_000), batch(0), batch(3_000).slice(100, 2_000)];
        let bytes = lz4(&bs);
        let plain = decompress_stream(&bytes)
            .unwrap()
            .expect("taken by this path");
        let mut reader = MessageReader::new(&plain);
        while let Some(m) = reader.next_message().unwrap() {
            if let Some(b) = batch_of(&m.message) {
                assert!(b.compression().is_none());
            }
        }
        assert_eq!(decode(&bytes).unwrap().batches, bs);
    }

    #[test]
    fn uncompressed_and_zstd_streams_are_left_to_arrow() {
        for c in [IpcCompression::None, IpcCompression::Zstd] {
            let mut enc = IpcEncoder::new(c).unwrap();
            let bytes = enc.encode(&batch(10).schema(), &[batch(10)]).unwrap();
            assert!(decompress_stream(&bytes).unwrap().is_none(), "{c:?}");
        }
    }

    /// Arrow's decoder checks the checksums this path would skip.
    #[test]
    fn frames_with_checksums_or_linked_blocks_are_left_to_arrow() {
        let bs = [batch(20_000)];
        let infos = [
            independent(BlockSize::Max64KB).content_checksum(true),
            independent(BlockSize::Max64KB).block_checksums(true),
            FrameInfo::new()
                .block_size(BlockSize::Max64KB)
                .block_mode(BlockMode::Linked),
        ];
        for info in infos {
            let bytes = lz4_with(&bs, |_| info.clone());
            assert!(decompress_stream(&bytes).unwrap().is_none(), "{info:?}");
            assert_eq!(decode(&bytes).unwrap().batches, bs, "{info:?}");
        }
    }

    #[test]
    fn several_blocks_a_content_size_and_stored_blocks_decode() {
        let bs = [batch(20_000)];
        // 160 KB columns: three 64 KiB blocks per buffer.
        let blocks = lz4_with(&bs, |_| independent(BlockSize::Max64KB));
        let sized = lz4_with(&bs, |n| {
            independent(BlockSize::Max4MB).content_size(Some(n as u64))
        });
        for bytes in [blocks, sized] {
            assert!(decompress_stream(&bytes).unwrap().is_some());
            assert_eq!(decode(&bytes).unwrap().batches, bs);
        }
        let mut frame = vec![0x04, 0x22, 0x4D, 0x18, 0x60, 0x40, 0x82];
        frame.extend_from_slice(&(5u32 | 0x8000_0000).to_le_bytes());
        frame.extend_from_slice(b"hello");
        frame.extend_from_slice(&[0; 4]);
        let mut dst = [0u8; 5];
        decompress_frame(&frame, &mut dst).unwrap();
        assert_eq!(&dst, b"hello");
    }

    #[test]
    fn a_frame_shorter_or_longer_than_its_claim_is_an_error_naming_the_buffer() {
        let bytes = lz4(&[batch(10_000)]);
        // Claim one byte more in the first compressed buffer's prefix.
        let mut reader = MessageReader::new(&bytes);
        let mut target = None;
        while let Some(m) = reader.next_message().unwrap() {
            if let Some(b) = batch_of(&m.message) {
                let (i, data) = buffers(&b, m.body)
                    .into_iter()
                    .find(|(_, d)| prefix(d).is_some_and(|p| p > 0))
                    .unwrap();
                target = Some((i, data.as_ptr() as usize - bytes.as_ptr() as usize));
            }
        }
        let (i, at) = target.unwrap();
        for delta in [1i64, -1] {
            let mut bad = bytes.clone();
            let claim = prefix(&bad[at..]).unwrap() + delta;
            bad[at..at + PREFIX].copy_from_slice(&claim.to_le_bytes());
            let err = decompress_stream(&bad).unwrap_err().to_string();
            assert!(
                err.contains(&format!("message 2: buffer {i}: LZ4 frame")),
                "{err}"
            );
            assert!(decode(&bad).is_err());
        }
    }

    #[test]
    fn a_damaged_block_is_an_error_not_a_panic() {
        let bytes = lz4(&[batch(10_000)]);
        for cut in (bytes.len() / 2..bytes.len()).step_by(97) {
            let mut bad = bytes.clone();
            bad[cut] ^= 0x5A;
            let _ = decode(&bad);
        }
    }
}
