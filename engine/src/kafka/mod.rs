//! Kafka plumbing shared by the producer and the consumer: client settings
//! (brokers, security, pass-through options), topic administration, and
//! reading a topic's partitions up to the end they had ([`read`]).

pub mod admin;
pub mod config;
pub mod read;
pub mod watermarks;

pub use config::KafkaArgs;
