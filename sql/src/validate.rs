//! Parsing and static checks: a transform is exactly one read-only SELECT over `input`.
//!
//! Accepted: `SELECT ...`, `WITH ... SELECT ...`, set operations of selects (`UNION`,
//! `INTERSECT`, `EXCEPT`), sub-queries and joins of `input` with itself or with CTEs.
//! Rejected with a position: several statements, DDL, DML, `COPY`, `SET`, `EXPLAIN`,
//! `SELECT ... INTO`, table functions (`read_parquet(...)`, `generate_series(...)`, ...)
//! and any table other than `input` or a CTE.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::error::DataFusionError;
use datafusion::sql::parser::{DFParserBuilder, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{
    ObjectName, ObjectNamePart, Query, Select, Spanned, Statement, TableFactor, Visit, Visitor,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::ParserError;
use datafusion::sql::sqlparser::tokenizer::{Span, Token, Tokenizer};

use crate::error::{Error, Position, Result};

/// Name of the only table a transform may read.
pub const INPUT_TABLE: &str = "input";

/// Origin label used in errors for SQL that did not come from a file.
pub(crate) const INLINE_ORIGIN: &str = "<inline sql>";

/// Nesting limit for the SQL parser (protects the stack against hostile input).
const RECURSION_LIMIT: usize = 64;

/// Checks that `sql` is exactly one SELECT (optionally `WITH ...`, set operations of
/// selects) that reads only the table `input`, without planning it.
///
/// Errors carry the `line:column` of the offending token.
pub fn validate_single_select(sql: &str) -> Result<()> {
    parse_single_select(sql, INLINE_ORIGIN).map(|_| ())
}

/// Parses `sql` and returns its single query statement after all static checks.
pub(crate) fn parse_single_select(sql: &str, origin: &str) -> Result<DFStatement> {
    let dialect = GenericDialect {};
    let mut statements = DFParserBuilder::new(sql)
        .with_dialect(&dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .build()
        .and_then(|mut parser| parser.parse_statements())
        .map_err(|e| syntax_error(e, sql, origin))?;

    let rejected = |position: Option<Position>, message: String| Error::Rejected {
        origin: origin.to_string(),
        position,
        message,
    };

    let statement = match statements.len() {
        0 => {
            return Err(rejected(
                None,
                "the file holds no statement; a transform is one SELECT over `input`".into(),
            ))
        }
        1 => statements.pop_front().expect("one statement"),
        n => {
            return Err(rejected(
                second_statement_position(sql),
                format!("found {n} statements; a transform is exactly one SELECT over `input`"),
            ))
        }
    };

    // Anything but a query is rejected, including DataFusion's CREATE EXTERNAL TABLE,
    // COPY, EXPLAIN and RESET extensions.
    let query = match &statement {
        DFStatement::Statement(s) => match s.as_ref() {
            Statement::Query(q) => Some(q.clone()),
            _ => None,
        },
        _ => None,
    };
    let Some(query) = query else {
        return Err(rejected(
            first_token_position(sql),
            format!(
                "{} statement; only a single SELECT (optionally WITH ... or UNION) is allowed",
                leading_keywords(sql)
            ),
        ));
    };

    let mut checker = QueryChecker {
        sql,
        cte_names: HashSet::new(),
    };
    checker.collect_cte_names(&query);
    if let ControlFlow::Break((position, message)) = query.visit(&mut checker) {
        return Err(rejected(position, message));
    }
    Ok(statement)
}

/// Walks the query AST and stops at the first forbidden construct.
struct QueryChecker<'a> {
    /// The SQL text, to locate nodes that carry no span.
    sql: &'a str,
    /// Lower-cased (for unquoted) names of every CTE declared anywhere in the query.
    cte_names: HashSet<String>,
}

impl QueryChecker<'_> {
    fn collect_cte_names(&mut self, query: &Query) {
        struct Ctes<'a>(&'a mut HashSet<String>);
        impl Visitor for Ctes<'_> {
            type Break = ();
            fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
                if let Some(with) = &query.with {
                    for cte in &with.cte_tables {
                        self.0.insert(normalized(&cte.alias.name));
                    }
                }
                ControlFlow::Continue(())
            }
        }
        let _ = query.visit(&mut Ctes(&mut self.cte_names));
    }
}

/// Identifier as DataFusion resolves it: unquoted names are folded to lower case.
fn normalized(ident: &datafusion::sql::sqlparser::ast::Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

type Rejection = (Option<Position>, String);

impl Visitor for QueryChecker<'_> {
    type Break = Rejection;

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<Rejection> {
        if matches!(statement, Statement::Query(_)) {
            return ControlFlow::Continue(());
        }
        let text = statement.to_string();
        let keyword = text.split_whitespace().next().unwrap_or("?").to_uppercase();
        ControlFlow::Break((
            span_position(statement.span()),
            format!("nested {keyword} statement; a transform may only read `input`"),
        ))
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<Rejection> {
        if let Some(into) = &select.into {
            return ControlFlow::Break((
                span_position(into.name.span()).or_else(|| span_position(select.span())),
                "SELECT ... INTO creates a table; a transform may only read `input`".into(),
            ));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<Rejection> {
        let function_like = match factor {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            } => Some(name.to_string()),
            TableFactor::Table { name, .. } => {
                return self.check_table_name(name);
            }
            TableFactor::TableFunction { expr, .. } => Some(expr.to_string()),
            TableFactor::Function { name, .. } => Some(name.to_string()),
            TableFactor::JsonTable { .. } => Some("JSON_TABLE".into()),
            TableFactor::OpenJsonTable { .. } => Some("OPENJSON".into()),
            TableFactor::XmlTable { .. } => Some("XMLTABLE".into()),
            TableFactor::SemanticView { name, .. } => Some(name.to_string()),
            _ => None,
        };
        match function_like {
            Some(name) => ControlFlow::Break((
                self.locate(factor, &name),
                format!(
                    "table function `{name}` is not allowed; a transform may only read `{INPUT_TABLE}`"
                ),
            )),
            None => ControlFlow::Continue(()),
        }
    }
}

impl QueryChecker<'_> {
    /// Start of `node`, or of the first token spelled `text` when the node has no span.
    fn locate(&self, node: &impl Spanned, text: &str) -> Option<Position> {
        span_position(node.span()).or_else(|| {
            tokens(self.sql)
                .into_iter()
                .find(|t| t.token.to_string() == text)
                .and_then(|t| span_position(t.span))
        })
    }

    fn check_table_name(&self, name: &ObjectName) -> ControlFlow<Rejection> {
        let last = match name.0.last() {
            Some(ObjectNamePart::Identifier(ident)) => ident,
            _ => {
                return ControlFlow::Break((
                    self.locate(name, &name.to_string()),
                    format!(
                        "table `{name}` is not allowed; a transform may only read `{INPUT_TABLE}`"
                    ),
                ))
            }
        };
        let resolved = normalized(last);
        let is_cte = name.0.len() == 1 && self.cte_names.contains(&resolved);
        if resolved == INPUT_TABLE || is_cte {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break((
                self.locate(name, &name.to_string()),
                format!("table `{name}` is not allowed; a transform may only read `{INPUT_TABLE}` (and its own CTEs)"),
            ))
        }
    }
}

/// Converts a parser failure into [`Error::Syntax`], moving sqlparser's
/// ` at Line: L, Column: C` suffix into the position.
fn syntax_error(err: DataFusionError, sql: &str, origin: &str) -> Error {
    let raw = match err.find_root() {
        DataFusionError::SQL(parser_error, _) => match parser_error.as_ref() {
            ParserError::TokenizerError(m) | ParserError::ParserError(m) => m.clone(),
            ParserError::RecursionLimitExceeded => {
                format!("query nests deeper than {RECURSION_LIMIT} levels")
            }
        },
        other => other.message().into_owned(),
    };
    let (message, mut position) = split_location_suffix(&raw);
    if position.is_none() && message.ends_with("found: EOF") {
        // sqlparser gives no location for a premature end: point just past the last token.
        position = tokens(sql).last().and_then(|t| {
            (t.span.end.line > 0).then_some(Position {
                line: t.span.end.line,
                column: t.span.end.column,
            })
        });
    }
    Error::Syntax {
        origin: origin.to_string(),
        position,
        message,
    }
}

/// Splits `"... at Line: 3, Column: 14"` into the message and the position.
pub(crate) fn split_location_suffix(raw: &str) -> (String, Option<Position>) {
    const MARK: &str = " at Line: ";
    if let Some(idx) = raw.rfind(MARK) {
        let tail = &raw[idx + MARK.len()..];
        if let Some((line, column)) = tail.split_once(", Column: ") {
            if let (Ok(line), Ok(column)) = (line.trim().parse(), column.trim().parse()) {
                return (raw[..idx].to_string(), Some(Position { line, column }));
            }
        }
    }
    (raw.to_string(), None)
}

/// Position of the start of `span`, or `None` for the empty span sqlparser uses when
/// it does not know.
pub(crate) fn span_position(span: Span) -> Option<Position> {
    (span.start.line > 0).then_some(Position {
        line: span.start.line,
        column: span.start.column,
    })
}

/// Tokens of `sql` without whitespace and comments (empty if it does not tokenize).
pub(crate) fn tokens(sql: &str) -> Vec<datafusion::sql::sqlparser::tokenizer::TokenWithSpan> {
    let dialect = GenericDialect {};
    Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .unwrap_or_default()
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect()
}

fn first_token_position(sql: &str) -> Option<Position> {
    tokens(sql).first().and_then(|t| span_position(t.span))
}

/// The first one or two keywords of the statement, upper-cased (`CREATE TABLE`, `INSERT INTO`).
fn leading_keywords(sql: &str) -> String {
    let words: Vec<String> = tokens(sql)
        .into_iter()
        .take(2)
        .filter_map(|t| match t.token {
            Token::Word(w) => Some(w.value.to_uppercase()),
            _ => None,
        })
        .collect();
    if words.is_empty() {
        "non-SELECT".into()
    } else {
        words.join(" ")
    }
}

/// Position of the first token after the first `;` that is followed by more SQL.
fn second_statement_position(sql: &str) -> Option<Position> {
    let toks = tokens(sql);
    toks.iter()
        .position(|t| t.token == Token::SemiColon)
        .and_then(|i| toks[i + 1..].iter().find(|t| t.token != Token::SemiColon))
        .and_then(|t| span_position(t.span))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_suffix_is_split() {
        let (m, p) = split_location_suffix("Expected: x, found: y at Line: 3, Column: 14");
        assert_eq!(m, "Expected: x, found: y");
        assert_eq!(
            p,
            Some(Position {
                line: 3,
                column: 14
            })
        );
        let (m, p) = split_location_suffix("no location here");
        assert_eq!(m, "no location here");
        assert_eq!(p, None);
    }

    #[test]
    fn second_statement_is_located() {
        let p = second_statement_position("SELECT 1 FROM input;\n  SELECT 2 FROM input");
        assert_eq!(p, Some(Position { line: 2, column: 3 }));
    }
}
