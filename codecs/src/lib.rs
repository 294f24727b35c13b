//! Pure, synchronous codecs for VeloStream.
//!
//! This crate turns values into bytes and bytes into values; it never does I/O,
//! never spawns threads and never depends on tokio, rdkafka, HTTP or DataFusion
//! (`cargo tree -p velostream-codecs -e normal` proves it; a test checks it).
//!
//! - [`ipc`]: one Kafka message value = one standard Arrow IPC stream.
//! - [`envelope`]: the versioned per-message metadata carried in Kafka headers.
//! - [`chtype`]: ClickHouse type names parsed into values and printed back.
//! - [`mapping`]: Arrow → ClickHouse type mapping for modern and legacy servers.
//! - [`native`]: RecordBatch → ClickHouse Native block, column by column.
//! - [`ddl`]: identifier quoting and `CREATE TABLE` generation.
//! - [`json_rows`]: the per-row JSON baseline codec of the original design.

pub mod chtype;
pub mod ddl;
pub mod envelope;
pub mod error;
pub mod evolve;
pub mod ipc;
pub mod json_rows;
pub mod mapping;
pub mod memory;
pub mod native;

pub use error::{CodecError, Result};
