//! The consumer's decisions, without I/O.
//!
//! Each type here is a small state machine driven by the consumer thread or
//! an insert lane (the tokio and rdkafka code around them only moves data
//! and calls them), in the style of arrow-ipc's `StreamDecoder`: explicit
//! state, plain method calls, unit tests for every transition.
//!
//! - [`batcher`]: when a lane sends its insert (rows, bytes, age, quiet
//!   input, and the lane's feed: behind, flowing or caught up).
//! - [`backlog`]: whether a whole insert waits for a lane (Kafka's lag from
//!   the offsets taken and the fetch responses' high watermarks, plus the
//!   messages queued inside the consumer).
//! - [`spans`]: which offsets of which partitions an insert covers.
//! - [`offsets`]: stored and committed offsets across assignments,
//!   revocations, lost assignments and commit answers; lane ownership.
//! - [`verdict`]: exactly-once: what the table holds of an insert, and where
//!   a newly assigned partition resumes.
//! - [`attempts`]: retry, verify, repair, split, dead-letter or stop after a
//!   failed insert; pacing under "too many parts"; how long an unanswered
//!   insert's body may still arrive (`InTransit`).
//! - [`budget`]: the byte bound on what the consumer holds.
//! - [`sources`]: file-to-table exactly-once (source slices stored once).

pub mod attempts;
pub mod backlog;
pub mod batcher;
pub mod budget;
pub mod offsets;
pub mod sources;
pub mod spans;
pub mod verdict;
