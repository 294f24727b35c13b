//! The one integration-test binary of the engine. Each area adds its module
//! here; `harness` holds the shared service helpers.

mod clickhouse_client;
mod consumer;
mod dashboard;
mod gen_taxi;
mod harness;
mod harness_selftest;
mod harness_services;
mod infra_files;
mod install_testdata;
mod ipc_pyarrow;
mod local_services;
mod native_chdb;
mod native_clickhouse;
mod producer;
mod reliability;
mod security;
mod source_discover;
mod source_fixtures;
mod source_schema;
mod source_testdata;
mod verify;
