//! Identifier quoting and `CREATE TABLE` generation for ClickHouse.
//!
//! Every identifier that reaches SQL goes through [`quote_ident`]; names are
//! never pasted into statements unescaped, so hostile column names
//! (backticks, quotes, newlines, keywords, unicode) round-trip unchanged.

use std::fmt::Write as _;

use crate::chtype::ChType;
use crate::{CodecError, Result};

/// Quotes `name` as a ClickHouse identifier: wrapped in backticks, with
/// backslash, backtick, quotes and control characters escaped.
/// An empty name is refused with [`CodecError::Identifier`].
pub fn quote_ident(name: &str) -> Result<String> {
    if name.is_empty() {
        return Err(CodecError::Identifier {
            ident: String::new(),
            reason: "identifiers must not be empty".into(),
        });
    }
    let mut out = String::with_capacity(name.len() + 2);
    out.push('`');
    escape_into(&mut out, name);
    out.push('`');
    Ok(out)
}

/// Quotes `s` as a single-quoted ClickHouse string literal, escaping
/// backslash, quotes and control characters.
pub fn quote_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    escape_into(&mut out, s);
    out.push('\'');
    out
}

/// Backslash escaping understood by ClickHouse inside both `'...'` and
/// `` `...` `` (the same reader handles both).
fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '`' => out.push_str("\\`"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// `db.table` (or just `table`) with both parts quoted.
pub fn qualified_table(database: Option<&str>, table: &str) -> Result<String> {
    let t = quote_ident(table)?;
    Ok(match database {
        Some(db) => format!("{}.{t}", quote_ident(db)?),
        None => t,
    })
}

/// A `CREATE TABLE ... ENGINE = MergeTree` statement.
#[derive(Clone, Debug)]
pub struct CreateTable<'a> {
    /// Database, or the session default when `None`.
    pub database: Option<&'a str>,
    /// Table name.
    pub table: &'a str,
    /// Columns in order, with their ClickHouse types.
    pub columns: &'a [(String, ChType)],
    /// Sorting key columns; `ORDER BY tuple()` when empty.
    pub order_by: &'a [String],
    /// Emit `IF NOT EXISTS`.
    pub if_not_exists: bool,
}

/// The engine of a created table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableEngine {
    /// `MergeTree`.
    MergeTree,
    /// `ReplicatedMergeTree('/clickhouse/tables/{shard}/<db>.<table>', '{replica}')`:
    /// the ZooKeeper path and replica name come from each server's `macros`.
    ReplicatedMergeTree,
}

impl CreateTable<'_> {
    /// Renders the statement with `ENGINE = MergeTree`. Refuses empty or
    /// duplicate column names, an empty column list, and sorting keys that
    /// are not columns.
    pub fn to_sql(&self) -> Result<String> {
        self.render(&TableEngine::MergeTree, &[])
    }

    /// Like [`CreateTable::to_sql`], with `COMMENT '...'` on the columns
    /// named in `comments` (`(column, comment)`, for example from
    /// `mapping::table_comments`); comments for other names are ignored.
    pub fn to_sql_with_comments(&self, comments: &[(String, String)]) -> Result<String> {
        self.render(&TableEngine::MergeTree, comments)
    }

    /// The statement with `engine` and column `comments`.
    pub fn render(&self, engine: &TableEngine, comments: &[(String, String)]) -> Result<String> {
        let table = qualified_table(self.database, self.table)?;
        if self.columns.is_empty() {
            return Err(CodecError::SchemaMismatch(format!(
                "table {table} needs at least one column"
            )));
        }
        let mut sql = String::from("CREATE TABLE ");
        if self.if_not_exists {
            sql.push_str("IF NOT EXISTS ");
        }
        sql.push_str(&table);
        sql.push_str("\n(\n");
        for (i, (name, ty)) in self.columns.iter().enumerate() {
            if self.columns[..i].iter().any(|(n, _)| n == name) {
                return Err(CodecError::Identifier {
                    ident: name.clone(),
                    reason: format!("duplicate column name in table {table}"),
                });
            }
            ty.validate().map_err(|reason| CodecError::Column {
                column: name.clone(),
                reason: format!("invalid ClickHouse type {ty}: {reason}"),
            })?;
            let sep = if i + 1 < self.columns.len() { "," } else { "" };
            let comment = comments
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, c)| format!(" COMMENT {}", quote_string(c)))
                .unwrap_or_default();
            let _ = writeln!(sql, "    {} {ty}{comment}{sep}", quote_ident(name)?);
        }
        match engine {
            TableEngine::MergeTree => sql.push_str(")\nENGINE = MergeTree\nORDER BY "),
            TableEngine::ReplicatedMergeTree => {
                let path = format!(
                    "/clickhouse/tables/{{shard}}/{}.{}",
                    self.database.unwrap_or("default"),
                    self.table
                );
                let _ = write!(
                    sql,
                    ")\nENGINE = ReplicatedMergeTree({}, '{{replica}}')\nORDER BY ",
                    quote_string(&path)
                );
            }
        }
        if self.order_by.is_empty() {
            sql.push_str("tuple()");
        } else {
            let mut keys = Vec::with_capacity(self.order_by.len());
            for key in self.order_by {
                if !self.columns.iter().any(|(n, _)| n == key) {
                    return Err(CodecError::Identifier {
                        ident: key.clone(),
                        reason: format!("ORDER BY column is not a column of table {table}"),
                    });
                }
                keys.push(quote_ident(key)?);
            }
            if keys.len() == 1 {
                sql.push_str(&keys[0]);
            } else {
                let _ = write!(sql, "({})", keys.join(", "));
            }
        }
        Ok(sql)
    }
}

/// `CREATE TABLE IF NOT EXISTS <distributed> AS <local> ENGINE =
/// Distributed(<cluster>, <db>, <local>, rand())`: a table that reads (and
/// would spread inserts) across every shard of `cluster`.
pub fn create_distributed(
    cluster: &str,
    database: &str,
    local: &str,
    distributed: &str,
) -> Result<String> {
    if cluster.is_empty() {
        return Err(CodecError::Identifier {
            ident: String::new(),
            reason: "the cluster name must not be empty".into(),
        });
    }
    Ok(format!(
        "CREATE TABLE IF NOT EXISTS {} AS {} ENGINE = Distributed({}, {}, {}, rand())",
        qualified_table(Some(database), distributed)?,
        qualified_table(Some(database), local)?,
        quote_string(cluster),
        quote_string(database),
        quote_string(local)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicated_and_distributed_tables() {
        let cols = vec![("id".to_string(), ChType::UInt64)];
        let ct = CreateTable {
            database: Some("d'b"),
            table: "t",
            columns: &cols,
            order_by: &[],
            if_not_exists: true,
        };
        let sql = ct.render(&TableEngine::ReplicatedMergeTree, &[]).unwrap();
        assert!(
            sql.contains(
                "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/d\\'b.t', '{replica}')"
            ),
            "{sql}"
        );
        assert_eq!(
            ct.to_sql().unwrap(),
            ct.render(&TableEngine::MergeTree, &[]).unwrap()
        );
        let d = create_distributed("velostream", "db", "t", "t_distributed").unwrap();
        assert_eq!(
            d,
            "CREATE TABLE IF NOT EXISTS `db`.`t_distributed` AS `db`.`t` ENGINE = \
             Distributed('velostream', 'db', 't', rand())"
        );
        assert!(create_distributed("", "db", "t", "u").is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a").unwrap(), "`a`");
        assert_eq!(quote_ident("a`b").unwrap(), "`a\\`b`");
        assert_eq!(quote_ident("a\\b").unwrap(), "`a\\\\b`");
        assert_eq!(quote_ident("line\nbreak").unwrap(), "`line\\nbreak`");
        assert_eq!(quote_ident("tab\there").unwrap(), "`tab\\there`");
        assert_eq!(quote_ident("it's").unwrap(), "`it\\'s`");
        assert_eq!(quote_ident("bell\u{7}").unwrap(), "`bell\\x07`");
        assert_eq!(quote_ident("SELECT").unwrap(), "`SELECT`");
        assert_eq!(quote_ident("名前 ü").unwrap(), "`名前 ü`");
        let e = quote_ident("").unwrap_err().to_string();
        assert!(e.contains("must not be empty"), "{e}");
        assert_eq!(quote_string("o'k\\"), "'o\\'k\\\\'");
        assert_eq!(qualified_table(Some("d b"), "t`").unwrap(), "`d b`.`t\\``");
        assert_eq!(qualified_table(None, "t").unwrap(), "`t`");
        assert!(qualified_table(Some(""), "t").is_err());
    }

    #[test]
    fn quoted_identifiers_never_contain_raw_specials() {
        let nasty = "a`b\\c'd\"e\nf\rg\th\0i\u{1b}j";
        let q = quote_ident(nasty).unwrap();
        let inner = &q[1..q.len() - 1];
        // Every backtick inside is escaped, and no control character remains.
        assert!(!inner.chars().any(|c| c.is_control()), "{q:?}");
        let bytes = inner.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'`' {
                let backslashes = bytes[..i].iter().rev().take_while(|c| **c == b'\\').count();
                assert_eq!(backslashes % 2, 1, "unescaped backtick in {q:?}");
            }
        }
    }

    #[test]
    fn create_table() {
        let cols = vec![
            ("id".to_string(), ChType::UInt64),
            (
                "we`ird\nname".to_string(),
                ChType::Nullable(Box::new(ChType::String)),
            ),
        ];
        let sql = CreateTable {
            database: Some("db"),
            table: "t",
            columns: &cols,
            order_by: &[],
            if_not_exists: true,
        }
        .to_sql()
        .unwrap();
        assert_eq!(
            sql,
            "CREATE TABLE IF NOT EXISTS `db`.`t`\n(\n    `id` UInt64,\n    `we\\`ird\\nname` Nullable(String)\n)\nENGINE = MergeTree\nORDER BY tuple()"
        );
        let order = vec!["id".to_string()];
        let sql = CreateTable {
            database: None,
            table: "t",
            columns: &cols,
            order_by: &order,
            if_not_exists: false,
        }
        .to_sql()
        .unwrap();
        assert!(sql.starts_with("CREATE TABLE `t`\n"), "{sql}");
        assert!(sql.ends_with("ORDER BY `id`"), "{sql}");
        let order = vec!["id".to_string(), "we`ird\nname".to_string()];
        let ct = CreateTable {
            database: None,
            table: "t",
            columns: &cols,
            order_by: &order,
            if_not_exists: false,
        };
        assert!(ct
            .to_sql()
            .unwrap()
            .ends_with("ORDER BY (`id`, `we\\`ird\\nname`)"));
        let comments = vec![
            (
                "id".to_string(),
                "Arrow time64[ns]: it's nanoseconds".to_string(),
            ),
            ("absent".to_string(), "ignored".to_string()),
        ];
        let sql = ct.to_sql_with_comments(&comments).unwrap();
        assert!(
            sql.contains("`id` UInt64 COMMENT 'Arrow time64[ns]: it\\'s nanoseconds',\n"),
            "{sql}"
        );
        assert!(!sql.contains("ignored"), "{sql}");
    }

    #[test]
    fn create_table_refusals() {
        let cols = vec![
            ("a".to_string(), ChType::Int8),
            ("".to_string(), ChType::Int8),
        ];
        let ct = |columns, order_by| CreateTable {
            database: None,
            table: "t",
            columns,
            order_by,
            if_not_exists: false,
        };
        let e = ct(&cols, &[]).to_sql().unwrap_err().to_string();
        assert!(e.contains("must not be empty"), "{e}");
        let dup = vec![
            ("a".to_string(), ChType::Int8),
            ("a".to_string(), ChType::Int16),
        ];
        let e = ct(&dup, &[]).to_sql().unwrap_err().to_string();
        assert!(e.contains("duplicate column"), "{e}");
        let e = ct(&[], &[]).to_sql().unwrap_err().to_string();
        assert!(e.contains("at least one column"), "{e}");
        let one = vec![("a".to_string(), ChType::Int8)];
        let order = ["b".to_string()];
        let e = ct(&one, &order).to_sql().unwrap_err().to_string();
        assert!(e.contains("ORDER BY column"), "{e}");
        let bad = vec![(
            "a".to_string(),
            ChType::Nullable(Box::new(ChType::Array(Box::new(ChType::Int8)))),
        )];
        let e = ct(&bad, &[]).to_sql().unwrap_err().to_string();
        assert!(e.contains("Nullable cannot contain"), "{e}");
        let mut empty_table = ct(&one, &[]);
        empty_table.table = "";
        assert!(empty_table.to_sql().is_err());
    }
}
