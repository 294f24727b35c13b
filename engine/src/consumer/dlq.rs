//! The dead-letter topic: messages that cannot be decoded or transformed are
//! copied there whole, with headers naming the error and where the message
//! came from; consumption continues. A message is only counted as handled
//! (and its offset committed) after the dead-letter copy is acknowledged.

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

    /// Copies one message to the dead-letter topic and waits for the ack.
    pub async fn send(
        &self,
        partition: i32,
        offset: i64,
        payload: &[u8],
        headers: &[(String, Vec<u8>)],
        why: &str,
    ) -> Result<()> {
        let mut h = OwnedHeaders::new_with_capacity(headers.len() + 4);
        for (k, v) in headers {
            h = h.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        let p = partition.to_string();
        let o = offset.to_string();
        for (k, v) in [
            (H_ERROR, why),
            (H_TOPIC, self.source_topic.as_str()),
            (H_PARTITION, p.as_str()),
            (H_OFFSET, o.as_str()),
        ] {
            h = h.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        let record: FutureRecord<'_, (), [u8]> =
            FutureRecord::to(&self.topic).payload(payload).headers(h);
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
            dlq = %self.topic,
            "dead-lettered message: {why}"
        );
        Ok(())
    }
}
