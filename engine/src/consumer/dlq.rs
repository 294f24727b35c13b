//! The dead-letter topic: messages that cannot be decoded or transformed are
//! copied there whole, with the original headers plus headers naming the
//! reason, the error and where the message came from; consumption continues.
//! A message is only counted as handled (and its offset committed) after the
//! dead-letter copy is acknowledged.
//!
//! A transform fails inside an insert lane, long after the consumer thread
//! has let go of the Kafka message; the message handed to the lane therefore
//! carries its own value and headers for its dead letter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::kafka::KafkaArgs;
use crate::metrics as m;
use crate::{Error, Result};

pub const H_ERROR: &str = "velostream.dlq.error";
pub const H_TOPIC: &str = "velostream.dlq.topic";
pub const H_PARTITION: &str = "velostream.dlq.partition";
pub const H_OFFSET: &str = "velostream.dlq.offset";
/// Why, in one word: one of the [`Reason`] names.
pub const H_REASON: &str = "velostream.dlq.reason";
/// Size of the original value, set when it was too large to be copied.
pub const H_VALUE_BYTES: &str = "velostream.dlq.value_bytes";

/// Largest value copied into a dead letter: the dead-letter producer's
/// `message.max.bytes` (32 MiB) less room for headers and framing. A larger
/// (oversized) value is replaced by an empty one and its size is given in
/// [`H_VALUE_BYTES`]; the original stays in the source topic at the partition
/// and offset named by the headers.
pub const MAX_COPIED_VALUE_BYTES: usize = (32 << 20) - (64 << 10);

/// Why a message was dead-lettered (the [`H_REASON`] header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Not a readable Arrow IPC stream (garbage, truncated, bad envelope
    /// headers, row count contradicting the header, empty value).
    Undecodable,
    /// A readable stream whose schema is not the topic's.
    SchemaMismatch,
    /// Larger than `max_message_bytes` on the wire or `max_decoded_bytes`
    /// decoded.
    Oversized,
    /// The SQL transform failed on this message's rows.
    TransformFailed,
    /// Its rows do not fit the table's column types (a value out of range,
    /// a timestamp before 1970 or with sub-second digits on 18.x, a decimal
    /// too wide...).
    EncodeFailed,
    /// ClickHouse refused an insert of this message alone as too large
    /// (memory limit, too many partitions for one block).
    InsertFailed,
}

impl Reason {
    /// The header value.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Undecodable => "undecodable",
            Reason::SchemaMismatch => "schema_mismatch",
            Reason::Oversized => "oversized",
            Reason::TransformFailed => "transform_failed",
            Reason::EncodeFailed => "encode_failed",
            Reason::InsertFailed => "insert_failed",
        }
    }
}

/// Original headers of one message: (key, value).
pub type OriginalHeaders = Vec<(String, Vec<u8>)>;

/// A producer for the dead-letter topic.
pub struct DeadLetters {
    producer: FutureProducer,
    topic: String,
    source_topic: String,
    /// Messages acknowledged by the dead-letter topic (from the consumer
    /// thread and from the lanes).
    sent: AtomicU64,
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetters")
            .field("topic", &self.topic)
            .finish()
    }
}

impl DeadLetters {
    /// A dead-letter producer for messages of `source_topic`.
    pub fn new(kafka: &KafkaArgs, topic: &str, source_topic: &str) -> Result<Self> {
        let mut c = kafka.client_config()?;
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.max.bytes", "33554432")
            .set("message.timeout.ms", "30000");
        kafka.apply_overrides(&mut c)?;
        let producer = c.create().map_err(|e| {
            Error::kafka(
                format!("creating the dead-letter producer for {topic:?}"),
                e,
            )
        })?;
        Ok(DeadLetters {
            producer,
            topic: topic.to_string(),
            source_topic: source_topic.to_string(),
            sent: AtomicU64::new(0),
        })
    }

    /// Messages dead-lettered so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Copies one message to the dead-letter topic with its original
    /// `headers` (earlier `velostream.dlq.*` ones dropped) followed by
    /// [`H_REASON`] (`reason`), [`H_ERROR`] (`why`), [`H_TOPIC`],
    /// [`H_PARTITION`] and [`H_OFFSET`] (and [`H_VALUE_BYTES`] when the value
    /// is too large to copy), and waits for the acknowledgement.
    pub async fn send_with_reason(
        &self,
        partition: i32,
        offset: i64,
        payload: &[u8],
        headers: &[(String, Vec<u8>)],
        reason: Reason,
        why: &str,
    ) -> Result<()> {
        let copied = payload.len() <= MAX_COPIED_VALUE_BYTES;
        let mut h = OwnedHeaders::new_with_capacity(headers.len() + 6);
        for (k, v) in letter_headers(
            headers,
            reason,
            why,
            &self.source_topic,
            partition,
            offset,
            payload.len(),
        ) {
            h = h.insert(Header {
                key: &k,
                value: Some(&v),
            });
        }
        let value: &[u8] = if copied { payload } else { &[] };
        let record: FutureRecord<'_, (), [u8]> =
            FutureRecord::to(&self.topic).payload(value).headers(h);
        self.producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| {
                Error::kafka(
                    format!(
                        "dead-lettering {} partition {partition} offset {offset} to {:?}",
                        self.source_topic, self.topic
                    ),
                    e,
                )
            })?;
        self.sent.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::CONSUMER_DEAD_LETTERS, "reason" => reason.name()).increment(1);
        tracing::warn!(
            partition,
            offset,
            reason = reason.name(),
            dlq = %self.topic,
            "dead-lettered message: {why}"
        );
        Ok(())
    }
}

/// The headers of a dead letter: the original ones (minus earlier
/// `velostream.dlq.*` ones: a replayed dead letter failing again gets this
/// failure's headers, not two sets), then ours.
fn letter_headers(
    original: &[(String, Vec<u8>)],
    reason: Reason,
    why: &str,
    source_topic: &str,
    partition: i32,
    offset: i64,
    value_bytes: usize,
) -> OriginalHeaders {
    let mut h: OriginalHeaders = original
        .iter()
        .filter(|(k, _)| !k.starts_with("velostream.dlq."))
        .cloned()
        .collect();
    let mut ours = vec![
        (H_REASON, reason.name().to_string()),
        (H_ERROR, why.to_string()),
        (H_TOPIC, source_topic.to_string()),
        (H_PARTITION, partition.to_string()),
        (H_OFFSET, offset.to_string()),
    ];
    if value_bytes > MAX_COPIED_VALUE_BYTES {
        ours.push((H_VALUE_BYTES, value_bytes.to_string()));
    }
    h.extend(
        ours.into_iter()
            .map(|(k, v)| (k.to_string(), v.into_bytes())),
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(h: &'a OriginalHeaders, key: &str) -> Vec<&'a [u8]> {
        h.iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    #[test]
    fn letters_keep_original_headers_and_replace_earlier_dead_letter_ones() {
        let original: OriginalHeaders = vec![
            ("velostream.file".into(), b"a.parquet".to_vec()),
            ("trace-id".into(), vec![0, 255]),
            (H_REASON.into(), b"undecodable".to_vec()),
            (H_VALUE_BYTES.into(), b"99".to_vec()),
        ];
        let h = letter_headers(&original, Reason::TransformFailed, "boom", "src", 3, 41, 10);
        assert_eq!(&h[..2], &original[..2], "original headers first, in order");
        assert_eq!(get(&h, H_REASON), [b"transform_failed".as_slice()]);
        assert_eq!(get(&h, H_ERROR), [b"boom".as_slice()]);
        assert_eq!(get(&h, H_TOPIC), [b"src".as_slice()]);
        assert_eq!(get(&h, H_PARTITION), [b"3".as_slice()]);
        assert_eq!(get(&h, H_OFFSET), [b"41".as_slice()]);
        assert!(
            get(&h, H_VALUE_BYTES).is_empty(),
            "a copied value has no size header"
        );
        assert_eq!(h.len(), 7);

        let big = MAX_COPIED_VALUE_BYTES + 1;
        let h = letter_headers(&[], Reason::Oversized, "big", "src", 0, 0, big);
        assert_eq!(get(&h, H_VALUE_BYTES), [big.to_string().as_bytes()]);
        assert_eq!(get(&h, H_REASON), [b"oversized".as_slice()]);
    }

    #[test]
    fn reasons_have_stable_names() {
        let names: Vec<&str> = [
            Reason::Undecodable,
            Reason::SchemaMismatch,
            Reason::Oversized,
            Reason::TransformFailed,
            Reason::EncodeFailed,
            Reason::InsertFailed,
        ]
        .iter()
        .map(|r| r.name())
        .collect();
        assert_eq!(
            names,
            [
                "undecodable",
                "schema_mismatch",
                "oversized",
                "transform_failed",
                "encode_failed",
                "insert_failed"
            ]
        );
    }
}
