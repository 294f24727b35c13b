//! `dlq list`: every dead letter of a topic, oldest first per partition.

use super::{at_of, headers_of, Letter};
use crate::kafka::read::{BoundedReader, Seek};
use crate::kafka::{admin, KafkaArgs};
use crate::{Error, Result};

/// The dead letters of `dlq_topic` present now, those of `reason` only
/// when given, at most `limit`.
pub fn list(
    kafka: &KafkaArgs,
    dlq_topic: &str,
    reason: Option<&str>,
    limit: Option<usize>,
) -> Result<Vec<Letter>> {
    let partitions = existing_partitions(kafka, dlq_topic)?;
    let starts: Vec<(i32, i64)> = (0..partitions as i32).map(|p| (p, 0)).collect();
    let mut reader = BoundedReader::open(kafka, dlq_topic, &starts, Seek::FromLogStart)?;
    let mut letters = Vec::new();
    while limit.is_none_or(|n| letters.len() < n) {
        let Some(m) = reader.next_message()? else {
            break;
        };
        let value_len = rdkafka::Message::payload(&m).map_or(0, <[u8]>::len);
        let letter = Letter::new(at_of(&m), value_len, &headers_of(&m));
        if letter.selected_by(reason) {
            letters.push(letter);
        }
    }
    letters.sort_by_key(|l| (l.at.partition, l.at.offset));
    Ok(letters)
}

/// The partition count of `topic`, or an error naming it when it does not
/// exist.
pub(super) fn existing_partitions(kafka: &KafkaArgs, topic: &str) -> Result<usize> {
    admin::partition_count(kafka, topic)?.ok_or_else(|| {
        Error::Config(format!(
            "topic {topic:?} does not exist on {}",
            kafka.brokers
        ))
    })
}
