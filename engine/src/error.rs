//! The one error type of the engine library. The binary prints it and maps it to an exit code (`main.rs`); no error is erased along the way.

use std::path::PathBuf;

/// Every failure the engine reports. Each variant names what failed: the
/// file, column, topic, partition, offset or endpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A Parquet file could not be read or decoded.
    #[error("{}: {message}", path.display())]
    Input { path: PathBuf, message: String },

    /// Input schemas cannot be unified into the target schema.
    #[error("{}: column {column:?}: {message}", path.display())]
    Schema {
        path: PathBuf,
        column: String,
        message: String,
    },

    /// A codec failed (IPC, Native, mapping, DDL).
    #[error(transparent)]
    Codec(#[from] velostream_codecs::CodecError),

    /// A SQL transform failed to plan or to run.
    #[error(transparent)]
    Sql(#[from] velostream_sql::Error),

    /// Kafka client error, with what was being done.
    #[error("Kafka: {context}: {source}")]
    Kafka {
        context: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },

    /// ClickHouse returned an error or could not be reached.
    #[error("ClickHouse: {context}: {message}")]
    ClickHouse {
        context: String,
        message: String,
        /// ClickHouse exception code, when the server sent one.
        code: Option<u32>,
        /// Whether retrying the same request may succeed.
        transient: bool,
    },

    /// Invalid configuration or command-line arguments.
    #[error("configuration: {0}")]
    Config(String),

    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// Arrow compute or cast error, with what was being done.
    #[error("{context}: {source}")]
    Arrow {
        context: String,
        #[source]
        source: arrow_schema::ArrowError,
    },

    /// Local services could not be installed, started or reached.
    #[error("local services: {0}")]
    Services(String),

    /// A program a local service needs is not installed (`velostream local`).
    #[error(
        "local services: {service}: {what} is not installed; {}",
        crate::local::INSTALL_HINT
    )]
    NotInstalled { service: String, what: String },

    /// A benchmark or pipeline validation failed.
    #[error("validation failed: {0}")]
    Validation(String),

    /// The table cannot follow a message's schema (`--evolve`): the message
    /// is a dead letter, the table stays as it was.
    #[error("schema change: {0}")]
    SchemaChange(String),

    /// Delivery could not be confirmed for some messages.
    #[error("delivery: {0}")]
    Delivery(String),

    /// The run was interrupted (Ctrl-C / SIGTERM) before it completed.
    #[error("interrupted: {0}")]
    Interrupted(String),
}

/// Result alias for the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for an [`Error::Io`] with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Shorthand for an [`Error::Kafka`] with context.
    pub fn kafka(context: impl Into<String>, source: rdkafka::error::KafkaError) -> Self {
        Error::Kafka {
            context: context.into(),
            source,
        }
    }
}
