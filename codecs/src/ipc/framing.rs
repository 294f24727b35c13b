//! The IPC stream framing, message by message: `[0xFFFFFFFF][metadata
//! length][flatbuffer Message][body]` (or the pre-0.15 form without the
//! continuation marker), ended by a zero length. Every length is checked
//! against the input before it is used; nothing here decodes a body.

use arrow_ipc::Message;

use crate::{CodecError, Result};

const CONTINUATION: u32 = 0xFFFF_FFFF;

/// One message of a stream: its parsed (verified) metadata and its body.
pub(super) struct Framed<'a> {
    /// The metadata's flatbuffer bytes (with any padding).
    pub meta: &'a [u8],
    pub message: Message<'a>,
    pub body: &'a [u8],
}

/// Reads the messages of one IPC stream in order.
pub(super) struct MessageReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    ended: bool,
}

impl<'a> MessageReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            pos: 0,
            ended: false,
        }
    }

    /// Bytes read so far, including the end-of-stream marker once seen.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The next message; `None` at the end-of-stream marker or at the end
    /// of the input (streams without a marker are accepted). Bytes after
    /// the marker are an error.
    pub fn next_message(&mut self) -> Result<Option<Framed<'a>>> {
        let malformed = CodecError::MalformedIpc;
        if self.ended || self.pos == self.bytes.len() {
            return Ok(None);
        }
        let mut len = self.read_u32()?;
        if len == CONTINUATION {
            len = self.read_u32()?;
        }
        if len == 0 {
            self.ended = true;
            if self.pos != self.bytes.len() {
                return Err(malformed(format!(
                    "{} trailing bytes after the end-of-stream marker",
                    self.bytes.len() - self.pos
                )));
            }
            return Ok(None);
        }
        let len = len as usize;
        let pos = self.pos;
        let meta = self
            .bytes
            .get(pos..pos.saturating_add(len))
            .ok_or_else(|| {
                malformed(format!(
                    "message metadata at byte {pos} claims {len} bytes, only {} remain",
                    self.bytes.len() - pos
                ))
            })?;
        self.pos += len;
        let pos = self.pos;
        let message = arrow_ipc::root_as_message(meta)
            .map_err(|e| malformed(format!("invalid message metadata at byte {pos}: {e}")))?;
        let body_len = u64::try_from(message.bodyLength())
            .map_err(|_| malformed(format!("negative body length before byte {pos}")))?;
        let remaining = (self.bytes.len() - pos) as u64;
        if body_len > remaining {
            return Err(malformed(format!(
                "message body at byte {pos} claims {body_len} bytes, only {remaining} remain"
            )));
        }
        let body = &self.bytes[pos..pos + body_len as usize];
        self.pos += body.len();
        Ok(Some(Framed {
            meta,
            message,
            body,
        }))
    }

    fn read_u32(&mut self) -> Result<u32> {
        let pos = self.pos;
        let b: [u8; 4] = pos
            .checked_add(4)
            .and_then(|end| self.bytes.get(pos..end))
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                CodecError::MalformedIpc(format!("truncated message length at byte {pos}"))
            })?;
        self.pos += 4;
        Ok(u32::from_le_bytes(b))
    }
}
