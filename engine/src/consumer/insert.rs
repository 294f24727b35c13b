//! One insert, start to finish: send it, and after a failure do what
//! [`super::core::attempts`] decides — retry with backoff, ask the table
//! what it holds (exactly-once), delete a partly stored insert, split a
//! too-large one down to single messages, dead-letter a single message the
//! server cannot take, or stop. The offsets of the whole batch count as
//! handled only when every part of it is stored or dead-lettered.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::core::attempts::{Attempts, Failure, InTransit, Step};
use super::core::batcher::Batch;
use super::core::spans::{InsertKey, Spans};
use super::core::verdict::{verdict, Verdict};
use super::dlq::Reason;
use super::encode::{self, Format, Held};
use super::exactly_once::RUNNING_INSERT_WAIT;
use super::item::Event;
use super::lane::LaneShared;
use super::target::Target;
use crate::clickhouse::retry::{insert_failure, may_still_arrive};
use crate::clickhouse::{ClickHouse, InsertOptions};
use crate::metrics as m;
use crate::{Error, Result};

/// An insert handed to [`run`].
pub(super) struct Job {
    pub lane: usize,
    pub batch: Batch<Held>,
    pub body: Bytes,
    pub format: Format,
}

/// What a finished insert reports to its lane.
pub(super) struct Done {
    /// Offsets now handled, for the consumer thread.
    pub stored: Vec<Event>,
    /// The last body sent, for its allocation.
    pub body: Option<Bytes>,
    /// "Too many parts" answers met (the lane slows down).
    pub too_many_parts: u32,
}

/// How one attempt sequence ended.
enum Outcome {
    Stored,
    Split,
    DeadLetter(Error),
    /// A partition of the batch is no longer owned.
    Lost,
}

/// Inserts `job` into `t`, splitting and dead-lettering as needed.
pub(super) async fn run(s: Arc<LaneShared>, t: Target, job: Job) -> Result<Done> {
    let charged = job
        .batch
        .entries
        .iter()
        .map(|e| e.bytes as u64)
        .sum::<u64>()
        + job.body.len() as u64;
    let lane = job.lane;
    let result = run_inner(&s, &t, job).await;
    s.memory.release(lane, charged);
    result
}

async fn run_inner(s: &LaneShared, t: &Target, job: Job) -> Result<Done> {
    let mut stored = stored_events(&job.batch);
    let mut too_many_parts = 0;
    let mut dead_rows: HashMap<i32, u64> = HashMap::new();
    let mut last_body = None;
    let mut queue: VecDeque<(Batch<Held>, Option<Bytes>)> =
        VecDeque::from([(job.batch, Some(job.body))]);
    while let Some((mut batch, body)) = queue.pop_front() {
        let body = match body {
            Some(b) => b,
            None => match reencode(s, batch).await? {
                (b, Some(body)) => {
                    batch = b;
                    body
                }
                (_, None) => continue, // nothing left to insert
            },
        };
        let (outcome, tmp) = attempts(s, t, job.lane, &batch, &body, job.format).await?;
        too_many_parts += tmp;
        match outcome {
            Outcome::Stored => last_body = Some(body),
            Outcome::Split => {
                metrics::counter!(m::CONSUMER_INSERT_SPLITS).increment(1);
                match batch.split() {
                    Ok((a, b)) => {
                        tracing::warn!(
                            lane = job.lane,
                            "insert too large for the server: splitting it in two"
                        );
                        queue.push_front((b, None));
                        queue.push_front((a, None));
                    }
                    Err(one) => {
                        let e = Error::Config("the insert cannot be split further".into());
                        dead_letter(s, one, &e, &mut dead_rows).await?
                    }
                }
            }
            Outcome::DeadLetter(e) => dead_letter(s, batch, &e, &mut dead_rows).await?,
            Outcome::Lost => {
                let owned = &s.ownership;
                let dropped = batch.remove_unless(|e| owned.owns(e.partition, e.generation));
                tracing::warn!(
                    lane = job.lane,
                    dropped = dropped.len(),
                    "partitions lost during an insert: dropping their rows"
                );
                if !batch.entries.is_empty() {
                    queue.push_front((batch, None));
                }
            }
        }
    }
    for ev in &mut stored {
        if let Event::Stored {
            partition, rows, ..
        } = ev
        {
            *rows -= dead_rows.get(partition).copied().unwrap_or(0).min(*rows);
        }
    }
    Ok(Done {
        stored,
        body: last_body,
        too_many_parts,
    })
}

/// The events a fully handled batch reports: per partition, everything
/// before the last offset + 1, under the generation it was consumed in.
pub(super) fn stored_events(batch: &Batch<Held>) -> Vec<Event> {
    let generations: HashMap<i32, u64> = batch
        .entries
        .iter()
        .map(|e| (e.partition, e.generation))
        .collect();
    batch
        .spans()
        .iter()
        .map(|(p, span)| Event::Stored {
            partition: p,
            generation: generations[&p],
            next_offset: span.next_offset(),
            rows: span.rows,
        })
        .collect()
}

/// Encodes a (split or filtered) batch again; `None` when it has no rows.
async fn reencode(s: &LaneShared, batch: Batch<Held>) -> Result<(Batch<Held>, Option<Bytes>)> {
    if batch.rows() == 0 {
        return Ok((batch, None));
    }
    let plan = s.plan.clone();
    let (batch, body) = tokio::task::spawn_blocking(move || {
        let r = encode::body(plan.as_ref(), &batch, Vec::new());
        (batch, r)
    })
    .await
    .map_err(|e| Error::Interrupted(format!("encoder task failed: {e}")))?;
    // Not charged again: a part of a split body is smaller than the body
    // charged for the whole insert.
    let (body, _) = body?;
    Ok((batch, Some(body)))
}

/// Sends one body until it is stored or another step than retrying is due.
/// Long: the I/O shell of `core::attempts::Attempts`: one arm per step it decides, each arm that step's I/O and logging.
async fn attempts(
    s: &LaneShared,
    t: &Target,
    lane: usize,
    batch: &Batch<Held>,
    body: &Bytes,
    format: Format,
) -> Result<(Outcome, u32)> {
    let spans = batch.spans();
    let expected = spans.expected();
    let mut tries = Attempts::new(t.eo.is_some(), batch.entries.len());
    let mut step = Step::Send(Duration::ZERO);
    let mut last: Option<Error> = None;
    let mut too_many_parts = 0;
    // The replica the last attempt went to, and when.
    let mut sent = (0, Instant::now());
    // The last attempt got no answer: its body may still arrive.
    let mut in_transit = None;
    loop {
        step = match step {
            Step::Send(wait) => {
                tokio::time::sleep(wait).await;
                if !batch
                    .entries
                    .iter()
                    .all(|e| s.ownership.owns(e.partition, e.generation))
                {
                    return Ok((Outcome::Lost, too_many_parts));
                }
                let (replica, _) = t.shard.current();
                sent = (replica, Instant::now());
                match send(s, t, lane, &spans, body, format).await {
                    Ok(()) => return Ok((Outcome::Stored, too_many_parts)),
                    Err(e) => {
                        in_transit = may_still_arrive(&e).then(|| {
                            let grace = t.shard.replicas()[replica].config().timeout;
                            InTransit::new(sent.1, Instant::now(), grace)
                        });
                        t.shard.fail_over(replica, &e);
                        let kind = insert_failure(&e);
                        if kind == Failure::TooManyParts {
                            too_many_parts += 1;
                        }
                        metrics::counter!(m::CONSUMER_RETRIES).increment(1);
                        tracing::warn!(lane, attempt = tries.failures() + 1, inserts = %spans.label(), ?kind, "insert failed: {e}");
                        last = Some(e);
                        tries.failed(kind)
                    }
                }
            }
            Step::Verify(wait) => {
                tokio::time::sleep(wait).await;
                metrics::counter!(m::CONSUMER_UNKNOWN_OUTCOMES).increment(1);
                match check(t, &spans, &expected, sent, in_transit).await {
                    Ok(v) => {
                        if v == Verdict::Complete {
                            tracing::warn!(lane, inserts = %spans.label(), "the failed insert was stored after all");
                        }
                        tries.verified(&v)
                    }
                    Err(e) => {
                        tracing::warn!(lane, inserts = %spans.label(), "cannot tell yet what the table holds: {e}");
                        tries.unverifiable()
                    }
                }
            }
            Step::Repair => {
                let keys: Vec<InsertKey> = expected.iter().map(|(k, _)| *k).collect();
                let eo = t.eo.as_ref().expect("repair happens in exactly-once mode");
                let (replica, ch) = t.shard.current();
                match eo.delete(ch, &keys).await {
                    Ok(()) => {
                        metrics::counter!(m::CONSUMER_REPAIRS).increment(1);
                        tries.repaired()
                    }
                    Err(e) => {
                        tracing::warn!(lane, inserts = %spans.label(), "deleting the partly stored insert failed: {e}");
                        t.shard.fail_over(replica, &e);
                        tries.unverifiable()
                    }
                }
            }
            Step::Split => return Ok((Outcome::Split, too_many_parts)),
            Step::DeadLetter => {
                let e = last
                    .take()
                    .unwrap_or_else(|| Error::Config("refused".into()));
                return Ok((Outcome::DeadLetter(e), too_many_parts));
            }
            Step::Stop => {
                let e = last.take().unwrap_or_else(|| {
                    Error::Validation(format!(
                        "table {}: more rows stored for {} than were sent",
                        s.table,
                        spans.label()
                    ))
                });
                return Err(in_context(e, &s.topic, &spans));
            }
            Step::Done => return Ok((Outcome::Stored, too_many_parts)),
        };
    }
}

/// The column list of an insert that leaves table columns out.
fn insert_columns(s: &LaneShared) -> Option<Vec<String>> {
    s.plan.as_ref().and_then(|p| p.insert_columns.clone())
}

/// One INSERT request, to the shard's current replica.
async fn send(
    s: &LaneShared,
    t: &Target,
    lane: usize,
    spans: &Spans,
    body: &Bytes,
    format: Format,
) -> Result<()> {
    let started = Instant::now();
    let (_, ch) = t.shard.current();
    let opts = match &t.eo {
        Some(eo) => InsertOptions {
            query_id: Some(eo.query_id(spans)),
            // Never deduplicated by the server: a repaired insert is sent
            // again with the same content on purpose.
            settings: with(&s.insert_settings, ("insert_deduplicate", "0")),
            columns: insert_columns(s),
            ..InsertOptions::default()
        },
        None => InsertOptions {
            dedup_token: Some(dedup_token(&s.topic, spans)),
            settings: s.insert_settings.clone(),
            columns: insert_columns(s),
            ..InsertOptions::default()
        },
    };
    metrics::gauge!(m::CONSUMER_INSERTS_IN_FLIGHT).increment(1.0);
    let r = ch
        .insert_formatted(&s.table, format.name(), body.clone(), &opts)
        .await;
    metrics::gauge!(m::CONSUMER_INSERTS_IN_FLIGHT).decrement(1.0);
    r?;
    let rows = spans.rows();
    let shard = t.shard.index.to_string();
    metrics::counter!(m::CONSUMER_INSERTS).increment(1);
    metrics::counter!(m::CONSUMER_INSERTED_ROWS, "shard" => shard.clone()).increment(rows);
    metrics::counter!(m::CONSUMER_INSERTED_BYTES).increment(body.len() as u64);
    metrics::histogram!(m::CONSUMER_INSERT_ROWS).record(rows as f64);
    metrics::histogram!(m::CONSUMER_INSERT_LATENCY, "shard" => shard)
        .record(started.elapsed().as_secs_f64());
    tracing::debug!(lane, rows, bytes = body.len(), inserts = %spans.label(), "inserted");
    Ok(())
}

fn with(settings: &[(String, String)], (k, v): (&str, &str)) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = settings.iter().filter(|(n, _)| n != k).cloned().collect();
    out.push((k.to_string(), v.to_string()));
    out
}

/// What the table holds of an insert whose outcome is unknown: once no
/// insert of its partitions runs any more on the replica that received it
/// (`sent`: which one, and when) and its body can no longer arrive there
/// (`in_transit`), read on a replica in sync. When that
/// replica cannot be reached, another one is asked only after
/// [`RUNNING_INSERT_WAIT`] has passed since the insert was sent (it could
/// otherwise still be inserting); a single server must answer itself.
async fn check(
    t: &Target,
    spans: &Spans,
    expected: &[(InsertKey, u64)],
    sent: (usize, Instant),
    in_transit: Option<InTransit>,
) -> Result<Verdict> {
    let eo =
        t.eo.as_ref()
            .expect("verification happens in exactly-once mode");
    let partitions: Vec<i32> = spans.partitions().collect();
    let (ran_on, sent_at) = sent;
    let ran = &t.shard.replicas()[ran_on];
    if let Err(e) = settle(eo, ran, &partitions, in_transit).await {
        if t.shard.replicas().len() == 1 || sent_at.elapsed() < RUNNING_INSERT_WAIT {
            t.shard.fail_over(ran_on, &e);
            return Err(e);
        }
        tracing::warn!(
            replica = %ran.config().url,
            "the replica that received the insert has been unreachable for {:?}: asking another",
            sent_at.elapsed()
        );
    }
    let (reader, ch) = t.shard.current();
    let found = async {
        eo.sync(ch).await?;
        let keys: Vec<InsertKey> = expected.iter().map(|(k, _)| *k).collect();
        eo.counts(ch, &keys).await
    }
    .await;
    match found {
        Ok(found) => Ok(verdict(expected, &found)),
        Err(e) => {
            t.shard.fail_over(reader, &e);
            Err(e)
        }
    }
}

/// Waits until no insert of `partitions` runs on `ran` and the body of an
/// unanswered insert can no longer arrive there (fencing again after each
/// wait: it may have arrived and started meanwhile).
async fn settle(
    eo: &super::exactly_once::EoTable,
    ran: &ClickHouse,
    partitions: &[i32],
    in_transit: Option<InTransit>,
) -> Result<()> {
    loop {
        eo.fence(ran, Some(partitions), RUNNING_INSERT_WAIT).await?;
        let Some(it) = in_transit else {
            return Ok(());
        };
        let uptime = ran.uptime().await?;
        match it.remaining(Instant::now(), uptime) {
            None => return Ok(()),
            Some(left) => {
                tracing::info!(
                    "the failed insert got no answer and may still reach the server: \
                     checking the table in {left:?}"
                );
                tokio::time::sleep(left.min(Duration::from_secs(1))).await;
            }
        }
    }
}

/// Dead-letters the one message of `batch` (reason `insert_failed`), or
/// stops naming it when there is no dead-letter topic.
async fn dead_letter(
    s: &LaneShared,
    batch: Batch<Held>,
    e: &Error,
    dead_rows: &mut HashMap<i32, u64>,
) -> Result<()> {
    for entry in batch.entries.into_iter().filter(|e| e.rows > 0) {
        *dead_rows.entry(entry.partition).or_default() += entry.rows as u64;
        let why = format!("ClickHouse refused an insert of this message alone: {e}");
        s.dead_letter(
            entry.partition,
            entry.offset,
            entry.payload.original,
            Reason::InsertFailed,
            &why,
        )
        .await?;
    }
    Ok(())
}

/// Adds the topic and offset ranges to an insert error.
fn in_context(e: Error, topic: &str, spans: &Spans) -> Error {
    match e {
        Error::ClickHouse {
            context,
            message,
            code,
            transient,
        } => Error::ClickHouse {
            context: format!("{context} (topic {topic}, offsets {})", spans.label()),
            message,
            code,
            transient,
        },
        other => other,
    }
}

/// `velostream:topic:p=first-last…`: the same rows always get the same
/// token (at-least-once: a blind retry is deduplicated by servers that
/// deduplicate).
fn dedup_token(topic: &str, spans: &Spans) -> String {
    let mut t = format!("velostream:{topic}");
    for (p, span) in spans.iter() {
        t.push_str(&format!(":{p}={}-{}", span.first, span.last));
    }
    t
}
