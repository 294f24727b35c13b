//! The one error type of the codecs crate.

use arrow_schema::ArrowError;

/// Every failure a codec can report. Messages name the column, header or
/// limit involved so that the engine can pass them on unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The bytes are not a well-formed Arrow IPC stream.
    #[error("malformed Arrow IPC stream: {0}")]
    MalformedIpc(String),

    /// A length or count in the input exceeds a configured decoding limit.
    #[error("Arrow IPC stream exceeds a limit: {what} is {got}, the limit is {limit}")]
    LimitExceeded {
        what: &'static str,
        got: u64,
        limit: u64,
    },

    /// Arrow itself reported an error while encoding or decoding.
    #[error("Arrow error while {context}: {source}")]
    Arrow {
        context: &'static str,
        #[source]
        source: ArrowError,
    },

    /// A VeloStream Kafka header is present but invalid.
    #[error("invalid VeloStream header {header:?}: {reason}")]
    Envelope { header: String, reason: String },

    /// An Arrow type that has no ClickHouse mapping.
    #[error("column {column:?}: Arrow type {arrow_type} has no ClickHouse mapping{hint}")]
    UnsupportedType {
        column: String,
        arrow_type: String,
        hint: String,
    },

    /// A column's values cannot be written faithfully into its target type.
    #[error("column {column:?}: {reason}")]
    Column { column: String, reason: String },

    /// A ClickHouse type string that could not be parsed.
    #[error("cannot parse ClickHouse type {input:?}: {reason}")]
    TypeParse { input: String, reason: String },

    /// An identifier that cannot be used (for example an empty name).
    #[error("invalid identifier {ident:?}: {reason}")]
    Identifier { ident: String, reason: String },

    /// A batch does not fit the target (missing or extra columns).
    #[error("schema mismatch: {0}")]
    SchemaMismatch(String),

    /// JSON encoding or decoding of the per-row baseline failed.
    #[error("JSON row codec: {0}")]
    Json(String),
}

/// Result alias for the codecs crate.
pub type Result<T, E = CodecError> = std::result::Result<T, E>;
