//! Prometheus metrics: the names (one place, used by the code, the README and
//! the Grafana dashboard) and the exporter.
//!
//! Names follow Prometheus conventions: `velostream_` prefix, the unit in the
//! name, `_total` for counters. Label `partition` carries the Kafka partition.

use std::net::SocketAddr;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

use crate::{Error, Result};

// Producer.
pub const PRODUCER_ROWS: &str = "velostream_producer_rows_total";
pub const PRODUCER_MESSAGES: &str = "velostream_producer_messages_total";
/// Bytes of message values as sent to Kafka (after Arrow body compression).
pub const PRODUCER_WIRE_BYTES: &str = "velostream_producer_wire_bytes_total";
/// Bytes of the same batches as uncompressed Arrow buffers.
pub const PRODUCER_RAW_BYTES: &str = "velostream_producer_raw_bytes_total";
pub const PRODUCER_ERRORS: &str = "velostream_producer_errors_total";
pub const PRODUCER_MESSAGE_SIZE: &str = "velostream_producer_message_size_bytes";
pub const PRODUCER_SEND_LATENCY: &str = "velostream_producer_send_latency_seconds";

// Consumer.
pub const CONSUMER_MESSAGES: &str = "velostream_consumer_messages_total";
pub const CONSUMER_ROWS: &str = "velostream_consumer_rows_total";
pub const CONSUMER_BYTES: &str = "velostream_consumer_bytes_total";
pub const CONSUMER_INSERTED_ROWS: &str = "velostream_consumer_inserted_rows_total";
pub const CONSUMER_INSERTED_BYTES: &str = "velostream_consumer_inserted_bytes_total";
pub const CONSUMER_INSERTS: &str = "velostream_consumer_inserts_total";
pub const CONSUMER_INSERT_LATENCY: &str = "velostream_consumer_insert_latency_seconds";
pub const CONSUMER_INSERT_ROWS: &str = "velostream_consumer_insert_rows";
pub const CONSUMER_INSERTS_IN_FLIGHT: &str = "velostream_consumer_inserts_in_flight";
pub const CONSUMER_RETRIES: &str = "velostream_consumer_retries_total";
pub const CONSUMER_DEAD_LETTERS: &str = "velostream_consumer_dead_letter_messages_total";
/// `ALTER TABLE` statements `--evolve` applied, by `change` (add_column,
/// widen_column).
pub const CONSUMER_SCHEMA_CHANGES: &str = "velostream_consumer_schema_changes_total";
/// Times the insert side was planned again for a grown schema (`--evolve`).
pub const CONSUMER_SCHEMA_REPLANS: &str = "velostream_consumer_schema_replans_total";
/// Inserts a lane started, by what ended its gathering (`rows`, `bytes`,
/// `max_delay`, `quiet`, `caught_up`, `requested`).
pub const CONSUMER_FLUSHES: &str = "velostream_consumer_flushes_total";
/// Insert lanes for which at least a whole insert waits: they fill
/// whole inserts instead of inserting on their latency deadlines.
pub const CONSUMER_LANES_BEHIND: &str = "velostream_consumer_lanes_behind";
pub const CONSUMER_LAG_MESSAGES: &str = "velostream_consumer_lag_messages";
pub const CONSUMER_LAG_ROWS: &str = "velostream_consumer_lag_rows";
/// Bytes the consumer holds (decoded messages queued, gathered and in
/// flight, encoded insert bodies): bounded by `--max-buffered-bytes`.
pub const CONSUMER_BUFFERED_BYTES: &str = "velostream_consumer_buffered_bytes";
/// Inserts the server refused as too large (memory limit of the query, too
/// many partitions) and that were split in two.
pub const CONSUMER_INSERT_SPLITS: &str = "velostream_consumer_insert_splits_total";
/// Inserts whose outcome was unknown (timeout, reset, server crash) and that
/// were checked against the table (exactly-once).
pub const CONSUMER_UNKNOWN_OUTCOMES: &str = "velostream_consumer_unknown_outcomes_total";
/// Inserts moved to another replica of their shard, per shard.
pub const CONSUMER_FAILOVERS: &str = "velostream_consumer_failovers_total";
/// Partly stored inserts that were deleted before being sent again
/// (exactly-once), after an unknown outcome or on assignment.
pub const CONSUMER_REPAIRS: &str = "velostream_consumer_repairs_total";

// Bench.
/// Rows counted in the target ClickHouse table by the bench's poller.
pub const CLICKHOUSE_ROWS: &str = "velostream_clickhouse_table_rows";

/// Every metric name, for documentation and for the dashboard test.
pub const ALL: &[&str] = &[
    PRODUCER_ROWS,
    PRODUCER_MESSAGES,
    PRODUCER_WIRE_BYTES,
    PRODUCER_RAW_BYTES,
    PRODUCER_ERRORS,
    PRODUCER_MESSAGE_SIZE,
    PRODUCER_SEND_LATENCY,
    CONSUMER_MESSAGES,
    CONSUMER_ROWS,
    CONSUMER_BYTES,
    CONSUMER_INSERTED_ROWS,
    CONSUMER_INSERTED_BYTES,
    CONSUMER_INSERTS,
    CONSUMER_INSERT_LATENCY,
    CONSUMER_INSERT_ROWS,
    CONSUMER_INSERTS_IN_FLIGHT,
    CONSUMER_RETRIES,
    CONSUMER_DEAD_LETTERS,
    CONSUMER_SCHEMA_CHANGES,
    CONSUMER_SCHEMA_REPLANS,
    CONSUMER_FLUSHES,
    CONSUMER_LANES_BEHIND,
    CONSUMER_LAG_MESSAGES,
    CONSUMER_LAG_ROWS,
    CONSUMER_BUFFERED_BYTES,
    CONSUMER_INSERT_SPLITS,
    CONSUMER_UNKNOWN_OUTCOMES,
    CONSUMER_REPAIRS,
    CONSUMER_FAILOVERS,
    CLICKHOUSE_ROWS,
];

/// Latency buckets in seconds (histograms, so Grafana can take p50/p99).
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Size buckets in bytes for message sizes.
const SIZE_BUCKETS: &[f64] = &[
    1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 524288.0, 1048576.0, 4194304.0, 16777216.0,
];
/// Row-count buckets for rows per insert.
const ROW_BUCKETS: &[f64] = &[
    1000.0, 10000.0, 50000.0, 100000.0, 250000.0, 500000.0, 1000000.0, 2000000.0,
];

/// Installs the global Prometheus recorder and serves `/metrics` on `addr`.
/// Without an address a recorder is still installed (so the code paths are
/// the same) but nothing listens. Calling it twice is harmless.
pub fn install(addr: Option<SocketAddr>) -> Result<()> {
    let builder = PrometheusBuilder::new();
    let builder = builder
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_size_bytes".into()), SIZE_BUCKETS))
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(CONSUMER_INSERT_ROWS.into()), ROW_BUCKETS)
        })
        .map_err(|e| Error::Config(format!("metrics buckets: {e}")))?;
    let result = match addr {
        Some(addr) => builder.with_http_listener(addr).install(),
        None => builder.install_recorder().map(|_| ()),
    };
    match result {
        Ok(()) => {
            register_all();
            Ok(())
        }
        // A recorder is already installed (second pipeline in one process).
        Err(metrics_exporter_prometheus::BuildError::FailedToSetGlobalRecorder(_)) => Ok(()),
        Err(e) => Err(Error::Config(format!("metrics exporter on {addr:?}: {e}"))),
    }
}

/// Registers every unlabeled metric at zero, so that a scrape taken before
/// the first event (or in a short run) already shows every series and rate
/// queries have a starting point.
fn register_all() {
    for &name in ALL {
        if name.ends_with("_total") {
            metrics::counter!(name).increment(0);
        } else if name.ends_with("_seconds")
            || name.ends_with("_size_bytes")
            || name == CONSUMER_INSERT_ROWS
        {
            // Registered histograms render with zero counts.
            let _ = metrics::histogram!(name);
        } else if name != CONSUMER_LAG_MESSAGES && name != CONSUMER_LAG_ROWS {
            // Lag gauges are per partition and appear with an assignment.
            metrics::gauge!(name).set(0.0);
        }
    }
}
