//! `bench --rate ROWS_PER_S --duration SECS`: a live stream, not a
//! backlog. After the backlog run, a steady stream of taxi rows is produced
//! at the given rate (or a percentage of the backlog's end-to-end rate in
//! the same run) into a new topic, consumed with the run's consumer
//! settings, and each message's end-to-end latency is measured: from
//! Kafka's acknowledgement of the message to the first poll that finds its
//! rows in ClickHouse.
//!
//! How it is measured: every message carries its sequence number in a
//! `message_seq` column; a poller asks every server for the sequence numbers
//! it holds from the lowest one not yet seen, every [`POLL_EVERY`]. A
//! latency is therefore exact to one poll interval (it can be over-stated by
//! at most that), and includes the producer's delivery report. The table
//! must end with every row produced (validated by count).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};
use velostream_codecs::ipc::IpcEncoder;

use super::latency::{quantile, Visibility};
use super::pipeline::{self, Consumers, RunSpec};
use super::shards::Servers;
use crate::{Error, Result};

/// How often ClickHouse is asked which messages it holds.
pub const POLL_EVERY: Duration = Duration::from_millis(50);
/// Messages produced per second (the rows per message follow the rate).
const MESSAGES_PER_S: f64 = 20.0;
/// How long the stream may take to become visible after the last message.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);
/// The column that numbers the messages.
pub const SEQ_COLUMN: &str = "message_seq";

/// The steady rate: rows per second, or a share of the backlog's
/// end-to-end rate measured earlier in the same run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    RowsPerS(f64),
    OfBacklog(f64),
}

impl Rate {
    /// `200000` or `25%`.
    pub fn parse(s: &str) -> std::result::Result<Rate, String> {
        let bad = || {
            format!("--rate {s:?}: expected rows per second (200000) or a share of the backlog's end-to-end rate (25%)")
        };
        match s.strip_suffix('%') {
            Some(p) => match p.trim().parse::<f64>() {
                Ok(p) if p > 0.0 && p.is_finite() => Ok(Rate::OfBacklog(p / 100.0)),
                _ => Err(bad()),
            },
            None => match s.trim().parse::<f64>() {
                Ok(r) if r >= 1.0 && r.is_finite() => Ok(Rate::RowsPerS(r)),
                _ => Err(bad()),
            },
        }
    }

    /// Rows per second, given the backlog's end-to-end rate.
    pub fn rows_per_s(self, backlog_rows_per_s: f64) -> f64 {
        match self {
            Rate::RowsPerS(r) => r,
            Rate::OfBacklog(share) => (backlog_rows_per_s * share).max(1.0),
        }
    }
}

/// What the freshness phase measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Freshness {
    pub rate_rows_per_s: f64,
    /// The share of the backlog's end-to-end rate, when given as one.
    pub share_of_backlog: Option<f64>,
    pub seconds: f64,
    pub messages: u64,
    pub rows: u64,
    /// Rows in the table at the end (must equal `rows`).
    pub rows_clickhouse: u64,
    pub latency_p50_s: f64,
    pub latency_p99_s: f64,
    pub latency_max_s: f64,
    pub poll_interval_s: f64,
    pub peak_lag_rows: u64,
    /// (seconds since the stream started, rows acknowledged by Kafka and not
    /// yet visible in ClickHouse), every 250 ms.
    pub lag: Vec<(f64, u64)>,
}

/// Streams at `rate` rows/s for `duration` through `spec`'s topic and table
/// (the table is created by the consumers with a [`SEQ_COLUMN`]).
pub async fn run(
    spec: &RunSpec,
    rate: f64,
    share_of_backlog: Option<f64>,
    duration: Duration,
) -> Result<Freshness> {
    let servers = Servers::new(&spec.topology, &spec.clickhouse)?;
    let partitions = pipeline::provision(spec, &servers).await?;
    let rows_per_message = ((rate / MESSAGES_PER_S).round() as usize).max(1);
    let base = crate::gen::sample_batch(rows_per_message, 0x5eed_f7e5)?;
    let schema = with_seq(base.schema().as_ref());
    let mut consumers = Consumers::start(spec, Arc::clone(&schema));
    consumers.wait_until_assigned(partitions).await;
    let messages = ((duration.as_secs_f64() * rate) / rows_per_message as f64).ceil() as u64;
    eprintln!(
        "bench: freshness: {rate:.0} rows/s for {duration:?}: {messages} messages of {rows_per_message} rows"
    );
    let visibility = Arc::new(Mutex::new(Visibility::default()));
    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let producer = tokio::spawn(produce_steadily(
        spec.clone(),
        Stream {
            base,
            schema,
            partitions,
            messages,
            interval: Duration::from_secs_f64(rows_per_message as f64 / rate),
        },
        Arc::clone(&visibility),
        started,
        Arc::clone(&done),
        Arc::clone(&sent),
    ));
    let watched = watch(&servers, spec, &mut consumers, &visibility, started, &done).await;
    let produced = producer
        .await
        .map_err(|e| Error::Interrupted(format!("the freshness producer panicked: {e}")))?;
    let stopped = consumers.stop().await;
    let lag = watched?;
    produced?;
    stopped?;
    let rows_clickhouse = servers.count_rows(&spec.table).await?;
    let rows = messages * rows_per_message as u64;
    if rows_clickhouse != rows {
        return Err(Error::Validation(format!(
            "freshness: {rows_clickhouse} rows in {} where {rows} were produced",
            spec.table
        )));
    }
    let latencies = lock(&visibility).latencies();
    Ok(Freshness {
        rate_rows_per_s: rate,
        share_of_backlog,
        seconds: started.elapsed().as_secs_f64(),
        messages,
        rows,
        rows_clickhouse,
        latency_p50_s: quantile(&latencies, 0.5),
        latency_p99_s: quantile(&latencies, 0.99),
        latency_max_s: quantile(&latencies, 1.0),
        poll_interval_s: POLL_EVERY.as_secs_f64(),
        peak_lag_rows: lag.iter().map(|(_, l)| *l).max().unwrap_or(0),
        lag,
    })
}

/// `schema` with the message number appended.
fn with_seq(schema: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(SEQ_COLUMN, DataType::Int64, false));
    Arc::new(Schema::new(fields))
}

/// The messages to send.
struct Stream {
    base: RecordBatch,
    schema: SchemaRef,
    partitions: usize,
    messages: u64,
    interval: Duration,
}

/// Sends message `i` at `started + i × interval` (round-robin over the
/// partitions), recording each acknowledgement.
async fn produce_steadily(
    spec: RunSpec,
    stream: Stream,
    visibility: Arc<Mutex<Visibility>>,
    started: Instant,
    done: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> Result<()> {
    let mut client = spec.kafka.client_config()?;
    client.set("linger.ms", "0");
    let producer: FutureProducer = client.create().map_err(|e| Error::Kafka {
        context: format!("creating the freshness producer for {}", spec.kafka.brokers),
        source: e,
    })?;
    let mut encoder = IpcEncoder::new(spec.producer.ipc_compression)?
        .with_lz4_min_ratio(spec.producer.lz4_min_ratio);
    let mut acks = Vec::new();
    for seq in 0..stream.messages {
        tokio::time::sleep_until((started + stream.interval.mul_f64(seq as f64)).into()).await;
        let rows = stream.base.num_rows();
        let mut columns = stream.base.columns().to_vec();
        columns.push(Arc::new(Int64Array::from(vec![seq as i64; rows])));
        let batch = RecordBatch::try_new(Arc::clone(&stream.schema), columns).map_err(|e| {
            Error::Arrow {
                context: "building a freshness message".into(),
                source: e,
            }
        })?;
        let value = encoder.encode(&stream.schema, &[batch])?;
        let (producer, topic, visibility) = (
            producer.clone(),
            spec.topic.clone(),
            Arc::clone(&visibility),
        );
        let partition = (seq % stream.partitions as u64) as i32;
        sent.fetch_add(1, Ordering::Relaxed);
        acks.push(tokio::spawn(async move {
            let record = FutureRecord::<(), [u8]>::to(&topic)
                .partition(partition)
                .payload(&value);
            match producer.send(record, Duration::from_secs(30)).await {
                Ok(_) => {
                    let at = started.elapsed().as_secs_f64();
                    lock(&visibility).acked(seq, rows as u64, at);
                    Ok(())
                }
                Err((e, _)) => Err(Error::Delivery(format!(
                    "freshness message {seq} to {topic}/{partition}: {e}"
                ))),
            }
        }));
    }
    let mut result = Ok(());
    for a in acks {
        let r = a
            .await
            .map_err(|e| Error::Interrupted(format!("a freshness send panicked: {e}")))
            .and_then(|r| r);
        result = result.and(r);
    }
    done.store(true, Ordering::SeqCst);
    result
}

/// Polls the servers until every acknowledged message is visible (after
/// the producer is done); returns the lag samples.
async fn watch(
    servers: &Servers,
    spec: &RunSpec,
    consumers: &mut Consumers,
    visibility: &Arc<Mutex<Visibility>>,
    started: Instant,
    done: &AtomicBool,
) -> Result<Vec<(f64, u64)>> {
    let mut lag = Vec::new();
    let mut next_sample = 0.0;
    let mut drain_deadline: Option<Instant> = None;
    loop {
        if let Some(why) = consumers.failure().await {
            return Err(Error::Validation(format!(
                "freshness: a consumer failed: {why}"
            )));
        }
        let low = lock(visibility).lowest_unseen();
        let seen = visible_since(servers, spec, low).await;
        let now = started.elapsed().as_secs_f64();
        {
            let mut v = lock(visibility);
            for seq in seen {
                v.seen(seq, now);
            }
            if now >= next_sample {
                lag.push((now, v.lag_rows()));
                next_sample = now + 0.25;
            }
            if done.load(Ordering::SeqCst) && v.all_seen() {
                return Ok(lag);
            }
        }
        if done.load(Ordering::SeqCst) {
            let deadline = *drain_deadline.get_or_insert_with(|| Instant::now() + DRAIN_TIMEOUT);
            if Instant::now() > deadline {
                let unseen = lock(visibility).unseen();
                return Err(Error::Validation(format!(
                    "freshness: {} acknowledged messages not visible in {} {DRAIN_TIMEOUT:?} after the last one (first: {:?})",
                    unseen.len(),
                    spec.table,
                    unseen.iter().take(5).collect::<Vec<_>>()
                )));
            }
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// The message numbers from `low` up that the servers hold (none while
/// the table does not exist yet).
async fn visible_since(servers: &Servers, spec: &RunSpec, low: u64) -> Vec<u64> {
    let Ok(table) = spec.table.sql() else {
        return Vec::new();
    };
    let sql =
        format!("SELECT DISTINCT {SEQ_COLUMN} FROM {table} WHERE {SEQ_COLUMN} >= {low} FORMAT TSV");
    let mut seen = Vec::new();
    for ch in servers.all() {
        if let Ok(text) = ch.query_tsv(&sql).await {
            seen.extend(text.lines().filter_map(|l| l.trim().parse::<u64>().ok()));
        }
    }
    seen
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_as_rows_or_a_share_of_the_backlog() {
        assert_eq!(Rate::parse("200000"), Ok(Rate::RowsPerS(200_000.0)));
        assert_eq!(Rate::parse("25%"), Ok(Rate::OfBacklog(0.25)));
        assert_eq!(Rate::parse("25%").unwrap().rows_per_s(800_000.0), 200_000.0);
        for bad in ["", "0", "-5", "x%", "0%", "fast"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
    }
}
