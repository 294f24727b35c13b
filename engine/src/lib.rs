//! VeloStream engine: everything that touches the world.
//!
//! Parquet files ([`source`]), Kafka ([`kafka`], [`producer`], [`consumer`],
//! dead-letter tooling [`dlq`]),
//! ClickHouse over HTTP ([`clickhouse`]), Prometheus metrics ([`metrics`]),
//! the synthetic taxi data set ([`gen`]), the benchmark orchestrator
//! ([`bench`]) and the local service launcher ([`local`]). The `velostream`
//! binary is a thin `main` over [`cli`].

pub mod bench;
pub mod cli;
pub mod clickhouse;
pub mod consumer;
pub mod dlq;
pub mod error;
pub mod gen;
pub mod kafka;
pub mod local;
pub mod metrics;
pub mod producer;
pub mod progress;
pub mod source;
pub mod status;

pub use error::{Error, Result};
