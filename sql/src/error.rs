//! The one error type of the sql crate.
//!
//! Start-up errors (reading, parsing, validating and planning a transform) carry the
//! origin of the SQL text (the file path, or `<inline sql>`) and, where it can be
//! determined, the `line:column` of the offending token, formatted like a compiler
//! message: `transforms/x.sql:3:14: unknown column ...`.

use std::fmt;
use std::path::PathBuf;

/// Result alias of the sql crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A 1-based line and column inside the SQL text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// Line number, starting at 1.
    pub line: u64,
    /// Column number (in characters), starting at 1.
    pub column: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Formats `origin` plus an optional position as `origin:line:column`.
fn at(origin: &str, position: &Option<Position>) -> String {
    match position {
        Some(p) => format!("{origin}:{p}"),
        None => origin.to_string(),
    }
}

/// Every error of the sql crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The transform file could not be read.
    #[error("{}: cannot read SQL transform file: {source}", path.display())]
    Io {
        /// The file that was being read.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// The SQL text does not parse.
    #[error("{}: SQL syntax error: {message}", at(origin, position))]
    Syntax {
        /// File path or `<inline sql>`.
        origin: String,
        /// Where the parser stopped, when known.
        position: Option<Position>,
        /// The parser's message (without its own location suffix).
        message: String,
    },

    /// The SQL parses but is not a single read-only SELECT over `input`
    /// (DDL, DML, COPY, SET, EXPLAIN, several statements, other tables, ...).
    #[error(
        "{}: statement not allowed in a transform: {message}",
        at(origin, position)
    )]
    Rejected {
        /// File path or `<inline sql>`.
        origin: String,
        /// Where the rejected construct starts, when known.
        position: Option<Position>,
        /// What was rejected and why.
        message: String,
    },

    /// The SELECT could not be planned against the input schema (unknown column,
    /// unknown function, type error, ...).
    #[error("{}: cannot plan transform: {message}", at(origin, position))]
    Plan {
        /// File path or `<inline sql>`.
        origin: String,
        /// Position of the offending identifier, when known.
        position: Option<Position>,
        /// DataFusion's message.
        message: String,
    },

    /// A batch given to [`crate::Transform::apply`] does not fit the schema the
    /// transform was planned against.
    #[error("transform {origin}: input batch does not match the planned schema: {message}")]
    InputSchema {
        /// File path or `<inline sql>`.
        origin: String,
        /// Which column is missing or has another type.
        message: String,
    },

    /// Executing the planned transform on a batch failed (e.g. a cast overflow).
    #[error("transform {origin}: execution failed: {message}")]
    Execution {
        /// File path or `<inline sql>`.
        origin: String,
        /// DataFusion's message.
        message: String,
    },
}

impl Error {
    /// The `line:column` position attached to this error, if any.
    pub fn position(&self) -> Option<Position> {
        match self {
            Error::Syntax { position, .. }
            | Error::Rejected { position, .. }
            | Error::Plan { position, .. } => *position,
            _ => None,
        }
    }
}
