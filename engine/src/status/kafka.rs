//! The Kafka side of `status`: committed offsets, watermarks, the group's
//! members, and a probe that reads the pending messages. A thin shell over
//! librdkafka; every decision is in [`super::model`].
//!
//! The probe is a separate consumer (its own group id, never subscribing
//! nor committing) assigned at the group's positions. The high watermark it
//! reports comes from librdkafka's statistics, which take it from the fetch
//! responses: right on real Kafka and on tansu 0.6, whose ListOffsets answer
//! is wrong after multi-record produce batches.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};
use velostream_codecs::envelope::H_ROWS;

use super::assignment::Assignment;
use super::model::{Member, PartitionObservation, Sample};
use crate::kafka::admin::{self, METADATA_TIMEOUT};
use crate::kafka::watermarks::FetchedWatermarks;
use crate::kafka::KafkaArgs;
use crate::{Error, Result};

/// Longest time the probe waits for a fetch response from every partition.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// The probe stops reading once no message arrived for this long.
const PROBE_QUIET: Duration = Duration::from_millis(500);

/// What the Kafka side saw.
#[derive(Debug)]
pub struct KafkaView {
    pub group_state: String,
    pub members: Vec<Member>,
    pub partitions: Vec<PartitionObservation>,
}

/// Observes `topic` and `group`, reading at most `sample_limit` pending
/// messages per partition. Blocking.
pub fn observe(
    kafka: &KafkaArgs,
    topic: &str,
    group: &str,
    sample_limit: usize,
) -> Result<KafkaView> {
    let Some(count) = admin::partition_count(kafka, topic)? else {
        return Err(Error::Config(format!(
            "topic {topic:?} does not exist on {}",
            kafka.brokers
        )));
    };
    let partitions: Vec<i32> = (0..count as i32).collect();
    let client = group_client(kafka, group)?;
    let committed = committed_offsets(&client, topic, group, &partitions)?;
    let mut observations = Vec::with_capacity(partitions.len());
    for (&p, committed) in partitions.iter().zip(committed) {
        let (low, high) = client
            .fetch_watermarks(topic, p, METADATA_TIMEOUT)
            .map_err(|e| Error::kafka(format!("watermarks of topic {topic:?} partition {p}"), e))?;
        observations.push(PartitionObservation {
            partition: p,
            committed,
            log_start: low,
            listed_high: high,
            fetched_high: high,
            samples: Vec::new(),
        });
    }
    probe(kafka, topic, group, &mut observations, sample_limit)?;
    let (group_state, members) = members(&client, topic, group)?;
    Ok(KafkaView {
        group_state,
        members,
        partitions: observations,
    })
}

/// A client with the group's id, used only for offset fetches and group
/// descriptions: it never subscribes, so it never joins the group.
fn group_client(kafka: &KafkaArgs, group: &str) -> Result<BaseConsumer> {
    let mut c = kafka.client_config()?;
    c.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    kafka.apply_overrides(&mut c)?;
    c.create()
        .map_err(|e| Error::kafka(format!("creating a client for {}", kafka.brokers), e))
}

fn committed_offsets(
    client: &BaseConsumer,
    topic: &str,
    group: &str,
    partitions: &[i32],
) -> Result<Vec<Option<i64>>> {
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition(topic, p);
    }
    let got = client
        .committed_offsets(tpl, METADATA_TIMEOUT)
        .map_err(|e| {
            Error::kafka(
                format!("committed offsets of group {group:?} on topic {topic:?}"),
                e,
            )
        })?;
    Ok(partitions
        .iter()
        .map(
            |&p| match got.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(n)) => Some(n),
                _ => None,
            },
        )
        .collect())
}

/// The group's state and members, with the partitions of `topic` each owns.
fn members(client: &BaseConsumer, topic: &str, group: &str) -> Result<(String, Vec<Member>)> {
    let list = client
        .fetch_group_list(Some(group), METADATA_TIMEOUT)
        .map_err(|e| Error::kafka(format!("describing consumer group {group:?}"), e))?;
    let Some(info) = list.groups().iter().find(|g| g.name() == group) else {
        return Ok((String::new(), Vec::new()));
    };
    let members = info
        .members()
        .iter()
        .map(|m| {
            let decoded = Assignment::decode(m.assignment().unwrap_or(&[]));
            let (assignment, assignment_error) = match decoded {
                Ok(a) => (a, None),
                Err(e) => (
                    Assignment::default(),
                    Some(format!("member {}: {e}", m.id())),
                ),
            };
            Member {
                id: m.id().to_string(),
                client_id: m.client_id().to_string(),
                host: m.client_host().to_string(),
                partitions: assignment.partitions_of(topic),
                assignment: assignment.topics,
                assignment_error,
            }
        })
        .collect();
    Ok((info.state().to_string(), members))
}

/// Reads up to `limit` messages per partition from the group's position
/// and sets each partition's fetched high watermark.
fn probe(
    kafka: &KafkaArgs,
    topic: &str,
    group: &str,
    observations: &mut [PartitionObservation],
    limit: usize,
) -> Result<()> {
    let consumer = probe_consumer(kafka, topic, group, observations)?;
    let start = Instant::now();
    let mut last_message = start;
    loop {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
            last_message = Instant::now();
            record(&consumer, topic, observations, &m, limit);
        }
        let high = consumer.context().snapshot();
        let quiet = last_message.elapsed() >= PROBE_QUIET;
        if finished(observations, &high, limit, quiet) || start.elapsed() >= PROBE_TIMEOUT {
            for o in observations.iter_mut() {
                match high.get(&o.partition) {
                    Some(&h) => o.fetched_high = h,
                    None => tracing::warn!(
                        topic,
                        partition = o.partition,
                        "no fetch response within {PROBE_TIMEOUT:?}; using the ListOffsets high watermark"
                    ),
                }
            }
            return Ok(());
        }
    }
}

/// A consumer outside the group (own group id, never subscribing nor
/// committing), assigned at the group's positions, reporting statistics.
fn probe_consumer(
    kafka: &KafkaArgs,
    topic: &str,
    group: &str,
    observations: &[PartitionObservation],
) -> Result<BaseConsumer<FetchedWatermarks>> {
    let mut c = kafka.client_config()?;
    c.set("group.id", format!("{group}.velostream-status"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "error")
        .set("statistics.interval.ms", "100")
        .set("fetch.wait.max.ms", "100");
    kafka.apply_overrides(&mut c)?;
    let ctx = FetchedWatermarks::new(topic);
    let consumer: BaseConsumer<FetchedWatermarks> = c
        .create_with_context(ctx)
        .map_err(|e| Error::kafka(format!("creating a client for {}", kafka.brokers), e))?;
    let mut tpl = TopicPartitionList::new();
    for o in observations {
        tpl.add_partition_offset(topic, o.partition, Offset::Offset(o.position()))
            .map_err(|e| Error::kafka(format!("assigning topic {topic:?}"), e))?;
    }
    consumer
        .assign(&tpl)
        .map_err(|e| Error::kafka(format!("assigning topic {topic:?}"), e))?;
    Ok(consumer)
}

/// Keeps a pending message as a sample; pauses its partition at `limit`.
fn record<M: Message>(
    consumer: &BaseConsumer<FetchedWatermarks>,
    topic: &str,
    observations: &mut [PartitionObservation],
    m: &M,
    limit: usize,
) {
    let Some(o) = observations
        .iter_mut()
        .find(|o| o.partition == m.partition())
    else {
        return;
    };
    if o.samples.len() >= limit || m.offset() < o.position() {
        return;
    }
    o.samples.push(Sample {
        offset: m.offset(),
        rows: rows_header(m),
    });
    if o.samples.len() >= limit {
        let mut one = TopicPartitionList::new();
        one.add_partition(topic, o.partition);
        let _ = consumer.pause(&one);
    }
}

/// The probe is done when every partition has answered a fetch and either
/// every pending message (up to `limit`) was read or nothing came for a while.
fn finished(
    observations: &[PartitionObservation],
    high: &HashMap<i32, i64>,
    limit: usize,
    quiet: bool,
) -> bool {
    let all_fetched = observations.iter().all(|o| high.contains_key(&o.partition));
    let complete = observations.iter().all(|o| {
        high.get(&o.partition).is_some_and(|&h| {
            let lag = u64::try_from(h - o.position()).unwrap_or(0);
            o.samples.len() as u64 >= lag.min(limit as u64)
        })
    });
    all_fetched && (complete || quiet)
}

/// The `velostream.rows` header, when present and numeric.
fn rows_header<M: Message>(m: &M) -> Option<u64> {
    let headers = m.headers()?;
    headers
        .iter()
        .find(|h| h.key == H_ROWS)
        .and_then(|h| std::str::from_utf8(h.value?).ok()?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(partition: i32, committed: i64, samples: usize) -> PartitionObservation {
        PartitionObservation {
            partition,
            committed: Some(committed),
            samples: (0..samples)
                .map(|i| Sample {
                    offset: committed + i as i64,
                    rows: Some(1),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_probe_waits_for_every_fetch_then_for_the_samples_or_quiet() {
        let parts = [obs(0, 10, 2), obs(1, 5, 0)];
        let mut high = HashMap::from([(0, 12)]);
        // Partition 1 has not answered a fetch yet: not even quiet ends it.
        assert!(!finished(&parts, &high, 100, true));
        high.insert(1, 5); // nothing pending on 1; both complete
        assert!(finished(&parts, &high, 100, false));
        high.insert(1, 9); // 4 pending on 1, none read yet
        assert!(!finished(&parts, &high, 100, false));
        assert!(finished(&parts, &high, 100, true));
        // The bound caps what must be read.
        high.insert(0, 1_000);
        high.insert(1, 5);
        assert!(finished(&parts, &high, 2, false));
        assert!(!finished(&parts, &high, 3, false));
    }
}
