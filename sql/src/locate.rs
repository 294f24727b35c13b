//! Finding the `line:column` of a planning error in the SQL text.
//!
//! DataFusion attaches a [`Diagnostic`](datafusion::common::Diagnostic) with a span to
//! some errors (spans are collected, see `session::config`). When it does not, the
//! offending name is taken from the error (unknown column, table or function) and the
//! first identifier token with that name is located in the text.

use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::error::{Error, Position};
use crate::validate::{span_position, tokens};

/// Converts a DataFusion planning error into [`Error::Plan`] with the best position known.
pub(crate) fn plan_error(err: DataFusionError, sql: &str, origin: &str) -> Error {
    let position = err
        .diagnostic()
        .and_then(|d| d.span)
        .and_then(|span| {
            (span.start.line > 0).then_some(Position {
                line: span.start.line,
                column: span.start.column,
            })
        })
        .or_else(|| offending_name(&err).and_then(|name| find_identifier(sql, &name)));
    Error::Plan {
        origin: origin.to_string(),
        position,
        message: err.strip_backtrace(),
    }
}

/// The identifier an error complains about, if it names one.
fn offending_name(err: &DataFusionError) -> Option<String> {
    for e in err.iter() {
        if let DataFusionError::SchemaError(schema_error, _) = e {
            if let SchemaError::FieldNotFound { field, .. } = schema_error.as_ref() {
                return Some(field.name.clone());
            }
        }
    }
    // e.g. "table 'datafusion.public.trips' not found", "Invalid function 'foo'".
    let message = err.find_root().message().into_owned();
    let start = message.find('\'')? + 1;
    let len = message[start..].find('\'')?;
    let quoted = &message[start..start + len];
    let last = quoted.rsplit('.').next().unwrap_or(quoted);
    (!last.is_empty()).then(|| last.to_string())
}

/// Position of the first identifier token spelling `name` (exact for quoted
/// identifiers, case-insensitive for unquoted ones).
pub(crate) fn find_identifier(sql: &str, name: &str) -> Option<Position> {
    tokens(sql).into_iter().find_map(|t| match &t.token {
        Token::Word(w)
            if (w.quote_style.is_some() && w.value == name)
                || (w.quote_style.is_none() && w.value.eq_ignore_ascii_case(name)) =>
        {
            span_position(t.span)
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_found_by_token_not_substring() {
        let sql = "SELECT fare_amount,\n  \"tip\" + fare AS total\nFROM input";
        // "fare" as a substring of fare_amount must not match; the token on line 2 does.
        assert_eq!(
            find_identifier(sql, "fare"),
            Some(Position {
                line: 2,
                column: 11
            })
        );
        assert_eq!(
            find_identifier(sql, "tip"),
            Some(Position { line: 2, column: 3 })
        );
        assert_eq!(find_identifier(sql, "missing"), None);
    }
}
