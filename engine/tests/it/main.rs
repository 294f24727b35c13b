//! The one integration-test binary of the engine. `harness` holds the shared
//! helpers (services, the command builder, data, comparisons); every other
//! module is one area or scenario.

mod airflow_dags;
mod broker_restart;
mod clickhouse_client;
mod clickhouse_restart;
mod cluster;
mod code_shape;
mod consumer;
mod consumer_kills;
mod consumer_limits;
mod dashboard;
mod dependencies;
mod dlq_replay;
mod exactly_once_faults;
mod exactly_once_replicated;
mod fault_proxy;
mod file_to_table;
mod freshness;
mod gen_taxi;
mod harness;
mod harness_selftest;
mod harness_services;
mod hostile_names;
mod infra_files;
mod install_testdata;
mod ipc_pyarrow;
mod local_services;
mod native_chdb;
mod native_clickhouse;
mod packaging;
mod producer;
mod rebalance;
mod schema_evolution;
mod secrets;
mod security;
mod source_discover;
mod source_schema;
mod source_testdata;
mod status_cli;
mod type_matrix;
mod verify;
