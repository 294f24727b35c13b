//! Kafka plumbing shared by the producer and the consumer: client settings
//! (brokers, security, pass-through options) and topic administration.

pub mod admin;
pub mod config;

pub use config::KafkaArgs;
