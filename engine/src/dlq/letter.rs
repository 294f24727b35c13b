//! One dead letter as its headers describe it, the headers its replayed copy
//! carries, and the reference a copy keeps to its dead letter. Pure: tested
//! without a broker.

use serde::Serialize;
use velostream_codecs::envelope::{H_FILE, H_ROWS};

use crate::consumer::dlq::{
    OriginalHeaders, H_ERROR, H_OFFSET, H_PARTITION, H_REASON, H_TOPIC, H_VALUE_BYTES,
};

/// Header of a replayed copy naming its dead letter:
/// `<dead-letter topic>/<partition>/<offset>` (Kafka topic names cannot
/// hold a `/`).
pub const H_REPLAY_OF: &str = "velostream.replay.of";

/// Where a message is: topic, partition, offset.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct At {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.topic, self.partition, self.offset)
    }
}

impl At {
    /// Parses what [`At`]'s `Display` writes.
    pub fn parse(text: &str) -> Option<At> {
        let mut it = text.rsplitn(3, '/');
        let offset = it.next()?.parse().ok()?;
        let partition = it.next()?.parse().ok()?;
        let topic = it.next().filter(|t| !t.is_empty())?;
        Some(At {
            topic: topic.to_string(),
            partition,
            offset,
        })
    }
}

/// A dead letter: where it is, where its original came from and why it
/// failed. Missing headers (a message some other tool put in the topic)
/// leave fields empty rather than failing: `dlq list` shows it as such.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Letter {
    /// The dead letter itself.
    pub at: At,
    /// The original message, from the `velostream.dlq.topic/partition/offset`
    /// headers.
    pub source: Option<At>,
    /// `velostream.dlq.reason` (empty when absent).
    pub reason: String,
    /// `velostream.dlq.error`.
    pub error: String,
    /// Rows of the original (its `velostream.rows` header), when known.
    pub rows: Option<u64>,
    /// The original's Parquet file (its `velostream.file` header).
    pub file: Option<String>,
    /// Size of the original value in bytes.
    pub value_bytes: u64,
    /// The value is in the dead letter; `false` when it was too large and
    /// stays only in the source topic.
    pub copied: bool,
}

impl Letter {
    /// Reads a dead letter at `at` with a value of `value_len` bytes.
    pub fn new(at: At, value_len: usize, headers: &OriginalHeaders) -> Letter {
        let text = |key: &str| {
            headers
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        let source = match (text(H_TOPIC), text(H_PARTITION), text(H_OFFSET)) {
            (Some(topic), Some(p), Some(o)) => match (p.parse(), o.parse()) {
                (Ok(partition), Ok(offset)) => Some(At {
                    topic,
                    partition,
                    offset,
                }),
                _ => None,
            },
            _ => None,
        };
        let large = text(H_VALUE_BYTES).and_then(|v| v.parse::<u64>().ok());
        Letter {
            at,
            source,
            reason: text(H_REASON).unwrap_or_default(),
            error: text(H_ERROR).unwrap_or_default(),
            rows: text(H_ROWS).and_then(|v| v.parse().ok()),
            file: text(H_FILE),
            value_bytes: large.unwrap_or(value_len as u64),
            copied: large.is_none(),
        }
    }

    /// The first line of the error.
    pub fn error_line(&self) -> &str {
        self.error.lines().next().unwrap_or("")
    }

    /// One line for `dlq list`.
    pub fn line(&self) -> String {
        let source = self
            .source
            .as_ref()
            .map_or_else(|| "(unknown source)".to_string(), At::to_string);
        let rows = self.rows.map_or_else(|| "?".to_string(), |r| r.to_string());
        let kept = if self.copied { "" } else { " (not copied)" };
        format!(
            "{}  {source}  {}  rows={rows}  bytes={}{kept}  {}",
            self.at,
            if self.reason.is_empty() {
                "?"
            } else {
                &self.reason
            },
            self.value_bytes,
            self.error_line()
        )
    }

    /// Whether `--reason` (if any) selects this letter.
    pub fn selected_by(&self, reason: Option<&str>) -> bool {
        reason.is_none_or(|r| r == self.reason)
    }
}

/// The headers of a dead letter's replayed copy: the original's (the dead
/// letter's minus every `velostream.dlq.*` one and any earlier
/// [`H_REPLAY_OF`]), then [`H_REPLAY_OF`] naming `letter`.
pub fn replay_headers(headers: &OriginalHeaders, letter: &At) -> OriginalHeaders {
    let mut h: OriginalHeaders = headers
        .iter()
        .filter(|(k, _)| !k.starts_with("velostream.dlq.") && k != H_REPLAY_OF)
        .cloned()
        .collect();
    h.push((H_REPLAY_OF.to_string(), letter.to_string().into_bytes()));
    h
}

/// The dead letter a message is a replayed copy of, if it is one.
pub fn replay_of(headers: &OriginalHeaders) -> Option<At> {
    headers
        .iter()
        .rev()
        .find(|(k, _)| k == H_REPLAY_OF)
        .and_then(|(_, v)| At::parse(std::str::from_utf8(v).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> OriginalHeaders {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn at(t: &str, p: i32, o: i64) -> At {
        At {
            topic: t.into(),
            partition: p,
            offset: o,
        }
    }

    #[test]
    fn a_letter_reads_its_source_reason_error_and_rows() {
        let headers = h(&[
            (H_ROWS, "5000"),
            (H_FILE, "a.parquet"),
            ("trace", "x"),
            (H_REASON, "transform_failed"),
            (H_ERROR, "Arrow error: Divide by zero error\nat line 1"),
            (H_TOPIC, "trips.v2"),
            (H_PARTITION, "3"),
            (H_OFFSET, "41"),
        ]);
        let l = Letter::new(at("dead", 0, 7), 1234, &headers);
        assert_eq!(l.source, Some(at("trips.v2", 3, 41)));
        assert_eq!(l.rows, Some(5000));
        assert_eq!(l.file.as_deref(), Some("a.parquet"));
        assert_eq!((l.value_bytes, l.copied), (1234, true));
        assert_eq!(l.error_line(), "Arrow error: Divide by zero error");
        assert_eq!(
            l.line(),
            "dead/0/7  trips.v2/3/41  transform_failed  rows=5000  bytes=1234  \
             Arrow error: Divide by zero error"
        );
        assert!(l.selected_by(None));
        assert!(l.selected_by(Some("transform_failed")));
        assert!(!l.selected_by(Some("undecodable")));
    }

    #[test]
    fn an_oversized_letter_gives_the_original_size_and_a_foreign_message_is_shown_as_such() {
        let big = h(&[
            (H_REASON, "oversized"),
            (H_VALUE_BYTES, "40000000"),
            (H_TOPIC, "t"),
            (H_PARTITION, "0"),
            (H_OFFSET, "9"),
        ]);
        let l = Letter::new(at("dead", 1, 0), 0, &big);
        assert_eq!((l.value_bytes, l.copied), (40_000_000, false));
        assert!(
            l.line().contains("bytes=40000000 (not copied)"),
            "{}",
            l.line()
        );

        let foreign = Letter::new(at("dead", 0, 1), 3, &h(&[("x", "y")]));
        assert_eq!(foreign.source, None);
        assert_eq!(
            foreign.line(),
            "dead/0/1  (unknown source)  ?  rows=?  bytes=3  "
        );
    }

    #[test]
    fn a_copy_keeps_the_original_headers_and_names_its_letter_once() {
        let headers = h(&[
            (H_ROWS, "10"),
            ("trace", "x"),
            (H_REPLAY_OF, "old/0/0"),
            (H_REASON, "transform_failed"),
            (H_TOPIC, "t"),
            (H_VALUE_BYTES, "9"),
        ]);
        let copy = replay_headers(&headers, &at("dead.letters", 2, 17));
        assert_eq!(
            copy,
            h(&[
                (H_ROWS, "10"),
                ("trace", "x"),
                (H_REPLAY_OF, "dead.letters/2/17")
            ])
        );
        assert_eq!(replay_of(&copy), Some(at("dead.letters", 2, 17)));
        assert_eq!(replay_of(&h(&[("x", "y")])), None);
    }

    #[test]
    fn at_parses_what_it_prints_and_refuses_the_rest() {
        let a = at("a.b_c-d", 12, 345);
        assert_eq!(At::parse(&a.to_string()), Some(a));
        for bad in ["", "t/1", "/1/2", "t/x/2", "t/1/y", "t/1/2/"] {
            assert_eq!(At::parse(bad), None, "{bad:?}");
        }
    }
}
