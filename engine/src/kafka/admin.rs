//! Topic administration: reachability checks, topic creation (tansu does not
//! auto-create topics) and partition discovery.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;

use super::config::ErrorMemo;
use super::KafkaArgs;
use crate::{Error, Result};

/// How long metadata requests may take before the broker counts as unreachable.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

fn metadata_client(kafka: &KafkaArgs) -> Result<BaseConsumer<ErrorMemo>> {
    let mut c = kafka.client_config()?;
    // Repeated connection failures are logged at debug level; the memo
    // needs them (tracing still filters what is printed).
    c.set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
    kafka.apply_overrides(&mut c)?;
    c.create_with_context(ErrorMemo::new(kafka))
        .map_err(|e| Error::kafka(format!("creating a client for {}", kafka.brokers), e))
}

/// Number of partitions of `topic`, or `None` when it does not exist.
/// Fails within [`METADATA_TIMEOUT`] when no broker answers.
pub fn partition_count(kafka: &KafkaArgs, topic: &str) -> Result<Option<usize>> {
    let client = metadata_client(kafka)?;
    let md = client
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .map_err(|e| unreachable_or(kafka, topic, e, &client))?;
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        return Ok(None);
    };
    match t.error() {
        None if !t.partitions().is_empty() => Ok(Some(t.partitions().len())),
        None => Ok(None),
        Some(code) => {
            let code = RDKafkaErrorCode::from(code);
            if code == RDKafkaErrorCode::UnknownTopicOrPartition {
                Ok(None)
            } else {
                Err(Error::Config(format!("topic {topic:?}: {code}")))
            }
        }
    }
}

fn unreachable_or(
    kafka: &KafkaArgs,
    topic: &str,
    e: rdkafka::error::KafkaError,
    client: &BaseConsumer<ErrorMemo>,
) -> Error {
    // Serve queued error events so the memo learns why (TLS, SASL, refused).
    // A poll serves at most one event; errors and logs return None.
    for _ in 0..200 {
        let _ = client.poll(Duration::ZERO);
    }
    let why = client
        .context()
        .last()
        .map(|r| format!("; last broker error: {r}"))
        .unwrap_or_default();
    Error::kafka(
        format!(
            "fetching metadata for topic {topic:?} from {} (is the broker running and reachable?{why})",
            kafka.brokers
        ),
        e,
    )
}

/// Makes sure `topic` exists. When it is missing and `partitions` is given,
/// it is created with that many partitions; otherwise a missing topic is an
/// error that says how to create it. Returns the partition count.
pub async fn ensure_topic(
    kafka: &KafkaArgs,
    topic: &str,
    partitions: Option<usize>,
) -> Result<usize> {
    let k = kafka.clone();
    let t = topic.to_string();
    let existing = tokio::task::spawn_blocking(move || partition_count(&k, &t))
        .await
        .map_err(|e| Error::Config(format!("metadata task failed: {e}")))??;
    if let Some(n) = existing {
        if let Some(want) = partitions {
            if want != n {
                tracing::warn!(
                    topic,
                    have = n,
                    want,
                    "topic exists with a different partition count; using it as is"
                );
            }
        }
        return Ok(n);
    }
    let Some(want) = partitions else {
        return Err(Error::Config(format!(
            "topic {topic:?} does not exist on {}; pass --partitions N to create it",
            kafka.brokers
        )));
    };
    let mut c = kafka.client_config()?;
    kafka.apply_overrides(&mut c)?;
    let admin: AdminClient<DefaultClientContext> = c
        .create()
        .map_err(|e| Error::kafka("creating an admin client", e))?;
    let want_i32 =
        i32::try_from(want).map_err(|_| Error::Config("--partitions too large".into()))?;
    let new = NewTopic::new(topic, want_i32, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
    let results = admin
        .create_topics([&new], &opts)
        .await
        .map_err(|e| Error::kafka(format!("creating topic {topic:?}"), e))?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(Error::Config(format!("creating topic {name:?}: {code}")));
            }
        }
    }
    // Wait until the metadata shows the partitions (creation is asynchronous).
    let deadline = Instant::now() + METADATA_TIMEOUT;
    loop {
        let k = kafka.clone();
        let t = topic.to_string();
        let n = tokio::task::spawn_blocking(move || partition_count(&k, &t))
            .await
            .map_err(|e| Error::Config(format!("metadata task failed: {e}")))??;
        match n {
            Some(n) => return Ok(n),
            None if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            None => {
                return Err(Error::Config(format!(
                    "topic {topic:?} was created but does not appear in the metadata of {}",
                    kafka.brokers
                )))
            }
        }
    }
}
