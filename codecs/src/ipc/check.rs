//! Checks an untrusted stream before Arrow's decoder sees it: the framing,
//! the schema's type ids, every buffer inside its body, and the totals
//! against the [`DecodeLimits`].

use arrow_ipc::MessageHeader;

use super::framing::MessageReader;
use super::DecodeLimits;
use crate::{CodecError, Result};

/// Walks the IPC framing without decoding bodies. Returns the length of the
/// stream including its end-of-stream marker (or the whole input when the
/// marker is absent). Every length is checked against the input and limits.
pub(super) fn check_framing(bytes: &[u8], limits: &DecodeLimits) -> Result<usize> {
    let malformed = |msg: String| CodecError::MalformedIpc(msg);
    let mut reader = MessageReader::new(bytes);
    let mut messages = 0usize;
    let mut decompressed_total = 0u64;
    let mut saw_schema = false;
    while let Some(framed) = reader.next_message()? {
        messages += 1;
        if messages > limits.max_messages {
            return Err(CodecError::LimitExceeded {
                what: "message count",
                got: messages as u64,
                limit: limits.max_messages as u64,
            });
        }
        let (message, body) = (framed.message, framed.body);
        let body_len = body.len() as u64;
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
    }
    if !saw_schema {
        return Err(malformed("stream has no schema message".into()));
    }
    Ok(reader.position())
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
