//! Decoding of the Kafka consumer protocol's member assignment, the bytes
//! a group coordinator returns for each member of a `consumer` group
//! (DescribeGroups): which partitions of which topics the member owns.
//!
//! ```text
//! Assignment => Version [Topic [Partition]] UserData
//!   Version   => int16           (0..=3 share this layout)
//!   Topic     => string          (int16 length + UTF-8)
//!   Partition => int32           (array: int32 count, then the items)
//!   UserData  => bytes           (int32 length, -1 = null; ignored)
//! ```

use std::fmt;

/// The partitions a member owns, per topic, in the order the coordinator sent them.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Assignment {
    pub topics: Vec<TopicAssignment>,
}

/// One topic of an [`Assignment`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TopicAssignment {
    pub topic: String,
    pub partitions: Vec<i32>,
}

/// Why assignment bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte position where decoding stopped.
    pub at: usize,
    pub what: &'static str,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "consumer-protocol assignment: {} at byte {}",
            self.what, self.at
        )
    }
}

impl Assignment {
    /// The partitions of `topic` (empty when the member owns none of it).
    pub fn partitions_of(&self, topic: &str) -> Vec<i32> {
        self.topics
            .iter()
            .filter(|t| t.topic == topic)
            .flat_map(|t| t.partitions.iter().copied())
            .collect()
    }

    /// Decodes `bytes`. An empty value (a member between rebalances) is an
    /// empty assignment. Counts are checked against the bytes left, so
    /// hostile input cannot make it allocate more than its own size.
    pub fn decode(bytes: &[u8]) -> Result<Assignment, DecodeError> {
        if bytes.is_empty() {
            return Ok(Assignment::default());
        }
        let mut r = Reader { bytes, at: 0 };
        let version = r.i16("version")?;
        if version < 0 {
            return Err(r.error("negative version"));
        }
        let topic_count = r.count("topic count", 2 + 4)?;
        let mut topics = Vec::with_capacity(topic_count);
        for _ in 0..topic_count {
            let len = r.i16("topic name length")?;
            let len = usize::try_from(len).map_err(|_| r.error("null topic name"))?;
            let at = r.at;
            let topic = std::str::from_utf8(r.take(len, "topic name")?)
                .map_err(|_| DecodeError {
                    at,
                    what: "topic name is not UTF-8",
                })?
                .to_string();
            let n = r.count("partition count", 4)?;
            let mut partitions = Vec::with_capacity(n);
            for _ in 0..n {
                partitions.push(r.i32("partition")?);
            }
            topics.push(TopicAssignment { topic, partitions });
        }
        // UserData (and any tagged fields of later versions) is not needed.
        Ok(Assignment { topics })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn error(&self, what: &'static str) -> DecodeError {
        DecodeError { at: self.at, what }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&[u8], DecodeError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(DecodeError {
                at: self.at,
                what: match what {
                    "topic name" => "truncated topic name",
                    "partition" => "truncated partition list",
                    _ => "truncated",
                },
            })?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn i16(&mut self, what: &'static str) -> Result<i16, DecodeError> {
        let b = self.take(2, what)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An array count, refused when negative or larger than the bytes left
    /// could hold at `min_item` bytes per item.
    fn count(&mut self, what: &'static str, min_item: usize) -> Result<usize, DecodeError> {
        let n = self.i32(what)?;
        let n = usize::try_from(n).map_err(|_| self.error("negative array length"))?;
        if n.saturating_mul(min_item) > self.bytes.len() - self.at {
            return Err(self.error("array length exceeds the bytes left"));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes an assignment the way Kafka clients do (version 0..=3).
    fn encode(version: i16, topics: &[(&str, &[i32])], user_data: Option<&[u8]>) -> Vec<u8> {
        let mut b = version.to_be_bytes().to_vec();
        b.extend((topics.len() as i32).to_be_bytes());
        for (t, parts) in topics {
            b.extend((t.len() as i16).to_be_bytes());
            b.extend(t.as_bytes());
            b.extend((parts.len() as i32).to_be_bytes());
            for p in *parts {
                b.extend(p.to_be_bytes());
            }
        }
        match user_data {
            Some(u) => {
                b.extend((u.len() as i32).to_be_bytes());
                b.extend(u);
            }
            None => b.extend((-1i32).to_be_bytes()),
        }
        b
    }

    #[test]
    fn decodes_topics_and_partitions_of_every_layout_version() {
        for v in 0..=3 {
            let bytes = encode(v, &[("trips", &[0, 2]), ("other", &[1])], Some(b"ud"));
            let a = Assignment::decode(&bytes).unwrap();
            assert_eq!(a.partitions_of("trips"), vec![0, 2]);
            assert_eq!(a.partitions_of("other"), vec![1]);
            assert_eq!(a.partitions_of("none"), Vec::<i32>::new());
        }
        let a = Assignment::decode(&encode(1, &[], None)).unwrap();
        assert!(a.topics.is_empty());
    }

    #[test]
    fn empty_bytes_are_an_empty_assignment() {
        assert_eq!(Assignment::decode(&[]).unwrap(), Assignment::default());
    }

    #[test]
    fn truncated_and_hostile_input_is_an_error_not_a_panic() {
        let good = encode(0, &[("trips", &[0, 1, 2])], None);
        // Every strict prefix that ends inside the topic array fails cleanly.
        let topic_end = good.len() - 4; // before user data
        for cut in 1..topic_end {
            let e = Assignment::decode(&good[..cut]).unwrap_err();
            assert!(e.at <= cut, "{e} for cut {cut}");
        }
        // A count claiming more items than there are bytes.
        let mut huge = 0i16.to_be_bytes().to_vec();
        huge.extend(i32::MAX.to_be_bytes());
        let e = Assignment::decode(&huge).unwrap_err();
        assert_eq!(e.what, "array length exceeds the bytes left");
        let mut neg = 0i16.to_be_bytes().to_vec();
        neg.extend((-5i32).to_be_bytes());
        assert_eq!(
            Assignment::decode(&neg).unwrap_err().what,
            "negative array length"
        );
        let mut bad_utf8 = 0i16.to_be_bytes().to_vec();
        bad_utf8.extend(1i32.to_be_bytes());
        bad_utf8.extend(2i16.to_be_bytes());
        bad_utf8.extend([0xff, 0xfe]);
        bad_utf8.extend(0i32.to_be_bytes());
        assert!(Assignment::decode(&bad_utf8)
            .unwrap_err()
            .to_string()
            .contains("not UTF-8"));
    }
}
