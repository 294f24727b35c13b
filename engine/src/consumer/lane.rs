//! An insert lane: one sequential stream of inserts into ClickHouse.
//!
//! Partition `p` is always handled by lane `p mod lanes`, and a lane runs one
//! insert at a time, so within a partition inserts happen in offset order and
//! a failed insert can never be followed by a later one of the same
//! partition. That is what makes the stored offsets of exactly-once mode
//! gap-free. Lanes coalesce messages into large inserts (rows, bytes, age).

use std::collections::BTreeMap;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, RecordBatch, UInt32Array, UInt64Array};
use bytes::Bytes;
use tokio::sync::mpsc;
use velostream_sql::Transform;

use super::dlq::DeadLetters;
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
    /// The original value, kept when a transform may still reject it.
    pub raw: Option<Arc<[u8]>>,
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
    /// partition → (first offset, last offset) of the messages buffered.
    ranges: BTreeMap<i32, (i64, i64)>,
    /// partition → rows buffered.
    rows_by_partition: BTreeMap<i32, u64>,
}

pub(super) struct Lane {
    pub id: usize,
    pub shared: Arc<LaneShared>,
    pub data: mpsc::Receiver<LaneMsg>,
    pub events: std_mpsc::Sender<Event>,
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
        loop {
            let deadline = buf
                .since
                .map(|t| t + self.shared.max_delay)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                msg = self.data.recv() => match msg {
                    Some(LaneMsg::Flush(ack)) => {
                        self.flush(&mut buf).await?;
                        let _ = ack.send(());
                    }
                    Some(LaneMsg::Item(item)) => {
                        self.push(&mut buf, item).await?;
                        if buf.rows >= self.shared.insert_rows || buf.bytes >= self.shared.insert_bytes {
                            self.flush(&mut buf).await?;
                        }
                    }
                    None => return self.flush(&mut buf).await,
                },
                _ = tokio::time::sleep_until(deadline.into()) => self.flush(&mut buf).await?,
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
        buf.since.get_or_insert_with(Instant::now);
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
                        .dead_letter(item.partition, item.offset, item.raw, &what)
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

    async fn dead_letter(
        &self,
        partition: i32,
        offset: i64,
        raw: Option<Arc<[u8]>>,
        why: &str,
    ) -> Result<()> {
        let Some(dlq) = &self.shared.dead_letters else {
            return Err(Error::Validation(format!(
                "topic {} partition {partition} offset {offset}: {why} (no --dlq-topic configured)",
                self.shared.topic
            )));
        };
        dlq.send(partition, offset, raw.as_deref().unwrap_or(&[]), &[], why)
            .await
    }

    async fn flush(&self, buf: &mut Buffer) -> Result<()> {
        let b = std::mem::take(buf);
        if b.ranges.is_empty() {
            return Ok(());
        }
        if b.rows > 0 {
            self.insert(&b).await?;
        }
        for (partition, (_, last)) in &b.ranges {
            let rows = b.rows_by_partition.get(partition).copied().unwrap_or(0);
            let _ = self.events.send(Event::Stored {
                partition: *partition,
                next_offset: last + 1,
                rows,
            });
        }
        Ok(())
    }

    async fn insert(&self, b: &Buffer) -> Result<()> {
        let s = &self.shared;
        let started = Instant::now();
        let (body, format) = match &s.plan {
            Some(plan) => {
                let plan = plan.clone();
                let batches = b.batches.clone();
                let body = tokio::task::spawn_blocking(move || encode(&plan, &batches))
                    .await
                    .map_err(|e| Error::Validation(format!("encoder task failed: {e}")))??;
                (body, "Native")
            }
            None => (Bytes::from(b.json.clone()), "JSONEachRow"),
        };
        let token = dedup_token(&s.topic, &b.ranges);
        let opts = InsertOptions {
            dedup_token: Some(token),
            columns: None,
        };
        let exactly_once = s.plan.as_ref().is_some_and(|p| p.exactly_once);
        metrics::gauge!(m::CONSUMER_INSERTS_IN_FLIGHT).increment(1.0);
        let result = self
            .insert_with_retry(&body, format, &opts, exactly_once, &b.ranges)
            .await;
        metrics::gauge!(m::CONSUMER_INSERTS_IN_FLIGHT).decrement(1.0);
        result?;
        metrics::counter!(m::CONSUMER_INSERTS).increment(1);
        metrics::counter!(m::CONSUMER_INSERTED_ROWS).increment(b.rows as u64);
        metrics::counter!(m::CONSUMER_INSERTED_BYTES).increment(body.len() as u64);
        metrics::histogram!(m::CONSUMER_INSERT_ROWS).record(b.rows as f64);
        metrics::histogram!(m::CONSUMER_INSERT_LATENCY).record(started.elapsed().as_secs_f64());
        tracing::debug!(
            lane = self.id,
            rows = b.rows,
            bytes = body.len(),
            "inserted"
        );
        Ok(())
    }

    /// Retries transient failures with bounded exponential backoff, without
    /// limit on the number of attempts (consumption pauses meanwhile); a
    /// permanent failure is returned. In exactly-once mode a retry first
    /// checks whether the failed attempt was stored after all.
    async fn insert_with_retry(
        &self,
        body: &Bytes,
        format: &str,
        opts: &InsertOptions,
        exactly_once: bool,
        ranges: &BTreeMap<i32, (i64, i64)>,
    ) -> Result<()> {
        let s = &self.shared;
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
            tracing::warn!(
                lane = self.id,
                attempt,
                "insert failed, retrying in {delay:?}: {e}"
            );
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
            if exactly_once {
                if let Some((p, (first, last))) = ranges.iter().next() {
                    match table::range_stored(&s.ch, &s.table, *p, *first, *last).await {
                        Ok(true) => {
                            tracing::warn!(
                                lane = self.id,
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

/// One Native block for all buffered batches: a single block is inserted
/// atomically by ClickHouse.
fn encode(plan: &TablePlan, batches: &[RecordBatch]) -> Result<Bytes> {
    let batch =
        arrow_select::concat::concat_batches(&plan.batch_schema, batches).map_err(|source| {
            Error::Arrow {
                context: "coalescing batches for an insert".into(),
                source,
            }
        })?;
    let mut out = Vec::with_capacity(batch.get_array_memory_size());
    plan.encoder.encode(&batch, &mut out)?;
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
