//! Kafka helpers: topic creation, reading a topic back with partition,
//! offset and headers, producing hand-made messages (raw values, any
//! headers), committed offsets.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use velostream_codecs::envelope::{self, Envelope};
use velostream_codecs::ipc;

/// Creates `topic` with `partitions` partitions (replication 1) and waits
/// until the broker's metadata shows all of them. Retries for up to 30 s
/// while the broker warms up; an existing topic is accepted.
pub fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("socket.timeout.ms", "5000")
        .create()
        .unwrap_or_else(|e| panic!("Kafka admin client for {brokers}: {e}"));
    let opts = AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(5)))
        .operation_timeout(Some(Duration::from_secs(5)));
    let deadline = Instant::now() + Duration::from_secs(30);
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    loop {
        let outcome = futures::executor::block_on(admin.create_topics([&new_topic], &opts));
        let error = match outcome {
            Ok(results) => match results.into_iter().next() {
                Some(Ok(_)) | Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => None,
                Some(Err((name, code))) => Some(format!("creating topic {name}: {code}")),
                None => Some(format!("creating topic {topic}: empty response")),
            },
            Err(e) => Some(format!("creating topic {topic}: {e}")),
        };
        let error = match error {
            None => {
                match admin
                    .inner()
                    .fetch_metadata(Some(topic), Duration::from_secs(5))
                {
                    Ok(md) => {
                        let seen = md
                            .topics()
                            .iter()
                            .find(|t| t.name() == topic)
                            .map(|t| (t.partitions().len(), t.error()));
                        match seen {
                        Some((n, None)) if n == partitions as usize => return,
                        other => Some(format!("metadata for {topic} shows {other:?}, want {partitions} partitions")),
                    }
                    }
                    Err(e) => Some(format!("metadata for {topic}: {e}")),
                }
            }
            Some(e) => Some(e),
        };
        let error = error.expect("an error when not returned");
        if Instant::now() > deadline {
            panic!("Kafka at {brokers}: {error} (gave up after 30 s)");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// One message read back from a topic.
#[derive(Debug, Clone)]
pub struct Msg {
    /// Partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// The value (empty for none).
    pub payload: Vec<u8>,
    /// Every header, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Msg {
    /// `partition P offset O`, for messages.
    pub fn at(&self) -> String {
        format!("partition {} offset {}", self.partition, self.offset)
    }

    /// The value of header `key` as text, if present.
    pub fn header(&self, key: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| String::from_utf8_lossy(v.as_deref().unwrap_or_default()).into_owned())
    }

    /// The value of header `key`; fails naming the message when absent.
    pub fn expect_header(&self, key: &str) -> String {
        self.header(key)
            .unwrap_or_else(|| panic!("{}: no header {key}: {:?}", self.at(), self.headers))
    }

    /// The value decoded as an Arrow IPC stream; fails naming the message.
    pub fn decode(&self) -> ipc::Decoded {
        ipc::decode(&self.payload)
            .unwrap_or_else(|e| panic!("{}: not an Arrow IPC stream: {e}", self.at()))
    }

    /// The envelope headers; fails naming the message when bad or absent.
    pub fn envelope(&self) -> Envelope {
        Envelope::from_headers(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_deref())))
            .unwrap_or_else(|e| panic!("{}: bad envelope: {e}", self.at()))
            .unwrap_or_else(|| panic!("{}: no envelope headers", self.at()))
    }

    /// Rows the message carries: the `velostream.rows` header, else the
    /// rows of the decoded value; an error names the message.
    pub fn rows(&self) -> Result<u64, String> {
        if let Some(rows) = self.header(envelope::H_ROWS) {
            return rows
                .parse()
                .map_err(|_| format!("{}: {} header {rows:?}", self.at(), envelope::H_ROWS));
        }
        ipc::decode(&self.payload)
            .map(|d| d.num_rows() as u64)
            .map_err(|e| {
                format!(
                    "{}: no {} header and undecodable: {e}",
                    self.at(),
                    envelope::H_ROWS
                )
            })
    }
}

/// When [`read_topic`] stops reading.
pub enum Until<'a> {
    /// Once `rows_of` summed over the messages reaches `want`, after reading
    /// on for 1.5 s (duplicates would show); fails unless exactly `want`.
    Rows {
        /// Rows expected in the topic.
        want: u64,
        /// Rows of one message.
        rows_of: &'a dyn Fn(&Msg) -> u64,
    },
    /// Once `n` messages arrived, after reading on for 2 s; fails when the
    /// topic holds more.
    Messages(usize),
    /// Once no message arrived for this long (tansu's high watermarks are
    /// wrong, so they cannot tell where a topic ends).
    Quiet(Duration),
}

/// Every message of `topic` (all partitions, from the beginning), until
/// `until`; fails after 120 s naming what arrived.
pub fn read_topic(brokers: &str, topic: &str, until: Until<'_>) -> Vec<Msg> {
    let consumer = assigned_reader(brokers, topic);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut out: Vec<Msg> = Vec::new();
    let mut rows = 0u64;
    let mut last = Instant::now();
    let mut reached: Option<Instant> = None;
    loop {
        let done = match &until {
            Until::Rows { .. } => {
                reached.is_some_and(|t| t.elapsed() > Duration::from_millis(1500))
            }
            Until::Messages(_) => reached.is_some_and(|t| t.elapsed() > Duration::from_secs(2)),
            Until::Quiet(quiet) => last.elapsed() > *quiet,
        };
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "topic {topic} at {brokers}: {} messages ({rows} rows) after 120 s, not {}",
            out.len(),
            match &until {
                Until::Rows { want, .. } => format!("{want} rows"),
                Until::Messages(n) => format!("{n} messages"),
                Until::Quiet(q) => format!("quiet for {q:?}"),
            }
        );
        let Some(r) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = r.unwrap_or_else(|e| panic!("reading {topic} at {brokers}: {e}"));
        let msg = Msg {
            partition: m.partition(),
            offset: m.offset(),
            payload: m.payload().unwrap_or_default().to_vec(),
            headers: m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
        };
        last = Instant::now();
        match &until {
            Until::Rows { want, rows_of } => {
                rows += rows_of(&msg);
                if rows >= *want && reached.is_none() {
                    reached = Some(Instant::now());
                }
            }
            Until::Messages(n) => {
                assert!(
                    out.len() < *n,
                    "{topic} holds more than {n} messages (one more at {})",
                    msg.at()
                );
                if out.len() + 1 == *n {
                    reached = Some(Instant::now());
                }
            }
            Until::Quiet(_) => {}
        }
        out.push(msg);
    }
    if let Until::Rows { want, .. } = until {
        assert_eq!(rows, want, "topic {topic}: rows read back (duplicates?)");
    }
    out
}

/// A consumer assigned every partition of `topic` from the beginning.
fn assigned_reader(brokers: &str, topic: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", crate::harness::unique_name("topic_reader"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap_or_else(|e| panic!("topic reader for {brokers}: {e}"));
    let partitions = partitions_of(&consumer, brokers, topic);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition offset");
    }
    consumer
        .assign(&tpl)
        .unwrap_or_else(|e| panic!("assigning {topic}: {e}"));
    consumer
}

/// The number of partitions of `topic` (waits up to 30 s for metadata).
fn partitions_of(consumer: &BaseConsumer, brokers: &str, topic: &str) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .map_err(|e| e.to_string())
            .map(|md| {
                md.topics()
                    .iter()
                    .find(|t| t.name() == topic && t.error().is_none())
                    .map_or(0, |t| t.partitions().len() as i32)
            });
        match seen {
            Ok(n) if n > 0 => return n,
            other => assert!(
                Instant::now() < deadline,
                "metadata of {topic} at {brokers}: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A plain producer for hand-made messages (values up to 32 MiB).
pub struct RawProducer(FutureProducer);

impl std::fmt::Debug for RawProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawProducer")
    }
}

impl RawProducer {
    /// Connects to `brokers`.
    pub fn new(brokers: &str) -> RawProducer {
        RawProducer(
            ClientConfig::new()
                .set("bootstrap.servers", brokers)
                .set("message.max.bytes", "33554432")
                .create()
                .unwrap_or_else(|e| panic!("producer for {brokers}: {e}")),
        )
    }

    /// Sends `value` with `headers` (none when empty) to `topic`; returns
    /// (partition, offset) once acknowledged.
    pub async fn send(
        &self,
        topic: &str,
        value: &[u8],
        headers: &[(String, Vec<u8>)],
    ) -> (i32, i64) {
        self.send_to(topic, None, value, headers).await
    }

    /// Like [`RawProducer::send`], to `partition` when given.
    pub async fn send_to(
        &self,
        topic: &str,
        partition: Option<i32>,
        value: &[u8],
        headers: &[(String, Vec<u8>)],
    ) -> (i32, i64) {
        let mut record: FutureRecord<'_, (), [u8]> = FutureRecord::to(topic).payload(value);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        if !headers.is_empty() {
            let mut h = OwnedHeaders::new_with_capacity(headers.len());
            for (k, v) in headers {
                h = h.insert(Header {
                    key: k,
                    value: Some(v),
                });
            }
            record = record.headers(h);
        }
        let delivery = self
            .0
            .send(record, Duration::from_secs(30))
            .await
            .unwrap_or_else(|(e, _)| panic!("sending a message to {topic}: {e}"));
        (delivery.partition, delivery.offset)
    }
}

/// The offset `group` committed for `topic`/`partition`.
pub fn committed_offset(brokers: &str, group: &str, topic: &str, partition: i32) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("offset reader");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let got = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("committed offsets of {group} on {topic}: {e}"));
    match got
        .find_partition(topic, partition)
        .expect("partition in the answer")
        .offset()
    {
        Offset::Offset(o) => o,
        other => panic!("no committed offset for {topic}/{partition}: {other:?}"),
    }
}
