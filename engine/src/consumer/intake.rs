//! From a Kafka message to a lane item: size limits, decoding, the schema
//! check and the envelope, with poison dead-lettered on the spot.
//!
//! Policies (README, "Dead letters"): a value larger than
//! `max_message_bytes`, or whose IPC stream claims more than
//! `max_decoded_bytes` decoded, is oversized; undecodable values and foreign
//! schemas are poison; all three are dead-lettered with their original
//! headers. A readable message with 0 rows inserts nothing and its offset is
//! committed like any other.

use std::sync::Arc;

use arrow_schema::SchemaRef;
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::Message;
use velostream_codecs::envelope::Envelope;
use velostream_codecs::evolve;
use velostream_codecs::ipc;
use velostream_codecs::CodecError;

use super::config::ConsumerConfig;
use super::core::sources::SourceSlice;
use super::dlq::{DeadLetters, OriginalHeaders, Reason};
use super::item::{Item, Original, Rows};
use crate::metrics as m;
use crate::producer::MessageFormat;
use crate::{Error, Result};

/// Counters of what was consumed.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Stats {
    pub messages: u64,
    pub rows: u64,
    pub bytes: u64,
    /// Moving average from the first message on, for the rows-lag estimate.
    pub rows_per_message: f64,
}

pub(super) struct Intake {
    pub cfg: ConsumerConfig,
    pub dead_letters: Option<Arc<DeadLetters>>,
    pub rt: tokio::runtime::Handle,
    pub stats: Stats,
}

/// How a message's schema is taken (decided by the consumer thread, which
/// may start or evolve the insert side for it).
pub(super) enum SchemaVerdict {
    /// Insert its rows in this schema (its own, or a merged one its batches
    /// are adapted to).
    Use(SchemaRef),
    /// A `schema_mismatch` dead letter, for this reason.
    Refuse(String),
}

/// A message taken apart.
struct Decoded {
    batches: Vec<arrow_array::RecordBatch>,
    schema: SchemaRef,
    source: Option<SourceSlice>,
}

impl Intake {
    /// Turns `msg` into an item. `verdict` says which schema its rows are
    /// inserted in (starting or evolving the insert side when needed).
    pub fn item(
        &mut self,
        msg: &BorrowedMessage<'_>,
        generation: u64,
        verdict: &mut dyn FnMut(&SchemaRef) -> Result<SchemaVerdict>,
    ) -> Result<Item> {
        let payload = msg.payload().unwrap_or(&[]);
        self.count(payload.len() as u64);
        let mut item = Item {
            partition: msg.partition(),
            offset: msg.offset(),
            generation,
            rows: Rows::Skip,
            charged: 0,
            original: None,
            source: None,
        };
        if payload.len() > self.cfg.max_message_bytes {
            let why = format!(
                "oversized: the value is {} bytes, the limit (--max-message-bytes) is {}",
                payload.len(),
                self.cfg.max_message_bytes
            );
            self.poison(msg, payload, Reason::Oversized, &why)?;
            return Ok(item);
        }
        if self.cfg.format == MessageFormat::JsonRows {
            self.count_rows(1);
            item.charged = payload.len() as u64;
            item.rows = Rows::Json(payload.to_vec());
            return Ok(item);
        }
        let decoded = match self.decode(msg, payload) {
            Ok(d) => d,
            Err((reason, why)) => {
                self.poison(msg, payload, reason, &why)?;
                return Ok(item);
            }
        };
        let batches = match verdict(&decoded.schema)? {
            SchemaVerdict::Refuse(why) => {
                self.poison(msg, payload, Reason::SchemaMismatch, &why)?;
                return Ok(item);
            }
            SchemaVerdict::Use(want) => match adapt(decoded.batches, &want) {
                Ok(batches) => batches,
                Err(why) => {
                    self.poison(msg, payload, Reason::SchemaMismatch, &why)?;
                    return Ok(item);
                }
            },
        };
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        self.count_rows(rows as u64);
        if rows == 0 {
            return Ok(item);
        }
        item.charged = velostream_codecs::memory::held_bytes(&batches) as u64;
        if self.dead_letters.is_some() {
            // A lane may still dead-letter it (transform, encoding, insert).
            item.charged += payload.len() as u64;
            item.original = Some(Original {
                value: Arc::from(payload),
                headers: original_headers(msg),
            });
        }
        item.source = decoded.source;
        item.rows = Rows::Arrow(batches);
        Ok(item)
    }

    fn count(&mut self, bytes: u64) {
        self.stats.messages += 1;
        self.stats.bytes += bytes;
        metrics::counter!(m::CONSUMER_MESSAGES).increment(1);
        metrics::counter!(m::CONSUMER_BYTES).increment(bytes);
    }

    fn count_rows(&mut self, rows: u64) {
        self.stats.rows += rows;
        // The first message sets the average: from 0 it would under-state
        // the rows lag (and hide a backlog) for tens of messages.
        let avg = self.stats.rows_per_message;
        self.stats.rows_per_message = if avg == 0.0 {
            rows as f64
        } else {
            0.9 * avg + 0.1 * rows as f64
        };
        metrics::counter!(m::CONSUMER_ROWS).increment(rows);
    }

    /// Decodes a value within the configured limits; the error says why it
    /// is poison.
    fn decode(
        &self,
        msg: &BorrowedMessage<'_>,
        payload: &[u8],
    ) -> std::result::Result<Decoded, (Reason, String)> {
        let undecodable = |why: String| (Reason::Undecodable, why);
        let envelope = match msg.headers() {
            Some(h) => Envelope::from_headers(h.iter().map(|h| (h.key, h.value)))
                .map_err(|e| undecodable(e.to_string()))?,
            None => None,
        };
        if payload.is_empty() {
            return Err(undecodable("empty message value".into()));
        }
        let limits = ipc::DecodeLimits {
            max_decompressed_bytes: self.cfg.max_decoded_bytes,
            ..ipc::DecodeLimits::default()
        };
        let decoded = ipc::decode_with_limits(payload, &limits).map_err(|e| match e {
            CodecError::LimitExceeded { .. } => (
                Reason::Oversized,
                format!("oversized: {e} (--max-decoded-bytes)"),
            ),
            e => undecodable(e.to_string()),
        })?;
        let rows = decoded.num_rows() as u64;
        if let Some(env) = &envelope {
            if env.rows != rows {
                return Err(undecodable(format!(
                    "header says {} rows, the message holds {rows}",
                    env.rows
                )));
            }
        }
        let source = envelope.and_then(|e| e.source).and_then(|s| {
            s.file_id.map(|file| SourceSlice {
                file,
                slice: s.slice_key(),
            })
        });
        Ok(Decoded {
            schema: decoded.schema,
            batches: decoded.batches,
            source,
        })
    }

    /// Copies a poison message to the dead-letter topic, or stops the
    /// consumer naming it when there is none.
    fn poison(
        &self,
        msg: &BorrowedMessage<'_>,
        payload: &[u8],
        reason: Reason,
        why: &str,
    ) -> Result<()> {
        let (p, o) = (msg.partition(), msg.offset());
        let Some(dlq) = &self.dead_letters else {
            return Err(Error::Validation(format!(
                "topic {} partition {p} offset {o}: {why}; pass --dlq-topic to divert such messages",
                self.cfg.topic
            )));
        };
        let headers = original_headers(msg);
        self.rt
            .block_on(dlq.send_with_reason(p, o, payload, &headers, reason, why))
    }
}

/// The headers of a message as (key, value) pairs.
fn original_headers(msg: &BorrowedMessage<'_>) -> OriginalHeaders {
    msg.headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_string(), h.value.unwrap_or(&[]).to_vec()))
                .collect()
        })
        .unwrap_or_default()
}

/// The batches in schema `want` (as they are when only metadata differs).
fn adapt(
    batches: Vec<arrow_array::RecordBatch>,
    want: &SchemaRef,
) -> std::result::Result<Vec<arrow_array::RecordBatch>, String> {
    match batches.first() {
        Some(b) if !evolve::same_fields(&b.schema(), want) => batches
            .iter()
            .map(|b| evolve::adapt(b, want).map_err(|e| e.to_string()))
            .collect(),
        _ => Ok(batches),
    }
}

/// Why a message of `got` is refused by a pipeline of `want` without
/// `--evolve`.
pub(super) fn mismatch(want: &arrow_schema::Schema, got: &arrow_schema::Schema) -> String {
    format!(
        "schema does not match the topic's: expected {}, got {}; pass --evolve to make the \
         table follow the topic's schema",
        describe(want),
        describe(got)
    )
}

/// A schema as `(name type, ...)`, for messages and logs.
pub(super) fn describe(s: &arrow_schema::Schema) -> String {
    let fields: Vec<String> = s
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect();
    format!("({})", fields.join(", "))
}
