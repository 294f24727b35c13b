//! DataFusion SQL transforms applied by the consumer to every incoming Arrow batch.
//!
//! A transform is one SELECT over the table `input` (see `sql/transforms/*.sql`). It is
//! validated and planned **once** against the topic's schema ([`Transform::from_file`],
//! [`Transform::from_sql`]); [`Transform::apply`] then binds each batch to the planned
//! tree's `input` leaf and executes partition 0, without planning again.
//!
//! The planning session registers no table functions, file formats or table factories,
//! so a transform cannot read files; only a single SELECT is accepted
//! ([`validate_single_select`]). This crate opens no network connections.

pub mod error;
mod locate;
mod session;
mod source;
mod transform;
mod validate;

pub use error::{Error, Position, Result};
pub use transform::Transform;
pub use validate::{validate_single_select, INPUT_TABLE};
