//! The shared harness of the integration tests, one job per file:
//!
//! | file | job |
//! |---|---|
//! | `services.rs` | Kafka, ClickHouse and Prometheus for the tests: from the environment or started once per test process; a missing one fails the test with the install command |
//! | `tls.rs` | Kafka and ClickHouse with TLS and a throwaway CA (security tests) |
//! | `cmd.rs` | THE command builder for the `velostream` binary (clean environment, failures that show command, status, stdout and stderr; long-running members with signals and time limits) |
//! | `process.rs` | signals, liveness, peak memory and log tails of processes |
//! | `paths.rs` | the repository, the shared test data, the venv; unique names, free ports |
//! | `http.rs` | the blocking HTTP client (ureq) |
//! | `clickhouse.rs` | the one ClickHouse query client, `count`, TSV fields, [`TestDb`] |
//! | `kafka.rs` | topic creation, reading a topic back (partition, offset, headers), hand-made messages, committed offsets |
//! | `prometheus.rs` | scrape targets, PromQL queries, `/metrics` pages |
//! | `own_servers.rs` | a ClickHouse and a tansu owned by one test, to kill and restart |
//! | `data.rs` | THE taxi generator, THE seeded RNG, Parquet write/read |
//! | `pipeline.rs` | producing files to a topic, the `velostream consume` command of the scenarios |
//! | `compare.rs` | a taxi table against its source: key multisets and checksums |
//! | `values.rs` | a table against Arrow batches, value for value |
//! | `exactly_once.rs` | every message of the topic stored exactly once, whole |
//!
//! The names re-exported here are the stable API that every test module may
//! use (`harness::kafka_brokers()`, `clickhouse_url()`, `prometheus_url()`,
//! `unique_name()`, `create_topic()`, `TestDb`, `ch_query()`); the rest is
//! reached through its file (`harness::cmd::velostream()`, …).

pub mod clickhouse;
pub mod cmd;
pub mod compare;
pub mod data;
pub mod exactly_once;
pub mod http;
pub mod kafka;
pub mod own_servers;
pub mod paths;
pub mod pipeline;
pub mod process;
pub mod prometheus;
pub mod services;
pub mod tls;
pub mod values;

pub use crate::harness_services::*;
pub use clickhouse::{ch_query, ch_try_query, TestDb};
pub use kafka::create_topic;
pub use paths::{free_port, python_stdout, repo_root, shared_testdata, unique_name, venv_python};
pub use prometheus::{prom_query, prom_query_range, scrape, wait_for_scrape};
pub use services::{clickhouse_url, kafka_brokers, prometheus_url, INSTALL_COMMAND};
pub use tls::tls_services;
