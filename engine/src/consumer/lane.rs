//! An insert lane: one sequential stream of inserts into ClickHouse.
//!
//! Partition `p` is always handled by lane `p mod lanes`, and a lane runs one
//! insert at a time, so within a partition inserts happen in offset order and
//! a failed insert can never be followed by a later one of the same
//! partition. That is what makes the stored offsets of exactly-once mode
//! gap-free. Lanes coalesce messages into large inserts (rows, bytes, age,
//! or a quiet input).
//!
//! A lane is pipelined: while insert N is in flight it keeps receiving and
//! encoding insert N+1, and starts N+1 only once N has succeeded. So at most
//! two inserts' worth of rows are held per lane (one in flight, one being
//! gathered), and ClickHouse never waits for our encoder between inserts.

use std::collections::BTreeMap;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, RecordBatch, UInt32Array, UInt64Array};
use bytes::Bytes;
use tokio::sync::mpsc;
use velostream_sql::Transform;

use super::dlq::{DeadLetters, OriginalHeaders, Reason};
use super::table::{self, TablePlan};
use crate::clickhouse::{ClickHouse, InsertOptions, TableRef};
use crate::metrics as m;
use crate::{Error, Result};

/// The rows of one Kafka message, as the consumer thread hands them over.
#[derive(Debug)]
pub(super) enum Rows {
    Arrow(Vec<RecordBatch>),
    /// One JSON object (baseline format).
    Json(Vec<u8>),
    /// Nothing to insert (a 0-row or dead-lettered message); only its offset counts.
    Skip,
}

/// One consumed message.
#[derive(Debug)]
pub(super) struct Item {
    pub partition: i32,
    pub offset: i64,
    pub rows: Rows,
    /// The message as consumed, kept when a transform may still reject it
    /// (a transform and a dead-letter topic are configured): its dead
    /// letter is a copy of it.
    pub original: Option<Original>,
}

/// The value and headers of a consumed message, for its dead letter.
#[derive(Debug)]
pub(super) struct Original {
    pub value: Arc<[u8]>,
    pub headers: OriginalHeaders,
}

/// What the consumer thread sends a lane, in order.
#[derive(Debug)]
pub(super) enum LaneMsg {
    Item(Item),
    /// Insert everything received so far, then acknowledge. Travelling in
    /// the same channel as the items, it cannot overtake them.
    Flush(std_mpsc::Sender<()>),
}

/// Reports to the consumer thread.
#[derive(Debug)]
pub(super) enum Event {
    /// Everything of `partition` before `next_offset` is stored.
    Stored {
        partition: i32,
        next_offset: i64,
        rows: u64,
    },
    /// The lane stopped on a permanent error.
    Failed(Error),
}

/// What a lane needs, shared by all lanes.
#[derive(Clone, Debug)]
pub(super) struct LaneShared {
    pub ch: ClickHouse,
    pub table: TableRef,
    pub topic: String,
    /// `None` in the JSON baseline mode (JSONEachRow inserts).
    pub plan: Option<TablePlan>,
    pub transform: Option<Transform>,
    pub dead_letters: Option<Arc<DeadLetters>>,
    pub insert_rows: usize,
    pub insert_bytes: usize,
    pub max_delay: Duration,
}

#[derive(Default)]
struct Buffer {
    batches: Vec<RecordBatch>,
    json: Vec<u8>,
    rows: usize,
    bytes: usize,
    since: Option<Instant>,
    /// When the last message arrived.
    last: Option<Instant>,
    /// partition → (first offset, last offset) of the messages buffered.
    ranges: BTreeMap<i32, (i64, i64)>,
    /// partition → rows buffered.
    rows_by_partition: BTreeMap<i32, u64>,
}

/// An insert running while the lane gathers the next one.
struct InFlight {
    /// Gives the insert body back, for reuse.
    task: tokio::task::JoinHandle<Result<Bytes>>,
    /// Sent once the insert has succeeded.
    stored: Vec<Event>,
}

pub(super) struct Lane {
    pub id: usize,
    pub shared: Arc<LaneShared>,
    pub data: mpsc::Receiver<LaneMsg>,
    pub events: std_mpsc::Sender<Event>,
    /// The last insert body's allocation, reused for the next one: insert
    /// bodies are tens of MB, and a fresh allocation that size is a fresh
    /// mapping whose every page faults again (measured: about a third of
    /// the lane's CPU time).
    pub spare: Option<Vec<u8>>,
}

impl Lane {
    /// Runs until the data channel closes (after a final flush) or a
    /// permanent error, which is reported as [`Event::Failed`].
    pub async fn run(mut self) {
        if let Err(e) = self.run_inner().await {
            let _ = self.events.send(Event::Failed(e));
        }
    }

    async fn run_inner(&mut self) -> Result<()> {
        let mut buf = Buffer::default();
        let mut in_flight: Option<InFlight> = None;
        let quiet = quiet_after(self.shared.max_delay);
        loop {
            let far = Instant::now() + Duration::from_secs(3600);
            let deadline = buf.since.map_or(far, |t| t + self.shared.max_delay);
            let idle = buf.last.map_or(far, |t| t + quiet);
            let wake = deadline.min(idle);
            tokio::select! {
                // An insert finishing is reported at once (and a permanent
                // failure stops the lane at once).
                done = async { (&mut in_flight.as_mut().expect("guarded").task).await },
                    if in_flight.is_some() =>
                {
                    let f = in_flight.take().expect("guarded");
                    self.finished(done, f.stored)?;
                }
                msg = self.data.recv() => match msg {
                    Some(LaneMsg::Flush(ack)) => {
                        self.flush(&mut buf, &mut in_flight).await?;
                        self.drain(&mut in_flight).await?;
                        let _ = ack.send(());
                    }
                    Some(LaneMsg::Item(item)) => {
                        self.push(&mut buf, item).await?;
                        if buf.rows >= self.shared.insert_rows || buf.bytes >= self.shared.insert_bytes {
                            self.flush(&mut buf, &mut in_flight).await?;
                        }
                    }
                    None => {
                        self.flush(&mut buf, &mut in_flight).await?;
                        return self.drain(&mut in_flight).await;
                    }
                },
                _ = tokio::time::sleep_until(wake.into()) => {
                    self.flush(&mut buf, &mut in_flight).await?;
                }
            }
        }
    }

    async fn push(&self, buf: &mut Buffer, item: Item) -> Result<()> {
        let s = &self.shared;
        let range = buf
            .ranges
            .entry(item.partition)
            .or_insert((item.offset, item.offset));
        range.1 = item.offset;
        tracing::trace!(
            lane = self.id,
            partition = item.partition,
            offset = item.offset,
            "received"
        );
        let now = Instant::now();
        buf.since.get_or_insert(now);
        buf.last = Some(now);
        let batches = match item.rows {
            Rows::Skip => return Ok(()),
            Rows::Json(mut row) => {
                row.push(b'\n');
                buf.bytes += row.len();
                buf.rows += 1;
                *buf.rows_by_partition.entry(item.partition).or_default() += 1;
                buf.json.extend_from_slice(&row);
                return Ok(());
            }
            Rows::Arrow(batches) => batches,
        };
        let batches = match &s.transform {
            None => batches,
            Some(t) => match apply_all(t, batches).await {
                Ok(out) => out,
                Err(e) => {
                    let what = format!("transform failed: {e}");
                    return self
                        .dead_letter(item.partition, item.offset, item.original, &what)
                        .await;
                }
            },
        };
        let Some(plan) = &s.plan else {
            return Err(Error::Config(
                "Arrow message in a JSON-rows consumer".into(),
            ));
        };
        for b in batches {
            if b.num_rows() == 0 {
                continue;
            }
            let b = if plan.exactly_once {
                with_offsets(plan, &b, item.partition, item.offset)?
            } else {
                b
            };
            buf.rows += b.num_rows();
            *buf.rows_by_partition.entry(item.partition).or_default() += b.num_rows() as u64;
            buf.bytes += b.get_array_memory_size();
            buf.batches.push(b);
        }
        Ok(())
    }

    /// Copies a message the transform rejected to the dead-letter topic.
    async fn dead_letter(
        &self,
        partition: i32,
        offset: i64,
        original: Option<Original>,
        why: &str,
    ) -> Result<()> {
        let topic = &self.shared.topic;
        let Some(dlq) = &self.shared.dead_letters else {
            return Err(Error::Validation(format!(
                "topic {topic} partition {partition} offset {offset}: {why} (no --dlq-topic configured)"
            )));
        };
        // The consumer thread keeps the original whenever a transform and a
        // dead-letter topic are configured; never send a copy without it.
        let Some(original) = original else {
            return Err(Error::Validation(format!(
                "topic {topic} partition {partition} offset {offset}: {why} (the message was not kept for its dead letter)"
            )));
        };
        dlq.send_with_reason(
            partition,
            offset,
            &original.value,
            &original.headers,
            Reason::TransformFailed,
            why,
        )
        .await
    }

    /// Ends the buffer: encodes it (while the previous insert may still be
    /// running), waits for the previous insert, then starts this one.
    async fn flush(&mut self, buf: &mut Buffer, in_flight: &mut Option<InFlight>) -> Result<()> {
        let b = std::mem::take(buf);
        if b.ranges.is_empty() {
            return Ok(());
        }
        let stored: Vec<Event> = b
            .ranges
            .iter()
            .map(|(partition, (_, last))| Event::Stored {
                partition: *partition,
                next_offset: last + 1,
                rows: b.rows_by_partition.get(partition).copied().unwrap_or(0),
            })
            .collect();
        let body = if b.rows > 0 {
            Some(self.encode(b.batches, b.json).await?)
        } else {
            None
        };
        // Inserts of one lane never overlap: a later insert of a partition
        // starts only after the earlier one has succeeded.
        self.drain(in_flight).await?;
        match body {
            Some((body, format)) => {
                let shared = Arc::clone(&self.shared);
                let (id, rows, ranges) = (self.id, b.rows, b.ranges);
                let task =
                    tokio::spawn(
                        async move { insert(&shared, id, body, format, rows, &ranges).await },
                    );
                *in_flight = Some(InFlight { task, stored });
            }
            // Only skipped messages (0 rows, dead letters): their offsets
            // are done as soon as everything before them is.
            None => self.report(stored),
        }
        Ok(())
    }

    /// Waits for the insert in flight, if any.
    async fn drain(&mut self, in_flight: &mut Option<InFlight>) -> Result<()> {
        match in_flight.take() {
            Some(f) => {
                let done = f.task.await;
                self.finished(done, f.stored)
            }
            None => Ok(()),
        }
    }

    fn finished(
        &mut self,
        done: std::result::Result<Result<Bytes>, tokio::task::JoinError>,
        stored: Vec<Event>,
    ) -> Result<()> {
        let body = done.map_err(|e| {
            Error::Interrupted(format!("insert task of lane {} failed: {e}", self.id))
        })??;
        if let Ok(b) = body.try_into_mut() {
            let mut v = Vec::from(b);
            v.clear();
            self.spare = Some(v);
        }
        self.report(stored);
        Ok(())
    }

    fn report(&self, stored: Vec<Event>) {
        for e in stored {
            let _ = self.events.send(e);
        }
    }

    /// The insert body and its format.
    async fn encode(
        &mut self,
        batches: Vec<RecordBatch>,
        json: Vec<u8>,
    ) -> Result<(Bytes, &'static str)> {
        match &self.shared.plan {
            Some(plan) => {
                let plan = plan.clone();
                let out = self.spare.take().unwrap_or_default();
                let body = tokio::task::spawn_blocking(move || encode(&plan, &batches, out))
                    .await
                    .map_err(|e| Error::Validation(format!("encoder task failed: {e}")))??;
                Ok((body, "Native"))
            }
            None => Ok((Bytes::from(json), "JSONEachRow")),
        }
    }
}

/// How long a lane's input may stay quiet before it inserts what it has:
/// a quarter of `max_delay`. A consumer that has caught up then inserts its
/// last rows promptly instead of waiting out the whole delay, while a steady
/// stream still fills whole inserts.
fn quiet_after(max_delay: Duration) -> Duration {
    (max_delay / 4).max(Duration::from_millis(1))
}

/// One insert with retries, and its metrics.
async fn insert(
    s: &LaneShared,
    lane: usize,
    body: Bytes,
    format: &'static str,
    rows: usize,
    ranges: &BTreeMap<i32, (i64, i64)>,
) -> Result<Bytes> {
    let started = Instant::now();
    let token = dedup_token(&s.topic, ranges);
    let opts = InsertOptions {
        dedup_token: Some(token),
        columns: None,
    };
    let exactly_once = s.plan.as_ref().is_some_and(|p| p.exactly_once);
    metrics::gauge!(m::CONSUMER_INSERTS_IN_FLIGHT).increment(1.0);
    let result = insert_with_retry(s, lane, &body, format, &opts, exactly_once, ranges).await;
    metrics::gauge!(m::CONSUMER_INSERTS_IN_FLIGHT).decrement(1.0);
    result?;
    metrics::counter!(m::CONSUMER_INSERTS).increment(1);
    metrics::counter!(m::CONSUMER_INSERTED_ROWS).increment(rows as u64);
    metrics::counter!(m::CONSUMER_INSERTED_BYTES).increment(body.len() as u64);
    metrics::histogram!(m::CONSUMER_INSERT_ROWS).record(rows as f64);
    metrics::histogram!(m::CONSUMER_INSERT_LATENCY).record(started.elapsed().as_secs_f64());
    tracing::debug!(lane, rows, bytes = body.len(), "inserted");
    Ok(body)
}

/// Retries transient failures with bounded exponential backoff, without
/// limit on the number of attempts (consumption pauses meanwhile); a
/// permanent failure is returned. In exactly-once mode a retry first
/// checks whether the failed attempt was stored after all.
async fn insert_with_retry(
    s: &LaneShared,
    lane: usize,
    body: &Bytes,
    format: &str,
    opts: &InsertOptions,
    exactly_once: bool,
    ranges: &BTreeMap<i32, (i64, i64)>,
) -> Result<()> {
    let mut delay = Duration::from_millis(100);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let r = if format == "Native" {
            s.ch.insert_native(&s.table, body.clone(), opts).await
        } else {
            s.ch.insert_formatted(&s.table, format, body.clone(), opts)
                .await
        };
        let e = match r {
            Ok(()) => return Ok(()),
            Err(
                e @ Error::ClickHouse {
                    transient: true, ..
                },
            ) => e,
            Err(e) => return Err(e),
        };
        metrics::counter!(m::CONSUMER_RETRIES).increment(1);
        tracing::warn!(lane, attempt, "insert failed, retrying in {delay:?}: {e}");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
        if exactly_once {
            if let Some((p, (first, last))) = ranges.iter().next() {
                match table::range_stored(&s.ch, &s.table, *p, *first, *last).await {
                    Ok(true) => {
                        tracing::warn!(
                            lane,
                            "the failed insert was stored after all; not repeating it"
                        );
                        return Ok(());
                    }
                    Ok(false) => {}
                    // Still unreachable: keep waiting.
                    Err(_) => continue,
                }
            }
        }
    }
}

async fn apply_all(t: &Transform, batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for b in batches {
        out.extend(t.apply(b).await?);
    }
    Ok(out)
}

/// Appends the constant partition and offset columns of exactly-once mode.
fn with_offsets(
    plan: &TablePlan,
    b: &RecordBatch,
    partition: i32,
    offset: i64,
) -> Result<RecordBatch> {
    let n = b.num_rows();
    let mut cols: Vec<ArrayRef> = b.columns().to_vec();
    cols.push(Arc::new(UInt32Array::from(vec![partition as u32; n])));
    cols.push(Arc::new(UInt64Array::from(vec![offset as u64; n])));
    RecordBatch::try_new(Arc::clone(&plan.batch_schema), cols).map_err(|source| Error::Arrow {
        context: format!("adding offset columns (partition {partition}, offset {offset})"),
        source,
    })
}

/// One Native block for all buffered batches (a single block is inserted
/// atomically by ClickHouse), encoded straight from the batches.
fn encode(plan: &TablePlan, batches: &[RecordBatch], mut out: Vec<u8>) -> Result<Bytes> {
    let size: usize = batches.iter().map(|b| b.get_array_memory_size()).sum();
    out.clear();
    out.reserve(size + 4096);
    plan.encoder.encode_batches(batches, &mut out)?;
    Ok(Bytes::from(out))
}

/// `topic:p=first-last,…`: the same rows always get the same token.
fn dedup_token(topic: &str, ranges: &BTreeMap<i32, (i64, i64)>) -> String {
    let mut t = format!("velostream:{topic}");
    for (p, (a, b)) in ranges {
        t.push_str(&format!(":{p}={a}-{b}"));
    }
    t
}
