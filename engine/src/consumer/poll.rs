//! The consumer thread: polls Kafka, decodes messages, routes them to the
//! lanes, commits stored offsets and publishes lag.
//!
//! Backpressure: when a lane's channel is full (ClickHouse is slow or away)
//! the message waits in a local queue and the thread stops polling until the
//! lane accepts it again; librdkafka's prefetch is bounded by
//! `queued.max.messages.kbytes`, so memory stays bounded by the lane depth,
//! the insert size and the prefetch limit. Group membership is kept alive by
//! librdkafka's own threads; a stall longer than `max.poll.interval.ms`
//! (10 minutes) makes the member leave the group and rejoin afterwards.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::Message;
use tokio::sync::mpsc::error::TrySendError;
use velostream_codecs::envelope::Envelope;
use velostream_codecs::ipc;
use velostream_codecs::CodecError;

use super::config::{ConsumerConfig, COMMIT_INTERVAL, POLL_TIMEOUT};
use super::context::{lock, Ctx, Shared};
use super::dlq::{DeadLetters, OriginalHeaders, Reason};
use super::lane::{Item, LaneMsg, Original, Rows};
use super::pipeline::Pipeline;
use super::ConsumeSummary;
use crate::metrics as m;
use crate::producer::MessageFormat;
use crate::{Error, Result};

pub(super) struct Poller {
    pub cfg: ConsumerConfig,
    pub consumer: BaseConsumer<Ctx>,
    pub shared: Arc<Shared>,
    pub dead_letters: Option<Arc<DeadLetters>>,
    pub events_tx: std::sync::mpsc::Sender<super::lane::Event>,
    pub stop: Arc<AtomicBool>,
}

struct Stats {
    messages: u64,
    rows: u64,
    bytes: u64,
    rows_per_message: f64,
}

impl Poller {
    /// Runs until stopped, idle (if configured) or a permanent failure.
    pub fn run(self) -> Result<ConsumeSummary> {
        let started = Instant::now();
        let mut pipeline: Option<Pipeline> = None;
        if self.cfg.format == MessageFormat::JsonRows || self.cfg.input_schema.is_some() {
            pipeline = Some(self.start_pipeline(self.cfg.input_schema.clone())?);
        }
        let mut stash: VecDeque<Item> = VecDeque::new();
        let mut stats = Stats {
            messages: 0,
            rows: 0,
            bytes: 0,
            rows_per_message: 0.0,
        };
        let mut last_commit = Instant::now();
        let mut last_message = Instant::now();
        let result = loop {
            if self.stop.load(Ordering::Relaxed) {
                break Ok(());
            }
            if let Some(e) = lock(&self.shared.error).take() {
                break Err(e);
            }
            if let Err(e) = self.shared.drain_events() {
                break Err(e);
            }
            if last_commit.elapsed() >= COMMIT_INTERVAL {
                last_commit = Instant::now();
                if let Err(e) = self.shared.commit(&self.consumer, CommitMode::Async) {
                    tracing::warn!("commit failed (will retry): {e}");
                }
                self.publish_lag(&stats);
            }
            // Hand queued messages to their lanes, in order.
            if let Some(p) = &pipeline {
                let assigned = lock(&self.shared.assignment).clone();
                stash.retain(|i| assigned.contains(&i.partition));
                while let Some(item) = stash.pop_front() {
                    match p.lanes[p.lane_of(item.partition)].try_send(LaneMsg::Item(item)) {
                        Ok(()) => {}
                        Err(TrySendError::Full(LaneMsg::Item(item))) => {
                            stash.push_front(item);
                            break;
                        }
                        Err(_) => {
                            // The lane ended; its failure arrives as an event.
                            break;
                        }
                    }
                }
            }
            // A lane is full: wait for it without polling. librdkafka keeps
            // the group membership alive in its own threads and stops
            // prefetching at queued.max.messages.kbytes. (Pausing instead
            // would make librdkafka re-fetch from inside a record batch on
            // resume, which tansu answers by skipping the rest of the batch.)
            if !stash.is_empty() {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            let msg = match self.consumer.poll(POLL_TIMEOUT) {
                None => {
                    if let Some(idle) = self.cfg.exit_when_idle {
                        // Idle only counts once the group has assigned this
                        // member its partitions (a member waiting for a
                        // rebalance has not seen the topic yet).
                        let assigned_at = *lock(&self.shared.assigned_at);
                        let idle_since = assigned_at.map(|t| t.max(last_message));
                        if stash.is_empty() && idle_since.is_some_and(|t| t.elapsed() >= idle) {
                            break Ok(());
                        }
                    }
                    continue;
                }
                Some(Err(e)) => {
                    tracing::warn!("Kafka: {e}");
                    continue;
                }
                Some(Ok(msg)) => msg,
            };
            last_message = Instant::now();
            let item = match self.to_item(&msg, &mut pipeline, &mut stats) {
                Ok(item) => item,
                Err(e) => break Err(e),
            };
            stash.push_back(item);
        };
        let shutdown = self.shutdown(pipeline, stash.len());
        let result = result.and(shutdown);
        let rows_inserted = *lock(&self.shared.rows_stored);
        result.map(|()| ConsumeSummary {
            messages: stats.messages,
            rows_consumed: stats.rows,
            bytes_consumed: stats.bytes,
            rows_inserted,
            // Also those dead-lettered by the lanes (transform failures).
            dead_letters: self.dead_letters.as_ref().map_or(0, |d| d.sent()),
            elapsed_secs: started.elapsed().as_secs_f64(),
        })
    }

    fn start_pipeline(&self, schema: Option<arrow_schema::SchemaRef>) -> Result<Pipeline> {
        let p = self.shared.rt.block_on(Pipeline::start(
            &self.cfg,
            &self.shared.ch,
            schema,
            self.dead_letters.clone(),
            &self.events_tx,
        ))?;
        *lock(&self.shared.lanes) = p.lanes.clone();
        Ok(p)
    }

    /// Decodes one message; poison goes to the dead-letter topic.
    ///
    /// Policies (README, "Dead letters"): a value larger than
    /// `max_message_bytes`, or whose IPC stream claims more than
    /// `max_decoded_bytes` decoded, is oversized; undecodable values and
    /// foreign schemas are poison; all three are dead-lettered with their
    /// original headers. A readable message with 0 rows (no record batch, or
    /// only empty ones) inserts nothing and its offset is committed like any
    /// other.
    fn to_item(
        &self,
        msg: &BorrowedMessage<'_>,
        pipeline: &mut Option<Pipeline>,
        stats: &mut Stats,
    ) -> Result<Item> {
        let partition = msg.partition();
        let offset = msg.offset();
        let payload = msg.payload().unwrap_or(&[]);
        stats.messages += 1;
        stats.bytes += payload.len() as u64;
        metrics::counter!(m::CONSUMER_MESSAGES).increment(1);
        metrics::counter!(m::CONSUMER_BYTES).increment(payload.len() as u64);
        let item = |rows| Item {
            partition,
            offset,
            rows,
            original: None,
        };
        if payload.len() > self.cfg.max_message_bytes {
            let why = format!(
                "oversized: the value is {} bytes, the limit (--max-message-bytes) is {}",
                payload.len(),
                self.cfg.max_message_bytes
            );
            return self
                .poison(msg, payload, Reason::Oversized, &why)
                .map(|()| item(Rows::Skip));
        }
        if self.cfg.format == MessageFormat::JsonRows {
            stats.rows += 1;
            metrics::counter!(m::CONSUMER_ROWS).increment(1);
            return Ok(item(Rows::Json(payload.to_vec())));
        }
        let limits = ipc::DecodeLimits {
            max_decompressed_bytes: self.cfg.max_decoded_bytes,
            ..ipc::DecodeLimits::default()
        };
        let decoded = match decode(msg, payload, &limits) {
            Ok(d) => d,
            Err((reason, why)) => {
                return self
                    .poison(msg, payload, reason, &why)
                    .map(|()| item(Rows::Skip))
            }
        };
        if pipeline.is_none() {
            *pipeline = Some(self.start_pipeline(Some(Arc::clone(&decoded.schema)))?);
        }
        let expected = pipeline.as_ref().and_then(|p| p.input_schema.clone());
        if let Some(expected) = expected {
            if !same_fields(&expected, &decoded.schema) {
                let why = format!(
                    "schema does not match the topic's: expected {}, got {}",
                    describe(&expected),
                    describe(&decoded.schema)
                );
                return self
                    .poison(msg, payload, Reason::SchemaMismatch, &why)
                    .map(|()| item(Rows::Skip));
            }
        }
        let rows = decoded.num_rows() as u64;
        stats.rows += rows;
        stats.rows_per_message = 0.9 * stats.rows_per_message + 0.1 * rows as f64;
        metrics::counter!(m::CONSUMER_ROWS).increment(rows);
        if rows == 0 {
            return Ok(item(Rows::Skip));
        }
        // The transform runs in a lane, after this message is gone; a
        // dead letter from there is made of this copy.
        let original =
            (self.cfg.transform.is_some() && self.dead_letters.is_some()).then(|| Original {
                value: Arc::from(payload),
                headers: original_headers(msg),
            });
        Ok(Item {
            partition,
            offset,
            rows: Rows::Arrow(decoded.batches),
            original,
        })
    }

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
        self.shared
            .rt
            .block_on(dlq.send_with_reason(p, o, payload, &headers, reason, why))?;
        Ok(())
    }

    /// Lag per partition: messages between the stored offset (or the
    /// consumer's position) and the high watermark from librdkafka's
    /// statistics, and rows estimated from the observed rows per message.
    /// (tansu reports wrong high watermarks for multi-record batches; the
    /// bench therefore counts rows in ClickHouse instead of trusting this.)
    fn publish_lag(&self, stats: &Stats) {
        let assigned = lock(&self.shared.assignment).clone();
        let stored = lock(&self.shared.stored).clone();
        let high = lock(&self.shared.high_watermarks).clone();
        for p in assigned {
            let Some(high) = high.get(&p) else { continue };
            let from = stored.get(&p).copied().unwrap_or(0);
            let lag = (high - from).max(0);
            let label = p.to_string();
            metrics::gauge!(m::CONSUMER_LAG_MESSAGES, "partition" => label.clone()).set(lag as f64);
            metrics::gauge!(m::CONSUMER_LAG_ROWS, "partition" => label)
                .set(lag as f64 * stats.rows_per_message);
        }
    }

    fn shutdown(&self, pipeline: Option<Pipeline>, stashed: usize) -> Result<()> {
        if stashed > 0 {
            tracing::info!(
                stashed,
                "stopping: messages not yet handed to a lane will be read again"
            );
        }
        let mut result = Ok(());
        if let Some(p) = pipeline {
            result = self.shared.flush_lanes();
            lock(&self.shared.lanes).clear();
            drop(p.lanes);
            for t in p.tasks {
                let _ = self.shared.rt.block_on(t);
            }
            result = result.and(self.shared.drain_events());
        }
        let commit = self.shared.commit(&self.consumer, CommitMode::Sync);
        self.consumer.unsubscribe();
        result.and(commit)
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

/// Decodes a message value within `limits`; the error says why it is
/// poison.
fn decode(
    msg: &BorrowedMessage<'_>,
    payload: &[u8],
    limits: &ipc::DecodeLimits,
) -> std::result::Result<ipc::Decoded, (Reason, String)> {
    let undecodable = |why: String| (Reason::Undecodable, why);
    let envelope = match msg.headers() {
        Some(h) => Envelope::from_headers(h.iter().map(|h| (h.key, h.value)))
            .map_err(|e| undecodable(e.to_string()))?,
        None => None,
    };
    if payload.is_empty() {
        return Err(undecodable("empty message value".into()));
    }
    let decoded = ipc::decode_with_limits(payload, limits).map_err(|e| match e {
        CodecError::LimitExceeded { .. } => (
            Reason::Oversized,
            format!("oversized: {e} (--max-decoded-bytes)"),
        ),
        e => undecodable(e.to_string()),
    })?;
    if let Some(env) = envelope {
        let rows = decoded.num_rows() as u64;
        if env.rows != rows {
            return Err(undecodable(format!(
                "header says {} rows, the message holds {rows}",
                env.rows
            )));
        }
    }
    Ok(decoded)
}

/// Field names, types and nullability equal (metadata ignored).
fn same_fields(a: &arrow_schema::Schema, b: &arrow_schema::Schema) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields().iter().zip(b.fields()).all(|(x, y)| {
            x.name() == y.name()
                && x.data_type() == y.data_type()
                && x.is_nullable() == y.is_nullable()
        })
}

fn describe(s: &arrow_schema::Schema) -> String {
    let fields: Vec<String> = s
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect();
    format!("({})", fields.join(", "))
}
