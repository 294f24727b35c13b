//! Dead-letter tooling: `velostream dlq list` reads a dead-letter topic and
//! describes each letter; `velostream dlq replay` copies dead letters back to
//! their source topic, exactly once per dead letter across restarts
//! (protocol in [`replay`]).
//!
//! The consumer writes dead letters (`consumer::dlq`); this module only
//! reads them and republishes their originals.

pub mod letter;
pub mod list;
pub mod replay;

pub use letter::{At, Letter, H_REPLAY_OF};
pub use list::list;
pub use replay::{replay, ReplayOptions, ReplaySummary};

use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::Message;

use crate::consumer::dlq::OriginalHeaders;

/// A message's headers as owned pairs (a header without a value becomes
/// an empty one).
fn headers_of(m: &OwnedMessage) -> OriginalHeaders {
    m.headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                .collect()
        })
        .unwrap_or_default()
}

/// Where `m` is.
fn at_of(m: &OwnedMessage) -> At {
    At {
        topic: m.topic().to_string(),
        partition: m.partition(),
        offset: m.offset(),
    }
}
