//! High watermarks as fetch responses report them (librdkafka's statistics).
//! They are right on real Kafka and on tansu 0.6, whose ListOffsets answer
//! is wrong after multi-record produce batches.

use std::collections::HashMap;
use std::sync::Mutex;

use rdkafka::client::ClientContext;
use rdkafka::consumer::ConsumerContext;

/// A consumer context keeping the newest high watermark per partition of
/// one topic from librdkafka's statistics. The client needs
/// `statistics.interval.ms` set.
#[derive(Debug)]
pub struct FetchedWatermarks {
    topic: String,
    high: Mutex<HashMap<i32, i64>>,
}

impl FetchedWatermarks {
    /// A context for `topic`'s partitions.
    pub fn new(topic: &str) -> Self {
        FetchedWatermarks {
            topic: topic.to_string(),
            high: Mutex::new(HashMap::new()),
        }
    }

    /// The newest high watermark of each partition that had a fetch
    /// response so far.
    pub fn snapshot(&self) -> HashMap<i32, i64> {
        self.high.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

impl ClientContext for FetchedWatermarks {
    fn stats_raw(&self, statistics: &[u8]) {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(statistics) else {
            return;
        };
        let Some(parts) = v["topics"][&self.topic]["partitions"].as_object() else {
            return;
        };
        let mut high = self.high.lock().unwrap_or_else(|p| p.into_inner());
        for (p, stats) in parts {
            // hi_offset is -1001 until the first fetch response.
            if let (Ok(p), Some(hi)) = (p.parse::<i32>(), stats["hi_offset"].as_i64()) {
                if p >= 0 && hi >= 0 {
                    high.insert(p, hi);
                }
            }
        }
    }
}

impl ConsumerContext for FetchedWatermarks {}
