//! The dead-letter topic: messages that cannot be decoded or transformed are
//! copied there whole, with the original headers plus headers naming the
//! reason, the error and where the message came from; consumption continues.
//! A message is only counted as handled (and its offset committed) after the
//! dead-letter copy is acknowledged.
//!
//! A transform fails inside an insert lane, long after the consumer thread
//! has let go of the Kafka message; the original headers of messages that a
//! transform may still reject are therefore kept here ([`DeadLetters::remember`])
//! until their rows are stored, and attached to their dead letter.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
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
}

impl Reason {
    /// The header value.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Undecodable => "undecodable",
            Reason::SchemaMismatch => "schema_mismatch",
            Reason::Oversized => "oversized",
            Reason::TransformFailed => "transform_failed",
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
    /// partition → offset → original headers of messages in flight to a
    /// transform (see the module documentation).
    remembered: Mutex<HashMap<i32, BTreeMap<i64, OriginalHeaders>>>,
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
            remembered: Mutex::new(HashMap::new()),
        })
    }

    /// Keeps the original headers of a message that a transform may still
    /// reject, for its dead letter.
    pub fn remember(&self, partition: i32, offset: i64, headers: OriginalHeaders) {
        self.lock_remembered()
            .entry(partition)
            .or_default()
            .insert(offset, headers);
    }

    /// Forgets the headers of messages that can no longer be dead-lettered:
    /// those of partitions not in `assigned`, and those before the stored
    /// offset of their partition (their rows are in ClickHouse).
    pub fn forget(&self, assigned: &std::collections::BTreeSet<i32>, stored: &HashMap<i32, i64>) {
        let mut r = self.lock_remembered();
        r.retain(|p, _| assigned.contains(p));
        for (p, offsets) in r.iter_mut() {
            if let Some(&next) = stored.get(p) {
                *offsets = offsets.split_off(&next);
            }
        }
        r.retain(|_, offsets| !offsets.is_empty());
    }

    fn take_remembered(&self, partition: i32, offset: i64) -> Option<OriginalHeaders> {
        self.lock_remembered()
            .get_mut(&partition)
            .and_then(|o| o.remove(&offset))
    }

    fn lock_remembered(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<i32, BTreeMap<i64, OriginalHeaders>>> {
        self.remembered.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Messages dead-lettered so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Copies one message to the dead-letter topic and waits for the ack.
    /// `headers` are the message's original headers; when empty, those
    /// [remembered](Self::remember) for this partition and offset are used.
    /// The reason is derived from `why` (a transform failure or a decoding
    /// problem); see [`Self::send_with_reason`].
    pub async fn send(
        &self,
        partition: i32,
        offset: i64,
        payload: &[u8],
        headers: &[(String, Vec<u8>)],
        why: &str,
    ) -> Result<()> {
        let reason = if why.starts_with("transform failed") {
            Reason::TransformFailed
        } else {
            Reason::Undecodable
        };
        self.send_with_reason(partition, offset, payload, headers, reason, why)
            .await
    }

    /// Copies one message to the dead-letter topic with the original
    /// headers (or the remembered ones, when `headers` is empty) followed by
    /// [`H_REASON`], [`H_ERROR`], [`H_TOPIC`], [`H_PARTITION`] and
    /// [`H_OFFSET`], and waits for the acknowledgement.
    pub async fn send_with_reason(
        &self,
        partition: i32,
        offset: i64,
        payload: &[u8],
        headers: &[(String, Vec<u8>)],
        reason: Reason,
        why: &str,
    ) -> Result<()> {
        let remembered = self.take_remembered(partition, offset);
        let original: &[(String, Vec<u8>)] = match (&remembered, headers.is_empty()) {
            (Some(r), true) => r,
            _ => headers,
        };
        let mut h = OwnedHeaders::new_with_capacity(original.len() + 6);
        for (k, v) in original {
            // A replayed dead letter failing again gets this failure's
            // headers, not two sets.
            if k.starts_with("velostream.dlq.") {
                continue;
            }
            h = h.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        let p = partition.to_string();
        let o = offset.to_string();
        let size = payload.len().to_string();
        let copied = payload.len() <= MAX_COPIED_VALUE_BYTES;
        let mut ours = vec![
            (H_REASON, reason.name()),
            (H_ERROR, why),
            (H_TOPIC, self.source_topic.as_str()),
            (H_PARTITION, p.as_str()),
            (H_OFFSET, o.as_str()),
        ];
        if !copied {
            ours.push((H_VALUE_BYTES, size.as_str()));
        }
        for (k, v) in ours {
            h = h.insert(Header {
                key: k,
                value: Some(v),
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
        metrics::counter!(m::CONSUMER_DEAD_LETTERS).increment(1);
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

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use super::*;

    fn dead_letters() -> DeadLetters {
        // Creating a producer does not connect; nothing is sent here.
        DeadLetters::new(&KafkaArgs::new("127.0.0.1:9"), "dead", "src").expect("producer")
    }

    fn h(v: &str) -> OriginalHeaders {
        vec![("velostream.file".into(), v.as_bytes().to_vec())]
    }

    #[test]
    fn remembered_headers_are_taken_once_and_forgotten_when_stored_or_revoked() {
        let d = dead_letters();
        d.remember(0, 5, h("a"));
        d.remember(0, 6, h("b"));
        d.remember(1, 9, h("c"));
        assert_eq!(d.take_remembered(0, 5), Some(h("a")));
        assert_eq!(d.take_remembered(0, 5), None, "taken once");
        // Partition 0 stored up to offset 7 (exclusive): offset 6 is gone.
        let assigned: BTreeSet<i32> = [0, 1].into();
        d.forget(&assigned, &HashMap::from([(0, 7)]));
        assert_eq!(d.take_remembered(0, 6), None);
        assert_eq!(d.take_remembered(1, 9), Some(h("c")), "not stored yet");
        // Partition 1 revoked: its headers go.
        d.remember(1, 10, h("d"));
        d.forget(&[0].into(), &HashMap::new());
        assert_eq!(d.take_remembered(1, 10), None);
    }

    #[test]
    fn reasons_have_stable_names() {
        let names: Vec<&str> = [
            Reason::Undecodable,
            Reason::SchemaMismatch,
            Reason::Oversized,
            Reason::TransformFailed,
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
                "transform_failed"
            ]
        );
    }
}
