//! `dlq replay`: copies dead letters back to their source topic (or
//! `--to-topic`), exactly once per dead letter across restarts.
//!
//! # Protocol
//!
//! The replay has a consumer group of its own (`G`), used only to store
//! offsets: `G` never joins as a member. One dead letter at a time:
//!
//! 1. **Mark.** Before the first copy of this run to destination partition
//!    `(T, p)`, commit in `G` the offset `W(T, p)` = the partition's high
//!    watermark (from a fetch response: the start of the next record
//!    batch). Every copy this run makes to `(T, p)` is at or after `W`.
//! 2. **Copy.** Send the original value with the original headers and
//!    `velostream.replay.of = <dlq>/<partition>/<offset>`; wait for the
//!    acknowledgement (idempotent producer, `acks=all`).
//! 3. **Commit.** Commit the dead letter's offset + 1 in `G`.
//!
//! A crash between 2 and 3 leaves one dead letter per dead-letter
//! partition uncertain: the one at `G`'s committed offset. **Recovery**, at
//! start: for each dead-letter partition, read that letter, and read its
//! destination partition from `W(T, p)` to its end; a message whose
//! `velostream.replay.of` names the letter means the copy was made: commit
//! past the letter without copying it again. A crash before 1 or between
//! 1 and 2 finds no copy and copies. A crash after 3 needs nothing.
//!
//! Two dead letters of one source message (a consumer crash between a
//! dead-letter copy and its commit) are copied once per run.
//!
//! A dead letter not selected by `--reason` is committed past without a
//! copy, so the default group is one per dead-letter topic and reason. A
//! dead letter whose value was too large to copy (`velostream.dlq.value_bytes`)
//! is copied from the source topic at its recorded offset; when that offset
//! is gone (retention) it is reported and committed past.
//!
//! The read ends at the dead-letter topic's end as it was at the start, so
//! a copy that fails again and is dead-lettered again is left for the next
//! replay. One replay per group at a time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;

use super::letter::{replay_headers, replay_of};
use super::list::existing_partitions;
use super::{at_of, headers_of, At, Letter};
use crate::kafka::admin::METADATA_TIMEOUT;
use crate::kafka::read::{self, BoundedReader, Seek};
use crate::kafka::KafkaArgs;
use crate::{Error, Result};

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub kafka: KafkaArgs,
    /// The dead-letter topic.
    pub dlq_topic: String,
    /// Copy here instead of each letter's source topic.
    pub to_topic: Option<String>,
    /// Only dead letters of this reason.
    pub reason: Option<String>,
    /// The replay's consumer group.
    pub group: String,
    /// Pause after each acknowledged copy, before its commit (crash tests
    /// use it to stop the process in that window).
    pub pause_after_copy: Duration,
}

impl ReplayOptions {
    /// The default group: one per dead-letter topic and reason.
    pub fn default_group(dlq_topic: &str, reason: Option<&str>) -> String {
        match reason {
            Some(r) => format!("velostream-dlq-replay.{dlq_topic}.{r}"),
            None => format!("velostream-dlq-replay.{dlq_topic}"),
        }
    }
}

/// What a replay did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ReplaySummary {
    /// Dead letters read.
    pub read: u64,
    /// Copies made by this run.
    pub copied: u64,
    /// Copies an interrupted run had made (found at start, not made again).
    pub recovered: u64,
    /// Not selected by `--reason`.
    pub skipped: u64,
    /// Second dead letters of a source message copied earlier in this run
    /// (a consumer crash between a dead-letter copy and its commit).
    pub duplicates: u64,
    /// Not replayable: the dead letter and why.
    pub not_replayed: Vec<String>,
}

/// Replays per `opts` until the dead-letter topic's end (as it was at the
/// start) or until `stop` is set. Blocking.
pub fn replay(opts: &ReplayOptions, stop: &AtomicBool) -> Result<ReplaySummary> {
    let partitions = existing_partitions(&opts.kafka, &opts.dlq_topic)?;
    let mut run = Run::new(opts)?;
    let committed = run.group.committed(&opts.dlq_topic, 0..partitions as i32)?;
    let mut positions: BTreeMap<i32, i64> = (0..partitions as i32)
        .map(|q| (q, committed.get(&q).copied().unwrap_or(0)))
        .collect();
    for (&q, position) in positions.iter_mut() {
        run.recover(q, position)?;
    }
    let starts: Vec<(i32, i64)> = positions.into_iter().collect();
    let mut reader =
        BoundedReader::open(&opts.kafka, &opts.dlq_topic, &starts, Seek::FromLogStart)?;
    while !stop.load(Ordering::SeqCst) {
        let Some(m) = reader.next_message()? else {
            break;
        };
        run.replay_one(&m)?;
        run.group
            .commit(&opts.dlq_topic, m.partition(), m.offset() + 1)?;
    }
    Ok(run.summary)
}

/// One replay's clients and bookkeeping.
struct Run<'a> {
    opts: &'a ReplayOptions,
    group: GroupOffsets,
    producer: FutureProducer,
    rt: tokio::runtime::Runtime,
    /// Destination partitions marked (step 1) in this run.
    marked: HashSet<(String, i32)>,
    partition_counts: HashMap<String, usize>,
    /// Source messages copied in this run.
    copied_sources: HashSet<At>,
    summary: ReplaySummary,
}

impl<'a> Run<'a> {
    fn new(opts: &'a ReplayOptions) -> Result<Self> {
        let mut c = opts.kafka.client_config()?;
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.max.bytes", "33554432")
            .set("message.timeout.ms", "30000");
        opts.kafka.apply_overrides(&mut c)?;
        let producer = c
            .create()
            .map_err(|e| Error::kafka("creating the replay producer", e))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the async runtime", e))?;
        Ok(Run {
            opts,
            group: GroupOffsets::new(&opts.kafka, &opts.group)?,
            producer,
            rt,
            marked: HashSet::new(),
            partition_counts: HashMap::new(),
            copied_sources: HashSet::new(),
            summary: ReplaySummary::default(),
        })
    }

    /// Recovery for dead-letter partition `q` at `position` (the protocol's
    /// uncertain letter): when its copy exists, commits past it.
    fn recover(&mut self, q: i32, position: &mut i64) -> Result<()> {
        let dlq = &self.opts.dlq_topic;
        let Some(m) =
            BoundedReader::open(&self.opts.kafka, dlq, &[(q, *position)], Seek::FromLogStart)?
                .next_message()?
        else {
            return Ok(());
        };
        let letter = letter_of(&m);
        let Ok(dest) = self.destination(&letter) else {
            return Ok(());
        };
        let Some(&mark) = self.group.committed(&dest.0, [dest.1])?.get(&dest.1) else {
            return Ok(());
        };
        let mut scan = BoundedReader::open(&self.opts.kafka, &dest.0, &[(dest.1, mark)], Seek::At)?;
        while let Some(copy) = scan.next_message()? {
            if replay_of(&headers_of(&copy)).as_ref() == Some(&letter.at) {
                tracing::info!(
                    "recovered: dead letter {} was copied to {}/{}/{} before a restart",
                    letter.at,
                    dest.0,
                    dest.1,
                    copy.offset()
                );
                *position = m.offset() + 1;
                self.group.commit(dlq, q, *position)?;
                self.summary.recovered += 1;
                self.summary.read += 1;
                return Ok(());
            }
        }
        Ok(())
    }

    /// Copies one dead letter when selected and replayable.
    fn replay_one(&mut self, m: &OwnedMessage) -> Result<()> {
        self.summary.read += 1;
        let letter = letter_of(m);
        if !letter.selected_by(self.opts.reason.as_deref()) {
            self.summary.skipped += 1;
            return Ok(());
        }
        if letter
            .source
            .as_ref()
            .is_some_and(|s| self.copied_sources.contains(s))
        {
            tracing::info!(
                "dead letter {} is a second one of a source message copied already",
                letter.at
            );
            self.summary.duplicates += 1;
            return Ok(());
        }
        let copy = self
            .destination(&letter)
            .and_then(|dest| Ok((dest, self.original_value(&letter, m)?)));
        let (dest, value) = match copy {
            Ok(c) => c,
            Err(why) => {
                tracing::warn!("dead letter {} not replayed: {why}", letter.at);
                self.summary
                    .not_replayed
                    .push(format!("{}: {why}", letter.at));
                return Ok(());
            }
        };
        if self.marked.insert(dest.clone()) {
            self.mark(&dest)?;
        }
        let offset = self.send(&dest, &value, &replay_headers(&headers_of(m), &letter.at))?;
        tracing::info!(
            "copied dead letter {} to {}/{}/{offset}",
            letter.at,
            dest.0,
            dest.1
        );
        self.summary.copied += 1;
        self.copied_sources.extend(letter.source.clone());
        std::thread::sleep(self.opts.pause_after_copy);
        Ok(())
    }

    /// The topic and partition a letter's copy goes to: its source
    /// partition (modulo the destination's partition count).
    fn destination(&mut self, letter: &Letter) -> std::result::Result<(String, i32), String> {
        let source = letter
            .source
            .as_ref()
            .ok_or("it has no velostream.dlq.topic/partition/offset headers")?;
        let topic = self.opts.to_topic.clone().unwrap_or(source.topic.clone());
        let count = match self.partition_counts.get(&topic) {
            Some(&n) => n,
            None => {
                let n = existing_partitions(&self.opts.kafka, &topic).map_err(|e| e.to_string())?;
                self.partition_counts.insert(topic.clone(), n);
                n
            }
        };
        let partition = source.partition.rem_euclid(count as i32);
        Ok((topic, partition))
    }

    /// The value to copy: the dead letter's, or the original's from the
    /// source topic when it was too large to be copied into the letter.
    fn original_value(
        &self,
        letter: &Letter,
        m: &OwnedMessage,
    ) -> std::result::Result<Vec<u8>, String> {
        if letter.copied {
            return Ok(m.payload().unwrap_or_default().to_vec());
        }
        let source = letter.source.as_ref().ok_or("no source recorded")?;
        let fetched = BoundedReader::open(
            &self.opts.kafka,
            &source.topic,
            &[(source.partition, source.offset)],
            Seek::At,
        )
        .and_then(|mut r| r.next_message())
        .map_err(|e| format!("its original {source} could not be read: {e}"))?;
        match fetched {
            Some(o) if o.offset() == source.offset => Ok(o.payload().unwrap_or_default().to_vec()),
            _ => Err(format!(
                "its value was too large to copy and the original {source} is gone (retention)"
            )),
        }
    }

    /// Step 1: commits the destination partition's watermark in the group.
    fn mark(&self, (topic, partition): &(String, i32)) -> Result<()> {
        let high = read::high_watermark(&self.opts.kafka, topic, *partition)?;
        self.group.commit(topic, *partition, high)
    }

    /// Step 2: sends a copy and waits for its acknowledgement; returns its offset.
    fn send(
        &self,
        (topic, partition): &(String, i32),
        value: &[u8],
        headers: &[(String, Vec<u8>)],
    ) -> Result<i64> {
        let mut h = OwnedHeaders::new_with_capacity(headers.len());
        for (k, v) in headers {
            h = h.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        let record: FutureRecord<'_, (), [u8]> = FutureRecord::to(topic)
            .partition(*partition)
            .payload(value)
            .headers(h);
        let delivery = self
            .rt
            .block_on(self.producer.send(record, Duration::from_secs(30)))
            .map_err(|(e, _)| {
                Error::kafka(format!("copying to {topic:?} partition {partition}"), e)
            })?;
        Ok(delivery.offset)
    }
}

fn letter_of(m: &OwnedMessage) -> Letter {
    Letter::new(at_of(m), m.payload().map_or(0, <[u8]>::len), &headers_of(m))
}

/// The replay group's committed offsets: a client with the group's id that
/// never joins it (no subscription), so commits need no membership.
struct GroupOffsets {
    consumer: BaseConsumer,
    group: String,
}

impl GroupOffsets {
    fn new(kafka: &KafkaArgs, group: &str) -> Result<Self> {
        let mut c = kafka.client_config()?;
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        kafka.apply_overrides(&mut c)?;
        let consumer = c
            .create()
            .map_err(|e| Error::kafka(format!("creating a client for group {group:?}"), e))?;
        Ok(GroupOffsets {
            consumer,
            group: group.to_string(),
        })
    }

    /// The committed offset of each of `partitions` of `topic`; a partition
    /// without one starts at 0 (the log start, when the reader asks).
    fn committed(
        &self,
        topic: &str,
        partitions: impl IntoIterator<Item = i32>,
    ) -> Result<BTreeMap<i32, i64>> {
        let mut tpl = TopicPartitionList::new();
        let partitions: Vec<i32> = partitions.into_iter().collect();
        for &p in &partitions {
            tpl.add_partition(topic, p);
        }
        let got = self
            .consumer
            .committed_offsets(tpl, METADATA_TIMEOUT)
            .map_err(|e| {
                Error::kafka(
                    format!("committed offsets of group {:?} on {topic:?}", self.group),
                    e,
                )
            })?;
        Ok(partitions
            .into_iter()
            .filter_map(|p| match got.find_partition(topic, p)?.offset() {
                Offset::Offset(n) => Some((p, n)),
                _ => None,
            })
            .collect())
    }

    fn commit(&self, topic: &str, partition: i32, offset: i64) -> Result<()> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
            .and_then(|()| self.consumer.commit(&tpl, CommitMode::Sync))
            .map_err(|e| {
                Error::kafka(
                    format!(
                        "committing {topic:?} partition {partition} offset {offset} for group {:?}",
                        self.group
                    ),
                    e,
                )
            })
    }
}
