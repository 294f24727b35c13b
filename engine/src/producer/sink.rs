//! Sends encoded messages to Kafka and accounts for every delivery.
//!
//! librdkafka reports each message's fate in a delivery callback; the run
//! is complete only when every message sent has been reported. The summary
//! counts acknowledged rows, messages and bytes; any message not
//! acknowledged turns the run into an error with exact counts.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use super::config::ProducerConfig;
use super::workers::{Item, Message, Ordered, Payload};
use crate::metrics as m;
use crate::progress::Progress;
use crate::{Error, Result};

/// How long the final flush may wait for outstanding deliveries.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);

/// What a producer run achieved (acknowledged counts only).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ProduceSummary {
    pub rows: u64,
    pub messages: u64,
    /// Arrow in-memory bytes of the rows produced.
    pub raw_bytes: u64,
    /// Message value bytes acknowledged by Kafka.
    pub wire_bytes: u64,
    pub row_groups: usize,
    pub elapsed_secs: f64,
}

impl ProduceSummary {
    /// Rows per second over the run.
    pub fn rows_per_sec(&self) -> f64 {
        self.rows as f64 / self.elapsed_secs.max(1e-9)
    }

    /// One human line for the terminal.
    pub fn line(&self) -> String {
        format!(
            "produced {} rows in {} messages from {} row groups in {:.2}s: {:.0} rows/s, {:.1} MB/s on the wire, \
             {:.1} bytes/row (uncompressed {:.1} bytes/row, ratio {:.2})",
            self.rows,
            self.messages,
            self.row_groups,
            self.elapsed_secs,
            self.rows_per_sec(),
            self.wire_bytes as f64 / self.elapsed_secs.max(1e-9) / 1e6,
            self.wire_bytes as f64 / self.rows.max(1) as f64,
            self.raw_bytes as f64 / self.rows.max(1) as f64,
            self.raw_bytes as f64 / self.wire_bytes.max(1) as f64,
        )
    }
}

#[derive(Debug, Default)]
struct Stats {
    acked_messages: AtomicU64,
    acked_rows: AtomicU64,
    acked_bytes: AtomicU64,
    acked_raw: AtomicU64,
    failed_messages: AtomicU64,
    failed_rows: AtomicU64,
    first_error: Mutex<Option<String>>,
}

#[derive(Debug)]
struct Pending {
    rows: u64,
    bytes: u64,
    raw: u64,
    sent: Instant,
}

struct Ctx {
    stats: Arc<Stats>,
}

impl ClientContext for Ctx {}

impl ProducerContext for Ctx {
    type DeliveryOpaque = Box<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, p: Box<Pending>) {
        let s = &self.stats;
        match result {
            Ok(_) => {
                s.acked_messages.fetch_add(1, Ordering::Relaxed);
                s.acked_rows.fetch_add(p.rows, Ordering::Relaxed);
                s.acked_bytes.fetch_add(p.bytes, Ordering::Relaxed);
                s.acked_raw.fetch_add(p.raw, Ordering::Relaxed);
                metrics::counter!(m::PRODUCER_MESSAGES).increment(1);
                metrics::counter!(m::PRODUCER_ROWS).increment(p.rows);
                metrics::counter!(m::PRODUCER_WIRE_BYTES).increment(p.bytes);
                metrics::counter!(m::PRODUCER_RAW_BYTES).increment(p.raw);
                metrics::histogram!(m::PRODUCER_MESSAGE_SIZE).record(p.bytes as f64);
                metrics::histogram!(m::PRODUCER_SEND_LATENCY)
                    .record(p.sent.elapsed().as_secs_f64());
            }
            Err((e, msg)) => {
                s.failed_messages.fetch_add(1, Ordering::Relaxed);
                s.failed_rows.fetch_add(p.rows, Ordering::Relaxed);
                metrics::counter!(m::PRODUCER_ERRORS, "kind" => "delivery").increment(1);
                let mut first = s.first_error.lock().unwrap_or_else(|e| e.into_inner());
                if first.is_none() {
                    use rdkafka::Message as _;
                    *first = Some(format!("partition {}: {e}", msg.partition()));
                }
            }
        }
    }
}

/// Sends everything `ordered` yields; returns when all deliveries are known.
/// Long: the send loop and the delivery accounting share the counters the summary and the error are made of.
pub(super) fn send_all(
    config: &ProducerConfig,
    partitions: usize,
    mut ordered: Ordered,
    stop: &AtomicBool,
    progress: &Progress,
) -> Result<ProduceSummary> {
    let started = Instant::now();
    let stats = Arc::new(Stats::default());
    let producer = create(config, Arc::clone(&stats))?;
    let partitions = i32::try_from(partitions.max(1)).unwrap_or(i32::MAX);
    let mut next_partition = 0i32;
    let mut sent_messages = 0u64;
    let mut sent_rows = 0u64;
    let mut shown_rows = 0u64;
    let mut shown_bytes = 0u64;
    let mut failure: Option<Error> = None;
    let mut interrupted = false;

    while let Some(item) = ordered.next() {
        if stop.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        if stats.failed_messages.load(Ordering::Relaxed) > 0 {
            // A message was lost: sending more only delays the error
            // (each further message waits out message.timeout.ms too).
            break;
        }
        let msg = match item {
            Item::Message(msg) => msg,
            Item::Failed(e) => {
                failure = Some(e);
                break;
            }
            Item::RowGroupDone => continue,
        };
        let mut sent = Sent {
            messages: &mut sent_messages,
            rows: &mut sent_rows,
        };
        if let Err(e) = send_message(
            &producer,
            config,
            msg,
            partitions,
            &mut next_partition,
            stop,
            &mut sent,
        ) {
            failure = Some(e);
            break;
        }
        let rows_now = stats.acked_rows.load(Ordering::Relaxed);
        let bytes_now = stats.acked_bytes.load(Ordering::Relaxed);
        progress.inc(rows_now - shown_rows, bytes_now - shown_bytes);
        (shown_rows, shown_bytes) = (rows_now, bytes_now);
    }
    let row_groups = ordered.row_groups();
    drop(ordered);

    // Wait for every outstanding delivery report.
    let flushed = producer.flush(FLUSH_TIMEOUT);
    let acked = stats.acked_messages.load(Ordering::Relaxed);
    let failed = stats.failed_messages.load(Ordering::Relaxed);
    let summary = ProduceSummary {
        rows: stats.acked_rows.load(Ordering::Relaxed),
        messages: acked,
        raw_bytes: stats.acked_raw.load(Ordering::Relaxed),
        wire_bytes: stats.acked_bytes.load(Ordering::Relaxed),
        row_groups,
        elapsed_secs: started.elapsed().as_secs_f64(),
    };
    progress.inc(summary.rows - shown_rows, summary.wire_bytes - shown_bytes);
    if acked + failed != sent_messages || failed > 0 || flushed.is_err() {
        let first = stats
            .first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| "no delivery report within the flush timeout".into());
        return Err(Error::Delivery(format!(
            "{} of {sent_messages} messages ({} of {sent_rows} rows) were not acknowledged by {} \
             (first error: {first}); {acked} messages with {} rows were acknowledged",
            sent_messages - acked,
            sent_rows - summary.rows,
            config.kafka.brokers,
            summary.rows
        )));
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if interrupted {
        return Err(Error::Interrupted(format!(
            "stopped after {} rows in {} messages, all acknowledged",
            summary.rows, summary.messages
        )));
    }
    Ok(summary)
}

fn create(config: &ProducerConfig, stats: Arc<Stats>) -> Result<ThreadedProducer<Ctx>> {
    let mut c = config.kafka.client_config()?;
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", config.linger_ms.to_string())
        .set("compression.type", &config.kafka_compression)
        .set(
            "message.max.bytes",
            (config.max_message_bytes + 65_536)
                .max(1_000_000)
                .to_string(),
        )
        .set(
            "batch.size",
            (config.max_message_bytes * 2).max(1_000_000).to_string(),
        )
        .set("queue.buffering.max.kbytes", "262144")
        .set("queue.buffering.max.messages", "1000000")
        .set("message.timeout.ms", "60000")
        // Connect to every broker at once. With sparse connections the
        // idempotent producer finds no broker up, then waits for its 500 ms
        // PID timer twice before the first send: about a second of start-up
        // on every run (measured: 300k rows in 1.10 s → 0.20 s on tansu).
        .set("enable.sparse.connections", "false");
    if config.format == super::config::MessageFormat::Arrow {
        // One record per produce batch. Arrow messages are large, so this
        // costs nothing measurable, and it keeps every committed offset on a
        // batch boundary: tansu 0.6 skips the rest of a batch when a fetch
        // starts inside it (resume after a rebalance or restart) and reports
        // wrong high watermarks for multi-record batches.
        c.set("batch.num.messages", "1");
    }
    config.kafka.apply_overrides(&mut c)?;
    c.create_with_context(Ctx { stats }).map_err(|e| {
        Error::kafka(
            format!("creating a producer for {}", config.kafka.brokers),
            e,
        )
    })
}

/// Counters of what was handed to librdkafka.
struct Sent<'a> {
    messages: &'a mut u64,
    rows: &'a mut u64,
}

/// Sends one work item (one Arrow message, or one JSON message per row),
/// counting each record handed to librdkafka in `sent`.
fn send_message(
    producer: &ThreadedProducer<Ctx>,
    config: &ProducerConfig,
    msg: Message,
    partitions: i32,
    next_partition: &mut i32,
    stop: &AtomicBool,
    sent: &mut Sent<'_>,
) -> Result<()> {
    let mut pick = |fixed: Option<i32>| {
        fixed.unwrap_or_else(|| {
            let p = *next_partition;
            *next_partition = (p + 1) % partitions;
            p
        })
    };
    match &msg.payload {
        Payload::Arrow(bytes) => {
            let mut headers = OwnedHeaders::new_with_capacity(6);
            if let Some(env) = &msg.envelope {
                for (k, v) in env.to_headers() {
                    headers = headers.insert(Header {
                        key: k,
                        value: Some(&v),
                    });
                }
            }
            let pending = Box::new(Pending {
                rows: msg.rows,
                bytes: bytes.len() as u64,
                raw: msg.raw_bytes,
                sent: Instant::now(),
            });
            let record =
                BaseRecord::<(), [u8], Box<Pending>>::with_opaque_to(&config.topic, pending)
                    .payload(bytes.as_slice())
                    .partition(pick(msg.partition))
                    .headers(headers);
            enqueue(producer, record, stop)?;
            *sent.messages += 1;
            *sent.rows += msg.rows;
            Ok(())
        }
        Payload::JsonRows { data, ends } => {
            let raw_each = msg.raw_bytes / msg.rows.max(1);
            let mut start = 0;
            for &end in ends {
                let pending = Box::new(Pending {
                    rows: 1,
                    bytes: (end - start) as u64,
                    raw: raw_each,
                    sent: Instant::now(),
                });
                let record =
                    BaseRecord::<(), [u8], Box<Pending>>::with_opaque_to(&config.topic, pending)
                        .payload(&data[start..end])
                        .partition(pick(msg.partition));
                enqueue(producer, record, stop)?;
                *sent.messages += 1;
                *sent.rows += 1;
                start = end;
            }
            Ok(())
        }
    }
}

/// Hands a record to librdkafka, waiting while its queue is full.
fn enqueue<'a>(
    producer: &ThreadedProducer<Ctx>,
    mut record: BaseRecord<'a, (), [u8], Box<Pending>>,
    stop: &AtomicBool,
) -> Result<()> {
    let mut waited = Duration::ZERO;
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                if producer
                    .context()
                    .stats
                    .failed_messages
                    .load(Ordering::Relaxed)
                    > 0
                {
                    return Err(Error::Delivery(
                        "stopped sending after a delivery failure".into(),
                    ));
                }
                if waited > Duration::from_secs(60) && stop.load(Ordering::Relaxed) {
                    return Err(Error::Interrupted("local queue full while stopping".into()));
                }
                std::thread::sleep(Duration::from_millis(1));
                waited += Duration::from_millis(1);
            }
            Err((e, back)) => {
                metrics::counter!(m::PRODUCER_ERRORS, "kind" => "enqueue").increment(1);
                return Err(Error::kafka(
                    format!(
                        "sending to topic {:?} partition {:?}",
                        back.topic, back.partition
                    ),
                    e,
                ));
            }
        }
    }
}
