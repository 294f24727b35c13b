//! ClickHouse over HTTP: connection settings, metadata queries, Native
//! inserts and the retry classification of failures.
//!
//! Layout follows vector's `sinks/clickhouse`: [`config`] holds what the user
//! sets, [`service`] does the requests, [`retry`] decides which failures are
//! transient. [`table`], [`version`] and [`tsv`] are small helpers.
//!
//! Works against ClickHouse 18.16 (the Debian package on the dev machines)
//! and modern servers: no typed row fetches (18.16 lacks
//! `RowBinaryWithNamesAndTypes`), only raw statements, `TSV` results and
//! `FORMAT Native` inserts with ClickHouse's LZ4 block compression.
//!
//! Credentials: user and password come from [`ClickHouseConfig`]; a URL with
//! `user:pass@` is rejected. The password is a [`Secret`] and is redacted from
//! every error message.

pub mod cluster;
pub mod config;
pub mod retry;
pub mod service;
pub mod shard;
pub mod table;
pub mod topology;
pub mod tsv;
pub mod version;

pub use config::{ClickHouseConfig, InsertCompression, Secret, DEFAULT_TIMEOUT};
pub use retry::{is_transient_code, parse_code};
pub use service::{ClickHouse, InsertOptions};
pub use shard::Shard;
pub use table::TableRef;
pub use topology::Topology;
pub use version::ServerVersion;
