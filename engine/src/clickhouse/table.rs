//! Table names: parsed from user input, printed as quoted SQL.

use std::fmt;

use velostream_codecs::ddl;

use crate::{Error, Result};

/// A table, optionally qualified by its database (otherwise the server's
/// current database).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TableRef {
    /// Database name, as stored by the server (unquoted).
    pub database: Option<String>,
    /// Table name, as stored by the server (unquoted).
    pub table: String,
}

impl TableRef {
    /// A table in `database` (or the current database when `None`).
    pub fn new(database: Option<&str>, table: &str) -> Self {
        TableRef {
            database: database.map(str::to_string),
            table: table.to_string(),
        }
    }

    /// Parses `table` or `db.table`. Each part is either bare (no dots,
    /// quotes, whitespace or control characters) or quoted with backticks or
    /// double quotes, where a backslash escapes the next character and a
    /// doubled quote stands for one quote: `` `my db`.`a.b` ``.
    pub fn parse(s: &str) -> Result<TableRef> {
        let bad = |why: String| Error::Config(format!("invalid table name {s:?}: {why}"));
        let mut parts: Vec<String> = Vec::new();
        let mut chars = s.trim().chars().peekable();
        loop {
            let mut part = String::new();
            match chars.peek().copied() {
                Some(q @ ('`' | '"')) => {
                    chars.next();
                    let mut closed = false;
                    while let Some(c) = chars.next() {
                        if c == '\\' {
                            match chars.next() {
                                Some(e) => part.push(e),
                                None => return Err(bad("dangling backslash".into())),
                            }
                        } else if c == q {
                            if chars.peek() == Some(&q) {
                                chars.next();
                                part.push(q);
                            } else {
                                closed = true;
                                break;
                            }
                        } else {
                            part.push(c);
                        }
                    }
                    if !closed {
                        return Err(bad(format!("unterminated {q} quote")));
                    }
                }
                _ => {
                    while let Some(&c) = chars.peek() {
                        if c == '.' {
                            break;
                        }
                        if c == '`' || c == '"' || c.is_whitespace() || c.is_control() {
                            return Err(bad(format!(
                                "character {c:?} must be inside a quoted name (`...`)"
                            )));
                        }
                        part.push(c);
                        chars.next();
                    }
                }
            }
            if part.is_empty() {
                return Err(bad("empty name part".into()));
            }
            parts.push(part);
            match chars.next() {
                None => break,
                Some('.') => continue,
                Some(c) => return Err(bad(format!("unexpected {c:?} after a quoted name"))),
            }
        }
        let mut parts = parts.into_iter();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(table), None, None) => Ok(TableRef {
                database: None,
                table,
            }),
            (Some(database), Some(table), None) => Ok(TableRef {
                database: Some(database),
                table,
            }),
            _ => Err(bad("expected table or database.table".into())),
        }
    }

    /// The quoted SQL name: `` `db`.`t` `` or `` `t` ``.
    pub fn sql(&self) -> Result<String> {
        Ok(ddl::qualified_table(self.database.as_deref(), &self.table)?)
    }
}

impl fmt::Display for TableRef {
    /// The quoted SQL name, for messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sql() {
            Ok(sql) => f.write_str(&sql),
            Err(_) => write!(f, "{:?}.{:?}", self.database, self.table),
        }
    }
}

impl std::str::FromStr for TableRef {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        TableRef::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(db: Option<&str>, table: &str) -> TableRef {
        TableRef::new(db, table)
    }

    #[test]
    fn parses_bare_and_quoted_names() {
        assert_eq!(TableRef::parse("trips").unwrap(), t(None, "trips"));
        assert_eq!(
            TableRef::parse("nyc.trips").unwrap(),
            t(Some("nyc"), "trips")
        );
        assert_eq!(
            TableRef::parse("`my db`.`a.b`").unwrap(),
            t(Some("my db"), "a.b")
        );
        assert_eq!(
            TableRef::parse(r#""x""y".`b\`q`"#).unwrap(),
            t(Some("x\"y"), "b`q")
        );
        assert_eq!(TableRef::parse("db.`t``t`").unwrap(), t(Some("db"), "t`t"));
        assert_eq!(TableRef::parse("ünï.cødé").unwrap(), t(Some("ünï"), "cødé"));
    }

    #[test]
    fn rejects_bad_names() {
        for s in [
            "", ".", "a.", ".b", "a.b.c", "a b", "`open", "`a`x", "a`b", "`a\\",
        ] {
            assert!(TableRef::parse(s).is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn sql_is_quoted() {
        let sql = t(Some("d"), "t").sql().unwrap();
        assert!(
            sql.contains('`') && sql.contains('d') && sql.contains('t'),
            "{sql}"
        );
        assert_eq!(t(Some("d"), "t").to_string(), sql);
    }
}
