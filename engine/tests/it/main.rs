//! The one integration-test binary of the engine. Each area adds its module
//! here; `harness` holds the shared service helpers.

mod harness;
mod harness_selftest;
mod dashboard;
mod gen_taxi;
mod source_discover;
mod source_fixtures;
mod source_schema;
mod source_testdata;
mod clickhouse_client;
mod native_clickhouse;
mod native_chdb;
mod infra_files;
mod producer;
mod reliability;
mod consumer;
mod ipc_pyarrow;
