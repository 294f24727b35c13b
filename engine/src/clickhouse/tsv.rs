//! Reading ClickHouse `TabSeparated` output.
//!
//! Fields are separated by a raw tab and rows end with a raw newline; inside a
//! field, ClickHouse escapes backslash, tab, newline and a few control
//! characters with a backslash (`\t`, `\n`, `\\`, `\'`, `\0`, ...). Splitting
//! on raw tabs and newlines first and unescaping each field afterwards is
//! therefore exact, even for column names that contain tabs or newlines.

/// Undoes ClickHouse's TSV escaping of one field.
///
/// Unknown escapes keep both characters, as ClickHouse's own TSV reader does;
/// a trailing lone backslash is kept.
pub fn unescape_field(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('a') => out.push('\u{7}'),
            Some('v') => out.push('\u{b}'),
            Some('e') => out.push('\u{1b}'),
            Some(c @ ('\\' | '\'' | '"' | '`' | '/' | '=')) => out.push(c),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Splits TSV text into rows of unescaped fields. The final newline is
/// optional; empty input gives no rows, while an empty line is a row holding
/// one empty field (a single-column result with an empty string).
pub fn parse_rows(text: &str) -> Vec<Vec<String>> {
    if text.is_empty() {
        return Vec::new();
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    body.split('\n')
        .map(|line| line.split('\t').map(unescape_field).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_clickhouse_escapes() {
        assert_eq!(unescape_field(r"plain"), "plain");
        assert_eq!(unescape_field(r"a\tb\nc\\d"), "a\tb\nc\\d");
        assert_eq!(unescape_field(r"it\'s"), "it's");
        assert_eq!(unescape_field(r"nul\0x"), "nul\0x");
        assert_eq!(unescape_field(r"\b\f\r"), "\u{8}\u{c}\r");
        assert_eq!(unescape_field(r"\q"), r"\q");
        assert_eq!(unescape_field("end\\"), "end\\");
        assert_eq!(unescape_field("ünïcødé ✓"), "ünïcødé ✓");
        // An escaped backslash followed by `n` is a backslash and an `n`.
        assert_eq!(unescape_field(r"\\n"), "\\n");
    }

    #[test]
    fn splits_rows_and_fields() {
        assert_eq!(
            parse_rows("a\tUInt64\nb\\tc\tString\n"),
            vec![
                vec!["a".to_string(), "UInt64".to_string()],
                vec!["b\tc".to_string(), "String".to_string()],
            ]
        );
        assert_eq!(
            parse_rows("x\ty"),
            vec![vec!["x".to_string(), "y".to_string()]]
        );
        assert!(parse_rows("").is_empty());
        // An empty line is a row with one empty field.
        assert_eq!(parse_rows("a\n\nb\n").len(), 3);
        assert_eq!(parse_rows("\n"), vec![vec![String::new()]]);
    }
}
